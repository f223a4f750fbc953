//! What a session does once it is up, as plain async functions over a
//! session's stream, testable without the command line:
//!
//! - [`request`]: the service request every daemon session starts with
//!   (docs/PROTOCOL.md §5): which service, the negotiated options (rate
//!   cap), the paths.
//! - [`files`]: serve or fetch files beneath a root descriptor, and the
//!   ssh-started far side's transfer ([`expand`]: its `~` and globs).
//! - [`login_check`]: a login daemon's policy (Argon2 semaphore, per-user
//!   locks, rate limits); [`login_client`]: the client's §7 sequence.
//! - [`runner`]: the one daemon loop (accept, limits, pidfile, hardening,
//!   graceful stop); [`daemons`]: the file daemons built on it.
//! - [`exec`]: a far program joined to the stream (§8.1-8.3);
//!   [`forward`]: TCP or UNIX-socket forwarding (§8.4); [`pad`]:
//!   negotiating their fixed-size records (`--pad`, §8.6).
//! - [`connect`]: reaching the far side (ssh, local child, key-file daemon).
//!
//! Closing a session so both sides know how it went is
//! [`crate::tunnel::ending`] (the tunnels below need it too).
//!
//! Layers: `cli` (arguments, progress, exit codes) uses this; this uses
//! `bootstrap` (how a session gets its secret), `transfer` and `transport`.

pub mod admit;
pub mod connect;
pub mod daemons;
pub mod exec;
pub mod expand;
pub mod files;
pub mod forward;
pub mod login_check;
pub mod login_client;
pub mod pad;
pub mod request;
pub mod runner;
pub mod ucspi_login;
