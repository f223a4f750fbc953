//! The command lines end to end: the real `vfer-send` / `vfer-recv`
//! binaries through --local, a key-file daemon, and a private OpenSSH server.

mod common;

use common::run;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const SEND: &str = env!("CARGO_BIN_EXE_vfer-send");
const RECV: &str = env!("CARGO_BIN_EXE_vfer-recv");

fn random_file(path: &Path, len: usize) -> Vec<u8> {
    let mut x = 0x1234_5678_u64 ^ len as u64;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::write(path, &data).expect("write source");
    data
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn local_push_pull_json_and_usage() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src.bin");
    let data = random_file(&src, 3_000_000);
    let dst = d.path().join("copy.bin");
    let out = run(SEND, &["--local", "--json", s(&src), s(&dst)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(&dst).unwrap(), data);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(json["files"], 1);
    assert_eq!(json["bytes"], 3_000_000);
    assert_eq!(json["congestion_control"], "vfer");
    assert!(json["path_mtu"].as_u64().unwrap() >= 1200);

    // Pull into an existing directory: the file keeps its name.
    let into = d.path().join("into");
    fs::create_dir(&into).unwrap();
    let out = run(RECV, &["--local", "-q", s(&src), s(&into)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(into.join("src.bin")).unwrap(), data);

    // Usage errors exit 2 and say what to do.
    let out = run(SEND, &[s(&src)]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(SEND, &[s(&src), s(&dst)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--local"));
    // Sources on two different hosts or daemons are refused, not half-served.
    let out = run(RECV, &["a:x", "b:y", s(&dst)]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(RECV, &["vfer://h1/x", "vfer://h2/y", s(&dst)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("two hosts"));
    // A missing source is a partial failure (exit 1), named in the message.
    let out = run(SEND, &["--local", "/nonexistent/file", s(&dst)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/file"));
}

#[test]
fn local_tree_and_stdin_stream() {
    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("tree");
    fs::create_dir_all(tree.join("a/b")).unwrap();
    fs::create_dir_all(tree.join("empty")).unwrap();
    fs::write(tree.join("a/b/f with space"), b"hello").unwrap();
    fs::write(tree.join("a/ünïcødé"), b"").unwrap();
    std::os::unix::fs::symlink("b/f with space", tree.join("a/link")).unwrap();
    let out_dir = d.path().join("out");
    let out = run(SEND, &["--local", "-r", s(&tree), s(&out_dir)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read(out_dir.join("a/b/f with space")).unwrap(),
        b"hello"
    );
    assert_eq!(fs::read(out_dir.join("a/ünïcødé")).unwrap(), b"");
    assert!(out_dir.join("empty").is_dir());
    assert_eq!(
        fs::read_link(out_dir.join("a/link")).unwrap(),
        Path::new("b/f with space")
    );

    let stream_dst = d.path().join("stream.txt");
    let mut child = Command::new(SEND)
        .args(["--local", "-", s(&stream_dst)])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from a pipe\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(fs::read(&stream_dst).unwrap(), b"from a pipe\n");
}

/// A child process killed when the test ends, pass or fail.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn key_file_daemon_push_pull_and_confinement() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    fs::create_dir_all(root.join("in")).unwrap();
    let key = d.path().join("key");
    fs::write(&key, [7u8; 48]).unwrap();
    let bad_key = d.path().join("bad");
    fs::write(&bad_key, [8u8; 48]).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for k in [&key, &bad_key] {
        fs::set_permissions(k, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let port = common::free_udp_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = Command::new(RECV)
        .args([
            "--listen",
            &listen,
            "--key-file",
            s(&key),
            "--root",
            s(&root),
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed even when an assertion below fails.
    let _daemon = KillOnDrop(daemon);
    std::thread::sleep(Duration::from_millis(300));
    let src = d.path().join("f.bin");
    let data = random_file(&src, 1_000_000);
    let url = format!("vfer://127.0.0.1:{port}/in/");
    let out = run(SEND, &["--key-file", s(&key), s(&src), &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(root.join("in/f.bin")).unwrap(), data);

    let back = d.path().join("back.bin");
    let url = format!("vfer://127.0.0.1:{port}/in/f.bin");
    let out = run(RECV, &["--key-file", s(&key), &url, s(&back)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(&back).unwrap(), data);

    // Paths leaving the root are refused (a remote-side failure, exit
    // 111), and the reason reaches the client.
    let url = format!("vfer://127.0.0.1:{port}/../escape");
    let out = run(SEND, &["--key-file", s(&key), s(&src), &url]);
    assert_eq!(out.status.code(), Some(111));
    assert!(String::from_utf8_lossy(&out.stderr).contains("outside the daemon's root"));
    assert!(!d.path().join("escape").exists());

    // A wrong key gets no answer: the client times out (exit 99)...
    let url = format!("vfer://127.0.0.1:{port}/in/");
    let out = run(
        SEND,
        &["--timeout", "2", "--key-file", s(&bad_key), s(&src), &url],
    );
    assert_eq!(
        out.status.code(),
        Some(99),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ...and the daemon goes on serving others.
    let out = run(
        RECV,
        &[
            "--key-file",
            s(&key),
            &format!("vfer://127.0.0.1:{port}/in/f.bin"),
            s(&back),
        ],
    );
    assert!(out.status.success());
}

#[test]
fn through_real_openssh() {
    let bin_dir = Path::new(SEND).parent().unwrap();
    let Some(sshd) = common::sshd::Sshd::start(bin_dir) else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("payload.bin");
    let data = random_file(&src, 2_000_000);
    let remote_dir = d.path().join("remote");
    fs::create_dir(&remote_dir).unwrap();
    let rsh = sshd.rsh();
    let dest = format!("root@127.0.0.1:{}/", s(&remote_dir));
    let out = run(SEND, &["-e", &rsh, s(&src), &dest]);
    assert!(
        out.status.success(),
        "push: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(remote_dir.join("payload.bin")).unwrap(), data);

    let pulled = d.path().join("pulled.bin");
    let remote = format!("root@127.0.0.1:{}", s(&remote_dir.join("payload.bin")));
    let out = run(RECV, &["-e", &rsh, &remote, s(&pulled)]);
    assert!(
        out.status.success(),
        "pull: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(&pulled).unwrap(), data);

    // No server daemon is left behind once the transfers are over.
    std::thread::sleep(Duration::from_millis(500));
    let left = Command::new("pgrep")
        .args(["-f", &format!("vfer-.* --server .*{}", s(&remote_dir))])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "leftover server processes: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}
