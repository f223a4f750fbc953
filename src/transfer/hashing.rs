//! BLAKE3 over files and file prefixes (blocking; run in `spawn_blocking`),
//! the FILE_END check of freshly sent bytes (BLAKE3, or XXH3-128 when both
//! ends offer it: PROTOCOL §6.7), and a helper to run blocking work off the
//! async threads.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use super::frame::{CHUNK, HASH_LEN};

/// The function that checks a file's bytes at FILE_END (PROTOCOL §6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// BLAKE3: the default when either end does not offer XXH3.
    Blake3,
    /// XXH3-128: both ends set HELLO's CHECK_XXH3 flag.
    Xxh3,
}

/// The running FILE_END check of one file: bytes `0..size` go in, the
/// 32-byte `hash` field of FILE_END comes out.
#[derive(Clone)]
pub enum Check {
    /// BLAKE3 (boxed: the state is ~1.9 KB and waits in every pending file).
    Blake3(Box<blake3::Hasher>),
    /// XXH3-128.
    Xxh3(Box<twox_hash::XxHash3_128>),
}

impl Check {
    /// An empty check of `kind`.
    pub fn new(kind: CheckKind) -> Check {
        match kind {
            CheckKind::Blake3 => Check::Blake3(Box::default()),
            CheckKind::Xxh3 => Check::Xxh3(Box::default()),
        }
    }

    /// Adds the next bytes of the file.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Check::Blake3(h) => {
                h.update(data);
            }
            Check::Xxh3(h) => h.write(data),
        }
    }

    /// FILE_END's `hash` field: the BLAKE3 digest, or the XXH3-128 digest
    /// big-endian (its canonical form) followed by 16 zero bytes.
    pub fn digest(&self) -> [u8; HASH_LEN] {
        match self {
            Check::Blake3(h) => digest(h),
            Check::Xxh3(h) => {
                let mut out = [0u8; HASH_LEN];
                out[..16].copy_from_slice(&h.finish_128().to_be_bytes());
                out
            }
        }
    }

    /// The function's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Check::Blake3(_) => "BLAKE3",
            Check::Xxh3(_) => "XXH3-128",
        }
    }
}

/// Hashes the first `len` bytes of `file` (from its start) with BLAKE3 (for
/// WANT's RESUME and HAVE) and, in the same pass, the FILE_END check of
/// `kind` (to continue with the rest of the file after a resume). Returns
/// both and the number of bytes actually found, which is less than `len`
/// if the file is shorter. Leaves the file position at the end of the
/// hashed prefix.
pub fn hash_prefix(
    file: &mut File,
    len: u64,
    kind: CheckKind,
) -> io::Result<(blake3::Hasher, Check, u64)> {
    file.seek(SeekFrom::Start(0))?;
    let mut h = blake3::Hasher::new();
    let mut check = match kind {
        CheckKind::Blake3 => None,
        CheckKind::Xxh3 => Some(Check::new(kind)),
    };
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min(CHUNK as u64) as usize;
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        if let Some(c) = check.as_mut() {
            c.update(&buf[..n]);
        }
        done += n as u64;
    }
    let check = check.unwrap_or_else(|| Check::Blake3(Box::new(h.clone())));
    Ok((h, check, done))
}

/// The 32-byte digest of a hasher's current state.
pub fn digest(h: &blake3::Hasher) -> [u8; HASH_LEN] {
    *h.finalize().as_bytes()
}

/// Runs blocking file work on tokio's blocking pool.
pub async fn blocking<T, F>(f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(io::Error::other(format!("blocking task failed: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn prefix_hash_matches_whole_hash_of_prefix() {
        let data: Vec<u8> = (0..(CHUNK * 2 + 77)).map(|i| (i % 251) as u8).collect();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        for len in [0, 1, CHUNK as u64, CHUNK as u64 + 5, data.len() as u64] {
            for kind in [CheckKind::Blake3, CheckKind::Xxh3] {
                let (h, check, n) = hash_prefix(&mut f, len, kind).unwrap();
                assert_eq!(n, len);
                let want = *blake3::hash(&data[..len as usize]).as_bytes();
                assert_eq!(digest(&h), want);
                let mut whole = Check::new(kind);
                whole.update(&data[..len as usize]);
                assert_eq!(check.digest(), whole.digest(), "{kind:?} prefix");
            }
        }
        let (_, _, n) = hash_prefix(&mut f, data.len() as u64 + 10, CheckKind::Xxh3).unwrap();
        assert_eq!(n, data.len() as u64, "a short file reports what it has");
    }

    /// Known answers from the reference implementation (Python `xxhash`
    /// 3.x, `xxh3_128_hexdigest`, canonical big-endian), in the FILE_END
    /// layout: 16 digest bytes then 16 zero bytes.
    #[test]
    fn xxh3_check_matches_the_reference() {
        let cases: [(&[u8], &str); 3] = [
            (b"", "99aa06d3014798d86001c324468d497f"),
            (b"abc", "06b05ab6733a618578af5f94892f3950"),
            (&[], "b65af738c61b5fc15d12941f4cf541c5"), // 300000 bytes i % 251, below
        ];
        let long: Vec<u8> = (0..300_000).map(|i| (i % 251) as u8).collect();
        for (i, (input, hex)) in cases.iter().enumerate() {
            let input = if i == 2 { &long[..] } else { input };
            // Fed in uneven pieces: the streaming state must not care.
            let mut c = Check::new(CheckKind::Xxh3);
            for piece in input.chunks(70_001) {
                c.update(piece);
            }
            let d = c.digest();
            let got: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(got, *hex, "case {i}");
            assert_eq!(d[16..], [0u8; 16]);
        }
    }
}
