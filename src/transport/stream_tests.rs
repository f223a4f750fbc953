//! Unit tests of `stream.rs`.

use super::*;

#[test]
fn send_retransmits_lost_bytes_first() {
    let mut s = SendBuffer::new(100);
    s.raise_limit(u64::MAX);
    assert_eq!(s.write(&[7u8; 150]), 100);
    let a = s.next_chunk(40).unwrap();
    assert_eq!((a.offset, a.len, a.fin), (0, 40, false));
    let b = s.next_chunk(40).unwrap();
    assert_eq!(b.offset, 40);
    s.on_lost(0..40, false);
    s.on_acked(40..80, false);
    let c = s.next_chunk(100).unwrap();
    assert_eq!((c.offset, c.len, c.retransmit), (0, 40, true));
    s.on_acked(0..40, false);
    assert_eq!(s.space(), 80);
    s.finish();
    let d = s.next_chunk(100).unwrap();
    assert_eq!((d.offset, d.len, d.fin), (80, 20, true));
    assert!(s.next_chunk(100).is_none());
    s.on_lost(80..100, true);
    let e = s.next_chunk(100).unwrap();
    assert_eq!((e.offset, e.len, e.fin), (80, 20, true));
    s.on_acked(80..100, true);
    assert!(s.is_fully_acked());
}

#[test]
fn a_smaller_window_never_takes_back_what_was_advertised() {
    let mut r = RecvBuffer::with_window(1 << 20, 256 << 10);
    assert_eq!(r.max_data(), 256 << 10);
    let advertised = r.max_data();
    r.insert(0, &[1u8; 1000], false).unwrap();
    let mut out = [0u8; 1000];
    assert_eq!(r.read(&mut out), 1000);
    // The daemon got busier: the window shrinks to 64 KiB.
    r.set_window(64 << 10);
    assert_eq!(r.max_data(), advertised, "granted stays granted");
    r.insert(advertised - 100, &[2u8; 100], false).unwrap();
    assert_eq!(
        r.insert(advertised, &[3u8; 1], false),
        Err(RecvError::FlowControl {
            end: advertised + 1,
            limit: advertised
        })
    );
    // Once the reads pass the old grant, the new window applies.
    let mut r = RecvBuffer::with_window(1 << 20, 256 << 10);
    r.set_window(64 << 10);
    let data = vec![7u8; 256 << 10];
    r.insert(0, &data, false).unwrap();
    let mut out = vec![0u8; 256 << 10];
    assert_eq!(r.read(&mut out), 256 << 10);
    assert_eq!(r.max_data(), (256 << 10) + (64 << 10));
    // And it grows again up to the configured size.
    r.set_window(4 << 20);
    assert_eq!(r.window(), 1 << 20);
}

#[test]
fn rings_shrink_to_a_smaller_share_keeping_live_bytes() {
    let mut s = SendBuffer::new(16 << 20);
    s.raise_limit(u64::MAX);
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 253) as u8).collect();
    assert_eq!(s.write(&data), 1 << 20);
    assert_eq!(s.allocated(), 1 << 20);
    while let Some(c) = s.next_chunk(60_000) {
        if c.offset + (c.len as u64) < (1 << 20) - 10_000 {
            s.on_acked(c.offset..c.offset + c.len as u64, false);
        }
    }
    s.shrink_to(64 << 10);
    assert!(s.allocated() <= 64 << 10, "{}", s.allocated());
    let live = s.written() - s.unconfirmed();
    let mut out = vec![0u8; s.unconfirmed() as usize];
    s.read(live, &mut out);
    assert_eq!(out, data[live as usize..]);
    // Receive side: unread bytes survive the shrink.
    let mut r = RecvBuffer::new(16 << 20);
    r.insert(0, &data, false).unwrap();
    let mut sink = vec![0u8; (1 << 20) - 5000];
    assert_eq!(r.read(&mut sink), sink.len());
    r.set_window(64 << 10);
    r.shrink_to_window();
    assert!(r.allocated() <= 64 << 10, "{}", r.allocated());
    let mut rest = vec![0u8; 5000];
    assert_eq!(r.read(&mut rest), 5000);
    assert_eq!(rest, data[(1 << 20) - 5000..]);
}

#[test]
fn a_send_buffer_share_bounds_its_space() {
    let mut s = SendBuffer::new(1 << 20);
    assert_eq!(s.space_below(64 << 10), 64 << 10);
    assert_eq!(s.write(&vec![0u8; 100 << 10]), 100 << 10);
    assert_eq!(s.space_below(64 << 10), 0, "over the share: no room");
    assert_eq!(s.space_below(usize::MAX), s.space());
    assert_eq!(s.space(), (1 << 20) - (100 << 10));
}

#[test]
fn tail_retransmissions_go_twice_unless_acked() {
    let mut s = SendBuffer::new(100);
    s.raise_limit(u64::MAX);
    s.write(&[7u8; 100]);
    // Before the tail: a retransmission goes once.
    assert_eq!(s.next_chunk(40).unwrap().offset, 0);
    s.on_lost(0..40, false);
    assert_eq!(s.next_chunk(40).unwrap().offset, 0);
    s.finish();
    let last = s.next_chunk(100).unwrap();
    assert_eq!((last.offset, last.len, last.fin), (40, 60, true));
    assert!(s.next_chunk(100).is_none());
    // At the tail: lost bytes first, then each once more.
    s.on_lost(0..20, false);
    s.on_lost(70..100, true);
    let firsts: Vec<_> = (0..2)
        .map(|_| s.next_chunk(100).unwrap())
        .map(|c| (c.offset, c.len, c.fin, c.retransmit))
        .collect();
    assert_eq!(firsts, [(0, 20, false, true), (70, 30, true, true)]);
    // 0..20 is acknowledged meanwhile: only 70..100 goes again.
    s.on_acked(0..20, false);
    assert!(s.has_pending());
    let again = s.next_chunk(100).unwrap();
    assert_eq!((again.offset, again.len, again.fin), (70, 30, true));
    assert!(s.next_chunk(100).is_none());
    assert!(!s.has_pending());
    s.on_acked(20..100, true);
    assert!(s.is_fully_acked());
}

#[test]
fn flow_control_limit_respected() {
    let mut s = SendBuffer::new(100);
    s.write(&[1u8; 100]);
    s.raise_limit(30);
    assert_eq!(s.next_chunk(100).unwrap().len, 30);
    assert!(s.next_chunk(100).is_none());
    s.raise_limit(20);
    assert!(s.next_chunk(100).is_none(), "limits never go down");
    s.raise_limit(50);
    assert_eq!(s.next_chunk(100).unwrap().len, 20);
}

#[test]
fn tiny_frames_with_gaps_are_bounded() {
    let mut r = RecvBuffer::new(16 << 20);
    let max = r.max_pieces();
    assert_eq!(max, 16_384);
    let mut i = 0u64;
    let e = loop {
        match r.insert(1 + 2 * i, b"x", false) {
            Ok(_) => i += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(e, RecvError::TooFragmented(max));
    assert_eq!(i as usize, max);
    // Packet-sized frames with every other one lost stay well inside.
    let mut r = RecvBuffer::new(16 << 20);
    for k in 0..(16 << 20) / 2400u64 {
        r.insert(k * 2400 + 1200, &[0u8; 1200], false).unwrap();
    }
}

#[test]
fn rings_grow_with_live_bytes_and_are_freed_when_idle() {
    let mut s = SendBuffer::new(16 << 20);
    s.raise_limit(u64::MAX);
    assert_eq!(s.allocated(), 0);
    let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    assert_eq!(s.write(&data[..1000]), 1000);
    assert_eq!(s.allocated(), RING_MIN);
    // Acknowledged bytes make room: a steady flow stays small.
    for k in 0..100u64 {
        let c = s.next_chunk(1000).unwrap();
        s.on_acked(c.offset..c.offset + c.len as u64, false);
        s.write(&data[(k as usize % 100) * 1000..][..1000]);
    }
    assert_eq!(s.allocated(), RING_MIN);
    // Unacknowledged bytes grow it, keeping what was written.
    s.write(&data);
    assert_eq!(s.allocated(), 256 * 1024);
    let mut out = vec![0u8; 200_000];
    s.read(s.written() - 200_000, &mut out);
    assert_eq!(out, data);
    s.trim();
    assert_eq!(s.allocated(), 256 * 1024, "live bytes are kept");
    while let Some(c) = s.next_chunk(60_000) {
        s.on_acked(c.offset..c.offset + c.len as u64, false);
    }
    s.trim();
    assert_eq!(s.allocated(), 0);

    let mut r = RecvBuffer::new(16 << 20);
    assert_eq!(
        r.max_data(),
        16 << 20,
        "the window does not follow the allocation"
    );
    r.insert(100_000, &data[100_000..], false).unwrap();
    r.insert(0, &data[..50_000], false).unwrap();
    r.insert(50_000, &data[50_000..100_000], false).unwrap();
    let mut out = vec![0u8; 200_000];
    assert_eq!(r.read(&mut out), 200_000);
    assert_eq!(out, data);
    r.trim();
    assert_eq!(r.allocated(), 0);
    // Growing while out-of-order bytes wait keeps them.
    r.insert(200_000 + RING_MIN as u64, &data[..1000], false)
        .unwrap();
    r.insert(200_000 + 3 * RING_MIN as u64, &data[1000..2000], false)
        .unwrap();
    r.insert(200_000, &[7u8; RING_MIN], false).unwrap();
    r.trim();
    assert!(r.allocated() >= 4 * RING_MIN);
    let mut out = vec![0u8; RING_MIN + 1000];
    assert_eq!(r.read(&mut out), RING_MIN + 1000);
    assert_eq!(&out[RING_MIN..], &data[..1000]);
}

#[test]
fn recv_reassembles_and_wraps() {
    let mut r = RecvBuffer::new(8);
    assert_eq!(r.insert(4, b"efgh", false), Ok(4));
    assert_eq!(r.readable(), 0);
    assert_eq!(r.insert(0, b"abcd", false), Ok(4));
    let past = Err(RecvError::FlowControl { end: 9, limit: 8 });
    assert_eq!(r.insert(8, b"x", false), past);
    let mut out = [0u8; 6];
    assert_eq!(r.read(&mut out), 6);
    assert_eq!(&out, b"abcdef");
    assert_eq!(r.insert(8, b"x", false), past, "room, but not advertised");
    r.set_advertised(r.max_data());
    assert_eq!(r.insert(8, b"ijkl", true), Ok(4));
    assert_eq!(r.insert(8, b"ijklm", false), Err(RecvError::BeyondFin));
    let mut out = [0u8; 8];
    assert_eq!(r.read(&mut out), 6);
    assert_eq!(&out[..6], b"ghijkl");
    assert!(r.is_finished());
}
