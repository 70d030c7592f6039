//! Starting the reactors, and the thread-safe handle that reaches them.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Poll, Waker};

use crate::config::Config;
use crate::deflate::Deflater;
use crate::error::SendError;
use crate::handler::{Handler, Message, SendStatus};
use crate::reactor::{self, Reactor};
use crate::topic::Published;

/// Identifies a connection across threads. A stale id (its connection closed, the slot perhaps
/// reused) never reaches another connection: the generation in it no longer matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub(crate) reactor: u32,
    pub(crate) token: u64,
}

impl ConnId {
    /// Index of the reactor that owns the connection.
    pub fn reactor(&self) -> u32 {
        self.reactor
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.reactor,
            self.token & 0xffff_ffff,
            self.token >> 32
        )
    }
}

/// What other threads ask of a reactor.
pub(crate) enum Cmd {
    Send {
        token: u64,
        text: bool,
        payload: Vec<u8>,
        reply: Option<SyncSender<Result<SendStatus, SendError>>>,
    },
    Close {
        token: u64,
        code: u16,
        reason: String,
        reply: Option<SyncSender<Result<(), SendError>>>,
    },
    Shutdown {
        deadline: Instant,
    },
    Publish {
        topic: Arc<str>,
        message: Arc<Published>,
    },
}

struct Mailbox {
    tx: Sender<Cmd>,
    waker: Waker,
    /// Set by the first post after the reactor began draining, which alone wakes it: a burst of
    /// posts (publishes, sends) costs one wake-up syscall, not one each.
    woken: AtomicBool,
}

/// Reaches the reactors from any thread: cheap to clone.
#[derive(Clone)]
pub struct ServerHandle {
    mailboxes: Arc<Vec<Mailbox>>,
    shutdown_timeout: Duration,
    /// Publishes of at least this many bytes are compressed (once) when deflate is enabled.
    compress_at: Option<usize>,
    level: u32,
    /// Per reactor (each written by its own reactor only, on its own cache line): open
    /// connections that take the shared compressed copy of a publish. While every count is 0 a
    /// publish is not compressed at all.
    shared_deflate: Arc<Vec<OwnCount>>,
}

/// A counter written by one thread and read by others, alone on its cache line.
#[repr(align(64))]
#[derive(Default)]
pub(crate) struct OwnCount(AtomicUsize);

thread_local! {
    /// A publisher thread's compressor, so that a publish from any thread compresses once.
    static PUBLISH_DEFLATER: std::cell::RefCell<Option<Deflater>> = const { std::cell::RefCell::new(None) };
}

impl ServerHandle {
    /// Counts a connection of `reactor` that takes (`true`) or no longer takes the shared
    /// compressed copy of publishes. Called by that reactor only, once per connection open and
    /// close: never per message.
    pub(crate) fn count_shared_deflate(&self, reactor: u32, opened: bool) {
        if let Some(c) = self.shared_deflate.get(reactor as usize) {
            let n = c.0.load(Ordering::Relaxed);
            let n = if opened { n + 1 } else { n.saturating_sub(1) };
            c.0.store(n, Ordering::Relaxed);
        }
    }

    /// Whether a publish of `len` bytes is to be compressed: deflate on, long enough, and some
    /// open connection (on any reactor) takes the shared compressed copy.
    pub(crate) fn compress_publish(&self, len: usize) -> bool {
        self.compress_at.is_some_and(|n| len >= n)
            && self
                .shared_deflate
                .iter()
                .any(|c| c.0.load(Ordering::Relaxed) > 0)
    }

    fn post(&self, reactor: u32, cmd: Cmd) -> Result<(), SendError> {
        let mb = self
            .mailboxes
            .get(reactor as usize)
            .ok_or(SendError::StaleId)?;
        mb.tx.send(cmd).map_err(|_| SendError::ServerStopped)?;
        // AcqRel pairs with the reactor's swap in `begin_drain`: if the reactor cleared the flag
        // before this swap, this post wakes it; if not, its drain sees the command.
        if !mb.woken.swap(true, Ordering::AcqRel) {
            mb.waker.wake().map_err(|_| SendError::ServerStopped)?;
        }
        Ok(())
    }

    /// Called by `reactor` before it drains its mailbox: posts from now on wake it again.
    pub(crate) fn begin_drain(&self, reactor: u32) {
        if let Some(mb) = self.mailboxes.get(reactor as usize) {
            mb.woken.swap(false, Ordering::AcqRel);
        }
    }

    /// Called by `reactor` when it stopped draining with commands left: it wakes itself.
    pub(crate) fn wake_again(&self, reactor: u32) {
        if let Some(mb) = self.mailboxes.get(reactor as usize)
            && !mb.woken.swap(true, Ordering::AcqRel)
        {
            let _ = mb.waker.wake();
        }
    }

    /// Sends a message to a connection and waits for its reactor to queue it.
    ///
    /// # Errors
    /// [`SendError::StaleId`] if the connection is gone, [`SendError::Closed`] if it is closing,
    /// [`SendError::ServerStopped`], or [`SendError::WouldDeadlock`] when called on a reactor
    /// thread (use [`ServerHandle::send_nowait`] there).
    pub fn send(&self, id: ConnId, msg: Message<'_>) -> Result<SendStatus, SendError> {
        if reactor::on_reactor_thread() {
            return Err(SendError::WouldDeadlock);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.post(id.reactor, send_cmd(id, msg, Some(tx)))?;
        rx.recv().map_err(|_| SendError::ServerStopped)?
    }

    /// Sends without waiting: errors for stale ids are only logged (at debug level).
    ///
    /// # Errors
    /// [`SendError::ServerStopped`] when the reactor is gone.
    pub fn send_nowait(&self, id: ConnId, msg: Message<'_>) -> Result<(), SendError> {
        self.post(id.reactor, send_cmd(id, msg, None))
    }

    /// Starts the close handshake on a connection and waits for its reactor to do it.
    ///
    /// # Errors
    /// As [`ServerHandle::send`], plus invalid codes and long reasons.
    pub fn close(&self, id: ConnId, code: u16, reason: &str) -> Result<(), SendError> {
        if reactor::on_reactor_thread() {
            return Err(SendError::WouldDeadlock);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.post(
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
    /// rest. Returns at once; [`Running::join`] waits for the end.
    pub fn shutdown(&self) {
        self.shutdown_within(self.shutdown_timeout);
    }

    /// As [`ServerHandle::shutdown`] with an explicit deadline.
    pub fn shutdown_within(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for i in 0..self.mailboxes.len() {
            let _ = self.post(i as u32, Cmd::Shutdown { deadline });
        }
    }

    /// Number of reactors.
    pub fn reactors(&self) -> usize {
        self.mailboxes.len()
    }

    /// Publishes a message to `topic` from any thread: it is framed (and, when deflate is on and
    /// the message is long enough, compressed) once, here, and every reactor writes that one copy
    /// to its local subscribers, with the usual backpressure rules.
    ///
    /// # Errors
    /// [`SendError::ServerStopped`] when a reactor is gone.
    pub fn publish(&self, topic: &str, msg: Message<'_>) -> Result<(), SendError> {
        let (text, payload) = match msg {
            Message::Text(t) => (true, t.as_bytes()),
            Message::Binary(b) => (false, b),
        };
        let compress = self.compress_publish(payload.len());
        let message = if compress {
            PUBLISH_DEFLATER.with(|d| {
                let mut d = d.borrow_mut();
                let d = d.get_or_insert_with(|| Deflater::new(15, self.level));
                Published::new(text, payload, Some(d))
            })
        } else {
            Published::new(text, payload, None)
        };
        self.broadcast(None, topic.into(), Arc::new(message))
    }

    /// Hands a published message to every reactor but `skip`.
    pub(crate) fn broadcast(
        &self,
        skip: Option<u32>,
        topic: Arc<str>,
        message: Arc<Published>,
    ) -> Result<(), SendError> {
        for i in 0..self.mailboxes.len() as u32 {
            if Some(i) == skip {
                continue;
            }
            self.post(
                i,
                Cmd::Publish {
                    topic: topic.clone(),
                    message: message.clone(),
                },
            )?;
        }
        Ok(())
    }
}

fn send_cmd(
    id: ConnId,
    msg: Message<'_>,
    reply: Option<SyncSender<Result<SendStatus, SendError>>>,
) -> Cmd {
    let (text, payload) = match msg {
        Message::Text(t) => (true, t.as_bytes().to_vec()),
        Message::Binary(b) => (false, b.to_vec()),
    };
    Cmd::Send {
        token: id.token,
        text,
        payload,
        reply,
    }
}

/// A server: configuration plus handler.
pub struct Server<H: Handler> {
    config: Config,
    handler: H,
}

/// A started server.
pub struct Running {
    handle: ServerHandle,
    threads: Vec<JoinHandle<()>>,
    addr: SocketAddr,
}

impl<H: Handler> Server<H> {
    /// A server with this configuration and handler (cloned once per reactor).
    pub fn new(config: Config, handler: H) -> Server<H> {
        Server { config, handler }
    }

    /// Binds one `SO_REUSEPORT` listener per reactor (the first picks the port when it is 0)
    /// and starts the reactor threads.
    ///
    /// # Errors
    /// An invalid configuration (`InvalidInput`), or a failure to bind or to create a poll.
    pub fn start(self) -> io::Result<Running> {
        self.config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let first = crate::sys::reuseport_listener(self.config.listen, self.config.backlog)?;
        let addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..self.config.workers {
            listeners.push(crate::sys::reuseport_listener(addr, self.config.backlog)?);
        }
        // Every mailbox exists before any reactor starts, so reactors can reach each other.
        let mut mailboxes = Vec::new();
        let mut parts = Vec::new();
        for listener in listeners {
            let poll = Poll::new()?;
            let waker = Waker::new(poll.registry(), reactor::WAKER)?;
            let (tx, rx) = mpsc::channel();
            mailboxes.push(Mailbox {
                tx,
                waker,
                woken: AtomicBool::new(false),
            });
            parts.push((poll, listener, rx));
        }
        let deflate = &self.config.deflate;
        let handle = ServerHandle {
            mailboxes: Arc::new(mailboxes),
            shutdown_timeout: self.config.shutdown_timeout,
            compress_at: deflate.enabled.then_some(self.config.compress_threshold),
            level: self.config.compression_level,
            shared_deflate: Arc::new(
                (0..self.config.workers)
                    .map(|_| OwnCount::default())
                    .collect(),
            ),
        };
        let mut threads = Vec::new();
        for (i, (poll, listener, rx)) in parts.into_iter().enumerate() {
            let handler = self.handler.clone();
            let cfg = self.config.clone();
            let peers = handle.clone();
            // The reactor (and its slab of `H::Data`) is built on its own thread and never leaves it.
            threads.push(
                std::thread::Builder::new()
                    .name(format!("myriad-reactor-{i}"))
                    .spawn(move || {
                        match Reactor::new(i as u32, poll, listener, handler, cfg, rx, peers) {
                            Ok(r) => r.run(),
                            Err(e) => log::error!("reactor {i} failed to start: {e}"),
                        }
                    })?,
            );
        }
        Ok(Running {
            handle,
            threads,
            addr,
        })
    }

    /// Starts and blocks until the server stops.
    ///
    /// # Errors
    /// As [`Server::start`].
    pub fn run(self) -> io::Result<()> {
        self.start()?.join();
        Ok(())
    }
}

impl Running {
    /// The bound address (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle for other threads.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Waits for every reactor to stop (after a shutdown).
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }

    /// Shuts down gracefully and waits.
    pub fn shutdown(self) {
        self.handle.shutdown();
        self.join();
    }
}
