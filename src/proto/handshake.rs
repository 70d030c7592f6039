//! The HTTP/1.1 upgrade that opens a WebSocket connection (RFC 6455 §4), server side and client
//! side: request heads parsed without allocation where they lie, answers written into a
//! caller-provided buffer.
//!
//! # Parsing without allocation
//!
//! The request head is parsed by [`httparse`] into a header array that the caller provides
//! (`[httparse::EMPTY_HEADER; MAX_HEADERS]`, on the stack or in per-reactor scratch space). Every
//! field of the resulting [`Request`] borrows the receive buffer, and the `Sec-WebSocket-Key` is
//! base64-decoded into a stack array only to check its length, so nothing on the parse path
//! allocates. Only the answers ([`write_accept`], [`write_reject`], [`write_request`]) append to a
//! caller-provided `Vec<u8>`, which the reactor copies to the socket.
//!
//! # Incremental head detection
//!
//! A head may arrive a byte at a time. After each read the reactor calls
//! [`find_head_end`] with the buffer length it had *before* that read; the search restarts only
//! three bytes before that point (a `\r\n\r\n` may straddle the boundary), so a head dribbled in
//! `n` reads costs O(bytes received) in total, not O(n²). While the head is still incomplete,
//! [`check_incomplete`] bounds it: a request line longer than
//! [`HeadLimits::max_request_line`] is answered with 414, a head longer than
//! [`HeadLimits::max_head_bytes`] with 431. Both are decided from the length received so far, so
//! memory stays bounded whatever the peer sends.
//!
//! # HTTP statuses
//!
//! | status | meaning here |
//! | --- | --- |
//! | 101 Switching Protocols | the upgrade is accepted ([`write_accept`]) |
//! | 400 Bad Request | malformed head, HTTP/1.0, missing or duplicated `Host`, `Upgrade` without `websocket`, `Connection` without `upgrade`, or a missing, duplicated or malformed `Sec-WebSocket-Key` |
//! | 403 Forbidden | chosen by the application (e.g. an `Origin` it does not allow) |
//! | 405 Method Not Allowed | the method is not `GET`; the answer carries `Allow: GET` |
//! | 414 URI Too Long | the request line is longer than [`HeadLimits::max_request_line`] |
//! | 426 Upgrade Required | `Sec-WebSocket-Version` missing or not `13`; the answer carries `Sec-WebSocket-Version: 13` (RFC 6455 §4.4) |
//! | 431 Request Header Fields Too Large | the head is longer than [`HeadLimits::max_head_bytes`], or has more than [`MAX_HEADERS`] header lines |
//!
//! Every refusal written by [`write_reject`] carries `Connection: close` and

pub use crate::http::{
    Accepted, HeadLimits, HttpError, MAX_HEADERS, Request, accept_key, check_incomplete,
    encode_key, find_head_end, parse_request, parse_response, reason_phrase, write_accept,
    write_reject, write_request,
};
