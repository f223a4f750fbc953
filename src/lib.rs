//! vfer: fast, secure file transfer over long, lossy networks.
//!
//! Layers, top to bottom; each uses only the ones below it:
//!
//! - [`cli`]: argument parsing, progress, reporting and exit codes (the
//!   binaries in `src/bin/` are thin over it);
//! - [`service`]: what a session does once it is up (files, programs,
//!   forwarding, logins, the daemon runner);
//! - [`tunnel`]: carrying a program's bytes over a session, signals,
//!   timeouts, ending a session;
//! - [`bootstrap`]: how a session gets its secret (ssh, key files, login);
//! - [`transport`]: VFER, reliable congestion-controlled delivery over UDP;
//! - [`transfer`] (the file-transfer messages and their file system side),
//!   [`vsl`] (packet protection) and [`codec`] (the wire codec style): the
//!   ground the others stand on.
//!
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
