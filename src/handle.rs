//! [`ServerHandle`]: the application's way to reach the reactors from any thread.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::deflate::codec::Deflater;
use crate::error::SendError;
use crate::id::ConnId;
use crate::mailbox::{Bus, Cmd, on_reactor_thread};
use crate::message::{Message, SendStatus};
use crate::published::Published;

/// Reaches the reactors from any thread: cheap to clone.
#[derive(Clone)]
pub struct ServerHandle {
    bus: Bus,
    shutdown_timeout: Duration,
    /// zlib level for publishes compressed on this thread.
    level: u32,
}

thread_local! {
    /// A publisher thread's compressor, so that a publish from any thread compresses once.
    static PUBLISH_DEFLATER: RefCell<Option<Deflater>> = const { RefCell::new(None) };
}

impl ServerHandle {
    pub(crate) fn new(bus: Bus, shutdown_timeout: Duration, level: u32) -> ServerHandle {
        ServerHandle {
            bus,
            shutdown_timeout,
            level,
        }
    }

    /// Sends a message to a connection and waits for its reactor to queue it.
    ///
    /// # Errors
    /// [`SendError::StaleId`] if the connection is gone, [`SendError::Closed`] if it is closing,
    /// [`SendError::ServerStopped`], or [`SendError::WouldDeadlock`] when called on a reactor
    /// thread (use [`ServerHandle::send_nowait`] there, or [`crate::Ws::send_to`] inside a
    /// callback).
    pub fn send(&self, id: ConnId, msg: Message<'_>) -> Result<SendStatus, SendError> {
        if on_reactor_thread() {
            return Err(SendError::WouldDeadlock);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.bus.post(id.reactor, Cmd::send(id, msg, Some(tx)))?;
        rx.recv().map_err(|_| SendError::ServerStopped)?
    }

    /// Sends without waiting: errors for stale ids are only logged (at debug level).
    ///
    /// # Errors
    /// [`SendError::ServerStopped`] when the reactor is gone.
    pub fn send_nowait(&self, id: ConnId, msg: Message<'_>) -> Result<(), SendError> {
        self.bus.post(id.reactor, Cmd::send(id, msg, None))
    }

    /// Starts the close handshake on a connection and waits for its reactor to do it.
    ///
    /// # Errors
    /// As [`ServerHandle::send`], plus invalid codes and long reasons.
    pub fn close(&self, id: ConnId, code: u16, reason: &str) -> Result<(), SendError> {
        if on_reactor_thread() {
            return Err(SendError::WouldDeadlock);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.bus.post(
            id.reactor,
            Cmd::Close {
                token: id.token,
                code,
                reason: reason.to_owned(),
                reply: Some(tx),
            },
        )?;
        rx.recv().map_err(|_| SendError::ServerStopped)?
    }

    /// Graceful shutdown: every reactor stops accepting, sends 1001 to each open connection and
    /// waits for the close handshakes up to the configured `shutdown_timeout`, then drops the
    /// rest. Returns at once; [`crate::Running::join`] waits for the end.
    pub fn shutdown(&self) {
        self.shutdown_within(self.shutdown_timeout);
    }

    /// As [`ServerHandle::shutdown`] with an explicit deadline.
    pub fn shutdown_within(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for i in 0..self.bus.reactors() {
            let _ = self.bus.post(i as u32, Cmd::Shutdown { deadline });
        }
    }

    /// Number of reactors.
    pub fn reactors(&self) -> usize {
        self.bus.reactors()
    }

    /// Publishes a message to `topic` from any thread: it is framed (and, when deflate is on and
    /// the message is long enough, compressed) once, here, and every reactor writes that one copy
    /// to its local subscribers, with the usual backpressure rules.
    ///
    /// # Errors
    /// [`SendError::ServerStopped`] when a reactor is gone.
    pub fn publish(&self, topic: &str, msg: Message<'_>) -> Result<(), SendError> {
        let (text, payload) = (msg.is_text(), msg.as_bytes());
        let message = if self.bus.compress_publish(payload.len()) {
            PUBLISH_DEFLATER.with(|d| {
                let mut d = d.borrow_mut();
                let d = d.get_or_insert_with(|| Deflater::new(15, self.level));
                Published::new(text, payload, Some(d))
            })
        } else {
            Published::new(text, payload, None)
        };
        self.bus.broadcast(None, &topic.into(), &Arc::new(message))
    }
}
