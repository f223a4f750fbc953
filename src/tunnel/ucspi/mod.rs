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

pub mod auth;
pub mod run;
pub mod wire;

/// Exit status of a usage error (s6's 100).
pub const EXIT_USAGE: i32 = 100;
/// Exit status of a failed system call or upgrade (s6's 111).
pub const EXIT_SYSTEM: i32 = 111;

/// Variables a helper removes from PROG's environment unless `-Z`:
/// those that configure vfer itself (s6's `-z` for KEYFILE, TLS_UID...).
pub const HELPER_ENV: [&str; 4] = ["VFER_PASSWORD", "VFER_UID", "VFER_GID", "VFER_KEY_FILE"];

/// The `--ucspi` options of both programs.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct UcspiArgs {
    /// Delayed security (s6-ucspitlsd, UCSPI-TLS): run the program after
    /// `--` with SSLCTLFD/SSLREADFD/SSLWRITEFD; it talks in clear on the
    /// connection (vfer-recv: stdin/stdout, under tcpserver; vfer-send:
    /// descriptors 6/7, under tcpclient) until it writes `y` or `Y`, then
    /// over a vfer session to the connection's peer. Needs --key-file, or a
    /// login (vfer-recv: --users F; vfer-send: vfer://USER@HOST before --).
    #[arg(long)]
    pub ucspi: bool,
    /// With --ucspi: keep the helper's own variables (VFER_PASSWORD, ...)
    /// in the program's environment (s6's -Z).
    #[arg(short = 'Z', requires = "ucspi", conflicts_with = "clean_env")]
    pub keep_helper_env: bool,
    /// With --ucspi: remove them (s6's -z; the default).
    #[arg(short = 'z', requires = "ucspi")]
    pub clean_env: bool,
    /// With --ucspi on vfer-send: the server's host or address for the UDP
    /// session [default: TCPREMOTEIP, as tcpclient sets it].
    #[arg(long, value_name = "HOST", requires = "ucspi")]
    pub connect: Option<String>,
}

/// Does this command line ask for `--ucspi` (so usage errors exit 100)?
pub fn wanted(argv: &[std::ffi::OsString]) -> bool {
    argv.iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "--ucspi")
}

/// Parses the command line of a `--ucspi` run; a usage error exits 100
/// (s6-ucspitlsd's code), `--help` and `--version` exit 0.
pub fn parse_or_exit<P: clap::Parser>(argv: &[std::ffi::OsString]) -> P {
    match P::try_parse_from(argv) {
        Ok(p) => p,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            std::process::exit(if usage { EXIT_USAGE } else { 0 });
        }
    }
}
