//! The fallback transports, for networks that break WebSocket: Server-Sent Events and
//! long-polling for the downlink, POSTs for the uplink, all on the WebSocket's own port and path.
//! To the application each session is one connection, like a WebSocket.
//!
//! This folder is the sans-I/O part (what goes on the wire); the reactor's `fallback` file
//! moves it.
//!
//! - `sid`: session ids, unguessable and checked without a table;
//! - `event`: messages as SSE events (the SSE stream and the poll bodies);
//! - `uplink`: the frames of a POST body;
//! - `query`: the request parameters that say which fallback request it is.
//!
//! The wire format is documented in the README ("Fallback transports").

pub(crate) mod event;
pub(crate) mod query;
pub(crate) mod sid;
pub(crate) mod uplink;

/// The browser client, served at [`crate::Config::client_path`] (`/myriad.js` by default).
pub const CLIENT_JS: &str = include_str!("myriad.js");
