//! The close handshake (RFC 6455 §5.5.1, §7): BAD_INPUTS lines 36–43.

mod common;

use std::net::Shutdown;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use common::*;
use myriad::{Fragment, Handler, Message, Request, SendError, Upgrade, Ws};

// ---- BAD_INPUTS 36 ----------------------------------------------------------------------------

#[test]
fn bad_inputs_36_one_byte_close_payload_fails_1002() {
    let (srv, ev) = start_recorder(config());
    for b in [0x03u8, 0xe8, 0x00] {
        fails_with(&srv, &ev, &frame(true, 0, CLOSE, &[b]), 1002);
    }
}

// ---- BAD_INPUTS 37 ----------------------------------------------------------------------------

#[test]
fn bad_inputs_37_invalid_close_codes_fail_1002() {
    let (srv, ev) = start_recorder(config());
    for code in [
        0u16, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        fails_with(
            &srv,
            &ev,
            &frame(true, 0, CLOSE, &close_payload(code, b"")),
            1002,
        );
    }
}

#[test]
fn bad_inputs_37_valid_close_codes_are_echoed() {
    let (srv, ev) = start_recorder(config());
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
        4000, 4999,
    ] {
        let mut r = Raw::open(srv.addr);
        ev.opened();
        r.close(code, b"why");
        r.expect_close(code);
        let (before, got, reason) = ev.closed();
        assert!(before.is_empty());
        assert_eq!((got, reason.as_slice()), (code, &b"why"[..]));
    }
}

// ---- BAD_INPUTS 38 ----------------------------------------------------------------------------

#[test]
fn bad_inputs_38_close_reason_invalid_utf8_fails_1007() {
    let (srv, ev) = start_recorder(config());
    for reason in [
        &b"\xce\xba\xed\xa0\x80"[..],
        b"\xff",
        b"ok\xc0\xaf",
        b"\xe2\x82",
    ] {
        fails_with(
            &srv,
            &ev,
            &frame(true, 0, CLOSE, &close_payload(1000, reason)),
            1007,
        );
    }
}

// ---- BAD_INPUTS 39 ----------------------------------------------------------------------------

/// After the peer's Close: exactly one Close back, TCP closed by the server, and data sent after
/// the Close never reaches the application.
#[test]
fn bad_inputs_39_reply_once_then_close_tcp_discard_later_data() {
    let (srv, ev) = start_recorder(config());
    let mut r = Raw::open(srv.addr);
    ev.opened();
    r.write(
        &[
            frame(true, 0, TEXT, b"before"),
            frame(true, 0, CLOSE, &close_payload(1000, b"done")),
            frame(true, 0, TEXT, b"after"),
            frame(true, 0, PING, b"after"),
            frame(true, 0, CLOSE, &close_payload(1001, b"again")),
        ]
        .concat(),
    );
    assert_eq!(r.frame().text(), "before");
    // One Close (echoing the code), then EOF: no pong, no second Close.
    r.expect_close(1000);
    let (before, code, reason) = ev.closed();
    assert_eq!(before, vec![Ev::Text("before".into())]);
    assert_eq!((code, reason.as_slice()), (1000, &b"done"[..]));
    ev.quiet_for(Duration::from_millis(100));
}

// ---- BAD_INPUTS 40 ----------------------------------------------------------------------------

/// After our Close: the server keeps reading (and discarding data) until the peer's Close, then
/// closes TCP. (The peer that never answers is `timeouts::bad_inputs_64_*`.)
#[test]
fn bad_inputs_40_after_sending_close_wait_for_peer_close() {
    let (srv, ev) = start_recorder(config());
    let mut r = Raw::open(srv.addr);
    let id = ev.opened();
    srv.handle().close(id, 4000, "bye").unwrap();
    let f = r.frame();
    assert_eq!((f.close_code(), f.reason()), (4000, &b"bye"[..]));
    // The server waits: it has not closed TCP.
    assert!(
        !r.readable_within(Duration::from_millis(200)),
        "{:?}",
        r.buf
    );
    // Data now is read and discarded. A ping may be answered (RFC 6455 §5.5.1 forbids only data
    // frames after a Close); nothing else may come.
    r.text("late");
    r.send(true, PING, b"late");
    if r.readable_within(Duration::from_millis(100)) {
        let f = r.frame();
        assert_eq!((f.opcode, f.payload.as_slice()), (PONG, &b"late"[..]));
        assert!(!r.readable_within(Duration::from_millis(50)), "{:?}", r.buf);
    }
    r.close(4000, b"ok");
    r.expect_eof();
    let (before, code, reason) = ev.closed();
    assert!(
        before.is_empty(),
        "nothing delivered after our Close: {before:?}"
    );
    assert_eq!((code, reason.as_slice()), (4000, &b"ok"[..]));
}

// ---- BAD_INPUTS 41 ----------------------------------------------------------------------------

/// An empty Close is answered with an empty Close (no 1005 on the wire); the application sees
/// 1005.
#[test]
fn bad_inputs_41_empty_close_echoed_empty() {
    let (srv, ev) = start_recorder(config());
    let mut r = Raw::open(srv.addr);
    ev.opened();
    r.send(true, CLOSE, b"");
    let f = r.frame();
    assert_eq!((f.opcode, f.payload.len()), (CLOSE, 0), "{f:?}");
    r.expect_eof();
    let (_, code, reason) = ev.closed();
    assert_eq!((code, reason.len()), (1005, 0));
}

/// 1005, 1006 and 1015 are refused by the sending API, and a peer sending them fails.
#[test]
fn bad_inputs_41_local_codes_never_on_the_wire() {
    let (srv, ev) = start_recorder(config());
    let mut r = Raw::open(srv.addr);
    let id = ev.opened();
    for code in [1005u16, 1006, 1015] {
        assert_eq!(
            srv.handle().close(id, code, ""),
            Err(SendError::InvalidCloseCode(code))
        );
    }
    assert!(!r.readable_within(Duration::from_millis(100)));
    assert_echo(&mut r, "open");
    assert_eq!(ev.next(), Ev::Text("open".into()));
    for code in [1005u16, 1006, 1015] {
        fails_with(
            &srv,
            &ev,
            &frame(true, 0, CLOSE, &close_payload(code, b"")),
            1002,
        );
    }
}

// ---- BAD_INPUTS 42 ----------------------------------------------------------------------------

/// TCP FIN without a Close: on_close(1006) once, the server closes its side, the id goes stale.
#[test]
fn bad_inputs_42_fin_without_close_is_1006_once() {
    let (srv, ev) = start_recorder(config());
    let mut r = Raw::open(srv.addr);
    let id = ev.opened();
    // In the middle of a fragmented message and of a frame, for good measure.
    r.write(&frame(false, 0, TEXT, b"unfinished"));
    let mut h = header(true, 0, CONT, true, 100);
    let key = next_mask();
    h.extend_from_slice(&key);
    let mut part = *b"valid text";
    myriad::proto::mask::apply_mask(&mut part, key, 0);
    h.extend_from_slice(&part);
    r.write(&h);
    r.stream.shutdown(Shutdown::Write).unwrap();
    let (code, _) = ev.closed_without_messages();
    assert_eq!(code, 1006);
    // No Close frame: the server just closes TCP.
    r.expect_eof();
    ev.quiet_for(Duration::from_millis(100));
    assert_eq!(
        srv.handle().send(id, Message::Text("x")),
        Err(SendError::StaleId)
    );
}

#[test]
fn bad_inputs_42_reset_without_close_is_1006_once() {
    let (srv, ev) = start_recorder(config());
    let r = Raw::open(srv.addr);
    let id = ev.opened();
    socket2::SockRef::from(&r.stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(r); // RST
    let (code, _) = ev.closed_without_messages();
    assert_eq!(code, 1006);
    ev.quiet_for(Duration::from_millis(100));
    assert_eq!(srv.handle().close(id, 1000, ""), Err(SendError::StaleId));
    // The server is fine.
    let mut r = Raw::open(srv.addr);
    assert_echo(&mut r, "next");
}

// ---- BAD_INPUTS 43 ----------------------------------------------------------------------------

/// Closes twice, sends after close, and sends from on_close: all refused with `Closed`, one
/// Close on the wire, one on_close.
#[derive(Clone)]
struct Closer {
    tx: Arc<Mutex<mpsc::Sender<String>>>,
}

impl Closer {
    fn note(&self, s: String) {
        let _ = self.tx.lock().unwrap().send(s);
    }
}

impl Handler for Closer {
    type Data = ();
    fn on_upgrade(&mut self, _req: &Request<'_>) -> Upgrade<()> {
        Upgrade::accept(())
    }
    fn on_open(&mut self, ws: &mut Ws<'_, ()>) {
        self.note(format!("open {:?}", ws.id()));
    }
    fn on_message(&mut self, ws: &mut Ws<'_, ()>, _msg: Message<'_>) {
        self.note(format!("close {:?}", ws.close(1000, "first")));
        self.note(format!("close {:?}", ws.close(1001, "second")));
        self.note(format!("send {:?}", ws.send_text("after")));
        self.note(format!("ping {:?}", ws.ping(b"")));
        self.note(format!(
            "fragment {:?}",
            ws.send_fragment(Fragment::First, Message::Binary(b"x"))
        ));
        self.note(format!("open? {}", ws.is_open()));
    }
    fn on_close(&mut self, ws: &mut Ws<'_, ()>, code: u16, _reason: &[u8]) {
        self.note(format!("on_close {code}"));
        self.note(format!("send in on_close {:?}", ws.send_text("x")));
        self.note(format!("close in on_close {:?}", ws.close(1000, "")));
    }
}

#[test]
fn bad_inputs_43_close_twice_and_send_after_close_are_errors() {
    let (tx, rx) = mpsc::channel();
    let srv = TestServer::start(
        config(),
        Closer {
            tx: Arc::new(Mutex::new(tx)),
        },
    );
    let next = || rx.recv_timeout(IO_TIMEOUT).unwrap();
    let mut r = Raw::open(srv.addr);
    assert!(next().starts_with("open"));
    r.text("go");
    let notes: Vec<String> = (0..6).map(|_| next()).collect();
    assert_eq!(
        notes,
        [
            "close Ok(())",
            "close Err(Closed)",
            "send Err(Closed)",
            "ping Err(Closed)",
            "fragment Err(Closed)",
            "open? false",
        ]
    );
    // Exactly one Close on the wire.
    let f = r.frame();
    assert_eq!((f.close_code(), f.reason()), (1000, &b"first"[..]));
    assert!(
        !r.readable_within(Duration::from_millis(100)),
        "{:?}",
        r.buf
    );
    r.close(1000, b"");
    r.expect_eof();
    let notes: Vec<String> = (0..3).map(|_| next()).collect();
    assert_eq!(
        notes,
        [
            "on_close 1000",
            "send in on_close Err(Closed)",
            "close in on_close Err(Closed)",
        ]
    );
    assert!(
        rx.recv_timeout(Duration::from_millis(100)).is_err(),
        "one on_close"
    );
}

/// The same through the handle: a second close while closing is `Closed`; once the connection is
/// gone, its id is stale.
#[test]
fn bad_inputs_43_handle_close_twice_then_stale() {
    let (srv, ev) = start_recorder(config());
    let mut r = Raw::open(srv.addr);
    let id = ev.opened();
    let h = srv.handle();
    assert_eq!(h.close(id, 1000, "one"), Ok(()));
    assert_eq!(h.close(id, 1000, "two"), Err(SendError::Closed));
    assert_eq!(h.send(id, Message::Text("x")), Err(SendError::Closed));
    let f = r.frame();
    assert_eq!((f.close_code(), f.reason()), (1000, &b"one"[..]));
    r.close(1000, b"");
    r.expect_eof();
    let (_, code, _) = ev.closed();
    assert_eq!(code, 1000);
    assert_eq!(h.close(id, 1000, "three"), Err(SendError::StaleId));
    assert_eq!(h.send(id, Message::Text("x")), Err(SendError::StaleId));
    // A new connection in the same slot does not answer to the old id.
    let mut r2 = Raw::open(srv.addr);
    let id2 = ev.opened();
    assert_ne!(id, id2);
    assert_eq!(h.send(id, Message::Text("x")), Err(SendError::StaleId));
    assert!(!r2.readable_within(Duration::from_millis(100)));
    assert_eq!(
        h.send(id2, Message::Text("to 2")),
        Ok(myriad::SendStatus::Sent)
    );
    assert_eq!(r2.frame().text(), "to 2");
}
