//! The body of an uplink POST: frames `<type><length>:<payload>`, one after another, where the
//! type is `t` (text, UTF-8), `b` (binary) or `c` (close: `<code> <reason>`) and the length is
//! the payload's byte count in decimal. The whole body is checked before anything is delivered,
//! so a bad body delivers nothing.

use crate::proto::utf8;

/// One frame of an uplink body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
    Close(u16, &'a str),
}

/// Why a body was refused (answered 400 with this text).
pub(crate) type Malformed = &'static str;

/// Most digits of a length (a body is at most `max_body` anyway).
const MAX_DIGITS: usize = 10;

/// Parses a whole body into `out` (cleared first).
///
/// # Errors
/// The first thing wrong with it; `out` is then empty.
pub(crate) fn parse<'a>(mut body: &'a [u8], out: &mut Vec<Frame<'a>>) -> Result<(), Malformed> {
    out.clear();
    let r = (|| {
        while let Some((&kind, rest)) = body.split_first() {
            let colon = rest
                .iter()
                .take(MAX_DIGITS + 1)
                .position(|&b| b == b':')
                .ok_or("a frame's length is not followed by ':'")?;
            let digits = &rest[..colon];
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err("a frame's length is not a decimal number");
            }
            let len: usize = std::str::from_utf8(digits)
                .ok()
                .and_then(|d| d.parse().ok())
                .ok_or("a frame's length is not a decimal number")?;
            let rest = &rest[colon + 1..];
            if len > rest.len() {
                return Err("a frame's length runs past the body");
            }
            let (payload, next) = rest.split_at(len);
            body = next;
            out.push(match kind {
                b't' => Frame::Text(text(payload)?),
                b'b' => Frame::Binary(payload),
                b'c' => close(payload)?,
                _ => return Err("unknown frame type (t, b or c)"),
            });
        }
        Ok(())
    })();
    if r.is_err() {
        out.clear();
    }
    r
}

fn text(payload: &[u8]) -> Result<&str, Malformed> {
    if !utf8::is_valid(payload) {
        return Err("a text frame is not UTF-8");
    }
    std::str::from_utf8(payload).map_err(|_| "a text frame is not UTF-8")
}

fn close(payload: &[u8]) -> Result<Frame<'_>, Malformed> {
    let s = text(payload)?;
    let (code, reason) = s.split_once(' ').unwrap_or((s, ""));
    let code: u16 = code
        .parse()
        .map_err(|_| "a close frame's code is not a number")?;
    if crate::proto::close::encode(code, reason).is_err() {
        return Err("a close frame's code or reason is not allowed (RFC 6455 §7.4)");
    }
    Ok(Frame::Close(code, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_refusals() {
        let mut out = Vec::new();
        parse(b"t5:hellob3:\x00\n\xfft0:c9:1000 done", &mut out).unwrap();
        assert_eq!(
            out,
            [
                Frame::Text("hello"),
                Frame::Binary(b"\x00\n\xff"),
                Frame::Text(""),
                Frame::Close(1000, "done")
            ]
        );
        parse(b"", &mut out).unwrap();
        assert!(out.is_empty());
        for bad in [
            &b"x1:a"[..],
            b"t:a",
            b"t1a",
            b"t5:abc",
            b"t-1:a",
            b"t2:\xff\xfe",
            b"t1:at",
            b"c4:1005",
            b"c3:abc",
            b"t99999999999:a",
        ] {
            assert!(parse(bad, &mut out).is_err(), "{bad:?}");
            assert!(out.is_empty());
        }
        // A good frame before a bad one is not delivered either.
        assert!(parse(b"t1:ax", &mut out).is_err());
        assert!(out.is_empty());
    }
}
