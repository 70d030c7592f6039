//! A WebSocket's input: read up to the per-event budget, decode in place in the receive buffer,
//! and hand each event to the session and the handler.

use std::io;

use log::debug;

use super::Reactor;
use super::lifecycle::{call, end, fail, settle};
use crate::conn::Inbound;
use crate::deflate::codec::InflateError;
use crate::error::ProtocolError;
use crate::handler::Handler;
use crate::message::Message;
use crate::proto::decoder::{Decoder, Event};
use crate::shard::Shard;

impl<H: Handler> Reactor<H> {
    /// Reads frames, up to the per-event budget. `drain`: read until the socket says WouldBlock
    /// or EOF, even after a short read, because edge-triggered readiness will not report again
    /// what this event reported (the peer's FIN).
    pub(super) fn read_frames(&mut self, key: usize, drain: bool) {
        let mut budget = self.shard.cfg.read_budget;
        loop {
            let Reactor {
                shard,
                recv,
                handler,
                ..
            } = self;
            let want = recv.len().min(budget);
            let got = match shard.recv(key, recv, want) {
                Ok(g) => g,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    debug!("read: {e}");
                    end(shard, handler, key, "read failed");
                    return;
                }
            };
            budget = budget.saturating_sub(got.wire);
            if got.wire > 0 {
                shard.touch(key);
            }
            let conn = &shard.conns[key];
            // Closed at the WebSocket level, or closing TCP: what comes now is discarded.
            if got.n > 0
                && !conn.flags.closing()
                && conn.session().is_some_and(|s| s.reads_frames())
            {
                self.decode(key, 0, got.n);
                self.shard.flush_cork();
            }
            let Some(conn) = self.shard.conns.get_mut(key) else {
                return;
            };
            if conn.flags.dead() {
                return;
            }
            if got.eof {
                end(
                    &mut self.shard,
                    &mut self.handler,
                    key,
                    "connection closed without Close",
                );
                return;
            }
            if got.short && !drain {
                // A short read emptied the socket; new bytes raise a new edge. (Not so for a FIN
                // that came with them: with `drain` the next read returns 0 or WouldBlock.)
                return;
            }
            if budget == 0 {
                if !conn.flags.queued_read() {
                    conn.flags.set_queued_read(true);
                    let t = self.shard.token(key);
                    self.shard.readable.push(t);
                }
                return;
            }
        }
    }

    /// Runs the decoder over `recv[start..end]` and dispatches its events. A connection without
    /// a frame in progress borrows the reactor's spare decoder; one is boxed into the connection
    /// only when bytes are left over.
    pub(super) fn decode(&mut self, key: usize, start: usize, end: usize) {
        let Reactor {
            shard,
            recv,
            handler,
            spare,
            ..
        } = self;
        let mut rx = shard.conns[key].rx.take();
        let before = rx.as_deref().map_or(0, Inbound::buffered);
        shard.count_input(before, false);
        let own = match rx.as_deref_mut() {
            Some(Inbound::Frames { decoder, .. }) => Some(decoder),
            _ => None,
        };
        let boxed = own.is_some();
        let decoder: &mut Decoder = match own {
            Some(d) => d,
            None => spare,
        };
        let rsv1 = shard.conns[key].ws().is_some_and(|w| w.deflate.is_some());
        let (limits, kernel) = (shard.limits, shard.kernel);
        let result = decoder.feed(&mut recv[start..end], &limits, rsv1, kernel, &mut |ev| {
            dispatch(shard, handler, key, ev)
        });
        if let Err(e) = result {
            debug!("reactor {}: conn {key}: {e}", shard.reactor);
            *spare = Decoder::new();
            fail(shard, handler, key, e.close_code(), e.reason());
            return;
        }
        let conn = &shard.conns[key];
        if conn.flags.closing() || !conn.session().is_some_and(|s| s.reads_frames()) {
            // Failed or closed from inside a callback: what was left of the input is moot.
            *spare = Decoder::new();
            return;
        }
        let in_message = if boxed {
            let idle =
                matches!(rx.as_deref(), Some(Inbound::Frames { decoder, .. }) if decoder.is_idle());
            if idle {
                rx = None;
            }
            !idle
                && matches!(rx.as_deref(), Some(Inbound::Frames { decoder, .. }) if decoder.in_message())
        } else if spare.is_idle() {
            false
        } else {
            let in_message = spare.in_message();
            rx = Some(Box::new(Inbound::Frames {
                decoder: std::mem::take(spare),
                deadline: None,
            }));
            in_message
        };
        // A message left unfinished by this read gets a deadline (BAD_INPUTS 19, 27).
        let timeout = shard.cfg.message_timeout;
        let mut arm = None;
        if let Some(Inbound::Frames { deadline, .. }) = rx.as_deref_mut() {
            if !in_message {
                *deadline = None;
            } else if deadline.is_none() && !timeout.is_zero() {
                let tick = shard.wheel.deadline(shard.now, timeout);
                *deadline = Some(tick);
                arm = Some(tick);
            }
        }
        let after = rx.as_deref().map_or(0, Inbound::buffered);
        shard.count_input(after, true);
        let conn = &mut shard.conns[key];
        conn.rx = rx;
        if let Some(tick) = arm
            && (!conn.flags.in_wheel() || tick < conn.deadline)
        {
            shard.arm_tick(key, tick);
        }
        // BAD_INPUTS 53: a message that makes the process hold more than its budget goes.
        if after > before && shard.over_budget(0) {
            debug!("reactor {}: conn {key}: memory budget", shard.reactor);
            fail(shard, handler, key, 1013, "server memory budget");
        }
    }
}

/// Routes one decoded event through the session to the handler. Returns whether decoding should
/// go on.
fn dispatch<H: Handler>(
    shard: &mut Shard<H::Data>,
    handler: &mut H,
    key: usize,
    ev: Event<'_>,
) -> bool {
    let Some(session) = shard.conns[key].session() else {
        return false;
    };
    let open = session.is_open();
    if open
        && matches!(
            ev,
            Event::Text(_) | Event::Binary(_) | Event::Compressed { .. }
        )
    {
        shard.stats.messages_received += 1;
    }
    match ev {
        Event::Text(t) if open => {
            call(shard, handler, key, "on_message", |h, ws| {
                h.on_message(ws, Message::Text(t));
            });
        }
        Event::Binary(b) if open => {
            call(shard, handler, key, "on_message", |h, ws| {
                h.on_message(ws, Message::Binary(b));
            });
        }
        Event::Ping(p) => {
            // The session answers (or defers the pong); the application sees it while open.
            let seen = shard.with_session(key, |s, out| s.on_ping(p, out));
            if seen == Some(true) {
                call(shard, handler, key, "on_ping", |h, ws| h.on_ping(ws, p));
            }
        }
        Event::Pong(p) if open => {
            call(shard, handler, key, "on_pong", |h, ws| h.on_pong(ws, p));
        }
        Event::Compressed { text, data } if open => {
            return deliver_compressed(shard, handler, key, text, data);
        }
        Event::Close(code, reason) => {
            if let Some(fx) = shard.with_session(key, |s, out| s.on_close_frame(code, reason, out))
            {
                settle(shard, handler, key, fx);
            }
        }
        // Data after our Close is discarded (RFC 6455 §5.5.1).
        _ => {}
    }
    still_reading(shard, key)
}

fn still_reading<D>(shard: &Shard<D>, key: usize) -> bool {
    let conn = &shard.conns[key];
    !conn.flags.closing() && conn.session().is_some_and(|s| s.reads_frames())
}

/// Inflates a compressed message (capped at the message limit, BAD_INPUTS 48), checks its UTF-8
/// and hands it to the handler. Returns whether decoding should go on.
fn deliver_compressed<H: Handler>(
    shard: &mut Shard<H::Data>,
    handler: &mut H,
    key: usize,
    text: bool,
    data: &[u8],
) -> bool {
    let Some(agreement) = shard.conns[key].ws().and_then(|w| w.deflate) else {
        return false;
    };
    let mut buf = std::mem::take(&mut shard.inflated);
    buf.clear();
    let max = usize::try_from(shard.cfg.max_message).unwrap_or(usize::MAX);
    if let Err(e) = shard.streams.inflate(key, agreement, data, max, &mut buf) {
        debug!("reactor {}: conn {key}: inflate: {e}", shard.reactor);
        let why = match e {
            InflateError::TooLarge { .. } => "message too large",
            InflateError::Corrupt => "invalid compressed data",
        };
        fail(shard, handler, key, e.close_code(), why);
        shard.inflated = buf;
        return false;
    }
    if !shard.charge_inflate(key, buf.len()) {
        // BAD_INPUTS 49: compression bombs cost CPU; a connection that makes us inflate faster
        // than the budget goes.
        debug!("reactor {}: conn {key}: inflate rate limit", shard.reactor);
        shard.stats.inflate_limited += 1;
        fail(shard, handler, key, 1008, "inflate rate limit");
        shard.inflated = buf;
        return false;
    }
    if text {
        match simdutf8::basic::from_utf8(&buf) {
            Ok(t) => {
                call(shard, handler, key, "on_message", |h, ws| {
                    h.on_message(ws, Message::Text(t));
                });
            }
            Err(_) => {
                let e = ProtocolError::InvalidUtf8;
                fail(shard, handler, key, e.close_code(), e.reason());
            }
        }
    } else {
        call(shard, handler, key, "on_message", |h, ws| {
            h.on_message(ws, Message::Binary(&buf));
        });
    }
    // Keep the scratch for the next message, unless one huge message blew it up.
    if buf.capacity() <= 1 << 20 {
        shard.inflated = buf;
    }
    still_reading(shard, key)
}
