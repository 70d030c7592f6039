//! Session ids: the session's reactor and slot (so that a request for it reaches its reactor
//! without a table), and a 128-bit tag that only this process can make: HMAC-SHA1 (RFC 2104)
//! of the reactor, the slot's token and the reactor's generation epoch, under a 256-bit key
//! drawn from the OS at start. Nothing is stored per session, and an id cannot be guessed from
//! others: the tag is a keyed PRF of a value no two sessions of the process share (the token's
//! generation changes each time a slot is reused, the epoch each time generations wrap).

use std::sync::OnceLock;

use crate::id::Token;

/// Bytes of the tag.
const TAG: usize = 16;

/// What an id names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sid {
    pub(crate) reactor: u32,
    pub(crate) token: Token,
    /// The reactor's generation epoch when the session opened.
    pub(crate) epoch: u32,
}

/// The process's key, drawn from the OS once.
fn key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut k = [0u8; 32];
        if let Err(e) = crate::sys::random_bytes(&mut k) {
            // No session could be trusted without it.
            panic!("no random bytes from the OS for the session key: {e}");
        }
        k
    })
}

/// Draws the key now (at server start), so that an OS without random bytes fails there.
pub(crate) fn init() {
    let _ = key();
}

/// HMAC-SHA1 of `msg` under the process key, its first [`TAG`] bytes.
fn tag(msg: &[u8]) -> [u8; TAG] {
    let k = key();
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, b) in k.iter().enumerate() {
        ipad[i] ^= b;
        opad[i] ^= b;
    }
    let mut inner = sha1_smol::Sha1::new();
    inner.update(&ipad);
    inner.update(msg);
    let mut outer = sha1_smol::Sha1::new();
    outer.update(&opad);
    outer.update(&inner.digest().bytes());
    let mut t = [0u8; TAG];
    t.copy_from_slice(&outer.digest().bytes()[..TAG]);
    t
}

/// Bytes of what the tag covers.
const MSG: usize = 16;

fn message(s: Sid) -> [u8; MSG] {
    let mut m = [0u8; MSG];
    m[..4].copy_from_slice(&s.reactor.to_be_bytes());
    m[4..12].copy_from_slice(&s.token.0.to_be_bytes());
    m[12..].copy_from_slice(&s.epoch.to_be_bytes());
    m
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Sid {
    /// The id's text: 64 lowercase hex digits (reactor, token, epoch, tag).
    pub(crate) fn encode(self) -> String {
        let m = message(self);
        let t = tag(&m);
        let mut s = String::with_capacity(2 * (m.len() + TAG));
        for b in m.iter().chain(&t) {
            s.push(HEX[usize::from(b >> 4)] as char);
            s.push(HEX[usize::from(b & 15)] as char);
        }
        s
    }

    /// Reads an id; `None` unless it is well formed and its tag is this process's.
    pub(crate) fn decode(text: &str) -> Option<Sid> {
        let t = text.as_bytes();
        if t.len() != 2 * (MSG + TAG) {
            return None;
        }
        let mut raw = [0u8; MSG + TAG];
        for (i, pair) in t.chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            raw[i] = (hi * 16 + lo) as u8;
        }
        let reactor = u32::from_be_bytes(raw[..4].try_into().ok()?);
        let token = Token(u64::from_be_bytes(raw[4..12].try_into().ok()?));
        let epoch = u32::from_be_bytes(raw[12..MSG].try_into().ok()?);
        let s = Sid {
            reactor,
            token,
            epoch,
        };
        // Compared in full, whatever the first differing byte (no early exit to time).
        let want = tag(&raw[..MSG]);
        let diff = want
            .iter()
            .zip(&raw[MSG..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        (diff == 0).then_some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_forgery() {
        let s = Sid {
            reactor: 3,
            token: Token::new(42, 7),
            epoch: 0,
        };
        let text = s.encode();
        assert_eq!(text.len(), 64);
        assert_eq!(Sid::decode(&text), Some(s));
        // Another slot's id with this tag, a flipped tag bit, bad lengths and characters.
        let other = Sid {
            reactor: 3,
            token: Token::new(42, 8),
            epoch: 0,
        };
        let forged = format!("{}{}", &other.encode()[..32], &text[32..]);
        assert_eq!(Sid::decode(&forged), None);
        // The same slot and generation in the next epoch: another id.
        let later = Sid { epoch: 1, ..s };
        assert_ne!(later.encode()[32..], text[32..]);
        assert_eq!(Sid::decode(&later.encode()), Some(later));
        let mut flipped = text.clone().into_bytes();
        flipped[63] = if flipped[63] == b'0' { b'1' } else { b'0' };
        assert_eq!(Sid::decode(std::str::from_utf8(&flipped).unwrap()), None);
        assert_eq!(Sid::decode(&text[..62]), None);
        assert_eq!(Sid::decode(&format!("{}zz", &text[..62])), None);
        assert_eq!(Sid::decode(""), None);
        assert_ne!(s.encode(), other.encode());
    }
}
