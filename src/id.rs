//! Connection ids: a slab key and a generation, so that a reused slot never receives what was
//! meant for the connection that held it before.

use std::fmt;

/// Identifies a connection across threads. A stale id (its connection closed, the slot perhaps
/// reused) never reaches another connection: the generation in it no longer matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub(crate) reactor: u32,
    pub(crate) token: Token,
}

impl ConnId {
    /// Index of the reactor that owns the connection.
    pub fn reactor(&self) -> u32 {
        self.reactor
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.reactor,
            self.token.key(),
            self.token.generation()
        )
    }
}

/// A connection within its reactor: slab key in the low 32 bits, generation in the high 32. Also
/// the connection's mio token and its entry in the timing wheel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Token(pub(crate) u64);

impl Token {
    pub(crate) fn new(key: usize, generation: u32) -> Token {
        Token(key as u64 | (u64::from(generation) << 32))
    }

    pub(crate) fn key(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }

    pub(crate) fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}
