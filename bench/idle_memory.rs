//! Memory per idle connection, quickly: prints the size of the connection entry and the server's
//! anonymous RSS per idle connection at 10,000 connections (MYRIAD_IDLE_N to change), then after
//! they close; without compression, and with permessage-deflate negotiated in each context mode;
//! then with each connection subscribed to one pub/sub topic (the same for all), and to four,
//! which gives the bytes per subscription (against the run without).
//! Each configuration runs in a fresh process (this same executable), and the clients live in
//! another child process, so that neither earlier runs nor client memory and file descriptors are
//! counted against the server. Run: `cargo bench --bench idle_memory`.
//!
//! For the full experiment over many processes, see `scripts/scale.sh`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use myriad::{Config, Handler, Message, Request, Server, Upgrade, Ws};
use myriad::{ContextMode, DeflateConfig};

/// Counts opens; subscribes each connection to `topics` topics ("t0", "t1", ...) when it opens.
#[derive(Clone)]
struct Counting(Arc<AtomicUsize>, usize);

impl Handler for Counting {
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
    let mut head = Vec::new();
    let mut b = [0u8; 1024];
    while myriad::proto::handshake::find_head_end(&head, 0).is_none() {
        let n = s.read(&mut b)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&b[..n]);
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if !text.starts_with("http/1.1 101") || (deflate != text.contains("permessage-deflate")) {
        return Err(std::io::Error::other("unexpected upgrade answer"));
    }
    Ok(s)
}

fn child(spec: &str) {
    let mut it = spec.split(',');
    let addr = it.next().expect("addr").parse().expect("addr");
    let n: usize = it.next().expect("n").parse().expect("n");
    let deflate = it.next() == Some("deflate");
    let _ = myriad::raise_open_files_limit();
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        match open(addr, deflate) {
            Ok(c) => held.push(c),
            Err(e) => {
                eprintln!("child: connect: {e}");
                break;
            }
        }
    }
    println!("ready {}", held.len());
    let _ = std::io::stdout().flush();
    // Hold until the parent closes our stdin.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

const MODES: [&str; 6] = [
    "none",
    "shared",
    "inflate-window",
    "dedicated",
    "subscribed-1",
    "subscribed-4",
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
        "size_of::<Conn<()>>() = {} bytes",
        myriad::internals::CONN_ENTRY_SIZE
    );
    let mut plain = None;
    for mode in MODES {
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
                let base = plain.expect("the run without subscriptions comes first");
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
        "none" | "subscribed-1" | "subscribed-4" => None,
        "shared" => Some(ContextMode::Shared),
        "inflate-window" => Some(ContextMode::InflateWindow),
        _ => Some(ContextMode::Dedicated),
    };
    let opened = Arc::new(AtomicUsize::new(0));
    let running = Server::new(
        Config::default()
            .listen("127.0.0.1:0".parse().expect("addr"))
            .workers(1)
            .max_pending_handshakes(n)
            .max_pending_per_ip(n)
            .deflate(DeflateConfig {
                enabled: deflate.is_some(),
                mode: deflate.unwrap_or(ContextMode::Shared),
                ..DeflateConfig::default()
            }),
        Counting(opened.clone(), topics),
    )
    .start()
    .expect("server");
    let addr = running.local_addr();
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_anon_kb();
    let offer = if deflate.is_some() {
        "deflate"
    } else {
        "plain"
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
    drop(kid.stdin.take());
    let _ = kid.wait();
    std::thread::sleep(Duration::from_millis(2500));
    let after = rss_anon_kb();
    let opens = opened.load(Ordering::Relaxed);
    println!(
        "{mode:15} held {held:6}  anon RSS before/held/after {before:5} / {during:5} / {after:5} kB  bytes per idle conn {:6.1}",
        (during.saturating_sub(before)) as f64 * 1024.0 / held.max(1) as f64
    );
    running.shutdown();
    // The bench checks its own answer: every connection opened (and negotiated as asked).
    assert_eq!(held, n, "child could not open every connection");
    assert_eq!(opens, n, "server did not see every connection open");
}
