//! The fallback transports' wire format: any POST body is parsed or refused and reads back the
//! same from its canonical form; any message survives its SSE event; no input panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../bodies.rs"]
mod bodies;

fuzz_target!(|data: &[u8]| {
    bodies::fallback_any(data);
});
