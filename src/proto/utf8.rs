//! UTF-8 validation of text that arrives in pieces (RFC 6455 §8.1), failing at the first bad byte.
//!
//! `simdutf8`'s `compat` checker reports either an invalid sequence or a valid-so-far sequence cut
//! by the end of the input. The cut bytes (at most three) are carried to the next piece; the first
//! piece of the next call completes them and the rest goes back to the SIMD checker. A prefix that
//! can never become valid (`F5`, `E0 80`, `ED A0`) is refused at once, which is what Autobahn's
//! strict 6.4.x cases ask for.

use crate::error::ProtocolError;

/// Validates a complete buffer.
pub fn is_valid(bytes: &[u8]) -> bool {
    simdutf8::basic::from_utf8(bytes).is_ok()
}

/// Incremental validator for a text message split over frames and reads.
#[derive(Clone, Copy, Debug, Default)]
pub struct Utf8Stream {
    carry: [u8; 4],
    len: u8,
}

/// Width of the sequence a lead byte starts, or 0 when it cannot start one.
fn width(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 0,
    }
}

/// Checks `bytes`, which ends a valid prefix of unknown tail: Ok(cut) where `cut` is how many final
/// bytes form an incomplete (but so far valid) sequence.
fn check(bytes: &[u8]) -> Result<usize, ProtocolError> {
    match simdutf8::compat::from_utf8(bytes) {
        Ok(_) => Ok(0),
        Err(e) if e.error_len().is_none() => Ok(bytes.len() - e.valid_up_to()),
        Err(_) => Err(ProtocolError::InvalidUtf8),
    }
}

impl Utf8Stream {
    /// A fresh validator.
    pub fn new() -> Utf8Stream {
        Utf8Stream::default()
    }

    /// Feeds the next piece. Errors as soon as the bytes seen cannot be the start of valid UTF-8.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), ProtocolError> {
        if self.len > 0 {
            let have = usize::from(self.len);
            let need = width(self.carry[0]) - have;
            let take = need.min(bytes.len());
            let mut seq = self.carry;
            seq[have..have + take].copy_from_slice(&bytes[..take]);
            let total = have + take;
            let cut = check(&seq[..total])?;
            if cut > 0 {
                // Still incomplete: the piece was shorter than what the sequence needs.
                self.carry = seq;
                self.len = total as u8;
                return Ok(());
            }
            self.len = 0;
            bytes = &bytes[take..];
        }
        let cut = check(bytes)?;
        if cut > 0 {
            self.carry[..cut].copy_from_slice(&bytes[bytes.len() - cut..]);
            self.len = cut as u8;
        }
        Ok(())
    }

    /// Ends the message: an incomplete final sequence is an error.
    pub fn finish(&mut self) -> Result<(), ProtocolError> {
        let open = self.len;
        self.len = 0;
        if open == 0 {
            Ok(())
        } else {
            Err(ProtocolError::InvalidUtf8)
        }
    }

    /// Forgets any carried bytes.
    pub fn reset(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(bytes: &[u8], cuts: &[usize]) -> Result<(), ProtocolError> {
        let mut s = Utf8Stream::new();
        let mut start = 0;
        for &c in cuts {
            s.feed(&bytes[start..c])?;
            start = c;
        }
        s.feed(&bytes[start..])?;
        s.finish()
    }

    const SAMPLES: &[&[u8]] = &[
        b"hello",
        "κόσμε".as_bytes(),
        "a€b𝄞c".as_bytes(),
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", // surrogate
        b"\xf4\x90\x80\x80",                                               // > U+10FFFF
        b"\xc0\xaf",                                                       // overlong
        b"\xf8\x88\x80\x80\x80",                                           // 5-byte form
        b"\xe2\x82",                                                       // truncated at the end
        b"ok\xff",
        b"",
    ];

    // BAD_INPUTS 28-30: same verdict as std for every split at one and two points.
    #[test]
    fn bad_inputs_28_29_30_every_split_matches_std() {
        for s in SAMPLES {
            let want = std::str::from_utf8(s).is_ok();
            assert_eq!(streamed(s, &[]).is_ok(), want, "{s:?}");
            for i in 0..=s.len() {
                assert_eq!(streamed(s, &[i]).is_ok(), want, "{s:?} at {i}");
                for j in i..=s.len() {
                    assert_eq!(streamed(s, &[i, j]).is_ok(), want, "{s:?} at {i},{j}");
                }
            }
        }
    }

    #[test]
    fn fails_fast_on_impossible_prefix() {
        for bad in [&b"\xf5"[..], b"\xe0\x80", b"\xed\xa0", b"\xc1"] {
            let mut s = Utf8Stream::new();
            assert!(s.feed(b"abc").is_ok());
            assert!(s.feed(bad).is_err(), "{bad:?}");
        }
        // One byte at a time: F4 90 fails at the 90.
        let mut s = Utf8Stream::new();
        assert!(s.feed(b"\xf4").is_ok());
        assert!(s.feed(b"\x90").is_err());
    }

    #[test]
    fn every_byte_value_alone_matches_std() {
        for b in 0..=255u8 {
            assert_eq!(
                streamed(&[b], &[]).is_ok(),
                std::str::from_utf8(&[b]).is_ok()
            );
        }
    }
}
