//! permessage-deflate negotiation: any Sec-WebSocket-Extensions value is answered without a panic, and
//! an agreement round-trips through our client's check.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../bodies.rs"]
mod bodies;

fuzz_target!(|data: &[u8]| {
    bodies::negotiation_any_offer(data);
});
