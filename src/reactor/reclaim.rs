//! The end of each loop iteration: slots of connections that died are freed, and after a mass
//! disconnect memory goes back to the system.

use std::time::Duration;

use log::debug;

use super::Reactor;
use crate::handler::Handler;

impl<H: Handler> Reactor<H> {
    pub(super) fn free_dead(&mut self) {
        // A batch held by the coalescing window names topics and connections by number: it
        // leaves before any of them can be freed and reused.
        if !self.shard.dead.is_empty() {
            self.shard.flush_batch();
        }
        self.shard.flush_cork();
        for key in std::mem::take(&mut self.shard.dead) {
            self.shard.free(key);
        }
        // The input count must equal what the connections hold (debug builds, small servers).
        #[cfg(debug_assertions)]
        if self.shard.conns.len() < 4096 {
            let held: u64 = self
                .shard
                .conns
                .iter()
                .filter_map(|(_, c)| c.rx.as_deref())
                .map(|rx| rx.buffered() as u64)
                .sum();
            debug_assert_eq!(held, self.shard.input_buffered, "input bytes miscounted");
        }
        self.reclaim();
    }

    /// After a mass disconnect, or once heavy buffering is over (clients that sent or were sent
    /// large messages left), give memory back: the slab's spare tail, the wheel's spare slot
    /// capacity, idle pool chunks, and glibc's free heap. At most once a second.
    fn reclaim(&mut self) {
        let shard = &mut self.shard;
        let cap = shard.conns.capacity();
        let buffered = shard.wire.tally.queued + shard.input_buffered;
        self.buffered_peak = self.buffered_peak.max(buffered);
        let drained = self.buffered_peak >= 16 << 20 && buffered * 4 < self.buffered_peak;
        self.reclaim_due = (cap >= 4096 && shard.conns.len() * 4 <= cap) || drained;
        if !self.reclaim_due || shard.now < self.next_reclaim {
            return;
        }
        self.reclaim_due = false;
        self.next_reclaim = shard.now + Duration::from_secs(1);
        shard.shrink();
        self.buffered_peak = buffered;
        crate::sys::trim_heap();
        debug!(
            "reactor {}: reclaimed memory ({} connections, slab capacity {} -> {})",
            shard.reactor,
            shard.conns.len(),
            cap,
            shard.conns.capacity()
        );
    }
}
