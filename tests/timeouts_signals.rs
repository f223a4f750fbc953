//! Timeouts that mean what they say and every terminating signal handled
//! like SIGTERM (issue 18, items 2 and 3), through the real binaries:
//! `--timeout` short or 0 never kills a healthy idle session, `-K` ends an
//! idle program session (exit 99) on the client and on a program daemon,
//! and SIGQUIT/SIGABRT/SIGUSR1 wind a session down with a CLOSE (exit 130)
//! so the far program is stopped at once, not after the idle timeout.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SEND: &str = env!("CARGO_BIN_EXE_vfer-send");
const RECV: &str = env!("CARGO_BIN_EXE_vfer-recv");

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `vfer-send ARGS` with an empty, closed stdin.
fn send(args: &[&str]) -> Output {
    Command::new(SEND)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run vfer-send")
}

#[test]
fn a_short_timeout_does_not_kill_a_healthy_idle_session() {
    // 4 s without a byte either way, peer alive: keep-alives at a third of
    // the 1 s timeout keep it up (they went out every 5 s: exit 99 after 1 s).
    let out = send(&[
        "--local",
        "--timeout",
        "1",
        "--exec",
        "-",
        "--",
        "sleep 4; echo still here",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "still here\n");
}

#[test]
fn timeout_zero_means_never() {
    // `--timeout 0` used to mean 1 s.
    let out = send(&[
        "--local",
        "--timeout",
        "0",
        "--exec",
        "-",
        "--",
        "sleep 3; echo never",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "never\n");
}

#[test]
fn kill_idle_ends_an_idle_program_session_with_99() {
    let start = Instant::now();
    let out = send(&[
        "--local",
        "-K",
        "700",
        "--exec",
        "-",
        "--",
        "echo $$; exec sleep 93",
    ]);
    assert_eq!(out.status.code(), Some(99), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("700 ms (-K)"),
        "{}",
        text(&out.stderr)
    );
    assert!(start.elapsed() < Duration::from_secs(20));
    // The far program was stopped with its session.
    let far: i32 = text(&out.stdout).trim().parse().expect("far pid");
    wait_dead(far);
}

#[test]
fn kill_idle_does_not_fire_while_data_flows() {
    let out = send(&[
        "--local",
        "-K",
        "1500",
        "--exec",
        "-",
        "--",
        "for i in 1 2 3 4 5 6; do echo $i; sleep 0.5; done",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "1\n2\n3\n4\n5\n6\n");
}

#[test]
fn a_program_daemon_with_kill_idle_ends_idle_sessions() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("key");
    std::fs::write(&key, common::pattern(40, 5)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let port = common::free_udp_port();
    let listen = format!("127.0.0.1:{port}");
    let pidfile = d.path().join("pid");
    let progpid = d.path().join("progpid");
    let daemon = Command::new(RECV)
        .args(["--listen", &listen, "--key-file", s(&key), "-K", "600"])
        .arg("--pidfile")
        .arg(&pidfile)
        .arg("--exec")
        .arg(format!("echo $$ > {}; exec sleep 91", s(&progpid)))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut daemon = KillOnDrop(daemon);
    let end = Instant::now() + Duration::from_secs(20);
    while !pidfile.exists() {
        assert!(Instant::now() < end, "daemon did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("vfer://127.0.0.1:{port}");
    let mut client = Command::new(SEND)
        .args(["--key-file", s(&key), "--exec", "-", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (_out, err) = common::collect(&mut client);
    let stdin = client.stdin.take();
    let code = common::wait_code(&mut client, Duration::from_secs(30));
    drop(stdin);
    let err = text(&err.finish());
    // The daemon's -K: the client learns it from CLOSE code 3 and exits 99.
    assert_eq!(code, Some(99), "{err}");
    assert!(err.contains("(-K)"), "{err}");
    let prog: i32 = std::fs::read_to_string(&progpid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_dead(prog);
    // SAFETY: plain syscall on our child.
    unsafe { libc::kill(daemon.0.id() as i32, libc::SIGTERM) };
    assert_eq!(
        common::wait_code(&mut daemon.0, Duration::from_secs(30)),
        Some(0)
    );
    assert!(!pidfile.exists(), "the daemon left its pidfile behind");
}

/// A daemon killed when the test ends, even by a panic.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `pid` is gone (20 s), else kills it and fails.
fn wait_dead(pid: i32) {
    let end = Instant::now() + Duration::from_secs(20);
    // SAFETY: kill(pid, 0) only probes; SIGKILL on a process this test started.
    while unsafe { libc::kill(pid, 0) } == 0 {
        if Instant::now() > end {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the far program {pid} outlived its session");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `sig` to a `--exec` client whose far program sits idle, and
/// checks that the client winds down (exit 130, the signal named) and that
/// the far program is stopped at once (the client's CLOSE reached the far
/// side; without it the far side waits out its 30 s idle timeout).
fn signal_winds_the_session_down(sig: i32, name: &str) {
    let start = Instant::now();
    let mut child = Command::new(SEND)
        .args(["--local", "--exec", "-", "--", "echo $$; exec sleep 92"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, err) = common::collect(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    let first = text(&out.wait_for(2, Duration::from_secs(20)));
    let far: i32 = first.trim().parse().unwrap_or_else(|_| panic!("{first:?}"));
    let _ = stdin.flush();
    // SAFETY: plain syscall on our child.
    unsafe { libc::kill(child.id() as i32, sig) };
    let code = common::wait_code(&mut child, Duration::from_secs(30));
    drop(stdin);
    let err = text(&err.finish());
    assert_eq!(code, Some(130), "{name}: {err}");
    assert!(err.contains(&format!("stopped by {name}")), "{err}");
    wait_dead(far);
    assert!(
        start.elapsed() < Duration::from_secs(25),
        "{name}: the far side waited for its idle timeout"
    );
}

#[test]
fn sigquit_is_handled_like_sigterm() {
    signal_winds_the_session_down(libc::SIGQUIT, "SIGQUIT");
}

#[test]
fn sigabrt_is_handled_like_sigterm() {
    signal_winds_the_session_down(libc::SIGABRT, "SIGABRT");
}

#[test]
fn sigusr1_is_handled_like_sigterm() {
    signal_winds_the_session_down(libc::SIGUSR1, "SIGUSR1");
}

#[test]
fn a_file_transfer_stopped_by_sigquit_keeps_its_parts_and_exits_130() {
    // A stream that never ends: only the signal stops it.
    let d = tempfile::tempdir().unwrap();
    let dest = d.path().join("out");
    let mut child = Command::new(SEND)
        .args(["--local", "-q", "-", s(&dest)])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (_o, err) = (
        (),
        common::Collector::new(child.stderr.take().expect("stderr")),
    );
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&common::pattern(100_000, 1)).unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: plain syscall on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGQUIT) };
    let code = common::wait_code(&mut child, Duration::from_secs(30));
    drop(stdin);
    let err = text(&err.finish());
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("stopped by SIGQUIT"), "{err}");
    // No complete-looking file.
    assert!(!dest.exists());
}
