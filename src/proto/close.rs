//! Close frames (RFC 6455 §5.5.1, §7.4): which codes may travel, and decoding a received payload.

use super::utf8;
use crate::error::{ProtocolError, SendError};

/// No status code was present in the Close frame (local use only, never on the wire).
pub const NO_STATUS: u16 = 1005;
/// The connection closed without a Close frame (local use only, never on the wire).
pub const ABNORMAL: u16 = 1006;

/// Whether a received close code is acceptable (RFC 6455 §7.4.1, §7.4.2 and the IANA registry):
/// 1000-1003, 1007-1014 and 3000-4999. 1004, 1005, 1006 and 1015 are reserved or local-only;
/// 0-999, 1016-2999 and 5000+ are not assigned to endpoints.
pub fn is_valid_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A decoded Close payload: its code (1005 when empty) and its reason bytes (UTF-8).
pub fn decode(payload: &[u8]) -> Result<(u16, &[u8]), ProtocolError> {
    match payload {
        [] => Ok((NO_STATUS, &[])),
        // RFC 6455 §5.5.1: a body, if present, starts with a two-byte code.
        [_] => Err(ProtocolError::CloseTooShort),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_code(code) {
                return Err(ProtocolError::InvalidCloseCode(code));
            }
            if !utf8::is_valid(reason) {
                return Err(ProtocolError::InvalidCloseReason);
            }
            Ok((code, reason))
        }
    }
}

/// Checks a close the application wants to send and builds its payload (code + reason).
/// Returns the payload buffer and its length.
pub fn encode(code: u16, reason: &str) -> Result<([u8; 125], usize), SendError> {
    if !is_valid_code(code) {
        return Err(SendError::InvalidCloseCode(code));
    }
    if reason.len() > 123 {
        return Err(SendError::ReasonTooLong);
    }
    let mut out = [0u8; 125];
    out[..2].copy_from_slice(&code.to_be_bytes());
    out[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
    Ok((out, 2 + reason.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // BAD_INPUTS 36
    #[test]
    fn bad_inputs_36_one_byte_payload() {
        assert_eq!(decode(&[3]), Err(ProtocolError::CloseTooShort));
    }

    // BAD_INPUTS 37
    #[test]
    fn bad_inputs_37_code_ranges() {
        for code in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
        ] {
            assert_eq!(
                decode(&code.to_be_bytes()),
                Err(ProtocolError::InvalidCloseCode(code))
            );
        }
        for code in [
            1000u16, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 3999, 4000, 4999,
        ] {
            assert_eq!(decode(&code.to_be_bytes()), Ok((code, &[][..])));
        }
    }

    // BAD_INPUTS 38
    #[test]
    fn bad_inputs_38_reason_utf8() {
        let mut p = vec![0x03, 0xe8];
        p.extend_from_slice(b"\xce\xba\xed\xa0\x80");
        assert_eq!(decode(&p), Err(ProtocolError::InvalidCloseReason));
    }

    // BAD_INPUTS 41
    #[test]
    fn bad_inputs_41_empty_close_and_local_codes() {
        assert_eq!(decode(&[]), Ok((NO_STATUS, &[][..])));
        for code in [NO_STATUS, ABNORMAL, 1015] {
            assert_eq!(encode(code, ""), Err(SendError::InvalidCloseCode(code)));
        }
    }

    // BAD_INPUTS 35
    #[test]
    fn bad_inputs_35_reason_length() {
        assert!(encode(1000, &"x".repeat(123)).is_ok());
        assert_eq!(
            encode(1000, &"x".repeat(124)),
            Err(SendError::ReasonTooLong)
        );
    }
}
