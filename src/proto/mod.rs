//! The WebSocket protocol without I/O: for those who drive it themselves (a client, a proxy, a
//! test), and the server's own core. Nothing here knows of sockets, of mio or of the clock; every
//! piece takes bytes and returns results, so it is tested (and fuzzed) as plain functions.
//!
//! - [`frame`]: frame headers (RFC 6455 §5.2), decoded and encoded.
//! - [`mask`]: payload masking (RFC 6455 §5.3), with SIMD kernels chosen once per process.
//! - [`utf8`]: UTF-8 validation of text, streamed across fragments (RFC 6455 §8.1).
//! - [`close`]: close codes and payloads (RFC 6455 §5.5.1, §7.4).
//! - [`decoder`]: from received bytes to messages and control frames (RFC 6455 §5.4, §5.5).
//! - [`session`]: one connection's state machine: close handshake, pongs, fragment order,
//!   idle ping, failing and draining.
//! - [`handshake`]: the HTTP/1.1 upgrade (RFC 6455 §4), both sides.
//! - [`deflate`]: permessage-deflate (RFC 7692): negotiation and codec.

pub mod close;
pub mod decoder;
pub mod frame;
pub mod handshake;
mod limits;
pub mod mask;
pub mod session;
pub mod utf8;

pub use limits::{Limits, Role};

/// permessage-deflate (RFC 7692): the offer and answer, and the codec.
pub mod deflate {
    pub use crate::deflate::codec::{CHUNK, Deflater, InflateError, Inflater, TAIL, Window};
    pub use crate::deflate::negotiate::{
        Agreed, ContextMode, DeflateConfig, accept_response, client_offer, negotiate,
    };
}
