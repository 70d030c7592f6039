//! [`ServerHandle`]: the application's way to reach the reactors from any thread.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::deflate::codec::Deflater;
use crate::error::SendError;
use crate::http::Ticket;
use crate::id::ConnId;
use crate::mailbox::{Bus, Cmd, on_reactor_thread};
use crate::message::{Message, SendStatus};
use crate::published::Published;
use crate::stats::Stats;
use crate::upgrade::Accept;

/// Reaches the reactors from any thread: cheap to clone.
#[derive(Clone)]
pub struct ServerHandle {
    bus: Bus,
    shutdown_timeout: Duration,
    /// zlib level for publishes compressed on this thread.
    level: u32,
    /// The TLS configuration the reactors read at each accept, when the server speaks TLS.
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::TlsState>,
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
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The server's TLS configuration, for the reactors.
    #[cfg(feature = "tls")]
    pub(crate) fn with_tls(mut self, tls: crate::tls::TlsState) -> ServerHandle {
        self.tls = Some(tls);
        self
    }

    #[cfg(feature = "tls")]
    pub(crate) fn tls_state(&self) -> Option<&crate::tls::TlsState> {
        self.tls.as_ref()
    }

    /// Reads the certificate files again and serves new TLS connections with them (the
    /// bundled server does this on SIGHUP); open connections keep theirs. On an error (a file
    /// missing, a key that does not match) nothing changes.
    ///
    /// # Errors
    /// `NotFound`-like errors from the files, `InvalidData` for bad PEM or a mismatched key,
    /// `Unsupported` when the server does not speak TLS.
    #[cfg(feature = "tls")]
    pub fn reload_tls(&self) -> std::io::Result<()> {
        self.tls_or_err()?.reload(None)
    }

    /// Serves new TLS connections with `tls` from now on (and reloads it on
    /// [`ServerHandle::reload_tls`]). Its `max_handshakes` applies from the next start.
    ///
    /// # Errors
    /// As [`ServerHandle::reload_tls`].
    #[cfg(feature = "tls")]
    pub fn set_tls(&self, tls: crate::tls::TlsConfig) -> std::io::Result<()> {
        self.tls_or_err()?.reload(Some(tls))
    }

    #[cfg(feature = "tls")]
    fn tls_or_err(&self) -> std::io::Result<&crate::tls::TlsState> {
        self.tls.as_ref().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "the server was started without TLS",
            )
        })
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

    /// Accepts an upgrade left [`crate::Upgrade::Pending`], from any thread: the client gets its
    /// 101 (with the subprotocol and headers of `accept`, the subprotocol only if it offered
    /// it), `on_open` follows on the connection's reactor, with `accept`'s data. `D` must be the
    /// handler's `Data`; with another type the upgrade is refused with 500 and an error logged.
    /// Returns once posted; a connection that went away meanwhile (or timed out) is skipped.
    ///
    /// # Errors
    /// [`SendError::ServerStopped`] when the reactor is gone.
    pub fn accept<D: Send + 'static>(
        &self,
        ticket: Ticket,
        accept: Accept<D>,
    ) -> Result<(), SendError> {
        let id = ticket.0;
        self.bus.post(
            id.reactor,
            Cmd::Accept {
                token: id.token,
                accept: Box::new(accept),
            },
        )
    }

    /// Refuses an upgrade left [`crate::Upgrade::Pending`], from any thread, with `status` (401,
    /// 403, 429...), extra headers and a body; the connection closes after it.
    ///
    /// # Errors
    /// [`SendError::ServerStopped`] when the reactor is gone.
    pub fn reject(
        &self,
        ticket: Ticket,
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<(), SendError> {
        let id = ticket.0;
        self.bus.post(
            id.reactor,
            Cmd::Reject {
                token: id.token,
                status,
                headers,
                body,
            },
        )
    }

    /// Every reactor's counts and their sum, as of each reactor's latest loop iteration. Never
    /// waits for a reactor, so it may be called anywhere, callbacks included.
    pub fn stats(&self) -> Stats {
        let board = self.bus.board();
        let mut stats = Stats::default();
        for i in 0..board.len() {
            let mut r = board.read(i);
            r.mailbox_dropped = self.bus.mailbox_dropped(i);
            stats.total.add(&r);
            stats.reactors.push(r);
            stats.running.push(board.running(i));
        }
        stats.broker = self.bus.broker_stats();
        stats
    }

    /// Whether the broker bridge is connected (`None`: the server has no broker). A readiness
    /// probe answers 503 while it is `Some(false)`.
    pub fn broker_up(&self) -> Option<bool> {
        self.bus.broker_stats().map(|b| b.up)
    }

    /// How many connections subscribe to `topic`, on every reactor (uWebSockets'
    /// `numSubscribers`). Asks each reactor and waits for the answers; inside a callback use
    /// [`crate::Ws::subscribers`] (this reactor's count) instead.
    ///
    /// # Errors
    /// [`SendError::WouldDeadlock`] on a reactor thread; [`SendError::ServerStopped`].
    pub fn subscribers(&self, topic: &str) -> Result<usize, SendError> {
        if on_reactor_thread() {
            return Err(SendError::WouldDeadlock);
        }
        let mut waiting = Vec::new();
        for i in 0..self.bus.reactors() as u32 {
            let (tx, rx) = mpsc::sync_channel(1);
            self.bus.post(
                i,
                Cmd::Subscribers {
                    topic: topic.to_owned(),
                    reply: tx,
                },
            )?;
            waiting.push(rx);
        }
        waiting.into_iter().try_fold(0, |n, rx| {
            rx.recv()
                .map(|k| n + k)
                .map_err(|_| SendError::ServerStopped)
        })
    }

    /// Whether a graceful shutdown began (for a readiness probe).
    pub fn is_stopping(&self) -> bool {
        self.bus.stopping()
    }

    /// Whether the server is healthy: every reactor thread runs, or they are stopping because a
    /// graceful shutdown asked them to. A reactor that ended otherwise (it died) makes this false.
    pub fn is_healthy(&self) -> bool {
        let board = self.bus.board();
        self.bus.stopping() || (0..board.len()).all(|i| board.running(i))
    }

    pub(crate) fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Graceful shutdown: every reactor stops accepting, sends 1001 to each open connection and
    /// waits for the close handshakes up to the configured `shutdown_timeout`, then drops the
    /// rest. Returns at once; [`crate::Running::join`] waits for the end.
    pub fn shutdown(&self) {
        self.shutdown_within(self.shutdown_timeout);
    }

    /// As [`ServerHandle::shutdown`] with an explicit deadline.
    pub fn shutdown_within(&self, timeout: Duration) {
        self.bus.set_stopping();
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
        let topic: Arc<str> = topic.into();
        let r = self.bus.broadcast(&topic, &Arc::new(message));
        self.bus.to_broker(&topic, text, payload);
        r
    }
}
