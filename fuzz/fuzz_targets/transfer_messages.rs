//! Fuzzes `vfer::fuzzing::transfer_messages`: arbitrary peer bytes must never panic.
//! Run: `cargo +nightly fuzz run transfer_messages` (see SECURITY.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vfer::fuzzing::transfer_messages(data);
});
