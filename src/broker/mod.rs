//! Pub/sub across nodes over Redis (`Config::broker`): one bridge thread per process holds the
//! connections to Redis, so that no reactor ever waits on the network. Reactors and handles reach
//! it through its queue and `Waker` ([`Link`], the bus's uplink); it reaches them through their
//! mailboxes, as any other thread does.
//!
//! A node subscribes to a topic's channel while some reactor of it has a subscriber of the
//! topic (the reactors announce their first and last subscriber; the bridge counts them), and
//! unsubscribes when the last one leaves. A publish is delivered to the node's own subscribers at
//! once, as without a broker, and goes to Redis once; every other node that receives it frames
//! (and compresses) it once and hands that copy to its reactors with subscribers. A node skips
//! its own publishes when Redis sends them back. Redis down: local pub/sub goes on, publishes
//! for the broker wait up to `max_queued_bytes` and past it are dropped (counted), the bridge
//! reconnects with backoff and subscribes again to every live topic; what other nodes published
//! meanwhile is not received (at most once, logged with the length of the gap).

mod bridge;
mod envelope;
mod resp;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use mio::{Poll, Waker};

use crate::mailbox::{Bus, Uplink};
use crate::stats::BrokerStats;

/// Where the broker is and how the bridge uses it (`Config::broker`). Build with
/// [`BrokerConfig::redis`].
#[derive(Clone)]
pub struct BrokerConfig {
    /// `host:port` of the Redis server.
    pub addr: String,
    /// `AUTH` user (Redis 6 ACLs), if any.
    pub username: Option<String>,
    /// `AUTH` password, if any.
    pub password: Option<String>,
    /// `SELECT`ed database (pub/sub channels do not depend on it; commands do).
    pub db: u32,
    /// Channels are named this prefix and the topic. Default `myriad.`.
    pub channel_prefix: String,
    /// Publishes waiting for the broker (while it is down or slow), in bytes; past it they are
    /// dropped and counted. Default 16 MiB.
    pub max_queued_bytes: usize,
    /// The first wait before reconnecting, doubled after each failure up to `reconnect_max`.
    /// Defaults 100 ms and 5 s.
    pub reconnect_min: Duration,
    /// The longest wait between reconnects.
    pub reconnect_max: Duration,
}

impl fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("addr", &self.addr)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("db", &self.db)
            .field("channel_prefix", &self.channel_prefix)
            .field("max_queued_bytes", &self.max_queued_bytes)
            .finish_non_exhaustive()
    }
}

impl BrokerConfig {
    /// From a Redis URL: `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]` (port 6379 by default;
    /// user and password percent-decoded).
    ///
    /// # Errors
    /// Not a `redis://` URL, or a bad port or database number.
    pub fn redis(url: &str) -> Result<BrokerConfig, String> {
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| format!("{url:?}: not a redis:// URL"))?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let (host, db) = match rest.split_once('/') {
            Some((h, "")) => (h, 0),
            Some((h, d)) => (
                h,
                d.parse()
                    .map_err(|_| format!("{url:?}: bad database number {d:?}"))?,
            ),
            None => (rest, 0),
        };
        if host.is_empty() {
            return Err(format!("{url:?}: no host"));
        }
        let addr = if host.ends_with(']') || !host.contains(':') {
            format!("{host}:6379")
        } else {
            let (_, port) = host.rsplit_once(':').unwrap_or_default();
            port.parse::<u16>()
                .map_err(|_| format!("{url:?}: bad port {port:?}"))?;
            host.to_owned()
        };
        let (username, password) = match auth {
            None => (None, None),
            Some(a) => match a.split_once(':') {
                Some((u, p)) => ((!u.is_empty()).then(|| decode(u)), Some(decode(p))),
                None => (None, Some(decode(a))),
            },
        };
        Ok(BrokerConfig {
            addr,
            username,
            password,
            db,
            channel_prefix: "myriad.".into(),
            max_queued_bytes: 16 << 20,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
        })
    }
}

/// Percent-decoding of a URL's user or password (bytes that are not `%XX` stay as they are).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What reactors and handles hand the bridge.
enum Up {
    Publish {
        topic: Arc<str>,
        text: bool,
        payload: Vec<u8>,
        /// Bytes counted against `max_queued_bytes` for it.
        cost: usize,
    },
    Interest {
        reactor: u32,
        topic: Box<str>,
        on: bool,
    },
    Stop,
}

/// The counts the bridge keeps, read by the metrics.
#[derive(Default)]
struct Counters {
    up: AtomicBool,
    published: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    reconnects: AtomicU64,
}

/// The bridge's queue and waker, seen from reactors and handles.
pub(crate) struct Link {
    tx: Sender<Up>,
    waker: Waker,
    /// Set by the first post since the bridge began draining: a burst costs one wake-up.
    woken: AtomicBool,
    /// Bytes of publishes handed over and not yet written to Redis (or dropped).
    queued: AtomicUsize,
    limit: usize,
    counts: Counters,
}

impl Link {
    fn post(&self, up: Up) {
        if self.tx.send(up).is_ok() && !self.woken.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }
}

impl Uplink for Link {
    fn publish(&self, topic: &Arc<str>, text: bool, payload: &[u8]) {
        let cost = payload.len() + topic.len() + 64;
        if self.queued.fetch_add(cost, Ordering::AcqRel) + cost > self.limit {
            self.queued.fetch_sub(cost, Ordering::AcqRel);
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.post(Up::Publish {
            topic: topic.clone(),
            text,
            payload: payload.to_vec(),
            cost,
        });
    }

    fn interest(&self, reactor: u32, topic: &str, on: bool) {
        self.post(Up::Interest {
            reactor,
            topic: topic.into(),
            on,
        });
    }

    fn stop(&self) {
        self.post(Up::Stop);
    }

    fn stats(&self) -> BrokerStats {
        let c = &self.counts;
        BrokerStats {
            up: c.up.load(Ordering::Relaxed),
            published: c.published.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
        }
    }
}

/// The bridge, made before the bus (which holds its link) and started after it.
pub(crate) struct Pending {
    poll: Poll,
    rx: Receiver<Up>,
    link: Arc<Link>,
    cfg: BrokerConfig,
}

/// Makes the bridge's queue and poll; [`Pending::start`] runs it once the bus exists.
///
/// # Errors
/// The poll or its waker could not be made.
pub(crate) fn prepare(cfg: &BrokerConfig) -> std::io::Result<(Arc<Link>, Pending)> {
    let poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), bridge::WAKE)?;
    let (tx, rx) = mpsc::channel();
    let link = Arc::new(Link {
        tx,
        waker,
        woken: AtomicBool::new(false),
        queued: AtomicUsize::new(0),
        limit: cfg.max_queued_bytes,
        counts: Counters::default(),
    });
    Ok((
        link.clone(),
        Pending {
            poll,
            rx,
            link,
            cfg: cfg.clone(),
        },
    ))
}

impl Pending {
    /// Starts the bridge thread. `max_message` bounds what it takes from Redis; `level` is the
    /// compression level of the publishes it receives.
    ///
    /// # Errors
    /// The thread could not be started.
    pub(crate) fn start(
        self,
        bus: Bus,
        max_message: usize,
        level: u32,
    ) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("myriad-broker".into())
            .spawn(move || {
                if let Err(e) = crate::sys::block_shutdown_signals() {
                    log::warn!("broker bridge: blocking signals: {e}");
                }
                bridge::Bridge::new(self, bus, max_message, level).run();
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls() {
        let c = BrokerConfig::redis("redis://127.0.0.1:6380/2").unwrap();
        assert_eq!(
            (c.addr.as_str(), c.db, c.password),
            ("127.0.0.1:6380", 2, None)
        );
        let c = BrokerConfig::redis("redis://:s%40cret@cache").unwrap();
        assert_eq!(c.addr, "cache:6379");
        assert_eq!((c.username, c.password.as_deref()), (None, Some("s@cret")));
        let c = BrokerConfig::redis("redis://app:pw@[::1]:7000/").unwrap();
        assert_eq!(
            (c.addr.as_str(), c.username.as_deref()),
            ("[::1]:7000", Some("app"))
        );
        assert_eq!(
            BrokerConfig::redis("redis://[::1]").unwrap().addr,
            "[::1]:6379"
        );
        for bad in ["http://x", "redis://", "redis://h:port", "redis://h/x"] {
            assert!(BrokerConfig::redis(bad).is_err(), "{bad}");
        }
        // The password stays out of logs.
        let c = BrokerConfig::redis("redis://:hunter2@h").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
