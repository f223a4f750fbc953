//! s6-ucspitlsd's delayed security with vfer as the secure channel
//! (docs/PROTOCOL.md §8.5, the UCSPI-TLS protocol):
//!
//! - `vfer-recv --ucspi --key-file K [-K MS] [-Z|-z] -- PROG...` runs under
//!   a super-server (`tcpserver`, `s6-tcpserver`), the connection on its
//!   stdin/stdout;
//! - `vfer-send --ucspi --key-file K [--connect HOST] [-K MS] -- PROG...`
//!   runs under `tcpclient`, the connection on descriptors 6 (read) and 7
//!   (write).
//!
//! PROG starts at once with `SSLCTLFD`, `SSLREADFD` and `SSLWRITEFD` set
//! and the connection in clear where the super-server put it. When it
//! writes `y` (or `Y`) on SSLCTLFD, the two helpers exchange an UPGRADE
//! message in clear on the connection ([`wire`]), run the VFER handshake
//! over UDP to the connection's peer address, authenticated by the key
//! file or by a login ([`auth`]: `--users` on the server,
//! `vfer://USER@HOST` on the client), and from then on PROG's
//! SSLREADFD/SSLWRITEFD carry the session's stream. `Y` also returns the
//! session's description on SSLCTLFD (`SSL_PROTOCOL`, `SSL_CIPHER`,
//! `VSL_*`, `VFER_PEER`, NUL-separated; `VFER_USER` after a login).
//!
//! Exit status: PROG's (the process stands where s6-ucspitlsd execs into
//! PROG), also when PROG closes SSLCTLFD without asking for security; 100
//! for a usage error, 111 when a system call or the upgrade failed, 99 when
//! `-K` ended the secure session, 130 on a stop signal.
//!
//! The command line of the mode (`--ucspi`, `-Z`, `-z`, `--connect`) is
//! `crate::cli::ucspi`.

pub mod auth;
pub mod run;
pub mod wire;

/// Exit status of a usage error (s6's 100).
pub const EXIT_USAGE: i32 = 100;
/// Exit status of a failed system call or upgrade (s6's 111).
pub const EXIT_SYSTEM: i32 = 111;
/// Exit status when `-K` ended the secure session (no progress).
pub const EXIT_TIMEOUT: i32 = 99;
/// Exit status after a stop signal (128 + SIGINT, as shells report).
pub const EXIT_INTERRUPTED: i32 = 130;

/// Variables a helper removes from PROG's environment unless `-Z`:
/// those that configure vfer itself (s6's `-z` for KEYFILE, TLS_UID...).
pub const HELPER_ENV: [&str; 4] = ["VFER_PASSWORD", "VFER_UID", "VFER_GID", "VFER_KEY_FILE"];
