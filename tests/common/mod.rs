//! Shared helpers for the integration tests: an in-process server on port 0 that shuts itself
//! down when dropped, a recording handler, and a raw-bytes client for malformed input.
//!
//! Every blocking read and write has a timeout ([`IO_TIMEOUT`]), so a server that hangs fails the
//! test within seconds instead of stalling the suite.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use myriad::{
    Config, ConnId, Handler, Message, Request, Running, Server, ServerHandle, Upgrade, Ws,
};

/// Watchdog for every socket read/write and every wait on handler events.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A key from RFC 6455 §1.3 and its accept value.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Opcodes, as raw numbers (reserved ones included).
pub const CONT: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// The base configuration: port 0, one reactor, short handshake timeout.
pub fn config() -> Config {
    Config::default()
        .listen("127.0.0.1:0".parse().unwrap())
        .workers(1)
        .handshake_timeout(Duration::from_secs(2))
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/// A started server; dropping it shuts it down (100 ms deadline) and joins its threads.
pub struct TestServer {
    running: Option<Running>,
    pub addr: SocketAddr,
}

impl TestServer {
    pub fn start<H: Handler>(cfg: Config, handler: H) -> TestServer {
        let running = Server::new(cfg, handler).start().expect("server starts");
        let addr = running.local_addr();
        TestServer {
            running: Some(running),
            addr,
        }
    }

    pub fn handle(&self) -> ServerHandle {
        self.running.as_ref().unwrap().handle()
    }

    /// Takes the `Running` out (the caller joins it).
    pub fn take(mut self) -> Running {
        self.running.take().unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.handle().shutdown_within(Duration::from_millis(100));
            r.join();
        }
    }
}

/// Starts a recording server; returns it and the handler's event stream.
pub fn start_recorder(cfg: Config) -> (TestServer, Events) {
    let (rec, ev) = Recorder::new();
    (TestServer::start(cfg, rec), ev)
}

// ---------------------------------------------------------------------------------------------
// Recording handler
// ---------------------------------------------------------------------------------------------

/// What the handler saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Open(ConnId),
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(u16, Vec<u8>),
    /// Written by a test script.
    Note(String),
}

/// A hook run on every message (after it is recorded); pushes notes to record.
pub type Script = fn(&mut Ws<'_, ()>, &Message<'_>, &mut Vec<String>);

/// Records every callback into a channel and echoes messages (unless `echo` is false).
#[derive(Clone)]
pub struct Recorder {
    tx: Arc<Mutex<mpsc::Sender<Ev>>>,
    pub echo: bool,
    pub script: Option<Script>,
}

impl Recorder {
    pub fn new() -> (Recorder, Events) {
        let (tx, rx) = mpsc::channel();
        (
            Recorder {
                tx: Arc::new(Mutex::new(tx)),
                echo: true,
                script: None,
            },
            Events { rx },
        )
    }

    fn record(&self, ev: Ev) {
        let _ = self.tx.lock().unwrap().send(ev);
    }
}

impl Handler for Recorder {
    type Data = ();

    fn on_upgrade(&mut self, _req: &Request<'_>) -> Upgrade<()> {
        Upgrade::accept(())
    }

    fn on_open(&mut self, ws: &mut Ws<'_, ()>) {
        self.record(Ev::Open(ws.id()));
    }

    fn on_message(&mut self, ws: &mut Ws<'_, ()>, msg: Message<'_>) {
        self.record(match msg {
            Message::Text(t) => Ev::Text(t.to_owned()),
            Message::Binary(b) => Ev::Binary(b.to_vec()),
        });
        if let Some(script) = self.script {
            let mut notes = Vec::new();
            script(ws, &msg, &mut notes);
            for n in notes {
                self.record(Ev::Note(n));
            }
        } else if self.echo {
            let _ = ws.send(msg);
        }
    }

    fn on_ping(&mut self, _ws: &mut Ws<'_, ()>, payload: &[u8]) {
        self.record(Ev::Ping(payload.to_vec()));
    }

    fn on_pong(&mut self, _ws: &mut Ws<'_, ()>, payload: &[u8]) {
        self.record(Ev::Pong(payload.to_vec()));
    }

    fn on_close(&mut self, _ws: &mut Ws<'_, ()>, code: u16, reason: &[u8]) {
        self.record(Ev::Close(code, reason.to_vec()));
    }
}

/// The test's end of the recorder.
pub struct Events {
    rx: mpsc::Receiver<Ev>,
}

impl Events {
    /// The next event, or a panic after [`IO_TIMEOUT`].
    pub fn next(&self) -> Ev {
        self.rx
            .recv_timeout(IO_TIMEOUT)
            .expect("handler event within the timeout")
    }

    /// The next `Open`'s connection id.
    pub fn opened(&self) -> ConnId {
        match self.next() {
            Ev::Open(id) => id,
            other => panic!("expected Open, got {other:?}"),
        }
    }

    /// Waits for `on_close`; returns every event before it and the close code and reason.
    pub fn closed(&self) -> (Vec<Ev>, u16, Vec<u8>) {
        let mut before = Vec::new();
        loop {
            match self.next() {
                Ev::Close(code, reason) => return (before, code, reason),
                other => before.push(other),
            }
        }
    }

    /// Waits for `on_close` and checks that no message (text or binary) came before it.
    pub fn closed_without_messages(&self) -> (u16, Vec<u8>) {
        let (before, code, reason) = self.closed();
        assert!(
            !before
                .iter()
                .any(|e| matches!(e, Ev::Text(_) | Ev::Binary(_))),
            "no message may reach the application: {before:?}"
        );
        (code, reason)
    }

    /// Everything recorded so far, without waiting.
    pub fn drain(&self) -> Vec<Ev> {
        self.rx.try_iter().collect()
    }

    /// Asserts that nothing is recorded for `d`.
    pub fn quiet_for(&self, d: Duration) {
        if let Ok(ev) = self.rx.recv_timeout(d) {
            panic!("unexpected handler event {ev:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw client
// ---------------------------------------------------------------------------------------------

static KEY_SEED: AtomicU32 = AtomicU32::new(0x9e37_79b9);

/// A masking key that changes from frame to frame (xorshift; tests need variety, not secrecy).
pub fn next_mask() -> [u8; 4] {
    let mut x = KEY_SEED.fetch_add(0x6d2b_79f5, Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    x.to_be_bytes()
}

/// A masked client frame with any bits and opcode (reserved ones included) and minimal length.
pub fn frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = header(fin, rsv, opcode, true, payload.len() as u64);
    let key = next_mask();
    v.extend_from_slice(&key);
    let at = v.len();
    v.extend_from_slice(payload);
    myriad::proto::mask::apply_mask(&mut v[at..], key, 0);
    v
}

/// An unmasked frame (what a server sends; a client must not).
pub fn unmasked_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = header(fin, 0, opcode, false, payload.len() as u64);
    v.extend_from_slice(payload);
    v
}

/// Frame header bytes up to (not including) the masking key, with a minimal length encoding.
/// `rsv` holds RSV1..3 as bits 2..0.
pub fn header(fin: bool, rsv: u8, opcode: u8, masked: bool, len: u64) -> Vec<u8> {
    let mut v = vec![(u8::from(fin) << 7) | ((rsv & 7) << 4) | (opcode & 0x0f)];
    let m = if masked { 0x80 } else { 0 };
    if len < 126 {
        v.push(m | len as u8);
    } else if len <= 0xffff {
        v.push(m | 126);
        v.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        v.push(m | 127);
        v.extend_from_slice(&len.to_be_bytes());
    }
    v
}

/// A Close payload: code and reason.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// A complete upgrade request with the given extra header lines (each without CRLF).
pub fn request(extra: &[&str]) -> Vec<u8> {
    let mut lines = vec![
        "GET /chat HTTP/1.1",
        "Host: example.com",
        "Upgrade: websocket",
        "Connection: Upgrade",
    ];
    let key = format!("Sec-WebSocket-Key: {KEY}");
    lines.push(&key);
    lines.push("Sec-WebSocket-Version: 13");
    lines.extend_from_slice(extra);
    raw_request(&lines)
}

/// A request head made of exactly these lines (request line first), CRLF-terminated.
pub fn raw_request(lines: &[&str]) -> Vec<u8> {
    let mut s = String::new();
    for l in lines {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// A frame the server sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The Close code (1005 for an empty Close); panics if this is not a Close.
    pub fn close_code(&self) -> u16 {
        assert_eq!(self.opcode, CLOSE, "expected a Close frame, got {self:?}");
        match self.payload.as_slice() {
            [] => 1005,
            [hi, lo, ..] => u16::from_be_bytes([*hi, *lo]),
            [_] => panic!("server sent a 1-byte Close payload"),
        }
    }

    pub fn reason(&self) -> &[u8] {
        self.payload.get(2..).unwrap_or(&[])
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.payload).expect("server text is UTF-8")
    }
}

/// Parses one server frame from the front of `buf`; checks what RFC 6455 requires of a server's
/// frame (unmasked, minimal length, control rules). `None` when more bytes are needed.
fn parse_server_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let b0 = buf[0];
    let b1 = buf[1];
    assert_eq!(
        b1 & 0x80,
        0,
        "server frames must not be masked (RFC 6455 §5.1)"
    );
    let (len, mut pos) = match b1 & 0x7f {
        126 => {
            let b = buf.get(2..4)?;
            let len = u64::from(u16::from_be_bytes([b[0], b[1]]));
            assert!(len >= 126, "server used a non-minimal 16-bit length");
            (len, 4)
        }
        127 => {
            let b = buf.get(2..10)?;
            let len = u64::from_be_bytes(b.try_into().unwrap());
            assert!(
                len > 0xffff && len >> 63 == 0,
                "bad 64-bit length from server"
            );
            (len, 10)
        }
        n => (u64::from(n), 2),
    };
    let opcode = b0 & 0x0f;
    if opcode >= 8 {
        assert!(b0 & 0x80 != 0, "server sent a fragmented control frame");
        assert!(len <= 125, "server sent a control frame over 125 bytes");
    }
    let end = pos + len as usize;
    if buf.len() < end {
        return None;
    }
    let payload = buf[pos..end].to_vec();
    pos = end;
    Some((
        Frame {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 7,
            opcode,
            payload,
        },
        pos,
    ))
}

/// A TCP client that speaks raw bytes, with read and write timeouts.
pub struct Raw {
    pub stream: TcpStream,
    /// Received but not yet consumed.
    pub buf: Vec<u8>,
}

impl Raw {
    /// Connects (no handshake).
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).expect("connect");
        Raw::from_stream(stream)
    }

    pub fn from_stream(stream: TcpStream) -> Raw {
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects and completes a valid upgrade; checks the 101 and its accept key.
    pub fn open(addr: SocketAddr) -> Raw {
        let mut r = Raw::connect(addr);
        r.write(&request(&[]));
        let head = r.read_head();
        assert_101(&head);
        r
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to server");
    }

    /// Sends one masked frame.
    pub fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.write(&frame(fin, 0, opcode, payload));
    }

    pub fn text(&mut self, s: &str) {
        self.send(true, TEXT, s.as_bytes());
    }

    pub fn close(&mut self, code: u16, reason: &[u8]) {
        self.send(true, CLOSE, &close_payload(code, reason));
    }

    /// One read into `buf`: the number of bytes (0 at EOF), or the error.
    pub fn read_some(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 64 << 10];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    fn fill(&mut self, what: &str) {
        match self.read_some() {
            Ok(0) => panic!("EOF while waiting for {what} (have {:?})", self.buf),
            Ok(_) => {}
            Err(e) => panic!("error while waiting for {what}: {e}"),
        }
    }

    /// Reads an HTTP response head; leaves any later bytes in `buf`.
    pub fn read_head(&mut self) -> String {
        loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..p + 4).collect();
                return String::from_utf8(head).expect("ASCII head");
            }
            assert!(self.buf.len() < 64 << 10, "response head too large");
            self.fill("an HTTP response head");
        }
    }

    /// The next frame; `Ok(None)` at EOF (with no partial frame pending).
    pub fn try_frame(&mut self) -> io::Result<Option<Frame>> {
        loop {
            if let Some((f, used)) = parse_server_frame(&self.buf) {
                self.buf.drain(..used);
                return Ok(Some(f));
            }
            if self.read_some()? == 0 {
                assert!(self.buf.is_empty(), "EOF inside a frame: {:?}", self.buf);
                return Ok(None);
            }
        }
    }

    /// The next frame, or a panic on EOF or timeout.
    pub fn frame(&mut self) -> Frame {
        match self.try_frame() {
            Ok(Some(f)) => f,
            Ok(None) => panic!("EOF while waiting for a frame"),
            Err(e) => panic!("error while waiting for a frame: {e}"),
        }
    }

    /// The next frame must be a Close with `code`; then the server must close TCP.
    /// Returns the reason.
    pub fn expect_close(&mut self, code: u16) -> Vec<u8> {
        let f = self.frame();
        assert_eq!(f.opcode, CLOSE, "expected Close {code}, got {f:?}");
        assert_eq!(
            f.close_code(),
            code,
            "close code (reason {:?})",
            String::from_utf8_lossy(f.reason())
        );
        assert!(
            std::str::from_utf8(f.reason()).is_ok(),
            "close reason must be UTF-8"
        );
        let reason = f.reason().to_vec();
        self.expect_eof();
        reason
    }

    /// Skips data and ping frames until a Close; returns it (does not wait for EOF).
    pub fn skip_to_close(&mut self) -> Frame {
        loop {
            let f = self.frame();
            if f.opcode == CLOSE {
                return f;
            }
        }
    }

    /// The server must close TCP (FIN) with no further bytes, within the read timeout.
    pub fn expect_eof(&mut self) {
        assert!(
            self.buf.is_empty(),
            "unread bytes before EOF: {:?}",
            self.buf
        );
        match self.read_some() {
            Ok(0) => {}
            Ok(n) => panic!("expected EOF, got {n} more bytes: {:?}", self.buf),
            Err(e) => panic!("expected EOF, got error {e}"),
        }
    }

    /// Like [`Raw::expect_eof`] but a reset also counts as closed (when the server may close a
    /// socket with unread input, e.g. after answering an oversized HTTP head).
    pub fn expect_closed(&mut self) {
        match self.read_some() {
            Ok(0) => {}
            Ok(_) => panic!("expected the connection closed, got bytes {:?}", self.buf),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("expected the connection closed, got error {e}"),
        }
    }

    /// Whether anything arrives within `d` (a timeout gives false; EOF gives true).
    pub fn readable_within(&mut self, d: Duration) -> bool {
        self.stream.set_read_timeout(Some(d)).unwrap();
        let r = self.read_some();
        self.stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        match r {
            Ok(_) => true,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                false
            }
            Err(_) => true,
        }
    }
}

/// Checks a 101 answer to [`request`].
pub fn assert_101(head: &str) {
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "expected 101, got {head:?}"
    );
    assert!(
        header_value(head, "Sec-WebSocket-Accept") == Some(ACCEPT),
        "accept key in {head:?}"
    );
}

/// The status line of a response head.
pub fn status_line(head: &str) -> &str {
    head.split("\r\n").next().unwrap_or("")
}

/// The value of the first header `name` (case-insensitive) in a response head.
pub fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Every value of header `name` in a response head.
pub fn header_values<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .collect()
}

/// Sends `req`, reads the response head and checks the server then closes TCP.
pub fn http_refused(addr: SocketAddr, req: &[u8]) -> String {
    let mut r = Raw::connect(addr);
    r.write(req);
    let head = r.read_head();
    assert!(r.buf.is_empty(), "body after a refusal: {:?}", r.buf);
    r.expect_closed();
    head
}

/// Sends `req` and returns the response head, leaving the connection open (for 101s).
pub fn http_upgrade(addr: SocketAddr, req: &[u8]) -> (Raw, String) {
    let mut r = Raw::connect(addr);
    r.write(req);
    let head = r.read_head();
    (r, head)
}

/// Echo round trip through an open raw connection.
pub fn assert_echo(r: &mut Raw, text: &str) {
    r.text(text);
    let f = r.frame();
    assert_eq!((f.opcode, f.fin), (TEXT, true), "echo frame {f:?}");
    assert_eq!(f.text(), text);
}

/// Waits until `cond` holds, polling; panics after [`IO_TIMEOUT`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + IO_TIMEOUT;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Resident set size of this process, in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS value");
    kb * 1024
}

/// Sends `bytes` on a fresh connection and expects Close `code`, then EOF, and the handler's
/// `on_close(code)` without any message before it.
pub fn fails_with(srv: &TestServer, ev: &Events, bytes: &[u8], code: u16) {
    let mut r = Raw::open(srv.addr);
    ev.opened();
    r.write(bytes);
    r.expect_close(code);
    let (got, _) = ev.closed_without_messages();
    assert_eq!(got, code, "on_close code");
}
