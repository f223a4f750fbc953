//! Fuzzes `vfer::fuzzing::stream_reassembly`: arbitrary peer bytes must never panic.
//! Run: `cargo +nightly fuzz run stream_reassembly` (see SECURITY.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vfer::fuzzing::stream_reassembly(data);
});
