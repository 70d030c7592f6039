//! The permessage-deflate codec (RFC 7692 §7.2), built so that an idle connection costs nothing.
//!
//! # Design
//!
//! zlib state is big. Measured with flate2 1.1 on zlib-rs 0.6: a raw deflate stream holds 371 KiB
//! at 15 window bits and still 245 KiB at 9 (memLevel 8), an inflate stream 46 KiB. One of each
//! per connection would dwarf everything else a connection owns. So, by default, the server
//! negotiates `server_no_context_takeover` and `client_no_context_takeover`, and **one shared
//! [`Inflater`] and one shared [`Deflater`] per reactor serve every connection**: each message is
//! a self-contained DEFLATE stream, the shared stream is reset after every message (success or
//! error), and the next message, from any connection, starts clean. An idle connection with
//! compression negotiated holds no codec state at all, and a broadcast is compressed once for all
//! its subscribers. (A peer that asks for `server_max_window_bits` below 15 needs a deflater with
//! that many bits: one shared deflater per distinct value in use.)
//!
//! Context takeover is opt-in, with state per connection only where it cannot be avoided:
//!
//! - **Inflate with context takeover** costs a [`Window`] only: the last 2^`client_max_window_bits`
//!   bytes of the connection's inflated output (allocated on its first compressed message, at most
//!   32 KiB). Before each of the connection's messages, the window is primed into the shared
//!   inflater with `set_dictionary`, which is exactly the history the peer's compressor refers
//!   back into: the uncompressed bytes of its previous compressed messages. There is no
//!   per-connection zlib state. Only compressed messages go into the window: a message the peer
//!   sent with RSV1 clear never passed through its compressor, so it is not part of that history.
//! - **Deflate with context takeover** needs the compressor's own state (its hash chains, not just
//!   the history), so it is a dedicated [`Deflater`] per connection, created on first use, with a
//!   configured (small) window, and dropped on close.
//!
//! flate2 lets us choose the window bits (9..=15) and the level, but does not expose zlib's
//! `memLevel`: its deflate streams always use memLevel 8. Most of a small-window stream is the
//! memLevel-sized part plus a fixed 128 KiB hash table; zlib-rs's own `Deflate::new_with_config`
//! takes a `mem_level` (at 9 bits: 134 KiB with memLevel 1, 140 KiB with 4, 245 KiB with 8).
//!
//! # Inflating, bounded
//!
//! [`Inflater::inflate`] counts output while it inflates, at most [`CHUNK`] bytes per step, into a
//! buffer that grows geometrically but never past `max` bytes for the message; at the limit, one
//! more byte of output (into a 1-byte probe) proves the message too large. A bomb is refused with
//! [`InflateError::TooLarge`] (close 1009) as soon as it crosses the limit, whether it comes in
//! one frame or in many fragments, having cost at most `max` bytes of buffer and the CPU to
//! produce them. A corrupt stream is [`InflateError::Corrupt`], which the connection fails with
//! close code 1007 ("invalid frame payload data"), as most servers do; RFC 7692 names no code.
//!
//! A message that ends in the middle of a DEFLATE block (truncated by the peer) is not detected:
//! flate2 does not expose the inflater's block-boundary state. Whatever it inflated to is
//! returned, and the reset afterwards keeps it from affecting any later message.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The four bytes a sender strips from the end of a compressed message and a receiver appends back
/// (RFC 7692 §7.2.1, §7.2.2): the tail of an empty non-final stored block (a sync flush).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The most output the inflater produces in one step before counting it against the limit. Steps
/// start at 256 bytes and double up to this; smaller steps cost throughput on large messages
/// (zlib-rs copies each step's output into its window), and the limit does not depend on it.
pub const CHUNK: usize = 64 * 1024;

/// The output room of the first step, before the message shows how well it compresses.
const FIRST_STEP: usize = 256;

/// Why a compressed message could not be inflated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InflateError {
    /// The message inflates to more than `max` bytes. The connection fails with close code 1009
    /// (message too big).
    TooLarge {
        /// The limit that was crossed.
        max: usize,
    },
    /// The payload is not a valid DEFLATE stream (or refers back past the start of the history it
    /// was given). The connection fails with close code 1007 (invalid frame payload data), the
    /// code most servers send for this.
    Corrupt,
}

impl InflateError {
    /// The close code the connection is failed with: 1009 for [`InflateError::TooLarge`], 1007
    /// for [`InflateError::Corrupt`].
    #[must_use]
    pub fn close_code(self) -> u16 {
        match self {
            InflateError::TooLarge { .. } => 1009,
            InflateError::Corrupt => 1007,
        }
    }
}

impl std::fmt::Display for InflateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InflateError::TooLarge { max } => {
                write!(f, "compressed message inflates past {max} bytes")
            }
            InflateError::Corrupt => f.write_str("invalid DEFLATE data in a compressed message"),
        }
    }
}

impl std::error::Error for InflateError {}

/// A raw DEFLATE decompressor with a 32 KiB window, meant to be shared by every connection of a
/// reactor: it is reset after each message.
///
/// A window of 15 bits decodes streams made with any smaller window, so one inflater serves every
/// negotiated `client_max_window_bits`. (It is also the one size that flate2 resets in place; a
/// stream of fewer bits is reallocated on every reset.) It allocates once, when created.
pub struct Inflater {
    d: Decompress,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater").finish_non_exhaustive()
    }
}

impl Default for Inflater {
    fn default() -> Inflater {
        Inflater::new()
    }
}

impl Inflater {
    /// A raw (headerless) inflate stream with a 15-bit window: 46 KiB, in one allocation.
    #[must_use]
    pub fn new() -> Inflater {
        Inflater {
            d: Decompress::new_with_window_bits(false, 15),
        }
    }

    /// Inflates one message whose compressed payload arrives as `parts` (the payloads of its
    /// frames in order, already unmasked), appending the result to `out`. The 4 bytes
    /// `00 00 ff ff` are fed after the last part (RFC 7692 §7.2.2); anything after a final
    /// (BFINAL) block is ignored.
    ///
    /// Output is produced and counted in steps of at most [`CHUNK`] bytes, and `out` never grows
    /// beyond `max` bytes past its length on entry (its capacity stays within that too, unless it
    /// was larger already; nothing is reserved up front): as soon as the message passes `max`
    /// bytes, this returns [`InflateError::TooLarge`] without inflating further. A message of
    /// exactly `max` bytes is accepted.
    ///
    /// `window`: for the context-takeover mode, the connection's [`Window`], primed into the stream
    /// with `set_dictionary` before the first byte; after an `Ok`, the caller pushes the inflated
    /// bytes (`&out[len_before..]`) into that window. `None` in no-context-takeover mode.
    ///
    /// The stream is reset afterwards whatever the outcome, so the next message, from this
    /// connection or another, starts clean.
    ///
    /// # Errors
    ///
    /// [`InflateError::TooLarge`] past `max` bytes, [`InflateError::Corrupt`] for invalid DEFLATE
    /// data. Either way `out` is truncated back to its length on entry.
    pub fn inflate(
        &mut self,
        parts: &[&[u8]],
        window: Option<&[u8]>,
        max: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), InflateError> {
        let start = out.len();
        let result = self.run(parts, window, max, out);
        self.d.reset(false);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn run(
        &mut self,
        parts: &[&[u8]],
        window: Option<&[u8]>,
        max: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), InflateError> {
        if let Some(dict) = window.filter(|w| !w.is_empty()) {
            self.d
                .set_dictionary(dict)
                .map_err(|_| InflateError::Corrupt)?;
        }
        let start = out.len();
        let limit = start.saturating_add(max);
        let compressed: usize = parts.iter().map(|p| p.len()).sum();
        let mut step = compressed.saturating_mul(4).clamp(FIRST_STEP, CHUNK);
        for part in parts.iter().copied().chain([&TAIL[..]]) {
            let mut input = part;
            loop {
                let len = out.len();
                let room = step.min(limit - len);
                let (status, consumed, written) = if room > 0 {
                    grow(out, len + room, limit);
                    out.resize(len + room, 0);
                    let r = self.step(input, &mut out[len..]);
                    out.truncate(len + r.2);
                    r
                } else {
                    // At the limit: one more byte of output proves the message too large,
                    // without growing `out` past `max`.
                    let mut probe = [0u8; 1];
                    let r = self.step(input, &mut probe);
                    if r.2 > 0 {
                        return Err(InflateError::TooLarge { max });
                    }
                    r
                };
                input = &input[consumed..];
                let status = status.map_err(|_| InflateError::Corrupt)?;
                if status == Status::StreamEnd {
                    // A final block ends the message; what follows is padding (§7.2.3.4).
                    return Ok(());
                }
                if room > 0 && written == room {
                    // The output room filled up: there may be more output pending.
                    step = (step * 2).min(CHUNK);
                    continue;
                }
                if input.is_empty() {
                    break;
                }
                if consumed == 0 && written == 0 {
                    // Output room and input left, yet no progress: not a sane stream.
                    return Err(InflateError::Corrupt);
                }
            }
        }
        Ok(())
    }

    /// One call into the stream: its status, the input bytes consumed and the output written.
    fn step(
        &mut self,
        input: &[u8],
        output: &mut [u8],
    ) -> (Result<Status, flate2::DecompressError>, usize, usize) {
        let (in_before, out_before) = (self.d.total_in(), self.d.total_out());
        let status = self.d.decompress(input, output, FlushDecompress::None);
        let consumed = (self.d.total_in() - in_before) as usize;
        let written = (self.d.total_out() - out_before) as usize;
        (status, consumed, written)
    }
}

/// Makes room for `needed` bytes in `out`, growing its capacity geometrically but never past
/// `limit` (so a message that crosses the limit costs at most that much buffer).
fn grow(out: &mut Vec<u8>, needed: usize, limit: usize) {
    if needed <= out.capacity() {
        return;
    }
    let target = out.capacity().saturating_mul(2).max(needed).min(limit);
    out.reserve_exact(target - out.len());
}

/// A raw DEFLATE compressor: shared by a reactor in no-context-takeover mode (reset after every
/// message), or dedicated to one connection that keeps its context.
pub struct Deflater {
    c: Compress,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater").finish_non_exhaustive()
    }
}

impl Deflater {
    /// A raw deflate stream with a window of 2^`window_bits` bytes (9..=15: the peer's
    /// `server_max_window_bits`, 8 having been raised to 9 or declined during negotiation) and a
    /// compression `level` (0..=9; 6 is zlib's default, 1 the fastest that still compresses).
    /// zlib's memLevel is fixed at 8 (flate2 does not expose it).
    ///
    /// # Panics
    ///
    /// If `window_bits` is outside 9..=15 or `level` above 9.
    #[must_use]
    pub fn new(window_bits: u8, level: u32) -> Deflater {
        assert!(
            (9..=15).contains(&window_bits),
            "window_bits must be within 9..=15"
        );
        assert!(level <= 9, "level must be within 0..=9");
        Deflater {
            c: Compress::new_with_window_bits(Compression::new(level), false, window_bits),
        }
    }

    /// Compresses one whole message, appending the payload to `out`: sync flush, then the trailing
    /// `00 00 ff ff` stripped (RFC 7692 §7.2.1). `reset`: `true` in no-context-takeover mode (the
    /// stream is reset after the message, so it can serve another connection next), `false` for a
    /// connection's dedicated stream that keeps its context from message to message.
    ///
    /// # Panics
    ///
    /// Only if the underlying stream reports an error, which a valid stream never does.
    pub fn compress(&mut self, msg: &[u8], reset: bool, out: &mut Vec<u8>) {
        let start = out.len();
        let mut input = msg;
        loop {
            // Room for a fair share of the rest; the loop comes back for more when it fills, and
            // `reserve` then at least doubles the buffer.
            out.reserve(input.len().min(CHUNK) / 2 + 64);
            let before = self.c.total_in();
            self.c
                .compress_vec(input, out, FlushCompress::Sync)
                .expect("deflate on a valid stream does not fail");
            input = &input[(self.c.total_in() - before) as usize..];
            // Done once all input is in and the flush did not fill the output.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        } else {
            // An empty message right after a flush: zlib emits nothing at all. The payload must
            // still end on a block boundary once the receiver appends 00 00 ff ff, so send one
            // empty stored block, `00` (RFC 7692 §7.2.3.6); an empty payload would leave a zlib
            // receiver keeping context half-way through a block header.
            debug_assert!(out.len() == start, "a sync flush ends in 00 00 ff ff");
            if out.len() == start {
                out.push(0x00);
            }
        }
        if reset {
            self.c.reset();
        }
    }
}

/// A connection's inflate history for the opt-in context-takeover mode: the last 2^bits bytes of
/// the output of its compressed messages, primed into the shared [`Inflater`] before each of its
/// messages.
///
/// Nothing is allocated until the first push, and never more than 2^bits bytes (32 KiB at most).
#[derive(Clone, Debug)]
pub struct Window {
    buf: Vec<u8>,
    bits: u8,
}

impl Window {
    /// An empty window of 2^`bits` bytes, for the negotiated `client_max_window_bits` (9..=15).
    /// 8 is taken as 9: zlib compresses with a 9-bit window when asked for 8.
    ///
    /// # Panics
    ///
    /// If `bits` is outside 8..=15.
    #[must_use]
    pub fn new(bits: u8) -> Window {
        assert!(
            (8..=15).contains(&bits),
            "window bits must be within 8..=15"
        );
        Window {
            buf: Vec::new(),
            bits: bits.max(9),
        }
    }

    /// Records the inflated bytes of one compressed message (not of a message that arrived
    /// uncompressed: the peer's compressor never saw it). Keeps only the last 2^bits bytes.
    pub fn push(&mut self, inflated: &[u8]) {
        let size = 1usize << self.bits;
        if inflated.len() >= size {
            self.buf.clear();
            self.buf.reserve_exact(size);
            self.buf
                .extend_from_slice(&inflated[inflated.len() - size..]);
            return;
        }
        let keep = size - inflated.len();
        if self.buf.len() > keep {
            self.buf.drain(..self.buf.len() - keep);
        }
        let needed = self.buf.len() + inflated.len();
        grow(&mut self.buf, needed, size);
        self.buf.extend_from_slice(inflated);
    }

    /// The history, oldest byte first: what [`Inflater::inflate`] takes as `window`.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic test data without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }

        /// JSON-ish text: repeated keys, varying numbers and words.
        fn json(&mut self, len: usize) -> Vec<u8> {
            const KEYS: [&str; 6] = ["id", "topic", "price", "qty", "side", "ts"];
            const WORDS: [&str; 5] = ["buy", "sell", "btc-usd", "eth-usd", "filled"];
            let mut s = Vec::with_capacity(len + 64);
            while s.len() < len {
                s.extend_from_slice(b"{");
                for (i, key) in KEYS.iter().enumerate() {
                    if i > 0 {
                        s.push(b',');
                    }
                    s.extend_from_slice(format!("\"{key}\":").as_bytes());
                    if self.below(2) == 0 {
                        s.extend_from_slice(self.next().to_string().as_bytes());
                    } else {
                        let w = WORDS[self.below(WORDS.len())];
                        s.extend_from_slice(format!("\"{w}\"").as_bytes());
                    }
                }
                s.extend_from_slice(b"}\n");
            }
            s.truncate(len);
            s
        }
    }

    const SIZES: [usize; 6] = [0, 1, 100, 1024, 16 * 1024, 1024 * 1024];

    fn inflate_one(inf: &mut Inflater, payload: &[u8]) -> Result<Vec<u8>, InflateError> {
        let mut out = Vec::new();
        inf.inflate(&[payload], None, usize::MAX, &mut out)?;
        Ok(out)
    }

    // RFC 7692 §7.2.3.1: "Hello" in one compressed block, whole and fragmented.
    #[test]
    fn rfc_hello() {
        let mut inf = Inflater::new();
        let msg = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate_one(&mut inf, &msg).unwrap(), b"Hello");
        let mut out = Vec::new();
        inf.inflate(&[&msg[..3], &msg[3..]], None, 5, &mut out)
            .unwrap();
        assert_eq!(out, b"Hello");
    }

    // RFC 7692 §7.2.3.2: the second "Hello" refers back into the first one.
    #[test]
    fn rfc_shared_window() {
        let first = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let second = [0xf2, 0x00, 0x11, 0x00, 0x00];
        let mut inf = Inflater::new();
        let mut window = Window::new(15);
        let mut out = Vec::new();
        inf.inflate(&[&first], Some(window.bytes()), 1000, &mut out)
            .unwrap();
        window.push(&out);
        out.clear();
        inf.inflate(&[&second], Some(window.bytes()), 1000, &mut out)
            .unwrap();
        assert_eq!(out, b"Hello");
        // Without the history, the back-reference points before the start: corrupt.
        assert_eq!(inflate_one(&mut inf, &second), Err(InflateError::Corrupt));
        // Without context takeover, the second message is the same as the first.
        assert_eq!(inflate_one(&mut inf, &first).unwrap(), b"Hello");
    }

    // RFC 7692 §7.2.3.3: a stored (BTYPE=00) block.
    #[test]
    fn rfc_stored_block() {
        let msg = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(inflate_one(&mut Inflater::new(), &msg).unwrap(), b"Hello");
    }

    // RFC 7692 §7.2.3.4: a block with BFINAL set; the appended tail is ignored.
    #[test]
    fn rfc_bfinal() {
        let msg = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        let mut inf = Inflater::new();
        assert_eq!(inflate_one(&mut inf, &msg).unwrap(), b"Hello");
        // The stream ended: the reset makes the next message start clean.
        assert_eq!(inflate_one(&mut inf, &msg).unwrap(), b"Hello");
    }

    // RFC 7692 §7.2.3.5: two DEFLATE blocks in one message.
    #[test]
    fn rfc_two_blocks() {
        let msg = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        assert_eq!(inflate_one(&mut Inflater::new(), &msg).unwrap(), b"Hello");
    }

    // RFC 7692 §7.2.3.6: a sender that flushed early ends the message with an empty fragment
    // holding an empty stored block ("00" once 00 00 ff ff is stripped).
    #[test]
    fn rfc_empty_last_fragment() {
        let first = [
            0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff,
        ];
        let mut out = Vec::new();
        Inflater::new()
            .inflate(&[&first, &[0x00]], None, 5, &mut out)
            .unwrap();
        assert_eq!(out, b"Hello");
        // And an empty payload with RSV1 set is an empty message.
        assert_eq!(inflate_one(&mut Inflater::new(), &[]).unwrap(), b"");
    }

    #[test]
    fn deflater_matches_rfc_bytes() {
        let mut shared = Deflater::new(15, 6);
        for _ in 0..2 {
            let mut out = Vec::new();
            shared.compress(b"Hello", true, &mut out);
            assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        }
        let mut dedicated = Deflater::new(15, 6);
        let mut out = Vec::new();
        dedicated.compress(b"Hello", false, &mut out);
        assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        out.clear();
        dedicated.compress(b"Hello", false, &mut out);
        assert_eq!(out, [0xf2, 0x00, 0x11, 0x00, 0x00]);
    }

    #[test]
    fn appends_to_out() {
        let mut d = Deflater::new(15, 6);
        let mut inf = Inflater::new();
        let mut c = b"xy".to_vec();
        d.compress(b"Hello", true, &mut c);
        assert_eq!(&c[..2], b"xy");
        let mut out = b"ab".to_vec();
        inf.inflate(&[&c[2..]], None, 5, &mut out).unwrap();
        assert_eq!(out, b"abHello");
    }

    fn messages(rng: &mut Rng) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        for &size in &SIZES {
            all.push(rng.json(size));
            all.push(rng.bytes(size));
        }
        all
    }

    /// Splits a payload into fragments of random sizes, some of them empty.
    fn fragments<'a>(rng: &mut Rng, payload: &'a [u8]) -> Vec<&'a [u8]> {
        let mut parts = Vec::new();
        let mut rest = payload;
        while !rest.is_empty() {
            let n = rng.below(rest.len().min(4096) + 1);
            parts.push(&rest[..n]);
            rest = &rest[n..];
        }
        parts
    }

    #[test]
    fn round_trip_shared() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut deflater = Deflater::new(15, 6);
        let mut inflater = Inflater::new();
        let mut fast = Deflater::new(9, 1);
        for msg in messages(&mut rng) {
            // zlib-rs's level 1 is slow in a debug build: only the smaller messages.
            let both = msg.len() <= 64 * 1024;
            for d in [&mut deflater, &mut fast]
                .into_iter()
                .take(if both { 2 } else { 1 })
            {
                let mut c = Vec::new();
                d.compress(&msg, true, &mut c);
                let mut out = Vec::new();
                let parts = fragments(&mut rng, &c);
                inflater.inflate(&parts, None, msg.len(), &mut out).unwrap();
                assert!(out == msg, "round trip of {} bytes", msg.len());
            }
        }
    }

    /// A dedicated deflater keeping its context, the shared inflater primed with the connection's
    /// window, 20 messages, some of them sent uncompressed (RSV1 clear): those pass through
    /// neither the deflater nor the window.
    fn context_takeover(bits: u8, level: u32, seed: u64) {
        let mut rng = Rng(seed);
        let mut deflater = Deflater::new(bits, level);
        let mut inflater = Inflater::new();
        let mut window = Window::new(bits);
        let mut other = Deflater::new(15, 6);
        let base = rng.json(3000);
        for i in 0..20 {
            let msg = match i % 5 {
                // Mostly repeats of earlier text, so back-references reach into the window.
                0 | 1 => {
                    let at = rng.below(base.len() - 600);
                    base[at..at + 100 + rng.below(500)].to_vec()
                }
                2 => rng.json(SIZES[i % SIZES.len()]),
                3 => rng.bytes(SIZES[(i + 2) % SIZES.len()].min(64 * 1024)),
                _ => base.clone(),
            };
            if i % 7 == 3 {
                // Sent uncompressed: the receiver takes it as is, the window does not change.
                continue;
            }
            let mut c = Vec::new();
            deflater.compress(&msg, false, &mut c);
            let mut out = Vec::new();
            let parts = fragments(&mut rng, &c);
            inflater
                .inflate(&parts, Some(window.bytes()), msg.len(), &mut out)
                .unwrap();
            assert!(out == msg, "message {i}, {} bytes", msg.len());
            window.push(&out);
            // Another connection in shared mode between two messages of this one.
            let mut c2 = Vec::new();
            other.compress(b"interleaved", true, &mut c2);
            let mut out2 = Vec::new();
            inflater.inflate(&[&c2], None, 100, &mut out2).unwrap();
            assert_eq!(out2, b"interleaved");
        }
    }

    /// The peer's inflater may have a window of only 2^server_max_window_bits: a deflater made
    /// with 9 bits never refers further back than 512 bytes, also after a reset and across
    /// messages. (zlib-rs's own inflater does not enforce a small window, so the check is on the
    /// compressed size: 700 random bytes three times over only shrink with a longer reach.)
    #[test]
    fn small_window_stays_small() {
        let mut rng = Rng(99);
        let block = rng.bytes(700);
        let msg = [&block[..], &block[..], &block[..]].concat();
        let mut wide = Vec::new();
        Deflater::new(15, 6).compress(&msg, true, &mut wide);
        assert!(
            wide.len() < 1000,
            "15 bits reach 700 back: {} bytes",
            wide.len()
        );
        for reset in [true, false] {
            let mut deflater = Deflater::new(9, 6);
            let mut inflater = Inflater::new();
            let mut window = Window::new(9);
            for _ in 0..3 {
                let mut c = Vec::new();
                deflater.compress(&msg, reset, &mut c);
                assert!(
                    c.len() > 2000,
                    "9 bits reach only 512 back: {} bytes",
                    c.len()
                );
                let mut out = Vec::new();
                let w = (!reset).then(|| window.bytes());
                inflater.inflate(&[&c], w, msg.len(), &mut out).unwrap();
                assert!(out == msg);
                window.push(&out);
            }
        }
    }

    #[test]
    fn round_trip_context_takeover() {
        context_takeover(15, 6, 1);
        context_takeover(9, 6, 2);
        context_takeover(12, 1, 3);
        // Level 0 makes stored (BTYPE=00) blocks only; their bytes are history all the same.
        context_takeover(10, 0, 4);
    }

    #[test]
    fn uncompressed_message_must_not_enter_the_window() {
        let mut rng = Rng(7);
        let a = rng.json(2000);
        let raw = rng.json(300);
        let mut deflater = Deflater::new(15, 6);
        let mut inflater = Inflater::new();
        let mut c1 = Vec::new();
        deflater.compress(&a, false, &mut c1);
        // `raw` goes out uncompressed, then `a` again, compressed against the first `a`.
        let mut c2 = Vec::new();
        deflater.compress(&a, false, &mut c2);
        assert!(
            c2.len() < 64,
            "the repeat is back-references: {} bytes",
            c2.len()
        );
        let mut window = Window::new(15);
        let mut out = Vec::new();
        inflater
            .inflate(&[&c1], Some(window.bytes()), usize::MAX, &mut out)
            .unwrap();
        window.push(&out);
        let mut wrong = window.clone();
        wrong.push(&raw);
        let mut out = Vec::new();
        inflater
            .inflate(&[&c2], Some(window.bytes()), usize::MAX, &mut out)
            .unwrap();
        assert!(out == a);
        let mut out = Vec::new();
        let polluted = inflater.inflate(&[&c2], Some(wrong.bytes()), usize::MAX, &mut out);
        assert!(polluted.is_err() || out != a);
    }

    /// ~100 KiB of DEFLATE that inflates to 100 MiB of zeros: one 1 MiB message followed by 99
    /// copies of a second one that refers only back into zeros. (DEFLATE cannot do better than
    /// about 1032:1, so 1 KiB of payload inflates to about 1 MiB.)
    fn bomb() -> (Vec<u8>, usize) {
        let zeros = vec![0u8; 1 << 20];
        let mut d = Deflater::new(15, 9);
        let mut first = Vec::new();
        d.compress(&zeros, false, &mut first);
        first.extend_from_slice(&TAIL);
        let mut next = Vec::new();
        d.compress(&zeros, false, &mut next);
        next.extend_from_slice(&TAIL);
        let mut bomb = first;
        for _ in 0..99 {
            bomb.extend_from_slice(&next);
        }
        (bomb, 100 << 20)
    }

    #[test]
    fn bomb_is_refused_within_the_limit() {
        let (bomb, _) = bomb();
        assert!(bomb.len() < 150 * 1024, "bomb is {} bytes", bomb.len());
        let max = 1 << 20;
        let mut inf = Inflater::new();
        let mut out = Vec::new();
        assert_eq!(
            inf.inflate(&[&bomb], None, max, &mut out),
            Err(InflateError::TooLarge { max })
        );
        assert!(out.is_empty());
        assert!(
            out.capacity() <= max,
            "capacity {} for max {max}",
            out.capacity()
        );
        // Spread over many fragments: the same.
        let parts: Vec<&[u8]> = bomb.chunks(97).collect();
        let mut out = Vec::new();
        assert_eq!(
            inf.inflate(&parts, None, max, &mut out),
            Err(InflateError::TooLarge { max })
        );
        assert!(out.capacity() <= max);
        // A buffer that already holds data: the bound is relative to its length.
        let mut out = vec![7u8; 1000];
        assert_eq!(
            inf.inflate(&parts, None, 4096, &mut out),
            Err(InflateError::TooLarge { max: 4096 })
        );
        assert_eq!(out, vec![7u8; 1000]);
        assert!(out.capacity() <= 1000 + 4096);
        // A small frame: 1 KiB inflating to 1 MiB against a 64 KiB limit.
        let mut small = Vec::new();
        Deflater::new(15, 9).compress(&vec![0u8; 1 << 20], true, &mut small);
        assert!(small.len() < 1100, "{} bytes", small.len());
        let mut out = Vec::new();
        assert_eq!(
            inf.inflate(&[&small], None, 64 * 1024, &mut out),
            Err(InflateError::TooLarge { max: 64 * 1024 })
        );
        assert!(out.capacity() <= 64 * 1024);
        // The shared inflater is clean afterwards.
        assert_eq!(
            inflate_one(&mut inf, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]).unwrap(),
            b"Hello"
        );
    }

    #[test]
    fn max_is_inclusive() {
        let mut rng = Rng(11);
        let msg = rng.json(50_000);
        let mut c = Vec::new();
        Deflater::new(15, 6).compress(&msg, true, &mut c);
        let mut inf = Inflater::new();
        let mut out = Vec::new();
        inf.inflate(&[&c], None, msg.len(), &mut out).unwrap();
        assert!(out == msg);
        assert!(out.capacity() <= msg.len());
        let mut out = Vec::new();
        assert_eq!(
            inf.inflate(&[&c], None, msg.len() - 1, &mut out),
            Err(InflateError::TooLarge { max: msg.len() - 1 })
        );
        // Empty message, max 0.
        let mut c = Vec::new();
        Deflater::new(15, 6).compress(b"", true, &mut c);
        let mut out = Vec::new();
        inf.inflate(&[&c], None, 0, &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn corrupt_input() {
        let mut inf = Inflater::new();
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        // BTYPE=11 is reserved.
        assert_eq!(inflate_one(&mut inf, &[0xff]), Err(InflateError::Corrupt));
        assert_eq!(inflate_one(&mut inf, &hello).unwrap(), b"Hello");
        // A stored block whose length and its complement disagree.
        assert_eq!(
            inflate_one(&mut inf, &[0x00, 0x05, 0x00, 0x00, 0x00, b'x']),
            Err(InflateError::Corrupt)
        );
        assert_eq!(inflate_one(&mut inf, &hello).unwrap(), b"Hello");
        // Random garbage, many times: never a panic, and the stream recovers each time.
        let mut rng = Rng(5);
        let mut corrupt = 0;
        for _ in 0..200 {
            let len = 1 + rng.below(64);
            let junk = rng.bytes(len);
            let mut out = Vec::new();
            match inf.inflate(&[&junk], None, 4096, &mut out) {
                Err(InflateError::Corrupt) => {
                    corrupt += 1;
                    assert!(out.is_empty());
                }
                Err(InflateError::TooLarge { .. }) => assert!(out.is_empty()),
                Ok(()) => assert!(out.len() <= 4096),
            }
            assert_eq!(inflate_one(&mut inf, &hello).unwrap(), b"Hello");
        }
        assert!(corrupt > 100, "{corrupt} of 200 junk payloads were refused");
        // A corrupt message in the middle of a compressed stream, with a window.
        let mut out = Vec::new();
        let mut window = Window::new(15);
        window.push(b"Hello");
        let bad = [0x00, 0x05, 0x00, 0x00, 0x00];
        assert_eq!(
            inf.inflate(
                &[&hello[..4], &hello[4..], &bad],
                Some(window.bytes()),
                100,
                &mut out
            ),
            Err(InflateError::Corrupt)
        );
        assert_eq!(inflate_one(&mut inf, &hello).unwrap(), b"Hello");
    }

    #[test]
    fn window_keeps_the_last_bytes() {
        let mut w = Window::new(9);
        assert!(w.bytes().is_empty());
        assert_eq!(
            w.buf.capacity(),
            0,
            "nothing allocated before the first push"
        );
        w.push(b"abc");
        assert_eq!(w.bytes(), b"abc");
        let big: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        w.push(&big[..500]);
        assert_eq!(w.bytes().len(), 503);
        assert_eq!(&w.bytes()[..3], b"abc");
        w.push(&big[500..]);
        assert_eq!(w.bytes(), &[&b"abc"[..], &big[..]].concat()[603 - 512..]);
        w.push(&big);
        assert_eq!(w.bytes(), &big[600 - 512..]);
        assert!(w.buf.capacity() <= 512);
        w.push(b"");
        assert_eq!(w.bytes(), &big[600 - 512..]);
    }

    #[test]
    fn window_of_8_bits_keeps_512_bytes() {
        let mut w = Window::new(8);
        w.push(&[1; 600]);
        assert_eq!(w.bytes().len(), 512);
    }

    #[test]
    fn close_codes() {
        assert_eq!(InflateError::TooLarge { max: 1 }.close_code(), 1009);
        assert_eq!(InflateError::Corrupt.close_code(), 1007);
    }
}
