//! Starting the reactors, and the running server.

use std::io;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use mio::{Poll, Waker};

use crate::config::Config;
use crate::handle::ServerHandle;
use crate::handler::Handler;
use crate::mailbox::Bus;
use crate::reactor::{self, Reactor};

/// A server: configuration plus handler.
pub struct Server<H: Handler> {
    config: Config,
    handler: H,
}

/// A started server.
pub struct Running {
    handle: ServerHandle,
    threads: Vec<JoinHandle<()>>,
    addr: SocketAddr,
}

impl<H: Handler> Server<H> {
    /// A server with this configuration and handler (cloned once per reactor).
    pub fn new(config: Config, handler: H) -> Server<H> {
        Server { config, handler }
    }

    /// Binds one `SO_REUSEPORT` listener per reactor (the first picks the port when it is 0)
    /// and starts the reactor threads.
    ///
    /// # Errors
    /// An invalid configuration (`InvalidInput`), or a failure to bind or to create a poll.
    pub fn start(self) -> io::Result<Running> {
        self.config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        reactor::install_panic_hook();
        if self.config.fallback {
            // Session ids need the key: drawn now, so that a machine without one fails here.
            crate::fallback::sid::init();
        }
        // BAD_INPUTS 75: a port another process serves is an error unless sharing was asked for
        // (scale runs start several processes on one port with `reuse_port`).
        let listen = if self.config.reuse_port {
            self.config.listen
        } else {
            crate::sys::probe_exclusive(self.config.listen).map_err(|e| {
                if e.kind() == io::ErrorKind::AddrInUse {
                    io::Error::new(
                        e.kind(),
                        format!(
                            "{}: address in use (another process serves it; \
                             `reuse_port` / `--reuse-port` shares it on purpose)",
                            self.config.listen
                        ),
                    )
                } else {
                    e
                }
            })?
        };
        let first = crate::sys::reuseport_listener(listen, self.config.backlog)?;
        let addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..self.config.workers {
            listeners.push(crate::sys::reuseport_listener(addr, self.config.backlog)?);
        }
        // Every mailbox exists before any reactor starts, so reactors can reach each other.
        let mut polls = Vec::new();
        let mut wakers = Vec::new();
        for _ in &listeners {
            let poll = Poll::new()?;
            wakers.push(Waker::new(poll.registry(), reactor::WAKER)?);
            polls.push(poll);
        }
        let cfg = &self.config;
        let compress_at = cfg.deflate.enabled.then_some(cfg.compress_threshold);
        // The broker bridge's queue exists before the bus (which holds it); the bridge starts
        // after it.
        let (uplink, bridge) = match &cfg.broker {
            Some(b) => {
                let (link, pending) = crate::broker::prepare(b)?;
                (
                    Some(link as std::sync::Arc<dyn crate::mailbox::Uplink>),
                    Some(pending),
                )
            }
            None => (None, None),
        };
        let (bus, inboxes) = Bus::new(wakers, compress_at, cfg.mailbox_capacity, uplink);
        let handle = ServerHandle::new(bus.clone(), cfg.shutdown_timeout, cfg.compression_level);
        #[cfg(feature = "tls")]
        let handle = match &cfg.tls {
            Some(t) => handle.with_tls(crate::tls::TlsState::new(t)?),
            None => handle,
        };
        for i in 0..bus.reactors() as u32 {
            bus.board().set_running(i, true);
        }
        let mut threads = Vec::new();
        if let Some(b) = bridge {
            threads.push(b.start(
                bus.clone(),
                usize::try_from(cfg.max_message).unwrap_or(usize::MAX),
                cfg.compression_level,
            )?);
        }
        let parts = polls.into_iter().zip(listeners).zip(inboxes);
        for (i, ((poll, listener), rx)) in parts.enumerate() {
            let handler = self.handler.clone();
            let cfg = self.config.clone();
            let peers = handle.clone();
            let board = bus.clone();
            // The reactor (and its slab of `H::Data`) is built on its own thread and never leaves it.
            threads.push(
                std::thread::Builder::new()
                    .name(format!("myriad-reactor-{i}"))
                    .spawn(move || {
                        // SIGINT and SIGTERM are for the thread that waits for them
                        // (`Running::run_until_signal`), never a reactor.
                        if let Err(e) = crate::sys::block_shutdown_signals() {
                            log::warn!("reactor {i}: blocking signals: {e}");
                        }
                        match Reactor::new(i as u32, poll, listener, handler, cfg, rx, peers) {
                            Ok(r) => r.run(),
                            Err(e) => {
                                log::error!("reactor {i} failed to start: {e}");
                                board.board().set_running(i as u32, false);
                            }
                        }
                    })?,
            );
        }
        Ok(Running {
            handle,
            threads,
            addr,
        })
    }

    /// Starts and blocks until the server stops.
    ///
    /// # Errors
    /// As [`Server::start`].
    pub fn run(self) -> io::Result<()> {
        self.start()?.join();
        Ok(())
    }
}

impl Running {
    /// The bound address (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle for other threads.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Waits for every reactor to stop (after a shutdown).
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }

    /// Shuts down gracefully and waits.
    pub fn shutdown(self) {
        self.handle.shutdown();
        self.join();
    }

    /// Serves until the process gets SIGINT or SIGTERM, then shuts down gracefully (1001 to
    /// every connection, then up to `shutdown_timeout` for the close handshakes) and returns the
    /// signal's number. SIGHUP reloads the TLS certificates ([`ServerHandle::reload_tls`]) and
    /// serves on; a reload that fails is logged and the old certificates stay.
    ///
    /// A second signal during the graceful shutdown ends the process at once (exit status
    /// 128 + the signal's number). Reactor threads block both signals from their start, so the
    /// signal reaches the thread that waits here (with `sigwait`). Other threads of the application that do not block
    /// them may still take one, and with it the default action (the process ends at once).
    ///
    /// # Errors
    /// When the signal mask cannot be set or waited on.
    pub fn run_until_signal(self) -> io::Result<i32> {
        crate::sys::block_shutdown_signals()?;
        let sig = loop {
            match crate::sys::wait_for_shutdown_signal()? {
                crate::sys::HANGUP => self.reload(),
                sig => break sig,
            }
        };
        self.handle.shutdown();
        // A second signal while the connections close ends the process at once.
        while !self.threads.iter().all(JoinHandle::is_finished) {
            if let Some(again) =
                crate::sys::wait_shutdown_signal_for(std::time::Duration::from_millis(100))?
                && again != crate::sys::HANGUP
            {
                log::warn!("signal {again} during the shutdown: exiting now");
                std::process::exit(128 + again);
            }
        }
        self.join();
        Ok(sig)
    }

    /// SIGHUP: the certificates again, from their files.
    fn reload(&self) {
        #[cfg(feature = "tls")]
        match self.handle.reload_tls() {
            Ok(()) => log::info!("SIGHUP: TLS certificates reloaded"),
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                log::info!("SIGHUP: no TLS certificates to reload");
            }
            Err(e) => log::error!("SIGHUP: TLS reload failed, the old certificates stay: {e}"),
        }
        #[cfg(not(feature = "tls"))]
        log::info!("SIGHUP: nothing to reload");
    }
}
