//! The application's side: the [`Handler`] trait, what it is shown and what it answers.

use crate::handshake::Request;
use crate::reactor::Core;

/// A complete message, valid for the duration of the callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// UTF-8 text (validated, RFC 6455 §8.1).
    Text(&'a str),
    /// Binary data.
    Binary(&'a [u8]),
}

impl<'a> Message<'a> {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// The opcode of its frame.
    pub(crate) fn opcode(&self) -> crate::frame::OpCode {
        match self {
            Message::Text(_) => crate::frame::OpCode::Text,
            Message::Binary(_) => crate::frame::OpCode::Binary,
        }
    }
}

/// Whether a message is sent compressed, on connections that negotiated permessage-deflate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compress {
    /// Compressed when at least `Config::compress_threshold` bytes long (default 64).
    #[default]
    Auto,
    /// Always compressed.
    Always,
    /// Never compressed.
    Never,
}

/// What a send did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendStatus {
    /// Queued for the socket with nothing ahead of it; leaves at the end of this callback.
    Sent,
    /// Queued behind unsent bytes (backpressure); `on_drain` tells when they are gone.
    Buffered,
    /// Not queued: it would have passed `max_backpressure` (policy `Drop`).
    Dropped,
}

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

/// A connection inside a callback: send, close, and the connection's data.
pub struct Ws<'r, D> {
    pub(crate) core: &'r mut Core<D>,
    pub(crate) key: usize,
}

/// Which part of a fragmented message is being sent (RFC 6455 §5.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragment {
    /// The first fragment, carrying the message type.
    First,
    /// A middle fragment.
    Continue,
    /// The last fragment.
    Last,
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
