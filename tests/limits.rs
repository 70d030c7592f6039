//! The process holds up when clients misbehave on purpose (issue 11): memory stays bounded (a
//! publish is held once for all slow subscribers; a stalled reader is closed; a global budget),
//! no reactor stalls on a connection with tens of thousands of topics, compression bombs cost
//! bounded CPU, one address cannot lock out the others, and a served port is not shared by
//! accident. BAD_INPUTS 49, 53, 54, 57, 65, 75. Bounds are wide: they hold on a noisy machine.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use myriad::proto::deflate::Deflater;
use myriad::{Config, Handler, Message, Request, Server, Upgrade, Ws};

/// A client whose receive buffer is small and which never reads.
fn non_reader(addr: SocketAddr, extra: &[&str]) -> Raw {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&addr.into()).unwrap();
    let mut r = Raw::from_stream(sock.into());
    r.write(&request(extra));
    assert_101(&r.read_head());
    r
}

/// "sub T" subscribes; "subs N" subscribes to N topics; anything else echoes.
#[derive(Clone)]
struct Subs;

impl Handler for Subs {
    type Data = ();

    fn on_upgrade(&mut self, _req: &Request<'_>) -> Upgrade<()> {
        Upgrade::accept(())
    }

    fn on_message(&mut self, ws: &mut Ws<'_, ()>, msg: Message<'_>) {
        match msg {
            Message::Text(t) if t.starts_with("sub ") => {
                let r = ws.subscribe(&t[4..]);
                let _ = ws.send_text(&format!("{r:?}"));
            }
            Message::Text(t) if t.starts_with("subs ") => {
                let n: usize = t[5..].parse().unwrap();
                for i in 0..n {
                    ws.subscribe(&format!("topic-{i}")).unwrap();
                }
                let _ = ws.send_text("subscribed");
            }
            _ => {
                let _ = ws.send(msg);
            }
        }
    }
}

/// BAD_INPUTS 54 (issue 11 item 2): a 16 MiB publish to 60 subscribers that never read is held
/// once, not once each (before: 60 copies, 775 MiB).
#[test]
fn sixty_non_readers_hold_one_copy_of_a_publish() {
    let srv = TestServer::start(config(), Subs);
    let mut subs = Vec::new();
    for _ in 0..60 {
        let mut r = non_reader(srv.addr, &[]);
        r.text("sub feed");
        subs.push(r);
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_bytes();
    let big = "x".repeat(16 << 20);
    srv.handle().publish("feed", Message::Text(&big)).unwrap();
    drop(big);
    wait_until("the publish to be queued for all 60", || {
        srv.handle().stats().total.messages_sent >= 60 + 60
    });
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 96 << 20,
        "RSS grew by {} MiB for one 16 MiB publish to 60 non-readers",
        grown >> 20
    );
    drop(subs);
}

/// BAD_INPUTS 65 (issue 11 item 2): a peer that reads nothing is closed at the write timeout,
/// pongs or not, and what was queued for it is freed.
#[test]
fn bad_inputs_65_a_stalled_reader_is_closed_at_the_write_timeout() {
    let srv = TestServer::start(
        config()
            .write_timeout(Duration::from_secs(1))
            .idle_timeout(Duration::ZERO),
        Subs,
    );
    let mut r = non_reader(srv.addr, &[]);
    let t0 = Instant::now();
    // 4 MiB echoed back to a reader that reads nothing: it stalls.
    let f = frame(true, 0, BINARY, &vec![7u8; 4 << 20]);
    r.stream.write_all(&f).unwrap();
    // It keeps answering pings (a Pong every 200 ms) but still reads nothing.
    let mut closed = false;
    while t0.elapsed() < Duration::from_secs(6) {
        if r.stream
            .write_all(&common::frame(true, 0, PONG, b"alive"))
            .is_err()
        {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        if srv.handle().stats().total.connections == 0 {
            closed = true;
            break;
        }
    }
    let took = t0.elapsed();
    assert!(closed, "still open after {took:?}");
    assert!(took > Duration::from_millis(800), "closed after {took:?}");
    wait_until("the queue to be freed", || {
        srv.handle().stats().total.backpressure_bytes == 0
    });
}

/// Issue 11 item 3: a connection subscribed to 60,000 topics shared with another closes without
/// stalling its reactor: another connection's ping is answered meanwhile (before: 1.0 s).
#[test]
fn closing_sixty_thousand_topics_does_not_stall_the_reactor() {
    let srv = TestServer::start(config().workers(1).max_topics_per_connection(100_000), Subs);
    let mut a = Raw::open(srv.addr);
    let mut b = Raw::open(srv.addr);
    for r in [&mut a, &mut b] {
        r.text("subs 60000");
        let f = r.frame();
        assert_eq!(f.text(), "subscribed");
    }
    let mut probe = Raw::open(srv.addr);
    let t0 = Instant::now();
    a.close(1000, b"");
    probe.send(true, PING, b"during");
    let pong = probe.frame();
    let took = t0.elapsed();
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (PONG, b"during".as_slice())
    );
    assert!(
        took < Duration::from_millis(500),
        "the ping waited {took:?}"
    );
    wait_until("a's subscriptions released", || {
        srv.handle().stats().total.subscriptions == 60_000
    });
}

/// Issue 11 item 3: limits on topics per connection and on a topic name's length, with a clear
/// error.
#[test]
fn topic_limits() {
    let srv = TestServer::start(
        config().max_topics_per_connection(3).max_topic_len(10),
        Subs,
    );
    let mut r = Raw::open(srv.addr);
    for t in ["a", "b", "c"] {
        r.text(&format!("sub {t}"));
        assert_eq!(r.frame().text(), "Ok(true)");
    }
    r.text("sub a");
    assert_eq!(r.frame().text(), "Ok(false)", "a repeat is no new topic");
    r.text("sub d");
    assert_eq!(r.frame().text(), "Err(TooManyTopics)");
    r.text("sub this-name-is-too-long");
    assert_eq!(r.frame().text(), "Err(TopicTooLong)");
    assert_echo(&mut r, "still open");
}

/// A handler whose every message makes 100 publishes to a topic nobody subscribes to.
#[derive(Clone)]
struct Publisher;

impl Handler for Publisher {
    type Data = ();
    fn on_upgrade(&mut self, _r: &Request<'_>) -> Upgrade<()> {
        Upgrade::accept(())
    }
    fn on_message(&mut self, ws: &mut Ws<'_, ()>, _m: Message<'_>) {
        for _ in 0..100 {
            let _ = ws.publish("empty", Message::Text("x"));
        }
        let _ = ws.send_text("done");
    }
}

/// Issue 11 item 4: a publish goes only to the reactors with subscribers of its topic (before,
/// every publish went to every reactor: 800 here).
#[test]
fn a_publish_goes_only_where_it_has_subscribers() {
    let srv = TestServer::start(config().workers(2), Publisher);
    let mut conns: Vec<Raw> = (0..4).map(|_| Raw::open(srv.addr)).collect();
    for c in &mut conns {
        c.text("go");
        assert_eq!(c.frame().text(), "done");
    }
    std::thread::sleep(Duration::from_millis(100));
    let s = srv.handle().stats();
    let per: Vec<u64> = s.reactors.iter().map(|r| r.publishes).collect();
    assert_eq!(s.total.publishes, 400, "{per:?}");
    assert_eq!(s.total.mailbox_dropped, 0);
}

/// BAD_INPUTS 53 (issue 11 item 5): connections that each hold an unfinished 15 MiB frame run
/// into the global memory budget: past it, the one that buffers more is closed with 1013 and a
/// new connection gets 503; the buffered figure shows it.
#[test]
fn bad_inputs_53_the_memory_budget_holds() {
    let budget = 40 << 20;
    let srv = TestServer::start(config().memory_budget(budget), Subs);
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..6 {
        let mut r = Raw::open(srv.addr);
        // A 15 MiB binary frame whose last bytes never come.
        let payload = vec![1u8; 15 << 20];
        let mut f = frame(true, 0, BINARY, &payload);
        f.truncate(f.len() - 100);
        let _ = r.stream.write_all(&f);
        std::thread::sleep(Duration::from_millis(150));
        match r.try_frame() {
            Ok(Some(c)) if c.opcode == CLOSE => {
                assert_eq!(c.close_code(), 1013);
                refused += 1;
            }
            _ => held.push(r),
        }
    }
    assert!(
        refused >= 3,
        "{refused} of 6 refused with a {budget}-byte budget"
    );
    let buffered = srv.handle().stats().total.buffered_bytes;
    assert!(
        buffered <= budget as u64 + (16 << 20),
        "buffered {buffered}"
    );
    // Over budget, a new connection is refused with 503 at once.
    if buffered as usize > budget {
        let head = http_refused(srv.addr, &request(&[]));
        assert_eq!(status_line(&head), "HTTP/1.1 503 Service Unavailable");
    }
    drop(held);
    wait_until("the buffers to be freed", || {
        srv.handle().stats().total.buffered_bytes == 0
    });
    let mut r = Raw::open(srv.addr);
    assert_echo(&mut r, "served again");
}

/// A raw permessage-deflate message: RSV1 set, the payload compressed (RFC 7692 §7.2.1).
fn compressed_frame(message: &[u8]) -> Vec<u8> {
    let mut packed = Vec::new();
    Deflater::new(15, 6).compress(message, true, &mut packed);
    frame(true, 0x4, BINARY, &packed)
}

/// BAD_INPUTS 49 (issue 11 item 6): bombs (1 MiB of zeros compressed to about a kilobyte) cost
/// inflation; past `max_inflate_rate` per second (with a burst of `max_message`) the connection
/// is closed with 1008 and a reason, while the others are served.
#[test]
fn bad_inputs_49_inflation_is_budgeted() {
    let srv = TestServer::start(
        config()
            .max_message(1 << 20)
            .max_frame(1 << 20)
            .max_inflate_rate(2 << 20),
        Subs,
    );
    let offer = ["Sec-WebSocket-Extensions: permessage-deflate"];
    let mut bomber = Raw::connect(srv.addr);
    bomber.write(&request(&offer));
    assert_101(&bomber.read_head());
    let bomb = compressed_frame(&vec![0u8; 1 << 20]);
    assert!(bomb.len() < 4096, "a bomb is small: {}", bomb.len());
    let mut other = Raw::open(srv.addr);
    let t0 = Instant::now();
    let mut close = None;
    for _ in 0..50 {
        if bomber.stream.write_all(&bomb).is_err() {
            break;
        }
        if let Ok(Some(f)) = bomber.try_frame()
            && f.opcode == CLOSE
        {
            close = Some(f);
            break;
        }
    }
    let close = close.unwrap_or_else(|| bomber.skip_to_close());
    assert_eq!(close.close_code(), 1008);
    assert_eq!(close.reason(), b"inflate rate limit");
    assert!(t0.elapsed() < Duration::from_secs(3));
    wait_until("the limit to be counted", || {
        srv.handle().stats().total.inflate_limited == 1
    });
    assert_echo(&mut other, "unaffected");
}

/// BAD_INPUTS 57 (issue 11 item 7): one address holding half-finished requests gets 429 past
/// its cap; a client from another address is still served.
#[test]
fn bad_inputs_57_one_address_cannot_lock_out_the_others() {
    let srv = TestServer::start(
        config()
            .workers(1)
            .max_pending_per_ip(20)
            .max_pending_handshakes(100)
            .handshake_timeout(Duration::from_secs(5)),
        Subs,
    );
    let half = &request(&[])[..30];
    let mut attackers = Vec::new();
    for _ in 0..20 {
        let mut r = Raw::connect(srv.addr);
        r.write(half);
        attackers.push(r);
    }
    std::thread::sleep(Duration::from_millis(100));
    let head = http_refused(srv.addr, half);
    assert_eq!(status_line(&head), "HTTP/1.1 429 Too Many Requests");
    // From 127.0.0.2: served.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    sock.connect(&srv.addr.into()).unwrap();
    let mut r = Raw::from_stream(sock.into());
    r.write(&request(&[]));
    assert_101(&r.read_head());
    assert_echo(&mut r, "another address");
    drop(attackers);
}

/// BAD_INPUTS 75 (issue 11 item 8): a second server on a port another serves fails to start
/// (address in use) unless both ask to share it.
#[test]
fn bad_inputs_75_a_served_port_is_not_shared_by_accident() {
    let first = Server::new(config(), Subs).start().unwrap();
    let addr = first.local_addr();
    let second = Server::new(
        Config {
            listen: addr,
            ..config()
        },
        Subs,
    )
    .start();
    let err = second.err().expect("the second server must not start");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains("address in use"), "{err}");
    first.shutdown();
    // Both asking: they share it.
    let a = Server::new(config().reuse_port(true), Subs)
        .start()
        .unwrap();
    let b = Server::new(
        Config {
            listen: a.local_addr(),
            ..config().reuse_port(true)
        },
        Subs,
    )
    .start()
    .unwrap();
    a.shutdown();
    b.shutdown();
}

/// Issue 11 item 9: two `Origin` headers are refused (which one decides would be a guess), as
/// is a malformed `Host`.
#[test]
fn duplicated_origin_and_malformed_host_are_refused() {
    let srv = TestServer::start(config(), Subs);
    let two = request(&["Origin: https://a.example", "Origin: https://b.example"]);
    assert_eq!(
        status_line(&http_refused(srv.addr, &two)),
        "HTTP/1.1 400 Bad Request"
    );
    let bad_host = String::from_utf8(request(&[]))
        .unwrap()
        .replace("Host: example.com", "Host: exa mple.com");
    assert_eq!(
        status_line(&http_refused(srv.addr, bad_host.as_bytes())),
        "HTTP/1.1 400 Bad Request"
    );
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n")
        .unwrap();
    let mut answer = [0u8; 12];
    s.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 404", "an IPv6 literal is a valid host");
}
