//! Timeouts: BAD_INPUTS lines 61 (handshake), 63 (idle, with automatic ping) and 64 (close
//! handshake).

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;

fn within(t: Duration, lo: Duration, hi: Duration, what: &str) {
    assert!(
        t >= lo && t <= hi,
        "{what} after {t:?}, expected {lo:?}..{hi:?}"
    );
}

// ---- BAD_INPUTS 61 ----------------------------------------------------------------------------

/// No request at all, or half of one: closed silently at the handshake timeout.
#[test]
fn bad_inputs_61_handshake_timeout_closes_silently() {
    let timeout = Duration::from_millis(400);
    let (srv, ev) = start_recorder(config().handshake_timeout(timeout));
    for sent in [&b""[..], &request(&[])[..30]] {
        let mut r = Raw::connect(srv.addr);
        let t0 = Instant::now();
        r.write(sent);
        r.expect_eof(); // no HTTP answer, just FIN
        within(
            t0.elapsed(),
            timeout - Duration::from_millis(60),
            timeout + Duration::from_millis(800),
            "handshake timeout",
        );
    }
    assert!(ev.drain().is_empty());
}

/// A request completed before the timeout is served, and the handshake timer does not close
/// the connection afterwards. (A dribbled head is bounded by the same absolute deadline, which
/// is the minimum-progress rule: see `handshake::bad_inputs_9_*`.)
#[test]
fn bad_inputs_61_handshake_in_time_is_not_closed_later() {
    let timeout = Duration::from_millis(400);
    let (srv, ev) = start_recorder(config().handshake_timeout(timeout));
    let mut r = Raw::connect(srv.addr);
    let req = request(&[]);
    r.write(&req[..20]);
    std::thread::sleep(Duration::from_millis(250));
    r.write(&req[20..]);
    assert_101(&r.read_head());
    ev.opened();
    assert!(
        !r.readable_within(timeout * 2),
        "closed or pinged after the handshake: {:?}",
        r.buf
    );
    assert_echo(&mut r, "alive");
}

// ---- BAD_INPUTS 63 ----------------------------------------------------------------------------

/// Silence: a ping after half the idle timeout, then (documented choice, as python-websockets)
/// Close 1011 "idle timeout" on the wire, on_close(1006) locally, TCP closed.
#[test]
fn bad_inputs_63_idle_timeout_pings_then_closes_1011() {
    let idle = Duration::from_millis(800);
    let (srv, ev) = start_recorder(config().idle_timeout(idle));
    let mut r = Raw::open(srv.addr);
    let t0 = Instant::now();
    ev.opened();
    let ping = r.frame();
    assert_eq!((ping.opcode, ping.payload.len()), (PING, 0));
    within(
        t0.elapsed(),
        idle / 2 - Duration::from_millis(60),
        idle / 2 + Duration::from_millis(400),
        "automatic ping",
    );
    assert_eq!(r.expect_close(1011), b"idle timeout");
    within(
        t0.elapsed(),
        idle - Duration::from_millis(60),
        idle + Duration::from_millis(600),
        "idle close",
    );
    let (before, code, reason) = ev.closed();
    assert!(before.is_empty());
    assert_eq!((code, reason.as_slice()), (1006, &b"idle timeout"[..]));
}

/// Answering the automatic pings keeps the connection open for several idle periods.
#[test]
fn bad_inputs_63_pong_resets_idle_timeout() {
    let idle = Duration::from_millis(400);
    let (srv, ev) = start_recorder(config().idle_timeout(idle));
    let mut r = Raw::open(srv.addr);
    ev.opened();
    let t0 = Instant::now();
    let mut pings = 0;
    while t0.elapsed() < idle * 4 {
        let f = r.frame();
        assert_eq!(f.opcode, PING, "only pings while idle: {f:?}");
        r.send(true, PONG, &f.payload);
        pings += 1;
    }
    assert!(pings >= 3, "{pings} pings");
    assert_echo(&mut r, "still open");
    let mut pongs = 0;
    for e in ev.drain() {
        match e {
            Ev::Pong(_) => pongs += 1,
            Ev::Text(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(pongs, pings);
}

/// Any received byte resets the timer: a chatty peer never even sees a ping.
#[test]
fn bad_inputs_63_traffic_resets_idle_timeout() {
    let idle = Duration::from_millis(400);
    let (srv, _ev) = start_recorder(config().idle_timeout(idle));
    let mut r = Raw::open(srv.addr);
    let t0 = Instant::now();
    while t0.elapsed() < idle * 3 {
        assert_echo(&mut r, "tick"); // fails if a ping or Close comes instead
        std::thread::sleep(idle / 4);
    }
}

/// `idle_timeout = 0` disables the idle timer (documented on `Config::idle_timeout`): no ping
/// and no close, even after the handshake timeout has passed.
#[test]
fn bad_inputs_63_zero_idle_timeout_disables_it() {
    let (srv, ev) = start_recorder(
        config()
            .idle_timeout(Duration::ZERO)
            .handshake_timeout(Duration::from_millis(200)),
    );
    let mut r = Raw::open(srv.addr);
    ev.opened();
    assert!(
        !r.readable_within(Duration::from_millis(1200)),
        "a disabled idle timeout sent {:?}",
        r.buf
    );
    assert_echo(&mut r, "still open");
    ev.next();
    ev.quiet_for(Duration::from_millis(50));
}

// ---- BAD_INPUTS 64 ----------------------------------------------------------------------------

/// We sent Close, the peer never answers: after the close timeout TCP is closed and the
/// application sees 1006.
#[test]
fn bad_inputs_64_close_timeout_after_our_close() {
    let close_timeout = Duration::from_millis(500);
    let (srv, ev) = start_recorder(config().close_timeout(close_timeout));
    let mut r = Raw::open(srv.addr);
    let id = ev.opened();
    let t0 = Instant::now();
    srv.handle().close(id, 1000, "bye").unwrap();
    let f = r.frame();
    assert_eq!((f.close_code(), f.reason()), (1000, &b"bye"[..]));
    // Data is still read (and discarded) while waiting; it does not extend the wait.
    std::thread::sleep(Duration::from_millis(200));
    r.text("ignored");
    r.expect_eof();
    within(
        t0.elapsed(),
        close_timeout - Duration::from_millis(60),
        close_timeout + Duration::from_millis(600),
        "close timeout",
    );
    let (before, code, _) = ev.closed();
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(code, 1006);
}

/// After failing a connection the server half-closes at once and keeps reading until the
/// peer's FIN; a peer that never sends it is dropped at the close timeout.
#[test]
fn bad_inputs_64_close_timeout_after_failing() {
    let close_timeout = Duration::from_millis(500);
    let (srv, ev) = start_recorder(config().close_timeout(close_timeout));
    let mut r = Raw::open(srv.addr);
    ev.opened();
    let t0 = Instant::now();
    r.write(&[0x83]); // reserved opcode
    r.expect_close(1002); // Close, then our read side sees FIN
    assert_eq!(ev.closed().1, 1002);
    // Still reading (draining): writes are accepted, no reset.
    std::thread::sleep(Duration::from_millis(100));
    r.stream.write_all(b"junk").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    r.stream.write_all(b"junk").unwrap();
    // After the close timeout the socket is gone: a write draws a reset, the next one fails.
    let wait = (close_timeout + Duration::from_millis(500)).saturating_sub(t0.elapsed());
    std::thread::sleep(wait);
    let _ = r.stream.write_all(b"junk");
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        r.stream.write_all(b"junk").is_err(),
        "the server still holds the connection after the close timeout"
    );
}
