//! `fastwebsockets-echo`: a WebSocket echo server on fastwebsockets + hyper 1, on one
//! current-thread tokio runtime (one worker, to compare with one myriad reactor).
//!
//! Every text or binary message goes back to its sender; pings are answered and Close is echoed by
//! fastwebsockets itself (auto-pong and auto-close, both on). Fragmented messages are reassembled
//! with `FragmentCollector`. The upgrade follows the crate's own `examples/echo_server.rs`.
//!
//! Usage: `fastwebsockets-echo [--listen 127.0.0.1:9001]`. SIGINT/SIGTERM kill it.

use std::net::SocketAddr;
use std::time::Duration;

use fastwebsockets::{FragmentCollector, OpCode, WebSocketError, upgrade};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn echo(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = fut.await?;
    ws.set_auto_pong(true);
    ws.set_auto_close(true);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

async fn upgrade(mut req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::task::spawn(async move {
        if let Err(e) = tokio::task::unconstrained(echo(fut)).await {
            // A peer that goes away without a Close is the normal end of a benchmark run.
            if !matches!(
                e,
                WebSocketError::UnexpectedEOF | WebSocketError::ConnectionClosed
            ) {
                eprintln!("fastwebsockets-echo: connection: {e}");
            }
        }
    });
    Ok(response)
}

fn parse_args() -> SocketAddr {
    let mut listen = "127.0.0.1:9001".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().expect("--listen needs an address"),
            _ => {
                eprintln!("usage: fastwebsockets-echo [--listen ADDR:PORT]");
                std::process::exit(2);
            }
        }
    }
    listen.parse().expect("--listen: not an address")
}

fn main() -> std::io::Result<()> {
    let addr = parse_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        eprintln!("fastwebsockets-echo: listening on {addr}");
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                // EMFILE and the like: back off, keep serving the connections we have.
                Err(e) => {
                    eprintln!("fastwebsockets-echo: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let conn = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(upgrade))
                    .with_upgrades();
                if let Err(e) = conn.await {
                    eprintln!("fastwebsockets-echo: http: {e}");
                }
            });
        }
    })
}
