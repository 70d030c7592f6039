//! A reactor's permessage-deflate state (RFC 7692): the shared streams, and the per-connection
//! state of the opt-in context-takeover modes.
//!
//! Default ("shared") connections own nothing here: one inflater and one deflater per window size
//! serve them all, reset after every message, so an idle connection with compression negotiated
//! costs exactly what one without does. The agreement itself is packed into one byte of the
//! connection entry (in what was padding). A connection whose agreement keeps context (the
//! client's, which needs a window of its output primed into the shared inflater, or ours, which
//! needs a dedicated deflater) gets an entry in `conns` when it first compresses or sends
//! compressed data, not before; the entry is dropped on close.

use std::collections::HashMap;

use super::agreement::Agreement;
use super::codec::{Deflater, InflateError, Inflater, Window};

/// Per-connection state of the opt-in modes, created on first use.
#[derive(Default)]
struct PerConn {
    window: Option<Window>,
    deflater: Option<Deflater>,
}

/// One reactor's compression state.
pub(crate) struct Streams {
    inflater: Inflater,
    /// Shared deflaters by window bits 9..=15, created on first use.
    shared: [Option<Deflater>; 7],
    conns: HashMap<usize, PerConn>,
    level: u32,
    /// Messages compressed (for tests and the fan-out benchmark).
    pub(crate) compressions: u64,
}

impl Streams {
    pub(crate) fn new(level: u32) -> Streams {
        Streams {
            inflater: Inflater::new(),
            shared: Default::default(),
            conns: HashMap::new(),
            level,
            compressions: 0,
        }
    }

    /// The connection is gone: free its window and deflater.
    pub(crate) fn close(&mut self, key: usize) {
        self.conns.remove(&key);
    }

    /// Inflates one message of connection `key` (agreement `a`) into `out`, at most `max` bytes
    /// (RFC 7692 §7.2.2).
    pub(crate) fn inflate(
        &mut self,
        key: usize,
        a: Agreement,
        data: &[u8],
        max: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), InflateError> {
        if a.client_resets() {
            return self.inflater.inflate(&[data], None, max, out);
        }
        // The client keeps its context: prime its last window into the shared stream.
        let c = self.conns.entry(key).or_default();
        let window = c
            .window
            .get_or_insert_with(|| Window::new(a.client_bits().max(9)));
        let primed = (!window.bytes().is_empty()).then(|| window.bytes());
        self.inflater.inflate(&[data], primed, max, out)?;
        window.push(out);
        Ok(())
    }

    /// Compresses one whole message of connection `key` (agreement `a`) into `out`
    /// (RFC 7692 §7.2.1).
    pub(crate) fn deflate(&mut self, key: usize, a: Agreement, msg: &[u8], out: &mut Vec<u8>) {
        self.compressions += 1;
        let bits = a.server_bits();
        if a.server_resets() {
            self.shared(bits).compress(msg, true, out);
            return;
        }
        // We keep our context: this connection's own deflater.
        let level = self.level;
        self.conns
            .entry(key)
            .or_default()
            .deflater
            .get_or_insert_with(|| Deflater::new(bits, level))
            .compress(msg, false, out);
    }

    /// The shared 15-bit deflater, for a message published to many subscribers: compressed once.
    pub(crate) fn publish_deflater(&mut self) -> &mut Deflater {
        self.compressions += 1;
        self.shared(15)
    }

    fn shared(&mut self, bits: u8) -> &mut Deflater {
        let bits = bits.clamp(9, 15);
        let level = self.level;
        self.shared[usize::from(bits - 9)].get_or_insert_with(|| Deflater::new(bits, level))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deflate::negotiate::Agreed;

    #[test]
    fn shared_connections_hold_nothing_and_opt_in_ones_only_after_use() {
        let mut c = Streams::new(6);
        let shared = Agreement::pack(&Agreed {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..Agreed::default()
        });
        let keeping = Agreement::pack(&Agreed::default());
        let mut out = Vec::new();
        c.deflate(1, shared, b"hello hello hello", &mut out);
        let mut back = Vec::new();
        c.inflate(1, shared, &out, 1 << 20, &mut back).unwrap();
        assert_eq!(back, b"hello hello hello");
        assert!(c.conns.is_empty());
        out.clear();
        c.deflate(2, keeping, b"context", &mut out);
        assert_eq!(c.conns.len(), 1);
        c.close(2);
        assert!(c.conns.is_empty());
    }
}
