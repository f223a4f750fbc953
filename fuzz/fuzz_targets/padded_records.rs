//! Fuzzes `vfer::fuzzing::padded_records`: arbitrary peer bytes must never panic.
//! Run: `cargo +nightly fuzz run padded_records` (see SECURITY.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vfer::fuzzing::padded_records(data);
});
