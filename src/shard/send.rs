//! The send path: frames go into one cork per reactor (flushed once per callback batch), or
//! behind a connection's unsent bytes, or, when large, straight to the socket; what the socket
//! does not take becomes backpressure in pooled chunks, with writable interest asked for only
//! while some wait. Every byte leaves through [`crate::transport`].

use log::debug;
use mio::Interest;

use super::Shard;
use crate::config::BackpressurePolicy;
use std::sync::Arc;

use crate::conn::{Kind, Mode};
use crate::error::SendError;
use crate::fallback::event;
use crate::http;
use crate::message::{Compress, Fragment, Message, SendStatus};
use crate::proto::close;
use crate::proto::frame::{self, MAX_HEADER, OpCode};
use crate::proto::session::Transmit;
use crate::transport;

/// Output corked beyond this is written at once.
pub(super) const CORK_CAP: usize = 64 << 10;

/// A connection's send path, as a session sees it.
pub(crate) struct Out<'a, D> {
    pub(super) shard: &'a mut Shard<D>,
    pub(super) key: usize,
}

impl<D> Transmit for Out<'_, D> {
    fn backlog(&self) -> usize {
        self.shard.conns[self.key].buffered()
    }

    fn frame(&mut self, header: &[u8], payload: &[u8]) {
        self.shard.emit(self.key, &[header, payload]);
    }

    fn defer_pong(&mut self, payload: &[u8]) {
        if let Some(tx) = self.shard.conns[self.key].tx.as_mut() {
            let mut p = [0u8; 125];
            let n = payload.len().min(125);
            p[..n].copy_from_slice(&payload[..n]);
            tx.pong = Some((p, n as u8));
        }
    }
}

impl<D> Shard<D> {
    /// Queues a whole message, compressed when the connection negotiated permessage-deflate and
    /// `compress` wants it; applies the backpressure policy.
    pub(crate) fn send_message(
        &mut self,
        key: usize,
        msg: Message<'_>,
        compress: Compress,
    ) -> Result<SendStatus, SendError> {
        self.send_data(key, msg.opcode(), msg.as_bytes(), compress)
    }

    /// [`Shard::send_message`] with the opcode (text or binary) and the payload apart.
    pub(crate) fn send_data(
        &mut self,
        key: usize,
        op: OpCode,
        payload: &[u8],
        compress: Compress,
    ) -> Result<SendStatus, SendError> {
        let conn = &self.conns[key];
        if conn.flags.dead() {
            return Err(SendError::Closed);
        }
        let ws = match &conn.kind {
            Kind::WebSocket(ws) => ws,
            Kind::Stream(st) if st.open => {
                return Ok(self.send_stream(key, op == OpCode::Text, payload));
            }
            _ => return Err(SendError::Closed),
        };
        ws.session.can_send_message()?;
        let agreement = ws.deflate;
        if let Some(s) = self.over_limit(key, payload.len() + MAX_HEADER) {
            return Ok(s);
        }
        let wanted = match compress {
            Compress::Auto => payload.len() >= self.cfg.compress_threshold,
            Compress::Always => true,
            Compress::Never => false,
        };
        match agreement.filter(|_| wanted) {
            Some(z) => {
                // RFC 7692 §6: a whole message, compressed, RSV1 on its (only) frame.
                let mut out = std::mem::take(&mut self.deflated);
                out.clear();
                self.streams.deflate(key, z, payload, &mut out);
                let r = self.with_session(key, |s, o| s.send_message(op, true, &out, o));
                if out.capacity() <= 1 << 20 {
                    self.deflated = out;
                }
                r.unwrap_or(Err(SendError::Closed))?;
            }
            None => {
                self.with_session(key, |s, o| s.send_message(op, false, payload, o))
                    .unwrap_or(Err(SendError::Closed))?;
            }
        }
        self.stats.messages_sent += 1;
        Ok(self.status(key))
    }

    /// Sends `payload` as one chunk of a streamed response (RFC 9112 §7.1), within the
    /// backpressure limit.
    pub(super) fn send_chunk(&mut self, key: usize, payload: &[u8]) -> SendStatus {
        if payload.is_empty() {
            // An empty chunk would end the body.
            return self.status(key);
        }
        let size = format!("{:x}\r\n", payload.len());
        if let Some(s) = self.over_limit(key, size.len() + payload.len() + 2) {
            return s;
        }
        self.emit(key, &[size.as_bytes(), payload, b"\r\n"]);
        self.stats.messages_sent += 1;
        self.status(key)
    }

    /// Sends a message on a stream, as its mode carries messages: a chunk, an SSE event, or an
    /// event queued for the next poll.
    pub(super) fn send_stream(&mut self, key: usize, text: bool, payload: &[u8]) -> SendStatus {
        let mode = self.conns[key].mode();
        if mode == Some(Mode::Chunked) {
            return self.send_chunk(key, payload);
        }
        if mode == Some(Mode::Poll) {
            // The queue keeps it: an allocation of its own.
            let mut ev = Vec::with_capacity(payload.len() + 16);
            event::message(text, payload, &mut ev);
            return self.poll_push(key, Arc::new(ev));
        }
        // An SSE stream: encoded into the scratch shared with compression, then corked or
        // queued like a frame.
        let mut ev = std::mem::take(&mut self.deflated);
        ev.clear();
        event::message(text, payload, &mut ev);
        let status = match self.over_limit(key, ev.len()) {
            Some(s) => s,
            None => {
                self.emit(key, &[&ev]);
                self.stats.messages_sent += 1;
                self.status(key)
            }
        };
        if ev.capacity() <= 1 << 20 {
            self.deflated = ev;
        }
        status
    }

    /// Ends a stream that is still open with `code` and `reason`: the last chunk, or the close
    /// event, goes out after what is queued (a long-poll session's waits for a poll). Returns
    /// whether it was open.
    pub(crate) fn end_stream(&mut self, key: usize, code: u16, reason: &str) -> bool {
        let mode = match &mut self.conns[key].kind {
            Kind::Stream(st) if st.open => {
                st.open = false;
                st.mode
            }
            _ => return false,
        };
        let mut ev = Vec::new();
        match mode {
            Mode::Chunked => self.emit(key, &[http::LAST_CHUNK]),
            Mode::Sse => {
                event::close(code, reason, &mut ev);
                self.emit(key, &[&ev]);
            }
            Mode::Poll => {
                event::close(code, reason, &mut ev);
                self.poll_enqueue(key, Arc::new(ev));
            }
        }
        true
    }

    /// Queues one fragment of a message. Fragments are never dropped halfway (a dropped middle
    /// would corrupt the message), so the backpressure limit does not apply.
    pub(crate) fn send_fragment(
        &mut self,
        key: usize,
        part: Fragment,
        msg: Message<'_>,
    ) -> Result<SendStatus, SendError> {
        let conn = &self.conns[key];
        if conn.flags.dead() {
            return Err(SendError::Closed);
        }
        let not_ws = if conn.data().is_some() {
            SendError::NotWebSocket
        } else {
            SendError::Closed
        };
        self.with_session(key, |s, o| {
            s.send_fragment(part, msg.is_text(), msg.as_bytes(), o)
        })
        .unwrap_or(Err(not_ws))?;
        Ok(self.status(key))
    }

    /// Starts the close handshake from our side (application or shutdown). A streamed response
    /// ends instead (its last chunk, then TCP closes; `on_close` follows with `code`).
    pub(crate) fn close(&mut self, key: usize, code: u16, reason: &str) -> Result<(), SendError> {
        let conn = &self.conns[key];
        if conn.flags.dead() {
            return Err(SendError::Closed);
        }
        if let Kind::Stream(st) = &conn.kind {
            if !st.open {
                return Err(SendError::Closed);
            }
            crate::proto::close::encode(code, reason)?;
            if st.mode != Mode::Chunked {
                // A fallback session's close event carries the reason now.
                self.end_stream(key, code, reason);
            }
            // The reactor ends it (and calls on_close) when this callback batch is over.
            self.broken.push((key, code, "closed by the server"));
            return Ok(());
        }
        let fx = self
            .with_session(key, |s, o| s.close(code, reason, o))
            .unwrap_or(Err(SendError::Closed))?;
        // Our close asks only for a timer: nothing to report.
        let _ = self.apply(key, fx);
        Ok(())
    }

    /// What a send that was queued did: Buffered behind unsent bytes, or Sent.
    pub(crate) fn status(&self, key: usize) -> SendStatus {
        if self.conns[key].buffered() > 0 {
            SendStatus::Buffered
        } else {
            SendStatus::Sent
        }
    }

    /// Applies the backpressure limit before `extra` more bytes are sent: the connection's
    /// `max_backpressure` (the message itself included, whatever is queued), and, when it would
    /// be queued behind unsent bytes, the process's memory budget. Some(status) when the message
    /// must not go.
    pub(super) fn over_limit(&mut self, key: usize, extra: usize) -> Option<SendStatus> {
        let queued = self.conns[key].buffered() + self.poll_queued(key);
        let over =
            queued + extra > self.cfg.max_backpressure || (queued > 0 && self.over_budget(extra));
        if !over {
            return None;
        }
        self.stats.messages_dropped += 1;
        Some(match self.cfg.backpressure_policy {
            BackpressurePolicy::Drop => SendStatus::Dropped,
            BackpressurePolicy::Close(code) => {
                self.broken.push((key, code, "backpressure limit"));
                SendStatus::Dropped
            }
        })
    }

    /// Whether buffering `extra` more bytes would pass the process's memory budget. Reads every
    /// reactor's posted figure: called only when something is about to be buffered.
    pub(crate) fn over_budget(&self, extra: usize) -> bool {
        let total = self.bus.board().buffered_total();
        total.saturating_add(extra as u64) > self.cfg.memory_budget as u64
    }

    /// Queues bytes for connection `key`: behind its unsent bytes if there are some, else into
    /// the cork (flushed once per callback batch), else, when they do not fit there, straight to
    /// the socket with what is corked, in one writev.
    pub(crate) fn emit(&mut self, key: usize, parts: &[&[u8]]) {
        // Queued deliveries were published before this send: they leave first.
        self.flush_batch();
        if self.conns[key].tx.is_some() {
            transport::queue(&mut self.conns[key], key, &mut self.wire, parts);
            return;
        }
        if self.cork_owner != Some(key) {
            self.flush_cork();
            self.cork_owner = Some(key);
        }
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if self.cork.len() + total <= CORK_CAP {
            for p in parts {
                self.cork.extend_from_slice(p);
            }
            return;
        }
        // Too big to cork: what is corked plus these bytes, in one writev.
        let corked = std::mem::take(&mut self.cork);
        let mut all: [&[u8]; 4] = [&corked, &[], &[], &[]];
        let n = parts.len().min(3);
        all[1..=n].copy_from_slice(&parts[..n]);
        self.cork_owner = None;
        self.write_now(key, &all[..=n]);
        self.cork = corked;
        self.cork.clear();
    }

    /// Writes `parts` to connection `key` now, queueing what the socket does not take.
    pub(super) fn write_now(&mut self, key: usize, parts: &[&[u8]]) {
        let Shard { conns, wire, .. } = self;
        let Some(conn) = conns.get_mut(key) else {
            return;
        };
        match transport::send(conn, key, wire, parts) {
            Ok(false) => {}
            Ok(true) => self.want_write(key),
            Err(e) => {
                debug!("write: {e}");
                if !conn.flags.dead() {
                    self.broken.push((key, close::ABNORMAL, "write failed"));
                }
            }
        }
    }

    /// Writes the cork to its owner's socket; what the kernel does not take becomes backpressure.
    pub(crate) fn flush_cork(&mut self) {
        let Some(key) = self.cork_owner.take() else {
            return;
        };
        if self.cork.is_empty() {
            return;
        }
        let cork = std::mem::take(&mut self.cork);
        self.write_now(key, &[&cork]);
        self.cork = cork;
        self.cork.clear();
    }

    /// Asks for writable readiness while unsent bytes wait.
    pub(super) fn want_write(&mut self, key: usize) {
        let write_ticks = self.write_ticks();
        let conn = &mut self.conns[key];
        if conn.flags.want_write() {
            return;
        }
        conn.flags.set_want_write(true);
        // The write timeout starts now (BAD_INPUTS 65).
        let now = self.wheel.tick(self.now);
        if let Some(tx) = conn.tx.as_deref_mut() {
            tx.since = now;
        }
        if let Some(w) = conn.write_deadline(write_ticks)
            && (!conn.flags.in_wheel() || w < conn.deadline)
        {
            self.arm_tick(key, w);
        }
        if let Err(e) = self.reregister(key, Interest::READABLE | Interest::WRITABLE) {
            debug!("reregister: {e}");
            self.broken.push((key, close::ABNORMAL, "write failed"));
        }
    }

    /// Writable: sends unsent bytes; once drained, drops writable interest and the chunks, and
    /// does what waited for the drain (close, shut the write side, or `on_drain`).
    pub(crate) fn write_pending(&mut self, key: usize) {
        if self.cork_owner == Some(key) {
            self.flush_cork();
        }
        loop {
            let Shard { conns, wire, .. } = self;
            let conn = &mut conns[key];
            if conn.tx.is_none() {
                return;
            }
            let sent = wire.tally.sent;
            let flushed = transport::flush(conn, wire);
            if wire.tally.sent > sent
                && let Some(tx) = conn.tx.as_deref_mut()
            {
                // Progress: the write timeout starts over.
                tx.since = self.wheel.tick(self.now);
            }
            match flushed {
                Ok(false) => return,
                Ok(true) => {}
                Err(e) => {
                    debug!("write: {e}");
                    self.broken.push((key, close::ABNORMAL, "write failed"));
                    return;
                }
            }
            // Drained: the coalesced pong, if any, goes last.
            match conn.tx.as_mut().and_then(|tx| tx.pong.take()) {
                Some((p, n)) => {
                    let mut h = [0u8; MAX_HEADER];
                    let hl = frame::encode(&mut h, true, false, OpCode::Pong, None, u64::from(n));
                    transport::queue(conn, key, wire, &[&h[..hl], &p[..usize::from(n)]]);
                }
                None => break,
            }
        }
        let Shard { conns, wire, .. } = self;
        let conn = &mut conns[key];
        transport::discard(conn, wire);
        conn.flags.set_want_write(false);
        let _ = self.reregister(key, Interest::READABLE);
        let conn = &self.conns[key];
        if conn.flags.linger() {
            self.kill(key);
        } else if conn.flags.drain() {
            self.shutdown_if_flushed(key);
        } else if conn.is_open() {
            if conn.ws().is_some() && !self.cfg.idle_timeout.is_zero() {
                // The write deadline no longer applies: back to the idle clock.
                self.arm_timer(key, crate::proto::session::Timer::Idle);
            }
            self.drained.push(key);
        }
    }
}
