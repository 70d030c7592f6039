//! The server's side of the opening handshake (RFC 6455 §4.2): the key and the 101 answer.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::token::{is_token, push_extra, push_header};

/// The GUID appended to the key before hashing (RFC 6455 §1.3, §4.2.2).
const WS_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Whether `key` is a valid `Sec-WebSocket-Key`: base64 (standard alphabet, padded) of exactly
/// 16 bytes. Decodes into a stack array; nothing is allocated.
pub(crate) fn is_valid_key(key: &[u8]) -> bool {
    // RFC 6455 §4.1 item 7 / §4.2.1 item 5: a base64-encoded 16-byte nonce is always 24
    // characters, so anything else (empty, 18 bytes, megabytes) fails before decoding.
    if key.len() != 24 {
        return false;
    }
    let mut raw = [0u8; 18];
    matches!(STANDARD.decode_slice(key, &mut raw), Ok(16))
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

/// Headers [`write_accept`](super::write_accept) writes itself; extras with these names are skipped.
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
/// (as returned by [`Request::key`](super::Request::key)), then `Sec-WebSocket-Protocol` if `protocol` is given and is a
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
