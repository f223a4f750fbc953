//! A hostile or broken peer: a fake source that writes raw frames (escaping
//! paths, symlink tricks, truncated and oversized frames), and local
//! trouble (a file where a directory is needed, a vanishing or shrinking
//! source, a full disk).

#[path = "transfer_util/mod.rs"]
mod util;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use util::*;
use vfer::transfer::frame::{self, Kind, Msg, Role, WireEntry};
use vfer::transfer::{
    receive, Dest, Progress, ReceiveOptions, SendOptions, Source, Summary, TransferError,
};

fn enc(msgs: &[Msg<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        frame::encode(m, &mut out);
    }
    out
}

fn entry<'a>(index: u64, kind: Kind, path: &'a [u8], target: &'a [u8], size: u64) -> Msg<'a> {
    Msg::Entry(WireEntry {
        index,
        kind,
        mode: 0o644,
        size,
        mtime_sec: 1_600_000_000,
        mtime_nsec: 0,
        path,
        target,
    })
}

/// Plays a fake source that writes `bytes` and then listens until the sink
/// closes. Returns the sink's result and everything it sent.
async fn fake_source(bytes: Vec<u8>, dest: &Path) -> (Result<Summary, TransferError>, Vec<u8>) {
    let (mut a, b) = tokio::io::duplex(1 << 20);
    let peer = async move {
        a.write_all(&bytes).await.unwrap();
        a.shutdown().await.unwrap();
        let mut back = Vec::new();
        let _ = a.read_to_end(&mut back).await;
        back
    };
    let opts = ReceiveOptions::default();
    let (r, back) = tokio::join!(receive(b, Dest::Path(dest.to_owned()), &opts), peer);
    (r, back)
}

fn hello() -> Msg<'static> {
    Msg::Hello {
        role: Role::Source,
        flags: 0,
    }
}

fn begin(entries: u64) -> Msg<'static> {
    Msg::ManifestBegin {
        roots: 1,
        entries,
        total_bytes: 0,
    }
}

fn only_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn escaping_and_absolute_paths_are_refused() {
    for bad in [
        &b"../../etc/passwd"[..],
        b"/etc/passwd",
        b"a/../../x",
        b"a//b",
        b"./a",
        b"a\0b",
        b"",
    ] {
        let dst = tempfile::tempdir().unwrap();
        let (r, back) = fake_source(
            enc(&[hello(), begin(1), entry(0, Kind::File, bad, b"", 4)]),
            dst.path(),
        )
        .await;
        let e = r.unwrap_err();
        assert!(
            matches!(e, TransferError::UnsafePath { .. }),
            "{bad:?}: {e}"
        );
        assert!(e.to_string().contains("unsafe path"), "{e}");
        assert!(only_files(dst.path()).is_empty());
        // The sink told the source why before closing.
        let text = String::from_utf8_lossy(&back);
        assert!(text.contains("unsafe path"), "{text}");
    }
}

#[tokio::test]
async fn symlink_tricks_do_not_escape() {
    let outside = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let out = outside.path().as_os_str().as_encoded_bytes().to_vec();

    // 1. A symlink to outside, then a file "through" it: the link is no
    //    declared directory, so the manifest is refused.
    let (r, _) = fake_source(
        enc(&[
            hello(),
            begin(3),
            entry(0, Kind::Dir, b"root", b"", 0),
            entry(1, Kind::Symlink, b"root/link", &out, 0),
            entry(2, Kind::File, b"root/link/evil", b"", 4),
        ]),
        dst.path(),
    )
    .await;
    let e = r.unwrap_err();
    assert!(e.to_string().contains("before its directory"), "{e}");
    assert!(only_files(outside.path()).is_empty());

    // 2. The same name as a directory after the link: a duplicate.
    let (r, _) = fake_source(
        enc(&[
            hello(),
            begin(3),
            entry(0, Kind::Dir, b"root", b"", 0),
            entry(1, Kind::Symlink, b"root/link", &out, 0),
            entry(2, Kind::Dir, b"root/link", b"", 0),
        ]),
        dst.path(),
    )
    .await;
    assert!(r.unwrap_err().to_string().contains("twice"));

    // 3. A symlink already in DEST where the peer's directory goes: not
    //    followed; the directory and its contents fail, nothing escapes.
    let dst2 = tempfile::tempdir().unwrap();
    symlink(outside.path(), dst2.path().join("root")).unwrap();
    let s = tempfile::tempdir().unwrap();
    fs::create_dir(s.path().join("root")).unwrap();
    fs::write(s.path().join("root/evil"), b"pwned").unwrap();
    let (_, r) = run(
        vec![Source::Path(s.path().join("root"))],
        Dest::Path(dst2.path().to_owned()),
        &recursive(),
        &ReceiveOptions::default(),
    )
    .await;
    let r = r.unwrap();
    assert_eq!(r.failures.len(), 2, "{:?}", r.failures);
    assert!(
        r.failures[0].message.contains("symlink"),
        "{:?}",
        r.failures
    );
    assert!(only_files(outside.path()).is_empty());

    // 4. A symlink in DEST where a file goes is replaced, not written through.
    let dst3 = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, b"original").unwrap();
    symlink(&victim, dst3.path().join("evil")).unwrap();
    let (_, r) = run(
        vec![Source::Path(s.path().join("root/evil"))],
        Dest::Path(dst3.path().to_owned()),
        &SendOptions::default(),
        &ReceiveOptions::default(),
    )
    .await;
    assert_eq!(r.unwrap().files, 1);
    assert_eq!(fs::read(&victim).unwrap(), b"original");
    assert_eq!(fs::read(dst3.path().join("evil")).unwrap(), b"pwned");
    assert!(!fs::symlink_metadata(dst3.path().join("evil"))
        .unwrap()
        .file_type()
        .is_symlink());

    // 5. A planted `.vfer-part` symlink is refused, not followed.
    let dst4 = tempfile::tempdir().unwrap();
    symlink(&victim, dst4.path().join("evil.vfer-part")).unwrap();
    let (_, r) = run(
        vec![Source::Path(s.path().join("root/evil"))],
        Dest::Path(dst4.path().to_owned()),
        &SendOptions::default(),
        &ReceiveOptions::default(),
    )
    .await;
    let r = r.unwrap();
    assert_eq!(r.failures.len(), 1);
    assert_eq!(fs::read(&victim).unwrap(), b"original");
}

#[tokio::test]
async fn truncated_and_oversized_frames() {
    let dst = tempfile::tempdir().unwrap();
    // Cut in the middle of MANIFEST_BEGIN.
    let mut bytes = enc(&[hello(), begin(1)]);
    bytes.truncate(bytes.len() - 3);
    let (r, _) = fake_source(bytes, dst.path()).await;
    assert!(matches!(r.unwrap_err(), TransferError::TruncatedFrame));

    // A length field far beyond the maximum: refused before allocating.
    let mut bytes = enc(&[hello()]);
    bytes.extend_from_slice(&u32::MAX.to_be_bytes());
    bytes.push(0x21);
    let (r, _) = fake_source(bytes, dst.path()).await;
    let e = r.unwrap_err();
    assert!(e.to_string().contains("out of range"), "{e}");

    // A clean end of stream between frames, before END.
    let (r, _) = fake_source(
        enc(&[
            hello(),
            Msg::ManifestBegin {
                roots: 0,
                entries: 0,
                total_bytes: 0,
            },
            Msg::ManifestEnd { entries: 0 },
        ]),
        dst.path(),
    )
    .await;
    assert!(matches!(r.unwrap_err(), TransferError::PeerClosed));

    // More DATA than the file announced.
    let (r, _) = fake_source(
        enc(&[
            hello(),
            begin(1),
            entry(0, Kind::File, b"f", b"", 2),
            Msg::ManifestEnd { entries: 1 },
            Msg::FileBegin {
                index: 0,
                offset: 0,
                size: 2,
            },
            Msg::Data(b"abc"),
        ]),
        dst.path(),
    )
    .await;
    assert!(r.unwrap_err().to_string().contains("more data"));
    assert!(!dst.path().join("f").exists());

    // A wrong hash: never a complete-looking file.
    let (r, _) = fake_source(
        enc(&[
            hello(),
            begin(1),
            entry(0, Kind::File, b"g", b"", 3),
            Msg::ManifestEnd { entries: 1 },
            Msg::FileBegin {
                index: 0,
                offset: 0,
                size: 3,
            },
            Msg::Data(b"abc"),
            Msg::FileEnd {
                index: 0,
                hash: [0; 32],
            },
            Msg::End,
        ]),
        dst.path(),
    )
    .await;
    let r = r.unwrap();
    assert!(
        r.failures[0].message.contains("mismatch"),
        "{:?}",
        r.failures
    );
    assert!(!dst.path().join("g").exists());
    assert!(
        !dst.path().join("g.vfer-part").exists(),
        "a bad part is removed"
    );

    // With CHECK_XXH3 on both sides FILE_END carries XXH3-128 (16 bytes,
    // then 16 zero bytes): the right one is accepted, and the BLAKE3 of the
    // same bytes (what a confused or downgrading source might send) or a
    // wrong XXH3 is a mismatch that leaves no file.
    let xxh3 = {
        let mut h = [0u8; 32];
        h[..16].copy_from_slice(&twox_hash::XxHash3_128::oneshot(b"abc").to_be_bytes());
        h
    };
    let mut bad_xxh3 = xxh3;
    bad_xxh3[20] = 1; // the zero tail is part of the check
    for (name, hash, ok) in [
        ("x1", xxh3, true),
        ("x2", *blake3::hash(b"abc").as_bytes(), false),
        ("x3", bad_xxh3, false),
    ] {
        let (r, _) = fake_source(
            enc(&[
                Msg::Hello {
                    role: Role::Source,
                    flags: frame::FLAG_CHECK_XXH3,
                },
                begin(1),
                entry(0, Kind::File, name.as_bytes(), b"", 3),
                Msg::ManifestEnd { entries: 1 },
                Msg::FileBegin {
                    index: 0,
                    offset: 0,
                    size: 3,
                },
                Msg::Data(b"abc"),
                Msg::FileEnd { index: 0, hash },
                Msg::End,
            ]),
            dst.path(),
        )
        .await;
        let r = r.unwrap();
        assert_eq!(
            dst.path().join(name).exists(),
            ok,
            "{name}: {:?}",
            r.failures
        );
        if !ok {
            assert!(
                r.failures[0].message.contains("XXH3-128 mismatch"),
                "{:?}",
                r.failures
            );
        }
    }

    // Not a vfer peer at all.
    let (r, _) = fake_source(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(), dst.path()).await;
    assert!(r.is_err());
}

#[tokio::test]
async fn a_file_where_a_directory_is_needed() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    fs::create_dir(src.path().join("d")).unwrap();
    fs::write(src.path().join("d/x"), b"x").unwrap();
    fs::write(dst.path().join("d"), b"i am a file").unwrap();
    let (s, r) = run(
        vec![Source::Path(src.path().join("d"))],
        Dest::Path(dst.path().to_owned()),
        &recursive(),
        &ReceiveOptions::default(),
    )
    .await;
    let (s, r) = (s.unwrap(), r.unwrap());
    assert!(
        r.failures[0].message.contains("not a directory"),
        "{:?}",
        r.failures
    );
    assert_eq!(r.failures.len(), 2);
    assert_eq!(s.failures, r.failures);
    assert_eq!(fs::read(dst.path().join("d")).unwrap(), b"i am a file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shrinking_or_vanishing_source_fails_only_that_file() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        src.path().join("a"),
        src.path().join("b"),
        src.path().join("c"),
    );
    fs::write(&a, data(300_000, 1)).unwrap();
    // Larger than the sender's read-ahead (16 chunks of 256 KiB), so the
    // truncation lands before the reader has read it all.
    fs::write(&b, data(24 << 20, 2)).unwrap();
    fs::write(&c, data(1000, 3)).unwrap();
    let (b2, c2) = (b.clone(), c.clone());
    let in_b = Arc::new(AtomicBool::new(false));
    let opts = SendOptions {
        progress: Some(Arc::new(move |p: &Progress| match p {
            Progress::FileStarted { path, .. } => {
                if path == "a" {
                    let _ = fs::remove_file(&c2);
                }
                in_b.store(path == "b", Ordering::SeqCst);
            }
            Progress::Bytes { .. } if in_b.swap(false, Ordering::SeqCst) => {
                // After b's first chunk went out: truncate it under our feet.
                if let Ok(f) = fs::OpenOptions::new().write(true).open(&b2) {
                    let _ = f.set_len(1000);
                }
            }
            _ => {}
        })),
        ..Default::default()
    };
    let (s, r) = run(
        vec![Source::Path(a), Source::Path(b), Source::Path(c)],
        Dest::Path(dst.path().to_owned()),
        &opts,
        &ReceiveOptions::default(),
    )
    .await;
    let (s, r) = (s.unwrap(), r.unwrap());
    assert_eq!(r.files, 1, "{:?}", r.failures);
    assert_eq!(r.failures.len(), 2, "{:?}", r.failures);
    assert_eq!(s.failures, r.failures);
    let msgs: Vec<&str> = r.failures.iter().map(|f| f.message.as_str()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("shrank") && m.contains("/b")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("No such file") && m.contains("/c")),
        "{msgs:?}"
    );
    assert!(
        !dst.path().join("b").exists(),
        "a shrunk file is not renamed"
    );
    assert!(dst.path().join("b.vfer-part").exists(), "its part is kept");
}

#[tokio::test]
async fn disk_full_keeps_the_part_and_says_how_much_is_missing() {
    let mnt = tempfile::tempdir().unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "vfer-test"])
        .arg(mnt.path())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIPPED disk_full test: cannot mount a 1 MiB tmpfs (needs root)");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(mnt.path());
    let src = tempfile::tempdir().unwrap();
    let f = src.path().join("big");
    fs::write(&f, data(3 << 20, 4)).unwrap();
    let (s, r) = run(
        vec![Source::Path(f)],
        Dest::Path(mnt.path().to_owned()),
        &SendOptions::default(),
        &ReceiveOptions::default(),
    )
    .await;
    let e = r.unwrap_err();
    let TransferError::DiskFull {
        needed, available, ..
    } = &e
    else {
        panic!("expected DiskFull, got {e}");
    };
    assert!(*needed >= 2 << 20 && *needed <= 3 << 20, "{e}");
    assert!(*available < 1 << 20, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("big.vfer-part") && text.contains("re-run"),
        "{text}"
    );
    let se = s.unwrap_err();
    assert!(se.to_string().contains("disk full"), "{se}");
    assert!(
        mnt.path().join("big.vfer-part").exists(),
        "part kept for resume"
    );
    assert!(!mnt.path().join("big").exists());
}

/// Plays a fake sink that writes `bytes`, then closes; returns the source's result.
async fn fake_sink(bytes: Vec<u8>, src: &Path) -> Result<Summary, TransferError> {
    let (mut a, b) = tokio::io::duplex(1 << 20);
    let peer = async move {
        a.write_all(&bytes).await.unwrap();
        // Read a little, then die.
        let mut buf = [0u8; 64];
        let _ = a.read(&mut buf).await;
        drop(a);
    };
    let opts = SendOptions::default();
    let (r, ()) = tokio::join!(
        vfer::transfer::send(b, vec![Source::Path(src.to_owned())], &opts),
        peer
    );
    r
}

#[tokio::test]
async fn a_sink_that_dies_or_lies_ends_the_source_cleanly() {
    let src = tempfile::tempdir().unwrap();
    let f = src.path().join("f");
    fs::write(&f, data(2 << 20, 7)).unwrap();
    let sink_hello = Msg::Hello {
        role: Role::Sink,
        flags: 0,
    };
    // Dies right after HELLO.
    let e = fake_sink(enc(std::slice::from_ref(&sink_hello)), &f)
        .await
        .unwrap_err();
    assert!(
        matches!(e, TransferError::PeerClosed | TransferError::Stream(_)),
        "{e}"
    );
    // Asks for a file that does not exist.
    let e = fake_sink(
        enc(&[
            sink_hello.clone(),
            Msg::Want {
                index: 5,
                want: vfer::transfer::frame::Want::Full,
            },
        ]),
        &f,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("out of order"), "{e}");
    // Claims to be a source too.
    let e = fake_sink(
        enc(&[Msg::Hello {
            role: Role::Source,
            flags: 0,
        }]),
        &f,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("both ends are sources"), "{e}");
    // Reports an error.
    let e = fake_sink(
        enc(&[
            sink_hello,
            Msg::Error {
                message: "no thanks",
            },
        ]),
        &f,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, TransferError::Peer(m) if m == "no thanks"),
        "{e}"
    );
}

#[tokio::test]
async fn an_unwritable_directory_fails_only_its_files() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let top = src.path().join("t");
    fs::create_dir_all(top.join("locked")).unwrap();
    fs::write(top.join("locked/a"), b"a").unwrap();
    fs::write(top.join("ok"), b"ok").unwrap();
    fs::create_dir_all(dst.path().join("t/locked")).unwrap();
    // Root ignores permission bits; an immutable directory refuses even root.
    let locked = dst.path().join("t/locked");
    let ok = std::process::Command::new("chattr")
        .arg("+i")
        .arg(&locked)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIPPED unwritable-directory test: chattr +i is not available here");
        return;
    }
    let (s, r) = run(
        vec![Source::Path(top.clone())],
        Dest::Path(dst.path().to_owned()),
        &recursive(),
        &ReceiveOptions::default(),
    )
    .await;
    let _ = std::process::Command::new("chattr")
        .arg("-i")
        .arg(&locked)
        .status();
    let (s, r) = (s.unwrap(), r.unwrap());
    assert_eq!(r.files, 1, "{:?}", r.failures);
    assert_eq!(r.failures.len(), 1);
    assert_eq!(r.failures[0].path, "t/locked/a");
    assert!(
        r.failures[0].message.contains("not permitted"),
        "{:?}",
        r.failures
    );
    assert_eq!(s.failures, r.failures);
    assert_eq!(fs::read(dst.path().join("t/ok")).unwrap(), b"ok");
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn arb_path() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                Just(b"r".to_vec()),
                Just(b"r/a".to_vec()),
                Just(b"r/a/b".to_vec()),
                Just(b"..".to_vec()),
                Just(b"../x".to_vec()),
                Just(b"/tmp".to_vec()),
                Just(b"r/./a".to_vec()),
                Just(b"r//a".to_vec()),
                Just(b"r/a.vfer-part".to_vec()),
            ],
            1..2,
        )
        .prop_map(|v| v.concat())
    }

    fn arb_msgs() -> impl Strategy<Value = Vec<(u8, Vec<u8>, u64, u64)>> {
        proptest::collection::vec((0u8..8, arb_path(), 0u64..5, 0u64..70_000), 0..12)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Random, mostly invalid sessions: the sink never panics, never
        /// writes outside DEST, and never leaves a file whose content
        /// was not verified.
        #[test]
        fn random_sessions_never_escape(msgs in arb_msgs(), roots in 0u32..3) {
            let outer = tempfile::tempdir().unwrap();
            let dst = outer.path().join("dst");
            fs::create_dir(&dst).unwrap();
            let data = vec![7u8; 70_000];
            let mut frames = Vec::new();
            let hash: [u8; 32] = *blake3::hash(b"").as_bytes();
            frame::encode(&hello(), &mut frames);
            frame::encode(&Msg::ManifestBegin { roots, entries: msgs.len() as u64, total_bytes: 0 }, &mut frames);
            for (i, (kind, path, index, n)) in msgs.iter().enumerate() {
                let m = match kind {
                    0 => entry(i as u64, Kind::File, path, b"", *n),
                    1 => entry(i as u64, Kind::Dir, path, b"", 0),
                    2 => entry(i as u64, Kind::Symlink, path, b"/etc", 0),
                    3 => Msg::FileBegin { index: *index, offset: 0, size: *n },
                    4 => Msg::Data(&data[..(*n as usize).clamp(1, 70_000)]),
                    5 => Msg::FileEnd { index: *index, hash },
                    6 => Msg::ManifestEnd { entries: *index },
                    _ => Msg::End,
                };
                frame::encode(&m, &mut frames);
            }
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let _ = rt.block_on(fake_source(frames, &dst));
            let outside: Vec<_> = fs::read_dir(outer.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
            prop_assert_eq!(outside, vec![std::ffi::OsString::from("dst")]);
            // Any complete regular file holds verified bytes: here only the
            // empty file can verify (FILE_END carries the empty hash).
            for p in walk_files(&dst) {
                if !p.to_string_lossy().ends_with(".vfer-part") {
                    prop_assert_eq!(fs::metadata(&p).unwrap().len(), 0, "{}", p.display());
                }
            }
        }
    }

    fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let ft = e.file_type().unwrap();
                if ft.is_dir() {
                    stack.push(e.path());
                } else if ft.is_file() {
                    out.push(e.path());
                }
            }
        }
        out
    }
}

/// A local user hard-links a file the sink can write (outside DEST) as
/// `NAME.vfer-part`: the sink must not write through it, whether the link
/// looks resumable (shorter than the file) or not.
#[tokio::test]
async fn a_hard_linked_part_is_not_written_through() {
    for victim_len in [4usize, 100] {
        let t = tempfile::tempdir().unwrap();
        let (src, dst, outside) = (
            t.path().join("src"),
            t.path().join("dst"),
            t.path().join("outside"),
        );
        for d in [&src, &dst, &outside] {
            fs::create_dir(d).unwrap();
        }
        let victim = outside.join("victim");
        let original = vec![b'v'; victim_len];
        fs::write(&victim, &original).unwrap();
        fs::hard_link(&victim, dst.join("f.vfer-part")).unwrap();
        fs::write(src.join("f"), vec![b'A'; 50]).unwrap();
        let (s, r) = run(
            vec![Source::Path(src.join("f"))],
            Dest::Path(dst.clone()),
            &SendOptions::default(),
            &ReceiveOptions::default(),
        )
        .await;
        assert_eq!(fs::read(&victim).unwrap(), original, "written through");
        assert!(!dst.join("f").exists());
        let r = r.unwrap();
        assert_eq!(r.failures.len(), 1, "{r:?}");
        assert!(r.failures[0].message.contains("hard link"), "{r:?}");
        assert_eq!(s.unwrap().failures.len(), 1);
    }
}

/// A manifest announcing more entries than one session takes is refused at
/// once (the sink keeps every path: issue 13 §4).
#[tokio::test]
async fn a_manifest_announcing_too_many_entries_is_refused() {
    let dst = tempfile::tempdir().unwrap();
    let (r, back) = fake_source(enc(&[hello(), begin(frame::MAX_ENTRIES + 1)]), dst.path()).await;
    let e = r.unwrap_err();
    assert!(matches!(e, TransferError::Protocol(_)), "{e}");
    assert!(e.to_string().contains("copy the tree in parts"), "{e}");
    assert!(String::from_utf8_lossy(&back).contains("copy the tree in parts"));
}

/// A manifest whose paths add up to more than the limit is refused when
/// they do, with the sink's memory bounded (entries are generated as they
/// are sent, 4 KiB paths, within the entry count limit).
#[tokio::test]
async fn a_manifest_with_too_many_path_bytes_is_refused() {
    let dst = tempfile::tempdir().unwrap();
    // A chain of directories with 250-byte names, ~3.8 KB deep.
    let mut dirs = vec!["a".to_string()];
    for i in 0..15 {
        let up = dirs.last().unwrap().clone();
        dirs.push(format!(
            "{up}/{}",
            format!("{i}")
                .repeat(250)
                .chars()
                .take(250)
                .collect::<String>()
        ));
    }
    let deepest = dirs.last().unwrap().clone();
    let per_file = deepest.len() as u64 + 1 + 250;
    let files = frame::MAX_MANIFEST_PATH_BYTES / per_file + 2;
    let entries = dirs.len() as u64 + files;
    let (a, b) = tokio::io::duplex(1 << 20);
    let (mut ra, mut a) = tokio::io::split(a);
    // The sink's answers are read as they come (it may answer every entry).
    let reader = tokio::spawn(async move {
        let mut back = Vec::new();
        let _ = ra.read_to_end(&mut back).await;
        back
    });
    let peer = async move {
        let mut out = enc(&[hello(), begin(entries)]);
        for (i, d) in dirs.iter().enumerate() {
            frame::encode(&entry(i as u64, Kind::Dir, d.as_bytes(), b"", 0), &mut out);
        }
        let first = dirs.len() as u64;
        for f in 0..files {
            let path = format!("{deepest}/{f:0>250}");
            frame::encode(
                &entry(first + f, Kind::File, path.as_bytes(), b"", 1),
                &mut out,
            );
            if out.len() > 1 << 20 || f + 1 == files {
                if a.write_all(&out).await.is_err() {
                    break;
                }
                out.clear();
            }
        }
        let _ = a.shutdown().await;
    };
    let opts = ReceiveOptions::default();
    let (r, ()) = tokio::join!(receive(b, Dest::Path(dst.path().to_owned()), &opts), peer);
    let back = reader.await.unwrap();
    let e = r.unwrap_err();
    assert!(e.to_string().contains("MiB"), "{e}");
    assert!(String::from_utf8_lossy(&back).contains("copy the tree in parts"));
}

/// Memory of a sink holding a manifest at the entry limit (short paths):
/// `VFER_MANIFEST_ENTRIES=2097152 /usr/bin/time -v target/release/deps/transfer_hostile-*
/// --ignored manifest_memory` (peak RSS; docs/PROTOCOL.md §6.9).
#[tokio::test]
#[ignore]
async fn manifest_memory_at_the_entry_limit() {
    let files: u64 = std::env::var("VFER_MANIFEST_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(frame::MAX_ENTRIES)
        - 1;
    let dst = tempfile::tempdir().unwrap();
    let (a, b) = tokio::io::duplex(1 << 20);
    let (mut ra, mut a) = tokio::io::split(a);
    let reader = tokio::spawn(async move {
        let mut back = Vec::new();
        let _ = ra.read_to_end(&mut back).await;
        back.len()
    });
    let peer = async move {
        let mut out = enc(&[hello(), begin(files + 1)]);
        frame::encode(&entry(0, Kind::Dir, b"d", b"", 0), &mut out);
        for f in 0..files {
            let path = format!("d/{f:08}");
            frame::encode(&entry(f + 1, Kind::File, path.as_bytes(), b"", 1), &mut out);
            if out.len() > 1 << 20 || f + 1 == files {
                if a.write_all(&out).await.is_err() {
                    break;
                }
                out.clear();
            }
        }
        frame::encode(&Msg::ManifestEnd { entries: files + 1 }, &mut out);
        let _ = a.write_all(&out).await;
        // Hold the session open a moment with the whole manifest in memory.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let _ = a.shutdown().await;
    };
    let opts = ReceiveOptions::default();
    let (r, ()) = tokio::join!(receive(b, Dest::Path(dst.path().to_owned()), &opts), peer);
    assert!(r.is_err());
    assert!(reader.await.unwrap() > 0);
}
