//! Tests of the whole handshake, both sides: parsing, limits, answers and round trips.

use std::net::SocketAddr;

use super::upgrade::is_valid_key;
use super::*;

const LIMITS: HeadLimits = HeadLimits {
    max_head_bytes: 8192,
    max_request_line: 4096,
};

fn peer() -> SocketAddr {
    "192.0.2.7:40123".parse().unwrap()
}

const VALID: &str = "GET /chat?room=1&x=y HTTP/1.1\r\n\
    Host: example.com:8080\r\n\
    Upgrade: websocket\r\n\
    Connection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Origin: http://example.com\r\n\
    Sec-WebSocket-Protocol: a, b\r\n\
    Sec-WebSocket-Protocol: c\r\n\
    Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// The valid request with header line `name` removed (all occurrences) and `add` lines added.
fn build(remove: &[&str], add: &[&str]) -> String {
    let mut s = String::new();
    for line in VALID.split("\r\n").filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap();
        if remove.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            continue;
        }
        s.push_str(line);
        s.push_str("\r\n");
    }
    for line in add {
        s.push_str(line);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s
}

/// Parses `head` and returns only the error status (or 101 on success).
fn status_of(head: &[u8]) -> u16 {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match parse_request(head, &mut headers, peer()) {
        Ok(_) => 101,
        Err(e) => e.status,
    }
}

/// Parses `head`, which must be refused, and returns the refusal's reason.
fn reason_of(head: &[u8]) -> &'static str {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    parse_request(head, &mut headers, peer())
        .unwrap_err()
        .reason
}

fn text(v: &[u8]) -> &str {
    std::str::from_utf8(v).unwrap()
}

#[test]
fn valid_request_parses() {
    let head = VALID.as_bytes();
    assert_eq!(find_head_end(head, 0), Some(head.len()));
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let req = parse_request(head, &mut headers, peer()).unwrap();
    assert_eq!(req.method(), "GET");
    assert_eq!(req.target(), "/chat?room=1&x=y");
    assert_eq!(req.path(), "/chat");
    assert_eq!(req.query(), Some("room=1&x=y"));
    assert_eq!(req.host(), Some("example.com:8080"));
    assert_eq!(req.origin(), Some("http://example.com"));
    assert_eq!(req.key(), b"dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(req.header("UPGRADE"), Some(b"websocket".as_slice()));
    assert_eq!(req.header("X-Missing"), None);
    assert_eq!(req.protocols().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(
        req.extensions().collect::<Vec<_>>(),
        [b"permessage-deflate; client_max_window_bits".as_slice()]
    );
    assert_eq!(req.headers().count(), 9);
    assert_eq!(
        req.headers().next(),
        Some(("Host", b"example.com:8080".as_slice()))
    );
    assert_eq!(req.peer_addr(), peer());
}

#[test]
fn path_without_query() {
    let head = VALID.replace("/chat?room=1&x=y", "/plain");
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let req = parse_request(head.as_bytes(), &mut headers, peer()).unwrap();
    assert_eq!(req.path(), "/plain");
    assert_eq!(req.query(), None);
}

// --- BAD_INPUTS 1: method, version, Host (RFC 6455 §4.2.1 items 1-2) ---

#[test]
fn bad_inputs_1_method_post_405_with_allow() {
    let head = VALID.replacen("GET", "POST", 1);
    assert_eq!(status_of(head.as_bytes()), 405);
    let mut out = Vec::new();
    write_reject(&mut out, 405, &[]);
    assert!(text(&out).starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
    assert!(text(&out).contains("\r\nAllow: GET\r\n"));
}

#[test]
fn bad_inputs_1_method_is_case_sensitive() {
    // RFC 7230 §3.1.1: the method token is case-sensitive.
    assert_eq!(status_of(VALID.replacen("GET", "get", 1).as_bytes()), 405);
}

#[test]
fn bad_inputs_1_http10_400() {
    let head = VALID.replacen("HTTP/1.1", "HTTP/1.0", 1);
    assert_eq!(status_of(head.as_bytes()), 400);
}

#[test]
fn bad_inputs_1_missing_host_400() {
    assert_eq!(status_of(build(&["Host"], &[]).as_bytes()), 400);
    assert_eq!(
        reason_of(build(&["Host"], &[]).as_bytes()),
        "missing Host header"
    );
}

#[test]
fn bad_inputs_1_duplicated_host_400() {
    // RFC 7230 §5.4: more than one Host → 400 (our choice follows the MUST there).
    let head = build(&[], &["host: other.example"]);
    assert_eq!(status_of(head.as_bytes()), 400);
}

#[test]
fn bad_inputs_1_malformed_and_partial_400() {
    assert_eq!(status_of(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"), 400);
    assert_eq!(status_of(b"\x00\x01\x02\r\n\r\n"), 400);
    assert_eq!(status_of(b"GET / HTTP/1.1\r\nHost: x\r\n"), 400);
    assert_eq!(status_of(b""), 400);
    assert_eq!(status_of(b"GET / HTTP/2.0\r\n\r\n"), 400);
}

// --- BAD_INPUTS 2: Upgrade and Connection (RFC 6455 §4.2.1 items 3-4) ---

#[test]
fn bad_inputs_2_upgrade_missing_400() {
    assert_eq!(status_of(build(&["Upgrade"], &[]).as_bytes()), 400);
}

#[test]
fn bad_inputs_2_upgrade_not_websocket_400() {
    let head = build(&["Upgrade"], &["Upgrade: h2c, websocketx"]);
    assert_eq!(status_of(head.as_bytes()), 400);
    assert_eq!(
        reason_of(head.as_bytes()),
        "Upgrade header does not name websocket"
    );
}

#[test]
fn bad_inputs_2_upgrade_case_insensitive_list_passes() {
    let head = build(&["Upgrade"], &["Upgrade: h2c,  WebSocket "]);
    assert_eq!(status_of(head.as_bytes()), 101);
}

#[test]
fn bad_inputs_2_connection_keep_alive_upgrade_passes() {
    let head = build(&["Connection"], &["Connection: keep-alive, Upgrade"]);
    assert_eq!(status_of(head.as_bytes()), 101);
    // The list may also be split over several header lines (RFC 7230 §3.2.2).
    let head = build(
        &["Connection"],
        &["Connection: keep-alive", "connection: UPGRADE"],
    );
    assert_eq!(status_of(head.as_bytes()), 101);
}

#[test]
fn bad_inputs_2_connection_upgradefoo_400() {
    let head = build(&["Connection"], &["Connection: upgradefoo"]);
    assert_eq!(status_of(head.as_bytes()), 400);
    assert_eq!(
        reason_of(head.as_bytes()),
        "Connection header lacks the upgrade token"
    );
    let head = build(&["Connection"], &["Connection: keep-alive"]);
    assert_eq!(status_of(head.as_bytes()), 400);
    assert_eq!(status_of(build(&["Connection"], &[]).as_bytes()), 400);
}

// --- BAD_INPUTS 3: Sec-WebSocket-Key (RFC 6455 §4.2.1 item 5) ---

/// The status for the valid request with its key line replaced; checks the refusal is
/// about the key.
fn key_status(key_line: &str) -> u16 {
    let head = build(&["Sec-WebSocket-Key"], &[key_line]);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match parse_request(head.as_bytes(), &mut headers, peer()) {
        Ok(_) => 101,
        Err(e) => {
            assert!(e.reason.contains("Sec-WebSocket-Key"), "{e}");
            e.status
        }
    }
}

#[test]
fn bad_inputs_3_key_missing_400() {
    assert_eq!(
        status_of(build(&["Sec-WebSocket-Key"], &[]).as_bytes()),
        400
    );
}

#[test]
fn bad_inputs_3_key_duplicated_400() {
    let head = build(&[], &["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="]);
    assert_eq!(status_of(head.as_bytes()), 400);
    assert_eq!(reason_of(head.as_bytes()), "duplicated Sec-WebSocket-Key");
}

#[test]
fn bad_inputs_3_key_not_base64_400() {
    assert_eq!(
        key_status("Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!=="),
        400
    );
    // URL-safe alphabet is not the standard one.
    assert_eq!(
        key_status("Sec-WebSocket-Key: ______________________=="),
        400
    );
    // Non-canonical trailing bits.
    assert_eq!(
        key_status("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR=="),
        400
    );
    // Padding missing (22 chars).
    assert_eq!(key_status("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ"), 400);
}

#[test]
fn bad_inputs_3_key_empty_400() {
    assert_eq!(key_status("Sec-WebSocket-Key:"), 400);
    assert_eq!(key_status("Sec-WebSocket-Key:    "), 400);
}

#[test]
fn bad_inputs_3_key_18_bytes_400() {
    // 24 characters without padding decode to 18 bytes.
    assert_eq!(
        key_status("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAA"),
        400
    );
}

#[test]
fn bad_inputs_3_key_2mb_400() {
    let line = format!("Sec-WebSocket-Key: {}", "A".repeat(2 << 20));
    assert_eq!(key_status(&line), 400);
}

#[test]
fn bad_inputs_3_key_with_whitespace_is_trimmed() {
    let head = build(
        &["Sec-WebSocket-Key"],
        &["Sec-WebSocket-Key: \t dGhlIHNhbXBsZSBub25jZQ== "],
    );
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let req = parse_request(head.as_bytes(), &mut headers, peer()).unwrap();
    assert_eq!(req.key(), b"dGhlIHNhbXBsZSBub25jZQ==");
}

// --- BAD_INPUTS 4: Sec-WebSocket-Version (RFC 6455 §4.2.1 item 6, §4.4) ---

#[test]
fn bad_inputs_4_version_missing_426() {
    let head = build(&["Sec-WebSocket-Version"], &[]);
    assert_eq!(status_of(head.as_bytes()), 426);
}

#[test]
fn bad_inputs_4_version_8_426_with_version_header() {
    let head = build(&["Sec-WebSocket-Version"], &["Sec-WebSocket-Version: 8"]);
    assert_eq!(status_of(head.as_bytes()), 426);
    let head = build(
        &["Sec-WebSocket-Version"],
        &["Sec-WebSocket-Version: 13, 8"],
    );
    assert_eq!(status_of(head.as_bytes()), 426);
    let head = build(&[], &["Sec-WebSocket-Version: 13"]);
    assert_eq!(status_of(head.as_bytes()), 426, "repeated version");
    let mut out = Vec::new();
    write_reject(&mut out, 426, &[]);
    assert!(text(&out).starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    assert!(text(&out).contains("\r\nSec-WebSocket-Version: 13\r\n"));
}

#[test]
fn bad_inputs_4_check_order() {
    // Version is checked before the key...
    let head = build(&["Sec-WebSocket-Version", "Sec-WebSocket-Key"], &[]);
    assert_eq!(status_of(head.as_bytes()), 426);
    // ...and after Upgrade/Connection...
    let head = build(&["Sec-WebSocket-Version", "Upgrade"], &[]);
    assert_eq!(status_of(head.as_bytes()), 400);
    // ...which come after the method.
    let head = build(&["Upgrade"], &[]).replacen("GET", "PUT", 1);
    assert_eq!(status_of(head.as_bytes()), 405);
}

// --- BAD_INPUTS 6: subprotocol offers ---

#[test]
fn bad_inputs_6_protocol_garbage_items_skipped() {
    let head = build(
        &["Sec-WebSocket-Protocol"],
        &[
            "Sec-WebSocket-Protocol: , a b, \"q\", ok ,,",
            "Sec-WebSocket-Protocol: x/y, chat.v2",
        ],
    );
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let req = parse_request(head.as_bytes(), &mut headers, peer()).unwrap();
    assert_eq!(req.protocols().collect::<Vec<_>>(), ["ok", "chat.v2"]);
}

// --- BAD_INPUTS 8: oversized heads ---

#[test]
fn bad_inputs_8_request_line_1mb_414() {
    let mut buf = b"GET /".to_vec();
    buf.resize(1 << 20, b'a');
    assert_eq!(find_head_end(&buf, 0), None);
    assert_eq!(check_incomplete(&buf, &LIMITS).unwrap_err().status, 414);
    // Just under the limit (no CRLF yet) is still acceptable.
    assert_eq!(
        check_incomplete(&buf[..LIMITS.max_request_line - 1], &LIMITS),
        Ok(())
    );
    assert_eq!(
        check_incomplete(&buf[..LIMITS.max_request_line], &LIMITS)
            .unwrap_err()
            .status,
        414
    );
}

#[test]
fn bad_inputs_8_single_header_20mb_431() {
    let mut buf = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    buf.resize(20 << 20, b'b');
    assert_eq!(find_head_end(&buf, 0), None);
    assert_eq!(check_incomplete(&buf, &LIMITS).unwrap_err().status, 431);
}

#[test]
fn bad_inputs_8_ten_thousand_headers_431() {
    let mut buf = b"GET / HTTP/1.1\r\n".to_vec();
    for _ in 0..10_000 {
        buf.extend_from_slice(b"X-a: b\r\n");
    }
    assert_eq!(find_head_end(&buf, 0), None);
    assert_eq!(check_incomplete(&buf, &LIMITS).unwrap_err().status, 431);
}

#[test]
fn bad_inputs_8_hundred_headers_too_many_431() {
    let limits = HeadLimits {
        max_head_bytes: 1 << 20,
        max_request_line: 4096,
    };
    let mut buf = build(&[], &[]).into_bytes();
    buf.truncate(buf.len() - 2);
    for _ in 0..100 {
        buf.extend_from_slice(b"X-a: b\r\n");
    }
    buf.extend_from_slice(b"\r\n");
    let end = find_head_end(&buf, 0).unwrap();
    assert_eq!(end, buf.len());
    assert_eq!(check_incomplete(&buf[..end], &limits), Ok(()));
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let e = parse_request(&buf[..end], &mut headers, peer()).unwrap_err();
    assert_eq!(e.status, 431);
}

#[test]
fn bad_inputs_8_short_partial_head_is_ok() {
    assert_eq!(check_incomplete(b"", &LIMITS), Ok(()));
    assert_eq!(check_incomplete(b"GET / HT", &LIMITS), Ok(()));
    assert_eq!(check_incomplete(&VALID.as_bytes()[..50], &LIMITS), Ok(()));
}

// --- BAD_INPUTS 9: dribbled heads ---

#[test]
fn bad_inputs_9_find_head_end_byte_at_a_time() {
    let long = build(
        &[],
        &["X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"],
    );
    let heads: [&[u8]; 5] = [
        VALID.as_bytes(),
        b"GET / HTTP/1.1\r\n\r\n",
        b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\r\n\r\nframe-bytes\r\n\r\n",
        long.as_bytes(),
    ];
    for head in heads {
        let whole = find_head_end(head, 0);
        assert!(whole.is_some());
        let mut dribbled = None;
        let mut prev = 0;
        for len in 1..=head.len() {
            if let Some(end) = find_head_end(&head[..len], prev) {
                dribbled = Some(end);
                break;
            }
            assert_eq!(check_incomplete(&head[..len], &LIMITS), Ok(()));
            prev = len;
        }
        assert_eq!(dribbled, whole);
        // Chunks of 3 bytes give the same answer too.
        let mut chunked = None;
        let mut prev = 0;
        let mut len = 0;
        while len < head.len() {
            len = (len + 3).min(head.len());
            if let Some(end) = find_head_end(&head[..len], prev) {
                chunked = Some(end);
                break;
            }
            prev = len;
        }
        assert_eq!(chunked, whole);
    }
    assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r", 0), None);
    assert_eq!(find_head_end(b"abc", 10), None);
}

// --- BAD_INPUTS 11: frame bytes pipelined after the head ---

#[test]
fn bad_inputs_11_pipelined_frame_bytes_untouched() {
    let mut buf = VALID.as_bytes().to_vec();
    let frame = [0x81u8, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
    buf.extend_from_slice(&frame);
    let end = find_head_end(&buf, 0).unwrap();
    assert_eq!(end, VALID.len());
    assert_eq!(&buf[end..], frame);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    assert!(parse_request(&buf[..end], &mut headers, peer()).is_ok());
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    assert!(parse_request(&buf, &mut headers, peer()).is_ok());
}

// --- Answers ---

#[test]
fn rfc6455_1_3_accept_vector() {
    // RFC 6455 §1.3: "dGhlIHNhbXBsZSBub25jZQ==" → "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
    assert_eq!(
        &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
        b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn write_accept_exact_bytes() {
    let mut out = Vec::new();
    write_accept(
        &mut out,
        b"dGhlIHNhbXBsZSBub25jZQ==",
        Some("chat"),
        None,
        &[],
    );
    assert_eq!(
        text(&out),
        "HTTP/1.1 101 Switching Protocols\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
         Sec-WebSocket-Protocol: chat\r\n\r\n"
    );
}

#[test]
fn write_accept_parse_response_round_trip() {
    let key = encode_key([7u8; 16]);
    let mut out = Vec::new();
    write_accept(
        &mut out,
        &key,
        Some("chat.v2"),
        Some("permessage-deflate; server_no_context_takeover"),
        &[("X-Server".to_string(), "myriad".to_string())],
    );
    assert_eq!(find_head_end(&out, 0), Some(out.len()));
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let res = parse_response(&out, &mut headers, &key).unwrap();
    assert_eq!(res.protocol, Some("chat.v2"));
    assert_eq!(
        res.extensions,
        Some(b"permessage-deflate; server_no_context_takeover".as_slice())
    );
    assert!(text(&out).contains("\r\nX-Server: myriad\r\n"));

    let mut out = Vec::new();
    write_accept(&mut out, &key, None, None, &[]);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let res = parse_response(&out, &mut headers, &key).unwrap();
    assert_eq!(
        res,
        Accepted {
            protocol: None,
            extensions: None
        }
    );
}

#[test]
fn write_request_parse_request_round_trip() {
    let key = encode_key(*b"0123456789abcdef");
    let key = std::str::from_utf8(&key).unwrap();
    let mut out = Vec::new();
    write_request(
        &mut out,
        "example.com:9001",
        "/ws?x=1",
        key,
        &["chat", "bad token", "v2"],
        Some("permessage-deflate"),
    );
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let req = parse_request(&out, &mut headers, peer()).unwrap();
    assert_eq!(req.path(), "/ws");
    assert_eq!(req.query(), Some("x=1"));
    assert_eq!(req.host(), Some("example.com:9001"));
    assert_eq!(req.key(), key.as_bytes());
    assert_eq!(req.protocols().collect::<Vec<_>>(), ["chat", "v2"]);
    assert_eq!(
        req.extensions().collect::<Vec<_>>(),
        [b"permessage-deflate".as_slice()]
    );

    // And the server's answer to it validates on the client side.
    let mut answer = Vec::new();
    write_accept(&mut answer, req.key(), Some("chat"), None, &[]);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let res = parse_response(&answer, &mut headers, key.as_bytes()).unwrap();
    assert_eq!(res.protocol, Some("chat"));
}

#[test]
fn write_request_neutralises_injection() {
    let key = encode_key([1u8; 16]);
    let key = std::str::from_utf8(&key).unwrap();
    let mut out = Vec::new();
    write_request(
        &mut out,
        "evil\r\nX-Injected: 1",
        "/a b\r\nX-Injected: 2#frag",
        key,
        &[],
        Some("x\r\nX-Injected: 3"),
    );
    let s = text(&out);
    assert!(!s.contains("\r\nX-Injected"));
    assert!(s.starts_with("GET /a%20b%0D%0AX-Injected:%202%23frag HTTP/1.1\r\n"));
    assert!(!s.contains("Sec-WebSocket-Protocol"));
    assert!(!s.contains("Sec-WebSocket-Extensions"));
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    assert!(parse_request(&out, &mut headers, peer()).is_ok());

    let mut out = Vec::new();
    write_request(&mut out, "h", "", key, &[], None);
    assert!(text(&out).starts_with("GET / HTTP/1.1\r\n"));
}

#[test]
fn parse_response_rejects() {
    let key = encode_key([9u8; 16]);
    let parse = |head: &[u8]| {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        parse_response(head, &mut headers, &key).map(|_| ())
    };
    let accept = accept_key(&key);
    let accept = text(&accept);
    let ok = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n"
    );
    assert_eq!(parse(format!("{ok}\r\n").as_bytes()), Ok(()));
    // Status seen and reported.
    let mut refusal = Vec::new();
    write_reject(&mut refusal, 403, &[]);
    assert_eq!(parse(&refusal).unwrap_err().status, 403);
    // Nothing readable → 0.
    assert_eq!(parse(b"garbage\r\n\r\n").unwrap_err().status, 0);
    assert_eq!(parse(b"HTTP/1.1 101 Swi").unwrap_err().status, 0);
    // Wrong accept (computed for another key).
    let wrong = ok.replace(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_eq!(
        parse(format!("{wrong}\r\n").as_bytes()).unwrap_err().status,
        101
    );
    // Missing pieces.
    for drop in ["Upgrade", "Connection", "Sec-WebSocket-Accept"] {
        let head: String = ok
            .split("\r\n")
            .filter(|l| !l.starts_with(drop))
            .map(|l| format!("{l}\r\n"))
            .collect();
        assert_eq!(parse(head.as_bytes()).unwrap_err().status, 101, "{drop}");
    }
    // Protocol must be one token, once; extensions once.
    let bad = format!("{ok}Sec-WebSocket-Protocol: a, b\r\n\r\n");
    assert_eq!(parse(bad.as_bytes()).unwrap_err().status, 101);
    let bad = format!("{ok}Sec-WebSocket-Protocol: a\r\nSec-WebSocket-Protocol: a\r\n\r\n");
    assert_eq!(parse(bad.as_bytes()).unwrap_err().status, 101);
    let bad = format!("{ok}Sec-WebSocket-Extensions: a\r\nSec-WebSocket-Extensions: b\r\n\r\n");
    assert_eq!(parse(bad.as_bytes()).unwrap_err().status, 101);
}

#[test]
fn extra_header_with_cr_or_lf_is_skipped() {
    let extra = [
        ("X-Evil".to_string(), "a\r\nSet-Cookie: x=1".to_string()),
        ("X-Lf".to_string(), "a\nb".to_string()),
        ("X-Cr".to_string(), "a\rb".to_string()),
        ("X-Bad\r\nName".to_string(), "v".to_string()),
        ("".to_string(), "v".to_string()),
        ("Content-Length".to_string(), "5".to_string()),
        ("X-Good".to_string(), "fine\tvalue".to_string()),
    ];
    let key = encode_key([3u8; 16]);
    for out in [
        {
            let mut v = Vec::new();
            write_accept(&mut v, &key, Some("a\r\nb"), Some("e\r\nX: y"), &extra);
            v
        },
        {
            let mut v = Vec::new();
            write_reject(&mut v, 401, &extra);
            v
        },
    ] {
        let s = text(&out);
        assert!(!s.contains("Set-Cookie"), "{s}");
        assert!(!s.contains("X-Lf"), "{s}");
        assert!(!s.contains("X-Cr"), "{s}");
        assert!(!s.contains("X-Bad"), "{s}");
        assert!(!s.contains("X-Evil"), "{s}");
        assert!(!s.contains("Content-Length: 5"), "{s}");
        assert!(!s.contains("\r\nX: y"), "{s}");
        assert!(s.contains("\r\nX-Good: fine\tvalue\r\n"), "{s}");
        // Every line ends CRLF and no bare CR or LF appears.
        assert_eq!(s.matches('\r').count(), s.matches('\n').count());
        assert!(s.ends_with("\r\n\r\n"));
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut headers);
        assert!(res.parse(&out).unwrap().is_complete());
    }
}

#[test]
fn write_reject_format() {
    let mut out = Vec::new();
    write_reject(&mut out, 400, &[]);
    assert_eq!(
        text(&out),
        "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    for (status, line) in [
        (414, "HTTP/1.1 414 URI Too Long\r\n"),
        (431, "HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        (403, "HTTP/1.1 403 Forbidden\r\n"),
        (599, "HTTP/1.1 599 Unknown\r\n"),
        (0, "HTTP/1.1 500 Internal Server Error\r\n"),
        (u16::MAX, "HTTP/1.1 500 Internal Server Error\r\n"),
    ] {
        let mut out = Vec::new();
        write_reject(&mut out, status, &[("Retry-After".into(), "5".into())]);
        let s = text(&out);
        assert!(s.starts_with(line), "{s}");
        assert!(
            s.ends_with("Content-Length: 0\r\nRetry-After: 5\r\n\r\n"),
            "{s}"
        );
        assert!(!s.contains("Allow:"));
    }
}

#[test]
fn encode_key_is_a_valid_key() {
    for seed in 0..=255u8 {
        let key = encode_key([seed; 16]);
        assert!(is_valid_key(&key));
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    // Deterministic xorshift; mixes random bytes with fragments of a valid head.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let pieces: [&[u8]; 8] = [
        b"GET ",
        b"\r\n",
        b": ",
        b"Sec-WebSocket-Key",
        b"Upgrade: websocket",
        b",",
        b"HTTP/1.1",
        b"\xff\x00",
    ];
    let key = encode_key([0u8; 16]);
    for _ in 0..3000 {
        let mut buf = Vec::new();
        let n = next() % 40;
        for _ in 0..n {
            let r = next();
            let [a, b, ..] = r.to_le_bytes();
            if a % 3 == 0 {
                buf.push(b);
            } else {
                buf.extend_from_slice(pieces[usize::from(b) % pieces.len()]);
            }
        }
        let from = usize::from(next().to_le_bytes()[0] % 64);
        let _ = find_head_end(&buf, from);
        let _ = check_incomplete(&buf, &LIMITS);
        let tiny = HeadLimits {
            max_head_bytes: 0,
            max_request_line: 0,
        };
        let _ = check_incomplete(&buf, &tiny);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        if let Ok(req) = parse_request(&buf, &mut headers, peer()) {
            let _ = (req.path(), req.query(), req.origin(), req.host());
            let _ = req.protocols().count() + req.extensions().count();
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let _ = parse_response(&buf, &mut headers, &key);
    }
    // Every prefix of a valid head.
    for len in 0..=VALID.len() {
        let head = &VALID.as_bytes()[..len];
        let expect = if len == VALID.len() { 101 } else { 400 };
        assert_eq!(status_of(head), expect, "prefix {len}");
    }
}
