//! Unit tests of `packet.rs`.

use super::*;

fn pair() -> (Session, Session) {
    let keys = SessionKeys::derive(&[1; 32], &[2; 32], &[3; 32], None);
    (
        Session::new(&keys, Role::Client, 0),
        Session::new(&keys, Role::Server, 0),
    )
}

fn suite_pair(suite: Suite) -> (Session, Session) {
    let keys = SuiteKeys::derive(suite, &[1; 32], &[2; 32], &[3; 32], None, &[1, 2, 2]);
    (
        Session::new(&keys, Role::Client, 0),
        Session::new(&keys, Role::Server, 0),
    )
}

#[test]
fn every_suite_round_trips_and_rejects_replay_reflection_and_tampering() {
    for &suite in crate::vsl::ALL_SUITES {
        let (mut c, mut s) = suite_pair(suite);
        assert_eq!(c.suite(), suite);
        let mut buf = [0u8; 200];
        for len in [0usize, 1, 15, 16, 17, 100] {
            let payload: Vec<u8> = (0..len as u8).collect();
            let (n, l) = c.sealer.seal(3, &payload, &mut buf).unwrap();
            assert_eq!(&buf[24..28], &suite.magic());
            let copy = buf;
            let opened = s.opener.open(&mut buf[..l]).unwrap();
            assert_eq!((opened.msgnr, opened.ptype), (n, 3));
            assert_eq!(opened.payload, &payload[..]);
            let mut again = copy;
            assert_eq!(s.opener.open(&mut again[..l]), Err(OpenError::Replayed));
            let mut reflected = copy;
            assert_eq!(c.opener.open(&mut reflected[..l]), Err(OpenError::BadMac));
        }
        let (n, l) = c.sealer.seal(0, &[0x55; 40], &mut buf).unwrap();
        let good = buf;
        for i in (0..l).filter(|i| !(24..28).contains(i)) {
            let mut bad = good;
            bad[i] ^= 0x01;
            assert!(s.opener.open(&mut bad[..l]).is_err(), "{suite:?} byte {i}");
        }
        let mut ok = good;
        assert_eq!(s.opener.open(&mut ok[..l]).unwrap().msgnr, n);
    }
}

#[test]
fn an_opener_refuses_the_other_suites_packets() {
    let (mut v1, _) = suite_pair(Suite::Vsl1);
    let (mut g, _) = suite_pair(Suite::Aes256Gcm);
    let mut buf = [0u8; 64];
    let (_, l) = v1.sealer.seal(0, b"hello", &mut buf).unwrap();
    // Even with the magic rewritten, the other suite's packet fails.
    let mut p = buf;
    assert_eq!(g.opener.open(&mut p[..l]), Err(OpenError::Malformed));
    p = buf;
    p[24..28].copy_from_slice(b"VSL2");
    assert_eq!(g.opener.open(&mut p[..l]), Err(OpenError::BadMac));
    let (_, l) = g.sealer.seal(0, b"hello", &mut buf).unwrap();
    let mut p = buf;
    assert_eq!(v1.opener.open(&mut p[..l]), Err(OpenError::Malformed));
}

#[test]
fn gcm_nonce_is_iv_xor_msgnr() {
    let iv = [0xffu8; 12];
    let n = gcm_nonce(&iv, 0x0102_0304_0506_0708);
    assert_eq!(n[..4], [0xff; 4]);
    assert_eq!(n[4..], [0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8, 0xf7]);
}

#[test]
fn seal_open_round_trip() {
    let (mut c, mut s) = pair();
    let mut buf = [0u8; 200];
    for len in [0usize, 1, 15, 16, 17, 100] {
        let payload: Vec<u8> = (0..len as u8).collect();
        let (n, l) = c.sealer.seal(0, &payload, &mut buf).unwrap();
        let opened = s.opener.open(&mut buf[..l]).unwrap();
        assert_eq!(opened.msgnr, n);
        assert_eq!(opened.payload, &payload[..]);
    }
}

#[test]
fn replay_and_reflection_rejected() {
    let (mut c, mut s) = pair();
    let mut buf = [0u8; 64];
    let (_, l) = c.sealer.seal(0, b"hello", &mut buf).unwrap();
    let copy = buf;
    s.opener.open(&mut buf[..l]).unwrap();
    let mut again = copy;
    assert_eq!(s.opener.open(&mut again[..l]), Err(OpenError::Replayed));
    let mut reflected = copy;
    assert_eq!(c.opener.open(&mut reflected[..l]), Err(OpenError::BadMac));
}

#[test]
fn consecutive_packets_use_distinct_keystream() {
    let (mut c, _) = pair();
    let zeros = [0u8; 64];
    let mut a = [0u8; HEADER_LEN + 64];
    let mut b = [0u8; HEADER_LEN + 64];
    c.sealer.seal(0, &zeros, &mut a).unwrap();
    c.sealer.seal(0, &zeros, &mut b).unwrap();
    // With Ctr128BE and IV = msgnr||0, packet n+1's first block would be
    // packet n's second block. Ctr64BE puts msgnr in the nonce half.
    assert_ne!(
        a[HEADER_LEN + 16..HEADER_LEN + 32],
        b[HEADER_LEN..HEADER_LEN + 16]
    );
}

#[test]
fn refuses_to_wrap() {
    let keys = SessionKeys::derive(&[1; 32], &[2; 32], &[3; 32], None);
    let mut s = Sealer::new(&keys.c2s, MSGNR_LIMIT);
    let mut buf = [0u8; HEADER_LEN];
    assert!(s.seal_in_place(0, &mut buf).is_ok());
    assert_eq!(s.seal_in_place(0, &mut buf), Err(SealError::MsgnrExhausted));
}
