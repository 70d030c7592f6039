//! The library's broker bridge (`Config::broker`) against a real `redis-server`: two servers in
//! this process, each its own node, publishing from a callback and from `ServerHandle::publish`;
//! the counts in `Stats::broker`; the broker going away and coming back. Needs `redis-server` on
//! the PATH: without it the test says so and passes, unless `MYRIAD_REQUIRE_REDIS=1` (set by
//! scripts/test.sh, which installs it), where it fails.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use myriad::client::{Client, Received};
use myriad::{BrokerConfig, Message, ServerHandle, Ws};

fn have_redis() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("MYRIAD_REQUIRE_REDIS").is_err(),
            "redis-server is not installed (MYRIAD_REQUIRE_REDIS is set)"
        );
        eprintln!("tests/broker.rs: redis-server not found; skipped (scripts/test.sh installs it)");
    }
    found
}

struct Redis {
    child: Child,
}

impl Redis {
    fn start(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// "sub T" subscribes; "pub T body" publishes; anything else is ignored.
fn script(ws: &mut Ws<'_, ()>, msg: &Message<'_>, notes: &mut Vec<String>) {
    let Message::Text(t) = msg else { return };
    if let Some(topic) = t.strip_prefix("sub ") {
        ws.subscribe(topic).unwrap();
        let _ = ws.send_text("subscribed");
    } else if let Some(rest) = t.strip_prefix("pub ") {
        let (topic, body) = rest.split_once(' ').unwrap();
        ws.publish(topic, Message::Text(body)).unwrap();
    }
    notes.push(t.to_string());
}

fn node(redis: u16) -> (TestServer, Events) {
    let (mut rec, ev) = Recorder::new();
    rec.script = Some(script);
    let mut b = BrokerConfig::redis(&format!("redis://127.0.0.1:{redis}")).unwrap();
    b.reconnect_max = Duration::from_millis(200);
    (TestServer::start(config().broker(b), rec), ev)
}

fn text(c: &mut Client) -> String {
    match c.recv().expect("a message") {
        Received::Text(t) => t,
        other => panic!("expected text, got {other:?}"),
    }
}

fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn up(h: &ServerHandle) -> bool {
    h.broker_up() == Some(true)
}

/// A subscriber on `srv` to `topic`, with the node's channel subscription given time to reach
/// Redis (the subscribe is answered before Redis confirms it).
fn subscriber(srv: &TestServer, topic: &str) -> Client {
    let mut c = Client::connect(srv.addr, "/").unwrap();
    c.send(Message::Text(&format!("sub {topic}"))).unwrap();
    assert_eq!(text(&mut c), "subscribed");
    std::thread::sleep(Duration::from_millis(200));
    c
}

#[test]
fn publishes_cross_nodes_once_and_survive_a_broker_restart() {
    if !have_redis() {
        return;
    }
    let port = free_port();
    let mut redis = Redis::start(port);
    let (a, _ea) = node(port);
    let (b, _eb) = node(port);
    until("both nodes connected", || {
        up(&a.handle()) && up(&b.handle())
    });

    let mut on_a = subscriber(&a, "t");
    let mut on_b = subscriber(&b, "t");
    // From a callback on A: A's subscriber once (locally), B's through Redis.
    let mut p = Client::connect(a.addr, "/").unwrap();
    p.send(Message::Text("pub t from-callback")).unwrap();
    assert_eq!(text(&mut on_a), "from-callback");
    assert_eq!(text(&mut on_b), "from-callback");
    // From a handle on B.
    b.handle()
        .publish("t", Message::Text("from-handle"))
        .unwrap();
    assert_eq!(text(&mut on_a), "from-handle");
    assert_eq!(text(&mut on_b), "from-handle");
    // Nothing twice: the next message each gets is the next publish.
    a.handle().publish("t", Message::Text("third")).unwrap();
    assert_eq!(text(&mut on_a), "third");
    assert_eq!(text(&mut on_b), "third");
    let sa = a.handle().stats().broker.unwrap();
    assert!(sa.up && sa.published >= 2 && sa.received >= 1, "{sa:?}");

    // The broker goes away: local pub/sub goes on, and the nodes say they are down.
    drop(redis);
    until("A sees the broker down", || {
        a.handle().broker_up() == Some(false)
    });
    a.handle().publish("t", Message::Text("local")).unwrap();
    assert_eq!(text(&mut on_a), "local");
    // Back on the same port: both reconnect and subscribe again by themselves.
    redis = Redis::start(port);
    until("reconnected", || up(&a.handle()) && up(&b.handle()));
    let sb = b.handle().stats().broker.unwrap();
    assert!(sb.reconnects >= 1, "{sb:?}");
    std::thread::sleep(Duration::from_millis(300));
    // What A queued while down may reach B now (at most once); then a fresh publish does.
    a.handle().publish("t", Message::Text("after")).unwrap();
    let mut got = text(&mut on_b);
    if got == "local" {
        got = text(&mut on_b);
    }
    assert_eq!(got, "after");
    drop(redis);
}

#[test]
fn a_burst_larger_than_a_message_limit_is_delivered_whole() {
    if !have_redis() {
        return;
    }
    let port = free_port();
    let _redis = Redis::start(port);
    // A 64 KiB message limit: the bridge takes no reply larger, yet 2 MiB of small messages in
    // one burst must all get through (they are taken reply by reply, not as one read).
    let small = |redis: u16| {
        let (mut rec, ev) = Recorder::new();
        rec.script = Some(script);
        let b = BrokerConfig::redis(&format!("redis://127.0.0.1:{redis}")).unwrap();
        let cfg = config().max_frame(64 << 10).max_message(64 << 10).broker(b);
        (TestServer::start(cfg, rec), ev)
    };
    let (a, _ea) = small(port);
    let (b, _eb) = small(port);
    until("both nodes connected", || {
        up(&a.handle()) && up(&b.handle())
    });
    let mut on_b = subscriber(&b, "burst");
    let body = "x".repeat(1000);
    for i in 0..2000 {
        a.handle()
            .publish("burst", Message::Text(&format!("{i}:{body}")))
            .unwrap();
    }
    for i in 0..2000 {
        let t = text(&mut on_b);
        assert_eq!(t.split_once(':').unwrap().0, i.to_string());
    }
    assert_eq!(b.handle().stats().broker.unwrap().reconnects, 0);
}
