//! The HTTP upgrade (RFC 6455 §4.2.1, §4.4, §11.3): BAD_INPUTS lines 1–11.
//!
//! Every refusal is checked for its exact status line, for the connection being closed after
//! it, and for the application never seeing the request.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use myriad::{Accept, Handler, Message, Request, Upgrade, Ws};

/// The standard request headers, minus `drop`, plus `add`.
fn request_lines(drop: &[&str], add: &[&str]) -> Vec<u8> {
    let key = format!("Sec-WebSocket-Key: {KEY}");
    let base = [
        "Host: example.com",
        "Upgrade: websocket",
        "Connection: Upgrade",
        key.as_str(),
        "Sec-WebSocket-Version: 13",
    ];
    let mut lines = vec!["GET /chat HTTP/1.1"];
    for l in base {
        let name = l.split(':').next().unwrap();
        if !drop.iter().any(|d| d.eq_ignore_ascii_case(name)) {
            lines.push(l);
        }
    }
    lines.extend_from_slice(add);
    raw_request(&lines)
}

/// Sends a request that must be refused with `status_line`; checks the connection is then
/// closed and the handler saw nothing.
fn refused(req: &[u8], expect: &str) -> String {
    let (srv, ev) = start_recorder(config());
    let head = http_refused(srv.addr, req);
    assert_eq!(status_line(&head), expect, "full answer: {head:?}");
    assert_eq!(header_value(&head, "Connection"), Some("close"));
    assert!(header_value(&head, "Sec-WebSocket-Accept").is_none());
    assert!(
        ev.drain().is_empty(),
        "the application saw a refused request"
    );
    head
}

fn accepted(req: &[u8]) -> (TestServer, Raw, String) {
    let (srv, ev) = start_recorder(config());
    let (mut r, head) = http_upgrade(srv.addr, req);
    assert_101(&head);
    ev.opened();
    assert_echo(&mut r, "still works");
    (srv, r, head)
}

// ---- BAD_INPUTS 1: method, version, Host ------------------------------------------------------

#[test]
fn bad_inputs_1_post_is_405_with_allow_get() {
    let mut req = request(&[]);
    req.splice(0..3, b"POST".iter().copied());
    let head = refused(&req, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(header_value(&head, "Allow"), Some("GET"));
}

#[test]
fn bad_inputs_1_http_1_0_is_400() {
    let req = String::from_utf8(request(&[]))
        .unwrap()
        .replacen("HTTP/1.1", "HTTP/1.0", 1);
    refused(req.as_bytes(), "HTTP/1.1 400 Bad Request");
}

#[test]
fn bad_inputs_1_missing_or_duplicated_host_is_400() {
    refused(&request_lines(&["Host"], &[]), "HTTP/1.1 400 Bad Request");
    refused(
        &request_lines(&[], &["Host: other.example"]),
        "HTTP/1.1 400 Bad Request",
    );
}

// ---- BAD_INPUTS 2: Upgrade and Connection tokens ----------------------------------------------

#[test]
fn bad_inputs_2_upgrade_missing_or_wrong_is_400() {
    refused(
        &request_lines(&["Upgrade"], &[]),
        "HTTP/1.1 400 Bad Request",
    );
    refused(
        &request_lines(&["Upgrade"], &["Upgrade: h2c"]),
        "HTTP/1.1 400 Bad Request",
    );
    refused(
        &request_lines(&["Upgrade"], &["Upgrade: websocketx"]),
        "HTTP/1.1 400 Bad Request",
    );
}

#[test]
fn bad_inputs_2_connection_without_upgrade_token_is_400() {
    refused(
        &request_lines(&["Connection"], &[]),
        "HTTP/1.1 400 Bad Request",
    );
    refused(
        &request_lines(&["Connection"], &["Connection: keep-alive"]),
        "HTTP/1.1 400 Bad Request",
    );
    refused(
        &request_lines(&["Connection"], &["Connection: upgraded, close"]),
        "HTTP/1.1 400 Bad Request",
    );
}

#[test]
fn bad_inputs_2_case_insensitive_and_comma_lists_pass() {
    accepted(&request_lines(
        &["Upgrade", "Connection"],
        &["Upgrade: WebSocket", "Connection: keep-alive, Upgrade"],
    ));
    accepted(&request_lines(
        &["Upgrade", "Connection"],
        &["uPgRaDe: h2c, WEBSOCKET", "connection: keep-alive,upgrade"],
    ));
}

// ---- BAD_INPUTS 3: Sec-WebSocket-Key ----------------------------------------------------------

#[test]
fn bad_inputs_3_bad_keys_are_400() {
    let bad = [
        vec![],                                              // missing
        vec!["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="], // duplicated (a valid one)
    ];
    refused(
        &request_lines(&["Sec-WebSocket-Key"], &bad[0]),
        "HTTP/1.1 400 Bad Request",
    );
    refused(&request_lines(&[], &bad[1]), "HTTP/1.1 400 Bad Request");
    for key in [
        "",                             // empty
        "!!!!!!!!!!!!!!!!!!!!!!!!",     // 24 characters, not base64
        "AAAAAAAAAAAAAAAAAAAAAAAA",     // base64 of 18 bytes
        "AAAAAAAAAAAAAAAAAAAA",         // base64 of 15 bytes
        "AAAAAAAAAAAAAAAAAAAAAA=",      // bad padding
        "dGhlIHNhbXBsZSBub25jZQ==AAAA", // a valid key with a tail
    ] {
        let line = format!("Sec-WebSocket-Key: {key}");
        refused(
            &request_lines(&["Sec-WebSocket-Key"], &[&line]),
            "HTTP/1.1 400 Bad Request",
        );
    }
}

/// A 2 MB key. Documented choice: with the default 8 KiB head limit the head is refused by size
/// (431) before the key is looked at; with a head limit that lets it through, the key itself is
/// refused (400). Either way nothing is upgraded.
#[test]
fn bad_inputs_3_two_megabyte_key() {
    let key = format!("Sec-WebSocket-Key: {}", "A".repeat(2 << 20));
    let req = request_lines(&["Sec-WebSocket-Key"], &[&key]);

    let (srv, ev) = start_recorder(config());
    let head = send_big_and_read_head(srv.addr, &req);
    assert_eq!(
        status_line(&head),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    assert!(ev.drain().is_empty());

    let (srv, ev) = start_recorder(config().max_head_bytes(4 << 20));
    let head = send_big_and_read_head(srv.addr, &req);
    assert_eq!(status_line(&head), "HTTP/1.1 400 Bad Request");
    assert!(ev.drain().is_empty());
}

// ---- BAD_INPUTS 4: Sec-WebSocket-Version ------------------------------------------------------

#[test]
fn bad_inputs_4_version_not_13_is_426_with_version_header() {
    for add in [
        vec!["Sec-WebSocket-Version: 12"],
        vec!["Sec-WebSocket-Version: 8"],
        vec!["Sec-WebSocket-Version: 13, 8"],
        // Documented choice: a missing version is answered like an unsupported one (426 with
        // the version we speak), which tells the client how to retry.
        vec![],
    ] {
        let head = refused(
            &request_lines(&["Sec-WebSocket-Version"], &add),
            "HTTP/1.1 426 Upgrade Required",
        );
        assert_eq!(header_value(&head, "Sec-WebSocket-Version"), Some("13"));
    }
}

// ---- BAD_INPUTS 5: Origin ---------------------------------------------------------------------

/// Default policy (documented on `Config::allowed_origins`): any origin and none are accepted.
/// With a list set, only listed origins (ASCII case-insensitive) pass; others and a missing
/// Origin get 403.
#[test]
fn bad_inputs_5_origin_not_allowed_is_403() {
    // Default: everything passes.
    accepted(&request(&["Origin: https://evil.example"]));

    let cfg = config().allowed_origins(Some(vec!["https://good.example".to_owned()]));
    let (srv, ev) = start_recorder(cfg);
    for req in [
        request(&["Origin: https://evil.example"]),
        request(&["Origin: https://good.example.evil.example"]),
        request(&[]),
    ] {
        let head = http_refused(srv.addr, &req);
        assert_eq!(status_line(&head), "HTTP/1.1 403 Forbidden");
    }
    assert!(ev.drain().is_empty());
    for origin in [
        "Origin: https://good.example",
        "Origin: HTTPS://GOOD.EXAMPLE",
    ] {
        let (mut r, head) = http_upgrade(srv.addr, &request(&[origin]));
        assert_101(&head);
        assert_echo(&mut r, "hi");
    }
}

// ---- BAD_INPUTS 6: subprotocols ---------------------------------------------------------------

/// Picks the first of `prefs` that the client offered; `force` picks a protocol whatever was
/// offered (the server must then leave the header out); `require` rejects with 400 when none.
#[derive(Clone)]
struct Proto {
    prefs: &'static [&'static str],
    force: Option<&'static str>,
    require: bool,
}

impl Handler for Proto {
    type Data = ();
    fn on_upgrade(&mut self, req: &Request<'_>) -> Upgrade<()> {
        if let Some(f) = self.force {
            return Upgrade::Accept(Accept::new(()).protocol(f));
        }
        let offered: Vec<&str> = req.protocols().collect();
        match self.prefs.iter().find(|p| offered.contains(p)) {
            Some(p) => Upgrade::Accept(Accept::new(()).protocol(p)),
            None if self.require => Upgrade::reject(400),
            None => Upgrade::accept(()),
        }
    }
    fn on_message(&mut self, ws: &mut Ws<'_, ()>, msg: Message<'_>) {
        let _ = ws.send(msg);
    }
}

fn proto_answer(h: Proto, offer: &[&str]) -> String {
    let srv = TestServer::start(config(), h);
    let (mut r, head) = http_upgrade(srv.addr, &request(offer));
    if status_line(&head).contains(" 101 ") {
        assert_echo(&mut r, "x");
        let values = header_values(&head, "Sec-WebSocket-Protocol");
        assert!(
            values.len() <= 1,
            "one Sec-WebSocket-Protocol at most: {head:?}"
        );
        assert!(
            values.iter().all(|v| !v.contains(',')),
            "never a list: {head:?}"
        );
    }
    head
}

#[test]
fn bad_inputs_6_exactly_one_offered_protocol_is_chosen() {
    let h = Proto {
        prefs: &["superchat", "chat"],
        force: None,
        require: false,
    };
    let head = proto_answer(h.clone(), &["Sec-WebSocket-Protocol: chat, superchat"]);
    assert_eq!(
        header_value(&head, "Sec-WebSocket-Protocol"),
        Some("superchat")
    );
    // Offers spread over several header lines count too.
    let head = proto_answer(
        h.clone(),
        &[
            "Sec-WebSocket-Protocol: mqtt",
            "Sec-WebSocket-Protocol: chat",
        ],
    );
    assert_eq!(header_value(&head, "Sec-WebSocket-Protocol"), Some("chat"));
    // Nothing acceptable offered: no header.
    let head = proto_answer(h, &["Sec-WebSocket-Protocol: mqtt, soap"]);
    assert_101(&head);
    assert_eq!(header_value(&head, "Sec-WebSocket-Protocol"), None);
}

#[test]
fn bad_inputs_6_unoffered_choice_is_omitted() {
    let h = Proto {
        prefs: &[],
        force: Some("mqtt"),
        require: false,
    };
    let head = proto_answer(h.clone(), &["Sec-WebSocket-Protocol: chat"]);
    assert_101(&head);
    assert_eq!(header_value(&head, "Sec-WebSocket-Protocol"), None);
    let head = proto_answer(h, &[]);
    assert_101(&head);
    assert_eq!(header_value(&head, "Sec-WebSocket-Protocol"), None);
}

#[test]
fn bad_inputs_6_empty_or_garbage_offer_gives_no_header_or_400_when_required() {
    let lenient = Proto {
        prefs: &["chat", "{}"],
        force: None,
        require: false,
    };
    for offer in [
        "Sec-WebSocket-Protocol:",
        "Sec-WebSocket-Protocol: , , ,",
        "Sec-WebSocket-Protocol: {}, \"chat\", ch at",
    ] {
        let head = proto_answer(lenient.clone(), &[offer]);
        assert_101(&head);
        assert_eq!(
            header_value(&head, "Sec-WebSocket-Protocol"),
            None,
            "{offer}"
        );
    }
    let strict = Proto {
        require: true,
        ..lenient
    };
    let head = proto_answer(strict, &["Sec-WebSocket-Protocol: {}, ,"]);
    assert_eq!(status_line(&head), "HTTP/1.1 400 Bad Request");
}

// ---- BAD_INPUTS 7: extension offers -----------------------------------------------------------

/// Malformed, unknown or unacceptable offers are declined (no `Sec-WebSocket-Extensions` in the
/// answer) and the connection works without compression; RSV1 stays forbidden. (Acceptable
/// permessage-deflate offers are in tests/deflate.rs.)
#[test]
fn bad_inputs_7_extension_offers_are_declined_without_crashing() {
    let many_params = format!(
        "Sec-WebSocket-Extensions: permessage-deflate{}",
        ";x=1".repeat(1500)
    );
    let offers: Vec<String> = vec![
        "Sec-WebSocket-Extensions: %%%;;;==,,,\"".into(),
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=\"15".into(),
        "Sec-WebSocket-Extensions: constructor, __proto__; toString=1, hasOwnProperty".into(),
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7".into(),
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=abc".into(),
        "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover=1".into(),
        "Sec-WebSocket-Extensions: permessage-deflate; foo, permessage-deflate; bar=1".into(),
        "Sec-WebSocket-Extensions: x-unknown-extension".into(),
        many_params,
    ];
    let (srv, _ev) = start_recorder(config());
    for offer in &offers {
        let t = Instant::now();
        let (mut r, head) = http_upgrade(srv.addr, &request(&[offer]));
        assert_101(&head);
        assert_eq!(
            header_value(&head, "Sec-WebSocket-Extensions"),
            None,
            "{offer}"
        );
        assert_echo(&mut r, "plain");
        assert!(t.elapsed() < Duration::from_secs(2));
        // Deflate was not negotiated: a compressed-looking frame fails the connection.
        r.write(&frame(true, 0b100, TEXT, b"x"));
        r.expect_close(1002);
    }
}

/// Linear time: a 1 MiB extensions header with 250,000 parameters is handled quickly.
#[test]
fn bad_inputs_7_huge_extension_header_is_fast() {
    let (srv, _ev) = start_recorder(config().max_head_bytes(2 << 20));
    let offer = format!(
        "Sec-WebSocket-Extensions: permessage-deflate{}",
        ";a=\"b".repeat(250_000)
    );
    let t = Instant::now();
    let head = send_big_and_read_head(srv.addr, &request(&[&offer]));
    assert_101(&head);
    assert_eq!(header_value(&head, "Sec-WebSocket-Extensions"), None);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

// ---- BAD_INPUTS 8: oversized heads ------------------------------------------------------------

/// Writes `req` from another thread (the server may stop reading and close mid-way) and reads
/// the answer's head; checks the connection is closed afterwards unless it was a 101.
fn send_big_and_read_head(addr: std::net::SocketAddr, req: &[u8]) -> String {
    let mut r = Raw::connect(addr);
    let mut w = r.stream.try_clone().unwrap();
    let req = req.to_vec();
    let writer = std::thread::spawn(move || {
        // The server may close as soon as it has seen enough: write errors are expected.
        let _ = w.write_all(&req);
    });
    let head = r.read_head();
    if !status_line(&head).contains(" 101 ") {
        r.expect_closed();
    }
    writer.join().unwrap();
    head
}

fn timed_refusal(req: &[u8], expect: &str) {
    let (srv, ev) = start_recorder(config());
    let t = Instant::now();
    let head = send_big_and_read_head(srv.addr, req);
    assert_eq!(status_line(&head), expect);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "refusal took {:?}",
        t.elapsed()
    );
    assert!(ev.drain().is_empty());
    // The server is still fine.
    let mut r = Raw::open(srv.addr);
    assert_echo(&mut r, "after");
}

#[test]
fn bad_inputs_8_one_megabyte_header_is_431() {
    let h = format!("X-Big: {}", "a".repeat(1 << 20));
    timed_refusal(
        &request(&[&h]),
        "HTTP/1.1 431 Request Header Fields Too Large",
    );
}

#[test]
fn bad_inputs_8_twenty_megabyte_header_is_431() {
    let h = format!("X-Big: {}", "a".repeat(20 << 20));
    timed_refusal(
        &request(&[&h]),
        "HTTP/1.1 431 Request Header Fields Too Large",
    );
}

#[test]
fn bad_inputs_8_ten_thousand_small_headers_is_431() {
    let lines: Vec<String> = (0..10_000).map(|i| format!("X-H{i}: v")).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    timed_refusal(
        &request(&refs),
        "HTTP/1.1 431 Request Header Fields Too Large",
    );
    // Within the byte limit but more header lines than the parser's array: 431 too.
    let lines: Vec<String> = (0..100).map(|i| format!("X-{i}: v")).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let req = request(&refs);
    assert!(req.len() < 8 << 10);
    timed_refusal(&req, "HTTP/1.1 431 Request Header Fields Too Large");
}

#[test]
fn bad_inputs_8_one_megabyte_request_line_is_414() {
    let mut req = format!("GET /{} HTTP/1.1\r\n", "a".repeat(1 << 20)).into_bytes();
    req.extend_from_slice(&request(&[])[b"GET /chat HTTP/1.1\r\n".len()..]);
    timed_refusal(&req, "HTTP/1.1 414 URI Too Long");
}

// ---- BAD_INPUTS 9: dribbled head --------------------------------------------------------------

/// One byte per packet, never finishing within the handshake timeout: closed at the timeout,
/// silently (no HTTP answer).
#[test]
fn bad_inputs_9_dribbled_head_closed_at_handshake_timeout() {
    let timeout = Duration::from_millis(500);
    let (srv, ev) = start_recorder(config().handshake_timeout(timeout));
    let mut r = Raw::connect(srv.addr);
    let t0 = Instant::now();
    // Long enough that it would take ~3 s to send at 10 ms per byte.
    let mut req = request(&[]);
    req.splice(5..5, std::iter::repeat_n(b'a', 200));
    let mut closed_at = None;
    for b in req {
        if r.stream.write_all(&[b]).is_err() {
            closed_at = Some(t0.elapsed());
            break;
        }
        if r.readable_within(Duration::from_millis(10)) {
            closed_at = Some(t0.elapsed());
            break;
        }
    }
    let at = closed_at.expect("the server closed the dribbling connection");
    assert!(r.buf.is_empty(), "silent close expected, got {:?}", r.buf);
    assert!(
        at >= timeout - Duration::from_millis(60) && at < timeout + Duration::from_millis(700),
        "closed after {at:?}"
    );
    assert!(ev.drain().is_empty());
}

/// A head dribbled byte by byte that completes in time is accepted (the incremental scan finds
/// its end).
#[test]
fn bad_inputs_9_dribbled_head_in_time_is_accepted() {
    let (srv, ev) = start_recorder(config());
    let mut r = Raw::connect(srv.addr);
    for b in request(&[]) {
        r.write(&[b]);
        std::thread::sleep(Duration::from_micros(300));
    }
    assert_101(&r.read_head());
    ev.opened();
    assert_echo(&mut r, "dribbled");
}

// ---- BAD_INPUTS 10: slowloris -----------------------------------------------------------------

/// Thousands of half requests: the pending-handshake cap answers the next one with 503, each
/// half request is closed at the handshake timeout, and new clients are served afterwards.
#[test]
fn bad_inputs_10_slowloris_capped_and_reaped() {
    // Two descriptors per connection (ours and the server's) in this one process: raise the soft
    // limit to the hard one, and take fewer connections if even that is low.
    let limit = myriad::raise_open_files_limit().unwrap();
    let n = 2000.min((limit as usize).saturating_sub(512) / 2);
    assert!(n >= 100, "RLIMIT_NOFILE {limit} is too low for this test");
    let timeout = Duration::from_millis(1000);
    let (srv, ev) = start_recorder(
        config()
            .handshake_timeout(timeout)
            .max_pending_handshakes(n)
            // This test is about the global cap: the per-address one (tests/limits.rs) is lifted.
            .max_pending_per_ip(n)
            .backlog(4096),
    );
    let half = &request(&[])[..40];
    let t0 = Instant::now();
    let mut socks: Vec<Raw> = (0..n)
        .map(|_| {
            let mut r = Raw::connect(srv.addr);
            r.write(half);
            r
        })
        .collect();
    let opened = t0.elapsed();
    assert!(opened < timeout / 2, "opening took {opened:?}");

    // Over the cap: 503 and closed, at once.
    let mut extra = Raw::connect(srv.addr);
    let head = extra.read_head();
    assert_eq!(status_line(&head), "HTTP/1.1 503 Service Unavailable");
    extra.expect_closed();
    assert!(t0.elapsed() < timeout, "503 came late");

    // Each half request is closed silently at the handshake timeout.
    for r in &mut socks {
        r.expect_eof();
    }
    let reaped = t0.elapsed();
    assert!(
        reaped >= timeout - Duration::from_millis(60)
            && reaped < timeout + opened + Duration::from_secs(1),
        "reaped after {reaped:?}"
    );
    assert!(ev.drain().is_empty());

    // New clients are served again.
    let mut r = Raw::open(srv.addr);
    assert_echo(&mut r, "served");
}

// ---- BAD_INPUTS 11: frames pipelined with the request -----------------------------------------

#[test]
fn bad_inputs_11_frame_in_same_packet_as_request() {
    let (srv, ev) = start_recorder(config());
    let mut r = Raw::connect(srv.addr);
    let mut bytes = request(&[]);
    bytes.extend_from_slice(&frame(true, 0, TEXT, b"first"));
    bytes.extend_from_slice(&frame(true, 0, BINARY, &[1, 2, 3]));
    r.write(&bytes);
    assert_101(&r.read_head());
    assert_eq!(r.frame().text(), "first");
    assert_eq!(r.frame().payload, vec![1, 2, 3]);
    ev.opened();
    assert_eq!(ev.next(), Ev::Text("first".into()));
    assert_eq!(ev.next(), Ev::Binary(vec![1, 2, 3]));
}

/// The head arrives in pieces and its last piece carries frames: they are not lost.
#[test]
fn bad_inputs_11_frames_after_a_dribbled_head() {
    let (srv, _ev) = start_recorder(config());
    let mut r = Raw::connect(srv.addr);
    let req = request(&[]);
    let (a, b) = req.split_at(req.len() - 1);
    r.write(a);
    std::thread::sleep(Duration::from_millis(50));
    let mut rest = b.to_vec();
    rest.extend_from_slice(&frame(true, 0, TEXT, b"after a split head"));
    r.write(&rest);
    assert_101(&r.read_head());
    assert_eq!(r.frame().text(), "after a split head");
}

/// As above with more frame bytes behind the head than the receive buffer holds: the reactor
/// must not lose (or index past) any of them.
#[test]
fn bad_inputs_11_large_pipelined_data_after_a_dribbled_head() {
    let (srv, ev) = start_recorder(config().recv_buffer(4096));
    let mut r = Raw::connect(srv.addr);
    let req = request(&[]);
    let (a, b) = req.split_at(req.len() - 1);
    r.write(a);
    std::thread::sleep(Duration::from_millis(50));
    let payload: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let mut rest = b.to_vec();
    rest.extend_from_slice(&frame(true, 0, BINARY, &payload));
    rest.extend_from_slice(&frame(true, 0, TEXT, b"tail"));
    r.write(&rest);
    assert_101(&r.read_head());
    let f = r.frame();
    assert_eq!(f.opcode, BINARY);
    assert!(f.payload == payload, "payload corrupted");
    assert_eq!(r.frame().text(), "tail");
    ev.opened();
    assert!(matches!(ev.next(), Ev::Binary(p) if p == payload));
    // And the same in one packet.
    let mut r = Raw::connect(srv.addr);
    let mut all = request(&[]);
    all.extend_from_slice(&frame(true, 0, BINARY, &payload));
    r.write(&all);
    assert_101(&r.read_head());
    assert!(r.frame().payload == payload);
}

/// Sanity check of the helpers against `myriad::client::Client`.
#[test]
fn client_handshake_and_echo() {
    let (srv, _ev) = start_recorder(config());
    let stream = TcpStream::connect(srv.addr).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut c = myriad::client::Client::handshake(stream, "localhost", "/", &[]).unwrap();
    c.send(Message::Text("via client")).unwrap();
    assert_eq!(
        c.recv().unwrap(),
        myriad::client::Received::Text("via client".into())
    );
}
