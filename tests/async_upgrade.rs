//! Upgrades answered later, from another thread (`Upgrade::Pending`, `ServerHandle::accept` and
//! `reject`): the client sees its 101 (or refusal) only then; the handshake timeout still
//! applies; a client that leaves while pending frees everything (BAD_INPUTS 13).

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use myriad::{Accept, Handler, Message, Request, Ticket, Upgrade, Ws};

/// Leaves every upgrade pending and hands its ticket and path to the test.
#[derive(Clone)]
struct Later(Arc<Mutex<mpsc::Sender<(Ticket, String)>>>);

impl Handler for Later {
    type Data = String;

    fn on_upgrade(&mut self, req: &Request<'_>) -> Upgrade<String> {
        let ticket = req.ticket().expect("a ticket inside on_upgrade");
        let _ = self.0.lock().unwrap().send((ticket, req.path().to_owned()));
        Upgrade::Pending
    }

    fn on_open(&mut self, ws: &mut Ws<'_, String>) {
        let hello = format!("hello {}", ws.data());
        let _ = ws.send_text(&hello);
    }

    fn on_message(&mut self, ws: &mut Ws<'_, String>, msg: Message<'_>) {
        let _ = ws.send(msg);
    }
}

fn later() -> (TestServer, mpsc::Receiver<(Ticket, String)>) {
    let (tx, rx) = mpsc::channel();
    let srv = TestServer::start(
        config().handshake_timeout(Duration::from_secs(2)),
        Later(Arc::new(Mutex::new(tx))),
    );
    (srv, rx)
}

#[test]
fn accepted_from_another_thread_after_a_delay() {
    let (srv, tickets) = later();
    let mut r = Raw::connect(srv.addr);
    r.write(&request(&[]));
    let (ticket, path) = tickets.recv_timeout(IO_TIMEOUT).unwrap();
    assert_eq!(path, "/chat");
    // Nothing yet: the client waits for the answer.
    assert!(!r.readable_within(Duration::from_millis(300)));
    // A frame the client pipelines meanwhile is kept and delivered once open.
    r.text("early");
    let handle = srv.handle();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        handle
            .accept(ticket, Accept::new("alice".to_string()))
            .unwrap();
    })
    .join()
    .unwrap();
    assert_101(&r.read_head());
    assert_eq!(r.frame().text(), "hello alice");
    assert_eq!(r.frame().text(), "early");
    assert_echo(&mut r, "and after");
}

#[test]
fn rejected_from_another_thread() {
    let (srv, tickets) = later();
    let mut r = Raw::connect(srv.addr);
    r.write(&request(&[]));
    let (ticket, _) = tickets.recv_timeout(IO_TIMEOUT).unwrap();
    srv.handle()
        .reject(
            ticket,
            429,
            vec![("Retry-After".into(), "3".into())],
            b"slow down".to_vec(),
        )
        .unwrap();
    let head = r.read_head();
    assert_eq!(status_line(&head), "HTTP/1.1 429 Too Many Requests");
    assert_eq!(header_value(&head, "Retry-After"), Some("3"));
    let mut body = Vec::new();
    let _ = std::io::Read::read_to_end(&mut r.stream, &mut body);
    let mut all = r.buf.clone();
    all.extend_from_slice(&body);
    assert_eq!(all, b"slow down");
}

#[test]
fn never_answered_is_closed_at_the_handshake_timeout() {
    let (srv, tickets) = later();
    let mut r = Raw::connect(srv.addr);
    r.write(&request(&[]));
    let (ticket, _) = tickets.recv_timeout(IO_TIMEOUT).unwrap();
    let t0 = Instant::now();
    r.expect_eof();
    let took = t0.elapsed();
    assert!(
        took > Duration::from_millis(1500) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // A late answer finds nothing and harms nothing.
    srv.handle()
        .accept(ticket, Accept::new("late".to_string()))
        .unwrap();
    let mut r = Raw::connect(srv.addr);
    r.write(&request(&[]));
    let (ticket, _) = tickets.recv_timeout(IO_TIMEOUT).unwrap();
    srv.handle()
        .accept(ticket, Accept::new("bob".to_string()))
        .unwrap();
    assert_101(&r.read_head());
    assert_eq!(r.frame().text(), "hello bob");
}

#[test]
fn a_client_that_leaves_while_pending_frees_everything() {
    let (srv, tickets) = later();
    let stats = || srv.handle().stats().total;
    let mut pending = Vec::new();
    for _ in 0..50 {
        let mut r = Raw::connect(srv.addr);
        r.write(&request(&[]));
        pending.push(tickets.recv_timeout(IO_TIMEOUT).unwrap().0);
        drop(r);
    }
    // The server notices each leave; answering afterwards finds nothing.
    std::thread::sleep(Duration::from_millis(300));
    for t in pending {
        srv.handle()
            .accept(t, Accept::new("gone".to_string()))
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(stats().connections, 0);
    assert_eq!(stats().opened, 0);
    // Wrong data type: refused with 500, logged, nothing opened.
    let mut r = Raw::connect(srv.addr);
    r.write(&request(&[]));
    let (ticket, _) = tickets.recv_timeout(IO_TIMEOUT).unwrap();
    srv.handle().accept(ticket, Accept::new(42u64)).unwrap();
    let head = r.read_head();
    assert_eq!(status_line(&head), "HTTP/1.1 500 Internal Server Error");
}
