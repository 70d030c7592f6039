//! # myriad
//!
//! A WebSocket server library (RFC 6455, with permessage-deflate, RFC 7692) for very many
//! connections.
//!
//! One reactor thread per core, each with its own `mio::Poll`, its own `SO_REUSEPORT` listener,
//! its own slab of connections, timing wheel, chunk pool, receive buffer and cork buffer: nothing
//! is shared on the hot path. Data flows one way: socket readiness → receive buffer (through the
//! transport seam) → frame decoder (in place, SIMD unmasking) → session and message assembly →
//! [`Handler`] → send path (corked, one syscall per callback batch) → socket. Other threads reach
//! a reactor through its mailbox and `Waker` ([`ServerHandle`]). An idle connection is one small
//! slab entry and owns no buffer.
//!
//! The layers, lowest first: [`proto`] (the protocol without I/O: frames, masks, UTF-8, close
//! codes, the decoder, the per-connection session, the handshake and permessage-deflate); the
//! connection entry and the byte seam; the shard (what one reactor owns: connections, send path,
//! timers, topics); [`Ws`] and [`ServerHandle`]; the reactor, which alone calls the [`Handler`];
//! and [`Server`].
//!
//! ```no_run
//! use myriad::{Config, Handler, Message, Request, Server, Upgrade, Ws};
//!
//! #[derive(Clone)]
//! struct Echo;
//!
//! impl Handler for Echo {
//!     type Data = ();
//!     fn on_upgrade(&mut self, _req: &Request<'_>) -> Upgrade<()> {
//!         Upgrade::accept(())
//!     }
//!     fn on_message(&mut self, ws: &mut Ws<'_, ()>, msg: Message<'_>) {
//!         let _ = ws.send(msg);
//!     }
//! }
//!
//! let running = Server::new(Config::default(), Echo).start().unwrap();
//! running.run_until_signal().unwrap();
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod board;
mod broker;
pub mod client;
mod config;
mod conn;
mod deflate;
mod error;
pub mod fallback;
mod handle;
mod handler;
mod http;
mod id;
mod mailbox;
mod message;
mod pool;
pub mod proto;
mod published;
mod reactor;
mod response;
mod server;
mod shard;
mod stats;
mod sys;
mod timer;
#[cfg(feature = "tls")]
mod tls;
mod topics;
mod transport;
mod upgrade;
mod ws;

pub use broker::BrokerConfig;
pub use config::{BackpressurePolicy, Config, ContextMode, DeflateConfig};
pub use error::{ProtocolError, SendError};
pub use handle::ServerHandle;
pub use handler::Handler;
pub use http::{Request, Ticket};
pub use id::{ConnId, ParseConnIdError};
pub use message::{Compress, Fragment, Message, SendStatus};
pub use response::Response;
pub use server::{Running, Server};
pub use stats::{BrokerStats, HandshakeFailure, ReactorStats, Stats, write_process_metrics};
#[cfg(feature = "tls")]
pub use tls::TlsConfig;
pub use upgrade::{Accept, Upgrade};
pub use ws::{Transport, Ws};

/// Raises this process's open-files soft limit to its hard limit and returns the new soft limit.
/// Every connection is a file descriptor; `myriad serve` calls this at start.
///
/// # Errors
/// When the limit cannot be read or set.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    sys::raise_nofile_limit()
}

/// An echo handler: every message goes back to its sender. `myriad serve` runs it by default.
#[derive(Clone, Copy, Debug, Default)]
pub struct Echo;

impl Handler for Echo {
    type Data = ();

    fn on_upgrade(&mut self, _req: &Request<'_>) -> Upgrade<()> {
        Upgrade::accept(())
    }

    fn on_message(&mut self, ws: &mut Ws<'_, ()>, msg: Message<'_>) {
        let _ = ws.send(msg);
    }
}

/// Not part of the API: what the project's own benchmarks and tests measure or arrange (the size
/// of the connection entry, the open-files limit, the kernel's random bytes). It may change in
/// any release.
#[doc(hidden)]
pub mod internals {
    pub use crate::sys::{nofile_limit, random_bytes, set_nofile_limit};

    /// `size_of::<Conn<()>>()`: the bytes of one connection's slab entry without data.
    pub const CONN_ENTRY_SIZE: usize = crate::conn::ENTRY_SIZE;

    /// `size_of` of a secure connection's slot in its reactor's TLS table.
    #[cfg(feature = "tls")]
    pub const TLS_SLOT_SIZE: usize = std::mem::size_of::<Option<crate::tls::TlsConn>>();
    /// `size_of` of one secure connection's boxed rustls state (the unbuffered connection and
    /// ours beside it), without what rustls allocates behind it.
    #[cfg(feature = "tls")]
    pub const TLS_RUSTLS_SIZE: usize = crate::tls::RUSTLS_SIZE;
    /// `size_of` of one connection's boxed records after the record handover (two AEAD keys,
    /// IVs, sequence numbers, rustls' key-update object), without what that object allocates.
    #[cfg(feature = "tls")]
    pub const TLS_RECORDS_SIZE: usize = crate::tls::RECORDS_SIZE;

    /// The fallback transports' parsers and encoders, for the fuzz targets.
    pub mod fallback {
        use crate::fallback::uplink::{self, Frame};

        /// An uplink POST body's frames as (type, payload), or why it is refused.
        ///
        /// # Errors
        /// What is wrong with the body.
        pub fn uplink(body: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, &'static str> {
            let mut frames = Vec::new();
            uplink::parse(body, &mut frames)?;
            Ok(frames
                .into_iter()
                .map(|f| match f {
                    Frame::Text(t) => (b't', t.as_bytes().to_vec()),
                    Frame::Binary(b) => (b'b', b.to_vec()),
                    Frame::Close(code, reason) => (b'c', format!("{code} {reason}").into_bytes()),
                })
                .collect())
        }

        /// A message as the SSE event both fallback transports send.
        pub fn event(text: bool, payload: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            crate::fallback::event::message(text, payload, &mut out);
            out
        }

        /// Whether `text` is a session id this process made.
        pub fn session_id_valid(text: &str) -> bool {
            crate::fallback::sid::Sid::decode(text).is_some()
        }
    }
}
