//! `vfer-send --exec`: a program on the far side joined to a local one over
//! the secure stream, through `--local` and through a private OpenSSH
//! server: trees through tar, exit statuses, half-close, stderr, the
//! environment, signals and the no-progress timeout.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const SEND: &str = env!("CARGO_BIN_EXE_vfer-send");
const RECV: &str = env!("CARGO_BIN_EXE_vfer-recv");

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// `vfer-send ARGS` with `input` on stdin.
fn exec(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(SEND)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vfer-send");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    let _ = writer.join();
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A tree with nested directories, empty and large files, odd names.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::create_dir_all(root.join("empty dir")).unwrap();
    fs::write(root.join("a/small.txt"), b"hello\n").unwrap();
    fs::write(root.join("a/b/empty"), b"").unwrap();
    fs::write(root.join("a/b/c/big.bin"), common::pattern(3_000_000, 7)).unwrap();
    fs::write(root.join("name with spaces"), common::pattern(70_001, 9)).unwrap();
    std::os::unix::fs::symlink("a/small.txt", root.join("link")).unwrap();
}

/// Every entry under `root`: path -> ("dir" | "link:TARGET" | file bytes).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                let t = fs::read_link(&p).unwrap();
                out.insert(rel, format!("link:{}", t.display()).into_bytes());
            } else if m.is_dir() {
                out.insert(rel, b"dir".to_vec());
                todo.push(p);
            } else {
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn tar_tree_through_local() {
    let d = tempfile::tempdir().unwrap();
    let (src, dst) = (d.path().join("src"), d.path().join("dst"));
    make_tree(&src);
    fs::create_dir(&dst).unwrap();
    let local = format!("tar c -C '{}' .", s(&src));
    let out = exec(
        &["--local", "--exec", &local, "--", "tar", "x", "-C", s(&dst)],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (a, b) = (snapshot(&src), snapshot(&dst));
    assert_eq!(a.len(), 9, "{:?}", a.keys());
    assert!(a == b, "trees differ: {:?} vs {:?}", a.keys(), b.keys());
}

#[test]
fn exit_statuses_travel_back() {
    // The far program's status is ours.
    let out = exec(&["--local", "--exec", "-", "--", "sh", "-c", "exit 7"], b"");
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    // One word runs through sh -c on the far side.
    let out = exec(&["--local", "--exec", "-", "--", "exit 42"], b"");
    assert_eq!(out.status.code(), Some(42));
    // Killed by a signal: 128 + n, and said so.
    let out = exec(
        &["--local", "--exec", "-", "--", "sh", "-c", "kill -TERM $$"],
        b"",
    );
    assert_eq!(out.status.code(), Some(143));
    assert!(text(&out.stderr).contains("killed by signal 15"));
    // Not found: 127 and the reason.
    let out = exec(
        &["--local", "--exec", "-", "--", "no-such-prog-x", "a"],
        b"",
    );
    assert_eq!(out.status.code(), Some(127));
    assert!(text(&out.stderr).contains("cannot run `no-such-prog-x a`"));
    // The local command failing is reported when the far program succeeded.
    let out = exec(&["--local", "--exec", "exit 3", "--", "cat"], b"");
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("local command `exit 3` failed"));
    // ...and the far program's failure wins over the local one.
    let out = exec(&["--local", "--exec", "exit 3", "--", "exit 5"], b"");
    assert_eq!(out.status.code(), Some(5));
    // Usage errors.
    let out = exec(&["--local", "--exec", "-"], b"");
    assert_eq!(out.status.code(), Some(2));
    let out = exec(&["--exec", "-", "host:/path", "--", "true"], b"");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn half_close_and_stderr() {
    // The far program sees EOF after our input and answers after it.
    let input = common::pattern(1_234_567, 3);
    let out = exec(
        &[
            "--local",
            "--exec",
            "-",
            "--",
            "wc -c; echo after-eof; echo to-stderr >&2",
        ],
        &input,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "1234567\nafter-eof\n");
    assert!(text(&out.stderr).contains("to-stderr"));
    // A local command sees the far program's EOF (its stdin ends) while
    // the far program still runs; its output reaches the far program.
    let out = exec(
        &[
            "--local",
            "--exec",
            "printf abc; exec >&-; cat >&2; echo local-saw-eof >&2",
            "--",
            "cat; exec >&-; sleep 0.3; echo late >&2",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("abclocal-saw-eof"), "{err}");
    assert!(err.contains("late"), "{err}");
    assert!(out.stdout.is_empty());
    // Binary data through cat, our stdin to our stdout.
    let out = exec(&["--local", "--exec", "-", "--", "cat"], &input);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout == input, "cat changed the bytes");
}

#[test]
fn environment_and_descriptors() {
    let out = exec(
        &[
            "--local",
            "--exec",
            "-",
            "--",
            "sh",
            "-c",
            "env | grep -E '^(VSL|VFER)_' | sort; ls /proc/self/fd | tr '\\n' ' '",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(
        lines[0],
        "VFER_PEER=127.0.0.1:".to_string() + peer_port(lines[0])
    );
    assert_eq!(lines[1], "VSL_CIPHER=AES-256-GCM");
    assert_eq!(lines[2], "VSL_KEX=X25519");
    assert_eq!(lines[3], "VSL_PROTOCOL=VSL2");
    // Only stdio (and the directory `ls` opened): no socket, no pipe of
    // ours, nothing the session secret went through.
    assert_eq!(lines[4].trim(), "0 1 2 3", "{t}");
}

/// `--cipher vsl1` on the client: the far program sees the seed's suite.
#[test]
fn environment_shows_the_forced_vsl1_suite() {
    let out = exec(
        &[
            "--local",
            "--cipher",
            "vsl1",
            "--exec",
            "-",
            "--",
            "sh",
            "-c",
            "env | grep -E '^VSL_(CIPHER|PROTOCOL)' | sort",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "VSL_CIPHER=AES-256-CTR+HMAC-SHA256-128\nVSL_PROTOCOL=VSL1\n"
    );
}

fn peer_port(line: &str) -> &str {
    let p = line.rsplit(':').next().unwrap();
    assert!(p.parse::<u16>().is_ok(), "{line}");
    p
}

#[test]
fn sigterm_stops_reading_flushes_and_closes() {
    let mut child = Command::new(SEND)
        .args(["--local", "--exec", "-", "--", "wc -c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, err) = common::collect(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&[b'x'; 1000]).unwrap();
    stdin.flush().unwrap();
    // The input stays open: only the signal ends it.
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: plain syscall on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let code = common::wait_code(&mut child, Duration::from_secs(30));
    drop(stdin);
    assert_eq!(code, Some(130));
    // What we had read was flushed, the far program saw EOF and answered.
    assert_eq!(text(&out.finish()), "1000\n");
    assert!(text(&err.finish()).contains("stopped by SIGTERM"));
}

#[test]
fn no_progress_exits_99() {
    // The far side reports its server's pid, then we freeze that server.
    let mut child = Command::new(SEND)
        .args([
            "--local",
            "--timeout",
            "2",
            "--exec",
            "-",
            "--",
            "echo $PPID $$; exec sleep 30",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, _err) = common::collect(&mut child);
    let line = out.wait_for(4, Duration::from_secs(20));
    let first = text(&line);
    let pids: Vec<i32> = first
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "{first}");
    // SAFETY: plain syscalls on processes this test started.
    unsafe { libc::kill(pids[0], libc::SIGSTOP) };
    let code = common::wait_code(&mut child, Duration::from_secs(30));
    unsafe {
        libc::kill(pids[0], libc::SIGKILL);
        libc::kill(pids[1], libc::SIGKILL);
    }
    assert_eq!(code, Some(99));
}

#[test]
fn through_real_openssh() {
    let bin_dir = Path::new(SEND).parent().unwrap();
    let Some(sshd) = common::sshd::Sshd::start(bin_dir) else {
        return;
    };
    let rsh = sshd.rsh();
    let d = tempfile::tempdir().unwrap();
    let (src, dst) = (d.path().join("src"), d.path().join("dst"));
    make_tree(&src);
    fs::create_dir(&dst).unwrap();
    let local = format!("tar c -C '{}' .", s(&src));
    let out = exec(
        &[
            "-e",
            &rsh,
            "--remote-path",
            RECV,
            "--exec",
            &local,
            "root@127.0.0.1",
            "--",
            "tar",
            "x",
            "-C",
            s(&dst),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(snapshot(&src) == snapshot(&dst), "trees differ");
    // Exit status, stderr and half-close through ssh.
    let out = exec(
        &[
            "-e",
            &rsh,
            "--exec",
            "-",
            "root@127.0.0.1",
            "--",
            "wc -c; echo oops >&2; exit 7",
        ],
        b"12345",
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "5\n");
    assert!(text(&out.stderr).contains("oops"));
    // The ssh-started far side is gone afterwards.
    let left = common::wait_gone(&["--exec-remote", "wc -c"], Duration::from_secs(5));
    assert!(left.is_empty(), "leftover far sides: {left:?}");
    let mut f = fs::File::open(dst.join("a/small.txt")).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "hello\n");
}

#[test]
fn far_program_ending_first_does_not_wait_for_our_stdin() {
    // Our stdin stays open (a terminal, say): when the far program ends
    // without reading it, vfer must not wait for input that never comes.
    let mut child = Command::new(SEND)
        .args(["--local", "--exec", "-", "--", "echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, _err) = common::collect(&mut child);
    let stdin = child.stdin.take();
    let code = common::wait_code(&mut child, Duration::from_secs(30));
    drop(stdin);
    assert_eq!(code, Some(0));
    assert_eq!(text(&out.finish()), "done\n");
}

#[test]
fn program_daemon_with_a_key_file() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("key");
    fs::write(&key, common::pattern(40, 11)).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let port = common::free_udp_port();
    let listen = format!("127.0.0.1:{port}");
    let pidfile = d.path().join("pid");
    let mut daemon = Command::new(RECV)
        .args(["--listen", &listen, "--key-file", s(&key), "--pidfile"])
        .arg(&pidfile)
        .args(["--exec", "wc -c; echo \"peer $VFER_PEER\" >&2; exit 4"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while !pidfile.exists() {
        assert!(std::time::Instant::now() < end, "daemon did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("vfer://127.0.0.1:{port}");
    // Two clients in turn, each its own program, status and EOF.
    for n in [0usize, 250_000] {
        let out = exec(
            &["--key-file", s(&key), "--exec", "-", &url],
            &common::pattern(n, 2),
        );
        assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("{n}\n"));
        assert!(text(&out.stderr).contains("peer 127.0.0.1:"));
    }
    // The daemon chooses the program: a client cannot.
    let out = exec(
        &["--key-file", s(&key), "--exec", "-", &url, "--", "id"],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    // A local command on the client side works as with ssh.
    let out = exec(
        &["--key-file", s(&key), "--exec", "printf 12345", &url],
        b"",
    );
    assert_eq!(out.status.code(), Some(4));
    // SIGTERM: the daemon stops cleanly.
    // SAFETY: plain syscall on our child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    assert_eq!(
        common::wait_code(&mut daemon, Duration::from_secs(30)),
        Some(0)
    );
}

#[test]
fn far_program_is_stopped_when_the_client_goes() {
    // A far program that neither reads nor writes: the client's SIGTERM
    // closes the session, and the far side then stops the program.
    let mut child = Command::new(SEND)
        .args(["--local", "--exec", "-", "--", "echo $$; exec sleep 97"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, _err) = common::collect(&mut child);
    let stdin = child.stdin.take();
    let first = text(&out.wait_for(2, Duration::from_secs(20)));
    let far: i32 = first.trim().parse().unwrap_or_else(|_| panic!("{first:?}"));
    // SAFETY: plain syscalls on processes this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(
        common::wait_code(&mut child, Duration::from_secs(30)),
        Some(130)
    );
    drop(stdin);
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while unsafe { libc::kill(far, 0) } == 0 {
        if std::time::Instant::now() > end {
            unsafe { libc::kill(far, libc::SIGKILL) };
            panic!("the far program {far} outlived its session");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
