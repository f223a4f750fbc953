//! The client side of SSH starting mode: start the server through the
//! user's own `ssh` and connect to the UDP port it reports.
//!
//! Why a plain `tokio::process` ssh rather than the `openssh` crate: the
//! starting mode needs the raw stdin/stdout bytes of one remote command
//! (36 bytes in, 8 bytes out) and its exit status, nothing more; we must run
//! the user's exact ssh binary and options (`-e 'ssh -p 2222 -i key'`, like
//! rsync's `--rsh`), including non-OpenSSH wrappers; and `openssh` wants a
//! ControlMaster socket and a multiplexed master, which breaks with some
//! configs and leaves a process behind. ~/.ssh/config, agents, jump hosts,
//! known_hosts and password prompts (on the tty) all work unchanged.
//!
//! Where the UDP packets go: ssh may reach the host through an alias in
//! ~/.ssh/config (`Host x / HostName real.example`), so we ask the user's
//! ssh for the resolved name with `ssh -G [user@]host` (OpenSSH >= 6.8) and
//! resolve that ourselves, honouring `-4/-6` and its `addressfamily`. When
//! `-G` fails (not OpenSSH), we resolve the host as given. UDP goes directly
//! to the host: ProxyJump hosts do not carry it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::process::Command;

use super::child::{self, Spawn};
use super::{BootstrapError, Family, DEFAULT_REPLY_TIMEOUT};
use crate::transport::{Config, Session};

/// Which server the remote side runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteRole {
    /// `vfer-recv --server`: we push files to it.
    Recv,
    /// `vfer-send --server`: we pull files from it.
    Send,
}

impl RemoteRole {
    /// The default remote program name.
    pub fn program(self) -> &'static str {
        match self {
            RemoteRole::Recv => "vfer-recv",
            RemoteRole::Send => "vfer-send",
        }
    }
}

/// `[user@]host` as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// Login name, if given.
    pub user: Option<String>,
    /// Host name, ssh config alias or address (IPv6 without brackets).
    pub host: String,
}

impl SshTarget {
    /// Parses `[user@]host`; `[v6addr]` brackets are removed. Refuses an
    /// empty host and one starting with `-` (it would be an ssh option).
    pub fn parse(s: &str) -> Result<Self, BootstrapError> {
        let (user, host) = match s.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_string()), h),
            None => (None, s),
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty()
            || host.starts_with('-')
            || user
                .as_deref()
                .is_some_and(|u| u.is_empty() || u.starts_with('-'))
        {
            return Err(BootstrapError::Usage(format!("bad host {s:?}")));
        }
        Ok(SshTarget {
            user,
            host: host.to_string(),
        })
    }

    fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }
}

/// Client settings of SSH starting mode.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// The ssh command, split with shell rules (`-e/--rsh`); default `ssh`.
    pub rsh: Option<String>,
    /// The remote program (`--remote-path`), passed to the remote shell
    /// as is, like rsync's `--rsync-path` (so `"sudo vfer-recv"` works).
    pub remote_path: Option<String>,
    /// Extra server arguments after `--server` (e.g. `--port-range A-B`),
    /// each shell-quoted.
    pub remote_args: Vec<String>,
    /// `-4` / `-6`: passed to ssh and used to pick the UDP address.
    pub family: Option<Family>,
    /// How long to wait for the port reply (covers password prompts).
    pub reply_timeout: Duration,
    /// Transport settings of the session.
    pub config: Config,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            rsh: None,
            remote_path: None,
            remote_args: Vec::new(),
            family: None,
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
            config: Config::default(),
        }
    }
}

fn rsh_words(opts: &SshOptions) -> Result<Vec<String>, BootstrapError> {
    let Some(rsh) = &opts.rsh else {
        return Ok(vec!["ssh".to_string()]);
    };
    match shlex::split(rsh) {
        Some(w) if !w.is_empty() => Ok(w),
        _ => Err(BootstrapError::Usage(format!(
            "bad --rsh command {rsh:?}: empty or unbalanced quotes"
        ))),
    }
}

fn family_flag(f: Option<Family>) -> Option<&'static str> {
    match f {
        Some(Family::V4) => Some("-4"),
        Some(Family::V6) => Some("-6"),
        None => None,
    }
}

/// The program `--remote-path` names for `role`. It may name the program
/// (`/opt/vfer/bin/vfer-recv`, `sudo vfer-recv`) or the directory holding
/// both programs (`/opt/vfer/bin`, `/opt/vfer/bin/`): a path ending in `/`,
/// or whose last name does not contain "vfer", gets the role's program
/// name appended, so one option serves both directions.
pub fn remote_program(remote_path: Option<&str>, role: RemoteRole) -> String {
    let Some(p) = remote_path.map(str::trim).filter(|p| !p.is_empty()) else {
        return role.program().to_string();
    };
    let last = p.rsplit(char::is_whitespace).next().unwrap_or(p);
    let base = last.rsplit('/').next().unwrap_or(last);
    if p.ends_with('/') {
        format!("{p}{}", role.program())
    } else if !base.contains("vfer") {
        format!("{p}/{}", role.program())
    } else {
        p.to_string()
    }
}

/// The remote command line: `PROGRAM --server ARGS...`, the arguments
/// shell-quoted (ssh joins its arguments with spaces for the remote shell).
pub fn remote_command(role: RemoteRole, opts: &SshOptions) -> Result<String, BootstrapError> {
    let program = remote_program(opts.remote_path.as_deref(), role);
    let mut words: Vec<String> = vec!["--server".to_string()];
    if let Some(f) = family_flag(opts.family) {
        words.push(f.to_string());
    }
    words.extend(opts.remote_args.iter().cloned());
    let quoted = shlex::try_join(words.iter().map(String::as_str))
        .map_err(|e| BootstrapError::Usage(format!("cannot quote remote arguments: {e}")))?;
    Ok(format!("{program} {quoted}"))
}

/// The full ssh argv: `RSH... [-4|-6] [user@]host 'REMOTE COMMAND'`.
pub fn ssh_argv(
    target: &SshTarget,
    role: RemoteRole,
    opts: &SshOptions,
) -> Result<Vec<String>, BootstrapError> {
    let mut argv = rsh_words(opts)?;
    if let Some(f) = family_flag(opts.family) {
        argv.push(f.to_string());
    }
    argv.push(target.destination());
    argv.push(remote_command(role, opts)?);
    Ok(argv)
}

/// Starts the server on `target` through ssh and returns the connected
/// session. Errors name the host and carry the server's message.
pub async fn connect(
    target: &SshTarget,
    role: RemoteRole,
    opts: &SshOptions,
) -> Result<Session, BootstrapError> {
    let argv = ssh_argv(target, role, opts)?;
    let peer_ip = resolve(target, opts).await?;
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]);
    let spawn = Spawn {
        command,
        display: shlex::try_join(argv.iter().map(String::as_str))
            .unwrap_or_else(|_| argv.join(" ")),
        name: argv[0].clone(),
        host: target.host.clone(),
        program: remote_program(opts.remote_path.as_deref(), role),
    };
    child::start(spawn, peer_ip, opts.reply_timeout, opts.config.clone()).await
}

/// The IP address UDP should go to (see the module docs).
pub async fn resolve(target: &SshTarget, opts: &SshOptions) -> Result<IpAddr, BootstrapError> {
    let (name, ssh_family) = match ssh_config(target, opts).await {
        Some(c) => c,
        None => (target.host.clone(), None),
    };
    let family = opts.family.or(ssh_family);
    let host = target.host.clone();
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
        .await
        .map_err(|e| BootstrapError::Resolve {
            host: host.clone(),
            message: format!("{name}: {e}"),
        })?
        .collect();
    addrs
        .iter()
        .map(|a| a.ip())
        .find(|ip| match family {
            Some(Family::V4) => ip.is_ipv4(),
            Some(Family::V6) => ip.is_ipv6(),
            None => true,
        })
        .ok_or_else(|| BootstrapError::Resolve {
            host,
            message: format!("{name} has no address of the requested family"),
        })
}

/// `ssh -G`: the real host name and address family after ~/.ssh/config.
async fn ssh_config(target: &SshTarget, opts: &SshOptions) -> Option<(String, Option<Family>)> {
    let mut argv = rsh_words(opts).ok()?;
    if let Some(f) = family_flag(opts.family) {
        argv.push(f.to_string());
    }
    argv.push("-G".to_string());
    argv.push(target.destination());
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(10), out)
        .await
        .ok()?
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_ssh_g(&String::from_utf8_lossy(&out.stdout))
}

fn parse_ssh_g(text: &str) -> Option<(String, Option<Family>)> {
    let mut host = None;
    let mut family = None;
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("hostname", v)) => host = Some(v.trim().to_string()),
            Some(("addressfamily", "inet")) => family = Some(Family::V4),
            Some(("addressfamily", "inet6")) => family = Some(Family::V6),
            _ => {}
        }
    }
    Some((host?, family))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        let t = SshTarget::parse("alice@example.org").unwrap();
        assert_eq!(t.user.as_deref(), Some("alice"));
        assert_eq!(t.host, "example.org");
        assert_eq!(SshTarget::parse("[::1]").unwrap().host, "::1");
        assert!(SshTarget::parse("-oProxyCommand=x").is_err());
        assert!(SshTarget::parse("u@").is_err());
        assert!(SshTarget::parse("-l@host").is_err());
    }

    #[test]
    fn builds_ssh_argv_like_rsync() {
        let t = SshTarget::parse("bob@h").unwrap();
        let o = SshOptions {
            rsh: Some("ssh -p 2222 -i 'my key'".into()),
            remote_args: vec!["--port-range".into(), "6000-6010".into()],
            family: Some(Family::V6),
            ..SshOptions::default()
        };
        let argv = ssh_argv(&t, RemoteRole::Recv, &o).unwrap();
        assert_eq!(
            argv,
            [
                "ssh",
                "-p",
                "2222",
                "-i",
                "my key",
                "-6",
                "bob@h",
                "vfer-recv --server -6 --port-range 6000-6010"
            ]
        );
        let o = SshOptions {
            remote_path: Some("/opt/vfer/bin/vfer-send".into()),
            remote_args: vec!["it's".into()],
            ..SshOptions::default()
        };
        assert_eq!(
            remote_command(RemoteRole::Send, &o).unwrap(),
            "/opt/vfer/bin/vfer-send --server \"it's\""
        );
        let bad = SshOptions {
            rsh: Some("ssh 'unbalanced".into()),
            ..SshOptions::default()
        };
        assert!(ssh_argv(&t, RemoteRole::Recv, &bad).is_err());
    }

    #[test]
    fn remote_path_may_name_a_directory() {
        let r = RemoteRole::Recv;
        assert_eq!(remote_program(None, r), "vfer-recv");
        assert_eq!(
            remote_program(Some("/opt/vfer/bin/"), r),
            "/opt/vfer/bin/vfer-recv"
        );
        assert_eq!(
            remote_program(Some("/opt/bin"), RemoteRole::Send),
            "/opt/bin/vfer-send"
        );
        assert_eq!(remote_program(Some("/x/vfer-recv"), r), "/x/vfer-recv");
        assert_eq!(remote_program(Some("sudo vfer-recv"), r), "sudo vfer-recv");
        assert_eq!(
            remote_program(Some("sudo /opt/bin"), r),
            "sudo /opt/bin/vfer-recv"
        );
    }

    #[test]
    fn parses_ssh_dash_g() {
        let out = "user bob\nhostname real.example\nport 22\naddressfamily inet6\n";
        assert_eq!(
            parse_ssh_g(out),
            Some(("real.example".to_string(), Some(Family::V6)))
        );
        assert_eq!(parse_ssh_g("port 22\n"), None);
    }
}
