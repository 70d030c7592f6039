//! `tungstenite-echo`: a WebSocket echo server on tokio-tungstenite, on one current-thread tokio
//! runtime (one worker, to compare with one myriad reactor).
//!
//! Every text or binary message goes back to its sender; tungstenite answers pings and Close by
//! itself. The connection task is the crate's own `examples/echo-server.rs`: split, filter out
//! control messages, forward the rest to the sink (which flushes whenever the reader would block).
//!
//! Usage: `tungstenite-echo [--listen 127.0.0.1:9001] [--read-buffer BYTES]`. SIGINT/SIGTERM kill it.
//!
//! The configuration is tungstenite's default unless `--read-buffer` is given: the default read
//! buffer is 128 KiB, and tungstenite zero-fills the free part of it before every read, which is a
//! large share of its CPU per small message; a smaller buffer (e.g. 8192, fastwebsockets' size)
//! shows the library tuned.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt, future};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Error;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

async fn echo(stream: TcpStream, config: WebSocketConfig) -> Result<(), Error> {
    let ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    let (write, read) = ws.split();
    read.try_filter(|msg| future::ready(msg.is_text() || msg.is_binary()))
        .forward(write)
        .await
}

fn parse_args() -> (SocketAddr, WebSocketConfig) {
    let mut listen = "127.0.0.1:9001".to_string();
    let mut config = WebSocketConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().expect("--listen needs an address"),
            "--read-buffer" => {
                let n = args.next().and_then(|v| v.parse().ok());
                config = config.read_buffer_size(n.expect("--read-buffer needs a byte count"));
            }
            _ => {
                eprintln!("usage: tungstenite-echo [--listen ADDR:PORT] [--read-buffer BYTES]");
                std::process::exit(2);
            }
        }
    }
    (listen.parse().expect("--listen: not an address"), config)
}

fn main() -> std::io::Result<()> {
    let (addr, config) = parse_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        eprintln!("tungstenite-echo: listening on {addr}");
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
            tokio::spawn(async move {
                match echo(stream, config).await {
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
