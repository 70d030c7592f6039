//! One secure connection's TLS state: rustls' unbuffered connection and two bits. Bytes in,
//! plaintext and handshake bytes out; the caller does the socket I/O and keeps the bytes of a
//! record cut by a read (the reactor's layer holds them, only while one is cut).

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError};

/// What decrypting a read gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decrypted {
    /// Plaintext bytes written at the start of the caller's buffer.
    pub(crate) plain: usize,
    /// Bytes of the input used; the rest is a cut record (or handshake message) to present
    /// again, first, with the next read.
    pub(crate) used: usize,
    /// The peer sent close_notify (a clean end of its stream).
    pub(crate) peer_closed: bool,
}

/// One connection's TLS state.
pub(crate) struct TlsConn {
    conn: UnbufferedServerConnection,
    /// We sent close_notify: nothing more is encrypted.
    closed: bool,
    /// Nothing received yet.
    fresh: bool,
}

/// A safe over-estimate of the ciphertext for `n` plaintext bytes: 29 bytes per 16 KiB record
/// at most (TLS 1.2 AES-GCM; 22 with TLS 1.3), and room for a queued key update.
fn sealed_len(n: usize) -> usize {
    n + n.div_ceil(16 << 10).max(1) * 29 + 128
}

impl TlsConn {
    pub(crate) fn new(conn: UnbufferedServerConnection) -> TlsConn {
        TlsConn {
            conn,
            closed: false,
            fresh: true,
        }
    }

    /// Whether the handshake is still going on.
    pub(crate) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Whether nothing has been received yet (the first byte tells TLS from plain HTTP).
    pub(crate) fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// Processes the records in `cipher`: application data is copied to the start of `plain`
    /// (plaintext is never longer than its ciphertext, so `plain` as long as `cipher` is
    /// enough), handshake records and alerts to send are appended to `out`, and what is left of
    /// a cut record is kept for the next read.
    ///
    /// # Errors
    /// rustls' error for bad input; `out` then holds the alert to send before closing.
    pub(crate) fn decrypt(
        &mut self,
        cipher: &mut [u8],
        plain: &mut [u8],
        out: &mut Vec<u8>,
    ) -> Result<Decrypted, rustls::Error> {
        self.fresh = false;
        let mut done = Decrypted {
            plain: 0,
            used: 0,
            peer_closed: false,
        };
        match self.process(cipher, plain, out, &mut done) {
            Ok(used) => {
                done.used = used;
                Ok(done)
            }
            Err(e) => {
                // The fatal alert rustls queued goes out before we close (asked for with an
                // empty slice: the bad bytes must not be processed twice).
                if let Ok(ConnectionState::EncodeTlsData(mut a)) =
                    self.conn.process_tls_records(&mut []).state
                {
                    encode(out, |b| a.encode(b));
                }
                Err(e)
            }
        }
    }

    /// The record loop of [`TlsConn::decrypt`]; returns how many bytes of `cipher` were used.
    fn process(
        &mut self,
        cipher: &mut [u8],
        plain: &mut [u8],
        out: &mut Vec<u8>,
        done: &mut Decrypted,
    ) -> Result<usize, rustls::Error> {
        let mut off = 0;
        loop {
            let status = self.conn.process_tls_records(&mut cipher[off..]);
            let mut discard = status.discard;
            match status.state? {
                ConnectionState::ReadTraffic(mut r) => {
                    while let Some(record) = r.next_record() {
                        let record = record?;
                        discard += record.discard;
                        let n = record.payload.len();
                        let Some(to) = plain.get_mut(done.plain..done.plain + n) else {
                            return Err(rustls::Error::General("plaintext past its buffer".into()));
                        };
                        to.copy_from_slice(record.payload);
                        done.plain += n;
                    }
                }
                ConnectionState::EncodeTlsData(mut e) => encode(out, |b| e.encode(b)),
                ConnectionState::TransmitTlsData(t) => t.done(),
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    done.peer_closed = true;
                    return Ok(off + discard);
                }
                // Waiting for more bytes, during the handshake or after it.
                _ => return Ok(off + discard),
            }
            off += discard;
        }
    }

    /// Encrypts `plain` as application data, appending the records to `out`. After our
    /// close_notify nothing is: the bytes are dropped (the connection is closing).
    ///
    /// # Errors
    /// When the connection cannot send application data (handshaking, key usage exhausted).
    pub(crate) fn encrypt(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), rustls::Error> {
        if self.closed || plain.is_empty() {
            return Ok(());
        }
        loop {
            match self.conn.process_tls_records(&mut []).state {
                Ok(ConnectionState::WriteTraffic(mut w)) => {
                    let start = out.len();
                    let mut room = sealed_len(plain.len());
                    loop {
                        out.resize(start + room, 0);
                        match w.encrypt(plain, &mut out[start..]) {
                            Ok(n) => {
                                out.truncate(start + n);
                                return Ok(());
                            }
                            Err(EncryptError::InsufficientSize(s)) => room = s.required_size,
                            Err(e) => {
                                out.truncate(start);
                                return Err(rustls::Error::General(e.to_string()));
                            }
                        }
                    }
                }
                // Handshake bytes still queued (tickets, a key update): they go first.
                Ok(ConnectionState::EncodeTlsData(mut e)) => encode(out, |b| e.encode(b)),
                Ok(ConnectionState::TransmitTlsData(t)) => t.done(),
                Ok(_) => return Err(rustls::Error::General("cannot send data now".into())),
                Err(e) => return Err(e),
            }
        }
    }

    /// Appends our close_notify (once); nothing is encrypted after it.
    pub(crate) fn close_notify(&mut self, out: &mut Vec<u8>) {
        if self.closed {
            return;
        }
        self.closed = true;
        if let Ok(ConnectionState::WriteTraffic(mut w)) =
            self.conn.process_tls_records(&mut []).state
        {
            let start = out.len();
            let mut room = 64;
            loop {
                out.resize(start + room, 0);
                match w.queue_close_notify(&mut out[start..]) {
                    Ok(n) => {
                        out.truncate(start + n);
                        return;
                    }
                    Err(EncryptError::InsufficientSize(s)) if s.required_size > room => {
                        room = s.required_size;
                    }
                    Err(_) => {
                        out.truncate(start);
                        return;
                    }
                }
            }
        }
    }
}

/// Runs an encoder into the end of `out`, growing it as the encoder asks.
fn encode(out: &mut Vec<u8>, mut f: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>) {
    let start = out.len();
    let mut room = 4096;
    loop {
        out.resize(start + room, 0);
        match f(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return;
            }
            Err(EncodeError::InsufficientSize(s)) if s.required_size > room => {
                room = s.required_size;
            }
            Err(_) => {
                out.truncate(start);
                return;
            }
        }
    }
}
