//! A permessage-deflate agreement, packed into one byte so that it costs a connection nothing:
//! it sits in what would be padding of the connection entry.

use std::num::NonZeroU8;

use super::negotiate::Agreed;

const SERVER_NO_CONTEXT: u8 = 0x80;
const CLIENT_NO_CONTEXT: u8 = 0x40;

/// What the codec needs of an agreement: the two no-context-takeover bits, the server's window
/// bits (9..=15, stored minus 8 in bits 3-5, so never zero) and the client's (8..=15, stored
/// minus 8 in bits 0-2). Never zero, so `Option<Agreement>` is one byte too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Agreement(NonZeroU8);

impl Agreement {
    /// Packs what the codec needs of `a`.
    pub(crate) fn pack(a: &Agreed) -> Agreement {
        let mut bits = (a.server_max_window_bits.clamp(9, 15) - 8) << 3;
        bits |= a.client_max_window_bits.clamp(8, 15) - 8;
        if a.server_no_context_takeover {
            bits |= SERVER_NO_CONTEXT;
        }
        if a.client_no_context_takeover {
            bits |= CLIENT_NO_CONTEXT;
        }
        // The server bits field is 1..=7.
        Agreement(NonZeroU8::new(bits).unwrap_or(NonZeroU8::MIN))
    }

    /// Whether the connection can take a message compressed once for everyone (fresh context,
    /// 15-bit window).
    pub(crate) fn takes_shared(self) -> bool {
        self.server_resets() && self.server_bits() == 15
    }

    /// We compress each message with a fresh context (`server_no_context_takeover`).
    pub(crate) fn server_resets(self) -> bool {
        self.0.get() & SERVER_NO_CONTEXT != 0
    }

    /// The client compresses each message with a fresh context (`client_no_context_takeover`).
    pub(crate) fn client_resets(self) -> bool {
        self.0.get() & CLIENT_NO_CONTEXT != 0
    }

    /// The window bits we compress with.
    pub(crate) fn server_bits(self) -> u8 {
        ((self.0.get() >> 3) & 7) + 8
    }

    /// The window bits the client compresses with.
    pub(crate) fn client_bits(self) -> u8 {
        (self.0.get() & 7) + 8
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
                        let z = Agreement::pack(&a);
                        assert_eq!(z.server_resets(), server_ctx);
                        assert_eq!(z.client_resets(), client_ctx);
                        assert_eq!((z.server_bits(), z.client_bits()), (sb, cb));
                    }
                }
            }
        }
        assert_eq!(std::mem::size_of::<Option<Agreement>>(), 1);
    }
}
