//! A request's body (RFC 9112 §6): how long it is, decided from the head alone, and the chunked
//! transfer coding, decoded as bytes arrive. Every size is checked against the limit before
//! anything is kept, so a declared length never sizes a buffer.

use super::error::{HttpError, err};
use super::request::Request;
use super::token::{list_items, trim_ows};

/// How a request's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Exactly this many bytes (no `Content-Length` means 0, RFC 9112 §6.3 item 7).
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
}

/// Reads the framing from the head (RFC 9112 §6.1, §6.3), refusing what could be read two ways:
/// `Transfer-Encoding` together with `Content-Length` (request smuggling, BAD_INPUTS 68), a
/// coding other than `chunked` last (501 when unknown), `Transfer-Encoding` on HTTP/1.0,
/// several different or malformed `Content-Length` values. A length over `max` is 413.
///
/// # Errors
///
/// [`HttpError`] with the status to answer; the connection closes after it.
pub(crate) fn framing(req: &Request<'_>, max: u64) -> Result<Framing, HttpError> {
    let mut codings = req
        .headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Transfer-Encoding"))
        .flat_map(|(_, v)| list_items(v))
        .peekable();
    let chunked = if codings.peek().is_some() {
        if req.version() == 0 {
            return Err(err(400, "Transfer-Encoding in an HTTP/1.0 request"));
        }
        let all: Vec<&[u8]> = codings.collect();
        if req.header("Content-Length").is_some() {
            return Err(err(400, "both Transfer-Encoding and Content-Length"));
        }
        // Only `chunked`, once, is understood; anything else this server cannot decode.
        if all.len() != 1 || !all[0].eq_ignore_ascii_case(b"chunked") {
            let last_chunked = all
                .last()
                .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
            return Err(if last_chunked {
                err(501, "unsupported transfer coding")
            } else {
                err(400, "chunked is not the final transfer coding")
            });
        }
        true
    } else {
        false
    };
    if chunked {
        return Ok(Framing::Chunked);
    }
    let mut length = None;
    for (_, v) in req
        .headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
    {
        // A list of identical values is one value (RFC 9112 §6.3 item 5).
        for item in v.split(|&b| b == b',').map(trim_ows) {
            let n = parse_decimal(item).ok_or(err(400, "malformed Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(err(400, "conflicting Content-Length values"));
            }
            length = Some(n);
        }
    }
    let n = length.unwrap_or(0);
    if n > max {
        return Err(err(413, "request body too large"));
    }
    Ok(Framing::Length(n))
}

/// `1*DIGIT`, at most 19 digits (no overflow, no sign, no spaces).
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Most bytes of one chunk-size line (size, extensions, CRLF) or one trailer line.
const MAX_LINE: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Reading a chunk-size line; `n` bytes of it so far, `size` the hex digits read.
    Size {
        n: usize,
        size: u64,
        digits: bool,
        ext: bool,
    },
    /// Inside a chunk's data; bytes left.
    Data(u64),
    /// The CRLF after a chunk's data; bytes of it seen.
    DataEnd(u8),
    /// Trailer lines after the last chunk; bytes of the current line, trailer bytes in all.
    Trailer {
        line: usize,
        total: usize,
    },
    Done,
}

/// The chunked transfer coding (RFC 9112 §7.1), decoded incrementally into a caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Chunked {
    step: Step,
}

impl Default for Chunked {
    fn default() -> Chunked {
        Chunked {
            step: Step::Size {
                n: 0,
                size: 0,
                digits: false,
                ext: false,
            },
        }
    }
}

impl Chunked {
    /// Decodes `input`, appending chunk data to `body` (never past `max` bytes in all: 413).
    /// Returns how many bytes of `input` it used and whether the body is complete (bytes after
    /// it belong to the next request).
    ///
    /// # Errors
    /// 400 for a malformed coding; 413 past `max`; 431 for a line or trailer section too long.
    pub(crate) fn feed(
        &mut self,
        input: &[u8],
        body: &mut Vec<u8>,
        max: usize,
    ) -> Result<(usize, bool), HttpError> {
        let mut i = 0;
        while i < input.len() {
            match &mut self.step {
                Step::Size {
                    n,
                    size,
                    digits,
                    ext,
                } => {
                    let b = input[i];
                    i += 1;
                    *n += 1;
                    if *n > MAX_LINE {
                        return Err(err(431, "chunk-size line too long"));
                    }
                    match b {
                        b'\n' => {
                            if !*digits {
                                return Err(err(400, "chunk without a size"));
                            }
                            if *size == 0 {
                                self.step = Step::Trailer { line: 0, total: 0 };
                            } else {
                                if body.len() as u64 + *size > max as u64 {
                                    return Err(err(413, "request body too large"));
                                }
                                self.step = Step::Data(*size);
                            }
                        }
                        // Extensions are skipped (RFC 9112 §7.1.1); the CR before LF too.
                        _ if *ext => {}
                        b'\r' => {}
                        b';' | b' ' | b'\t' if *digits => *ext = true,
                        _ => {
                            let d = (b as char)
                                .to_digit(16)
                                .ok_or(err(400, "malformed chunk size"))?;
                            *digits = true;
                            *size = size
                                .checked_mul(16)
                                .and_then(|s| s.checked_add(u64::from(d)))
                                .filter(|s| *s <= max as u64)
                                .ok_or(err(413, "request body too large"))?;
                        }
                    }
                }
                Step::Data(left) => {
                    let take = (input.len() - i).min(usize::try_from(*left).unwrap_or(usize::MAX));
                    body.extend_from_slice(&input[i..i + take]);
                    i += take;
                    *left -= take as u64;
                    if *left == 0 {
                        self.step = Step::DataEnd(0);
                    }
                }
                Step::DataEnd(seen) => {
                    let want = if *seen == 0 { b'\r' } else { b'\n' };
                    if input[i] != want {
                        return Err(err(400, "chunk data not followed by CRLF"));
                    }
                    i += 1;
                    if *seen == 0 {
                        *seen = 1;
                    } else {
                        self.step = Self::default().step;
                    }
                }
                Step::Trailer { line, total } => {
                    let b = input[i];
                    i += 1;
                    *total += 1;
                    if *total > MAX_LINE * 2 {
                        return Err(err(431, "trailer section too long"));
                    }
                    match b {
                        b'\n' if *line == 0 => {
                            self.step = Step::Done;
                            return Ok((i, true));
                        }
                        b'\n' => *line = 0,
                        // A CR ends no line by itself; it is not content either.
                        b'\r' => {}
                        _ => *line += 1,
                    }
                }
                Step::Done => return Ok((i, true)),
            }
        }
        Ok((i, self.step == Step::Done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_split(input: &[u8], cut: usize, max: usize) -> Result<(Vec<u8>, usize), HttpError> {
        let mut c = Chunked::default();
        let mut body = Vec::new();
        let (a, done) = c.feed(&input[..cut], &mut body, max)?;
        if done {
            return Ok((body, a));
        }
        assert_eq!(a, cut, "an unfinished body uses all it is given");
        let (b, done) = c.feed(&input[cut..], &mut body, max)?;
        assert!(done, "complete at the end");
        Ok((body, cut + b))
    }

    #[test]
    fn chunked_at_every_split() {
        let input = b"4\r\nWiki\r\n5;name=val\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let want = b"Wikipedia in\r\n\r\nchunks.".to_vec();
        for cut in 0..=input.len() - 4 {
            let (body, used) = decode_split(input, cut, 1 << 20).unwrap();
            assert_eq!(body, want, "cut {cut}");
            assert_eq!(&input[used..], b"NEXT", "cut {cut}");
        }
    }

    #[test]
    fn chunked_bad_inputs() {
        let bad: [&[u8]; 5] = [b"x\r\n", b"\r\n", b"4\r\nWikiXX", b"-1\r\n", b"4 4\r\n"];
        for input in bad {
            let mut c = Chunked::default();
            let r = c.feed(input, &mut Vec::new(), 1 << 20);
            // "4 4" has an extension-like tail; it is skipped, the rest waits for data.
            if input == b"4 4\r\n" {
                assert_eq!(r, Ok((5, false)));
                continue;
            }
            assert_eq!(r.map_err(|e| e.status), Err(400), "{input:?}");
        }
        // Sizes past the limit are refused from the size line, before any data.
        let mut c = Chunked::default();
        let r = c.feed(b"100000\r\n", &mut Vec::new(), 1000);
        assert_eq!(r.map_err(|e| e.status), Err(413));
        let mut c = Chunked::default();
        let r = c.feed(b"ffffffffffffffffffffffff\r\n", &mut Vec::new(), usize::MAX);
        assert_eq!(r.map_err(|e| e.status), Err(413));
        // Many small chunks that add up past the limit.
        let mut c = Chunked::default();
        let many = b"1\r\na\r\n".repeat(20);
        let r = c.feed(&many, &mut Vec::new(), 10);
        assert_eq!(r.map_err(|e| e.status), Err(413));
        // An endless size line.
        let mut c = Chunked::default();
        let r = c.feed(&[b'1'; 5000], &mut Vec::new(), usize::MAX);
        assert!(r.is_err());
    }

    fn framing_of(head: &str, max: u64) -> Result<Framing, u16> {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let req = super::super::request::parse_head(
            head.as_bytes(),
            &mut headers,
            "127.0.0.1:1".parse().unwrap(),
        )
        .unwrap();
        framing(&req, max).map_err(|e| e.status)
    }

    // BAD_INPUTS 68: a body over the limit, and lengths that disagree.
    #[test]
    fn bad_inputs_68_framing() {
        let h = |extra: &str| format!("POST / HTTP/1.1\r\nHost: a\r\n{extra}\r\n");
        assert_eq!(framing_of(&h(""), 10), Ok(Framing::Length(0)));
        assert_eq!(
            framing_of(&h("Content-Length: 5\r\n"), 10),
            Ok(Framing::Length(5))
        );
        assert_eq!(framing_of(&h("Content-Length: 11\r\n"), 10), Err(413));
        assert_eq!(
            framing_of(&h("Content-Length: 5, 5\r\nContent-Length: 5\r\n"), 10),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            framing_of(&h("Content-Length: 5\r\nContent-Length: 6\r\n"), 10),
            Err(400)
        );
        assert_eq!(framing_of(&h("Content-Length: +5\r\n"), 10), Err(400));
        assert_eq!(
            framing_of(&h("Content-Length: 99999999999999999999\r\n"), 10),
            Err(400)
        );
        assert_eq!(
            framing_of(&h("Transfer-Encoding: chunked\r\n"), 10),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            framing_of(
                &h("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
                10
            ),
            Err(400)
        );
        assert_eq!(
            framing_of(&h("Transfer-Encoding: gzip, chunked\r\n"), 10),
            Err(501)
        );
        assert_eq!(
            framing_of(&h("Transfer-Encoding: chunked, gzip\r\n"), 10),
            Err(400)
        );
        let old = "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(framing_of(old, 10), Err(400));
    }
}
