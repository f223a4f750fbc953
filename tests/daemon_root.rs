//! A standing daemon's `--root` cannot be escaped by a race (issue 13 §1):
//! session A asks for a path that does not exist yet (the request is
//! accepted) and pauses; session B, a stock `vfer-send -r`, plants a
//! symlink there; A goes on. Driven step by step through the real
//! `vfer-recv --listen` daemon, with A written against the library so it
//! can pause exactly between its request and its transfer.

mod common;

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use vfer::bootstrap::keyfile;
use vfer::service::request::{Request, Service, SessionOptions};
use vfer::transfer::{self, Dest, ReceiveOptions, SendOptions, Source};
use vfer::transport::{Config, Session};

const SEND: &str = env!("CARGO_BIN_EXE_vfer-send");
const RECV: &str = env!("CARGO_BIN_EXE_vfer-recv");

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A key-file daemon on loopback, killed when the test ends.
struct Daemon {
    child: std::process::Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts `vfer-recv --listen` on `DIR/root` with umask 022.
    fn start() -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("root")).unwrap();
        fs::create_dir(dir.path().join("outside")).unwrap();
        fs::create_dir(dir.path().join("local")).unwrap();
        let key = dir.path().join("key");
        fs::write(&key, [7u8; 48]).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        let port = common::free_udp_port();
        let cmd = format!(
            "umask 022; exec '{RECV}' --listen 127.0.0.1:{port} --key-file '{}' --root '{}'",
            s(&key),
            s(&dir.path().join("root"))
        );
        let child = Command::new("sh")
            .args(["-c", &cmd])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        Daemon { child, dir, port }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn url(&self, path: &str) -> String {
        format!("vfer://127.0.0.1:{}/{path}", self.port)
    }

    /// Session A: connects and sends its request, then waits for the
    /// daemon's first transfer frame (its HELLO), which proves the request
    /// was accepted. Returns the session and the bytes read so far.
    async fn request(&self, push: bool, paths: &[&str]) -> (Session, Vec<u8>) {
        let key = keyfile::load(&self.path("key")).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let session = keyfile::connect(addr, &key, Config::default())
            .await
            .unwrap();
        let mut stream = session.stream();
        Request {
            service: if push { Service::Push } else { Service::Pull },
            recursive: true,
            preserve: false,
            options: SessionOptions::default(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }
        .write(&mut stream)
        .await
        .unwrap();
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).await.unwrap();
        let mut hello = len.to_vec();
        hello.resize(4 + u32::from_be_bytes(len) as usize, 0);
        stream.read_exact(&mut hello[4..]).await.unwrap();
        (session, hello)
    }

    /// Session B: a stock `vfer-send -r` of `local` into the root.
    fn plant(&self, local: &Path) {
        let out = Command::new(SEND)
            .args(["-q", "-r", "--key-file", s(&self.path("key")), s(local)])
            .arg(self.url(""))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The stream of `session` with `seen` (bytes already read) put back in
/// front, as separate halves.
fn halves(
    session: &Session,
    seen: Vec<u8>,
) -> (
    impl AsyncRead + Unpin + Send,
    impl tokio::io::AsyncWrite + Unpin + Send,
) {
    let (r, w) = tokio::io::split(session.stream());
    (std::io::Cursor::new(seen).chain(r), w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_planted_after_a_push_request_is_not_followed() {
    let d = Daemon::start();
    // A asks to push to pkg/d, which does not exist: accepted.
    let (a, seen) = d.request(true, &["pkg/d"]).await;
    // B pushes pkg holding d -> outside.
    let pkg = d.path("local/pkg");
    fs::create_dir(&pkg).unwrap();
    symlink(d.path("outside"), pkg.join("d")).unwrap();
    d.plant(&pkg);
    assert!(fs::symlink_metadata(d.path("root/pkg/d"))
        .unwrap()
        .file_type()
        .is_symlink());
    // A sends its manifest.
    let keys = d.path("local/authorized_keys");
    fs::write(&keys, b"ssh-ed25519 AAAA attacker\n").unwrap();
    let (r, w) = halves(&a, seen);
    let res = transfer::send_split(r, w, vec![Source::Path(keys)], &SendOptions::default()).await;
    vfer::cli::session::close(a, 0).await;
    assert!(
        !d.path("outside/authorized_keys").exists(),
        "the daemon wrote outside its root"
    );
    let e = res.expect_err("the push through a planted symlink must fail");
    assert!(e.to_string().contains("symlink"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_planted_after_a_pull_request_is_not_followed() {
    let d = Daemon::start();
    fs::write(d.path("outside/secret"), b"the daemon's secret").unwrap();
    // A asks to pull pkg2/f, which does not exist: accepted.
    let (a, seen) = d.request(false, &["pkg2/f"]).await;
    // B pushes pkg2 holding f -> outside/secret.
    let pkg = d.path("local/pkg2");
    fs::create_dir(&pkg).unwrap();
    symlink(d.path("outside/secret"), pkg.join("f")).unwrap();
    d.plant(&pkg);
    // A sends HELLO and takes what comes.
    let got = d.path("got");
    fs::create_dir(&got).unwrap();
    let (r, w) = halves(&a, seen);
    let res =
        transfer::receive_split(r, w, Dest::Path(got.clone()), &ReceiveOptions::default()).await;
    vfer::cli::session::close(a, 0).await;
    let leaked: Vec<_> = fs::read_dir(&got).unwrap().collect();
    assert!(leaked.is_empty(), "the daemon sent {leaked:?}");
    if let Ok(s) = res {
        assert_eq!(s.files, 0);
    }
}

#[test]
fn a_symlinked_source_or_destination_is_refused_with_a_clear_error() {
    let d = Daemon::start();
    fs::write(d.path("outside/secret"), b"s").unwrap();
    symlink(d.path("outside/secret"), d.path("root/link")).unwrap();
    symlink(d.path("outside"), d.path("root/dirlink")).unwrap();
    let key = d.path("key");
    let out = Command::new(RECV)
        .args(["--key-file", s(&key), &d.url("link"), s(&d.path("local"))])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("symlink"), "{err}");
    assert!(!d.path("local/link").exists());

    fs::write(d.path("local/f"), b"x").unwrap();
    let out = Command::new(SEND)
        .args([
            "--key-file",
            s(&key),
            s(&d.path("local/f")),
            &d.url("dirlink/"),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("symlink"), "{err}");
    assert!(!d.path("outside/f").exists());
}

/// Reads one transfer frame from `r` (its type byte and body).
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Vec<u8> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await.unwrap();
    let mut f = vec![0u8; u32::from_be_bytes(len) as usize];
    r.read_exact(&mut f).await.unwrap();
    f
}

/// The race below the top level, through the transfer API as the daemon
/// uses it: the source walks a pulled directory, then (before the sink
/// asks for the file) a local user swaps a subdirectory for a symlink to
/// outside the root. The source must not read through it.
#[tokio::test]
async fn a_directory_swapped_for_a_symlink_after_the_walk_is_not_followed() {
    use tokio::io::AsyncWriteExt;
    use vfer::transfer::frame::{self, Kind, Msg, Role, Want};
    let t = tempfile::tempdir().unwrap();
    let (root, outside) = (t.path().join("root"), t.path().join("outside"));
    fs::create_dir_all(root.join("pkg3/sub")).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(root.join("pkg3/sub/x"), b"harmless").unwrap();
    fs::write(outside.join("x"), b"the secret").unwrap();
    let root_dir = transfer::RootDir::open(&root).unwrap();
    let path = vfer::transfer::beneath::request_path("pkg3").unwrap();
    let (mut sink, src) = tokio::io::duplex(1 << 20);
    let opts = SendOptions {
        recursive: true,
        ..SendOptions::default()
    };
    let source = tokio::spawn(async move {
        let sources = vec![Source::Beneath {
            root: root_dir,
            path,
        }];
        transfer::send(src, sources, &opts).await
    });
    let mut out = Vec::new();
    frame::encode(
        &Msg::Hello {
            role: Role::Sink,
            flags: 0,
        },
        &mut out,
    );
    sink.write_all(&out).await.unwrap();
    let mut file_index = None;
    loop {
        let f = read_frame(&mut sink).await;
        match frame::decode(&f).unwrap() {
            Msg::Entry(e) if e.kind == Kind::File => file_index = Some(e.index),
            Msg::ManifestEnd { .. } => break,
            _ => {}
        }
    }
    // The walk is done: swap the directory.
    fs::rename(root.join("pkg3/sub"), t.path().join("moved")).unwrap();
    symlink(&outside, root.join("pkg3/sub")).unwrap();
    let index = file_index.expect("the walk listed pkg3/sub/x");
    let mut out = Vec::new();
    frame::encode(
        &Msg::Want {
            index,
            want: Want::Full,
        },
        &mut out,
    );
    sink.write_all(&out).await.unwrap();
    let f = read_frame(&mut sink).await;
    match frame::decode(&f).unwrap() {
        Msg::FileAbort { message, .. } => assert!(message.contains("symlink"), "{message}"),
        m => panic!("the source sent {m:?} instead of refusing"),
    }
    drop(sink);
    let _ = source.await;
}

/// `-p` through a daemon started with umask 022: a 0777 file and a 0777
/// directory arrive as 0755 (the daemon's umask applies to sent modes).
#[test]
fn preserved_modes_get_the_daemons_umask() {
    let d = Daemon::start();
    let tree = d.path("local/open");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("f"), b"x").unwrap();
    fs::set_permissions(tree.join("f"), fs::Permissions::from_mode(0o777)).unwrap();
    fs::set_permissions(&tree, fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new(SEND)
        .args(["-q", "-r", "-p", "--key-file", s(&d.path("key")), s(&tree)])
        .arg(d.url(""))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = |p: &str| fs::metadata(d.path(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("root/open/f"), 0o755);
    assert_eq!(mode("root/open"), 0o755);
}
