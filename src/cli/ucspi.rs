//! The `--ucspi` mode's command line (s6-ucspitlsd's delayed security):
//! its options, its usage errors (exit 100, s6's code), and starting the
//! helper of [`crate::tunnel::ucspi`], which does the work.

use std::path::Path;

use crate::service::ucspi_login::ServerLogin;
use crate::tunnel::ucspi::auth::{Authenticator, KeyFile};
use crate::tunnel::ucspi::run::{connection_fds, fd_open, Helper};
use crate::tunnel::ucspi::wire::Role;
use crate::tunnel::ucspi::{EXIT_SYSTEM, EXIT_USAGE};

use super::args::Common;

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
    super::app::parse_or_usage(argv).unwrap_or_else(|_| std::process::exit(EXIT_USAGE))
}

/// Runs a `--ucspi` helper to the end and returns the exit status.
/// `program` names it in messages ("vfer-recv"); `users` is a server's
/// `--users` file and `--host-key` (login instead of a key file).
pub fn run(
    program: &str,
    role: Role,
    c: &Common,
    args: &UcspiArgs,
    users: Option<(&Path, Option<&Path>)>,
    prog: &[String],
) -> i32 {
    // A client's login: vfer://USER@HOST before PROG.
    let (login, prog) = match prog.split_first() {
        Some((first, rest)) if role == Role::Client => match super::login::ucspi(first, c) {
            Some(Ok(l)) => (Some(l), rest),
            Some(Err(e)) => {
                eprintln!("{program}: {e:#}");
                return EXIT_USAGE;
            }
            None => (None, prog),
        },
        _ => (None, prog),
    };
    if prog.is_empty() {
        eprintln!("{program}: --ucspi needs the program after --, e.g. -- smtpd");
        return EXIT_USAGE;
    }
    let (r, w) = connection_fds(role);
    if !fd_open(r) || !fd_open(w) {
        eprintln!(
            "{program}: --ucspi: no connection on descriptors {r} and {w}: run it under {}",
            match role {
                Role::Server => "a super-server such as tcpserver",
                Role::Client => "tcpclient (which opens them)",
            }
        );
        return EXIT_USAGE;
    }
    let auth: Box<dyn Authenticator> = match (&c.key_file, users, login) {
        (Some(key_file), None, None) => match crate::bootstrap::keyfile::load(key_file) {
            Ok(k) => Box::new(KeyFile(k)),
            Err(e) => {
                eprintln!("{program}: {e}");
                return EXIT_SYSTEM;
            }
        },
        (None, Some((users, host_key)), None) => match ServerLogin::load(users, host_key) {
            Ok(l) => Box::new(l),
            Err(e) => {
                eprintln!("{program}: {e:#}");
                return EXIT_SYSTEM;
            }
        },
        (None, None, Some(login)) => login,
        _ => {
            eprintln!(
                "{program}: --ucspi needs one way to authenticate the upgraded session: \
                 --key-file FILE (the key both ends hold), or a login \
                 (vfer-recv --users FILE; vfer-send vfer://USER@HOST before the program)"
            );
            return EXIT_USAGE;
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{program}: cannot start the async runtime: {e}");
            return EXIT_SYSTEM;
        }
    };
    let helper = Helper {
        program: program.to_string(),
        role,
        auth,
        config: c.transport_config(),
        kill_idle: c.kill_idle(),
        port_range: c.port_range.clone(),
        connect: args.connect.clone(),
        keep_env: args.keep_helper_env,
        ipv4: c.ipv4,
        ipv6: c.ipv6,
        pad: c.pad,
    };
    match rt.block_on(helper.run(prog)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{program}: {}", super::exit::describe(&e));
            EXIT_SYSTEM
        }
    }
}
