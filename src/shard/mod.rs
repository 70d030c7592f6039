//! A shard: everything one reactor owns that a callback may reach through [`crate::Ws`]: the
//! slab of connections, the send path (cork, backpressure, the byte seam), the timing wheel, the
//! deflate streams and the topics. It never calls the application; the reactor does, and hands
//! the shard to the callback.
//!
//! - this file: the shard itself, admission, timers and the effects of a session's decisions;
//! - [`send`]: the send path;
//! - [`fanout`]: pub/sub delivery.

mod fanout;
mod send;

use std::io::{self, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::debug;
use mio::net::TcpStream;
use mio::{Interest, Registry};
use slab::Slab;

pub(crate) use send::Out;

use crate::config::Config;
use crate::conn::{Conn, Kind};
use crate::deflate::Streams;
use crate::http;
use crate::id::Token;
use crate::mailbox::Bus;
use crate::pool::Pool;
use crate::proto::Limits;
use crate::proto::mask::Kernel;
use crate::proto::session::{Effects, Finish, Report, Session, Timer};
use crate::published::Published;
use crate::timer::Wheel;
use crate::topics::Topics;

/// One reactor's connections and everything they share.
pub(crate) struct Shard<D> {
    pub(crate) conns: Slab<Conn<D>>,
    pub(crate) cfg: Config,
    /// What the decoder accepts, built once from `cfg`.
    pub(crate) limits: Limits,
    pub(crate) reactor: u32,
    pub(crate) kernel: Kernel,
    pub(crate) pool: Pool,
    /// Output of one connection corked during a callback batch, written in one syscall.
    cork: Vec<u8>,
    cork_owner: Option<usize>,
    pub(crate) wheel: Wheel,
    pub(crate) now: Instant,
    registry: Registry,
    next_generation: u32,
    pending_handshakes: usize,
    /// Died this iteration; slots freed at its end.
    pub(crate) dead: Vec<usize>,
    /// Write failed (code 1006), or over the backpressure limit with policy Close: (key, code).
    pub(crate) broken: Vec<(usize, u16)>,
    /// Output drained: `on_drain` owed.
    pub(crate) drained: Vec<usize>,
    /// Still had bytes when the read budget ran out.
    pub(crate) readable: Vec<Token>,
    /// permessage-deflate streams and per-connection state.
    pub(crate) streams: Streams,
    /// Scratch for inflated and deflated messages (taken out while in use).
    pub(crate) inflated: Vec<u8>,
    deflated: Vec<u8>,
    /// Scratch for the 101 answer and its extension header.
    pub(crate) http_scratch: Vec<u8>,
    pub(crate) ext_scratch: String,
    /// Pub/sub topics of this reactor.
    pub(crate) topics: Topics,
    /// Publishes queued for this reactor's subscribers, in order: (topic id, message). Written
    /// per subscriber in one writev by `flush_batch`.
    batch: Vec<(u32, Arc<Published>)>,
    /// Scratch for `flush_batch`: the batch indices one subscriber receives.
    batch_order: Vec<u32>,
    /// The other reactors.
    pub(crate) bus: Bus,
    /// Publishes that reached this reactor, and the deliveries they made (logged at stop).
    pub(crate) published: u64,
    pub(crate) deliveries: u64,
}

impl<D> Shard<D> {
    pub(crate) fn new(reactor: u32, cfg: Config, registry: Registry, bus: Bus) -> Shard<D> {
        let now = Instant::now();
        Shard {
            conns: Slab::new(),
            limits: cfg.limits(),
            reactor,
            kernel: Kernel::detect(),
            pool: Pool::new(256),
            cork: Vec::with_capacity(send::CORK_CAP),
            cork_owner: None,
            wheel: Wheel::new(now),
            now,
            registry,
            next_generation: 1,
            pending_handshakes: 0,
            dead: Vec::new(),
            broken: Vec::new(),
            drained: Vec::new(),
            readable: Vec::new(),
            streams: Streams::new(cfg.compression_level),
            inflated: Vec::new(),
            deflated: Vec::new(),
            http_scratch: Vec::with_capacity(512),
            ext_scratch: String::with_capacity(160),
            topics: Topics::default(),
            batch: Vec::new(),
            batch_order: Vec::new(),
            bus,
            published: 0,
            deliveries: 0,
            cfg,
        }
    }

    /// Whether `token` names a connection that is still there.
    pub(crate) fn is_live(&self, token: Token) -> bool {
        self.conns
            .get(token.key())
            .is_some_and(|c| c.generation == token.generation() && !c.flags.dead())
    }

    /// The slab key of a live connection.
    pub(crate) fn lookup(&self, token: Token) -> Option<usize> {
        self.is_live(token).then_some(token.key())
    }

    /// The token of connection `key`.
    pub(crate) fn token(&self, key: usize) -> Token {
        Token::new(key, self.conns[key].generation)
    }

    /// Takes a new socket into the slab.
    pub(crate) fn admit(&mut self, mut socket: TcpStream) {
        if self.pending_handshakes >= self.cfg.max_pending_handshakes {
            // BAD_INPUTS 10, 57: too many handshakes in flight.
            let mut out = Vec::new();
            http::write_reject(&mut out, 503, &[]);
            let _ = socket.write(&out);
            return;
        }
        if self.conns.len() >= u32::MAX as usize - 2 {
            return;
        }
        let _ = socket.set_nodelay(true);
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1).max(1);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let token = Token::new(key, generation);
        if let Err(e) = self.registry.register(
            &mut socket,
            mio::Token(token.0 as usize),
            Interest::READABLE,
        ) {
            debug!("register: {e}");
            return;
        }
        let mut conn = Conn::new(socket, generation);
        conn.flags.set_pending(true);
        entry.insert(conn);
        self.pending_handshakes += 1;
        let timeout = self.cfg.handshake_timeout;
        self.arm(key, timeout);
    }

    /// The upgrade is accepted: the connection becomes a WebSocket.
    pub(crate) fn open(&mut self, key: usize, ws: crate::conn::WebSocket<D>) {
        if ws.deflate.is_some_and(|a| a.takes_shared()) {
            self.bus.count_shared_deflate(self.reactor, true);
        }
        let conn = &mut self.conns[key];
        conn.kind = Kind::WebSocket(ws);
        if conn.flags.pending() {
            conn.flags.set_pending(false);
            self.pending_handshakes -= 1;
        }
    }

    /// Sets the connection's deadline `after` from now, or at its message deadline if earlier.
    pub(crate) fn arm(&mut self, key: usize, after: Duration) {
        let mut tick = self.wheel.deadline(self.now, after);
        if let Some(m) = self.conns[key].message_deadline() {
            tick = tick.min(m);
        }
        self.arm_tick(key, tick);
    }

    /// Sets the connection's deadline to `tick`. Pushing it later is a store; the wheel finds out
    /// when the old slot comes round.
    pub(crate) fn arm_tick(&mut self, key: usize, tick: u32) {
        let conn = &mut self.conns[key];
        let earlier = tick < conn.deadline;
        conn.deadline = tick;
        if !conn.flags.in_wheel() || earlier {
            conn.flags.set_in_wheel(true);
            let t = Token::new(key, conn.generation);
            self.wheel.insert(tick, t.0);
        }
    }

    fn arm_timer(&mut self, key: usize, timer: Timer) {
        let after = match timer {
            Timer::Idle => self.cfg.idle_timeout / 2,
            Timer::Close => self.cfg.close_timeout,
        };
        self.arm(key, after);
    }

    /// Bytes arrived: push the idle deadline back (a store, no wheel work; BAD_INPUTS 63).
    pub(crate) fn touch(&mut self, key: usize) {
        let idle = !self.cfg.idle_timeout.is_zero();
        let timer = self.conns[key]
            .ws_mut()
            .and_then(|ws| ws.session.on_activity(idle));
        if let Some(t) = timer {
            self.arm_timer(key, t);
        }
    }

    /// Runs `f` on connection `key`'s session with its send path; `None` if it is no WebSocket.
    pub(crate) fn with_session<R>(
        &mut self,
        key: usize,
        f: impl FnOnce(&mut Session, &mut Out<'_, D>) -> R,
    ) -> Option<R> {
        let mut session = self.conns[key].session()?;
        let r = f(&mut session, &mut Out { shard: self, key });
        if let Some(ws) = self.conns[key].ws_mut() {
            ws.session = session;
        }
        Some(r)
    }

    /// Carries out a session's decision about timers and TCP; returns the report the caller owes
    /// the application.
    pub(crate) fn apply<'a>(&mut self, key: usize, fx: Effects<'a>) -> Option<Report<'a>> {
        if let Some(t) = fx.timer {
            self.arm_timer(key, t);
        }
        match fx.finish {
            None => {}
            Some(Finish::AfterFlush) => {
                let conn = &mut self.conns[key];
                conn.flags.set_linger(true);
                conn.rx = None;
                self.flush_cork();
                if self.conns[key].buffered() == 0 {
                    self.kill(key);
                }
            }
            Some(Finish::Drain) => {
                let conn = &mut self.conns[key];
                conn.flags.set_drain(true);
                conn.rx = None;
                self.flush_cork();
                self.shutdown_if_flushed(key);
            }
            Some(Finish::Now) => self.kill(key),
        }
        fx.report
    }

    /// Once a draining connection's output has left: shut our write side (RFC 6455 §7.1.1).
    pub(crate) fn shutdown_if_flushed(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.flags.drain() && conn.buffered() == 0 {
            let _ = conn.socket.shutdown(Shutdown::Write);
        }
    }

    /// Marks a connection dead; its slot is freed at the end of the iteration.
    pub(crate) fn kill(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.flags.dead() {
            return;
        }
        if conn.flags.pending() {
            conn.flags.set_pending(false);
            self.pending_handshakes -= 1;
        }
        conn.flags.set_dead(true);
        if self.cork_owner == Some(key) {
            // Whatever is corked for it still goes out before the socket closes.
            self.flush_cork();
        }
        self.dead.push(key);
    }

    /// Frees the slot of a dead connection and everything it held.
    pub(crate) fn free(&mut self, key: usize) {
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        if let Some(ws) = conn.ws()
            && let Some(z) = ws.deflate
        {
            self.streams.close(key);
            if z.takes_shared() {
                self.bus.count_shared_deflate(self.reactor, false);
            }
        }
        self.topics.remove_conn(key as u32);
        if let Some(mut tx) = conn.tx.take() {
            tx.out.clear(&mut self.pool);
        }
        // Dropping the socket closes it, which also removes it from epoll.
    }

    /// Answers a request with an HTTP error and closes once it has left.
    pub(crate) fn reject(&mut self, key: usize, status: u16, headers: &[(String, String)]) {
        let mut out = Vec::with_capacity(128);
        http::write_reject(&mut out, status, headers);
        self.emit(key, &[&out]);
        self.conns[key].flags.set_linger(true);
        self.flush_cork();
        if self.conns[key].buffered() == 0 {
            self.kill(key);
        }
    }

    /// Re-registers the socket's interest.
    fn reregister(&mut self, key: usize, interest: Interest) -> io::Result<()> {
        let conn = &mut self.conns[key];
        let t = Token::new(key, conn.generation);
        self.registry
            .reregister(&mut conn.socket, mio::Token(t.0 as usize), interest)
    }

    /// After a mass disconnect, gives back spare capacity: the slab's tail, the wheel's slots,
    /// the topics' tables and idle pool chunks.
    pub(crate) fn shrink(&mut self) {
        self.conns.shrink_to_fit();
        self.wheel.shrink();
        self.topics.shrink();
        self.pool.clear();
    }
}
