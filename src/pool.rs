//! Fixed-size chunks for unsent bytes, recycled per reactor.
//!
//! A connection whose socket did not take all its output keeps the rest in a queue of 16 KiB
//! chunks borrowed from its reactor's pool; they return to the pool as the socket drains, so an
//! idle connection holds none. A published frame waits by reference instead: however many slow
//! subscribers hold it, its bytes exist once.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

/// Bytes per chunk.
pub(crate) const CHUNK: usize = 16 << 10;

type Chunk = Box<[u8]>;

/// Free chunks of one reactor.
pub(crate) struct Pool {
    free: Vec<Chunk>,
    max_free: usize,
}

impl Pool {
    /// A pool keeping at most `max_free` idle chunks.
    pub(crate) fn new(max_free: usize) -> Pool {
        Pool {
            free: Vec::new(),
            max_free,
        }
    }

    fn take(&mut self) -> Chunk {
        self.free
            .pop()
            .unwrap_or_else(|| vec![0u8; CHUNK].into_boxed_slice())
    }

    fn give(&mut self, c: Chunk) {
        if self.free.len() < self.max_free {
            self.free.push(c);
        }
    }

    /// Frees every idle chunk.
    pub(crate) fn clear(&mut self) {
        self.free = Vec::new();
    }

    /// Idle chunks held (for tests and stats).
    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        self.free.len()
    }
}

/// A shared frame queued by reference: the bytes belong to the publish, held once for all its
/// subscribers.
pub(crate) trait SharedBytes: Send + Sync {
    /// The bytes.
    fn bytes(&self) -> &[u8];
}

impl SharedBytes for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// One piece of a connection's unsent output.
enum Piece {
    /// A pooled chunk, bytes `start..end` of it unsent.
    Owned {
        chunk: Chunk,
        start: usize,
        end: usize,
    },
    /// A shared frame, bytes `start..` of it unsent.
    Shared {
        frame: Arc<dyn SharedBytes>,
        start: usize,
    },
}

impl Piece {
    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Owned { chunk, start, end } => &chunk[*start..*end],
            Piece::Shared { frame, start } => &frame.bytes()[*start..],
        }
    }
}

/// Unsent bytes of one connection: copies in pooled chunks, and shared frames by reference.
#[derive(Default)]
pub(crate) struct OutQueue {
    pieces: VecDeque<Piece>,
    /// Bytes waiting, in all.
    len: usize,
    /// Of them, bytes in pooled chunks (this connection's own memory).
    owned: usize,
}

impl OutQueue {
    /// Bytes waiting.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes waiting in pooled chunks (shared frames not counted).
    pub(crate) fn owned(&self) -> usize {
        self.owned
    }

    /// Nothing waiting.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a copy of `bytes`, borrowing chunks as needed.
    pub(crate) fn push(&mut self, mut bytes: &[u8], pool: &mut Pool) {
        self.len += bytes.len();
        self.owned += bytes.len();
        while !bytes.is_empty() {
            let room = match self.pieces.back() {
                Some(Piece::Owned { end, .. }) if *end < CHUNK => CHUNK - *end,
                _ => 0,
            };
            if room == 0 {
                self.pieces.push_back(Piece::Owned {
                    chunk: pool.take(),
                    start: 0,
                    end: 0,
                });
                continue;
            }
            let Some(Piece::Owned { chunk, end, .. }) = self.pieces.back_mut() else {
                return;
            };
            let n = room.min(bytes.len());
            chunk[*end..*end + n].copy_from_slice(&bytes[..n]);
            *end += n;
            bytes = &bytes[n..];
        }
    }

    /// Appends `frame[start..]` by reference: no copy, no chunk.
    pub(crate) fn push_shared(&mut self, frame: Arc<dyn SharedBytes>, start: usize) {
        let n = frame.bytes().len().saturating_sub(start);
        if n == 0 {
            return;
        }
        self.len += n;
        self.pieces.push_back(Piece::Shared { frame, start });
    }

    /// Writes as much as the writer takes. Returns Ok(true) once empty; `WouldBlock` is Ok(false).
    pub(crate) fn write_to(&mut self, w: &mut impl Write, pool: &mut Pool) -> io::Result<bool> {
        while self.len > 0 {
            let mut slices = [IoSlice::new(&[]); 16];
            let mut n = 0;
            for (s, p) in slices.iter_mut().zip(&self.pieces) {
                *s = IoSlice::new(p.bytes());
                n += 1;
            }
            let written = match w.write_vectored(&slices[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.consume(written, pool);
        }
        Ok(true)
    }

    fn consume(&mut self, mut n: usize, pool: &mut Pool) {
        self.len -= n;
        while n > 0 {
            let Some(front) = self.pieces.front_mut() else {
                return;
            };
            let left = front.bytes().len();
            if n < left {
                match front {
                    Piece::Owned { start, .. } => {
                        *start += n;
                        self.owned -= n;
                    }
                    Piece::Shared { start, .. } => *start += n,
                }
                return;
            }
            n -= left;
            if let Some(Piece::Owned { chunk, .. }) = self.pieces.pop_front() {
                self.owned -= left;
                pool.give(chunk);
            }
        }
        // Empty pieces (a chunk whose bytes all went) leave too.
        while self.pieces.front().is_some_and(|p| p.bytes().is_empty()) {
            if let Some(Piece::Owned { chunk, .. }) = self.pieces.pop_front() {
                pool.give(chunk);
            }
        }
    }

    /// Returns every chunk to the pool and lets go of every shared frame.
    pub(crate) fn clear(&mut self, pool: &mut Pool) {
        while let Some(p) = self.pieces.pop_front() {
            if let Piece::Owned { chunk, .. } = p {
                pool.give(chunk);
            }
        }
        self.len = 0;
        self.owned = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer taking at most `cap` bytes per call, then WouldBlock every other call.
    struct Trickle {
        got: Vec<u8>,
        cap: usize,
        block: bool,
    }
    impl Write for Trickle {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.block = !self.block;
            if self.block {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = b.len().min(self.cap);
            self.got.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn bytes_come_out_in_order_and_chunks_return() {
        let mut pool = Pool::new(64);
        let mut q = OutQueue::default();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        for piece in data.chunks(3333) {
            q.push(piece, &mut pool);
        }
        assert_eq!(q.len(), data.len());
        for cap in [1usize, 5000, 40_000] {
            let mut w = Trickle {
                got: Vec::new(),
                cap,
                block: false,
            };
            let mut q2 = OutQueue::default();
            q2.push(&data, &mut pool);
            let mut rounds = 0;
            while !q2.write_to(&mut w, &mut pool).unwrap() {
                rounds += 1;
                assert!(rounds < 300_000);
            }
            assert_eq!(w.got, data, "cap {cap}");
            assert!(q2.is_empty());
        }
        q.clear(&mut pool);
        assert!(pool.idle() > 0);
    }

    /// Shared frames wait by reference between copies, come out in order, count toward the
    /// length but not the owned bytes, and are let go of once written.
    #[test]
    fn shared_frames_by_reference_in_order() {
        let mut pool = Pool::new(64);
        let frame = Arc::new((0..50_000u32).map(|i| (i * 3) as u8).collect::<Vec<u8>>());
        let mut want = Vec::new();
        let mut q = OutQueue::default();
        q.push(b"head", &mut pool);
        want.extend_from_slice(b"head");
        q.push_shared(frame.clone(), 10);
        want.extend_from_slice(&frame[10..]);
        q.push(b"tail", &mut pool);
        want.extend_from_slice(b"tail");
        q.push_shared(frame.clone(), 0);
        want.extend_from_slice(&frame);
        assert_eq!(q.len(), want.len());
        assert_eq!(q.owned(), 8);
        assert_eq!(Arc::strong_count(&frame), 3);
        for cap in [7usize, 4096] {
            let mut q2 = OutQueue::default();
            q2.push(b"head", &mut pool);
            q2.push_shared(frame.clone(), 10);
            q2.push(b"tail", &mut pool);
            q2.push_shared(frame.clone(), 0);
            let mut w = Trickle {
                got: Vec::new(),
                cap,
                block: false,
            };
            while !q2.write_to(&mut w, &mut pool).unwrap() {}
            assert_eq!(w.got, want, "cap {cap}");
            assert_eq!((q2.len(), q2.owned()), (0, 0));
        }
        assert_eq!(Arc::strong_count(&frame), 3);
        q.clear(&mut pool);
        assert_eq!(Arc::strong_count(&frame), 1);
    }
}
