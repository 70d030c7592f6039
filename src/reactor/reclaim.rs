//! The end of each loop iteration: slots of connections that died are freed, and after a mass
//! disconnect memory goes back to the system.

use std::time::Duration;

use log::debug;

use super::Reactor;
use crate::handler::Handler;

impl<H: Handler> Reactor<H> {
    pub(super) fn free_dead(&mut self) {
        self.shard.flush_cork();
        for key in std::mem::take(&mut self.shard.dead) {
            self.shard.free(key);
        }
        self.reclaim();
    }

    /// After a mass disconnect, give memory back: the slab's spare tail, the wheel's spare slot
    /// capacity, idle pool chunks, and glibc's free heap. At most once a second.
    fn reclaim(&mut self) {
        let shard = &mut self.shard;
        let cap = shard.conns.capacity();
        self.reclaim_due = cap >= 4096 && shard.conns.len() * 4 <= cap;
        if !self.reclaim_due || shard.now < self.next_reclaim {
            return;
        }
        self.reclaim_due = false;
        self.next_reclaim = shard.now + Duration::from_secs(1);
        shard.shrink();
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
