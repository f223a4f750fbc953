//! Pieces shared by the `vfer-send` and `vfer-recv` command lines:
//! common options, operand parsing, sessions, progress and exit codes.

pub mod app;
pub mod args;
/// Core dumps off (lives in `bootstrap`, which the ssh-started server uses too).
pub use crate::bootstrap::coredump;
pub mod daemon;
pub mod exec;
pub mod exit;
pub mod farlog;
pub mod forward;
pub mod generate;
pub mod login;
pub mod logtext;
pub mod pathstore;
pub mod progress;
pub mod rate;
pub mod report;
pub mod server;
pub mod session;
pub mod signals;
pub mod target;
pub mod ucspi;

/// Sets up `-v` logging on stderr (`RUST_LOG` overrides), with control
/// characters in every field escaped ([`logtext::escape`]).
pub fn init_logging(verbose: u8) {
    use tracing_subscriber::field::MakeExt;
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Log records carry peer text (CLOSE reasons, paths, user names):
    // every field is escaped so that none can start a line of its own.
    let fields = tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let text = format!("{value:?}");
        let text = logtext::escape(&text);
        if field.name() == "message" {
            write!(w, "{text}")
        } else {
            write!(w, "{}={text}", field.name())
        }
    })
    .delimited(" ");
    // Plain text when stderr is not a terminal (no colour codes in pipes
    // and logs); the module path only at -vv and up.
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .fmt_fields(fields)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(verbose >= 2)
        .try_init();
}
