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

use crate::deflate::{Deflater, InflateError, Inflater, Window};
use crate::extension::Agreed;

/// Per-connection state of the opt-in modes, created on first use.
#[derive(Default)]
struct PerConn {
    window: Option<Window>,
    deflater: Option<Deflater>,
}

const SERVER_NO_CONTEXT: u8 = 0x80;
const CLIENT_NO_CONTEXT: u8 = 0x40;

/// Packs what the codec needs of an agreement into one byte: the two no-context-takeover bits,
/// the server's window bits (9..=15, stored minus 9) and the client's (8..=15, minus 8).
pub(crate) fn pack(a: &Agreed) -> u8 {
    let mut z = (a.server_max_window_bits.clamp(9, 15) - 9) << 3;
    z |= a.client_max_window_bits.clamp(8, 15) - 8;
    if a.server_no_context_takeover {
        z |= SERVER_NO_CONTEXT;
    }
    if a.client_no_context_takeover {
        z |= CLIENT_NO_CONTEXT;
    }
    z
}

/// Whether a connection with agreement `z` can take a message compressed once for everyone
/// (fresh context, 15-bit window).
pub(crate) fn takes_shared(z: u8) -> bool {
    z & SERVER_NO_CONTEXT != 0 && server_bits(z) == 15
}

fn server_bits(z: u8) -> u8 {
    ((z >> 3) & 7) + 9
}

fn client_bits(z: u8) -> u8 {
    (z & 7) + 8
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

    /// The connection is gone: free its window and deflater.
    pub(crate) fn close(&mut self, key: usize) {
        self.conns.remove(&key);
    }

    /// Inflates one message of connection `key` (agreement `z`) into `out`, at most `max` bytes
    /// (RFC 7692 §7.2.2).
    pub(crate) fn inflate(
        &mut self,
        key: usize,
        z: u8,
        data: &[u8],
        max: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), InflateError> {
        if z & CLIENT_NO_CONTEXT != 0 {
            return self.inflater.inflate(&[data], None, max, out);
        }
        // The client keeps its context: prime its last window into the shared stream.
        let c = self.conns.entry(key).or_default();
        let window = c
            .window
            .get_or_insert_with(|| Window::new(client_bits(z).max(9)));
        let primed = (!window.bytes().is_empty()).then(|| window.bytes());
        self.inflater.inflate(&[data], primed, max, out)?;
        window.push(out);
        Ok(())
    }

    /// Compresses one whole message of connection `key` (agreement `z`) into `out`
    /// (RFC 7692 §7.2.1).
    pub(crate) fn deflate(&mut self, key: usize, z: u8, msg: &[u8], out: &mut Vec<u8>) {
        self.compressions += 1;
        let bits = server_bits(z);
        if z & SERVER_NO_CONTEXT != 0 {
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

    #[test]
    fn pack_keeps_what_the_codec_needs() {
        for server_ctx in [false, true] {
            for client_ctx in [false, true] {
                for sb in 9..=15u8 {
                    for cb in 8..=15u8 {
                        let a = Agreed {
                            server_no_context_takeover: server_ctx,
                            client_no_context_takeover: client_ctx,
                            server_max_window_bits: sb,
                            client_max_window_bits: cb,
                            ..Agreed::default()
                        };
                        let z = pack(&a);
                        assert_eq!(z & SERVER_NO_CONTEXT != 0, server_ctx);
                        assert_eq!(z & CLIENT_NO_CONTEXT != 0, client_ctx);
                        assert_eq!((server_bits(z), client_bits(z)), (sb, cb));
                    }
                }
            }
        }
    }

    #[test]
    fn shared_connections_hold_nothing_and_opt_in_ones_only_after_use() {
        let mut c = Compression::new(6);
        let shared = pack(&Agreed {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..Agreed::default()
        });
        let keeping = pack(&Agreed::default());
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
