//! Fixed-size chunks for unsent bytes, recycled per reactor.
//!
//! A connection whose socket did not take all its output keeps the rest in a queue of 16 KiB
//! chunks borrowed from its reactor's pool; they return to the pool as the socket drains, so an
//! idle connection holds none.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

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

/// Unsent bytes of one connection, in pooled chunks.
#[derive(Default)]
pub(crate) struct OutQueue {
    chunks: VecDeque<Chunk>,
    /// Read offset in the first chunk.
    head: usize,
    /// Bytes used in the last chunk.
    tail: usize,
    len: usize,
}

impl OutQueue {
    /// Bytes waiting.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Nothing waiting.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends bytes, borrowing chunks as needed.
    pub(crate) fn push(&mut self, mut bytes: &[u8], pool: &mut Pool) {
        self.len += bytes.len();
        while !bytes.is_empty() {
            if self.chunks.is_empty() || self.tail == CHUNK {
                self.chunks.push_back(pool.take());
                self.tail = 0;
            }
            let Some(last) = self.chunks.back_mut() else {
                return;
            };
            let n = (CHUNK - self.tail).min(bytes.len());
            last[self.tail..self.tail + n].copy_from_slice(&bytes[..n]);
            self.tail += n;
            bytes = &bytes[n..];
        }
    }

    /// Writes as much as the writer takes. Returns Ok(true) once empty; `WouldBlock` is Ok(false).
    pub(crate) fn write_to(&mut self, w: &mut impl Write, pool: &mut Pool) -> io::Result<bool> {
        while self.len > 0 {
            let mut slices = [IoSlice::new(&[]); 16];
            let mut n = 0;
            let last = self.chunks.len() - 1;
            for (i, c) in self.chunks.iter().enumerate().take(slices.len()) {
                let start = if i == 0 { self.head } else { 0 };
                let end = if i == last { self.tail } else { CHUNK };
                slices[n] = IoSlice::new(&c[start..end]);
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
            let in_first = if self.chunks.len() == 1 {
                self.tail - self.head
            } else {
                CHUNK - self.head
            };
            if n < in_first {
                self.head += n;
                return;
            }
            n -= in_first;
            if let Some(c) = self.chunks.pop_front() {
                pool.give(c);
            }
            self.head = 0;
        }
        // A chunk is only ever added with bytes in it, so an empty queue has no chunk left.
        if self.chunks.is_empty() {
            self.tail = 0;
        }
    }

    /// Returns every chunk to the pool.
    pub(crate) fn clear(&mut self, pool: &mut Pool) {
        while let Some(c) = self.chunks.pop_front() {
            pool.give(c);
        }
        self.head = 0;
        self.tail = 0;
        self.len = 0;
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
}
