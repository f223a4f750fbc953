//! Programs over the secure channel (docs/PROTOCOL.md §8): a far program
//! joined to a session's stream, as s6-tlsd and minssl-tunnel do for one
//! connection.
//!
//! - [`frame`]: the far side → client framing (stdout, stderr, EOF, exit).
//! - [`server`]: the far side (`vfer-recv --server --exec-remote -- ARGV`,
//!   and each session of a program daemon).
//! - [`daemon`]: a key-file daemon running one program per session
//!   (`vfer-recv --listen --key-file K --exec CMD`, s6-tlsd's job), on the
//!   [runner](crate::service::runner).
//!
//! - [`client`]: the client's half (`vfer-send --exec`): the local end,
//!   both directions, the far program's frames; its command line and exit
//!   codes are `crate::cli::exec`.

pub mod client;
pub mod daemon;
pub mod frame;
pub mod server;
mod stdin;

pub use crate::tunnel::session_env::{session_env, VSL_KEX};

/// Hidden flag that makes `vfer-recv --server` run the operands as a
/// program instead of receiving files.
pub const REMOTE_FLAG: &str = "--exec-remote";

/// Variables of the daemon's environment a program daemon's CMD keeps
/// (besides the session's VSL_*/VFER_* variables) without `--keep-env`.
pub const KEPT_ENV: [&str; 5] = ["PATH", "HOME", "USER", "LOGNAME", "LANG"];

/// Which environment a program started for a session gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramEnv {
    /// Everything this process has (the ssh-started far side: the user's
    /// own login environment, as ssh gives a remote command).
    Inherit,
    /// Only [`KEPT_ENV`] (a standing daemon without `--keep-env`).
    Clean,
}
