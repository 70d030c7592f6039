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
//! - [`head`]: reading HTTP requests (heads, bodies, pipelining);
//! - [`request`]: a plain request answered, or turned into a streamed response;
//! - [`fallback`]: SSE and long-poll sessions, polls and uplink POSTs;
//! - [`upgrade`]: the WebSocket upgrade, now or pending;
//! - [`read`]: a WebSocket's frames, through the session to the handler;
//! - [`lifecycle`]: failing, ending, and `on_close`;
//! - [`timers`]: the wheel's expiries;
//! - [`commands`]: the mailbox and graceful shutdown;
//! - [`reclaim`]: freeing slots and memory.

mod accept;
mod commands;
mod fallback;
mod guard;
mod head;
mod lifecycle;
mod read;
mod reclaim;
mod request;
mod timers;
mod upgrade;

use std::io;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll};

use crate::config::Config;
use crate::conn::Kind;
use crate::handle::ServerHandle;
use crate::handler::Handler;
use crate::id::Token;
use crate::mailbox::{Inbox, mark_reactor_thread};
use crate::proto::close;
use crate::proto::decoder::Decoder;
use crate::shard::Shard;
use crate::stats::LOOP_BUCKETS;

/// How often reactor 0 logs a one-line summary (while the counts change).
const SUMMARY_EVERY: Duration = Duration::from_secs(10);

pub(crate) use guard::install_hook as install_panic_hook;

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
    /// The most bytes held buffered since memory was last given back.
    buffered_peak: u64,
    /// Reactor 0's summary log: when it is next due, and the totals it last logged.
    next_summary: Instant,
    summarized: (u64, u64, u64),
}

impl<H: Handler> Reactor<H> {
    pub(crate) fn new(
        id: u32,
        poll: Poll,
        listener: std::net::TcpListener,
        handler: H,
        cfg: Config,
        inbox: Inbox,
        handle: ServerHandle,
    ) -> io::Result<Reactor<H>> {
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let registry = poll.registry().try_clone()?;
        let recv = vec![0u8; cfg.recv_buffer];
        let shard = Shard::new(id, cfg, registry, handle);
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
            buffered_peak: 0,
            next_summary: Instant::now() + SUMMARY_EVERY,
            summarized: (0, 0, 0),
        })
    }

    /// Runs until shut down.
    pub(crate) fn run(mut self) {
        mark_reactor_thread();
        // Marks the reactor stopped when this returns, and also if it unwinds (a bug of ours:
        // handler panics are caught), so that health checks see a reactor that died.
        struct Stopped(crate::mailbox::Bus, u32);
        impl Drop for Stopped {
            fn drop(&mut self) {
                self.0.board().set_running(self.1, false);
            }
        }
        let _stopped = Stopped(self.shard.bus.clone(), self.shard.reactor);
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
            let woke = Instant::now();
            self.shard.now = woke;
            // Control commands first: a topic's first subscriber on another reactor was
            // announced before its client could have asked anyone to publish to it, so a publish
            // read in this iteration finds the announcement already applied.
            while let Some(cmd) = self.inbox.next_control() {
                self.command(cmd);
            }
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
            self.post_stats(woke);
            if let Some(at) = self.shutdown_at
                && (self.shard.conns.is_empty() || self.shard.now >= at)
            {
                self.force_close_all();
                break;
            }
        }
        self.post_stats(Instant::now());
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
        if !self.shard.readable.is_empty() || !self.shard.poll_ready.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut t = self.shard.wheel.next_timeout(now);
        let reclaim = self.reclaim_due.then_some(self.next_reclaim);
        for at in [
            self.accept_paused_until,
            self.shutdown_at,
            reclaim,
            self.shard.batch_due,
        ]
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
            Kind::Stream(ref s) if s.mode == crate::conn::Mode::Poll => self.read_parked(key),
            Kind::Stream(_) => self.read_discard(key),
        }
    }

    /// A streamed response's client has nothing more to say: what it sends is discarded; its
    /// FIN ends the stream.
    fn read_discard(&mut self, key: usize) {
        loop {
            let Reactor {
                shard,
                recv,
                handler,
                ..
            } = self;
            let want = recv.len();
            match shard.recv(key, recv, want) {
                Ok(got) if got.eof => {
                    lifecycle::end(shard, handler, key, "client went away");
                    return;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    lifecycle::end(shard, handler, key, "read failed");
                    return;
                }
            }
        }
    }

    /// A poll parked on its session has nothing to say: whatever comes (its FIN, or bytes it
    /// should not have sent) ends the poll; the session waits for the next one.
    fn read_parked(&mut self, key: usize) {
        let Reactor { shard, recv, .. } = self;
        let want = recv.len();
        match shard.recv(key, recv, want) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            _ => shard.drop_parked(key),
        }
    }

    /// Counts the iteration that began at `woke` and posts the counts for other threads;
    /// reactor 0 logs a summary now and then, while the counts change.
    fn post_stats(&mut self, woke: Instant) {
        let took = woke.elapsed();
        let secs = took.as_secs_f64();
        let stats = &mut self.shard.stats;
        let bucket = LOOP_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(LOOP_BUCKETS.len());
        stats.loop_buckets[bucket] += 1;
        stats.loop_nanos += took.as_nanos() as u64;
        self.shard.post_stats();
        if self.shard.reactor == 0 && self.shard.now >= self.next_summary {
            self.next_summary = self.shard.now + SUMMARY_EVERY;
            let t = self.shard.handle.stats().total;
            let now = (t.connections, t.messages_received, t.messages_sent);
            if now != self.summarized {
                let per = SUMMARY_EVERY.as_secs_f64();
                info!(
                    "{} connections, {:.0} messages/s in, {:.0} messages/s out",
                    t.connections,
                    (t.messages_received - self.summarized.1) as f64 / per,
                    (t.messages_sent - self.summarized.2) as f64 / per
                );
                self.summarized = now;
            }
        }
    }

    /// Handles what the send path recorded: broken sockets, backpressure closes, drains.
    fn settle(&mut self) {
        self.shard.flush_batch_if_due();
        fallback::answer_ready(&mut self.shard);
        self.shard.flush_cork();
        while !self.shard.broken.is_empty()
            || !self.shard.drained.is_empty()
            || !self.shard.dropped.is_empty()
        {
            for (key, code, why) in std::mem::take(&mut self.shard.broken) {
                if !self.shard.conns.contains(key) {
                    continue;
                }
                if code == close::ABNORMAL {
                    lifecycle::end(&mut self.shard, &mut self.handler, key, why);
                } else {
                    lifecycle::fail(&mut self.shard, &mut self.handler, key, code, why);
                }
            }
            for key in std::mem::take(&mut self.shard.drained) {
                if self.shard.conns.get(key).is_some_and(|c| c.is_open()) {
                    lifecycle::call(
                        &mut self.shard,
                        &mut self.handler,
                        key,
                        "on_drain",
                        |h, ws| {
                            h.on_drain(ws);
                        },
                    );
                }
            }
            let dropped: Vec<(usize, u64)> = self.shard.dropped.drain().collect();
            for (key, n) in dropped {
                if self.shard.conns.get(key).is_some_and(|c| c.is_open()) {
                    lifecycle::call(
                        &mut self.shard,
                        &mut self.handler,
                        key,
                        "on_dropped",
                        |h, ws| {
                            h.on_dropped(ws, n);
                        },
                    );
                }
            }
            fallback::answer_ready(&mut self.shard);
            self.shard.flush_cork();
        }
    }
}
