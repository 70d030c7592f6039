//! Answers that are not an upgrade: the status line and the headers of a refusal.

use super::token::push_extra;

/// The standard reason phrase for `status` (RFC 7231 §6.1, RFC 6585), or `"Unknown"`.
#[must_use]
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Headers [`write_reject`](super::write_reject) writes itself; extras with these names are skipped.
const REJECT_RESERVED: &[&str] = &["Connection", "Content-Length", "Transfer-Encoding"];

/// Writes an error answer: the status line with the standard reason phrase,
/// `Connection: close`, `Content-Length: 0`, `Allow: GET` for 405, `Sec-WebSocket-Version: 13`
/// for 426 (RFC 6455 §4.4), then the `extra` headers, then the blank line.
///
/// A `status` outside 100..=999 is written as 500. Extra headers are filtered as in
/// [`write_accept`](super::write_accept) (unsafe ones, and `Connection` / `Content-Length` / `Transfer-Encoding`,
/// are skipped).
pub fn write_reject(out: &mut Vec<u8>, status: u16, extra: &[(String, String)]) {
    // RFC 7230 §3.1.2: status-code = 3DIGIT.
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    for digit in [status / 100, status / 10 % 10, status % 10] {
        out.push(
            b"0123456789"
                .get(usize::from(digit))
                .copied()
                .unwrap_or(b'0'),
        );
    }
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\nConnection: close\r\nContent-Length: 0\r\n");
    if status == 405 {
        // RFC 7231 §6.5.5: a 405 lists the allowed methods.
        out.extend_from_slice(b"Allow: GET\r\n");
    }
    if status == 426 {
        // RFC 6455 §4.4: tell the client which version we speak.
        out.extend_from_slice(b"Sec-WebSocket-Version: 13\r\n");
    }
    push_extra(out, extra, REJECT_RESERVED);
    out.extend_from_slice(b"\r\n");
}
