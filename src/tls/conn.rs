//! One secure connection's TLS state: rustls' unbuffered connection and a few bits, or after a
//! TLS 1.3 handshake with the record handover, the keys alone ([`Records`]). Bytes in,
//! plaintext and handshake bytes out; the caller does the socket I/O and keeps the bytes of a
//! record cut by a read (the reactor's layer holds them, only while one is cut).

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError};

pub(crate) use super::records::Decrypted;
use super::records::Records;

/// One connection's TLS state, a pointer in the reactor's table.
pub(crate) enum TlsConn {
    /// rustls does the records: during the handshake, and after it in the default mode.
    Rustls(Box<Unbuffered>),
    /// The record handover: after a TLS 1.3 handshake, the keys alone.
    Records(Box<Records>),
    /// A handover that failed: the connection is closing.
    Broken,
}

impl TlsConn {
    /// A new connection; with `handover`, rustls hands the records over once a TLS 1.3
    /// handshake is done.
    pub(crate) fn new(conn: UnbufferedServerConnection, handover: bool) -> TlsConn {
        TlsConn::Rustls(Box::new(Unbuffered {
            conn,
            closed: false,
            fresh: true,
            handover,
        }))
    }

    /// Whether the handshake is still going on.
    pub(crate) fn is_handshaking(&self) -> bool {
        matches!(self, TlsConn::Rustls(u) if u.conn.is_handshaking())
    }

    /// Whether nothing has been received yet (the first byte tells TLS from plain HTTP).
    pub(crate) fn is_fresh(&self) -> bool {
        matches!(self, TlsConn::Rustls(u) if u.fresh)
    }

    /// Whether the records are ours (the handover is done).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn is_handed_over(&self) -> bool {
        matches!(self, TlsConn::Records(_))
    }

    /// Processes the records in `cipher`: application data is copied to the start of `plain`
    /// (plaintext is never longer than its ciphertext, so `plain` as long as `cipher` is
    /// enough), handshake records and alerts to send are appended to `out`, and what is left of
    /// a cut record is kept for the next read. A finished TLS 1.3 handshake is handed over here
    /// when asked for.
    ///
    /// # Errors
    /// The error for bad input; `out` then holds the alert to send before closing.
    pub(crate) fn decrypt(
        &mut self,
        cipher: &mut [u8],
        plain: &mut [u8],
        out: &mut Vec<u8>,
    ) -> Result<Decrypted, rustls::Error> {
        let u = match self {
            TlsConn::Rustls(u) => u,
            TlsConn::Records(r) => return r.decrypt(cipher, plain, out),
            TlsConn::Broken => return Err(rustls::Error::General("TLS state lost".into())),
        };
        let mut done = u.decrypt(cipher, plain, out)?;
        if u.hands_over()
            && !done.peer_closed
            && let TlsConn::Rustls(u) = std::mem::replace(self, TlsConn::Broken)
        {
            let mut records = Box::new(Records::hand_over(u.conn)?);
            // What followed the handshake's last record in this read is the handover's.
            let rest = records.decrypt(&mut cipher[done.used..], &mut plain[done.plain..], out);
            *self = TlsConn::Records(records);
            let rest = rest?;
            done.used += rest.used;
            done.plain += rest.plain;
            done.peer_closed = rest.peer_closed;
        }
        Ok(done)
    }

    /// Encrypts `plain` as application data, appending the records to `out`. After our
    /// close_notify nothing is: the bytes are dropped (the connection is closing).
    ///
    /// # Errors
    /// When the connection cannot send application data (handshaking, key usage exhausted).
    pub(crate) fn encrypt(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), rustls::Error> {
        match self {
            TlsConn::Rustls(u) => u.encrypt(plain, out),
            TlsConn::Records(r) => r.encrypt(plain, out),
            TlsConn::Broken => Err(rustls::Error::General("TLS state lost".into())),
        }
    }

    /// Appends our close_notify (once); nothing is encrypted after it.
    pub(crate) fn close_notify(&mut self, out: &mut Vec<u8>) {
        match self {
            TlsConn::Rustls(u) => u.close_notify(out),
            TlsConn::Records(r) => r.close_notify(out),
            TlsConn::Broken => {}
        }
    }
}

/// rustls' unbuffered connection and our bits.
pub(crate) struct Unbuffered {
    conn: UnbufferedServerConnection,
    /// We sent close_notify: nothing more is encrypted.
    closed: bool,
    /// Nothing received yet.
    fresh: bool,
    /// Hand the records over after a TLS 1.3 handshake.
    handover: bool,
}

/// A safe over-estimate of the ciphertext for `n` plaintext bytes: 29 bytes per 16 KiB record
/// at most (TLS 1.2 AES-GCM; 22 with TLS 1.3), and room for a queued key update.
fn sealed_len(n: usize) -> usize {
    n + n.div_ceil(16 << 10).max(1) * 29 + 128
}

impl Unbuffered {
    /// Whether the records are to be handed over now: asked for, a TLS 1.3 handshake done, and
    /// not closing.
    fn hands_over(&self) -> bool {
        self.handover
            && !self.closed
            && !self.conn.is_handshaking()
            && self.conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3)
    }

    /// [`TlsConn::decrypt`] by rustls.
    fn decrypt(
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
            // With the handover, rustls gets one record at a time until the handshake is done,
            // and nothing after it (but the chance to send what it still has queued, such as
            // the session tickets): the records that follow are the handover's to open, and
            // rustls must not have acted on any of them (a KeyUpdate it answered would be lost).
            let handing = self.hands_over();
            let end = if handing {
                off
            } else if self.handover && self.conn.is_handshaking() {
                record_end(cipher, off)
            } else {
                cipher.len()
            };
            let limited = end < cipher.len();
            let status = self.conn.process_tls_records(&mut cipher[off..end]);
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
                // Waiting for more bytes: the next record, when rustls was given one alone and
                // more follow; else the next read.
                _ if limited && !handing && discard > 0 => {}
                _ => return Ok(off + discard),
            }
            off += discard;
        }
    }

    /// [`TlsConn::encrypt`] by rustls.
    fn encrypt(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), rustls::Error> {
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

    /// [`TlsConn::close_notify`] by rustls.
    fn close_notify(&mut self, out: &mut Vec<u8>) {
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

/// Where the record that starts at `off` ends, if the bytes hold all of it; else the end of the
/// bytes (rustls then asks for more).
fn record_end(cipher: &[u8], off: usize) -> usize {
    match cipher.get(off..off + 5) {
        Some(h) => {
            let end = off + 5 + usize::from(u16::from_be_bytes([h[3], h[4]]));
            end.min(cipher.len())
        }
        None => cipher.len(),
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
