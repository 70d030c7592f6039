//! Pub/sub in the library (issue 4): fan-out across reactors, compress once, slow subscribers
//! (BAD_INPUTS 54, 55).

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::*;
use std::sync::{Arc, Mutex};

use myriad::{
    BackpressurePolicy, ConnId, Fragment, Handler, Message, Request, SendError, SendStatus,
    Upgrade, Ws,
};

/// "sub" subscribes to "t"; "pub N SIZE" publishes N binary messages of SIZE bytes to "t" and
/// answers "done C" with the compressions this reactor made for them.
#[derive(Clone, Default)]
struct Fan {
    /// Sequence number of the next publish (per reactor).
    next: u64,
}

impl Handler for Fan {
    type Data = ();
    fn on_upgrade(&mut self, _req: &Request<'_>) -> Upgrade<()> {
        Upgrade::accept(())
    }
    fn on_message(&mut self, ws: &mut Ws<'_, ()>, msg: Message<'_>) {
        let Message::Text(t) = msg else { return };
        let words: Vec<&str> = t.split(' ').collect();
        match words.as_slice() {
            ["sub"] => {
                let _ = ws.subscribe("t");
                ws.send_text("subscribed").unwrap();
            }
            // Blocks this reactor for a while (so that its mailbox fills up).
            ["nap"] => std::thread::sleep(Duration::from_millis(300)),
            ["sub", topic] => {
                let _ = ws.subscribe(topic);
                ws.send_text("subscribed").unwrap();
            }
            // Publishes N messages in one callback, cycling over the listed topics.
            ["pubto", topics, n] => {
                let topics: Vec<&str> = topics.split(',').collect();
                let n: usize = n.parse().unwrap();
                for i in 0..n {
                    let body = self.next.to_be_bytes();
                    self.next += 1;
                    ws.publish(topics[i % topics.len()], Message::Binary(&body))
                        .unwrap();
                }
                ws.send_text("done").unwrap();
            }
            ["pub", n, size] => {
                let n: usize = n.parse().unwrap();
                let size: usize = size.parse().unwrap();
                let before = ws.compressions();
                for i in 0..n {
                    let mut body = vec![b'a' + (i % 26) as u8; size];
                    body[..8].copy_from_slice(&self.next.to_be_bytes());
                    self.next += 1;
                    ws.publish("t", Message::Binary(&body)).unwrap();
                }
                let c = ws.compressions() - before;
                ws.send_text(&format!("done {c}")).unwrap();
            }
            _ => {}
        }
    }
}

fn subscriber(addr: std::net::SocketAddr, deflate: bool) -> Raw {
    let mut r = Raw::connect(addr);
    let offer = ["Sec-WebSocket-Extensions: permessage-deflate"];
    r.write(&request(if deflate { &offer[..] } else { &[][..] }));
    let head = r.read_head();
    assert_101(&head);
    r.text("sub");
    assert_eq!(r.frame().payload, b"subscribed");
    r
}

fn seq(f: &Frame) -> u64 {
    let payload = if f.rsv == 0b100 {
        let mut out = Vec::new();
        myriad::proto::deflate::Inflater::new()
            .inflate(&[&f.payload], None, 1 << 24, &mut out)
            .expect("inflate");
        out
    } else {
        f.payload.clone()
    };
    u64::from_be_bytes(payload[..8].try_into().unwrap())
}

/// Subscribers spread over two reactors each get every publish once, in order; with deflate
/// negotiated by all of them, each publish is compressed once.
#[test]
fn fan_out_across_reactors_compressed_once() {
    let srv = TestServer::start(config().workers(2), Fan::default());
    let mut subs: Vec<Raw> = (0..10).map(|i| subscriber(srv.addr, i % 2 == 0)).collect();
    let mut publisher = Raw::open(srv.addr);
    publisher.text("pub 20 2000");
    let done = publisher.frame();
    assert_eq!(done.payload, b"done 20", "one compression per publish");
    for s in &mut subs {
        for i in 0..20u64 {
            let f = s.frame();
            assert_eq!(f.opcode, BINARY);
            assert_eq!(seq(&f), i);
        }
    }
    // Closing a subscriber releases its subscription: publishing still works for the rest.
    drop(subs.pop());
    std::thread::sleep(Duration::from_millis(100));
    // Below the 64-byte threshold: not compressed at all.
    publisher.text("pub 1 50");
    assert_eq!(publisher.frame().payload, b"done 0");
    for s in &mut subs {
        assert_eq!(seq(&s.frame()), 20);
    }
}

/// BAD_INPUTS 54/55: one subscriber stops reading. The others get everything, the server keeps
/// at most max_backpressure for the slow one (messages beyond are dropped for it), memory stays
/// bounded.
#[test]
fn bad_inputs_54_slow_subscriber_dropped_others_unaffected() {
    let limit = 256 << 10;
    let srv = TestServer::start(config().max_backpressure(limit), Fan::default());
    let mut slow = subscriber(srv.addr, false);
    slow.stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut fast = subscriber(srv.addr, false);
    let mut publisher = Raw::open(srv.addr);
    let before = rss_bytes() / 1024;
    // 40 MiB in 4 KiB messages, in bursts the fast subscriber keeps up with.
    let mut next = 0u64;
    for _ in 0..40 {
        publisher.text("pub 256 4096");
        assert_eq!(publisher.frame().opcode, TEXT);
        for _ in 0..256 {
            assert_eq!(seq(&fast.frame()), next);
            next += 1;
        }
    }
    let grown = (rss_bytes() / 1024).saturating_sub(before);
    assert!(grown < 16 << 10, "RSS grew by {grown} kB");
    // The slow one now reads what was kept for it: in order, with a gap where messages dropped.
    let mut got = 0u64;
    let mut last = None;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        match slow.try_frame() {
            Ok(Some(f)) => {
                let s = seq(&f);
                if let Some(l) = last {
                    assert!(s > l, "out of order: {s} after {l}");
                }
                last = Some(s);
                got += 1;
            }
            _ => break,
        }
    }
    assert!(got > 0 && got < next, "slow subscriber got {got} of {next}");
}

/// BAD_INPUTS 54 with the Close policy: the slow subscriber is closed with 1013, the others carry
/// on.
#[test]
fn bad_inputs_54_slow_subscriber_closed_1013() {
    let srv = TestServer::start(
        config()
            .max_backpressure(128 << 10)
            .backpressure_policy(BackpressurePolicy::Close(1013))
            // Long enough for the slow reader to come back and find the Close behind its data;
            // past it the server drops the connection without waiting (close timeout).
            .close_timeout(Duration::from_secs(30)),
        Fan::default(),
    );
    let mut slow = subscriber(srv.addr, false);
    let mut fast = subscriber(srv.addr, false);
    let mut publisher = Raw::open(srv.addr);
    let mut next = 0u64;
    for _ in 0..40 {
        publisher.text("pub 256 4096");
        publisher.frame();
        for _ in 0..256 {
            assert_eq!(seq(&fast.frame()), next);
            next += 1;
        }
    }
    let close = slow.skip_to_close();
    assert_eq!(close.close_code(), 1013);
    // Then TCP closes.
    let mut rest = Vec::new();
    let _ = slow.stream.read_to_end(&mut rest);
}

fn subscribe_to(addr: std::net::SocketAddr, topics: &[&str]) -> Raw {
    let mut r = Raw::open(addr);
    for t in topics {
        r.text(&format!("sub {t}"));
        assert_eq!(r.frame().payload, b"subscribed");
    }
    r
}

/// Publishes to several topics in one batch: a subscriber of two of them gets the messages of
/// both interleaved in publish order; one of a single topic gets only its own, in order; a
/// subscriber of neither gets nothing.
#[test]
fn several_topics_in_one_batch_keep_publish_order() {
    let srv = TestServer::start(config(), Fan::default());
    let mut both = subscribe_to(srv.addr, &["a", "b"]);
    let mut only_b = subscribe_to(srv.addr, &["b"]);
    let mut other = subscribe_to(srv.addr, &["z"]);
    let mut publisher = Raw::open(srv.addr);
    // Messages 0..30 cycle over a, b, c: a gets 0, 3, 6..; b gets 1, 4, 7..; c has no subscriber.
    publisher.text("pubto a,b,c 30");
    assert_eq!(publisher.frame().payload, b"done");
    for i in (0..30u64).filter(|i| i % 3 != 2) {
        assert_eq!(seq(&both.frame()), i);
    }
    for i in (0..30u64).filter(|i| i % 3 == 1) {
        assert_eq!(seq(&only_b.frame()), i);
    }
    // One topic only (the fast path), after the mixed batch.
    publisher.text("pubto b 2");
    assert_eq!(publisher.frame().payload, b"done");
    for s in [&mut both, &mut only_b] {
        assert_eq!(seq(&s.frame()), 30);
        assert_eq!(seq(&s.frame()), 31);
    }
    assert!(!other.readable_within(Duration::from_millis(200)));
}

/// A publish is not compressed at all while no connection takes the shared compressed copy,
/// and is compressed once as soon as one does.
#[test]
fn publishes_are_compressed_only_when_a_subscriber_negotiated_deflate() {
    let srv = TestServer::start(config(), Fan::default());
    let mut plain = subscriber(srv.addr, false);
    let mut publisher = Raw::open(srv.addr);
    publisher.text("pub 5 2000");
    assert_eq!(
        publisher.frame().payload,
        b"done 0",
        "nobody wants it compressed"
    );
    for i in 0..5 {
        let f = plain.frame();
        assert_eq!((f.rsv, seq(&f)), (0, i));
    }
    let mut z = subscriber(srv.addr, true);
    publisher.text("pub 5 2000");
    assert_eq!(publisher.frame().payload, b"done 5", "once per publish");
    for i in 5..10 {
        assert_eq!(seq(&plain.frame()), i);
        let f = z.frame();
        assert_eq!((f.rsv, seq(&f)), (0b100, i));
    }
    // Once it has gone, compression stops again.
    drop(z);
    let t0 = Instant::now();
    loop {
        publisher.text("pub 1 2000");
        let done = publisher.frame().payload;
        plain.frame();
        if done == b"done 0" {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "still compressing");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// "hello": remembers this connection; "relay X": sends X to the remembered one with
/// `Ws::send_to` and answers with what it returned (after the fragmented message, if one is
/// being sent); "frag": starts a fragmented message; "end": finishes it.
#[derive(Clone, Default)]
struct Relay {
    first: Arc<Mutex<Option<ConnId>>>,
    held: Option<String>,
}

impl Handler for Relay {
    type Data = ();
    fn on_upgrade(&mut self, _req: &Request<'_>) -> Upgrade<()> {
        Upgrade::accept(())
    }
    fn on_message(&mut self, ws: &mut Ws<'_, ()>, msg: Message<'_>) {
        let Message::Text(t) = msg else { return };
        if t == "hello" {
            *self.first.lock().unwrap() = Some(ws.id());
            ws.send_text("ok").unwrap();
        } else if let Some(x) = t.strip_prefix("relay ") {
            let to = self.first.lock().unwrap().expect("hello first");
            let r = format!("{:?}", ws.send_to(to, Message::Text(x)));
            if ws.send_text(&r) == Err(SendError::FragmentInProgress) {
                self.held = Some(r);
            }
        } else if t == "frag" {
            ws.send_fragment(Fragment::First, Message::Text("ab"))
                .unwrap();
        } else if t == "end" {
            ws.send_fragment(Fragment::Last, Message::Text("cd"))
                .unwrap();
            if let Some(r) = self.held.take() {
                ws.send_text(&r).unwrap();
            }
        }
    }
}

/// `Ws::send_to` reaches another connection, on this reactor or another; a stale id is refused.
#[test]
fn send_to_reaches_another_connection() {
    for workers in [1, 2] {
        let srv = TestServer::start(config().workers(workers), Relay::default());
        let mut first = Raw::open(srv.addr);
        first.text("hello");
        assert_eq!(first.frame().payload, b"ok");
        // Several senders, so that with two reactors some are on the other one.
        for i in 0..6 {
            let mut other = Raw::open(srv.addr);
            other.text(&format!("relay m{i}"));
            assert_eq!(other.frame().text(), "Ok(Sent)");
            let f = first.frame();
            assert_eq!((f.opcode, f.text()), (TEXT, format!("m{i}").as_str()));
        }
        // The first connection goes: a later relay to it on its own reactor gets StaleId.
        first.close(1000, b"");
        first.expect_close(1000);
        if workers == 1 {
            std::thread::sleep(Duration::from_millis(100));
            let mut other = Raw::open(srv.addr);
            other.text("relay late");
            assert_eq!(other.frame().text(), "Err(StaleId)");
        }
    }
}

/// RFC 6455 §5.4: a whole message sent to a connection in the middle of a fragmented message,
/// through `ServerHandle::send` or `Ws::send_to`, is refused, not interleaved with its fragments.
#[test]
fn sends_during_a_fragmented_message_are_refused() {
    let relay = Relay::default();
    let ids = relay.first.clone();
    let srv = TestServer::start(config(), relay);
    let mut c = Raw::open(srv.addr);
    c.text("hello");
    assert_eq!(c.frame().payload, b"ok");
    let id = ids.lock().unwrap().expect("id recorded");
    c.text("frag");
    let f = c.frame();
    assert_eq!(
        (f.fin, f.opcode, f.payload.as_slice()),
        (false, TEXT, &b"ab"[..])
    );
    assert_eq!(
        srv.handle().send(id, Message::Text("x")),
        Err(SendError::FragmentInProgress)
    );
    // The connection relays to itself.
    c.text("relay y");
    c.text("end");
    let f = c.frame();
    assert_eq!(
        (f.fin, f.opcode, f.payload.as_slice()),
        (true, 0, &b"cd"[..])
    );
    assert_eq!(c.frame().text(), "Err(FragmentInProgress)");
    // Now both are accepted again.
    assert_eq!(
        srv.handle().send(id, Message::Text("x")),
        Ok(SendStatus::Sent)
    );
    assert_eq!(c.frame().text(), "x");
    c.text("relay y");
    assert_eq!(c.frame().text(), "y");
    assert_eq!(c.frame().text(), "Ok(Sent)");
}

/// A burst of posts from another thread, larger than one mailbox drain (4096), queued while the
/// reactor is busy: everything arrives, in order (the drain that stops at 4096 wakes the reactor
/// again for the rest).
#[test]
fn handle_publish_burst_larger_than_one_drain_all_delivered() {
    let srv = TestServer::start(config(), Fan::default());
    let mut subs: Vec<Raw> = (0..4).map(|_| subscriber(srv.addr, false)).collect();
    let mut napper = Raw::open(srv.addr);
    napper.text("nap");
    std::thread::sleep(Duration::from_millis(50));
    let handle = srv.handle();
    let n = 10_000u64;
    // Queued in a few milliseconds, well within the nap.
    for i in 0..n {
        handle
            .publish("t", Message::Binary(&i.to_be_bytes()))
            .unwrap();
    }
    for s in &mut subs {
        for i in 0..n {
            assert_eq!(seq(&s.frame()), i);
        }
    }
}

/// With a coalescing window (`publish_coalesce`), a publish waits for the window before it
/// leaves (bounded: it does leave), a batch of `publish_coalesce_max` publishes leaves at once,
/// and subscribers get every publish in order.
#[test]
fn publish_coalescing_window_waits_at_most_the_window() {
    let cfg = config()
        .publish_coalesce(Duration::from_millis(300))
        .publish_coalesce_max(4);
    let srv = TestServer::start(cfg, Fan::default());
    let mut sub = subscribe_to(srv.addr, &["t"]);
    let h = srv.handle();
    let t0 = Instant::now();
    h.publish("t", Message::Binary(&0u64.to_be_bytes()))
        .unwrap();
    assert_eq!(seq(&sub.frame()), 0);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "a lone publish left after {waited:?} (window 300 ms)"
    );
    // Four at once fill a batch: they leave without waiting for the window.
    let t0 = Instant::now();
    for i in 1..=4u64 {
        h.publish("t", Message::Binary(&i.to_be_bytes())).unwrap();
    }
    for i in 1..=4u64 {
        assert_eq!(seq(&sub.frame()), i);
    }
    assert!(
        t0.elapsed() < Duration::from_millis(250),
        "a full batch waited {:?}",
        t0.elapsed()
    );
    // Off (the default): a publish leaves at once.
    let srv = TestServer::start(config(), Fan::default());
    let mut sub = subscribe_to(srv.addr, &["t"]);
    let t0 = Instant::now();
    srv.handle()
        .publish("t", Message::Binary(&9u64.to_be_bytes()))
        .unwrap();
    assert_eq!(seq(&sub.frame()), 9);
    assert!(t0.elapsed() < Duration::from_millis(250));
}
