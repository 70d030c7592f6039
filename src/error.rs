//! Errors: what the peer did wrong (with the close code it earns), and what the caller misused.

use std::fmt;

/// A protocol violation by the peer, or a limit it went past. Each knows the close code it earns
/// (RFC 6455 §7.4.1): the reactor sends that code, closes TCP and delivers nothing more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// RSV1/2/3 set without an extension that defines them (RFC 6455 §5.2).
    ReservedBits,
    /// Opcode 3-7 or 11-15 (RFC 6455 §5.2).
    ReservedOpcode(u8),
    /// A client frame without the mask bit (RFC 6455 §5.1).
    UnmaskedFrame,
    /// A server frame with the mask bit, seen by a client (RFC 6455 §5.1).
    MaskedFrame,
    /// A 16- or 64-bit length that would have fitted a shorter form. RFC 6455 §5.2 says the minimal
    /// number of bytes MUST be used; we refuse the longer form.
    NonMinimalLength,
    /// A 64-bit length with its most significant bit set (RFC 6455 §5.2).
    LengthMsb,
    /// A control frame with more than 125 bytes of payload (RFC 6455 §5.5).
    ControlTooLong,
    /// A control frame without FIN (RFC 6455 §5.5).
    FragmentedControl,
    /// A continuation frame with no message in progress (RFC 6455 §5.4).
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is in progress (RFC 6455 §5.4).
    ExpectedContinuation,
    /// A frame longer than the configured frame limit.
    FrameTooLarge {
        /// Declared payload length.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A message longer than the configured message limit.
    MessageTooLarge {
        /// Bytes the message would have reached.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// More fragments in one message than the configured limit.
    TooManyFragments {
        /// The limit.
        max: u32,
    },
    /// Text that is not UTF-8 (RFC 6455 §8.1).
    InvalidUtf8,
    /// A Close frame whose payload is one byte long (RFC 6455 §5.5.1).
    CloseTooShort,
    /// A Close code that may not be sent on the wire (RFC 6455 §7.4).
    InvalidCloseCode(u16),
    /// A Close reason that is not UTF-8 (RFC 6455 §5.5.1).
    InvalidCloseReason,
}

impl ProtocolError {
    /// The close code sent to the peer for this error.
    pub fn close_code(&self) -> u16 {
        match self {
            ProtocolError::FrameTooLarge { .. }
            | ProtocolError::MessageTooLarge { .. }
            | ProtocolError::TooManyFragments { .. } => 1009,
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCloseReason => 1007,
            _ => 1002,
        }
    }

    /// A short reason, sent in the Close frame (always under 123 bytes).
    pub fn reason(&self) -> &'static str {
        match self {
            ProtocolError::ReservedBits => "reserved bits set",
            ProtocolError::ReservedOpcode(_) => "reserved opcode",
            ProtocolError::UnmaskedFrame => "client frame not masked",
            ProtocolError::MaskedFrame => "server frame masked",
            ProtocolError::NonMinimalLength => "non-minimal length encoding",
            ProtocolError::LengthMsb => "64-bit length with MSB set",
            ProtocolError::ControlTooLong => "control frame over 125 bytes",
            ProtocolError::FragmentedControl => "fragmented control frame",
            ProtocolError::UnexpectedContinuation => "continuation without a message",
            ProtocolError::ExpectedContinuation => "new message inside a fragmented one",
            ProtocolError::FrameTooLarge { .. } => "frame too large",
            ProtocolError::MessageTooLarge { .. } => "message too large",
            ProtocolError::TooManyFragments { .. } => "too many fragments",
            ProtocolError::InvalidUtf8 => "invalid UTF-8 in text",
            ProtocolError::CloseTooShort => "close payload of one byte",
            ProtocolError::InvalidCloseCode(_) => "invalid close code",
            ProtocolError::InvalidCloseReason => "close reason not UTF-8",
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op}"),
            ProtocolError::FrameTooLarge { size, max } => {
                write!(f, "frame of {size} bytes over the limit of {max}")
            }
            ProtocolError::MessageTooLarge { size, max } => {
                write!(f, "message of {size} bytes over the limit of {max}")
            }
            ProtocolError::TooManyFragments { max } => {
                write!(f, "message in more than {max} fragments")
            }
            ProtocolError::InvalidCloseCode(c) => write!(f, "invalid close code {c}"),
            other => f.write_str(other.reason()),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// A misuse of the API by the caller: nothing was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The connection is closing or closed.
    Closed,
    /// A ping or pong payload over 125 bytes (RFC 6455 §5.5).
    ControlTooLong,
    /// A close reason over 123 bytes (RFC 6455 §5.5.1).
    ReasonTooLong,
    /// A close code that may not be sent (RFC 6455 §7.4.1: 1005, 1006, 1015, unassigned ranges).
    InvalidCloseCode(u16),
    /// A text or binary message was sent while a fragmented message is being sent.
    FragmentInProgress,
    /// A continuation fragment was sent without a first fragment.
    NoFragmentInProgress,
    /// The connection id is stale (that connection is gone) or belongs to no reactor.
    StaleId,
    /// The server is shutting down or stopped.
    ServerStopped,
    /// Called from a reactor thread, where waiting for a reactor's answer could deadlock.
    WouldDeadlock,
    /// Only a WebSocket can do that (a ping, a fragment); this connection is a streamed
    /// response.
    NotWebSocket,
    /// A topic name longer than `Config::max_topic_len`.
    TopicTooLong,
    /// The connection subscribes to `Config::max_topics_per_connection` topics already.
    TooManyTopics,
    /// The reactor's mailbox is full (`Config::mailbox_capacity`): the command was dropped and
    /// counted.
    MailboxFull,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            SendError::Closed => "connection closed",
            SendError::ControlTooLong => "control payload over 125 bytes",
            SendError::ReasonTooLong => "close reason over 123 bytes",
            SendError::InvalidCloseCode(_) => "close code not allowed on the wire",
            SendError::FragmentInProgress => "a fragmented message is being sent",
            SendError::NoFragmentInProgress => "no fragmented message is being sent",
            SendError::StaleId => "no such connection",
            SendError::ServerStopped => "server stopped",
            SendError::WouldDeadlock => "blocking call from a reactor thread",
            SendError::NotWebSocket => "not a WebSocket connection",
            SendError::TopicTooLong => "topic name too long",
            SendError::TooManyTopics => "too many topics for one connection",
            SendError::MailboxFull => "reactor mailbox full",
        };
        f.write_str(s)
    }
}

impl std::error::Error for SendError {}
