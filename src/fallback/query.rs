//! Which fallback request a request is, from its parameters (added to the WebSocket URL's query
//! by the client) and its `Accept` header.

/// Opens a long-poll session: `myriad-transport=poll`.
pub(crate) const TRANSPORT: &str = "myriad-transport";
/// Names the session of a poll or a POST.
pub(crate) const SESSION: &str = "myriad-session";
/// A poll's acknowledgement: the sequence number of the last event the client has.
pub(crate) const ACK: &str = "myriad-ack";

/// What a request asks of the fallback transports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Asks<'a> {
    /// Open an SSE session (a `GET` that accepts `text/event-stream`).
    OpenSse,
    /// Open a long-poll session.
    OpenPoll,
    /// Wait for the session's messages after `ack`.
    Poll { sid: &'a str, ack: Option<u64> },
    /// Messages for the session in the body.
    Post { sid: &'a str },
    /// Not a fallback request.
    None,
}

/// The value of parameter `name` in `query` (the first; not percent-decoded: ours need not be).
pub(crate) fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

/// Classifies a request by its method, query and `Accept` header.
pub(crate) fn classify<'a>(
    method: &str,
    query: Option<&'a str>,
    accept: Option<&[u8]>,
) -> Asks<'a> {
    let q = query.unwrap_or_default();
    let sid = param(q, SESSION);
    match (method, sid) {
        ("POST", Some(sid)) => Asks::Post { sid },
        ("GET", Some(sid)) => Asks::Poll {
            sid,
            // A missing ack is 0; a malformed one is refused by the caller (None).
            ack: param(q, ACK).map_or(Some(0), |a| a.parse().ok()),
        },
        ("GET", None) if param(q, TRANSPORT) == Some("poll") => Asks::OpenPoll,
        ("GET", None) if accept.is_some_and(accepts_event_stream) => Asks::OpenSse,
        _ => Asks::None,
    }
}

/// Whether an `Accept` value lists `text/event-stream` (parameters and case aside).
fn accepts_event_stream(accept: &[u8]) -> bool {
    accept.split(|&b| b == b',').any(|item| {
        let media = item.split(|&b| b == b';').next().unwrap_or_default();
        media
            .trim_ascii()
            .eq_ignore_ascii_case(b"text/event-stream")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        let ev = Some(&b"text/html, Text/Event-Stream;q=0.9"[..]);
        assert_eq!(classify("GET", Some("room=1"), ev), Asks::OpenSse);
        assert_eq!(classify("GET", None, Some(b"text/html")), Asks::None);
        assert_eq!(classify("POST", None, ev), Asks::None);
        assert_eq!(
            classify("GET", Some("a=1&myriad-transport=poll"), None),
            Asks::OpenPoll
        );
        assert_eq!(
            classify("GET", Some("myriad-session=ab&myriad-ack=12"), None),
            Asks::Poll {
                sid: "ab",
                ack: Some(12)
            }
        );
        assert_eq!(
            classify("GET", Some("myriad-session=ab&myriad-ack=x"), None),
            Asks::Poll {
                sid: "ab",
                ack: None
            }
        );
        assert_eq!(
            classify("POST", Some("myriad-session=ab"), None),
            Asks::Post { sid: "ab" }
        );
        assert_eq!(classify("PUT", Some("myriad-session=ab"), None), Asks::None);
    }
}
