//! The application's side: the [`Handler`] trait, what it is shown and what it answers.

use crate::http::Request;
use crate::message::Message;
use crate::ws::Ws;

/// The answer to an upgrade request.
pub enum Upgrade<D> {
    /// Accept, with the connection's data.
    Accept(Accept<D>),
    /// Refuse with an HTTP status (e.g. 401, 403, 429) and extra headers.
    Reject {
        /// HTTP status code.
        status: u16,
        /// Extra response headers (values with CR or LF are skipped).
        headers: Vec<(String, String)>,
    },
}

/// An accepted upgrade.
pub struct Accept<D> {
    pub(crate) data: D,
    pub(crate) protocol: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
}

impl<D> Accept<D> {
    /// Accepts with this per-connection data.
    pub fn new(data: D) -> Accept<D> {
        Accept {
            data,
            protocol: None,
            headers: Vec::new(),
        }
    }

    /// Selects a subprotocol. It must be one the client offered (RFC 6455 §4.2.2); if it is not,
    /// the header is left out and a warning logged.
    #[must_use]
    pub fn protocol(mut self, p: &str) -> Accept<D> {
        self.protocol = Some(p.to_owned());
        self
    }

    /// Adds a response header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Accept<D> {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

impl<D> Upgrade<D> {
    /// Shorthand for `Upgrade::Accept(Accept::new(data))`.
    pub fn accept(data: D) -> Upgrade<D> {
        Upgrade::Accept(Accept::new(data))
    }

    /// Shorthand for a rejection without extra headers.
    pub fn reject(status: u16) -> Upgrade<D> {
        Upgrade::Reject {
            status,
            headers: Vec::new(),
        }
    }
}

/// The application. Each reactor thread owns a clone, so callbacks take `&mut self` and need no
/// locks; state shared between reactors is the application's business.
///
/// Callbacks run on the reactor thread: they must not block.
pub trait Handler: Clone + Send + 'static {
    /// Per-connection data.
    type Data: 'static;

    /// An upgrade request arrived and passed RFC 6455 §4.2.1. Accept it (optionally with a
    /// subprotocol and headers) or reject it with a status.
    fn on_upgrade(&mut self, req: &Request<'_>) -> Upgrade<Self::Data>;

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

    /// The connection closed: `code` is the peer's close code, ours when we failed it, 1005 for an
    /// empty Close, 1006 when TCP closed without a Close handshake. Sends are refused from here on.
    fn on_close(&mut self, ws: &mut Ws<'_, Self::Data>, code: u16, reason: &[u8]) {
        let _ = (ws, code, reason);
    }
}
