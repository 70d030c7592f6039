//! One reactor per core: a mio `Poll`, a `SO_REUSEPORT` listener, a slab of connections, a timing
//! wheel, a chunk pool, one receive buffer and one cork buffer, all owned by one thread.
//!
//! Per iteration: poll; accept; read each ready socket up to the per-event budget (a socket with
//! bytes left goes on the still-readable list, served before the next poll); decode in place and
//! call the handler; flush the cork once per read; write pending output on writable events; run
//! the mailbox; expire timers; free the slots of connections that died during the iteration.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use log::{debug, info, trace, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

use crate::close;
use crate::compression::Compression;
use crate::config::{BackpressurePolicy, Config};
use crate::conn::{
    Conn, DEFLATE, IN_WHEEL, NOTIFIED, PENDING, PING_SENT, QUEUED_READ, SENDING_FRAGMENTS, State,
    Tx, WANT_WRITE,
};
use crate::decoder::{self, Event, Limits};
use crate::deflate::InflateError;
use crate::error::{ProtocolError, SendError};
use crate::frame::{self, MAX_HEADER, OpCode, Role};
use crate::handler::{Compress, Fragment, Handler, Message, SendStatus, Upgrade, Ws};
use crate::handshake::{self, HeadLimits, MAX_HEADERS};
use crate::mask::Kernel;
use crate::pool::Pool;
use crate::server::{Cmd, ConnId, ServerHandle};
use crate::timer::Wheel;
use crate::topic::{Published, Topics};

pub(crate) const LISTENER: Token = Token(usize::MAX);
pub(crate) const WAKER: Token = Token(usize::MAX - 1);
/// Output corked beyond this is written at once.
const CORK_CAP: usize = 64 << 10;
/// Connections accepted per readiness event before the others get a turn.
const ACCEPT_BATCH: usize = 256;
/// Pause after running out of file descriptors (BAD_INPUTS 56).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

thread_local! {
    static ON_REACTOR: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread is a reactor thread.
pub(crate) fn on_reactor_thread() -> bool {
    ON_REACTOR.with(|c| c.get())
}

fn token_of(key: usize, generation: u32) -> u64 {
    key as u64 | (u64::from(generation) << 32)
}

fn split_token(t: u64) -> (usize, u32) {
    ((t & 0xffff_ffff) as usize, (t >> 32) as u32)
}

/// Everything the handler may touch through a [`Ws`]: connections and the send path.
pub struct Core<D> {
    pub(crate) conns: Slab<Conn<D>>,
    cfg: Config,
    limits: Limits,
    reactor: u32,
    kernel: Kernel,
    pool: Pool,
    cork: Vec<u8>,
    cork_owner: Option<usize>,
    wheel: Wheel,
    now: Instant,
    registry: Registry,
    next_generation: u32,
    pending_handshakes: usize,
    /// Died this iteration; slots freed at its end.
    dead: Vec<usize>,
    /// Write failed, or over the backpressure limit with policy Close: (key, code).
    broken: Vec<(usize, u16)>,
    /// Output drained: on_drain owed.
    drained: Vec<usize>,
    /// Still had bytes when the read budget ran out.
    readable: Vec<u64>,
    /// permessage-deflate streams and per-connection state.
    z: Compression,
    /// Scratch for inflated and deflated messages (taken out while in use).
    inflated: Vec<u8>,
    deflated: Vec<u8>,
    /// Scratch for the 101 answer and its extension header.
    http_scratch: Vec<u8>,
    ext_scratch: String,
    /// Pub/sub topics of this reactor.
    topics: Topics,
    /// Publishes queued for this reactor's subscribers, in order: (topic id, message). Written
    /// per subscriber in one writev by `flush_batch`.
    batch: Vec<(u32, Arc<Published>)>,
    /// Scratch for `flush_batch`: the batch indices one subscriber receives.
    batch_order: Vec<u32>,
    /// The other reactors, for publishes.
    peers: ServerHandle,
    /// Publishes that reached this reactor, and the deliveries they made (logged at stop).
    published: u64,
    deliveries: u64,
}

/// A reactor and its thread's state.
pub(crate) struct Reactor<H: Handler> {
    poll: Poll,
    listener: Option<TcpListener>,
    handler: H,
    core: Core<H::Data>,
    recv: Vec<u8>,
    mailbox: Receiver<Cmd>,
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
        mailbox: Receiver<Cmd>,
        peers: ServerHandle,
    ) -> io::Result<Reactor<H>> {
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let registry = poll.registry().try_clone()?;
        let now = Instant::now();
        let limits = Limits {
            role: Role::Server,
            accept_unmasked: cfg.accept_unmasked,
            max_frame: cfg.max_frame,
            max_message: cfg.max_message,
            max_fragments: cfg.max_fragments,
            compression: false,
        };
        Ok(Reactor {
            poll,
            listener: Some(listener),
            handler,
            recv: vec![0u8; cfg.recv_buffer + MAX_HEADER],
            core: Core {
                conns: Slab::new(),
                limits,
                reactor: id,
                kernel: Kernel::detect(),
                pool: Pool::new(256),
                cork: Vec::with_capacity(CORK_CAP),
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
                z: Compression::new(cfg.compression_level),
                inflated: Vec::new(),
                deflated: Vec::new(),
                http_scratch: Vec::with_capacity(512),
                ext_scratch: String::with_capacity(160),
                topics: Topics::default(),
                batch: Vec::new(),
                batch_order: Vec::new(),
                published: 0,
                deliveries: 0,
                peers,
                cfg,
            },
            mailbox,
            shutdown_at: None,
            accept_paused_until: None,
            next_reclaim: now,
            reclaim_due: false,
        })
    }

    /// Runs until shut down.
    pub(crate) fn run(mut self) {
        ON_REACTOR.with(|c| c.set(true));
        let mut events = Events::with_capacity(1024);
        let mut expired = Vec::new();
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                warn!("reactor {}: poll failed: {e}", self.core.reactor);
                break;
            }
            self.core.now = Instant::now();
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => self.run_mailbox(),
                    Token(t) => {
                        let (key, generation) = split_token(t as u64);
                        if !self.core.is_live(key, generation) {
                            continue;
                        }
                        if ev.is_writable() {
                            self.core.write_pending(key);
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
            if self.accept_paused_until.is_some_and(|t| t <= self.core.now) {
                self.accept_paused_until = None;
                self.accept();
            }
            // Sockets left with unread bytes get another budget before the next poll.
            let again = std::mem::take(&mut self.core.readable);
            for t in again {
                let (key, generation) = split_token(t);
                if self.core.is_live(key, generation) {
                    self.core.conns[key].flags &= !QUEUED_READ;
                    // The event that left bytes behind may have carried the FIN: read to the end.
                    self.on_readable(key, true);
                    self.settle();
                }
            }
            self.expire_timers(&mut expired);
            self.settle();
            self.free_dead();
            if let Some(at) = self.shutdown_at
                && (self.core.conns.is_empty() || self.core.now >= at)
            {
                self.force_close_all();
                break;
            }
        }
        let c = &self.core;
        if c.published > 0 || c.z.compressions > 0 {
            info!(
                "reactor {}: {} publishes, {} deliveries, {} compressions",
                c.reactor, c.published, c.deliveries, c.z.compressions
            );
        }
        debug!("reactor {} stopped", self.core.reactor);
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.core.readable.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut t = self.core.wheel.next_timeout(now);
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

    /// Handles what the send path recorded: broken sockets, backpressure closes, drains.
    fn settle(&mut self) {
        self.core.flush_batch();
        self.core.flush_cork();
        while !self.core.broken.is_empty() || !self.core.drained.is_empty() {
            for (key, code) in std::mem::take(&mut self.core.broken) {
                if !self.core.conns.contains(key) {
                    continue;
                }
                if code == close::ABNORMAL {
                    self.core.abnormal(&mut self.handler, key, "write failed");
                } else {
                    self.core
                        .fail_with(&mut self.handler, key, code, "backpressure limit");
                }
            }
            for key in std::mem::take(&mut self.core.drained) {
                if self
                    .core
                    .conns
                    .get(key)
                    .is_some_and(|c| c.state == State::Open)
                {
                    let mut ws = Ws {
                        core: &mut self.core,
                        key,
                    };
                    self.handler.on_drain(&mut ws);
                }
            }
            self.core.flush_cork();
        }
    }

    fn accept(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        let Some(listener) = self.listener.as_ref() else {
            return;
        };
        for _ in 0..ACCEPT_BATCH {
            match listener.accept() {
                Ok((stream, _)) => self.core.admit(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if crate::sys::is_resource_exhaustion(&e) => {
                    // BAD_INPUTS 56: no busy loop; try again after a pause (edge-triggered
                    // readiness will not repeat for connections already queued).
                    warn!(
                        "reactor {}: accept: {e}; pausing {:?}",
                        self.core.reactor, ACCEPT_BACKOFF
                    );
                    self.accept_paused_until = Some(self.core.now + ACCEPT_BACKOFF);
                    return;
                }
                Err(e) => debug!("accept: {e}"),
            }
        }
        // More may be waiting: come back after the others had a turn.
        self.accept_paused_until = Some(self.core.now);
    }

    /// `drain`: read until the socket says WouldBlock or EOF, even after a short read, because
    /// edge-triggered readiness will not report again what this event reported (the peer's FIN).
    fn on_readable(&mut self, key: usize, drain: bool) {
        match self.core.conns[key].state {
            State::Handshaking => self.read_handshake(key, drain),
            State::Dead => {}
            _ => self.read_frames(key, drain),
        }
    }

    /// Reads the HTTP head. Complete heads found in one read are parsed where they lie.
    fn read_handshake(&mut self, key: usize, drain: bool) {
        let head_limits = HeadLimits {
            max_head_bytes: self.core.cfg.max_head_bytes,
            max_request_line: self.core.cfg.max_request_line,
        };
        loop {
            let Reactor { core, recv, .. } = self;
            let conn = &mut core.conns[key];
            let n = match conn.stream.read(&mut recv[..]) {
                Ok(0) => {
                    trace!("handshake: peer closed");
                    core.kill(key);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    debug!("handshake read: {e}");
                    core.kill(key);
                    return;
                }
            };
            let held = conn.rx.as_ref().map_or(0, |p| p.http.len());
            if held == 0 {
                if let Some(end) = handshake::find_head_end(&recv[..n], 0) {
                    if let Err(e) = handshake::check_incomplete(&recv[..end], &head_limits) {
                        core.reject(key, e.status, &[]);
                        return;
                    }
                    self.upgrade(key, None, end, n);
                    self.read_rest_later(key, n, drain);
                    return;
                }
                if let Err(e) = handshake::check_incomplete(&recv[..n], &head_limits) {
                    core.reject(key, e.status, &[]);
                    return;
                }
                let p = conn.rx.get_or_insert_with(Box::default);
                p.http.extend_from_slice(&recv[..n]);
                continue;
            }
            // A dribbled head: append, and scan only the new bytes for its end (BAD_INPUTS 9).
            let Some(p) = conn.rx.as_mut() else { return };
            p.http.extend_from_slice(&recv[..n]);
            let found = handshake::find_head_end(&p.http, held);
            let checked = match found {
                Some(end) => handshake::check_incomplete(&p.http[..end], &head_limits),
                None => handshake::check_incomplete(&p.http, &head_limits),
            };
            if let Err(e) = checked {
                core.reject(key, e.status, &[]);
                return;
            }
            if let Some(end) = found {
                let head = std::mem::take(&mut p.http);
                conn.rx = None;
                // Bytes after the head are frames (BAD_INPUTS 11). The head's end lies in this
                // read (an earlier end would have been found by an earlier scan), so those bytes
                // are the last `extra` bytes of the read, still in place in `recv`: decode them
                // there. (Copying them to `recv[MAX_HEADER..]` overran the buffer, and panicked
                // the reactor, when a read that completed a split head was nearly full.)
                let extra = head.len() - end;
                debug_assert!(extra < n);
                self.upgrade(key, Some(&head[..end]), n - extra, n);
                self.read_rest_later(key, n, drain);
                return;
            }
        }
    }

    /// After an upgrade whose read filled the receive buffer (or whose event carried the peer's
    /// FIN): frame bytes or the EOF may still wait in the socket, and edge-triggered readiness
    /// will not report them again, so read them before the next poll as `read_frames` does
    /// (BAD_INPUTS 11: pipelined frames are not lost or stalled).
    fn read_rest_later(&mut self, key: usize, n: usize, drain: bool) {
        if n < self.recv.len() && !drain {
            return;
        }
        if let Some(conn) = self.core.conns.get_mut(key)
            && matches!(conn.state, State::Open | State::Closing | State::Draining)
            && conn.flags & QUEUED_READ == 0
        {
            conn.flags |= QUEUED_READ;
            let t = token_of(key, conn.generation);
            self.core.readable.push(t);
        }
    }

    /// Validates the head, asks the handler, answers 101 (or an error), then decodes any frame
    /// bytes that came with the head: `recv[rest_start..rest_end]`. `head` is `None` when the head
    /// is `recv[..rest_start]`.
    fn upgrade(&mut self, key: usize, head: Option<&[u8]>, rest_start: usize, rest_end: usize) {
        let Reactor {
            core,
            recv,
            handler,
            ..
        } = self;
        let peer = match core.conns[key].stream.peer_addr() {
            Ok(a) => a,
            Err(_) => {
                core.kill(key);
                return;
            }
        };
        let head_bytes: &[u8] = match head {
            Some(h) => h,
            None => &recv[..rest_start],
        };
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let req = match handshake::parse_request(head_bytes, &mut headers, peer) {
            Ok(r) => r,
            Err(e) => {
                debug!("upgrade refused ({}): {}", e.status, e.reason);
                core.reject(key, e.status, &[]);
                return;
            }
        };
        if let Some(allowed) = core.cfg.allowed_origins.as_ref() {
            let ok = req
                .origin()
                .is_some_and(|o| allowed.iter().any(|a| a.eq_ignore_ascii_case(o)));
            if !ok {
                debug!("upgrade refused (403): origin {:?}", req.origin());
                core.reject(key, 403, &[]);
                return;
            }
        }
        let accept = match handler.on_upgrade(&req) {
            Upgrade::Accept(a) => a,
            Upgrade::Reject { status, headers } => {
                core.reject(key, status, &headers);
                return;
            }
        };
        // RFC 6455 §4.2.2: the selected subprotocol must be one the client offered.
        let protocol = accept.protocol.as_deref().filter(|p| {
            let offered = req.protocols().any(|o| o == *p);
            if !offered {
                warn!("handler chose subprotocol {p:?}, which the client did not offer; omitted");
            }
            offered
        });
        // RFC 7692: the first acceptable permessage-deflate offer, if compression is on.
        let agreed = if core.cfg.deflate.enabled {
            crate::extension::negotiate(req.extensions(), &core.cfg.deflate)
        } else {
            None
        };
        // Reused per-reactor buffers: a handshake allocates nothing that outlives it.
        let mut ext = std::mem::take(&mut core.ext_scratch);
        ext.clear();
        if let Some(a) = &agreed {
            a.response(&mut ext);
        }
        let mut answer = std::mem::take(&mut core.http_scratch);
        answer.clear();
        handshake::write_accept(
            &mut answer,
            req.key(),
            protocol,
            agreed.is_some().then_some(ext.as_str()),
            &accept.headers,
        );
        if let Some(a) = agreed {
            let conn = &mut core.conns[key];
            conn.flags |= DEFLATE;
            conn.deflate = crate::compression::pack(&a);
            if crate::compression::takes_shared(conn.deflate) {
                core.peers.count_shared_deflate(core.reactor, true);
            }
        }
        let conn = &mut core.conns[key];
        conn.state = State::Open;
        conn.data = Some(accept.data);
        if conn.flags & PENDING != 0 {
            conn.flags &= !PENDING;
            core.pending_handshakes -= 1;
        }
        core.raw_out(key, &answer);
        core.http_scratch = answer;
        core.ext_scratch = ext;
        core.touch(key);
        let mut ws = Ws { core, key };
        handler.on_open(&mut ws);
        if rest_end > rest_start {
            self.decode(key, rest_start, rest_end);
        }
    }

    /// Reads frames, up to the per-event budget.
    fn read_frames(&mut self, key: usize, drain: bool) {
        let mut budget = self.core.cfg.read_budget;
        loop {
            let Reactor { core, recv, .. } = self;
            let conn = &mut core.conns[key];
            // New bytes land after room for a header cut by the previous read.
            let pre = match conn.rx.as_mut() {
                Some(p) => {
                    let mut head = [0u8; MAX_HEADER];
                    let n = p.take_head(&mut head);
                    recv[MAX_HEADER - n..MAX_HEADER].copy_from_slice(&head[..n]);
                    n
                }
                None => 0,
            };
            let want = (recv.len() - MAX_HEADER).min(budget);
            let n = match conn.stream.read(&mut recv[MAX_HEADER..MAX_HEADER + want]) {
                Ok(0) => {
                    if conn.state == State::Draining || conn.state == State::Flushing {
                        core.kill(key);
                    } else {
                        core.abnormal(&mut self.handler, key, "connection closed without Close");
                    }
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    core.restore_head(key, &recv[MAX_HEADER - pre..MAX_HEADER]);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    core.restore_head(key, &recv[MAX_HEADER - pre..MAX_HEADER]);
                    continue;
                }
                Err(e) => {
                    debug!("read: {e}");
                    core.abnormal(&mut self.handler, key, "read failed");
                    return;
                }
            };
            budget = budget.saturating_sub(n);
            core.touch(key);
            match core.conns[key].state {
                State::Open | State::Closing => {
                    self.decode(key, MAX_HEADER - pre, MAX_HEADER + n);
                    self.core.flush_cork();
                }
                // Closed at the WebSocket level: what comes now is discarded.
                _ => {}
            }
            let Some(conn) = self.core.conns.get_mut(key) else {
                return;
            };
            if conn.state == State::Dead {
                return;
            }
            if n < want && !drain {
                // A short read emptied the socket; new bytes raise a new edge. (Not so for a FIN
                // that came with them: with `drain` the next read returns 0 or WouldBlock.)
                return;
            }
            if budget == 0 {
                if conn.flags & QUEUED_READ == 0 {
                    conn.flags |= QUEUED_READ;
                    let t = token_of(key, conn.generation);
                    self.core.readable.push(t);
                }
                return;
            }
        }
    }

    /// Runs the decoder over `recv[start..end]` and dispatches its events.
    fn decode(&mut self, key: usize, start: usize, end: usize) {
        let Reactor {
            core,
            recv,
            handler,
            ..
        } = self;
        let mut rx = core.conns[key].rx.take();
        let mut limits = core.limits;
        limits.compression = core.conns[key].flags & DEFLATE != 0;
        let kernel = core.kernel;
        let result = decoder::feed(&mut rx, &mut recv[start..end], &limits, kernel, &mut |ev| {
            dispatch(core, handler, key, ev)
        });
        let conn = &mut core.conns[key];
        if let Err(e) = result {
            debug!("reactor {}: conn {key}: {e}", core.reactor);
            core.fail(handler, key, e);
            return;
        }
        if !matches!(conn.state, State::Open | State::Closing) {
            // Failed or closed from inside a callback: what was left of the input is moot.
            return;
        }
        conn.rx = rx.filter(|p| !p.is_idle());
        // A message left unfinished by this read gets a deadline (BAD_INPUTS 19, 27).
        let timeout = core.cfg.message_timeout;
        if let Some(p) = core.conns[key].rx.as_mut() {
            if !p.in_message() {
                p.progress_deadline = None;
            } else if p.progress_deadline.is_none() && !timeout.is_zero() {
                let tick = core.wheel.deadline(core.now, timeout);
                p.progress_deadline = Some(tick);
                let conn = &core.conns[key];
                if conn.flags & IN_WHEEL == 0 || tick < conn.deadline {
                    core.arm_tick(key, tick);
                }
            }
        }
    }

    fn run_mailbox(&mut self) {
        // Settled once for the whole queue, so that publishes arriving together leave together
        // (one write per subscriber).
        self.core.peers.begin_drain(self.core.reactor);
        let mut left = true;
        for _ in 0..4096 {
            match self.mailbox.try_recv() {
                Ok(cmd) => self.command(cmd),
                // Disconnected: every handle is gone; nobody can ask for anything more.
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => {
                    left = false;
                    break;
                }
            }
        }
        if left {
            // The rest after the next poll, so that sockets get their turn.
            self.core.peers.wake_again(self.core.reactor);
        }
        self.settle();
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Send {
                token,
                text,
                payload,
                reply,
            } => {
                let r = match self.core.lookup(token) {
                    Some(key) => {
                        let op = if text { OpCode::Text } else { OpCode::Binary };
                        self.core.send_message(key, op, &payload, Compress::Auto)
                    }
                    None => Err(SendError::StaleId),
                };
                if let Some(reply) = reply {
                    let _ = reply.send(r);
                } else if let Err(e) = r {
                    debug!("send to {token:#x}: {e}");
                }
            }
            Cmd::Close {
                token,
                code,
                reason,
                reply,
            } => {
                let r = match self.core.lookup(token) {
                    Some(key) => self.core.close(key, code, &reason),
                    None => Err(SendError::StaleId),
                };
                if let Some(reply) = reply {
                    let _ = reply.send(r);
                }
            }
            Cmd::Shutdown { deadline } => self.begin_shutdown(deadline),
            Cmd::Publish { topic, message } => {
                self.core.deliver(&topic, &message);
            }
        }
    }

    /// Graceful shutdown (BAD_INPUTS 67): stop accepting, 1001 to every open connection, then wait
    /// for their Close until the deadline.
    fn begin_shutdown(&mut self, deadline: Instant) {
        if self.shutdown_at.is_some() {
            return;
        }
        self.shutdown_at = Some(deadline);
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        let keys: Vec<usize> = self.core.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            match self.core.conns[key].state {
                State::Handshaking => self.core.kill(key),
                State::Open => {
                    let _ = self.core.close(key, 1001, "server shutting down");
                }
                _ => {}
            }
            self.core.flush_cork();
        }
        self.settle();
    }

    fn force_close_all(&mut self) {
        let keys: Vec<usize> = self.core.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.core
                .abnormal(&mut self.handler, key, "shutdown deadline passed");
        }
        self.free_dead();
    }

    fn expire_timers(&mut self, expired: &mut Vec<u64>) {
        let now_tick = self.core.wheel.tick(self.core.now);
        self.core.wheel.expire(now_tick, expired);
        for t in expired.drain(..) {
            let (key, generation) = split_token(t);
            if !self.core.is_live(key, generation) {
                continue;
            }
            let conn = &mut self.core.conns[key];
            if conn.deadline > now_tick {
                self.core.wheel.insert(conn.deadline, t);
                continue;
            }
            conn.flags &= !IN_WHEEL;
            match conn.state {
                State::Handshaking => {
                    debug!("handshake timeout");
                    self.core.kill(key);
                }
                // The handshake deadline of a connection opened with the idle timeout disabled
                // (`touch` arms nothing then): not an idle expiry. Before, it sent a ping and
                // closed the connection with 1011 half a tick later.
                State::Open
                    if conn
                        .rx
                        .as_ref()
                        .and_then(|p| p.progress_deadline)
                        .is_some_and(|t| t <= now_tick) =>
                {
                    debug!("message timeout");
                    self.core
                        .fail_with(&mut self.handler, key, 1008, "message timeout");
                }
                State::Open if self.core.cfg.idle_timeout.is_zero() => {}
                State::Open if conn.flags & PING_SENT == 0 => {
                    // Half the idle timeout passed in silence: ping (BAD_INPUTS 63).
                    conn.flags |= PING_SENT;
                    let _ = self.core.send_control(key, OpCode::Ping, b"");
                    let half = self.core.cfg.idle_timeout / 2;
                    self.core.arm(key, half);
                }
                State::Open => {
                    debug!("idle timeout");
                    // The peer answered nothing: tell it why (python-websockets uses the same
                    // code), report 1006 locally, and do not wait for a Close handshake.
                    if let Ok((p, n)) = close::encode(1011, "idle timeout") {
                        let _ = self.core.send_control(key, OpCode::Close, &p[..n]);
                    }
                    self.core
                        .notify(&mut self.handler, key, close::ABNORMAL, b"idle timeout");
                    self.core.start_draining(key);
                }
                State::Closing => {
                    debug!("close handshake timeout");
                    self.core
                        .abnormal(&mut self.handler, key, "close handshake timeout");
                }
                State::Flushing | State::Draining => self.core.kill(key),
                State::Dead => {}
            }
            self.core.flush_cork();
        }
        // Do not keep a crowd's worth of capacity here: it would be swapped into the next slot
        // and parked there, slot after slot.
        if expired.capacity() > 64 {
            *expired = Vec::new();
        }
    }

    fn free_dead(&mut self) {
        self.core.flush_cork();
        for key in std::mem::take(&mut self.core.dead) {
            if let Some(mut conn) = self.core.conns.try_remove(key) {
                if conn.flags & DEFLATE != 0 {
                    self.core.z.close(key);
                    if crate::compression::takes_shared(conn.deflate) {
                        self.core
                            .peers
                            .count_shared_deflate(self.core.reactor, false);
                    }
                }
                self.core.topics.remove_conn(key as u32);
                if let Some(mut tx) = conn.tx.take() {
                    tx.out.clear(&mut self.core.pool);
                }
                // Dropping the socket closes it, which also removes it from epoll.
                drop(conn);
            }
        }
        self.reclaim();
    }

    /// After a mass disconnect, give memory back: the slab's spare tail, the wheel's spare slot
    /// capacity, idle pool chunks, and glibc's free heap. At most once a second.
    fn reclaim(&mut self) {
        let core = &mut self.core;
        let cap = core.conns.capacity();
        self.reclaim_due = cap >= 4096 && core.conns.len() * 4 <= cap;
        if !self.reclaim_due || core.now < self.next_reclaim {
            return;
        }
        self.reclaim_due = false;
        self.next_reclaim = core.now + Duration::from_secs(1);
        core.conns.shrink_to_fit();
        core.wheel.shrink();
        core.topics.shrink();
        core.pool.clear();
        crate::sys::trim_heap();
        debug!(
            "reactor {}: reclaimed memory ({} connections, slab capacity {} -> {})",
            core.reactor,
            core.conns.len(),
            cap,
            core.conns.capacity()
        );
    }
}

/// Routes one decoded event to the handler. Returns whether decoding should go on.
fn dispatch<H: Handler>(
    core: &mut Core<H::Data>,
    handler: &mut H,
    key: usize,
    ev: Event<'_>,
) -> bool {
    let state = core.conns[key].state;
    match ev {
        Event::Text(t) if state == State::Open => {
            handler.on_message(&mut Ws { core, key }, Message::Text(t));
        }
        Event::Binary(b) if state == State::Open => {
            handler.on_message(&mut Ws { core, key }, Message::Binary(b));
        }
        Event::Ping(p) if state == State::Open => {
            // RFC 6455 §5.5.2: a Pong with the same payload, as soon as practical.
            let _ = core.send_control(key, OpCode::Pong, p);
            handler.on_ping(&mut Ws { core, key }, p);
        }
        Event::Pong(p) if state == State::Open => {
            handler.on_pong(&mut Ws { core, key }, p);
        }
        Event::Compressed { text, data } if state == State::Open => {
            return deliver_compressed(core, handler, key, text, data);
        }
        Event::Close(code, reason) => match state {
            State::Open => {
                // RFC 6455 §5.5.1: answer with a Close (echoing the code), then the server closes TCP.
                let echo: &[u8] = if code == close::NO_STATUS {
                    &[]
                } else {
                    &code.to_be_bytes()
                };
                let _ = core.send_control(key, OpCode::Close, echo);
                core.notify(handler, key, code, reason);
                core.finish_after_flush(key);
            }
            State::Closing => {
                core.notify(handler, key, code, reason);
                core.finish_after_flush(key);
            }
            _ => {}
        },
        // Data after our Close is discarded (RFC 6455 §5.5.1).
        _ => {}
    }
    matches!(core.conns[key].state, State::Open | State::Closing)
}

/// Inflates a compressed message (capped at the message limit, BAD_INPUTS 48), checks its UTF-8
/// and hands it to the handler. Returns whether decoding should go on.
fn deliver_compressed<H: Handler>(
    core: &mut Core<H::Data>,
    handler: &mut H,
    key: usize,
    text: bool,
    data: &[u8],
) -> bool {
    let mut buf = std::mem::take(&mut core.inflated);
    buf.clear();
    let max = usize::try_from(core.cfg.max_message).unwrap_or(usize::MAX);
    let z = core.conns[key].deflate;
    if let Err(e) = core.z.inflate(key, z, data, max, &mut buf) {
        debug!("reactor {}: conn {key}: inflate: {e}", core.reactor);
        let why = match e {
            InflateError::TooLarge { .. } => "message too large",
            InflateError::Corrupt => "invalid compressed data",
        };
        core.fail_with(handler, key, e.close_code(), why);
        core.inflated = buf;
        return false;
    }
    if text {
        match simdutf8::basic::from_utf8(&buf) {
            Ok(t) => handler.on_message(&mut Ws { core, key }, Message::Text(t)),
            Err(_) => {
                let e = ProtocolError::InvalidUtf8;
                core.fail_with(handler, key, e.close_code(), e.reason());
            }
        }
    } else {
        handler.on_message(&mut Ws { core, key }, Message::Binary(&buf));
    }
    // Keep the scratch for the next message, unless one huge message blew it up.
    if buf.capacity() <= 1 << 20 {
        core.inflated = buf;
    }
    matches!(core.conns[key].state, State::Open | State::Closing)
}

impl<D> Core<D> {
    fn is_live(&self, key: usize, generation: u32) -> bool {
        self.conns
            .get(key)
            .is_some_and(|c| c.generation == generation && c.state != State::Dead)
    }

    fn lookup(&self, token: u64) -> Option<usize> {
        let (key, generation) = split_token(token);
        self.is_live(key, generation).then_some(key)
    }

    /// Takes a new socket into the slab.
    fn admit(&mut self, mut stream: TcpStream) {
        if self.pending_handshakes >= self.cfg.max_pending_handshakes {
            // BAD_INPUTS 10, 57: too many handshakes in flight.
            let mut out = Vec::new();
            handshake::write_reject(&mut out, 503, &[]);
            let _ = stream.write(&out);
            return;
        }
        if self.conns.len() >= u32::MAX as usize - 2 {
            return;
        }
        let _ = stream.set_nodelay(true);
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1).max(1);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let token = token_of(key, generation);
        if let Err(e) =
            self.registry
                .register(&mut stream, Token(token as usize), Interest::READABLE)
        {
            debug!("register: {e}");
            return;
        }
        let mut conn = Conn::new(stream, generation, 0);
        conn.flags |= PENDING;
        entry.insert(conn);
        self.pending_handshakes += 1;
        let timeout = self.cfg.handshake_timeout;
        self.arm(key, timeout);
    }

    /// Sets the connection's deadline `after` from now, or at its message deadline if earlier.
    fn arm(&mut self, key: usize, after: Duration) {
        let mut tick = self.wheel.deadline(self.now, after);
        if let Some(p) = self.conns[key]
            .rx
            .as_ref()
            .and_then(|p| p.progress_deadline)
        {
            tick = tick.min(p);
        }
        self.arm_tick(key, tick);
    }

    /// Sets the connection's deadline to `tick`.
    fn arm_tick(&mut self, key: usize, tick: u32) {
        let conn = &mut self.conns[key];
        let earlier = tick < conn.deadline;
        conn.deadline = tick;
        if conn.flags & IN_WHEEL == 0 || earlier {
            conn.flags |= IN_WHEEL;
            let t = token_of(key, conn.generation);
            self.wheel.insert(tick, t);
        }
    }

    /// Bytes arrived: push the idle deadline back (a store, no wheel work; BAD_INPUTS 63).
    fn touch(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.state != State::Open || self.cfg.idle_timeout.is_zero() {
            return;
        }
        conn.flags &= !PING_SENT;
        let half = self.cfg.idle_timeout / 2;
        self.arm(key, half);
    }

    fn restore_head(&mut self, key: usize, head: &[u8]) {
        if head.is_empty() {
            return;
        }
        if let Some(p) = self.conns[key].rx.as_mut() {
            p.put_head(head);
        }
    }

    /// Marks a connection dead; its slot is freed at the end of the iteration.
    fn kill(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.state == State::Dead {
            return;
        }
        if conn.flags & PENDING != 0 {
            conn.flags &= !PENDING;
            self.pending_handshakes -= 1;
        }
        conn.state = State::Dead;
        if self.cork_owner == Some(key) {
            // Whatever is corked for it still goes out before the socket closes.
            self.flush_cork();
        }
        self.dead.push(key);
    }

    /// Calls on_close once, for connections that were opened.
    fn notify<H: Handler<Data = D>>(
        &mut self,
        handler: &mut H,
        key: usize,
        code: u16,
        reason: &[u8],
    ) {
        let conn = &mut self.conns[key];
        if conn.flags & NOTIFIED != 0 || conn.data.is_none() {
            return;
        }
        conn.flags |= NOTIFIED;
        let state = conn.state;
        // Sends from on_close are refused: present the connection as closing.
        if state == State::Open {
            conn.state = State::Flushing;
        }
        handler.on_close(&mut Ws { core: self, key }, code, reason);
        let conn = &mut self.conns[key];
        if conn.state == State::Flushing && state == State::Open {
            conn.state = state;
        }
    }

    /// TCP went away without a Close (BAD_INPUTS 42): 1006 locally.
    fn abnormal<H: Handler<Data = D>>(&mut self, handler: &mut H, key: usize, why: &str) {
        trace!("abnormal close: {why}");
        self.notify(handler, key, close::ABNORMAL, why.as_bytes());
        self.kill(key);
    }

    /// Fails the connection (RFC 6455 §7.1.7) for a protocol error.
    fn fail<H: Handler<Data = D>>(&mut self, handler: &mut H, key: usize, e: ProtocolError) {
        self.fail_with(handler, key, e.close_code(), e.reason());
    }

    fn fail_with<H: Handler<Data = D>>(
        &mut self,
        handler: &mut H,
        key: usize,
        code: u16,
        why: &str,
    ) {
        let state = self.conns[key].state;
        // Already closing (e.g. a second over-limit send in the same batch): the first failure
        // stands. Killing here would cut off the Close frame still queued behind the data.
        if matches!(state, State::Flushing | State::Draining | State::Dead) {
            return;
        }
        if state == State::Open {
            // Codes here are ours (protocol errors, validated policy codes): they encode.
            if let Ok((p, n)) = close::encode(code, why) {
                let _ = self.send_control(key, OpCode::Close, &p[..n]);
            }
        }
        self.notify(handler, key, code, why.as_bytes());
        if matches!(state, State::Open | State::Closing) {
            self.start_draining(key);
        } else {
            self.kill(key);
        }
    }

    /// After our final Close: flush, shut the write side, read until the peer's FIN or timeout.
    fn start_draining(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        conn.state = State::Draining;
        conn.rx = None;
        let timeout = self.cfg.close_timeout;
        self.arm(key, timeout);
        self.flush_cork();
        self.shutdown_if_flushed(key);
    }

    fn shutdown_if_flushed(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.state == State::Draining && conn.buffered() == 0 {
            let _ = conn.stream.shutdown(Shutdown::Write);
        }
    }

    /// The close handshake is over: close TCP once unsent bytes have left.
    fn finish_after_flush(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        conn.state = State::Flushing;
        conn.rx = None;
        self.flush_cork();
        if self.conns[key].buffered() == 0 {
            self.kill(key);
        } else {
            let timeout = self.cfg.close_timeout;
            self.arm(key, timeout);
        }
    }

    /// Answers an upgrade request with an HTTP error and closes.
    fn reject(&mut self, key: usize, status: u16, headers: &[(String, String)]) {
        let mut out = Vec::with_capacity(128);
        handshake::write_reject(&mut out, status, headers);
        self.raw_out(key, &out);
        self.conns[key].state = State::Flushing;
        self.flush_cork();
        if self.conns[key].buffered() == 0 {
            self.kill(key);
        }
    }

    /// Starts a close from our side (application or shutdown).
    pub(crate) fn close(&mut self, key: usize, code: u16, reason: &str) -> Result<(), SendError> {
        let (payload, n) = close::encode(code, reason)?;
        if self.conns[key].state != State::Open {
            return Err(SendError::Closed);
        }
        self.send_control(key, OpCode::Close, &payload[..n])?;
        let conn = &mut self.conns[key];
        conn.state = State::Closing;
        let timeout = self.cfg.close_timeout;
        self.arm(key, timeout);
        Ok(())
    }

    /// Queues a control frame; bypasses the backpressure limit. A pong behind blocked output
    /// replaces any earlier one (BAD_INPUTS 34).
    fn send_control(&mut self, key: usize, op: OpCode, payload: &[u8]) -> Result<(), SendError> {
        if payload.len() > 125 {
            return Err(SendError::ControlTooLong);
        }
        let conn = &mut self.conns[key];
        if op == OpCode::Pong
            && let Some(tx) = conn.tx.as_mut()
        {
            let mut p = [0u8; 125];
            p[..payload.len()].copy_from_slice(payload);
            tx.pong = Some((p, payload.len() as u8));
            return Ok(());
        }
        self.frame_out(key, true, op, payload);
        Ok(())
    }

    /// Queues a whole message; refused while a fragmented one is being sent (RFC 6455 §5.4:
    /// its frames must not be interleaved with another message's).
    fn send_message(
        &mut self,
        key: usize,
        op: OpCode,
        payload: &[u8],
        compress: Compress,
    ) -> Result<SendStatus, SendError> {
        if self.conns[key].flags & SENDING_FRAGMENTS != 0 {
            return Err(SendError::FragmentInProgress);
        }
        self.send_data(key, true, op, payload, compress)
    }

    /// Queues a data frame, applying the backpressure policy.
    pub(crate) fn send_data(
        &mut self,
        key: usize,
        fin: bool,
        op: OpCode,
        payload: &[u8],
        compress: Compress,
    ) -> Result<SendStatus, SendError> {
        let conn = &self.conns[key];
        if conn.state != State::Open {
            return Err(SendError::Closed);
        }
        if let Some(s) = self.over_limit(key, payload.len() + MAX_HEADER) {
            return Ok(s);
        }
        let wanted = match compress {
            Compress::Auto => payload.len() >= self.cfg.compress_threshold,
            Compress::Always => true,
            Compress::Never => false,
        };
        if fin && op != OpCode::Continuation && self.conns[key].flags & DEFLATE != 0 && wanted {
            // RFC 7692 §6: a whole message, compressed, RSV1 on its (only) frame.
            let mut out = std::mem::take(&mut self.deflated);
            out.clear();
            let z = self.conns[key].deflate;
            self.z.deflate(key, z, payload, &mut out);
            self.frame_out_rsv(key, true, true, op, &out);
            if out.capacity() <= 1 << 20 {
                self.deflated = out;
            }
        } else {
            self.frame_out(key, fin, op, payload);
        }
        Ok(self.status(key))
    }

    /// What a send that was queued did: Buffered behind unsent bytes, or Sent.
    fn status(&self, key: usize) -> SendStatus {
        if self.conns[key].buffered() > 0 {
            SendStatus::Buffered
        } else {
            SendStatus::Sent
        }
    }

    /// Applies the backpressure limit before queueing `extra` more bytes; Some(status) when the
    /// message must not be queued.
    fn over_limit(&mut self, key: usize, extra: usize) -> Option<SendStatus> {
        let queued = self.conns[key].buffered();
        if queued == 0 || queued + extra <= self.cfg.max_backpressure {
            return None;
        }
        Some(match self.cfg.backpressure_policy {
            BackpressurePolicy::Drop => SendStatus::Dropped,
            BackpressurePolicy::Close(code) => {
                self.broken.push((key, code));
                SendStatus::Dropped
            }
        })
    }

    /// Queues a published message for this reactor's subscribers of `topic`: it leaves with the
    /// iteration's batch (`flush_batch`), so publishes that arrive together reach each subscriber
    /// in one writev. O(1) per publish; the per-subscriber work is done once per batch. Returns
    /// the subscribers it was queued for.
    pub(crate) fn deliver(&mut self, topic: &str, m: &Arc<Published>) -> usize {
        self.published += 1;
        let Some(id) = self.topics.id(topic) else {
            return 0;
        };
        self.batch.push((id, m.clone()));
        self.topics.subscribers_of(id).len()
    }

    /// Writes the queued publishes: to each subscriber, the one framed copy (or the one
    /// compressed copy, or, for a connection keeping its own deflate context, its own
    /// compression) of each message of its topics, in publish order, in one writev, or behind its
    /// unsent bytes with the backpressure rules of any send. A subscriber that cannot keep up
    /// gets the backpressure policy; the others do not notice.
    pub(crate) fn flush_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut self.batch);
        // Subscriptions do not change while a batch is queued (subscribe and unsubscribe flush it
        // first; closed connections leave their topics after it is flushed): borrow them out.
        let topics = std::mem::take(&mut self.topics);
        let mut order = std::mem::take(&mut self.batch_order);
        order.clear();
        let first = batch[0].0;
        if batch.iter().all(|e| e.0 == first) {
            // One topic (the usual case): every subscriber gets every message. No sort.
            order.extend(0..batch.len() as u32);
            for &key in topics.subscribers_of(first) {
                self.write_group(key as usize, &order, &batch);
            }
        } else {
            // Several topics: (subscriber, message) pairs, grouped by subscriber with a stable
            // sort so that each subscriber's messages stay in publish order.
            let mut pairs = Vec::new();
            for (i, e) in batch.iter().enumerate() {
                pairs.extend(topics.subscribers_of(e.0).iter().map(|&k| (k, i as u32)));
            }
            pairs.sort_by_key(|p| p.0);
            let mut i = 0;
            while i < pairs.len() {
                let key = pairs[i].0;
                order.clear();
                order.extend(pairs[i..].iter().take_while(|p| p.0 == key).map(|p| p.1));
                i += order.len();
                self.write_group(key as usize, &order, &batch);
            }
        }
        self.topics = topics;
        self.batch_order = order;
        batch.clear();
        if batch.capacity() <= 1 << 16 {
            self.batch = batch;
        }
    }

    /// Writes messages `idx` of `batch` to subscriber `key`.
    fn write_group(&mut self, key: usize, idx: &[u32], batch: &[(u32, Arc<Published>)]) {
        let (shared, own) = match self.conns.get(key) {
            // A fragmented message being sent must not be interleaved with another (§5.4).
            Some(c) if c.state == State::Open && c.flags & SENDING_FRAGMENTS == 0 => {
                let z = c.flags & DEFLATE != 0;
                let shared = z && crate::compression::takes_shared(c.deflate);
                (shared, z && !shared)
            }
            _ => return,
        };
        if own {
            // Its own deflate context: each message compressed for it alone.
            for &i in idx {
                let m = &batch[i as usize].1;
                let op = if m.text { OpCode::Text } else { OpCode::Binary };
                if self
                    .send_data(key, true, op, m.payload(), Compress::Auto)
                    .is_ok_and(|s| s != SendStatus::Dropped)
                {
                    self.deliveries += 1;
                }
            }
            return;
        }
        let frame = |i: &u32| -> &[u8] {
            let m = &batch[*i as usize].1;
            match (&m.deflated, shared) {
                (Some(z), true) => z,
                _ => &m.plain,
            }
        };
        // Bytes corked for it earlier go first.
        if self.cork_owner == Some(key) {
            self.flush_cork();
        }
        let mut rest = idx;
        if self.conns[key].tx.is_none() {
            // Nothing waiting: as much as the socket takes, in as few writev calls as possible.
            while !rest.is_empty() {
                let n = rest.len().min(64);
                let mut slices = [io::IoSlice::new(&[]); 64];
                let mut total = 0;
                for (s, i) in slices.iter_mut().zip(&rest[..n]) {
                    *s = io::IoSlice::new(frame(i));
                    total += frame(i).len();
                }
                let written = match self.conns[key].stream.write_vectored(&slices[..n]) {
                    Ok(w) => w,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(e) => {
                        debug!("write: {e}");
                        self.broken.push((key, close::ABNORMAL));
                        return;
                    }
                };
                if written == total {
                    self.deliveries += n as u64;
                    rest = &rest[n..];
                    continue;
                }
                // The socket is full: the rest of a partly written frame must follow.
                let mut skip = written;
                let mut k = 0;
                while skip >= frame(&rest[k]).len() {
                    skip -= frame(&rest[k]).len();
                    k += 1;
                }
                let tx = self.conns[key].tx.get_or_insert_with(Box::default);
                tx.out.push(&frame(&rest[k])[skip..], &mut self.pool);
                self.want_write(key);
                self.deliveries += k as u64 + 1;
                rest = &rest[k + 1..];
                break;
            }
        }
        // Behind unsent bytes: each whole frame, within the backpressure limit.
        for i in rest {
            let f = frame(i);
            if self.over_limit(key, f.len()).is_some() {
                continue;
            }
            if let Some(tx) = self.conns[key].tx.as_mut() {
                tx.out.push(f, &mut self.pool);
                self.deliveries += 1;
            }
        }
    }

    /// Frames `payload` (servers never mask) into the cork, or behind pending output.
    fn frame_out(&mut self, key: usize, fin: bool, op: OpCode, payload: &[u8]) {
        self.frame_out_rsv(key, fin, false, op, payload);
    }

    fn frame_out_rsv(&mut self, key: usize, fin: bool, rsv1: bool, op: OpCode, payload: &[u8]) {
        let mut h = [0u8; MAX_HEADER];
        let hl = frame::encode(&mut h, fin, rsv1, op, None, payload.len() as u64);
        self.raw_out2(key, &h[..hl], payload);
    }

    fn raw_out(&mut self, key: usize, bytes: &[u8]) {
        self.raw_out2(key, bytes, &[]);
    }

    /// The send path: behind pending output if there is some, else into the cork (flushed once
    /// per callback batch), else, for large payloads, straight to the socket with writev.
    fn raw_out2(&mut self, key: usize, a: &[u8], b: &[u8]) {
        // Queued deliveries were published before this send: they leave first.
        if !self.batch.is_empty() {
            self.flush_batch();
        }
        if let Some(tx) = self.conns[key].tx.as_mut() {
            tx.out.push(a, &mut self.pool);
            tx.out.push(b, &mut self.pool);
            return;
        }
        if self.cork_owner != Some(key) {
            self.flush_cork();
            self.cork_owner = Some(key);
        }
        let total = a.len() + b.len();
        if self.cork.len() + total <= CORK_CAP {
            self.cork.extend_from_slice(a);
            self.cork.extend_from_slice(b);
            return;
        }
        // Too big to cork: write what is corked plus this frame in one writev.
        let corked = std::mem::take(&mut self.cork);
        let slices = [
            io::IoSlice::new(&corked),
            io::IoSlice::new(a),
            io::IoSlice::new(b),
        ];
        let all = corked.len() + total;
        let conn = &mut self.conns[key];
        let written = match conn.stream.write_vectored(&slices) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => {
                debug!("write: {e}");
                self.broken.push((key, close::ABNORMAL));
                all
            }
        };
        if written < all {
            let mut skip = written;
            let mut tx = Box::<Tx>::default();
            for s in [&corked[..], a, b] {
                if skip >= s.len() {
                    skip -= s.len();
                    continue;
                }
                tx.out.push(&s[skip..], &mut self.pool);
                skip = 0;
            }
            conn.tx = Some(tx);
            self.want_write(key);
        }
        self.cork = corked;
        self.cork.clear();
    }

    /// Writes the cork to its owner's socket; what the kernel does not take becomes backpressure.
    pub(crate) fn flush_cork(&mut self) {
        let Some(key) = self.cork_owner.take() else {
            return;
        };
        if self.cork.is_empty() {
            return;
        }
        let Some(conn) = self.conns.get_mut(key) else {
            self.cork.clear();
            return;
        };
        let mut written = 0;
        while written < self.cork.len() {
            match conn.stream.write(&self.cork[written..]) {
                Ok(0) => break,
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    debug!("write: {e}");
                    if conn.state != State::Dead {
                        self.broken.push((key, close::ABNORMAL));
                    }
                    written = self.cork.len();
                }
            }
        }
        if written < self.cork.len() && conn.state != State::Dead {
            let tx = conn.tx.get_or_insert_with(Box::default);
            tx.out.push(&self.cork[written..], &mut self.pool);
            self.want_write(key);
        }
        self.cork.clear();
    }

    fn want_write(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.flags & WANT_WRITE != 0 {
            return;
        }
        conn.flags |= WANT_WRITE;
        let t = token_of(key, conn.generation);
        if let Err(e) = self.registry.reregister(
            &mut conn.stream,
            Token(t as usize),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            debug!("reregister: {e}");
            self.broken.push((key, close::ABNORMAL));
        }
    }

    /// Writable: send pending output; once drained, drop writable interest and the chunks.
    fn write_pending(&mut self, key: usize) {
        if self.cork_owner == Some(key) {
            self.flush_cork();
        }
        let conn = &mut self.conns[key];
        let Some(tx) = conn.tx.as_mut() else {
            return;
        };
        loop {
            match tx.out.write_to(&mut conn.stream, &mut self.pool) {
                Ok(false) => return,
                Ok(true) => {}
                Err(e) => {
                    debug!("write: {e}");
                    self.broken.push((key, close::ABNORMAL));
                    return;
                }
            }
            // Drained: the coalesced pong, if any, goes last.
            match tx.pong.take() {
                Some((p, n)) => {
                    let mut h = [0u8; MAX_HEADER];
                    let hl = frame::encode(&mut h, true, false, OpCode::Pong, None, u64::from(n));
                    tx.out.push(&h[..hl], &mut self.pool);
                    tx.out.push(&p[..usize::from(n)], &mut self.pool);
                }
                None => break,
            }
        }
        if let Some(mut tx) = conn.tx.take() {
            tx.out.clear(&mut self.pool);
        }
        conn.flags &= !WANT_WRITE;
        let t = token_of(key, conn.generation);
        let _ = self
            .registry
            .reregister(&mut conn.stream, Token(t as usize), Interest::READABLE);
        match conn.state {
            State::Flushing => self.kill(key),
            State::Draining => self.shutdown_if_flushed(key),
            State::Open => self.drained.push(key),
            _ => {}
        }
    }
}

impl<D> Ws<'_, D> {
    /// This connection's id, usable from any thread through [`crate::ServerHandle`].
    pub fn id(&self) -> ConnId {
        ConnId {
            reactor: self.core.reactor,
            token: token_of(self.key, self.core.conns[self.key].generation),
        }
    }

    /// The connection's data.
    ///
    /// # Panics
    /// Never in callbacks: data is set before on_open and kept until the slot is freed.
    pub fn data(&self) -> &D {
        self.core.conns[self.key]
            .data
            .as_ref()
            .expect("data is set when the upgrade is accepted")
    }

    /// The connection's data, mutably.
    ///
    /// # Panics
    /// As [`Ws::data`].
    pub fn data_mut(&mut self) -> &mut D {
        self.core.conns[self.key]
            .data
            .as_mut()
            .expect("data is set when the upgrade is accepted")
    }

    /// The peer's address (a syscall: not stored in the connection entry).
    pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.core.conns[self.key].stream.peer_addr()
    }

    /// Whether the connection is open for sending.
    pub fn is_open(&self) -> bool {
        self.core.conns[self.key].state == State::Open
    }

    /// Sends a whole message.
    ///
    /// # Errors
    /// [`SendError::Closed`] once closing; [`SendError::FragmentInProgress`] while a fragmented
    /// message is being sent.
    pub fn send(&mut self, msg: Message<'_>) -> Result<SendStatus, SendError> {
        self.send_with(msg, Compress::Auto)
    }

    /// Sends a whole message, choosing whether it is compressed (when the connection negotiated
    /// permessage-deflate; otherwise it is always sent as it is).
    ///
    /// # Errors
    /// As [`Ws::send`].
    pub fn send_with(
        &mut self,
        msg: Message<'_>,
        compress: Compress,
    ) -> Result<SendStatus, SendError> {
        self.core
            .send_message(self.key, msg.opcode(), msg.as_bytes(), compress)
    }

    /// Sends a whole message to another connection (or this one). On this reactor it is queued
    /// at once, as that connection's own [`Ws::send`] would; on another reactor it is posted to
    /// that reactor's mailbox as [`crate::ServerHandle::send_nowait`] does, and `Sent` then
    /// means posted. To send one message to many connections, topics ([`Ws::subscribe`],
    /// [`Ws::publish`]) frame and compress it once instead of once per connection.
    ///
    /// # Errors
    /// [`SendError::StaleId`] for a connection of this reactor that is gone, else as
    /// [`Ws::send`]; [`SendError::ServerStopped`] when the other reactor is gone.
    pub fn send_to(&mut self, id: ConnId, msg: Message<'_>) -> Result<SendStatus, SendError> {
        if id.reactor != self.core.reactor {
            self.core.peers.send_nowait(id, msg)?;
            return Ok(SendStatus::Sent);
        }
        let key = self.core.lookup(id.token).ok_or(SendError::StaleId)?;
        self.core
            .send_message(key, msg.opcode(), msg.as_bytes(), Compress::Auto)
    }

    /// Sends a text message.
    ///
    /// # Errors
    /// As [`Ws::send`].
    pub fn send_text(&mut self, text: &str) -> Result<SendStatus, SendError> {
        self.send(Message::Text(text))
    }

    /// Sends a binary message.
    ///
    /// # Errors
    /// As [`Ws::send`].
    pub fn send_binary(&mut self, bytes: &[u8]) -> Result<SendStatus, SendError> {
        self.send(Message::Binary(bytes))
    }

    /// Sends one fragment of a message whose size is not known up front (RFC 6455 §5.4). The
    /// message type comes from the first fragment; later fragments' variant is ignored. Control
    /// frames may be sent between fragments; other messages may not.
    ///
    /// # Errors
    /// [`SendError::FragmentInProgress`] for a second `First`; [`SendError::NoFragmentInProgress`]
    /// for `Continue`/`Last` without `First`; [`SendError::Closed`] once closing.
    pub fn send_fragment(
        &mut self,
        part: Fragment,
        msg: Message<'_>,
    ) -> Result<SendStatus, SendError> {
        let sending = self.core.conns[self.key].flags & SENDING_FRAGMENTS != 0;
        let bytes = msg.as_bytes();
        let (fin, op) = match (part, sending) {
            (Fragment::First, true) => return Err(SendError::FragmentInProgress),
            (Fragment::First, false) => match msg {
                Message::Text(_) => (false, OpCode::Text),
                Message::Binary(_) => (false, OpCode::Binary),
            },
            (_, false) => return Err(SendError::NoFragmentInProgress),
            (Fragment::Continue, true) => (false, OpCode::Continuation),
            (Fragment::Last, true) => (true, OpCode::Continuation),
        };
        // Fragments are never dropped halfway: a dropped middle would corrupt the message.
        if self.core.conns[self.key].state != State::Open {
            return Err(SendError::Closed);
        }
        self.core.frame_out(self.key, fin, op, bytes);
        let conn = &mut self.core.conns[self.key];
        if fin {
            conn.flags &= !SENDING_FRAGMENTS;
        } else {
            conn.flags |= SENDING_FRAGMENTS;
        }
        Ok(self.core.status(self.key))
    }

    /// Sends a ping.
    ///
    /// # Errors
    /// [`SendError::ControlTooLong`] over 125 bytes; [`SendError::Closed`] once closing.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        if !self.is_open() {
            return Err(SendError::Closed);
        }
        self.core.send_control(self.key, OpCode::Ping, payload)
    }

    /// Starts the close handshake with `code` and `reason` (RFC 6455 §7.1.2). `on_close` follows
    /// when the peer answers or the close timeout passes.
    ///
    /// # Errors
    /// [`SendError::InvalidCloseCode`], [`SendError::ReasonTooLong`], or [`SendError::Closed`]
    /// when already closing.
    pub fn close(&mut self, code: u16, reason: &str) -> Result<(), SendError> {
        self.core.close(self.key, code, reason)
    }

    /// Bytes queued behind the socket (backpressure).
    pub fn buffered(&self) -> usize {
        self.core.conns[self.key].buffered()
    }

    /// Subscribes this connection to `topic` (released on close). False if it already was.
    pub fn subscribe(&mut self, topic: &str) -> bool {
        // Publishes queued before this go to the subscribers of that moment.
        self.core.flush_batch();
        self.core.topics.subscribe(self.key as u32, topic)
    }

    /// Unsubscribes this connection from `topic`. False if it was not subscribed.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        self.core.flush_batch();
        self.core.topics.unsubscribe(self.key as u32, topic)
    }

    /// Publishes `msg` to every subscriber of `topic`, on every reactor (this connection too,
    /// if it subscribes). The message is framed once and, when deflate is on and it is at least
    /// `compress_threshold` long, compressed once; each other reactor receives one shared copy
    /// through its mailbox. Returns the number of subscribers on this reactor it was queued for
    /// (it leaves at the end of the callback batch, with the backpressure rules of any send).
    ///
    /// # Errors
    /// [`SendError::ServerStopped`] when another reactor is gone.
    pub fn publish(&mut self, topic: &str, msg: Message<'_>) -> Result<usize, SendError> {
        let core = &mut *self.core;
        let (text, payload) = match msg {
            Message::Text(t) => (true, t.as_bytes()),
            Message::Binary(b) => (false, b),
        };
        let compress = core.peers.compress_publish(payload.len());
        let published = if compress {
            Published::new(text, payload, Some(core.z.publish_deflater()))
        } else {
            Published::new(text, payload, None)
        };
        let published = Arc::new(published);
        let topic: Arc<str> = topic.into();
        let local = core.deliver(&topic, &published);
        if core.peers.reactors() > 1 {
            core.peers.broadcast(Some(core.reactor), topic, published)?;
        }
        Ok(local)
    }

    /// Messages compressed by this reactor so far (each publish compresses at most once).
    pub fn compressions(&self) -> u64 {
        self.core.z.compressions
    }
}
