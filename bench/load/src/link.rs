//! A connection's byte stream: TCP, or TLS over TCP (rustls' buffered client, for `wss://`).
//! Both read and write like a non-blocking socket, so the load loop does not care which: a read
//! that needs more ciphertext says `WouldBlock`, a write that rustls cannot buffer says
//! `WouldBlock`, and [`Link::flush_tls`] pushes out ciphertext rustls holds (call it when the
//! socket is writable).

use std::io::{self, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

/// TCP, with TLS on top when asked.
pub struct Link {
    pub sock: TcpStream,
    tls: Option<Box<ClientConnection>>,
}

/// What a TLS client needs: whom to trust, and the name to ask for.
#[derive(Clone)]
pub struct Tls {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
}

impl Tls {
    /// Trusts the certificates in the PEM file `ca` (the server's own, for a self-signed one)
    /// and asks for `name`.
    #[allow(deprecated)] // ring's provider, as the servers'.
    pub fn new(ca: &str, name: &str) -> Result<Tls, String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{ca}: {e}"))? {
            roots
                .add(c.map_err(|e| format!("{ca}: {e}"))?)
                .map_err(|e| format!("{ca}: {e}"))?;
        }
        // X25519 first, as browsers offer it: rustls 0.23.48's ring provider puts P-384 first,
        // and the server takes the client's order, which would make every handshake pay ring's
        // slow P-384 on both sides.
        use rustls::crypto::ring::kx_group;
        let provider = Arc::new(rustls::crypto::CryptoProvider {
            kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
            ..rustls::crypto::ring::default_provider()
        });
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // One handshake per connection, as a fleet of distinct clients would do.
        config.resumption = rustls::client::Resumption::disabled();
        let name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
        Ok(Tls {
            config: Arc::new(config),
            name,
        })
    }
}

impl Link {
    pub fn new(sock: TcpStream, tls: Option<&Tls>) -> io::Result<Link> {
        let tls = match tls {
            None => None,
            Some(t) => Some(Box::new(
                ClientConnection::new(t.config.clone(), t.name.clone())
                    .map_err(io::Error::other)?,
            )),
        };
        Ok(Link { sock, tls })
    }

    /// Writes the ciphertext rustls holds, as far as the socket takes it.
    pub fn flush_tls(&mut self) -> io::Result<()> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Ok(());
        };
        while tls.wants_write() {
            match tls.write_tls(&mut self.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Read for Link {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return self.sock.read(buf);
        };
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            // No plaintext waiting: more records from the socket (WouldBlock ends the loop).
            if tls.read_tls(&mut self.sock)? == 0 {
                return Ok(0);
            }
            tls.process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            // Handshake answers, and the request written before the handshake ended.
            while tls.wants_write() {
                match tls.write_tls(&mut self.sock) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

impl Write for Link {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return self.sock.write(buf);
        };
        let n = tls.writer().write(buf)?;
        self.flush_tls()?;
        if n == 0 && !buf.is_empty() {
            // rustls' buffer is full until the socket takes some.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_tls()
    }
}
