//! Fuzzes `vfer::fuzzing::exec_frames`: arbitrary peer bytes must never panic.
//! Run: `cargo +nightly fuzz run exec_frames` (see SECURITY.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vfer::fuzzing::exec_frames(data);
});
