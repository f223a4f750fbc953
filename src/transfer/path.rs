//! Paths that cross the wire. A path from the peer is hostile until
//! [`RelPath::parse`] has accepted it: relative, `/`-separated, no empty,
//! `.` or `..` component, no NUL, bounded lengths.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;

use super::frame::{MAX_COMPONENT, MAX_PATH};

/// Suffix of a file being received; renamed away once verified.
pub const PART_SUFFIX: &str = ".vfer-part";

/// A validated relative path: one or more safe components.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RelPath {
    bytes: Vec<u8>,
}

/// Why a path from the peer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathProblem {
    /// Zero bytes.
    Empty,
    /// Starts with `/`.
    Absolute,
    /// Contains `..`.
    DotDot,
    /// Contains `.` as a component.
    Dot,
    /// Contains `//` or ends with `/`.
    EmptyComponent,
    /// Contains a NUL byte.
    Nul,
    /// Longer than the limits.
    TooLong,
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathProblem::Empty => "empty path",
            PathProblem::Absolute => "absolute path",
            PathProblem::DotDot => "contains a '..' component",
            PathProblem::Dot => "contains a '.' component",
            PathProblem::EmptyComponent => "contains an empty component",
            PathProblem::Nul => "contains a NUL byte",
            PathProblem::TooLong => "too long",
        })
    }
}

impl RelPath {
    /// Validates a path received from the peer.
    pub fn parse(bytes: &[u8]) -> Result<RelPath, PathProblem> {
        if bytes.is_empty() {
            return Err(PathProblem::Empty);
        }
        if bytes.len() > MAX_PATH {
            return Err(PathProblem::TooLong);
        }
        if bytes.contains(&0) {
            return Err(PathProblem::Nul);
        }
        if bytes[0] == b'/' {
            return Err(PathProblem::Absolute);
        }
        for c in bytes.split(|&b| b == b'/') {
            match c {
                b"" => return Err(PathProblem::EmptyComponent),
                b"." => return Err(PathProblem::Dot),
                b".." => return Err(PathProblem::DotDot),
                c if c.len() > MAX_COMPONENT => return Err(PathProblem::TooLong),
                _ => {}
            }
        }
        Ok(RelPath {
            bytes: bytes.to_vec(),
        })
    }

    /// A one-component path from a local file name (the sender's roots).
    pub fn from_name(name: &OsStr) -> Result<RelPath, PathProblem> {
        if name.as_bytes().contains(&b'/') {
            return Err(PathProblem::EmptyComponent);
        }
        RelPath::parse(name.as_bytes())
    }

    /// The default name of a stream source.
    pub fn stdin() -> RelPath {
        RelPath {
            bytes: b"stdin".to_vec(),
        }
    }

    /// This path with one more component.
    pub fn join(&self, name: &OsStr) -> Result<RelPath, PathProblem> {
        let n = name.as_bytes();
        if n.contains(&b'/') {
            return Err(PathProblem::EmptyComponent);
        }
        let mut b = Vec::with_capacity(self.bytes.len() + 1 + n.len());
        b.extend_from_slice(&self.bytes);
        b.push(b'/');
        b.extend_from_slice(n);
        RelPath::parse(&b)
    }

    /// The raw bytes, as sent on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The components, each non-empty and safe.
    pub fn components(&self) -> impl Iterator<Item = &OsStr> {
        self.bytes.split(|&b| b == b'/').map(OsStr::from_bytes)
    }

    /// Number of components.
    pub fn depth(&self) -> usize {
        self.bytes.iter().filter(|&&b| b == b'/').count() + 1
    }

    /// The parent path, or `None` for a top-level name.
    pub fn parent(&self) -> Option<RelPath> {
        let i = self.bytes.iter().rposition(|&b| b == b'/')?;
        Some(RelPath {
            bytes: self.bytes[..i].to_vec(),
        })
    }

    /// The last component.
    pub fn file_name(&self) -> &OsStr {
        let i = self
            .bytes
            .iter()
            .rposition(|&b| b == b'/')
            .map_or(0, |i| i + 1);
        OsStr::from_bytes(&self.bytes[i..])
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", String::from_utf8_lossy(&self.bytes))
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.bytes))
    }
}

/// Shows peer-supplied bytes in an error message, escaped.
pub fn show(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hostile_paths_are_refused() {
        let bad: &[(&[u8], PathProblem)] = &[
            (b"", PathProblem::Empty),
            (b"/etc/passwd", PathProblem::Absolute),
            (b"../../etc/passwd", PathProblem::DotDot),
            (b"a/../../b", PathProblem::DotDot),
            (b"a/..", PathProblem::DotDot),
            (b"./a", PathProblem::Dot),
            (b"a//b", PathProblem::EmptyComponent),
            (b"a/", PathProblem::EmptyComponent),
            (b"a\0b", PathProblem::Nul),
        ];
        for (p, why) in bad {
            assert_eq!(RelPath::parse(p), Err(*why), "{}", show(p));
        }
        assert_eq!(
            RelPath::parse(&[b'a'; 256]),
            Err(PathProblem::TooLong),
            "component > 255"
        );
        let long = [b"abc/".as_slice(); 1025].concat();
        assert_eq!(RelPath::parse(&long), Err(PathProblem::TooLong));
    }

    #[test]
    fn good_paths_are_kept() {
        let p = RelPath::parse("dir/sub dir/ünï..code".as_bytes()).unwrap();
        assert_eq!(p.depth(), 3);
        assert_eq!(p.file_name(), "ünï..code");
        assert_eq!(p.parent().unwrap().as_bytes(), b"dir/sub dir");
        assert_eq!(p.components().count(), 3);
        assert!(RelPath::parse(b"...").is_ok());
        assert!(RelPath::parse(b".hidden").is_ok());
        assert!(RelPath::parse(b"a").unwrap().parent().is_none());
        assert!(RelPath::from_name(OsStr::new("a/b")).is_err());
        assert_eq!(
            RelPath::parse(b"a")
                .unwrap()
                .join(OsStr::new("b"))
                .unwrap()
                .as_bytes(),
            b"a/b"
        );
    }

    proptest! {
        #[test]
        fn accepted_paths_never_escape(bytes in proptest::collection::vec(
            prop_oneof![Just(b'/'), Just(b'.'), Just(0u8), Just(b'a')], 0..40)) {
            if let Ok(p) = RelPath::parse(&bytes) {
                for c in p.components() {
                    prop_assert!(!c.is_empty() && c != "." && c != "..");
                    prop_assert!(!c.as_bytes().contains(&0) && !c.as_bytes().contains(&b'/'));
                }
                prop_assert!(bytes[0] != b'/');
            }
        }
    }
}
