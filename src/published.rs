//! A message published to a topic, framed once for every subscriber, and compressed once for
//! those that take the shared compressed copy.

use std::sync::{Arc, OnceLock};

use crate::deflate::codec::Deflater;
use crate::proto::frame::{MAX_HEADER, OpCode, encode};

/// A published message, framed once: as is, and (when worth it) compressed once for every
/// subscriber in the shared deflate mode (RFC 7692 with server_no_context_takeover).
pub(crate) struct Published {
    /// Text or binary.
    pub(crate) text: bool,
    /// The whole frame, uncompressed (shared: slow subscribers queue it by reference).
    pub(crate) plain: Arc<Vec<u8>>,
    /// Header length within `plain` (the payload follows).
    pub(crate) header: usize,
    /// The whole frame compressed with a fresh context (RSV1 set), if compressed.
    pub(crate) deflated: Option<Arc<Vec<u8>>>,
    /// The message as a Server-Sent Event, made by the first fallback session that takes it
    /// (on whichever reactor), then shared like the frames.
    event: OnceLock<Arc<Vec<u8>>>,
}

impl Published {
    /// Frames `payload`; compresses it once with `deflater` (reset per message) when given.
    pub(crate) fn new(text: bool, payload: &[u8], deflater: Option<&mut Deflater>) -> Published {
        let op = if text { OpCode::Text } else { OpCode::Binary };
        let mut h = [0u8; MAX_HEADER];
        let header = encode(&mut h, true, false, op, None, payload.len() as u64);
        let mut plain = Vec::with_capacity(header + payload.len());
        plain.extend_from_slice(&h[..header]);
        plain.extend_from_slice(payload);
        let deflated = deflater.map(|d| {
            let mut packed = Vec::new();
            d.compress(payload, true, &mut packed);
            let n = encode(&mut h, true, true, op, None, packed.len() as u64);
            let mut f = Vec::with_capacity(n + packed.len());
            f.extend_from_slice(&h[..n]);
            f.extend_from_slice(&packed);
            f
        });
        Published {
            text,
            plain: Arc::new(plain),
            header,
            deflated: deflated.map(Arc::new),
            event: OnceLock::new(),
        }
    }

    /// The message as an event for SSE and long-poll sessions, made once.
    pub(crate) fn event(&self) -> &Arc<Vec<u8>> {
        self.event.get_or_init(|| {
            let mut out = Vec::new();
            crate::fallback::event::message(self.text, self.payload(), &mut out);
            Arc::new(out)
        })
    }

    /// The payload, uncompressed.
    pub(crate) fn payload(&self) -> &[u8] {
        &self.plain[self.header..]
    }
}
