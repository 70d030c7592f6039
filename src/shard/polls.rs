//! Long-poll sessions and the sockets that visit them: each session's queue of events not yet
//! acknowledged, a poll parked on its session until there is something to answer, and sockets
//! moved between slots (a parked poll's socket lives in the session's slot while it waits) or
//! between reactors (a request for a session lands on the reactor that owns it).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use log::debug;
use mio::Interest;

use super::Shard;
use crate::conn::{Conn, Kind, Mode, Stream};
use crate::fallback::event;
use crate::http::{self, Body};
use crate::message::SendStatus;
use crate::transport::Moving;

/// Long-poll sessions by slot: the number each one's next event gets (8 bytes a session while
/// nothing waits: an idle session costs no more than an idle WebSocket), and the queues of those
/// with events not acknowledged.
#[derive(Default)]
pub(crate) struct Polls {
    next: HashMap<u32, u32>,
    queues: HashMap<u32, Queue>,
    /// Bytes in all queues (shared events counted in full): part of what the memory budget
    /// bounds.
    pub(crate) bytes: u64,
}

impl Polls {
    /// Forgets session `key` (its slot is freed).
    pub(crate) fn remove(&mut self, key: usize) {
        self.next.remove(&(key as u32));
        if let Some(q) = self.queues.remove(&(key as u32)) {
            self.bytes = self.bytes.saturating_sub(q.bytes as u64);
        }
    }

    /// Long-poll sessions on this reactor.
    pub(crate) fn sessions(&self) -> usize {
        self.next.len()
    }

    /// Gives back spare capacity after a mass disconnect.
    pub(crate) fn shrink(&mut self) {
        self.next.shrink_to_fit();
        self.queues.shrink_to_fit();
    }
}

/// Events sent and not acknowledged, oldest first; each shared with every session (and SSE
/// stream) that got the same publish.
#[derive(Default)]
struct Queue {
    events: VecDeque<Arc<Vec<u8>>>,
    bytes: usize,
}

/// Why a poll's acknowledgement is refused.
pub(crate) struct AckAhead;

impl<D> Shard<D> {
    /// The generation epoch in which `generation` was issued: the current one below the next
    /// generation, the one before at or above it (issued before the counter wrapped).
    pub(crate) fn epoch_of(&self, generation: u32) -> u32 {
        if generation >= self.next_generation {
            self.epoch.wrapping_sub(1)
        } else {
            self.epoch
        }
    }

    /// A generation for a new slot.
    pub(crate) fn fresh_generation(&mut self) -> u32 {
        let g = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1).max(1);
        if self.next_generation == 1 {
            // Slots' tokens repeat from here: session ids made before do not name them.
            self.epoch = self.epoch.wrapping_add(1);
        }
        g
    }

    /// A new long-poll session with `data`, its slot without a socket; it waits for its first
    /// poll under the session timeout.
    pub(crate) fn new_poll_session(&mut self, data: D) -> usize {
        let generation = self.fresh_generation();
        let key = self.conns.insert(Conn::session_slot(
            generation,
            Kind::Stream(Stream {
                open: true,
                reported: false,
                mode: Mode::Poll,
                data,
            }),
        ));
        self.polls.next.insert(key as u32, 1);
        self.stats.connections += 1;
        self.stats.opened += 1;
        let t = self.cfg.session_timeout;
        self.arm(key, t);
        key
    }

    /// Bytes of events waiting in session `key`'s queue (0 for other connections).
    pub(crate) fn poll_queued(&self, key: usize) -> usize {
        self.polls.queues.get(&(key as u32)).map_or(0, |q| q.bytes)
    }

    /// Queues a message's event for session `key`, within the backpressure limit.
    pub(crate) fn poll_push(&mut self, key: usize, ev: Arc<Vec<u8>>) -> SendStatus {
        if let Some(s) = self.over_limit(key, ev.len()) {
            return s;
        }
        self.poll_enqueue(key, ev);
        self.stats.messages_sent += 1;
        SendStatus::Buffered
    }

    /// Queues an event for session `key` as it is (the close event passes every limit); a poll
    /// parked on it is answered at the end of the callback batch.
    pub(crate) fn poll_enqueue(&mut self, key: usize, ev: Arc<Vec<u8>>) {
        let Some(next) = self.polls.next.get_mut(&(key as u32)) else {
            return;
        };
        // Numbers are 32-bit: a session is not given its four billionth event.
        let Some(n) = next.checked_add(1) else {
            return;
        };
        *next = n;
        let q = self.polls.queues.entry(key as u32).or_default();
        q.bytes += ev.len();
        self.polls.bytes += ev.len() as u64;
        q.events.push_back(ev);
        if self.conns[key].socket.is_some() {
            self.poll_ready.push(key);
        }
    }

    /// Forgets session `key`'s events up to `ack`.
    ///
    /// # Errors
    /// `ack` names an event not sent yet.
    pub(crate) fn poll_ack(&mut self, key: usize, ack: u64) -> Result<(), AckAhead> {
        let k = key as u32;
        let Some(&next) = self.polls.next.get(&k) else {
            return Ok(());
        };
        if ack >= u64::from(next) {
            return Err(AckAhead);
        }
        if let Some(q) = self.polls.queues.get_mut(&k) {
            let first = u64::from(next) - q.events.len() as u64;
            let n = (ack + 1).saturating_sub(first);
            for _ in 0..n {
                if let Some(ev) = q.events.pop_front() {
                    q.bytes -= ev.len();
                    self.polls.bytes = self.polls.bytes.saturating_sub(ev.len() as u64);
                }
            }
            if q.events.is_empty() {
                self.polls.queues.remove(&k);
                if n > 0 && self.conns[key].is_open() {
                    // What was sent has arrived: `on_drain`, as when a socket's queue empties.
                    self.drained.push(key);
                }
            }
        }
        Ok(())
    }

    /// Whether session `key` has events for a poll.
    pub(crate) fn poll_has_events(&self, key: usize) -> bool {
        self.poll_queued(key) > 0
    }

    /// Answers a poll for session `key` on connection `conn` (the poll's own): every event
    /// queued, each with its number; keeps the connection for the next request or closes it. A
    /// session whose close event went out goes.
    pub(crate) fn poll_answer(&mut self, conn: usize, key: usize, keep_alive: bool) {
        let mut body = Vec::new();
        let mut ended = false;
        if let Some(&next) = self.polls.next.get(&(key as u32))
            && let Some(q) = self.polls.queues.get(&(key as u32))
        {
            let first = u64::from(next) - q.events.len() as u64;
            for (i, ev) in q.events.iter().enumerate() {
                event::id(first + i as u64, &mut body);
                body.extend_from_slice(ev);
            }
            ended = !self.conns[key].is_open();
        }
        self.respond(conn, 200, &body, keep_alive);
        if ended {
            // The close event is out (on_close was called when it was queued).
            self.kill(key);
        } else if self.conns[key].socket.is_none() {
            let t = self.cfg.session_timeout;
            self.arm(key, t);
        }
    }

    /// Writes a short answer with `body` on connection `conn`, then keeps it for the next
    /// request or closes it once sent.
    pub(crate) fn respond(&mut self, conn: usize, status: u16, body: &[u8], keep_alive: bool) {
        let date = self.date();
        let mut out = Vec::with_capacity(192);
        let headers = [
            (
                "Content-Type".to_owned(),
                "text/plain; charset=utf-8".to_owned(),
            ),
            ("Cache-Control".to_owned(), "no-store".to_owned()),
        ];
        http::write_head(
            &mut out,
            status,
            &headers,
            Body::Length(body.len()),
            keep_alive,
            Some(&date),
        );
        self.emit(conn, &[&out, body]);
        if keep_alive {
            self.await_next_request(conn);
        } else {
            self.linger(conn);
        }
    }

    /// A long-poll session closed (`on_close` was called; its close event is queued): it waits
    /// for a poll to take the event, or the session timeout.
    pub(crate) fn poll_closing(&mut self, key: usize) {
        if self.conns[key].socket.is_none() {
            if self.bus.stopping() {
                // Shutting down: no poll will come for the close event.
                self.kill(key);
                return;
            }
            let t = self.cfg.session_timeout;
            self.arm(key, t);
        }
    }

    /// Parks the poll that came on connection `conn` on session `key`: its socket moves into
    /// the session's slot and waits there for an event or the poll timeout. The slot `conn`
    /// goes.
    pub(crate) fn park(&mut self, conn: usize, key: usize, keep_alive: bool) {
        self.move_socket(conn, key);
        self.conns[key].flags.set_keep(keep_alive);
        self.kill(conn);
        let t = self.cfg.poll_timeout;
        self.arm(key, t);
    }

    /// The poll parked on session `key` gets its answer: its socket moves to a slot of its
    /// own, which answers `status` (200: the queued events; else an empty body).
    pub(crate) fn unpark(&mut self, key: usize, status: u16) {
        if self.conns[key].socket.is_none() {
            return;
        }
        let keep = self.conns[key].flags.keep();
        self.conns[key].flags.set_keep(false);
        let generation = self.fresh_generation();
        let conn = self
            .conns
            .insert(Conn::session_slot(generation, Kind::Head));
        self.move_socket(key, conn);
        if status == 200 {
            self.poll_answer(conn, key, keep);
        } else {
            self.respond(conn, status, b"", false);
            let t = self.cfg.session_timeout;
            self.arm(key, t);
        }
    }

    /// The parked poll's client went away: the session waits for the next poll.
    pub(crate) fn drop_parked(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        conn.socket = None;
        conn.flags.set_want_write(false);
        conn.flags.set_keep(false);
        crate::transport::discard(conn, &mut self.wire);
        #[cfg(feature = "tls")]
        if let Some(l) = self.wire.tls.as_mut() {
            l.remove(key);
        }
        let t = self.cfg.session_timeout;
        self.arm(key, t);
    }

    /// Moves the socket (with its unsent bytes and TLS state) from slot `from` to slot `to`,
    /// registered under `to`'s token.
    pub(crate) fn move_socket(&mut self, from: usize, to: usize) {
        if self.cork_owner == Some(from) {
            self.flush_cork();
        }
        let c = &mut self.conns[from];
        let socket = c.socket.take();
        let tx = c.tx.take();
        let want_write = c.flags.want_write();
        c.flags.set_want_write(false);
        #[cfg(feature = "tls")]
        if let Some(l) = self.wire.tls.as_mut() {
            l.relocate(from, to);
        }
        let c = &mut self.conns[to];
        c.socket = socket;
        c.tx = tx;
        c.flags.set_want_write(want_write);
        let interest = if want_write {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if let Err(e) = self.reregister(to, interest) {
            debug!("reregister: {e}");
            let c = &mut self.conns[to];
            c.socket = None;
            c.flags.set_want_write(false);
            crate::transport::discard(c, &mut self.wire);
            #[cfg(feature = "tls")]
            if let Some(l) = self.wire.tls.as_mut() {
                l.remove(to);
            }
        }
    }

    /// Takes connection `key`'s socket out of this reactor (for another one), with its TLS
    /// state; the slot goes. `None` when it has unsent bytes (they would have to move too).
    pub(crate) fn take_socket(&mut self, key: usize) -> Option<Moving> {
        if self.cork_owner == Some(key) {
            self.flush_cork();
        }
        if self.conns[key].tx.is_some() {
            return None;
        }
        let mut socket = self.conns[key].socket.take()?;
        let _ = self.registry.deregister(&mut socket);
        #[cfg(feature = "tls")]
        let tls = self.wire.tls.as_mut().and_then(|l| l.take(key));
        self.kill(key);
        Some(Moving {
            socket,
            #[cfg(feature = "tls")]
            tls,
        })
    }

    /// Takes in a socket another reactor sent: a new slot, waiting for a request. Returns its
    /// key.
    pub(crate) fn adopt(&mut self, m: Moving) -> Option<usize> {
        let Moving {
            mut socket,
            #[cfg(feature = "tls")]
            tls,
        } = m;
        let (key, generation) = self.register_new(&mut socket)?;
        let inserted = self.conns.insert(Conn::new(socket, generation));
        debug_assert_eq!(inserted, key);
        #[cfg(feature = "tls")]
        if let (Some(l), Some(t)) = (self.wire.tls.as_mut(), tls) {
            l.put(key, t);
        }
        self.await_next_request(key);
        Some(key)
    }
}
