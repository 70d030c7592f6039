//! The TLS 1.3 record layer of the record handover (`TlsConfig::record_handover`): once rustls
//! has finished the handshake it gives up the traffic secrets and keeps only a small object for
//! key updates (`dangerous_into_kernel_connection`, made for kTLS); records are then sealed and
//! opened here with ring's AEAD keys (RFC 8446 section 5). What a connection keeps is the two
//! keys, their IVs and sequence numbers, and that object.
//!
//! Sealing: the plaintext, its content type and no padding, under the nonce `iv XOR seq`
//! (section 5.3) with the record header as additional data, at most 2^14 plaintext bytes per
//! record. Opening: the header checked (application data, at most 2^14 + 256 bytes), the record
//! opened, the zero padding stripped, then application data, an alert (close_notify ends the
//! peer's stream, user_canceled is ignored, any other ends the connection) or a KeyUpdate (new
//! receive keys; if the peer asks, our KeyUpdate goes out first and our keys change after it).
//! Our own keys change before the suite's confidentiality limit is reached. Bad input gets the
//! fatal alert RFC 8446 names, and an error.

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::kernel::KernelConnection;
use rustls::server::ServerConnectionData;
use rustls::{ConnectionTrafficSecrets, Error};

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

const HEADER: usize = 5;
const TAG: usize = 16;
/// Plaintext per record (section 5.1).
const MAX_PLAIN: usize = 1 << 14;
/// Ciphertext per record (section 5.2).
const MAX_CIPHER: usize = MAX_PLAIN + 256;

/// Content types.
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;

/// Records without data accepted in a row (rustls and BoringSSL allow 32 KeyUpdates).
const MAX_CONTROL_RUN: u8 = 32;

/// Handshake message type of a KeyUpdate.
const KEY_UPDATE: u8 = 24;

/// Alert descriptions (section 6).
const CLOSE_NOTIFY: u8 = 0;
const UNEXPECTED_MESSAGE: u8 = 10;
const BAD_RECORD_MAC: u8 = 20;
const RECORD_OVERFLOW: u8 = 22;
const ILLEGAL_PARAMETER: u8 = 47;
const DECODE_ERROR: u8 = 50;
const INTERNAL_ERROR: u8 = 80;
const USER_CANCELED: u8 = 90;

/// A direction's AEAD key and IV from rustls' secrets.
fn keys(secrets: &ConnectionTrafficSecrets) -> Result<(LessSafeKey, [u8; 12]), Error> {
    let (alg, key, iv) = match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
        ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
        ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
            (&aead::CHACHA20_POLY1305, key, iv)
        }
        _ => return Err(general("a cipher suite the record handover does not know")),
    };
    let key = UnboundKey::new(alg, key.as_ref()).map_err(|_| general("bad AEAD key"))?;
    let iv = iv
        .as_ref()
        .try_into()
        .map_err(|_| general("bad IV length"))?;
    Ok((LessSafeKey::new(key), iv))
}

/// The nonce of record `seq` (section 5.3), or an error where the sequence number would wrap
/// (`u64::MAX` also marks a direction closed).
fn nonce(iv: &[u8; 12], seq: u64) -> Result<Nonce, Error> {
    if seq == u64::MAX {
        return Err(general("record sequence number exhausted"));
    }
    let mut n = *iv;
    for (b, s) in n[4..].iter_mut().zip(seq.to_be_bytes()) {
        *b ^= s;
    }
    Ok(Nonce::assume_unique_for_key(n))
}

/// Seals one record of content type `typ` (at most 2^14 bytes) at the end of `out`.
fn seal(
    key: &LessSafeKey,
    iv: &[u8; 12],
    seq: &mut u64,
    typ: u8,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let nonce = nonce(iv, *seq)?;
    let start = out.len();
    let len = data.len() + 1 + TAG;
    out.extend_from_slice(&[APPLICATION_DATA, 3, 3]);
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(data);
    out.push(typ);
    let (head, body) = out[start..].split_at_mut(HEADER);
    let tag = key
        .seal_in_place_separate_tag(nonce, Aad::from(&*head), body)
        .map_err(|_| general("sealing failed"))?;
    out.extend_from_slice(tag.as_ref());
    *seq += 1;
    Ok(())
}

fn general(msg: &str) -> Error {
    Error::General(msg.to_owned())
}

/// One connection's records after the handover. The fields are laid out flat (no per-direction
/// struct) so that no padding is repeated: this is what an idle connection keeps.
pub(crate) struct Records {
    kernel: KernelConnection<ServerConnectionData>,
    tx: LessSafeKey,
    rx: LessSafeKey,
    tx_iv: [u8; 12],
    rx_iv: [u8; 12],
    /// Records sealed under `tx`; `u64::MAX` once we sent close_notify or a fatal alert
    /// (nothing more is sealed).
    tx_seq: u64,
    rx_seq: u64,
    /// Records without data (KeyUpdate, user_canceled) received in a row.
    control_run: u8,
    /// A lower confidentiality limit, for tests.
    #[cfg(test)]
    limit: Option<u64>,
}

impl Records {
    /// Takes over from rustls after a TLS 1.3 handshake with nothing left to send.
    ///
    /// # Errors
    /// rustls refused (not TLS 1.3, secrets not extractable, output pending) or the suite is
    /// unknown here. The rustls connection is gone either way.
    pub(crate) fn hand_over(
        conn: rustls::server::UnbufferedServerConnection,
    ) -> Result<Records, Error> {
        if conn.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
            return Err(general("the record handover is for TLS 1.3 only"));
        }
        let (secrets, kernel) = conn.dangerous_into_kernel_connection()?;
        let (tx, tx_iv) = keys(&secrets.tx.1)?;
        let (rx, rx_iv) = keys(&secrets.rx.1)?;
        Ok(Records {
            kernel,
            tx,
            rx,
            tx_iv,
            rx_iv,
            tx_seq: secrets.tx.0,
            rx_seq: secrets.rx.0,
            control_run: 0,
            #[cfg(test)]
            limit: None,
        })
    }

    fn closed(&self) -> bool {
        self.tx_seq == u64::MAX
    }

    /// Records sealed under one key before it is replaced (the suite's confidentiality limit).
    fn tx_limit(&self) -> u64 {
        #[cfg(test)]
        if let Some(n) = self.limit {
            return n;
        }
        self.kernel
            .negotiated_cipher_suite()
            .tls13()
            .map_or(1 << 24, |s| s.common.confidentiality_limit)
    }

    /// Opens the records in `cipher`; application data is copied to the start of `plain`
    /// (as long as `cipher` at least), our answers (a KeyUpdate, an alert) are appended to
    /// `out`, and a record cut at the end is left for the next read (`used` stops before it).
    ///
    /// # Errors
    /// Bad input; `out` then ends with the fatal alert to send before closing.
    pub(crate) fn decrypt(
        &mut self,
        cipher: &mut [u8],
        plain: &mut [u8],
        out: &mut Vec<u8>,
    ) -> Result<Decrypted, Error> {
        let mut done = Decrypted {
            plain: 0,
            used: 0,
            peer_closed: false,
        };
        while !done.peer_closed {
            let rest = &mut cipher[done.used..];
            if rest.len() < HEADER {
                break;
            }
            let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
            if rest[0] != APPLICATION_DATA {
                return Err(self.fatal(out, UNEXPECTED_MESSAGE, "an unprotected record"));
            }
            if len > MAX_CIPHER {
                return Err(self.fatal(out, RECORD_OVERFLOW, "a record over 2^14 + 256 bytes"));
            }
            if len < TAG {
                return Err(self.fatal(out, BAD_RECORD_MAC, "a record shorter than its tag"));
            }
            if rest.len() < HEADER + len {
                break;
            }
            let (head, body) = rest[..HEADER + len].split_at_mut(HEADER);
            let nonce = nonce(&self.rx_iv, self.rx_seq)?;
            let Ok(inner) = self.rx.open_in_place(nonce, Aad::from(&*head), body) else {
                return Err(self.fatal(out, BAD_RECORD_MAC, "a record that does not open"));
            };
            self.rx_seq += 1;
            done.used += HEADER + len;
            let Some(end) = inner.iter().rposition(|&b| b != 0) else {
                return Err(self.fatal(out, UNEXPECTED_MESSAGE, "a record without content type"));
            };
            // The whole inner plaintext, padding included (section 5.4).
            if inner.len() > MAX_PLAIN + 1 {
                return Err(self.fatal(out, RECORD_OVERFLOW, "plaintext over 2^14 bytes"));
            }
            // Records that are not data (KeyUpdates, user_canceled): a bounded run of them, so
            // that a peer cannot make us derive keys and answer without end (as rustls does).
            if inner[end] == APPLICATION_DATA {
                self.control_run = 0;
            } else {
                self.control_run = self.control_run.saturating_add(1);
                if self.control_run > MAX_CONTROL_RUN {
                    return Err(self.fatal(
                        out,
                        UNEXPECTED_MESSAGE,
                        "too many records without data in a row",
                    ));
                }
            }
            let content = &inner[..end];
            match inner[end] {
                APPLICATION_DATA => {
                    let Some(to) = plain.get_mut(done.plain..done.plain + end) else {
                        return Err(self.fatal(out, INTERNAL_ERROR, "plaintext past its buffer"));
                    };
                    to.copy_from_slice(content);
                    done.plain += end;
                }
                ALERT => match content {
                    [_, CLOSE_NOTIFY] => done.peer_closed = true,
                    [_, USER_CANCELED] => {}
                    [_, d] => {
                        // The peer ended the connection: nothing more is sealed (section 6.2).
                        self.tx_seq = u64::MAX;
                        return Err(Error::General(format!("peer sent alert {d}")));
                    }
                    [] => return Err(self.fatal(out, UNEXPECTED_MESSAGE, "an empty alert")),
                    _ => return Err(self.fatal(out, DECODE_ERROR, "an alert of a wrong length")),
                },
                HANDSHAKE => {
                    // Copied out: the message is 5 bytes, and `cipher` stays borrowed otherwise.
                    let msg = content.to_vec();
                    self.handshake(&msg, out)?;
                }
                _ => return Err(self.fatal(out, UNEXPECTED_MESSAGE, "an unexpected content type")),
            }
        }
        Ok(done)
    }

    /// A handshake record: only a KeyUpdate, whole and alone in its record (a key change ends
    /// its record, section 5.1), is allowed after the handshake.
    fn handshake(&mut self, msg: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let [typ, a, b, c, body @ ..] = msg else {
            return Err(self.fatal(out, UNEXPECTED_MESSAGE, "a handshake message cut short"));
        };
        let len = usize::from(*a) << 16 | usize::from(*b) << 8 | usize::from(*c);
        if *typ != KEY_UPDATE {
            return Err(self.fatal(
                out,
                UNEXPECTED_MESSAGE,
                "a handshake message after the handshake",
            ));
        }
        if len != 1 || body.is_empty() {
            return Err(self.fatal(out, DECODE_ERROR, "a KeyUpdate of a wrong length"));
        }
        if body.len() != 1 {
            return Err(self.fatal(
                out,
                UNEXPECTED_MESSAGE,
                "a KeyUpdate not at the end of its record",
            ));
        }
        let requested = match body[0] {
            0 => false,
            1 => true,
            _ => {
                return Err(self.fatal(out, ILLEGAL_PARAMETER, "a KeyUpdate request of 2 or more"));
            }
        };
        let new = self
            .kernel
            .update_rx_secret()
            .and_then(|(seq, s)| Ok((seq, keys(&s)?)));
        let Ok((seq, (key, iv))) = new else {
            return Err(self.fatal(out, INTERNAL_ERROR, "new receive keys could not be made"));
        };
        (self.rx, self.rx_iv) = (key, iv);
        self.rx_seq = seq;
        if requested && !self.closed() {
            self.update_tx(out)?;
        }
        Ok(())
    }

    /// Sends a KeyUpdate (not asking the peer for one) under the current key, then changes it.
    fn update_tx(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        self.seal(HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, 0], out)?;
        let (seq, secrets) = self.kernel.update_tx_secret()?;
        (self.tx, self.tx_iv) = keys(&secrets)?;
        self.tx_seq = seq;
        Ok(())
    }

    /// Seals `plain` as application data records appended to `out`. After our close_notify
    /// nothing is: the bytes are dropped (the connection is closing).
    ///
    /// # Errors
    /// The key could not be changed (the connection is broken).
    pub(crate) fn encrypt(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        if self.closed() {
            return Ok(());
        }
        out.reserve(plain.len() + plain.len().div_ceil(MAX_PLAIN) * (HEADER + 1 + TAG));
        for part in plain.chunks(MAX_PLAIN) {
            if self.tx_seq >= self.tx_limit() {
                self.update_tx(out)?;
            }
            self.seal(APPLICATION_DATA, part, out)?;
        }
        Ok(())
    }

    /// Appends our close_notify (once); nothing is sealed after it.
    pub(crate) fn close_notify(&mut self, out: &mut Vec<u8>) {
        if !self.closed() {
            let _ = self.seal(ALERT, &[1, CLOSE_NOTIFY], out);
            self.tx_seq = u64::MAX;
        }
    }

    /// Appends a fatal alert (unless we already closed) and returns the error to report.
    fn fatal(&mut self, out: &mut Vec<u8>, desc: u8, what: &str) -> Error {
        if !self.closed() {
            let _ = self.seal(ALERT, &[2, desc], out);
            self.tx_seq = u64::MAX;
        }
        Error::General(format!("{what} (alert {desc})"))
    }

    /// Seals one record under our current key.
    fn seal(&mut self, typ: u8, data: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        seal(&self.tx, &self.tx_iv, &mut self.tx_seq, typ, data, out)
    }

    /// Sets the confidentiality limit (tests reach it in a few records).
    #[cfg(test)]
    fn set_tx_limit(&mut self, n: u64) {
        self.limit = Some(n);
    }
}

/// Against rustls' own client, in memory: the server's handshake by rustls, then the records by
/// [`Records`]. Where the client must send what rustls would never send, its keys are taken
/// (secret extraction) and records are sealed by hand.
#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::Arc;

    use rustls::pki_types::{CertificateDer, ServerName};

    use rustls::{AlertDescription, ClientConfig, ClientConnection, RootCertStore};

    use super::*;
    use crate::tls::{TlsConfig, TlsConn};

    /// A client's sending keys, to seal by hand.
    struct Keys {
        key: LessSafeKey,
        iv: [u8; 12],
        seq: u64,
    }

    impl Keys {
        fn seal(&mut self, typ: u8, data: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
            seal(&self.key, &self.iv, &mut self.seq, typ, data, out)
        }
    }

    struct Pair {
        client: ClientConnection,
        server: TlsConn,
    }

    #[allow(deprecated)] // ring's provider, as the server's.
    fn client_config(
        der: &CertificateDer<'static>,
        suites: Option<Vec<rustls::SupportedCipherSuite>>,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> Arc<ClientConfig> {
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(s) = suites {
            provider.cipher_suites = s;
        }
        let mut roots = RootCertStore::empty();
        roots.add(der.clone()).unwrap();
        let mut cfg = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.enable_secret_extraction = true;
        Arc::new(cfg)
    }

    /// A server with the handover and a rustls client, nothing exchanged yet.
    fn fresh(
        suites: Option<Vec<rustls::SupportedCipherSuite>>,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> Pair {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let server_cfg = TlsConfig::from_pem(
            c.cert.pem().as_bytes(),
            c.signing_key.serialize_pem().as_bytes(),
        )
        .record_handover(true)
        .build()
        .unwrap();
        let server = TlsConn::new(
            rustls::server::UnbufferedServerConnection::new(server_cfg).unwrap(),
            true,
        );
        let client = ClientConnection::new(
            client_config(c.cert.der(), suites, version),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        Pair { client, server }
    }

    /// A server and a client with the handshake done.
    fn pair_with(
        suites: Option<Vec<rustls::SupportedCipherSuite>>,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> Pair {
        let mut p = fresh(suites, version);
        for _ in 0..10 {
            let up = p.client_out();
            if !up.is_empty() {
                let (_, down) = p.send_up(up).unwrap();
                p.send_down(&down).unwrap();
            }
            if !p.client.is_handshaking() && !p.client.wants_write() {
                break;
            }
        }
        assert!(!p.client.is_handshaking());
        p
    }

    fn pair() -> Pair {
        pair_with(None, &rustls::version::TLS13)
    }

    impl Pair {
        /// What the client has to send.
        fn client_out(&mut self) -> Vec<u8> {
            let mut v = Vec::new();
            while self.client.wants_write() {
                self.client.write_tls(&mut v).unwrap();
            }
            v
        }

        /// Bytes to the server: (plaintext, the server's answer), all bytes used.
        fn send_up(&mut self, mut cipher: Vec<u8>) -> Result<(Vec<u8>, Vec<u8>), Error> {
            let (d, plain, out) = self.feed(&mut cipher);
            let d = d?;
            assert_eq!(d.used, cipher.len(), "a whole flight is used");
            Ok((plain[..d.plain].to_vec(), out))
        }

        fn feed(&mut self, cipher: &mut [u8]) -> (Result<Decrypted, Error>, Vec<u8>, Vec<u8>) {
            feed(&mut self.server, cipher)
        }

        /// Bytes to the client: the plaintext it then has.
        fn send_down(&mut self, mut bytes: &[u8]) -> Result<Vec<u8>, rustls::Error> {
            let mut plain = Vec::new();
            while !bytes.is_empty() {
                self.client.read_tls(&mut bytes).unwrap();
                self.client.process_new_packets()?;
                let _ = self.client.reader().read_to_end(&mut plain);
            }
            Ok(plain)
        }

        /// The server seals `plain`.
        fn sealed(&mut self, plain: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            self.server.encrypt(plain, &mut out).unwrap();
            out
        }

        fn records(&mut self) -> &mut Records {
            records(&mut self.server)
        }

        /// The client's keys, for records rustls would never send (the client is spent).
        #[allow(deprecated)]
        fn client_keys(self) -> (Keys, TlsConn) {
            let s = self.client.dangerous_extract_secrets().unwrap();
            let (key, iv) = keys(&s.tx.1).unwrap();
            (
                Keys {
                    key,
                    iv,
                    seq: s.tx.0,
                },
                self.server,
            )
        }
    }

    /// Bytes to the server: (the result, the plaintext buffer, the server's answer).
    fn feed(
        server: &mut TlsConn,
        cipher: &mut [u8],
    ) -> (Result<Decrypted, Error>, Vec<u8>, Vec<u8>) {
        let mut plain = vec![0; cipher.len()];
        let mut out = Vec::new();
        let d = server.decrypt(cipher, &mut plain, &mut out);
        (d, plain, out)
    }

    fn records(server: &mut TlsConn) -> &mut Records {
        match server {
            TlsConn::Records(r) => r,
            _ => panic!("not handed over"),
        }
    }

    /// Splits records: (content type, length) of each.
    fn headers(mut b: &[u8]) -> Vec<(u8, usize)> {
        let mut v = Vec::new();
        while b.len() >= HEADER {
            let len = usize::from(u16::from_be_bytes([b[3], b[4]]));
            v.push((b[0], len));
            b = &b[HEADER + len..];
        }
        v
    }

    #[test]
    fn records_both_ways_with_every_suite() {
        use rustls::crypto::ring::cipher_suite as cs;
        for suite in [
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
        ] {
            let mut p = pair_with(Some(vec![suite]), &rustls::version::TLS13);
            assert!(p.server.is_handed_over(), "{suite:?}");
            p.client.set_buffer_limit(None);
            // Sizes across the record limit, many records: nonces and sequence numbers agree.
            for (i, n) in [0usize, 1, 100, 16_384, 16_385, 70_000, 5]
                .iter()
                .enumerate()
            {
                let msg: Vec<u8> = (0..*n).map(|j| (i + j) as u8).collect();
                p.client.writer().write_all(&msg).unwrap();
                let up = p.client_out();
                let (got, answer) = p.send_up(up).unwrap();
                assert_eq!(got, msg);
                assert!(answer.is_empty());
                let down = p.sealed(&msg);
                for (typ, len) in headers(&down) {
                    assert_eq!(typ, APPLICATION_DATA);
                    assert!(len <= MAX_PLAIN + 1 + TAG);
                }
                assert_eq!(p.send_down(&down).unwrap(), msg, "{suite:?} {n}");
            }
        }
    }

    /// The client's Finished, a KeyUpdate asking for ours, and data, in one read: rustls takes
    /// the Finished alone; the KeyUpdate and the data are the handover's, which answers the
    /// KeyUpdate (rustls would have queued the answer and lost it with the handover).
    #[test]
    fn finished_key_update_and_data_in_one_read() {
        let mut p = fresh(None, &rustls::version::TLS13);
        // ClientHello up, the server's flight down: the client is done, its Finished not sent.
        let hello = p.client_out();
        let (_, flight) = p.send_up(hello).unwrap();
        p.send_down(&flight).unwrap();
        assert!(!p.client.is_handshaking());
        p.client.refresh_traffic_keys().unwrap();
        p.client.writer().write_all(b"right after").unwrap();
        let all = p.client_out();
        let (got, answer) = p.send_up(all).unwrap();
        assert!(p.server.is_handed_over());
        assert_eq!(got, b"right after");
        // Tickets and our KeyUpdate: the client reads them, then our data under the new key.
        p.send_down(&answer).unwrap();
        let down = p.sealed(b"under the new key");
        assert_eq!(p.send_down(&down).unwrap(), b"under the new key");
    }

    #[test]
    fn tls12_stays_with_rustls() {
        let mut p = pair_with(None, &rustls::version::TLS12);
        assert!(!p.server.is_handed_over());
        p.client.writer().write_all(b"twelve").unwrap();
        let up = p.client_out();
        assert_eq!(p.send_up(up).unwrap().0, b"twelve");
        let down = p.sealed(b"back");
        assert_eq!(p.send_down(&down).unwrap(), b"back");
    }

    #[test]
    fn a_cut_record_is_used_once_whole() {
        let mut p = pair();
        p.client.writer().write_all(b"cut in two").unwrap();
        let mut up = p.client_out();
        let (d, _, _) = p.feed(&mut up[..9]);
        assert_eq!(d.unwrap().used, 0);
        let (d, plain, _) = p.feed(&mut up);
        let d = d.unwrap();
        assert_eq!((d.used, &plain[..d.plain]), (up.len(), &b"cut in two"[..]));
    }

    #[test]
    fn close_notify_both_ways() {
        let mut p = pair();
        p.client.send_close_notify();
        let up = p.client_out();
        let (d, _, _) = p.feed(&mut up.clone());
        assert!(d.unwrap().peer_closed);
        let mut out = Vec::new();
        p.server.close_notify(&mut out);
        p.server.close_notify(&mut out);
        assert_eq!(headers(&out).len(), 1, "once");
        p.send_down(&out).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(p.client.reader().read(&mut buf).unwrap(), 0, "a clean end");
        assert!(p.sealed(b"after").is_empty(), "nothing after close_notify");
    }

    #[test]
    fn key_update_asked_by_rustls_is_answered_and_both_keys_change() {
        let mut p = pair();
        p.client.refresh_traffic_keys().unwrap();
        p.client.writer().write_all(b"new keys").unwrap();
        let up = p.client_out();
        let (got, answer) = p.send_up(up).unwrap();
        assert_eq!(got, b"new keys");
        assert_eq!(headers(&answer).len(), 1, "our KeyUpdate");
        assert_eq!(p.records().tx_seq, 0, "our key changed after it");
        assert!(p.send_down(&answer).unwrap().is_empty());
        // Under the new keys both ways (the client took our KeyUpdate and changed its key).
        let down = p.sealed(b"from the new key");
        assert_eq!(p.send_down(&down).unwrap(), b"from the new key");
        p.client.writer().write_all(b"again").unwrap();
        let up = p.client_out();
        assert_eq!(p.send_up(up).unwrap().0, b"again");
    }

    #[test]
    fn keys_change_at_the_confidentiality_limit() {
        let mut p = pair();
        p.records().set_tx_limit(3);
        let mut all = Vec::new();
        let mut down = Vec::new();
        for i in 0..10u8 {
            all.push(i);
            down.extend(p.sealed(&[i]));
        }
        // 10 records of data, and a KeyUpdate before the 4th, the 7th and the 10th.
        assert_eq!(headers(&down).len(), 13);
        assert_eq!(p.send_down(&down).unwrap(), all);
    }

    /// A record the client seals by hand, and the alert the client then reads.
    fn refused(typ: u8, data: &[u8]) -> AlertDescription {
        let (mut keys, mut server) = pair().client_keys();
        let mut up = Vec::new();
        keys.seal(typ, data, &mut up).unwrap();
        let (d, _, out) = feed(&mut server, &mut up);
        assert!(d.is_err());
        alert_in(&mut server, &out)
    }

    /// The alert description in the server's last record, opened with the server's own key
    /// (the direction is closed after it, so the sequence number it used is found by trying the
    /// first few: the handshake's tickets went before it).
    fn alert_in(server: &mut TlsConn, out: &[u8]) -> AlertDescription {
        let hs = headers(out);
        assert_eq!(hs.len(), 1, "one alert record");
        let r = records(server);
        let mut rec = out.to_vec();
        let (head, body) = rec.split_at_mut(HEADER);
        let opens = |q: u64| {
            let mut b = body.to_vec();
            r.tx.open_in_place(nonce(&r.tx_iv, q).unwrap(), Aad::from(&*head), &mut b)
                .is_ok()
        };
        let seq = (0..8)
            .find(|&q| opens(q))
            .expect("the alert opens under our key");
        let nonce = nonce(&r.tx_iv, seq).unwrap();
        let inner = r.tx.open_in_place(nonce, Aad::from(&*head), body).unwrap();
        assert_eq!(inner.len(), 3);
        assert_eq!(inner[2], ALERT);
        assert_eq!(inner[0], 2, "fatal");
        AlertDescription::from(inner[1])
    }

    #[test]
    fn bad_records_get_the_alert_rfc_8446_names() {
        // A tampered record: bad_record_mac, which rustls reads as such.
        let mut p = pair();
        p.client.writer().write_all(b"tampered").unwrap();
        let mut up = p.client_out();
        let last = up.len() - 1;
        up[last] ^= 1;
        let (d, _, out) = p.feed(&mut up);
        assert!(d.is_err());
        assert_eq!(
            p.send_down(&out).unwrap_err(),
            rustls::Error::AlertReceived(AlertDescription::BadRecordMac)
        );
        // Over the record size: record_overflow, before any byte of it is needed.
        let mut p = pair();
        let mut up = vec![APPLICATION_DATA, 3, 3];
        up.extend_from_slice(&u16::try_from(MAX_CIPHER + 1).unwrap().to_be_bytes());
        let (d, _, out) = p.feed(&mut up);
        assert!(d.is_err());
        assert_eq!(
            p.send_down(&out).unwrap_err(),
            rustls::Error::AlertReceived(AlertDescription::RecordOverflow)
        );
        // An unprotected handshake record after the handshake: unexpected_message.
        let mut p = pair();
        let mut up = vec![HANDSHAKE, 3, 3, 0, 5, KEY_UPDATE, 0, 0, 1, 0];
        let (d, _, out) = p.feed(&mut up);
        assert!(d.is_err());
        assert_eq!(
            p.send_down(&out).unwrap_err(),
            rustls::Error::AlertReceived(AlertDescription::UnexpectedMessage)
        );
    }

    #[test]
    fn what_rustls_never_sends_is_refused() {
        use AlertDescription as A;
        // Plaintext over 2^14 bytes inside a record within the ciphertext limit.
        assert_eq!(
            refused(APPLICATION_DATA, &vec![7; MAX_PLAIN + 1]),
            A::RecordOverflow
        );
        // A handshake message other than KeyUpdate, one cut short, one spread, one too long.
        assert_eq!(refused(HANDSHAKE, &[4, 0, 0, 1, 0]), A::UnexpectedMessage);
        assert_eq!(refused(HANDSHAKE, &[KEY_UPDATE, 0]), A::UnexpectedMessage);
        assert_eq!(
            refused(HANDSHAKE, &[KEY_UPDATE, 0, 0, 2, 0, 0]),
            A::DecodeError
        );
        assert_eq!(
            refused(HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, 0, 1]),
            A::UnexpectedMessage
        );
        assert_eq!(
            refused(HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, 2]),
            A::IllegalParameter
        );
        // An alert of a wrong length, an empty one; an unknown content type; only padding.
        assert_eq!(refused(ALERT, &[1, 0, 0]), A::DecodeError);
        assert_eq!(refused(ALERT, &[]), A::UnexpectedMessage);
        // Padding that takes the inner plaintext past 2^14 + 1 bytes.
        let mut padded = vec![7u8; 10];
        padded.push(APPLICATION_DATA);
        padded.resize(MAX_PLAIN + 2, 0);
        assert_eq!(refused(0, &padded), A::RecordOverflow);
        assert_eq!(refused(20, b"ccs"), A::UnexpectedMessage);
        assert_eq!(refused(0, &[0, 0, 0]), A::UnexpectedMessage);
    }

    #[test]
    fn padding_user_canceled_and_fatal_alerts_from_the_peer() {
        let (mut keys, mut server) = pair().client_keys();
        let mut up = Vec::new();
        // Zero padding after the content type is stripped (sealed as data, type, zeros).
        keys.seal(0, &[b'h', b'i', APPLICATION_DATA, 0, 0, 0], &mut up)
            .unwrap();
        keys.seal(ALERT, &[1, USER_CANCELED], &mut up).unwrap();
        let (d, plain, answer) = feed(&mut server, &mut up);
        let d = d.unwrap();
        assert_eq!(
            (&plain[..d.plain], d.used, answer.len()),
            (&b"hi"[..], up.len(), 0)
        );
        let mut up = Vec::new();
        keys.seal(ALERT, &[2, 40], &mut up).unwrap();
        let (d, _, out) = feed(&mut server, &mut up);
        assert!(d.unwrap_err().to_string().contains("alert 40"));
        assert!(out.is_empty(), "no alert answers an alert");
        let mut after = Vec::new();
        server.encrypt(b"late", &mut after).unwrap();
        assert!(
            after.is_empty(),
            "nothing is sealed after the peer's fatal alert"
        );
    }

    /// KeyUpdates asking for ours, one after another without data: 32 are answered, the 33rd
    /// ends the connection (no endless key derivations and answers).
    #[test]
    fn a_run_of_key_updates_is_bounded() {
        let mut p = pair();
        for i in 0..=MAX_CONTROL_RUN {
            p.client.refresh_traffic_keys().unwrap();
            let up = p.client_out();
            let (d, _, out) = p.feed(&mut up.clone());
            if i < MAX_CONTROL_RUN {
                d.unwrap();
                p.send_down(&out).unwrap();
            } else {
                assert!(d.is_err(), "the 33rd in a row");
                assert_eq!(
                    p.send_down(&out).unwrap_err(),
                    rustls::Error::AlertReceived(AlertDescription::UnexpectedMessage)
                );
            }
        }
    }
}
