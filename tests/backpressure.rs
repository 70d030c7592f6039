//! Backpressure on a connection whose peer stops reading: sends report `Buffered` behind unsent
//! bytes, `on_drain` follows once they leave, and past `max_backpressure` the policy applies:
//! `Dropped` (the connection stays open), or a Close with 1008 or 1013 after the data already
//! queued (BAD_INPUTS 54, 55, 60).

mod common;

use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use common::*;
use myriad::{BackpressurePolicy, Handler, Message, Request, SendStatus, Upgrade, Ws};

/// What the flooding handler saw.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Status(SendStatus),
    Drained,
    Closed(u16),
}

/// On "flood N SIZE": sends N binary messages of SIZE bytes, each starting with its number.
#[derive(Clone)]
struct Flood(Arc<Mutex<mpsc::Sender<Seen>>>);

impl Flood {
    fn new() -> (Flood, mpsc::Receiver<Seen>) {
        let (tx, rx) = mpsc::channel();
        (Flood(Arc::new(Mutex::new(tx))), rx)
    }

    fn seen(&self, s: Seen) {
        let _ = self.0.lock().unwrap().send(s);
    }
}

impl Handler for Flood {
    type Data = ();

    fn on_upgrade(&mut self, _req: &Request<'_>) -> Upgrade<()> {
        Upgrade::accept(())
    }

    fn on_message(&mut self, ws: &mut Ws<'_, ()>, msg: Message<'_>) {
        let Message::Text(t) = msg else { return };
        let mut it = t.split(' ').skip(1).map(|v| v.parse::<usize>().unwrap());
        let (n, size) = (it.next().unwrap(), it.next().unwrap());
        for i in 0..n {
            let mut m = vec![0xabu8; size];
            m[..4].copy_from_slice(&(i as u32).to_be_bytes());
            match ws.send_binary(&m) {
                Ok(s) => self.seen(Seen::Status(s)),
                Err(e) => panic!("send {i}: {e}"),
            }
        }
    }

    fn on_drain(&mut self, _ws: &mut Ws<'_, ()>) {
        self.seen(Seen::Drained);
    }

    fn on_close(&mut self, _ws: &mut Ws<'_, ()>, code: u16, _reason: &[u8]) {
        self.seen(Seen::Closed(code));
    }
}

/// A client whose receive buffer is small, so the server's output blocks early.
fn slow_reader(addr: SocketAddr) -> Raw {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&addr.into()).unwrap();
    let stream: TcpStream = sock.into();
    let mut r = Raw::from_stream(stream);
    r.write(&request(&[]));
    assert_101(&r.read_head());
    r
}

/// The statuses of `n` sends, in order.
fn statuses(rx: &mpsc::Receiver<Seen>, n: usize) -> Vec<SendStatus> {
    (0..n)
        .map(
            |_| match rx.recv_timeout(IO_TIMEOUT).expect("a send status") {
                Seen::Status(s) => s,
                other => panic!("expected a send status, got {other:?}"),
            },
        )
        .collect()
}

/// Reads binary messages until `count` arrived; returns their numbers.
fn read_numbers(r: &mut Raw, count: usize) -> Vec<u32> {
    (0..count)
        .map(|_| {
            let f = r.frame();
            assert_eq!(f.opcode, BINARY);
            u32::from_be_bytes(f.payload[..4].try_into().unwrap())
        })
        .collect()
}

#[test]
fn buffered_sends_then_on_drain_once_the_peer_reads() {
    let (h, rx) = Flood::new();
    let srv = TestServer::start(config().max_backpressure(64 << 20), h);
    let mut r = slow_reader(srv.addr);
    r.text("flood 64 65536");
    let got = statuses(&rx, 64);
    assert!(
        got.contains(&SendStatus::Buffered),
        "4 MiB to a reader with a 4 KiB window must queue: {got:?}"
    );
    assert!(!got.contains(&SendStatus::Dropped));
    // Nothing drains while the peer does not read.
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    // It reads everything, in order; then on_drain comes, once.
    assert_eq!(read_numbers(&mut r, 64), (0..64).collect::<Vec<u32>>());
    assert_eq!(rx.recv_timeout(IO_TIMEOUT), Ok(Seen::Drained));
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    // And the connection works as before.
    r.text("flood 1 16");
    assert_eq!(statuses(&rx, 1), vec![SendStatus::Sent]);
    assert_eq!(read_numbers(&mut r, 1), vec![0]);
}

#[test]
fn drop_policy_drops_past_the_limit_and_keeps_the_connection() {
    let (h, rx) = Flood::new();
    let srv = TestServer::start(config().max_backpressure(256 << 10), h);
    let mut r = slow_reader(srv.addr);
    r.text("flood 256 65536");
    let got = statuses(&rx, 256);
    let dropped = got.iter().filter(|s| **s == SendStatus::Dropped).count();
    assert!(dropped > 0, "16 MiB past a 256 KiB limit: {got:?}");
    // What was not dropped arrives, in order, and nothing else.
    let kept: Vec<u32> = (0..256u32)
        .filter(|i| got[*i as usize] != SendStatus::Dropped)
        .collect();
    assert_eq!(read_numbers(&mut r, kept.len()), kept);
    assert_eq!(rx.recv_timeout(IO_TIMEOUT), Ok(Seen::Drained));
    // Still open.
    r.text("flood 1 16");
    assert_eq!(statuses(&rx, 1), vec![SendStatus::Sent]);
    assert_eq!(read_numbers(&mut r, 1), vec![0]);
}

/// The Close policy: the connection is closed with the configured code once a send would pass
/// the limit. The data queued before it still arrives, then the Close, then TCP ends.
fn closes_with(code: u16) {
    let (h, rx) = Flood::new();
    let srv = TestServer::start(
        config()
            .max_backpressure(256 << 10)
            .backpressure_policy(BackpressurePolicy::Close(code))
            .close_timeout(Duration::from_secs(30)),
        h,
    );
    let mut r = slow_reader(srv.addr);
    r.text("flood 256 65536");
    let got = statuses(&rx, 256);
    let first_drop = got
        .iter()
        .position(|s| *s == SendStatus::Dropped)
        .expect("a send past the limit");
    assert_eq!(rx.recv_timeout(IO_TIMEOUT), Ok(Seen::Closed(code)));
    // The messages queued before the limit, in order, then the Close.
    let mut next = 0u32;
    loop {
        let f = r.frame();
        if f.opcode == CLOSE {
            assert_eq!(f.close_code(), code);
            break;
        }
        assert_eq!(u32::from_be_bytes(f.payload[..4].try_into().unwrap()), next);
        next += 1;
    }
    assert!(
        next as usize <= first_drop,
        "{next} messages arrived, the limit was passed at {first_drop}"
    );
    r.expect_eof();
}

#[test]
fn close_policy_1008() {
    closes_with(1008);
}

#[test]
fn close_policy_1013() {
    closes_with(1013);
}
