//! The fallback transports in the reactor: a request that opens an SSE or long-poll session
//! (the application's `on_upgrade` decides, as for a WebSocket), a poll, and an uplink POST.
//! A poll or a POST for a session of another reactor moves there with its connection; a poll
//! with nothing to answer parks its socket in the session's slot until an event or the poll
//! timeout. The wire format is in [`crate::fallback`].

use log::{debug, trace};

use super::{guard, lifecycle};
use crate::conn::{Kind, Mode, Stream};
use crate::fallback::event;
use crate::fallback::query::{self, Asks};
use crate::fallback::sid::Sid;
use crate::fallback::uplink::{self, Frame};
use crate::handler::Handler;
use crate::http::{self, Body, Request};
use crate::mailbox::Cmd;
use crate::message::Message;
use crate::shard::Shard;
use crate::stats::HandshakeFailure;
use crate::upgrade::Upgrade;

/// Answers `req` (on connection `key`, with its `head` and `body` bytes) if it is a fallback
/// request or asks for the browser client; false when it is neither.
pub(super) fn route<H: Handler>(
    shard: &mut Shard<H::Data>,
    handler: &mut H,
    key: usize,
    req: &Request<'_>,
    head: &[u8],
    body: &[u8],
) -> bool {
    if !shard.cfg.fallback {
        return false;
    }
    let keep_alive = req.keep_alive() && !shard.bus.stopping();
    let asks = query::classify(req.method(), req.query(), req.header("Accept"));
    let (sid, ack) = match asks {
        Asks::None => {
            if req.method() == "GET" && shard.cfg.client_path.as_deref() == Some(req.path()) {
                serve_client(shard, key, keep_alive);
                return true;
            }
            return false;
        }
        Asks::OpenSse => {
            open(shard, handler, key, req, Mode::Sse);
            return true;
        }
        Asks::OpenPoll => {
            open(shard, handler, key, req, Mode::Poll);
            return true;
        }
        Asks::Poll { sid, ack } => (sid, Some(ack)),
        Asks::Post { sid } => (sid, None),
    };
    let Some(sid) = Sid::decode(sid) else {
        shard.stats.http_requests += 1;
        debug!(
            "fallback {} refused (404): unknown session id",
            req.method()
        );
        refuse(shard, key, 404, "unknown session\n", keep_alive);
        return true;
    };
    if sid.reactor != shard.reactor {
        shard.stats.fallback_handovers += 1;
        hand_off(shard, key, sid.reactor, head, body);
        return true;
    }
    shard.stats.http_requests += 1;
    let session = (sid.epoch == shard.epoch_of(sid.token.generation()))
        .then(|| shard.lookup(sid.token))
        .flatten()
        .filter(|&s| matches!(shard.conns[s].mode(), Some(Mode::Sse | Mode::Poll)));
    let Some(s) = session else {
        debug!("fallback {} refused (410): session gone", req.method());
        refuse(shard, key, 410, "session closed\n", keep_alive);
        return true;
    };
    match ack {
        Some(ack) => poll(shard, key, s, ack, keep_alive),
        None => post(shard, handler, key, s, body, keep_alive),
    }
    true
}

/// A short plain-text refusal; the connection stays when it may.
fn refuse<D>(shard: &mut Shard<D>, key: usize, status: u16, why: &str, keep_alive: bool) {
    shard.respond(key, status, why.as_bytes(), keep_alive);
}

/// Serves the browser client.
fn serve_client<D>(shard: &mut Shard<D>, key: usize, keep_alive: bool) {
    shard.stats.http_requests += 1;
    let js = crate::fallback::CLIENT_JS.as_bytes();
    let headers = [
        (
            "Content-Type".to_owned(),
            "text/javascript; charset=utf-8".to_owned(),
        ),
        ("Cache-Control".to_owned(), "max-age=300".to_owned()),
    ];
    let date = shard.date();
    let mut out = Vec::with_capacity(256);
    http::write_head(
        &mut out,
        200,
        &headers,
        Body::Length(js.len()),
        keep_alive,
        Some(&date),
    );
    shard.emit(key, &[&out, js]);
    if keep_alive {
        shard.await_next_request(key);
    } else {
        shard.linger(key);
    }
}

/// Moves the connection, with its request, to the reactor that owns the session.
fn hand_off<D>(shard: &mut Shard<D>, key: usize, reactor: u32, head: &[u8], body: &[u8]) {
    trace!("fallback request for reactor {reactor}: handed over");
    let Some(m) = shard.take_socket(key) else {
        // Unsent bytes of an earlier answer would have to move too: rare (pipelining).
        refuse(shard, key, 503, "busy, try again\n", false);
        return;
    };
    let cmd = Cmd::Adopt {
        socket: Box::new(m),
        head: head.to_vec(),
        body: body.to_vec(),
    };
    if shard.bus.post(reactor, cmd).is_err() {
        debug!("fallback request for reactor {reactor}, which is gone: closed");
    }
}

/// Opens a session of `mode` if the application accepts the request.
fn open<H: Handler>(
    shard: &mut Shard<H::Data>,
    handler: &mut H,
    key: usize,
    req: &Request<'_>,
    mode: Mode,
) {
    let keep_alive = req.keep_alive() && !shard.bus.stopping();
    if let Some(allowed) = shard.cfg.allowed_origins.as_ref() {
        // A browser sends no Origin with a same-origin GET (the Fetch standard), but says so
        // in Sec-Fetch-Site; a cross-origin one always sends Origin.
        let same_origin = req.origin().is_none()
            && req
                .header("Sec-Fetch-Site")
                .is_some_and(|v| v.eq_ignore_ascii_case(b"same-origin"));
        let ok = same_origin
            || req
                .origin()
                .is_some_and(|o| allowed.iter().any(|a| a.eq_ignore_ascii_case(o)));
        if !ok {
            debug!("fallback session refused (403): origin {:?}", req.origin());
            shard.reject(key, 403, &[], &[], HandshakeFailure::Origin);
            return;
        }
    }
    if mode == Mode::Poll
        && (shard.polls.sessions() >= shard.cfg.max_poll_sessions || shard.over_budget(0))
    {
        debug!("long-poll session refused (503): max_poll_sessions or the memory budget");
        shard.reject(key, 503, &[], &[], HandshakeFailure::Overload);
        return;
    }
    let answer = guard::catch(shard, key, "on_upgrade", |_| handler.on_upgrade(req));
    let accept = match answer {
        None => {
            shard.reject(key, 500, &[], &[], HandshakeFailure::Rejected);
            return;
        }
        Some(Upgrade::Accept(a)) => a,
        Some(Upgrade::Reject {
            status,
            headers,
            body,
        }) => {
            debug!("fallback session refused by the application ({status})");
            shard.reject(key, status, &headers, &body, HandshakeFailure::Rejected);
            return;
        }
        Some(Upgrade::Pending) => {
            debug!(
                "fallback session refused (503): answers later (Upgrade::Pending) are for WebSockets"
            );
            shard.reject(key, 503, &[], &[], HandshakeFailure::Rejected);
            return;
        }
    };
    let reactor = shard.reactor;
    match mode {
        Mode::Sse => {
            let token = shard.token(key);
            let sid = Sid {
                reactor,
                token,
                epoch: shard.epoch_of(token.generation()),
            }
            .encode();
            let mut headers = accept.headers;
            for (n, v) in [
                ("Content-Type", "text/event-stream"),
                ("Cache-Control", "no-cache"),
                ("X-Accel-Buffering", "no"),
            ] {
                headers.push((n.to_owned(), v.to_owned()));
            }
            let date = shard.date();
            let mut out = Vec::with_capacity(320);
            http::write_head(
                &mut out,
                200,
                &headers,
                Body::UntilClose,
                false,
                Some(&date),
            );
            // The first event at once: a client that sees it knows nothing buffers the stream.
            event::session(&sid, &mut out);
            shard.emit(key, &[&out]);
            shard.clear_rx(key);
            shard.open(
                key,
                Kind::Stream(Stream {
                    open: true,
                    reported: false,
                    mode: Mode::Sse,
                    data: accept.data,
                }),
            );
            let beat = shard.cfg.sse_heartbeat;
            shard.arm(key, beat);
            lifecycle::call(shard, handler, key, "on_open", |h, ws| h.on_open(ws));
        }
        Mode::Poll => {
            let s = shard.new_poll_session(accept.data);
            let token = shard.token(s);
            let sid = Sid {
                reactor,
                token,
                epoch: shard.epoch_of(token.generation()),
            }
            .encode();
            let mut body = Vec::with_capacity(72);
            event::session(&sid, &mut body);
            shard.respond(key, 200, &body, keep_alive);
            lifecycle::call(shard, handler, s, "on_open", |h, ws| h.on_open(ws));
        }
        Mode::Chunked => {}
    }
}

/// A poll for session `s` on connection `key`, acknowledging `ack`.
fn poll<D>(shard: &mut Shard<D>, key: usize, s: usize, ack: Option<u64>, keep_alive: bool) {
    if shard.conns[s].mode() != Some(Mode::Poll) {
        refuse(shard, key, 400, "not a long-poll session\n", keep_alive);
        return;
    }
    let Some(ack) = ack else {
        refuse(shard, key, 400, "myriad-ack is not a number\n", keep_alive);
        return;
    };
    if shard.poll_ack(s, ack).is_err() {
        refuse(
            shard,
            key,
            400,
            "myriad-ack names an event not sent\n",
            keep_alive,
        );
        return;
    }
    if shard.conns[s].socket.is_some() {
        // One session polled from two places: the newer poll wins.
        debug!("poll displaced by a newer one (409)");
        shard.unpark(s, 409);
    }
    if shard.poll_has_events(s) {
        shard.poll_answer(key, s, keep_alive);
    } else if !shard.conns[s].is_open() {
        // Closed, and its close event acknowledged.
        shard.kill(s);
        refuse(shard, key, 410, "session closed\n", keep_alive);
    } else if shard.conns[key].tx.is_some() {
        // An earlier answer on this connection has not left: its bytes would wait in the
        // session's slot. Rare (a client that sends before it reads).
        refuse(shard, key, 503, "busy, poll again\n", false);
    } else {
        shard.park(key, s, keep_alive);
    }
}

/// An uplink POST for session `s` on connection `key`.
fn post<H: Handler>(
    shard: &mut Shard<H::Data>,
    handler: &mut H,
    key: usize,
    s: usize,
    body: &[u8],
    keep_alive: bool,
) {
    if !shard.conns[s].is_open() {
        refuse(shard, key, 410, "session closed\n", keep_alive);
        return;
    }
    let mut frames = Vec::new();
    if let Err(why) = uplink::parse(body, &mut frames) {
        debug!("uplink refused (400): {why}");
        refuse(shard, key, 400, &format!("{why}\n"), keep_alive);
        return;
    }
    let queued = shard.conns[s].buffered() + shard.poll_queued(s);
    if queued > 0 && queued + body.len() > shard.cfg.max_backpressure {
        // The client sends and does not read: the queue has no room for as much again (an
        // echo of this body, say). It waits until it has read.
        debug!("uplink refused (429): the session's queue is full");
        refuse(shard, key, 429, "the session's queue is full\n", keep_alive);
        return;
    }
    for f in frames {
        if !shard.conns.get(s).is_some_and(|c| c.is_open()) {
            break;
        }
        match f {
            Frame::Text(t) => {
                shard.stats.messages_received += 1;
                lifecycle::call(shard, handler, s, "on_message", |h, ws| {
                    h.on_message(ws, Message::Text(t));
                });
            }
            Frame::Binary(b) => {
                shard.stats.messages_received += 1;
                lifecycle::call(shard, handler, s, "on_message", |h, ws| {
                    h.on_message(ws, Message::Binary(b));
                });
            }
            // The client closed it: the close event back (its echo, as a WebSocket's Close is
            // answered), `on_close`, then the session ends.
            Frame::Close(code, reason) => {
                lifecycle::end_stream(shard, handler, s, code, reason, false);
            }
        }
    }
    shard.respond(key, 204, b"", keep_alive);
}

/// Answers the polls parked on sessions that have events now.
pub(super) fn answer_ready<D>(shard: &mut Shard<D>) {
    while let Some(s) = shard.poll_ready.pop() {
        let parked = shard
            .conns
            .get(s)
            .is_some_and(|c| !c.flags.dead() && c.socket.is_some() && c.mode() == Some(Mode::Poll));
        if parked && shard.poll_has_events(s) {
            shard.unpark(s, 200);
        }
    }
}

/// A fallback session's deadline passed: an SSE stream's heartbeat is due; a parked poll's
/// wait is over (answered empty); a long-poll session's client did not come back (1006).
pub(super) fn expire<H: Handler>(shard: &mut Shard<H::Data>, handler: &mut H, key: usize) {
    let conn = &shard.conns[key];
    match conn.mode() {
        Some(Mode::Sse) if conn.is_open() => {
            shard.emit(key, &[event::HEARTBEAT]);
            let beat = shard.cfg.sse_heartbeat;
            shard.arm(key, beat);
        }
        Some(Mode::Poll) if conn.socket.is_some() => shard.unpark(key, 200),
        Some(Mode::Poll) if conn.is_open() => {
            debug!("long-poll session closed: no poll for the session timeout");
            lifecycle::end(shard, handler, key, "the poller did not come back");
        }
        Some(Mode::Poll) => shard.kill(key),
        _ => {}
    }
}
