//! How threads reach a reactor: each reactor has a mailbox (a queue of [`Cmd`] and a `Waker`),
//! and [`Bus`] holds every reactor's mailbox plus the few counters reactors publish to each
//! other. Reactors use the bus to reach their peers; [`crate::ServerHandle`] wraps it for the
//! application. Nothing here is touched per message on a reactor's hot path but the queue.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::time::Instant;

use mio::Waker;

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
}

impl Cmd {
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

/// One reactor's mailbox, seen from other threads.
struct Mailbox {
    tx: Sender<Cmd>,
    waker: Waker,
    /// Set by the first post after the reactor began draining, which alone wakes it: a burst of
    /// posts (publishes, sends) costs one wake-up syscall, not one each.
    woken: AtomicBool,
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
}

/// The receiving end of a reactor's mailbox, kept by the reactor.
pub(crate) type Inbox = Receiver<Cmd>;

impl Bus {
    /// A bus over `wakers` (one per reactor, in reactor order); returns it and each reactor's
    /// inbox.
    pub(crate) fn new(wakers: Vec<Waker>, compress_at: Option<usize>) -> (Bus, Vec<Inbox>) {
        let mut mailboxes = Vec::with_capacity(wakers.len());
        let mut inboxes = Vec::with_capacity(wakers.len());
        for waker in wakers {
            let (tx, rx) = std::sync::mpsc::channel();
            mailboxes.push(Mailbox {
                tx,
                waker,
                woken: AtomicBool::new(false),
            });
            inboxes.push(rx);
        }
        let counts = (0..mailboxes.len()).map(|_| OwnCount::default()).collect();
        let bus = Bus {
            mailboxes: Arc::new(mailboxes),
            shared_deflate: Arc::new(counts),
            compress_at,
        };
        (bus, inboxes)
    }

    /// Number of reactors.
    pub(crate) fn reactors(&self) -> usize {
        self.mailboxes.len()
    }

    /// Posts `cmd` to `reactor` and wakes it unless a wake-up is already on its way.
    pub(crate) fn post(&self, reactor: u32, cmd: Cmd) -> Result<(), SendError> {
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

    /// Hands a published message to every reactor but `skip`.
    pub(crate) fn broadcast(
        &self,
        skip: Option<u32>,
        topic: &Arc<str>,
        message: &Arc<Published>,
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

/// The next command waiting in `inbox`, if any. `None` also when every sender is gone: then
/// nobody can ask for anything more.
pub(crate) fn next(inbox: &Inbox) -> Option<Cmd> {
    inbox.try_recv().ok()
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
