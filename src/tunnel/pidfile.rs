//! `--pidfile FILE`: written at start, removed when the daemon exits
//! cleanly (a stop signal), as spiped does; left alone if another process
//! has written its own pid there since.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A written pidfile; removed on drop if it still holds our pid.
#[derive(Debug)]
pub struct PidFile(PathBuf);

impl PidFile {
    /// Writes our process id (and a newline) to `path`.
    pub fn create(path: &Path) -> Result<PidFile> {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write --pidfile {}", path.display()))?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let ours = format!("{}\n", std::process::id());
        if std::fs::read_to_string(&self.0).is_ok_and(|s| s == ours) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_on_drop_unless_replaced() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pid");
        let f = PidFile::create(&p).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            format!("{}\n", std::process::id())
        );
        drop(f);
        assert!(!p.exists());
        let f = PidFile::create(&p).unwrap();
        std::fs::write(&p, "1\n").unwrap();
        drop(f);
        assert!(p.exists(), "another process's pidfile was removed");
    }
}
