//! A reactor's permessage-deflate state (RFC 7692): the shared streams, and the per-connection
//! state of the opt-in context-takeover modes.
//!
//! Default ("shared") connections own nothing here: one inflater and one deflater per window size
//! serve them all, reset after every message, so an idle connection with compression negotiated
//! costs exactly what one without does. A connection gets an entry in `conns` only when its
//! agreement keeps context (the client's, which needs a window of its output primed into the
//! shared inflater, or ours, which needs a dedicated deflater) or asked for a smaller server
//! window; the entry's parts are created on first use and dropped on close.

use std::collections::HashMap;

use crate::deflate::{Deflater, InflateError, Inflater, Window};
use crate::extension::Agreed;

/// Per-connection state of the opt-in modes.
struct PerConn {
    agreed: Agreed,
    window: Option<Window>,
    deflater: Option<Deflater>,
}

/// One reactor's compression state.
pub(crate) struct Compression {
    inflater: Inflater,
    /// Shared deflaters by window bits 9..=15, created on first use.
    shared: [Option<Deflater>; 7],
    conns: HashMap<usize, PerConn>,
    level: u32,
    /// Messages compressed (for tests and the fan-out benchmark).
    pub(crate) compressions: u64,
}

impl Compression {
    pub(crate) fn new(level: u32) -> Compression {
        Compression {
            inflater: Inflater::new(),
            shared: Default::default(),
            conns: HashMap::new(),
            level,
            compressions: 0,
        }
    }

    /// A connection negotiated `agreed`: note it only if it needs state of its own.
    pub(crate) fn open(&mut self, key: usize, agreed: Agreed) {
        let shared = agreed.server_no_context_takeover
            && agreed.client_no_context_takeover
            && agreed.server_max_window_bits == 15;
        if !shared {
            self.conns.insert(
                key,
                PerConn {
                    agreed,
                    window: None,
                    deflater: None,
                },
            );
        }
    }

    /// The connection is gone: free its window and deflater.
    pub(crate) fn close(&mut self, key: usize) {
        self.conns.remove(&key);
    }

    /// Inflates one message of connection `key` into `out`, at most `max` bytes (RFC 7692 §7.2.2).
    pub(crate) fn inflate(
        &mut self,
        key: usize,
        data: &[u8],
        max: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), InflateError> {
        match self.conns.get_mut(&key) {
            Some(c) if !c.agreed.client_no_context_takeover => {
                // The client keeps its context: prime its last window into the shared stream.
                let bits = c.agreed.client_max_window_bits.max(9);
                let window = c.window.get_or_insert_with(|| Window::new(bits));
                let primed = (!window.bytes().is_empty()).then(|| window.bytes());
                self.inflater.inflate(&[data], primed, max, out)?;
                window.push(out);
                Ok(())
            }
            _ => self.inflater.inflate(&[data], None, max, out),
        }
    }

    /// Compresses one whole message of connection `key` into `out` (RFC 7692 §7.2.1).
    pub(crate) fn deflate(&mut self, key: usize, msg: &[u8], out: &mut Vec<u8>) {
        self.compressions += 1;
        let level = self.level;
        let bits = match self.conns.get_mut(&key) {
            Some(c) if !c.agreed.server_no_context_takeover => {
                // We keep our context: this connection's own deflater.
                let bits = c.agreed.server_max_window_bits.max(9);
                c.deflater
                    .get_or_insert_with(|| Deflater::new(bits, level))
                    .compress(msg, false, out);
                return;
            }
            Some(c) => c.agreed.server_max_window_bits,
            None => 15,
        };
        self.shared(bits).compress(msg, true, out);
    }

    fn shared(&mut self, bits: u8) -> &mut Deflater {
        let bits = bits.clamp(9, 15);
        let level = self.level;
        self.shared[usize::from(bits - 9)].get_or_insert_with(|| Deflater::new(bits, level))
    }
}
