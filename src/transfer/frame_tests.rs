//! Unit and property tests of the frame codec.

use super::*;
use proptest::prelude::*;

fn roundtrip(m: Msg<'_>) {
    let mut out = Vec::new();
    encode(&m, &mut out);
    let len = u32::from_be_bytes([out[0], out[1], out[2], out[3]]);
    assert_eq!(len as usize, out.len() - 4);
    check_len(len).unwrap();
    assert_eq!(decode(&out[4..]).unwrap(), m);
}

#[test]
fn every_message_roundtrips() {
    let h = [7u8; 32];
    for m in [
        Msg::Hello {
            role: Role::Sink,
            flags: FLAG_PRESERVE,
        },
        Msg::Hello {
            role: Role::Source,
            flags: FLAG_PRESERVE | FLAG_CHECK_XXH3,
        },
        Msg::ManifestBegin {
            roots: 2,
            entries: 9,
            total_bytes: 1 << 40,
        },
        Msg::Entry(WireEntry {
            index: 3,
            kind: Kind::Symlink,
            mode: 0o777,
            size: 0,
            mtime_sec: -5,
            mtime_nsec: 999_999_999,
            path: b"a/b c/\xc3\xa9",
            target: b"../x",
        }),
        Msg::ManifestEnd { entries: 9 },
        Msg::SourceFailed {
            path: "/data/*.gz",
            message: "No such file or directory",
        },
        Msg::Want {
            index: 1,
            want: Want::Full,
        },
        Msg::Want {
            index: 1,
            want: Want::Resume {
                offset: 77,
                hash: h,
            },
        },
        Msg::Want {
            index: 1,
            want: Want::Have { hash: h },
        },
        Msg::Want {
            index: 1,
            want: Want::Skip,
        },
        Msg::FileBegin {
            index: 1,
            offset: 5,
            size: 10,
        },
        Msg::Data(b"xyz"),
        Msg::FileEnd { index: 1, hash: h },
        Msg::FileSame { index: 4 },
        Msg::FileAbort {
            index: 4,
            message: "gone",
        },
        Msg::Result {
            index: 4,
            ok: false,
            message: "no space",
        },
        Msg::End,
        Msg::Done {
            ok: 1,
            failed: 2,
            bytes: 3,
        },
        Msg::Error { message: "bad" },
    ] {
        roundtrip(m);
    }
}

#[test]
fn lengths_are_checked() {
    assert_eq!(check_len(0), Err(FrameError::BadLength(0)));
    assert_eq!(
        check_len(MAX_FRAME_LEN + 1),
        Err(FrameError::BadLength(MAX_FRAME_LEN + 1))
    );
    assert!(check_len(u32::MAX).is_err());
    assert_eq!(check_len(MAX_FRAME_LEN), Ok(MAX_FRAME_LEN as usize));
    let mut out = Vec::new();
    encode(&Msg::Data(&vec![0; CHUNK]), &mut out);
    assert_eq!(out.len(), 4 + MAX_FRAME_LEN as usize);
    assert_eq!(&out[..5], &data_header(CHUNK));
}

#[test]
fn bad_fields_are_refused() {
    assert_eq!(decode(&[0x55]), Err(FrameError::UnknownType(0x55)));
    assert!(decode(&[ty::HELLO, b'X', b'F', b'T', b'1', 1, 0, 0]).is_err());
    assert!(decode(&[ty::HELLO, b'V', b'F', b'T', b'1', 2, 0, 0]).is_err());
    assert!(decode(&[ty::HELLO, b'V', b'F', b'T', b'1', 1, 0, 0x80]).is_err());
    assert!(decode(&[ty::END, 0]).is_err());
    assert!(decode(&[ty::DATA]).is_err());
    assert!(decode(&[ty::ERROR, 0xff, 0xfe]).is_err());
    // FILE_BEGIN with offset > size.
    let mut out = Vec::new();
    encode(
        &Msg::FileBegin {
            index: 0,
            offset: 11,
            size: 10,
        },
        &mut out,
    );
    assert!(decode(&out[4..]).is_err());
}

#[test]
fn long_text_is_clipped_at_a_char_boundary() {
    let s = "é".repeat(MAX_TEXT);
    let c = clip(&s);
    assert!(c.len() <= MAX_TEXT);
    assert!(c.len() >= MAX_TEXT - 1);
    roundtrip(Msg::Error { message: c });
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn entry_roundtrips(path in proptest::collection::vec(any::<u8>(), 0..300),
                        size in any::<u64>(), sec in any::<i64>(), nsec in 0u32..1_000_000_000,
                        mode in 0u32..0o7777, index in any::<u64>()) {
        roundtrip(Msg::Entry(WireEntry {
            index, kind: Kind::File, mode, size, mtime_sec: sec, mtime_nsec: nsec,
            path: &path, target: b"",
        }));
    }

    #[test]
    fn truncated_frames_fail_cleanly(cut in 0usize..60) {
        let mut out = Vec::new();
        encode(&Msg::Entry(WireEntry {
            index: 1, kind: Kind::Symlink, mode: 0o644, size: 0, mtime_sec: 1, mtime_nsec: 2,
            path: b"dir/name", target: b"t",
        }), &mut out);
        let body = &out[4..];
        if cut < body.len() {
            prop_assert!(decode(&body[..cut]).is_err());
        }
    }
}

#[test]
fn hello_rejects_flags_it_does_not_know() {
    for flags in [0x04u8, 0x80, 0xFF] {
        let mut out = Vec::new();
        encode(
            &Msg::Hello {
                role: Role::Sink,
                flags,
            },
            &mut out,
        );
        assert!(decode(&out[4..]).is_err(), "flags {flags:#x}");
    }
}
