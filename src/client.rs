//! A small blocking client: for tests, tools and the load generator's handshake logic.
//!
//! It speaks the same codec as the server from the other side: frames are masked with keys from
//! the kernel's random source (RFC 6455 §5.3 wants them unpredictable), received frames must not
//! be masked.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};

use crate::http as handshake;
use crate::message::Message;
use crate::proto::decoder::{Decoder, Event};
use crate::proto::frame::{self, MAX_HEADER, OpCode};
use crate::proto::mask::Kernel;
use crate::proto::{Limits, Role};

/// A received event, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// Text message.
    Text(String),
    /// Binary message.
    Binary(Vec<u8>),
    /// Ping payload.
    Ping(Vec<u8>),
    /// Pong payload.
    Pong(Vec<u8>),
    /// Close code (1005 when empty) and reason.
    Close(u16, String),
}

/// What a client runs over: a TCP stream, or a TLS stream over one (feature `tls`).
pub trait Socket: Read + Write {
    /// Shuts both directions of the TCP connection (best effort).
    fn shutdown_both(&self);
}

impl Socket for TcpStream {
    fn shutdown_both(&self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}

/// A client TLS stream (rustls) over TCP, for `wss://`.
#[cfg(feature = "tls")]
pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

#[cfg(feature = "tls")]
impl Socket for TlsStream {
    fn shutdown_both(&self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}

/// A blocking WebSocket client connection, over TCP or (with [`TlsStream`]) TLS.
pub struct Client<S: Socket = TcpStream> {
    stream: S,
    decoder: Decoder,
    queue: VecDeque<Received>,
    limits: Limits,
    kernel: Kernel,
    keys: [u8; 256],
    key_pos: usize,
    protocol: Option<String>,
    buf: Vec<u8>,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl Client {
    /// Connects and upgrades `ws://addr/path`.
    ///
    /// # Errors
    /// I/O errors, or `InvalidData` when the server's answer is not a valid 101.
    pub fn connect(addr: SocketAddr, path: &str) -> io::Result<Client> {
        Client::connect_with(addr, path, &[])
    }

    /// Connects offering subprotocols.
    ///
    /// # Errors
    /// As [`Client::connect`].
    pub fn connect_with(addr: SocketAddr, path: &str, protocols: &[&str]) -> io::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Client::handshake(stream, &addr.to_string(), path, protocols)
    }
}

#[cfg(feature = "tls")]
impl Client<TlsStream> {
    /// Connects and upgrades `wss://addr/path`, verifying the server's certificate for
    /// `server_name` with `config`.
    ///
    /// # Errors
    /// As [`Client::connect`], plus TLS errors (as `InvalidData`).
    pub fn connect_tls(
        addr: SocketAddr,
        server_name: &str,
        path: &str,
        config: std::sync::Arc<rustls::ClientConfig>,
    ) -> io::Result<Client<TlsStream>> {
        let name = rustls::pki_types::ServerName::try_from(server_name.to_owned())
            .map_err(|e| invalid(format!("server name: {e}")))?;
        let conn = rustls::ClientConnection::new(config, name)
            .map_err(|e| invalid(format!("TLS: {e}")))?;
        let tcp = TcpStream::connect(addr)?;
        tcp.set_nodelay(true)?;
        Client::handshake(rustls::StreamOwned::new(conn, tcp), server_name, path, &[])
    }
}

impl<S: Socket> Client<S> {
    /// Upgrades an already connected stream (TCP, or TLS over TCP).
    ///
    /// # Errors
    /// As [`Client::connect`].
    pub fn handshake(
        mut stream: S,
        host: &str,
        path: &str,
        protocols: &[&str],
    ) -> io::Result<Client<S>> {
        let mut raw = [0u8; 16];
        crate::sys::random_bytes(&mut raw)?;
        let key = handshake::encode_key(raw);
        let key = std::str::from_utf8(&key)
            .map_err(|_| invalid("key"))?
            .to_owned();
        let mut req = Vec::new();
        handshake::write_request(&mut req, host, path, &key, protocols, None);
        stream.write_all(&req)?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let from = buf.len();
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = handshake::find_head_end(&buf, from) {
                break end;
            }
            if buf.len() > 64 << 10 {
                return Err(invalid("response head too large"));
            }
        };
        let mut headers = [httparse::EMPTY_HEADER; handshake::MAX_HEADERS];
        let resp = handshake::parse_response(&buf[..end], &mut headers, key.as_bytes())
            .map_err(|e| invalid(format!("upgrade refused: {} {}", e.status, e.reason)))?;
        let protocol = resp.protocol.map(str::to_owned);
        if let Some(p) = &protocol
            && !protocols.contains(&p.as_str())
        {
            return Err(invalid("server chose a subprotocol we did not offer"));
        }
        let rest = buf[end..].to_vec();
        let mut c = Client {
            stream,
            decoder: Decoder::new(),
            queue: VecDeque::new(),
            limits: Limits::trusting(Role::Client),
            kernel: Kernel::detect(),
            keys: [0; 256],
            key_pos: 256,
            protocol,
            buf: Vec::new(),
        };
        if !rest.is_empty() {
            c.decode(rest)?;
        }
        Ok(c)
    }

    /// The subprotocol the server selected.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The stream (for timeouts and shutdown).
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// The stream, mutably (to write raw bytes around the codec).
    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    fn next_key(&mut self) -> io::Result<[u8; 4]> {
        if self.key_pos + 4 > self.keys.len() {
            crate::sys::random_bytes(&mut self.keys)?;
            self.key_pos = 0;
        }
        let k = &self.keys[self.key_pos..self.key_pos + 4];
        self.key_pos += 4;
        Ok([k[0], k[1], k[2], k[3]])
    }

    /// Writes one masked frame.
    ///
    /// # Errors
    /// I/O errors.
    pub fn send_frame(&mut self, fin: bool, op: OpCode, payload: &[u8]) -> io::Result<()> {
        let key = self.next_key()?;
        let mut h = [0u8; MAX_HEADER];
        let n = frame::encode(&mut h, fin, false, op, Some(key), payload.len() as u64);
        self.buf.clear();
        self.buf.extend_from_slice(&h[..n]);
        self.buf.extend_from_slice(payload);
        self.kernel.apply(&mut self.buf[n..], key, 0);
        self.stream.write_all(&self.buf)
    }

    /// Sends a message in one frame.
    ///
    /// # Errors
    /// I/O errors.
    pub fn send(&mut self, msg: Message<'_>) -> io::Result<()> {
        match msg {
            Message::Text(t) => self.send_frame(true, OpCode::Text, t.as_bytes()),
            Message::Binary(b) => self.send_frame(true, OpCode::Binary, b),
        }
    }

    /// Sends raw bytes as they are (for tests of malformed input).
    ///
    /// # Errors
    /// I/O errors.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends a Close frame with a code and reason.
    ///
    /// # Errors
    /// I/O errors.
    pub fn close(&mut self, code: u16, reason: &str) -> io::Result<()> {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason.as_bytes());
        self.send_frame(true, OpCode::Close, &p)
    }

    fn decode(&mut self, mut data: Vec<u8>) -> io::Result<()> {
        let queue = &mut self.queue;
        let mut compressed = false;
        let mut push = |ev: Event<'_>| {
            queue.push_back(match ev {
                Event::Text(t) => Received::Text(t.to_owned()),
                Event::Binary(b) => Received::Binary(b.to_vec()),
                Event::Ping(p) => Received::Ping(p.to_vec()),
                Event::Pong(p) => Received::Pong(p.to_vec()),
                Event::Close(c, r) => Received::Close(c, String::from_utf8_lossy(r).into_owned()),
                // This client offers no compression, so the decoder refuses RSV1 before this.
                Event::Compressed { .. } => {
                    compressed = true;
                    return false;
                }
            });
            true
        };
        // This client offers no compression: RSV1 is refused.
        let mut result = self
            .decoder
            .feed(&mut data, &self.limits, false, self.kernel, &mut push);
        if compressed {
            result = Err(crate::error::ProtocolError::ReservedBits);
        }
        if let Err(e) = result {
            // RFC 6455 §7.1.7 (BAD_INPUTS 16): Fail the connection, i.e. send a Close with the
            // code the error earns, then close TCP; before, the error was only returned and the
            // server never learned why. Best effort: the socket may already be broken.
            let mut p = e.close_code().to_be_bytes().to_vec();
            p.extend_from_slice(e.reason().as_bytes());
            let _ = self.send_frame(true, OpCode::Close, &p);
            self.stream.shutdown_both();
            return Err(invalid(format!("protocol error from server: {e}")));
        }
        Ok(())
    }

    /// Receives the next event, blocking.
    ///
    /// # Errors
    /// I/O errors (a read timeout set on [`Client::stream`] gives `WouldBlock`/`TimedOut`),
    /// `UnexpectedEof` when the server closed TCP, `InvalidData` on a protocol error.
    pub fn recv(&mut self) -> io::Result<Received> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Ok(ev);
            }
            let mut chunk = vec![0u8; 64 << 10];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            chunk.truncate(n);
            self.decode(chunk)?;
        }
    }
}
