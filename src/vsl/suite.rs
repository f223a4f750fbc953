//! VSL cipher suites: which construction protects a connection's packets
//! (docs/PROTOCOL.md §1.1, §2.2-§2.4). The client offers suites in its
//! REQUEST, the server chooses one, and the offer and the choice enter the
//! key schedule, so a changed offer gives both ends different keys.

use std::fmt;
use std::str::FromStr;

/// A packet protection suite. Each has its own wire id (in the handshake)
/// and its own magic (in every packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// The seed's suite: AES-256-CTR, then HMAC-SHA256 truncated to 16
    /// bytes (encrypt-then-MAC). Magic `"VSL1"`, wire id 0x01.
    Vsl1,
    /// AES-256-GCM (16-byte tag), an AEAD several times cheaper per byte on
    /// CPUs with AES and carry-less multiply instructions. Magic `"VSL2"`,
    /// wire id 0x02.
    Aes256Gcm,
}

/// Every suite this build implements, fastest first: the server's
/// preference order when the client offers several.
pub const ALL_SUITES: &[Suite] = &[Suite::Aes256Gcm, Suite::Vsl1];

impl Suite {
    /// The suite's one-byte id in the REQUEST's offer and the RESPONSE.
    pub const fn id(self) -> u8 {
        match self {
            Suite::Vsl1 => 0x01,
            Suite::Aes256Gcm => 0x02,
        }
    }

    /// The suite with wire id `id`, if this build knows it.
    pub const fn from_id(id: u8) -> Option<Suite> {
        match id {
            0x01 => Some(Suite::Vsl1),
            0x02 => Some(Suite::Aes256Gcm),
            _ => None,
        }
    }

    /// The 4-byte magic at offset 24 of every packet of this suite.
    pub const fn magic(self) -> [u8; 4] {
        match self {
            Suite::Vsl1 => *b"VSL1",
            Suite::Aes256Gcm => *b"VSL2",
        }
    }

    /// The suite whose packets carry `magic`.
    pub fn from_magic(magic: &[u8]) -> Option<Suite> {
        match magic {
            b"VSL1" => Some(Suite::Vsl1),
            b"VSL2" => Some(Suite::Aes256Gcm),
            _ => None,
        }
    }

    /// The exact construction, as `VSL_CIPHER` and `--json`'s `cipher` show it.
    pub const fn cipher_name(self) -> &'static str {
        match self {
            Suite::Vsl1 => "AES-256-CTR+HMAC-SHA256-128",
            Suite::Aes256Gcm => "AES-256-GCM",
        }
    }

    /// The packet format's name (its magic as text), as `VSL_PROTOCOL` shows it.
    pub const fn protocol_name(self) -> &'static str {
        match self {
            Suite::Vsl1 => "VSL1",
            Suite::Aes256Gcm => "VSL2",
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.cipher_name(), self.protocol_name())
    }
}

/// What `--cipher` asks for: the suites this side offers (client) or
/// accepts (server), in preference order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CipherChoice {
    /// Every suite, fastest first (the default): the connection gets the
    /// fastest suite both ends have.
    #[default]
    Auto,
    /// Only the seed's AES-256-CTR + HMAC-SHA256 (`--cipher vsl1`).
    Vsl1,
    /// Only AES-256-GCM (`--cipher aes-256-gcm`).
    Aes256Gcm,
}

impl CipherChoice {
    /// The suites offered or accepted, in preference order.
    pub const fn suites(self) -> &'static [Suite] {
        match self {
            CipherChoice::Auto => ALL_SUITES,
            CipherChoice::Vsl1 => &[Suite::Vsl1],
            CipherChoice::Aes256Gcm => &[Suite::Aes256Gcm],
        }
    }
}

/// Why a `--cipher` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown cipher {0:?}: use auto, aes-256-gcm (or gcm, vsl2) or vsl1")]
pub struct UnknownCipher(pub String);

impl FromStr for CipherChoice {
    type Err = UnknownCipher;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(CipherChoice::Auto),
            "vsl1" | "aes-256-ctr+hmac-sha256-128" => Ok(CipherChoice::Vsl1),
            "aes-256-gcm" | "aes256gcm" | "gcm" | "vsl2" => Ok(CipherChoice::Aes256Gcm),
            _ => Err(UnknownCipher(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_magics_round_trip() {
        for &s in ALL_SUITES {
            assert_eq!(Suite::from_id(s.id()), Some(s));
            assert_eq!(Suite::from_magic(&s.magic()), Some(s));
            assert_eq!(s.protocol_name().as_bytes(), s.magic());
        }
        assert_eq!(Suite::from_id(0), None);
        assert_eq!(Suite::from_magic(b"VSL3"), None);
    }

    #[test]
    fn cipher_choice_parses() {
        assert_eq!("vsl1".parse(), Ok(CipherChoice::Vsl1));
        assert_eq!("GCM".parse(), Ok(CipherChoice::Aes256Gcm));
        assert_eq!("auto".parse(), Ok(CipherChoice::Auto));
        assert!("rot13".parse::<CipherChoice>().is_err());
        assert_eq!(CipherChoice::default().suites()[0], Suite::Aes256Gcm);
    }
}
