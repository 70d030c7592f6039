//! One reactor's TLS: each secure connection's state by slab key, the scratch buffers every
//! record passes through (ciphertext read, plaintext staged, ciphertext sealed), the handshake
//! cap and the counts.

use std::collections::HashMap;

use super::{TlsConn, TlsState};

/// Scratch larger than this is given back after use (one huge message must not pin memory).
const KEEP: usize = 1 << 20;

/// A connection's TLS state on its way to another slot or reactor.
pub(crate) struct Moved {
    conn: TlsConn,
    /// A record cut by the last read.
    partial: Option<Vec<u8>>,
}

/// One reactor's secure connections and TLS scratch.
pub(crate) struct Layer {
    /// By slab key; `None` for a slot without TLS (or free).
    conns: Vec<Option<TlsConn>>,
    /// The bytes of a record (or handshake message) cut by a read, by slab key, while one is.
    pub(crate) partials: HashMap<usize, Vec<u8>>,
    state: TlsState,
    /// Ciphertext read from a socket (a cut record first), as long as the receive buffer.
    pub(crate) cipher: Vec<u8>,
    /// Plaintext parts gathered into one run before they are sealed.
    pub(crate) stage: Vec<u8>,
    /// Records to write: sealed application data, handshake messages, alerts.
    pub(crate) sealed: Vec<u8>,
    /// Handshakes in progress.
    handshaking: usize,
    /// Handshakes completed, and failed (bad records, plain HTTP, over the cap).
    pub(crate) completed: u64,
    pub(crate) failed: u64,
}

impl Layer {
    pub(crate) fn new(state: TlsState, recv_len: usize) -> Layer {
        Layer {
            conns: Vec::new(),
            partials: HashMap::new(),
            state,
            cipher: vec![0; recv_len],
            stage: Vec::new(),
            sealed: Vec::new(),
            handshaking: 0,
            completed: 0,
            failed: 0,
        }
    }

    /// Starts TLS on connection `key`.
    ///
    /// # Errors
    /// Over the handshake cap, or rustls refused the configuration.
    pub(crate) fn admit(&mut self, key: usize) -> Result<(), String> {
        if self.handshaking >= self.state.max_handshakes {
            self.failed += 1;
            return Err(format!(
                "{} TLS handshakes in progress (max_handshakes)",
                self.handshaking
            ));
        }
        let conn = rustls::server::UnbufferedServerConnection::new(self.state.current())
            .map_err(|e| e.to_string())?;
        if self.conns.len() <= key {
            self.conns.resize_with(key + 1, || None);
        }
        self.conns[key] = Some(TlsConn::new(conn, self.state.record_handover));
        self.handshaking += 1;
        Ok(())
    }

    /// Connection `key`'s TLS state, if it is a secure connection.
    pub(crate) fn get(&mut self, key: usize) -> Option<&mut TlsConn> {
        self.conns.get_mut(key)?.as_mut()
    }

    /// Connection `key`'s TLS state with the staging and sealing scratch, for sending.
    pub(crate) fn sealer(
        &mut self,
        key: usize,
    ) -> Option<(&mut TlsConn, &mut Vec<u8>, &mut Vec<u8>)> {
        let tc = self.conns.get_mut(key)?.as_mut()?;
        Some((tc, &mut self.stage, &mut self.sealed))
    }

    /// Whether connection `key` is a secure connection.
    pub(crate) fn is_secure(&self, key: usize) -> bool {
        self.conns.get(key).is_some_and(Option::is_some)
    }

    /// Notes that connection `key`'s handshake has just completed.
    pub(crate) fn handshake_done(&mut self) {
        self.handshaking = self.handshaking.saturating_sub(1);
        self.completed += 1;
    }

    /// Forgets connection `key` (it is freed).
    pub(crate) fn remove(&mut self, key: usize) {
        self.partials.remove(&key);
        if let Some(c) = self.conns.get_mut(key).and_then(Option::take)
            && c.is_handshaking()
        {
            self.handshaking = self.handshaking.saturating_sub(1);
        }
    }

    /// Moves connection `from`'s TLS state to slot `to` (its socket moved there).
    pub(crate) fn relocate(&mut self, from: usize, to: usize) {
        let Some(t) = self.take(from) else {
            return;
        };
        self.put(to, t);
    }

    /// Takes connection `key`'s TLS state out (its socket leaves this slot); the handshake
    /// count follows it.
    pub(crate) fn take(&mut self, key: usize) -> Option<Moved> {
        let conn = self.conns.get_mut(key)?.take()?;
        if conn.is_handshaking() {
            self.handshaking = self.handshaking.saturating_sub(1);
        }
        Some(Moved {
            conn,
            partial: self.partials.remove(&key),
        })
    }

    /// Puts TLS state taken from another slot (or reactor) on slot `key`.
    pub(crate) fn put(&mut self, key: usize, m: Moved) {
        if m.conn.is_handshaking() {
            self.handshaking += 1;
        }
        if self.conns.len() <= key {
            self.conns.resize_with(key + 1, || None);
        }
        self.conns[key] = Some(m.conn);
        if let Some(p) = m.partial {
            self.partials.insert(key, p);
        }
    }

    /// Gives back scratch that one large message grew.
    pub(crate) fn trim(&mut self) {
        for v in [&mut self.stage, &mut self.sealed] {
            if v.capacity() > KEEP {
                *v = Vec::new();
            }
        }
    }

    /// After a mass disconnect: the table's spare tail.
    pub(crate) fn shrink(&mut self) {
        while self.conns.last().is_some_and(Option::is_none) {
            self.conns.pop();
        }
        self.conns.shrink_to_fit();
        self.partials.shrink_to_fit();
    }
}
