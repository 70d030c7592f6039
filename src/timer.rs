//! A coarse timing wheel: O(1) to arm, nothing done per connection between expiries.
//!
//! Time is counted in ticks of [`TICK`]. A connection keeps one deadline (a tick number) in its
//! slab entry and sits in at most a few wheel slots. Pushing a deadline later is a plain store in
//! the entry: the wheel finds out when the old slot comes round and files the entry again under
//! its new tick. So a million idle connections cost one visit each per timeout period, not a sweep
//! every few seconds. Deadlines beyond the wheel's span are filed in the farthest slot and re-filed.

use std::time::{Duration, Instant};

/// Timer resolution.
pub(crate) const TICK: Duration = Duration::from_millis(50);
const SLOTS: usize = 1024;

/// Per-reactor timing wheel of connection tokens.
pub(crate) struct Wheel {
    start: Instant,
    slots: Vec<Vec<u64>>,
    /// The next tick not yet expired.
    cursor: u32,
    len: usize,
}

impl Wheel {
    /// An empty wheel starting now.
    pub(crate) fn new(start: Instant) -> Wheel {
        Wheel {
            start,
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            cursor: 0,
            len: 0,
        }
    }

    /// The tick `now` falls in.
    pub(crate) fn tick(&self, now: Instant) -> u32 {
        let ms = now.saturating_duration_since(self.start).as_millis();
        u32::try_from(ms / TICK.as_millis()).unwrap_or(u32::MAX)
    }

    /// The first tick at or after `now + d` (never earlier than the deadline).
    pub(crate) fn deadline(&self, now: Instant, d: Duration) -> u32 {
        let t = now + d;
        let ms = t.saturating_duration_since(self.start).as_millis();
        let tick_ms = TICK.as_millis();
        u32::try_from(ms.div_ceil(tick_ms)).unwrap_or(u32::MAX)
    }

    /// Files `token` to be looked at when `tick` comes.
    pub(crate) fn insert(&mut self, tick: u32, token: u64) {
        let far = self.cursor.saturating_add(SLOTS as u32 - 1);
        let t = tick.clamp(self.cursor, far);
        self.slots[t as usize % SLOTS].push(token);
        self.len += 1;
    }

    /// Moves every token filed up to `now_tick` into `out`; the caller checks each one against the
    /// connection's current deadline and re-files it if it moved.
    pub(crate) fn expire(&mut self, now_tick: u32, out: &mut Vec<u64>) {
        let mut steps = 0;
        while self.cursor <= now_tick && steps < SLOTS {
            let slot = &mut self.slots[self.cursor as usize % SLOTS];
            self.len -= slot.len();
            if out.is_empty() {
                // Hand over the slot's buffer instead of copying out of it, so capacity moves
                // with the tokens rather than piling up in every slot a crowd once passed through.
                std::mem::swap(out, slot);
            } else {
                out.append(slot);
            }
            self.cursor += 1;
            steps += 1;
        }
        // After a long stall every slot was drained once; jump to now.
        if self.cursor <= now_tick {
            self.cursor = now_tick + 1;
        }
    }

    /// Time from `now` until the next non-empty slot, if any.
    pub(crate) fn next_timeout(&self, now: Instant) -> Option<Duration> {
        if self.len == 0 {
            return None;
        }
        let now_tick = self.tick(now);
        let first = (0..SLOTS as u32)
            .map(|i| self.cursor + i)
            .find(|t| !self.slots[*t as usize % SLOTS].is_empty())?;
        if first <= now_tick {
            return Some(Duration::ZERO);
        }
        let at = self.start + TICK * first;
        Some(at.saturating_duration_since(now))
    }

    /// Frees spare capacity (after a mass disconnect).
    pub(crate) fn shrink(&mut self) {
        for s in &mut self.slots {
            s.shrink_to_fit();
        }
    }

    /// No token filed.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_at_or_after_deadline_never_before() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        let d = w.deadline(t0, Duration::from_millis(120));
        w.insert(d, 7);
        let mut out = Vec::new();
        w.expire(w.tick(t0 + Duration::from_millis(100)), &mut out);
        assert!(out.is_empty());
        w.expire(w.tick(t0 + Duration::from_millis(150)), &mut out);
        assert_eq!(out, vec![7]);
        assert!(w.is_empty());
    }

    #[test]
    fn far_deadline_is_refiled_not_lost() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        let d = w.deadline(t0, TICK * (SLOTS as u32 * 3));
        w.insert(d, 1);
        let mut out = Vec::new();
        // The farthest slot comes round first; the caller re-files.
        let mut now = 0;
        let mut visits = 0;
        while now <= d {
            now += 100;
            w.expire(now, &mut out);
            for tok in out.drain(..) {
                visits += 1;
                if now < d {
                    w.insert(d, tok);
                } else {
                    assert_eq!(tok, 1);
                    return;
                }
            }
        }
        panic!("never fired ({visits} visits)");
    }

    #[test]
    fn next_timeout_points_at_first_entry() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        assert_eq!(w.next_timeout(t0), None);
        w.insert(w.deadline(t0, Duration::from_secs(1)), 3);
        let n = w.next_timeout(t0).unwrap();
        assert!(
            n >= Duration::from_millis(950) && n <= Duration::from_millis(1050),
            "{n:?}"
        );
    }
}
