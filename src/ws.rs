//! [`Ws`]: a connection inside a callback, and everything the application can do with it.

use std::io;

use crate::conn::Mode;
use crate::error::SendError;
use crate::handle::ServerHandle;
use crate::id::ConnId;
use crate::mailbox::Cmd;
use crate::message::{Compress, Fragment, Message, SendStatus};
use crate::shard::Shard;

/// How a connection reaches its client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A WebSocket (RFC 6455).
    WebSocket,
    /// A streamed HTTP response: each message one chunk.
    Stream,
    /// A fallback session over Server-Sent Events (messages to the client as events, from it
    /// as POSTs).
    Sse,
    /// A fallback session over long-polling (messages to the client in poll answers, from it
    /// as POSTs).
    Poll,
}

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
        self.shard.conns[self.key]
            .data()
            .expect("a Ws is made for connections the application accepted")
    }

    /// The connection's data, mutably.
    ///
    /// # Panics
    /// As [`Ws::data`].
    pub fn data_mut(&mut self) -> &mut D {
        self.shard.conns[self.key]
            .data_mut()
            .expect("a Ws is made for connections the application accepted")
    }

    /// The peer's address (a syscall: not stored in the connection entry).
    ///
    /// # Errors
    /// The socket's, e.g. when the peer is already gone.
    pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.shard.conns[self.key].peer_addr()
    }

    /// Whether the connection is open for sending.
    pub fn is_open(&self) -> bool {
        self.shard.conns[self.key].is_open()
    }

    /// How this connection reaches its client: a WebSocket, a streamed HTTP response, or a
    /// fallback session (SSE or long-polling).
    pub fn transport(&self) -> Transport {
        match self.shard.conns[self.key].mode() {
            Some(Mode::Chunked) => Transport::Stream,
            Some(Mode::Sse) => Transport::Sse,
            Some(Mode::Poll) => Transport::Poll,
            None => Transport::WebSocket,
        }
    }

    /// A handle to the server, for other threads (statistics, sends, publishes). Inside a
    /// callback, send to other connections with [`Ws::send_to`]: [`ServerHandle::send`] waits
    /// for a reactor, so it refuses to run on one ([`SendError::WouldDeadlock`]).
    pub fn handle(&self) -> ServerHandle {
        self.shard.handle.clone()
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
    /// [`SendError::ControlTooLong`] over 125 bytes; [`SendError::Closed`] once closing;
    /// [`SendError::NotWebSocket`] on a streamed response.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        if !self.is_open() {
            return Err(SendError::Closed);
        }
        self.shard
            .with_session(self.key, |s, out| s.ping(payload, out))
            .unwrap_or(Err(SendError::NotWebSocket))
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

    /// Bytes queued behind the socket (backpressure), or, for a long-poll session, waiting for
    /// a poll to take them and the next to acknowledge them.
    pub fn buffered(&self) -> usize {
        self.shard.conns[self.key].buffered() + self.shard.poll_queued(self.key)
    }

    /// The topics this connection subscribes to, in no particular order.
    pub fn topics(&self) -> Vec<String> {
        self.shard
            .topics
            .topics_of(self.key as u32)
            .map(str::to_owned)
            .collect()
    }

    /// How many connections of this reactor subscribe to `topic` (this one included). For
    /// every reactor's, see [`ServerHandle::subscribers`].
    pub fn subscribers(&self, topic: &str) -> usize {
        self.shard
            .topics
            .id(topic)
            .map_or(0, |id| self.shard.topics.subscribers_of(id).len())
    }

    /// Subscribes this connection to `topic` (released on close). `Ok(false)` if it already
    /// was.
    ///
    /// # Errors
    /// [`SendError::TopicTooLong`] past `Config::max_topic_len`; [`SendError::TooManyTopics`]
    /// past `Config::max_topics_per_connection`.
    pub fn subscribe(&mut self, topic: &str) -> Result<bool, SendError> {
        self.shard.subscribe(self.key, topic)
    }

    /// Unsubscribes this connection from `topic`. False if it was not subscribed.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        self.shard.unsubscribe(self.key, topic)
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
        self.shard.publish(topic, msg, None)
    }

    /// Publishes `msg` to every subscriber of `topic` but this connection (uWebSockets'
    /// `ws.publish`), otherwise as [`Ws::publish`].
    ///
    /// # Errors
    /// As [`Ws::publish`].
    pub fn publish_to_others(&mut self, topic: &str, msg: Message<'_>) -> Result<usize, SendError> {
        self.shard.publish(topic, msg, Some(self.key))
    }

    /// Messages compressed by this reactor so far (each publish compresses at most once).
    pub fn compressions(&self) -> u64 {
        self.shard.streams.compressions
    }
}
