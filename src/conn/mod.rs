//! The connection: one compact slab entry per socket.
//!
//! A connection has a [`Kind`]: an HTTP head being read, or a WebSocket (its session state, its
//! permessage-deflate agreement and the application's data). A new kind of connection is a new
//! variant here and a new file beside the reactor's read path, not a branch through the
//! WebSocket's.
//!
//! Everything a connection needs only now and then (a head or a frame cut by a read, a
//! fragmented message, unsent bytes, a coalesced pong) lives behind two optional boxes that exist
//! only while in use. An idle open connection is the socket, a generation, a deadline, four
//! bytes of state and the application's data.

mod flags;

use mio::net::TcpStream;

pub(crate) use flags::Flags;

use crate::deflate::Agreement;
use crate::deflate::negotiate::Agreed;
use crate::http::Chunked;
use crate::pool::OutQueue;
use crate::proto::decoder::Decoder;
use crate::proto::session::Session;

/// What a connection is.
pub(crate) enum Kind<D> {
    /// Waiting for an HTTP request head (the first, or the next on a kept-alive connection).
    Head,
    /// An upgraded WebSocket.
    WebSocket(WebSocket<D>),
    /// A streamed HTTP response: the head went out, chunks follow as the application sends.
    Stream(Stream<D>),
}

/// How a stream reaches its client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A chunked response the application asked for (`Response::stream`): each message a chunk.
    Chunked,
    /// A Server-Sent Events session: each message an event, the body open until the session
    /// ends.
    Sse,
    /// A long-poll session: no socket of its own but while a poll waits on it; messages wait in
    /// the shard's poll queue until a poll takes them and a later poll acknowledges them.
    Poll,
}

/// The streamed-response part of a connection (a chunked response, or a fallback session).
pub(crate) struct Stream<D> {
    /// Still sending: the last chunk (or the close event) has not gone out.
    pub(crate) open: bool,
    /// `on_close` was called.
    pub(crate) reported: bool,
    /// What the stream is.
    pub(crate) mode: Mode,
    /// The application's data.
    pub(crate) data: D,
}

/// The WebSocket part of a connection.
pub(crate) struct WebSocket<D> {
    /// Its protocol state (one byte).
    pub(crate) session: Session,
    /// The permessage-deflate agreement, if one was negotiated (RFC 7692). It fits in the
    /// entry's padding, so negotiating compression adds no byte per connection.
    pub(crate) deflate: Option<Agreement>,
    /// The application's data.
    pub(crate) data: D,
}

/// Input state, boxed only while something is in progress.
pub(crate) enum Inbound {
    /// The bytes of an HTTP head not complete yet.
    Head(Vec<u8>),
    /// A plain request whose body is still arriving: its head, the body so far, and how the
    /// body ends.
    Body {
        head: Vec<u8>,
        body: Vec<u8>,
        framing: BodyRead,
    },
    /// An upgrade the application answers later (`Upgrade::Pending`).
    Pending(Box<PendingUpgrade>),
    /// A frame or a message cut by a read, and the tick by which the message must be whole.
    Frames {
        decoder: Decoder,
        deadline: Option<u32>,
    },
}

impl Inbound {
    /// Bytes of the peer's held here (what the memory budget counts).
    pub(crate) fn buffered(&self) -> usize {
        match self {
            Inbound::Head(h) => h.len(),
            Inbound::Body { head, body, .. } => head.len() + body.len(),
            Inbound::Pending(p) => p.rest.len(),
            Inbound::Frames { decoder, .. } => decoder.buffered(),
        }
    }
}

/// How the rest of a request body is read.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BodyRead {
    /// This many bytes are still to come.
    Length(u64),
    /// Chunked: the decoder's state.
    Chunked(Chunked),
}

/// What an upgrade left pending needs when the answer comes: what goes into the 101, and bytes
/// the client sent after its head.
pub(crate) struct PendingUpgrade {
    /// The `Sec-WebSocket-Key`, for the accept value.
    pub(crate) key: [u8; 24],
    /// The subprotocols the client offered, comma-separated (the choice must be one of them).
    pub(crate) offered: String,
    /// The permessage-deflate agreement, if an offer was acceptable.
    pub(crate) agreed: Option<Agreed>,
    /// Bytes after the head (frames the client pipelined), decoded once open.
    pub(crate) rest: Vec<u8>,
}

/// Output state, boxed only while bytes wait.
#[derive(Default)]
pub(crate) struct Tx {
    /// Bytes the socket has not taken yet.
    pub(crate) out: OutQueue,
    /// The latest pong owed while output is blocked (earlier ones are coalesced away).
    pub(crate) pong: Option<([u8; 125], u8)>,
    /// The tick at which output last made progress (or began to wait): the write timeout runs
    /// from here.
    pub(crate) since: u32,
}

/// One connection: the slab entry.
pub(crate) struct Conn<D> {
    /// The socket: always there but for a long-poll session between polls (an `Option` of a
    /// file descriptor costs nothing: -1 is its niche).
    pub(crate) socket: Option<TcpStream>,
    /// Generation, part of the token, so a reused slot never takes a stale event or id.
    pub(crate) generation: u32,
    /// Tick at which the current timer (handshake, idle, close) expires.
    pub(crate) deadline: u32,
    /// What the connection is.
    pub(crate) kind: Kind<D>,
    /// The reactor's bookkeeping bits.
    pub(crate) flags: Flags,
    /// Input in progress.
    pub(crate) rx: Option<Box<Inbound>>,
    /// Unsent output.
    pub(crate) tx: Option<Box<Tx>>,
}

// The budget: an idle connection costs at most 100 bytes of user space in total (DESIGN.md);
// the entry takes 32 of them (plus the slab's 8-byte tag and the wheel's 8-byte token), leaving
// room for small application data.
#[cfg(not(debug_assertions))]
const _: () = assert!(std::mem::size_of::<Conn<()>>() <= 32);
// Debug builds of mio add a selector id (8 bytes plus padding) to every socket.
#[cfg(debug_assertions)]
const _: () = assert!(std::mem::size_of::<Conn<()>>() <= 48);

impl<D> Conn<D> {
    /// A freshly accepted socket, waiting for its HTTP head.
    pub(crate) fn new(socket: TcpStream, generation: u32) -> Conn<D> {
        Conn {
            socket: Some(socket),
            generation,
            deadline: 0,
            kind: Kind::Head,
            flags: Flags::default(),
            rx: None,
            tx: None,
        }
    }

    /// A long-poll session without a socket (between polls).
    pub(crate) fn session_slot(generation: u32, kind: Kind<D>) -> Conn<D> {
        Conn {
            socket: None,
            generation,
            deadline: 0,
            kind,
            flags: Flags::default(),
            rx: None,
            tx: None,
        }
    }

    /// The peer's address.
    ///
    /// # Errors
    /// The socket's, or `NotConnected` for a long-poll session between polls.
    pub(crate) fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        match &self.socket {
            Some(s) => s.peer_addr(),
            None => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    /// The fallback session mode, if this is a stream.
    pub(crate) fn mode(&self) -> Option<Mode> {
        match &self.kind {
            Kind::Stream(s) => Some(s.mode),
            _ => None,
        }
    }

    /// Unsent bytes.
    pub(crate) fn buffered(&self) -> usize {
        self.tx.as_ref().map_or(0, |t| t.out.len())
    }

    /// The WebSocket part, once upgraded.
    pub(crate) fn ws(&self) -> Option<&WebSocket<D>> {
        match &self.kind {
            Kind::WebSocket(ws) => Some(ws),
            _ => None,
        }
    }

    /// The WebSocket part, mutably.
    pub(crate) fn ws_mut(&mut self) -> Option<&mut WebSocket<D>> {
        match &mut self.kind {
            Kind::WebSocket(ws) => Some(ws),
            _ => None,
        }
    }

    /// The application's data, for a connection the application was shown (a WebSocket or a
    /// streamed response).
    pub(crate) fn data(&self) -> Option<&D> {
        match &self.kind {
            Kind::WebSocket(ws) => Some(&ws.data),
            Kind::Stream(s) => Some(&s.data),
            Kind::Head => None,
        }
    }

    /// The application's data, mutably.
    pub(crate) fn data_mut(&mut self) -> Option<&mut D> {
        match &mut self.kind {
            Kind::WebSocket(ws) => Some(&mut ws.data),
            Kind::Stream(s) => Some(&mut s.data),
            Kind::Head => None,
        }
    }

    /// The WebSocket session, if upgraded and not dead.
    pub(crate) fn session(&self) -> Option<Session> {
        self.ws().map(|w| w.session)
    }

    /// Whether the connection is open for the application's sends: an open WebSocket, or a
    /// streamed response that has not ended.
    pub(crate) fn is_open(&self) -> bool {
        !self.flags.dead()
            && match &self.kind {
                Kind::WebSocket(ws) => ws.session.is_open(),
                Kind::Stream(s) => s.open,
                Kind::Head => false,
            }
    }

    /// The write deadline, if output waits: `since` plus the write timeout, in ticks.
    pub(crate) fn write_deadline(&self, timeout_ticks: u32) -> Option<u32> {
        let tx = self.tx.as_deref()?;
        (timeout_ticks > 0).then(|| tx.since.saturating_add(timeout_ticks))
    }

    /// The message deadline, if a message is in progress and has one.
    pub(crate) fn message_deadline(&self) -> Option<u32> {
        match self.rx.as_deref() {
            Some(Inbound::Frames { deadline, .. }) => *deadline,
            _ => None,
        }
    }
}

/// The size of the connection entry for `()` data, for the memory benchmark.
pub(crate) const ENTRY_SIZE: usize = std::mem::size_of::<Conn<()>>();
