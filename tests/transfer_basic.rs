//! Whole transfers between the source and sink roles over an in-memory
//! duplex stream: files, trees, symlinks, names, streams, scp's
//! destination rules, `-p`, and skipping identical files.

#[path = "transfer_util/mod.rs"]
mod util;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::sync::{Arc, Mutex};

use util::*;
use vfer::transfer::{Dest, Progress, ReceiveOptions, SendOptions, Source, TransferError};

#[tokio::test]
async fn single_file_into_a_directory_and_as_a_new_name() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let body = data(1_000_003, 1);
    fs::write(src.path().join("f.bin"), &body).unwrap();

    let (s, r) = run(
        vec![Source::Path(src.path().join("f.bin"))],
        Dest::Path(dst.path().to_owned()),
        &SendOptions::default(),
        &ReceiveOptions::default(),
    )
    .await;
    let (s, r) = (s.unwrap(), r.unwrap());
    assert_eq!(fs::read(dst.path().join("f.bin")).unwrap(), body);
    assert_eq!((s.files, r.files), (1, 1));
    assert_eq!((s.bytes, r.bytes), (body.len() as u64, body.len() as u64));
    assert!(s.is_complete() && r.is_complete());
    assert!(parts(dst.path()).is_empty());

    // A destination that does not exist is the new name.
    let (_, r) = run(
        vec![Source::Path(src.path().join("f.bin"))],
        Dest::Path(dst.path().join("renamed")),
        &SendOptions::default(),
        &ReceiveOptions::default(),
    )
    .await;
    r.unwrap();
    assert_eq!(fs::read(dst.path().join("renamed")).unwrap(), body);

    // An existing file is overwritten.
    fs::write(
        dst.path().join("old"),
        b"previous content, longer than nothing",
    )
    .unwrap();
    fs::write(src.path().join("empty"), b"").unwrap();
    let (_, r) = run(
        vec![Source::Path(src.path().join("empty"))],
        Dest::Path(dst.path().join("old")),
        &SendOptions::default(),
        &ReceiveOptions::default(),
    )
    .await;
    assert_eq!(r.unwrap().files, 1);
    assert_eq!(fs::read(dst.path().join("old")).unwrap(), b"");
}

#[tokio::test]
async fn many_files_with_odd_names() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let top = src.path().join("many");
    fs::create_dir(&top).unwrap();
    let mut srcs = Vec::new();
    for i in 0..300u64 {
        let name = match i % 4 {
            0 => format!("plain-{i}"),
            1 => format!("with space {i}.txt"),
            2 => format!("ünïcödé-日本-{i}"),
            _ => format!(".hidden {i} -x"),
        };
        fs::write(top.join(&name), data((i * 37 % 5000) as usize, i)).unwrap();
        if i < 5 {
            srcs.push(Source::Path(top.join(&name)));
        }
    }
    let (s, r) = run(
        vec![Source::Path(top.clone())],
        Dest::Path(dst.path().to_owned()),
        &recursive(),
        &ReceiveOptions::default(),
    )
    .await;
    let (s, r) = (s.unwrap(), r.unwrap());
    assert_eq!((s.files, s.dirs, r.files, r.dirs), (300, 1, 300, 1));
    assert_same_tree(&top, &dst.path().join("many"), false);

    // Several sources go into an existing directory...
    let into = dst.path().join("into");
    fs::create_dir(&into).unwrap();
    let (_, r) = run(
        srcs,
        Dest::Path(into.clone()),
        &SendOptions::default(),
        &ReceiveOptions::default(),
    )
    .await;
    assert_eq!(r.unwrap().files, 5);
    assert_eq!(fs::read_dir(&into).unwrap().count(), 5);
    // ...and are refused for a destination that is not one.
    let (s, r) = run(
        vec![
            Source::Path(top.join("plain-0")),
            Source::Path(top.join("plain-4")),
        ],
        Dest::Path(dst.path().join("nope")),
        &SendOptions::default(),
        &ReceiveOptions::default(),
    )
    .await;
    let e = r.unwrap_err();
    assert!(matches!(e, TransferError::Destination(_)), "{e}");
    assert!(e.to_string().contains("existing directory"), "{e}");
    assert!(matches!(s.unwrap_err(), TransferError::Peer(m) if m.contains("existing directory")));
    assert!(!dst.path().join("nope").exists());
}

fn build_tree(top: &std::path::Path) {
    fs::create_dir_all(top.join("a/b/c/d/e/f/g")).unwrap();
    fs::create_dir_all(top.join("empty/nested-empty")).unwrap();
    fs::create_dir(top.join("empty2")).unwrap();
    fs::write(top.join("a/b/c/d/e/f/g/deep.txt"), b"deep").unwrap();
    fs::write(top.join("a/zero"), b"").unwrap();
    fs::write(top.join("a/b/mid"), data(300_000, 9)).unwrap();
    symlink("b/mid", top.join("a/rel-link")).unwrap();
    symlink("/etc/passwd", top.join("a/abs-link")).unwrap();
    symlink("../../../../outside", top.join("a/escaping-link")).unwrap();
    symlink("does-not-exist", top.join("dangling")).unwrap();
    symlink("a/b", top.join("dir-link")).unwrap();
    fs::set_permissions(top.join("a/b/mid"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::set_permissions(top.join("empty2"), fs::Permissions::from_mode(0o700)).unwrap();
}

#[tokio::test]
async fn deep_tree_with_empty_dirs_and_symlinks_copied_as_links() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let top = src.path().join("tree");
    build_tree(&top);
    let (s, r) = run(
        vec![Source::Path(top.clone())],
        Dest::Path(dst.path().join("copy")),
        &recursive(),
        &ReceiveOptions::default(),
    )
    .await;
    let (s, r) = (s.unwrap(), r.unwrap());
    assert!(s.is_complete() && r.is_complete(), "{s:?} {r:?}");
    assert_eq!(r.symlinks, 5);
    assert_eq!(r.files, 3);
    assert_eq!(s.symlinks, 5);
    let copy = dst.path().join("copy");
    assert_same_tree(&top, &copy, false);
    // The links are links, with their targets untouched.
    assert!(fs::symlink_metadata(copy.join("dir-link"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read_link(copy.join("a/escaping-link")).unwrap(),
        std::path::Path::new("../../../../outside")
    );
}

#[tokio::test]
async fn directories_need_recursive() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    fs::create_dir(src.path().join("d")).unwrap();
    fs::write(src.path().join("f"), b"x").unwrap();
    let (s, r) = run(
        vec![
            Source::Path(src.path().join("d")),
            Source::Path(src.path().join("f")),
        ],
        Dest::Path(dst.path().to_owned()),
        &SendOptions::default(),
        &ReceiveOptions::default(),
    )
    .await;
    let (s, r) = (s.unwrap(), r.unwrap());
    assert_eq!(r.files, 1);
    assert_eq!(s.failures.len(), 1);
    assert!(s.failures[0].message.contains("-r"), "{:?}", s.failures);
    assert!(!dst.path().join("d").exists());
}

#[tokio::test]
async fn preserve_sets_mode_and_mtime_and_identical_files_are_skipped() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let top = src.path().join("tree");
    build_tree(&top);
    let opts = SendOptions {
        recursive: true,
        preserve: true,
        ..SendOptions::default()
    };
    let (_, r) = run(
        vec![Source::Path(top.clone())],
        Dest::Path(dst.path().to_owned()),
        &opts,
        &ReceiveOptions::default(),
    )
    .await;
    let first = r.unwrap();
    assert_same_tree(&top, &dst.path().join("tree"), true);

    // Same command again: nothing crosses, every file is checked by hash.
    let (s, r) = run(
        vec![Source::Path(top.clone())],
        Dest::Path(dst.path().to_owned()),
        &opts,
        &ReceiveOptions::default(),
    )
    .await;
    let (s, r) = (s.unwrap(), r.unwrap());
    assert_eq!(r.bytes, 0);
    assert_eq!(s.bytes, 0);
    assert_eq!(r.bytes_skipped, first.bytes);
    assert_eq!(r.files, 3);

    // A changed file with the same size and mtime is caught by its hash.
    let mid = top.join("a/b/mid");
    let md = fs::metadata(&mid).unwrap();
    let mut body = fs::read(&mid).unwrap();
    body[1000] ^= 0xff;
    fs::write(&mid, &body).unwrap();
    let t = std::time::SystemTime::UNIX_EPOCH
        + std::time::Duration::new(md.mtime() as u64, md.mtime_nsec() as u32);
    fs::File::options()
        .write(true)
        .open(&mid)
        .unwrap()
        .set_modified(t)
        .unwrap();
    let (_, r) = run(
        vec![Source::Path(top.clone())],
        Dest::Path(dst.path().to_owned()),
        &opts,
        &ReceiveOptions::default(),
    )
    .await;
    assert_eq!(r.unwrap().bytes, body.len() as u64);
    assert_eq!(fs::read(dst.path().join("tree/a/b/mid")).unwrap(), body);
}

#[tokio::test]
async fn without_preserve_the_mode_follows_the_umask() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    fs::write(src.path().join("x"), b"x").unwrap();
    fs::set_permissions(src.path().join("x"), fs::Permissions::from_mode(0o777)).unwrap();
    let (_, r) = run(
        vec![Source::Path(src.path().join("x"))],
        Dest::Path(dst.path().to_owned()),
        &SendOptions::default(),
        &ReceiveOptions::default(),
    )
    .await;
    r.unwrap();
    let mode = fs::metadata(dst.path().join("x")).unwrap().mode() & 0o777;
    let umask = {
        let s = fs::read_to_string("/proc/self/status").unwrap();
        let l = s.lines().find(|l| l.starts_with("Umask:")).unwrap();
        u32::from_str_radix(l[6..].trim(), 8).unwrap()
    };
    assert_eq!(mode, 0o777 & !umask);
}

#[tokio::test]
async fn streams_in_and_out() {
    let dst = tempfile::tempdir().unwrap();
    let body = data(700_000, 3);
    let reader = Box::new(std::io::Cursor::new(body.clone()));
    let (s, r) = run(
        vec![Source::Reader {
            name: "stdin".into(),
            reader,
        }],
        Dest::Path(dst.path().join("from-stream")),
        &SendOptions::default(),
        &ReceiveOptions::default(),
    )
    .await;
    assert_eq!(s.unwrap().files, 1);
    assert_eq!(r.unwrap().bytes, body.len() as u64);
    assert_eq!(fs::read(dst.path().join("from-stream")).unwrap(), body);

    // A stream cannot be named by a directory.
    let (_, r) = run(
        vec![Source::Reader {
            name: "stdin".into(),
            reader: Box::new(std::io::Cursor::new(b"abc".to_vec())),
        }],
        Dest::Path(dst.path().to_owned()),
        &SendOptions::default(),
        &ReceiveOptions::default(),
    )
    .await;
    let r = r.unwrap();
    assert_eq!(r.failures.len(), 1);
    assert!(r.failures[0].message.contains("file name"));

    // Files to a byte stream (DEST `-`), concatenated in order.
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("one"), b"first,").unwrap();
    fs::write(src.path().join("two"), b"second").unwrap();
    let out = SharedBuf::default();
    let (_, r) = run(
        vec![
            Source::Path(src.path().join("one")),
            Source::Path(src.path().join("two")),
        ],
        Dest::Writer(Box::new(out.clone())),
        &SendOptions::default(),
        &ReceiveOptions::default(),
    )
    .await;
    assert_eq!(r.unwrap().files, 2);
    assert_eq!(&*out.0.lock().unwrap(), b"first,second");
}

#[tokio::test]
async fn progress_reports_reach_the_total() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    fs::write(src.path().join("a"), data(600_000, 5)).unwrap();
    fs::write(src.path().join("b"), data(10, 6)).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let opts = ReceiveOptions {
        progress: Some(Arc::new(move |p: &Progress| {
            s2.lock().unwrap().push(p.clone())
        })),
        ..Default::default()
    };
    let (_, r) = run(
        vec![
            Source::Path(src.path().join("a")),
            Source::Path(src.path().join("b")),
        ],
        Dest::Path(dst.path().to_owned()),
        &SendOptions::default(),
        &opts,
    )
    .await;
    r.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen[0],
        Progress::Started {
            files: 2,
            total_bytes: 600_010
        }
    );
    let last_bytes = seen
        .iter()
        .filter_map(|p| match p {
            Progress::Bytes { job_done, .. } => Some(*job_done),
            _ => None,
        })
        .max();
    assert_eq!(last_bytes, Some(600_010));
    let done = seen
        .iter()
        .filter(|p| matches!(p, Progress::FileFinished { ok: true, .. }))
        .count();
    assert_eq!(done, 2);
}

#[tokio::test]
async fn summary_serializes_to_json() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    fs::write(src.path().join("a"), b"abc").unwrap();
    let (_, r) = run(
        vec![
            Source::Path(src.path().join("a")),
            Source::Path(src.path().join("missing")),
        ],
        Dest::Path(dst.path().to_owned()),
        &SendOptions::default(),
        &ReceiveOptions::default(),
    )
    .await;
    let j = serde_json::to_value(r.unwrap()).unwrap();
    assert_eq!(j["files"], 1);
    assert_eq!(j["bytes"], 3);
    assert!(j["seconds"].as_f64().unwrap() >= 0.0);
}
