//! `myriad-load`: a load generator for WebSocket servers, on mio and myriad's own codec.
//!
//! Modes:
//! - `echo`: N connections each send an S-byte binary message, wait for it to come back, check
//!   it, repeat (optionally several in flight per connection). Reports messages/s, latency
//!   percentiles and errors.
//! - `hold`: opens N connections spread over many source addresses, completes the handshakes,
//!   then holds them idle, answering pings, for a bounded time. Reports the ramp as it goes.
//!
//! Progress lines go to stderr once a second; one JSON line goes to stdout at the end.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

mod link;

use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use link::{Link, Tls};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use myriad::proto::decoder::{Decoder, Event};
use myriad::proto::frame::{self, MAX_HEADER, OpCode};
use myriad::proto::handshake;
use myriad::proto::mask::Kernel;
use myriad::proto::{Limits, Role};
use slab::Slab;

#[derive(Parser)]
#[command(name = "myriad-load", about = "WebSocket load generator")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Round trips: send, wait for the echo, check it, repeat.
    Echo(EchoArgs),
    /// Open connections and hold them idle, answering pings.
    Hold(HoldArgs),
    /// Pub/sub fan-out on `myriad serve --mode pubsub`: every connection subscribes to one topic,
    /// the first also publishes at a fixed rate; counts deliveries, gaps and publish-to-delivery
    /// latency.
    Fanout(FanoutArgs),
    /// Churn: keeps about `connections` open; each lives `lifetime-ms` (subscribing to the
    /// fan-out topic with `--subscribe`, for `--mode pubsub`), then closes, and a new one takes its
    /// place, for `duration` seconds. For soak runs (scripts/soak.sh).
    Churn(ChurnArgs),
}

#[derive(Args)]
struct ChurnArgs {
    #[command(flatten)]
    common: Common,
    /// Seconds to churn.
    #[arg(short = 'd', long, default_value_t = 60.0)]
    duration: f64,
    /// How long each connection stays open once upgraded, in milliseconds.
    #[arg(long, default_value_t = 200)]
    lifetime_ms: u64,
    /// Subscribe each connection to the fan-out topic (`myriad serve --mode pubsub`).
    #[arg(long)]
    subscribe: bool,
}

#[derive(Args)]
struct FanoutArgs {
    #[command(flatten)]
    common: Common,
    /// Size of the published `data` string in bytes.
    #[arg(short = 's', long, default_value_t = 64)]
    size: usize,
    /// Publishes per second (ignored with --publish-window).
    #[arg(long, default_value_t = 1000)]
    publish_rate: u64,
    /// Closed loop instead of a fixed rate: keep at most this many publishes that some
    /// subscriber has not yet received. The server then runs as fast as it can deliver, and no
    /// subscriber falls more than this many messages behind.
    #[arg(long, default_value_t = 0)]
    publish_window: u64,
    /// Seconds of measurement once every connection is subscribed.
    #[arg(short = 'd', long, default_value_t = 10.0)]
    duration: f64,
    /// Offer permessage-deflate (the server then compresses each publish once).
    #[arg(long)]
    deflate: bool,
}

/// Fan-out mode state.
struct Fanout {
    size: usize,
    deflate: bool,
    subscribed: usize,
    publisher: Option<usize>,
    published: u64,
    gaps: u64,
    t0: Instant,
    /// Closed-loop window (0: fixed rate).
    window: u64,
    /// Lowest sequence number not yet received by every subscriber, and, from it on, how many
    /// subscribers received each.
    complete: u64,
    received: VecDeque<u32>,
}

impl Fanout {
    /// Counts a delivery of `seq` for the closed-loop window.
    fn received(&mut self, seq: u64) {
        if self.window == 0 || seq < self.complete {
            return;
        }
        let i = (seq - self.complete) as usize;
        if self.received.len() <= i {
            self.received.resize(i + 1, 0);
        }
        self.received[i] += 1;
        while self
            .received
            .front()
            .is_some_and(|&n| n as usize >= self.subscribed)
        {
            self.received.pop_front();
            self.complete += 1;
        }
    }
}

#[derive(Args, Clone)]
struct Common {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:9001")]
    server: SocketAddr,
    /// More servers (comma list): connections are spread over --server and these in turn
    /// (fan-out across broker nodes; the publisher is on --server).
    #[arg(long, value_delimiter = ',')]
    also_server: Vec<SocketAddr>,
    /// Connections to open.
    #[arg(short = 'c', long, default_value_t = 100)]
    connections: usize,
    /// Source addresses: a range like 127.0.0.2-127.0.0.40 or a comma list. Default: the kernel's
    /// choice.
    #[arg(long)]
    sources: Option<String>,
    /// New connections per second while ramping.
    #[arg(long, default_value_t = 20_000)]
    connect_rate: u64,
    /// Connections handshaking at once.
    #[arg(long, default_value_t = 1024)]
    in_flight: usize,
    /// Give up ramping after this many seconds.
    #[arg(long, default_value_t = 120.0)]
    ramp_timeout: f64,
    /// wss: speak TLS, trusting the certificate(s) in this PEM file (the server's own when it
    /// is self-signed).
    #[arg(long)]
    tls_ca: Option<String>,
    /// The server name asked for and verified with --tls-ca.
    #[arg(long, default_value = "localhost")]
    tls_name: String,
}

#[derive(Args)]
struct EchoArgs {
    #[command(flatten)]
    common: Common,
    /// Message size in bytes.
    #[arg(short = 's', long, default_value_t = 16)]
    size: usize,
    /// Seconds of measurement after all connections are open.
    #[arg(short = 'd', long, default_value_t = 10.0)]
    duration: f64,
    /// Messages in flight per connection.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Send text instead of binary.
    #[arg(long)]
    text: bool,
    /// Open loop: send R messages per second in all, on a fixed schedule (message m at
    /// start + m/R, to connection m mod N), whatever the replies; latency is taken from each
    /// message's scheduled send time (no coordinated omission), and the generator's own lag
    /// behind the schedule is reported. 0: closed loop (`--pipeline` in flight per connection).
    #[arg(long, default_value_t = 0)]
    rate: u64,
}

#[derive(Args)]
struct HoldArgs {
    #[command(flatten)]
    common: Common,
    /// Seconds to hold the connections once all are open.
    #[arg(long, default_value_t = 30.0)]
    hold: f64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Connecting,
    Handshaking,
    Open,
    Closed,
}

struct Conn {
    stream: Link,
    state: State,
    /// Handshake bytes until the 101 head is complete.
    head: Vec<u8>,
    key: [u8; 24],
    /// A frame or message in progress (boxed only then).
    rx: Option<Box<Decoder>>,
    /// Send times of messages in flight, oldest first.
    in_flight: VecDeque<Instant>,
    /// Bytes not yet written.
    out: Vec<u8>,
    /// Fan-out: the next sequence number expected.
    next_seq: u64,
    /// When it opened (churn mode closes it a lifetime later).
    born: Instant,
    /// Opened to --server (not an --also-server): the fan-out publisher is one of these.
    primary: bool,
}

#[derive(Default)]
struct Stats {
    opened: u64,
    failed: u64,
    closed_by_server: u64,
    pings: u64,
    messages: u64,
    errors: u64,
    bytes_in: u64,
}

/// Open-loop echo: the schedule and how far behind it the generator ran.
struct OpenLoop {
    rate: u64,
    start: Option<Instant>,
    sent: u64,
    /// The open connections when the schedule began.
    keys: Vec<usize>,
    /// How late each send was against its scheduled time, in microseconds.
    lag: Histogram<u64>,
}

struct Keys {
    pool: [u8; 4096],
    pos: usize,
}

impl Keys {
    fn next(&mut self) -> [u8; 4] {
        if self.pos + 4 > self.pool.len() {
            myriad::internals::random_bytes(&mut self.pool).expect("getrandom");
            self.pos = 0;
        }
        let k = &self.pool[self.pos..self.pos + 4];
        self.pos += 4;
        [k[0], k[1], k[2], k[3]]
    }
}

fn parse_sources(spec: Option<&str>) -> Result<Vec<Option<Ipv4Addr>>, String> {
    let Some(spec) = spec else {
        return Ok(vec![None]);
    };
    let mut out = Vec::new();
    for part in spec.split(',') {
        if let Some((a, b)) = part.split_once('-') {
            let a: Ipv4Addr = a.trim().parse().map_err(|e| format!("{a}: {e}"))?;
            let b: Ipv4Addr = b.trim().parse().map_err(|e| format!("{b}: {e}"))?;
            let (a, b) = (u32::from(a), u32::from(b));
            if b < a || b - a > 1 << 20 {
                return Err(format!("bad range {part}"));
            }
            out.extend((a..=b).map(|x| Some(Ipv4Addr::from(x))));
        } else {
            out.push(Some(
                part.trim().parse().map_err(|e| format!("{part}: {e}"))?,
            ));
        }
    }
    Ok(out)
}

fn connect_from(server: SocketAddr, src: Option<Ipv4Addr>) -> io::Result<TcpStream> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(server),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    s.set_nonblocking(true)?;
    s.set_tcp_nodelay(true)?;
    if let Some(ip) = src {
        // Many source addresses: each gives its own ~28k ephemeral ports toward one server port.
        s.set_reuse_address(true)?;
        s.bind(&SocketAddr::new(IpAddr::V4(ip), 0).into())?;
    }
    match s.connect(&server.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc_einprogress()) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(s.into()))
}

fn libc_einprogress() -> i32 {
    115
}

struct Run {
    poll: Poll,
    conns: Slab<Conn>,
    stats: Stats,
    keys: Keys,
    kernel: Kernel,
    limits: Limits,
    /// permessage-deflate offered (fan-out mode): RSV1 marks compressed messages.
    rsv1: bool,
    /// The decoder lent to connections with nothing in progress.
    spare: Decoder,
    server: SocketAddr,
    /// --server then --also-server: connection n goes to servers[n % len].
    servers: Vec<SocketAddr>,
    /// Connections opened so far (which server the next one goes to).
    opened_n: usize,
    /// Echo mode: message size and pipeline depth; None in hold mode.
    echo: Option<(usize, usize, bool)>,
    fanout: Option<Fanout>,
    inflater: Option<myriad::proto::deflate::Inflater>,
    payload: Vec<u8>,
    hist: Histogram<u64>,
    measuring: bool,
    /// Open-loop echo (`--rate`).
    open_loop: Option<OpenLoop>,
    scratch: Vec<u8>,
    frame_buf: Vec<u8>,
    /// Churn mode: subscribe each connection on open.
    churn_subscribe: bool,
    /// wss.
    tls: Option<Tls>,
}

fn token(key: usize) -> Token {
    Token(key)
}

impl Run {
    fn open(&mut self, src: Option<Ipv4Addr>) {
        let server = self.servers[self.opened_n % self.servers.len()];
        let primary = self.opened_n.is_multiple_of(self.servers.len());
        self.opened_n += 1;
        match connect_from(server, src) {
            Ok(mut stream) => {
                let key = self.conns.vacant_key();
                if self
                    .poll
                    .registry()
                    .register(
                        &mut stream,
                        token(key),
                        Interest::READABLE | Interest::WRITABLE,
                    )
                    .is_err()
                {
                    self.stats.failed += 1;
                    return;
                }
                let mut raw = [0u8; 16];
                raw.copy_from_slice(&self.keys_bytes16());
                let Ok(stream) = Link::new(stream, self.tls.as_ref()) else {
                    self.stats.failed += 1;
                    return;
                };
                self.conns.insert(Conn {
                    stream,
                    state: State::Connecting,
                    head: Vec::new(),
                    key: handshake::encode_key(raw),
                    rx: None,
                    in_flight: VecDeque::new(),
                    out: Vec::new(),
                    next_seq: 0,
                    born: Instant::now(),
                    primary,
                });
            }
            Err(e) => {
                if self.stats.failed < 5 {
                    eprintln!("connect: {e}");
                }
                self.stats.failed += 1;
            }
        }
    }

    fn keys_bytes16(&mut self) -> [u8; 16] {
        let mut r = [0u8; 16];
        for i in 0..4 {
            r[i * 4..i * 4 + 4].copy_from_slice(&self.keys.next());
        }
        r
    }

    fn fail(&mut self, key: usize, counted_as_server_close: bool) {
        if let Some(c) = self.conns.get_mut(key) {
            let was = c.state;
            c.state = State::Closed;
            let _ = self.poll.registry().deregister(&mut c.stream.sock);
            if was == State::Open && counted_as_server_close {
                self.stats.closed_by_server += 1;
            } else if was != State::Open {
                self.stats.failed += 1;
            } else {
                self.stats.errors += 1;
            }
            self.conns.remove(key);
        }
    }

    /// Queues a masked frame on connection `key` and writes what the socket takes.
    fn send_frame(&mut self, key: usize, op: OpCode, payload_from_self: bool, small: &[u8]) {
        self.send_frame_at(key, op, payload_from_self, small, Instant::now());
    }

    /// As `send_frame`, with the message's latency counted from `at`.
    fn send_frame_at(
        &mut self,
        key: usize,
        op: OpCode,
        payload_from_self: bool,
        small: &[u8],
        at: Instant,
    ) {
        let mask = self.keys.next();
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let payload: &[u8] = if payload_from_self {
            &self.payload
        } else {
            small
        };
        let mut h = [0u8; MAX_HEADER];
        let hl = frame::encode(&mut h, true, false, op, Some(mask), payload.len() as u64);
        let start = c.out.len();
        c.out.extend_from_slice(&h[..hl]);
        c.out.extend_from_slice(payload);
        self.kernel.apply(&mut c.out[start + hl..], mask, 0);
        if payload_from_self {
            c.in_flight.push_back(at);
        }
    }

    fn flush(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.stream.flush_tls().is_err() {
            self.fail(key, true);
            return;
        }
        while !c.out.is_empty() {
            match c.stream.write(&c.out) {
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.fail(key, true);
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, key: usize, readable: bool, writable: bool) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.state == State::Connecting && (writable || readable) {
            match c.stream.sock.peer_addr() {
                Ok(_) => {
                    c.state = State::Handshaking;
                    let host = self.server.to_string();
                    let key_str = std::str::from_utf8(&c.key).unwrap_or("").to_owned();
                    let offer = self
                        .fanout
                        .as_ref()
                        .is_some_and(|f| f.deflate)
                        .then_some("permessage-deflate");
                    handshake::write_request(&mut c.out, &host, "/", &key_str, &[], offer);
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    if let Ok(Some(_)) | Err(_) = c.stream.sock.take_error() {
                        self.fail(key, false);
                    }
                    return;
                }
                Err(_) => {
                    self.fail(key, false);
                    return;
                }
            }
        }
        if writable || self.conns.get(key).is_some_and(|c| !c.out.is_empty()) {
            self.flush(key);
        }
        if readable {
            self.read(key);
        }
    }

    fn read(&mut self, key: usize) {
        loop {
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            let n = match c.stream.read(&mut self.scratch[..]) {
                Ok(0) => {
                    self.fail(key, true);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if self.stats.failed + self.stats.errors < 3 {
                        eprintln!("read: {e}");
                    }
                    self.fail(key, true);
                    return;
                }
            };
            self.stats.bytes_in += n as u64;
            let mut start = 0;
            let end = n;
            if c.state == State::Handshaking {
                let from = c.head.len();
                c.head.extend_from_slice(&self.scratch[..end]);
                let Some(hend) = handshake::find_head_end(&c.head, from) else {
                    if c.head.len() > 16 << 10 {
                        self.fail(key, false);
                        return;
                    }
                    continue;
                };
                let mut headers = [httparse::EMPTY_HEADER; handshake::MAX_HEADERS];
                let ok = handshake::parse_response(&c.head[..hend], &mut headers, &c.key).is_ok();
                if !ok {
                    self.fail(key, false);
                    return;
                }
                // Frame bytes after the head go back into the scratch buffer.
                let extra = c.head.len() - hend;
                let tail: Vec<u8> = c.head[hend..].to_vec();
                c.head = Vec::new();
                c.state = State::Open;
                self.stats.opened += 1;
                self.scratch[..extra].copy_from_slice(&tail);
                start = 0;
                if extra == 0 {
                    self.after_open(key);
                    continue;
                }
                self.after_open(key);
                self.decode(key, start, extra);
                continue;
            }
            self.decode(key, start, end);
        }
    }

    fn after_open(&mut self, key: usize) {
        if let Some(c) = self.conns.get_mut(key) {
            c.born = Instant::now();
        }
        if self.churn_subscribe {
            self.send_frame(key, OpCode::Text, false, br#"{"op":"sub","topic":"bench"}"#);
            self.flush(key);
            return;
        }
        let primary = self.conns.get(key).is_some_and(|c| c.primary);
        if let Some(f) = self.fanout.as_mut() {
            if primary {
                f.publisher.get_or_insert(key);
            }
            self.send_frame(key, OpCode::Text, false, br#"{"op":"sub","topic":"bench"}"#);
            self.flush(key);
            return;
        }
        if let Some((_, depth, _)) = self.echo
            && self.open_loop.is_none()
        {
            let op = self.echo_opcode();
            for _ in 0..depth {
                self.send_frame(key, op, true, &[]);
            }
            self.flush(key);
        }
    }

    fn echo_opcode(&self) -> OpCode {
        match self.echo {
            Some((_, _, true)) => OpCode::Text,
            _ => OpCode::Binary,
        }
    }

    fn decode(&mut self, key: usize, start: usize, end: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let mut rx = c.rx.take();
        let mut got_messages = 0u64;
        let mut mismatched = 0u64;
        let mut pings: Vec<Vec<u8>> = Vec::new();
        let mut closed = false;
        let payload = &self.payload;
        let mut latencies: Vec<Instant> = Vec::new();
        let in_flight = &mut c.in_flight;
        let fanout_mode = self.fanout.is_some();
        let mut fan_acks = 0usize;
        let mut fan_seqs: Vec<(u64, u64)> = Vec::new();
        let mut inflated = Vec::new();
        let t0 = self.fanout.as_ref().map(|f| f.t0);
        let mut inflater = self.inflater.take();
        let decoder: &mut Decoder = match rx.as_deref_mut() {
            Some(d) => d,
            None => &mut self.spare,
        };
        let r = decoder.feed(
            &mut self.scratch[start..end],
            &self.limits,
            self.rsv1,
            self.kernel,
            &mut |ev| {
                match ev {
                    Event::Binary(b) => {
                        got_messages += 1;
                        if b != payload.as_slice() {
                            mismatched += 1;
                        }
                        if let Some(t) = in_flight.pop_front() {
                            latencies.push(t);
                        }
                    }
                    Event::Text(t) if fanout_mode => {
                        fanout_event(t.as_bytes(), &mut fan_acks, &mut fan_seqs);
                    }
                    Event::Compressed { data, .. } if fanout_mode => {
                        inflated.clear();
                        let inf =
                            inflater.get_or_insert_with(myriad::proto::deflate::Inflater::new);
                        if inf.inflate(&[data], None, 1 << 24, &mut inflated).is_ok() {
                            fanout_event(&inflated, &mut fan_acks, &mut fan_seqs);
                        } else {
                            closed = true;
                        }
                    }
                    Event::Text(t) => {
                        got_messages += 1;
                        if t.as_bytes() != payload.as_slice() {
                            mismatched += 1;
                        }
                        if let Some(t) = in_flight.pop_front() {
                            latencies.push(t);
                        }
                    }
                    Event::Ping(p) => pings.push(p.to_vec()),
                    Event::Pong(_) => {}
                    Event::Close(..) => closed = true,
                    // No compression is offered, so the decoder refuses RSV1 before this.
                    Event::Compressed { .. } => closed = true,
                }
                true
            },
        );
        self.inflater = inflater;
        if r.is_err() || closed {
            self.spare = Decoder::new();
        } else if rx.is_none() && !self.spare.is_idle() {
            rx = Some(Box::new(std::mem::take(&mut self.spare)));
        }
        if let Some(c) = self.conns.get_mut(key) {
            c.rx = rx.filter(|d| !d.is_idle());
        }
        if fanout_mode {
            let now_us = t0.map_or(0, |t| t.elapsed().as_micros() as u64);
            let measuring = self.measuring;
            if let Some(f) = self.fanout.as_mut() {
                f.subscribed += fan_acks;
            }
            if let Some(c) = self.conns.get_mut(key) {
                for (seq, sent_us) in fan_seqs {
                    if seq != c.next_seq
                        && let Some(f) = self.fanout.as_mut()
                    {
                        f.gaps += 1;
                    }
                    c.next_seq = seq + 1;
                    if let Some(f) = self.fanout.as_mut() {
                        f.received(seq);
                    }
                    if measuring {
                        self.stats.messages += 1;
                        let _ = self.hist.record(now_us.saturating_sub(sent_us).max(1));
                    }
                }
            }
        }
        if r.is_err() || closed {
            self.fail(key, true);
            return;
        }
        let now = Instant::now();
        if self.measuring {
            for t in &latencies {
                let us = now.saturating_duration_since(*t).as_micros() as u64;
                let _ = self.hist.record(us.max(1));
            }
            self.stats.messages += got_messages;
            self.stats.errors += mismatched;
        }
        self.stats.pings += pings.len() as u64;
        for p in pings {
            self.send_frame(key, OpCode::Pong, false, &p);
        }
        if self.echo.is_some() && self.open_loop.is_none() {
            let op = self.echo_opcode();
            for _ in 0..got_messages {
                self.send_frame(key, op, true, &[]);
            }
        }
        self.flush(key);
    }

    /// Open loop: sends every message due by now, each to its connection, stamped with its
    /// scheduled time.
    fn send_due(&mut self, now: Instant) {
        let Some(ol) = self.open_loop.as_mut() else {
            return;
        };
        let start = *ol.start.get_or_insert(now);
        if ol.keys.is_empty() {
            ol.keys = self
                .conns
                .iter()
                .filter(|(_, c)| c.state == State::Open)
                .map(|(k, _)| k)
                .collect();
            if ol.keys.is_empty() {
                return;
            }
        }
        let due = (now.duration_since(start).as_secs_f64() * ol.rate as f64) as u64;
        let (first, rate) = (ol.sent, ol.rate);
        let n = ol.keys.len() as u64;
        let mut touched = Vec::new();
        for m in first..due {
            let Some(ol) = self.open_loop.as_mut() else {
                return;
            };
            let key = ol.keys[(m % n) as usize];
            let at = start + Duration::from_secs_f64(m as f64 / rate as f64);
            let _ = ol
                .lag
                .record((now.saturating_duration_since(at).as_micros() as u64).max(1));
            ol.sent = m + 1;
            let op = self.echo_opcode();
            self.send_frame_at(key, op, true, &[], at);
            touched.push(key);
        }
        touched.sort_unstable();
        touched.dedup();
        for key in touched {
            self.flush(key);
        }
    }

    /// Queues the next fan-out message on the publisher's connection (sent by `flush`).
    fn publish(&mut self) {
        let Some(f) = self.fanout.as_mut() else {
            return;
        };
        let Some(key) = f.publisher else {
            return;
        };
        let sent_us = f.t0.elapsed().as_micros() as u64;
        let mut msg = format!(
            "{{\"op\":\"pub\",\"topic\":\"bench\",\"data\":\"{}:{}:",
            f.published, sent_us
        );
        let pad = f.size.saturating_sub(msg.len() - 38);
        msg.extend(std::iter::repeat_n('x', pad));
        msg.push_str("\"}");
        f.published += 1;
        self.send_frame(key, OpCode::Text, false, msg.as_bytes());
    }

    fn count(&self, s: State) -> usize {
        self.conns.iter().filter(|(_, c)| c.state == s).count()
    }
}

/// A text message in fan-out mode: a subscription ack, or a delivery whose data is
/// "SEQ:SENT_US:padding".
fn fanout_event(t: &[u8], acks: &mut usize, seqs: &mut Vec<(u64, u64)>) {
    if t.starts_with(br#"{"ok":"sub""#) {
        *acks += 1;
        return;
    }
    let Some(at) = t.windows(8).position(|w| w == br#""data":""#) else {
        return;
    };
    let rest = &t[at + 8..];
    let mut parts = rest.splitn(3, |&b| b == b':');
    let num = |p: Option<&[u8]>| {
        p.and_then(|p| std::str::from_utf8(p).ok())
            .and_then(|s| s.parse::<u64>().ok())
    };
    if let (Some(seq), Some(us)) = (num(parts.next()), num(parts.next())) {
        seqs.push((seq, us));
    }
}

fn main() {
    let cli = Cli::parse();
    let mut fanout: Option<Fanout> = None;
    let mut publish_rate = 0u64;
    let mut churn: Option<(Duration, bool)> = None;
    let mut echo_rate = 0u64;
    let (common, echo, hold_secs, duration) = match cli.mode {
        Mode::Churn(a) => {
            churn = Some((Duration::from_millis(a.lifetime_ms), a.subscribe));
            (a.common, None, a.duration, 0.0)
        }
        Mode::Echo(a) => {
            echo_rate = a.rate;
            (
                a.common,
                Some((a.size, a.pipeline.max(1), a.text)),
                0.0,
                a.duration,
            )
        }
        Mode::Hold(a) => (a.common, None, a.hold, 0.0),
        Mode::Fanout(a) => {
            fanout = Some(Fanout {
                size: a.size,
                deflate: a.deflate,
                subscribed: 0,
                publisher: None,
                published: 0,
                gaps: 0,
                t0: Instant::now(),
                window: a.publish_window,
                complete: 0,
                received: VecDeque::new(),
            });
            publish_rate = a.publish_rate;
            (a.common, None, 0.0, a.duration)
        }
    };
    let sources = match parse_sources(common.sources.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("--sources: {e}");
            std::process::exit(2);
        }
    };
    if let Ok(n) = myriad::raise_open_files_limit()
        && (n as usize) < common.connections + 64
    {
        eprintln!(
            "warning: open-files limit {n} is below {} connections; run several processes",
            common.connections
        );
    }
    let payload: Vec<u8> = match echo {
        Some((size, _, true)) => (0..size).map(|i| b'a' + (i % 26) as u8).collect(),
        Some((size, _, false)) => (0..size).map(|i| (i * 31 + 7) as u8).collect(),
        None => Vec::new(),
    };
    let fanout_deflate = fanout.as_ref().is_some_and(|f| f.deflate);
    let mut run = Run {
        poll: Poll::new().expect("poll"),
        conns: Slab::new(),
        stats: Stats::default(),
        keys: Keys {
            pool: [0; 4096],
            pos: 4096,
        },
        kernel: Kernel::detect(),
        limits: Limits::trusting(Role::Client),
        rsv1: fanout_deflate,
        spare: Decoder::new(),
        server: common.server,
        servers: std::iter::once(common.server)
            .chain(common.also_server.iter().copied())
            .collect(),
        opened_n: 0,
        echo,
        fanout,
        inflater: None,
        payload,
        hist: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
        measuring: false,
        open_loop: (echo_rate > 0).then(|| OpenLoop {
            rate: echo_rate,
            start: None,
            sent: 0,
            keys: Vec::new(),
            lag: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
        }),
        scratch: vec![0u8; 256 << 10],
        frame_buf: Vec::new(),
        churn_subscribe: churn.is_some_and(|c| c.1),
        tls: common.tls_ca.as_deref().map(|ca| {
            Tls::new(ca, &common.tls_name).unwrap_or_else(|e| {
                eprintln!("--tls-ca: {e}");
                std::process::exit(2);
            })
        }),
    };
    let mut churned = 0u64;
    let _ = &run.frame_buf;
    let mut events = Events::with_capacity(4096);
    let t0 = Instant::now();
    let mut started = 0usize;
    let mut src_i = 0usize;
    let mut last_report = t0;
    let mut ramp_done: Option<Instant> = None;
    let mut measure_start: Option<(Instant, f64)> = None;
    let ramp_limit = Duration::from_secs_f64(common.ramp_timeout);
    let per_tick = (common.connect_rate / 100).max(1) as usize;
    let mut next_tick = t0;
    loop {
        let now = Instant::now();
        // Churn: connections past their lifetime close, and new ones take their places.
        if let Some((lifetime, _)) = churn
            && now >= next_tick
        {
            let old: Vec<usize> = run
                .conns
                .iter()
                .filter(|(_, c)| c.state == State::Open && now.duration_since(c.born) >= lifetime)
                .map(|(k, _)| k)
                .collect();
            for k in old {
                if let Some(mut c) = run.conns.try_remove(k) {
                    let _ = run.poll.registry().deregister(&mut c.stream.sock);
                    churned += 1;
                }
            }
            if now.duration_since(t0).as_secs_f64() >= hold_secs {
                break;
            }
        }
        // Ramp: at most `rate` per second, at most `in_flight` handshaking.
        if churn.is_some() && now >= next_tick {
            // Keep about `connections` open or opening.
            let room = common
                .connections
                .saturating_sub(run.conns.len())
                .min(per_tick)
                .min(common.in_flight);
            for _ in 0..room {
                let src = sources[src_i % sources.len()];
                src_i += 1;
                run.open(src);
            }
            next_tick = now + Duration::from_millis(10);
        } else if started < common.connections && now >= next_tick {
            let handshaking =
                started - (run.stats.opened as usize + run.stats.failed as usize).min(started);
            let room = common.in_flight.saturating_sub(handshaking).min(per_tick);
            for _ in 0..room.min(common.connections - started) {
                let src = sources[src_i % sources.len()];
                src_i += 1;
                run.open(src);
                started += 1;
            }
            next_tick = now + Duration::from_millis(10);
        }
        let settled = run.stats.opened as usize + run.stats.failed as usize;
        // Fan-out: the ramp ends when every open connection is also subscribed.
        let subscribed = run
            .fanout
            .as_ref()
            .is_none_or(|f| f.subscribed >= run.stats.opened as usize);
        if ramp_done.is_none()
            && started >= common.connections
            && settled >= common.connections
            && subscribed
        {
            ramp_done = Some(now);
            let secs = now.duration_since(t0).as_secs_f64();
            eprintln!(
                "ramp done: {} open, {} failed in {:.1}s ({:.0} conn/s)",
                run.stats.opened,
                run.stats.failed,
                secs,
                run.stats.opened as f64 / secs.max(1e-9)
            );
            if echo.is_some() || run.fanout.is_some() {
                run.measuring = true;
                measure_start = Some((now, run.stats.bytes_in as f64));
            }
        }
        if ramp_done.is_none() && now.duration_since(t0) > ramp_limit {
            eprintln!(
                "ramp timeout: {} open of {}",
                run.stats.opened, common.connections
            );
            ramp_done = Some(now);
            if echo.is_some() {
                run.measuring = true;
                measure_start = Some((now, run.stats.bytes_in as f64));
            }
        }
        // Fan-out: publish at the set rate while measuring.
        if run.measuring
            && run.fanout.is_some()
            && let Some((start, _)) = measure_start
        {
            let (done, window, complete, publisher) =
                run.fanout.as_ref().map_or((0, 0, 0, None), |f| {
                    (f.published, f.window, f.complete, f.publisher)
                });
            let due = if window > 0 {
                complete + window
            } else {
                (now.duration_since(start).as_secs_f64() * publish_rate as f64) as u64
            };
            for _ in done..due.min(done + 1000) {
                run.publish();
            }
            if let Some(key) = publisher
                && due > done
            {
                run.flush(key);
            }
        }
        if let Some(done) = ramp_done {
            let limit = if echo.is_some() || run.fanout.is_some() {
                duration
            } else {
                hold_secs
            };
            if now.duration_since(done).as_secs_f64() >= limit {
                break;
            }
        }
        if now.duration_since(last_report) >= Duration::from_secs(1) {
            last_report = now;
            eprintln!(
                "t={:.1}s open={} connecting={} failed={} closed_by_server={} pings={} messages={} errors={}",
                now.duration_since(t0).as_secs_f64(),
                run.conns.len() - run.count(State::Connecting) - run.count(State::Handshaking),
                run.count(State::Connecting) + run.count(State::Handshaking),
                run.stats.failed,
                run.stats.closed_by_server,
                run.stats.pings,
                run.stats.messages,
                run.stats.errors
            );
        }
        // Open loop: the messages due go out now; the poll then only looks (spinning on this
        // core, so that a send is never late by a poll's millisecond).
        let spin = run.measuring && run.open_loop.is_some();
        if spin {
            run.send_due(now);
        }
        let wait = if spin {
            Duration::ZERO
        } else {
            Duration::from_millis(10)
        };
        if let Err(e) = run.poll.poll(&mut events, Some(wait))
            && e.kind() != io::ErrorKind::Interrupted
        {
            eprintln!("poll: {e}");
            break;
        }
        for ev in events.iter() {
            run.on_event(
                ev.token().0,
                ev.is_readable() || ev.is_read_closed(),
                ev.is_writable(),
            );
        }
    }
    let end = Instant::now();
    let mut published = 0;
    if churn.is_some() {
        println!(
            "{{\"mode\":\"churn\",\"opened\":{},\"closed_by_us\":{churned},\"failed\":{},\"closed_by_server\":{},\"errors\":{},\"seconds\":{:.1}}}",
            run.stats.opened,
            run.stats.failed,
            run.stats.closed_by_server,
            run.stats.errors,
            end.duration_since(t0).as_secs_f64()
        );
        return;
    }
    let (mode, secs) = match (echo, measure_start) {
        (Some(_), Some((t, _))) => ("echo", end.duration_since(t).as_secs_f64()),
        (None, Some((t, _))) if run.fanout.is_some() => {
            ("fanout", end.duration_since(t).as_secs_f64())
        }
        _ => ("hold", hold_secs),
    };
    if let Some(f) = run.fanout.as_ref() {
        eprintln!(
            "fanout: published {} to {} subscribers, {} deliveries, {} gaps",
            f.published, f.subscribed, run.stats.messages, f.gaps
        );
        published = f.published;
        run.stats.errors += f.gaps;
    }
    let open_now = run.count(State::Open);
    let open_loop = run.open_loop.as_ref().map_or(String::new(), |ol| {
        let unanswered: usize = run.conns.iter().map(|(_, c)| c.in_flight.len()).sum();
        format!(
            ",\"rate\":{},\"sent\":{},\"unanswered\":{unanswered},\"lag_p99_us\":{},\"lag_max_us\":{},\"max_us\":{}",
            ol.rate,
            ol.sent,
            ol.lag.value_at_quantile(0.99),
            ol.lag.max(),
            run.hist.max()
        )
    });
    let subscribed = run.fanout.as_ref().map_or(0, |f| f.subscribed);
    let mps = run.stats.messages as f64 / secs.max(1e-9);
    println!(
        "{{\"mode\":\"{mode}\",\"connections\":{},\"opened\":{},\"open_at_end\":{open_now},\"failed\":{},\"closed_by_server\":{},\"pings\":{},\"messages\":{},\"errors\":{},\"seconds\":{secs:.3},\"messages_per_sec\":{mps:.1},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"size\":{},\"published\":{published},\"subscribed\":{subscribed}{open_loop}}}",
        common.connections,
        run.stats.opened,
        run.stats.failed,
        run.stats.closed_by_server,
        run.stats.pings,
        run.stats.messages,
        run.stats.errors,
        run.hist.value_at_quantile(0.5),
        run.hist.value_at_quantile(0.99),
        run.hist.value_at_quantile(0.999),
        echo.map_or(0, |e| e.0)
    );
    // Dropping the run closes every socket.
}
