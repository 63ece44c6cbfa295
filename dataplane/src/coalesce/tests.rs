//! Merging crafted segments: a super-frame cut by [`crate::gso`] merges back into itself; a
//! segment that is not the next of its flow, or not sound, never joins.

use proptest::prelude::*;

use super::*;
use crate::gso::Plan;
use crate::wire::{build_frame, Mac};

const A: Mac = Mac([0x02, 0, 0, 0, 0, 0xa]);
const B: Mac = Mac([0x02, 0, 0, 0, 0, 0xb]);
const SEQ: u32 = 0xffff_f000; // wraps within a run
const ID: u16 = 0xfffe;

/// A TCP super-frame (IPv4 without options, or IPv6) with `payload`, `opts` bytes of TCP
/// options (NOPs), ACK and `psh`, its checksum partial.
fn super_frame(v4: bool, payload: &[u8], opts: usize, psh: bool, vlan: Option<u16>) -> Vec<u8> {
    let mut tcp = vec![1u8; 20 + opts];
    tcp[0..4].copy_from_slice(&[0x30, 0x39, 0x00, 0x50]);
    tcp[4..8].copy_from_slice(&SEQ.to_be_bytes());
    tcp[8..12].copy_from_slice(&[0, 0, 0x12, 0x34]);
    tcp[12] = (((20 + opts) / 4) as u8) << 4;
    tcp[13] = tcp::ACK | if psh { tcp::PSH } else { 0 };
    tcp[14..16].copy_from_slice(&[0x01, 0xf5]);
    tcp[16..20].fill(0);
    tcp.extend_from_slice(payload);
    let mut l3 = Vec::new();
    if v4 {
        l3.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        l3[2..4].copy_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
        l3[4..6].copy_from_slice(&ID.to_be_bytes());
        l3.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 2]);
        let sum = csum::header_checksum(&l3);
        l3[10..12].copy_from_slice(&sum.to_be_bytes());
    } else {
        l3.extend_from_slice(&[0x60, 0, 0, 0]);
        l3.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        l3.extend_from_slice(&[6, 64]);
        l3.extend_from_slice(&[0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        l3.extend_from_slice(&[0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    }
    l3.extend_from_slice(&tcp);
    let mut f = build_frame(B, A, vlan, if v4 { 0x0800 } else { 0x86dd }, &l3);
    assert!(csum::make_partial(&mut f));
    f
}

/// `frame` cut into segments of `mss` payload bytes, as a sender without TSO sends them: with
/// complete checksums, or left partial if `partial`.
fn segments(frame: &[u8], mss: usize, partial: bool) -> Vec<Vec<u8>> {
    let hdr = Segment::parse(frame).expect("a mergeable frame").headers();
    let plan = Plan::new(frame, hdr + mss).expect("a plan");
    (0..plan.segments())
        .map(|k| {
            let mut out = vec![0u8; hdr + mss];
            let len = plan.write(frame, k, &mut out).expect("a segment");
            out.truncate(len);
            if !partial {
                csum::complete_partial(&mut out);
            }
            out
        })
        .collect()
}

/// Merges `segs` the way the worker does: one run from the first, each next one joined while it
/// follows. Returns the merged frame (checksum partial) and how many segments it holds.
fn merge(segs: &[Vec<u8>], partial: bool) -> (Vec<u8>, u32) {
    let first = Segment::parse(&segs[0]).expect("mergeable");
    assert!(sound(&segs[0], &first, partial));
    let mut run = Run::start(&segs[0], first);
    let mut merged = segs[0][..first.headers() + first.payload()].to_vec();
    for s in &segs[1..] {
        let Some(seg) = Segment::parse(s) else { break };
        if !sound(s, &seg, partial) || !run.join(&merged, s, &seg) {
            break;
        }
        merged.extend_from_slice(&s[seg.headers()..seg.headers() + seg.payload()]);
    }
    let end = run.finish(&mut merged).expect("finished");
    merged.truncate(end);
    assert!(csum::make_partial(&mut merged));
    (merged, run.count())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// What a sender without TSO cut from a super-frame merges back into that super-frame:
    /// IPv4 and IPv6, tagged or not, checksums complete or partial, PSH on the last segment.
    #[test]
    fn segments_merge_back_into_the_super_frame_they_were_cut_from(
        v4 in any::<bool>(),
        len in 1usize..20_000,
        mss in 500usize..1460,
        opts in (0usize..4).prop_map(|w| w * 4),
        psh in any::<bool>(),
        vlan in proptest::option::of(1u16..4095),
        partial in any::<bool>(),
    ) {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
        let whole = super_frame(v4, &payload, opts, psh, vlan);
        let segs = segments(&whole, mss, partial);
        let (merged, count) = merge(&segs, partial);
        prop_assert_eq!(count as usize, segs.len());
        prop_assert_eq!(merged, whole);
    }
}

#[test]
fn a_segment_that_is_not_the_next_of_the_flow_does_not_join() {
    let payload = vec![0x5a; 6000];
    let segs = segments(&super_frame(true, &payload, 12, false, None), 1448, false);
    let seg = |f: &[u8]| Segment::parse(f).expect("mergeable");
    let head = segs[0].clone();
    let fresh = || Run::start(&head, seg(&head));
    // The next one joins; one further on, or the first again, does not.
    assert!(fresh().join(&head, &segs[1], &seg(&segs[1])));
    assert!(!fresh().join(&head, &segs[2], &seg(&segs[2])));
    assert!(!fresh().join(&head, &head, &seg(&head)));
    // Any header that differs: a port, the acknowledgment, the window, an option (a
    // timestamp), the TTL, the destination MAC.
    let l4 = 14 + 20;
    for at in [l4 + 1, l4 + 11, l4 + 15, l4 + 21, 14 + 8, 5] {
        let mut other = segs[1].clone();
        other[at] ^= 1;
        csum::complete_partial(&mut other);
        assert!(!fresh().join(&head, &other, &seg(&other)), "byte {at}");
    }
    // An identification that is not the next, even the first's repeated with DF (the kernel
    // would number the segments it cuts anew).
    let mut other = segs[1].clone();
    other[14 + 5] ^= 0x10;
    assert!(!fresh().join(&head, &other, &seg(&other)));
    other[14 + 4..14 + 6].copy_from_slice(&ID.to_be_bytes());
    assert_eq!(other[14 + 6] & 0x40, 0x40, "DF");
    assert!(!fresh().join(&head, &other, &seg(&other)));
    // A short segment ends the run: nothing joins after it, not even the next of the flow.
    assert!(segs[4].len() < segs[3].len());
    let mut run = fresh();
    for s in &segs[1..5] {
        assert!(run.join(&head, s, &seg(s)));
    }
    assert_eq!(run.count(), 5);
    let mut after = segs[3].clone();
    after[l4 + 4..l4 + 8].copy_from_slice(&SEQ.wrapping_add(6000).to_be_bytes());
    after[14 + 4..14 + 6].copy_from_slice(&ID.wrapping_add(5).to_be_bytes());
    assert!(!run.join(&head, &after, &seg(&after)));
}

#[test]
fn only_plain_tcp_segments_with_payload_merge() {
    let f = super_frame(true, &[1; 100], 0, false, None);
    assert!(Segment::parse(&f).is_some());
    let l4 = 14 + 20;
    // SYN, FIN, RST, URG, CWR, and no ACK: never merged.
    for flags in [0x12, 0x11, 0x14, 0x30, 0x90, 0x00, 0x08] {
        let mut g = f.clone();
        g[l4 + 13] = flags;
        assert_eq!(Segment::parse(&g), None, "flags {flags:#x}");
    }
    // No payload (a pure ACK), an IPv4 fragment, IPv4 options, UDP, truncated.
    let ack = super_frame(true, &[], 0, false, None);
    assert_eq!(Segment::parse(&ack), None);
    let mut frag = f.clone();
    frag[14 + 6] = 0x20;
    assert_eq!(Segment::parse(&frag), None);
    let mut opts = f.clone();
    opts[14] = 0x46;
    assert_eq!(Segment::parse(&opts), None);
    let mut udp = f.clone();
    udp[14 + 9] = 17;
    assert_eq!(Segment::parse(&udp), None);
    assert_eq!(Segment::parse(&f[..f.len() - 1]), None);
    for n in 0..f.len() {
        let _ = Segment::parse(&f[..n]);
    }
}

#[test]
fn a_segment_whose_checksums_are_wrong_is_not_sound() {
    let segs = segments(&super_frame(true, &[7; 3000], 0, false, None), 1000, false);
    let seg = Segment::parse(&segs[1]).expect("mergeable");
    assert!(sound(&segs[1], &seg, false));
    // A payload byte changed: the TCP checksum is wrong (partial or not, as the worker found).
    let mut bad = segs[1].clone();
    *bad.last_mut().expect("payload") ^= 0x40;
    assert!(!sound(&bad, &seg, false));
    // The IPv4 header checksum wrong.
    let mut bad = segs[1].clone();
    bad[14 + 8] -= 1;
    assert!(!sound(&bad, &seg, false));
    assert!(!sound(&bad, &seg, true));
    // A partial checksum is the device's to finish: sound.
    let partial = segments(&super_frame(false, &[7; 3000], 0, false, None), 1000, true);
    let seg = Segment::parse(&partial[0]).expect("mergeable");
    assert!(sound(&partial[0], &seg, true));
}

#[test]
fn a_run_stops_short_of_an_ip_packet_over_64_kib() {
    let payload = vec![3u8; 70_000];
    // Built in two halves (one frame cannot say 70 000 bytes): each half cut in segments.
    let a = segments(
        &super_frame(true, &payload[..35_000], 0, false, None),
        1460,
        false,
    );
    let mut run = Run::start(&a[0], Segment::parse(&a[0]).expect("mergeable"));
    let mut joined = 1;
    let mut next = a[1].clone();
    // The same segment, its sequence and identification advanced, until the run refuses it.
    for k in 1..100u32 {
        let seg = Segment::parse(&next).expect("mergeable");
        if !run.join(&a[0], &next, &seg) {
            break;
        }
        joined += 1;
        let seq = SEQ.wrapping_add((k + 1) * 1460);
        next[34 + 4..34 + 8].copy_from_slice(&seq.to_be_bytes());
        let id = ID.wrapping_add(k as u16 + 1);
        next[14 + 4..14 + 6].copy_from_slice(&id.to_be_bytes());
    }
    assert_eq!(joined, (65_535 - 40) / 1460);
}
