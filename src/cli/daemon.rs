//! `vfer-recv --listen` and `--add-user`: the daemon flags turned into the
//! service layer's daemons ([`crate::service::daemons`],
//! [`crate::service::runner`]), and the one daemon job that asks a person
//! something (a new user's password).

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use zeroize::Zeroizing;

use crate::bootstrap::login::users;
use crate::service::runner::RunnerOptions;
use crate::transport::Config;
use crate::tunnel::keys::KeySource;

/// The runner settings of `vfer-recv --listen ADDR [-n N] [-o SECS]
/// [--pidfile F]`.
pub fn runner_options(
    listen: SocketAddr,
    max_connections: usize,
    handshake_timeout: Duration,
    pidfile: Option<PathBuf>,
    config: Config,
) -> RunnerOptions {
    RunnerOptions {
        max_connections,
        handshake_timeout,
        pidfile,
        ..RunnerOptions::new(listen, config)
    }
}

/// `--key-file` or `--key-dir` as a daemon's key source; usage error if
/// neither or both.
pub fn key_source(key_file: Option<&Path>, key_dir: Option<&Path>) -> Result<KeySource> {
    match (key_file, key_dir) {
        (Some(f), None) => Ok(KeySource::File(f.to_path_buf())),
        (None, Some(d)) => Ok(KeySource::Dir(d.to_path_buf())),
        (Some(_), Some(_)) => Err(super::exit::usage(
            "give --key-file (one key for all clients) or --key-dir (one per client), not both",
        )),
        (None, None) => Err(super::exit::usage(
            "--listen needs --key-file FILE, --key-dir DIR or --users FILE",
        )),
    }
}

/// `vfer-recv --add-user NAME --users FILE`: reads a password (twice, with
/// no echo, on a terminal; one line from stdin otherwise) and adds or
/// replaces the user's entry.
pub fn add_user(users_file: &Path, name: &str) -> Result<()> {
    if !users::valid_name(name) {
        return Err(super::exit::usage(format!(
            "invalid user name {name:?}: use 1-64 letters, digits, '.', '_' or '-', not starting with '-'"
        )));
    }
    let password = if std::io::stdin().is_terminal() {
        let a = Zeroizing::new(rpassword::prompt_password(format!(
            "New vfer password for {name}: "
        ))?);
        let b = Zeroizing::new(rpassword::prompt_password("Again: ")?);
        if *a != *b {
            return Err(super::exit::usage(
                "the two passwords differ; nothing changed",
            ));
        }
        Zeroizing::new(a.as_bytes().to_vec())
    } else {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line)?;
        let t = line.strip_suffix('\n').unwrap_or(&line);
        Zeroizing::new(t.strip_suffix('\r').unwrap_or(t).as_bytes().to_vec())
    };
    if password.is_empty() {
        return Err(super::exit::usage("empty password; nothing changed"));
    }
    let replaced = users::add_user(users_file, name, &password)?;
    eprintln!(
        "vfer-recv: {} user {name} in {}",
        if replaced { "updated" } else { "added" },
        users_file.display()
    );
    Ok(())
}
