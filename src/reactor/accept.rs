//! Accepting connections: a batch per readiness event, and a pause, not a busy loop, when the
//! process runs out of file descriptors (BAD_INPUTS 56).

use std::io;
use std::time::Duration;

use log::{debug, warn};

use super::Reactor;
use crate::handler::Handler;

/// Connections accepted per readiness event before the others get a turn.
const ACCEPT_BATCH: usize = 256;
/// Pause after running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

impl<H: Handler> Reactor<H> {
    pub(super) fn accept(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        let Some(listener) = self.listener.as_ref() else {
            return;
        };
        for _ in 0..ACCEPT_BATCH {
            match listener.accept() {
                Ok((socket, peer)) => self.shard.admit(socket, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if crate::sys::is_resource_exhaustion(&e) => {
                    // No busy loop; try again after a pause (edge-triggered readiness will not
                    // repeat for connections already queued).
                    warn!(
                        "reactor {}: accept: {e}; pausing {ACCEPT_BACKOFF:?}",
                        self.shard.reactor
                    );
                    self.accept_paused_until = Some(self.shard.now + ACCEPT_BACKOFF);
                    return;
                }
                Err(e) => debug!("accept: {e}"),
            }
        }
        // More may be waiting: come back after the others had a turn.
        self.accept_paused_until = Some(self.shard.now);
    }
}
