//! Unit tests of `handshake.rs`.

use super::*;

fn params() -> TransportParams {
    TransportParams {
        max_udp_payload: 1452,
        initial_max_data: 1 << 20,
        idle_timeout_ms: 30_000,
    }
}

fn all() -> Offer {
    Offer::new(vsl::ALL_SUITES)
}

/// Seals both directions' first packet and checks each opens at the
/// other end: the two sides hold the same keys.
fn keys_agree(kc: &SuiteKeys, ks: &SuiteKeys) -> bool {
    let mut c = vsl::Session::new(kc, vsl::Role::Client, 0);
    let mut s = vsl::Session::new(ks, vsl::Role::Server, 0);
    let mut buf = [0u8; 64];
    let (_, l) = c.sealer.seal(0, b"ping", &mut buf).unwrap();
    let up = s.opener.open(&mut buf[..l]).is_ok();
    let (_, l) = s.sealer.seal(0, b"pong", &mut buf).unwrap();
    up && c.opener.open(&mut buf[..l]).is_ok()
}

#[test]
fn both_sides_agree_on_suite_and_keys() {
    let secret = [5u8; 32];
    let c = HandshakeRandom::from_seed(1);
    let s = HandshakeRandom::from_seed(2);
    for (offer, accepted, want) in [
        (all(), vsl::ALL_SUITES, Suite::Aes256Gcm),
        (Offer::new(&[Suite::Vsl1]), vsl::ALL_SUITES, Suite::Vsl1),
        (all(), &[Suite::Vsl1][..], Suite::Vsl1),
        (
            Offer::new(&[Suite::Vsl1, Suite::Aes256Gcm]),
            vsl::ALL_SUITES,
            Suite::Aes256Gcm,
        ),
    ] {
        let mut req = encode_request(&secret, &c, &params(), &offer);
        assert_eq!(req.len(), REQUEST_DATAGRAM_LEN);
        let r = decode_request(&secret, &mut req).unwrap();
        assert_eq!(r.params, params());
        assert_eq!(r.offer, offer);
        let chosen = r.offer.choose(accepted).unwrap();
        assert_eq!(chosen, want);
        let mut resp = encode_response(&secret, &r.nonce, &s, &params(), chosen);
        assert_eq!(resp.len(), RESPONSE_DATAGRAM_LEN);
        let p = decode_response(&secret, &c.nonce, &offer, &mut resp).unwrap();
        assert_eq!(p.suite, want);
        let kc = session_keys(
            &secret,
            &c.nonce,
            &p.nonce,
            &c.dh_secret,
            &p.public,
            &offer,
            p.suite,
        )
        .unwrap();
        let ks = session_keys(
            &secret,
            &r.nonce,
            &s.nonce,
            &s.dh_secret,
            &r.public,
            &r.offer,
            chosen,
        )
        .unwrap();
        assert_eq!(kc.suite(), want);
        assert!(keys_agree(&kc, &ks));
    }
}

/// A man in the middle who could rewrite the offer (here: a peer that
/// saw a different offer than the client sent) gets keys that do not
/// match, and the choice of an unoffered suite is refused outright.
#[test]
fn a_stripped_offer_or_an_unoffered_choice_fails() {
    let secret = [5u8; 32];
    let c = HandshakeRandom::from_seed(1);
    let s = HandshakeRandom::from_seed(2);
    let sent = all();
    let stripped = Offer::new(&[Suite::Vsl1]);
    let kc = session_keys(
        &secret,
        &c.nonce,
        &s.nonce,
        &c.dh_secret,
        &s.public(),
        &sent,
        Suite::Vsl1,
    )
    .unwrap();
    let ks = session_keys(
        &secret,
        &c.nonce,
        &s.nonce,
        &s.dh_secret,
        &c.public(),
        &stripped,
        Suite::Vsl1,
    )
    .unwrap();
    assert!(!keys_agree(&kc, &ks));
    let mut resp = encode_response(&secret, &c.nonce, &s, &params(), Suite::Aes256Gcm);
    assert_eq!(
        decode_response(&secret, &c.nonce, &stripped, &mut resp).unwrap_err(),
        HandshakeError::NotOffered
    );
    // And the handshake MAC already refuses an edited REQUEST.
    let mut req = encode_request(&secret, &c, &params(), &sent);
    req[HEADER_LEN + OFFER_OFFSET + 1] = Suite::Vsl1.id();
    assert_eq!(
        decode_request(&secret, &mut req).unwrap_err(),
        HandshakeError::Auth
    );
}

#[test]
fn offer_parsing() {
    assert_eq!(Offer::read(&[0, 1]), None);
    assert_eq!(Offer::read(&[2, 1]), None);
    assert_eq!(Offer::read(&[17; 40]), None);
    let o = Offer::read(&[3, 9, 2, 1, 0, 0]).unwrap();
    assert_eq!(o.as_bytes(), &[3, 9, 2, 1]);
    assert_eq!(
        o.choose(&[Suite::Vsl1, Suite::Aes256Gcm]),
        Some(Suite::Vsl1)
    );
    assert_eq!(o.suites().count(), 2);
    assert_eq!(Offer::read(&[1, 9]).unwrap().choose(vsl::ALL_SUITES), None);
    assert_eq!(
        o.to_string(),
        "unknown suite 0x09, AES-256-GCM, AES-256-CTR+HMAC-SHA256-128"
    );
    let (b, n) = o.binding(Suite::Vsl1);
    assert_eq!(&b[..n], &[3, 9, 2, 1, 1]);
}

#[test]
fn request_carries_its_timestamp_at_payload_offset_84() {
    let secret = [5u8; 32];
    let mut c = HandshakeRandom::from_seed(1);
    let when = std::time::Duration::new(1_800_000_000, 123_456_789);
    c.timestamp = Tai64n::from_unix(when);
    let mut req = encode_request(&secret, &c, &params(), &all());
    let r = decode_request(&secret, &mut req.clone()).unwrap();
    assert_eq!(r.timestamp, c.timestamp);
    assert_eq!(r.timestamp.to_unix(), Some(when));
    // Decrypted in place: the payload starts after the 33-byte header.
    decode_request(&secret, &mut req).unwrap();
    let p = &req[HEADER_LEN..];
    assert_eq!(
        &p[84..92],
        &((1u64 << 62) + 10 + 1_800_000_000).to_be_bytes()
    );
    assert_eq!(&p[92..96], &123_456_789u32.to_be_bytes());
    // Then the suite offer (count 2: VSL2, VSL1), then zero padding.
    assert_eq!(&p[96..99], &[2, Suite::Aes256Gcm.id(), Suite::Vsl1.id()]);
    assert!(
        p[99..].iter().all(|&b| b == 0),
        "padding after the offer is zero"
    );
    // Byte order is time order.
    assert!(Tai64n::from_unix(when) < Tai64n::from_unix(when + std::time::Duration::from_nanos(1)));
    assert!(Tai64n([0; 12]).to_unix().is_none());
}

#[test]
fn wrong_secret_and_low_order_rejected() {
    let c = HandshakeRandom::from_seed(1);
    let mut req = encode_request(&[5u8; 32], &c, &params(), &all());
    assert_eq!(
        decode_request(&[6u8; 32], &mut req).unwrap_err(),
        HandshakeError::Auth
    );
    let zero = [0u8; 32];
    assert!(matches!(
        session_keys(
            &[5; 32],
            &[1; 32],
            &[2; 32],
            &c.dh_secret,
            &zero,
            &all(),
            Suite::Vsl1
        ),
        Err(HandshakeError::LowOrder)
    ));
}

mod negotiation {
    use std::time::Instant;

    use super::super::super::config::Config;
    use super::super::super::connection::Connection;
    use super::*;
    use crate::vsl::CipherChoice;

    const S: [u8; 32] = [9; 32];

    /// Runs a handshake between two sans-IO connections, letting
    /// `tamper` rewrite the REQUEST on the way. Returns the suite each
    /// side ended with and whether the server heard the client under
    /// the session keys (the connection confirmed).
    fn handshake(
        client: CipherChoice,
        server: CipherChoice,
        tamper: impl Fn(&mut Vec<u8>),
    ) -> Result<(Option<Suite>, Option<Suite>, bool), HandshakeError> {
        let now = Instant::now();
        let cfg = |cipher| Config {
            cipher,
            ..Config::default()
        };
        let mut c = Connection::client(cfg(client), &S, HandshakeRandom::from_seed(1), now);
        let mut buf = vec![0u8; 1 << 16];
        let n = c.poll_transmit(now, &mut buf).expect("REQUEST");
        let mut req = buf[..n].to_vec();
        tamper(&mut req);
        let mut s = Connection::server(
            cfg(server),
            &S,
            HandshakeRandom::from_seed(2),
            now,
            &mut req,
        )?;
        for _ in 0..4 {
            while let Some(n) = s.poll_transmit(now, &mut buf) {
                c.handle_datagram(now, &mut buf[..n]);
            }
            while let Some(n) = c.poll_transmit(now, &mut buf) {
                s.handle_datagram(now, &mut buf[..n]);
            }
        }
        Ok((c.stats().suite, s.stats().suite, s.is_confirmed()))
    }

    #[test]
    fn the_fastest_common_suite_wins() {
        use CipherChoice::*;
        let gcm = Some(Suite::Aes256Gcm);
        let v1 = Some(Suite::Vsl1);
        for (client, server, want) in [
            (Auto, Auto, gcm),
            (Vsl1, Auto, v1),
            (Auto, Vsl1, v1),
            (Aes256Gcm, Auto, gcm),
            (Auto, Aes256Gcm, gcm),
            (Vsl1, Vsl1, v1),
        ] {
            let got = handshake(client, server, |_| {}).unwrap();
            assert_eq!(got, (want, want, true), "{client:?} -> {server:?}");
        }
    }

    #[test]
    fn no_common_suite_gets_no_connection() {
        for (client, server) in [
            (CipherChoice::Vsl1, CipherChoice::Aes256Gcm),
            (CipherChoice::Aes256Gcm, CipherChoice::Vsl1),
        ] {
            assert_eq!(
                handshake(client, server, |_| {}).unwrap_err(),
                HandshakeError::NoCommonSuite
            );
        }
    }

    /// A man in the middle without the secret cannot strip VSL2 from
    /// the offer: the REQUEST no longer authenticates.
    #[test]
    fn stripping_the_offer_without_the_secret_fails() {
        let strip = |req: &mut Vec<u8>| {
            let o = HEADER_LEN + OFFER_OFFSET;
            req[o..o + 3].copy_from_slice(&[1, Suite::Vsl1.id(), 0]);
        };
        assert_eq!(
            handshake(CipherChoice::Auto, CipherChoice::Auto, strip).unwrap_err(),
            HandshakeError::Auth
        );
    }

    /// Even one who could forge handshake packets (here: holds `S`) and
    /// rewrites the offer to VSL1 alone gets a server on VSL1 with keys
    /// bound to the stripped offer, a client bound to its real offer,
    /// and no connection: the downgrade fails.
    #[test]
    fn stripping_the_offer_with_the_secret_still_fails() {
        let forge = |req: &mut Vec<u8>| {
            let params = TransportParams::read(&req[HEADER_LEN + 68..]).unwrap();
            *req = encode_request(
                &S,
                &HandshakeRandom::from_seed(1),
                &params,
                &Offer::new(&[Suite::Vsl1]),
            );
        };
        let (c, s, confirmed) = handshake(CipherChoice::Auto, CipherChoice::Auto, forge).unwrap();
        assert_eq!((c, s), (Some(Suite::Vsl1), Some(Suite::Vsl1)));
        assert!(!confirmed, "a downgraded handshake must not confirm");
    }
}
