//! Fuzzes `vfer::fuzzing::daemon_request`: arbitrary peer bytes must never panic.
//! Run: `cargo +nightly fuzz run daemon_request` (see SECURITY.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vfer::fuzzing::daemon_request(data);
});
