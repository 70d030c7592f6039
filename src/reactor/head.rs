//! The first kind of every connection: reading HTTP requests. A head that asks for a WebSocket
//! goes to the upgrade ([`super::upgrade`]); any other request, with its body, to the
//! application's `on_request` ([`super::request`]). On a kept-alive connection the next head
//! follows, pipelined or not, up to `Config::max_pipelined` per read.

use std::io;

use log::{debug, trace};

use super::Reactor;
use super::request::answer;
use crate::conn::{BodyRead, Inbound, Kind};
use crate::handler::Handler;
use crate::http::{self, Chunked, Framing, HeadLimits, HttpError, MAX_HEADERS};
use crate::stats::HandshakeFailure;

/// Where a complete head is.
pub(super) enum HeadAt {
    /// `recv[start..end]`, where it was read.
    Recv(usize, usize),
    /// Bytes the connection collected over several reads.
    Held(Vec<u8>),
}

impl HeadAt {
    pub(super) fn bytes<'a>(&'a self, recv: &'a [u8]) -> &'a [u8] {
        match self {
            HeadAt::Recv(s, e) => &recv[*s..*e],
            HeadAt::Held(v) => v,
        }
    }

    fn into_vec(self, recv: &[u8]) -> Vec<u8> {
        match self {
            HeadAt::Recv(s, e) => recv[s..e].to_vec(),
            HeadAt::Held(v) => v,
        }
    }
}

/// What a head asks for.
enum Asks {
    Upgrade,
    Plain(Framing),
}

impl<H: Handler> Reactor<H> {
    /// Reads what the socket has for a connection that waits for a request (or its body, or
    /// the answer to a pending upgrade).
    pub(super) fn read_head(&mut self, key: usize, drain: bool) {
        loop {
            let Reactor { shard, recv, .. } = self;
            let want = recv.len();
            let got = match shard.recv(key, recv, want) {
                Ok(g) => g,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    debug!("request read: {e}");
                    shard.kill(key);
                    return;
                }
            };
            if got.n > 0 {
                self.on_request_bytes(key, 0, got.n);
            }
            if got.eof {
                trace!("request: peer closed");
                // (A request answered in this read still goes out before the socket closes.)
                if let Some(c) = self.shard.conns.get(key)
                    && !c.flags.dead()
                    && matches!(c.kind, Kind::Head)
                {
                    self.shard.kill(key);
                }
                return;
            }
            let Some(conn) = self.shard.conns.get(key) else {
                return;
            };
            if conn.flags.dead() || conn.flags.closing() {
                return;
            }
            if !matches!(conn.kind, Kind::Head) {
                // Upgraded (or streaming) with this read: bytes or the EOF may still wait in
                // the socket, and edge-triggered readiness will not report them again.
                self.read_rest_later(key, got.short, drain);
                return;
            }
        }
    }

    /// After a read that turned the connection into a WebSocket (or a stream) and filled the
    /// receive buffer (or carried the peer's FIN): frame bytes or the EOF may still wait, so
    /// read them before the next poll as `read_frames` does (BAD_INPUTS 11: pipelined frames
    /// are not lost or stalled).
    fn read_rest_later(&mut self, key: usize, short: bool, drain: bool) {
        if short && !drain {
            return;
        }
        if let Some(conn) = self.shard.conns.get_mut(key)
            && !conn.flags.dead()
            && !conn.flags.queued_read()
        {
            conn.flags.set_queued_read(true);
            let t = self.shard.token(key);
            self.shard.readable.push(t);
        }
    }

    /// Handles `recv[start..end]`, bytes from the client of a connection that reads requests:
    /// heads, bodies, and the requests pipelined after them.
    pub(super) fn on_request_bytes(&mut self, key: usize, mut start: usize, end: usize) {
        let limits = HeadLimits {
            max_head_bytes: self.shard.cfg.max_head_bytes,
            max_request_line: self.shard.cfg.max_request_line,
        };
        let mut served = 0;
        while start < end {
            let conn = &self.shard.conns[key];
            if conn.flags.dead() || conn.flags.closing() || !matches!(conn.kind, Kind::Head) {
                // Refused, closed, or upgraded (the upgrade decoded what followed its head).
                return;
            }
            if served == self.shard.cfg.max_pipelined && conn.rx.is_none() {
                // BAD_INPUTS 69: more pipelined requests than the bound.
                debug!("refused (429): more than {served} pipelined requests");
                self.shard
                    .reject(key, 429, &[], &[], HandshakeFailure::Overload);
                return;
            }
            let Reactor { shard, recv, .. } = self;
            let conn = &mut shard.conns[key];
            match conn.rx.as_deref_mut() {
                None => {
                    let bytes = &recv[start..end];
                    let Some(hend) = http::find_head_end(bytes, 0) else {
                        if let Err(e) = http::check_incomplete(bytes, &limits) {
                            self.refuse(key, e);
                        } else {
                            conn.rx = Some(Box::new(Inbound::Head(bytes.to_vec())));
                            shard.count_input(bytes.len(), true);
                        }
                        return;
                    };
                    if let Err(e) = http::check_incomplete(&bytes[..hend], &limits) {
                        self.refuse(key, e);
                        return;
                    }
                    served += 1;
                    start = self.on_head(key, HeadAt::Recv(start, start + hend), start + hend, end);
                }
                Some(Inbound::Head(held)) => {
                    // A dribbled head: append, and scan only the new bytes for its end
                    // (BAD_INPUTS 9).
                    let before = held.len();
                    held.extend_from_slice(&recv[start..end]);
                    let found = http::find_head_end(held, before);
                    let checked = match found {
                        Some(hend) => http::check_incomplete(&held[..hend], &limits),
                        None => http::check_incomplete(held, &limits),
                    };
                    let total = held.len();
                    let head = match (found, checked) {
                        (Some(hend), Ok(())) => {
                            let mut h = std::mem::take(held);
                            h.truncate(hend);
                            conn.rx = None;
                            Some(h)
                        }
                        _ => None,
                    };
                    shard.count_input(end - start, true);
                    if let Err(e) = checked {
                        // The bytes stay in the connection until it goes.
                        self.refuse(key, e);
                        return;
                    }
                    let Some(head) = head else {
                        return;
                    };
                    shard.count_input(total, false);
                    // The head's end lies in this read (an earlier end would have been found by
                    // an earlier scan), so the bytes after it are the last of this read, still
                    // in place in `recv`.
                    let after = end - (total - head.len());
                    served += 1;
                    start = self.on_head(key, HeadAt::Held(head), after, end);
                }
                Some(Inbound::Body { .. }) => start = self.on_body_bytes(key, start, end),
                Some(Inbound::Pending(p)) => {
                    // The client sent more before the answer: keep it (pipelined frames), within
                    // bounds.
                    if p.rest.len() + (end - start) > shard.cfg.max_head_bytes {
                        debug!("closing: too many bytes before a pending upgrade's answer");
                        shard.kill(key);
                    } else {
                        p.rest.extend_from_slice(&recv[start..end]);
                        shard.count_input(end - start, true);
                    }
                    return;
                }
                Some(Inbound::Frames { .. }) => return,
            }
        }
    }

    /// A complete head, with `recv[after..end]` following it. Returns where the bytes of the
    /// next request start.
    fn on_head(&mut self, key: usize, head: HeadAt, after: usize, end: usize) -> usize {
        let asks = match self.classify(key, &head) {
            Ok(a) => a,
            Err(e) => {
                self.refuse(key, e);
                return end;
            }
        };
        let framing = match asks {
            Asks::Upgrade => {
                self.upgrade(key, head, after, end);
                return end;
            }
            Asks::Plain(f) => f,
        };
        let available = end - after;
        match framing {
            Framing::Length(n) if n <= available as u64 => {
                // The fast path: head and body where they were read.
                let n = n as usize;
                let Reactor {
                    shard,
                    handler,
                    recv,
                    ..
                } = self;
                answer(
                    shard,
                    handler,
                    key,
                    head.bytes(recv),
                    &recv[after..after + n],
                );
                after + n
            }
            Framing::Length(n) => {
                let head = head.into_vec(&self.recv);
                let body = self.recv[after..end].to_vec();
                self.shard.count_input(head.len() + body.len(), true);
                self.shard.conns[key].rx = Some(Box::new(Inbound::Body {
                    head,
                    body,
                    framing: BodyRead::Length(n - available as u64),
                }));
                end
            }
            Framing::Chunked => {
                let head = head.into_vec(&self.recv);
                self.shard.count_input(head.len(), true);
                self.shard.conns[key].rx = Some(Box::new(Inbound::Body {
                    head,
                    body: Vec::new(),
                    framing: BodyRead::Chunked(Chunked::default()),
                }));
                self.on_body_bytes(key, after, end)
            }
        }
    }

    /// Parses a head and checks it as an upgrade attempt or as a plain request.
    fn classify(&self, key: usize, head: &HeadAt) -> Result<Asks, HttpError> {
        let peer = self.shard.conns[key].peer_addr().map_err(|_| HttpError {
            status: 400,
            reason: "peer gone",
        })?;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let req = http::parse_head(head.bytes(&self.recv), &mut headers, peer)?;
        if req.is_upgrade_attempt() {
            http::check_upgrade(req)?;
            return Ok(Asks::Upgrade);
        }
        http::check_plain(&req)?;
        Ok(Asks::Plain(http::framing(
            &req,
            self.shard.cfg.max_body as u64,
        )?))
    }

    /// Reads body bytes of the request being received; returns where the next request starts.
    fn on_body_bytes(&mut self, key: usize, start: usize, end: usize) -> usize {
        let max = self.shard.cfg.max_body;
        let Reactor { shard, recv, .. } = self;
        let Some(Inbound::Body { body, framing, .. }) = shard.conns[key].rx.as_deref_mut() else {
            return end;
        };
        let input = &recv[start..end];
        let had = body.len();
        let (used, done) = match framing {
            BodyRead::Length(left) => {
                let take = input
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                body.extend_from_slice(&input[..take]);
                *left -= take as u64;
                (take, *left == 0)
            }
            BodyRead::Chunked(c) => match c.feed(input, body, max) {
                Ok(r) => r,
                Err(e) => {
                    self.refuse(key, e);
                    return end;
                }
            },
        };
        let grew = body.len() - had;
        shard.count_input(grew, true);
        if done {
            let rx = self.shard.conns[key].rx.take();
            if let Some(Inbound::Body { head, body, .. }) = rx.map(|b| *b) {
                self.shard.count_input(head.len() + body.len(), false);
                answer(&mut self.shard, &mut self.handler, key, &head, &body);
            }
        }
        start + used
    }

    /// Refuses a request that broke a rule before the application saw it.
    pub(super) fn refuse(&mut self, key: usize, e: HttpError) {
        if log::log_enabled!(log::Level::Debug) {
            let peer = self.shard.conns[key].peer_addr();
            debug!("refused {peer:?} ({}): {}", e.status, e.reason);
        }
        let why = HandshakeFailure::of_status(e.status);
        self.shard.reject(key, e.status, &[], &[], why);
    }
}
