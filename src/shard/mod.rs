//! A shard: everything one reactor owns that a callback may reach through [`crate::Ws`]: the
//! slab of connections, the send path (cork, backpressure, the byte seam), the timing wheel, the
//! deflate streams and the topics. It never calls the application; the reactor does, and hands
//! the shard to the callback.
//!
//! - this file: the shard itself, admission, timers and the effects of a session's decisions;
//! - [`send`]: the send path;
//! - [`fanout`]: pub/sub delivery.

mod fanout;
mod pending;
mod polls;
mod reply;
mod send;

use std::io::{self, Write};
use std::net::Shutdown;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::debug;
use mio::net::TcpStream;
use mio::{Interest, Registry};
use slab::Slab;

use pending::IpKey;
pub(crate) use polls::Polls;
pub(crate) use reply::Reply;
pub(crate) use send::Out;

use std::collections::HashMap;

use crate::config::Config;
use crate::conn::{Conn, Kind};
use crate::deflate::Streams;
use crate::handle::ServerHandle;
use crate::http;
use crate::id::Token;
use crate::mailbox::Bus;
use crate::pool::Pool;
use crate::proto::Limits;
use crate::proto::mask::Kernel;
use crate::proto::session::{Effects, Finish, Report, Session, Timer};
use crate::stats::{HandshakeFailure, ReactorStats};
use crate::timer::Wheel;
use crate::topics::Topics;
use crate::transport::{self, Got, Wire};

/// One reactor's connections and everything they share.
pub(crate) struct Shard<D> {
    pub(crate) conns: Slab<Conn<D>>,
    pub(crate) cfg: Config,
    /// What the decoder accepts, built once from `cfg`.
    pub(crate) limits: Limits,
    pub(crate) reactor: u32,
    pub(crate) kernel: Kernel,
    /// The byte seam's per-reactor state: chunk pool, counts, TLS.
    pub(crate) wire: Wire,
    /// Output of one connection corked during a callback batch, written in one syscall.
    cork: Vec<u8>,
    cork_owner: Option<usize>,
    pub(crate) wheel: Wheel,
    pub(crate) now: Instant,
    registry: Registry,
    next_generation: u32,
    /// How many times generations have wrapped: part of session ids, so that an old id never
    /// names a slot whose token came round again.
    pub(crate) epoch: u32,
    /// Handshakes in flight, in all and per address.
    pending: pending::Pending,
    /// Died this iteration; slots freed at its end.
    pub(crate) dead: Vec<usize>,
    /// Connections to fail once the callback batch is over: a write failed (code 1006), the
    /// backpressure limit with policy Close, a streamed response closed: (key, code, why).
    pub(crate) broken: Vec<(usize, u16, &'static str)>,
    /// Output drained: `on_drain` owed.
    pub(crate) drained: Vec<usize>,
    /// Still had bytes when the read budget ran out.
    pub(crate) readable: Vec<Token>,
    /// permessage-deflate streams and per-connection state.
    pub(crate) streams: Streams,
    /// Scratch for inflated and deflated messages, and SSE events (taken out while in use).
    pub(crate) inflated: Vec<u8>,
    deflated: Vec<u8>,
    /// Scratch for the 101 answer and its extension header.
    pub(crate) http_scratch: Vec<u8>,
    pub(crate) ext_scratch: String,
    /// Pub/sub topics of this reactor.
    pub(crate) topics: Topics,
    /// Publishes queued for this reactor's subscribers, in order: (topic id, message). Written
    /// per subscriber in one writev by `flush_batch`.
    batch: Vec<fanout::Queued>,
    /// When the queued batch must leave (its first publish plus the coalescing window).
    pub(crate) batch_due: Option<std::time::Instant>,
    /// Scratch for `flush_batch`: the batch indices one subscriber receives.
    batch_order: Vec<u32>,
    /// The other reactors.
    pub(crate) bus: Bus,
    /// The application's handle to the server, for callbacks that want one.
    pub(crate) handle: ServerHandle,
    /// Publishes that reached this reactor, and the deliveries they made (logged at stop).
    pub(crate) published: u64,
    pub(crate) deliveries: u64,
    /// This reactor's counts, posted to the board once per loop iteration.
    pub(crate) stats: ReactorStats,
    /// Publishes that did not reach a connection since the last report: `on_dropped` owed.
    pub(crate) dropped: HashMap<usize, u64>,
    /// The answer to the plain request being handled.
    pub(crate) reply: Reply<D>,
    /// For each topic some other reactor has subscribers of: those reactors, a bit each (told
    /// by them through the mailbox), so that a publish goes only where it is wanted.
    pub(crate) interest: HashMap<Box<str>, u64>,
    /// Bytes held in connections' input state (`Inbound::buffered`), summed: every change of a
    /// connection's `rx` adjusts it.
    pub(crate) input_buffered: u64,
    /// Inflate budget of connections that spent some recently: bytes left, and when counted
    /// (a token bucket; a connection whose bucket is full has no entry).
    inflate_left: HashMap<usize, (u64, Instant)>,
    /// Today's `Date` header value and the second it was made for.
    date: ([u8; 29], u64),
    /// Long-poll sessions' queues, by slot.
    pub(crate) polls: Polls,
    /// Long-poll sessions with a parked poll and something to answer it with.
    pub(crate) poll_ready: Vec<usize>,
}

impl<D> Shard<D> {
    pub(crate) fn new(
        reactor: u32,
        cfg: Config,
        registry: Registry,
        handle: ServerHandle,
    ) -> Shard<D> {
        let bus = handle.bus().clone();
        let now = Instant::now();
        #[allow(unused_mut)]
        let mut wire = Wire::new(Pool::new(256));
        #[cfg(feature = "tls")]
        if let Some(state) = handle.tls_state() {
            wire.tls = Some(crate::tls::Layer::new(state.clone(), cfg.recv_buffer));
        }
        Shard {
            conns: Slab::new(),
            limits: cfg.limits(),
            reactor,
            kernel: Kernel::detect(),
            wire,
            cork: Vec::with_capacity(send::CORK_CAP),
            cork_owner: None,
            wheel: Wheel::new(now),
            now,
            registry,
            next_generation: 1,
            epoch: 0,
            pending: pending::Pending::default(),
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
            batch_due: None,
            batch_order: Vec::new(),
            bus,
            handle,
            published: 0,
            deliveries: 0,
            stats: ReactorStats::default(),
            dropped: HashMap::new(),
            reply: Reply::new(),
            interest: HashMap::new(),
            date: ([0; 29], u64::MAX),
            input_buffered: 0,
            inflate_left: HashMap::new(),
            polls: Polls::default(),
            poll_ready: Vec::new(),
            cfg,
        }
    }

    /// The `Date` header's value now (RFC 9110 §6.6.1), made once a second.
    pub(crate) fn date(&mut self) -> [u8; 29] {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.date.1 != secs {
            self.date = (http::imf_fixdate(secs), secs);
        }
        self.date.0
    }

    /// Counts a refusal.
    pub(crate) fn count_failure(&mut self, why: HandshakeFailure) {
        self.stats.handshake_failures[why as usize] += 1;
    }

    /// Brings the gauges and the counts kept elsewhere into `stats`, and posts them for other
    /// threads.
    pub(crate) fn post_stats(&mut self) {
        let s = &mut self.stats;
        s.bytes_sent = self.wire.tally.sent;
        s.backpressure_bytes = self.wire.tally.queued;
        s.topics = self.topics.len() as u64;
        s.subscriptions = self.topics.subscriptions() as u64;
        s.compressions = self.streams.compressions;
        s.publishes = self.published;
        s.buffered_bytes = self.wire.tally.queued + self.input_buffered + self.polls.bytes;
        #[cfg(feature = "tls")]
        if let Some(l) = &self.wire.tls {
            s.tls_handshakes = l.completed;
            s.handshake_failures[HandshakeFailure::Tls as usize] = l.failed;
        }
        self.bus.board().post(self.reactor, &self.stats);
    }

    /// Reactor `reactor` gained (`on`) or lost its subscribers of `topic`.
    pub(crate) fn note_interest(&mut self, topic: Box<str>, reactor: u32, on: bool) {
        if reactor >= 64 {
            // Publishes always go to reactors past the 64 a mask holds.
            return;
        }
        let bit = 1u64 << reactor;
        if on {
            *self.interest.entry(topic).or_insert(0) |= bit;
        } else if let Some(mask) = self.interest.get_mut(&*topic) {
            *mask &= !bit;
            if *mask == 0 {
                self.interest.remove(&*topic);
            }
        }
    }

    /// Charges `n` inflated bytes to connection `key`'s budget (`Config::max_inflate_rate` per
    /// second, a burst of `max_message`); false when it has not that many left (BAD_INPUTS 49).
    pub(crate) fn charge_inflate(&mut self, key: usize, n: usize) -> bool {
        let rate = self.cfg.max_inflate_rate;
        if rate == 0 {
            return true;
        }
        let burst = rate.max(self.cfg.max_message);
        let (left, at) = self
            .inflate_left
            .get(&key)
            .copied()
            .unwrap_or((burst, self.now));
        let earned = self.now.saturating_duration_since(at).as_secs_f64() * rate as f64;
        let left = (left as f64 + earned).min(burst as f64) as u64;
        let Some(left) = left.checked_sub(n as u64) else {
            self.inflate_left.remove(&key);
            return false;
        };
        if left >= burst {
            self.inflate_left.remove(&key);
        } else {
            self.inflate_left.insert(key, (left, self.now));
        }
        true
    }

    /// Drops connection `key`'s input state, and its bytes from the count.
    pub(crate) fn clear_rx(&mut self, key: usize) {
        if let Some(rx) = self.conns[key].rx.take() {
            self.input_buffered = self.input_buffered.saturating_sub(rx.buffered() as u64);
        }
    }

    /// Counts `n` more bytes held in input state (`added`) or fewer.
    pub(crate) fn count_input(&mut self, n: usize, added: bool) {
        if added {
            self.input_buffered += n as u64;
        } else {
            self.input_buffered = self.input_buffered.saturating_sub(n as u64);
        }
    }

    /// Reads from connection `key` (at most `want` bytes from its socket) into `buf`, through
    /// the seam: the plaintext, counted; writable interest asked for if a TLS handshake queued
    /// bytes.
    ///
    /// # Errors
    /// As [`transport::recv`].
    pub(crate) fn recv(&mut self, key: usize, buf: &mut [u8], want: usize) -> io::Result<Got> {
        let got = transport::recv(&mut self.conns[key], key, &mut self.wire, buf, want)?;
        self.stats.bytes_received += got.wire as u64;
        if got.queued {
            self.want_write(key);
        }
        Ok(got)
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

    /// Takes a new socket from `peer` into the slab.
    pub(crate) fn admit(&mut self, mut socket: TcpStream, peer: SocketAddr) {
        let ip = IpKey::of(peer.ip());
        let refuse = if self.pending.count() >= self.cfg.max_pending_handshakes {
            // BAD_INPUTS 10, 57: too many handshakes in flight.
            Some(503)
        } else if self.pending.from(ip) as usize >= self.cfg.max_pending_per_ip {
            // BAD_INPUTS 57: one address may not take the slots of every other.
            Some(429)
        } else if self.over_budget(0) {
            // BAD_INPUTS 53: the process holds its whole memory budget.
            Some(503)
        } else {
            None
        };
        if let Some(status) = refuse {
            if !self.speaks_tls() {
                // (A TLS client could not read a plain answer: it is just closed.)
                let mut out = Vec::new();
                http::write_reject(&mut out, status, &[]);
                let _ = socket.write(&out);
            }
            self.count_failure(HandshakeFailure::Overload);
            return;
        }
        if self.conns.len() >= u32::MAX as usize - 2 {
            return;
        }
        let _ = socket.set_nodelay(true);
        let Some((key, generation)) = self.register_new(&mut socket) else {
            return;
        };
        #[cfg(feature = "tls")]
        if let Some(layer) = self.wire.tls.as_mut()
            && let Err(e) = layer.admit(key)
        {
            // BAD_INPUTS: handshakes cost CPU; past the cap a new connection is closed at once.
            debug!("reactor {}: TLS: {e}", self.reactor);
            let _ = self.registry.deregister(&mut socket);
            return;
        }
        let mut conn = Conn::new(socket, generation);
        conn.flags.set_pending(true);
        let inserted = self.conns.insert(conn);
        debug_assert_eq!(inserted, key);
        self.pending.begin(key, Some(ip));
        let timeout = self.cfg.handshake_timeout;
        self.arm(key, timeout);
    }

    /// Registers `socket` for readable events under the token of the slot the next insert will
    /// take, with a fresh generation; the caller inserts its connection there before any other.
    /// `None` when the registration fails (the socket is then dropped, which closes it).
    pub(crate) fn register_new(&mut self, socket: &mut TcpStream) -> Option<(usize, u32)> {
        let generation = self.fresh_generation();
        let key = self.conns.vacant_key();
        let token = Token::new(key, generation);
        match self
            .registry
            .register(socket, mio::Token(token.0 as usize), Interest::READABLE)
        {
            Ok(()) => Some((key, generation)),
            Err(e) => {
                debug!("register: {e}");
                None
            }
        }
    }

    /// The connection becomes what the application is shown: a WebSocket (the upgrade is
    /// accepted) or a streamed response.
    pub(crate) fn open(&mut self, key: usize, kind: Kind<D>) {
        if let Kind::WebSocket(ws) = &kind
            && ws.deflate.is_some_and(|a| a.takes_shared())
        {
            self.bus.count_shared_deflate(self.reactor, true);
        }
        self.stats.connections += 1;
        self.stats.opened += 1;
        let conn = &mut self.conns[key];
        conn.kind = kind;
        if conn.flags.pending() {
            conn.flags.set_pending(false);
            self.pending.end(key);
        }
    }

    /// A request on a kept-alive connection was answered: it waits for the next head, under
    /// the handshake timeout again, and counts as a pending handshake.
    pub(crate) fn await_next_request(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if !conn.flags.pending() {
            conn.flags.set_pending(true);
            let ip = conn.peer_addr().ok().map(|a| IpKey::of(a.ip()));
            self.pending.begin(key, ip);
        }
        let timeout = self.cfg.handshake_timeout;
        self.arm(key, timeout);
    }

    /// Sets the connection's deadline `after` from now, or at its message deadline if earlier.
    pub(crate) fn arm(&mut self, key: usize, after: Duration) {
        let mut tick = self.wheel.deadline(self.now, after);
        let conn = &self.conns[key];
        if let Some(m) = conn.message_deadline() {
            tick = tick.min(m);
        }
        if let Some(w) = conn.write_deadline(self.write_ticks()) {
            tick = tick.min(w);
        }
        self.arm_tick(key, tick);
    }

    /// The write timeout in ticks (0: disabled).
    pub(crate) fn write_ticks(&self) -> u32 {
        let t = self.cfg.write_timeout;
        if t.is_zero() {
            return 0;
        }
        u32::try_from(t.as_millis().div_ceil(crate::timer::TICK.as_millis())).unwrap_or(u32::MAX)
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
            Some(Finish::AfterFlush) => self.linger(key),
            Some(Finish::Drain) => {
                self.conns[key].flags.set_drain(true);
                self.clear_rx(key);
                self.flush_cork();
                self.shutdown_if_flushed(key);
            }
            Some(Finish::Now) => self.kill(key),
        }
        fx.report
    }

    /// Once a draining connection's output has left: shut our write side (RFC 6455 §7.1.1),
    /// after our close_notify on a secure connection.
    pub(crate) fn shutdown_if_flushed(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if !conn.flags.drain() || conn.buffered() > 0 {
            return;
        }
        match transport::close_notify(conn, key, &mut self.wire) {
            Ok(false) => {
                if let Some(s) = &conn.socket {
                    let _ = s.shutdown(Shutdown::Write);
                }
            }
            // The alert waits for writable readiness; the drain ends here again.
            Ok(true) => self.want_write(key),
            Err(_) => self.kill(key),
        }
    }

    /// Whether this reactor's connections speak TLS.
    pub(crate) fn speaks_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.wire.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// Marks a connection dead; its slot is freed at the end of the iteration.
    pub(crate) fn kill(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.flags.dead() {
            return;
        }
        if conn.flags.pending() {
            conn.flags.set_pending(false);
            self.pending.end(key);
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
        if !self.conns.contains(key) {
            return;
        }
        self.clear_rx(key);
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
        if conn.data().is_some() {
            self.stats.connections = self.stats.connections.saturating_sub(1);
        }
        self.topics.remove_conn(key as u32);
        self.announce_emptied();
        self.dropped.remove(&key);
        self.inflate_left.remove(&key);
        self.polls.remove(key);
        transport::discard(&mut conn, &mut self.wire);
        #[cfg(feature = "tls")]
        if let Some(l) = self.wire.tls.as_mut() {
            l.remove(key);
        }
        // Dropping the socket closes it, which also removes it from epoll.
    }

    /// Answers a request with an HTTP error (and `body`) and closes once it has left.
    pub(crate) fn reject(
        &mut self,
        key: usize,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
        why: HandshakeFailure,
    ) {
        self.count_failure(why);
        let mut out = Vec::with_capacity(160);
        let date = self.date();
        http::write_refusal(&mut out, status, headers, body.len(), Some(&date));
        self.emit(key, &[&out, body]);
        self.linger(key);
    }

    /// Closes TCP once unsent bytes have left (under the close timeout).
    pub(crate) fn linger(&mut self, key: usize) {
        self.conns[key].flags.set_linger(true);
        self.clear_rx(key);
        self.flush_cork();
        // A secure connection's TLS stream ends cleanly, after what was sent.
        match transport::close_notify(&mut self.conns[key], key, &mut self.wire) {
            Ok(true) => self.want_write(key),
            Ok(false) => {}
            Err(_) => {
                self.kill(key);
                return;
            }
        }
        if self.conns[key].buffered() == 0 {
            self.kill(key);
        } else {
            let timeout = self.cfg.close_timeout;
            self.arm(key, timeout);
        }
    }

    /// Re-registers the socket's interest.
    pub(crate) fn reregister(&mut self, key: usize, interest: Interest) -> io::Result<()> {
        let conn = &mut self.conns[key];
        let t = Token::new(key, conn.generation);
        match conn.socket.as_mut() {
            Some(s) => self
                .registry
                .reregister(s, mio::Token(t.0 as usize), interest),
            None => Ok(()),
        }
    }

    /// After a mass disconnect, gives back spare capacity: the slab's tail, the wheel's slots,
    /// the topics' tables and idle pool chunks.
    pub(crate) fn shrink(&mut self) {
        self.conns.shrink_to_fit();
        self.wheel.shrink();
        self.topics.shrink();
        self.pending.shrink();
        self.polls.shrink();
        self.wire.pool.clear();
        #[cfg(feature = "tls")]
        if let Some(l) = self.wire.tls.as_mut() {
            l.shrink();
        }
    }
}
