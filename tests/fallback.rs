//! The fallback transports (issue 14) as the application sees them: an SSE or long-poll
//! session is one connection to the Handler (on_upgrade, on_open, on_message, send, publish,
//! close, on_close, `Ws::transport`), across reactors, with the bad inputs of the uplink.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use myriad::{Handler, Message, Request, Upgrade, Ws};

/// Echoes, and acts on a few commands; records what it saw.
#[derive(Clone)]
struct App {
    tx: Arc<Mutex<Sender<String>>>,
}

impl App {
    fn new() -> (App, Receiver<String>) {
        let (tx, rx) = mpsc::channel();
        (
            App {
                tx: Arc::new(Mutex::new(tx)),
            },
            rx,
        )
    }
    fn note(&self, s: String) {
        let _ = self.tx.lock().unwrap().send(s);
    }
}

impl Handler for App {
    type Data = ();
    fn on_upgrade(&mut self, req: &Request<'_>) -> Upgrade<()> {
        if req.path() == "/deny" {
            return Upgrade::reject_with_text(401, "who are you");
        }
        Upgrade::accept(())
    }
    fn on_open(&mut self, ws: &mut Ws<'_, ()>) {
        self.note(format!("open {:?}", ws.transport()));
    }
    fn on_message(&mut self, ws: &mut Ws<'_, ()>, msg: Message<'_>) {
        match msg {
            Message::Text("sub") => {
                ws.subscribe("t").unwrap();
                ws.send_text("subscribed").unwrap();
            }
            Message::Text("close") => ws.close(4000, "bye").unwrap(),
            Message::Text("panic") => panic!("test panic in on_message"),
            Message::Text(t) if t.starts_with("pub ") => {
                ws.publish("t", Message::Text(&t[4..])).unwrap();
            }
            Message::Text(t) if t.starts_with("big ") => {
                let n: usize = t[4..].parse().unwrap();
                ws.publish("t", Message::Binary(&vec![7u8; n])).unwrap();
            }
            Message::Text(t) => {
                self.note(format!("text {t}"));
                ws.send_text(t).unwrap();
            }
            Message::Binary(b) => {
                ws.send_binary(b).unwrap();
            }
        }
    }
    fn on_drain(&mut self, ws: &mut Ws<'_, ()>) {
        self.note(format!("drain {:?} {}", ws.transport(), ws.buffered()));
    }
    fn on_close(&mut self, ws: &mut Ws<'_, ()>, code: u16, reason: &[u8]) {
        let _ = ws;
        self.note(format!("close {code} {}", String::from_utf8_lossy(reason)));
    }
}

fn next(rx: &Receiver<String>) -> String {
    rx.recv_timeout(Duration::from_secs(5))
        .expect("a handler event within 5 s")
}

/// One request on a fresh connection (closed after): status, head, body.
fn http(addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let at = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8(all[..at].to_vec()).unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head, all[at..].to_vec())
}

/// The data of each event in `bytes` (a poll body or an SSE stream), with its id.
fn events(bytes: &[u8]) -> Vec<(Option<u64>, String)> {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let mut out = Vec::new();
    let (mut data, mut id, mut any) = (String::new(), None, false);
    for line in text.split('\n') {
        if line.is_empty() {
            if any {
                data.pop();
                out.push((id.take(), std::mem::take(&mut data)));
                any = false;
            }
            continue;
        }
        if let Some(v) = line.strip_prefix("data: ") {
            data.push_str(v);
            data.push('\n');
            any = true;
        } else if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.parse().unwrap());
        }
    }
    out
}

/// An SSE stream being read.
struct Sse {
    raw: Raw,
    pub sid: String,
}

impl Sse {
    fn open(addr: SocketAddr, path: &str) -> (Sse, String) {
        let mut raw = Raw::connect(addr);
        raw.write(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
                .as_bytes(),
        );
        let head = raw.read_head();
        let mut s = Sse {
            raw,
            sid: String::new(),
        };
        if head.starts_with("HTTP/1.1 200") {
            let first = s.event();
            s.sid = first
                .strip_prefix('s')
                .expect("the session event first")
                .to_owned();
        }
        (s, head)
    }

    /// The next event's data (heartbeats skipped).
    fn event(&mut self) -> String {
        loop {
            if let Some(p) = self.raw.buf.windows(2).position(|w| w == b"\n\n") {
                let ev: Vec<u8> = self.raw.buf.drain(..p + 2).collect();
                if let Some((_, d)) = events(&ev).pop() {
                    return d;
                }
                continue;
            }
            let n = self.raw.read_some().expect("an event");
            assert!(n > 0, "stream ended; have {:?}", self.raw.buf);
        }
    }

    fn post(&self, addr: SocketAddr, body: &[u8]) -> u16 {
        http(
            addr,
            "POST",
            &format!("/chat?myriad-session={}", self.sid),
            body,
        )
        .0
    }
}

fn config() -> myriad::Config {
    common::config()
        .workers(4)
        .poll_timeout(Duration::from_millis(600))
        .session_timeout(Duration::from_millis(800))
        .sse_heartbeat(Duration::from_millis(300))
}

#[test]
fn sse_session_is_one_connection() {
    let (app, rx) = App::new();
    let server = TestServer::start(config(), app);
    let (mut sse, head) = Sse::open(server.addr, "/chat?room=1");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    for h in [
        "Content-Type: text/event-stream",
        "Cache-Control: no-cache",
        "X-Accel-Buffering: no",
    ] {
        assert!(head.contains(h), "{h} missing: {head}");
    }
    assert!(!head.contains("Content-Length") && !head.contains("chunked"));
    assert_eq!(next(&rx), "open Sse");
    // Several POSTs, each on a new connection (so on any of the 4 reactors), in order.
    for i in 0..12 {
        let body = format!("t{}:m{i}", 1 + i.to_string().len());
        assert_eq!(sse.post(server.addr, body.as_bytes()), 204);
    }
    for i in 0..12 {
        assert_eq!(sse.event(), format!("tm{i}"));
        assert_eq!(next(&rx), format!("text m{i}"));
    }
    // Several frames in one body, binary and multi-line text, and a text with a CR.
    assert_eq!(sse.post(server.addr, b"b3:\x00\xffZt3:a\nbt3:a\rb"), 204);
    assert_eq!(sse.event(), "bAP9a");
    assert_eq!(sse.event(), "ta\nb");
    assert_eq!(sse.event(), "uYQ1i");
    assert_eq!(next(&rx), "text a\nb");
    assert_eq!(next(&rx), "text a\rb");
    // A heartbeat comment comes while nothing else does.
    let t = Instant::now();
    while !sse.raw.buf.starts_with(b":\n\n") {
        assert!(t.elapsed() < Duration::from_secs(3), "no heartbeat");
        sse.raw.read_some().unwrap();
    }
    sse.raw.buf.drain(..3);
    // The application closes it: the close event, with its reason, then the end.
    assert_eq!(sse.post(server.addr, b"t5:close"), 204);
    assert_eq!(sse.event(), "c4000 bye");
    sse.raw.expect_eof();
    assert!(next(&rx).starts_with("close 4000"));
    assert_eq!(sse.post(server.addr, b"t1:x"), 410);
    let stats = server.handle().stats().total;
    assert!(
        stats.fallback_handovers > 0,
        "12 POSTs over 4 reactors: some moved"
    );
}

#[test]
fn sse_client_close_and_refusals() {
    let (app, rx) = App::new();
    let server = TestServer::start(config(), app);
    let (_denied, head) = Sse::open(server.addr, "/deny");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let (mut sse, _) = Sse::open(server.addr, "/chat");
    assert_eq!(next(&rx), "open Sse");
    assert_eq!(sse.post(server.addr, b"c9:1000 done"), 204);
    assert_eq!(next(&rx), "close 1000 done");
    assert_eq!(sse.event(), "c1000 done");
    sse.raw.expect_eof();
    // The client going away is 1006.
    let (sse, _) = Sse::open(server.addr, "/chat");
    assert_eq!(next(&rx), "open Sse");
    drop(sse);
    assert!(next(&rx).starts_with("close 1006"));
}

#[test]
fn long_poll_loses_nothing_and_times_out() {
    let (app, rx) = App::new();
    let server = TestServer::start(config(), app);
    let (status, _, body) = http(server.addr, "GET", "/chat?myriad-transport=poll", b"");
    assert_eq!(status, 200);
    let sid = events(&body)[0].1.strip_prefix('s').unwrap().to_owned();
    assert_eq!(next(&rx), "open Poll");
    let post = |b: &[u8]| {
        http(
            server.addr,
            "POST",
            &format!("/chat?myriad-session={sid}"),
            b,
        )
        .0
    };
    let poll = |ack: u64| {
        let (s, _, b) = http(
            server.addr,
            "GET",
            &format!("/chat?myriad-session={sid}&myriad-ack={ack}"),
            b"",
        );
        (s, events(&b))
    };
    assert_eq!(post(b"t1:at1:bb2:hi"), 204);
    let want = vec![
        (Some(1), "ta".to_owned()),
        (Some(2), "tb".to_owned()),
        (Some(3), "baGk=".to_owned()),
    ];
    assert_eq!(poll(0), (200, want.clone()));
    // The answer was lost: the same ack gets the same events again.
    assert_eq!(poll(0), (200, want.clone()));
    assert_eq!(poll(2), (200, want[2..].to_vec()));
    assert_eq!(next(&rx), "text a");
    assert_eq!(next(&rx), "text b");
    // Everything sent has been acknowledged: on_drain, as for a socket that emptied.
    let _ = poll(3);
    assert_eq!(next(&rx), "drain Poll 0");
    // Nothing new: answered empty after the poll timeout.
    let t = Instant::now();
    assert_eq!(poll(3), (200, vec![]));
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    // A parked poll is answered as soon as there is something.
    let addr = server.addr;
    let sid2 = sid.clone();
    let poster = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        http(
            addr,
            "POST",
            &format!("/chat?myriad-session={sid2}"),
            b"t4:late",
        )
        .0
    });
    let t = Instant::now();
    assert_eq!(poll(3), (200, vec![(Some(4), "tlate".to_owned())]));
    assert!(t.elapsed() < Duration::from_millis(500));
    assert_eq!(poster.join().unwrap(), 204);
    // A HEAD is no poll: it goes to on_request (404 here), and parks nothing.
    let (s, _, b) = http(
        server.addr,
        "HEAD",
        &format!("/chat?myriad-session={sid}&myriad-ack=4"),
        b"",
    );
    assert_eq!((s, b.len()), (404, 0));
    // Bad acknowledgements.
    assert_eq!(poll(99).0, 400);
    assert_eq!(
        http(
            server.addr,
            "GET",
            &format!("/chat?myriad-session={sid}&myriad-ack=x"),
            b""
        )
        .0,
        400
    );
    // A second poll displaces the parked one (409).
    let mut first = Raw::connect(server.addr);
    first.write(
        format!("GET /chat?myriad-session={sid}&myriad-ack=4 HTTP/1.1\r\nHost: x\r\n\r\n")
            .as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(100));
    let second = std::thread::spawn(move || {
        http(
            addr,
            "GET",
            &format!("/chat?myriad-session={sid}&myriad-ack=4"),
            b"",
        )
        .0
    });
    let head = first.read_head();
    assert!(head.starts_with("HTTP/1.1 409"), "{head}");
    assert_eq!(second.join().unwrap(), 200);
    // No poll for the session timeout: 1006.
    let mut seen = Vec::new();
    let t = Instant::now();
    while !seen.iter().any(|e: &String| e.starts_with("close 1006")) {
        assert!(t.elapsed() < Duration::from_secs(5), "{seen:?}");
        seen.push(next(&rx));
    }
    assert!(
        seen.last().unwrap().contains("did not come back"),
        "{seen:?}"
    );
}

#[test]
fn poll_close_event_then_gone() {
    let (app, rx) = App::new();
    let server = TestServer::start(config(), app);
    let (_, _, body) = http(server.addr, "GET", "/chat?myriad-transport=poll", b"");
    let sid = events(&body)[0].1[1..].to_owned();
    assert_eq!(next(&rx), "open Poll");
    let target = format!("/chat?myriad-session={sid}");
    assert_eq!(http(server.addr, "POST", &target, b"t5:close").0, 204);
    assert!(next(&rx).starts_with("close 4000"));
    let (s, _, b) = http(server.addr, "GET", &format!("{target}&myriad-ack=0"), b"");
    assert_eq!(
        (s, events(&b)),
        (200, vec![(Some(1), "c4000 bye".to_owned())])
    );
    assert_eq!(
        http(server.addr, "GET", &format!("{target}&myriad-ack=1"), b"").0,
        410
    );
    assert_eq!(http(server.addr, "POST", &target, b"t1:x").0, 410);
}

#[test]
fn uplink_bad_inputs() {
    let (app, rx) = App::new();
    let cfg = config().max_body(1024).max_backpressure(4096);
    let server = TestServer::start(cfg, app);
    let (_, _, body) = http(server.addr, "GET", "/chat?myriad-transport=poll", b"");
    let sid = events(&body)[0].1[1..].to_owned();
    assert_eq!(next(&rx), "open Poll");
    let target = format!("/chat?myriad-session={sid}");
    // Unknown, garbled and forged ids: 404.
    assert_eq!(sid.len(), 64);
    let forged = format!("{}{}", &sid[..48], "0".repeat(16));
    for bad in ["zz", "", &forged] {
        assert_eq!(
            http(
                server.addr,
                "POST",
                &format!("/c?myriad-session={bad}"),
                b"t1:x"
            )
            .0,
            404
        );
    }
    // Malformed framing and bad UTF-8: 400, nothing delivered.
    for bad in [&b"x1:a"[..], b"t9:a", b"t1:at", b"t2:\xff\xfe", b"c4:1005"] {
        assert_eq!(http(server.addr, "POST", &target, bad).0, 400, "{bad:?}");
    }
    // Over the body limit: 413.
    assert_eq!(http(server.addr, "POST", &target, &vec![b'x'; 2048]).0, 413);
    // The queue fills (nobody polls): past the limit, POSTs get 429.
    let big = format!("t1000:{}", "y".repeat(1000));
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(http(server.addr, "POST", &target, big.as_bytes()).0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let (s, _, b) = http(server.addr, "GET", &format!("{target}&myriad-ack=0"), b"");
    assert_eq!(s, 200);
    let got = events(&b);
    // Only what was echoed arrived: no trace of the refused bodies.
    assert!(got.iter().all(|(_, d)| d.len() == 1001), "{got:?}");
    assert!(got.len() >= 3 && got.len() <= 5, "{}", got.len());
    let noted: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert!(
        noted
            .iter()
            .all(|n| n.starts_with("text yyy") || n == "drain Poll 0"),
        "{noted:?}"
    );
}

#[test]
fn publishes_reach_every_transport() {
    let (app, rx) = App::new();
    let server = TestServer::start(config(), app);
    let mut ws = Raw::open(server.addr);
    assert_eq!(next(&rx), "open WebSocket");
    ws.text("sub");
    assert_eq!(ws.frame().text(), "subscribed");
    let (mut sse, _) = Sse::open(server.addr, "/chat");
    assert_eq!(next(&rx), "open Sse");
    assert_eq!(sse.post(server.addr, b"t3:sub"), 204);
    assert_eq!(sse.event(), "tsubscribed");
    let (_, _, body) = http(server.addr, "GET", "/chat?myriad-transport=poll", b"");
    let psid = events(&body)[0].1[1..].to_owned();
    assert_eq!(next(&rx), "open Poll");
    let ptarget = format!("/chat?myriad-session={psid}");
    assert_eq!(http(server.addr, "POST", &ptarget, b"t3:sub").0, 204);
    for i in 0..5 {
        ws.text(&format!("pub n{i}"));
    }
    for i in 0..5 {
        assert_eq!(ws.frame().text(), format!("n{i}"));
        assert_eq!(sse.event(), format!("tn{i}"));
    }
    let (_, _, b) = http(server.addr, "GET", &format!("{ptarget}&myriad-ack=0"), b"");
    let got: Vec<String> = events(&b).into_iter().map(|e| e.1).collect();
    let want: Vec<String> = std::iter::once("tsubscribed".to_owned())
        .chain((0..5).map(|i| format!("tn{i}")))
        .collect();
    assert_eq!(got, want);
}

/// A publish queued for many long-poll sessions is one shared event, not a copy per session.
#[test]
fn queued_publish_is_shared() {
    fn rss() -> u64 {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        let l = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    }
    let (app, _rx) = App::new();
    let cfg = config().workers(1).session_timeout(Duration::from_secs(30));
    let server = TestServer::start(cfg, app);
    let sessions = 300;
    for _ in 0..sessions {
        let (_, _, body) = http(server.addr, "GET", "/chat?myriad-transport=poll", b"");
        let sid = events(&body)[0].1[1..].to_owned();
        assert_eq!(
            http(
                server.addr,
                "POST",
                &format!("/c?myriad-session={sid}"),
                b"t3:sub"
            )
            .0,
            204
        );
    }
    let mut ws = Raw::open(server.addr);
    let before = rss();
    // 1 MiB to 300 queues: 300 MiB if copied.
    ws.text(&format!("big {}", 1 << 20));
    std::thread::sleep(Duration::from_millis(500));
    let grew = rss().saturating_sub(before);
    assert!(grew < 32 << 20, "RSS grew {} MiB", grew >> 20);
    assert!(server.handle().stats().total.messages_sent >= sessions);
}

#[test]
fn panic_costs_one_session() {
    let (app, rx) = App::new();
    let server = TestServer::start(config(), app);
    let (mut a, _) = Sse::open(server.addr, "/chat");
    let (mut b, _) = Sse::open(server.addr, "/chat");
    let _ = (next(&rx), next(&rx));
    assert_eq!(a.post(server.addr, b"t5:panic"), 204);
    assert_eq!(a.event(), "c1011 internal error");
    a.raw.expect_eof();
    assert_eq!(b.post(server.addr, b"t2:ok"), 204);
    assert_eq!(b.event(), "tok");
}

/// The origin policy applies to fallback opens as to upgrades (BAD_INPUTS 5); a browser's
/// same-origin GET carries no Origin but says `Sec-Fetch-Site: same-origin`.
#[test]
fn origin_policy() {
    let (app, _rx) = App::new();
    let cfg = config().allowed_origins(Some(vec!["https://good.example".to_owned()]));
    let server = TestServer::start(cfg, app);
    let open = |extra: &str| {
        let mut raw = Raw::connect(server.addr);
        raw.write(
            format!("GET /chat HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n{extra}\r\n")
                .as_bytes(),
        );
        status_line(&raw.read_head()).to_owned()
    };
    assert!(open("").contains("403"));
    assert!(open("Origin: https://evil.example\r\n").contains("403"));
    assert!(open("Sec-Fetch-Site: cross-site\r\n").contains("403"));
    assert!(open("Origin: https://good.example\r\n").contains("200"));
    assert!(open("Sec-Fetch-Site: same-origin\r\n").contains("200"));
    let poll = http(server.addr, "GET", "/chat?myriad-transport=poll", b"").0;
    assert_eq!(poll, 403);
}

/// Long-poll sessions hold no socket between polls: a cap per reactor bounds them (503).
#[test]
fn poll_sessions_are_capped() {
    let (app, rx) = App::new();
    let server = TestServer::start(config().workers(1).max_poll_sessions(2), app);
    for _ in 0..2 {
        assert_eq!(
            http(server.addr, "GET", "/c?myriad-transport=poll", b"").0,
            200
        );
        assert_eq!(next(&rx), "open Poll");
    }
    assert_eq!(
        http(server.addr, "GET", "/c?myriad-transport=poll", b"").0,
        503
    );
    // SSE sessions hold their socket: the open-files limit bounds them, not this cap.
    let (_sse, head) = Sse::open(server.addr, "/chat");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[test]
fn client_js_is_served() {
    let (app, _rx) = App::new();
    let server = TestServer::start(config(), app);
    let (s, head, body) = http(server.addr, "GET", "/myriad.js", b"");
    assert_eq!(s, 200);
    assert!(head.contains("Content-Type: text/javascript"), "{head}");
    assert!(String::from_utf8(body).unwrap().contains("MyriadSocket"));
    // Off with the fallbacks.
    let (app, _rx) = App::new();
    let server = TestServer::start(config().fallback(false), app);
    assert_eq!(http(server.addr, "GET", "/myriad.js", b"").0, 404);
    let (_, head) = Sse::open(server.addr, "/chat");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}
