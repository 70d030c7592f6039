//! The one seam between a connection's socket and the protocol: bytes in ([`recv`]) and bytes
//! out ([`send`], [`queue`], [`flush`]). Above it everything is plaintext; TLS (feature `tls`)
//! wraps here and nowhere else: a secure connection's reads are decrypted into the caller's
//! buffer, and its output is sealed into records before it is written or queued, so its queue
//! holds ciphertext.
//!
//! Output is "written or queued": [`send`] writes as much as the socket takes now and queues the
//! rest, in order, in the connection's pooled chunks, so a caller never handles a short write.

use std::io::{self, IoSlice, Read, Write};

use std::sync::Arc;

use crate::conn::{Conn, Tx};
use crate::pool::{Pool, SharedBytes};

/// Most slices handed to one `writev`.
const MAX_SLICES: usize = 64;

/// Bytes that went through the seam, for the reactor's counters.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tally {
    /// Written to sockets.
    pub(crate) sent: u64,
    /// Copied into chunks behind sockets now (queued minus written or discarded since); shared
    /// frames queued by reference are not counted.
    pub(crate) queued: u64,
}

/// What the send side of the seam keeps per reactor: the chunk pool, the counts, and the TLS
/// layer when the server speaks TLS.
pub(crate) struct Wire {
    pub(crate) pool: Pool,
    pub(crate) tally: Tally,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::Layer>,
}

impl Wire {
    pub(crate) fn new(pool: Pool) -> Wire {
        Wire {
            pool,
            tally: Tally::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Whether connection `key` speaks TLS.
    pub(crate) fn is_secure(&self, key: usize) -> bool {
        #[cfg(feature = "tls")]
        if let Some(l) = &self.tls {
            return l.is_secure(key);
        }
        let _ = key;
        false
    }
}

/// A socket on its way to another reactor, with its TLS state.
pub(crate) struct Moving {
    pub(crate) socket: mio::net::TcpStream,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::Moved>,
}

/// The connection's socket; `NotConnected` for a long-poll session between polls.
fn socket<D>(conn: &mut Conn<D>) -> io::Result<&mut mio::net::TcpStream> {
    conn.socket
        .as_mut()
        .ok_or_else(|| io::ErrorKind::NotConnected.into())
}

/// What one read gave.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Got {
    /// Plaintext bytes at the start of the caller's buffer.
    pub(crate) n: usize,
    /// Bytes taken from the socket (ciphertext on a secure connection).
    pub(crate) wire: usize,
    /// The socket gave fewer bytes than asked for: it is empty now, and new bytes raise a new
    /// readiness edge.
    pub(crate) short: bool,
    /// The peer's stream ended: its FIN, or its close_notify.
    pub(crate) eof: bool,
    /// Bytes were queued behind the socket (a TLS handshake's): writable interest is owed.
    pub(crate) queued: bool,
    /// A TLS handshake completed with this read.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) handshaken: bool,
    /// TLS: bytes of the ciphertext (the cut record held from before, then this read) used; the
    /// rest is kept for the next read.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) used: usize,
}

/// Reads what the peer sent, at most `want` bytes from the socket, and puts the plaintext at
/// the start of `buf`. A secure connection's handshake answers are written (or queued) here.
///
/// # Errors
/// The socket's (`WouldBlock` when nothing is waiting), or bad TLS input (`InvalidData`, after
/// the alert was sent).
pub(crate) fn recv<D>(
    conn: &mut Conn<D>,
    key: usize,
    wire: &mut Wire,
    buf: &mut [u8],
    want: usize,
) -> io::Result<Got> {
    #[cfg(feature = "tls")]
    if let Some(layer) = wire.tls.as_mut()
        && layer.is_secure(key)
    {
        return secure::recv(conn, key, layer, &mut wire.pool, &mut wire.tally, buf, want);
    }
    let _ = (key, &wire);
    let want = want.min(buf.len());
    let n = socket(conn)?.read(&mut buf[..want])?;
    Ok(Got {
        n,
        wire: n,
        short: n < want,
        eof: n == 0,
        ..Got::default()
    })
}

/// Writes `parts`, in order, as far as the socket takes them now, and queues the rest behind
/// the connection's unsent bytes. Returns whether anything was queued (the caller then asks for
/// writable readiness). With bytes already queued, everything is queued behind them. A secure
/// connection's parts are sealed into records first (one run of records for all of them).
///
/// # Errors
/// A write error other than `WouldBlock`; nothing is queued then (the connection is broken).
pub(crate) fn send<D>(
    conn: &mut Conn<D>,
    key: usize,
    wire: &mut Wire,
    parts: &[&[u8]],
) -> io::Result<bool> {
    #[cfg(feature = "tls")]
    if let Some(layer) = wire.tls.as_mut()
        && let Some((tc, stage, sealed)) = layer.sealer(key)
    {
        let r = secure::seal(tc, stage, parts, sealed)
            .and_then(|()| send_raw(conn, &[sealed], &mut wire.pool, &mut wire.tally));
        sealed.clear();
        layer.trim();
        return r;
    }
    let _ = key;
    send_raw(conn, parts, &mut wire.pool, &mut wire.tally)
}

/// [`send`] without TLS: the bytes go to the socket as they are.
fn send_raw<D>(
    conn: &mut Conn<D>,
    parts: &[&[u8]],
    pool: &mut Pool,
    tally: &mut Tally,
) -> io::Result<bool> {
    if conn.tx.is_some() {
        queue_raw(conn, parts, pool, tally);
        return Ok(true);
    }
    let (first, skip) = write(conn, parts, tally)?;
    if first == parts.len() {
        return Ok(false);
    }
    queue_raw(conn, &[&parts[first][skip..]], pool, tally);
    queue_raw(conn, &parts[first + 1..], pool, tally);
    Ok(true)
}

/// Writes `parts`, in order, as far as the socket takes them now, queueing nothing. Returns
/// where the unwritten bytes start: the index of the first part not wholly written (`parts.len()`
/// when all were) and how many of its bytes were. For callers that decide part by part what to
/// do with the rest ([`send`] queues it all). Plain connections only: the bytes go as they are.
///
/// # Errors
/// A write error other than `WouldBlock`.
pub(crate) fn write<D>(
    conn: &mut Conn<D>,
    parts: &[&[u8]],
    tally: &mut Tally,
) -> io::Result<(usize, usize)> {
    let (mut first, mut skip) = (0, 0);
    while first < parts.len() {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let mut n = 0;
        let mut offered = 0;
        for (i, p) in parts[first..].iter().take(MAX_SLICES).enumerate() {
            let p = if i == 0 { &p[skip..] } else { p };
            slices[n] = IoSlice::new(p);
            offered += p.len();
            n += 1;
        }
        let written = match socket(conn)?.write_vectored(&slices[..n]) {
            Ok(w) => w,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        tally.sent += written as u64;
        // Step past what was written, whole parts first.
        let mut left = written;
        while first < parts.len() && left >= parts[first].len() - skip {
            left -= parts[first].len() - skip;
            first += 1;
            skip = 0;
        }
        skip += left;
        if written < offered {
            // The socket is full: what follows waits for writable readiness.
            break;
        }
    }
    Ok((first, skip))
}

/// Queues `parts` behind the connection's unsent bytes, without writing (sealed first on a
/// secure connection).
pub(crate) fn queue<D>(conn: &mut Conn<D>, key: usize, wire: &mut Wire, parts: &[&[u8]]) {
    #[cfg(feature = "tls")]
    if let Some(layer) = wire.tls.as_mut()
        && let Some((tc, stage, sealed)) = layer.sealer(key)
    {
        if secure::seal(tc, stage, parts, sealed).is_ok() {
            queue_raw(conn, &[sealed], &mut wire.pool, &mut wire.tally);
        }
        sealed.clear();
        layer.trim();
        return;
    }
    let _ = key;
    queue_raw(conn, parts, &mut wire.pool, &mut wire.tally);
}

/// Queues bytes as they are.
fn queue_raw<D>(conn: &mut Conn<D>, parts: &[&[u8]], pool: &mut Pool, tally: &mut Tally) {
    let tx = conn.tx.get_or_insert_with(Box::default);
    for p in parts {
        tx.out.push(p, pool);
        tally.queued += p.len() as u64;
    }
}

/// Queues `frame[start..]` behind the connection's unsent bytes by reference: a frame shared by
/// many connections (a publish) is never copied per connection. Plain connections only.
pub(crate) fn queue_shared<D>(conn: &mut Conn<D>, frame: Arc<dyn SharedBytes>, start: usize) {
    conn.tx
        .get_or_insert_with(Box::default)
        .out
        .push_shared(frame, start);
}

/// Drops the connection's unsent bytes (it is closing), returning the chunks to the pool.
pub(crate) fn discard<D>(conn: &mut Conn<D>, wire: &mut Wire) {
    if let Some(mut tx) = conn.tx.take() {
        wire.tally.queued = wire.tally.queued.saturating_sub(tx.out.owned() as u64);
        tx.out.clear(&mut wire.pool);
    }
}

/// Ends our side of a secure connection's TLS stream (close_notify), behind its unsent bytes;
/// nothing for a plain one. Returns whether anything was queued.
///
/// # Errors
/// A write error other than `WouldBlock`.
pub(crate) fn close_notify<D>(conn: &mut Conn<D>, key: usize, wire: &mut Wire) -> io::Result<bool> {
    #[cfg(feature = "tls")]
    if let Some(layer) = wire.tls.as_mut()
        && let Some(tc) = layer.get(key)
    {
        let mut alert = Vec::new();
        tc.close_notify(&mut alert);
        if alert.is_empty() {
            return Ok(false);
        }
        return send_raw(conn, &[&alert], &mut wire.pool, &mut wire.tally);
    }
    let _ = (conn, key, wire);
    Ok(false)
}

/// Writes unsent bytes. `Ok(true)` once none is left; `Ok(false)` when the socket is full again.
///
/// # Errors
/// A write error other than `WouldBlock`.
pub(crate) fn flush<D>(conn: &mut Conn<D>, wire: &mut Wire) -> io::Result<bool> {
    let tally = &mut wire.tally;
    match conn.tx.as_deref_mut() {
        Some(Tx { out, .. }) => {
            let (len, owned) = (out.len() as u64, out.owned() as u64);
            let Some(s) = conn.socket.as_mut() else {
                return Err(io::ErrorKind::NotConnected.into());
            };
            let r = out.write_to(s, &mut wire.pool);
            tally.sent += len - out.len() as u64;
            tally.queued = tally.queued.saturating_sub(owned - out.owned() as u64);
            r
        }
        None => Ok(true),
    }
}

/// TLS at the seam.
#[cfg(feature = "tls")]
mod secure {
    use std::io::{self, Read, Write};

    use log::debug;

    use super::{Got, Tally, send_raw};
    use crate::conn::Conn;
    use crate::pool::Pool;
    use crate::tls::{Layer, TlsConn};

    /// The first byte of a TLS handshake record.
    const HANDSHAKE: u8 = 0x16;

    /// What a client that spoke plain HTTP to the TLS port is told, in plain text.
    pub(super) const PLAIN_ON_TLS: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
        Content-Type: text/plain\r\nContent-Length: 40\r\nConnection: close\r\n\r\n\
        This port speaks TLS: use https or wss.\n";

    fn invalid(msg: String) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, msg)
    }

    /// [`super::recv`] on a secure connection: the ciphertext goes after the cut record kept
    /// from the last read, in the layer's buffer; the plaintext goes to `buf`.
    pub(super) fn recv<D>(
        conn: &mut Conn<D>,
        key: usize,
        layer: &mut Layer,
        pool: &mut Pool,
        tally: &mut Tally,
        buf: &mut [u8],
        want: usize,
    ) -> io::Result<Got> {
        let mut cipher = std::mem::take(&mut layer.cipher);
        let mut out = std::mem::take(&mut layer.sealed);
        out.clear();
        let partial = layer.partials.remove(&key);
        let held = partial.as_deref().unwrap_or_default();
        let r = match layer.get(key) {
            Some(tc) => read(
                conn,
                key,
                tc,
                held,
                &mut cipher,
                &mut out,
                pool,
                tally,
                buf,
                want,
            ),
            None => Err(invalid("no TLS state".into())),
        };
        // What is cut now is kept for the next read (the bytes held before went to the front
        // of `cipher` when this read brought more; if it brought nothing, they stay as they were).
        match &r {
            Ok(got) if got.wire > 0 => {
                let n = held.len() + got.wire;
                if got.used < n {
                    layer.partials.insert(key, cipher[got.used..n].to_vec());
                }
            }
            _ => {
                if let Some(p) = partial {
                    layer.partials.insert(key, p);
                }
            }
        }
        out.clear();
        layer.sealed = out;
        layer.cipher = cipher;
        match &r {
            Ok(got) if got.handshaken => layer.handshake_done(),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => layer.failed += 1,
            _ => {}
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn read<D>(
        conn: &mut Conn<D>,
        key: usize,
        tc: &mut TlsConn,
        held: &[u8],
        cipher: &mut [u8],
        out: &mut Vec<u8>,
        pool: &mut Pool,
        tally: &mut Tally,
        buf: &mut [u8],
        want: usize,
    ) -> io::Result<Got> {
        // A record (or handshake message) cut by the last read comes first (`held`, copied
        // in front once this read brings more); the plaintext of everything read fits in `buf`
        // because plaintext is never longer than its records.
        let held_len = held.len();
        let room = buf.len().min(cipher.len()).saturating_sub(held_len);
        if room < buf.len() / 2 {
            // A handshake message spread over records without end.
            return Err(invalid(format!(
                "TLS: {held_len} bytes of an unfinished record"
            )));
        }
        let want = want.clamp(1, room);
        let n = super::socket(conn)?.read(&mut cipher[held_len..held_len + want])?;
        if n == 0 {
            if held_len > 0 {
                debug!("TLS: connection {key} closed in the middle of a record");
            } else if !tc.is_handshaking() {
                debug!("TLS: connection {key} closed without close_notify");
            }
            return Ok(Got {
                short: true,
                eof: true,
                ..Got::default()
            });
        }
        if tc.is_fresh() && cipher[0] != HANDSHAKE {
            // Plain HTTP (or anything else) on the TLS port: a plain answer says so.
            let _ = super::socket(conn)?.write(PLAIN_ON_TLS);
            return Err(invalid("TLS: plain text on the TLS port".into()));
        }
        cipher[..held_len].copy_from_slice(held);
        let handshaking = tc.is_handshaking();
        match tc.decrypt(&mut cipher[..held_len + n], buf, out) {
            Ok(d) => {
                let queued = !out.is_empty() && send_raw(conn, &[out], pool, tally)?;
                Ok(Got {
                    n: d.plain,
                    used: d.used,
                    wire: n,
                    short: n < want,
                    eof: d.peer_closed,
                    queued,
                    handshaken: handshaking && !tc.is_handshaking(),
                })
            }
            Err(e) => {
                // The alert, if the socket takes it and nothing is queued before it (written
                // behind unsent records' bytes it would cut one); the connection closes either way.
                if conn.tx.is_none()
                    && let Some(s) = conn.socket.as_mut()
                {
                    let _ = s.write(out);
                }
                Err(invalid(format!("TLS: {e}")))
            }
        }
    }

    /// Seals `parts` into records in `sealed`: one part is sealed where it lies; several are
    /// gathered into `stage` first, so that a frame's header and payload share a record.
    ///
    /// # Errors
    /// rustls refused to encrypt (the connection is broken).
    pub(super) fn seal(
        tc: &mut TlsConn,
        stage: &mut Vec<u8>,
        parts: &[&[u8]],
        sealed: &mut Vec<u8>,
    ) -> io::Result<()> {
        let r = match parts {
            [one] => tc.encrypt(one, sealed),
            _ => {
                stage.clear();
                for p in parts {
                    stage.extend_from_slice(p);
                }
                let r = tc.encrypt(stage, sealed);
                stage.clear();
                r
            }
        };
        r.map_err(|e| io::Error::other(format!("TLS: {e}")))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn plain_answer_is_well_formed() {
            let a = super::PLAIN_ON_TLS;
            let at = a.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let head = std::str::from_utf8(&a[..at]).unwrap();
            assert!(head.starts_with("HTTP/1.1 400 "));
            let len = format!("Content-Length: {}\r\n", a.len() - at);
            assert!(head.contains(&len), "{head}");
        }
    }
}
