//! What the decoder accepts from a peer: one value, built once from the configuration and handed
//! down, never rebuilt per read.

/// Which side of the connection we are: decides whether frames must be masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We are the server: received frames must be masked (RFC 6455 §5.1).
    Server,
    /// We are the client: received frames must not be masked.
    Client,
}

/// Limits the frame decoder and the message assembler enforce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Server or client side.
    pub role: Role,
    /// Accept unmasked frames from clients (server only; off by default, an opt-in for trusted
    /// peers).
    pub accept_unmasked: bool,
    /// Largest frame payload.
    pub max_frame: u64,
    /// Largest message, counted as payload plus [`crate::proto::decoder::FRAGMENT_OVERHEAD`] per
    /// fragment.
    pub max_message: u64,
    /// Most fragments in one message.
    pub max_fragments: u32,
}

impl Limits {
    /// Generous limits for a side that trusts its peer (1 GiB messages), e.g. a test client.
    pub fn trusting(role: Role) -> Limits {
        Limits {
            role,
            accept_unmasked: false,
            max_frame: 1 << 30,
            max_message: 1 << 30,
            max_fragments: 1 << 20,
        }
    }
}
