//! Frame headers (RFC 6455 §5.2): decoding from received bytes and encoding for sending.
//!
//! Decoding looks at as few bytes as it can: a reserved opcode or a bad bit is refused from the
//! first two bytes, and a declared length over the limit is refused before any payload is read, so
//! a peer can never make us buffer or allocate by announcing a size.

use super::limits::{Limits, Role};
use crate::error::ProtocolError;

/// Frame opcodes defined by RFC 6455 §5.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpCode {
    /// 0x0
    Continuation,
    /// 0x1
    Text,
    /// 0x2
    Binary,
    /// 0x8
    Close,
    /// 0x9
    Ping,
    /// 0xA
    Pong,
}

impl OpCode {
    /// Decodes the low nibble of the first byte.
    pub fn from_u8(op: u8) -> Result<OpCode, ProtocolError> {
        Ok(match op {
            0 => OpCode::Continuation,
            1 => OpCode::Text,
            2 => OpCode::Binary,
            8 => OpCode::Close,
            9 => OpCode::Ping,
            10 => OpCode::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0,
            OpCode::Text => 1,
            OpCode::Binary => 2,
            OpCode::Close => 8,
            OpCode::Ping => 9,
            OpCode::Pong => 10,
        }
    }

    /// Close, Ping and Pong.
    pub fn is_control(self) -> bool {
        self.as_u8() >= 8
    }
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Final fragment.
    pub fin: bool,
    /// RSV1 (permessage-deflate's "compressed" bit, RFC 7692 §6).
    pub rsv1: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, if the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// Payload length.
    pub len: u64,
    /// Bytes taken by the header itself (2 to 14).
    pub header_len: usize,
}

/// Longest possible header: 2 + 8 (length) + 4 (mask).
pub const MAX_HEADER: usize = 14;

/// Decodes a header from the start of `buf`. `rsv1` says whether RSV1 may be set (an extension
/// that defines it, permessage-deflate, was negotiated).
///
/// Returns `Ok(None)` when more bytes are needed, having checked everything the bytes at hand can
/// tell, so a bad frame is refused as early as possible.
pub fn decode(buf: &[u8], limits: &Limits, rsv1: bool) -> Result<Option<Header>, ProtocolError> {
    let Some(&b0) = buf.first() else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let rsv1_set = b0 & 0x40 != 0;
    // RFC 6455 §5.2: RSV bits MUST be 0 unless an extension defines them.
    if b0 & 0x30 != 0 || (rsv1_set && !rsv1) {
        return Err(ProtocolError::ReservedBits);
    }
    let opcode = OpCode::from_u8(b0 & 0x0f)?;
    if opcode.is_control() {
        // RFC 6455 §5.5: control frames are never fragmented.
        if !fin {
            return Err(ProtocolError::FragmentedControl);
        }
        // RFC 7692 §6.1: RSV1 is for data messages only.
        if rsv1_set {
            return Err(ProtocolError::ReservedBits);
        }
    }
    let Some(&b1) = buf.get(1) else {
        return Ok(None);
    };
    let masked = b1 & 0x80 != 0;
    match limits.role {
        // RFC 6455 §5.1: a server MUST close on an unmasked frame.
        Role::Server if !masked && !limits.accept_unmasked => {
            return Err(ProtocolError::UnmaskedFrame);
        }
        // RFC 6455 §5.1: a client MUST close on a masked frame.
        Role::Client if masked => return Err(ProtocolError::MaskedFrame),
        _ => {}
    }
    let len7 = b1 & 0x7f;
    if opcode.is_control() && len7 > 125 {
        return Err(ProtocolError::ControlTooLong);
    }
    let (len, mut pos) = match len7 {
        126 => {
            let Some(b) = buf.get(2..4) else {
                return Ok(None);
            };
            let len = u64::from(u16::from_be_bytes([b[0], b[1]]));
            if len < 126 {
                return Err(ProtocolError::NonMinimalLength);
            }
            (len, 4)
        }
        127 => {
            let Some(b) = buf.get(2..10) else {
                // The MSB is in the first length byte: refuse it as soon as it is here.
                if buf.get(2).is_some_and(|b| b & 0x80 != 0) {
                    return Err(ProtocolError::LengthMsb);
                }
                return Ok(None);
            };
            let mut raw = [0u8; 8];
            raw.copy_from_slice(b);
            let len = u64::from_be_bytes(raw);
            if len >> 63 != 0 {
                return Err(ProtocolError::LengthMsb);
            }
            if len <= 0xffff {
                return Err(ProtocolError::NonMinimalLength);
            }
            (len, 10)
        }
        n => (u64::from(n), 2),
    };
    if len > limits.max_frame {
        return Err(ProtocolError::FrameTooLarge {
            size: len,
            max: limits.max_frame,
        });
    }
    let mask = if masked {
        let Some(k) = buf.get(pos..pos + 4) else {
            return Ok(None);
        };
        pos += 4;
        Some([k[0], k[1], k[2], k[3]])
    } else {
        None
    };
    Ok(Some(Header {
        fin,
        rsv1: rsv1_set,
        opcode,
        mask,
        len,
        header_len: pos,
    }))
}

/// Encodes a header into `out`, returning its length.
pub fn encode(
    out: &mut [u8; MAX_HEADER],
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    len: u64,
) -> usize {
    out[0] = (u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode.as_u8();
    let mbit = if mask.is_some() { 0x80 } else { 0 };
    let mut pos = if len < 126 {
        // Fits in seven bits: checked just above.
        out[1] = mbit | len as u8;
        2
    } else if let Ok(short) = u16::try_from(len) {
        out[1] = mbit | 126;
        out[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        out[1] = mbit | 127;
        out[2..10].copy_from_slice(&len.to_be_bytes());
        10
    };
    if let Some(k) = mask {
        out[pos..pos + 4].copy_from_slice(&k);
        pos += 4;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Limits {
        Limits {
            role: Role::Server,
            accept_unmasked: false,
            max_frame: 1 << 20,
            max_message: 1 << 20,
            max_fragments: 100,
        }
    }

    #[test]
    fn masked_hello() {
        let b = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let h = decode(&b, &server(), false).unwrap().unwrap();
        assert!(h.fin);
        assert_eq!(h.opcode, OpCode::Text);
        assert_eq!(h.len, 5);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(h.header_len, 6);
    }

    // BAD_INPUTS 14
    #[test]
    fn bad_inputs_14_rsv_bits() {
        for b0 in [0xc1u8, 0xa1, 0x91] {
            assert_eq!(
                decode(&[b0], &server(), false),
                Err(ProtocolError::ReservedBits),
                "{b0:#x}"
            );
        }
        assert!(decode(&[0xc1, 0x80], &server(), true).unwrap().is_none());
        // Never on control frames (RFC 7692 §6.1).
        assert_eq!(
            decode(&[0xc9], &server(), true),
            Err(ProtocolError::ReservedBits)
        );
    }

    // BAD_INPUTS 15: decided from the first byte.
    #[test]
    fn bad_inputs_15_reserved_opcodes() {
        for op in (3..=7).chain(11..=15) {
            assert_eq!(
                decode(&[0x80 | op], &server(), false),
                Err(ProtocolError::ReservedOpcode(op))
            );
        }
    }

    // BAD_INPUTS 16
    #[test]
    fn bad_inputs_16_mask_rules() {
        assert_eq!(
            decode(&[0x81, 0x05], &server(), false),
            Err(ProtocolError::UnmaskedFrame)
        );
        let opt_in = Limits {
            accept_unmasked: true,
            ..server()
        };
        assert_eq!(
            decode(&[0x81, 0x00], &opt_in, false).unwrap().unwrap().mask,
            None
        );
        let client = Limits {
            role: Role::Client,
            ..server()
        };
        assert_eq!(
            decode(&[0x81, 0x80], &client, false),
            Err(ProtocolError::MaskedFrame)
        );
    }

    // BAD_INPUTS 17, 21
    #[test]
    fn bad_inputs_17_21_lengths() {
        let mut b = vec![0x82, 0xff, 0x80];
        assert_eq!(decode(&b, &server(), false), Err(ProtocolError::LengthMsb));
        b = vec![0x82, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(decode(&b, &server(), false), Err(ProtocolError::LengthMsb));
        // u64 MAX/2: refused by the limit, no arithmetic on it.
        b = vec![0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            decode(&b, &server(), false),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
        // Non-minimal: 5 in 16 bits, 200 in 64 bits.
        assert_eq!(
            decode(&[0x82, 0xfe, 0, 5], &server(), false),
            Err(ProtocolError::NonMinimalLength)
        );
        assert_eq!(
            decode(&[0x82, 0xff, 0, 0, 0, 0, 0, 0, 0, 200], &server(), false),
            Err(ProtocolError::NonMinimalLength)
        );
    }

    // BAD_INPUTS 18
    #[test]
    fn bad_inputs_18_limit_from_header() {
        let rules = Limits {
            max_frame: 1000,
            ..server()
        };
        assert_eq!(
            decode(&[0x82, 0xfe, 0x03, 0xe9], &rules, false),
            Err(ProtocolError::FrameTooLarge {
                size: 1001,
                max: 1000
            })
        );
    }

    // BAD_INPUTS 32
    #[test]
    fn bad_inputs_32_control_rules() {
        assert_eq!(
            decode(&[0x89, 0xfe], &server(), false),
            Err(ProtocolError::ControlTooLong)
        );
        assert_eq!(
            decode(&[0x09], &server(), false),
            Err(ProtocolError::FragmentedControl)
        );
    }

    #[test]
    fn encode_decode_round_trip_every_length_class() {
        for len in [0u64, 1, 125, 126, 65535, 65536, 1 << 40] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut out = [0u8; MAX_HEADER];
                let n = encode(&mut out, true, false, OpCode::Binary, mask, len);
                let rules = Limits {
                    role: if mask.is_some() {
                        Role::Server
                    } else {
                        Role::Client
                    },
                    accept_unmasked: false,
                    max_frame: u64::MAX >> 1,
                    max_message: u64::MAX >> 1,
                    max_fragments: 1,
                };
                let h = decode(&out[..n], &rules, false).unwrap().unwrap();
                assert_eq!((h.len, h.mask, h.header_len), (len, mask, n));
                // Every prefix is "need more", never an error.
                for cut in 0..n {
                    assert_eq!(decode(&out[..cut], &rules, false), Ok(None), "cut {cut}");
                }
            }
        }
    }
}
