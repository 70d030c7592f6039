//! Pub/sub in the library (issue 4): fan-out across reactors, compress once, slow subscribers
//! (BAD_INPUTS 54, 55).

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::*;
use myriad::{BackpressurePolicy, Handler, Message, Request, Upgrade, Ws};

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
                ws.subscribe("t");
                ws.send_text("subscribed").unwrap();
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
        myriad::deflate::Inflater::new()
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
