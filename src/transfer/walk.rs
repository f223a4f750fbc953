//! The source's manifest: walk one command-line source into entries in
//! pre-order (a directory before its contents, names sorted), never
//! following a symlink below the top level: directories are read through
//! descriptors and their entries looked at with `fstatat(AT_SYMLINK_NOFOLLOW)`.
//! A daemon's source ([`walk_beneath`]) does not follow one at the top
//! level either. Blocking; run in `spawn_blocking`.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{self as rfs, AtFlags, Dir, FileType, Stat};

use super::beneath::{dir_flags, is_symlink_error, open_beneath, symlink_refused, Origin};
use super::frame::{Kind, MAX_LINK_TARGET};
use super::path::RelPath;
use super::{Failure, RootDir};

/// One thing the source will send.
#[derive(Debug, Clone)]
pub struct SrcEntry {
    /// Path on the wire (first component = the source's own name).
    pub rel: RelPath,
    /// What it is.
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    /// Size (files only).
    pub size: u64,
    /// Modification time, seconds.
    pub mtime_sec: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: u32,
    /// The path shown in messages (`None` for a stream).
    pub local: Option<PathBuf>,
    /// How to open it again (`None` for a stream).
    pub(crate) origin: Option<Origin>,
    /// Symlink target.
    pub target: Vec<u8>,
}

impl SrcEntry {
    // The `stat` field types differ between targets.
    #[allow(clippy::unnecessary_cast)]
    fn new(rel: RelPath, kind: Kind, st: &Stat, local: PathBuf, origin: Origin) -> SrcEntry {
        SrcEntry {
            rel,
            kind,
            mode: st.st_mode as u32 & 0o7777,
            size: if kind == Kind::File {
                st.st_size as u64
            } else {
                0
            },
            mtime_sec: st.st_mtime as i64,
            mtime_nsec: (st.st_mtime_nsec as i64).clamp(0, 999_999_999) as u32,
            local: Some(local),
            origin: Some(origin),
            target: Vec::new(),
        }
    }
}

fn fail(path: &Path, message: impl Into<String>) -> Failure {
    Failure {
        path: path.display().to_string(),
        message: plain_os_error(message.into()),
    }
}

fn kind_of(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode as _)
}

/// An OS error's text without Rust's " (os error N)" tail, as scp and the
/// shell print it ("No such file or directory").
pub(crate) fn plain_os_error(mut text: String) -> String {
    if let Some(i) = text.rfind(" (os error ") {
        if text.ends_with(')') {
            text.truncate(i);
        }
    }
    text
}

/// The name a source gets at the destination: its last component, or for
/// `.`/`..`-like paths the last component of its canonical form.
fn root_name(path: &Path) -> Option<RelPath> {
    let name = match path.file_name() {
        Some(n) => n.to_owned(),
        None => fs::canonicalize(path).ok()?.file_name()?.to_owned(),
    };
    RelPath::from_name(&name).ok()
}

/// Walks one of the user's source paths (followed at the top level, like
/// scp). Failures (missing, unreadable, a directory without `-r`, special
/// files) are collected; the walk goes on.
pub fn walk_source(path: &Path, recursive: bool) -> (Vec<SrcEntry>, Vec<Failure>) {
    let mut out = Vec::new();
    let mut failures = Vec::new();
    let st = match rfs::stat(path) {
        Ok(st) => st,
        Err(e) => {
            failures.push(fail(path, io::Error::from(e).to_string()));
            return (out, failures);
        }
    };
    let Some(rel) = root_name(path) else {
        failures.push(fail(path, "has no usable name to copy it as"));
        return (out, failures);
    };
    let origin = Origin::Path {
        top: Arc::from(path),
        rel: None,
    };
    walk_top(
        path.to_owned(),
        rel,
        &st,
        origin,
        recursive,
        &mut out,
        &mut failures,
    );
    (out, failures)
}

/// Walks `path` beneath a daemon's root (the root itself when `None`)
/// without following a symlink anywhere: a symlink at the top level is
/// refused.
pub fn walk_beneath(
    root: &RootDir,
    path: Option<&RelPath>,
    recursive: bool,
) -> (Vec<SrcEntry>, Vec<Failure>) {
    let mut out = Vec::new();
    let mut failures = Vec::new();
    let shown = PathBuf::from(path.map_or_else(|| ".".to_owned(), |p| p.to_string()));
    let st = match path {
        None => rfs::fstat(root.fd()).map_err(io::Error::from),
        Some(p) => {
            let parent = match p.parent() {
                None => Ok(root.fd().clone()),
                Some(up) => open_beneath(root.fd().as_fd(), &up, dir_flags()).map(Arc::new),
            };
            parent.and_then(|dir| {
                rfs::statat(&*dir, p.file_name(), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(io::Error::from)
            })
        }
    };
    let st = match st {
        Ok(st) if kind_of(&st) == FileType::Symlink => {
            failures.push(fail(
                &shown,
                symlink_refused(path.unwrap_or(&RelPath::stdin())),
            ));
            return (out, failures);
        }
        Ok(st) => st,
        Err(e) if is_symlink_error(&e) => {
            failures.push(fail(
                &shown,
                symlink_refused(path.unwrap_or(&RelPath::stdin())),
            ));
            return (out, failures);
        }
        Err(e) => {
            failures.push(fail(&shown, e.to_string()));
            return (out, failures);
        }
    };
    let name = match path {
        Some(p) => RelPath::from_name(p.file_name()).ok(),
        None => root.name(),
    };
    let Some(rel) = name else {
        failures.push(fail(&shown, "has no usable name to copy it as"));
        return (out, failures);
    };
    let origin = Origin::Beneath {
        root: root.fd().clone(),
        rel: path.cloned(),
    };
    walk_top(shown, rel, &st, origin, recursive, &mut out, &mut failures);
    (out, failures)
}

fn walk_top(
    shown: PathBuf,
    rel: RelPath,
    st: &Stat,
    origin: Origin,
    recursive: bool,
    out: &mut Vec<SrcEntry>,
    failures: &mut Vec<Failure>,
) {
    match kind_of(st) {
        FileType::RegularFile => out.push(SrcEntry::new(rel, Kind::File, st, shown, origin)),
        FileType::Directory if !recursive => failures.push(fail(&shown, "is a directory (use -r)")),
        FileType::Directory => walk_dir(shown, rel, st, origin, out, failures),
        _ => failures.push(fail(&shown, "not a regular file or directory, skipped")),
    }
}

/// Pre-order walk with an explicit stack (deep trees cannot overflow it).
/// Each directory is opened again from its origin when its turn comes, so
/// the walk holds one directory descriptor at a time.
fn walk_dir(
    shown: PathBuf,
    rel: RelPath,
    st: &Stat,
    origin: Origin,
    out: &mut Vec<SrcEntry>,
    failures: &mut Vec<Failure>,
) {
    out.push(SrcEntry::new(
        rel.clone(),
        Kind::Dir,
        st,
        shown.clone(),
        origin.clone(),
    ));
    let mut stack = vec![(shown, rel, origin)];
    while let Some((shown, rel, origin)) = stack.pop() {
        let fd = match origin.open(dir_flags()) {
            Ok(fd) => fd,
            Err(e) if is_symlink_error(&e) => {
                failures.push(fail(
                    &shown,
                    "became a symlink during the walk; not followed",
                ));
                continue;
            }
            Err(e) => {
                failures.push(fail(&shown, e.to_string()));
                continue;
            }
        };
        let (mut names, error) = read_names(&fd);
        if let Some(e) = error {
            failures.push(fail(&shown, e.to_string()));
        }
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let local = shown.join(&name);
            let Some(e) = child(fd.as_fd(), &local, &rel, &origin, &name, failures) else {
                continue;
            };
            if e.kind == Kind::Dir {
                if let Some(o) = &e.origin {
                    subdirs.push((local, e.rel.clone(), o.clone()));
                }
            }
            out.push(e);
        }
        // Contents follow their directory entry; later siblings' contents
        // come after, so the sink always sees a parent before a child.
        stack.extend(subdirs.into_iter().rev());
    }
}

/// The names in directory `fd` (read through a second descriptor, so
/// `fd` stays free for `fstatat`), and the error that stopped the reading.
fn read_names(fd: &OwnedFd) -> (Vec<OsString>, Option<io::Error>) {
    let mut names = Vec::new();
    let dir = match Dir::read_from(fd) {
        Ok(d) => d,
        Err(e) => return (names, Some(e.into())),
    };
    for ent in dir {
        match ent {
            Ok(ent) => {
                let n = ent.file_name().to_bytes();
                if n != b"." && n != b".." {
                    names.push(OsString::from(std::ffi::OsStr::from_bytes(n)));
                }
            }
            Err(e) => return (names, Some(e.into())),
        }
    }
    (names, None)
}

fn child(
    dir: std::os::fd::BorrowedFd<'_>,
    local: &Path,
    parent: &RelPath,
    origin: &Origin,
    name: &std::ffi::OsStr,
    failures: &mut Vec<Failure>,
) -> Option<SrcEntry> {
    let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(e) => {
            failures.push(fail(local, io::Error::from(e).to_string()));
            return None;
        }
    };
    let (Ok(rel), Ok(origin)) = (parent.join(name), origin.child(name)) else {
        failures.push(fail(local, "path too long to send"));
        return None;
    };
    match kind_of(&st) {
        FileType::RegularFile => Some(SrcEntry::new(
            rel,
            Kind::File,
            &st,
            local.to_owned(),
            origin,
        )),
        FileType::Directory => Some(SrcEntry::new(rel, Kind::Dir, &st, local.to_owned(), origin)),
        FileType::Symlink => {
            let target = match rfs::readlinkat(dir, name, Vec::new()) {
                Ok(t) => t.into_bytes(),
                Err(e) => {
                    failures.push(fail(local, io::Error::from(e).to_string()));
                    return None;
                }
            };
            if target.is_empty() || target.len() > MAX_LINK_TARGET {
                failures.push(fail(local, "symlink target too long to send"));
                return None;
            }
            let mut e = SrcEntry::new(rel, Kind::Symlink, &st, local.to_owned(), origin);
            e.target = target;
            Some(e)
        }
        _ => {
            failures.push(fail(
                local,
                "not a regular file, directory or symlink, skipped",
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_in_preorder_and_keeps_links_as_links() {
        let t = tempfile::tempdir().unwrap();
        let top = t.path().join("top");
        fs::create_dir_all(top.join("b/deep/er")).unwrap();
        fs::create_dir(top.join("a")).unwrap();
        fs::write(top.join("a/f"), b"hello").unwrap();
        fs::write(top.join("z"), b"").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", top.join("b/link")).unwrap();
        let (e, f) = walk_source(&top, true);
        assert!(f.is_empty(), "{f:?}");
        let names: Vec<String> = e.iter().map(|e| e.rel.to_string()).collect();
        assert_eq!(
            names,
            [
                "top",
                "top/a",
                "top/b",
                "top/z",
                "top/a/f",
                "top/b/deep",
                "top/b/link",
                "top/b/deep/er"
            ]
        );
        let link = e.iter().find(|e| e.kind == Kind::Symlink).unwrap();
        assert_eq!(link.target, b"/etc/passwd");
        assert_eq!(e[4].size, 5);
        // Parents always come before children.
        for (i, x) in e.iter().enumerate() {
            if let Some(p) = x.rel.parent() {
                assert!(e[..i].iter().any(|y| y.rel == p && y.kind == Kind::Dir));
            }
        }
    }

    #[test]
    fn directories_need_recursive_and_missing_sources_fail() {
        let t = tempfile::tempdir().unwrap();
        let (e, f) = walk_source(t.path(), false);
        assert!(e.is_empty());
        assert!(f[0].message.contains("-r"));
        let (e, f) = walk_source(&t.path().join("nope"), true);
        assert!(e.is_empty());
        assert_eq!(f.len(), 1);
        let (e, _) = walk_source(&t.path().join("."), true);
        assert_eq!(e[0].rel, root_name(t.path()).unwrap());
    }
}
