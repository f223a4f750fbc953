//! The source's manifest: walk one command-line source into entries in
//! pre-order (a directory before its contents, names sorted), never
//! following a symlink below the top level. Blocking; run in
//! `spawn_blocking`.

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::frame::{Kind, MAX_LINK_TARGET};
use super::path::RelPath;
use super::Failure;

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
    /// Where to read it (`None` for a stream).
    pub local: Option<PathBuf>,
    /// Symlink target.
    pub target: Vec<u8>,
    /// A command-line source itself (may be reached through a symlink).
    pub top: bool,
}

impl SrcEntry {
    fn new(rel: RelPath, kind: Kind, md: &Metadata, local: PathBuf, top: bool) -> SrcEntry {
        SrcEntry {
            rel,
            kind,
            mode: md.mode() & 0o7777,
            size: if kind == Kind::File { md.size() } else { 0 },
            mtime_sec: md.mtime(),
            mtime_nsec: md.mtime_nsec().clamp(0, 999_999_999) as u32,
            local: Some(local),
            target: Vec::new(),
            top,
        }
    }
}

fn fail(path: &Path, message: impl Into<String>) -> Failure {
    Failure {
        path: path.display().to_string(),
        message: plain_os_error(message.into()),
    }
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

/// Walks one source path. Failures (missing, unreadable, a directory
/// without `-r`, special files) are collected; the walk goes on.
pub fn walk_source(path: &Path, recursive: bool) -> (Vec<SrcEntry>, Vec<Failure>) {
    let mut out = Vec::new();
    let mut failures = Vec::new();
    let md = match fs::metadata(path) {
        Ok(md) => md,
        Err(e) => {
            failures.push(fail(path, e.to_string()));
            return (out, failures);
        }
    };
    let Some(rel) = root_name(path) else {
        failures.push(fail(path, "has no usable name to copy it as"));
        return (out, failures);
    };
    if md.is_file() {
        out.push(SrcEntry::new(rel, Kind::File, &md, path.to_owned(), true));
    } else if md.is_dir() {
        if !recursive {
            failures.push(fail(path, "is a directory (use -r)"));
        } else {
            walk_dir(path, rel, &md, &mut out, &mut failures);
        }
    } else {
        failures.push(fail(path, "not a regular file or directory, skipped"));
    }
    (out, failures)
}

/// Pre-order walk with an explicit stack (deep trees cannot overflow it).
fn walk_dir(
    top: &Path,
    rel: RelPath,
    md: &Metadata,
    out: &mut Vec<SrcEntry>,
    failures: &mut Vec<Failure>,
) {
    out.push(SrcEntry::new(
        rel.clone(),
        Kind::Dir,
        md,
        top.to_owned(),
        true,
    ));
    let mut stack = vec![(top.to_owned(), rel)];
    while let Some((dir, rel)) = stack.pop() {
        let mut names: Vec<_> = match fs::read_dir(&dir) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect(),
            Err(e) => {
                failures.push(fail(&dir, e.to_string()));
                continue;
            }
        };
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let local = dir.join(&name);
            if let Some(e) = child(&local, &rel, &name, failures) {
                if e.kind == Kind::Dir {
                    subdirs.push((local, e.rel.clone()));
                }
                out.push(e);
            }
        }
        // Contents follow their directory entry; later siblings' contents
        // come after, so the sink always sees a parent before a child.
        stack.extend(subdirs.into_iter().rev());
    }
}

fn child(
    local: &Path,
    parent: &RelPath,
    name: &OsStr,
    failures: &mut Vec<Failure>,
) -> Option<SrcEntry> {
    let md = match fs::symlink_metadata(local) {
        Ok(md) => md,
        Err(e) => {
            failures.push(fail(local, e.to_string()));
            return None;
        }
    };
    let Ok(rel) = parent.join(name) else {
        failures.push(fail(local, "path too long to send"));
        return None;
    };
    let ft = md.file_type();
    if ft.is_file() {
        Some(SrcEntry::new(rel, Kind::File, &md, local.to_owned(), false))
    } else if ft.is_dir() {
        Some(SrcEntry::new(rel, Kind::Dir, &md, local.to_owned(), false))
    } else if ft.is_symlink() {
        let target = match fs::read_link(local) {
            Ok(t) => t.into_os_string().into_vec(),
            Err(e) => {
                failures.push(fail(local, e.to_string()));
                return None;
            }
        };
        if target.is_empty() || target.len() > MAX_LINK_TARGET || target.contains(&0) {
            failures.push(fail(local, "symlink target too long to send"));
            return None;
        }
        let mut e = SrcEntry::new(rel, Kind::Symlink, &md, local.to_owned(), false);
        e.target = target;
        Some(e)
    } else {
        failures.push(fail(
            local,
            "not a regular file, directory or symlink, skipped",
        ));
        None
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
