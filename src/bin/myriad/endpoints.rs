//! The plain HTTP endpoints of `myriad serve`: `/healthz`, `/readyz`, `/metrics` (Prometheus),
//! `/stats.json` and `/dashboard`, answered on the WebSocket port by a wrapper around the
//! server's handler (or on `--admin-listen`'s port by a server of their own).

use std::fmt::Write as _;

use myriad::{
    Handler, Message, Request, Response, ServerHandle, Stats, Upgrade, Ws, write_process_metrics,
};

/// The dashboard page: served as it is, it reads `/stats.json` once a second.
const DASHBOARD: &str = include_str!("dashboard.html");

/// The resident memory before the server took any connection, so that the dashboard can show
/// what connections cost beyond it.
static BASELINE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Notes the resident memory now as the baseline (call once, before serving).
pub fn note_baseline() {
    let _ = BASELINE.set(myriad_rss().unwrap_or(0));
}

/// `inner`'s WebSockets and requests, plus the endpoints. `target` is the server the endpoints
/// describe: `None` for the server that serves them.
#[derive(Clone)]
pub struct Endpoints<H> {
    pub inner: H,
    pub target: Option<ServerHandle>,
}

impl<H: Handler> Handler for Endpoints<H> {
    type Data = H::Data;

    fn on_upgrade(&mut self, req: &Request<'_>) -> Upgrade<H::Data> {
        self.inner.on_upgrade(req)
    }

    fn on_request(&mut self, req: &Request<'_>, res: &mut Response<'_, H::Data>) {
        let handle = self.target.clone().unwrap_or_else(|| res.handle());
        if !answer(&handle, req, res) {
            self.inner.on_request(req, res);
        }
    }

    fn on_open(&mut self, ws: &mut Ws<'_, H::Data>) {
        self.inner.on_open(ws);
    }

    fn on_message(&mut self, ws: &mut Ws<'_, H::Data>, msg: Message<'_>) {
        self.inner.on_message(ws, msg);
    }

    fn on_ping(&mut self, ws: &mut Ws<'_, H::Data>, payload: &[u8]) {
        self.inner.on_ping(ws, payload);
    }

    fn on_pong(&mut self, ws: &mut Ws<'_, H::Data>, payload: &[u8]) {
        self.inner.on_pong(ws, payload);
    }

    fn on_drain(&mut self, ws: &mut Ws<'_, H::Data>) {
        self.inner.on_drain(ws);
    }

    fn on_dropped(&mut self, ws: &mut Ws<'_, H::Data>, count: u64) {
        self.inner.on_dropped(ws, count);
    }

    fn on_close(&mut self, ws: &mut Ws<'_, H::Data>, code: u16, reason: &[u8]) {
        self.inner.on_close(ws, code, reason);
    }
}

/// The admin port's handler: the endpoints, and nothing else (upgrades get 404).
#[derive(Clone)]
pub struct Admin(pub ServerHandle);

impl Handler for Admin {
    type Data = ();

    fn on_upgrade(&mut self, _req: &Request<'_>) -> Upgrade<()> {
        Upgrade::reject(404)
    }

    fn on_request(&mut self, req: &Request<'_>, res: &mut Response<'_, ()>) {
        answer(&self.0, req, res);
    }

    fn on_message(&mut self, _ws: &mut Ws<'_, ()>, _msg: Message<'_>) {}
}

/// Answers `req` if it names an endpoint; returns whether it did.
fn answer<D>(handle: &ServerHandle, req: &Request<'_>, res: &mut Response<'_, D>) -> bool {
    if !matches!(req.method(), "GET" | "HEAD") {
        return false;
    }
    match req.path() {
        "/healthz" => {
            // Serving: every reactor thread runs.
            if handle.is_healthy() {
                res.text("ok\n");
            } else {
                res.text("a reactor stopped\n").status(503);
            }
        }
        "/readyz" => {
            if handle.is_stopping() {
                res.text("shutting down\n").status(503);
            } else if !handle.is_healthy() {
                res.text("a reactor stopped\n").status(503);
            } else if handle.broker_up() == Some(false) {
                res.text("the broker is down\n").status(503);
            } else {
                res.text("ready\n");
            }
        }
        "/metrics" => {
            let mut out = String::with_capacity(16 << 10);
            handle.stats().write_prometheus(&mut out);
            write_process_metrics(&mut out);
            res.status(200)
                .header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                .body(out.as_bytes());
        }
        "/stats.json" => {
            let json = stats_json(&handle.stats());
            res.status(200)
                .header("Content-Type", "application/json")
                .header("Cache-Control", "no-store")
                .body(json.as_bytes());
        }
        "/dashboard" | "/dashboard/" => {
            res.status(200)
                .header("Content-Type", "text/html; charset=utf-8")
                .body(DASHBOARD.as_bytes());
        }
        _ => return false,
    }
    true
}

/// The totals the dashboard shows, as one JSON object.
fn stats_json(s: &Stats) -> String {
    let t = &s.total;
    let mut out = String::from("{");
    let rss = myriad_rss().unwrap_or(0);
    let fields = [
        ("connections", t.connections),
        ("opened", t.opened),
        ("messages_received", t.messages_received),
        ("messages_sent", t.messages_sent),
        ("bytes_received", t.bytes_received),
        ("bytes_sent", t.bytes_sent),
        ("messages_dropped", t.messages_dropped),
        ("backpressure_bytes", t.backpressure_bytes),
        ("topics", t.topics),
        ("subscriptions", t.subscriptions),
        ("http_requests", t.http_requests),
        ("resident_bytes", rss),
        (
            "baseline_resident_bytes",
            BASELINE.get().copied().unwrap_or(0),
        ),
        ("reactors", s.reactors.len() as u64),
    ];
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{k}\":{v}");
    }
    out.push('}');
    out
}

/// The resident memory, read from the Prometheus rendering's source.
fn myriad_rss() -> Option<u64> {
    let mut out = String::new();
    write_process_metrics(&mut out);
    out.lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .and_then(|v| v.trim().parse().ok())
}
