//! permessage-deflate (RFC 7692): what was agreed ([`negotiate`]), the codec ([`codec`]), the
//! agreement packed into one byte of a connection ([`agreement`]), and one reactor's shared
//! streams and per-connection opt-in state ([`streams`]). The first two are public through
//! [`crate::proto::deflate`].

pub(crate) mod agreement;
pub(crate) mod codec;
pub(crate) mod negotiate;
pub(crate) mod streams;

pub(crate) use agreement::Agreement;
pub(crate) use streams::Streams;
