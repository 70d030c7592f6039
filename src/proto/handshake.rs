//! The HTTP/1.1 upgrade that opens a WebSocket connection (RFC 6455 §4), server side and client
//! side: request heads parsed without allocation where they lie, answers written into a
//! caller-provided buffer. See [`crate::http`]'s documentation for the statuses.

pub use crate::http::{
    HeadLimits, HttpError, MAX_HEADERS, Request, Response, accept_key, check_incomplete,
    encode_key, find_head_end, parse_request, parse_response, reason_phrase, write_accept,
    write_reject, write_request,
};
