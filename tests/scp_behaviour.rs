//! Issue 14: vfer behaves like scp where users expect it, through a real
//! private sshd. Every scenario checks the exit status, that stderr names
//! the fault, and what is (and is not) on disk.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const SEND: &str = env!("CARGO_BIN_EXE_vfer-send");
const RECV: &str = env!("CARGO_BIN_EXE_vfer-recv");

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env_remove("SSH_CONNECTION")
        .stdin(Stdio::null())
        .output()
        .expect("run")
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out.lines().last().unwrap_or_else(|| {
        panic!("no JSON on stdout; stderr: {}", err(o));
    });
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}"))
}

/// Asserts the exit status and that stderr contains every one of `needles`.
#[track_caller]
fn expect(o: &Output, code: i32, needles: &[&str]) {
    let e = err(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {e}");
    for n in needles {
        assert!(e.contains(n), "stderr lacks {n:?}: {e}");
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn sshd() -> Option<common::sshd::Sshd> {
    common::sshd::Sshd::start(Path::new(SEND).parent().expect("bin dir"))
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_pull_of_nothing_is_a_failure_naming_each_source() {
    let Some(sshd) = sshd() else { return };
    let rsh = sshd.rsh();
    let remote = tempfile::tempdir().unwrap();
    let r = remote.path();
    fs::write(r.join("here.txt"), b"here").unwrap();
    fs::create_dir(r.join("dir")).unwrap();
    fs::write(r.join("dir/inner"), b"inner").unwrap();
    std::os::unix::fs::symlink(r.join("gone"), r.join("dangling")).unwrap();
    let local = tempfile::tempdir().unwrap();
    let into = local.path();
    let host = |p: &str| format!("127.0.0.1:{}/{p}", r.display());

    // A missing file.
    let o = run(RECV, &["-q", "-e", &rsh, &host("missing"), s(into)]);
    expect(&o, 1, &["missing", "No such file or directory"]);
    assert!(!err(&o).contains("os error"), "{}", err(&o));
    assert!(entries(into).is_empty(), "{:?}", entries(into));

    // A remote glob matching nothing.
    let o = run(RECV, &["-q", "-e", &rsh, &host("*.gz"), s(into)]);
    expect(&o, 1, &["*.gz", "No such file or directory"]);
    assert!(entries(into).is_empty());

    // A directory without -r.
    let o = run(RECV, &["-q", "-e", &rsh, &host("dir"), s(into)]);
    expect(&o, 1, &["dir", "is a directory (use -r)"]);
    assert!(entries(into).is_empty());

    // A dangling symlink.
    let o = run(RECV, &["-q", "-e", &rsh, &host("dangling"), s(into)]);
    expect(&o, 1, &["dangling", "No such file or directory"]);
    assert!(entries(into).is_empty());

    // One good and two bad sources: the good one arrives, both bad ones
    // are named, and --json lists them.
    let o = run(
        RECV,
        &[
            "-q",
            "--json",
            "-e",
            &rsh,
            &host("here.txt"),
            &host("missing"),
            &host("dir"),
            s(into),
        ],
    );
    expect(&o, 1, &["missing", "is a directory"]);
    assert_eq!(fs::read(into.join("here.txt")).unwrap(), b"here");
    assert_eq!(entries(into), ["here.txt"]);
    let j = json(&o);
    assert_eq!(j["exit_status"], 1);
    assert!(j["error"].is_string(), "{j}");
    let f = j["failures"].as_array().unwrap();
    assert_eq!(f.len(), 2, "{j}");
    assert!(f[0]["path"].as_str().unwrap().ends_with("/missing"), "{j}");
    assert!(f[1]["message"].as_str().unwrap().contains("use -r"), "{j}");
}

#[test]
fn key_file_daemon_pull_of_nothing_is_a_failure_without_the_root() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("secret-root-name");
    fs::create_dir_all(root.join("in")).unwrap();
    let key = d.path().join("key");
    fs::write(&key, [7u8; 48]).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
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
    let _daemon = KillOnDrop(daemon);
    std::thread::sleep(Duration::from_millis(300));
    let into = d.path().join("into");
    fs::create_dir(&into).unwrap();
    let url = format!("vfer://127.0.0.1:{port}/in/missing");
    let o = run(
        RECV,
        &["-q", "--json", "--key-file", s(&key), &url, s(&into)],
    );
    expect(&o, 1, &["in/missing", "No such file or directory"]);
    assert!(!err(&o).contains("secret-root-name"), "{}", err(&o));
    assert!(entries(&into).is_empty());
    let j = json(&o);
    assert_eq!(j["failures"][0]["path"], "in/missing", "{j}");
}

#[test]
fn exit_statuses_follow_the_readme() {
    let Some(sshd) = sshd() else { return };
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("f.txt");
    fs::write(&f, b"data").unwrap();
    let remote = tempfile::tempdir().unwrap();
    let rdest = format!("127.0.0.1:{}/", remote.path().display());

    // Connection refused: ssh's own status is in the message.
    let refused = sshd.rsh_with_port(common::free_tcp_port());
    let o = run(SEND, &["-q", "--json", "-e", &refused, s(&f), &rdest]);
    expect(&o, 111, &["255", "127.0.0.1"]);
    let j = json(&o);
    assert_eq!(j["exit_status"], 111);
    assert!(j["error"].as_str().unwrap().contains("255"), "{j}");

    // ssh authentication failure (a key the server does not know).
    let other = d.path().join("other_key");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f", s(&other)])
        .status()
        .unwrap();
    assert!(st.success());
    let wrong = sshd.rsh().replace(s(&sshd.client_key), s(&other));
    let o = run(SEND, &["-q", "-e", &wrong, s(&f), &rdest]);
    expect(&o, 111, &["255", "Permission denied"]);

    // A missing remote program names it.
    let rsh = sshd.rsh();
    let o = run(
        SEND,
        &[
            "-q",
            "-e",
            &rsh,
            "--remote-path",
            "/nonexistent/vfer-recv",
            s(&f),
            &rdest,
        ],
    );
    expect(&o, 111, &["/nonexistent/vfer-recv", "not found"]);

    // An unresolvable host.
    let o = run(
        SEND,
        &["-q", "-e", &rsh, s(&f), "no-such-host.invalid:/tmp/"],
    );
    expect(&o, 111, &["no-such-host.invalid"]);

    // A missing destination parent on the far side.
    let missing = format!("127.0.0.1:{}/no/such/dir/f.txt", remote.path().display());
    let o = run(SEND, &["-q", "--json", "-e", &rsh, s(&f), &missing]);
    expect(&o, 111, &["no/such/dir"]);
    assert_eq!(json(&o)["exit_status"], 111);
    assert!(entries(remote.path()).is_empty());

    // A key file readable by others is a local configuration error.
    let key = d.path().join("key");
    fs::write(&key, [7u8; 48]).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let o = run(
        SEND,
        &[
            "-q",
            "--json",
            "--key-file",
            s(&key),
            s(&f),
            "vfer://127.0.0.1:1/in/",
        ],
    );
    expect(&o, 2, &["chmod 600"]);
    assert_eq!(json(&o)["exit_status"], 2);

    // A usage error prints the JSON object too.
    let o = run(SEND, &["--json", "--no-such-option"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(json(&o)["exit_status"], 2);

    // Success carries exit_status 0 and a null error.
    let o = run(SEND, &["-q", "--json", "-e", &rsh, s(&f), &rdest]);
    expect(&o, 0, &[]);
    let j = json(&o);
    assert_eq!(j["exit_status"], 0);
    assert!(j["error"].is_null(), "{j}");
    assert_eq!(fs::read(remote.path().join("f.txt")).unwrap(), b"data");
}

/// The home directory sshd gives our user (the password database's).
fn passwd_home() -> std::path::PathBuf {
    let uid = unsafe { libc::getuid() };
    let out = Command::new("getent")
        .args(["passwd", &uid.to_string()])
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.trim().split(':').nth(5).expect("home field").into()
}

fn user_name() -> String {
    let uid = unsafe { libc::getuid() };
    let out = Command::new("getent")
        .args(["passwd", &uid.to_string()])
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.split(':').next().unwrap().to_string()
}

#[test]
fn paths_as_scp_users_write_them() {
    let Some(sshd) = sshd() else { return };
    let rsh = sshd.rsh();
    let home = passwd_home();
    // A private directory in the remote home (the same machine), removed
    // at the end.
    let inhome = tempfile::Builder::new()
        .prefix("vfer-test-")
        .tempdir_in(&home)
        .unwrap();
    let name = inhome
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let local = tempfile::tempdir().unwrap();
    let f = local.path().join("a.bin");
    fs::write(&f, b"alpha").unwrap();

    // Push to host:~/DIR/ and pull back from host:~USER/DIR/a.bin.
    let o = run(
        SEND,
        &["-q", "-e", &rsh, s(&f), &format!("127.0.0.1:~/{name}/")],
    );
    expect(&o, 0, &[]);
    assert_eq!(fs::read(inhome.path().join("a.bin")).unwrap(), b"alpha");
    let back = local.path().join("back.bin");
    let src = format!("127.0.0.1:~{}/{name}/a.bin", user_name());
    let o = run(RECV, &["-q", "-e", &rsh, &src, s(&back)]);
    expect(&o, 0, &[]);
    assert_eq!(fs::read(&back).unwrap(), b"alpha");

    // `host:` alone is the remote home directory.
    let top = local.path().join(format!("{name}.top"));
    fs::write(&top, b"top").unwrap();
    let o = run(SEND, &["-q", "-e", &rsh, s(&top), "127.0.0.1:"]);
    expect(&o, 0, &[]);
    let landed = home.join(format!("{name}.top"));
    let got = fs::read(&landed);
    let _ = fs::remove_file(&landed);
    assert_eq!(got.unwrap(), b"top");

    // A remote glob is expanded on the far side.
    for n in ["x1.log", "x2.log", "y.txt"] {
        fs::write(inhome.path().join(n), n).unwrap();
    }
    let into = local.path().join("globbed");
    fs::create_dir(&into).unwrap();
    let src = format!("127.0.0.1:{}/*.log", inhome.path().display());
    let o = run(RECV, &["-q", "-e", &rsh, &src, s(&into)]);
    expect(&o, 0, &[]);
    assert_eq!(entries(&into), ["x1.log", "x2.log"]);

    // A destination ending in `/` that does not exist becomes a directory,
    // for a push and for a pull.
    let o = run(
        SEND,
        &[
            "-q",
            "-e",
            &rsh,
            s(&f),
            &format!("127.0.0.1:~/{name}/newdir/"),
        ],
    );
    expect(&o, 0, &[]);
    assert!(inhome.path().join("newdir").is_dir());
    assert_eq!(
        fs::read(inhome.path().join("newdir/a.bin")).unwrap(),
        b"alpha"
    );
    let newdir = format!("{}/pulled/", local.path().display());
    let src = format!("127.0.0.1:~/{name}/y.txt");
    let o = run(RECV, &["-q", "-e", &rsh, &src, &newdir]);
    expect(&o, 0, &[]);
    assert_eq!(
        fs::read(local.path().join("pulled/y.txt")).unwrap(),
        b"y.txt"
    );
    // ...but only its last component: a missing parent is still an error.
    let o = run(
        SEND,
        &[
            "-q",
            "-e",
            &rsh,
            s(&f),
            &format!("127.0.0.1:~/{name}/no/newdir/"),
        ],
    );
    expect(&o, 111, &["no/newdir"]);
    assert!(!inhome.path().join("no").exists());
}

#[test]
fn a_daemon_on_a_port_in_use_fails_before_serving() {
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("key");
    fs::write(&key, [7u8; 48]).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let mut c = Command::new(RECV)
        .args([
            "--listen",
            &listen,
            "--key-file",
            s(&key),
            "--root",
            s(d.path()),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = common::wait_code(&mut c, Duration::from_secs(10));
    let o = c.wait_with_output().unwrap();
    let e = err(&o);
    assert_eq!(code, Some(111), "{e}");
    assert!(e.contains(&listen) && e.contains("in use"), "{e}");
    assert!(!e.contains("serving"), "{e}");
}

fn wait_for_size(p: &Path, n: u64) {
    let end = std::time::Instant::now() + Duration::from_secs(60);
    while fs::metadata(p).map(|m| m.len()).unwrap_or(0) < n {
        assert!(
            std::time::Instant::now() < end,
            "{} never reached {n}",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_interrupted_push_stops_keeps_a_resumable_part_and_says_so_in_json() {
    let Some(sshd) = sshd() else { return };
    let rsh = sshd.rsh();
    let local = tempfile::tempdir().unwrap();
    let remote = tempfile::tempdir().unwrap();
    let src = local.path().join("big.bin");
    let data = common::pattern(48 << 20, 5);
    fs::write(&src, &data).unwrap();
    let dest = format!("127.0.0.1:{}/", remote.path().display());
    let part = remote.path().join("big.bin.vfer-part");
    for signals in [1, 2] {
        let c = Command::new(SEND)
            .args(["-q", "--json", "-l", "20M", "-e", &rsh, s(&src), &dest])
            .env_remove("SSH_CONNECTION")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let already = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        wait_for_size(&part, already + (1 << 20));
        for _ in 0..signals {
            unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
        }
        let o = c.wait_with_output().unwrap();
        expect(&o, 130, &["stopped by SIGINT", "resume"]);
        let j = json(&o);
        assert_eq!(j["exit_status"], 130, "{j}");
        assert!(j["error"].as_str().unwrap().contains("SIGINT"), "{j}");
        // The far side stops writing: the part no longer grows.
        let left = common::wait_gone(
            &["vfer-recv", "--server", s(remote.path())],
            Duration::from_secs(30),
        );
        assert!(left.is_empty(), "far side still running: {left:?}");
        assert!(!remote.path().join("big.bin").exists());
        let size = fs::metadata(&part).unwrap().len();
        assert!(size < data.len() as u64);
    }
    let o = run(SEND, &["-q", "--json", "-e", &rsh, s(&src), &dest]);
    expect(&o, 0, &[]);
    assert!(json(&o)["bytes_skipped"].as_u64().unwrap() > 0);
    assert!(fs::read(remote.path().join("big.bin")).unwrap() == data);
}
