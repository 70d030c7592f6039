//! [`Response`]: the application's answer to a plain HTTP request, inside `on_request`.

use crate::error::SendError;
use crate::handle::ServerHandle;
use crate::id::ConnId;
use crate::message::Message;
use crate::shard::Shard;

/// The answer to a plain HTTP request (not an upgrade), inside
/// [`crate::Handler::on_request`]. It starts as an empty `404 Not Found`; set what you need.
///
/// The head gets `Content-Length` (and `Date`, and `Connection: close` when the connection will
/// not be kept) from the server; a `HEAD` request gets the head alone.
pub struct Response<'r, D> {
    shard: &'r mut Shard<D>,
    key: usize,
}

impl<'r, D> Response<'r, D> {
    pub(crate) fn new(shard: &'r mut Shard<D>, key: usize) -> Response<'r, D> {
        Response { shard, key }
    }

    /// Sets the status code (default 404).
    pub fn status(&mut self, status: u16) -> &mut Self {
        self.shard.reply.status = status;
        self
    }

    /// Adds a header. Names that are not tokens and values with control characters are never
    /// written; `Connection`, `Content-Length`, `Transfer-Encoding` and `Date` are the server's.
    pub fn header(&mut self, name: &str, value: &str) -> &mut Self {
        self.shard
            .reply
            .headers
            .push((name.to_owned(), value.to_owned()));
        self
    }

    /// Appends to the body.
    pub fn body(&mut self, bytes: &[u8]) -> &mut Self {
        self.shard.reply.body.extend_from_slice(bytes);
        self
    }

    /// Status 200, `Content-Type: text/plain; charset=utf-8`, and `text` as the body.
    pub fn text(&mut self, text: &str) -> &mut Self {
        self.status(200)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(text.as_bytes())
    }

    /// The body so far, to write into.
    pub fn body_mut(&mut self) -> &mut Vec<u8> {
        &mut self.shard.reply.body
    }

    /// Streams the response: the head goes out now with `Transfer-Encoding: chunked` (and the
    /// status and headers set so far); the connection stays, with `data`, and is shown to
    /// [`crate::Handler::on_open`] as a [`crate::Ws`]. From then on every send to it
    /// ([`crate::Ws::send`], [`crate::ServerHandle::send`], a publish to a topic it subscribes
    /// to) writes one chunk with the message's bytes, and [`crate::Ws::close`] writes the last
    /// chunk and closes the connection. `on_close` follows when it ends, either way. A body set
    /// before is sent as the first chunk.
    pub fn stream(&mut self, data: D) {
        self.shard.reply.stream = Some(data);
    }

    /// The id of the connection the request came on.
    pub fn id(&self) -> ConnId {
        ConnId {
            reactor: self.shard.reactor,
            token: self.shard.token(self.key),
        }
    }

    /// A handle to the server (statistics, sends to other connections, publishes).
    pub fn handle(&self) -> ServerHandle {
        self.shard.handle.clone()
    }

    /// Publishes `msg` to `topic` (a REST publish, say), as [`crate::Ws::publish`] does.
    ///
    /// # Errors
    /// [`SendError::ServerStopped`] when another reactor is gone.
    pub fn publish(&mut self, topic: &str, msg: Message<'_>) -> Result<usize, SendError> {
        self.shard.publish(topic, msg, None)
    }
}
