//! The API a first user asked for: counts (`ServerHandle::stats`), a handle inside callbacks,
//! the topics of a connection and the subscribers of a topic, a publish that leaves its sender
//! out, drops that are never silent (`on_dropped`), and ids that round-trip through strings.

mod common;

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use common::*;
use myriad::{
    BackpressurePolicy, ConnId, Handler, Message, Request, SendError, ServerHandle, Upgrade, Ws,
};

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Topics(Vec<String>),
    Subscribers(usize),
    Handle(bool),
    Dropped(u64),
    Id(ConnId),
}

/// A small chat: "sub T", "pub T X" (to everyone), "others T X" (but the sender), "topics",
/// "count T", "handle" (uses `Ws::handle`), "id".
#[derive(Clone)]
struct Chat(Arc<Mutex<mpsc::Sender<Seen>>>);

impl Chat {
    fn seen(&self, s: Seen) {
        let _ = self.0.lock().unwrap().send(s);
    }
}

impl Handler for Chat {
    type Data = ();

    fn on_upgrade(&mut self, _req: &Request<'_>) -> Upgrade<()> {
        Upgrade::accept(())
    }

    fn on_message(&mut self, ws: &mut Ws<'_, ()>, msg: Message<'_>) {
        let Message::Text(t) = msg else { return };
        let mut it = t.splitn(3, ' ');
        match (it.next(), it.next(), it.next()) {
            (Some("sub"), Some(topic), _) => {
                let _ = ws.subscribe(topic);
                let _ = ws.send_text("ok");
            }
            (Some("pub"), Some(topic), Some(x)) => {
                let _ = ws.publish(topic, Message::Text(x));
            }
            (Some("others"), Some(topic), Some(x)) => {
                let _ = ws.publish_to_others(topic, Message::Text(x));
            }
            (Some("topics"), _, _) => {
                let mut t = ws.topics();
                t.sort();
                self.seen(Seen::Topics(t));
            }
            (Some("count"), Some(topic), _) => self.seen(Seen::Subscribers(ws.subscribers(topic))),
            (Some("handle"), _, _) => {
                let h: ServerHandle = ws.handle();
                // The blocking send refuses to run here; the right call is Ws::send_to.
                let refused = h.send(ws.id(), Message::Text("x")) == Err(SendError::WouldDeadlock);
                self.seen(Seen::Handle(refused && h.stats().total.connections >= 1));
            }
            (Some("id"), _, _) => self.seen(Seen::Id(ws.id())),
            (Some("flood"), Some(topic), Some(n)) => {
                let n: usize = n.parse().unwrap();
                let big = "x".repeat(32 << 10);
                for _ in 0..n {
                    let _ = ws.publish(topic, Message::Text(&big));
                }
            }
            _ => {}
        }
    }

    fn on_dropped(&mut self, _ws: &mut Ws<'_, ()>, count: u64) {
        self.seen(Seen::Dropped(count));
    }
}

fn chat(cfg: myriad::Config) -> (TestServer, mpsc::Receiver<Seen>) {
    let (tx, rx) = mpsc::channel();
    (TestServer::start(cfg, Chat(Arc::new(Mutex::new(tx)))), rx)
}

fn subscribed(addr: std::net::SocketAddr, topic: &str) -> Raw {
    let mut r = Raw::open(addr);
    r.text(&format!("sub {topic}"));
    assert_eq!(r.frame().text(), "ok");
    r
}

#[test]
fn stats_count_connections_and_messages() {
    let (srv, _rx) = chat(config().workers(2));
    let mut clients: Vec<Raw> = (0..6).map(|_| Raw::open(srv.addr)).collect();
    for c in &mut clients {
        for _ in 0..5 {
            c.text("topics");
        }
    }
    wait_until("the counts to show 6 connections and 30 messages", || {
        let t = srv.handle().stats().total;
        t.connections == 6 && t.messages_received == 30 && t.opened == 6
    });
    let s = srv.handle().stats();
    assert_eq!(s.reactors.len(), 2);
    assert!(s.running.iter().all(|&r| r));
    assert!(s.total.bytes_received > 30 * 10);
    assert!(s.total.loop_buckets.iter().sum::<u64>() > 0);
    for c in &mut clients {
        c.close(1000, b"bye");
        c.expect_close(1000);
    }
    wait_until("the closes to be counted", || {
        let t = srv.handle().stats().total;
        t.connections == 0 && t.closed[0] == 6
    });
}

#[test]
fn topics_subscribers_and_a_publish_that_leaves_the_sender_out() {
    let (srv, rx) = chat(config());
    let mut a = subscribed(srv.addr, "room");
    let mut b = subscribed(srv.addr, "room");
    a.text("sub lobby");
    assert_eq!(a.frame().text(), "ok");
    a.text("topics");
    assert_eq!(
        rx.recv_timeout(IO_TIMEOUT),
        Ok(Seen::Topics(vec!["lobby".into(), "room".into()]))
    );
    a.text("count room");
    assert_eq!(rx.recv_timeout(IO_TIMEOUT), Ok(Seen::Subscribers(2)));
    assert_eq!(srv.handle().subscribers("room"), Ok(2));
    assert_eq!(srv.handle().subscribers("nobody"), Ok(0));
    // To everyone: both get it. To others: only b.
    a.text("pub room one");
    assert_eq!(a.frame().text(), "one");
    assert_eq!(b.frame().text(), "one");
    a.text("others room two");
    assert_eq!(b.frame().text(), "two");
    a.text("pub room three");
    assert_eq!(a.frame().text(), "three", "a never got 'two'");
    assert_eq!(b.frame().text(), "three");
}

#[test]
fn a_handle_inside_callbacks_and_ids_as_strings() {
    let (srv, rx) = chat(config());
    let mut a = Raw::open(srv.addr);
    a.text("handle");
    assert_eq!(rx.recv_timeout(IO_TIMEOUT), Ok(Seen::Handle(true)));
    a.text("id");
    let Ok(Seen::Id(id)) = rx.recv_timeout(IO_TIMEOUT) else {
        panic!("no id")
    };
    let parsed: ConnId = id.to_string().parse().unwrap();
    assert_eq!(parsed, id);
    srv.handle()
        .send(parsed, Message::Text("by a stored id"))
        .unwrap();
    assert_eq!(a.frame().text(), "by a stored id");
}

/// A subscriber that does not read: publishes past its backpressure limit are dropped, counted,
/// and reported to the handler (`on_dropped`), never silently.
#[test]
fn dropped_publishes_are_reported() {
    let (srv, rx) = chat(
        config()
            .max_backpressure(128 << 10)
            .backpressure_policy(BackpressurePolicy::Drop),
    );
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&srv.addr.into()).unwrap();
    let mut slow = Raw::from_stream(sock.into());
    slow.write(&request(&[]));
    assert_101(&slow.read_head());
    slow.text("sub feed");
    let mut publisher = Raw::open(srv.addr);
    std::thread::sleep(Duration::from_millis(100));
    publisher.text("flood feed 200");
    let mut reported = 0;
    while let Ok(Seen::Dropped(n)) = rx.recv_timeout(Duration::from_secs(2)) {
        reported += n;
    }
    assert!(reported > 0, "no drop reported");
    let counted = srv.handle().stats().total.messages_dropped;
    assert_eq!(
        counted, reported,
        "every drop counted once and reported once"
    );
}
