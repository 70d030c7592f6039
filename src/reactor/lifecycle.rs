//! The end of a connection, as the application sees it: a session's decision carried out, and
//! `on_close` called once for a WebSocket that opened. Free functions over the shard and the
//! handler, so that they serve inside the decoder's callback as well as in the loop.

use log::trace;

use crate::handler::Handler;
use crate::proto::session::Effects;
use crate::shard::Shard;
use crate::ws::Ws;

/// Carries out `fx` for connection `key`: the report to `on_close` first (sends are refused by
/// then: the session is closed), then timers and TCP.
pub(super) fn settle<H: Handler>(
    shard: &mut Shard<H::Data>,
    handler: &mut H,
    key: usize,
    fx: Effects<'_>,
) {
    let report = fx.report;
    let fx = Effects { report: None, ..fx };
    if let Some(r) = report {
        handler.on_close(&mut Ws::new(shard, key), r.code, r.reason);
    }
    let _ = shard.apply(key, fx);
}

/// Fails connection `key` (RFC 6455 §7.1.7) with `code` and `why`: a Close if ours was not sent,
/// `on_close`, then TCP drains. A connection that is no WebSocket yet is closed.
pub(super) fn fail<H: Handler>(
    shard: &mut Shard<H::Data>,
    handler: &mut H,
    key: usize,
    code: u16,
    why: &str,
) {
    match shard.with_session(key, |s, out| s.fail(code, why, out)) {
        Some(fx) => settle(shard, handler, key, fx),
        None => shard.kill(key),
    }
}

/// TCP is gone or must go now (`why`: the peer's FIN, an I/O error, a deadline): 1006 for the
/// application unless the close handshake was over (BAD_INPUTS 42), then the slot is freed.
pub(super) fn end<H: Handler>(shard: &mut Shard<H::Data>, handler: &mut H, key: usize, why: &str) {
    trace!("connection ends: {why}");
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
