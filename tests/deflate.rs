//! permessage-deflate end to end (RFC 7692; BAD_INPUTS 44-51): negotiation answers, compressed
//! messages in and out in every context mode, and what bad compressed input gets.

mod common;

use std::time::Duration;

use common::*;
use myriad::proto::deflate::{Deflater, Inflater, Window};
use myriad::{ContextMode, DeflateConfig};

/// Opens a connection offering `offer`; returns it and the response head.
fn open_with(addr: std::net::SocketAddr, offer: &str) -> (Raw, String) {
    let mut r = Raw::connect(addr);
    let line = format!("Sec-WebSocket-Extensions: {offer}");
    r.write(&request(&[&line]));
    let head = r.read_head();
    assert_101(&head);
    (r, head)
}

fn extension_line(head: &str) -> Option<String> {
    head.lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("sec-websocket-extensions:")
        })
        .map(|l| {
            l.split_once(':')
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default()
        })
}

fn mode(m: ContextMode) -> myriad::Config {
    config().deflate(DeflateConfig {
        mode: m,
        ..DeflateConfig::default()
    })
}

/// Compressed frame bytes for `msg` from `d` (RSV1 set, RFC 7692 §6).
fn compressed_frame(d: &mut Deflater, opcode: u8, msg: &[u8], reset: bool) -> Vec<u8> {
    let mut z = Vec::new();
    d.compress(msg, reset, &mut z);
    frame(true, 0b100, opcode, &z)
}

#[test]
fn chrome_offer_gets_the_shared_answer() {
    let (srv, ev) = start_recorder(config());
    let (_r, head) = open_with(srv.addr, "permessage-deflate; client_max_window_bits");
    ev.opened();
    assert_eq!(
        extension_line(&head).as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
}

// BAD_INPUTS 44: malformed offers are declined (no extension header), the connection still opens.
#[test]
fn bad_inputs_44_bad_offers_declined() {
    let (srv, ev) = start_recorder(config());
    let mut held = Vec::new();
    for offer in [
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=abc",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; foo",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; x=\"unclosed",
    ] {
        let (r, head) = open_with(srv.addr, offer);
        ev.opened();
        assert_eq!(extension_line(&head), None, "{offer}");
        held.push(r);
    }
    // The first acceptable of several offers wins.
    let (_r, head) = open_with(
        srv.addr,
        "permessage-deflate; bogus, permessage-deflate; client_max_window_bits=10",
    );
    ev.opened();
    assert_eq!(
        extension_line(&head).as_deref(),
        Some(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=10"
        )
    );
}

#[test]
fn disabled_deflate_answers_no_extension() {
    let (srv, ev) = start_recorder(config().deflate(DeflateConfig {
        enabled: false,
        ..DeflateConfig::default()
    }));
    let (mut r, head) = open_with(srv.addr, "permessage-deflate");
    ev.opened();
    assert_eq!(extension_line(&head), None);
    // RSV1 is then a protocol error (BAD_INPUTS 46).
    let mut d = Deflater::new(15, 6);
    r.write(&compressed_frame(&mut d, TEXT, b"hello", true));
    r.expect_close(1002);
}

/// Echo through the server in `m`: compressed messages in (with or without client context),
/// compressed replies out (big ones), plain replies (small ones), and uncompressed messages in
/// between (BAD_INPUTS 50).
fn round_trip(m: ContextMode, offer: &str, client_keeps_context: bool) {
    let (srv, ev) = start_recorder(mode(m));
    let (mut r, head) = open_with(srv.addr, offer);
    ev.opened();
    let ext = extension_line(&head).expect("deflate negotiated");
    let server_keeps_context = !ext.contains("server_no_context_takeover");
    let mut d = Deflater::new(15, 6);
    let mut inflater = Inflater::new();
    let mut window = Window::new(15);
    for i in 0..12 {
        let msg = format!(
            "{{\"seq\":{i},\"payload\":\"{}\"}}",
            "abcdefgh".repeat(20 + i)
        );
        if i % 4 == 3 {
            // Uncompressed between compressed ones.
            r.text(&msg);
        } else {
            r.write(&compressed_frame(
                &mut d,
                TEXT,
                msg.as_bytes(),
                !client_keeps_context,
            ));
        }
        let f = r.frame();
        assert_eq!(f.opcode, TEXT);
        assert_eq!(f.rsv, 0b100, "a {}-byte reply is compressed", msg.len());
        let mut out = Vec::new();
        let primed = (server_keeps_context && !window.bytes().is_empty()).then(|| window.bytes());
        inflater
            .inflate(&[&f.payload], primed, 1 << 20, &mut out)
            .expect("the server's deflate data inflates");
        if server_keeps_context {
            window.push(&out);
        }
        assert_eq!(out, msg.as_bytes(), "message {i}");
        assert_eq!(ev.next(), Ev::Text(msg));
    }
    // Short messages go back uncompressed.
    r.write(&compressed_frame(
        &mut d,
        TEXT,
        b"hi",
        !client_keeps_context,
    ));
    let f = r.frame();
    assert_eq!((f.rsv, f.payload.as_slice()), (0, &b"hi"[..]));
    r.close(1000, b"");
    assert_eq!(r.frame().close_code(), 1000);
}

// BAD_INPUTS 50, in each mode.
#[test]
fn bad_inputs_50_shared_mode_round_trip() {
    round_trip(ContextMode::Shared, "permessage-deflate", false);
}

#[test]
fn bad_inputs_50_inflate_window_mode_round_trip() {
    // The client keeps its context: the server primes the window it keeps for it.
    round_trip(ContextMode::InflateWindow, "permessage-deflate", true);
}

#[test]
fn bad_inputs_50_dedicated_mode_round_trip() {
    // Both sides keep context.
    round_trip(ContextMode::Dedicated, "permessage-deflate", true);
}

// BAD_INPUTS 46
#[test]
fn bad_inputs_46_rsv1_on_continuation_or_control_fails_1002() {
    let (srv, ev) = start_recorder(config());
    let (mut r, _) = open_with(srv.addr, "permessage-deflate");
    ev.opened();
    r.write(&frame(false, 0b100, TEXT, b"\xf2\x48"));
    r.write(&frame(true, 0b100, CONT, b"\xcd\xc9\xc9\x07\x00"));
    r.expect_close(1002);
    assert_eq!(ev.closed_without_messages().0, 1002);
    let (mut r, _) = open_with(srv.addr, "permessage-deflate");
    ev.opened();
    r.write(&frame(true, 0b100, PING, b""));
    r.expect_close(1002);
}

// RFC 7692 §7.2.3.1 vector, fragmented with RSV1 on the first frame only.
#[test]
fn rfc7692_hello_fragmented() {
    let (srv, ev) = start_recorder(config());
    let (mut r, _) = open_with(srv.addr, "permessage-deflate");
    ev.opened();
    r.write(&frame(false, 0b100, TEXT, b"\xf2\x48\xcd"));
    r.write(&frame(true, 0, CONT, b"\xc9\xc9\x07\x00"));
    let f = r.frame();
    assert_eq!((f.rsv, f.payload.as_slice()), (0, &b"Hello"[..]));
    assert_eq!(ev.next(), Ev::Text("Hello".into()));
}

// BAD_INPUTS 47: corrupt deflate data gets 1007.
#[test]
fn bad_inputs_47_corrupt_stream_fails_1007() {
    let (srv, ev) = start_recorder(config());
    let (mut r, _) = open_with(srv.addr, "permessage-deflate");
    ev.opened();
    r.write(&frame(true, 0b100, BINARY, b"\xff\xff\xff\xff\xff\xff"));
    r.expect_close(1007);
    let (code, _) = ev.closed_without_messages();
    assert_eq!(code, 1007);
}

// Compressed text that inflates to invalid UTF-8: 1007 (RFC 6455 §8.1).
#[test]
fn compressed_invalid_utf8_fails_1007() {
    let (srv, ev) = start_recorder(config());
    let (mut r, _) = open_with(srv.addr, "permessage-deflate");
    ev.opened();
    let mut d = Deflater::new(15, 6);
    r.write(&compressed_frame(
        &mut d,
        TEXT,
        b"ok \xed\xa0\x80 not ok",
        true,
    ));
    r.expect_close(1007);
}

// BAD_INPUTS 48: a bomb (a small compressed frame that inflates far past the limit) gets 1009,
// in one frame and spread over fragments, and the server's memory stays bounded.
#[test]
fn bad_inputs_48_bomb_fails_1009_with_bounded_memory() {
    let limit = 1u64 << 20;
    let (srv, ev) = start_recorder(config().max_message(limit).max_frame(limit));
    let zeros = vec![0u8; 64 << 20];
    let mut z = Vec::new();
    Deflater::new(15, 9).compress(&zeros, true, &mut z);
    drop(zeros);
    assert!(z.len() < 100 << 10, "bomb is {} bytes", z.len());
    let before = rss_bytes() / 1024;
    // One frame.
    let (mut r, _) = open_with(srv.addr, "permessage-deflate");
    ev.opened();
    r.write(&frame(true, 0b100, BINARY, &z));
    r.expect_close(1009);
    let (code, _) = ev.closed_without_messages();
    assert_eq!(code, 1009);
    // Many fragments.
    let (mut r, _) = open_with(srv.addr, "permessage-deflate");
    ev.opened();
    let parts: Vec<&[u8]> = z.chunks(1000).collect();
    for (i, p) in parts.iter().enumerate() {
        let rsv = if i == 0 { 0b100 } else { 0 };
        let op = if i == 0 { BINARY } else { CONT };
        r.write(&frame(i + 1 == parts.len(), rsv, op, p));
    }
    r.expect_close(1009);
    let grown = (rss_bytes() / 1024).saturating_sub(before);
    // Inflating 64 MiB would show; the limit plus scratch must not be exceeded by much.
    assert!(grown < 8 << 10, "RSS grew by {grown} kB");
    std::thread::sleep(Duration::from_millis(10));
}

/// Per-call choice: `send_with(msg, Compress::Always | Never | Auto)`.
#[derive(Clone)]
struct Chooser;

impl myriad::Handler for Chooser {
    type Data = ();
    fn on_upgrade(&mut self, _req: &myriad::Request<'_>) -> myriad::Upgrade<()> {
        myriad::Upgrade::accept(())
    }
    fn on_message(&mut self, ws: &mut myriad::Ws<'_, ()>, msg: myriad::Message<'_>) {
        let how = match msg.as_bytes().first() {
            Some(b'a') => myriad::Compress::Always,
            Some(b'n') => myriad::Compress::Never,
            _ => myriad::Compress::Auto,
        };
        ws.send_with(msg, how).expect("send");
    }
}

#[test]
fn compression_chosen_per_send() {
    let srv = TestServer::start(config(), Chooser);
    let (mut r, _) = open_with(srv.addr, "permessage-deflate");
    let long = format!("n{}", "x".repeat(500));
    for (msg, compressed) in [
        ("a", true),
        ("short one", false),
        (long.as_str(), false),
        (&long[1..], true),
    ] {
        r.text(msg);
        let f = r.frame();
        assert_eq!(f.rsv == 0b100, compressed, "{msg:.10}");
        let text = if compressed {
            let mut out = Vec::new();
            Inflater::new()
                .inflate(&[&f.payload], None, 1 << 20, &mut out)
                .expect("inflate");
            out
        } else {
            f.payload.clone()
        };
        assert_eq!(text, msg.as_bytes());
    }
}
