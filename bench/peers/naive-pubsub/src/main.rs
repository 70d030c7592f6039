//! `naive-pubsub`: the JSON protocol of `myriad serve --mode pubsub` (sub, unsub, pub), written
//! the way a handler without topics would: the handler keeps its own subscriber lists and, for
//! each publish, loops over them and sends to each connection with `Ws::send_to`. So each
//! delivery is framed (and, with permessage-deflate, compressed) on its own, and leaves in its
//! own write. `scripts/fanout.sh` runs it beside the real thing to show what topics save.
//!
//! Usage: `naive-pubsub [--listen 127.0.0.1:9402] [--workers N] [--no-deflate]`. SIGINT/SIGTERM
//! stop it; the reactors then log their publish, delivery and compression counts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use myriad::DeflateConfig;
use myriad::{Config, ConnId, Handler, Message, Request, Server, Upgrade, Ws};
use simd_json::prelude::*;

/// Subscribers by topic, shared by the reactors (a lock: this is the naive version).
type Lists = Arc<Mutex<HashMap<String, Vec<ConnId>>>>;

#[derive(Clone)]
struct Naive {
    lists: Lists,
    /// Publishes handled, logged at stop (for compressions per publish).
    published: Arc<AtomicU64>,
    input: Vec<u8>,
    out: String,
    /// The subscriber list, copied out of the lock before sending.
    targets: Vec<ConnId>,
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Naive {
    fn handle(&mut self, ws: &mut Ws<'_, ()>) -> Result<(), &'static str> {
        let v = simd_json::to_borrowed_value(&mut self.input).map_err(|_| "malformed JSON")?;
        let op = v.get_str("op").ok_or("missing field: op")?;
        let topic = v.get_str("topic").ok_or("missing field: topic")?;
        let id = ws.id();
        match op {
            "sub" | "unsub" => {
                {
                    let mut lists = self.lists.lock().map_err(|_| "poisoned")?;
                    let list = lists.entry(topic.to_string()).or_default();
                    list.retain(|&x| x != id);
                    if op == "sub" {
                        list.push(id);
                    }
                }
                self.out.clear();
                self.out.push_str("{\"ok\":\"");
                self.out.push_str(op);
                self.out.push_str("\",\"topic\":");
                json_str(&mut self.out, topic);
                self.out.push('}');
                let _ = ws.send_text(&self.out);
            }
            "pub" => {
                let data = v.get("data").ok_or("missing field: data")?;
                self.out.clear();
                self.out.push_str("{\"topic\":");
                json_str(&mut self.out, topic);
                self.out.push_str(",\"data\":");
                self.out.push_str(&data.encode());
                self.out.push('}');
                self.published.fetch_add(1, Ordering::Relaxed);
                self.targets.clear();
                if let Some(list) = self.lists.lock().map_err(|_| "poisoned")?.get(topic) {
                    self.targets.extend_from_slice(list);
                }
                // One send per subscriber: framed, compressed and written for each.
                for &to in &self.targets {
                    let _ = ws.send_to(to, Message::Text(&self.out));
                }
            }
            _ => return Err("unknown op"),
        }
        Ok(())
    }
}

impl Handler for Naive {
    type Data = ();

    fn on_upgrade(&mut self, _req: &Request<'_>) -> Upgrade<()> {
        Upgrade::accept(())
    }

    fn on_message(&mut self, ws: &mut Ws<'_, ()>, msg: Message<'_>) {
        let Message::Text(t) = msg else {
            let _ = ws.send_text("{\"error\":\"binary messages are not part of the protocol\"}");
            return;
        };
        self.input.clear();
        self.input.extend_from_slice(t.as_bytes());
        if let Err(why) = self.handle(ws) {
            self.out.clear();
            self.out.push_str("{\"error\":");
            json_str(&mut self.out, why);
            self.out.push('}');
            let _ = ws.send_text(&self.out);
        }
    }

    fn on_close(&mut self, ws: &mut Ws<'_, ()>, _code: u16, _reason: &[u8]) {
        let id = ws.id();
        if let Ok(mut lists) = self.lists.lock() {
            for list in lists.values_mut() {
                list.retain(|&x| x != id);
            }
        }
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut listen: SocketAddr = "127.0.0.1:9402".parse().expect("literal address");
    let mut workers = 1;
    let mut deflate = true;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => match args.next().and_then(|v| v.parse().ok()) {
                Some(v) => listen = v,
                None => return usage(),
            },
            "--workers" => match args.next().and_then(|v| v.parse().ok()) {
                Some(v) => workers = v,
                None => return usage(),
            },
            "--no-deflate" => deflate = false,
            _ => return usage(),
        }
    }
    let cfg = Config::default()
        .listen(listen)
        .workers(workers)
        .max_pending_handshakes(20_000)
        .max_pending_per_ip(20_000)
        .deflate(DeflateConfig {
            enabled: deflate,
            ..DeflateConfig::default()
        });
    let published = Arc::new(AtomicU64::new(0));
    let handler = Naive {
        lists: Lists::default(),
        published: published.clone(),
        input: Vec::new(),
        out: String::new(),
        targets: Vec::new(),
    };
    let running = match Server::new(cfg, handler).start() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("naive-pubsub: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    log::info!("naive-pubsub on ws://{}", running.local_addr());
    let _ = running.run_until_signal();
    log::info!(
        "naive-pubsub: {} publishes handled",
        published.load(Ordering::Relaxed)
    );
    ExitCode::SUCCESS
}

fn usage() -> ExitCode {
    eprintln!("usage: naive-pubsub [--listen ADDR] [--workers N] [--no-deflate]");
    ExitCode::FAILURE
}
