//! Why a request is refused, with the HTTP status it earns.

use std::fmt;

/// Why an upgrade request (or, on the client side, a response) is refused, with the HTTP status.
///
/// On the server side `status` is the status to answer with [`write_reject`](super::write_reject). On the client side
/// ([`parse_response`](super::parse_response)) it is the status the server sent, or 0 when none could be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpError {
    /// HTTP status code.
    pub status: u16,
    /// What was wrong, in words (for logs; the wire carries the standard reason phrase).
    pub reason: &'static str,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}: {}", self.status, self.reason)
    }
}

impl std::error::Error for HttpError {}

pub(crate) const fn err(status: u16, reason: &'static str) -> HttpError {
    HttpError { status, reason }
}
