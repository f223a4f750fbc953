//! Pieces shared by the `vfer-send` and `vfer-recv` command lines:
//! common options, operand parsing, sessions, progress and exit codes.

pub mod app;
pub mod args;
pub mod daemon;
pub mod exec;
pub mod exit;
pub mod expand;
pub mod forward;
pub mod generate;
pub mod login;
pub mod login_daemon;
pub mod progress;
pub mod rate;
pub mod report;
pub mod server;
pub mod session;
pub mod signals;
pub mod target;

/// Sets up `-v` logging on stderr (`RUST_LOG` overrides).
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
