//! What the far side does with the paths an scp user writes, before it
//! copies: `~` and `~user` become home directories, and a pull source with
//! glob characters is expanded there (scp and rsync do both on the remote
//! side; the user's local shell never sees a remote path unquoted).

use std::ffi::{CStr, CString};
use std::path::Path;

/// Expands a leading `~` (our `$HOME`, else the password database) or
/// `~user` (that user's home). An unknown user leaves the path as it is, so
/// the copy fails naming it.
pub fn tilde(path: &str) -> String {
    let Some(rest) = path.strip_prefix('~') else {
        return path.to_string();
    };
    let (user, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let home = if user.is_empty() {
        std::env::var("HOME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| home_of(None))
    } else {
        home_of(Some(user))
    };
    match home {
        Some(h) if tail.is_empty() => h,
        Some(h) => format!("{}{tail}", h.trim_end_matches('/')),
        None => path.to_string(),
    }
}

/// A home directory from the password database: `user`'s, or ours.
fn home_of(user: Option<&str>) -> Option<String> {
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16 * 1024];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives the
    // strings `pw` points into, which are copied before it is dropped.
    let rc = unsafe {
        match user {
            Some(u) => {
                let name = CString::new(u).ok()?;
                libc::getpwnam_r(
                    name.as_ptr(),
                    &mut pw,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    &mut out,
                )
            }
            None => libc::getpwuid_r(
                libc::getuid(),
                &mut pw,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut out,
            ),
        }
    };
    if rc != 0 || out.is_null() || pw.pw_dir.is_null() {
        return None;
    }
    // SAFETY: getpw*_r succeeded, so pw_dir is a NUL-terminated string in `buf`.
    let dir = unsafe { CStr::from_ptr(pw.pw_dir) };
    Some(dir.to_string_lossy().into_owned())
}

/// Expands one pull source: `~` first, then glob characters (`*?[`) with
/// the C library's `glob(3)`, sorted. A path that exists as written is
/// taken literally (a file may be called `a[1]`); a pattern matching
/// nothing stays as written, so the copy fails naming it, as scp does.
pub fn source(path: &str) -> Vec<String> {
    let path = tilde(path);
    if !path.contains(['*', '?', '[']) || Path::new(&path).symlink_metadata().is_ok() {
        return vec![path];
    }
    match glob(&path) {
        Some(found) if !found.is_empty() => found,
        _ => vec![path],
    }
}

fn glob(pattern: &str) -> Option<Vec<String>> {
    let c = CString::new(pattern).ok()?;
    let mut g: libc::glob_t = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `g` is zeroed as glob(3) expects;
    // globfree releases what glob allocated, after the names are copied.
    let rc = unsafe { libc::glob(c.as_ptr(), 0, None, &mut g) };
    let mut out = Vec::new();
    if rc == 0 {
        for i in 0..g.gl_pathc {
            let p = unsafe { *g.gl_pathv.add(i) };
            if !p.is_null() {
                out.push(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned());
            }
        }
    }
    unsafe { libc::globfree(&mut g) };
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilde_forms() {
        let home = std::env::var("HOME").unwrap_or_default();
        if !home.is_empty() {
            assert_eq!(tilde("~"), home);
            assert_eq!(
                tilde("~/x/y"),
                format!("{}/x/y", home.trim_end_matches('/'))
            );
        }
        assert_eq!(tilde("a/~b"), "a/~b");
        assert_eq!(tilde("~no-such-user-here/x"), "~no-such-user-here/x");
        assert_eq!(tilde("~root/x"), "/root/x");
    }

    #[test]
    fn globs_expand_sorted_and_keep_misses_literal() {
        let t = tempfile::tempdir().unwrap();
        for n in ["b.txt", "a.txt", "c.log", "x[1]"] {
            std::fs::write(t.path().join(n), b"").unwrap();
        }
        let d = t.path().display();
        assert_eq!(
            source(&format!("{d}/*.txt")),
            [format!("{d}/a.txt"), format!("{d}/b.txt")]
        );
        assert_eq!(source(&format!("{d}/*.gz")), [format!("{d}/*.gz")]);
        assert_eq!(source(&format!("{d}/x[1]")), [format!("{d}/x[1]")]);
    }
}
