//! Stable-Rust stand-ins for the fuzz targets in `fuzz/` (which need
//! cargo-fuzz and a nightly compiler, too slow to build in CI): every
//! decoder that takes a peer's bytes gets random inputs and mutations of
//! valid encodings, and must never panic. The real fuzzers: SECURITY.md.

use proptest::prelude::*;
use vfer::fuzzing;

/// Random bytes, and a few valid encodings with random bytes flipped.
fn inputs() -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<Vec<u8>> = vec![
        // Daemon request: push "in/".
        b"VFRQ\x01\x01\x00\x00\x01\x00\x03in/".to_vec(),
        // Pull of two paths with -r -p.
        b"VFRQ\x01\x02\x03\x00\x02\x00\x01a\x00\x01b".to_vec(),
        // Version 2: pull "in/f" -r with a rate cap (§5's example).
        b"VFRQ\x02\x02\x01\x0a\x01\x08\0\0\0\0\0\x07\xa1\x20\x00\x01\x00\x04in/f".to_vec(),
        // Version 3: forward with --pad (§5's example).
        b"VFRQ\x03\x04\x00\x02\x80\x00\x00\x00".to_vec(),
        // A padded record: "hi" (§8.6's example).
        {
            let mut v = b"\x00\x02hi".to_vec();
            v.resize(1024, 0);
            v
        },
        // Login message.
        {
            let mut v = b"VFLG\x01".to_vec();
            v.extend_from_slice(&[9; 32]);
            v.push(5);
            v.extend_from_slice(b"alice\x00\x03pwd");
            v
        },
        b"VFLV\x00\x00\x00\x00\x00".to_vec(),
        // Transport frames: PING, ACK, MAX_DATA, STREAM, CLOSE.
        b"\x01\x02\x0a\x00\x01\x02\x01\x01\x04\x40\x00\x08\x00\x03abc\x05\x01\x02hi".to_vec(),
        // PATH_CHALLENGE and PATH_RESPONSE (§3.9), then PING.
        b"\x06chalenge\x07response\x01".to_vec(),
        // A login HELLO-sized datagram.
        {
            let mut v = vec![0u8; 1200];
            v[24..28].copy_from_slice(b"VSL1");
            v[28] = 0x10;
            v[29..33].copy_from_slice(&(1200u32 - 33).to_be_bytes());
            v[33..37].copy_from_slice(&1u32.to_be_bytes());
            v
        },
        // A REQUEST payload: version 1, nonce, share, params, timestamp.
        {
            let mut v = vec![0u8; 1167];
            v[..4].copy_from_slice(&1u32.to_be_bytes());
            v[84..92].copy_from_slice(&((1u64 << 62) + 10 + 1_800_000_000).to_be_bytes());
            v
        },
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..1500),
        (
            proptest::sample::select(seeds),
            proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
            0usize..64,
        )
            .prop_map(|(mut v, flips, cut)| {
                for (i, b) in flips {
                    if !v.is_empty() {
                        let at = i.index(v.len());
                        v[at] = b;
                    }
                }
                let keep = v.len().saturating_sub(cut % 8);
                v.truncate(keep);
                v
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn handshake(d in inputs()) { fuzzing::handshake(&d); }

    #[test]
    fn transport_frames(d in inputs()) { fuzzing::transport_frames(&d); }

    #[test]
    fn endpoint(d in inputs()) { fuzzing::endpoint(&d); }

    #[test]
    fn stream_reassembly(d in inputs()) { fuzzing::stream_reassembly(&d); }

    #[test]
    fn transfer_messages(d in inputs()) { fuzzing::transfer_messages(&d); }

    #[test]
    fn login(d in inputs()) { fuzzing::login(&d); }

    #[test]
    fn daemon_request(d in inputs()) { fuzzing::daemon_request(&d); }

    #[test]
    fn exec_frames(d in inputs()) { fuzzing::exec_frames(&d); }

    #[test]
    fn padded_records(d in inputs()) { fuzzing::padded_records(&d); }
}

#[test]
fn every_decoder_survives_edge_inputs() {
    for len in [0, 1, 4, 9, 33, 149, 1199, 1200, 1201, 65_536] {
        for byte in [0u8, 0x01, 0x02, 0x08, 0x10, 0xff] {
            fuzzing::all(&vec![byte; len]);
        }
    }
}
