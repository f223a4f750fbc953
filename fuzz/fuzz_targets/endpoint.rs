//! Fuzzes `vfer::fuzzing::endpoint`: arbitrary peer bytes must never panic.
//! Run: `cargo +nightly fuzz run endpoint` (see SECURITY.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vfer::fuzzing::endpoint(data);
});
