//! Answers that are not an upgrade: the status line and the headers of a refusal.

use super::token::push_extra;

/// The standard reason phrase for `status` (RFC 9110 §15, RFC 6585), or `"Unknown"`.
#[must_use]
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
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
        411 => "Length Required",
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
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Headers the server writes itself around an answer; extras with these names are skipped.
const RESERVED: &[&str] = &["Connection", "Content-Length", "Transfer-Encoding", "Date"];

/// How an answer's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// This many bytes follow the head (for a `HEAD` request: would follow).
    Length(usize),
    /// Chunks follow (RFC 9112 §7.1), as the application produces them, until the last chunk.
    Chunked,
    /// The body runs until the connection closes (RFC 9112 §6.3, rule 8): an SSE stream, which
    /// an HTTP/1.0 hop (nginx's default to its upstreams) could not take chunked.
    UntilClose,
}

/// Writes `HTTP/1.1 <status> <reason>\r\n`. A `status` outside 100..=999 is written as 500.
fn status_line(out: &mut Vec<u8>, status: u16) {
    // RFC 9112 §4: status-code = 3DIGIT.
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    for digit in [status / 100, status / 10 % 10, status % 10] {
        out.push(b'0' + (digit % 10) as u8);
    }
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Writes an answer's head: the status line, `Date` when given (RFC 9110 §6.6.1),
/// `Connection: close` unless the connection stays open, the body's length (or
/// `Transfer-Encoding: chunked`), the `extra` headers (unsafe ones and the reserved ones
/// above skipped), and the blank line.
pub(crate) fn write_head(
    out: &mut Vec<u8>,
    status: u16,
    extra: &[(String, String)],
    body: Body,
    keep_alive: bool,
    date: Option<&[u8]>,
) {
    status_line(out, status);
    if let Some(d) = date {
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(d);
        out.extend_from_slice(b"\r\n");
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    match body {
        // RFC 9110 §8.6: no Content-Length on a 1xx or 204 answer.
        Body::Length(0) if status == 204 || (100..200).contains(&status) => {}
        Body::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Body::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Body::UntilClose => {}
    }
    push_extra(out, extra, RESERVED);
    out.extend_from_slice(b"\r\n");
}

fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends one chunk of a chunked body (RFC 9112 §7.1): its size in hex, CRLF, the bytes, CRLF.
/// An empty `bytes` writes nothing (an empty chunk would end the body).
pub(crate) fn write_chunk(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:x}\r\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk of a chunked body, with no trailer.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Writes an error answer: the status line with the standard reason phrase,
/// `Connection: close`, `Content-Length: 0`, `Allow: GET` for 405, `Sec-WebSocket-Version: 13`
/// for 426 (RFC 6455 §4.4), then the `extra` headers, then the blank line.
///
/// A `status` outside 100..=999 is written as 500. Extra headers are filtered as in
/// [`write_accept`](super::write_accept) (unsafe ones, and `Connection` / `Content-Length` /
/// `Transfer-Encoding` / `Date`, are skipped).
pub fn write_reject(out: &mut Vec<u8>, status: u16, extra: &[(String, String)]) {
    write_refusal(out, status, extra, 0, None);
}

/// [`write_reject`] for a body of `body_len` bytes (written after it by the caller) and with a
/// `Date`: the server's refusal of a request.
pub(crate) fn write_refusal(
    out: &mut Vec<u8>,
    status: u16,
    extra: &[(String, String)],
    body_len: usize,
    date: Option<&[u8]>,
) {
    let mut more = Vec::new();
    if status == 405 {
        // RFC 9110 §15.5.6: a 405 lists the allowed methods.
        more.push(("Allow".to_string(), "GET".to_string()));
    }
    if status == 426 {
        // RFC 6455 §4.4: tell the client which version we speak.
        more.push(("Sec-WebSocket-Version".to_string(), "13".to_string()));
    }
    more.extend(
        extra
            .iter()
            .filter(|(n, _)| {
                !((n.eq_ignore_ascii_case("Allow") && status == 405)
                    || (n.eq_ignore_ascii_case("Sec-WebSocket-Version") && status == 426))
            })
            .cloned(),
    );
    write_head(out, status, &more, Body::Length(body_len), false, date);
}
