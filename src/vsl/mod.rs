//! VSL, the VFER Security Layer: every datagram vfer sends after key agreement
//! is a VSL packet, protected by the suite the handshake negotiated
//! (AES-256-GCM, or the seed's AES-256-CTR + HMAC-SHA256 encrypt-then-MAC),
//! with a sliding replay window.
//!
//! The wire format is specified in `docs/PROTOCOL.md` ("VSL packets").
//! This module is sans-IO: it seals and opens byte buffers.

mod header;
#[doc(hidden)]
pub mod kat;
mod keys;
mod packet;
mod replay;
mod suite;

pub use header::{Header, HEADER_LEN, MAC_LEN, MAGIC, MAGIC_GCM, MAX_DATALEN};
pub use keys::{
    DirectionKeys, GcmDirectionKeys, GcmSessionKeys, SessionKeys, SuiteKeys, GCM_IV_LEN, KEY_LEN,
    MAX_BINDING_LEN, NONCE_LEN,
};
pub use packet::{
    DirectionKeying, OpenError, Opened, Opener, Role, SealError, Sealer, Session, SessionKeying,
    MSGNR_LIMIT,
};
pub use replay::{ReplayWindow, REPLAY_WINDOW};
pub use suite::{CipherChoice, Suite, UnknownCipher, ALL_SUITES};
