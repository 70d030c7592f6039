//! HTTP/1.1 as far as the server needs it (RFC 9110, RFC 9112): request heads read without
//! allocation, answers written into caller buffers, and the upgrade that opens a WebSocket
//! connection (RFC 6455 §4), server side and client side. Nothing here touches a socket.
//! See [`crate::proto::handshake`] for how heads are parsed and which statuses answer what.

mod client;
mod error;
mod head;
mod request;
mod response;
mod token;
mod upgrade;

pub use client::{Response, encode_key, parse_response, write_request};
pub use error::HttpError;
pub use head::{HeadLimits, MAX_HEADERS, check_incomplete, find_head_end};
pub use request::{Request, parse_request};
pub use response::{reason_phrase, write_reject};
pub(crate) use token::is_tchar;
pub use upgrade::{accept_key, write_accept};

#[cfg(test)]
mod tests;
