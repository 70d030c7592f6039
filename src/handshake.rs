//! The HTTP/1.1 upgrade that opens a WebSocket connection (RFC 6455 §4), server side and client side.
//!
//! # Parsing without allocation
//!
//! The request head is parsed by [`httparse`] into a header array that the caller provides
//! (`[httparse::EMPTY_HEADER; MAX_HEADERS]`, on the stack or in per-reactor scratch space). Every
//! field of the resulting [`Request`] borrows the receive buffer, and the `Sec-WebSocket-Key` is
//! base64-decoded into a stack array only to check its length, so nothing on the parse path
//! allocates. Only the answers ([`write_accept`], [`write_reject`], [`write_request`]) append to a
//! caller-provided `Vec<u8>`, which the reactor copies to the socket.
//!
//! # Incremental head detection
//!
//! A head may arrive a byte at a time. After each read the reactor calls
//! [`find_head_end`] with the buffer length it had *before* that read; the search restarts only
//! three bytes before that point (a `\r\n\r\n` may straddle the boundary), so a head dribbled in
//! `n` reads costs O(bytes received) in total, not O(n²). While the head is still incomplete,
//! [`check_incomplete`] bounds it: a request line longer than
//! [`HeadLimits::max_request_line`] is answered with 414, a head longer than
//! [`HeadLimits::max_head_bytes`] with 431. Both are decided from the length received so far, so
//! memory stays bounded whatever the peer sends.
//!
//! # HTTP statuses
//!
//! | status | meaning here |
//! | --- | --- |
//! | 101 Switching Protocols | the upgrade is accepted ([`write_accept`]) |
//! | 400 Bad Request | malformed head, HTTP/1.0, missing or duplicated `Host`, `Upgrade` without `websocket`, `Connection` without `upgrade`, or a missing, duplicated or malformed `Sec-WebSocket-Key` |
//! | 403 Forbidden | chosen by the application (e.g. an `Origin` it does not allow) |
//! | 405 Method Not Allowed | the method is not `GET`; the answer carries `Allow: GET` |
//! | 414 URI Too Long | the request line is longer than [`HeadLimits::max_request_line`] |
//! | 426 Upgrade Required | `Sec-WebSocket-Version` missing or not `13`; the answer carries `Sec-WebSocket-Version: 13` (RFC 6455 §4.4) |
//! | 431 Request Header Fields Too Large | the head is longer than [`HeadLimits::max_head_bytes`], or has more than [`MAX_HEADERS`] header lines |
//!
//! Every refusal written by [`write_reject`] carries `Connection: close` and
//! `Content-Length: 0`; the connection is closed after it is sent.

use std::fmt;
use std::net::SocketAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

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

/// Why an upgrade request (or, on the client side, a response) is refused, with the HTTP status.
///
/// On the server side `status` is the status to answer with [`write_reject`]. On the client side
/// ([`parse_response`]) it is the status the server sent, or 0 when none could be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpError {
    /// HTTP status code.
    pub status: u16,
    /// What was wrong, in words (for logs; the wire carries the standard reason phrase).
    pub reason: &'static str,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}: {}", self.status, self.reason)
    }
}

impl std::error::Error for HttpError {}

const fn err(status: u16, reason: &'static str) -> HttpError {
    HttpError { status, reason }
}

/// The GUID appended to the key before hashing (RFC 6455 §1.3, §4.2.2).
const WS_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// ---------------------------------------------------------------------------------------------
// Head framing and limits
// ---------------------------------------------------------------------------------------------

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
/// [`HeadLimits::max_request_line`] bytes (once that many have arrived), and status 431 if
/// `buf.len()` exceeds [`HeadLimits::max_head_bytes`] without a complete head. `Ok(())` otherwise:
/// keep reading.
///
/// Calling it with `&buf[..head_len]` once [`find_head_end`] succeeded applies the same limits to
/// a head that arrived in a single read. Cost per call: nothing while fewer than
/// `max_request_line` bytes have arrived, then a scan up to the first CRLF (at most
/// `max_request_line` bytes), never the whole buffer.
///
/// # Errors
///
/// [`HttpError`] with status 414 or 431 as above.
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

// ---------------------------------------------------------------------------------------------
// Small lexical helpers (RFC 7230 §3.2.6)
// ---------------------------------------------------------------------------------------------

/// RFC 7230 §3.2.6 `tchar`.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// RFC 7230 §3.2.6 `token = 1*tchar`.
fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Strips RFC 7230 §3.2.3 OWS (spaces and tabs) from both ends.
fn trim_ows(s: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !is_ows(b)).map_or(start, |p| p + 1);
    s.get(start..end).unwrap_or(&[])
}

/// Items of an RFC 7230 §7 comma-separated list, trimmed, empty items skipped.
fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|item| !item.is_empty())
}

/// Values of every header named `name` (field names are case-insensitive, RFC 7230 §3.2).
fn header_values<'a>(
    headers: &'a [httparse::Header<'a>],
    name: &'static str,
) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// Whether any `name` header holds `token` (case-insensitive) in its comma list.
fn list_has_token(headers: &[httparse::Header<'_>], name: &'static str, token: &str) -> bool {
    header_values(headers, name)
        .flat_map(list_items)
        .any(|item| item.eq_ignore_ascii_case(token.as_bytes()))
}

/// The one value of a header that must appear exactly once: `Ok(None)` if absent,
/// `Err(())` if repeated.
fn single_value<'a>(
    headers: &'a [httparse::Header<'a>],
    name: &'static str,
) -> Result<Option<&'a [u8]>, ()> {
    let mut values = header_values(headers, name);
    let first = values.next();
    if values.next().is_some() {
        return Err(());
    }
    Ok(first)
}

/// Whether `value` may go on the wire as a field-value: no CTL but HTAB (RFC 7230 §3.2), so
/// no CR or LF can start a new header line.
fn is_safe_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Appends `name: value\r\n` if both are safe; returns whether it was written.
fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) -> bool {
    if !is_token(name.as_bytes()) || !is_safe_value(value) {
        return false;
    }
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
    true
}

/// Appends the application's extra headers, skipping unsafe ones and the ones in `reserved`
/// (which this module writes itself, and which a duplicate would make ambiguous).
fn push_extra(out: &mut Vec<u8>, extra: &[(String, String)], reserved: &[&str]) {
    for (name, value) in extra {
        if reserved.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            continue;
        }
        push_header(out, name, value.as_bytes());
    }
}

// ---------------------------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------------------------

/// A validated upgrade request, borrowing the receive buffer. Shown to the application's
/// `on_upgrade`.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    method: &'a str,
    target: &'a str,
    headers: &'a [httparse::Header<'a>],
    key: &'a [u8],
    peer: SocketAddr,
}

impl<'a> Request<'a> {
    /// The request method (always `GET` once validated).
    #[must_use]
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The raw request-target, e.g. `/chat?room=1`.
    #[must_use]
    pub fn target(&self) -> &'a str {
        self.target
    }

    /// The request-target before the first `?`.
    #[must_use]
    pub fn path(&self) -> &'a str {
        self.target
            .split_once('?')
            .map_or(self.target, |(path, _)| path)
    }

    /// The request-target after the first `?`, if there is one (possibly empty).
    #[must_use]
    pub fn query(&self) -> Option<&'a str> {
        self.target.split_once('?').map(|(_, query)| query)
    }

    /// The value of the first header named `name` (ASCII case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// Every header line, in order, as `(name, value)`.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        self.headers.iter().map(|h| (h.name, h.value))
    }

    /// The `Origin` header (RFC 6455 §4.2.1 item 7, RFC 6454), if present and valid UTF-8.
    #[must_use]
    pub fn origin(&self) -> Option<&'a str> {
        self.header("Origin")
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The `Host` header (validated present exactly once), if valid UTF-8.
    #[must_use]
    pub fn host(&self) -> Option<&'a str> {
        self.header("Host")
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The `Sec-WebSocket-Key` as sent, without surrounding whitespace (validated: 24 base64
    /// characters decoding to 16 bytes). Pass it to [`write_accept`].
    #[must_use]
    pub fn key(&self) -> &'a [u8] {
        self.key
    }

    /// Offered subprotocols (RFC 6455 §4.2.1 item 8, §11.3.4): every `Sec-WebSocket-Protocol`
    /// header, split on `,`, trimmed, empty items skipped; only items that are valid HTTP tokens
    /// (RFC 7230 `tchar`) are yielded.
    pub fn protocols(&self) -> impl Iterator<Item = &'a str> + '_ {
        header_values(self.headers, "Sec-WebSocket-Protocol")
            .flat_map(list_items)
            .filter(|item| is_token(item))
            .filter_map(|item| std::str::from_utf8(item).ok())
    }

    /// Raw `Sec-WebSocket-Extensions` header values, every occurrence (RFC 6455 §9.1), for the
    /// extension negotiation.
    pub fn extensions(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        header_values(self.headers, "Sec-WebSocket-Extensions")
    }

    /// The address of the peer that sent the request.
    #[must_use]
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }
}

/// Whether `key` is a valid `Sec-WebSocket-Key`: base64 (standard alphabet, padded) of exactly
/// 16 bytes. Decodes into a stack array; nothing is allocated.
fn is_valid_key(key: &[u8]) -> bool {
    // RFC 6455 §4.1 item 7 / §4.2.1 item 5: a base64-encoded 16-byte nonce is always 24
    // characters, so anything else (empty, 18 bytes, megabytes) fails before decoding.
    if key.len() != 24 {
        return false;
    }
    let mut raw = [0u8; 18];
    matches!(STANDARD.decode_slice(key, &mut raw), Ok(16))
}

/// Parses and validates a complete request head.
///
/// `buf` is `&buf[..head_len]` where `head_len` came from [`find_head_end`] (trailing bytes, such
/// as a pipelined first frame, are ignored anyway). `headers` is the caller's array, e.g.
/// `[httparse::EMPTY_HEADER; MAX_HEADERS]`. Nothing is allocated.
///
/// Checks, in order: the head parses (400; 431 for more header lines than `headers` holds); the
/// method is `GET` (405); the version is HTTP/1.1 (400); `Host` is present exactly once (400);
/// `Upgrade` lists `websocket` (400); `Connection` lists `upgrade` (400);
/// `Sec-WebSocket-Version` is `13` (426); `Sec-WebSocket-Key` is present once and is the base64 of
/// 16 bytes (400).
///
/// # Errors
///
/// [`HttpError`] with the status to answer through [`write_reject`].
pub fn parse_request<'a>(
    buf: &'a [u8],
    headers: &'a mut [httparse::Header<'a>],
    peer: SocketAddr,
) -> Result<Request<'a>, HttpError> {
    let mut req = httparse::Request::new(headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        // The caller passes a head that find_head_end saw complete; httparse disagreeing means
        // the head is malformed (RFC 7230 §3.5: answer 400).
        Ok(httparse::Status::Partial) => return Err(err(400, "incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => return Err(err(431, "too many header lines")),
        Err(_) => return Err(err(400, "malformed request head")),
    }
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    let version = req.version.unwrap_or(0);
    let headers: &'a [httparse::Header<'a>] = req.headers;

    // RFC 6455 §4.2.1 item 1: the method must be GET (RFC 7231 §6.5.5: 405 with Allow).
    if method != "GET" {
        return Err(err(405, "method is not GET"));
    }
    // RFC 6455 §4.2.1 item 1: HTTP/1.1 or higher.
    if version != 1 {
        return Err(err(400, "HTTP version is not 1.1"));
    }
    // RFC 6455 §4.2.1 item 2; RFC 7230 §5.4: missing or repeated Host → 400.
    match single_value(headers, "Host") {
        Ok(Some(_)) => {}
        Ok(None) => return Err(err(400, "missing Host header")),
        Err(()) => return Err(err(400, "duplicated Host header")),
    }
    // RFC 6455 §4.2.1 item 3: Upgrade lists "websocket", case-insensitively.
    if !list_has_token(headers, "Upgrade", "websocket") {
        return Err(err(400, "Upgrade header does not name websocket"));
    }
    // RFC 6455 §4.2.1 item 4: Connection lists the token "Upgrade", case-insensitively.
    if !list_has_token(headers, "Connection", "upgrade") {
        return Err(err(400, "Connection header lacks the upgrade token"));
    }
    // RFC 6455 §4.2.1 item 6 and §4.4: Sec-WebSocket-Version must be 13, once; else 426.
    match single_value(headers, "Sec-WebSocket-Version") {
        Ok(Some(v)) if trim_ows(v) == b"13" => {}
        Ok(None) => return Err(err(426, "missing Sec-WebSocket-Version")),
        _ => return Err(err(426, "unsupported Sec-WebSocket-Version")),
    }
    // RFC 6455 §4.2.1 item 5: Sec-WebSocket-Key, once, base64 of 16 bytes.
    let key = match single_value(headers, "Sec-WebSocket-Key") {
        Ok(Some(v)) => trim_ows(v),
        Ok(None) => return Err(err(400, "missing Sec-WebSocket-Key")),
        Err(()) => return Err(err(400, "duplicated Sec-WebSocket-Key")),
    };
    if !is_valid_key(key) {
        return Err(err(400, "Sec-WebSocket-Key is not base64 of 16 bytes"));
    }

    Ok(Request {
        method,
        target,
        headers,
        key,
        peer,
    })
}

/// `Sec-WebSocket-Accept`: base64(SHA-1(key ++ "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), 28
/// ASCII bytes (RFC 6455 §4.2.2 item 5.4).
#[must_use]
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key);
    sha.update(WS_GUID);
    let digest = sha.digest().bytes();
    let mut out = [0u8; 28];
    // 20 bytes encode to exactly 28 padded characters, so this cannot fail.
    let _ = STANDARD.encode_slice(digest, &mut out);
    out
}

/// Headers [`write_accept`] writes itself; extras with these names are skipped.
const ACCEPT_RESERVED: &[&str] = &[
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "Content-Length",
    "Transfer-Encoding",
];

/// Writes the `101 Switching Protocols` answer (RFC 6455 §4.2.2 item 5).
///
/// Writes `Upgrade: websocket`, `Connection: Upgrade`, `Sec-WebSocket-Accept` computed from `key`
/// (as returned by [`Request::key`]), then `Sec-WebSocket-Protocol` if `protocol` is given and is a
/// token, `Sec-WebSocket-Extensions` if `extensions` is given, the `extra` headers, and the blank
/// line.
///
/// Any header whose name is not a token or whose value holds a control character (CR, LF, NUL…)
/// is skipped, never written, so application data cannot inject header lines. Extra headers that
/// would duplicate one written here (`Upgrade`, `Connection`, `Sec-WebSocket-*`,
/// `Content-Length`, `Transfer-Encoding`) are skipped too.
pub fn write_accept(
    out: &mut Vec<u8>,
    key: &[u8],
    protocol: Option<&str>,
    extensions: Option<&str>,
    extra: &[(String, String)],
) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    );
    push_header(out, "Sec-WebSocket-Accept", &accept_key(key));
    // RFC 6455 §4.2.2 item 5.5 / §11.3.4: the selected subprotocol is a single token.
    if let Some(p) = protocol.filter(|p| is_token(p.as_bytes())) {
        push_header(out, "Sec-WebSocket-Protocol", p.as_bytes());
    }
    // RFC 6455 §4.2.2 item 5.6 / §9.1.
    if let Some(e) = extensions {
        push_header(out, "Sec-WebSocket-Extensions", e.as_bytes());
    }
    push_extra(out, extra, ACCEPT_RESERVED);
    out.extend_from_slice(b"\r\n");
}

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

/// Headers [`write_reject`] writes itself; extras with these names are skipped.
const REJECT_RESERVED: &[&str] = &["Connection", "Content-Length", "Transfer-Encoding"];

/// Writes an error answer: the status line with the standard reason phrase,
/// `Connection: close`, `Content-Length: 0`, `Allow: GET` for 405, `Sec-WebSocket-Version: 13`
/// for 426 (RFC 6455 §4.4), then the `extra` headers, then the blank line.
///
/// A `status` outside 100..=999 is written as 500. Extra headers are filtered as in
/// [`write_accept`] (unsafe ones, and `Connection` / `Content-Length` / `Transfer-Encoding`,
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

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

/// Encodes 16 raw (random) bytes as the 24-character `Sec-WebSocket-Key` (RFC 6455 §4.1 item 7).
#[must_use]
pub fn encode_key(raw: [u8; 16]) -> [u8; 24] {
    let mut out = [0u8; 24];
    // 16 bytes encode to exactly 24 padded characters, so this cannot fail.
    let _ = STANDARD.encode_slice(raw, &mut out);
    out
}

/// Appends the bytes of `s` that are visible ASCII, dropping spaces and control characters.
fn push_visible(out: &mut Vec<u8>, s: &str) {
    out.extend(s.bytes().filter(u8::is_ascii_graphic));
}

/// Appends `path` as a request-target, percent-encoding what may not appear there raw (RFC 3986
/// §2.1; RFC 6455 §3: `#` must be escaped). An empty path becomes `/`.
fn push_target(out: &mut Vec<u8>, path: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if path.is_empty() {
        out.push(b'/');
        return;
    }
    for b in path.bytes() {
        if b.is_ascii_graphic() && b != b'#' {
            out.push(b);
        } else {
            out.push(b'%');
            out.push(HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'));
            out.push(HEX.get(usize::from(b & 0x0f)).copied().unwrap_or(b'0'));
        }
    }
}

/// Writes a `GET` upgrade request (RFC 6455 §4.1) for `host` (the `Host` header value) and `path`
/// (the request-target, e.g. `/chat?room=1`), with `key` from [`encode_key`] (24 base64
/// characters), the subprotocols to offer (only tokens are written; no header if none) and an
/// optional `Sec-WebSocket-Extensions` offer.
///
/// Bytes that could break the request line or inject headers are neutralised: the path is
/// percent-encoded where needed, spaces and control characters are dropped from `host` and
/// `key`, and an `extensions` value holding a control character is not written.
pub fn write_request(
    out: &mut Vec<u8>,
    host: &str,
    path: &str,
    key: &str,
    protocols: &[&str],
    extensions: Option<&str>,
) {
    // RFC 6455 §4.1 items 1–2: GET, HTTP/1.1, the resource name as request-target.
    out.extend_from_slice(b"GET ");
    push_target(out, path);
    // RFC 6455 §4.1 item 4: Host.
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    push_visible(out, host);
    // RFC 6455 §4.1 items 5–7 and 9.
    out.extend_from_slice(b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
    push_visible(out, key);
    out.extend_from_slice(b"\r\nSec-WebSocket-Version: 13\r\n");
    // RFC 6455 §4.1 item 10: a comma list of tokens.
    let mut first = true;
    for p in protocols.iter().filter(|p| is_token(p.as_bytes())) {
        out.extend_from_slice(if first {
            b"Sec-WebSocket-Protocol: ".as_slice()
        } else {
            b", ".as_slice()
        });
        out.extend_from_slice(p.as_bytes());
        first = false;
    }
    if !first {
        out.extend_from_slice(b"\r\n");
    }
    // RFC 6455 §4.1 item 11.
    if let Some(e) = extensions {
        push_header(out, "Sec-WebSocket-Extensions", e.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// What the server answered, after validation by [`parse_response`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    /// The subprotocol the server selected (`Sec-WebSocket-Protocol`), if any. The caller must
    /// check it is one it offered (RFC 6455 §4.1, client step 6).
    pub protocol: Option<&'a str>,
    /// The raw `Sec-WebSocket-Extensions` value, if any. The caller must check it only names
    /// extensions it offered (RFC 6455 §4.1, client step 5).
    pub extensions: Option<&'a [u8]>,
}

/// Parses a complete response head (RFC 6455 §4.1, the client's checks of the server's answer):
/// it must be status 101, with `Upgrade: websocket`, `Connection: upgrade` and
/// `Sec-WebSocket-Accept` equal to [`accept_key`]`(key)`, where `key` is the key that was sent.
/// At most one `Sec-WebSocket-Protocol` header, holding a single token, and at most one
/// `Sec-WebSocket-Extensions` header are accepted. Nothing is allocated.
///
/// # Errors
///
/// [`HttpError`] whose `status` is the status the server sent (101 when a later check failed),
/// or 0 when the head could not be parsed.
pub fn parse_response<'a>(
    buf: &'a [u8],
    headers: &'a mut [httparse::Header<'a>],
    key: &[u8],
) -> Result<Response<'a>, HttpError> {
    let mut res = httparse::Response::new(headers);
    match res.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(err(0, "incomplete response head")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(err(0, "too many header lines in response"));
        }
        Err(_) => return Err(err(0, "malformed response head")),
    }
    let status = res.code.unwrap_or(0);
    let headers: &'a [httparse::Header<'a>] = res.headers;

    // RFC 6455 §4.1 client step 1: anything but 101 is not an upgrade.
    if status != 101 {
        return Err(err(status, "server did not switch protocols"));
    }
    // RFC 6455 §4.1 client step 2.
    if !list_has_token(headers, "Upgrade", "websocket") {
        return Err(err(101, "response Upgrade header does not name websocket"));
    }
    // RFC 6455 §4.1 client step 3.
    if !list_has_token(headers, "Connection", "upgrade") {
        return Err(err(
            101,
            "response Connection header lacks the upgrade token",
        ));
    }
    // RFC 6455 §4.1 client step 4.
    match single_value(headers, "Sec-WebSocket-Accept") {
        Ok(Some(v)) if trim_ows(v) == accept_key(key).as_slice() => {}
        Ok(None) => return Err(err(101, "missing Sec-WebSocket-Accept")),
        _ => return Err(err(101, "wrong Sec-WebSocket-Accept")),
    }
    // RFC 6455 §4.1 client step 6 / §4.2.2 item 5.5: one selected token at most.
    let protocol = match single_value(headers, "Sec-WebSocket-Protocol") {
        Ok(None) => None,
        Ok(Some(v)) => match std::str::from_utf8(trim_ows(v)) {
            Ok(p) if is_token(p.as_bytes()) => Some(p),
            _ => return Err(err(101, "Sec-WebSocket-Protocol is not a single token")),
        },
        Err(()) => return Err(err(101, "duplicated Sec-WebSocket-Protocol")),
    };
    // RFC 6455 §4.1 client step 5. A split list would not fit `Response`, and accepting part of
    // it would hide an extension in use, so a second header fails the handshake.
    let extensions = match single_value(headers, "Sec-WebSocket-Extensions") {
        Ok(v) => v.map(trim_ows),
        Err(()) => return Err(err(101, "more than one Sec-WebSocket-Extensions header")),
    };

    Ok(Response {
        protocol,
        extensions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_head_bytes: 8192,
        max_request_line: 4096,
    };

    fn peer() -> SocketAddr {
        "192.0.2.7:40123".parse().unwrap()
    }

    const VALID: &str = "GET /chat?room=1&x=y HTTP/1.1\r\n\
        Host: example.com:8080\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\n\
        Sec-WebSocket-Protocol: a, b\r\n\
        Sec-WebSocket-Protocol: c\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    /// The valid request with header line `name` removed (all occurrences) and `add` lines added.
    fn build(remove: &[&str], add: &[&str]) -> String {
        let mut s = String::new();
        for line in VALID.split("\r\n").filter(|l| !l.is_empty()) {
            let name = line.split(':').next().unwrap();
            if remove.iter().any(|r| r.eq_ignore_ascii_case(name)) {
                continue;
            }
            s.push_str(line);
            s.push_str("\r\n");
        }
        for line in add {
            s.push_str(line);
            s.push_str("\r\n");
        }
        s.push_str("\r\n");
        s
    }

    /// Parses `head` and returns only the error status (or 101 on success).
    fn status_of(head: &[u8]) -> u16 {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match parse_request(head, &mut headers, peer()) {
            Ok(_) => 101,
            Err(e) => e.status,
        }
    }

    /// Parses `head`, which must be refused, and returns the refusal's reason.
    fn reason_of(head: &[u8]) -> &'static str {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        parse_request(head, &mut headers, peer())
            .unwrap_err()
            .reason
    }

    fn text(v: &[u8]) -> &str {
        std::str::from_utf8(v).unwrap()
    }

    #[test]
    fn valid_request_parses() {
        let head = VALID.as_bytes();
        assert_eq!(find_head_end(head, 0), Some(head.len()));
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let req = parse_request(head, &mut headers, peer()).unwrap();
        assert_eq!(req.method(), "GET");
        assert_eq!(req.target(), "/chat?room=1&x=y");
        assert_eq!(req.path(), "/chat");
        assert_eq!(req.query(), Some("room=1&x=y"));
        assert_eq!(req.host(), Some("example.com:8080"));
        assert_eq!(req.origin(), Some("http://example.com"));
        assert_eq!(req.key(), b"dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(req.header("UPGRADE"), Some(b"websocket".as_slice()));
        assert_eq!(req.header("X-Missing"), None);
        assert_eq!(req.protocols().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(
            req.extensions().collect::<Vec<_>>(),
            [b"permessage-deflate; client_max_window_bits".as_slice()]
        );
        assert_eq!(req.headers().count(), 9);
        assert_eq!(
            req.headers().next(),
            Some(("Host", b"example.com:8080".as_slice()))
        );
        assert_eq!(req.peer_addr(), peer());
    }

    #[test]
    fn path_without_query() {
        let head = VALID.replace("/chat?room=1&x=y", "/plain");
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let req = parse_request(head.as_bytes(), &mut headers, peer()).unwrap();
        assert_eq!(req.path(), "/plain");
        assert_eq!(req.query(), None);
    }

    // --- BAD_INPUTS 1: method, version, Host (RFC 6455 §4.2.1 items 1-2) ---

    #[test]
    fn bad_inputs_1_method_post_405_with_allow() {
        let head = VALID.replacen("GET", "POST", 1);
        assert_eq!(status_of(head.as_bytes()), 405);
        let mut out = Vec::new();
        write_reject(&mut out, 405, &[]);
        assert!(text(&out).starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(text(&out).contains("\r\nAllow: GET\r\n"));
    }

    #[test]
    fn bad_inputs_1_method_is_case_sensitive() {
        // RFC 7230 §3.1.1: the method token is case-sensitive.
        assert_eq!(status_of(VALID.replacen("GET", "get", 1).as_bytes()), 405);
    }

    #[test]
    fn bad_inputs_1_http10_400() {
        let head = VALID.replacen("HTTP/1.1", "HTTP/1.0", 1);
        assert_eq!(status_of(head.as_bytes()), 400);
    }

    #[test]
    fn bad_inputs_1_missing_host_400() {
        assert_eq!(status_of(build(&["Host"], &[]).as_bytes()), 400);
        assert_eq!(
            reason_of(build(&["Host"], &[]).as_bytes()),
            "missing Host header"
        );
    }

    #[test]
    fn bad_inputs_1_duplicated_host_400() {
        // RFC 7230 §5.4: more than one Host → 400 (our choice follows the MUST there).
        let head = build(&[], &["host: other.example"]);
        assert_eq!(status_of(head.as_bytes()), 400);
    }

    #[test]
    fn bad_inputs_1_malformed_and_partial_400() {
        assert_eq!(status_of(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"), 400);
        assert_eq!(status_of(b"\x00\x01\x02\r\n\r\n"), 400);
        assert_eq!(status_of(b"GET / HTTP/1.1\r\nHost: x\r\n"), 400);
        assert_eq!(status_of(b""), 400);
        assert_eq!(status_of(b"GET / HTTP/2.0\r\n\r\n"), 400);
    }

    // --- BAD_INPUTS 2: Upgrade and Connection (RFC 6455 §4.2.1 items 3-4) ---

    #[test]
    fn bad_inputs_2_upgrade_missing_400() {
        assert_eq!(status_of(build(&["Upgrade"], &[]).as_bytes()), 400);
    }

    #[test]
    fn bad_inputs_2_upgrade_not_websocket_400() {
        let head = build(&["Upgrade"], &["Upgrade: h2c, websocketx"]);
        assert_eq!(status_of(head.as_bytes()), 400);
        assert_eq!(
            reason_of(head.as_bytes()),
            "Upgrade header does not name websocket"
        );
    }

    #[test]
    fn bad_inputs_2_upgrade_case_insensitive_list_passes() {
        let head = build(&["Upgrade"], &["Upgrade: h2c,  WebSocket "]);
        assert_eq!(status_of(head.as_bytes()), 101);
    }

    #[test]
    fn bad_inputs_2_connection_keep_alive_upgrade_passes() {
        let head = build(&["Connection"], &["Connection: keep-alive, Upgrade"]);
        assert_eq!(status_of(head.as_bytes()), 101);
        // The list may also be split over several header lines (RFC 7230 §3.2.2).
        let head = build(
            &["Connection"],
            &["Connection: keep-alive", "connection: UPGRADE"],
        );
        assert_eq!(status_of(head.as_bytes()), 101);
    }

    #[test]
    fn bad_inputs_2_connection_upgradefoo_400() {
        let head = build(&["Connection"], &["Connection: upgradefoo"]);
        assert_eq!(status_of(head.as_bytes()), 400);
        assert_eq!(
            reason_of(head.as_bytes()),
            "Connection header lacks the upgrade token"
        );
        let head = build(&["Connection"], &["Connection: keep-alive"]);
        assert_eq!(status_of(head.as_bytes()), 400);
        assert_eq!(status_of(build(&["Connection"], &[]).as_bytes()), 400);
    }

    // --- BAD_INPUTS 3: Sec-WebSocket-Key (RFC 6455 §4.2.1 item 5) ---

    /// The status for the valid request with its key line replaced; checks the refusal is
    /// about the key.
    fn key_status(key_line: &str) -> u16 {
        let head = build(&["Sec-WebSocket-Key"], &[key_line]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match parse_request(head.as_bytes(), &mut headers, peer()) {
            Ok(_) => 101,
            Err(e) => {
                assert!(e.reason.contains("Sec-WebSocket-Key"), "{e}");
                e.status
            }
        }
    }

    #[test]
    fn bad_inputs_3_key_missing_400() {
        assert_eq!(
            status_of(build(&["Sec-WebSocket-Key"], &[]).as_bytes()),
            400
        );
    }

    #[test]
    fn bad_inputs_3_key_duplicated_400() {
        let head = build(&[], &["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="]);
        assert_eq!(status_of(head.as_bytes()), 400);
        assert_eq!(reason_of(head.as_bytes()), "duplicated Sec-WebSocket-Key");
    }

    #[test]
    fn bad_inputs_3_key_not_base64_400() {
        assert_eq!(
            key_status("Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!=="),
            400
        );
        // URL-safe alphabet is not the standard one.
        assert_eq!(
            key_status("Sec-WebSocket-Key: ______________________=="),
            400
        );
        // Non-canonical trailing bits.
        assert_eq!(
            key_status("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR=="),
            400
        );
        // Padding missing (22 chars).
        assert_eq!(key_status("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ"), 400);
    }

    #[test]
    fn bad_inputs_3_key_empty_400() {
        assert_eq!(key_status("Sec-WebSocket-Key:"), 400);
        assert_eq!(key_status("Sec-WebSocket-Key:    "), 400);
    }

    #[test]
    fn bad_inputs_3_key_18_bytes_400() {
        // 24 characters without padding decode to 18 bytes.
        assert_eq!(
            key_status("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAA"),
            400
        );
    }

    #[test]
    fn bad_inputs_3_key_2mb_400() {
        let line = format!("Sec-WebSocket-Key: {}", "A".repeat(2 << 20));
        assert_eq!(key_status(&line), 400);
    }

    #[test]
    fn bad_inputs_3_key_with_whitespace_is_trimmed() {
        let head = build(
            &["Sec-WebSocket-Key"],
            &["Sec-WebSocket-Key: \t dGhlIHNhbXBsZSBub25jZQ== "],
        );
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let req = parse_request(head.as_bytes(), &mut headers, peer()).unwrap();
        assert_eq!(req.key(), b"dGhlIHNhbXBsZSBub25jZQ==");
    }

    // --- BAD_INPUTS 4: Sec-WebSocket-Version (RFC 6455 §4.2.1 item 6, §4.4) ---

    #[test]
    fn bad_inputs_4_version_missing_426() {
        let head = build(&["Sec-WebSocket-Version"], &[]);
        assert_eq!(status_of(head.as_bytes()), 426);
    }

    #[test]
    fn bad_inputs_4_version_8_426_with_version_header() {
        let head = build(&["Sec-WebSocket-Version"], &["Sec-WebSocket-Version: 8"]);
        assert_eq!(status_of(head.as_bytes()), 426);
        let head = build(
            &["Sec-WebSocket-Version"],
            &["Sec-WebSocket-Version: 13, 8"],
        );
        assert_eq!(status_of(head.as_bytes()), 426);
        let head = build(&[], &["Sec-WebSocket-Version: 13"]);
        assert_eq!(status_of(head.as_bytes()), 426, "repeated version");
        let mut out = Vec::new();
        write_reject(&mut out, 426, &[]);
        assert!(text(&out).starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(text(&out).contains("\r\nSec-WebSocket-Version: 13\r\n"));
    }

    #[test]
    fn bad_inputs_4_check_order() {
        // Version is checked before the key...
        let head = build(&["Sec-WebSocket-Version", "Sec-WebSocket-Key"], &[]);
        assert_eq!(status_of(head.as_bytes()), 426);
        // ...and after Upgrade/Connection...
        let head = build(&["Sec-WebSocket-Version", "Upgrade"], &[]);
        assert_eq!(status_of(head.as_bytes()), 400);
        // ...which come after the method.
        let head = build(&["Upgrade"], &[]).replacen("GET", "PUT", 1);
        assert_eq!(status_of(head.as_bytes()), 405);
    }

    // --- BAD_INPUTS 6: subprotocol offers ---

    #[test]
    fn bad_inputs_6_protocol_garbage_items_skipped() {
        let head = build(
            &["Sec-WebSocket-Protocol"],
            &[
                "Sec-WebSocket-Protocol: , a b, \"q\", ok ,,",
                "Sec-WebSocket-Protocol: x/y, chat.v2",
            ],
        );
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let req = parse_request(head.as_bytes(), &mut headers, peer()).unwrap();
        assert_eq!(req.protocols().collect::<Vec<_>>(), ["ok", "chat.v2"]);
    }

    // --- BAD_INPUTS 8: oversized heads ---

    #[test]
    fn bad_inputs_8_request_line_1mb_414() {
        let mut buf = b"GET /".to_vec();
        buf.resize(1 << 20, b'a');
        assert_eq!(find_head_end(&buf, 0), None);
        assert_eq!(check_incomplete(&buf, &LIMITS).unwrap_err().status, 414);
        // Just under the limit (no CRLF yet) is still acceptable.
        assert_eq!(
            check_incomplete(&buf[..LIMITS.max_request_line - 1], &LIMITS),
            Ok(())
        );
        assert_eq!(
            check_incomplete(&buf[..LIMITS.max_request_line], &LIMITS)
                .unwrap_err()
                .status,
            414
        );
    }

    #[test]
    fn bad_inputs_8_single_header_20mb_431() {
        let mut buf = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        buf.resize(20 << 20, b'b');
        assert_eq!(find_head_end(&buf, 0), None);
        assert_eq!(check_incomplete(&buf, &LIMITS).unwrap_err().status, 431);
    }

    #[test]
    fn bad_inputs_8_ten_thousand_headers_431() {
        let mut buf = b"GET / HTTP/1.1\r\n".to_vec();
        for _ in 0..10_000 {
            buf.extend_from_slice(b"X-a: b\r\n");
        }
        assert_eq!(find_head_end(&buf, 0), None);
        assert_eq!(check_incomplete(&buf, &LIMITS).unwrap_err().status, 431);
    }

    #[test]
    fn bad_inputs_8_hundred_headers_too_many_431() {
        let limits = HeadLimits {
            max_head_bytes: 1 << 20,
            max_request_line: 4096,
        };
        let mut buf = build(&[], &[]).into_bytes();
        buf.truncate(buf.len() - 2);
        for _ in 0..100 {
            buf.extend_from_slice(b"X-a: b\r\n");
        }
        buf.extend_from_slice(b"\r\n");
        let end = find_head_end(&buf, 0).unwrap();
        assert_eq!(end, buf.len());
        assert_eq!(check_incomplete(&buf[..end], &limits), Ok(()));
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let e = parse_request(&buf[..end], &mut headers, peer()).unwrap_err();
        assert_eq!(e.status, 431);
    }

    #[test]
    fn bad_inputs_8_short_partial_head_is_ok() {
        assert_eq!(check_incomplete(b"", &LIMITS), Ok(()));
        assert_eq!(check_incomplete(b"GET / HT", &LIMITS), Ok(()));
        assert_eq!(check_incomplete(&VALID.as_bytes()[..50], &LIMITS), Ok(()));
    }

    // --- BAD_INPUTS 9: dribbled heads ---

    #[test]
    fn bad_inputs_9_find_head_end_byte_at_a_time() {
        let long = build(
            &[],
            &["X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"],
        );
        let heads: [&[u8]; 5] = [
            VALID.as_bytes(),
            b"GET / HTTP/1.1\r\n\r\n",
            b"\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\r\n\r\nframe-bytes\r\n\r\n",
            long.as_bytes(),
        ];
        for head in heads {
            let whole = find_head_end(head, 0);
            assert!(whole.is_some());
            let mut dribbled = None;
            let mut prev = 0;
            for len in 1..=head.len() {
                if let Some(end) = find_head_end(&head[..len], prev) {
                    dribbled = Some(end);
                    break;
                }
                assert_eq!(check_incomplete(&head[..len], &LIMITS), Ok(()));
                prev = len;
            }
            assert_eq!(dribbled, whole);
            // Chunks of 3 bytes give the same answer too.
            let mut chunked = None;
            let mut prev = 0;
            let mut len = 0;
            while len < head.len() {
                len = (len + 3).min(head.len());
                if let Some(end) = find_head_end(&head[..len], prev) {
                    chunked = Some(end);
                    break;
                }
                prev = len;
            }
            assert_eq!(chunked, whole);
        }
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r", 0), None);
        assert_eq!(find_head_end(b"abc", 10), None);
    }

    // --- BAD_INPUTS 11: frame bytes pipelined after the head ---

    #[test]
    fn bad_inputs_11_pipelined_frame_bytes_untouched() {
        let mut buf = VALID.as_bytes().to_vec();
        let frame = [0x81u8, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
        buf.extend_from_slice(&frame);
        let end = find_head_end(&buf, 0).unwrap();
        assert_eq!(end, VALID.len());
        assert_eq!(&buf[end..], frame);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert!(parse_request(&buf[..end], &mut headers, peer()).is_ok());
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert!(parse_request(&buf, &mut headers, peer()).is_ok());
    }

    // --- Answers ---

    #[test]
    fn rfc6455_1_3_accept_vector() {
        // RFC 6455 §1.3: "dGhlIHNhbXBsZSBub25jZQ==" → "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
        assert_eq!(
            &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn write_accept_exact_bytes() {
        let mut out = Vec::new();
        write_accept(
            &mut out,
            b"dGhlIHNhbXBsZSBub25jZQ==",
            Some("chat"),
            None,
            &[],
        );
        assert_eq!(
            text(&out),
            "HTTP/1.1 101 Switching Protocols\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Sec-WebSocket-Protocol: chat\r\n\r\n"
        );
    }

    #[test]
    fn write_accept_parse_response_round_trip() {
        let key = encode_key([7u8; 16]);
        let mut out = Vec::new();
        write_accept(
            &mut out,
            &key,
            Some("chat.v2"),
            Some("permessage-deflate; server_no_context_takeover"),
            &[("X-Server".to_string(), "myriad".to_string())],
        );
        assert_eq!(find_head_end(&out, 0), Some(out.len()));
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let res = parse_response(&out, &mut headers, &key).unwrap();
        assert_eq!(res.protocol, Some("chat.v2"));
        assert_eq!(
            res.extensions,
            Some(b"permessage-deflate; server_no_context_takeover".as_slice())
        );
        assert!(text(&out).contains("\r\nX-Server: myriad\r\n"));

        let mut out = Vec::new();
        write_accept(&mut out, &key, None, None, &[]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let res = parse_response(&out, &mut headers, &key).unwrap();
        assert_eq!(
            res,
            Response {
                protocol: None,
                extensions: None
            }
        );
    }

    #[test]
    fn write_request_parse_request_round_trip() {
        let key = encode_key(*b"0123456789abcdef");
        let key = std::str::from_utf8(&key).unwrap();
        let mut out = Vec::new();
        write_request(
            &mut out,
            "example.com:9001",
            "/ws?x=1",
            key,
            &["chat", "bad token", "v2"],
            Some("permessage-deflate"),
        );
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let req = parse_request(&out, &mut headers, peer()).unwrap();
        assert_eq!(req.path(), "/ws");
        assert_eq!(req.query(), Some("x=1"));
        assert_eq!(req.host(), Some("example.com:9001"));
        assert_eq!(req.key(), key.as_bytes());
        assert_eq!(req.protocols().collect::<Vec<_>>(), ["chat", "v2"]);
        assert_eq!(
            req.extensions().collect::<Vec<_>>(),
            [b"permessage-deflate".as_slice()]
        );

        // And the server's answer to it validates on the client side.
        let mut answer = Vec::new();
        write_accept(&mut answer, req.key(), Some("chat"), None, &[]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let res = parse_response(&answer, &mut headers, key.as_bytes()).unwrap();
        assert_eq!(res.protocol, Some("chat"));
    }

    #[test]
    fn write_request_neutralises_injection() {
        let key = encode_key([1u8; 16]);
        let key = std::str::from_utf8(&key).unwrap();
        let mut out = Vec::new();
        write_request(
            &mut out,
            "evil\r\nX-Injected: 1",
            "/a b\r\nX-Injected: 2#frag",
            key,
            &[],
            Some("x\r\nX-Injected: 3"),
        );
        let s = text(&out);
        assert!(!s.contains("\r\nX-Injected"));
        assert!(s.starts_with("GET /a%20b%0D%0AX-Injected:%202%23frag HTTP/1.1\r\n"));
        assert!(!s.contains("Sec-WebSocket-Protocol"));
        assert!(!s.contains("Sec-WebSocket-Extensions"));
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert!(parse_request(&out, &mut headers, peer()).is_ok());

        let mut out = Vec::new();
        write_request(&mut out, "h", "", key, &[], None);
        assert!(text(&out).starts_with("GET / HTTP/1.1\r\n"));
    }

    #[test]
    fn parse_response_rejects() {
        let key = encode_key([9u8; 16]);
        let parse = |head: &[u8]| {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            parse_response(head, &mut headers, &key).map(|_| ())
        };
        let accept = accept_key(&key);
        let accept = text(&accept);
        let ok = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n"
        );
        assert_eq!(parse(format!("{ok}\r\n").as_bytes()), Ok(()));
        // Status seen and reported.
        let mut refusal = Vec::new();
        write_reject(&mut refusal, 403, &[]);
        assert_eq!(parse(&refusal).unwrap_err().status, 403);
        // Nothing readable → 0.
        assert_eq!(parse(b"garbage\r\n\r\n").unwrap_err().status, 0);
        assert_eq!(parse(b"HTTP/1.1 101 Swi").unwrap_err().status, 0);
        // Wrong accept (computed for another key).
        let wrong = ok.replace(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(
            parse(format!("{wrong}\r\n").as_bytes()).unwrap_err().status,
            101
        );
        // Missing pieces.
        for drop in ["Upgrade", "Connection", "Sec-WebSocket-Accept"] {
            let head: String = ok
                .split("\r\n")
                .filter(|l| !l.starts_with(drop))
                .map(|l| format!("{l}\r\n"))
                .collect();
            assert_eq!(parse(head.as_bytes()).unwrap_err().status, 101, "{drop}");
        }
        // Protocol must be one token, once; extensions once.
        let bad = format!("{ok}Sec-WebSocket-Protocol: a, b\r\n\r\n");
        assert_eq!(parse(bad.as_bytes()).unwrap_err().status, 101);
        let bad = format!("{ok}Sec-WebSocket-Protocol: a\r\nSec-WebSocket-Protocol: a\r\n\r\n");
        assert_eq!(parse(bad.as_bytes()).unwrap_err().status, 101);
        let bad = format!("{ok}Sec-WebSocket-Extensions: a\r\nSec-WebSocket-Extensions: b\r\n\r\n");
        assert_eq!(parse(bad.as_bytes()).unwrap_err().status, 101);
    }

    #[test]
    fn extra_header_with_cr_or_lf_is_skipped() {
        let extra = [
            ("X-Evil".to_string(), "a\r\nSet-Cookie: x=1".to_string()),
            ("X-Lf".to_string(), "a\nb".to_string()),
            ("X-Cr".to_string(), "a\rb".to_string()),
            ("X-Bad\r\nName".to_string(), "v".to_string()),
            ("".to_string(), "v".to_string()),
            ("Content-Length".to_string(), "5".to_string()),
            ("X-Good".to_string(), "fine\tvalue".to_string()),
        ];
        let key = encode_key([3u8; 16]);
        for out in [
            {
                let mut v = Vec::new();
                write_accept(&mut v, &key, Some("a\r\nb"), Some("e\r\nX: y"), &extra);
                v
            },
            {
                let mut v = Vec::new();
                write_reject(&mut v, 401, &extra);
                v
            },
        ] {
            let s = text(&out);
            assert!(!s.contains("Set-Cookie"), "{s}");
            assert!(!s.contains("X-Lf"), "{s}");
            assert!(!s.contains("X-Cr"), "{s}");
            assert!(!s.contains("X-Bad"), "{s}");
            assert!(!s.contains("X-Evil"), "{s}");
            assert!(!s.contains("Content-Length: 5"), "{s}");
            assert!(!s.contains("\r\nX: y"), "{s}");
            assert!(s.contains("\r\nX-Good: fine\tvalue\r\n"), "{s}");
            // Every line ends CRLF and no bare CR or LF appears.
            assert_eq!(s.matches('\r').count(), s.matches('\n').count());
            assert!(s.ends_with("\r\n\r\n"));
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut res = httparse::Response::new(&mut headers);
            assert!(res.parse(&out).unwrap().is_complete());
        }
    }

    #[test]
    fn write_reject_format() {
        let mut out = Vec::new();
        write_reject(&mut out, 400, &[]);
        assert_eq!(
            text(&out),
            "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        );
        for (status, line) in [
            (414, "HTTP/1.1 414 URI Too Long\r\n"),
            (431, "HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            (403, "HTTP/1.1 403 Forbidden\r\n"),
            (599, "HTTP/1.1 599 Unknown\r\n"),
            (0, "HTTP/1.1 500 Internal Server Error\r\n"),
            (u16::MAX, "HTTP/1.1 500 Internal Server Error\r\n"),
        ] {
            let mut out = Vec::new();
            write_reject(&mut out, status, &[("Retry-After".into(), "5".into())]);
            let s = text(&out);
            assert!(s.starts_with(line), "{s}");
            assert!(
                s.ends_with("Content-Length: 0\r\nRetry-After: 5\r\n\r\n"),
                "{s}"
            );
            assert!(!s.contains("Allow:"));
        }
    }

    #[test]
    fn encode_key_is_a_valid_key() {
        for seed in 0..=255u8 {
            let key = encode_key([seed; 16]);
            assert!(is_valid_key(&key));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // Deterministic xorshift; mixes random bytes with fragments of a valid head.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pieces: [&[u8]; 8] = [
            b"GET ",
            b"\r\n",
            b": ",
            b"Sec-WebSocket-Key",
            b"Upgrade: websocket",
            b",",
            b"HTTP/1.1",
            b"\xff\x00",
        ];
        let key = encode_key([0u8; 16]);
        for _ in 0..3000 {
            let mut buf = Vec::new();
            let n = next() % 40;
            for _ in 0..n {
                let r = next();
                let [a, b, ..] = r.to_le_bytes();
                if a % 3 == 0 {
                    buf.push(b);
                } else {
                    buf.extend_from_slice(pieces[usize::from(b) % pieces.len()]);
                }
            }
            let from = usize::from(next().to_le_bytes()[0] % 64);
            let _ = find_head_end(&buf, from);
            let _ = check_incomplete(&buf, &LIMITS);
            let tiny = HeadLimits {
                max_head_bytes: 0,
                max_request_line: 0,
            };
            let _ = check_incomplete(&buf, &tiny);
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            if let Ok(req) = parse_request(&buf, &mut headers, peer()) {
                let _ = (req.path(), req.query(), req.origin(), req.host());
                let _ = req.protocols().count() + req.extensions().count();
            }
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let _ = parse_response(&buf, &mut headers, &key);
        }
        // Every prefix of a valid head.
        for len in 0..=VALID.len() {
            let head = &VALID.as_bytes()[..len];
            let expect = if len == VALID.len() { 101 } else { 400 };
            assert_eq!(status_of(head), expect, "prefix {len}");
        }
    }
}
