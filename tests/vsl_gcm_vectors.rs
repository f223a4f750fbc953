//! Golden vectors of the negotiated key schedule and the AES-256-GCM suite:
//! `tests/vectors/vsl_gcm.json` must be exactly what this code produces, and
//! every datagram in it must open to its plaintext. (`vsl.json`, the VSL1
//! vectors with an empty suite binding, is checked by `vsl_vectors.rs` and
//! does not change.)
//!
//! Regenerate (after a deliberate wire change only) with
//! `VFER_REGENERATE_VECTORS=1 cargo test --release --test vsl_gcm_vectors`.
//! The format is described in docs/PROTOCOL.md §1.8.

use serde::{Deserialize, Serialize};
use vfer::vsl::{
    DirectionKeys, GcmDirectionKeys, Opener, Sealer, Suite, SuiteKeys, HEADER_LEN, KEY_LEN,
    MAX_DATALEN, MSGNR_LIMIT, NONCE_LEN,
};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/vsl_gcm.json");

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Vector {
    /// What this vector shows (informative).
    description: String,
    /// The chosen suite's packet magic: "VSL2" (AES-256-GCM) or "VSL1".
    suite: String,
    secret: String,
    client_nonce: String,
    server_nonce: String,
    dh_shared: String,
    /// The offer exactly as in the REQUEST: count, then suite ids.
    offer: String,
    /// The chosen suite's id, as in the RESPONSE.
    chosen: u8,
    /// offer || chosen: the suite binding appended to the HKDF salt.
    binding: String,
    /// VSL2: c2s_key, c2s_iv, s2c_key, s2c_iv; VSL1: c2s_enc, c2s_mac, s2c_enc, s2c_mac.
    keys: std::collections::BTreeMap<String, String>,
    packets: Vec<Packet>,
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

fn arr<const N: usize>(v: &[u8]) -> [u8; N] {
    v.try_into().expect("right length")
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

/// One direction's sealer/opener keys of either suite.
enum Dir {
    V1(DirectionKeys),
    Gcm(GcmDirectionKeys),
}

impl Dir {
    fn sealer(&self, msgnr: u64) -> Sealer {
        match self {
            Dir::V1(k) => Sealer::new(k, msgnr),
            Dir::Gcm(k) => Sealer::new(k, msgnr),
        }
    }
    fn opener(&self) -> Opener {
        match self {
            Dir::V1(k) => Opener::new(k),
            Dir::Gcm(k) => Opener::new(k),
        }
    }
}

/// (c2s, s2c, the keys as named hex strings)
fn split(keys: &SuiteKeys) -> (Dir, Dir, std::collections::BTreeMap<String, String>) {
    let mut m = std::collections::BTreeMap::new();
    match keys {
        SuiteKeys::Vsl1(k) => {
            m.insert("c2s_enc".into(), hex::encode(k.c2s.enc));
            m.insert("c2s_mac".into(), hex::encode(k.c2s.mac));
            m.insert("s2c_enc".into(), hex::encode(k.s2c.enc));
            m.insert("s2c_mac".into(), hex::encode(k.s2c.mac));
            (Dir::V1(k.c2s.clone()), Dir::V1(k.s2c.clone()), m)
        }
        SuiteKeys::Aes256Gcm(k) => {
            m.insert("c2s_key".into(), hex::encode(k.c2s.key));
            m.insert("c2s_iv".into(), hex::encode(k.c2s.iv));
            m.insert("s2c_key".into(), hex::encode(k.s2c.key));
            m.insert("s2c_iv".into(), hex::encode(k.s2c.iv));
            (Dir::Gcm(k.c2s.clone()), Dir::Gcm(k.s2c.clone()), m)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn build(
    description: &str,
    secret: [u8; KEY_LEN],
    client_nonce: [u8; NONCE_LEN],
    server_nonce: [u8; NONCE_LEN],
    dh: [u8; 32],
    offer: &[u8],
    chosen: Suite,
    specs: &[Spec],
) -> Vector {
    let mut binding = offer.to_vec();
    binding.push(chosen.id());
    let keys = SuiteKeys::derive(
        chosen,
        &secret,
        &client_nonce,
        &server_nonce,
        Some(&dh),
        &binding,
    );
    let (c2s, s2c, named) = split(&keys);
    let packets = specs
        .iter()
        .map(|&(direction, msgnr, ptype, len)| {
            let dk = if direction == "c2s" { &c2s } else { &s2c };
            let pt = plaintext(msgnr ^ (len as u64) << 32 ^ u64::from(ptype) ^ 0x5a5a, len);
            let mut out = vec![0u8; HEADER_LEN + len];
            let (n, l) = dk
                .sealer(msgnr)
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
        suite: chosen.protocol_name().to_string(),
        secret: hex::encode(secret),
        client_nonce: hex::encode(client_nonce),
        server_nonce: hex::encode(server_nonce),
        dh_shared: hex::encode(dh),
        offer: hex::encode(offer),
        chosen: chosen.id(),
        binding: hex::encode(&binding),
        keys: named,
        packets,
    }
}

fn generate() -> Vec<Vector> {
    let secret = arr(&pattern(0x00, 32));
    let cn = arr(&pattern(0x20, 32));
    let sn = arr(&pattern(0x40, 32));
    let dh = arr(&pattern(0x60, 32));
    let max = MAX_DATALEN;
    vec![
        build(
            "AES-256-GCM (VSL2) from the default offer [0x02, 0x01]: datalen 0, 1, 15, 16, \
             17, 100 and the maximum, both directions, several types, msgnr up to MSGNR_LIMIT",
            secret,
            cn,
            sn,
            dh,
            &[0x02, 0x02, 0x01],
            Suite::Aes256Gcm,
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
            "AES-256-GCM from another offer (VSL1 first, an unknown id 0x09): the binding \
             differs, so every key and IV differs from the first vector's",
            secret,
            cn,
            sn,
            dh,
            &[0x03, 0x01, 0x09, 0x02],
            Suite::Aes256Gcm,
            &[("c2s", 0, 0x00, 16), ("s2c", 0, 0x00, 16)],
        ),
        build(
            "VSL1 (AES-256-CTR + HMAC-SHA256) chosen from the default offer by a server that \
             accepts only VSL1: same packet format as vsl.json, keys bound to the offer",
            secret,
            cn,
            sn,
            dh,
            &[0x02, 0x02, 0x01],
            Suite::Vsl1,
            &[
                ("c2s", 0, 0x00, 0),
                ("c2s", 1, 0x00, 17),
                ("s2c", 0, 0x00, 100),
            ],
        ),
        build(
            "VSL1 offered alone ([0x01], a client with --cipher vsl1)",
            secret,
            cn,
            sn,
            dh,
            &[0x01, 0x01],
            Suite::Vsl1,
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
            std::fs::write(PATH, text).expect("write tests/vectors/vsl_gcm.json");
        }
    });
    let text = std::fs::read_to_string(PATH).expect("read tests/vectors/vsl_gcm.json");
    serde_json::from_str(&text).expect("parse tests/vectors/vsl_gcm.json")
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
/// with the keys the file states, gives its plaintext, type and msgnr, and
/// the other direction's keys refuse it.
#[test]
fn stored_datagrams_open_with_stored_keys() {
    let mut gcm_lens = std::collections::BTreeSet::new();
    for v in &stored() {
        let k = |name: &str| unhex(&v.keys[name]);
        let (c2s, s2c) = match v.suite.as_str() {
            "VSL2" => (
                Dir::Gcm(GcmDirectionKeys {
                    key: arr(&k("c2s_key")),
                    iv: arr(&k("c2s_iv")),
                }),
                Dir::Gcm(GcmDirectionKeys {
                    key: arr(&k("s2c_key")),
                    iv: arr(&k("s2c_iv")),
                }),
            ),
            "VSL1" => (
                Dir::V1(DirectionKeys {
                    enc: arr(&k("c2s_enc")),
                    mac: arr(&k("c2s_mac")),
                }),
                Dir::V1(DirectionKeys {
                    enc: arr(&k("s2c_enc")),
                    mac: arr(&k("s2c_mac")),
                }),
            ),
            other => panic!("unknown suite {other}"),
        };
        let mut binding = unhex(&v.offer);
        binding.push(v.chosen);
        assert_eq!(hex::encode(&binding), v.binding);
        for p in &v.packets {
            let (ours, theirs) = match p.direction.as_str() {
                "c2s" => (&c2s, &s2c),
                "s2c" => (&s2c, &c2s),
                other => panic!("bad direction {other}"),
            };
            let mut dg = unhex(&p.datagram);
            assert_eq!(&dg[24..28], v.suite.as_bytes());
            let plain = unhex(&p.plaintext);
            let msgnr: u64 = p.msgnr.parse().expect("msgnr is a decimal string");
            let mut reflected = dg.clone();
            assert!(theirs.opener().open(&mut reflected).is_err());
            let opened = ours.opener().open(&mut dg).expect("vector opens");
            assert_eq!(opened.msgnr, msgnr);
            assert_eq!(opened.ptype, p.ptype);
            assert_eq!(opened.payload, &plain[..]);
            if v.suite == "VSL2" {
                gcm_lens.insert(plain.len());
            }
        }
    }
    for len in [0, 1, 15, 16, 17, MAX_DATALEN] {
        assert!(gcm_lens.contains(&len), "GCM vectors miss {len}");
    }
}
