//! What a node puts on a Redis channel: a marker, the kind of message (text or binary) and the
//! publishing node's id (so that a node skips what it published itself: its own subscribers got
//! it already), then the payload as it is. A message published on the channel by anything else
//! (`redis-cli PUBLISH`, a backend) has no marker: it is delivered as text when it is UTF-8, else
//! as binary.

/// Marks a message from a myriad node (a NUL first: no text a person publishes starts so).
const MAGIC: &[u8; 7] = b"\0myriad";
/// Marker, kind byte, node id.
pub(crate) const HEADER: usize = MAGIC.len() + 1 + 8;

/// One message off a channel.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Opened<'a> {
    /// The publishing node (`None`: not a myriad node).
    pub(crate) node: Option<u64>,
    pub(crate) text: bool,
    pub(crate) payload: &'a [u8],
}

/// Writes the header of a message from `node` to `out`; the payload follows it.
pub(crate) fn seal(out: &mut Vec<u8>, node: u64, text: bool) {
    out.extend_from_slice(MAGIC);
    out.push(if text { b't' } else { b'b' });
    out.extend_from_slice(&node.to_be_bytes());
}

/// Reads a message off a channel.
pub(crate) fn open(msg: &[u8]) -> Opened<'_> {
    if msg.len() >= HEADER && msg.starts_with(MAGIC) && matches!(msg[MAGIC.len()], b't' | b'b') {
        let mut id = [0u8; 8];
        id.copy_from_slice(&msg[MAGIC.len() + 1..HEADER]);
        return Opened {
            node: Some(u64::from_be_bytes(id)),
            text: msg[MAGIC.len()] == b't',
            payload: &msg[HEADER..],
        };
    }
    Opened {
        node: None,
        text: crate::proto::utf8::is_valid(msg),
        payload: msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_messages_open_as_sent() {
        for (text, payload) in [
            (true, &b"hello"[..]),
            (false, &[0u8, 255, 1][..]),
            (true, b""),
        ] {
            let mut m = Vec::new();
            seal(&mut m, 0xdead_beef, text);
            m.extend_from_slice(payload);
            assert_eq!(
                open(&m),
                Opened {
                    node: Some(0xdead_beef),
                    text,
                    payload
                }
            );
        }
    }

    #[test]
    fn foreign_messages_are_text_when_utf8() {
        assert_eq!(open(b"from redis-cli").node, None);
        assert!(open("caf\u{e9}".as_bytes()).text);
        let bin = [0xffu8, 0, 1];
        assert_eq!(
            open(&bin),
            Opened {
                node: None,
                text: false,
                payload: &bin
            }
        );
        // A marker with an unknown kind, or cut short, is foreign too.
        assert_eq!(open(b"\0myriadx12345678").node, None);
        assert_eq!(open(b"\0myriadt123").node, None);
    }
}
