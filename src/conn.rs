//! The connection: one compact slab entry per socket.
//!
//! Everything a connection needs only now and then (a frame cut by a read, a fragmented message,
//! unsent bytes, a coalesced pong) lives behind two optional boxes that exist only while in use.
//! An idle open connection is the socket, a generation, a deadline, two bytes of state and the
//! application's data.

use mio::net::TcpStream;

use crate::decoder::Partial;
use crate::pool::OutQueue;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Waiting for the HTTP upgrade request.
    Handshaking,
    /// Open: messages flow both ways.
    Open,
    /// We sent Close and wait for the peer's (RFC 6455 §7.1.2).
    Closing,
    /// Closed at the WebSocket level: waiting for unsent bytes to leave, then TCP closes.
    Flushing,
    /// We failed the connection: output flushed and write side shut, reading until the peer's
    /// FIN (so our Close is not lost to a reset) or the close timeout.
    Draining,
    /// Gone; freed at the end of this loop iteration.
    Dead,
}

/// Flag: the entry is filed in the timing wheel.
pub const IN_WHEEL: u8 = 1;
/// Flag: an automatic ping went out and no byte has come since.
pub const PING_SENT: u8 = 2;
/// Flag: writable interest is registered (there are unsent bytes).
pub const WANT_WRITE: u8 = 4;
/// Flag: the application is sending a fragmented message (RFC 6455 §5.4).
pub const SENDING_FRAGMENTS: u8 = 8;
/// Flag: on_close has been called.
pub const NOTIFIED: u8 = 16;
/// Flag: on the reactor's still-readable list.
pub const QUEUED_READ: u8 = 32;
/// Flag: counted among pending handshakes.
pub const PENDING: u8 = 64;
/// Flag: permessage-deflate was negotiated (RFC 7692).
pub const DEFLATE: u8 = 128;

/// Output side state, boxed only while bytes wait.
#[derive(Default)]
pub struct Tx {
    /// Bytes the socket has not taken yet.
    pub out: OutQueue,
    /// The latest pong owed while output is blocked (earlier ones are coalesced away).
    pub pong: Option<([u8; 125], u8)>,
}

/// One connection: the slab entry.
pub struct Conn<D> {
    /// The socket.
    pub stream: TcpStream,
    /// Generation, part of the token, so a reused slot never takes a stale event or id.
    pub generation: u32,
    /// Tick at which the current timer (handshake, idle, close) expires.
    pub deadline: u32,
    /// Life stage.
    pub state: State,
    /// Flags above.
    pub flags: u8,
    /// The permessage-deflate agreement, packed (see `compression::pack`); 0 without one. It
    /// fits in the entry's padding, so negotiating compression adds no byte per connection.
    pub deflate: u8,
    /// Decoder state, boxed only while a frame or message is in progress.
    pub rx: Option<Box<Partial>>,
    /// Unsent output, boxed only while some waits.
    pub tx: Option<Box<Tx>>,
    /// The application's data; set when the upgrade is accepted.
    pub data: Option<D>,
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
    /// A freshly accepted socket.
    pub fn new(stream: TcpStream, generation: u32, deadline: u32) -> Conn<D> {
        Conn {
            stream,
            generation,
            deadline,
            state: State::Handshaking,
            flags: 0,
            deflate: 0,
            rx: None,
            tx: None,
            data: None,
        }
    }

    /// Unsent bytes.
    pub fn buffered(&self) -> usize {
        self.tx.as_ref().map_or(0, |t| t.out.len())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn entry_size() {
        println!(
            "Conn<()> = {} bytes, mio TcpStream = {}",
            std::mem::size_of::<super::Conn<()>>(),
            std::mem::size_of::<mio::net::TcpStream>()
        );
    }
}
