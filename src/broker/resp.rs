//! RESP2, the Redis protocol, as far as a pub/sub bridge needs it: commands written as arrays of
//! bulk strings, and replies parsed out of a buffer as they arrive (none of it is I/O). A reply
//! is bounded: a bulk string longer than the caller's limit, an array with too many elements or
//! nested too deep is an error, never an allocation of what the server claims.

/// A parsed reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    /// `+OK`
    Simple(Vec<u8>),
    /// `-ERR ...`
    Error(Vec<u8>),
    /// `:1`
    Int(i64),
    /// `$3\r\nfoo` (`None`: `$-1`)
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n...` (`None`: `*-1`)
    Array(Option<Vec<Value>>),
}

/// A reply the bridge cannot take.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadReply(pub(crate) &'static str);

/// Elements of one array at most (a subscribe confirmation has 3, a message 3 or 4).
const MAX_ELEMENTS: usize = 1024;
/// Arrays within arrays at most.
const MAX_DEPTH: usize = 4;
/// Digits of a length or integer line at most.
const MAX_LINE: usize = 32;

/// Appends a command (`args` as bulk strings) to `out`.
pub(crate) fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    out.extend_from_slice(args.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        out.extend_from_slice(a.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses one reply from the start of `buf`: `Ok(None)` while it is incomplete, else the value
/// and the bytes it took.
///
/// # Errors
/// A malformed reply, or one past the bounds (`max_bulk` bytes in one bulk string).
pub(crate) fn parse(buf: &[u8], max_bulk: usize) -> Result<Option<(Value, usize)>, BadReply> {
    let mut at = 0;
    match value(buf, &mut at, max_bulk, 0)? {
        Some(v) => Ok(Some((v, at))),
        None => Ok(None),
    }
}

/// The line at `*at` without its CRLF, moving `*at` past it.
fn line<'a>(buf: &'a [u8], at: &mut usize, max: usize) -> Result<Option<&'a [u8]>, BadReply> {
    let rest = &buf[*at..];
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(n) if n > max => Err(BadReply("a line too long")),
        Some(n) => {
            *at += n + 2;
            Ok(Some(&rest[..n]))
        }
        None if rest.len() > max + 1 => Err(BadReply("a line too long")),
        None => Ok(None),
    }
}

fn int(digits: &[u8]) -> Result<i64, BadReply> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(BadReply("a bad integer"))
}

fn value(
    buf: &[u8],
    at: &mut usize,
    max_bulk: usize,
    depth: usize,
) -> Result<Option<Value>, BadReply> {
    let Some(&kind) = buf.get(*at) else {
        return Ok(None);
    };
    let mut p = *at + 1;
    let limit = if matches!(kind, b'+' | b'-') {
        max_bulk
    } else {
        MAX_LINE
    };
    let Some(head) = line(buf, &mut p, limit)? else {
        return Ok(None);
    };
    let v = match kind {
        b'+' => Value::Simple(head.to_vec()),
        b'-' => Value::Error(head.to_vec()),
        b':' => Value::Int(int(head)?),
        b'$' => {
            let n = int(head)?;
            if n == -1 {
                Value::Bulk(None)
            } else {
                let n = usize::try_from(n).map_err(|_| BadReply("a negative length"))?;
                if n > max_bulk {
                    return Err(BadReply("a bulk string over the limit"));
                }
                if buf.len() < p + n + 2 {
                    return Ok(None);
                }
                if &buf[p + n..p + n + 2] != b"\r\n" {
                    return Err(BadReply("a bulk string without its CRLF"));
                }
                let b = buf[p..p + n].to_vec();
                p += n + 2;
                Value::Bulk(Some(b))
            }
        }
        b'*' => {
            let n = int(head)?;
            if n == -1 {
                Value::Array(None)
            } else {
                let n = usize::try_from(n).map_err(|_| BadReply("a negative length"))?;
                if n > MAX_ELEMENTS {
                    return Err(BadReply("an array over the limit"));
                }
                if depth >= MAX_DEPTH {
                    return Err(BadReply("arrays nested too deep"));
                }
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    match value(buf, &mut p, max_bulk, depth + 1)? {
                        Some(v) => items.push(v),
                        None => return Ok(None),
                    }
                }
                Value::Array(Some(items))
            }
        }
        _ => return Err(BadReply("an unknown reply type")),
    };
    *at = p;
    Ok(Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(b: &[u8]) -> Value {
        Value::Bulk(Some(b.to_vec()))
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        command(&mut out, &[b"PUBLISH", b"ch", b"a\r\nb"]);
        assert_eq!(out, b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$4\r\na\r\nb\r\n");
        // What we write, we read back.
        let (v, n) = parse(&out, 100).unwrap().unwrap();
        assert_eq!(n, out.len());
        assert_eq!(
            v,
            Value::Array(Some(vec![bulk(b"PUBLISH"), bulk(b"ch"), bulk(b"a\r\nb")]))
        );
    }

    #[test]
    fn every_reply_type_and_its_cut_prefixes() {
        let cases: [(&[u8], Value); 7] = [
            (b"+OK\r\n", Value::Simple(b"OK".to_vec())),
            (b"-ERR no\r\n", Value::Error(b"ERR no".to_vec())),
            (b":42\r\n", Value::Int(42)),
            (b"$-1\r\n", Value::Bulk(None)),
            (b"$0\r\n\r\n", bulk(b"")),
            (b"*-1\r\n", Value::Array(None)),
            (
                b"*3\r\n$7\r\nmessage\r\n$1\r\nt\r\n$2\r\nhi\r\n",
                Value::Array(Some(vec![bulk(b"message"), bulk(b"t"), bulk(b"hi")])),
            ),
        ];
        for (wire, want) in cases {
            assert_eq!(parse(wire, 100).unwrap(), Some((want, wire.len())));
            for cut in 0..wire.len() {
                assert_eq!(
                    parse(&wire[..cut], 100).unwrap(),
                    None,
                    "{wire:?} cut at {cut}"
                );
            }
        }
        // Two replies in one read: the first, then the second from where it ended.
        let two = b":1\r\n:2\r\n";
        let (v, n) = parse(two, 10).unwrap().unwrap();
        assert_eq!((v, n), (Value::Int(1), 4));
        assert_eq!(parse(&two[n..], 10).unwrap(), Some((Value::Int(2), 4)));
    }

    #[test]
    fn bad_and_oversized_replies_are_errors() {
        assert!(parse(b"$11\r\n", 10).is_err(), "bulk over the limit");
        assert!(parse(b"$2\r\nabcd", 10).is_err(), "no CRLF after the bulk");
        assert!(parse(b"$-2\r\n", 10).is_err());
        assert!(parse(b"*2000\r\n", 10).is_err(), "array over the limit");
        assert!(
            parse(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", 10).is_err(),
            "too deep"
        );
        assert!(parse(b":x\r\n", 10).is_err());
        assert!(parse(b"?\r\n", 10).is_err());
        // A length line that never ends is refused once it is longer than any length.
        assert!(parse(&[b'$'; 64], 10).is_err());
        assert_eq!(parse(b"$12", 100).unwrap(), None);
    }

    /// Random bytes and mutated valid replies: never a panic, never more taken than given, and a
    /// reply cut anywhere before its end is incomplete or an error, never a value.
    #[test]
    fn random_and_mutated_input() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let seeds: [&[u8]; 4] = [
            b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n",
            b"*3\r\n$9\r\nsubscribe\r\n$1\r\nt\r\n:1\r\n",
            b"+OK\r\n-ERR wrong\r\n:12\r\n",
            b"*2\r\n*1\r\n:1\r\n$-1\r\n",
        ];
        for round in 0..20_000 {
            let mut buf: Vec<u8> = if round % 2 == 0 {
                (0..next() % 48).map(|_| next() as u8).collect()
            } else {
                seeds[(next() % 4) as usize].to_vec()
            };
            for _ in 0..next() % 4 {
                if buf.is_empty() {
                    break;
                }
                let i = (next() as usize) % buf.len();
                buf[i] = match next() % 4 {
                    0 => b'\r',
                    1 => b'*',
                    2 => b'9',
                    _ => next() as u8,
                };
            }
            if let Ok(Some((v, n))) = parse(&buf, 64) {
                assert!(n <= buf.len());
                for cut in 0..n {
                    assert!(
                        !matches!(parse(&buf[..cut], 64), Ok(Some(_))),
                        "{buf:?} cut at {cut} parsed, whole it is {v:?}"
                    );
                }
            }
        }
    }
}
