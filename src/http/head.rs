//! Where a request head ends, and the limits on it while it arrives (RFC 9112 §2.2).

use super::error::{HttpError, err};

/// Limits for the request head. Both have safe defaults in the crate config; they are passed in here.
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    /// Most bytes the whole head (request line, headers and the blank line) may take. Default 8192.
    pub max_head_bytes: usize,
    /// Most bytes the request line, its CRLF included, may take. Default 4096.
    pub max_request_line: usize,
}

/// Max header lines accepted (size of the caller's header array); more gives 431.
pub const MAX_HEADERS: usize = 64;

/// Returns the index just past `"\r\n\r\n"` if the head ends within `buf`, scanning only from
/// `from.saturating_sub(3)`.
///
/// The caller passes the buffer length of its previous (unsuccessful) call, or 0 the first time,
/// so each byte is scanned O(1) times however the head is split across reads. A `from` past the
/// end of `buf` gives `None`.
#[must_use]
pub fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    // RFC 7230 §3: the head ends with an empty line (CRLF CRLF). Three bytes of overlap cover a
    // terminator split by the previous read.
    let start = from.saturating_sub(3);
    let tail = buf.get(start..)?;
    tail.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| start + p + 4)
}

/// Checks the bytes received so far *before* the head is complete.
///
/// Returns `Err` with status 414 if there is no `"\r\n"` within the first
/// [`HeadLimits::max_request_line`](super::HeadLimits::max_request_line) bytes (once that many have arrived), and status 431 if
/// `buf.len()` exceeds [`HeadLimits::max_head_bytes`](super::HeadLimits::max_head_bytes) without a complete head. `Ok(())` otherwise:
/// keep reading.
///
/// Calling it with `&buf[..head_len]` once [`find_head_end`](super::find_head_end) succeeded applies the same limits to
/// a head that arrived in a single read. Cost per call: nothing while fewer than
/// `max_request_line` bytes have arrived, then a scan up to the first CRLF (at most
/// `max_request_line` bytes), never the whole buffer.
///
/// # Errors
///
/// [`HttpError`](super::HttpError) with status 414 or 431 as above.
pub fn check_incomplete(buf: &[u8], limits: &HeadLimits) -> Result<(), HttpError> {
    // RFC 7230 §3.1.1: a server receiving a request-target longer than it wishes to parse
    // answers 414.
    if buf.len() >= limits.max_request_line {
        let line = buf.get(..limits.max_request_line).unwrap_or(buf);
        if !line.windows(2).any(|w| w == b"\r\n") {
            return Err(err(414, "request line too long"));
        }
    }
    // RFC 6585 §5: header fields too large → 431.
    if buf.len() > limits.max_head_bytes {
        return Err(err(431, "request head too large"));
    }
    Ok(())
}
