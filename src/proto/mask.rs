//! WebSocket payload masking and unmasking (RFC 6455 §5.3).
//!
//! Every byte a client sends in a frame payload is XOR-ed with one byte of a
//! 4-byte masking key: payload byte `i` uses `key[i % 4]`. Masking and
//! unmasking are the same operation, so applying it twice restores the data.
//!
//! A payload may arrive in several reads, so callers pass a `phase`: the
//! offset of `buf[0]` within the frame's payload. Byte `i` of `buf` is XOR-ed
//! with `key[(phase + i) % 4]`. [`Kernel::apply`] rotates the key left by
//! `phase % 4` once up front; after that every kernel can treat the buffer as
//! if it started at payload offset 0.
//!
//! Kernels:
//! - `scalar`: repeats the rotated key twice into a `u64` and XORs the buffer
//!   eight bytes at a time, then finishes the last 0..=7 bytes one at a time.
//!   Portable, safe code, always available.
//! - `sse2` / `avx2` (`x86_64` only): broadcast the rotated 4-byte key into a
//!   16- / 32-byte vector register and XOR whole vectors using unaligned loads
//!   and stores, so the buffer needs no particular alignment. Because the
//!   vector width is a multiple of 4, the key phase is unchanged after the
//!   vector loop, and the scalar word-at-a-time kernel masks the remaining
//!   tail with the same rotated key.
//!
//! Why the kernel is chosen once: CPU feature detection is cheap but not free,
//! and it must happen before any `#[target_feature]` code runs. [`Kernel::detect`]
//! probes the CPU on first use and caches the choice in a
//! [`OnceLock`]; later calls only read it. A [`Kernel`]
//! is a `Copy` function pointer plus a name, so a reactor calls `detect()`
//! once, stores the result and then masks with no branching on features, no
//! allocation and no atomic loads on the hot path. [`apply_mask`] is a
//! convenience that does the cached lookup on every call.
//!
//! The only `unsafe` here is calling the `#[target_feature]` kernels (sound
//! because a [`Kernel`] pointing at them is only built after the feature was
//! detected) and the unaligned vector loads/stores inside them (sound because
//! each operates on a chunk of exactly the vector width).
#![allow(unsafe_code)]

use std::fmt;
use std::sync::OnceLock;

/// Signature shared by all kernels: mask `buf` as if it started at payload
/// offset 0, with the key already rotated by the caller.
type KernelFn = fn(&mut [u8], [u8; 4]);

/// A masking kernel chosen once for this CPU. Copy; cheap to store in a reactor.
#[derive(Clone, Copy)]
pub struct Kernel {
    f: KernelFn,
    name: &'static str,
}

impl fmt::Debug for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernel")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Kernel {
    /// Detects CPU features (`std::is_x86_feature_detected!`) the first time
    /// and caches the choice in a `OnceLock`; later calls return the cached
    /// kernel. Reactors should call this once and keep the returned `Kernel`
    /// to avoid even the `OnceLock` read per call.
    #[must_use]
    pub fn detect() -> Kernel {
        static CHOSEN: OnceLock<Kernel> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            Kernel::avx2()
                .or_else(Kernel::sse2)
                .unwrap_or_else(Kernel::scalar)
        })
    }

    /// The portable word-at-a-time kernel (always available).
    #[must_use]
    pub fn scalar() -> Kernel {
        Kernel {
            f: mask_scalar,
            name: "scalar",
        }
    }

    /// Only for tests/benches: the AVX2 kernel if this CPU has AVX2.
    #[must_use]
    pub fn avx2() -> Option<Kernel> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                return Some(Kernel {
                    f: x86::avx2_entry,
                    name: "avx2",
                });
            }
        }
        None
    }

    /// Only for tests/benches: the SSE2 kernel if this CPU has SSE2.
    #[must_use]
    pub fn sse2() -> Option<Kernel> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("sse2") {
                return Some(Kernel {
                    f: x86::sse2_entry,
                    name: "sse2",
                });
            }
        }
        None
    }

    /// The kernel's name: `"avx2"`, `"sse2"` or `"scalar"`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// XORs `buf[i]` with `key[(phase + i) % 4]` for every `i`.
    ///
    /// `phase` is the offset of `buf[0]` in the frame's payload (any `usize`;
    /// only `phase % 4` matters). Applying it twice restores the data.
    #[inline]
    pub fn apply(&self, buf: &mut [u8], key: [u8; 4], phase: usize) {
        let mut key = key;
        key.rotate_left(phase % 4);
        (self.f)(buf, key);
    }
}

/// Convenience: `Kernel::detect().apply(buf, key, phase)`.
///
/// Costs one `OnceLock` read per call; hot paths should store a [`Kernel`].
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], phase: usize) {
    Kernel::detect().apply(buf, key, phase);
}

/// The naive byte-at-a-time reference, used by tests and benches to check the
/// fast kernels.
pub fn apply_mask_naive(buf: &mut [u8], key: [u8; 4], phase: usize) {
    // `phase % 4 + i` cannot overflow: i < buf.len() <= isize::MAX.
    let phase = phase % 4;
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(phase + i) % 4];
    }
}

/// Word-at-a-time kernel; `key` is already rotated so `buf[0]` uses `key[0]`.
fn mask_scalar(buf: &mut [u8], key: [u8; 4]) {
    let [a, b, c, d] = key;
    // Native byte order on both sides, so the byte pattern in memory matches.
    let key64 = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes(chunk.try_into().expect("chunk is 8 bytes"));
        chunk.copy_from_slice(&(word ^ key64).to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, so the key phase is still 0.
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i % 4];
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::mask_scalar;
    use std::arch::x86_64::{
        __m128i, __m256i, _mm_loadu_si128, _mm_set1_epi32, _mm_storeu_si128, _mm_xor_si128,
        _mm256_loadu_si256, _mm256_set1_epi32, _mm256_storeu_si256, _mm256_xor_si256,
    };

    /// Safe entry stored in `Kernel`; see `Kernel::avx2`.
    pub(super) fn avx2_entry(buf: &mut [u8], key: [u8; 4]) {
        // SAFETY: this fn pointer is only handed out by Kernel::avx2, which
        // checks is_x86_feature_detected!("avx2") before building the Kernel.
        unsafe { mask_avx2(buf, key) }
    }

    /// Safe entry stored in `Kernel`; see `Kernel::sse2`.
    pub(super) fn sse2_entry(buf: &mut [u8], key: [u8; 4]) {
        // SAFETY: this fn pointer is only handed out by Kernel::sse2, which
        // checks is_x86_feature_detected!("sse2") before building the Kernel.
        unsafe { mask_sse2(buf, key) }
    }

    /// Masks 32 bytes per step with AVX2, then the tail with the scalar kernel.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    #[allow(clippy::cast_ptr_alignment)] // only unaligned loadu/storeu use the pointer
    unsafe fn mask_avx2(buf: &mut [u8], key: [u8; 4]) {
        // Same byte order as the buffer, so lane bytes line up with key[0..4].
        let kv = _mm256_set1_epi32(i32::from_ne_bytes(key));
        let mut chunks = buf.chunks_exact_mut(32);
        for chunk in &mut chunks {
            let p = chunk.as_mut_ptr().cast::<__m256i>();
            // SAFETY: the chunk is exactly 32 valid bytes; loadu accepts any alignment.
            let v = _mm256_xor_si256(unsafe { _mm256_loadu_si256(p) }, kv);
            // SAFETY: the chunk is exactly 32 exclusively borrowed bytes;
            // storeu accepts any alignment.
            unsafe { _mm256_storeu_si256(p, v) };
        }
        // 32 is a multiple of 4: the tail still starts at key phase 0.
        mask_scalar(chunks.into_remainder(), key);
    }

    /// Masks 16 bytes per step with SSE2, then the tail with the scalar kernel.
    ///
    /// # Safety
    /// The CPU must support SSE2.
    #[target_feature(enable = "sse2")]
    #[allow(clippy::cast_ptr_alignment)] // only unaligned loadu/storeu use the pointer
    unsafe fn mask_sse2(buf: &mut [u8], key: [u8; 4]) {
        let kv = _mm_set1_epi32(i32::from_ne_bytes(key));
        let mut chunks = buf.chunks_exact_mut(16);
        for chunk in &mut chunks {
            let p = chunk.as_mut_ptr().cast::<__m128i>();
            // SAFETY: the chunk is exactly 16 valid bytes; loadu accepts any alignment.
            let v = _mm_xor_si128(unsafe { _mm_loadu_si128(p) }, kv);
            // SAFETY: the chunk is exactly 16 exclusively borrowed bytes;
            // storeu accepts any alignment.
            unsafe { _mm_storeu_si128(p, v) };
        }
        // 16 is a multiple of 4: the tail still starts at key phase 0.
        mask_scalar(chunks.into_remainder(), key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: [[u8; 4]; 3] = [[0x12, 0x34, 0x56, 0x78], [0xff, 0x00, 0xa5, 0x01], [0; 4]];

    fn kernels() -> Vec<Kernel> {
        let mut ks = vec![Kernel::scalar()];
        ks.extend(Kernel::sse2());
        ks.extend(Kernel::avx2());
        ks
    }

    #[allow(clippy::cast_possible_truncation)] // wrapping bytes are intended
    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + 7) as u8).collect()
    }

    #[test]
    fn detect_is_cached_and_named() {
        let a = Kernel::detect();
        let b = Kernel::detect();
        assert_eq!(a.name(), b.name());
        assert!(["avx2", "sse2", "scalar"].contains(&a.name()));
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            assert_eq!(a.name(), "avx2");
        }
        assert_eq!(Kernel::scalar().name(), "scalar");
    }

    #[test]
    fn naive_matches_spec() {
        let mut buf = [0u8; 6];
        apply_mask_naive(&mut buf, [1, 2, 3, 4], 0);
        assert_eq!(buf, [1, 2, 3, 4, 1, 2]);
        let mut buf = [0u8; 6];
        apply_mask_naive(&mut buf, [1, 2, 3, 4], 7);
        assert_eq!(buf, [4, 1, 2, 3, 4, 1]);
        let mut buf = [0u8; 3];
        apply_mask_naive(&mut buf, [1, 2, 3, 4], usize::MAX);
        assert_eq!(buf, [4, 1, 2]);
    }

    #[test]
    fn kernels_match_naive() {
        const MAX_LEN: usize = 300;
        const MAX_OFF: usize = 31;
        let src = data(MAX_LEN + MAX_OFF);
        let mut work = vec![0u8; MAX_LEN + MAX_OFF + 8];
        for k in kernels() {
            for key in KEYS.into_iter().take(2) {
                for phase in 0..4 {
                    for len in 0..=MAX_LEN {
                        let mut want = src[..len].to_vec();
                        apply_mask_naive(&mut want, key, phase);
                        for off in 0..=MAX_OFF {
                            work.fill(0xEE);
                            work[off..off + len].copy_from_slice(&src[..len]);
                            k.apply(&mut work[off..off + len], key, phase);
                            assert!(
                                work[off..off + len] == want[..],
                                "{} len={len} off={off} phase={phase} key={key:02x?}",
                                k.name()
                            );
                            // Bytes around the slice must be untouched.
                            assert!(work[..off].iter().all(|&b| b == 0xEE));
                            assert!(work[off + len..].iter().all(|&b| b == 0xEE));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn large_phase_values() {
        let src = data(100);
        for k in kernels() {
            for phase in [4, 5, 1 << 20, usize::MAX - 2, usize::MAX] {
                let mut got = src.clone();
                let mut want = src.clone();
                k.apply(&mut got, KEYS[0], phase);
                apply_mask_naive(&mut want, KEYS[0], phase);
                assert_eq!(got, want, "{} phase={phase}", k.name());
            }
        }
    }

    #[test]
    fn round_trip() {
        for k in kernels() {
            for key in KEYS {
                for len in [0, 1, 7, 8, 15, 16, 31, 32, 33, 63, 64, 65, 1000, 4099] {
                    for phase in 0..4 {
                        let orig = data(len);
                        let mut buf = orig.clone();
                        k.apply(&mut buf, key, phase);
                        if len >= 4 && key != [0; 4] {
                            assert_ne!(buf, orig);
                        }
                        k.apply(&mut buf, key, phase);
                        assert_eq!(buf, orig, "{} len={len} phase={phase}", k.name());
                    }
                }
            }
        }
    }

    #[test]
    fn split_equals_whole() {
        let len = 200;
        let orig = data(len);
        for k in kernels() {
            for key in KEYS.into_iter().take(2) {
                let mut whole = orig.clone();
                k.apply(&mut whole, key, 0);
                for split in 0..=len {
                    let mut buf = orig.clone();
                    let (a, b) = buf.split_at_mut(split);
                    k.apply(a, key, 0);
                    k.apply(b, key, split);
                    assert_eq!(buf, whole, "{} split={split}", k.name());
                }
            }
        }
    }

    #[test]
    fn apply_mask_uses_detected_kernel() {
        let orig = data(257);
        let mut got = orig.clone();
        let mut want = orig.clone();
        apply_mask(&mut got, KEYS[1], 3);
        apply_mask_naive(&mut want, KEYS[1], 3);
        assert_eq!(got, want);
    }
}
