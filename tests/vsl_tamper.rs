//! Tamper matrix: no modification of a sealed VSL packet opens, the opener's
//! state survives every rejection (the genuine packet still opens after its
//! forgeries), and a rejected datagram is never decrypted: VSL1 leaves its
//! bytes untouched; VSL2 (AES-256-GCM, whose tag check and decryption are
//! one pass) leaves the header untouched and zeroes the payload. Both suites.

use vfer::vsl::{
    OpenError, Opener, Role, Session, SessionKeys, Suite, SuiteKeys, HEADER_LEN, MAX_DATALEN,
};

const PACKETS: u64 = 1_000;

fn session_pair(server_nonce: u8) -> (Session, Session) {
    let keys = SessionKeys::derive(&[0x11; 32], &[0x22; 32], &[server_nonce; 32], None);
    (
        Session::new(&keys, Role::Client, 0),
        Session::new(&keys, Role::Server, 0),
    )
}

fn suite_pair(suite: Suite, server_nonce: u8) -> (Session, Session) {
    if suite == Suite::Vsl1 {
        return session_pair(server_nonce);
    }
    let keys = SuiteKeys::derive(
        suite,
        &[0x11; 32],
        &[0x22; 32],
        &[server_nonce; 32],
        Some(&[0x44; 32]),
        &[2, 2, 1, 2],
    );
    (
        Session::new(&keys, Role::Client, 0),
        Session::new(&keys, Role::Server, 0),
    )
}

/// Sizes from 0 to 64 bytes (every block boundary), with some larger ones.
fn size_of(i: u64) -> usize {
    match i % 100 {
        99 => 1400,
        49 => 300,
        _ => ((i * 7) % 65) as usize,
    }
}

fn payload(i: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (j as u64 ^ i.wrapping_mul(131)) as u8)
        .collect()
}

fn seal(s: &mut Session, ptype: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN + payload.len()];
    s.sealer.seal(ptype, payload, &mut out).expect("seal");
    out
}

/// Opens `bad` and requires a rejection of one of `allowed` kinds, with the
/// datagram left exactly as it was (nothing decrypted), except that a GCM
/// tag failure zeroes the payload (never plaintext) and keeps the header.
fn reject(opener: &mut Opener, bad: &mut [u8], allowed: &[OpenError], what: &str) {
    let before = bad.to_vec();
    let err = match opener.open(bad) {
        Ok(o) => panic!("{what}: tampered packet opened (msgnr {})", o.msgnr),
        Err(e) => e,
    };
    assert!(allowed.contains(&err), "{what}: unexpected {err:?}");
    if opener.suite() == Suite::Aes256Gcm && err == OpenError::BadMac {
        assert_eq!(bad[..HEADER_LEN], before[..HEADER_LEN], "{what}: header");
        assert!(
            bad[HEADER_LEN..].iter().all(|&b| b == 0),
            "{what}: rejected GCM payload not zeroed"
        );
    } else {
        assert_eq!(bad, &before[..], "{what}: rejected datagram was modified");
    }
}

/// The errors a flip of `byte` may produce.
fn allowed_for_byte(byte: usize) -> &'static [OpenError] {
    use OpenError::*;
    match byte {
        // A changed msgnr is either an already-seen/out-of-range number or a
        // MAC failure.
        0..=7 => &[BadMac, Replayed],
        // MAC, type and payload: authentication.
        8..=23 | 28 => &[BadMac],
        // Magic and datalen: caught by parsing before any crypto.
        24..=27 | 29..=32 => &[Malformed],
        _ => &[BadMac],
    }
}

#[test]
fn tamper_matrix_vsl1() {
    tamper_matrix(Suite::Vsl1);
}

#[test]
fn tamper_matrix_aes_256_gcm() {
    tamper_matrix(Suite::Aes256Gcm);
}

fn tamper_matrix(suite: Suite) {
    let (mut client, mut server) = suite_pair(suite, 0x33);
    let (mut other_client, _) = suite_pair(suite, 0x34);
    let mut scratch = vec![0u8; HEADER_LEN + 1400 + 256];
    let mut flips = 0u64;
    for i in 0..PACKETS {
        let len = size_of(i);
        let plain = payload(i, len);
        let ptype = (i % 7) as u8;
        let genuine = seal(&mut client, ptype, &plain);
        let n = genuine.len();
        let rx = &mut server.opener;

        // Every single-bit flip anywhere in the datagram.
        for bit in 0..n * 8 {
            let bad = &mut scratch[..n];
            bad.copy_from_slice(&genuine);
            bad[bit / 8] ^= 1 << (bit % 8);
            reject(rx, bad, allowed_for_byte(bit / 8), "bit flip");
            flips += 1;
        }
        // Truncation at every length.
        for cut in 0..n {
            scratch[..cut].copy_from_slice(&genuine[..cut]);
            reject(
                rx,
                &mut scratch[..cut],
                &[OpenError::Malformed],
                "truncated",
            );
        }
        // Appended bytes (zeros and junk).
        for extra in [1usize, 2, 16, 255] {
            scratch[..n].copy_from_slice(&genuine);
            for (k, b) in scratch[n..n + extra].iter_mut().enumerate() {
                *b = k as u8;
            }
            reject(
                rx,
                &mut scratch[..n + extra],
                &[OpenError::Malformed],
                "appended",
            );
        }
        // Every other type value: the type is authenticated.
        for t in 0..=255u8 {
            if t == ptype {
                continue;
            }
            let bad = &mut scratch[..n];
            bad.copy_from_slice(&genuine);
            bad[28] = t;
            reject(rx, bad, &[OpenError::BadMac], "type changed");
        }
        // datalen off by one: alone (length mismatch), and with the length
        // made to agree (then the MAC catches it).
        let datalen = (n - HEADER_LEN) as u32;
        for (new_len, dg_len) in [
            (datalen.wrapping_add(1), n),
            (datalen.wrapping_sub(1), n),
            (datalen + 1, n + 1),
        ] {
            let bad = &mut scratch[..dg_len];
            bad[..n].copy_from_slice(&genuine);
            if dg_len > n {
                bad[n] = 0;
            }
            bad[29..33].copy_from_slice(&new_len.to_be_bytes());
            let expect: &[OpenError] = if dg_len == n {
                &[OpenError::Malformed]
            } else {
                &[OpenError::BadMac]
            };
            reject(rx, bad, expect, "datalen off by one");
        }
        if n > HEADER_LEN {
            let bad = &mut scratch[..n - 1];
            bad.copy_from_slice(&genuine[..n - 1]);
            bad[29..33].copy_from_slice(&(datalen - 1).to_be_bytes());
            reject(rx, bad, &[OpenError::BadMac], "datalen-1, shortened");
        }
        // Wrong magic, including the other suite's.
        let magics: [&[u8; 4]; 5] = match suite {
            Suite::Vsl1 => [b"VSL0", b"VSL2", b"vsl1", b"\0\0\0\0", b"1LSV"],
            Suite::Aes256Gcm => [b"VSL0", b"VSL1", b"vsl2", b"\0\0\0\0", b"2LSV"],
        };
        for magic in magics {
            let bad = &mut scratch[..n];
            bad.copy_from_slice(&genuine);
            bad[24..28].copy_from_slice(magic);
            reject(rx, bad, &[OpenError::Malformed], "wrong magic");
        }
        // Same secret, same msgnr, same plaintext, another session's nonces.
        let mut foreign = seal(&mut other_client, ptype, &plain);
        assert_eq!(foreign[..8], genuine[..8], "same msgnr in both sessions");
        reject(rx, &mut foreign, &[OpenError::BadMac], "other session");
        // Reflected back to its sender: the client's opener uses s2c keys.
        let mut reflected = genuine.clone();
        reject(
            &mut client.opener,
            &mut reflected,
            &[OpenError::BadMac],
            "reflected",
        );

        // After all of that, the genuine packet opens, exactly once.
        let mut ok = genuine.clone();
        let opened = rx.open(&mut ok).expect("genuine packet after forgeries");
        assert_eq!(opened.msgnr, i);
        assert_eq!(opened.ptype, ptype);
        assert_eq!(opened.payload, &plain[..]);
        let mut again = genuine.clone();
        reject(rx, &mut again, &[OpenError::Replayed], "replay");

        // The sender's own opener still works after the reflection.
        let reply = seal(&mut server, 0, &plain);
        let mut reply_rx = reply.clone();
        let back = client.opener.open(&mut reply_rx).expect("reply opens");
        assert_eq!(back.payload, &plain[..]);
    }
    assert!(flips > 500_000, "flipped {flips} bits");
}

/// Forged datagrams of the largest size and beyond: parsed and rejected
/// without allocation or panic.
#[test]
fn oversized_and_extreme_headers() {
    oversized_and_extreme(Suite::Vsl1);
    oversized_and_extreme(Suite::Aes256Gcm);
}

fn oversized_and_extreme(suite: Suite) {
    let (_, mut server) = suite_pair(suite, 0x33);
    let magic = &suite.magic();
    let mut big = vec![0u8; HEADER_LEN + MAX_DATALEN + 1];
    big[24..28].copy_from_slice(magic);
    big[29..33].copy_from_slice(&((MAX_DATALEN + 1) as u32).to_be_bytes());
    reject(
        &mut server.opener,
        &mut big,
        &[OpenError::Malformed],
        "over max",
    );
    let mut max = vec![0u8; HEADER_LEN + MAX_DATALEN];
    max[24..28].copy_from_slice(magic);
    max[29..33].copy_from_slice(&(MAX_DATALEN as u32).to_be_bytes());
    reject(&mut server.opener, &mut max, &[OpenError::BadMac], "max");
    let mut huge_len = vec![0u8; HEADER_LEN];
    huge_len[24..28].copy_from_slice(magic);
    huge_len[29..33].copy_from_slice(&u32::MAX.to_be_bytes());
    reject(
        &mut server.opener,
        &mut huge_len,
        &[OpenError::Malformed],
        "datalen u32::MAX",
    );
    // msgnr past MSGNR_LIMIT (and u64::MAX) never reaches the MAC.
    for msgnr in [vfer::vsl::MSGNR_LIMIT + 1, u64::MAX] {
        let mut dg = vec![0u8; HEADER_LEN];
        dg[..8].copy_from_slice(&msgnr.to_be_bytes());
        dg[24..28].copy_from_slice(magic);
        reject(
            &mut server.opener,
            &mut dg,
            &[OpenError::Replayed],
            "msgnr over limit",
        );
    }
}
