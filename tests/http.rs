//! Plain HTTP on the WebSocket port (RFC 9110, RFC 9112): requests reach `on_request` with their
//! bodies, keep-alive and pipelining are bounded, bad requests get their status (BAD_INPUTS 68,
//! 69), streamed responses, and an upgrade on the same port (and the same connection) still
//! works.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use myriad::{Handler, Message, Request, Response, Upgrade, Ws};

/// Answers `/hello` with text, `/echo` with the request body, `/stream` with a streamed response
/// whose first message comes from `on_open`; everything else is the default 404.
#[derive(Clone)]
struct Site;

impl Handler for Site {
    type Data = u32;

    fn on_upgrade(&mut self, _req: &Request<'_>) -> Upgrade<u32> {
        Upgrade::accept(0)
    }

    fn on_request(&mut self, req: &Request<'_>, res: &mut Response<'_, u32>) {
        match req.path() {
            "/hello" => {
                res.text("hello\n").header("X-Test", "1");
            }
            "/echo" => {
                res.status(200).body(req.body());
            }
            "/stream" => {
                res.status(200).header("Content-Type", "text/plain");
                res.body(b"first;");
                res.stream(7);
            }
            _ => {}
        }
    }

    fn on_open(&mut self, ws: &mut Ws<'_, u32>) {
        if *ws.data() == 7 {
            let _ = ws.send_text("second;");
            let _ = ws.send_text("third;");
            let _ = ws.close(1000, "");
        }
    }

    fn on_message(&mut self, ws: &mut Ws<'_, u32>, msg: Message<'_>) {
        let _ = ws.send(msg);
    }
}

fn site() -> TestServer {
    TestServer::start(config(), Site)
}

fn connect(srv: &TestServer) -> TcpStream {
    let s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// A response: status, headers (lower-case names) and body.
type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// One response: status, headers (lower-case names) and body, read by `Content-Length` or
/// chunked framing; `None` at EOF before a status line.
fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>, head_only: bool) -> Option<Answer> {
    let end = loop {
        if let Some(e) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break e + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk).expect("read within the timeout");
        if n == 0 {
            assert!(buf.is_empty(), "EOF inside a head: {buf:?}");
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..end].to_vec()).unwrap();
    buf.drain(..end);
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut fill = |buf: &mut Vec<u8>, want: usize| {
        while buf.len() < want {
            let mut chunk = [0u8; 8192];
            let n = s.read(&mut chunk).expect("read within the timeout");
            assert!(n > 0, "EOF inside a body");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    let mut body = Vec::new();
    if head_only {
        return Some((status, headers, body));
    }
    if get("transfer-encoding").as_deref() == Some("chunked") {
        loop {
            let line_end = loop {
                if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                    break p;
                }
                let have = buf.len();
                fill(buf, have + 1);
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).unwrap(), 16).unwrap();
            buf.drain(..line_end + 2);
            fill(buf, size + 2);
            body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
            if size == 0 {
                break;
            }
        }
    } else {
        let n: usize = get("content-length").expect("a length").parse().unwrap();
        fill(buf, n);
        body = buf.drain(..n).collect();
    }
    Some((status, headers, body))
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

#[test]
fn plain_requests_reach_the_handler_and_keep_alive() {
    let srv = site();
    let mut s = connect(&srv);
    let mut buf = Vec::new();
    for _ in 0..3 {
        s.write_all(get("/hello").as_bytes()).unwrap();
        let (status, h, body) = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, b"hello\n");
        assert_eq!(header(&h, "x-test"), Some("1"));
        assert!(header(&h, "date").is_some_and(|d| d.ends_with(" GMT")));
        assert_eq!(header(&h, "connection"), None, "kept alive");
    }
    // Anything else: 404, still kept.
    s.write_all(get("/nothing").as_bytes()).unwrap();
    let (status, _, body) = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!((status, body.len()), (404, 0));
    // `Connection: close`: answered, then closed.
    s.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (status, h, _) = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!((status, header(&h, "connection")), (200, Some("close")));
    assert!(read_response(&mut s, &mut buf, false).is_none());
}

#[test]
fn http_1_0_closes_unless_kept_alive() {
    let srv = site();
    let mut s = connect(&srv);
    let mut buf = Vec::new();
    s.write_all(b"GET /hello HTTP/1.0\r\n\r\n").unwrap();
    let (status, h, body) = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!((status, body.as_slice()), (200, b"hello\n".as_slice()));
    assert_eq!(header(&h, "connection"), Some("close"));
    assert!(read_response(&mut s, &mut buf, false).is_none());
    let mut s = connect(&srv);
    s.write_all(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    s.write_all(b"GET /hello HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().0, 200);
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().0, 200);
    assert!(read_response(&mut s, &mut buf, false).is_none());
}

#[test]
fn head_gets_the_head_only() {
    let srv = site();
    let mut s = connect(&srv);
    let mut buf = Vec::new();
    s.write_all(b"HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let (status, h, _) = read_response(&mut s, &mut buf, true).unwrap();
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-length"), Some("6"));
    // No body followed: the next answer starts right away.
    s.write_all(get("/hello").as_bytes()).unwrap();
    let (status, _, body) = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!((status, body.as_slice()), (200, b"hello\n".as_slice()));
}

#[test]
fn bodies_by_length_and_chunked_split_anywhere() {
    let srv = site();
    let payload: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let mut req = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        payload.len()
    )
    .into_bytes();
    req.extend_from_slice(&payload);
    req.extend_from_slice(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    req.extend_from_slice(b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n");
    for cut in [1, 20, 80, 2000, req.len() - 3] {
        let mut s = connect(&srv);
        s.set_nodelay(true).unwrap();
        s.write_all(&req[..cut]).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        s.write_all(&req[cut..]).unwrap();
        let mut buf = Vec::new();
        let (status, _, body) = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!((status, body == payload), (200, true), "cut {cut}");
        let (status, _, body) = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(
            (status, body.as_slice()),
            (200, b"hello world".as_slice()),
            "cut {cut}"
        );
    }
}

/// Pipelined requests in one write are answered in order, up to the bound (16 by default); one
/// more gets 429 and the connection closes (BAD_INPUTS 69).
#[test]
fn bad_inputs_69_pipelining_is_bounded() {
    let srv = site();
    let mut s = connect(&srv);
    let mut buf = Vec::new();
    s.write_all(get("/hello").repeat(3).as_bytes()).unwrap();
    for _ in 0..3 {
        assert_eq!(read_response(&mut s, &mut buf, false).unwrap().0, 200);
    }
    let mut s = connect(&srv);
    s.write_all(get("/hello").repeat(20).as_bytes()).unwrap();
    let mut statuses = Vec::new();
    while let Some((status, _, _)) = read_response(&mut s, &mut buf, false) {
        statuses.push(status);
    }
    assert_eq!(statuses.len(), 17, "{statuses:?}");
    assert!(statuses[..16].iter().all(|&s| s == 200));
    assert_eq!(statuses[16], 429);
}

/// BAD_INPUTS 68: a body over the limit is refused from its declared length (nothing read of
/// it), and lengths that disagree (request smuggling) are refused; the connection closes.
#[test]
fn bad_inputs_68_body_limit_and_smuggling() {
    let srv = TestServer::start(config().max_body(1000), Site);
    let cases: [(&str, u16); 5] = [
        ("Content-Length: 1001\r\n", 413),
        ("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400),
        ("Content-Length: 5\r\nContent-Length: 6\r\n", 400),
        ("Transfer-Encoding: gzip, chunked\r\n", 501),
        ("Transfer-Encoding: chunked, identity\r\n", 400),
    ];
    for (extra, want) in cases {
        let mut s = connect(&srv);
        s.write_all(format!("POST /echo HTTP/1.1\r\nHost: t\r\n{extra}\r\n").as_bytes())
            .unwrap();
        let mut buf = Vec::new();
        let (status, h, _) = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(status, want, "{extra}");
        assert_eq!(header(&h, "connection"), Some("close"));
        assert!(read_response(&mut s, &mut buf, false).is_none(), "{extra}");
    }
    // Chunks that add up past the limit.
    let mut s = connect(&srv);
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    for _ in 0..20 {
        let _ = s.write_all(b"64\r\n");
        let _ = s.write_all(&[b'x'; 100]);
        let _ = s.write_all(b"\r\n");
    }
    let mut buf = Vec::new();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().0, 413);
}

#[test]
fn bad_inputs_8_oversized_plain_heads() {
    let srv = site();
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(5000));
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX: {}\r\n\r\n",
        "b".repeat(9000)
    );
    for (req, want) in [(long_line, 414), (big_header, 431)] {
        let mut s = connect(&srv);
        let _ = s.write_all(req.as_bytes());
        let mut buf = Vec::new();
        assert_eq!(read_response(&mut s, &mut buf, false).unwrap().0, want);
    }
    // And HTTP/2's preface, or a version this server does not speak.
    let mut s = connect(&srv);
    s.write_all(b"GET / HTTP/2.0\r\nHost: t\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let status = read_response(&mut s, &mut buf, false).map_or(0, |r| r.0);
    assert!(status == 505 || status == 400, "{status}");
    // Missing or malformed Host on HTTP/1.1.
    for req in [
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a:port\r\n\r\n",
    ] {
        let mut s = connect(&srv);
        s.write_all(req.as_bytes()).unwrap();
        let mut buf = Vec::new();
        assert_eq!(
            read_response(&mut s, &mut buf, false).unwrap().0,
            400,
            "{req:?}"
        );
    }
}

/// A request that never completes is closed at the head timeout (2 s in the tests' config),
/// whether its head or its body is missing.
#[test]
fn a_request_that_never_completes_is_closed_at_the_timeout() {
    let srv = site();
    for partial in [
        "GET /hello HTTP/1.1\r\nHost: t\r\n".to_string(),
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc".to_string(),
    ] {
        let mut s = connect(&srv);
        s.write_all(partial.as_bytes()).unwrap();
        let t0 = Instant::now();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        let took = t0.elapsed();
        assert!(rest.is_empty(), "{rest:?}");
        assert!(
            took > Duration::from_millis(1500) && took < Duration::from_secs(5),
            "closed after {took:?}"
        );
    }
}

#[test]
fn a_streamed_response_sends_chunks_until_closed() {
    let srv = site();
    let mut s = connect(&srv);
    s.write_all(get("/stream").as_bytes()).unwrap();
    let mut buf = Vec::new();
    let (status, h, body) = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(status, 200);
    assert_eq!(header(&h, "transfer-encoding"), Some("chunked"));
    assert_eq!(body, b"first;second;third;");
    assert!(read_response(&mut s, &mut buf, false).is_none());
}

/// An upgrade on the port that serves plain requests, and on a connection that already had one.
#[test]
fn upgrade_after_plain_requests_on_the_same_connection() {
    let srv = site();
    let mut s = connect(&srv);
    let mut buf = Vec::new();
    s.write_all(get("/hello").as_bytes()).unwrap();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().0, 200);
    let mut r = Raw::from_stream(s);
    r.write(&request(&[]));
    assert_101(&r.read_head());
    assert_echo(&mut r, "upgraded after a plain request");
    // And a fresh connection.
    let mut r = Raw::open(srv.addr);
    assert_echo(&mut r, "fresh");
}

/// The application refuses an upgrade with a status, a header and a body.
#[test]
fn a_rejection_carries_a_body() {
    #[derive(Clone)]
    struct No;
    impl Handler for No {
        type Data = ();
        fn on_upgrade(&mut self, _req: &Request<'_>) -> Upgrade<()> {
            Upgrade::reject_with_text(401, "who are you?")
        }
        fn on_message(&mut self, _ws: &mut Ws<'_, ()>, _msg: Message<'_>) {}
    }
    let srv = TestServer::start(config(), No);
    let mut s = connect(&srv);
    s.write_all(&request(&[])).unwrap();
    let mut buf = Vec::new();
    let (status, h, body) = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!((status, body.as_slice()), (401, b"who are you?".as_slice()));
    assert_eq!(
        header(&h, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(read_response(&mut s, &mut buf, false).is_none());
    let _ = s.shutdown(Shutdown::Both);
}
