//! What the server counts, per reactor and in total ([`crate::ServerHandle::stats`]), and its
//! rendering in the Prometheus text format (version 0.0.4).
//!
//! Each reactor counts in plain integers that only it writes, and copies them into a slot of its
//! own (one cache line apart from the others' slots) at the end of each loop iteration with
//! plain stores; a scrape reads the slots. Nothing is shared per message, and a snapshot is at
//! most one loop iteration old.

use std::fmt::Write as _;

/// Close codes counted one by one; application codes are counted by thousand (`3xxx`, `4xxx`),
/// so that a peer cannot make the metric grow without bound.
pub const CLOSE_CODES: [u16; 16] = [
    1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 1015, 0,
];

/// Why an upgrade or a plain request was refused before the application saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// A malformed request head, or an invalid upgrade (400, 405, 426, 505).
    BadRequest,
    /// A head or request line over the limit (414, 431), or a body over it (413).
    TooLarge,
    /// An `Origin` not in `Config::allowed_origins` (403).
    Origin,
    /// The application refused it (`Upgrade::Reject`).
    Rejected,
    /// The head (or the body) did not arrive in time.
    Timeout,
    /// Too many handshakes in flight (503), or a pipelining bound passed (429).
    Overload,
    /// A TLS handshake that failed (bad records, no common parameters, plain HTTP on a TLS
    /// port), or one over `TlsConfig::max_handshakes`.
    Tls,
}

impl HandshakeFailure {
    /// Every reason, in the order of [`ReactorStats::handshake_failures`].
    pub const ALL: [HandshakeFailure; 7] = [
        HandshakeFailure::BadRequest,
        HandshakeFailure::TooLarge,
        HandshakeFailure::Origin,
        HandshakeFailure::Rejected,
        HandshakeFailure::Timeout,
        HandshakeFailure::Overload,
        HandshakeFailure::Tls,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            HandshakeFailure::BadRequest => "bad_request",
            HandshakeFailure::TooLarge => "too_large",
            HandshakeFailure::Origin => "origin",
            HandshakeFailure::Rejected => "rejected",
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Overload => "overload",
            HandshakeFailure::Tls => "tls",
        }
    }

    /// The reason for an HTTP status the server answered with.
    pub(crate) fn of_status(status: u16) -> HandshakeFailure {
        match status {
            413 | 414 | 431 => HandshakeFailure::TooLarge,
            429 | 503 => HandshakeFailure::Overload,
            403 => HandshakeFailure::Origin,
            _ => HandshakeFailure::BadRequest,
        }
    }
}

/// Upper bounds (seconds) of the loop-iteration histogram's buckets; `+Inf` follows.
pub const LOOP_BUCKETS: [f64; 7] = [0.000_01, 0.000_1, 0.001, 0.01, 0.1, 1.0, 10.0];

/// One reactor's counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReactorStats {
    /// Open connections the application was shown: WebSockets and streamed responses (gauge).
    pub connections: u64,
    /// Connections opened (WebSockets and streamed responses).
    pub opened: u64,
    /// Closed connections by close code: `CLOSE_CODES` in order (the last, 0, counts any other
    /// code below 3000), then `3xxx` and `4xxx`.
    pub closed: [u64; 18],
    /// Refusals by [`HandshakeFailure::ALL`].
    pub handshake_failures: [u64; 7],
    /// Plain HTTP requests answered.
    pub http_requests: u64,
    /// Messages received (text and binary, whole).
    pub messages_received: u64,
    /// Messages queued for sending (direct sends and publish deliveries).
    pub messages_sent: u64,
    /// Bytes read from sockets.
    pub bytes_received: u64,
    /// Bytes written to sockets.
    pub bytes_sent: u64,
    /// Messages not sent: over the backpressure limit, or skipped during a fragmented send.
    pub messages_dropped: u64,
    /// Bytes queued behind sockets that did not take them yet (gauge).
    pub backpressure_bytes: u64,
    /// Topics with subscribers on this reactor (gauge).
    pub topics: u64,
    /// Subscriptions on this reactor (gauge).
    pub subscriptions: u64,
    /// Messages compressed (each publish at most once).
    pub compressions: u64,
    /// Publishes that reached this reactor.
    pub publishes: u64,
    /// Handler callbacks that panicked.
    pub panics: u64,
    /// Commands (sends, publishes) dropped because this reactor's mailbox was full.
    pub mailbox_dropped: u64,
    /// Bytes this reactor holds buffered: unsent output it owns and unfinished input (the
    /// figure `Config::memory_budget` bounds, summed over reactors).
    pub buffered_bytes: u64,
    /// Connections closed for inflating faster than `Config::max_inflate_rate`.
    pub inflate_limited: u64,
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// Fallback requests (polls, POSTs) that came to this reactor for a session of another and
    /// were moved there with their connection.
    pub fallback_handovers: u64,
    /// Loop iterations by duration: counts per `LOOP_BUCKETS` bound, then `+Inf` (not
    /// cumulative).
    pub loop_buckets: [u64; 8],
    /// Total time of the loop iterations, in nanoseconds.
    pub loop_nanos: u64,
}

impl ReactorStats {
    /// The slot of `code` in [`ReactorStats::closed`].
    pub(crate) fn close_slot(code: u16) -> usize {
        match code {
            3000..=3999 => 16,
            4000..=4999 => 17,
            c => CLOSE_CODES.iter().position(|&k| k == c).unwrap_or(15),
        }
    }

    /// The label of slot `i` of [`ReactorStats::closed`].
    pub fn close_label(i: usize) -> String {
        match i {
            16 => "3xxx".to_owned(),
            17 => "4xxx".to_owned(),
            15 => "other".to_owned(),
            i => CLOSE_CODES[i].to_string(),
        }
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &ReactorStats) {
        macro_rules! sum {
            ($($f:ident),*) => { $( self.$f += other.$f; )* };
        }
        sum!(
            connections,
            opened,
            http_requests,
            messages_received,
            messages_sent,
            bytes_received,
            bytes_sent,
            messages_dropped,
            backpressure_bytes,
            topics,
            subscriptions,
            compressions,
            publishes,
            panics,
            mailbox_dropped,
            buffered_bytes,
            inflate_limited,
            tls_handshakes,
            fallback_handovers,
            loop_nanos
        );
        for (a, b) in self.closed.iter_mut().zip(other.closed) {
            *a += b;
        }
        for (a, b) in self
            .handshake_failures
            .iter_mut()
            .zip(other.handshake_failures)
        {
            *a += b;
        }
        for (a, b) in self.loop_buckets.iter_mut().zip(other.loop_buckets) {
            *a += b;
        }
    }
}

/// The broker bridge's counts (`Config::broker`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BrokerStats {
    /// Connected to the broker (both connections up and authenticated).
    pub up: bool,
    /// Publishes the broker took.
    pub published: u64,
    /// Messages received from other nodes (and from other publishers on the channels).
    pub received: u64,
    /// Publishes for the broker dropped: over `max_queued_bytes`, refused, or written to a
    /// connection that failed before the broker confirmed them.
    pub dropped: u64,
    /// Times the bridge connected again after losing the broker.
    pub reconnects: u64,
}

/// Every reactor's counts, and their sum.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// By reactor, in reactor order.
    pub reactors: Vec<ReactorStats>,
    /// Whether each reactor is running (false once its thread ended).
    pub running: Vec<bool>,
    /// The sum over reactors.
    pub total: ReactorStats,
    /// The broker bridge's counts, when the server has one.
    pub broker: Option<BrokerStats>,
}

impl Stats {
    /// Writes the counts in the Prometheus text format 0.0.4, every metric with a `reactor`
    /// label: `myriad_connections`, `myriad_connections_opened_total`,
    /// `myriad_connections_closed_total{code}`, `myriad_handshake_failures_total{reason}`,
    /// `myriad_http_requests_total`, `myriad_messages_received_total`,
    /// `myriad_messages_sent_total`, `myriad_bytes_received_total`, `myriad_bytes_sent_total`,
    /// `myriad_messages_dropped_total`, `myriad_backpressure_bytes`, `myriad_topics`,
    /// `myriad_subscriptions`, `myriad_compressions_total`, `myriad_publishes_total`,
    /// `myriad_handler_panics_total`, `myriad_tls_handshakes_total`,
    /// `myriad_fallback_handovers_total`, `myriad_reactor_up`, with a
    /// broker `myriad_broker_up`, `myriad_broker_published_total`, `myriad_broker_received_total`,
    /// `myriad_broker_dropped_total`, `myriad_broker_reconnects_total`; and the histogram
    /// `myriad_loop_iteration_seconds`.
    pub fn write_prometheus(&self, out: &mut String) {
        type Get = fn(&ReactorStats) -> u64;
        let simple: [(&str, &str, &str, Get); 19] = [
            (
                "myriad_fallback_handovers_total",
                "counter",
                "Polls and POSTs moved to the reactor of their session.",
                |r| r.fallback_handovers,
            ),
            (
                "myriad_connections",
                "gauge",
                "Open connections (WebSockets and streamed responses).",
                |r| r.connections,
            ),
            (
                "myriad_connections_opened_total",
                "counter",
                "Connections opened.",
                |r| r.opened,
            ),
            (
                "myriad_http_requests_total",
                "counter",
                "Plain HTTP requests answered.",
                |r| r.http_requests,
            ),
            (
                "myriad_messages_received_total",
                "counter",
                "Messages received.",
                |r| r.messages_received,
            ),
            (
                "myriad_messages_sent_total",
                "counter",
                "Messages queued for sending.",
                |r| r.messages_sent,
            ),
            (
                "myriad_bytes_received_total",
                "counter",
                "Bytes read from sockets.",
                |r| r.bytes_received,
            ),
            (
                "myriad_bytes_sent_total",
                "counter",
                "Bytes written to sockets.",
                |r| r.bytes_sent,
            ),
            (
                "myriad_messages_dropped_total",
                "counter",
                "Messages not sent (backpressure, or during a fragmented send).",
                |r| r.messages_dropped,
            ),
            (
                "myriad_backpressure_bytes",
                "gauge",
                "Bytes queued behind sockets.",
                |r| r.backpressure_bytes,
            ),
            ("myriad_topics", "gauge", "Topics with subscribers.", |r| {
                r.topics
            }),
            ("myriad_subscriptions", "gauge", "Subscriptions.", |r| {
                r.subscriptions
            }),
            (
                "myriad_compressions_total",
                "counter",
                "Messages compressed.",
                |r| r.compressions,
            ),
            (
                "myriad_publishes_total",
                "counter",
                "Publishes that reached a reactor.",
                |r| r.publishes,
            ),
            (
                "myriad_handler_panics_total",
                "counter",
                "Handler callbacks that panicked.",
                |r| r.panics,
            ),
            (
                "myriad_mailbox_dropped_total",
                "counter",
                "Sends and publishes dropped at a full reactor mailbox.",
                |r| r.mailbox_dropped,
            ),
            (
                "myriad_buffered_bytes",
                "gauge",
                "Bytes held buffered (unsent output, unfinished input), bounded by the memory budget.",
                |r| r.buffered_bytes,
            ),
            (
                "myriad_inflate_limited_total",
                "counter",
                "Connections closed for inflating past the rate limit.",
                |r| r.inflate_limited,
            ),
            (
                "myriad_tls_handshakes_total",
                "counter",
                "TLS handshakes completed.",
                |r| r.tls_handshakes,
            ),
        ];
        for (name, kind, help, get) in simple {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (i, r) in self.reactors.iter().enumerate() {
                let _ = writeln!(out, "{name}{{reactor=\"{i}\"}} {}", get(r));
            }
        }
        let _ = writeln!(
            out,
            "# HELP myriad_reactor_up Whether the reactor thread runs.\n# TYPE myriad_reactor_up gauge"
        );
        for (i, up) in self.running.iter().enumerate() {
            let _ = writeln!(
                out,
                "myriad_reactor_up{{reactor=\"{i}\"}} {}",
                u8::from(*up)
            );
        }
        if let Some(b) = self.broker {
            let broker: [(&str, &str, &str, u64); 5] = [
                (
                    "myriad_broker_up",
                    "gauge",
                    "Connected to the broker.",
                    u64::from(b.up),
                ),
                (
                    "myriad_broker_published_total",
                    "counter",
                    "Publishes the broker took.",
                    b.published,
                ),
                (
                    "myriad_broker_received_total",
                    "counter",
                    "Messages received from the broker.",
                    b.received,
                ),
                (
                    "myriad_broker_dropped_total",
                    "counter",
                    "Publishes for the broker dropped (queue full, refused, or lost in a failure).",
                    b.dropped,
                ),
                (
                    "myriad_broker_reconnects_total",
                    "counter",
                    "Times the broker bridge connected again after losing the broker.",
                    b.reconnects,
                ),
            ];
            for (name, kind, help, v) in broker {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP myriad_connections_closed_total Connections closed, by close code.\n# TYPE myriad_connections_closed_total counter"
        );
        for (i, r) in self.reactors.iter().enumerate() {
            for (slot, n) in r.closed.iter().enumerate() {
                let code = ReactorStats::close_label(slot);
                let _ = writeln!(
                    out,
                    "myriad_connections_closed_total{{code=\"{code}\",reactor=\"{i}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP myriad_handshake_failures_total Requests refused before the application saw them.\n# TYPE myriad_handshake_failures_total counter"
        );
        for (i, r) in self.reactors.iter().enumerate() {
            for (f, n) in HandshakeFailure::ALL.iter().zip(r.handshake_failures) {
                let reason = f.label();
                let _ = writeln!(
                    out,
                    "myriad_handshake_failures_total{{reason=\"{reason}\",reactor=\"{i}\"}} {n}"
                );
            }
        }
        let name = "myriad_loop_iteration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time of one reactor loop iteration.\n# TYPE {name} histogram"
        );
        for (i, r) in self.reactors.iter().enumerate() {
            let mut cumulative = 0;
            for (le, n) in LOOP_BUCKETS.iter().zip(r.loop_buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "{name}_bucket{{le=\"{le}\",reactor=\"{i}\"}} {cumulative}"
                );
            }
            cumulative += r.loop_buckets[7];
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"+Inf\",reactor=\"{i}\"}} {cumulative}"
            );
            let secs = r.loop_nanos as f64 / 1e9;
            let _ = writeln!(out, "{name}_sum{{reactor=\"{i}\"}} {secs}");
            let _ = writeln!(out, "{name}_count{{reactor=\"{i}\"}} {cumulative}");
        }
    }
}

/// Writes this process's basics in the Prometheus text format, with the standard names:
/// `process_resident_memory_bytes` and `process_open_fds` (on Linux; nothing elsewhere).
pub fn write_process_metrics(out: &mut String) {
    if let Some(rss) = crate::sys::resident_bytes() {
        let _ = writeln!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss}"
        );
    }
    if let Some(fds) = crate::sys::open_fds() {
        let _ = writeln!(
            out,
            "# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds {fds}"
        );
    }
}
