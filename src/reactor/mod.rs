//! One reactor per core: a mio `Poll`, a `SO_REUSEPORT` listener, a [`Shard`] (connections,
//! send path, timers, topics), one receive buffer and a spare decoder, all owned by one thread.
//! The reactor is the composition root: the only place that calls the [`Handler`].
//!
//! Per iteration: poll; accept; read each ready socket up to the per-event budget (a socket with
//! bytes left goes on the still-readable list, served before the next poll); decode in place and
//! call the handler; flush the cork once per read; write pending output on writable events; run
//! the mailbox; expire timers; free the slots of connections that died during the iteration.
//!
//! - [`accept`]: new sockets;
//! - [`head`]: a connection's HTTP head and the upgrade;
//! - [`read`]: a WebSocket's frames, through the session to the handler;
//! - [`lifecycle`]: failing, ending, and `on_close`;
//! - [`timers`]: the wheel's expiries;
//! - [`commands`]: the mailbox and graceful shutdown;
//! - [`reclaim`]: freeing slots and memory.

mod accept;
mod commands;
mod head;
mod lifecycle;
mod read;
mod reclaim;
mod timers;

use std::io;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll};

use crate::config::Config;
use crate::conn::Kind;
use crate::handler::Handler;
use crate::id::Token;
use crate::mailbox::{Bus, Inbox, mark_reactor_thread};
use crate::proto::close;
use crate::proto::decoder::Decoder;
use crate::shard::Shard;
use crate::ws::Ws;

pub(crate) const LISTENER: mio::Token = mio::Token(usize::MAX);
pub(crate) const WAKER: mio::Token = mio::Token(usize::MAX - 1);

/// A reactor and its thread's state.
pub(crate) struct Reactor<H: Handler> {
    poll: Poll,
    listener: Option<TcpListener>,
    handler: H,
    shard: Shard<H::Data>,
    /// The one receive buffer: every read lands here and is decoded in place.
    recv: Vec<u8>,
    /// The decoder lent to a connection with nothing in progress; it moves into the connection
    /// (boxed) only when a read leaves bytes over.
    spare: Decoder,
    inbox: Inbox,
    shutdown_at: Option<Instant>,
    accept_paused_until: Option<Instant>,
    next_reclaim: Instant,
    reclaim_due: bool,
}

impl<H: Handler> Reactor<H> {
    pub(crate) fn new(
        id: u32,
        poll: Poll,
        listener: std::net::TcpListener,
        handler: H,
        cfg: Config,
        inbox: Inbox,
        bus: Bus,
    ) -> io::Result<Reactor<H>> {
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let registry = poll.registry().try_clone()?;
        let recv = vec![0u8; cfg.recv_buffer];
        let shard = Shard::new(id, cfg, registry, bus);
        Ok(Reactor {
            poll,
            listener: Some(listener),
            handler,
            next_reclaim: shard.now,
            shard,
            recv,
            spare: Decoder::new(),
            inbox,
            shutdown_at: None,
            accept_paused_until: None,
            reclaim_due: false,
        })
    }

    /// Runs until shut down.
    pub(crate) fn run(mut self) {
        mark_reactor_thread();
        let mut events = Events::with_capacity(1024);
        let mut expired = Vec::new();
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                warn!("reactor {}: poll failed: {e}", self.shard.reactor);
                break;
            }
            self.shard.now = Instant::now();
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => self.run_mailbox(),
                    mio::Token(t) => {
                        let token = Token(t as u64);
                        if !self.shard.is_live(token) {
                            continue;
                        }
                        let key = token.key();
                        if ev.is_writable() {
                            self.shard.write_pending(key);
                        }
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            // The peer's FIN (or an error) is reported once, possibly with the
                            // last data: read past a short read to see it (BAD_INPUTS 42).
                            let drain = ev.is_read_closed() || ev.is_error();
                            self.on_readable(key, drain);
                        }
                    }
                }
                self.settle();
            }
            if self
                .accept_paused_until
                .is_some_and(|t| t <= self.shard.now)
            {
                self.accept_paused_until = None;
                self.accept();
            }
            // Sockets left with unread bytes get another budget before the next poll.
            let again = std::mem::take(&mut self.shard.readable);
            for token in again {
                if self.shard.is_live(token) {
                    self.shard.conns[token.key()].flags.set_queued_read(false);
                    // The event that left bytes behind may have carried the FIN: read to the end.
                    self.on_readable(token.key(), true);
                    self.settle();
                }
            }
            self.expire_timers(&mut expired);
            self.settle();
            self.free_dead();
            if let Some(at) = self.shutdown_at
                && (self.shard.conns.is_empty() || self.shard.now >= at)
            {
                self.force_close_all();
                break;
            }
        }
        let s = &self.shard;
        if s.published > 0 || s.streams.compressions > 0 {
            info!(
                "reactor {}: {} publishes, {} deliveries, {} compressions",
                s.reactor, s.published, s.deliveries, s.streams.compressions
            );
        }
        debug!("reactor {} stopped", self.shard.reactor);
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.shard.readable.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut t = self.shard.wheel.next_timeout(now);
        let reclaim = self.reclaim_due.then_some(self.next_reclaim);
        for at in [self.accept_paused_until, self.shutdown_at, reclaim]
            .into_iter()
            .flatten()
        {
            let d = at.saturating_duration_since(now);
            t = Some(t.map_or(d, |t| t.min(d)));
        }
        t
    }

    /// The connection's socket has bytes (or its FIN): read them as its kind reads.
    fn on_readable(&mut self, key: usize, drain: bool) {
        let conn = &self.shard.conns[key];
        if conn.flags.dead() {
            return;
        }
        match conn.kind {
            Kind::Head => self.read_head(key, drain),
            Kind::WebSocket(_) => self.read_frames(key, drain),
        }
    }

    /// Handles what the send path recorded: broken sockets, backpressure closes, drains.
    fn settle(&mut self) {
        self.shard.flush_batch();
        self.shard.flush_cork();
        while !self.shard.broken.is_empty() || !self.shard.drained.is_empty() {
            for (key, code) in std::mem::take(&mut self.shard.broken) {
                if !self.shard.conns.contains(key) {
                    continue;
                }
                if code == close::ABNORMAL {
                    lifecycle::end(&mut self.shard, &mut self.handler, key, "write failed");
                } else {
                    lifecycle::fail(
                        &mut self.shard,
                        &mut self.handler,
                        key,
                        code,
                        "backpressure limit",
                    );
                }
            }
            for key in std::mem::take(&mut self.shard.drained) {
                if self.shard.conns.get(key).is_some_and(|c| c.is_open()) {
                    self.handler.on_drain(&mut Ws::new(&mut self.shard, key));
                }
            }
            self.shard.flush_cork();
        }
    }
}
