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
