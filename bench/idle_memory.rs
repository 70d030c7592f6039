//! Memory per idle connection, quickly: prints the size of the connection entry and the server's
//! anonymous RSS per idle connection at 10,000 connections (MYRIAD_IDLE_N to change), then after
//! they close. The clients live in a child process (this same executable) so that their memory
//! and file descriptors are not counted against the server. Run: `cargo bench --bench idle_memory`.
//!
//! For the full experiment over many processes, see `scripts/scale.sh`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use myriad::{Config, Handler, Message, Request, Server, Upgrade, Ws};

#[derive(Clone)]
struct Counting(Arc<AtomicUsize>);

impl Handler for Counting {
    type Data = ();
    fn on_upgrade(&mut self, _req: &Request<'_>) -> Upgrade<()> {
        Upgrade::accept(())
    }
    fn on_open(&mut self, _ws: &mut Ws<'_, ()>) {
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

fn child(spec: &str) {
    let (addr, n) = spec.split_once(',').expect("addr,n");
    let addr = addr.parse().expect("addr");
    let n: usize = n.parse().expect("n");
    let _ = myriad::sys::raise_nofile_limit();
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        match myriad::client::Client::connect(addr, "/") {
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

fn main() {
    if let Ok(spec) = std::env::var("MYRIAD_IDLE_CHILD") {
        child(&spec);
        return;
    }
    let n: usize = std::env::var("MYRIAD_IDLE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let opened = Arc::new(AtomicUsize::new(0));
    let running = Server::new(
        Config::default()
            .listen("127.0.0.1:0".parse().expect("addr"))
            .workers(1)
            .max_pending_handshakes(n),
        Counting(opened.clone()),
    )
    .start()
    .expect("server");
    let addr = running.local_addr();
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_anon_kb();
    let mut kid = Command::new(std::env::current_exe().expect("exe"))
        .env("MYRIAD_IDLE_CHILD", format!("{addr},{n}"))
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
        "size_of::<Conn<()>>()             {} bytes",
        std::mem::size_of::<myriad::conn::Conn<()>>()
    );
    println!("connections held                  {held} (server saw {opens} opens)");
    println!("server anon RSS before/held/after {before} / {during} / {after} kB");
    println!(
        "user-space bytes per idle conn    {:.1}",
        (during.saturating_sub(before)) as f64 * 1024.0 / held.max(1) as f64
    );
    println!(
        "not returned after close          {} kB",
        after.saturating_sub(before)
    );
    running.shutdown();
    // The bench checks its own answer: every connection opened.
    assert_eq!(held, n, "child could not open every connection");
    assert_eq!(opens, n, "server did not see every connection open");
}
