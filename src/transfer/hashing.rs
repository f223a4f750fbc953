//! BLAKE3 over files and file prefixes (blocking; run in `spawn_blocking`),
//! and a helper to run blocking work off the async threads.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use super::frame::{CHUNK, HASH_LEN};

/// Hashes the first `len` bytes of `file` (from its start). Returns the
/// hasher (to continue with the rest of the file) and the number of bytes
/// actually found, which is less than `len` if the file is shorter. Leaves
/// the file position at the end of the hashed prefix.
pub fn hash_prefix(file: &mut File, len: u64) -> io::Result<(blake3::Hasher, u64)> {
    file.seek(SeekFrom::Start(0))?;
    let mut h = blake3::Hasher::new();
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
        done += n as u64;
    }
    Ok((h, done))
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
            let (h, n) = hash_prefix(&mut f, len).unwrap();
            assert_eq!(n, len);
            assert_eq!(digest(&h), *blake3::hash(&data[..len as usize]).as_bytes());
        }
        let (_, n) = hash_prefix(&mut f, data.len() as u64 + 10).unwrap();
        assert_eq!(n, data.len() as u64, "a short file reports what it has");
    }
}
