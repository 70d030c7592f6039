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

/// Why a string is not a [`ConnId`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseConnIdError;

impl fmt::Display for ParseConnIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a connection id is REACTOR:SLOT:GENERATION, three decimal numbers")
    }
}

impl std::error::Error for ParseConnIdError {}

impl std::str::FromStr for ConnId {
    type Err = ParseConnIdError;

    /// Reads what [`ConnId`]'s `Display` wrote (`REACTOR:SLOT:GENERATION`), so that another
    /// system can keep an id as a string.
    fn from_str(s: &str) -> Result<ConnId, ParseConnIdError> {
        let mut it = s.split(':');
        let mut next = || it.next().and_then(|p| p.parse::<u32>().ok());
        let (reactor, key, generation) = (
            next().ok_or(ParseConnIdError)?,
            next().ok_or(ParseConnIdError)?,
            next().ok_or(ParseConnIdError)?,
        );
        if it.next().is_some() {
            return Err(ParseConnIdError);
        }
        Ok(ConnId {
            reactor,
            token: Token::new(key as usize, generation),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_id_round_trips_through_a_string() {
        let id = ConnId {
            reactor: 3,
            token: Token::new(70_000, 4_000_000_000),
        };
        let s = id.to_string();
        assert_eq!(s, "3:70000:4000000000");
        assert_eq!(s.parse::<ConnId>(), Ok(id));
        for bad in ["", "1:2", "1:2:3:4", "a:2:3", "1:-2:3", "1:2:99999999999"] {
            assert_eq!(bad.parse::<ConnId>(), Err(ParseConnIdError), "{bad}");
        }
    }
}
