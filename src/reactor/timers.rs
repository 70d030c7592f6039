//! The timing wheel's expiries: a connection's one deadline means the handshake timeout, the
//! message timeout, the idle ping and idle timeout, or the close timeout, by its state.

use log::debug;

use super::Reactor;
use super::lifecycle::{fail, settle};
use crate::conn::Kind;
use crate::handler::Handler;
use crate::id::Token;
use crate::stats::HandshakeFailure;

impl<H: Handler> Reactor<H> {
    pub(super) fn expire_timers(&mut self, expired: &mut Vec<u64>) {
        let now_tick = self.shard.wheel.tick(self.shard.now);
        self.shard.wheel.expire(now_tick, expired);
        let idle = !self.shard.cfg.idle_timeout.is_zero();
        let write_ticks = self.shard.write_ticks();
        for t in expired.drain(..) {
            let token = Token(t);
            if !self.shard.is_live(token) {
                continue;
            }
            let key = token.key();
            let conn = &mut self.shard.conns[key];
            if conn.deadline > now_tick {
                self.shard.wheel.insert(conn.deadline, t);
                continue;
            }
            conn.flags.set_in_wheel(false);
            let closing = conn.flags.closing();
            let head = matches!(conn.kind, Kind::Head);
            let message_late =
                conn.is_open() && conn.message_deadline().is_some_and(|t| t <= now_tick);
            // While output waits, its progress decides: stalled past the write timeout closes;
            // otherwise the timer waits for the write deadline (the idle ping could not leave
            // ahead of the queue anyway).
            let write_at = conn.write_deadline(write_ticks);
            let shard = &mut self.shard;
            let handler = &mut self.handler;
            if closing {
                // Unsent bytes did not leave, or the peer did not close, in time.
                shard.kill(key);
            } else if head {
                debug!("request head (or body) timeout");
                shard.count_failure(HandshakeFailure::Timeout);
                shard.kill(key);
            } else if message_late {
                // A message begun and never finished (BAD_INPUTS 19, 27).
                debug!("message timeout");
                fail(shard, handler, key, 1008, "message timeout");
            } else if write_at.is_some_and(|w| w <= now_tick) {
                // BAD_INPUTS 65: the peer read nothing for the write timeout.
                debug!("write timeout");
                fail(shard, handler, key, 1008, "write timeout");
            } else if let Some(w) = write_at {
                shard.arm_tick(key, w);
            } else if matches!(
                shard.conns[key].mode(),
                Some(crate::conn::Mode::Sse | crate::conn::Mode::Poll)
            ) {
                super::fallback::expire(shard, handler, key);
            } else if let Some(fx) = shard.with_session(key, |s, out| s.on_timeout(idle, out)) {
                if fx.report.is_some() {
                    debug!("idle or close handshake timeout");
                }
                settle(shard, handler, key, fx);
            }
            self.shard.flush_cork();
        }
        // Do not keep a crowd's worth of capacity here: it would be swapped into the next slot
        // and parked there, slot after slot.
        if expired.capacity() > 64 {
            *expired = Vec::new();
        }
    }
}
