//! Fuzzes `Opener::open` with fixed keys, for both suites (VSL1 and
//! AES-256-GCM): arbitrary bytes must never panic, and nothing forged opens.
//!
//! The input is split into datagrams (a 2-byte big-endian length before each)
//! so the fuzzer also explores sequences: replays, reordering and the window.
//! Every few datagrams a genuine packet is sealed and must open, proving that
//! no garbage moved the window or broke the opener.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vfer::vsl::{Role, Session, SessionKeys, Suite, SuiteKeys, HEADER_LEN, MAX_DATALEN};

fuzz_target!(|data: &[u8]| {
    let v1 = SessionKeys::derive(&[7; 32], &[1; 32], &[2; 32], None);
    let gcm = SuiteKeys::derive(
        Suite::Aes256Gcm,
        &[7; 32],
        &[1; 32],
        &[2; 32],
        None,
        &[1, 2, 2],
    );
    // The first input byte picks the suite.
    let use_gcm = data.first().is_some_and(|b| b & 1 == 1);
    let (mut server, mut client) = if use_gcm {
        (
            Session::new(&gcm, Role::Server, 0),
            Session::new(&gcm, Role::Client, 1 << 50),
        )
    } else {
        // The genuine client starts far above anything the fuzzer can guess
        // cheaply, so its packets stay fresh whatever the fuzzer sends.
        (
            Session::new(&v1, Role::Server, 0),
            Session::new(&v1, Role::Client, 1 << 50),
        )
    };
    let mut buf = vec![0u8; HEADER_LEN + MAX_DATALEN + 64];
    let mut rest = data;
    let mut count = 0u32;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let (dg, tail) = rest[2..].split_at(len);
        rest = tail;
        let slot = &mut buf[..dg.len()];
        slot.copy_from_slice(dg);
        if let Ok(opened) = server.opener.open(slot) {
            // Only possible for an input the fuzzer cannot forge; if it ever
            // happens the keys or MAC check are broken.
            panic!("forged datagram opened: msgnr {}", opened.msgnr);
        }
        count += 1;
        if count % 4 == 0 {
            let payload = &dg[..dg.len().min(64)];
            let (n, l) = client
                .sealer
                .seal(0, payload, &mut buf)
                .expect("seal a small payload");
            let opened = server
                .opener
                .open(&mut buf[..l])
                .expect("genuine packet opens after garbage");
            assert_eq!(opened.msgnr, n);
            assert_eq!(&opened.payload[..], payload);
        }
    }
    // The whole input as one datagram too.
    let slot = &mut buf[..data.len().min(HEADER_LEN + MAX_DATALEN + 64)];
    slot.copy_from_slice(&data[..slot.len()]);
    assert!(server.opener.open(slot).is_err());
});
