//! Suite negotiation through the real binaries (`--local`): the default is
//! AES-256-GCM, `--cipher vsl1` on either end gives VSL1 (the `--json`
//! summary's `cipher` says which), and two ends with no suite in common
//! get no connection and an error that names `--cipher`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const SEND: &str = env!("CARGO_BIN_EXE_vfer-send");
const RECV: &str = env!("CARGO_BIN_EXE_vfer-recv");

/// A far-side program: vfer-recv with `extra` options before the rest.
fn far_side(dir: &Path, extra: &str) -> String {
    let path = dir.join("recv.sh");
    fs::write(&path, format!("#!/bin/sh\nexec '{RECV}' {extra} \"$@\"\n")).expect("write wrapper");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod wrapper");
    path.to_str().expect("utf-8 temp path").to_string()
}

/// Copies a small file with `client` options and the far side started as
/// `vfer-recv far`; returns the output.
fn copy(client: &[&str], far: &str) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path().join("src");
    fs::write(&src, vec![0x5au8; 300_000]).expect("write source");
    let remote = far_side(dir.path(), far);
    let dst = dir.path().join("dst");
    let out = Command::new(SEND)
        .args([
            "--local",
            "--json",
            "--timeout",
            "3",
            "--remote-path",
            &remote,
        ])
        .args(client)
        .arg(&src)
        .arg(&dst)
        .output()
        .expect("run vfer-send");
    if out.status.success() {
        assert_eq!(fs::read(&dst).expect("copied file").len(), 300_000);
    }
    out
}

fn cipher_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "vfer-send failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    j["cipher"].as_str().expect("cipher field").to_string()
}

#[test]
fn default_is_aes_256_gcm() {
    assert_eq!(cipher_of(&copy(&[], "")), "AES-256-GCM");
}

#[test]
fn vsl1_on_either_side_gives_vsl1() {
    let v1 = "AES-256-CTR+HMAC-SHA256-128";
    assert_eq!(cipher_of(&copy(&["--cipher", "vsl1"], "")), v1);
    assert_eq!(cipher_of(&copy(&[], "--cipher vsl1")), v1);
    assert_eq!(
        cipher_of(&copy(&["--cipher", "aes-256-gcm"], "--cipher gcm")),
        "AES-256-GCM"
    );
}

#[test]
fn no_common_suite_fails_and_says_why() {
    let out = copy(&["--cipher", "vsl1"], "--cipher aes-256-gcm");
    assert!(!out.status.success(), "connected without a common suite");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--cipher"),
        "error does not name --cipher: {err}"
    );
}
