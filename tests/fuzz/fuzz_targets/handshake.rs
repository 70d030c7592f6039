//! HTTP upgrade parsing: any head is answered (parsed or refused), never a panic, and the
//! incremental end-of-head scan agrees with a whole scan.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../bodies.rs"]
mod bodies;

fuzz_target!(|data: &[u8]| {
    bodies::handshake_any_head(data);
});
