//! The upgrade (RFC 6455 §4.2): origin policy, the application's answer (now, or later from
//! another thread), the 101 with the negotiated subprotocol and permessage-deflate, then the
//! frames that came with the head.

use std::any::Any;

use log::{debug, error, warn};

use super::Reactor;
use super::head::HeadAt;
use super::{guard, lifecycle};
use crate::conn::{Inbound, Kind, PendingUpgrade, WebSocket};
use crate::deflate::Agreement;
use crate::deflate::negotiate::{self, Agreed};
use crate::handler::Handler;
use crate::http::{self, MAX_HEADERS, Ticket};
use crate::id::ConnId;
use crate::proto::session::Session;
use crate::stats::HandshakeFailure;
use crate::upgrade::{Accept, Upgrade};

impl<H: Handler> Reactor<H> {
    /// Asks the handler about a valid upgrade request, then opens the WebSocket, refuses it, or
    /// leaves it pending. `recv[after..end]` are bytes that came after the head (frames).
    pub(super) fn upgrade(&mut self, key: usize, head: HeadAt, after: usize, end: usize) {
        let Reactor {
            shard,
            recv,
            handler,
            ..
        } = self;
        let Ok(peer) = shard.conns[key].peer_addr() else {
            shard.kill(key);
            return;
        };
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let req = match http::parse_request(head.bytes(recv), &mut headers, peer) {
            Ok(r) => r,
            Err(e) => {
                debug!("upgrade refused ({}): {}", e.status, e.reason);
                shard.reject(
                    key,
                    e.status,
                    &[],
                    &[],
                    HandshakeFailure::of_status(e.status),
                );
                return;
            }
        };
        if let Some(allowed) = shard.cfg.allowed_origins.as_ref() {
            let ok = req
                .origin()
                .is_some_and(|o| allowed.iter().any(|a| a.eq_ignore_ascii_case(o)));
            if !ok {
                debug!("upgrade refused (403): origin {:?}", req.origin());
                shard.reject(key, 403, &[], &[], HandshakeFailure::Origin);
                return;
            }
        }
        let ticket = Ticket(ConnId {
            reactor: shard.reactor,
            token: shard.token(key),
        });
        let req = req.with_ticket(ticket);
        // RFC 7692: the first acceptable permessage-deflate offer, if compression is on.
        let agreed = if shard.cfg.deflate.enabled {
            negotiate::negotiate(req.extensions(), &shard.cfg.deflate)
        } else {
            None
        };
        let answer = guard::catch(shard, key, "on_upgrade", |_| handler.on_upgrade(&req));
        let Some(answer) = answer else {
            shard.reject(key, 500, &[], &[], HandshakeFailure::Rejected);
            return;
        };
        let accept = match answer {
            Upgrade::Accept(a) => a,
            Upgrade::Reject {
                status,
                headers,
                body,
            } => {
                debug!("upgrade refused by the application ({status}) from {peer}");
                shard.reject(key, status, &headers, &body, HandshakeFailure::Rejected);
                return;
            }
            Upgrade::Pending => {
                let mut k = [0u8; 24];
                k.copy_from_slice(&req.key()[..24]);
                let offered = req.protocols().collect::<Vec<_>>().join(",");
                shard.conns[key].rx = Some(Box::new(Inbound::Pending(Box::new(PendingUpgrade {
                    key: k,
                    offered,
                    agreed,
                    rest: recv[after..end].to_vec(),
                }))));
                shard.count_input(end - after, true);
                return;
            }
        };
        let protocol = choose(accept.protocol.as_deref(), req.protocols());
        let k = req.key();
        let mut key_bytes = [0u8; 24];
        key_bytes.copy_from_slice(&k[..24]);
        self.open_websocket(key, &key_bytes, protocol, agreed, accept);
        if end > after && self.shard.conns.get(key).is_some_and(|c| !c.flags.dead()) {
            self.decode(key, after, end);
        }
    }

    /// Answers a pending upgrade with the application's `accept` (from `Cmd::Accept`).
    pub(super) fn accept_pending(&mut self, key: usize, accept: Box<dyn Any + Send>) {
        let Some(pending) = self.take_pending(key) else {
            return;
        };
        let accept = match accept.downcast::<Accept<H::Data>>() {
            Ok(a) => *a,
            Err(_) => {
                error!(
                    "ServerHandle::accept with data of another type than the handler's Data: \
                     refusing the upgrade"
                );
                self.shard
                    .reject(key, 500, &[], &[], HandshakeFailure::Rejected);
                return;
            }
        };
        let offered: Vec<&str> = pending
            .offered
            .split(',')
            .filter(|p| !p.is_empty())
            .collect();
        let protocol = choose(accept.protocol.as_deref(), offered.iter().copied());
        self.open_websocket(key, &pending.key, protocol, pending.agreed, accept);
        let n = pending.rest.len().min(self.recv.len());
        if n > 0 && self.shard.conns.get(key).is_some_and(|c| !c.flags.dead()) {
            self.recv[..n].copy_from_slice(&pending.rest[..n]);
            self.decode(key, 0, n);
        }
    }

    /// Refuses a pending upgrade (from `Cmd::Reject`).
    pub(super) fn reject_pending(
        &mut self,
        key: usize,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) {
        if self.take_pending(key).is_some() {
            self.shard
                .reject(key, status, headers, body, HandshakeFailure::Rejected);
        }
    }

    fn take_pending(&mut self, key: usize) -> Option<Box<PendingUpgrade>> {
        let conn = &mut self.shard.conns[key];
        if !matches!(conn.rx.as_deref(), Some(Inbound::Pending(_))) {
            return None;
        }
        match conn.rx.take().map(|b| *b) {
            Some(Inbound::Pending(p)) => {
                self.shard.count_input(p.rest.len(), false);
                Some(p)
            }
            _ => None,
        }
    }

    /// Writes the 101 and opens the WebSocket: `on_open`.
    fn open_websocket(
        &mut self,
        key: usize,
        ws_key: &[u8],
        protocol: Option<String>,
        agreed: Option<Agreed>,
        accept: Accept<H::Data>,
    ) {
        let shard = &mut self.shard;
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
            ws_key,
            protocol.as_deref(),
            agreed.is_some().then_some(ext.as_str()),
            &accept.headers,
        );
        shard.open(
            key,
            Kind::WebSocket(WebSocket {
                session: Session::new(),
                deflate: agreed.as_ref().map(Agreement::pack),
                data: accept.data,
            }),
        );
        shard.emit(key, &[&answer]);
        shard.http_scratch = answer;
        shard.ext_scratch = ext;
        shard.touch(key);
        if log::log_enabled!(log::Level::Debug) {
            let id = ConnId {
                reactor: shard.reactor,
                token: shard.token(key),
            };
            debug!("open {id} {:?}", shard.conns[key].peer_addr());
        }
        lifecycle::call(
            &mut self.shard,
            &mut self.handler,
            key,
            "on_open",
            |h, ws| {
                h.on_open(ws);
            },
        );
    }
}

/// RFC 6455 §4.2.2: the selected subprotocol must be one the client offered.
fn choose<'a>(chosen: Option<&str>, mut offered: impl Iterator<Item = &'a str>) -> Option<String> {
    let p = chosen?;
    if offered.any(|o| o == p) {
        Some(p.to_owned())
    } else {
        warn!("handler chose subprotocol {p:?}, which the client did not offer; omitted");
        None
    }
}
