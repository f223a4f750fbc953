//! The transfer protocol's frames and messages, sans-IO: encode a [`Msg`]
//! into bytes, decode a frame body into a [`Msg`] that borrows from it.
//!
//! A frame is `u32 len || u8 type || body` (big-endian), where `len` counts
//! the type byte and the body and never exceeds [`MAX_FRAME_LEN`]. The exact
//! layout of every message is in `docs/PROTOCOL.md`, section 6.

use thiserror::Error;

/// Protocol magic carried in HELLO.
pub const MAGIC: [u8; 4] = *b"VFT1";
/// Protocol version carried in HELLO.
pub const VERSION: u8 = 1;
/// Largest DATA payload (one chunk of file content).
pub const CHUNK: usize = 256 * 1024;
/// Hard maximum of the length field (type byte + body). Checked before any
/// allocation; DATA is the largest message.
pub const MAX_FRAME_LEN: u32 = CHUNK as u32 + 1;
/// Bytes before a frame's body: the length field and the type byte.
pub const FRAME_HEADER: usize = 5;
/// Longest path on the wire, in bytes.
pub const MAX_PATH: usize = 4096;
/// Longest path component on the wire, in bytes.
pub const MAX_COMPONENT: usize = 255;
/// Longest symlink target on the wire, in bytes.
pub const MAX_LINK_TARGET: usize = 4095;
/// Longest error or status text on the wire, in bytes (longer text is cut).
pub const MAX_TEXT: usize = 1024;
/// Length of a BLAKE3 hash.
pub const HASH_LEN: usize = 32;
/// Most entries one manifest may announce; a sink refuses more (it keeps
/// every entry's path for the session: docs/PROTOCOL.md §6.9).
pub const MAX_ENTRIES: u64 = 1 << 21;
/// Most bytes of paths (the sum of every ENTRY's `path_len`) in one
/// manifest; a sink refuses more (§6.9).
pub const MAX_MANIFEST_PATH_BYTES: u64 = 128 << 20;

/// Message type bytes.
mod ty {
    pub const HELLO: u8 = 0x01;
    pub const MANIFEST_BEGIN: u8 = 0x02;
    pub const ENTRY: u8 = 0x03;
    pub const MANIFEST_END: u8 = 0x04;
    pub const SOURCE_FAILED: u8 = 0x05;
    pub const WANT: u8 = 0x10;
    pub const FILE_BEGIN: u8 = 0x20;
    pub const DATA: u8 = 0x21;
    pub const FILE_END: u8 = 0x22;
    pub const FILE_SAME: u8 = 0x23;
    pub const FILE_ABORT: u8 = 0x24;
    pub const RESULT: u8 = 0x30;
    pub const END: u8 = 0x40;
    pub const DONE: u8 = 0x41;
    pub const ERROR: u8 = 0x7f;
}

/// Which side of a transfer a peer is: the source sends files, the sink
/// writes them. Independent of who opened the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends the manifest and file contents.
    Source,
    /// Receives and writes them.
    Sink,
}

/// HELLO flag: the sender of HELLO asks for mode and mtime to be preserved.
pub const FLAG_PRESERVE: u8 = 0x01;
/// HELLO flag: the sender of HELLO can check files with XXH3-128; used
/// for FILE_END when both ends set it (PROTOCOL §6.7).
pub const FLAG_CHECK_XXH3: u8 = 0x02;

/// Kind of a manifest entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file of known size.
    File,
    /// A directory (its contents follow as separate entries).
    Dir,
    /// A symbolic link, copied as a link.
    Symlink,
    /// A stream of unknown length (a `-` source).
    Stream,
}

impl Kind {
    fn to_byte(self) -> u8 {
        match self {
            Kind::File => 1,
            Kind::Dir => 2,
            Kind::Symlink => 3,
            Kind::Stream => 4,
        }
    }
    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::File,
            2 => Kind::Dir,
            3 => Kind::Symlink,
            4 => Kind::Stream,
            _ => return None,
        })
    }
}

/// One manifest entry as it travels: the path is `/`-separated, relative,
/// and not yet validated (see [`super::path`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireEntry<'a> {
    /// Position in the manifest, counting from 0.
    pub index: u64,
    /// What it is.
    pub kind: Kind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Size in bytes for files; 0 otherwise.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime_sec: i64,
    /// Modification time, nanoseconds (< 10^9).
    pub mtime_nsec: u32,
    /// Relative path, raw bytes.
    pub path: &'a [u8],
    /// Symlink target, raw bytes (empty unless `kind` is `Symlink`).
    pub target: &'a [u8],
}

/// What the sink asks for one file entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Send the whole file.
    Full,
    /// A `.vfer-part` of `offset` bytes with this BLAKE3 hash exists: send
    /// the rest if the source's prefix hashes the same, else the whole file.
    Resume {
        /// Length of the kept prefix.
        offset: u64,
        /// BLAKE3 of the kept prefix.
        hash: [u8; HASH_LEN],
    },
    /// The destination already holds a file with the same size and mtime
    /// and this BLAKE3 hash: answer FILE_SAME if it matches.
    Have {
        /// BLAKE3 of the existing destination file.
        hash: [u8; HASH_LEN],
    },
    /// Do not send this file (the sink failed to prepare it; it reports why).
    Skip,
}

/// A decoded message. Borrowed fields point into the frame buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg<'a> {
    /// First frame from each side.
    Hello {
        /// The sender's role.
        role: Role,
        /// `FLAG_*` bits.
        flags: u8,
    },
    /// Source: announces the manifest's size.
    ManifestBegin {
        /// Number of top-level entries (one per command-line source).
        roots: u32,
        /// Number of entries that follow.
        entries: u64,
        /// Sum of the sizes of all files.
        total_bytes: u64,
    },
    /// Source: one manifest entry.
    Entry(WireEntry<'a>),
    /// Source: the manifest is complete.
    ManifestEnd {
        /// Number of entries sent (must match MANIFEST_BEGIN).
        entries: u64,
    },
    /// Source: a source (or something below it) that yields no entry:
    /// missing, unreadable, a directory without `-r`. The sink lists it
    /// among its failures, so a pull of nothing is never a success.
    SourceFailed {
        /// The path as the source names it (UTF-8, at most [`MAX_PATH`] bytes).
        path: &'a str,
        /// Why.
        message: &'a str,
    },
    /// Sink: what it wants for file entry `index`.
    Want {
        /// Entry index.
        index: u64,
        /// The request.
        want: Want,
    },
    /// Source: content of file `index` follows from `offset`.
    FileBegin {
        /// Entry index.
        index: u64,
        /// First byte sent.
        offset: u64,
        /// File size at open time (`u64::MAX` for a stream).
        size: u64,
    },
    /// Source: the next chunk of the current file.
    Data(&'a [u8]),
    /// Source: the current file is complete; BLAKE3 of all its bytes.
    FileEnd {
        /// Entry index.
        index: u64,
        /// BLAKE3 of bytes `0..size`.
        hash: [u8; HASH_LEN],
    },
    /// Source: the destination's copy (WANT Have) is identical.
    FileSame {
        /// Entry index.
        index: u64,
    },
    /// Source: file `index` failed at the source (it may have been begun).
    FileAbort {
        /// Entry index.
        index: u64,
        /// Why.
        message: &'a str,
    },
    /// Sink: outcome of entry `index`.
    Result {
        /// Entry index.
        index: u64,
        /// Written and verified (or identical) if true.
        ok: bool,
        /// Empty when ok; otherwise why.
        message: &'a str,
    },
    /// Source: all files sent.
    End,
    /// Sink: the session's totals; the last frame of a good session.
    Done {
        /// Entries completed.
        ok: u64,
        /// Entries failed.
        failed: u64,
        /// File bytes received in this session.
        bytes: u64,
    },
    /// Either side: fatal error; the sender closes after it.
    Error {
        /// Why.
        message: &'a str,
    },
}

/// A frame that cannot be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    /// The length field is 0 or above [`MAX_FRAME_LEN`].
    #[error("frame length {0} out of range (1..={MAX_FRAME_LEN})")]
    BadLength(u32),
    /// Unknown type byte.
    #[error("unknown message type 0x{0:02x}")]
    UnknownType(u8),
    /// A body shorter or longer than its message needs, or a bad field.
    #[error("malformed {msg} message: {why}")]
    Malformed {
        /// Message name.
        msg: &'static str,
        /// What was wrong.
        why: &'static str,
    },
}

/// Checks a frame's length field before anything is allocated for it.
pub fn check_len(len: u32) -> Result<usize, FrameError> {
    if len == 0 || len > MAX_FRAME_LEN {
        return Err(FrameError::BadLength(len));
    }
    Ok(len as usize)
}

/// Cuts `s` to at most [`MAX_TEXT`] bytes at a character boundary.
pub fn clip(s: &str) -> &str {
    clip_to(s, MAX_TEXT)
}

/// Cuts `s` to at most `max` bytes at a character boundary.
fn clip_to(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Appends the encoding of `msg` (a whole frame) to `out`.
pub fn encode(msg: &Msg<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    match msg {
        Msg::Hello { role, flags } => {
            out.push(ty::HELLO);
            out.extend_from_slice(&MAGIC);
            out.push(VERSION);
            out.push(match role {
                Role::Source => 0,
                Role::Sink => 1,
            });
            out.push(*flags);
        }
        Msg::ManifestBegin {
            roots,
            entries,
            total_bytes,
        } => {
            out.push(ty::MANIFEST_BEGIN);
            out.extend_from_slice(&roots.to_be_bytes());
            out.extend_from_slice(&entries.to_be_bytes());
            out.extend_from_slice(&total_bytes.to_be_bytes());
        }
        Msg::Entry(e) => {
            out.push(ty::ENTRY);
            out.extend_from_slice(&e.index.to_be_bytes());
            out.push(e.kind.to_byte());
            out.extend_from_slice(&e.mode.to_be_bytes());
            out.extend_from_slice(&e.size.to_be_bytes());
            out.extend_from_slice(&e.mtime_sec.to_be_bytes());
            out.extend_from_slice(&e.mtime_nsec.to_be_bytes());
            out.extend_from_slice(&(e.path.len() as u16).to_be_bytes());
            out.extend_from_slice(e.path);
            out.extend_from_slice(&(e.target.len() as u16).to_be_bytes());
            out.extend_from_slice(e.target);
        }
        Msg::ManifestEnd { entries } => {
            out.push(ty::MANIFEST_END);
            out.extend_from_slice(&entries.to_be_bytes());
        }
        Msg::SourceFailed { path, message } => {
            out.push(ty::SOURCE_FAILED);
            let path = clip_to(path, MAX_PATH);
            out.extend_from_slice(&(path.len() as u16).to_be_bytes());
            out.extend_from_slice(path.as_bytes());
            out.extend_from_slice(clip(message).as_bytes());
        }
        Msg::Want { index, want } => {
            out.push(ty::WANT);
            out.extend_from_slice(&index.to_be_bytes());
            match want {
                Want::Full => out.push(0),
                Want::Resume { offset, hash } => {
                    out.push(1);
                    out.extend_from_slice(&offset.to_be_bytes());
                    out.extend_from_slice(hash);
                }
                Want::Have { hash } => {
                    out.push(2);
                    out.extend_from_slice(hash);
                }
                Want::Skip => out.push(3),
            }
        }
        Msg::FileBegin {
            index,
            offset,
            size,
        } => {
            out.push(ty::FILE_BEGIN);
            out.extend_from_slice(&index.to_be_bytes());
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&size.to_be_bytes());
        }
        Msg::Data(d) => {
            out.push(ty::DATA);
            out.extend_from_slice(d);
        }
        Msg::FileEnd { index, hash } => {
            out.push(ty::FILE_END);
            out.extend_from_slice(&index.to_be_bytes());
            out.extend_from_slice(hash);
        }
        Msg::FileSame { index } => {
            out.push(ty::FILE_SAME);
            out.extend_from_slice(&index.to_be_bytes());
        }
        Msg::FileAbort { index, message } => {
            out.push(ty::FILE_ABORT);
            out.extend_from_slice(&index.to_be_bytes());
            out.extend_from_slice(clip(message).as_bytes());
        }
        Msg::Result { index, ok, message } => {
            out.push(ty::RESULT);
            out.extend_from_slice(&index.to_be_bytes());
            out.push(u8::from(!*ok));
            out.extend_from_slice(clip(message).as_bytes());
        }
        Msg::End => out.push(ty::END),
        Msg::Done { ok, failed, bytes } => {
            out.push(ty::DONE);
            out.extend_from_slice(&ok.to_be_bytes());
            out.extend_from_slice(&failed.to_be_bytes());
            out.extend_from_slice(&bytes.to_be_bytes());
        }
        Msg::Error { message } => {
            out.push(ty::ERROR);
            out.extend_from_slice(clip(message).as_bytes());
        }
    }
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Writes the 5-byte header of a DATA frame carrying `n` payload bytes, so
/// the payload can be read from disk straight into the bytes after it.
pub fn data_header(n: usize) -> [u8; FRAME_HEADER] {
    let len = (n as u32 + 1).to_be_bytes();
    [len[0], len[1], len[2], len[3], ty::DATA]
}

/// A cursor over a frame body that fails with [`FrameError::Malformed`].
struct Cur<'a> {
    b: &'a [u8],
    msg: &'static str,
}

impl<'a> Cur<'a> {
    fn err(&self, why: &'static str) -> FrameError {
        FrameError::Malformed { msg: self.msg, why }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.b.len() < n {
            return Err(self.err("too short"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, FrameError> {
        Ok(u16::from_be_bytes(self.arr()?))
    }
    fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(u32::from_be_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from_be_bytes(self.arr()?))
    }
    fn text(&mut self) -> Result<&'a str, FrameError> {
        let b = std::mem::take(&mut self.b);
        if b.len() > MAX_TEXT {
            return Err(self.err("text too long"));
        }
        std::str::from_utf8(b).map_err(|_| self.err("text is not UTF-8"))
    }
    fn end(&self) -> Result<(), FrameError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(self.err("trailing bytes"))
        }
    }
}

/// Decodes one frame's type byte and body (`frame` = the `len` bytes after
/// the length field). Every field is range-checked here; paths are checked
/// for safety later by [`super::path::RelPath::parse`].
pub fn decode(frame: &[u8]) -> Result<Msg<'_>, FrameError> {
    let (&t, body) = frame.split_first().ok_or(FrameError::BadLength(0))?;
    let name = match t {
        ty::HELLO => "HELLO",
        ty::MANIFEST_BEGIN => "MANIFEST_BEGIN",
        ty::ENTRY => "ENTRY",
        ty::MANIFEST_END => "MANIFEST_END",
        ty::SOURCE_FAILED => "SOURCE_FAILED",
        ty::WANT => "WANT",
        ty::FILE_BEGIN => "FILE_BEGIN",
        ty::DATA => "DATA",
        ty::FILE_END => "FILE_END",
        ty::FILE_SAME => "FILE_SAME",
        ty::FILE_ABORT => "FILE_ABORT",
        ty::RESULT => "RESULT",
        ty::END => "END",
        ty::DONE => "DONE",
        ty::ERROR => "ERROR",
        other => return Err(FrameError::UnknownType(other)),
    };
    let mut c = Cur { b: body, msg: name };
    let msg = match t {
        ty::HELLO => {
            if c.arr::<4>()? != MAGIC {
                return Err(c.err("bad magic (not a vfer transfer peer)"));
            }
            if c.u8()? != VERSION {
                return Err(c.err("unsupported version"));
            }
            let role = match c.u8()? {
                0 => Role::Source,
                1 => Role::Sink,
                _ => return Err(c.err("bad role")),
            };
            let flags = c.u8()?;
            if flags & !(FLAG_PRESERVE | FLAG_CHECK_XXH3) != 0 {
                return Err(c.err("unknown flags"));
            }
            Msg::Hello { role, flags }
        }
        ty::MANIFEST_BEGIN => Msg::ManifestBegin {
            roots: c.u32()?,
            entries: c.u64()?,
            total_bytes: c.u64()?,
        },
        ty::ENTRY => {
            let index = c.u64()?;
            let kind = Kind::from_byte(c.u8()?).ok_or(c.err("bad kind"))?;
            let mode = c.u32()?;
            if mode & !0o7777 != 0 {
                return Err(c.err("mode has bits beyond 0o7777"));
            }
            let size = c.u64()?;
            let mtime_sec = i64::from_be_bytes(c.arr()?);
            let mtime_nsec = c.u32()?;
            if mtime_nsec >= 1_000_000_000 {
                return Err(c.err("mtime nanoseconds out of range"));
            }
            let plen = c.u16()? as usize;
            if plen > MAX_PATH {
                return Err(c.err("path too long"));
            }
            let path = c.take(plen)?;
            let tlen = c.u16()? as usize;
            if tlen > MAX_LINK_TARGET {
                return Err(c.err("symlink target too long"));
            }
            let target = c.take(tlen)?;
            match kind {
                Kind::Symlink if target.is_empty() => {
                    return Err(c.err("symlink with empty target"))
                }
                Kind::Symlink => {}
                _ if !target.is_empty() => return Err(c.err("target on a non-symlink")),
                _ => {}
            }
            if kind != Kind::File && size != 0 {
                return Err(c.err("size on a non-file"));
            }
            Msg::Entry(WireEntry {
                index,
                kind,
                mode,
                size,
                mtime_sec,
                mtime_nsec,
                path,
                target,
            })
        }
        ty::MANIFEST_END => Msg::ManifestEnd { entries: c.u64()? },
        ty::SOURCE_FAILED => {
            let plen = c.u16()? as usize;
            if plen > MAX_PATH {
                return Err(c.err("path too long"));
            }
            let path =
                std::str::from_utf8(c.take(plen)?).map_err(|_| c.err("path is not UTF-8"))?;
            Msg::SourceFailed {
                path,
                message: c.text()?,
            }
        }
        ty::WANT => {
            let index = c.u64()?;
            let want = match c.u8()? {
                0 => Want::Full,
                1 => Want::Resume {
                    offset: c.u64()?,
                    hash: c.arr()?,
                },
                2 => Want::Have { hash: c.arr()? },
                3 => Want::Skip,
                _ => return Err(c.err("bad want kind")),
            };
            Msg::Want { index, want }
        }
        ty::FILE_BEGIN => {
            let index = c.u64()?;
            let offset = c.u64()?;
            let size = c.u64()?;
            if size != u64::MAX && offset > size {
                return Err(c.err("offset beyond size"));
            }
            Msg::FileBegin {
                index,
                offset,
                size,
            }
        }
        ty::DATA => {
            let d = std::mem::take(&mut c.b);
            if d.is_empty() {
                return Err(c.err("empty"));
            }
            Msg::Data(d)
        }
        ty::FILE_END => Msg::FileEnd {
            index: c.u64()?,
            hash: c.arr()?,
        },
        ty::FILE_SAME => Msg::FileSame { index: c.u64()? },
        ty::FILE_ABORT => Msg::FileAbort {
            index: c.u64()?,
            message: c.text()?,
        },
        ty::RESULT => {
            let index = c.u64()?;
            let ok = match c.u8()? {
                0 => true,
                1 => false,
                _ => return Err(c.err("bad status")),
            };
            Msg::Result {
                index,
                ok,
                message: c.text()?,
            }
        }
        ty::END => Msg::End,
        ty::DONE => Msg::Done {
            ok: c.u64()?,
            failed: c.u64()?,
            bytes: c.u64()?,
        },
        ty::ERROR => Msg::Error { message: c.text()? },
        _ => return Err(FrameError::UnknownType(t)),
    };
    c.end()?;
    Ok(msg)
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
