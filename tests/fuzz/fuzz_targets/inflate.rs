//! permessage-deflate inflate: any bytes, split anywhere, with or without a primed window, give
//! the same answer, never more than the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../bodies.rs"]
mod bodies;

fuzz_target!(|data: &[u8]| {
    bodies::inflate_any_message(data);
});
