//! VSL, the VFER Security Layer: every datagram vfer sends after key agreement
//! is a VSL packet, encrypted with AES-256-CTR and authenticated with
//! HMAC-SHA256 (encrypt-then-MAC), with a sliding replay window.
//!
//! The wire format is specified in `docs/PROTOCOL.md` ("VSL packets").
//! This module is sans-IO: it seals and opens byte buffers.

mod header;
#[doc(hidden)]
pub mod kat;
mod keys;
mod packet;
mod replay;

pub use header::{Header, HEADER_LEN, MAC_LEN, MAGIC, MAX_DATALEN};
pub use keys::{DirectionKeys, SessionKeys, KEY_LEN, NONCE_LEN};
pub use packet::{OpenError, Opened, Opener, Role, SealError, Sealer, Session, MSGNR_LIMIT};
pub use replay::{ReplayWindow, REPLAY_WINDOW};
