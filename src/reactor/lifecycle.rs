//! The end of a connection, as the application sees it: a session's decision carried out, and
//! `on_close` called once for a connection the application was shown. Free functions over the
//! shard and the handler, so that they serve inside the decoder's callback as well as in the
//! loop.

use log::{debug, trace};

use super::guard;
use crate::conn::{Kind, Mode};
use crate::handler::Handler;
use crate::id::ConnId;
use crate::proto::close;
use crate::proto::session::Effects;
use crate::shard::Shard;
use crate::stats::ReactorStats;
use crate::ws::Ws;

/// Tells the application connection `key` closed (`on_close`), counts it, and logs it at
/// debug level.
pub(super) fn report<H: Handler>(
    shard: &mut Shard<H::Data>,
    handler: &mut H,
    key: usize,
    code: u16,
    reason: &[u8],
) {
    shard.stats.closed[ReactorStats::close_slot(code)] += 1;
    if log::log_enabled!(log::Level::Debug) {
        let id = ConnId {
            reactor: shard.reactor,
            token: shard.token(key),
        };
        let peer = shard.conns[key].peer_addr();
        debug!(
            "close {id} {peer:?}: {code} {:?}",
            String::from_utf8_lossy(reason)
        );
    }
    // A panic here is logged and counted; the connection is going anyway.
    let _ = guard::catch(shard, key, "on_close", |s| {
        handler.on_close(&mut Ws::new(s, key), code, reason);
    });
}

/// A callback for connection `key` panicked: the application hears nothing more of it (no
/// `on_close`); a WebSocket is failed with 1011 (RFC 6455 §7.4.1: an unexpected condition), a
/// streamed response ends. A request being answered is the caller's (it answers 500).
pub(super) fn panicked<H: Handler>(shard: &mut Shard<H::Data>, handler: &mut H, key: usize) {
    if shard.conns[key].flags.dead() {
        return;
    }
    match &mut shard.conns[key].kind {
        Kind::WebSocket(ws) => ws.session.suppress_report(),
        Kind::Stream(st) => st.reported = true,
        Kind::Head => {}
    }
    fail(shard, handler, key, 1011, "internal error");
}

/// Runs handler callback `f` for connection `key` (`what`, for the log) under the panic
/// guard; after a panic the connection goes ([`panicked`]). Returns whether it ran to its end.
pub(super) fn call<H: Handler>(
    shard: &mut Shard<H::Data>,
    handler: &mut H,
    key: usize,
    what: &str,
    f: impl FnOnce(&mut H, &mut Ws<'_, H::Data>),
) -> bool {
    let ok = guard::catch(shard, key, what, |s| f(handler, &mut Ws::new(s, key))).is_some();
    if !ok {
        panicked(shard, handler, key);
    }
    ok
}

/// Carries out `fx` for connection `key`: the report to `on_close` first (sends are refused by
/// then: the session is closed), then timers and TCP.
pub(super) fn settle<H: Handler>(
    shard: &mut Shard<H::Data>,
    handler: &mut H,
    key: usize,
    fx: Effects<'_>,
) {
    let r = fx.report;
    let fx = Effects { report: None, ..fx };
    if let Some(r) = r {
        report(shard, handler, key, r.code, r.reason);
    }
    let _ = shard.apply(key, fx);
}

/// Fails connection `key` (RFC 6455 §7.1.7) with `code` and `why`: a Close if ours was not sent,
/// `on_close`, then TCP drains. A streamed response ends with its last chunk. A connection the
/// application has not seen is closed.
pub(super) fn fail<H: Handler>(
    shard: &mut Shard<H::Data>,
    handler: &mut H,
    key: usize,
    code: u16,
    why: &str,
) {
    if matches!(shard.conns[key].kind, Kind::Stream(_)) {
        end_stream(shard, handler, key, code, why, false);
        return;
    }
    match shard.with_session(key, |s, out| s.fail(code, why, out)) {
        Some(fx) => settle(shard, handler, key, fx),
        None => shard.kill(key),
    }
}

/// TCP is gone or must go now (`why`: the peer's FIN, an I/O error, a deadline): 1006 for the
/// application unless the close was over (BAD_INPUTS 42), then the slot is freed.
pub(super) fn end<H: Handler>(shard: &mut Shard<H::Data>, handler: &mut H, key: usize, why: &str) {
    trace!("connection ends: {why}");
    if shard.conns[key].flags.dead() {
        return;
    }
    if matches!(shard.conns[key].kind, Kind::Stream(_)) {
        end_stream(shard, handler, key, close::ABNORMAL, why, true);
        return;
    }
    match shard.conns[key].session() {
        Some(mut s) => {
            let fx = s.on_eof(why);
            if let Some(ws) = shard.conns[key].ws_mut() {
                ws.session = s;
            }
            settle(shard, handler, key, fx);
        }
        None => shard.kill(key),
    }
}

/// A streamed response ends (`code`: the application's, or 1006 when the client went away):
/// the last chunk if it can still go, `on_close` once, then TCP closes.
pub(super) fn end_stream<H: Handler>(
    shard: &mut Shard<H::Data>,
    handler: &mut H,
    key: usize,
    code: u16,
    why: &str,
    now: bool,
) {
    if !now {
        shard.end_stream(key, code, why);
    }
    let first = match &mut shard.conns[key].kind {
        Kind::Stream(st) => {
            st.open = false;
            !std::mem::replace(&mut st.reported, true)
        }
        _ => false,
    };
    if first {
        report(shard, handler, key, code, why.as_bytes());
    }
    if !now && shard.conns[key].mode() == Some(Mode::Poll) {
        // The close event waits for the client's next poll (or the session timeout).
        shard.poll_closing(key);
        return;
    }
    if now {
        shard.kill(key);
    } else {
        shard.linger(key);
    }
}
