//! vfer: fast, secure file transfer over long, lossy networks.
//!
//! Layers, top to bottom: [`transfer`] (files and streams), [`bootstrap`]
//! (how a session gets its secret), [`vsl`] (packet protection) and
//! [`transport`] (VFER: reliable, congestion-controlled delivery over UDP).
//! See `docs/PROTOCOL.md` for the wire format.

pub mod bootstrap;
pub mod budget;
pub mod cli;
pub mod codec;
#[doc(hidden)]
pub mod fuzzing;
pub mod service;
pub mod transfer;
pub mod transport;
pub mod tunnel;
pub mod vsl;
