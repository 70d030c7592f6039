//! `tungstenite-echo`: a WebSocket echo server on tokio-tungstenite, on one current-thread tokio
//! runtime (one worker, to compare with one myriad reactor).
//!
//! Every text or binary message goes back to its sender; tungstenite answers pings and Close by
//! itself. The connection task is the crate's own `examples/echo-server.rs`: split, filter out
//! control messages, forward the rest to the sink (which flushes whenever the reader would block).
//!
//! Usage: `tungstenite-echo [--listen 127.0.0.1:9001] [--read-buffer BYTES] [--tls-cert PEM
//! --tls-key PEM]`. SIGINT/SIGTERM kill it. With the certificate it serves wss through
//! tokio-rustls (rustls' buffered `ServerConnection`, ring, TLS 1.2 and 1.3, ALPN http/1.1): the
//! usual way to put TLS under tokio-tungstenite.
//!
//! The configuration is tungstenite's default unless `--read-buffer` is given: the default read
//! buffer is 128 KiB, and tungstenite zero-fills the free part of it before every read, which is a
//! large share of its CPU per small message; a smaller buffer (e.g. 8192, fastwebsockets' size)
//! shows the library tuned.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt, future};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Error;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

async fn echo<S>(stream: S, config: WebSocketConfig) -> Result<(), Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    let (write, read) = ws.split();
    read.try_filter(|msg| future::ready(msg.is_text() || msg.is_binary()))
        .forward(write)
        .await
}

/// A TLS acceptor for the certificate chain and key in these PEM files.
#[allow(deprecated)] // ring's provider, as myriad's.
fn acceptor(cert: &str, key: &str) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .expect("--tls-cert")
        .collect::<Result<Vec<_>, _>>()
        .expect("--tls-cert: PEM");
    let key = PrivateKeyDer::from_pem_file(key).expect("--tls-key: PEM");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("certificate and key");
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

type Args = (
    SocketAddr,
    WebSocketConfig,
    Option<tokio_rustls::TlsAcceptor>,
);

fn parse_args() -> Args {
    let mut listen = "127.0.0.1:9001".to_string();
    let mut config = WebSocketConfig::default();
    let (mut cert, mut key) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().expect("--listen needs an address"),
            "--tls-cert" => cert = args.next(),
            "--tls-key" => key = args.next(),
            "--read-buffer" => {
                let n = args.next().and_then(|v| v.parse().ok());
                config = config.read_buffer_size(n.expect("--read-buffer needs a byte count"));
            }
            _ => {
                eprintln!(
                    "usage: tungstenite-echo [--listen ADDR:PORT] [--read-buffer BYTES] \
                     [--tls-cert PEM --tls-key PEM]"
                );
                std::process::exit(2);
            }
        }
    }
    let tls = match (cert, key) {
        (Some(c), Some(k)) => Some(acceptor(&c, &k)),
        (None, None) => None,
        _ => panic!("--tls-cert and --tls-key go together"),
    };
    (
        listen.parse().expect("--listen: not an address"),
        config,
        tls,
    )
}

fn main() -> std::io::Result<()> {
    let (addr, config, tls) = parse_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        eprintln!(
            "tungstenite-echo: listening on {addr}{}",
            if tls.is_some() { " (TLS)" } else { "" }
        );
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                // EMFILE and the like: back off, keep serving the connections we have.
                Err(e) => {
                    eprintln!("tungstenite-echo: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let tls = tls.clone();
            tokio::spawn(async move {
                let done = match tls {
                    None => echo(stream, config).await,
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(s) => echo(s, config).await,
                        Err(e) => Err(Error::Io(e)),
                    },
                };
                match done {
                    // A peer that goes away without a Close is the normal end of a benchmark run.
                    Ok(())
                    | Err(Error::ConnectionClosed | Error::AlreadyClosed | Error::Protocol(_))
                    | Err(Error::Io(_)) => {}
                    Err(e) => eprintln!("tungstenite-echo: connection: {e}"),
                }
            });
        }
    })
}
