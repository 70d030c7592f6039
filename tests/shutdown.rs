//! Graceful shutdown: BAD_INPUTS line 67. Stop accepting, Close 1001 to every open connection,
//! wait for the close handshakes until the deadline, then drop the stragglers (on_close 1006).

mod common;

use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use myriad::{Message, SendError};

fn refused(addr: std::net::SocketAddr) -> bool {
    matches!(TcpStream::connect(addr), Err(e) if e.kind() == ErrorKind::ConnectionRefused)
}

#[test]
fn bad_inputs_67_graceful_shutdown_with_a_straggler() {
    let deadline = Duration::from_millis(1000);
    let (srv, ev) = start_recorder(config().handshake_timeout(Duration::from_secs(5)));
    let addr = srv.addr;
    let mut polite = Raw::open(addr);
    let polite_id = ev.opened();
    let mut straggler = Raw::open(addr);
    ev.opened();
    let mut handshaking = Raw::connect(addr);
    handshaking.write(&request(&[])[..20]);
    std::thread::sleep(Duration::from_millis(50));

    let handle = srv.handle();
    let running = srv.take();
    let t0 = Instant::now();
    handle.shutdown_within(deadline);

    // The polite client gets 1001, answers, and is closed at once.
    let f = polite.frame();
    assert_eq!(
        (f.close_code(), f.reason()),
        (1001, &b"server shutting down"[..])
    );
    polite.close(1001, b"");
    polite.expect_eof();
    // A connection still in its handshake is dropped without an answer.
    handshaking.expect_eof();
    // The listener is gone: new connections are refused.
    assert!(refused(addr), "still accepting after shutdown");

    // The straggler gets 1001 too, ignores it, and is dropped at the deadline.
    let f = straggler.frame();
    assert_eq!(f.close_code(), 1001);
    straggler.expect_eof();
    let dropped = t0.elapsed();
    assert!(
        dropped >= deadline - Duration::from_millis(60)
            && dropped < deadline + Duration::from_millis(700),
        "straggler dropped after {dropped:?}"
    );
    running.join();
    assert!(t0.elapsed() < deadline + Duration::from_secs(1));

    let (_, code, _) = ev.closed();
    assert_eq!(code, 1001, "the polite client's Close");
    let (_, code, _) = ev.closed();
    assert_eq!(code, 1006, "the straggler, dropped at the deadline");
    ev.quiet_for(Duration::from_millis(50));
    assert_eq!(
        handle.send(polite_id, Message::Text("x")),
        Err(SendError::ServerStopped)
    );
}

/// When every peer answers, the reactors stop as soon as the last connection is closed, long
/// before the deadline; with several reactors, every listener is closed.
#[test]
fn bad_inputs_67_shutdown_ends_early_when_all_closed() {
    let (srv, ev) = start_recorder(config().workers(2));
    let addr = srv.addr;
    let mut clients: Vec<Raw> = (0..6).map(|_| Raw::open(addr)).collect();
    for _ in 0..6 {
        ev.opened();
    }
    let handle = srv.handle();
    let running = srv.take();
    let t0 = Instant::now();
    handle.shutdown_within(Duration::from_secs(5));
    for c in &mut clients {
        assert_eq!(c.frame().close_code(), 1001);
        c.close(1001, b"");
        c.expect_eof();
    }
    running.join();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    for _ in 0..6 {
        assert_eq!(ev.closed().1, 1001);
    }
    assert!(refused(addr));
}

#[test]
fn bad_inputs_67_shutdown_without_connections_is_immediate() {
    let (srv, _ev) = start_recorder(config());
    let addr = srv.addr;
    let handle = srv.handle();
    let running = srv.take();
    let t0 = Instant::now();
    handle.shutdown_within(Duration::from_secs(5));
    running.join();
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
    assert!(refused(addr));
}
