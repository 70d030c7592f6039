//! wss: the server speaks TLS 1.2 and 1.3 (rustls' unbuffered API on the reactors) with a
//! certificate made at test time (rcgen), and rustls' own client on the other side. Every send
//! path over TLS (echo, large messages over many records, fragments, publishes, pings, plain
//! HTTP), close_notify both ways, SNI, reload, the handshake cap and timeout, and bad input:
//! plain HTTP or TLS to the wrong port, garbage after the ClientHello, truncated records.
#![cfg(feature = "tls")]

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use myriad::client::{Client, Received, TlsStream};
use myriad::{Config, Fragment, HandshakeFailure, Message, TlsConfig, Ws};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A self-signed certificate for `names`, as PEM (chain, key) and DER (to trust).
struct Cert {
    pem: String,
    key: String,
    der: CertificateDer<'static>,
}

fn cert(names: &[&str]) -> Cert {
    let c =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("rcgen");
    Cert {
        pem: c.cert.pem(),
        key: c.signing_key.serialize_pem(),
        der: c.cert.der().clone(),
    }
}

#[allow(deprecated)] // ring's provider, as the server's.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client that trusts `trusted` only, speaking `versions`.
fn client_config(
    trusted: &[&CertificateDer<'static>],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in trusted {
        roots.add((*c).clone()).unwrap();
    }
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

fn tls13(c: &Cert) -> Arc<ClientConfig> {
    client_config(&[&c.der], &[&rustls::version::TLS13])
}

fn tls12(c: &Cert) -> Arc<ClientConfig> {
    client_config(&[&c.der], &[&rustls::version::TLS12])
}

/// The server's TLS settings: the default mode, or the record handover when
/// `MYRIAD_TLS_HANDOVER=1` (scripts/test.sh runs this file both ways).
fn tls_config(c: &Cert) -> Config {
    let handover = std::env::var("MYRIAD_TLS_HANDOVER").is_ok_and(|v| v == "1");
    config().tls(TlsConfig::from_pem(c.pem.as_bytes(), c.key.as_bytes()).record_handover(handover))
}

/// A TLS stream to the server, handshake done, with timeouts.
fn tls_stream(addr: SocketAddr, name: &str, cfg: Arc<ClientConfig>) -> io::Result<TlsStream> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    let conn = ClientConnection::new(cfg, ServerName::try_from(name.to_owned()).unwrap())
        .map_err(io::Error::other)?;
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// A wss client, upgraded.
fn wss(addr: SocketAddr, cfg: Arc<ClientConfig>) -> Client<TlsStream> {
    let s = tls_stream(addr, "localhost", cfg).expect("TLS handshake");
    Client::handshake(s, "localhost", "/", &[]).expect("upgrade over TLS")
}

fn text(c: &mut Client<TlsStream>) -> String {
    match c.recv().expect("a message") {
        Received::Text(t) => t,
        other => panic!("expected text, got {other:?}"),
    }
}

/// Commands the recorder's script understands (it echoes anything else).
fn script(ws: &mut Ws<'_, ()>, msg: &Message<'_>, notes: &mut Vec<String>) {
    let Message::Text(t) = msg else {
        let _ = ws.send(*msg);
        return;
    };
    if let Some(topic) = t.strip_prefix("sub ") {
        ws.subscribe(topic).unwrap();
        let _ = ws.send_text("subscribed");
    } else if let Some(rest) = t.strip_prefix("pub ") {
        let (topic, body) = rest.split_once(' ').unwrap();
        ws.publish(topic, Message::Text(body)).unwrap();
    } else if let Some(n) = t.strip_prefix("frag ") {
        let n: usize = n.parse().unwrap();
        ws.send_fragment(Fragment::First, Message::Text("f0,"))
            .unwrap();
        for i in 1..n - 1 {
            let part = format!("f{i},");
            ws.send_fragment(Fragment::Continue, Message::Text(&part))
                .unwrap();
        }
        ws.send_fragment(Fragment::Last, Message::Text("end"))
            .unwrap();
    } else if let Some(n) = t.strip_prefix("big ") {
        let n: usize = n.parse().unwrap();
        let body: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        let _ = ws.send_binary(&body);
    } else if *t == "ping" {
        ws.ping(b"tls-ping").unwrap();
    } else if *t == "bye" {
        ws.close(4001, "bye").unwrap();
    } else {
        let _ = ws.send(*msg);
    }
    notes.push(format!("did {t}"));
}

fn scripted(cfg: Config) -> (TestServer, Events) {
    let (mut rec, ev) = Recorder::new();
    rec.script = Some(script);
    (TestServer::start(cfg, rec), ev)
}

#[test]
fn echo_over_tls13_and_tls12() {
    let c = cert(&["localhost"]);
    let (srv, ev) = start_recorder(tls_config(&c));
    for client in [tls13(&c), tls12(&c)] {
        let mut ws = wss(srv.addr, client);
        ev.opened();
        for msg in ["hello", "", "wss \u{263a}"] {
            ws.send(Message::Text(msg)).unwrap();
            assert_eq!(text(&mut ws), msg);
            assert_eq!(ev.next(), Ev::Text(msg.into()));
        }
        // Larger than a record (16 KiB) and than a read: many records each way.
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        ws.send(Message::Binary(&big)).unwrap();
        assert_eq!(ws.recv().unwrap(), Received::Binary(big));
        ev.next();
        ws.close(1000, "done").unwrap();
        assert!(matches!(ws.recv().unwrap(), Received::Close(1000, _)));
        let (_, code, _) = ev.closed();
        assert_eq!(code, 1000);
    }
    let s = srv.handle().stats().total;
    assert_eq!(s.tls_handshakes, 2);
    assert_eq!(s.handshake_failures[HandshakeFailure::Tls as usize], 0);
}

#[test]
fn record_handover_echoes_across_key_updates_and_keeps_tls12_with_rustls() {
    let c = cert(&["localhost"]);
    let cfg =
        config().tls(TlsConfig::from_pem(c.pem.as_bytes(), c.key.as_bytes()).record_handover(true));
    let (srv, ev) = start_recorder(cfg);
    for client in [tls13(&c), tls12(&c)] {
        let mut ws = wss(srv.addr, client);
        ev.opened();
        for round in 0..3 {
            let msg = format!("round {round}");
            ws.send(Message::Text(&msg)).unwrap();
            assert_eq!(text(&mut ws), msg);
            assert_eq!(ev.next(), Ev::Text(msg));
            // The client asks for new keys both ways (TLS 1.3); the next echo needs them.
            let _ = ws.stream_mut().conn.refresh_traffic_keys();
        }
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8).collect();
        ws.send(Message::Binary(&big)).unwrap();
        assert_eq!(ws.recv().unwrap(), Received::Binary(big));
        ev.next();
        ws.close(1000, "done").unwrap();
        assert!(matches!(ws.recv().unwrap(), Received::Close(1000, _)));
        assert_eq!(ev.closed().1, 1000);
    }
}

#[test]
fn many_small_messages_in_one_write_are_all_echoed() {
    let c = cert(&["localhost"]);
    let (srv, _ev) = start_recorder(tls_config(&c));
    let mut ws = wss(srv.addr, tls13(&c));
    // 2,000 frames written back to back: they arrive in few records and leave corked.
    let mut batch = Vec::new();
    for i in 0..2000 {
        batch.extend_from_slice(&frame(true, 0, TEXT, format!("m{i}").as_bytes()));
    }
    ws.stream_mut().write_all(&batch).unwrap();
    for i in 0..2000 {
        assert_eq!(text(&mut ws), format!("m{i}"));
    }
}

#[test]
fn fragments_pings_and_server_close_over_tls() {
    let c = cert(&["localhost"]);
    let (srv, ev) = scripted(tls_config(&c));
    let mut ws = wss(srv.addr, tls13(&c));
    ev.opened();
    ws.send(Message::Text("frag 5")).unwrap();
    assert_eq!(text(&mut ws), "f0,f1,f2,f3,end");
    ws.send(Message::Text("ping")).unwrap();
    assert_eq!(ws.recv().unwrap(), Received::Ping(b"tls-ping".to_vec()));
    ws.send(Message::Text("big 100000")).unwrap();
    match ws.recv().unwrap() {
        Received::Binary(b) => {
            assert_eq!(b.len(), 100_000);
            assert!(b.iter().enumerate().all(|(i, &x)| x == (i % 251) as u8));
        }
        other => panic!("expected binary, got {other:?}"),
    }
    ws.send(Message::Text("bye")).unwrap();
    assert_eq!(ws.recv().unwrap(), Received::Close(4001, "bye".into()));
    ws.close(4001, "").unwrap();
    // After the close handshake the server ends its TLS stream with close_notify: rustls'
    // client reads a clean end (Ok(0)), not "closed without close_notify".
    let mut rest = Vec::new();
    let n = ws.stream_mut().read_to_end(&mut rest);
    assert!(n.is_ok(), "clean TLS end expected, got {n:?}");
    let (_, code, _) = ev.closed();
    assert_eq!(code, 4001);
}

#[test]
fn publishes_reach_tls_subscribers_framed_once_encrypted_each() {
    let c = cert(&["localhost"]);
    let (srv, _ev) = scripted(tls_config(&c).workers(2));
    let mut subs: Vec<_> = (0..4).map(|_| wss(srv.addr, tls13(&c))).collect();
    for s in &mut subs {
        s.send(Message::Text("sub news")).unwrap();
        assert_eq!(text(s), "subscribed");
    }
    wait_until("4 subscribers on the reactors", || {
        srv.handle().subscribers("news") == Ok(4)
    });
    let mut publisher = wss(srv.addr, tls12(&c));
    for i in 0..50 {
        publisher
            .send(Message::Text(&format!("pub news item-{i}")))
            .unwrap();
    }
    for s in &mut subs {
        for i in 0..50 {
            assert_eq!(text(s), format!("item-{i}"));
        }
    }
}

#[test]
fn plain_http_over_tls_reaches_on_request() {
    let c = cert(&["localhost"]);
    let (srv, _ev) = start_recorder(tls_config(&c));
    let mut s = tls_stream(srv.addr, "localhost", tls13(&c)).unwrap();
    s.write_all(b"GET /nothing HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "EOF before the answer");
        got.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&got);
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
}

#[test]
fn plain_http_on_the_tls_port_gets_a_plain_400() {
    let c = cert(&["localhost"]);
    let (srv, _ev) = start_recorder(tls_config(&c));
    for req in [
        request(&[]),
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    ] {
        let mut r = Raw::connect(srv.addr);
        r.write(&req);
        let head = r.read_head();
        assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
        let len: usize = header_value(&head, "Content-Length")
            .unwrap()
            .parse()
            .unwrap();
        while r.buf.len() < len {
            assert!(r.read_some().unwrap() > 0, "EOF inside the body");
        }
        assert!(String::from_utf8_lossy(&r.buf).contains("speaks TLS"));
        r.buf.clear();
        r.expect_closed();
    }
    wait_until("both refusals counted", || {
        srv.handle().stats().total.handshake_failures[HandshakeFailure::Tls as usize] == 2
    });
}

#[test]
fn tls_to_a_plain_port_is_refused() {
    let (srv, _ev) = start_recorder(config());
    let c = cert(&["localhost"]);
    let e = tls_stream(srv.addr, "localhost", tls13(&c));
    assert!(e.is_err(), "a TLS handshake with a plain server must fail");
    assert_eq!(srv.handle().stats().total.connections, 0);
}

#[test]
fn garbage_after_the_client_hello_gets_an_alert_and_a_close() {
    let c = cert(&["localhost"]);
    let (srv, _ev) = start_recorder(tls_config(&c));
    // A real ClientHello, then a record of an unknown content type. (TLS 1.2: its alerts
    // before the Finished messages are in the clear, record type 21.)
    let mut conn =
        ClientConnection::new(tls12(&c), ServerName::try_from("localhost").unwrap()).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    let mut r = Raw::connect(srv.addr);
    r.write(&hello);
    r.write(&[0x42, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5]);
    // The server's flight, then an alert record (content type 21), then the close.
    loop {
        match r.read_some() {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("expected the close, got {e}"),
        }
    }
    assert!(
        r.buf.windows(3).any(|w| w == [0x15, 0x03, 0x03]),
        "an alert record before the close"
    );
    wait_until("the failure counted and the slot freed", || {
        let s = srv.handle().stats().total;
        s.handshake_failures[HandshakeFailure::Tls as usize] == 1
    });
}

#[test]
fn truncated_record_and_close_without_close_notify_end_cleanly() {
    let c = cert(&["localhost"]);
    let (srv, ev) = start_recorder(tls_config(&c));
    // Half a ClientHello, then FIN.
    let mut conn =
        ClientConnection::new(tls13(&c), ServerName::try_from("localhost").unwrap()).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    let mut r = Raw::connect(srv.addr);
    r.write(&hello[..hello.len() / 2]);
    r.stream.shutdown(std::net::Shutdown::Write).unwrap();
    r.expect_closed();
    // An open wss connection whose peer goes without close_notify (nor a Close frame).
    let ws = wss(srv.addr, tls13(&c));
    ev.opened();
    ws.stream().sock.shutdown(std::net::Shutdown::Both).unwrap();
    let (_, code, _) = ev.closed();
    assert_eq!(code, 1006);
    // A record cut in the middle, then FIN.
    let mut ws = wss(srv.addr, tls13(&c));
    ev.opened();
    let mut rec = Vec::new();
    ws.stream_mut()
        .conn
        .writer()
        .write_all(&frame(true, 0, TEXT, b"never whole"))
        .unwrap();
    ws.stream_mut().conn.write_tls(&mut rec).unwrap();
    let sock = &mut ws.stream_mut().sock;
    sock.write_all(&rec[..rec.len() - 3]).unwrap();
    sock.shutdown(std::net::Shutdown::Write).unwrap();
    let (before, code, _) = ev.closed();
    assert!(
        before.is_empty(),
        "no message from a cut record: {before:?}"
    );
    assert_eq!(code, 1006);
    wait_until("no connection left", || {
        srv.handle().stats().total.connections == 0
    });
}

#[test]
fn sni_picks_the_certificate() {
    let a = cert(&["a.test"]);
    let b = cert(&["b.test"]);
    let cfg = config().tls(TlsConfig::from_pem(a.pem.as_bytes(), a.key.as_bytes()).sni(
        "b.test",
        b.pem.as_bytes(),
        b.key.as_bytes(),
    ));
    let (srv, _ev) = start_recorder(cfg);
    let only_a = client_config(&[&a.der], &[&rustls::version::TLS13]);
    let only_b = client_config(&[&b.der], &[&rustls::version::TLS13]);
    assert!(tls_stream(srv.addr, "a.test", only_a.clone()).is_ok());
    assert!(tls_stream(srv.addr, "b.test", only_b.clone()).is_ok());
    // b.test gets b's certificate, which a client trusting only a's refuses; and the default
    // (a) serves names it does not know.
    assert!(tls_stream(srv.addr, "b.test", only_a).is_err());
    assert!(tls_stream(srv.addr, "c.test", only_b).is_err());
}

#[test]
fn certificates_reload_without_a_restart() {
    let old = cert(&["localhost"]);
    let new = cert(&["localhost"]);
    let dir = std::env::temp_dir().join(format!("myriad-tls-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, &old.pem).unwrap();
    std::fs::write(&key_path, &old.key).unwrap();
    let cfg = config().tls(TlsConfig::from_pem_files(&cert_path, &key_path));
    let (srv, _ev) = start_recorder(cfg);
    let mut kept = wss(srv.addr, tls13(&old));
    // New files, then the reload: new connections get the new certificate.
    std::fs::write(&cert_path, &new.pem).unwrap();
    std::fs::write(&key_path, &new.key).unwrap();
    srv.handle().reload_tls().unwrap();
    assert!(tls_stream(srv.addr, "localhost", tls13(&old)).is_err());
    let mut fresh = wss(srv.addr, tls13(&new));
    fresh.send(Message::Text("new")).unwrap();
    assert_eq!(text(&mut fresh), "new");
    // The connection opened before keeps working.
    kept.send(Message::Text("old")).unwrap();
    assert_eq!(text(&mut kept), "old");
    // A broken file: the reload fails and the certificate in use stays.
    std::fs::write(&key_path, "not a key").unwrap();
    assert!(srv.handle().reload_tls().is_err());
    assert!(tls_stream(srv.addr, "localhost", tls13(&new)).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn handshakes_past_the_cap_are_closed_and_the_timeout_covers_tls() {
    let c = cert(&["localhost"]);
    let cfg = config()
        .handshake_timeout(Duration::from_millis(1500))
        .tls(TlsConfig::from_pem(c.pem.as_bytes(), c.key.as_bytes()).max_handshakes(1));
    let (srv, _ev) = start_recorder(cfg);
    // One connection that never says anything holds the only handshake slot...
    let mut idle = Raw::connect(srv.addr);
    std::thread::sleep(Duration::from_millis(100));
    assert!(tls_stream(srv.addr, "localhost", tls13(&c)).is_err());
    // ...until the handshake timeout closes it.
    idle.expect_closed();
    let mut ws = wss(srv.addr, tls13(&c));
    ws.send(Message::Text("after")).unwrap();
    assert_eq!(text(&mut ws), "after");
    assert!(srv.handle().stats().total.handshake_failures[HandshakeFailure::Tls as usize] >= 1);
}

#[test]
fn reload_without_tls_is_unsupported() {
    let (srv, _ev) = start_recorder(config());
    let e = srv.handle().reload_tls().unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::Unsupported);
}

#[test]
fn bad_certificates_fail_the_start() {
    let c = cert(&["localhost"]);
    let other = cert(&["localhost"]);
    // A key that is not the certificate's.
    let cfg = config().tls(TlsConfig::from_pem(c.pem.as_bytes(), other.key.as_bytes()));
    let e = myriad::Server::new(cfg, myriad::Echo)
        .start()
        .err()
        .unwrap();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    let cfg = config().tls(TlsConfig::from_pem(b"", c.key.as_bytes()));
    assert!(myriad::Server::new(cfg, myriad::Echo).start().is_err());
    let cfg = config().tls(TlsConfig::from_pem_files(
        "/nonexistent/c.pem",
        "/nonexistent/k.pem",
    ));
    let e = myriad::Server::new(cfg, myriad::Echo)
        .start()
        .err()
        .unwrap();
    assert!(e.to_string().contains("/nonexistent/c.pem"), "{e}");
}

/// One HTTPS request on a fresh connection (closed after): status and body.
fn https(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
    method: &str,
    target: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = tls_stream(addr, "localhost", cfg).unwrap();
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            // The server closed without close_notify after `Connection: close`: the bytes are in.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("read: {e}"),
        }
    }
    let at = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let status = String::from_utf8_lossy(&all[9..12]).parse().unwrap();
    (status, all[at..].to_vec())
}

/// Fallback sessions over TLS (issue 14): an SSE stream over TLS 1.3; POSTs over fresh TLS 1.3
/// and 1.2 connections land on any of four reactors and move, with their TLS state (rustls', or
/// the handover's records), to the session's; a long-poll parked over TLS is answered there.
#[test]
fn fallback_sessions_over_tls_move_with_their_connection() {
    let c = cert(&["localhost"]);
    let (srv, ev) = start_recorder(tls_config(&c).workers(4));
    let mut sse = tls_stream(srv.addr, "localhost", tls13(&c)).unwrap();
    sse.write_all(b"GET /chat HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut next_event = |got: &mut Vec<u8>| -> String {
        loop {
            if let Some(p) = got.windows(2).position(|w| w == b"\n\n") {
                let ev: Vec<u8> = got.drain(..p + 2).collect();
                let text = String::from_utf8(ev).unwrap();
                if let Some(i) = text.find("data: ") {
                    return text[i + 6..].trim_end().to_owned();
                }
                continue;
            }
            let n = sse.read(&mut buf).unwrap();
            assert!(n > 0, "SSE stream ended");
            got.extend_from_slice(&buf[..n]);
        }
    };
    // The head and the session event come together.
    let first = next_event(&mut got);
    let sid = first
        .strip_prefix('s')
        .expect("the session event")
        .to_owned();
    assert_eq!(sid.len(), 64, "{first:?}");
    let _ = ev.opened();
    let target = format!("/chat?myriad-session={sid}");
    for i in 0..12 {
        let cfg = if i % 2 == 0 { tls13(&c) } else { tls12(&c) };
        let body = format!("t{}:m{i}", 1 + i.to_string().len());
        assert_eq!(
            https(srv.addr, cfg, "POST", &target, body.as_bytes()).0,
            204
        );
    }
    for i in 0..12 {
        assert_eq!(next_event(&mut got), format!("tm{i}"));
    }
    assert!(srv.handle().stats().total.fallback_handovers > 0);
    // Long-polling over TLS: a parked poll is answered when a POST (on another connection,
    // perhaps another reactor) brings something.
    let (s, body) = https(
        srv.addr,
        tls13(&c),
        "GET",
        "/chat?myriad-transport=poll",
        b"",
    );
    assert_eq!(s, 200);
    let psid = String::from_utf8(body).unwrap()[7..].trim().to_owned();
    let addr = srv.addr;
    let (cfg12, ptarget) = (tls12(&c), format!("/chat?myriad-session={psid}"));
    let poster = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        https(addr, cfg12, "POST", &ptarget, b"t5:hello").0
    });
    let (s, body) = https(
        srv.addr,
        tls13(&c),
        "GET",
        &format!("/chat?myriad-session={psid}&myriad-ack=0"),
        b"",
    );
    assert_eq!(poster.join().unwrap(), 204);
    assert_eq!(
        (s, String::from_utf8(body).unwrap()),
        (200, "id: 1\ndata: thello\n\n".to_owned())
    );
}
