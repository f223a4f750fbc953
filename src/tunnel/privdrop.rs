//! Privilege drop, s6-tlsd's `TLS_UID`/`TLS_GID`: a daemon started as
//! root binds its socket and reads its keys, then runs as `--user NAME`
//! (or `VFER_UID` and `VFER_GID`), and so does every program it starts.
//!
//! The binary records the wish with [`set_pending`] before the daemon
//! starts; the daemon's listener calls [`apply_pending`] right after its
//! socket is bound (everything privileged is done by then).

use std::sync::Mutex;

use anyhow::{bail, Context, Result};

/// Who to become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// Group id (the only group kept).
    pub gid: u32,
    /// For messages.
    pub name: String,
}

static PENDING: Mutex<Option<Identity>> = Mutex::new(None);

/// `--user NAME` (a user name or a number), else `VFER_UID`/`VFER_GID`
/// from `env`; `None` when neither is given.
pub fn resolve(
    user: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Identity>> {
    if let Some(name) = user {
        return lookup(name).map(Some);
    }
    match (env("VFER_UID"), env("VFER_GID")) {
        (None, None) => Ok(None),
        (Some(u), Some(g)) => {
            let uid = u.trim().parse().context("VFER_UID: not a number")?;
            let gid = g.trim().parse().context("VFER_GID: not a number")?;
            Ok(Some(Identity {
                uid,
                gid,
                name: format!("uid {uid}"),
            }))
        }
        _ => bail!("set both VFER_UID and VFER_GID (or use --user NAME)"),
    }
}

/// Looks a user up in the password database.
fn lookup(name: &str) -> Result<Identity> {
    let cname = std::ffi::CString::new(name).context("--user: a NUL in the name")?;
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16 * 1024];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwnam_r writes into `pw` and `buf`, both live and sized.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pw,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut out,
        )
    };
    if rc == 0 && !out.is_null() {
        return Ok(Identity {
            uid: pw.pw_uid,
            gid: pw.pw_gid,
            name: name.to_string(),
        });
    }
    if let Ok(uid) = name.parse::<u32>() {
        return Ok(Identity {
            uid,
            gid: uid,
            name: name.to_string(),
        });
    }
    bail!("--user {name}: no such user")
}

/// Records the identity the next listener takes once bound.
pub fn set_pending(id: Option<Identity>) {
    *PENDING.lock().unwrap_or_else(|e| e.into_inner()) = id;
}

/// Becomes the pending identity, if any (once).
pub fn apply_pending() -> Result<()> {
    let id = PENDING.lock().unwrap_or_else(|e| e.into_inner()).take();
    match id {
        Some(id) => become_user(&id),
        None => Ok(()),
    }
}

/// setgroups, setgid, setuid (process-wide: glibc applies them to every
/// thread), then checks that root cannot be regained.
pub fn become_user(id: &Identity) -> Result<()> {
    let groups = [id.gid as libc::gid_t];
    // SAFETY: plain system calls with valid arguments.
    unsafe {
        if libc::setgroups(1, groups.as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("--user {}: setgroups (is the daemon root?)", id.name));
        }
        if libc::setgid(id.gid) != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("--user {}: setgid {}", id.name, id.gid));
        }
        if libc::setuid(id.uid) != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("--user {}: setuid {}", id.name, id.uid));
        }
        if id.uid != 0 && libc::setuid(0) == 0 {
            bail!("--user {}: root could be regained after the drop", id.name);
        }
    }
    tracing::info!("running as {} (uid {}, gid {})", id.name, id.uid, id.gid);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_the_environment() {
        let root = resolve(Some("root"), |_| None).unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        let n = resolve(Some("4242"), |_| None).unwrap().unwrap();
        assert_eq!((n.uid, n.gid), (4242, 4242));
        assert!(resolve(Some("no-such-user-vfer"), |_| None).is_err());
        assert_eq!(resolve(None, |_| None).unwrap(), None);
        let env = |k: &str| match k {
            "VFER_UID" => Some("1000".to_string()),
            "VFER_GID" => Some("100".to_string()),
            _ => None,
        };
        let e = resolve(None, env).unwrap().unwrap();
        assert_eq!((e.uid, e.gid), (1000, 100));
        assert!(resolve(None, |k| (k == "VFER_UID").then(|| "1".to_string())).is_err());
    }
}
