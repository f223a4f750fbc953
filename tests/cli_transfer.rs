//! What a user of scp trusts vfer with, checked through the real binaries:
//! awkward trees through `--local` and real OpenSSH, a 2 GiB sparse file,
//! resume after the sender is killed, SIGINT, and a full disk.

mod common;

use common::{pattern, run};

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SEND: &str = env!("CARGO_BIN_EXE_vfer-send");
const RECV: &str = env!("CARGO_BIN_EXE_vfer-recv");

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

/// What a tree holds, path by path: file contents, link targets, dirs.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Node>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                out.insert(rel, Node::Link(fs::read_link(&p).unwrap()));
            } else if m.is_dir() {
                out.insert(rel, Node::Dir);
                walk(root, &p, out);
            } else {
                out.insert(rel, Node::File(fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A tree with what breaks naive copiers: depth, many small files, empty
/// files and directories, spaces, unicode, links inside and pointing out.
fn awkward_tree(root: &Path) {
    let mut deep = root.to_path_buf();
    for level in 0..12 {
        deep = deep.join(format!("level {level}"));
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("bottom.txt"), b"at the bottom\n").unwrap();
    for i in 0..150u64 {
        let dir = root.join(format!("many/d{}", i % 7));
        fs::create_dir_all(&dir).unwrap();
        let len = (i * 997 % 20_000) as usize;
        fs::write(dir.join(format!("f{i}.bin")), pattern(len, i)).unwrap();
    }
    fs::create_dir_all(root.join("empty/also empty")).unwrap();
    fs::write(root.join("zero bytes"), b"").unwrap();
    fs::write(root.join("naïve café ☕.txt"), "ünïcødé\n").unwrap();
    fs::write(root.join("many/big.bin"), pattern(3_000_000, 99)).unwrap();
    std::os::unix::fs::symlink("many/d1/f1.bin", root.join("inside link")).unwrap();
    std::os::unix::fs::symlink("../../../etc/passwd", root.join("many/outside")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", root.join("dangling")).unwrap();
}

#[test]
fn awkward_tree_through_local_and_openssh() {
    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("tree");
    awkward_tree(&tree);
    let want = snapshot(&tree);

    // Into an existing directory, as scp does: local copy/tree/...
    let parent = d.path().join("local copy");
    fs::create_dir(&parent).unwrap();
    let out = run(SEND, &["--local", "-q", "-r", s(&tree), s(&parent)]);
    ok(&out);
    let out_dir = parent.join("tree");
    assert_eq!(snapshot(&out_dir), want, "tree through --local");
    // Links are copied as links, never followed out of the tree.
    assert!(fs::symlink_metadata(out_dir.join("many/outside"))
        .unwrap()
        .file_type()
        .is_symlink());

    // The same again is a no-op: every file is already there.
    let out = run(SEND, &["--local", "--json", "-r", s(&tree), s(&parent)]);
    ok(&out);
    assert_eq!(json(&out)["bytes"], 0, "identical files are not sent again");
    assert_eq!(snapshot(&out_dir), want);

    let bin_dir = Path::new(SEND).parent().unwrap();
    let Some(sshd) = common::sshd::Sshd::start(bin_dir) else {
        eprintln!("SKIPPED the OpenSSH half: no sshd on this machine");
        return;
    };
    let rsh = sshd.rsh();
    let remote = d.path().join("remote side");
    fs::create_dir(&remote).unwrap();
    let dest = format!("root@127.0.0.1:{}/", s(&remote));
    let out = run(SEND, &["-e", &rsh, "-q", "-r", s(&tree), &dest]);
    ok(&out);
    assert_eq!(snapshot(&remote.join("tree")), want, "tree pushed over ssh");

    let pulled = d.path().join("pulled");
    let src = format!("root@127.0.0.1:{}", s(&remote.join("tree")));
    let out = run(
        env!("CARGO_BIN_EXE_vfer-recv"),
        &["-e", &rsh, "-q", "-r", &src, s(&pulled)],
    );
    ok(&out);
    assert_eq!(snapshot(&pulled), want, "tree pulled over ssh");
}

/// BLAKE3 of a file, read in chunks (the files here are too big to load).
fn file_hash(p: &Path) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    let mut f = fs::File::open(p).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return h.finalize();
        }
        h.update(&buf[..n]);
    }
}

#[test]
fn two_gib_sparse_file_through_local() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("sparse.img");
    let len: u64 = 2 << 30;
    {
        let mut f = fs::File::create(&src).unwrap();
        f.set_len(len).unwrap();
        // Data islands at the start, in the middle, across the 1 GiB
        // boundary, and in the last bytes.
        for (i, at) in [0, 700 << 20, (1 << 30) - 1000, len - 4096]
            .into_iter()
            .enumerate()
        {
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&pattern(4096, i as u64 + 7)).unwrap();
        }
    }
    let dst = d.path().join("copy.img");
    let out = run(SEND, &["--local", "--json", s(&src), s(&dst)]);
    ok(&out);
    assert_eq!(json(&out)["bytes"], len);
    assert_eq!(fs::metadata(&dst).unwrap().len(), len);
    assert_eq!(file_hash(&dst), file_hash(&src));
    assert!(!d.path().join("copy.img.vfer-part").exists());
    // Holes stay holes (file systems allocate in blocks: allow slack).
    use std::os::unix::fs::MetadataExt;
    let allocated = fs::metadata(&dst).unwrap().blocks() * 512;
    assert!(allocated < 64 << 20, "{allocated} bytes allocated");
}

/// Waits until `path` is at least `size` bytes (or panics after a minute).
fn wait_for_size(path: &Path, size: u64) {
    let start = Instant::now();
    while fs::metadata(path).map(|m| m.len()).unwrap_or(0) < size {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} never reached {size} bytes",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn resume_after_the_sender_is_killed_sends_only_the_rest() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("resume-src.bin");
    let size = 48 << 20;
    let data = pattern(size, 5);
    fs::write(&src, &data).unwrap();
    let dst = d.path().join("resume-dst.bin");
    let part = d.path().join("resume-dst.bin.vfer-part");

    // Slow enough to kill half-way (48 MiB at 100 Mbit/s is ~4 s).
    let mut sender = Command::new(SEND)
        .args(["--local", "-q", "--timeout", "2", "--limit", "100M"])
        .args([s(&src), s(&dst)])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_size(&part, size as u64 / 2);
    sender.kill().unwrap();
    sender.wait().unwrap();
    // The receiving side notices the silence (--timeout 2) and exits,
    // keeping the part.
    let left = common::wait_gone(&["vfer-recv", "--server", s(&dst)], Duration::from_secs(30));
    assert!(left.is_empty(), "the far side did not exit: {left:?}");
    let kept = fs::metadata(&part).unwrap().len();
    assert!(kept >= size as u64 / 2, "part kept: {kept}");
    assert!(!dst.exists(), "no complete-looking file after the kill");

    let out = run(SEND, &["--local", "--json", s(&src), s(&dst)]);
    ok(&out);
    let j = json(&out);
    let sent = j["bytes"].as_u64().unwrap();
    let skipped = j["bytes_skipped"].as_u64().unwrap();
    assert_eq!(sent + skipped, size as u64);
    assert!(
        skipped >= size as u64 / 2 - (4 << 20),
        "only the missing part is sent again (skipped {skipped}, sent {sent})"
    );
    assert_eq!(fs::read(&dst).unwrap(), data);
    assert!(!part.exists());
}

#[test]
fn sigint_stops_cleanly_keeps_the_part_and_resumes() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("int-src.bin");
    let size = 32 << 20;
    let data = pattern(size, 6);
    fs::write(&src, &data).unwrap();
    let dst = d.path().join("int-dst.bin");
    let part = d.path().join("int-dst.bin.vfer-part");
    let sender = Command::new(SEND)
        .args(["--local", "-q", "--limit", "50M", s(&src), s(&dst)])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_size(&part, 4 << 20);
    let pid = sender.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let out = sender.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "SIGINT exits 130");
    assert!(String::from_utf8_lossy(&out.stderr).contains("resume"));
    let left = common::wait_gone(&["vfer-recv", "--server", s(&dst)], Duration::from_secs(30));
    assert!(left.is_empty(), "the far side did not exit: {left:?}");
    assert!(part.exists(), "the part is kept for resume");
    assert!(!dst.exists());

    let out = run(SEND, &["--local", "--json", s(&src), s(&dst)]);
    ok(&out);
    assert!(json(&out)["bytes_skipped"].as_u64().unwrap() > 0);
    assert_eq!(fs::read(&dst).unwrap(), data);
}

#[test]
fn a_full_disk_fails_the_file_keeps_the_part_and_says_how_much_is_missing() {
    let d = tempfile::tempdir().unwrap();
    let mnt = d.path().join("small");
    fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "vfer-cli-test", s(&mnt)])
        .stderr(Stdio::null())
        .status()
        .map(|st| st.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("SKIPPED disk-full test: cannot mount a 2 MiB tmpfs (needs root)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    fs::set_permissions(&mnt, fs::Permissions::from_mode(0o755)).unwrap();

    let src = d.path().join("big.bin");
    fs::write(&src, pattern(6 << 20, 8)).unwrap();
    let small = d.path().join("small.txt");
    fs::write(&small, b"fits\n").unwrap();
    let out = run(
        SEND,
        &[
            "--local",
            "-q",
            s(&small),
            s(&src),
            &format!("{}/", s(&mnt)),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "partial failure");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("big.bin"), "names the file: {err}");
    assert!(
        err.contains("space") || err.contains("full"),
        "says the disk is full: {err}"
    );
    assert_eq!(fs::read(mnt.join("small.txt")).unwrap(), b"fits\n");
    assert!(!mnt.join("big.bin").exists(), "no complete-looking file");
    assert!(
        mnt.join("big.bin.vfer-part").exists(),
        "part kept for resume"
    );

    // A pull into the full disk: our own disk is full, not the far side's,
    // and nothing else arrived (exit 111, not 1).
    fs::remove_file(mnt.join("big.bin.vfer-part")).unwrap();
    fs::remove_file(mnt.join("small.txt")).unwrap();
    let out = run(RECV, &["--local", "-q", s(&src), &format!("{}/", s(&mnt))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(111), "{err}");
    assert!(err.contains("disk full"), "{err}");
    assert!(!err.contains("far side"), "the local disk is full: {err}");
    assert_eq!(err.matches("vfer-recv:").count(), 1, "one prefix: {err}");
}
