//! Known-answer tests for the primitives under VSL, run through the exact code
//! paths vfer uses (`vfer::vsl::kat` hooks into `src/vsl/packet.rs` and
//! `src/vsl/keys.rs`): NIST SP 800-38A F.5.5, RFC 4231, RFC 5869, and for
//! the AES-256-GCM suite the GCM specification's AES-256 test cases (McGrew
//! and Viega, "The Galois/Counter Mode of Operation", test cases 13, 14 and
//! 16, the 96-bit-IV cases of NIST's GCM validation).

use vfer::vsl::kat;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test vector hex")
}

/// NIST SP 800-38A, F.5.5 CTR-AES256.Encrypt (and F.5.6 Decrypt: CTR is its
/// own inverse). The NIST initial counter block f0f1..feff counts only four
/// blocks from its low half f8f9fafbfcfdfeff, so no carry reaches the high
/// half and `Ctr64BE` must produce exactly the published ciphertext.
#[test]
fn nist_sp800_38a_f55_ctr_aes256() {
    let key: [u8; 32] = h("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
        .try_into()
        .unwrap();
    let iv: [u8; 16] = h("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff").try_into().unwrap();
    let plaintext = h(concat!(
        "6bc1bee22e409f96e93d7e117393172a",
        "ae2d8a571e03ac9c9eb76fac45af8e51",
        "30c81c46a35ce411e5fbc1191a0a52ef",
        "f69f2445df4f9b17ad2b417be66c3710"
    ));
    let ciphertext = h(concat!(
        "601ec313775789a5b7a7f504bbf3d228",
        "f443e3ca4d62b59aca84e990cacaf5c5",
        "2b0930daa23de94ce87017ba2d84988d",
        "dfc9c58db67aada613c2dd08457941a6"
    ));
    let mut buf = plaintext.clone();
    kat::aes256_ctr64be(&key, &iv, &mut buf);
    assert_eq!(buf, ciphertext, "F.5.5 encrypt");
    kat::aes256_ctr64be(&key, &iv, &mut buf);
    assert_eq!(buf, plaintext, "F.5.6 decrypt");

    // Every prefix (partial final block included) is a prefix of the keystream.
    for len in 0..plaintext.len() {
        let mut part = plaintext[..len].to_vec();
        kat::aes256_ctr64be(&key, &iv, &mut part);
        assert_eq!(part, ciphertext[..len], "prefix of {len} bytes");
    }
}

/// `Ctr64BE` counts in the low 64 bits only: the block after
/// `X || ffffffffffffffff` is `X || 0000000000000000`, not `X+1 || 0`.
/// (vfer never gets there: a packet has at most 4,094 blocks and its counter
/// starts at 0.) This is what keeps packet n's keystream apart from n+1's.
#[test]
fn ctr64be_counter_wraps_in_low_half_only() {
    let key = [0x42u8; 32];
    let mut high_wrap = [0u8; 16];
    high_wrap[..8].copy_from_slice(&7u64.to_be_bytes());
    high_wrap[8..].copy_from_slice(&u64::MAX.to_be_bytes());
    let mut two = [0u8; 32];
    kat::aes256_ctr64be(&key, &high_wrap, &mut two);

    let mut low_zero = [0u8; 16];
    low_zero[..8].copy_from_slice(&7u64.to_be_bytes());
    let mut one = [0u8; 16];
    kat::aes256_ctr64be(&key, &low_zero, &mut one);
    assert_eq!(two[16..], one);

    let mut next_high = [0u8; 16];
    next_high[..8].copy_from_slice(&8u64.to_be_bytes());
    let mut other = [0u8; 16];
    kat::aes256_ctr64be(&key, &next_high, &mut other);
    assert_ne!(two[16..], other);
}

/// RFC 4231 section 4: HMAC-SHA256 test cases 1-7. Case 5 is truncated to
/// 128 bits, exactly VSL's 16-byte MAC, and goes through the same
/// constant-time truncated check as `Opener::open`.
#[test]
fn rfc4231_hmac_sha256() {
    struct Case {
        n: u32,
        key: Vec<u8>,
        data: Vec<u8>,
        mac: &'static str,
    }
    let cases = [
        Case {
            n: 1,
            key: vec![0x0b; 20],
            data: b"Hi There".to_vec(),
            mac: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        },
        Case {
            n: 2,
            key: b"Jefe".to_vec(),
            data: b"what do ya want for nothing?".to_vec(),
            mac: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        },
        Case {
            n: 3,
            key: vec![0xaa; 20],
            data: vec![0xdd; 50],
            mac: "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
        },
        Case {
            n: 4,
            key: (1..=25).collect(),
            data: vec![0xcd; 50],
            mac: "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
        },
        Case {
            n: 5,
            key: vec![0x0c; 20],
            data: b"Test With Truncation".to_vec(),
            mac: "a3b6167473100ee06e0c796c2955552b",
        },
        Case {
            n: 6,
            key: vec![0xaa; 131],
            data: b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
            mac: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        },
        Case {
            n: 7,
            key: vec![0xaa; 131],
            data: b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(),
            mac: "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
        },
    ];
    for c in &cases {
        let expected = h(c.mac);
        let full = kat::hmac_sha256(&c.key, &c.data);
        assert_eq!(
            full[..expected.len()],
            expected[..],
            "RFC 4231 case {}",
            c.n
        );
        assert!(
            kat::hmac_sha256_verify_truncated(&c.key, &c.data, &expected),
            "RFC 4231 case {} via the truncated verify",
            c.n
        );
        // The 16-byte truncation VSL sends, and one flipped bit in it.
        let mut tag16 = full[..16].to_vec();
        assert!(kat::hmac_sha256_verify_truncated(&c.key, &c.data, &tag16));
        tag16[15] ^= 1;
        assert!(
            !kat::hmac_sha256_verify_truncated(&c.key, &c.data, &tag16),
            "case {}: a wrong tag must not verify",
            c.n
        );
    }
}

/// RFC 5869 appendix A, test cases 1-3 (HKDF-SHA256).
#[test]
fn rfc5869_hkdf_sha256() {
    struct Case {
        n: u32,
        ikm: Vec<u8>,
        salt: Vec<u8>,
        info: Vec<u8>,
        okm: &'static str,
    }
    let cases = [
        Case {
            n: 1,
            ikm: vec![0x0b; 22],
            salt: (0x00..=0x0c).collect(),
            info: (0xf0..=0xf9).collect(),
            okm: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        },
        Case {
            n: 2,
            ikm: (0x00..=0x4f).collect(),
            salt: (0x60..=0xaf).collect(),
            info: (0xb0..=0xff).collect(),
            okm: concat!(
                "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c",
                "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71",
                "cc30c58179ec3e87c14c01d5c1f3434f1d87"
            ),
        },
        Case {
            n: 3,
            ikm: vec![0x0b; 22],
            salt: vec![],
            info: vec![],
            okm: "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
        },
    ];
    for c in &cases {
        let expected = h(c.okm);
        let mut okm = vec![0u8; expected.len()];
        assert!(kat::hkdf_sha256(&c.salt, &c.ikm, &c.info, &mut okm));
        assert_eq!(okm, expected, "RFC 5869 case {}", c.n);
    }
    // HKDF-SHA256 cannot expand past 255 * 32 bytes.
    let mut too_long = vec![0u8; 255 * 32 + 1];
    assert!(!kat::hkdf_sha256(b"s", b"k", b"i", &mut too_long));
}

/// One AES-256-GCM known answer: seal gives `ct || tag`, open gives the
/// plaintext back, and a flipped tag, ciphertext or AAD bit is refused.
fn gcm_case(key: &str, iv: &str, aad: &str, pt: &str, ct: &str, tag: &str) {
    let key: [u8; 32] = h(key).try_into().unwrap();
    let iv: [u8; 12] = h(iv).try_into().unwrap();
    let (aad, pt, ct) = (h(aad), h(pt), h(ct));
    let tag: [u8; 16] = h(tag).try_into().unwrap();
    let mut buf = pt.clone();
    assert_eq!(kat::aes256_gcm_seal(&key, &iv, &aad, &mut buf), tag, "tag");
    assert_eq!(buf, ct, "ciphertext");
    assert!(kat::aes256_gcm_open(&key, &iv, &aad, &tag, &mut buf));
    assert_eq!(buf, pt, "decrypted");
    let mut bad_tag = tag;
    bad_tag[15] ^= 1;
    let mut c = ct.clone();
    assert!(!kat::aes256_gcm_open(&key, &iv, &aad, &bad_tag, &mut c));
    if !ct.is_empty() {
        let mut c = ct.clone();
        c[0] ^= 0x80;
        assert!(!kat::aes256_gcm_open(&key, &iv, &aad, &tag, &mut c));
    }
    let mut aad2 = aad.clone();
    aad2.push(0);
    let mut c = ct.clone();
    assert!(!kat::aes256_gcm_open(&key, &iv, &aad2, &tag, &mut c));
}

/// GCM specification test case 13: AES-256, zero key and IV, empty input.
#[test]
fn gcm_spec_test_case_13() {
    gcm_case(
        &"00".repeat(32),
        &"00".repeat(12),
        "",
        "",
        "",
        "530f8afbc74536b9a963b4f1c4cb738b",
    );
}

/// GCM specification test case 14: AES-256, zero key and IV, one zero block.
#[test]
fn gcm_spec_test_case_14() {
    gcm_case(
        &"00".repeat(32),
        &"00".repeat(12),
        "",
        "00000000000000000000000000000000",
        "cea7403d4d606b6e074ec5d3baf39d18",
        "d0d1c8a799996bf0265b98b5d48ab919",
    );
}

/// GCM specification test case 16: AES-256, 20 bytes of AAD, 60 bytes of
/// plaintext (a partial last block), as VSL2 packets have (17-byte AAD).
#[test]
fn gcm_spec_test_case_16() {
    gcm_case(
        "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        "cafebabefacedbaddecaf888",
        "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        concat!(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72",
            "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
        ),
        concat!(
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa",
            "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
        ),
        "76fc6ece0f4e1768cddf8853bb2d551b",
    );
}
