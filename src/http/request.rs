//! A request head, parsed where it lies: the view the application's `on_upgrade` is shown.

use std::net::SocketAddr;

use super::error::{HttpError, err};
use super::token::{header_values, is_token, list_has_token, list_items, single_value, trim_ows};
use super::upgrade::is_valid_key;
use crate::id::ConnId;

/// A request head, borrowing the receive buffer: shown to the application's `on_upgrade` (an
/// upgrade, validated) and `on_request` (a plain request, with its body).
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    method: &'a str,
    target: &'a str,
    /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    version: u8,
    headers: &'a [httparse::Header<'a>],
    /// The `Sec-WebSocket-Key` of a validated upgrade; empty for a plain request.
    key: &'a [u8],
    body: &'a [u8],
    peer: SocketAddr,
    ticket: Option<Ticket>,
}

/// Names a pending upgrade so that another thread can answer it later
/// ([`crate::ServerHandle::accept`], [`crate::ServerHandle::reject`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ticket(pub(crate) ConnId);

impl<'a> Request<'a> {
    /// The request method (always `GET` for an upgrade).
    #[must_use]
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The HTTP minor version: 1 for HTTP/1.1 (always, for an upgrade), 0 for HTTP/1.0.
    #[must_use]
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The body of a plain request (empty for an upgrade, and for a request without one).
    #[must_use]
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Inside `on_upgrade`: the ticket that answers this upgrade later from any thread, when
    /// `on_upgrade` returns [`crate::Upgrade::Pending`]. `None` elsewhere.
    #[must_use]
    pub fn ticket(&self) -> Option<Ticket> {
        self.ticket
    }

    /// The request with its body (for the server, once the body is read).
    pub(crate) fn with_body(self, body: &'a [u8]) -> Request<'a> {
        Request { body, ..self }
    }

    /// The request with the ticket that answers it.
    pub(crate) fn with_ticket(self, ticket: Ticket) -> Request<'a> {
        Request {
            ticket: Some(ticket),
            ..self
        }
    }

    /// Whether the client asks to keep the connection open after the response (RFC 9112 §9.3):
    /// HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    #[must_use]
    pub fn keep_alive(&self) -> bool {
        if self.version == 1 {
            !list_has_token(self.headers, "Connection", "close")
        } else {
            list_has_token(self.headers, "Connection", "keep-alive")
        }
    }

    /// Whether this is a WebSocket upgrade attempt: it names `Upgrade`, or carries a
    /// `Sec-WebSocket-Key` or `Sec-WebSocket-Version`. Such a request is validated as an upgrade
    /// (and refused if it is a bad one); any other request is a plain HTTP request.
    #[must_use]
    pub fn is_upgrade_attempt(&self) -> bool {
        self.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("Upgrade")
                || h.name.eq_ignore_ascii_case("Sec-WebSocket-Key")
                || h.name.eq_ignore_ascii_case("Sec-WebSocket-Version")
        })
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

    /// The `Origin` header (RFC 6455 §4.2.1 item 7, RFC 6454), if present and valid UTF-8 (a
    /// request with two is refused).
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

/// Parses a complete request head without judging it: the syntax only (400; 431 for more
/// header lines than `headers` holds). The server then checks it as an upgrade
/// ([`check_upgrade`]) or as a plain request ([`check_plain`]).
///
/// # Errors
///
/// [`HttpError`](super::HttpError) with the status to answer.
pub(crate) fn parse_head<'a>(
    buf: &'a [u8],
    headers: &'a mut [httparse::Header<'a>],
    peer: SocketAddr,
) -> Result<Request<'a>, HttpError> {
    let mut req = httparse::Request::new(headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        // The caller passes a head that find_head_end saw complete; httparse disagreeing means
        // the head is malformed (RFC 9112 §2.2: answer 400).
        Ok(httparse::Status::Partial) => return Err(err(400, "incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => return Err(err(431, "too many header lines")),
        Err(_) => return Err(err(400, "malformed request head")),
    }
    Ok(Request {
        method: req.method.unwrap_or(""),
        target: req.path.unwrap_or(""),
        version: req.version.unwrap_or(0),
        headers: req.headers,
        key: &[],
        body: &[],
        peer,
        ticket: None,
    })
}

/// `Host` once, and well formed: `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2). An
/// HTTP/1.1 request without one is refused (RFC 9112 §3.2); so is one with two.
fn check_host(headers: &[httparse::Header<'_>], required: bool) -> Result<(), HttpError> {
    match single_value(headers, "Host") {
        Ok(Some(v)) if is_valid_host(trim_ows(v)) => Ok(()),
        Ok(Some(_)) => Err(err(400, "malformed Host header")),
        Ok(None) if required => Err(err(400, "missing Host header")),
        Ok(None) => Ok(()),
        Err(()) => Err(err(400, "duplicated Host header")),
    }
}

/// `uri-host [ ":" port ]`: an IP-literal in brackets, or reg-name characters (unreserved,
/// pct-encoded, sub-delims), then an optional port of digits.
fn is_valid_host(v: &[u8]) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        let Some(end) = v.iter().position(|&b| b == b']') else {
            return false;
        };
        let inner = &v[1..end];
        let literal = !inner.is_empty()
            && inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.' | b'v' | b'V'));
        if !literal {
            return false;
        }
        (&v[..=end], &v[end + 1..])
    } else {
        let cut = v.iter().position(|&b| b == b':').unwrap_or(v.len());
        let name = &v[..cut];
        let ok = name.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'%'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                )
        });
        if !ok {
            return false;
        }
        (name, &v[cut..])
    };
    let port_ok = match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    // An empty host is allowed only for an empty value (RFC 9110 §7.2).
    port_ok && (!host.is_empty() || port.is_empty())
}

/// At most one `Origin` (RFC 6454 §7.3): with two, which one decides would be a guess.
fn check_origin(headers: &[httparse::Header<'_>]) -> Result<(), HttpError> {
    match single_value(headers, "Origin") {
        Ok(_) => Ok(()),
        Err(()) => Err(err(400, "duplicated Origin header")),
    }
}

/// Checks a plain (not upgrade) request: HTTP/1.0 or 1.1 (505 otherwise), `Host` once and well
/// formed (required for 1.1), at most one `Origin`.
///
/// # Errors
///
/// [`HttpError`](super::HttpError) with the status to answer.
pub(crate) fn check_plain(req: &Request<'_>) -> Result<(), HttpError> {
    if req.version > 1 {
        return Err(err(505, "HTTP version not supported"));
    }
    check_host(req.headers, req.version == 1)?;
    check_origin(req.headers)
}

/// Checks an upgrade attempt (RFC 6455 §4.2.1), in this order: the method is `GET` (405); the
/// version is HTTP/1.1 (400); `Host` is present exactly once and well formed (400); at most one
/// `Origin` (400); `Upgrade` lists `websocket` (400); `Connection` lists `upgrade` (400);
/// `Sec-WebSocket-Version` is `13` (426); `Sec-WebSocket-Key` is present once and is the base64 of
/// 16 bytes (400). Returns the request with its key.
///
/// # Errors
///
/// [`HttpError`](super::HttpError) with the status to answer.
pub(crate) fn check_upgrade<'a>(req: Request<'a>) -> Result<Request<'a>, HttpError> {
    let headers = req.headers;
    // RFC 6455 §4.2.1 item 1: the method must be GET (RFC 9110 §15.5.6: 405 with Allow).
    if req.method != "GET" {
        return Err(err(405, "method is not GET"));
    }
    // RFC 6455 §4.2.1 item 1: HTTP/1.1 or higher.
    if req.version != 1 {
        return Err(err(400, "HTTP version is not 1.1"));
    }
    // RFC 6455 §4.2.1 item 2; RFC 9112 §3.2: missing or repeated Host → 400.
    check_host(headers, true)?;
    check_origin(headers)?;
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
    Ok(Request { key, ..req })
}

/// Parses and validates a complete upgrade request head: `parse_head` then
/// `check_upgrade`'s checks.
///
/// `buf` is `&buf[..head_len]` where `head_len` came from [`find_head_end`](super::find_head_end)
/// (trailing bytes, such as a pipelined first frame, are ignored anyway). `headers` is the
/// caller's array, e.g. `[httparse::EMPTY_HEADER; MAX_HEADERS]`. Nothing is allocated.
///
/// Checks, in order: the head parses (400; 431 for more header lines than `headers` holds); the
/// method is `GET` (405); the version is HTTP/1.1 (400); `Host` is present exactly once and well
/// formed (400); at most one `Origin` (400); `Upgrade` lists `websocket` (400); `Connection` lists
/// `upgrade` (400); `Sec-WebSocket-Version` is `13` (426); `Sec-WebSocket-Key` is present once and
/// is the base64 of 16 bytes (400).
///
/// # Errors
///
/// [`HttpError`](super::HttpError) with the status to answer through
/// [`write_reject`](super::write_reject).
pub fn parse_request<'a>(
    buf: &'a [u8],
    headers: &'a mut [httparse::Header<'a>],
    peer: SocketAddr,
) -> Result<Request<'a>, HttpError> {
    check_upgrade(parse_head(buf, headers, peer)?)
}
