//! # myriad
//!
//! A WebSocket server library (RFC 6455) for very many connections.
//!
//! One reactor thread per core, each with its own `mio::Poll`, its own `SO_REUSEPORT` listener,
//! its own slab of connections, timing wheel, chunk pool, receive buffer and cork buffer: nothing
//! is shared on the hot path. Data flows one way: socket readiness → receive buffer → frame
//! decoder (in place, SIMD unmasking) → message assembly → [`Handler`] → send path (corked, one
//! syscall per callback batch) → socket. Other threads reach a reactor through its mailbox and
//! `Waker` ([`ServerHandle`]).
//!
//! An idle connection is one small slab entry and owns no buffer; see [`conn`].
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
//! Server::new(Config::default(), Echo).run().unwrap();
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod close;
mod compression;
pub mod config;
pub mod conn;
pub mod decoder;
pub mod deflate;
pub mod error;
pub mod extension;
pub mod frame;
pub mod handler;
pub mod handshake;
pub mod mask;
pub mod pool;
pub mod pubsub;
mod reactor;
pub mod server;
pub mod sys;
pub mod timer;
mod topic;
pub mod utf8;

pub use config::{BackpressurePolicy, Config};
pub use error::{ProtocolError, SendError};
pub use handler::{Accept, Compress, Fragment, Handler, Message, SendStatus, Upgrade, Ws};
pub use handshake::Request;
pub use server::{ConnId, Running, Server, ServerHandle};

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
