//! The two SSH starting-mode messages (VSL spec, "SSH Starting Mode") and
//! the session secret they carry. Pure functions, no I/O.
//!
//! ```text
//! client -> server stdin : "VSL1" || secret[32]        (36 bytes)
//! server -> client stdout: "VSL1" || be32(udp port)     (8 bytes)
//! ```

use std::fmt;

use zeroize::Zeroizing;

use crate::vsl::{KEY_LEN, MAGIC};

/// Length of the client's secret message.
pub const SECRET_MSG_LEN: usize = MAGIC.len() + KEY_LEN;
/// Length of the server's port message.
pub const PORT_MSG_LEN: usize = MAGIC.len() + 4;

/// A 32-byte session secret, wiped from memory when dropped and never
/// printed (its `Debug` is redacted).
#[derive(Clone)]
pub struct Secret(Zeroizing<[u8; KEY_LEN]>);

impl Secret {
    /// Wraps raw secret bytes (the caller wipes its own copy).
    pub fn from_bytes(b: [u8; KEY_LEN]) -> Self {
        Secret(Zeroizing::new(b))
    }

    /// Copies a 32-byte slice into a new secret, with no stray copy left.
    pub fn from_slice(b: &[u8; KEY_LEN]) -> Self {
        let mut s = Secret(Zeroizing::new([0u8; KEY_LEN]));
        s.0.copy_from_slice(b);
        s
    }

    /// A fresh secret from the operating system's random number generator.
    pub fn random() -> std::io::Result<Self> {
        let mut s = Secret(Zeroizing::new([0u8; KEY_LEN]));
        getrandom::fill(&mut s.0[..]).map_err(std::io::Error::other)?;
        Ok(s)
    }

    /// The secret bytes, for the transport handshake.
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a starting-mode message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The first four bytes were not `VSL1`.
    #[error("bad magic \"{}\": expected \"VSL1\"", .0.escape_ascii())]
    BadMagic([u8; 4]),
    /// The port message carried port 0 or a value above 65535.
    #[error("bad port {0} in reply")]
    BadPort(u32),
}

/// Encodes the client's secret message. The result is wiped on drop.
pub fn encode_secret(secret: &Secret) -> Zeroizing<[u8; SECRET_MSG_LEN]> {
    let mut m = Zeroizing::new([0u8; SECRET_MSG_LEN]);
    m[..4].copy_from_slice(&MAGIC);
    m[4..].copy_from_slice(secret.bytes());
    m
}

/// Decodes the client's secret message.
pub fn decode_secret(m: &[u8; SECRET_MSG_LEN]) -> Result<Secret, WireError> {
    let magic: [u8; 4] = [m[0], m[1], m[2], m[3]];
    if magic != MAGIC {
        return Err(WireError::BadMagic(magic));
    }
    let mut s = Secret(Zeroizing::new([0u8; KEY_LEN]));
    s.0.copy_from_slice(&m[4..]);
    Ok(s)
}

/// Encodes the server's port message.
pub fn encode_port(port: u16) -> [u8; PORT_MSG_LEN] {
    let mut m = [0u8; PORT_MSG_LEN];
    m[..4].copy_from_slice(&MAGIC);
    m[4..].copy_from_slice(&u32::from(port).to_be_bytes());
    m
}

/// Decodes the server's port message.
pub fn decode_port(m: &[u8; PORT_MSG_LEN]) -> Result<u16, WireError> {
    let magic: [u8; 4] = [m[0], m[1], m[2], m[3]];
    if magic != MAGIC {
        return Err(WireError::BadMagic(magic));
    }
    let p = u32::from_be_bytes([m[4], m[5], m[6], m[7]]);
    match u16::try_from(p) {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(WireError::BadPort(p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn port_message_bytes() {
        assert_eq!(encode_port(0x1234), *b"VSL1\x00\x00\x12\x34");
        assert_eq!(decode_port(b"VSL1\x00\x00\xff\xff"), Ok(65535));
        assert_eq!(
            decode_port(b"VSL1\x00\x01\x00\x00"),
            Err(WireError::BadPort(65536))
        );
        assert_eq!(
            decode_port(b"VSL1\x00\x00\x00\x00"),
            Err(WireError::BadPort(0))
        );
        assert_eq!(
            decode_port(b"VSL2\x00\x00\x00\x01"),
            Err(WireError::BadMagic(*b"VSL2"))
        );
    }

    #[test]
    fn secret_message_bytes() {
        let s = Secret::from_bytes([7; 32]);
        let m = encode_secret(&s);
        assert_eq!(&m[..4], b"VSL1");
        assert_eq!(&m[4..], &[7u8; 32]);
        assert_eq!(decode_secret(&m).map(|s| *s.bytes()), Ok([7u8; 32]));
        let mut bad = *m;
        bad[3] = b'0';
        assert!(matches!(decode_secret(&bad), Err(WireError::BadMagic(_))));
    }

    #[test]
    fn debug_never_shows_secret() {
        let s = Secret::from_bytes([0xab; 32]);
        let d = format!("{s:?}");
        assert!(!d.contains("ab") && !d.contains("171"), "{d}");
    }

    proptest! {
        #[test]
        fn decoders_never_panic(b in proptest::array::uniform8(any::<u8>()),
                                s in proptest::collection::vec(any::<u8>(), 36)) {
            let _ = decode_port(&b);
            let arr: [u8; 36] = s.try_into().unwrap();
            let _ = decode_secret(&arr);
        }

        #[test]
        fn port_roundtrip(p in 1u16..) {
            prop_assert_eq!(decode_port(&encode_port(p)), Ok(p));
        }
    }
}
