//! A standing daemon's root: opened once as a directory descriptor, and
//! every requested path resolved beneath it without following a symlink
//! anywhere (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, or on
//! kernels without it component by component with `openat(O_NOFOLLOW)`).
//! A path string is checked and used in one step, so nothing another
//! session plants between a request and its transfer can lead the daemon
//! out of its root.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::path::{PathProblem, RelPath};

/// A daemon's `--root`: a directory descriptor opened once at start (the
/// administrator's path is followed then, and never looked up again).
#[derive(Clone)]
pub struct RootDir {
    fd: Arc<OwnedFd>,
    path: Arc<Path>,
}

impl fmt::Debug for RootDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RootDir({:?})", self.path)
    }
}

impl RootDir {
    /// Opens `path` as the root (it must be a directory).
    pub fn open(path: &Path) -> io::Result<RootDir> {
        let real = path.canonicalize()?;
        let fd = rfs::open(
            &real,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(RootDir {
            fd: Arc::new(fd),
            path: real.into(),
        })
    }

    /// The root as it was opened (for the daemon's own messages only).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory descriptor.
    pub fn fd(&self) -> &Arc<OwnedFd> {
        &self.fd
    }

    /// The name the root itself is sent as (a pull of `.`).
    pub(crate) fn name(&self) -> Option<RelPath> {
        RelPath::from_name(self.path.file_name()?).ok()
    }

    /// What `rel` (the root itself when `None`) is, without following a
    /// symlink anywhere: `None` when it does not exist. A symlink on the
    /// way is `ELOOP`.
    pub fn lstat(&self, rel: Option<&RelPath>) -> io::Result<Option<FileType>> {
        let Some(rel) = rel else {
            return Ok(Some(FileType::Directory));
        };
        let parent = match rel.parent() {
            Some(p) => match open_beneath(self.fd.as_fd(), &p, dir_flags()) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
                Err(e) => return Err(e),
            },
            None => dup(self.fd.as_fd())?,
        };
        match rfs::statat(&parent, rel.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode as _))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Maps a daemon request path onto a path beneath the root: `/`-separated,
/// empty and `.` components dropped (`None` is the root itself); an
/// absolute path, `..`, NUL or an over-long path is refused.
pub fn request_path(path: &str) -> Result<Option<RelPath>, PathProblem> {
    if path.starts_with('/') {
        return Err(PathProblem::Absolute);
    }
    let kept: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if kept.is_empty() {
        return if path.contains('\0') {
            Err(PathProblem::Nul)
        } else {
            Ok(None)
        };
    }
    RelPath::parse(kept.join("/").as_bytes()).map(Some)
}

/// Flags that open a directory to read or to work beneath.
pub(crate) fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY
}

fn dup(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, 0)?)
}

/// False once the kernel said it has no `openat2` (Linux < 5.6, or a
/// sandbox that forbids it).
static HAVE_OPENAT2: AtomicBool = AtomicBool::new(true);

/// Opens `rel` beneath `dir` with `flags`, following no symlink in any
/// component, the last included (a symlink on the way is `ELOOP`).
pub fn open_beneath(dir: BorrowedFd<'_>, rel: &RelPath, flags: OFlags) -> io::Result<OwnedFd> {
    if HAVE_OPENAT2.load(Ordering::Relaxed) {
        match openat2_beneath(dir, rel, flags) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                HAVE_OPENAT2.store(false, Ordering::Relaxed);
            }
            // Some container sandboxes answer an unknown syscall with EPERM.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
            r => return r,
        }
    }
    open_stepwise(dir, rel, flags)
}

/// One `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`.
fn openat2_beneath(dir: BorrowedFd<'_>, rel: &RelPath, flags: OFlags) -> io::Result<OwnedFd> {
    let path = OsStr::from_bytes(rel.as_bytes());
    // No O_NOFOLLOW: with O_DIRECTORY it would turn a trailing symlink into
    // ENOTDIR; RESOLVE_NO_SYMLINKS refuses it as ELOOP.
    Ok(rfs::openat2(
        dir,
        path,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// The fallback: each directory with `openat(O_PATH | O_DIRECTORY |
/// O_NOFOLLOW)`, the last component with `O_NOFOLLOW`. `rel` has no `..`
/// (a [`RelPath`] cannot), so this stays beneath `dir`.
pub(crate) fn open_stepwise(
    dir: BorrowedFd<'_>,
    rel: &RelPath,
    flags: OFlags,
) -> io::Result<OwnedFd> {
    let mut names = rel.components().peekable();
    let mut cur: Option<OwnedFd> = None;
    while let Some(name) = names.next() {
        let at = cur.as_ref().map_or(dir, |fd| fd.as_fd());
        let last = names.peek().is_none();
        let f = if last {
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC
        } else {
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
        };
        match rfs::openat(at, name, f, Mode::empty()) {
            Ok(fd) => cur = Some(fd),
            // O_PATH | O_NOFOLLOW on a symlink says ENOTDIR: name it.
            Err(Errno::NOTDIR) if is_symlink(at, name) => return Err(Errno::LOOP.into()),
            Err(e) => return Err(e.into()),
        }
    }
    cur.ok_or_else(|| io::Error::other("empty path"))
}

fn is_symlink(dir: BorrowedFd<'_>, name: &OsStr) -> bool {
    rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode as _) == FileType::Symlink)
}

/// True for the error a symlink on the way gives.
pub fn is_symlink_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

/// The words for a path refused because a symlink is on its way.
pub fn symlink_refused(rel: &RelPath) -> String {
    format!(
        "{rel:?} is, or passes through, a symlink under the daemon's root; the daemon \
         never follows symlinks there (ask for the path it points to)"
    )
}

/// How the source reaches an entry again when the sink asks for it.
#[derive(Clone)]
pub(crate) enum Origin {
    /// The user's own command-line path, followed like scp (local and
    /// ssh-started modes); `rel` below it is resolved without symlinks.
    Path {
        top: Arc<Path>,
        rel: Option<RelPath>,
    },
    /// `rel` (the directory itself when `None`) beneath a daemon's root,
    /// no symlink followed anywhere, the top level included.
    Beneath {
        root: Arc<OwnedFd>,
        rel: Option<RelPath>,
    },
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Path { top, rel } => write!(f, "Path({top:?}, {rel:?})"),
            Origin::Beneath { rel, .. } => write!(f, "Beneath({rel:?})"),
        }
    }
}

impl Origin {
    /// The same origin one component further down.
    pub fn child(&self, name: &OsStr) -> Result<Origin, PathProblem> {
        let below = |rel: &Option<RelPath>| match rel {
            Some(r) => r.join(name),
            None => RelPath::from_name(name),
        };
        Ok(match self {
            Origin::Path { top, rel } => Origin::Path {
                top: top.clone(),
                rel: Some(below(rel)?),
            },
            Origin::Beneath { root, rel } => Origin::Beneath {
                root: root.clone(),
                rel: Some(below(rel)?),
            },
        })
    }

    /// Opens the entry with `flags` (`CLOEXEC` is added).
    pub fn open(&self, flags: OFlags) -> io::Result<OwnedFd> {
        match self {
            Origin::Path { top, rel: None } => {
                Ok(rfs::open(&**top, flags | OFlags::CLOEXEC, Mode::empty())?)
            }
            Origin::Path {
                top,
                rel: Some(rel),
            } => {
                let base = rfs::open(&**top, dir_flags() | OFlags::CLOEXEC, Mode::empty())?;
                open_beneath(base.as_fd(), rel, flags)
            }
            Origin::Beneath { root, rel: None } => Ok(rfs::openat(
                root.as_fd(),
                ".",
                flags | OFlags::CLOEXEC,
                Mode::empty(),
            )?),
            Origin::Beneath {
                root,
                rel: Some(rel),
            } => open_beneath(root.as_fd(), rel, flags),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn rel(s: &str) -> RelPath {
        RelPath::parse(s.as_bytes()).unwrap()
    }

    fn check(open: fn(BorrowedFd<'_>, &RelPath, OFlags) -> io::Result<OwnedFd>) {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        std::fs::create_dir_all(t.path().join("in/deep")).unwrap();
        std::fs::write(t.path().join("in/deep/f"), b"f").unwrap();
        symlink(outside.path(), t.path().join("esc")).unwrap();
        symlink("deep", t.path().join("in/inner")).unwrap();
        symlink(outside.path().join("secret"), t.path().join("in/link")).unwrap();
        let root = RootDir::open(t.path()).unwrap();
        let fd = root.fd().as_fd();
        assert!(open(fd, &rel("in/deep/f"), OFlags::RDONLY).is_ok());
        assert!(open(fd, &rel("in/deep"), dir_flags()).is_ok());
        for bad in ["esc", "esc/secret", "in/inner/f", "in/link", "in/inner"] {
            let e = open(fd, &rel(bad), OFlags::RDONLY).unwrap_err();
            assert!(is_symlink_error(&e), "{bad}: {e}");
            let e = open(fd, &rel(bad), dir_flags()).unwrap_err();
            assert!(is_symlink_error(&e), "{bad} as a directory: {e}");
        }
        let e = open(fd, &rel("in/nope/f"), OFlags::RDONLY).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let e = open(fd, &rel("in/deep/f"), dir_flags()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR));
    }

    #[test]
    fn openat2_never_follows_a_symlink() {
        check(open_beneath);
    }

    #[test]
    fn stepwise_fallback_never_follows_a_symlink() {
        check(open_stepwise);
    }

    #[test]
    fn request_paths() {
        assert_eq!(request_path("").unwrap(), None);
        assert_eq!(request_path(".").unwrap(), None);
        assert_eq!(request_path("./").unwrap(), None);
        assert_eq!(request_path("a/./b/").unwrap(), Some(rel("a/b")));
        assert_eq!(request_path("a//b").unwrap(), Some(rel("a/b")));
        assert_eq!(request_path("/etc"), Err(PathProblem::Absolute));
        assert_eq!(request_path("a/../b"), Err(PathProblem::DotDot));
        assert_eq!(request_path(".."), Err(PathProblem::DotDot));
        assert_eq!(request_path("a\0b"), Err(PathProblem::Nul));
    }

    #[test]
    fn lstat_never_follows() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("d")).unwrap();
        symlink("/etc", t.path().join("esc")).unwrap();
        let root = RootDir::open(t.path()).unwrap();
        assert_eq!(
            root.lstat(Some(&rel("esc"))).unwrap(),
            Some(FileType::Symlink)
        );
        assert_eq!(root.lstat(Some(&rel("d/x"))).unwrap(), None);
        assert_eq!(root.lstat(Some(&rel("nope/x"))).unwrap(), None);
        assert!(is_symlink_error(
            &root.lstat(Some(&rel("esc/passwd"))).unwrap_err()
        ));
        assert_eq!(root.lstat(None).unwrap(), Some(FileType::Directory));
    }
}
