//! `myriad serve`: a WebSocket server on the myriad library: echo or the JSON pub/sub protocol,
//! with health, readiness, metrics and a dashboard on the same port.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use log::{error, info};
use myriad::{
    BackpressurePolicy, Config, ContextMode, DeflateConfig, Echo, Handler, Running, Server,
};

mod endpoints;
mod pubsub;
use endpoints::{Admin, Endpoints};
use pubsub::PubSub;

#[derive(Parser)]
#[command(
    name = "myriad",
    version,
    about = "WebSocket server for very many connections",
    after_help = "Logging: RUST_LOG=debug shows every refused request and every closed \
                  connection with its reason; RUST_LOG=info (the default) a summary every 10 s."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve WebSockets (--mode echo: each message back to its sender; --mode pubsub: the JSON
    /// pub/sub protocol), and /healthz, /readyz, /metrics, /dashboard over plain HTTP.
    #[command(
        after_help = "Logging: RUST_LOG=debug shows every refused request and every \
                            closed connection with its reason; RUST_LOG=info (the default) a \
                            summary every 10 s."
    )]
    Serve(Serve),
}

/// `HOST:PORT`, a host name resolved (the first address it resolves to).
fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    s.to_socket_addrs()
        .map_err(|e| format!("{s}: {e}"))?
        .next()
        .ok_or_else(|| format!("{s}: resolves to no address"))
}

/// 1008 or 1013: the close codes meant for a connection that cannot keep up.
fn parse_close_policy(s: &str) -> Result<u16, String> {
    match s {
        "1008" => Ok(1008),
        "1013" => Ok(1013),
        _ => Err("expected 1008 (policy violation) or 1013 (try again later)".to_owned()),
    }
}

#[derive(Parser)]
struct Serve {
    /// Address to listen on (HOST:PORT; a host name is resolved).
    #[arg(long, default_value = "127.0.0.1:9001", value_parser = parse_addr)]
    listen: SocketAddr,
    /// Do not answer /healthz, /readyz, /metrics, /stats.json and /dashboard.
    #[arg(long)]
    no_http_endpoints: bool,
    /// Answer the HTTP endpoints on this address instead of the WebSocket port.
    #[arg(long, value_parser = parse_addr)]
    admin_listen: Option<SocketAddr>,
    /// Share the port with other processes that ask for it too (SO_REUSEPORT across processes,
    /// for scale runs); without it a port another process serves is an error.
    #[arg(long)]
    reuse_port: bool,
    /// Output that makes no progress for this long closes the connection (1008), seconds
    /// (0 disables).
    #[arg(long, default_value_t = 30.0)]
    write_timeout: f64,
    /// Bytes of buffered input and output the process may hold (default: a quarter of memory).
    #[arg(long)]
    memory_budget: Option<usize>,
    /// Inflated bytes per second one connection may cost (permessage-deflate; 0 disables).
    #[arg(long, default_value_t = 64 << 20)]
    max_inflate_rate: u64,
    /// Pending handshakes per client address (IPv4, IPv6 /64) and reactor; past it: 429.
    #[arg(long, default_value_t = 1024)]
    max_pending_per_ip: usize,
    /// Topics one connection may subscribe to.
    #[arg(long, default_value_t = 1024)]
    max_topics_per_connection: usize,
    /// Abort the process when a handler panics (default: close that connection, log, go on).
    #[arg(long)]
    abort_on_panic: bool,
    /// Largest plain HTTP request body, bytes (over it: 413).
    #[arg(long, default_value_t = 64 << 10)]
    max_body: usize,
    /// Reactor threads (default: number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Largest frame payload, bytes.
    #[arg(long, default_value_t = 16 << 20)]
    max_frame: u64,
    /// Largest message, bytes.
    #[arg(long, default_value_t = 16 << 20)]
    max_message: u64,
    /// Most fragments per message.
    #[arg(long, default_value_t = 1 << 18)]
    max_fragments: u32,
    /// Largest HTTP request head, bytes.
    #[arg(long, default_value_t = 8 << 10)]
    max_head_bytes: usize,
    /// Most unsent bytes per connection, the message being sent included.
    #[arg(long, default_value_t = 17 << 20)]
    max_backpressure: usize,
    /// Over max-backpressure: drop the message, or close with this code (1008 policy
    /// violation, or 1013 try again later).
    #[arg(long, value_parser = parse_close_policy)]
    backpressure_close: Option<u16>,
    /// Handshake timeout, seconds.
    #[arg(long, default_value_t = 10.0)]
    handshake_timeout: f64,
    /// Idle timeout, seconds (a ping goes out after half of it; 0 disables).
    #[arg(long, default_value_t = 60.0)]
    idle_timeout: f64,
    /// Seconds for a started message to arrive whole (0 disables).
    #[arg(long, default_value_t = 60.0)]
    message_timeout: f64,
    /// Close handshake timeout, seconds.
    #[arg(long, default_value_t = 5.0)]
    close_timeout: f64,
    /// Graceful shutdown deadline, seconds.
    #[arg(long, default_value_t = 10.0)]
    shutdown_timeout: f64,
    /// Pending handshakes per reactor before new connections get 503.
    #[arg(long, default_value_t = 4096)]
    max_pending_handshakes: usize,
    /// Do not negotiate permessage-deflate.
    #[arg(long)]
    no_deflate: bool,
    /// permessage-deflate context mode: shared (no context takeover either way; nothing per
    /// connection), inflate-window (the client may keep its context; a window per connection),
    /// dedicated (both keep context; a compressor per connection).
    #[arg(long, default_value = "shared", value_parser = ["shared", "inflate-window", "dedicated"])]
    deflate_mode: String,
    /// Most window bits the server compresses with (9-15).
    #[arg(long, default_value_t = 15)]
    deflate_window_bits: u8,
    /// Messages at least this long are sent compressed when deflate was negotiated.
    #[arg(long, default_value_t = 64)]
    compress_threshold: usize,
    /// What the server does: echo (each message back to its sender) or pubsub (the JSON
    /// protocol: {"op":"sub"|"unsub","topic":..}, {"op":"pub","topic":..,"data":..}).
    #[arg(long, default_value = "echo", value_parser = ["echo", "pubsub"])]
    mode: String,
    /// Allowed Origin values (repeat the flag); default: any.
    #[arg(long = "allow-origin")]
    allow_origin: Vec<String>,
    /// Publish coalescing window in microseconds (Centrifugo's write_delay): publishes wait up
    /// to this long for more, to leave in one writev per subscriber. 0 (default): off.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    publish_coalesce_us: u64,
    /// Do not open fallback sessions (SSE, long-polling) nor serve the browser client.
    #[arg(long)]
    no_fallback: bool,
    /// A long-poll with nothing to answer is answered empty after this many milliseconds.
    #[arg(long, default_value_t = 25_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    poll_timeout_ms: u64,
    /// A long-poll session whose client does not poll again within this many milliseconds is
    /// closed (1006).
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    session_timeout_ms: u64,
    /// An SSE stream with nothing to send gets a comment this often (milliseconds).
    #[arg(long, default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    sse_heartbeat_ms: u64,
    /// With a coalescing window, this many publishes leave at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    publish_coalesce_max: u64,
    /// Pub/sub across nodes through this Redis: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB].
    /// Publishes go to every node's subscribers; a node subscribes only to the topics it has
    /// subscribers of. Off by default.
    #[arg(long)]
    broker: Option<String>,
    /// Publishes waiting for the broker (while it is down or slow), in bytes; past it they are
    /// dropped and counted.
    #[arg(long, default_value_t = 16 << 20, requires = "broker")]
    broker_max_queued: usize,
    /// Serve wss (and https) with this certificate chain (PEM); needs --tls-key. SIGHUP
    /// reloads both files.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// TLS handshakes in progress per reactor; past it new connections are closed.
    #[arg(long, default_value_t = 256)]
    tls_max_handshakes: usize,
    /// After a TLS 1.3 handshake, seal and open records in the reactor with the keys alone
    /// (rustls hands them over): less memory per idle connection. TLS 1.2 stays with rustls.
    #[arg(long, requires = "tls_cert")]
    tls_record_handover: bool,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let Command::Serve(args) = Cli::parse().command;
    let mut cfg = Config::default()
        .listen(args.listen)
        .max_frame(args.max_frame)
        .max_message(args.max_message)
        .max_fragments(args.max_fragments)
        .max_head_bytes(args.max_head_bytes)
        .max_body(args.max_body)
        .fallback(!args.no_fallback)
        .poll_timeout(Duration::from_millis(args.poll_timeout_ms))
        .session_timeout(Duration::from_millis(args.session_timeout_ms))
        .sse_heartbeat(Duration::from_millis(args.sse_heartbeat_ms))
        .reuse_port(args.reuse_port)
        .write_timeout(secs(args.write_timeout))
        .max_inflate_rate(args.max_inflate_rate)
        .max_pending_per_ip(args.max_pending_per_ip)
        .max_topics_per_connection(args.max_topics_per_connection)
        .abort_on_panic(args.abort_on_panic)
        .max_backpressure(args.max_backpressure)
        .handshake_timeout(secs(args.handshake_timeout))
        .idle_timeout(secs(args.idle_timeout))
        .message_timeout(secs(args.message_timeout))
        .close_timeout(secs(args.close_timeout))
        .shutdown_timeout(secs(args.shutdown_timeout))
        .max_pending_handshakes(args.max_pending_handshakes)
        .publish_coalesce(Duration::from_micros(args.publish_coalesce_us))
        .publish_coalesce_max(usize::try_from(args.publish_coalesce_max).unwrap_or(usize::MAX));
    let mode = match args.deflate_mode.as_str() {
        "inflate-window" => ContextMode::InflateWindow,
        "dedicated" => ContextMode::Dedicated,
        _ => ContextMode::Shared,
    };
    cfg = cfg
        .deflate(DeflateConfig {
            enabled: !args.no_deflate,
            mode,
            server_max_window_bits: args.deflate_window_bits.clamp(9, 15),
            ..DeflateConfig::default()
        })
        .compress_threshold(args.compress_threshold);
    if let Some(w) = args.workers {
        cfg = cfg.workers(w);
    }
    if let Some(b) = args.memory_budget {
        cfg = cfg.memory_budget(b);
    }
    if let Some(code) = args.backpressure_close {
        cfg = cfg.backpressure_policy(BackpressurePolicy::Close(code));
    }
    if let Some(url) = &args.broker {
        let mut b = match myriad::BrokerConfig::redis(url) {
            Ok(b) => b,
            Err(e) => {
                log::error!("--broker: {e}");
                return ExitCode::from(2);
            }
        };
        b.max_queued_bytes = args.broker_max_queued;
        cfg = cfg.broker(b);
    }
    if !args.allow_origin.is_empty() {
        cfg = cfg.allowed_origins(Some(args.allow_origin));
    }
    let scheme = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            cfg = cfg.tls(
                myriad::TlsConfig::from_pem_files(cert, key)
                    .max_handshakes(args.tls_max_handshakes)
                    .record_handover(args.tls_record_handover),
            );
            "wss"
        }
        _ => "ws",
    };
    if let Ok(n) = myriad::raise_open_files_limit() {
        info!("open files limit: {n}");
    }
    endpoints::note_baseline();
    let workers = cfg.workers;
    let what = if args.mode == "pubsub" {
        "pub/sub"
    } else {
        "echo"
    };
    let endpoints = !args.no_http_endpoints;
    let started = match (args.mode.as_str(), endpoints && args.admin_listen.is_none()) {
        ("pubsub", true) => start(
            cfg,
            Endpoints {
                inner: PubSub::default(),
                target: None,
            },
        ),
        ("pubsub", false) => start(cfg, PubSub::default()),
        (_, true) => start(
            cfg,
            Endpoints {
                inner: Echo,
                target: None,
            },
        ),
        (_, false) => start(cfg, Echo),
    };
    let Some(running) = started else {
        return ExitCode::FAILURE;
    };
    info!(
        "myriad serving {what} on {scheme}://{} with {workers} reactor(s){}",
        running.local_addr(),
        if endpoints && args.admin_listen.is_none() {
            "; /healthz, /readyz, /metrics, /dashboard on the same port"
        } else {
            ""
        }
    );
    // The endpoints on a port of their own: a one-reactor server that describes the main one.
    let admin = match args.admin_listen.filter(|_| endpoints) {
        Some(addr) => {
            let cfg = Config::default().listen(addr).workers(1);
            let Some(a) = start(cfg, Admin(running.handle())) else {
                running.shutdown();
                return ExitCode::FAILURE;
            };
            info!(
                "/healthz, /readyz, /metrics, /dashboard on http://{}",
                a.local_addr()
            );
            Some(a)
        }
        None => None,
    };
    let admin_handle = admin.as_ref().map(Running::handle);
    match running.run_until_signal() {
        Ok(sig) => info!("signal {sig}: stopped"),
        Err(e) => {
            error!("waiting for signals: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let (Some(h), Some(a)) = (admin_handle, admin) {
        h.shutdown_within(Duration::from_secs(1));
        a.join();
    }
    ExitCode::SUCCESS
}

fn start<H: Handler>(cfg: Config, handler: H) -> Option<Running> {
    match Server::new(cfg, handler).start() {
        Ok(r) => Some(r),
        Err(e) => {
            error!("cannot start: {e}");
            None
        }
    }
}
