//! HTTP/1.1 as far as the server needs it (RFC 9110, RFC 9112): request heads read without
//! allocation, answers written into caller buffers, and the upgrade that opens a WebSocket
//! connection (RFC 6455 §4), server side and client side. Nothing here touches a socket.
//! See [`crate::proto::handshake`] for how heads are parsed and which statuses answer what.

mod body;
mod client;
mod date;
mod error;
mod head;
mod request;
mod response;
mod token;
mod upgrade;

pub(crate) use body::{Chunked, Framing, framing};
pub use client::{Accepted, encode_key, parse_response, write_request};
pub(crate) use date::imf_fixdate;
pub use error::HttpError;
pub use head::{HeadLimits, MAX_HEADERS, check_incomplete, find_head_end};
pub use request::{Request, Ticket, parse_request};
pub(crate) use request::{check_plain, check_upgrade, parse_head};
pub(crate) use response::{Body, LAST_CHUNK, write_chunk, write_head, write_refusal};
pub use response::{reason_phrase, write_reject};
pub(crate) use token::is_tchar;
pub use upgrade::{accept_key, write_accept};

#[cfg(test)]
mod tests;
