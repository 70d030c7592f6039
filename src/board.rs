//! Where each reactor posts its counts for other threads to read: one slot per reactor, each on
//! cache lines of its own, written only by its reactor with plain (relaxed) stores once per loop
//! iteration, never a read-modify-write. A reader sees each counter as of some recent iteration.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::stats::ReactorStats;

/// Fields of [`ReactorStats`] as one flat row of numbers.
const WIDTH: usize = 18 + 18 + 7 + 8 + 1;

/// One reactor's slot.
#[repr(align(128))]
struct Slot {
    values: [AtomicU64; WIDTH],
    running: AtomicBool,
}

/// Every reactor's slot.
pub(crate) struct Board {
    slots: Vec<Slot>,
}

fn flatten(s: &ReactorStats) -> [u64; WIDTH] {
    let mut v = [0u64; WIDTH];
    let head = [
        s.connections,
        s.opened,
        s.http_requests,
        s.messages_received,
        s.messages_sent,
        s.bytes_received,
        s.bytes_sent,
        s.messages_dropped,
        s.backpressure_bytes,
        s.topics,
        s.subscriptions,
        s.compressions,
        s.publishes,
        s.panics,
        s.loop_nanos,
        s.buffered_bytes,
    ];
    v[..16].copy_from_slice(&head);
    v[16] = s.inflate_limited;
    v[17] = s.tls_handshakes;
    v[18..36].copy_from_slice(&s.closed);
    v[36..43].copy_from_slice(&s.handshake_failures);
    v[43..51].copy_from_slice(&s.loop_buckets);
    v[51] = s.fallback_handovers;
    v
}

fn unflatten(v: &[u64; WIDTH]) -> ReactorStats {
    let mut s = ReactorStats {
        connections: v[0],
        opened: v[1],
        http_requests: v[2],
        messages_received: v[3],
        messages_sent: v[4],
        bytes_received: v[5],
        bytes_sent: v[6],
        messages_dropped: v[7],
        backpressure_bytes: v[8],
        topics: v[9],
        subscriptions: v[10],
        compressions: v[11],
        publishes: v[12],
        panics: v[13],
        loop_nanos: v[14],
        buffered_bytes: v[15],
        inflate_limited: v[16],
        tls_handshakes: v[17],
        fallback_handovers: v[51],
        ..ReactorStats::default()
    };
    s.closed.copy_from_slice(&v[18..36]);
    s.handshake_failures.copy_from_slice(&v[36..43]);
    s.loop_buckets.copy_from_slice(&v[43..51]);
    s
}

impl Board {
    pub(crate) fn new(reactors: usize) -> Board {
        Board {
            slots: (0..reactors)
                .map(|_| Slot {
                    values: std::array::from_fn(|_| AtomicU64::new(0)),
                    running: AtomicBool::new(false),
                })
                .collect(),
        }
    }

    /// Posts reactor `i`'s counts. Only reactor `i` calls this.
    pub(crate) fn post(&self, i: u32, s: &ReactorStats) {
        if let Some(slot) = self.slots.get(i as usize) {
            for (a, v) in slot.values.iter().zip(flatten(s)) {
                a.store(v, Ordering::Relaxed);
            }
        }
    }

    /// Marks reactor `i` as running or stopped.
    pub(crate) fn set_running(&self, i: u32, running: bool) {
        if let Some(slot) = self.slots.get(i as usize) {
            slot.running.store(running, Ordering::Release);
        }
    }

    /// Reactor `i`'s counts as last posted.
    pub(crate) fn read(&self, i: usize) -> ReactorStats {
        let mut v = [0u64; WIDTH];
        if let Some(slot) = self.slots.get(i) {
            for (x, a) in v.iter_mut().zip(&slot.values) {
                *x = a.load(Ordering::Relaxed);
            }
        }
        unflatten(&v)
    }

    /// Buffered bytes over every reactor, as last posted (the memory budget's figure).
    pub(crate) fn buffered_total(&self) -> u64 {
        self.slots
            .iter()
            .map(|s| s.values[15].load(Ordering::Relaxed))
            .sum()
    }

    /// Whether reactor `i` runs.
    pub(crate) fn running(&self, i: usize) -> bool {
        self.slots
            .get(i)
            .is_some_and(|s| s.running.load(Ordering::Acquire))
    }

    /// Number of slots.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_posted_row_reads_back() {
        let b = Board::new(2);
        let mut s = ReactorStats {
            connections: 3,
            messages_sent: 9,
            loop_nanos: 77,
            ..ReactorStats::default()
        };
        s.closed[4] = 5;
        s.handshake_failures[6] = 6;
        s.tls_handshakes = 3;
        s.loop_buckets[7] = 8;
        b.post(1, &s);
        assert_eq!(b.read(1), s);
        assert_eq!(b.read(0), ReactorStats::default());
        b.set_running(1, true);
        assert!(b.running(1) && !b.running(0));
    }
}
