//! Fuzzes `vfer::fuzzing::transport_frames`: arbitrary peer bytes must never panic.
//! Run: `cargo +nightly fuzz run transport_frames` (see SECURITY.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vfer::fuzzing::transport_frames(data);
});
