//! The application's side: the [`Handler`] trait, what it is shown and what it answers.

use crate::http::Request;
use crate::message::Message;
use crate::response::Response;
use crate::upgrade::Upgrade;
use crate::ws::Ws;

/// The application. Each reactor thread owns a clone, so callbacks take `&mut self` and need no
/// locks; state shared between reactors is the application's business.
///
/// Callbacks run on the reactor thread: they must not block.
pub trait Handler: Clone + Send + 'static {
    /// Per-connection data.
    type Data: 'static;

    /// An upgrade request arrived and passed RFC 6455 §4.2.1. Accept it (optionally with a
    /// subprotocol and headers), reject it with a status, or leave it pending and answer from
    /// another thread (an authorization service, say).
    fn on_upgrade(&mut self, req: &Request<'_>) -> Upgrade<Self::Data>;

    /// A plain HTTP request (not an upgrade) arrived on the WebSocket port, with its body
    /// ([`Request::body`], at most `Config::max_body` bytes). The default answers 404.
    fn on_request(&mut self, req: &Request<'_>, res: &mut Response<'_, Self::Data>) {
        let _ = (req, res);
    }

    /// The connection is open.
    fn on_open(&mut self, ws: &mut Ws<'_, Self::Data>) {
        let _ = ws;
    }

    /// A complete message. The slice is valid only during the call.
    fn on_message(&mut self, ws: &mut Ws<'_, Self::Data>, msg: Message<'_>);

    /// A ping arrived; the pong has already been queued.
    fn on_ping(&mut self, ws: &mut Ws<'_, Self::Data>, payload: &[u8]) {
        let _ = (ws, payload);
    }

    /// A pong arrived.
    fn on_pong(&mut self, ws: &mut Ws<'_, Self::Data>, payload: &[u8]) {
        let _ = (ws, payload);
    }

    /// All buffered output has left.
    fn on_drain(&mut self, ws: &mut Ws<'_, Self::Data>) {
        let _ = ws;
    }

    /// Published messages did not reach this connection: `count` of them since the last call,
    /// dropped by the backpressure policy or skipped while it was sending a fragmented message.
    /// (A direct send that is dropped says so in its [`crate::SendStatus`].) Called after the
    /// batch of publishes that dropped them.
    fn on_dropped(&mut self, ws: &mut Ws<'_, Self::Data>, count: u64) {
        let _ = (ws, count);
    }

    /// The connection closed: `code` is the peer's close code, ours when we failed it, 1005 for an
    /// empty Close, 1006 when TCP closed without a Close handshake. Sends are refused from here on.
    fn on_close(&mut self, ws: &mut Ws<'_, Self::Data>, code: u16, reason: &[u8]) {
        let _ = (ws, code, reason);
    }
}
