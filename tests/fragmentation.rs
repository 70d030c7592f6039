//! Fragmented messages (RFC 6455 §5.4): BAD_INPUTS lines 22–27.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn cat(frames: &[Vec<u8>]) -> Vec<u8> {
    frames.concat()
}

// ---- BAD_INPUTS 22 ----------------------------------------------------------------------------

#[test]
fn bad_inputs_22_continuation_without_message_fails_1002() {
    let (srv, ev) = start_recorder(config());
    fails_with(&srv, &ev, &frame(true, 0, CONT, b"orphan"), 1002);
    fails_with(&srv, &ev, &frame(false, 0, CONT, b"orphan"), 1002);
    // After a complete message, too.
    let bytes = cat(&[frame(true, 0, TEXT, b"done"), frame(true, 0, CONT, b"x")]);
    let mut r = Raw::open(srv.addr);
    ev.opened();
    r.write(&bytes);
    assert_eq!(r.frame().text(), "done");
    r.expect_close(1002);
    let (before, code, _) = ev.closed();
    assert_eq!(before, vec![Ev::Text("done".into())]);
    assert_eq!(code, 1002);
}

// ---- BAD_INPUTS 23 ----------------------------------------------------------------------------

#[test]
fn bad_inputs_23_new_message_inside_fragmented_one_fails_1002() {
    let (srv, ev) = start_recorder(config());
    for (first, second) in [
        (TEXT, TEXT),
        (TEXT, BINARY),
        (BINARY, TEXT),
        (BINARY, BINARY),
    ] {
        let bytes = cat(&[
            frame(false, 0, first, b"part"),
            frame(true, 0, second, b"new"),
        ]);
        fails_with(&srv, &ev, &bytes, 1002);
    }
}

// ---- BAD_INPUTS 24 ----------------------------------------------------------------------------

/// Ping and Pong between fragments are handled at once (the pong comes before the message is
/// complete), and reassembly goes on.
#[test]
fn bad_inputs_24_control_frames_between_fragments() {
    let (srv, ev) = start_recorder(config());
    let mut r = Raw::open(srv.addr);
    ev.opened();
    r.write(&cat(&[
        frame(false, 0, TEXT, b"Hel"),
        frame(true, 0, PING, b"p1"),
        frame(true, 0, PONG, b"unsolicited"),
    ]));
    // Answered before the message is complete.
    let f = r.frame();
    assert_eq!((f.opcode, f.payload.as_slice()), (PONG, &b"p1"[..]));
    assert_eq!(ev.next(), Ev::Ping(b"p1".to_vec()));
    assert_eq!(ev.next(), Ev::Pong(b"unsolicited".to_vec()));
    r.write(&cat(&[
        frame(false, 0, CONT, b"lo, "),
        frame(true, 0, PING, b"p2"),
        frame(true, 0, CONT, b"World"),
    ]));
    let f = r.frame();
    assert_eq!((f.opcode, f.payload.as_slice()), (PONG, &b"p2"[..]));
    assert_eq!(r.frame().text(), "Hello, World");
    assert_eq!(ev.next(), Ev::Ping(b"p2".to_vec()));
    assert_eq!(ev.next(), Ev::Text("Hello, World".into()));
}

/// A Close between fragments ends the connection at once; the unfinished message is never
/// delivered.
#[test]
fn bad_inputs_24_close_between_fragments() {
    let (srv, ev) = start_recorder(config());
    let mut r = Raw::open(srv.addr);
    ev.opened();
    r.write(&cat(&[
        frame(false, 0, BINARY, b"abc"),
        frame(true, 0, CLOSE, &close_payload(1000, b"bye")),
    ]));
    r.expect_close(1000);
    let (before, code, reason) = ev.closed();
    assert!(before.is_empty(), "{before:?}");
    assert_eq!((code, reason.as_slice()), (1000, &b"bye"[..]));
}

// ---- BAD_INPUTS 25 ----------------------------------------------------------------------------

/// The reassembled size crossing the message limit fails with 1009 when the header of the
/// fragment that crosses it arrives (its payload is never sent).
#[test]
fn bad_inputs_25_reassembled_size_over_limit_fails_1009() {
    let (srv, ev) = start_recorder(config().max_frame(1000).max_message(1000));
    let mut r = Raw::open(srv.addr);
    ev.opened();
    // Each fragment is charged its length plus a 16-byte overhead: 3 × 316 = 948.
    r.write(&cat(&[
        frame(false, 0, BINARY, &[1; 300]),
        frame(false, 0, CONT, &[2; 300]),
        frame(false, 0, CONT, &[3; 300]),
    ]));
    assert!(
        !r.readable_within(Duration::from_millis(100)),
        "no answer yet"
    );
    let mut h = header(true, 0, CONT, true, 300);
    h.extend_from_slice(&next_mask());
    r.write(&h);
    r.expect_close(1009);
    let (code, _) = ev.closed_without_messages();
    assert_eq!(code, 1009);

    // Just under the limit passes.
    let mut r = Raw::open(srv.addr);
    r.write(&cat(&[
        frame(false, 0, BINARY, &[1; 300]),
        frame(false, 0, CONT, &[2; 300]),
        frame(true, 0, CONT, &[3; 300]),
    ]));
    assert_eq!(r.frame().payload.len(), 900);
}

// ---- BAD_INPUTS 26 ----------------------------------------------------------------------------

/// Tens of thousands of empty fragments: the fragment-count limit ends it with 1009.
#[test]
fn bad_inputs_26_empty_fragment_flood_hits_fragment_limit() {
    let (srv, ev) = start_recorder(config().max_fragments(10_000));
    let mut bytes = frame(false, 0, TEXT, b"");
    for _ in 0..30_000 {
        bytes.extend_from_slice(&frame(false, 0, CONT, b""));
    }
    fails_with(&srv, &ev, &bytes, 1009);
}

/// The same flood against the byte budget: each fragment is charged a per-part overhead, so
/// empty and 1-byte fragments run into the message limit too.
#[test]
fn bad_inputs_26_tiny_fragment_flood_hits_byte_budget() {
    let (srv, ev) = start_recorder(config().max_frame(64 << 10).max_message(64 << 10));
    for len in [0usize, 1] {
        let mut bytes = frame(false, 0, BINARY, &vec![0; len]);
        for _ in 0..30_000 {
            bytes.extend_from_slice(&frame(false, 0, CONT, &vec![0; len]));
        }
        fails_with(&srv, &ev, &bytes, 1009);
    }
    // A reasonable fragmented message still passes.
    let mut r = Raw::open(srv.addr);
    let mut bytes = frame(false, 0, BINARY, b"a");
    for _ in 0..1000 {
        bytes.extend_from_slice(&frame(false, 0, CONT, b"b"));
    }
    bytes.extend_from_slice(&frame(true, 0, CONT, b"c"));
    r.write(&bytes);
    assert_eq!(r.frame().payload.len(), 1002);
}

// ---- BAD_INPUTS 27 ----------------------------------------------------------------------------

/// A message whose FIN never comes: the idle timeout closes the connection (ping at half,
/// Close 1011, TCP closed, on_close 1006), and nothing is delivered.
///
/// Documented limit: there is no separate message-progress timeout. A peer that keeps answering
/// pings can hold one unfinished message open, bounded by `max_message` and `max_fragments`.
#[test]
fn bad_inputs_27_fin_never_arrives_idle_timeout_closes() {
    let idle = Duration::from_millis(600);
    let (srv, ev) = start_recorder(config().idle_timeout(idle));
    let mut r = Raw::open(srv.addr);
    ev.opened();
    let t0 = Instant::now();
    r.write(&frame(false, 0, TEXT, b"never finished"));
    assert_eq!(r.frame().opcode, PING);
    let reason = r.expect_close(1011);
    assert_eq!(reason, b"idle timeout");
    let took = t0.elapsed();
    assert!(
        took >= idle - Duration::from_millis(100) && took < idle + Duration::from_secs(1),
        "{took:?}"
    );
    let (code, _) = ev.closed_without_messages();
    assert_eq!(code, 1006);
}

/// BAD_INPUTS 27 (and 19): a peer that keeps the connection alive (it pings, so the idle timeout
/// never fires) but never finishes its message is closed with 1008 at the message timeout.
#[test]
fn bad_inputs_27_message_timeout_with_a_lively_peer() {
    let limit = Duration::from_millis(700);
    let (srv, ev) = start_recorder(
        config()
            .idle_timeout(Duration::from_secs(30))
            .message_timeout(limit),
    );
    let mut r = Raw::open(srv.addr);
    ev.opened();
    let t0 = Instant::now();
    r.write(&frame(false, 0, TEXT, b"first fragment, and nothing after"));
    // Stay lively: a ping every 100 ms, each answered.
    let code = loop {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "no close after {:?}",
            t0.elapsed()
        );
        r.send(true, PING, b"alive");
        let f = r.frame();
        if f.opcode == PONG {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        break f.close_code();
    };
    assert_eq!(code, 1008);
    let took = t0.elapsed();
    assert!(took >= limit - Duration::from_millis(100), "{took:?}");
    let (code, reason) = ev.closed_without_messages();
    assert_eq!(code, 1008);
    assert_eq!(reason, b"message timeout");
}
