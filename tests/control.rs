//! Control frames (RFC 6455 §5.5): BAD_INPUTS lines 32–35.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use myriad::{Message, SendError, Ws};

// ---- BAD_INPUTS 32 ----------------------------------------------------------------------------

#[test]
fn bad_inputs_32_control_payload_over_125_fails_1002() {
    let (srv, ev) = start_recorder(config());
    for op in [PING, PONG, CLOSE] {
        let mut payload = vec![b'x'; 126];
        if op == CLOSE {
            payload[..2].copy_from_slice(&1000u16.to_be_bytes());
        }
        fails_with(&srv, &ev, &frame(true, 0, op, &payload), 1002);
        // Decided from the length byte, before the extended length or the payload.
        fails_with(&srv, &ev, &[0x80 | op, 0x80 | 126], 1002);
        fails_with(&srv, &ev, &[0x80 | op, 0x80 | 127], 1002);
    }
}

#[test]
fn bad_inputs_32_fragmented_control_fails_1002() {
    let (srv, ev) = start_recorder(config());
    for op in [PING, PONG, CLOSE] {
        fails_with(&srv, &ev, &frame(false, 0, op, b""), 1002);
        // From the first byte alone.
        fails_with(&srv, &ev, &[op], 1002);
    }
}

// ---- BAD_INPUTS 33 ----------------------------------------------------------------------------

#[test]
fn bad_inputs_33_ping_gets_identical_pong_promptly() {
    let (srv, ev) = start_recorder(config());
    let mut r = Raw::open(srv.addr);
    ev.opened();
    let max: Vec<u8> = (0..125u8).collect();
    for payload in [&b""[..], b"abc", b"\x00\xff binary \xfe", &max] {
        let t = Instant::now();
        r.send(true, PING, payload);
        let f = r.frame();
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "pong took {:?}",
            t.elapsed()
        );
        assert_eq!(
            (f.opcode, f.fin, f.payload.as_slice()),
            (PONG, true, payload)
        );
        assert_eq!(ev.next(), Ev::Ping(payload.to_vec()));
    }
}

#[test]
fn bad_inputs_33_unsolicited_pong_is_ignored() {
    let (srv, ev) = start_recorder(config());
    let mut r = Raw::open(srv.addr);
    ev.opened();
    r.send(true, PONG, b"unsolicited");
    assert!(
        !r.readable_within(Duration::from_millis(200)),
        "nothing is sent back for a pong: {:?}",
        r.buf
    );
    assert_eq!(ev.next(), Ev::Pong(b"unsolicited".to_vec()));
    assert_echo(&mut r, "still open");
}

// ---- BAD_INPUTS 34 ----------------------------------------------------------------------------

/// A peer floods pings and does not read: while our output is blocked only the latest pong is
/// kept, so far fewer pongs come back than pings went out, the last one answers the last ping,
/// and memory does not follow the flood.
#[test]
fn bad_inputs_34_ping_flood_from_non_reader_coalesces_pongs() {
    const PINGS: u64 = 200_000;
    let srv = TestServer::start(config(), myriad::Echo);
    // A small receive buffer, so the server's output blocks early.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&srv.addr.into()).unwrap();
    let stream: TcpStream = sock.into();
    let mut r = Raw::from_stream(stream);
    r.write(&request(&[]));
    assert_101(&r.read_head());

    let before = rss_bytes();
    let t0 = Instant::now();
    let payload = |i: u64| {
        let mut p = vec![0u8; 125];
        p[..8].copy_from_slice(&i.to_be_bytes());
        p
    };
    let mut chunk = Vec::with_capacity(1000 * 131);
    for i in 0..PINGS {
        chunk.extend_from_slice(&frame(true, 0, PING, &payload(i)));
        if chunk.len() >= 1000 * 131 {
            r.stream
                .write_all(&chunk)
                .expect("the server keeps reading");
            chunk.clear();
        }
    }
    r.stream.write_all(&chunk).unwrap();
    let grown = rss_bytes().saturating_sub(before);
    // Uncoalesced, the pongs would queue ~25 MB.
    assert!(
        grown < 8 << 20,
        "RSS grew by {grown} bytes during the flood"
    );

    // Now read: pongs in order, far fewer than pings, the last for the last ping.
    let mut pongs = 0u64;
    let mut last = None;
    while last != Some(PINGS - 1) {
        let f = r.frame();
        assert_eq!(f.opcode, PONG);
        assert_eq!(f.payload.len(), 125);
        let seq = u64::from_be_bytes(f.payload[..8].try_into().unwrap());
        assert!(
            last.is_none_or(|l| seq > l),
            "pongs out of order: {seq} after {last:?}"
        );
        last = Some(seq);
        pongs += 1;
    }
    assert!(
        pongs < PINGS / 2,
        "{pongs} pongs for {PINGS} pings: not coalesced"
    );
    assert!(
        !r.readable_within(Duration::from_millis(100)),
        "nothing after the last pong"
    );
    assert_echo(&mut r, "alive");
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
}

// ---- BAD_INPUTS 35 ----------------------------------------------------------------------------

fn api_script(ws: &mut Ws<'_, ()>, msg: &Message<'_>, notes: &mut Vec<String>) {
    if *msg != Message::Text("api") {
        let _ = ws.send(*msg);
        return;
    }
    notes.push(format!("{:?}", ws.ping(&[0; 126])));
    notes.push(format!("{:?}", ws.close(1000, &"x".repeat(124))));
    for code in [1005u16, 1006, 1015, 999, 1004, 2000, 5000] {
        notes.push(format!("{:?}", ws.close(code, "")));
    }
    notes.push(format!("{}", ws.is_open()));
    notes.push(format!("{:?}", ws.ping(&[1; 125])));
    notes.push(format!("{:?}", ws.send_text("done")));
}

/// Oversized ping payloads and close reasons, and codes that may not be sent, are API errors:
/// nothing goes on the wire and the connection stays open.
#[test]
fn bad_inputs_35_send_side_limits_are_api_errors() {
    let (mut rec, ev) = Recorder::new();
    rec.script = Some(api_script);
    let srv = TestServer::start(config(), rec);
    let mut r = Raw::open(srv.addr);
    let id = ev.opened();
    r.text("api");
    assert_eq!(ev.next(), Ev::Text("api".into()));
    let mut notes = Vec::new();
    for _ in 0..12 {
        match ev.next() {
            Ev::Note(n) => notes.push(n),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        notes,
        vec![
            "Err(ControlTooLong)",
            "Err(ReasonTooLong)",
            "Err(InvalidCloseCode(1005))",
            "Err(InvalidCloseCode(1006))",
            "Err(InvalidCloseCode(1015))",
            "Err(InvalidCloseCode(999))",
            "Err(InvalidCloseCode(1004))",
            "Err(InvalidCloseCode(2000))",
            "Err(InvalidCloseCode(5000))",
            "true",
            "Ok(())",
            "Ok(Sent)",
        ]
    );
    // Only the valid ping and the text went out.
    let ping = r.frame();
    assert_eq!(
        (ping.opcode, ping.payload.as_slice()),
        (PING, &[1u8; 125][..])
    );
    assert_eq!(r.frame().text(), "done");
    // The same limits through the thread-safe handle.
    let h = srv.handle();
    assert_eq!(
        h.close(id, 1000, &"y".repeat(124)),
        Err(SendError::ReasonTooLong)
    );
    assert_eq!(
        h.close(id, 1006, ""),
        Err(SendError::InvalidCloseCode(1006))
    );
    assert!(
        !r.readable_within(Duration::from_millis(100)),
        "nothing sent: {:?}",
        r.buf
    );
    assert_echo(&mut r, "open");
}
