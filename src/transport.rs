//! The one seam between a connection's socket and the protocol: bytes in ([`recv`]) and bytes
//! out ([`send`], [`queue`], [`flush`]). Above it everything is plaintext; a transport that
//! transforms bytes (TLS) wraps here and nowhere else. Today's transport is plain TCP.
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

/// Reads what the peer sent into `buf`: the number of bytes, 0 at the peer's FIN.
///
/// # Errors
/// The socket's; `WouldBlock` when nothing is waiting.
pub(crate) fn recv<D>(conn: &mut Conn<D>, buf: &mut [u8]) -> io::Result<usize> {
    conn.socket.read(buf)
}

/// Writes `parts`, in order, as far as the socket takes them now, and queues the rest behind
/// the connection's unsent bytes. Returns whether anything was queued (the caller then asks for
/// writable readiness). With bytes already queued, everything is queued behind them.
///
/// # Errors
/// A write error other than `WouldBlock`; nothing is queued then (the connection is broken).
pub(crate) fn send<D>(
    conn: &mut Conn<D>,
    parts: &[&[u8]],
    pool: &mut Pool,
    tally: &mut Tally,
) -> io::Result<bool> {
    if conn.tx.is_some() {
        queue(conn, parts, pool, tally);
        return Ok(true);
    }
    let (first, skip) = write(conn, parts, tally)?;
    if first == parts.len() {
        return Ok(false);
    }
    queue(conn, &[&parts[first][skip..]], pool, tally);
    queue(conn, &parts[first + 1..], pool, tally);
    Ok(true)
}

/// Writes `parts`, in order, as far as the socket takes them now, queueing nothing. Returns
/// where the unwritten bytes start: the index of the first part not wholly written (`parts.len()`
/// when all were) and how many of its bytes were. For callers that decide part by part what to
/// do with the rest ([`send`] queues it all).
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
        let written = match conn.socket.write_vectored(&slices[..n]) {
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

/// Queues `parts` behind the connection's unsent bytes, without writing.
pub(crate) fn queue<D>(conn: &mut Conn<D>, parts: &[&[u8]], pool: &mut Pool, tally: &mut Tally) {
    let tx = conn.tx.get_or_insert_with(Box::default);
    for p in parts {
        tx.out.push(p, pool);
        tally.queued += p.len() as u64;
    }
}

/// Queues `frame[start..]` behind the connection's unsent bytes by reference: a frame shared by
/// many connections (a publish) is never copied per connection.
pub(crate) fn queue_shared<D>(conn: &mut Conn<D>, frame: Arc<dyn SharedBytes>, start: usize) {
    conn.tx
        .get_or_insert_with(Box::default)
        .out
        .push_shared(frame, start);
}

/// Drops the connection's unsent bytes (it is closing), returning the chunks to the pool.
pub(crate) fn discard<D>(conn: &mut Conn<D>, pool: &mut Pool, tally: &mut Tally) {
    if let Some(mut tx) = conn.tx.take() {
        tally.queued = tally.queued.saturating_sub(tx.out.owned() as u64);
        tx.out.clear(pool);
    }
}

/// Writes unsent bytes. `Ok(true)` once none is left; `Ok(false)` when the socket is full again.
///
/// # Errors
/// A write error other than `WouldBlock`.
pub(crate) fn flush<D>(conn: &mut Conn<D>, pool: &mut Pool, tally: &mut Tally) -> io::Result<bool> {
    match conn.tx.as_deref_mut() {
        Some(Tx { out, .. }) => {
            let (len, owned) = (out.len() as u64, out.owned() as u64);
            let r = out.write_to(&mut conn.socket, pool);
            tally.sent += len - out.len() as u64;
            tally.queued = tally.queued.saturating_sub(owned - out.owned() as u64);
            r
        }
        None => Ok(true),
    }
}
