//! How threads reach a reactor: each reactor has a mailbox (a queue of [`Cmd`] and a `Waker`),
//! and [`Bus`] holds every reactor's mailbox plus the few counters reactors publish to each
//! other. Reactors use the bus to reach their peers; [`crate::ServerHandle`] wraps it for the
//! application. Nothing here is touched per message on a reactor's hot path but the queue.

use std::any::Any;
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TrySendError};
use std::time::Instant;

use mio::Waker;

use crate::board::Board;
use crate::error::SendError;
use crate::id::{ConnId, Token};
use crate::message::{Message, SendStatus};
use crate::published::Published;

/// What other threads ask of a reactor.
pub(crate) enum Cmd {
    Send {
        token: Token,
        text: bool,
        payload: Vec<u8>,
        reply: Option<SyncSender<Result<SendStatus, SendError>>>,
    },
    Close {
        token: Token,
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
    /// The answer to a pending upgrade: an `Accept<H::Data>`, boxed to cross threads.
    Accept {
        token: Token,
        accept: Box<dyn Any + Send>,
    },
    /// The refusal of a pending upgrade.
    Reject {
        token: Token,
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// How many subscribers `topic` has on this reactor.
    Subscribers {
        topic: String,
        reply: SyncSender<usize>,
    },
    /// Reactor `reactor` gained its first subscriber of `topic` (`on`) or lost its last: where
    /// this reactor's publishes to it must go.
    Interest {
        topic: Box<str>,
        reactor: u32,
        on: bool,
    },
    /// A request for a fallback session of this reactor came to another: its connection (the
    /// socket, its TLS state) and the request, to be answered here.
    Adopt {
        socket: Box<crate::transport::Moving>,
        head: Vec<u8>,
        body: Vec<u8>,
    },
}

impl Cmd {
    /// Commands that must not be dropped when the mailbox is full: they travel on an unbounded
    /// queue of their own (they are rare: one per close, shutdown, answer, or a topic's first
    /// and last subscriber on a reactor).
    fn is_control(&self) -> bool {
        !matches!(self, Cmd::Send { .. } | Cmd::Publish { .. })
    }

    /// A send of `msg` to connection `id` (the payload copied: it crosses threads).
    pub(crate) fn send(
        id: ConnId,
        msg: Message<'_>,
        reply: Option<SyncSender<Result<SendStatus, SendError>>>,
    ) -> Cmd {
        Cmd::Send {
            token: id.token,
            text: msg.is_text(),
            payload: msg.as_bytes().to_vec(),
            reply,
        }
    }
}

/// The way out of the process for publishes (the broker bridge, `Config::broker`): told of
/// every publish made here and of each reactor's first and last subscriber of a topic. Never
/// waits.
pub(crate) trait Uplink: Send + Sync {
    /// A publish made in this process, for the other nodes.
    fn publish(&self, topic: &Arc<str>, text: bool, payload: &[u8]);
    /// Reactor `reactor` gained its first (`on`) or lost its last subscriber of `topic`.
    fn interest(&self, reactor: u32, topic: &str, on: bool);
    /// The server is stopping.
    fn stop(&self);
    /// Its counts.
    fn stats(&self) -> crate::stats::BrokerStats;
}

/// One reactor's mailbox, seen from other threads: a bounded queue for sends and publishes (a
/// reactor that falls behind cannot make the others grow memory), an unbounded one for control.
struct Mailbox {
    data: SyncSender<Cmd>,
    control: Sender<Cmd>,
    waker: Waker,
    /// Set by the first post after the reactor began draining, which alone wakes it: a burst of
    /// posts (publishes, sends) costs one wake-up syscall, not one each.
    woken: AtomicBool,
    /// Commands dropped because the bounded queue was full (counted by the posters, on that path
    /// only).
    dropped: AtomicU64,
}

/// A counter written by one thread and read by others, alone on its cache line.
#[repr(align(64))]
#[derive(Default)]
struct OwnCount(AtomicUsize);

/// Every reactor's mailbox, and what reactors tell each other. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Bus {
    mailboxes: Arc<Vec<Mailbox>>,
    /// Per reactor (each written by its own reactor only, on its own cache line): open
    /// connections that take the shared compressed copy of a publish. While every count is 0 a
    /// publish is not compressed at all.
    shared_deflate: Arc<Vec<OwnCount>>,
    /// Publishes of at least this many bytes are compressed (once) when deflate is enabled.
    compress_at: Option<usize>,
    /// Each reactor's counts.
    board: Arc<Board>,
    /// Set when a graceful shutdown began.
    stopping: Arc<AtomicBool>,
    /// The broker bridge, if the server has one.
    uplink: Option<Arc<dyn Uplink>>,
}

/// The receiving end of a reactor's mailbox, kept by the reactor.
pub(crate) struct Inbox {
    data: Receiver<Cmd>,
    control: Receiver<Cmd>,
}

impl Inbox {
    /// The next control command waiting (announcements, shutdown, answers), if any.
    pub(crate) fn next_control(&self) -> Option<Cmd> {
        self.control.try_recv().ok()
    }

    /// The next command waiting, control first. `None` also when every sender is gone: then
    /// nobody can ask for anything more.
    pub(crate) fn next(&self) -> Option<Cmd> {
        self.control
            .try_recv()
            .ok()
            .or_else(|| self.data.try_recv().ok())
    }
}

impl Bus {
    /// A bus over `wakers` (one per reactor, in reactor order); returns it and each reactor's
    /// inbox.
    pub(crate) fn new(
        wakers: Vec<Waker>,
        compress_at: Option<usize>,
        capacity: usize,
        uplink: Option<Arc<dyn Uplink>>,
    ) -> (Bus, Vec<Inbox>) {
        let mut mailboxes = Vec::with_capacity(wakers.len());
        let mut inboxes = Vec::with_capacity(wakers.len());
        for waker in wakers {
            let (data, data_rx) = std::sync::mpsc::sync_channel(capacity);
            let (control, control_rx) = std::sync::mpsc::channel();
            mailboxes.push(Mailbox {
                data,
                control,
                waker,
                woken: AtomicBool::new(false),
                dropped: AtomicU64::new(0),
            });
            inboxes.push(Inbox {
                data: data_rx,
                control: control_rx,
            });
        }
        let counts = (0..mailboxes.len()).map(|_| OwnCount::default()).collect();
        let bus = Bus {
            board: Arc::new(Board::new(mailboxes.len())),
            mailboxes: Arc::new(mailboxes),
            shared_deflate: Arc::new(counts),
            compress_at,
            stopping: Arc::new(AtomicBool::new(false)),
            uplink,
        };
        (bus, inboxes)
    }

    /// Number of reactors.
    pub(crate) fn reactors(&self) -> usize {
        self.mailboxes.len()
    }

    /// Each reactor's counts.
    pub(crate) fn board(&self) -> &Board {
        &self.board
    }

    /// Records that a graceful shutdown began (the broker bridge stops too).
    pub(crate) fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
        if let Some(u) = &self.uplink {
            u.stop();
        }
    }

    /// Hands a publish made in this process to the broker bridge, if there is one.
    pub(crate) fn to_broker(&self, topic: &Arc<str>, text: bool, payload: &[u8]) {
        if let Some(u) = &self.uplink {
            u.publish(topic, text, payload);
        }
    }

    /// The broker bridge's counts, if there is one.
    pub(crate) fn broker_stats(&self) -> Option<crate::stats::BrokerStats> {
        self.uplink.as_ref().map(|u| u.stats())
    }

    /// Whether a graceful shutdown began.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Posts `cmd` to `reactor` and wakes it unless a wake-up is already on its way. Never
    /// waits: a full queue drops the command (and counts it).
    ///
    /// # Errors
    /// [`SendError::MailboxFull`], [`SendError::ServerStopped`] when the reactor is gone,
    /// [`SendError::StaleId`] for a reactor that does not exist.
    pub(crate) fn post(&self, reactor: u32, cmd: Cmd) -> Result<(), SendError> {
        let mb = self
            .mailboxes
            .get(reactor as usize)
            .ok_or(SendError::StaleId)?;
        if cmd.is_control() {
            mb.control.send(cmd).map_err(|_| SendError::ServerStopped)?;
        } else {
            match mb.data.try_send(cmd) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    mb.dropped.fetch_add(1, Ordering::Relaxed);
                    return Err(SendError::MailboxFull);
                }
                Err(TrySendError::Disconnected(_)) => return Err(SendError::ServerStopped),
            }
        }
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

    /// Hands a published message to every reactor (a publish from another thread, which knows
    /// nothing of who subscribes where). A reactor whose mailbox is full misses it (counted); a
    /// reactor that is gone is skipped: the others still get it.
    ///
    /// # Errors
    /// [`SendError::ServerStopped`] only when every reactor is gone.
    pub(crate) fn broadcast(
        &self,
        topic: &Arc<str>,
        message: &Arc<Published>,
    ) -> Result<(), SendError> {
        let mut alive = false;
        for i in 0..self.mailboxes.len() as u32 {
            let cmd = Cmd::Publish {
                topic: topic.clone(),
                message: message.clone(),
            };
            alive |= self.post(i, cmd) != Err(SendError::ServerStopped);
        }
        if alive {
            Ok(())
        } else {
            Err(SendError::ServerStopped)
        }
    }

    /// Hands a message published on reactor `from` to the other reactors in `interested` (a
    /// bit per reactor; reactors past 64 always get it). Misses are counted by the mailbox.
    pub(crate) fn post_publish(
        &self,
        from: u32,
        interested: u64,
        topic: &Arc<str>,
        message: &Arc<Published>,
    ) {
        for i in 0..self.mailboxes.len() as u32 {
            if i == from || (i < 64 && interested & (1 << i) == 0) {
                continue;
            }
            let cmd = Cmd::Publish {
                topic: topic.clone(),
                message: message.clone(),
            };
            let _ = self.post(i, cmd);
        }
    }

    /// Tells every reactor but `from` (and the broker bridge) that `from` gained (`on`) or lost
    /// its subscribers of `topic`.
    pub(crate) fn announce(&self, from: u32, topic: Box<str>, on: bool) {
        if let Some(u) = &self.uplink {
            u.interest(from, &topic, on);
        }
        for i in 0..self.mailboxes.len() as u32 {
            if i != from {
                let cmd = Cmd::Interest {
                    topic: topic.clone(),
                    reactor: from,
                    on,
                };
                let _ = self.post(i, cmd);
            }
        }
    }

    /// Commands dropped because reactor `i`'s mailbox was full.
    pub(crate) fn mailbox_dropped(&self, i: usize) -> u64 {
        self.mailboxes
            .get(i)
            .map_or(0, |m| m.dropped.load(Ordering::Relaxed))
    }

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
}

thread_local! {
    static ON_REACTOR: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as a reactor thread.
pub(crate) fn mark_reactor_thread() {
    ON_REACTOR.with(|c| c.set(true));
}

/// Whether the calling thread is a reactor thread (where waiting for a reactor would deadlock).
pub(crate) fn on_reactor_thread() -> bool {
    ON_REACTOR.with(Cell::get)
}
