//! Programs written for s6-tlsd find what they look for (issue 18, item
//! 5): `SSL_PROTOCOL` and `SSL_CIPHER` beside the `VSL_*` variables.

use std::process::{Command, Stdio};

const SEND: &str = env!("CARGO_BIN_EXE_vfer-send");

fn far_env(extra: &[&str]) -> String {
    let out = Command::new(SEND)
        .arg("--local")
        .args(extra)
        .args(["--exec", "-", "--", "echo \"$SSL_PROTOCOL|$SSL_CIPHER\""])
        .stdin(Stdio::null())
        .output()
        .expect("run vfer-send");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ssl_protocol_and_cipher_are_set() {
    assert_eq!(far_env(&[]), "VSL2|AES-256-GCM\n");
    assert_eq!(
        far_env(&["--cipher", "vsl1"]),
        "VSL1|AES-256-CTR+HMAC-SHA256-128\n"
    );
}

/// `--user NAME` (s6-tlsd's TLS_UID/TLS_GID): a program daemon started as
/// root binds, reads its key, then runs as NAME, and so does its program.
#[test]
fn a_daemon_drops_to_its_user_and_so_do_its_programs() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to drop privileges");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let want = Command::new("id").args(["-u", "nobody"]).output().unwrap();
    let want = String::from_utf8_lossy(&want.stdout).trim().to_string();
    assert!(!want.is_empty() && want != "0");
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("key");
    std::fs::write(&key, [7u8; 40]).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    drop(sock);
    let listen = format!("127.0.0.1:{port}");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_vfer-recv"))
        .args(["--listen", &listen, "--key-file"])
        .arg(&key)
        .args(["--user", "nobody", "--exec", "id -u"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("vfer://127.0.0.1:{port}");
    let mut got = String::new();
    for _ in 0..50 {
        let out = Command::new(SEND)
            .args(["--timeout", "2", "--key-file"])
            .arg(&key)
            .args(["--exec", "-", &url])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        got = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert_eq!(got, want);
}
