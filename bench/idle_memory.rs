//! Memory per idle connection, quickly: prints the size of the connection entry and the server's
//! anonymous RSS per idle connection at 10,000 connections (MYRIAD_IDLE_N to change), then after
//! they close; without compression, and with permessage-deflate negotiated in each context mode;
//! then with each connection subscribed to one pub/sub topic (the same for all), and to four,
//! which gives the bytes per subscription (against the run without).
//! Then over wss (TLS 1.3, a certificate made by rcgen): the same figure, and the live heap bytes
//! per connection from a counting allocator (what the server allocated and still holds), beside
//! the size of the boxed TLS state.
//! Then fallback sessions: idle SSE streams (the first event read), and long-poll sessions each
//! with a poll parked on it (the state of an idle long-poll client).
//! Each configuration runs in a fresh process (this same executable), and the clients live in
//! another child process, so that neither earlier runs nor client memory and file descriptors are
//! counted against the server. Run: `cargo bench --bench idle_memory` (`-- wss` for that one only).
//!
//! For the full experiment over many processes, see `scripts/scale.sh`.

#![allow(unsafe_code)] // the counting allocator below, and nothing else

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The system allocator, counting the bytes it has handed out and not had back.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

use myriad::{Config, Handler, Message, Request, Server, Upgrade, Ws};
use myriad::{ContextMode, DeflateConfig};

/// Counts opens; subscribes each connection to `topics` topics ("t0", "t1", ...) when it opens.
#[derive(Clone)]
struct Opens(Arc<AtomicUsize>, usize);

impl Handler for Opens {
    type Data = ();
    fn on_upgrade(&mut self, _req: &Request<'_>) -> Upgrade<()> {
        Upgrade::accept(())
    }
    fn on_open(&mut self, ws: &mut Ws<'_, ()>) {
        for i in 0..self.1 {
            let _ = ws.subscribe(&format!("t{i}"));
        }
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn on_message(&mut self, ws: &mut Ws<'_, ()>, msg: Message<'_>) {
        let _ = ws.send(msg);
    }
}

fn rss_anon_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("RssAnon:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Opens a connection with a raw handshake, offering permessage-deflate when `deflate`.
fn open(addr: std::net::SocketAddr, deflate: bool) -> std::io::Result<std::net::TcpStream> {
    let mut s = std::net::TcpStream::connect(addr)?;
    let mut req = Vec::new();
    let offer = deflate.then_some("permessage-deflate; client_max_window_bits");
    myriad::proto::handshake::write_request(
        &mut req,
        &addr.to_string(),
        "/",
        "dGhlIHNhbXBsZSBub25jZQ==",
        &[],
        offer,
    );
    s.write_all(&req)?;
    let head = read_until(&mut s, b"\r\n\r\n")?;
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if !text.starts_with("http/1.1 101") || (deflate != text.contains("permessage-deflate")) {
        return Err(std::io::Error::other("unexpected upgrade answer"));
    }
    Ok(s)
}

/// Reads from `s` until `end` has been seen (a response head's blank line, an event's); returns
/// everything read.
fn read_until(s: &mut impl Read, end: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut b = [0u8; 1024];
    while !got.windows(end.len()).any(|w| w == end) {
        let n = s.read(&mut b)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got.extend_from_slice(&b[..n]);
    }
    Ok(got)
}

/// Opens a fallback session: an SSE stream (its first event read), or a long-poll session with
/// a poll parked on it (on the same kept-alive connection).
fn open_fallback(addr: std::net::SocketAddr, sse: bool) -> std::io::Result<std::net::TcpStream> {
    let mut s = std::net::TcpStream::connect(addr)?;
    if sse {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")?;
        let got = read_until(&mut s, b"\n\n")?;
        if !got.starts_with(b"HTTP/1.1 200") {
            return Err(std::io::Error::other("unexpected SSE answer"));
        }
        return Ok(s);
    }
    s.write_all(b"GET /?myriad-transport=poll HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let got = read_until(&mut s, b"\n\n")?;
    let text = String::from_utf8_lossy(&got);
    let sid = text
        .split("data: s")
        .nth(1)
        .map(|r| r.trim().to_owned())
        .ok_or_else(|| std::io::Error::other("no session id"))?;
    s.write_all(
        format!("GET /?myriad-session={sid}&myriad-ack=0 HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )?;
    Ok(s)
}

/// Opens a wss connection trusting `ca` (DER), TLS 1.3: the handshake, then the upgrade.
fn open_tls(
    addr: std::net::SocketAddr,
    cfg: &Arc<rustls::ClientConfig>,
) -> std::io::Result<myriad::client::TlsStream> {
    let tcp = std::net::TcpStream::connect(addr)?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(cfg.clone(), name).map_err(std::io::Error::other)?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let mut req = Vec::new();
    myriad::proto::handshake::write_request(
        &mut req,
        "localhost",
        "/",
        "dGhlIHNhbXBsZSBub25jZQ==",
        &[],
        None,
    );
    s.write_all(&req)?;
    let head = read_until(&mut s, b"\r\n\r\n")?;
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(std::io::Error::other("unexpected upgrade answer"));
    }
    Ok(s)
}

#[allow(deprecated)] // ring's provider, as the server's.
fn client_tls(ca: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(ca.to_vec()))
        .expect("root");
    // As a browser connects: X25519 first, ALPN http/1.1.
    use rustls::crypto::ring::kx_group;
    let provider = rustls::crypto::CryptoProvider {
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        ..rustls::crypto::ring::default_provider()
    };
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

fn child(spec: &str) {
    let mut it = spec.split(',');
    let addr = it.next().expect("addr").parse().expect("addr");
    let n: usize = it.next().expect("n").parse().expect("n");
    let offer = it.next();
    let deflate = offer == Some("deflate");
    let _ = myriad::raise_open_files_limit();
    let mut held = Vec::with_capacity(n);
    let mut secure = Vec::new();
    let tls = (offer == Some("tls")).then(|| {
        let ca = std::fs::read(it.next().expect("ca path")).expect("ca");
        client_tls(&ca)
    });
    for _ in 0..n {
        let r = match (&tls, offer) {
            (Some(cfg), _) => open_tls(addr, cfg).map(|s| secure.push(s)),
            (None, Some(f @ ("sse" | "poll"))) => {
                open_fallback(addr, f == "sse").map(|c| held.push(c))
            }
            (None, _) => open(addr, deflate).map(|c| held.push(c)),
        };
        if let Err(e) = r {
            eprintln!("child: connect: {e}");
            break;
        }
    }
    println!("ready {}", held.len() + secure.len());
    let _ = std::io::stdout().flush();
    // Hold until the parent closes our stdin.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

const MODES: [&str; 10] = [
    "none",
    "shared",
    "inflate-window",
    "dedicated",
    "subscribed-1",
    "subscribed-4",
    "wss",
    "wss-handover",
    "sse",
    "poll",
];

fn main() {
    if let Ok(spec) = std::env::var("MYRIAD_IDLE_CHILD") {
        child(&spec);
        return;
    }
    if let Ok(mode) = std::env::var("MYRIAD_IDLE_MODE") {
        server(&mode);
        return;
    }
    println!(
        "size_of::<Conn<()>>() = {} bytes; TLS table slot {} bytes, boxed rustls state {} bytes, \
         boxed handover records {} bytes",
        myriad::internals::CONN_ENTRY_SIZE,
        myriad::internals::TLS_SLOT_SIZE,
        myriad::internals::TLS_RUSTLS_SIZE,
        myriad::internals::TLS_RECORDS_SIZE,
    );
    let mut plain = None;
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| MODES.contains(&a.as_str()))
        .collect();
    for mode in MODES {
        if !only.is_empty() && !only.iter().any(|m| m == mode) {
            continue;
        }
        let out = Command::new(std::env::current_exe().expect("exe"))
            .env("MYRIAD_IDLE_MODE", mode)
            .stderr(Stdio::inherit())
            .output()
            .expect("server process");
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
        assert!(out.status.success(), "{mode} run failed");
        let per_conn: f64 = text
            .rsplit("bytes per idle conn")
            .next()
            .and_then(|v| v.trim().parse().ok())
            .expect("a figure");
        match mode.strip_prefix("subscribed-") {
            None if mode == "none" => plain = Some(per_conn),
            None => {}
            Some(k) => {
                let k: f64 = k.parse().expect("topics");
                let Some(base) = plain else { continue };
                println!(
                    "  -> bytes per subscription with {k} per connection: {:.1}",
                    (per_conn - base) / k
                );
            }
        }
    }
}

fn server(mode: &str) {
    let n: usize = std::env::var("MYRIAD_IDLE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let topics = mode
        .strip_prefix("subscribed-")
        .map_or(0, |k| k.parse().expect("topics"));
    let deflate = match mode {
        "none" | "subscribed-1" | "subscribed-4" | "wss" | "wss-handover" | "sse" | "poll" => None,
        "shared" => Some(ContextMode::Shared),
        "inflate-window" => Some(ContextMode::InflateWindow),
        _ => Some(ContextMode::Dedicated),
    };
    let opened = Arc::new(AtomicUsize::new(0));
    let mut cfg = Config::default()
        .listen("127.0.0.1:0".parse().expect("addr"))
        .workers(1)
        .max_pending_handshakes(n)
        .max_pending_per_ip(n)
        .poll_timeout(Duration::from_secs(120))
        .session_timeout(Duration::from_secs(120))
        .deflate(DeflateConfig {
            enabled: deflate.is_some(),
            mode: deflate.unwrap_or(ContextMode::Shared),
            ..DeflateConfig::default()
        });
    let mut ca_path = None;
    if mode.starts_with("wss") {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
        let path = std::env::temp_dir().join(format!("myriad-idle-ca-{}.der", std::process::id()));
        std::fs::write(&path, c.cert.der()).expect("ca file");
        ca_path = Some(path);
        cfg = cfg.tls(
            myriad::TlsConfig::from_pem(
                c.cert.pem().as_bytes(),
                c.signing_key.serialize_pem().as_bytes(),
            )
            .max_handshakes(n)
            .record_handover(mode == "wss-handover"),
        );
    }
    let running = Server::new(cfg, Opens(opened.clone(), topics))
        .start()
        .expect("server");
    let addr = running.local_addr();
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_anon_kb();
    let live_before = LIVE.load(Ordering::Relaxed);
    let offer = match (&ca_path, deflate) {
        (Some(p), _) => format!("tls,{}", p.display()),
        (None, Some(_)) => "deflate".to_owned(),
        (None, None) if mode == "sse" || mode == "poll" => mode.to_owned(),
        (None, None) => "plain".to_owned(),
    };
    let mut kid = Command::new(std::env::current_exe().expect("exe"))
        .env_remove("MYRIAD_IDLE_MODE")
        .env("MYRIAD_IDLE_CHILD", format!("{addr},{n},{offer}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("child");
    let mut line = String::new();
    BufReader::new(kid.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("child output");
    let held: usize = line
        .trim()
        .strip_prefix("ready ")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while opened.load(Ordering::Relaxed) < held && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let during = rss_anon_kb();
    let live_during = LIVE.load(Ordering::Relaxed);
    drop(kid.stdin.take());
    let _ = kid.wait();
    std::thread::sleep(Duration::from_millis(2500));
    let after = rss_anon_kb();
    let opens = opened.load(Ordering::Relaxed);
    if let Some(p) = &ca_path {
        let _ = std::fs::remove_file(p);
    }
    println!(
        "{mode:15} held {held:6}  anon RSS before/held/after {before:5} / {during:5} / {after:5} kB  live heap per conn {:7.1}  bytes per idle conn {:6.1}",
        (live_during - live_before) as f64 / held.max(1) as f64,
        (during.saturating_sub(before)) as f64 * 1024.0 / held.max(1) as f64
    );
    running.shutdown();
    // The bench checks its own answer: every connection opened (and negotiated as asked).
    assert_eq!(held, n, "child could not open every connection");
    assert_eq!(opens, n, "server did not see every connection open");
}
