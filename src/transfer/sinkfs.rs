//! The sink's file system operations, all relative to an open directory
//! descriptor and none following a symlink: `openat(O_NOFOLLOW)`,
//! `mkdirat`, `symlinkat`, `renameat`. A peer's path can therefore never
//! lead out of DEST, even through a symlink that already exists there or
//! that this transfer created. These are short metadata syscalls and run
//! inline; bulk reads, writes and fsync run in `spawn_blocking`.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, UTIME_OMIT};

use super::path::PART_SUFFIX;

/// What `fstatat(AT_SYMLINK_NOFOLLOW)` says about a name.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    /// File type (a symlink is reported as a symlink).
    pub kind: FileType,
    /// Size in bytes.
    pub size: u64,
    /// Number of hard links.
    pub nlink: u64,
}

fn io_err(e: rustix::io::Errno) -> io::Error {
    io::Error::from(e)
}

/// `lstat` of `name` in `dir`; `None` if it does not exist.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<Meta>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(Meta {
            kind: FileType::from_raw_mode(st.st_mode as _),
            size: st.st_size as u64,
            nlink: nlink(&st),
        })),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(io_err(e)),
    }
}

/// Opens the user's own destination directory (following symlinks: the
/// user chose that path).
pub fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    rfs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err)
}

/// Opens subdirectory `name` of `dir` without following a symlink, with a
/// clear error when it is a symlink or not a directory.
pub fn open_subdir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    match rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(fd),
        Err(e) => Err(explain(dir, name, io_err(e))),
    }
}

/// Turns ELOOP/ENOTDIR/EEXIST into words about what is in the way.
fn explain(dir: BorrowedFd<'_>, name: &OsStr, e: io::Error) -> io::Error {
    let shown = String::from_utf8_lossy(name.as_bytes()).into_owned();
    match lstat_at(dir, name) {
        Ok(Some(m)) if m.kind == FileType::Symlink => io::Error::other(format!(
            "{shown:?} is a symlink in the destination; refusing to follow it"
        )),
        Ok(Some(m)) if m.kind != FileType::Directory => io::Error::other(format!(
            "{shown:?} exists and is not a directory (a directory is needed here)"
        )),
        _ => e,
    }
}

/// Creates directory `name` in `dir` (mode 0o777 less the umask). An
/// existing directory is fine (returns false); anything else in the way
/// is an error.
pub fn make_dir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
    match rfs::mkdirat(dir, name, Mode::from_raw_mode(0o777)) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::EXIST) => match lstat_at(dir, name)? {
            Some(m) if m.kind == FileType::Directory => Ok(false),
            _ => Err(explain(
                dir,
                name,
                io::Error::from(io::ErrorKind::AlreadyExists),
            )),
        },
        Err(e) => Err(io_err(e)),
    }
}

/// Creates symlink `name -> target` in `dir`, replacing an existing file
/// or symlink (never a directory). The target is stored, never followed.
pub fn make_symlink(dir: BorrowedFd<'_>, name: &OsStr, target: &[u8]) -> io::Result<()> {
    let target = OsStr::from_bytes(target);
    match rfs::symlinkat(target, dir, name) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::EXIST) => {
            match lstat_at(dir, name)? {
                Some(m) if m.kind == FileType::Directory => {
                    return Err(io::Error::other(
                        "a directory is in the way of this symlink",
                    ))
                }
                _ => rfs::unlinkat(dir, name, AtFlags::empty()).map_err(io_err)?,
            }
            rfs::symlinkat(target, dir, name).map_err(io_err)
        }
        Err(e) => Err(io_err(e)),
    }
}

/// `NAME.vfer-part`.
pub fn part_name(name: &OsStr) -> OsString {
    let mut p = name.to_owned();
    p.push(PART_SUFFIX);
    p
}

/// Opens (creating, mode 0o600) the part file `part` in `dir` for reading
/// and writing. Refused: a symlink (`O_NOFOLLOW`), anything but a regular
/// file (opened non-blocking, so a FIFO cannot hang the session), and a
/// file with more than one hard link (writing would change the other
/// name's file too: a local user could link any file the sink can write).
/// The checks are made on the open descriptor, so they hold for what is
/// written.
pub fn open_part(dir: BorrowedFd<'_>, part: &OsStr) -> io::Result<File> {
    let fd = rfs::openat(
        dir,
        part,
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| match e {
        rustix::io::Errno::LOOP => io::Error::other("is a symlink; refusing to follow it"),
        e => io_err(e),
    })?;
    check_part(&fd)?;
    Ok(File::from(fd))
}

/// A part may only be a regular file with one link.
fn check_part(fd: &OwnedFd) -> io::Result<()> {
    let st = rfs::fstat(fd).map_err(io_err)?;
    if FileType::from_raw_mode(st.st_mode as _) != FileType::RegularFile {
        return Err(io::Error::other("exists and is not a regular file"));
    }
    if nlink(&st) > 1 {
        return Err(hard_linked(nlink(&st)));
    }
    Ok(())
}

/// `st_nlink`, whose type differs between targets.
#[allow(clippy::useless_conversion)]
fn nlink(st: &rfs::Stat) -> u64 {
    u64::from(st.st_nlink)
}

/// The refusal of a part with other hard links.
pub fn hard_linked(nlink: u64) -> io::Error {
    io::Error::other(format!(
        "has {nlink} hard links; refusing to write through a hard link (remove it to start over)"
    ))
}

/// Opens an existing regular file `name` in `dir` read-only, no follow,
/// non-blocking (a FIFO swapped in cannot hang the session).
pub fn open_existing(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<File> {
    let fd = rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err)?;
    let f = File::from(fd);
    if !f.metadata()?.is_file() {
        return Err(io::Error::other("is not a regular file"));
    }
    Ok(f)
}

/// Renames `from` to `to` within `dir`; `to` may be replaced unless it is a
/// directory.
pub fn rename_in(dir: BorrowedFd<'_>, from: &OsStr, to: &OsStr) -> io::Result<()> {
    if let Some(m) = lstat_at(dir, to)? {
        if m.kind == FileType::Directory {
            return Err(io::Error::other(
                "a directory with this name is in the way; the .vfer-part is kept",
            ));
        }
    }
    rfs::renameat(dir, from, dir, to).map_err(io_err)
}

/// Removes `name` from `dir` (a file, not a directory).
pub fn remove(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    rfs::unlinkat(dir, name, AtFlags::empty()).map_err(io_err)
}

fn stamp(sec: i64, nsec: u32) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: sec,
            tv_nsec: nsec as _,
        },
    }
}

/// Sets the mtime of an open file or directory.
pub fn set_mtime_fd(fd: impl AsFd, sec: i64, nsec: u32) -> io::Result<()> {
    rfs::futimens(fd, &stamp(sec, nsec)).map_err(io_err)
}

/// Sets the mtime of `name` in `dir` itself (a symlink is not followed).
pub fn set_mtime_at(dir: BorrowedFd<'_>, name: &OsStr, sec: i64, nsec: u32) -> io::Result<()> {
    rfs::utimensat(dir, name, &stamp(sec, nsec), AtFlags::SYMLINK_NOFOLLOW).map_err(io_err)
}

/// Sets the permission bits of an open file or directory.
pub fn set_mode_fd(fd: impl AsFd, mode: u32) -> io::Result<()> {
    rfs::fchmod(fd, Mode::from_raw_mode(mode)).map_err(io_err)
}

/// Bytes an unprivileged user may still write on `fd`'s file system.
pub fn free_space(fd: impl AsFd) -> u64 {
    rfs::fstatvfs(fd)
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
        .unwrap_or(0)
}

/// The process umask, read without changing it (Linux `/proc`), else 0o022.
pub fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn never_follows_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("evil")).unwrap();
        std::fs::write(t.path().join("file"), b"x").unwrap();
        let root = open_dir_path(t.path()).unwrap();
        let e = open_subdir(root.as_fd(), OsStr::new("evil")).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        let e = open_subdir(root.as_fd(), OsStr::new("file")).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        assert!(make_dir(root.as_fd(), OsStr::new("evil")).is_err());
        // A part that is a symlink is refused.
        std::os::unix::fs::symlink(outside.path().join("x"), t.path().join("f.vfer-part")).unwrap();
        assert!(open_part(root.as_fd(), OsStr::new("f.vfer-part")).is_err());
        assert!(!outside.path().join("x").exists());
        // A part hard-linked to another file is refused, and left alone.
        std::fs::write(outside.path().join("victim"), b"keep").unwrap();
        std::fs::hard_link(outside.path().join("victim"), t.path().join("h.vfer-part")).unwrap();
        let e = open_part(root.as_fd(), OsStr::new("h.vfer-part")).unwrap_err();
        assert!(e.to_string().contains("hard link"), "{e}");
        assert_eq!(
            std::fs::read(outside.path().join("victim")).unwrap(),
            b"keep"
        );
        // A FIFO part is refused without blocking.
        rustix::fs::mknodat(
            root.as_fd(),
            "p.vfer-part",
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(open_part(root.as_fd(), OsStr::new("p.vfer-part")).is_err());
        assert!(open_existing(root.as_fd(), OsStr::new("p.vfer-part")).is_err());
        // Replacing a symlink replaces the link, not its target.
        make_symlink(root.as_fd(), OsStr::new("evil"), b"/nowhere").unwrap();
        assert_eq!(
            std::fs::read_link(t.path().join("evil")).unwrap(),
            Path::new("/nowhere")
        );
        assert!(make_dir(root.as_fd(), OsStr::new("d")).unwrap());
        assert!(!make_dir(root.as_fd(), OsStr::new("d")).unwrap());
        assert!(make_symlink(root.as_fd(), OsStr::new("d"), b"x").is_err());
        assert!(umask() <= 0o777);
    }
}
