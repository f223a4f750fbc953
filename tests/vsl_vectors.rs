//! Golden VSL vectors: `tests/vectors/vsl.json` must be exactly what this
//! code produces, and every datagram in it must open to its plaintext.
//!
//! Regenerate (after a deliberate wire change only) with
//! `VFER_REGENERATE_VECTORS=1 cargo test --release --test vsl_vectors`.
//! The format is described in docs/PROTOCOL.md ("Test vectors").

use serde::{Deserialize, Serialize};
use vfer::vsl::{
    DirectionKeys, Opener, Sealer, SessionKeys, HEADER_LEN, KEY_LEN, MAX_DATALEN, MSGNR_LIMIT,
    NONCE_LEN,
};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/vsl.json");

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Vector {
    /// What this vector shows (informative).
    description: String,
    secret: String,
    client_nonce: String,
    server_nonce: String,
    /// X25519 shared secret mixed into the key schedule, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dh_shared: Option<String>,
    keys: Keys,
    packets: Vec<Packet>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Keys {
    c2s_enc: String,
    c2s_mac: String,
    s2c_enc: String,
    s2c_mac: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Packet {
    direction: String,
    /// Decimal string: exact in every JSON parser, even above 2^53.
    msgnr: String,
    #[serde(rename = "type")]
    ptype: u8,
    plaintext: String,
    datagram: String,
}

fn pattern(start: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| start.wrapping_add(i as u8)).collect()
}

fn arr32(v: &[u8]) -> [u8; 32] {
    v.try_into().expect("32 bytes")
}

/// Deterministic, varied plaintext: not all one byte, differs per packet.
fn plaintext(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// (direction, msgnr, type, datalen)
type Spec = (&'static str, u64, u8, usize);

fn build(
    description: &str,
    secret: [u8; KEY_LEN],
    client_nonce: [u8; NONCE_LEN],
    server_nonce: [u8; NONCE_LEN],
    dh: Option<[u8; 32]>,
    specs: &[Spec],
) -> Vector {
    let keys = SessionKeys::derive(&secret, &client_nonce, &server_nonce, dh.as_ref());
    let packets = specs
        .iter()
        .map(|&(direction, msgnr, ptype, len)| {
            let dk = match direction {
                "c2s" => &keys.c2s,
                _ => &keys.s2c,
            };
            let pt = plaintext(msgnr ^ (len as u64) << 32 ^ u64::from(ptype), len);
            let mut out = vec![0u8; HEADER_LEN + len];
            let (n, l) = Sealer::new(dk, msgnr)
                .seal(ptype, &pt, &mut out)
                .expect("seal vector packet");
            assert_eq!((n, l), (msgnr, out.len()));
            Packet {
                direction: direction.to_string(),
                msgnr: msgnr.to_string(),
                ptype,
                plaintext: hex::encode(&pt),
                datagram: hex::encode(&out),
            }
        })
        .collect();
    Vector {
        description: description.to_string(),
        secret: hex::encode(secret),
        client_nonce: hex::encode(client_nonce),
        server_nonce: hex::encode(server_nonce),
        dh_shared: dh.map(hex::encode),
        keys: Keys {
            c2s_enc: hex::encode(keys.c2s.enc),
            c2s_mac: hex::encode(keys.c2s.mac),
            s2c_enc: hex::encode(keys.s2c.enc),
            s2c_mac: hex::encode(keys.s2c.mac),
        },
        packets,
    }
}

fn generate() -> Vec<Vector> {
    let secret = arr32(&pattern(0x00, 32));
    let cn = arr32(&pattern(0x20, 32));
    let sn = arr32(&pattern(0x40, 32));
    let dh = arr32(&pattern(0x60, 32));
    let max = MAX_DATALEN;
    vec![
        build(
            "no DH result: datalen 0, 1, 15, 16, 17, 100 and the maximum, both directions, \
             several types up to 0xff, msgnr up to MSGNR_LIMIT",
            secret,
            cn,
            sn,
            None,
            &[
                ("c2s", 0, 0x00, 0),
                ("c2s", 1, 0x00, 1),
                ("c2s", 2, 0x01, 15),
                ("c2s", 3, 0x02, 16),
                ("c2s", 4, 0x03, 17),
                ("c2s", 5, 0x00, 100),
                ("c2s", 6, 0x00, max),
                ("s2c", 0, 0x00, 0),
                ("s2c", 1, 0x10, 1),
                ("s2c", 2, 0x7f, 16),
                ("s2c", 3, 0xff, 17),
                ("s2c", 0x0123_4567_89ab_cdef, 0x00, 33),
                ("s2c", MSGNR_LIMIT, 0x00, 17),
            ],
        ),
        build(
            "with an X25519 result (dh_shared): same secret and nonces, different keys",
            secret,
            cn,
            sn,
            Some(dh),
            &[
                ("c2s", 0, 0x00, 0),
                ("c2s", 1, 0x00, 1),
                ("c2s", 2, 0x00, 15),
                ("c2s", 3, 0x00, 16),
                ("c2s", 4, 0x00, 17),
                ("s2c", 0, 0x00, 0),
                ("s2c", 1, 0x00, 17),
                ("s2c", 2, 0x05, max),
            ],
        ),
        build(
            "same secret, fresh nonces: every key differs from the first vector's",
            secret,
            arr32(&pattern(0xa0, 32)),
            arr32(&pattern(0xc0, 32)),
            None,
            &[("c2s", 0, 0x00, 16), ("s2c", 0, 0x00, 16)],
        ),
    ]
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("vector hex")
}

/// The vectors in the file; rewritten first (once per test run) when
/// `VFER_REGENERATE_VECTORS=1`.
fn stored() -> Vec<Vector> {
    static REGENERATED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    REGENERATED.get_or_init(|| {
        if std::env::var("VFER_REGENERATE_VECTORS").is_ok_and(|v| v == "1") {
            let mut text = serde_json::to_string_pretty(&generate()).expect("serialize vectors");
            text.push('\n');
            std::fs::write(PATH, text).expect("write tests/vectors/vsl.json");
        }
    });
    let text = std::fs::read_to_string(PATH).expect("read tests/vectors/vsl.json");
    serde_json::from_str(&text).expect("parse tests/vectors/vsl.json")
}

#[test]
fn golden_vectors_match_the_file() {
    let generated = generate();
    let stored = stored();
    assert_eq!(stored.len(), generated.len(), "number of vectors");
    for (i, (s, g)) in stored.iter().zip(&generated).enumerate() {
        assert_eq!(s.keys, g.keys, "vector {i}: keys");
        assert_eq!(s.packets.len(), g.packets.len(), "vector {i}: packet count");
        for (j, (sp, gp)) in s.packets.iter().zip(&g.packets).enumerate() {
            assert!(
                sp == gp,
                "vector {i} packet {j} differs from what vfer produces"
            );
        }
        assert_eq!(s, g, "vector {i}");
    }
}

/// The file is self-consistent from the opening side: each datagram, opened
/// with the keys the file states, gives its plaintext, type and msgnr; and
/// the file covers every required datalen with and without a DH result.
#[test]
fn stored_datagrams_open_with_stored_keys() {
    let stored = stored();
    let mut lens_without_dh = std::collections::BTreeSet::new();
    let mut lens_with_dh = std::collections::BTreeSet::new();
    for v in &stored {
        let keys = |enc: &str, mac: &str| DirectionKeys {
            enc: arr32(&unhex(enc)),
            mac: arr32(&unhex(mac)),
        };
        let c2s = keys(&v.keys.c2s_enc, &v.keys.c2s_mac);
        let s2c = keys(&v.keys.s2c_enc, &v.keys.s2c_mac);
        let derived = SessionKeys::derive(
            &arr32(&unhex(&v.secret)),
            &arr32(&unhex(&v.client_nonce)),
            &arr32(&unhex(&v.server_nonce)),
            v.dh_shared.as_deref().map(|d| arr32(&unhex(d))).as_ref(),
        );
        assert_eq!(derived.c2s.enc, c2s.enc);
        assert_eq!(derived.c2s.mac, c2s.mac);
        assert_eq!(derived.s2c.enc, s2c.enc);
        assert_eq!(derived.s2c.mac, s2c.mac);
        for p in &v.packets {
            let (ours, theirs) = match p.direction.as_str() {
                "c2s" => (&c2s, &s2c),
                "s2c" => (&s2c, &c2s),
                other => panic!("bad direction {other}"),
            };
            let mut dg = unhex(&p.datagram);
            let plain = unhex(&p.plaintext);
            let msgnr: u64 = p.msgnr.parse().expect("msgnr is a decimal string");
            // The other direction's keys must not open it (reflection).
            let mut reflected = dg.clone();
            assert!(Opener::new(theirs).open(&mut reflected).is_err());
            let opened = Opener::new(ours).open(&mut dg).expect("vector opens");
            assert_eq!(opened.msgnr, msgnr);
            assert_eq!(opened.ptype, p.ptype);
            assert_eq!(opened.payload, &plain[..]);
            if v.dh_shared.is_some() {
                lens_with_dh.insert(plain.len());
            } else {
                lens_without_dh.insert(plain.len());
            }
        }
    }
    for len in [0, 1, 15, 16, 17, MAX_DATALEN] {
        assert!(lens_without_dh.contains(&len), "no-DH vectors miss {len}");
        assert!(lens_with_dh.contains(&len), "DH vectors miss {len}");
    }
}
