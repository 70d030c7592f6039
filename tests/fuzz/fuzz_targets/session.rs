//! The connection session: any sequence of inputs reports a close at most once, sends nothing
//! after closing, and writes only valid frames.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../bodies.rs"]
mod bodies;

fuzz_target!(|data: &[u8]| {
    bodies::session_any_inputs(data);
});
