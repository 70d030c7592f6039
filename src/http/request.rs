//! A request head, parsed where it lies: the view the application's `on_upgrade` is shown.

use std::net::SocketAddr;

use super::error::{HttpError, err};
use super::token::{header_values, is_token, list_has_token, list_items, single_value, trim_ows};
use super::upgrade::is_valid_key;

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
    /// characters decoding to 16 bytes). Pass it to [`write_accept`](super::write_accept).
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

/// Parses and validates a complete request head.
///
/// `buf` is `&buf[..head_len]` where `head_len` came from [`find_head_end`](super::find_head_end) (trailing bytes, such
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
/// [`HttpError`](super::HttpError) with the status to answer through [`write_reject`](super::write_reject).
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
