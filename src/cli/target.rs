//! Parsing transfer operands the way scp and rsync do: `[user@]host:path`,
//! `vfer://[user@]host[:port]/path` for daemons, and local paths.

use std::fmt;

/// Default UDP port of a standing `vfer-recv --listen` daemon.
pub const DEFAULT_DAEMON_PORT: u16 = 7878;

/// One command-line operand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// A local path, or `-` for stdin/stdout.
    Local(String),
    /// A path on a host reached through ssh (`[user@]host:path`).
    Ssh {
        /// `user@host` or `host`, passed to ssh as given.
        login: String,
        /// The remote path (may be empty: the remote home directory).
        path: String,
    },
    /// A path on a vfer daemon (`vfer://[user@]host[:port]/path`).
    Daemon {
        /// Login name, if given.
        user: Option<String>,
        /// Host name or address.
        host: String,
        /// UDP port.
        port: u16,
        /// Path under the daemon's root.
        path: String,
    },
}

/// An operand that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperandError(pub String);

impl fmt::Display for OperandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OperandError {}

impl Operand {
    /// Parses one operand. Like scp, a colon before the first slash marks a
    /// remote operand; write `./a:b` for a local file whose name has a colon.
    pub fn parse(arg: &str) -> Result<Operand, OperandError> {
        if let Some(rest) = arg.strip_prefix("vfer://") {
            return parse_url(arg, rest);
        }
        if arg == "-" || arg.starts_with('/') || arg.starts_with("./") || arg.starts_with("../") {
            return Ok(Operand::Local(arg.to_string()));
        }
        // `[v6addr]:path` (as scp accepts).
        if let Some(rest) = arg.strip_prefix('[') {
            if let Some((host, path)) = rest.split_once("]:") {
                return Ok(Operand::Ssh {
                    login: host.to_string(),
                    path: path.to_string(),
                });
            }
        }
        let colon = arg.find(':');
        let slash = arg.find('/');
        match colon {
            Some(c) if slash.is_none_or(|s| c < s) => {
                let login = &arg[..c];
                if login.is_empty() || login.ends_with('@') || login.starts_with('@') {
                    return Err(OperandError(format!(
                        "'{arg}': missing host name before ':' (write ./{arg} for a local file)"
                    )));
                }
                Ok(Operand::Ssh {
                    login: login.to_string(),
                    path: arg[c + 1..].to_string(),
                })
            }
            _ => Ok(Operand::Local(arg.to_string())),
        }
    }

    /// Is this operand on another host?
    pub fn is_remote(&self) -> bool {
        !matches!(self, Operand::Local(_))
    }
}

fn parse_url(arg: &str, rest: &str) -> Result<Operand, OperandError> {
    let bad = |why: &str| {
        OperandError(format!(
            "'{arg}': {why} (expected vfer://[user@]host[:port]/path)"
        ))
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let (user, hostport) = match authority.rfind('@') {
        Some(i) => (Some(authority[..i].to_string()), &authority[i + 1..]),
        None => (None, authority),
    };
    if user.as_deref() == Some("") {
        return Err(bad("empty user name"));
    }
    let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
        let end = h
            .find(']')
            .ok_or_else(|| bad("unclosed '[' in IPv6 address"))?;
        let port = match &h[end + 1..] {
            "" => DEFAULT_DAEMON_PORT,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| bad("bad port"))?,
        };
        (h[..end].to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad("bad port"))?),
            None => (hostport.to_string(), DEFAULT_DAEMON_PORT),
        }
    };
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    Ok(Operand::Daemon {
        user,
        host,
        port,
        path: path.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh(login: &str, path: &str) -> Operand {
        Operand::Ssh {
            login: login.into(),
            path: path.into(),
        }
    }

    #[test]
    fn scp_rules() {
        assert_eq!(
            Operand::parse("host:/data/").unwrap(),
            ssh("host", "/data/")
        );
        assert_eq!(Operand::parse("me@host:x").unwrap(), ssh("me@host", "x"));
        assert_eq!(Operand::parse("host:").unwrap(), ssh("host", ""));
        assert_eq!(Operand::parse("[::1]:/tmp").unwrap(), ssh("::1", "/tmp"));
        assert_eq!(
            Operand::parse("dir/a:b").unwrap(),
            Operand::Local("dir/a:b".into())
        );
        assert_eq!(
            Operand::parse("./a:b").unwrap(),
            Operand::Local("./a:b".into())
        );
        assert_eq!(Operand::parse("-").unwrap(), Operand::Local("-".into()));
        assert_eq!(
            Operand::parse("file").unwrap(),
            Operand::Local("file".into())
        );
        assert!(Operand::parse(":x").is_err());
        assert!(Operand::parse("me@:x").is_err());
    }

    #[test]
    fn urls() {
        assert_eq!(
            Operand::parse("vfer://alice@example.org:9000/in/box").unwrap(),
            Operand::Daemon {
                user: Some("alice".into()),
                host: "example.org".into(),
                port: 9000,
                path: "in/box".into()
            }
        );
        assert_eq!(
            Operand::parse("vfer://[::1]/x").unwrap(),
            Operand::Daemon {
                user: None,
                host: "::1".into(),
                port: DEFAULT_DAEMON_PORT,
                path: "x".into()
            }
        );
        assert!(Operand::parse("vfer://h:notaport/x").is_err());
        assert!(Operand::parse("vfer:///x").is_err());
    }
}
