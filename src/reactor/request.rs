//! A plain HTTP request on the WebSocket port: the application's `on_request` builds the
//! answer; the reactor writes it (or, for a streamed response, its head) and keeps the connection
//! for the next request, closes it, or turns it into a stream.

use log::debug;

use super::guard;
use super::lifecycle::call;
use crate::conn::{Kind, Mode, Stream};
use crate::handler::Handler;
use crate::http::{self, Body, MAX_HEADERS};
use crate::response::Response;
use crate::shard::Shard;

/// Answers the request whose head is `head` and body `body` (both checked already).
pub(super) fn answer<H: Handler>(
    shard: &mut Shard<H::Data>,
    handler: &mut H,
    key: usize,
    head: &[u8],
    body: &[u8],
) {
    let Ok(peer) = shard.conns[key].peer_addr() else {
        shard.kill(key);
        return;
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let Ok(req) = http::parse_head(head, &mut headers, peer) else {
        // Parsed once already: cannot happen; close rather than guess.
        shard.kill(key);
        return;
    };
    let req = req.with_body(body);
    if super::fallback::route(shard, handler, key, &req, head, body) {
        return;
    }
    let keep_alive = req.keep_alive() && !shard.bus.stopping();
    let head_only = req.method() == "HEAD";
    shard.reply.reset();
    let answered = guard::catch(shard, key, "on_request", |s| {
        handler.on_request(&req, &mut Response::new(s, key));
    });
    shard.stats.http_requests += 1;
    let keep_alive = if answered.is_none() {
        // The application panicked half-way: whatever it set is void; 500, then close.
        shard.reply.reset();
        shard.reply.status = 500;
        false
    } else {
        keep_alive
    };
    if log::log_enabled!(log::Level::Debug) {
        debug!(
            "{peer} {} {} -> {}",
            req.method(),
            req.path(),
            shard.reply.status
        );
    }
    let date = shard.date();
    let mut out = std::mem::take(&mut shard.http_scratch);
    out.clear();
    let reply = &mut shard.reply;
    if let Some(data) = reply.stream.take() {
        // A streamed response: the head, whatever body was set as the first chunk, then the
        // connection is the application's until either side ends it.
        http::write_head(
            &mut out,
            reply.status,
            &reply.headers,
            Body::Chunked,
            false,
            Some(&date),
        );
        if !head_only {
            http::write_chunk(&mut out, &reply.body);
        }
        shard.emit(key, &[&out]);
        shard.http_scratch = out;
        shard.clear_rx(key);
        shard.open(
            key,
            Kind::Stream(Stream {
                open: !head_only,
                reported: false,
                mode: Mode::Chunked,
                data,
            }),
        );
        if head_only {
            shard.linger(key);
            return;
        }
        call(shard, handler, key, "on_open", |h, ws| h.on_open(ws));
        return;
    }
    http::write_head(
        &mut out,
        reply.status,
        &reply.headers,
        Body::Length(reply.body.len()),
        keep_alive,
        Some(&date),
    );
    // A HEAD request gets the head alone (RFC 9110 §9.3.2).
    let body = std::mem::take(&mut reply.body);
    let sent: &[u8] = if head_only { &[] } else { &body };
    shard.emit(key, &[&out, sent]);
    shard.reply.body = body;
    shard.http_scratch = out;
    if keep_alive {
        shard.await_next_request(key);
    } else {
        shard.linger(key);
    }
}
