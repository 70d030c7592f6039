//! The client's side of the opening handshake (RFC 6455 §4.1): the request and the checks of the
//! server's answer.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::error::{HttpError, err};
use super::token::{is_token, list_has_token, push_header, single_value, trim_ows};
use super::upgrade::accept_key;

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
/// (the request-target, e.g. `/chat?room=1`), with `key` from [`encode_key`](super::encode_key) (24 base64
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

/// What the server answered, after validation by [`parse_response`](super::parse_response).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted<'a> {
    /// The subprotocol the server selected (`Sec-WebSocket-Protocol`), if any. The caller must
    /// check it is one it offered (RFC 6455 §4.1, client step 6).
    pub protocol: Option<&'a str>,
    /// The raw `Sec-WebSocket-Extensions` value, if any. The caller must check it only names
    /// extensions it offered (RFC 6455 §4.1, client step 5).
    pub extensions: Option<&'a [u8]>,
}

/// Parses a complete response head (RFC 6455 §4.1, the client's checks of the server's answer):
/// it must be status 101, with `Upgrade: websocket`, `Connection: upgrade` and
/// `Sec-WebSocket-Accept` equal to [`accept_key`](super::accept_key)`(key)`, where `key` is the key that was sent.
/// At most one `Sec-WebSocket-Protocol` header, holding a single token, and at most one
/// `Sec-WebSocket-Extensions` header are accepted. Nothing is allocated.
///
/// # Errors
///
/// [`HttpError`](super::HttpError) whose `status` is the status the server sent (101 when a later check failed),
/// or 0 when the head could not be parsed.
pub fn parse_response<'a>(
    buf: &'a [u8],
    headers: &'a mut [httparse::Header<'a>],
    key: &[u8],
) -> Result<Accepted<'a>, HttpError> {
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
    // RFC 6455 §4.1 client step 5. A split list would not fit `Accepted`, and accepting part of
    // it would hide an extension in use, so a second header fails the handshake.
    let extensions = match single_value(headers, "Sec-WebSocket-Extensions") {
        Ok(v) => v.map(trim_ows),
        Err(()) => return Err(err(101, "more than one Sec-WebSocket-Extensions header")),
    };

    Ok(Accepted {
        protocol,
        extensions,
    })
}
