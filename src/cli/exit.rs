//! Exit codes of `vfer-send` and `vfer-recv` (documented in README.md).
//! The ssh-started server's own codes (0/20/21) are in `bootstrap`.

/// Everything was transferred.
pub const SUCCESS: i32 = 0;
/// Some files failed; the others were transferred.
pub const PARTIAL: i32 = 1;
/// Bad command line.
pub const USAGE: i32 = 2;
/// Authentication failed beyond the retry budget (minssl-tunnel's 17).
pub const AUTH: i32 = 17;
/// No progress within the timeout (minssl-tunnel's 99).
pub const TIMEOUT: i32 = 99;
/// A temporary system error: try again later (minssl-tunnel's 111).
pub const TEMPORARY: i32 = 111;
/// Interrupted by SIGINT/SIGTERM (128 + signal, as shells report).
pub const INTERRUPTED: i32 = 130;
