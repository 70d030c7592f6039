//! A panic in the application costs one connection, not a reactor (BAD_INPUTS 70): the
//! connection whose callback panicked is closed with 1011 (a plain request gets 500), `on_close`
//! is not called for it, the panic is counted, and every other connection, on that reactor too,
//! goes on, publishes from other threads included.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use common::*;
use myriad::{Handler, Message, Request, Response, Upgrade, Ws};

/// Echoes; panics on "boom", in `on_open` for path /open-boom, in `on_request` for /req-boom,
/// in `on_upgrade` for /up-boom; records closes.
#[derive(Clone)]
struct Fragile(Arc<Mutex<mpsc::Sender<u16>>>);

impl Handler for Fragile {
    type Data = bool;

    fn on_upgrade(&mut self, req: &Request<'_>) -> Upgrade<bool> {
        assert!(req.path() != "/up-boom", "boom in on_upgrade");
        Upgrade::accept(req.path() == "/open-boom")
    }

    fn on_request(&mut self, req: &Request<'_>, res: &mut Response<'_, bool>) {
        res.text("partial answer");
        assert!(req.path() != "/req-boom", "boom in on_request");
    }

    fn on_open(&mut self, ws: &mut Ws<'_, bool>) {
        assert!(!*ws.data(), "boom in on_open");
        let _ = ws.subscribe("all");
    }

    fn on_message(&mut self, ws: &mut Ws<'_, bool>, msg: Message<'_>) {
        if msg == Message::Text("boom") {
            panic!("boom in on_message");
        }
        let _ = ws.send(msg);
    }

    fn on_close(&mut self, _ws: &mut Ws<'_, bool>, code: u16, _reason: &[u8]) {
        let _ = self.0.lock().unwrap().send(code);
    }
}

fn fragile() -> (TestServer, mpsc::Receiver<u16>) {
    let (tx, rx) = mpsc::channel();
    // One reactor: the panicking connection shares it with every other.
    (
        TestServer::start(config().workers(1), Fragile(Arc::new(Mutex::new(tx)))),
        rx,
    )
}

#[test]
fn bad_inputs_70_a_panic_costs_one_connection() {
    let (srv, closes) = fragile();
    let mut others: Vec<Raw> = (0..5).map(|_| Raw::open(srv.addr)).collect();
    let mut victim = Raw::open(srv.addr);
    victim.text("boom");
    // The victim: Close 1011, then TCP ends; the application hears nothing of it.
    assert_eq!(victim.skip_to_close().close_code(), 1011);
    victim.expect_eof();
    assert!(closes.recv_timeout(Duration::from_millis(300)).is_err());
    // The others, on the same reactor, still echo, and still get publishes from another thread.
    for o in &mut others {
        assert_echo(o, "still here");
    }
    srv.handle()
        .publish("all", Message::Text("news"))
        .expect("the reactor is alive");
    for o in &mut others {
        assert_eq!(o.frame().text(), "news");
    }
    // New connections are served.
    let mut fresh = Raw::open(srv.addr);
    assert_echo(&mut fresh, "fresh");
    let stats = srv.handle().stats();
    assert_eq!(stats.total.panics, 1);
    assert!(stats.running.iter().all(|&r| r));
    assert!(srv.handle().is_healthy());
}

#[test]
fn panics_elsewhere_in_the_handler() {
    let (srv, _closes) = fragile();
    // on_open: the connection opened (101) and is then failed with 1011.
    let mut r = Raw::connect(srv.addr);
    r.write(&request_to("/open-boom"));
    assert_101(&r.read_head());
    assert_eq!(r.skip_to_close().close_code(), 1011);
    // on_upgrade: 500, no upgrade.
    let head = http_refused(srv.addr, &request_to("/up-boom"));
    assert_eq!(status_line(&head), "HTTP/1.1 500 Internal Server Error");
    // on_request: 500 (not the half-built answer), connection closed.
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(b"GET /req-boom HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 500 "), "{answer}");
    assert!(!answer.contains("partial answer"));
    // And the reactor serves on.
    let mut ok = Raw::open(srv.addr);
    assert_echo(&mut ok, "after three panics");
    assert_eq!(srv.handle().stats().total.panics, 3);
}

fn request_to(path: &str) -> Vec<u8> {
    let req = String::from_utf8(request(&[])).unwrap();
    req.replacen("GET /chat ", &format!("GET {path} "), 1)
        .into_bytes()
}
