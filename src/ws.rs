//! [`Ws`]: a connection inside a callback, and everything the application can do with it.

use std::io;

use crate::error::SendError;
use crate::id::ConnId;
use crate::mailbox::Cmd;
use crate::message::{Compress, Fragment, Message, SendStatus};
use crate::shard::Shard;

/// A connection inside a callback: send, close, subscribe and publish, and the connection's data.
pub struct Ws<'r, D> {
    shard: &'r mut Shard<D>,
    key: usize,
}

impl<'r, D> Ws<'r, D> {
    /// The WebSocket connection `key` of `shard` (the reactor makes these for its callbacks).
    pub(crate) fn new(shard: &'r mut Shard<D>, key: usize) -> Ws<'r, D> {
        Ws { shard, key }
    }

    /// This connection's id, usable from any thread through [`crate::ServerHandle`].
    pub fn id(&self) -> ConnId {
        ConnId {
            reactor: self.shard.reactor,
            token: self.shard.token(self.key),
        }
    }

    /// The connection's data.
    ///
    /// # Panics
    /// Never: a `Ws` exists only for an upgraded connection, whose data is set.
    pub fn data(&self) -> &D {
        &self.shard.conns[self.key]
            .ws()
            .expect("a Ws is made for WebSocket connections only")
            .data
    }

    /// The connection's data, mutably.
    ///
    /// # Panics
    /// As [`Ws::data`].
    pub fn data_mut(&mut self) -> &mut D {
        &mut self.shard.conns[self.key]
            .ws_mut()
            .expect("a Ws is made for WebSocket connections only")
            .data
    }

    /// The peer's address (a syscall: not stored in the connection entry).
    ///
    /// # Errors
    /// The socket's, e.g. when the peer is already gone.
    pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.shard.conns[self.key].socket.peer_addr()
    }

    /// Whether the connection is open for sending.
    pub fn is_open(&self) -> bool {
        self.shard.conns[self.key].is_open()
    }

    /// Sends a whole message.
    ///
    /// # Errors
    /// [`SendError::Closed`] once closing; [`SendError::FragmentInProgress`] while a fragmented
    /// message is being sent.
    pub fn send(&mut self, msg: Message<'_>) -> Result<SendStatus, SendError> {
        self.send_with(msg, Compress::Auto)
    }

    /// Sends a whole message, choosing whether it is compressed (when the connection negotiated
    /// permessage-deflate; otherwise it is always sent as it is).
    ///
    /// # Errors
    /// As [`Ws::send`].
    pub fn send_with(
        &mut self,
        msg: Message<'_>,
        compress: Compress,
    ) -> Result<SendStatus, SendError> {
        self.shard.send_message(self.key, msg, compress)
    }

    /// Sends a whole message to another connection (or this one). On this reactor it is queued
    /// at once, as that connection's own [`Ws::send`] would; on another reactor it is posted to
    /// that reactor's mailbox as [`crate::ServerHandle::send_nowait`] does, and `Sent` then
    /// means posted. To send one message to many connections, topics ([`Ws::subscribe`],
    /// [`Ws::publish`]) frame and compress it once instead of once per connection.
    ///
    /// # Errors
    /// [`SendError::StaleId`] for a connection of this reactor that is gone, else as
    /// [`Ws::send`]; [`SendError::ServerStopped`] when the other reactor is gone.
    pub fn send_to(&mut self, id: ConnId, msg: Message<'_>) -> Result<SendStatus, SendError> {
        if id.reactor != self.shard.reactor {
            self.shard.bus.post(id.reactor, Cmd::send(id, msg, None))?;
            return Ok(SendStatus::Sent);
        }
        let key = self.shard.lookup(id.token).ok_or(SendError::StaleId)?;
        self.shard.send_message(key, msg, Compress::Auto)
    }

    /// Sends a text message.
    ///
    /// # Errors
    /// As [`Ws::send`].
    pub fn send_text(&mut self, text: &str) -> Result<SendStatus, SendError> {
        self.send(Message::Text(text))
    }

    /// Sends a binary message.
    ///
    /// # Errors
    /// As [`Ws::send`].
    pub fn send_binary(&mut self, bytes: &[u8]) -> Result<SendStatus, SendError> {
        self.send(Message::Binary(bytes))
    }

    /// Sends one fragment of a message whose size is not known up front (RFC 6455 §5.4). The
    /// message type comes from the first fragment; later fragments' variant is ignored. Control
    /// frames may be sent between fragments; other messages may not.
    ///
    /// # Errors
    /// [`SendError::FragmentInProgress`] for a second `First`; [`SendError::NoFragmentInProgress`]
    /// for `Continue`/`Last` without `First`; [`SendError::Closed`] once closing.
    pub fn send_fragment(
        &mut self,
        part: Fragment,
        msg: Message<'_>,
    ) -> Result<SendStatus, SendError> {
        self.shard.send_fragment(self.key, part, msg)
    }

    /// Sends a ping.
    ///
    /// # Errors
    /// [`SendError::ControlTooLong`] over 125 bytes; [`SendError::Closed`] once closing.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        if !self.is_open() {
            return Err(SendError::Closed);
        }
        self.shard
            .with_session(self.key, |s, out| s.ping(payload, out))
            .unwrap_or(Err(SendError::Closed))
    }

    /// Starts the close handshake with `code` and `reason` (RFC 6455 §7.1.2). `on_close` follows
    /// when the peer answers or the close timeout passes.
    ///
    /// # Errors
    /// [`SendError::InvalidCloseCode`], [`SendError::ReasonTooLong`], or [`SendError::Closed`]
    /// when already closing.
    pub fn close(&mut self, code: u16, reason: &str) -> Result<(), SendError> {
        self.shard.close(self.key, code, reason)
    }

    /// Bytes queued behind the socket (backpressure).
    pub fn buffered(&self) -> usize {
        self.shard.conns[self.key].buffered()
    }

    /// Subscribes this connection to `topic` (released on close). False if it already was.
    pub fn subscribe(&mut self, topic: &str) -> bool {
        // Publishes queued before this go to the subscribers of that moment.
        self.shard.flush_batch();
        self.shard.topics.subscribe(self.key as u32, topic)
    }

    /// Unsubscribes this connection from `topic`. False if it was not subscribed.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        self.shard.flush_batch();
        self.shard.topics.unsubscribe(self.key as u32, topic)
    }

    /// Publishes `msg` to every subscriber of `topic`, on every reactor (this connection too,
    /// if it subscribes). The message is framed once and, when deflate is on and it is at least
    /// `compress_threshold` long, compressed once; each other reactor receives one shared copy
    /// through its mailbox. Returns the number of subscribers on this reactor it was queued for
    /// (it leaves at the end of the callback batch, with the backpressure rules of any send).
    ///
    /// # Errors
    /// [`SendError::ServerStopped`] when another reactor is gone.
    pub fn publish(&mut self, topic: &str, msg: Message<'_>) -> Result<usize, SendError> {
        self.shard.publish(topic, msg)
    }

    /// Messages compressed by this reactor so far (each publish compresses at most once).
    pub fn compressions(&self) -> u64 {
        self.shard.streams.compressions
    }
}
