//! Frame decoder and message assembler: any bytes, split anywhere, give the same events (or the
//! same error) as the bytes fed whole, and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../bodies.rs"]
mod bodies;

fuzz_target!(|data: &[u8]| {
    bodies::decoder_split_invariance(data);
});
