//! What the application sends and receives: messages, and what a send did.

use crate::proto::frame::OpCode;
pub use crate::proto::session::Fragment;

/// A complete message, valid for the duration of the callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// UTF-8 text (validated, RFC 6455 §8.1).
    Text(&'a str),
    /// Binary data.
    Binary(&'a [u8]),
}

impl<'a> Message<'a> {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// Whether it is text.
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }

    /// The opcode of its frame.
    pub(crate) fn opcode(&self) -> OpCode {
        match self {
            Message::Text(_) => OpCode::Text,
            Message::Binary(_) => OpCode::Binary,
        }
    }
}

/// Whether a message is sent compressed, on connections that negotiated permessage-deflate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compress {
    /// Compressed when at least `Config::compress_threshold` bytes long (default 64).
    #[default]
    Auto,
    /// Always compressed.
    Always,
    /// Never compressed.
    Never,
}

/// What a send did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendStatus {
    /// Queued for the socket with nothing ahead of it; leaves at the end of this callback.
    Sent,
    /// Queued behind unsent bytes (backpressure); `on_drain` tells when they are gone.
    Buffered,
    /// Not queued: it would have passed `max_backpressure` (policy `Drop`).
    Dropped,
}
