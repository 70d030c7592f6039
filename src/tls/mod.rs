//! wss: TLS 1.2 and 1.3 on the reactors, with rustls' unbuffered API (feature `tls`).
//!
//! Records are read into the reactor's ciphertext buffer and decrypted there, the plaintext goes
//! to the reactor's receive buffer like any read; output is encrypted from the reactor's cork (or
//! from a publish's one framed copy) into a per-reactor buffer, and only what the socket does not
//! take becomes the connection's pooled chunks. An idle secure connection owns its rustls state
//! and nothing else; a record cut by a read is kept in a small buffer of its own until the rest
//! comes. The kernel here has no kTLS (`CONFIG_TLS` is off), so records are handled in user
//! space; with kTLS the reactor would hand the traffic keys to the kernel after the handshake and
//! read and write plaintext on the socket (see the README).

mod config;
mod conn;
mod layer;
mod records;

pub use config::TlsConfig;
pub(crate) use config::TlsState;
pub(crate) use conn::TlsConn;
pub(crate) use layer::{Layer, Moved};

/// `size_of` of the boxed rustls state of a connection.
pub(crate) const RUSTLS_SIZE: usize = std::mem::size_of::<conn::Unbuffered>();
/// `size_of` of the boxed records of a connection after the handover.
pub(crate) const RECORDS_SIZE: usize = std::mem::size_of::<records::Records>();
