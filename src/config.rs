//! Server configuration: every limit with its default and the reason for it.

use std::net::SocketAddr;
use std::time::Duration;

pub use crate::deflate::negotiate::{ContextMode, DeflateConfig};
use crate::proto::{Limits, Role};

/// What happens when a send would push a connection's unsent bytes past `max_backpressure`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackpressurePolicy {
    /// The message is not queued; the send returns [`crate::SendStatus::Dropped`]. Like uWebSockets.
    Drop,
    /// The connection is closed with this code (1008 policy violation or 1013 try again later).
    Close(u16),
}

/// Server settings. Build with `Config::default()` and the setters, which carry the fields' names.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1:9001`.
    pub listen: SocketAddr,
    /// Reactor threads, each with its own `SO_REUSEPORT` listener. Default: the number of cores.
    pub workers: usize,
    /// Largest frame payload accepted. Default 16 MiB (Autobahn's largest case is 16 MiB).
    pub max_frame: u64,
    /// Largest message accepted, reassembled. Default 16 MiB. Over it: close 1009.
    pub max_message: u64,
    /// Most fragments in one message. Default 262,144: a 4 MiB message in 64-byte fragments
    /// (Autobahn 9.3.1) fits, a flood of empty fragments does not.
    pub max_fragments: u32,
    /// Largest HTTP request head. Default 8 KiB, like most proxies; over it: 431.
    pub max_head_bytes: usize,
    /// Longest request line. Default 4 KiB; over it: 414.
    pub max_request_line: usize,
    /// Largest body of a plain HTTP request. Default 64 KiB; over it: 413, decided from the
    /// head (`Content-Length`) or as chunks arrive, before anything past it is kept.
    pub max_body: usize,
    /// Most requests served from one read of a kept-alive connection (pipelined). Default 16;
    /// past it: 429 and the connection closes.
    pub max_pipelined: usize,
    /// Most unsent bytes kept for one connection, the message being sent included: a send that
    /// would pass it gets the policy, whatever is queued already (so no message larger than
    /// this is ever sent). Default 17 MiB: one message of the default `max_message` and a
    /// little more. A publish queued behind a slow subscriber is the shared framed copy,
    /// counted here at its full size but held once for all subscribers.
    pub max_backpressure: usize,
    /// What to do past `max_backpressure` (and past `memory_budget`). Default
    /// [`BackpressurePolicy::Drop`].
    pub backpressure_policy: BackpressurePolicy,
    /// Output that makes no progress for this long (the peer reads nothing) closes the
    /// connection with 1008, pongs or not: a stalled reader cannot hold its queue forever
    /// (BAD_INPUTS 65). Default 30 s; zero disables it.
    pub write_timeout: Duration,
    /// Bytes of buffered input (unfinished messages and request bodies) and owned output
    /// (unsent bytes) the whole process may hold. Past it, new output gets the backpressure
    /// policy, a message that would buffer more is closed with 1013, and new connections get
    /// 503 (BAD_INPUTS 53). Default: a quarter of the machine's memory.
    pub memory_budget: usize,
    /// Inflated bytes per second one connection may make the server produce (permessage-deflate),
    /// with a burst of `max_message`: past it the connection is closed with 1008, so that
    /// compression bombs cost bounded CPU (BAD_INPUTS 49). Default 64 MiB/s; zero disables it.
    pub max_inflate_rate: u64,
    /// Connections from one address (an IPv4 address, an IPv6 /64) still in the HTTP handshake,
    /// per reactor. Default 1,024 (a quarter of `max_pending_handshakes`); past it: 429, so that
    /// one address cannot take the global `max_pending_handshakes` from the others (BAD_INPUTS
    /// 57).
    pub max_pending_per_ip: usize,
    /// Topics one connection may subscribe to. Default 1,024 (closing a connection costs its
    /// subscriptions, each O(1)).
    pub max_topics_per_connection: usize,
    /// Longest topic name, in bytes. Default 255.
    pub max_topic_len: usize,
    /// Commands one reactor's mailbox holds (sends and publishes from other threads); past it
    /// they are dropped and counted, never waited for. Default 16,384.
    pub mailbox_capacity: usize,
    /// Share the port with other processes that ask for it too (`SO_REUSEPORT` across
    /// processes, for scale runs). Default false: a port another process serves is an error
    /// ("address in use"); the reactors of this process share it either way.
    pub reuse_port: bool,
    /// A handler callback that panics costs its connection (closed with 1011, or answered 500)
    /// and is logged and counted; with `abort_on_panic` the process aborts instead. Default
    /// false.
    pub abort_on_panic: bool,
    /// Time allowed from accept to a complete upgrade request. Default 10 s (uWebSockets' figure);
    /// a head dribbled slower than that is closed.
    pub handshake_timeout: Duration,
    /// A connection that receives nothing for this long is closed. A ping is sent after half of it
    /// so that a live peer answers in time. Default 60 s (pings every 30 s, inside nginx's 60 s
    /// `proxy_read_timeout`). Zero disables it.
    pub idle_timeout: Duration,
    /// Time allowed for a message (or frame) to arrive whole once its first bytes came. A peer
    /// that answers pings but never finishes a message is closed with 1008 when it passes
    /// (BAD_INPUTS 19, 27), and the bytes held for it are freed. Default 60 s; zero disables it.
    pub message_timeout: Duration,
    /// Time allowed for the peer's Close after ours, and for unsent bytes to leave once closing.
    /// Default 5 s.
    pub close_timeout: Duration,
    /// Connections still in the HTTP handshake, per reactor. Default 4,096; past it new
    /// connections get 503 and are closed.
    pub max_pending_handshakes: usize,
    /// Bytes read from one socket per readiness event before the others get a turn. Default 64 KiB.
    pub read_budget: usize,
    /// Publish coalescing window (Centrifugo's `write_delay`): publishes queued for subscribers
    /// wait up to this long for more, so that several leave in one writev per subscriber (fewer
    /// syscalls per delivery, each delivery later by at most the window). Default zero: off,
    /// publishes leave at the end of the event that made them.
    pub publish_coalesce: Duration,
    /// With a coalescing window, the publishes that make a batch leave at once
    /// (Centrifugo's `max_messages_in_frame`). Default 64.
    pub publish_coalesce_max: usize,
    /// Size of the one receive buffer per reactor. Default 256 KiB.
    pub recv_buffer: usize,
    /// Accept unmasked frames from clients. Default false (RFC 6455 §5.1 says close).
    pub accept_unmasked: bool,
    /// Origins allowed to connect. Default `None`: any origin, and requests without one. Browsers
    /// always send `Origin`; set this for a browser-facing server to refuse other sites with 403.
    pub allowed_origins: Option<Vec<String>>,
    /// Listen backlog. Default 1,024.
    pub backlog: i32,
    /// Graceful shutdown: how long to wait for close handshakes. Default 10 s.
    pub shutdown_timeout: Duration,
    /// permessage-deflate (RFC 7692). Default: enabled, [`ContextMode::Shared`]: the server answers
    /// with `server_no_context_takeover` and `client_no_context_takeover`, so one compressor and
    /// one decompressor per reactor serve every connection and an idle connection with compression
    /// costs nothing more. The other modes keep per-connection state (a window of the client's
    /// output, or a dedicated compressor) and cost memory per connection once it compresses.
    pub deflate: DeflateConfig,
    /// Messages at least this long are sent compressed on connections that negotiated
    /// permessage-deflate; shorter ones go uncompressed (compressing them costs more CPU than it
    /// saves bytes). Default 64.
    pub compress_threshold: usize,
    /// zlib compression level 0-9 for sent messages. Default 6.
    pub compression_level: u32,
    /// Serve TLS (wss, https) on `listen` with these certificates. Default `None`: plain TCP.
    /// A client that speaks plain HTTP to a TLS port gets a plain 400 saying so. Needs a
    /// `recv_buffer` of at least 64 KiB (a record is up to 18 KiB).
    #[cfg(feature = "tls")]
    pub tls: Option<crate::tls::TlsConfig>,
    /// Pub/sub across nodes through this Redis (see [`crate::BrokerConfig`]). Default `None`:
    /// publishes stay in the process.
    pub broker: Option<crate::broker::BrokerConfig>,
    /// Open fallback sessions (Server-Sent Events, long-polling, POSTs for the uplink) on the
    /// WebSocket's port and path, for clients whose network breaks WebSocket. Default true.
    pub fallback: bool,
    /// How long a long-poll waits for a message before it is answered empty. Default 25 s,
    /// inside common proxy read timeouts (nginx: 60 s).
    pub poll_timeout: Duration,
    /// How long a long-poll session waits for its client's next poll before it is closed
    /// (`on_close` with 1006). Default 30 s.
    pub session_timeout: Duration,
    /// How often an SSE stream with nothing to send gets a comment, so that proxies do not
    /// close it as idle. Default 15 s.
    pub sse_heartbeat: Duration,
    /// Long-poll sessions one reactor keeps (they hold no socket between polls, so the
    /// open-files limit does not bound them); past it, a new one gets 503. Default 100,000.
    pub max_poll_sessions: usize,
    /// Where the browser client is served (`GET`), while fallbacks are on; `None` serves it
    /// nowhere. Default `/myriad.js`.
    pub client_path: Option<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 9001)),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_frame: 16 << 20,
            max_message: 16 << 20,
            max_fragments: 1 << 18,
            max_head_bytes: 8 << 10,
            max_request_line: 4 << 10,
            max_body: 64 << 10,
            max_pipelined: 16,
            max_backpressure: 17 << 20,
            backpressure_policy: BackpressurePolicy::Drop,
            write_timeout: Duration::from_secs(30),
            memory_budget: crate::sys::default_memory_budget(),
            max_inflate_rate: 64 << 20,
            max_pending_per_ip: 1024,
            max_topics_per_connection: 1024,
            max_topic_len: 255,
            mailbox_capacity: 16 << 10,
            reuse_port: false,
            abort_on_panic: false,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            message_timeout: Duration::from_secs(60),
            close_timeout: Duration::from_secs(5),
            max_pending_handshakes: 4096,
            read_budget: 64 << 10,
            publish_coalesce: Duration::ZERO,
            publish_coalesce_max: 64,
            recv_buffer: 256 << 10,
            accept_unmasked: false,
            allowed_origins: None,
            backlog: 1024,
            shutdown_timeout: Duration::from_secs(10),
            deflate: DeflateConfig::default(),
            compress_threshold: 64,
            compression_level: 6,
            #[cfg(feature = "tls")]
            tls: None,
            broker: None,
            fallback: true,
            poll_timeout: Duration::from_secs(25),
            session_timeout: Duration::from_secs(30),
            sse_heartbeat: Duration::from_secs(15),
            client_path: Some("/myriad.js".to_owned()),
            max_poll_sessions: 100_000,
        }
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {
        impl Config {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $name(mut self, value: $ty) -> Config {
                    self.$name = value;
                    self
                }
            )*
        }
    };
}

setters! {
    /// Sets `fallback`.
    fallback: bool;
    /// Sets `poll_timeout`.
    poll_timeout: Duration;
    /// Sets `session_timeout`.
    session_timeout: Duration;
    /// Sets `sse_heartbeat`.
    sse_heartbeat: Duration;
    /// Sets `client_path`.
    client_path: Option<String>;
    /// Sets `max_poll_sessions`.
    max_poll_sessions: usize;
    /// Sets `listen`.
    listen: SocketAddr;
    /// Sets `workers`.
    workers: usize;
    /// Sets `max_frame`.
    max_frame: u64;
    /// Sets `max_message`.
    max_message: u64;
    /// Sets `max_fragments`.
    max_fragments: u32;
    /// Sets `max_head_bytes`.
    max_head_bytes: usize;
    /// Sets `max_request_line`.
    max_request_line: usize;
    /// Sets `max_body`.
    max_body: usize;
    /// Sets `max_pipelined`.
    max_pipelined: usize;
    /// Sets `max_backpressure`.
    max_backpressure: usize;
    /// Sets `backpressure_policy`.
    backpressure_policy: BackpressurePolicy;
    /// Sets `write_timeout`.
    write_timeout: Duration;
    /// Sets `memory_budget`.
    memory_budget: usize;
    /// Sets `max_inflate_rate`.
    max_inflate_rate: u64;
    /// Sets `max_pending_per_ip`.
    max_pending_per_ip: usize;
    /// Sets `max_topics_per_connection`.
    max_topics_per_connection: usize;
    /// Sets `max_topic_len`.
    max_topic_len: usize;
    /// Sets `mailbox_capacity`.
    mailbox_capacity: usize;
    /// Sets `reuse_port`.
    reuse_port: bool;
    /// Sets `abort_on_panic`.
    abort_on_panic: bool;
    /// Sets `handshake_timeout`.
    handshake_timeout: Duration;
    /// Sets `idle_timeout`.
    idle_timeout: Duration;
    /// Sets `message_timeout`.
    message_timeout: Duration;
    /// Sets `close_timeout`.
    close_timeout: Duration;
    /// Sets `max_pending_handshakes`.
    max_pending_handshakes: usize;
    /// Sets `read_budget`.
    read_budget: usize;
    /// Sets `publish_coalesce`.
    publish_coalesce: Duration;
    /// Sets `publish_coalesce_max`.
    publish_coalesce_max: usize;
    /// Sets `recv_buffer`.
    recv_buffer: usize;
    /// Sets `accept_unmasked`.
    accept_unmasked: bool;
    /// Sets `allowed_origins`.
    allowed_origins: Option<Vec<String>>;
    /// Sets `backlog`.
    backlog: i32;
    /// Sets `shutdown_timeout`.
    shutdown_timeout: Duration;
    /// Sets `deflate`.
    deflate: DeflateConfig;
    /// Sets `compress_threshold`.
    compress_threshold: usize;
    /// Sets `compression_level`.
    compression_level: u32;
}

impl Config {
    /// Sets `tls`: serve TLS with these certificates.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(mut self, tls: crate::tls::TlsConfig) -> Config {
        self.tls = Some(tls);
        self
    }

    /// Sets `broker`: pub/sub across nodes through Redis.
    #[must_use]
    pub fn broker(mut self, broker: crate::broker::BrokerConfig) -> Config {
        self.broker = Some(broker);
        self
    }

    /// What the frame decoder accepts from clients, from these settings.
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            role: Role::Server,
            accept_unmasked: self.accept_unmasked,
            max_frame: self.max_frame,
            max_message: self.max_message,
            max_fragments: self.max_fragments,
        }
    }

    /// Checks the settings against each other; returns what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.workers == 0 {
            return Err("workers must be at least 1".into());
        }
        if self.max_frame > self.max_message {
            return Err("max_frame must not exceed max_message".into());
        }
        if self.max_message >= 1 << 62 {
            return Err("max_message must be below 2^62".into());
        }
        if self.recv_buffer < 4096 {
            return Err("recv_buffer must be at least 4096".into());
        }
        if self.publish_coalesce_max == 0 {
            return Err("publish_coalesce_max must be positive".into());
        }
        if self.publish_coalesce > Duration::from_secs(1) {
            return Err("publish_coalesce must be at most 1 s".into());
        }
        if self.read_budget == 0 {
            return Err("read_budget must be positive".into());
        }
        if self.fallback
            && [self.poll_timeout, self.session_timeout, self.sse_heartbeat]
                .iter()
                .any(|d| d < &Duration::from_millis(1))
        {
            return Err(
                "poll_timeout, session_timeout and sse_heartbeat must be at least 1 ms".into(),
            );
        }
        if self.fallback && self.max_poll_sessions == 0 {
            return Err("max_poll_sessions must be at least 1".into());
        }
        #[cfg(feature = "tls")]
        if let Some(t) = &self.tls {
            if self.recv_buffer < 64 << 10 {
                return Err("recv_buffer must be at least 64 KiB with TLS".into());
            }
            if t.max_handshakes == 0 {
                return Err("tls.max_handshakes must be at least 1".into());
            }
        }
        if self.compression_level > 9 {
            return Err("compression_level must be 0 to 9".into());
        }
        if self.mailbox_capacity == 0 {
            return Err("mailbox_capacity must be at least 1".into());
        }
        if self.max_pipelined == 0 {
            return Err("max_pipelined must be at least 1".into());
        }
        if self.max_head_bytes < 256 {
            return Err("max_head_bytes must be at least 256".into());
        }
        if !matches!(self.backpressure_policy, BackpressurePolicy::Drop)
            && let BackpressurePolicy::Close(code) = self.backpressure_policy
            && !crate::proto::close::is_valid_code(code)
        {
            return Err(format!("backpressure close code {code} cannot be sent"));
        }
        Ok(())
    }
}
