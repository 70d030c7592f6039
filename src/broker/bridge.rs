//! The bridge thread: two connections to Redis on a poll of its own (one subscribed to the live
//! topics' channels, one that publishes), the topics' interest by reactor, the publishes waiting
//! for the broker, reconnection with backoff. It never waits on the network but in `poll`, and it
//! reaches the reactors only through their mailboxes.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::envelope;
use super::resp::{self, Value};
use super::{BrokerConfig, Link, Pending, Up};
use crate::deflate::codec::Deflater;
use crate::mailbox::Bus;
use crate::published::Published;

pub(crate) const WAKE: Token = Token(0);
const SUB: Token = Token(1);
const PUB: Token = Token(2);

/// Bytes read from one connection before its replies are taken.
const READ_AT_ONCE: usize = 256 << 10;

/// Topics per SUBSCRIBE or UNSUBSCRIBE command.
const PER_COMMAND: usize = 512;

/// A reply the publishing connection owes, in the order the commands went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owed {
    Auth,
    Select,
    Publish,
}

/// One connection to Redis.
struct Side {
    sock: TcpStream,
    out: Vec<u8>,
    inb: Vec<u8>,
    connected: bool,
    /// An AUTH (and a SELECT) whose answer has not come.
    greeting: usize,
}

impl Side {
    fn ready(&self) -> bool {
        self.connected && self.greeting == 0
    }

    /// Writes what it can of `out`.
    fn flush(&mut self) -> io::Result<()> {
        let mut done = 0;
        while done < self.out.len() {
            match self.sock.write(&self.out[done..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.drain(..done);
        Ok(())
    }

    /// Reads what has come, up to `READ_AT_ONCE` bytes; an end of stream is an error. Returns
    /// whether it stopped before the socket was empty (the caller takes the replies, then reads
    /// again: edge-triggered readiness will not report these bytes again).
    fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 16 << 10];
        let mut read = 0;
        loop {
            if read >= READ_AT_ONCE {
                return Ok(true);
            }
            match self.sock.read(&mut chunk) {
                Ok(0) => return Err(io::Error::other("closed by the broker")),
                Ok(n) => {
                    self.inb.extend_from_slice(&chunk[..n]);
                    read += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The complete replies read so far; what is left is one unfinished reply, which may not
    /// grow past `max`.
    fn take_replies(&mut self, max: usize) -> io::Result<Vec<Value>> {
        let mut at = 0;
        let mut got = Vec::new();
        while let Some((v, n)) = resp::parse(&self.inb[at..], max)
            .map_err(|e| io::Error::other(format!("bad reply: {}", e.0)))?
        {
            at += n;
            got.push(v);
        }
        self.inb.drain(..at);
        if self.inb.len() > max {
            return Err(io::Error::other("a reply over the size limit"));
        }
        Ok(got)
    }

    /// Whether a non-blocking connect has finished; an error if it failed.
    fn check_connected(&mut self) -> io::Result<bool> {
        if self.connected {
            return Ok(true);
        }
        if let Some(e) = self.sock.take_error()? {
            return Err(e);
        }
        match self.sock.peer_addr() {
            Ok(_) => {
                self.connected = true;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Per topic: the reactors with subscribers (a bit each; reactors past 64 always get
/// publishes) and how many there are.
#[derive(Default)]
struct Topic {
    reactors: u64,
    count: u32,
}

pub(crate) struct Bridge {
    poll: Poll,
    rx: std::sync::mpsc::Receiver<Up>,
    link: Arc<Link>,
    cfg: BrokerConfig,
    bus: Bus,
    /// This process's id in the messages it publishes.
    node: u64,
    /// The largest reply taken from Redis.
    max_reply: usize,
    level: u32,
    deflater: Option<Deflater>,
    sub: Option<Side>,
    publ: Option<Side>,
    owed: VecDeque<Owed>,
    topics: HashMap<Box<str>, Topic>,
    /// Encoded PUBLISH commands not yet handed to the connection, with their cost.
    waiting: VecDeque<(Vec<u8>, usize)>,
    retry_at: Option<Instant>,
    backoff: Duration,
    down_since: Option<Instant>,
    ever_up: bool,
    stopping: bool,
    /// Messages from other nodes compressed here (once each, for every reactor).
    compressions: u64,
}

impl Bridge {
    pub(crate) fn new(p: Pending, bus: Bus, max_message: usize, level: u32) -> Bridge {
        let mut id = [0u8; 8];
        if crate::sys::random_bytes(&mut id).is_err() {
            id = (std::process::id() as u64 ^ 0x6d79_7269_6164).to_be_bytes();
        }
        Bridge {
            poll: p.poll,
            rx: p.rx,
            link: p.link,
            backoff: p.cfg.reconnect_min,
            cfg: p.cfg,
            bus,
            node: u64::from_be_bytes(id),
            max_reply: max_message + 4096,
            level,
            deflater: None,
            sub: None,
            publ: None,
            owed: VecDeque::new(),
            topics: HashMap::new(),
            waiting: VecDeque::new(),
            retry_at: Some(Instant::now()),
            down_since: Some(Instant::now()),
            ever_up: false,
            stopping: false,
            compressions: 0,
        }
    }

    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(64);
        info!("broker bridge: Redis at {}", self.cfg.addr);
        while !self.stopping {
            let timeout = self
                .retry_at
                .map(|t| t.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                warn!("broker bridge: poll: {e}");
                return;
            }
            for ev in &events {
                let r = match ev.token() {
                    t @ (SUB | PUB) => self.on_ready(t),
                    _ => Ok(()),
                };
                if let Err(e) = r {
                    self.fail(&e.to_string());
                }
            }
            self.link.woken.store(false, Ordering::Release);
            while let Ok(up) = self.rx.try_recv() {
                self.take(up);
            }
            if self.retry_at.is_some_and(|t| Instant::now() >= t) {
                self.connect();
            }
            if let Err(e) = self.pump() {
                self.fail(&e.to_string());
            }
        }
        let c = &self.link.counts;
        info!(
            "broker bridge: stopped; {} published, {} received, {} compressions, {} dropped, {} reconnects",
            c.published.load(Ordering::Relaxed),
            c.received.load(Ordering::Relaxed),
            self.compressions,
            c.dropped.load(Ordering::Relaxed),
            c.reconnects.load(Ordering::Relaxed)
        );
    }

    /// A command from a reactor or a handle.
    fn take(&mut self, up: Up) {
        match up {
            Up::Stop => self.stopping = true,
            Up::Interest { reactor, topic, on } => self.interest(reactor, topic, on),
            Up::Publish {
                topic,
                text,
                payload,
                cost,
            } => {
                let mut msg = Vec::with_capacity(envelope::HEADER + payload.len());
                envelope::seal(&mut msg, self.node, text);
                msg.extend_from_slice(&payload);
                let channel = self.channel(&topic);
                let mut cmd = Vec::with_capacity(msg.len() + channel.len() + 48);
                resp::command(&mut cmd, &[b"PUBLISH", channel.as_bytes(), &msg]);
                self.waiting.push_back((cmd, cost));
            }
        }
    }

    fn channel(&self, topic: &str) -> String {
        format!("{}{topic}", self.cfg.channel_prefix)
    }

    /// Reactor `reactor` gained its first (`on`) or lost its last subscriber of `topic`: the
    /// channel is subscribed while any reactor has one.
    fn interest(&mut self, reactor: u32, topic: Box<str>, on: bool) {
        let bit = if reactor < 64 { 1u64 << reactor } else { 0 };
        let channel = self.channel(&topic);
        let (before, now) = match self.topics.get_mut(&*topic) {
            Some(t) => {
                let before = t.count;
                if on {
                    t.reactors |= bit;
                    t.count += 1;
                } else {
                    t.reactors &= !bit;
                    t.count = t.count.saturating_sub(1);
                }
                let now = t.count;
                if now == 0 {
                    self.topics.remove(&*topic);
                }
                (before, now)
            }
            None if on => {
                self.topics.insert(
                    topic,
                    Topic {
                        reactors: bit,
                        count: 1,
                    },
                );
                (0, 1)
            }
            None => return,
        };
        let verb: &[u8] = match (before, now) {
            (0, n) if n > 0 => b"SUBSCRIBE",
            (b, 0) if b > 0 => b"UNSUBSCRIBE",
            _ => return,
        };
        if let Some(s) = self.sub.as_mut() {
            resp::command(&mut s.out, &[verb, channel.as_bytes()]);
        }
    }

    /// Opens both connections (after a failure, once the backoff has passed).
    fn connect(&mut self) {
        self.retry_at = None;
        let addr = match self.cfg.addr.to_socket_addrs().map(|mut a| a.next()) {
            Ok(Some(a)) => a,
            Ok(None) => return self.fail("the address resolves to nothing"),
            Err(e) => return self.fail(&format!("resolving {}: {e}", self.cfg.addr)),
        };
        let open = |token| -> io::Result<Side> {
            let mut sock = TcpStream::connect(addr)?;
            let _ = sock.set_nodelay(true);
            self.poll.registry().register(
                &mut sock,
                token,
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(Side {
                sock,
                out: Vec::new(),
                inb: Vec::new(),
                connected: false,
                greeting: 0,
            })
        };
        let (mut sub, mut publ) = match (open(SUB), open(PUB)) {
            (Ok(s), Ok(p)) => (s, p),
            (Err(e), _) | (_, Err(e)) => return self.fail(&format!("connect: {e}")),
        };
        for (side, owed) in [(&mut sub, None), (&mut publ, Some(&mut self.owed))] {
            if let Some(pw) = &self.cfg.password {
                match &self.cfg.username {
                    Some(u) => {
                        resp::command(&mut side.out, &[b"AUTH", u.as_bytes(), pw.as_bytes()])
                    }
                    None => resp::command(&mut side.out, &[b"AUTH", pw.as_bytes()]),
                }
                side.greeting += 1;
                if let Some(o) = owed {
                    o.push_back(Owed::Auth);
                }
            }
        }
        if self.cfg.db != 0 {
            resp::command(
                &mut publ.out,
                &[b"SELECT", self.cfg.db.to_string().as_bytes()],
            );
            publ.greeting += 1;
            self.owed.push_back(Owed::Select);
        }
        // Every live topic again (a reconnect subscribes by itself).
        let channels: Vec<String> = self.topics.keys().map(|t| self.channel(t)).collect();
        for part in channels.chunks(PER_COMMAND) {
            let mut args: Vec<&[u8]> = vec![b"SUBSCRIBE"];
            args.extend(part.iter().map(|c| c.as_bytes()));
            resp::command(&mut sub.out, &args);
        }
        self.sub = Some(sub);
        self.publ = Some(publ);
    }

    /// The broker is gone (or refused us): both connections are dropped and a reconnect is
    /// scheduled; publishes written but not confirmed are counted as dropped.
    fn fail(&mut self, why: &str) {
        for side in [self.sub.take(), self.publ.take()].into_iter().flatten() {
            let mut s = side.sock;
            let _ = self.poll.registry().deregister(&mut s);
        }
        let lost = self.owed.iter().filter(|o| **o == Owed::Publish).count();
        self.owed.clear();
        if lost > 0 {
            self.link
                .counts
                .dropped
                .fetch_add(lost as u64, Ordering::Relaxed);
        }
        if self.link.counts.up.swap(false, Ordering::Relaxed) || self.down_since.is_none() {
            warn!(
                "broker bridge: Redis at {} lost ({why}); local pub/sub goes on, reconnecting",
                self.cfg.addr
            );
        } else {
            debug!(
                "broker bridge: still down ({why}); next try in {:?}",
                self.backoff
            );
        }
        self.down_since.get_or_insert_with(Instant::now);
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(self.cfg.reconnect_max);
    }

    /// Both connections are up (and authenticated).
    fn became_up(&mut self) {
        if self.link.counts.up.swap(true, Ordering::Relaxed) {
            return;
        }
        self.backoff = self.cfg.reconnect_min;
        let gap = self.down_since.take().map(|t| t.elapsed());
        if self.ever_up {
            self.link.counts.reconnects.fetch_add(1, Ordering::Relaxed);
            warn!(
                "broker bridge: Redis at {} back after {:.1} s; what other nodes published in \
                 that gap was not received (at most once), {} topics subscribed again",
                self.cfg.addr,
                gap.unwrap_or_default().as_secs_f64(),
                self.topics.len()
            );
        } else {
            info!("broker bridge: connected to Redis at {}", self.cfg.addr);
        }
        self.ever_up = true;
    }

    /// Readiness on one connection (`SUB` or `PUB`): finishes its connect, writes what waits,
    /// reads, and hands each reply to that connection's handler.
    fn on_ready(&mut self, token: Token) -> io::Result<()> {
        let on_reply = if token == SUB {
            Bridge::on_sub_reply
        } else {
            Bridge::on_pub_reply
        };
        loop {
            let side = if token == SUB {
                self.sub.as_mut()
            } else {
                self.publ.as_mut()
            };
            let Some(s) = side else {
                return Ok(());
            };
            if !s.check_connected()? {
                return Ok(());
            }
            s.flush()?;
            let more = s.fill()?;
            for v in s.take_replies(self.max_reply)? {
                on_reply(self, v)?;
            }
            if !more {
                break;
            }
        }
        self.check_up();
        Ok(())
    }

    fn on_sub_reply(&mut self, v: Value) -> io::Result<()> {
        match v {
            Value::Simple(_) => {
                if let Some(s) = self.sub.as_mut() {
                    s.greeting = s.greeting.saturating_sub(1);
                }
            }
            Value::Error(e) => {
                return Err(io::Error::other(format!(
                    "refused: {}",
                    String::from_utf8_lossy(&e)
                )));
            }
            Value::Array(Some(items)) => match items.as_slice() {
                [
                    Value::Bulk(Some(kind)),
                    Value::Bulk(Some(channel)),
                    Value::Bulk(Some(msg)),
                ] if kind == b"message" => {
                    self.deliver(channel, msg);
                }
                _ => {} // subscribe and unsubscribe confirmations
            },
            _ => {}
        }
        Ok(())
    }

    /// A message off a channel: to the reactors with subscribers of its topic, framed (and
    /// compressed) once here.
    fn deliver(&mut self, channel: &[u8], msg: &[u8]) {
        let Some(topic) = channel
            .strip_prefix(self.cfg.channel_prefix.as_bytes())
            .and_then(|t| std::str::from_utf8(t).ok())
        else {
            return;
        };
        let m = envelope::open(msg);
        if m.node == Some(self.node) {
            return; // our own: our subscribers had it at once
        }
        self.link.counts.received.fetch_add(1, Ordering::Relaxed);
        let Some(t) = self.topics.get(topic) else {
            return;
        };
        let reactors = t.reactors;
        let published = if self.bus.compress_publish(m.payload.len()) {
            let level = self.level;
            let d = self
                .deflater
                .get_or_insert_with(|| Deflater::new(15, level));
            self.compressions += 1;
            Published::new(m.text, m.payload, Some(d))
        } else {
            Published::new(m.text, m.payload, None)
        };
        let topic: Arc<str> = topic.into();
        self.bus
            .post_publish(u32::MAX, reactors, &topic, &Arc::new(published));
    }

    /// A reply on the publishing connection, to the oldest command that owes one.
    fn on_pub_reply(&mut self, v: Value) -> io::Result<()> {
        let owed = self.owed.pop_front();
        match (owed, v) {
            (Some(Owed::Publish), Value::Int(_)) => {
                self.link.counts.published.fetch_add(1, Ordering::Relaxed);
            }
            (Some(Owed::Publish), other) => {
                debug!("broker bridge: PUBLISH answered {other:?}");
                self.link.counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
            (Some(Owed::Auth | Owed::Select), Value::Simple(_)) => {
                if let Some(p) = self.publ.as_mut() {
                    p.greeting = p.greeting.saturating_sub(1);
                }
            }
            (what, Value::Error(e)) => {
                return Err(io::Error::other(format!(
                    "{what:?} refused: {}",
                    String::from_utf8_lossy(&e)
                )));
            }
            (what, other) => {
                return Err(io::Error::other(format!(
                    "unexpected answer to {what:?}: {other:?}"
                )));
            }
        }
        Ok(())
    }

    fn check_up(&mut self) {
        if self.sub.as_ref().is_some_and(Side::ready) && self.publ.as_ref().is_some_and(Side::ready)
        {
            self.became_up();
        }
    }

    /// Hands waiting publishes to the publishing connection (while it is up, and its output
    /// stays under the limit), and writes both connections' output.
    fn pump(&mut self) -> io::Result<()> {
        let up = self.link.counts.up.load(Ordering::Relaxed);
        if up && let Some(p) = self.publ.as_mut() {
            while p.out.len() < self.cfg.max_queued_bytes {
                let Some((cmd, cost)) = self.waiting.pop_front() else {
                    break;
                };
                p.out.extend_from_slice(&cmd);
                self.owed.push_back(Owed::Publish);
                self.link.queued.fetch_sub(cost, Ordering::AcqRel);
            }
        }
        for s in [self.sub.as_mut(), self.publ.as_mut()]
            .into_iter()
            .flatten()
        {
            if s.connected && !s.out.is_empty() {
                s.flush()?;
            }
        }
        Ok(())
    }
}
