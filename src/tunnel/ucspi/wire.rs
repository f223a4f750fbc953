//! The few bytes two `--ucspi` helpers exchange in clear on the existing
//! connection when their programs asked for security (docs/PROTOCOL.md
//! §8.5), and the session secret derived from them. Sans-IO.
//!
//! ```text
//! UPGRADE = "VFUC" || version u8 || role u8 || nonce[32] || udp_port u16   (40 bytes)
//! S = HMAC-SHA256(K, "vfer ucspi v1" || client nonce || server nonce)   (version 1)
//! ```
//!
//! The version's low 7 bits say how the session is authenticated
//! ([`Mode`]): 1 by a key file (the secret `S` above), 2 by a login
//! (challenge-response mode, §7: the server's host key and the user's
//! password; `S` is not used); its top bit ([`PAD`]) that the sender pads
//! the channel (`--pad`, §8.6), which both ends must agree on.
//! Nothing here is trusted: the port only says where to send the
//! handshake, and the nonces only make `S` fresh. The transport handshake
//! (§2) under `S`, or the login's, authenticates both ends; whoever
//! changes a byte here only makes it fail.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::bootstrap::Secret;

/// Magic of the UPGRADE message.
pub const MAGIC: &[u8; 4] = b"VFUC";
/// Its version for key-file upgrades ([`Mode::KeyFile`]).
pub const VERSION: u8 = 1;
/// The version's bit for `--pad`: the channel travels in fixed-size
/// records (docs/PROTOCOL.md §8.6).
pub const PAD: u8 = 0x80;
/// Its length in bytes.
pub const LEN: usize = 40;
/// Label of the secret derivation.
const LABEL: &[u8] = b"vfer ucspi v1";

/// Which end of the connection a helper is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `vfer-recv --ucspi`, under a super-server (binds the UDP port).
    Server = 1,
    /// `vfer-send --ucspi`, under `tcpclient` (connects to it).
    Client = 2,
}

/// How the upgraded session is authenticated: the UPGRADE's version byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// By the key file both ends hold (version 1, [`session_secret`]).
    KeyFile = 1,
    /// By a login: the server's host key, the user's password (version 2,
    /// docs/PROTOCOL.md §7 on the server's UDP port).
    Login = 2,
}

impl Mode {
    /// How a person would configure it, for messages.
    fn flags(self) -> &'static str {
        match self {
            Mode::KeyFile => "a key file (--key-file)",
            Mode::Login => "a login (vfer://USER@HOST, --users)",
        }
    }
}

/// One helper's UPGRADE message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// How it wants the session authenticated.
    pub mode: Mode,
    /// Who sent it.
    pub role: Role,
    /// 32 fresh random bytes.
    pub nonce: [u8; 32],
    /// The server's UDP port; 0 from a client.
    pub port: u16,
    /// The sender pads the channel (`--pad`).
    pub pad: bool,
}

/// Why a peer's UPGRADE was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpgradeError {
    /// Not "VFUC", or an unknown version: the peer is not a vfer --ucspi
    /// helper (or its program sent clear bytes after asking for security).
    #[error("the peer's upgrade message is not VFUC version 1 or 2, with or without --pad's bit (is the other end a vfer --ucspi helper, and did its program stop writing before asking?)")]
    NotUpgrade,
    /// The two ends authenticate differently.
    #[error("the peer's helper authenticates by {} and this one by {}: give both ends the same", .theirs.flags(), .ours.flags())]
    Mode {
        /// Ours.
        ours: Mode,
        /// The peer's.
        theirs: Mode,
    },
    /// Both ends are servers, or both clients.
    #[error("both ends are {0:?}s: one side runs vfer-recv --ucspi, the other vfer-send --ucspi")]
    SameRole(Role),
    /// A server that gave port 0.
    #[error("the server's upgrade message gives UDP port 0")]
    NoPort,
    /// One end pads (`--pad`) and the other does not.
    #[error("{}: give both ends --pad, or neither", if *.ours { "this helper pads its channel (--pad) and the peer's does not" } else { "the peer's helper pads its channel (--pad) and this one does not" })]
    Pad {
        /// Whether we pad.
        ours: bool,
    },
}

impl Upgrade {
    /// A fresh message for `role` in `mode` (with `port` for a server).
    pub fn new(mode: Mode, role: Role, port: u16) -> std::io::Result<Upgrade> {
        let mut nonce = [0u8; 32];
        getrandom::fill(&mut nonce).map_err(std::io::Error::other)?;
        Ok(Upgrade {
            mode,
            role,
            nonce,
            port,
            pad: false,
        })
    }

    /// The same message, saying whether the sender pads (`--pad`).
    pub fn padded(self, pad: bool) -> Upgrade {
        Upgrade { pad, ..self }
    }

    /// Refuses a peer's message that does not agree with us on `--pad`.
    pub fn check_pad(&self, ours: bool) -> Result<(), UpgradeError> {
        if self.pad == ours {
            Ok(())
        } else {
            Err(UpgradeError::Pad { ours })
        }
    }

    /// The 40 bytes on the wire.
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[..4].copy_from_slice(MAGIC);
        b[4] = self.mode as u8 | if self.pad { PAD } else { 0 };
        b[5] = self.role as u8;
        b[6..38].copy_from_slice(&self.nonce);
        b[38..].copy_from_slice(&self.port.to_be_bytes());
        b
    }

    /// Parses the peer's message; `ours` is our role (the peer must have
    /// the other one), `mode` ours (the peer must have the same).
    pub fn decode(b: &[u8; LEN], ours: Role, mode: Mode) -> Result<Upgrade, UpgradeError> {
        if &b[..4] != MAGIC {
            return Err(UpgradeError::NotUpgrade);
        }
        let pad = b[4] & PAD != 0;
        let theirs = match b[4] & !PAD {
            VERSION => Mode::KeyFile,
            2 => Mode::Login,
            _ => return Err(UpgradeError::NotUpgrade),
        };
        if theirs != mode {
            return Err(UpgradeError::Mode { ours: mode, theirs });
        }
        let role = match b[5] {
            1 => Role::Server,
            2 => Role::Client,
            _ => return Err(UpgradeError::NotUpgrade),
        };
        if role == ours {
            return Err(UpgradeError::SameRole(role));
        }
        let mut nonce = [0u8; 32];
        nonce.copy_from_slice(&b[6..38]);
        let port = u16::from_be_bytes([b[38], b[39]]);
        if role == Role::Server && port == 0 {
            return Err(UpgradeError::NoPort);
        }
        Ok(Upgrade {
            mode,
            role,
            nonce,
            port,
            pad,
        })
    }
}

/// The session secret of one upgrade: `HMAC-SHA256(K, "vfer ucspi v1" ||
/// client nonce || server nonce)`, fresh for every connection although `K`
/// repeats, so a REQUEST recorded on another connection never verifies.
pub fn session_secret(key: &Secret, client: &Upgrade, server: &Upgrade) -> Secret {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.bytes())
        .expect("HMAC takes a key of any length");
    mac.update(LABEL);
    mac.update(&client.nonce);
    mac.update(&server.nonce);
    let out: [u8; 32] = mac.finalize().into_bytes().into();
    let out = zeroize::Zeroizing::new(out);
    Secret::from_slice(&out)
}

/// The `Y` answer on the control descriptor (UCSPI-TLS): `NAME=value\0`
/// for each variable, then one more `\0`.
pub fn env_string(vars: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in vars {
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    if vars.is_empty() {
        out.push(0);
    }
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_round_trip_and_refusals() {
        let key = Mode::KeyFile;
        let s = Upgrade {
            mode: key,
            role: Role::Server,
            nonce: [7; 32],
            port: 4242,
            pad: false,
        };
        let b = s.encode();
        assert_eq!(&b[..6], b"VFUC\x01\x01");
        assert_eq!(&b[38..], &4242u16.to_be_bytes());
        assert_eq!(Upgrade::decode(&b, Role::Client, key), Ok(s.clone()));
        assert_eq!(
            Upgrade::decode(&b, Role::Server, key),
            Err(UpgradeError::SameRole(Role::Server))
        );
        let mut bad = b;
        bad[0] = b'E';
        assert_eq!(
            Upgrade::decode(&bad, Role::Client, key),
            Err(UpgradeError::NotUpgrade)
        );
        let mut v3 = b;
        v3[4] = 3;
        assert_eq!(
            Upgrade::decode(&v3, Role::Client, key),
            Err(UpgradeError::NotUpgrade)
        );
        let mut no_port = b;
        no_port[38] = 0;
        no_port[39] = 0;
        assert_eq!(
            Upgrade::decode(&no_port, Role::Client, key),
            Err(UpgradeError::NoPort)
        );
        let c = Upgrade::new(key, Role::Client, 0).unwrap();
        assert_eq!(Upgrade::decode(&c.encode(), Role::Server, key), Ok(c));
    }

    #[test]
    fn login_upgrades_are_version_2_and_never_meet_key_file_ones() {
        let s = Upgrade::new(Mode::Login, Role::Server, 4242).unwrap();
        let b = s.encode();
        assert_eq!(&b[..6], b"VFUC\x02\x01");
        assert_eq!(Upgrade::decode(&b, Role::Client, Mode::Login), Ok(s));
        let e = Upgrade::decode(&b, Role::Client, Mode::KeyFile).unwrap_err();
        assert_eq!(
            e,
            UpgradeError::Mode {
                ours: Mode::KeyFile,
                theirs: Mode::Login
            }
        );
        assert!(e.to_string().contains("by a login"), "{e}");
    }

    /// docs/PROTOCOL.md §8.5: `--pad` sets the version's top bit; both ends
    /// must agree, and an older helper refuses 0x81 and 0x82 as unknown
    /// versions.
    #[test]
    fn pad_is_the_version_top_bit_and_must_match() {
        for (mode, v) in [(Mode::KeyFile, 0x81), (Mode::Login, 0x82)] {
            let s = Upgrade::new(mode, Role::Server, 4242).unwrap().padded(true);
            let b = s.encode();
            assert_eq!(b[4], v);
            let got = Upgrade::decode(&b, Role::Client, mode).unwrap();
            assert!(got.pad);
            assert_eq!(got.check_pad(true), Ok(()));
            let e = got.check_pad(false).unwrap_err();
            assert!(e.to_string().contains("the peer's helper pads"), "{e}");
            let plain = Upgrade::new(mode, Role::Client, 0).unwrap();
            let got = Upgrade::decode(&plain.encode(), Role::Server, mode).unwrap();
            let e = got.check_pad(true).unwrap_err();
            assert!(e.to_string().contains("this helper pads"), "{e}");
            // What an older helper checks: the whole byte is 1 or 2.
            assert!(![VERSION, 2].contains(&b[4]));
        }
    }

    #[test]
    fn secret_depends_on_key_and_both_nonces() {
        let k1 = Secret::from_slice(&[1; 32]);
        let k2 = Secret::from_slice(&[2; 32]);
        let c = Upgrade {
            mode: Mode::KeyFile,
            role: Role::Client,
            nonce: [3; 32],
            port: 0,
            pad: false,
        };
        let s = Upgrade {
            mode: Mode::KeyFile,
            role: Role::Server,
            nonce: [4; 32],
            port: 9,
            pad: false,
        };
        let a = session_secret(&k1, &c, &s);
        assert_eq!(a.bytes(), session_secret(&k1, &c, &s).bytes());
        assert_ne!(a.bytes(), session_secret(&k2, &c, &s).bytes());
        let s2 = Upgrade {
            nonce: [5; 32],
            ..s.clone()
        };
        assert_ne!(a.bytes(), session_secret(&k1, &c, &s2).bytes());
        // Vector (docs/PROTOCOL.md §8.5): K = 32 x 0x01, client nonce
        // 32 x 0x03, server nonce 32 x 0x04.
        assert_eq!(hex::encode(a.bytes()), VECTOR);
    }

    const VECTOR: &str = "6ecdeb37ea159089404b13672c7dac94e068ca317cc41254c0f3d69713f4ca46";

    #[test]
    fn env_string_is_nul_separated_and_doubly_terminated() {
        assert_eq!(env_string(&[]), b"\0\0");
        let v = env_string(&[("A", "1".into()), ("BC", "x y".into())]);
        assert_eq!(v, b"A=1\0BC=x y\0\0");
    }
}
