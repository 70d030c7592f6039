//! The reactor's bookkeeping bits of a connection, in one byte, each behind a named accessor.

/// Bits of [`Flags`].
const IN_WHEEL: u8 = 1;
const WANT_WRITE: u8 = 2;
const QUEUED_READ: u8 = 4;
const PENDING: u8 = 8;
const DEAD: u8 = 16;
const LINGER: u8 = 32;
const DRAIN: u8 = 64;
const KEEP: u8 = 128;

/// What the reactor keeps about a connection, besides its protocol state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags(u8);

macro_rules! flag {
    ($($(#[$doc:meta])* $get:ident, $set:ident = $bit:ident;)*) => {
        impl Flags {
            $(
                $(#[$doc])*
                pub(crate) fn $get(self) -> bool {
                    self.0 & $bit != 0
                }

                pub(crate) fn $set(&mut self, on: bool) {
                    if on {
                        self.0 |= $bit;
                    } else {
                        self.0 &= !$bit;
                    }
                }
            )*
        }
    };
}

flag! {
    /// Filed in the timing wheel.
    in_wheel, set_in_wheel = IN_WHEEL;
    /// Writable interest is registered (there are unsent bytes).
    want_write, set_want_write = WANT_WRITE;
    /// On the reactor's still-readable list.
    queued_read, set_queued_read = QUEUED_READ;
    /// Counted among pending handshakes.
    pending, set_pending = PENDING;
    /// Gone: the slot is freed at the end of this loop iteration.
    dead, set_dead = DEAD;
    /// Close TCP once unsent bytes have left (a refusal, or a finished close handshake).
    linger, set_linger = LINGER;
    /// Once unsent bytes have left, shut the write side, then read until the peer's FIN.
    drain, set_drain = DRAIN;
    /// A long-poll session: the poll waiting on it keeps its connection once answered.
    keep, set_keep = KEEP;
}

impl Flags {
    /// TCP is closing: what is read now is discarded.
    pub(crate) fn closing(self) -> bool {
        self.0 & (LINGER | DRAIN | DEAD) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_flag_is_its_own_bit() {
        let mut f = Flags::default();
        f.set_linger(true);
        f.set_pending(true);
        assert!(f.linger() && f.pending() && f.closing());
        assert!(!f.drain() && !f.dead() && !f.in_wheel());
        f.set_linger(false);
        assert!(!f.linger() && f.pending() && !f.closing());
    }
}
