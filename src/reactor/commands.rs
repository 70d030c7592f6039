//! What other threads ask of the reactor (its mailbox), and graceful shutdown.

use std::time::Instant;

use log::debug;

use super::Reactor;
use super::lifecycle::end;
use crate::conn::Kind;
use crate::error::SendError;
use crate::handler::Handler;
use crate::mailbox::Cmd;
use crate::message::{Compress, Message};

/// Commands taken per wake-up before sockets get their turn again.
const DRAIN_MAX: usize = 4096;

impl<H: Handler> Reactor<H> {
    pub(super) fn run_mailbox(&mut self) {
        // Settled once for the whole queue, so that publishes arriving together leave together
        // (one write per subscriber).
        self.shard.bus.begin_drain(self.shard.reactor);
        let mut left = true;
        for _ in 0..DRAIN_MAX {
            match self.inbox.next() {
                Some(cmd) => self.command(cmd),
                None => {
                    left = false;
                    break;
                }
            }
        }
        if left {
            // The rest after the next poll, so that sockets get their turn.
            self.shard.bus.wake_again(self.shard.reactor);
        }
        self.settle();
    }

    pub(super) fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Adopt { socket, head, body } => {
                if let Some(key) = self.shard.adopt(*socket) {
                    super::request::answer(&mut self.shard, &mut self.handler, key, &head, &body);
                }
            }
            Cmd::Send {
                token,
                text,
                payload,
                reply,
            } => {
                let r = match self.shard.lookup(token) {
                    Some(key) => {
                        let msg = if text {
                            // Text crossed threads as the bytes of a &str.
                            match std::str::from_utf8(&payload) {
                                Ok(t) => Message::Text(t),
                                Err(_) => Message::Binary(&payload),
                            }
                        } else {
                            Message::Binary(&payload)
                        };
                        self.shard.send_message(key, msg, Compress::Auto)
                    }
                    None => Err(SendError::StaleId),
                };
                if let Some(reply) = reply {
                    let _ = reply.send(r);
                } else if let Err(e) = r {
                    debug!("send to {token:?}: {e}");
                }
            }
            Cmd::Close {
                token,
                code,
                reason,
                reply,
            } => {
                let r = match self.shard.lookup(token) {
                    Some(key) => self.shard.close(key, code, &reason),
                    None => Err(SendError::StaleId),
                };
                if let Some(reply) = reply {
                    let _ = reply.send(r);
                }
            }
            Cmd::Shutdown { deadline } => self.begin_shutdown(deadline),
            Cmd::Publish { topic, message } => {
                self.shard.deliver(&topic, &message, None);
            }
            Cmd::Accept { token, accept } => {
                if let Some(key) = self.shard.lookup(token) {
                    self.accept_pending(key, accept);
                }
            }
            Cmd::Reject {
                token,
                status,
                headers,
                body,
            } => {
                if let Some(key) = self.shard.lookup(token) {
                    self.reject_pending(key, status, &headers, &body);
                }
            }
            Cmd::Interest { topic, reactor, on } => {
                self.shard.note_interest(topic, reactor, on);
            }
            Cmd::Subscribers { topic, reply } => {
                let n = self
                    .shard
                    .topics
                    .id(&topic)
                    .map_or(0, |id| self.shard.topics.subscribers_of(id).len());
                let _ = reply.send(n);
            }
        }
    }

    /// Graceful shutdown (BAD_INPUTS 67): stop accepting, 1001 to every open connection, then wait
    /// for their Close until the deadline.
    fn begin_shutdown(&mut self, deadline: Instant) {
        if self.shutdown_at.is_some() {
            return;
        }
        self.shutdown_at = Some(deadline);
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        let keys: Vec<usize> = self.shard.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let conn = &self.shard.conns[key];
            if conn.flags.dead() {
                continue;
            }
            match conn.kind {
                Kind::Head => self.shard.kill(key),
                Kind::WebSocket(_) | Kind::Stream(_) if conn.is_open() => {
                    let _ = self.shard.close(key, 1001, "server shutting down");
                }
                _ => {}
            }
            self.shard.flush_cork();
        }
        self.settle();
    }

    /// The shutdown deadline passed: whatever is left goes now.
    pub(super) fn force_close_all(&mut self) {
        let keys: Vec<usize> = self.shard.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            end(
                &mut self.shard,
                &mut self.handler,
                key,
                "shutdown deadline passed",
            );
        }
        self.free_dead();
    }
}
