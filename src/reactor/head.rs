//! The first kind of every connection: reading its HTTP head, then the upgrade (RFC 6455 §4.2):
//! validate, ask the handler, answer 101 or an error, and decode the frames that came with the
//! head.

use std::io;

use log::{debug, trace, warn};

use super::Reactor;
use crate::conn::{Inbound, WebSocket};
use crate::deflate::Agreement;
use crate::deflate::negotiate;
use crate::handler::{Handler, Upgrade};
use crate::http::{self, HeadLimits, MAX_HEADERS};
use crate::proto::session::Session;
use crate::transport;
use crate::ws::Ws;

impl<H: Handler> Reactor<H> {
    /// Reads the HTTP head. Complete heads found in one read are parsed where they lie.
    pub(super) fn read_head(&mut self, key: usize, drain: bool) {
        let limits = HeadLimits {
            max_head_bytes: self.shard.cfg.max_head_bytes,
            max_request_line: self.shard.cfg.max_request_line,
        };
        loop {
            let Reactor { shard, recv, .. } = self;
            let conn = &mut shard.conns[key];
            let n = match transport::recv(conn, &mut recv[..]) {
                Ok(0) => {
                    trace!("handshake: peer closed");
                    shard.kill(key);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    debug!("handshake read: {e}");
                    shard.kill(key);
                    return;
                }
            };
            let held = match conn.rx.as_deref() {
                Some(Inbound::Head(h)) => h.len(),
                _ => 0,
            };
            if held == 0 {
                if let Some(end) = http::find_head_end(&recv[..n], 0) {
                    if let Err(e) = http::check_incomplete(&recv[..end], &limits) {
                        shard.reject(key, e.status, &[]);
                        return;
                    }
                    self.upgrade(key, None, end, n);
                    self.read_rest_later(key, n, drain);
                    return;
                }
                if let Err(e) = http::check_incomplete(&recv[..n], &limits) {
                    shard.reject(key, e.status, &[]);
                    return;
                }
                conn.rx = Some(Box::new(Inbound::Head(recv[..n].to_vec())));
                continue;
            }
            // A dribbled head: append, and scan only the new bytes for its end (BAD_INPUTS 9).
            let Some(Inbound::Head(head)) = conn.rx.as_deref_mut() else {
                return;
            };
            head.extend_from_slice(&recv[..n]);
            let found = http::find_head_end(head, held);
            let checked = match found {
                Some(end) => http::check_incomplete(&head[..end], &limits),
                None => http::check_incomplete(head, &limits),
            };
            if let Err(e) = checked {
                shard.reject(key, e.status, &[]);
                return;
            }
            if let Some(end) = found {
                let head = std::mem::take(head);
                conn.rx = None;
                // Bytes after the head are frames (BAD_INPUTS 11). The head's end lies in this
                // read (an earlier end would have been found by an earlier scan), so those bytes
                // are the last `extra` bytes of the read, still in place in `recv`: decode them
                // there.
                let extra = head.len() - end;
                debug_assert!(extra < n);
                self.upgrade(key, Some(&head[..end]), n - extra, n);
                self.read_rest_later(key, n, drain);
                return;
            }
        }
    }

    /// After an upgrade whose read filled the receive buffer (or whose event carried the peer's
    /// FIN): frame bytes or the EOF may still wait in the socket, and edge-triggered readiness
    /// will not report them again, so read them before the next poll as `read_frames` does
    /// (BAD_INPUTS 11: pipelined frames are not lost or stalled).
    fn read_rest_later(&mut self, key: usize, n: usize, drain: bool) {
        if n < self.recv.len() && !drain {
            return;
        }
        if let Some(conn) = self.shard.conns.get_mut(key)
            && !conn.flags.dead()
            && conn.ws().is_some()
            && !conn.flags.queued_read()
        {
            conn.flags.set_queued_read(true);
            let t = self.shard.token(key);
            self.shard.readable.push(t);
        }
    }

    /// Validates the head, asks the handler, answers 101 (or an error), then decodes any frame
    /// bytes that came with the head: `recv[rest_start..rest_end]`. `head` is `None` when the head
    /// is `recv[..rest_start]`.
    fn upgrade(&mut self, key: usize, head: Option<&[u8]>, rest_start: usize, rest_end: usize) {
        let Reactor {
            shard,
            recv,
            handler,
            ..
        } = self;
        let Ok(peer) = shard.conns[key].socket.peer_addr() else {
            shard.kill(key);
            return;
        };
        let head_bytes: &[u8] = head.unwrap_or(&recv[..rest_start]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let req = match http::parse_request(head_bytes, &mut headers, peer) {
            Ok(r) => r,
            Err(e) => {
                debug!("upgrade refused ({}): {}", e.status, e.reason);
                shard.reject(key, e.status, &[]);
                return;
            }
        };
        if let Some(allowed) = shard.cfg.allowed_origins.as_ref() {
            let ok = req
                .origin()
                .is_some_and(|o| allowed.iter().any(|a| a.eq_ignore_ascii_case(o)));
            if !ok {
                debug!("upgrade refused (403): origin {:?}", req.origin());
                shard.reject(key, 403, &[]);
                return;
            }
        }
        let accept = match handler.on_upgrade(&req) {
            Upgrade::Accept(a) => a,
            Upgrade::Reject { status, headers } => {
                shard.reject(key, status, &headers);
                return;
            }
        };
        // RFC 6455 §4.2.2: the selected subprotocol must be one the client offered.
        let protocol = accept.protocol.as_deref().filter(|p| {
            let offered = req.protocols().any(|o| o == *p);
            if !offered {
                warn!("handler chose subprotocol {p:?}, which the client did not offer; omitted");
            }
            offered
        });
        // RFC 7692: the first acceptable permessage-deflate offer, if compression is on.
        let agreed = if shard.cfg.deflate.enabled {
            negotiate::negotiate(req.extensions(), &shard.cfg.deflate)
        } else {
            None
        };
        // Reused per-reactor buffers: a handshake allocates nothing that outlives it.
        let mut ext = std::mem::take(&mut shard.ext_scratch);
        ext.clear();
        if let Some(a) = &agreed {
            a.response(&mut ext);
        }
        let mut answer = std::mem::take(&mut shard.http_scratch);
        answer.clear();
        http::write_accept(
            &mut answer,
            req.key(),
            protocol,
            agreed.is_some().then_some(ext.as_str()),
            &accept.headers,
        );
        shard.open(
            key,
            WebSocket {
                session: Session::new(),
                deflate: agreed.as_ref().map(Agreement::pack),
                data: accept.data,
            },
        );
        shard.emit(key, &[&answer]);
        shard.http_scratch = answer;
        shard.ext_scratch = ext;
        shard.touch(key);
        handler.on_open(&mut Ws::new(shard, key));
        if rest_end > rest_start {
            self.decode(key, rest_start, rest_end);
        }
    }
}
