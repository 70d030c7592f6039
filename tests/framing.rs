//! Frame headers and lengths (RFC 6455 §5.2, §5.3): BAD_INPUTS lines 14–21.
//!
//! Failures are checked end to end: the server's Close carries the exact code, TCP is closed
//! after it, and the application sees `on_close` with that code and no message.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;

// ---- BAD_INPUTS 14 ----------------------------------------------------------------------------

#[test]
fn bad_inputs_14_rsv_bits_without_extension_fail_1002() {
    let (srv, ev) = start_recorder(config());
    for rsv in [0b100, 0b010, 0b001, 0b111] {
        fails_with(&srv, &ev, &frame(true, rsv, TEXT, b"hello"), 1002);
        // On a control frame too.
        fails_with(&srv, &ev, &frame(true, rsv, PING, b""), 1002);
    }
}

// ---- BAD_INPUTS 15 ----------------------------------------------------------------------------

/// Reserved opcodes fail from the first byte alone: no length, mask or payload is waited for.
#[test]
fn bad_inputs_15_reserved_opcodes_fail_1002_from_the_header() {
    let (srv, ev) = start_recorder(config());
    for op in (3..=7).chain(11..=15) {
        fails_with(&srv, &ev, &[0x80 | op], 1002);
        // A declared payload that never comes changes nothing.
        fails_with(&srv, &ev, &header(true, 0, op, true, 1 << 20), 1002);
    }
}

// ---- BAD_INPUTS 16 ----------------------------------------------------------------------------

#[test]
fn bad_inputs_16_unmasked_client_frame_fails_1002() {
    let (srv, ev) = start_recorder(config());
    fails_with(&srv, &ev, &unmasked_frame(true, TEXT, b"hello"), 1002);
    fails_with(&srv, &ev, &unmasked_frame(true, PING, b""), 1002);
}

/// The opt-in override accepts unmasked frames.
#[test]
fn bad_inputs_16_unmasked_accepted_when_opted_in() {
    let (srv, ev) = start_recorder(config().accept_unmasked(true));
    let mut r = Raw::open(srv.addr);
    r.write(&unmasked_frame(true, TEXT, b"plain"));
    assert_eq!(r.frame().text(), "plain");
    // Masked frames still work.
    assert_echo(&mut r, "masked");
    ev.opened();
    assert_eq!(ev.next(), Ev::Text("plain".into()));
}

/// Our client fails a server that masks its frames: it sends Close 1002 and closes TCP, and
/// reports the protocol error, whether the masked frame comes after the 101 (from `recv`) or in
/// the same packet as the 101 (from `connect`).
#[test]
fn bad_inputs_16_masked_server_frame_fails_our_client() {
    for same_packet in [false, true] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = Raw::from_stream(s);
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut b = [0u8; 1];
                r.stream.read_exact(&mut b).unwrap();
                head.push(b[0]);
            }
            let head = String::from_utf8(head).unwrap();
            let key = header_value(&head, "Sec-WebSocket-Key").unwrap().to_owned();
            let accept = myriad::proto::handshake::accept_key(key.as_bytes());
            let mut answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                std::str::from_utf8(&accept).unwrap()
            )
            .into_bytes();
            // A masked frame: forbidden from a server.
            let masked = frame(true, 0, TEXT, b"masked");
            if same_packet {
                answer.extend_from_slice(&masked);
                r.write(&answer);
            } else {
                r.write(&answer);
                std::thread::sleep(Duration::from_millis(100));
                r.write(&masked);
            }
            // The client must answer with a (masked) Close 1002, then close.
            let mut got = Vec::new();
            let _ = r.stream.read_to_end(&mut got);
            got
        });
        let err = match myriad::client::Client::connect(addr, "/") {
            Err(e) => e,
            Ok(mut c) => {
                c.stream().set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                c.recv().unwrap_err()
            }
        };
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
        let got = server.join().unwrap();
        assert!(got.len() >= 8, "client sent no Close: {got:?}");
        assert_eq!(got[0], 0x88, "FIN + Close");
        assert_eq!(got[1] & 0x80, 0x80, "client frames are masked");
        let n = usize::from(got[1] & 0x7f);
        let key = [got[2], got[3], got[4], got[5]];
        let mut payload = got[6..6 + n].to_vec();
        myriad::proto::mask::apply_mask(&mut payload, key, 0);
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1002);
        assert_eq!(got.len(), 6 + n, "nothing after the Close");
    }
}

// ---- BAD_INPUTS 17 ----------------------------------------------------------------------------

#[test]
fn bad_inputs_17_length_msb_fails_1002() {
    let (srv, ev) = start_recorder(config());
    // Refused as soon as the first length byte shows the MSB.
    fails_with(&srv, &ev, &[0x82, 0xff, 0x80], 1002);
    let mut h = vec![0x82, 0xff];
    h.extend_from_slice(&(1u64 << 63 | 5).to_be_bytes());
    h.extend_from_slice(&next_mask());
    fails_with(&srv, &ev, &h, 1002);
}

/// Documented choice: RFC 6455 §5.2 says the minimal number of bytes MUST be used for the
/// length; a longer form is refused with 1002.
#[test]
fn bad_inputs_17_non_minimal_length_1002() {
    let (srv, ev) = start_recorder(config());
    // 16-bit form for 5 bytes.
    fails_with(&srv, &ev, &[0x82, 0xfe, 0x00, 0x05], 1002);
    // 16-bit form for 125 bytes.
    fails_with(&srv, &ev, &[0x82, 0xfe, 0x00, 0x7d], 1002);
    // 64-bit form for 200 bytes, and for 65535.
    fails_with(&srv, &ev, &[0x82, 0xff, 0, 0, 0, 0, 0, 0, 0, 200], 1002);
    fails_with(&srv, &ev, &[0x82, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff], 1002);
}

/// The boundaries of each length form are accepted.
#[test]
fn bad_inputs_17_minimal_lengths_at_the_boundaries_pass() {
    let (srv, _ev) = start_recorder(config());
    let mut r = Raw::open(srv.addr);
    for len in [0usize, 125, 126, 0xffff, 0x10000] {
        let payload = vec![b'x'; len];
        r.send(true, BINARY, &payload);
        let f = r.frame();
        assert_eq!((f.opcode, f.payload.len()), (BINARY, len));
    }
}

// ---- BAD_INPUTS 18 ----------------------------------------------------------------------------

/// Over the frame limit: 1009 from the header alone (no payload is sent at all).
#[test]
fn bad_inputs_18_declared_length_over_limit_fails_1009_before_payload() {
    let (srv, ev) = start_recorder(config().max_frame(1000));
    let mut h = header(true, 0, BINARY, true, 1001);
    h.extend_from_slice(&next_mask());
    fails_with(&srv, &ev, &h, 1009);
    let mut h = header(true, 0, TEXT, true, 10 << 20);
    h.extend_from_slice(&next_mask());
    fails_with(&srv, &ev, &h, 1009);
    // Not even the masking key is needed.
    fails_with(&srv, &ev, &header(true, 0, BINARY, true, 1 << 40), 1009);
    // At the limit: fine.
    let mut r = Raw::open(srv.addr);
    r.send(true, BINARY, &[7; 1000]);
    assert_eq!(r.frame().payload.len(), 1000);
}

// ---- BAD_INPUTS 19 ----------------------------------------------------------------------------

/// A huge declared length with only a few bytes sent: memory does not follow the declared size,
/// and the idle timeout (ping at half, then Close 1011) closes the connection.
#[test]
fn bad_inputs_19_huge_declared_length_no_allocation_and_timeout() {
    const CONNS: usize = 8;
    let idle = Duration::from_millis(600);
    let (srv, ev) = start_recorder(config().idle_timeout(idle));
    // Warm up: the reactor's buffers exist before the first measurement.
    let mut warm = Raw::open(srv.addr);
    assert_echo(&mut warm, "warm");
    drop(warm);
    let before = rss_bytes();
    let declared = (16u64 << 20) - 1;
    let mut conns: Vec<Raw> = (0..CONNS)
        .map(|_| {
            let mut r = Raw::open(srv.addr);
            let mut h = header(true, 0, BINARY, true, declared);
            h.extend_from_slice(&next_mask());
            h.extend_from_slice(&[0xab; 10]);
            r.write(&h);
            r
        })
        .collect();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(150));
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 4 << 20,
        "RSS grew by {grown} bytes for {CONNS} frames declaring {declared} bytes each"
    );
    for r in &mut conns {
        // The ping at half the idle timeout, unanswered; then Close 1011 and EOF.
        let ping = r.frame();
        assert_eq!(ping.opcode, PING, "{ping:?}");
        let reason = r.expect_close(1011);
        assert_eq!(reason, b"idle timeout");
    }
    let took = t0.elapsed();
    assert!(
        took >= idle - Duration::from_millis(200) && took < idle + Duration::from_secs(1),
        "closed after {took:?}"
    );
    let mut codes = Vec::new();
    while codes.len() < CONNS + 1 {
        if let Ev::Close(code, _) = ev.next() {
            codes.push(code);
        }
    }
    // The warm-up connection closed without a Close: 1006; the timed-out ones: 1006 locally.
    assert!(codes.iter().all(|&c| c == 1006), "{codes:?}");
}

// ---- BAD_INPUTS 20 ----------------------------------------------------------------------------

/// A frame written in two pieces, split at every offset (header and payload): the same echo
/// each time.
#[test]
fn bad_inputs_20_split_at_every_offset_across_reads() {
    let (srv, _ev) = start_recorder(config());
    let mut r = Raw::open(srv.addr);
    let text = "é".repeat(100); // 200 bytes: 16-bit length, multi-byte code points
    let f = frame(true, 0, TEXT, text.as_bytes());
    for k in 1..f.len() {
        r.write(&f[..k]);
        std::thread::sleep(Duration::from_millis(1));
        r.write(&f[k..]);
        let got = r.frame();
        assert_eq!(got.text(), text, "split at {k}");
    }
    // A 64-bit length header split at each of its 14 bytes.
    let payload: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
    let f = frame(true, 0, BINARY, &payload);
    for k in (1..15).chain([20, 4096, 65_536, f.len() - 1]) {
        r.write(&f[..k]);
        std::thread::sleep(Duration::from_millis(1));
        r.write(&f[k..]);
        assert!(r.frame().payload == payload, "split at {k}");
    }
}

/// Everything one byte per write: a fragmented text message with a ping in between.
#[test]
fn bad_inputs_20_one_byte_reads() {
    let (srv, ev) = start_recorder(config());
    let mut r = Raw::open(srv.addr);
    let mut bytes = frame(false, 0, TEXT, "κό".as_bytes());
    bytes.extend_from_slice(&frame(true, 0, PING, b"pp"));
    bytes.extend_from_slice(&frame(false, 0, CONT, "σ".as_bytes()[..1].as_ref()));
    bytes.extend_from_slice(&frame(true, 0, CONT, &"σμε".as_bytes()[1..]));
    for b in &bytes {
        r.write(&[*b]);
        std::thread::sleep(Duration::from_micros(500));
    }
    let pong = r.frame();
    assert_eq!((pong.opcode, pong.payload.as_slice()), (PONG, &b"pp"[..]));
    assert_eq!(r.frame().text(), "κόσμε");
    ev.opened();
    assert_eq!(ev.next(), Ev::Ping(b"pp".to_vec()));
    assert_eq!(ev.next(), Ev::Text("κόσμε".into()));
}

// ---- BAD_INPUTS 21 ----------------------------------------------------------------------------

fn len64(op: u8, len: u64, fin: bool) -> Vec<u8> {
    let mut h = vec![(u8::from(fin) << 7) | op, 0xff];
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&next_mask());
    h
}

/// Lengths near the top of u64/usize: no wrap; MSB set is 1002, the rest is over the limit, 1009.
#[test]
fn bad_inputs_21_length_arithmetic_at_the_extremes() {
    let (srv, ev) = start_recorder(config());
    fails_with(&srv, &ev, &len64(BINARY, u64::MAX, true), 1002);
    fails_with(
        &srv,
        &ev,
        &len64(BINARY, usize::MAX as u64 - 15, true),
        1002,
    );
    fails_with(&srv, &ev, &len64(BINARY, i64::MAX as u64, true), 1009);
    fails_with(&srv, &ev, &len64(BINARY, i64::MAX as u64 - 15, true), 1009);
    // In the middle of a fragmented message: the sum of lengths does not wrap either.
    let mut bytes = frame(false, 0, BINARY, &[1; 100]);
    bytes.extend_from_slice(&len64(CONT, i64::MAX as u64, true));
    fails_with(&srv, &ev, &bytes, 1009);
    let mut bytes = frame(false, 0, BINARY, &[1; 100]);
    bytes.extend_from_slice(&len64(CONT, u64::MAX - 50, false));
    fails_with(&srv, &ev, &bytes, 1002);
}

/// `Raw` writes must not hang forever if the server stops reading: sanity for the watchdog.
#[test]
fn raw_client_has_timeouts() {
    let (srv, _ev) = start_recorder(config());
    let r = Raw::open(srv.addr);
    assert_eq!(r.stream.read_timeout().unwrap(), Some(IO_TIMEOUT));
    assert_eq!(r.stream.write_timeout().unwrap(), Some(IO_TIMEOUT));
    let mut s = &r.stream;
    s.flush().unwrap();
}
