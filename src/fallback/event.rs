//! Messages as Server-Sent Events (the HTML standard, "Server-sent events"): the SSE stream
//! and the long-poll bodies carry the same events. Each is an event of the default type whose
//! data starts with one character that says what it is:
//!
//! - `s`: the session id (the first event);
//! - `t`: a text message, split into `data:` lines at LF (the parser joins them with LF again);
//! - `u`: a text message with a CR in it, as base64 of its UTF-8 (the parser would turn CR and
//!   CRLF into line ends);
//! - `b`: a binary message, as base64;
//! - `c`: the close: the code, a space, the reason.
//!
//! The type travels in the data (not in SSE's `event:` field) so that one `onmessage` handler,
//! and one parser for poll answers, see every kind.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A comment: keeps proxies from closing a quiet stream; the client ignores it.
pub(crate) const HEARTBEAT: &[u8] = b":\n\n";

/// Appends the event for a message.
pub(crate) fn message(text: bool, payload: &[u8], out: &mut Vec<u8>) {
    if !text {
        data_base64(b'b', payload, out);
    } else if payload.contains(&b'\r') {
        data_base64(b'u', payload, out);
    } else {
        out.extend_from_slice(b"data: t");
        for (i, line) in payload.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\ndata: ");
            }
            out.extend_from_slice(line);
        }
        out.extend_from_slice(b"\n\n");
    }
}

fn data_base64(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: ");
    out.push(kind);
    let at = out.len();
    out.resize(at + payload.len().div_ceil(3) * 4, 0);
    let n = STANDARD
        .encode_slice(payload, &mut out[at..])
        .expect("sized for the whole encoding");
    out.truncate(at + n);
    out.extend_from_slice(b"\n\n");
}

/// Appends the session event.
pub(crate) fn session(sid: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: s");
    out.extend_from_slice(sid.as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// Appends the close event. A reason with a line break is cut there (reasons are short and
/// meant for people; RFC 6455 allows 123 bytes).
pub(crate) fn close(code: u16, reason: &str, out: &mut Vec<u8>) {
    let reason = reason.split(['\r', '\n']).next().unwrap_or_default();
    out.extend_from_slice(format!("data: c{code} {reason}\n\n").as_bytes());
}

/// Appends an event's sequence number (a poll body's `id:` line, before the event).
pub(crate) fn id(seq: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("id: {seq}\n").as_bytes());
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What a client gets from `stream`: each event's data, as the HTML standard's parser
    /// builds it (lines at CR, LF or CRLF; `data` fields joined by LF; one space after the colon
    /// dropped; empty events not dispatched), with its last `id`.
    pub(crate) fn parse(stream: &[u8]) -> Vec<(Option<String>, String)> {
        let text = String::from_utf8(stream.to_vec()).unwrap();
        let mut events = Vec::new();
        let (mut data, mut id) = (String::new(), None);
        for line in text.replace("\r\n", "\n").replace('\r', "\n").split('\n') {
            if line.is_empty() {
                if !data.is_empty() {
                    data.pop();
                    events.push((id.clone(), std::mem::take(&mut data)));
                }
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "data" => {
                    data.push_str(value);
                    data.push('\n');
                }
                "id" => id = Some(value.to_owned()),
                _ => {}
            }
        }
        events
    }

    fn one(text: bool, payload: &[u8]) -> String {
        let mut out = Vec::new();
        message(text, payload, &mut out);
        let ev = parse(&out);
        assert_eq!(ev.len(), 1, "{out:?}");
        ev[0].1.clone()
    }

    #[test]
    fn messages_survive_the_parser() {
        for t in ["", "hi", "a\nb", "\n", "a\n\nb\n", " lead", "ünï ✓", "x:y"] {
            assert_eq!(one(true, t.as_bytes()), format!("t{t}"), "{t:?}");
        }
        for t in ["a\r\nb", "\r", "x\ry"] {
            let got = one(true, t.as_bytes());
            assert_eq!(got, format!("u{}", STANDARD.encode(t)));
        }
        let bin = [0u8, 255, 10, 13, 7];
        assert_eq!(one(false, &bin), format!("b{}", STANDARD.encode(bin)));
        assert_eq!(one(false, &[]), "b");
        let mut out = Vec::new();
        close(1000, "bye\nnow", &mut out);
        id(7, &mut out);
        session("abc", &mut out);
        out.extend_from_slice(HEARTBEAT);
        let ev = parse(&out);
        assert_eq!(ev[0], (None, "c1000 bye".to_owned()));
        assert_eq!(ev[1], (Some("7".to_owned()), "sabc".to_owned()));
        assert_eq!(ev.len(), 2);
    }
}
