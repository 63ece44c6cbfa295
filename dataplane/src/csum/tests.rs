//! The partial-versus-corrupt decision on crafted frames, against a byte-at-a-time reference.

use proptest::prelude::*;

use super::*;
use crate::wire::{build_frame, Mac};

const A: Mac = Mac([0x02, 0, 0, 0, 0, 0xa]);
const B: Mac = Mac([0x02, 0, 0, 0, 0, 0xb]);
const SRC4: [u8; 4] = [198, 18, 0, 1];
const DST4: [u8; 4] = [198, 18, 0, 2];
const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// RFC 1071, one byte pair at a time: the reference the fast path is checked against.
fn reference(words: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in words {
        for pair in part.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).copied().map_or(0, u32::from);
            sum += hi | lo;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ip {
    V4,
    V6,
    /// IPv6 with a hop-by-hop options header before the transport header.
    V6Ext,
}

/// A transport segment (header + payload) with a zero checksum field.
fn segment_bytes(proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = if proto == TCP {
        let mut h = vec![0u8; 20];
        h[0..4].copy_from_slice(&[0x30, 0x39, 0x00, 0x50]); // ports 12345 -> 80
        h[4..8].copy_from_slice(&7u32.to_be_bytes()); // sequence
        h[12] = 5 << 4; // data offset
        h[13] = 0x18; // PSH, ACK
        h[14..16].copy_from_slice(&64240u16.to_be_bytes());
        h
    } else {
        let mut h = vec![0u8; 8];
        h[0..4].copy_from_slice(&[0x30, 0x39, 0x14, 0xe9]);
        let len = (8 + payload.len()) as u16;
        h[4..6].copy_from_slice(&len.to_be_bytes());
        h
    };
    s.extend_from_slice(payload);
    s
}

/// The pseudo-header words of a segment of `len` bytes.
fn pseudo(ip: Ip, proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    match ip {
        Ip::V4 => {
            p.extend_from_slice(&SRC4);
            p.extend_from_slice(&DST4);
            p.extend_from_slice(&[0, proto]);
            p.extend_from_slice(&(len as u16).to_be_bytes());
        }
        Ip::V6 | Ip::V6Ext => {
            p.extend_from_slice(&SRC6);
            p.extend_from_slice(&DST6);
            p.extend_from_slice(&(len as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, proto]);
        }
    }
    p
}

/// A frame carrying `seg` over `ip`, with `vlan` if given, and `pad` bytes of Ethernet padding.
fn frame(ip: Ip, proto: u8, seg: &[u8], vlan: Option<u16>, pad: usize) -> Vec<u8> {
    let mut l3 = Vec::new();
    match ip {
        Ip::V4 => {
            l3.extend_from_slice(&[0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
            l3[2..4].copy_from_slice(&((20 + seg.len()) as u16).to_be_bytes());
            l3.extend_from_slice(&SRC4);
            l3.extend_from_slice(&DST4);
        }
        Ip::V6 | Ip::V6Ext => {
            let ext = if ip == Ip::V6Ext { 8 } else { 0 };
            let next = if ip == Ip::V6Ext { 0 } else { proto };
            l3.extend_from_slice(&[0x60, 0, 0, 0]);
            l3.extend_from_slice(&((ext + seg.len()) as u16).to_be_bytes());
            l3.extend_from_slice(&[next, 64]);
            l3.extend_from_slice(&SRC6);
            l3.extend_from_slice(&DST6);
            if ip == Ip::V6Ext {
                // Hop-by-hop: next header, length 0 (8 bytes), PadN of 4.
                l3.extend_from_slice(&[proto, 0, 1, 4, 0, 0, 0, 0]);
            }
        }
    }
    l3.extend_from_slice(seg);
    l3.resize(l3.len() + pad, 0);
    let ethertype = if ip == Ip::V4 {
        ETHERTYPE_IPV4
    } else {
        ETHERTYPE_IPV6
    };
    build_frame(B, A, vlan, ethertype, &l3)
}

fn field_offset(proto: u8) -> usize {
    if proto == TCP {
        TCP_CSUM_OFFSET
    } else {
        UDP_CSUM_OFFSET
    }
}

/// The segment with its checksum field set: the pseudo-header sum (`partial`) or the full checksum.
fn with_checksum(ip: Ip, proto: u8, payload: &[u8], partial: bool) -> Vec<u8> {
    let mut seg = segment_bytes(proto, payload);
    let ph = pseudo(ip, proto, seg.len());
    let value = if partial {
        reference(&[&ph])
    } else {
        let c = !reference(&[&ph, &seg]);
        if c == 0 && proto == UDP {
            0xffff
        } else {
            c
        }
    };
    let f = field_offset(proto);
    seg[f..f + 2].copy_from_slice(&value.to_be_bytes());
    seg
}

/// Where the checksum field sits in a frame built by [`frame`].
fn field_in_frame(ip: Ip, proto: u8, vlan: bool) -> usize {
    let l3 = 14 + if vlan { 4 } else { 0 };
    let l4 = match ip {
        Ip::V4 => 20,
        Ip::V6 => 40,
        Ip::V6Ext => 48,
    };
    l3 + l4 + field_offset(proto)
}

const CASES: [(Ip, u8); 6] = [
    (Ip::V4, TCP),
    (Ip::V4, UDP),
    (Ip::V6, TCP),
    (Ip::V6, UDP),
    (Ip::V6Ext, TCP),
    (Ip::V6Ext, UDP),
];

#[test]
fn partial_checksums_are_completed_to_what_the_device_would_write() {
    for (ip, proto) in CASES {
        for vlan in [None, Some(42)] {
            for len in [0usize, 1, 7, 100, 1401] {
                let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut f = frame(
                    ip,
                    proto,
                    &with_checksum(ip, proto, &payload, true),
                    vlan,
                    0,
                );
                let full = frame(
                    ip,
                    proto,
                    &with_checksum(ip, proto, &payload, false),
                    vlan,
                    0,
                );
                assert_eq!(verify(&f), Some(false), "{ip:?} {proto} {len}");
                assert_eq!(complete_partial(&mut f), Checksum::Completed);
                assert_eq!(f, full, "{ip:?} proto {proto} vlan {vlan:?} len {len}");
                assert_eq!(verify(&f), Some(true));
                // Done once, nothing more to do.
                assert_eq!(complete_partial(&mut f), Checksum::Untouched);
                assert_eq!(f, full);
            }
        }
    }
}

#[test]
fn complete_and_corrupt_checksums_are_left_untouched() {
    for (ip, proto) in CASES {
        let payload = b"a tenant's web page, or a corrupted copy of it".to_vec();
        let full = frame(
            ip,
            proto,
            &with_checksum(ip, proto, &payload, false),
            None,
            0,
        );
        let mut f = full.clone();
        assert_eq!(complete_partial(&mut f), Checksum::Untouched);
        assert_eq!(f, full);
        // A bit flipped on the way: the receiver must see the wrong checksum and drop it.
        let mut bad = full.clone();
        *bad.last_mut().unwrap() ^= 0x10;
        let before = bad.clone();
        assert_eq!(complete_partial(&mut bad), Checksum::Untouched);
        assert_eq!(bad, before);
        assert_eq!(verify(&bad), Some(false));
        // A partial checksum whose addresses changed in flight no longer matches its headers.
        let mut moved = frame(
            ip,
            proto,
            &with_checksum(ip, proto, &payload, true),
            None,
            0,
        );
        let dst = if ip == Ip::V4 { 14 + 19 } else { 14 + 39 };
        moved[dst] ^= 1;
        let before = moved.clone();
        assert_eq!(complete_partial(&mut moved), Checksum::Untouched);
        assert_eq!(moved, before);
    }
}

#[test]
fn udp_without_a_checksum_stays_without() {
    for ip in [Ip::V4, Ip::V6] {
        let seg = segment_bytes(UDP, b"no checksum");
        let mut f = frame(ip, UDP, &seg, None, 0);
        let before = f.clone();
        assert_eq!(complete_partial(&mut f), Checksum::Untouched);
        assert_eq!(f, before);
    }
}

#[test]
fn a_udp_checksum_computed_as_zero_is_sent_as_all_ones() {
    // Choose the last payload word so that the full checksum comes out as zero.
    let mut payload = vec![0x5au8; 20];
    payload[18..20].copy_from_slice(&[0, 0]);
    let zero_word = with_checksum(Ip::V4, UDP, &payload, false);
    let c = u16::from_be_bytes([zero_word[6], zero_word[7]]);
    payload[18..20].copy_from_slice(&c.to_be_bytes());
    let mut f = frame(
        Ip::V4,
        UDP,
        &with_checksum(Ip::V4, UDP, &payload, true),
        None,
        0,
    );
    assert_eq!(complete_partial(&mut f), Checksum::Completed);
    let at = field_in_frame(Ip::V4, UDP, false);
    assert_eq!(&f[at..at + 2], &[0xff, 0xff]);
    assert_eq!(verify(&f), Some(true));
}

#[test]
fn a_full_checksum_equal_to_the_pseudo_header_sum_is_rewritten_unchanged() {
    // Find the payload word that makes the full checksum equal the pseudo-header sum.
    let mut payload = vec![0x11u8; 30];
    let target = with_checksum(Ip::V4, TCP, &payload, true);
    let partial = u16::from_be_bytes([target[16], target[17]]);
    let found = (0..=u16::MAX).find(|&x| {
        payload[28..30].copy_from_slice(&x.to_be_bytes());
        let full = with_checksum(Ip::V4, TCP, &payload, false);
        u16::from_be_bytes([full[16], full[17]]) == partial
    });
    assert!(found.is_some());
    let full = frame(
        Ip::V4,
        TCP,
        &with_checksum(Ip::V4, TCP, &payload, false),
        None,
        0,
    );
    let mut f = full.clone();
    assert_eq!(complete_partial(&mut f), Checksum::Completed);
    assert_eq!(f, full);
}

#[test]
fn pending_says_where_a_device_finishes_the_checksum() {
    for (ip, proto) in CASES {
        for vlan in [None, Some(42)] {
            for len in [0usize, 1, 100, 1401] {
                let payload: Vec<u8> = (0..len).map(|i| (i * 5 + 1) as u8).collect();
                let partial = with_checksum(ip, proto, &payload, true);
                let full = frame(
                    ip,
                    proto,
                    &with_checksum(ip, proto, &payload, false),
                    vlan,
                    0,
                );
                let mut f = frame(ip, proto, &partial, vlan, 0);
                let Some(Pending::Partial(p)) = pending(&f) else {
                    panic!("{ip:?} {proto} {vlan:?} {len}: partial");
                };
                assert_eq!(p.start + p.field, field_in_frame(ip, proto, vlan.is_some()));
                assert_eq!((p.field, p.len), (field_offset(proto), partial.len()));
                assert!(p.ends(f.len()));
                let mut by_switch = f.clone();
                finish(&mut by_switch, Pending::Partial(p));
                device_finish(&mut f, p.start, p.field);
                assert_eq!(
                    f, full,
                    "{ip:?} {proto} {vlan:?} {len}: as a device finishes it"
                );
                assert_eq!(
                    by_switch, full,
                    "{ip:?} {proto} {vlan:?} {len}: as the switch does"
                );
                assert_eq!(pending(&full), None, "a complete checksum needs nothing");
                // Padding after the segment: a device would sum it too.
                let padded = frame(ip, proto, &partial, vlan, 6);
                let Some(Pending::Partial(p)) = pending(&padded) else {
                    panic!("padded: partial");
                };
                assert!(!p.ends(padded.len()));
            }
        }
    }
}

#[test]
fn ethernet_padding_is_not_summed() {
    let payload = b"short".to_vec();
    let mut f = frame(
        Ip::V4,
        TCP,
        &with_checksum(Ip::V4, TCP, &payload, true),
        None,
        6,
    );
    *f.last_mut().unwrap() = 0xee;
    assert_eq!(complete_partial(&mut f), Checksum::Completed);
    assert_eq!(verify(&f), Some(true));
    assert_eq!(*f.last().unwrap(), 0xee);
}

#[test]
fn what_cannot_be_a_partial_checksum_is_not_applicable() {
    let seg = with_checksum(Ip::V4, TCP, b"payload", true);
    let good = frame(Ip::V4, TCP, &seg, None, 0);
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut frag = good.clone();
    frag[14 + 6] = 0x20; // more fragments
    cases.push(("first fragment", frag));
    let mut later = good.clone();
    later[14 + 7] = 0x10; // offset 16
    later[14 + 6] = 0;
    cases.push(("later fragment", later));
    let mut long = good.clone();
    long[14 + 3] = long[14 + 3].wrapping_add(1); // IP length beyond the frame
    cases.push(("IP length beyond the frame", long));
    let mut icmp = good.clone();
    icmp[14 + 9] = 1;
    cases.push(("ICMP", icmp));
    let mut short_ihl = good.clone();
    short_ihl[14] = 0x44;
    cases.push(("IHL below 5", short_ihl));
    cases.push(("cut in the TCP header", good[..14 + 20 + 10].to_vec()));
    cases.push(("no IP header", good[..14 + 10].to_vec()));
    cases.push(("not IP", build_frame(B, A, None, 0x88b5, &good[14..])));
    let udp = frame(
        Ip::V4,
        UDP,
        &with_checksum(Ip::V4, UDP, b"payload", true),
        None,
        0,
    );
    let mut udp_len = udp.clone();
    udp_len[14 + 20 + 5] += 1; // UDP length disagrees with IP's
    cases.push(("UDP length mismatch", udp_len));
    let v6 = frame(
        Ip::V6,
        TCP,
        &with_checksum(Ip::V6, TCP, b"payload", true),
        None,
        0,
    );
    let mut routing = v6.clone();
    routing[14 + 6] = 43;
    cases.push(("IPv6 routing header", routing));
    let mut jumbo = v6.clone();
    jumbo[14 + 4] = 0;
    jumbo[14 + 5] = 0;
    cases.push(("IPv6 jumbogram", jumbo));
    for (what, mut f) in cases {
        let before = f.clone();
        assert_eq!(complete_partial(&mut f), Checksum::NotApplicable, "{what}");
        assert_eq!(f, before, "{what}");
    }
}

proptest! {
    #[test]
    fn any_partial_frame_completes_to_a_valid_one(
        case in 0usize..CASES.len(),
        payload in proptest::collection::vec(any::<u8>(), 0..1500),
        vlan in proptest::option::of(1u16..4095),
    ) {
        let (ip, proto) = CASES[case];
        let mut f = frame(ip, proto, &with_checksum(ip, proto, &payload, true), vlan, 0);
        prop_assert_eq!(complete_partial(&mut f), Checksum::Completed);
        prop_assert_eq!(verify(&f), Some(true));
        let full = frame(ip, proto, &with_checksum(ip, proto, &payload, false), vlan, 0);
        prop_assert_eq!(f, full);
    }

    #[test]
    fn a_corrupted_frame_is_never_repaired(
        case in 0usize..CASES.len(),
        payload in proptest::collection::vec(any::<u8>(), 1..600),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let (ip, proto) = CASES[case];
        let mut f = frame(ip, proto, &with_checksum(ip, proto, &payload, false), None, 0);
        let start = f.len() - payload.len();
        let i = start + at.index(payload.len());
        f[i] ^= flip;
        let field = field_in_frame(ip, proto, false);
        let pseudo_sum = reference(&[&pseudo(ip, proto, f.len() - (field - field_offset(proto)))]);
        let holds = u16::from_be_bytes([f[field], f[field + 1]]);
        let before = f.clone();
        let r = complete_partial(&mut f);
        if holds == pseudo_sum {
            // One in 65 536: indistinguishable from a partial checksum by its headers.
            prop_assert_eq!(r, Checksum::Completed);
        } else {
            prop_assert_eq!(r, Checksum::Untouched);
            prop_assert_eq!(f, before);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = seen(&bytes);
        let _ = complete_partial(&mut bytes);
        let _ = verify(&bytes);
    }

    #[test]
    fn seen_finds_a_partial_checksum_where_pending_does(
        case in 0usize..CASES.len(),
        payload in proptest::collection::vec(any::<u8>(), 0..100),
        partial in any::<bool>(),
        vlan in proptest::option::of(1u16..4095),
        at in 0usize..80,
        flip in prop_oneof![Just(0u8), any::<u8>()],
    ) {
        // A frame with a partial or a full checksum, one byte of its headers (or of the
        // first payload) changed, or none.
        let (ip, proto) = CASES[case];
        let mut f = frame(ip, proto, &with_checksum(ip, proto, &payload, partial), vlan, 0);
        if let Some(b) = f.get_mut(at) {
            *b ^= flip;
        }
        prop_assert_eq!(seen(&f).partial, pending(&f).is_some());
        if flip == 0 {
            // (A full checksum may equal the pseudo-header sum, one in 65 536: `partial` is
            // not asserted here, the deterministic test does.)
            prop_assert!(seen(&f).plain);
            prop_assert!(!partial || seen(&f).partial);
        }
    }
}

#[test]
fn seen_says_plain_what_the_mss_watch_has_nothing_to_read_in() {
    let syn = |mut seg: Vec<u8>| {
        seg[13] = 0x02;
        seg
    };
    for (ip, proto) in CASES {
        for vlan in [None, Some(7)] {
            for partial in [false, true] {
                let seg = with_checksum(ip, proto, b"data", partial);
                let f = frame(ip, proto, &seg, vlan, 0);
                let what = format!("{ip:?} {proto} {vlan:?} partial {partial}");
                assert_eq!(
                    seen(&f),
                    Seen {
                        partial,
                        plain: true
                    },
                    "{what}"
                );
            }
        }
    }
    // A TCP segment with SYN is read by the MSS watch, whatever its checksum.
    for ip in [Ip::V4, Ip::V6] {
        let f = frame(ip, TCP, &syn(with_checksum(ip, TCP, b"", true)), None, 0);
        let s = seen(&f);
        assert!(s.partial && !s.plain, "{ip:?}");
    }
    // Neither TCP, UDP nor SCTP (ICMP here), or a first fragment: for the watch to look at,
    // and never partial.
    let icmp = frame(Ip::V4, 1, &[3, 4, 0, 0, 0, 0, 5, 0xdc], None, 0);
    let mut fragment = frame(
        Ip::V4,
        TCP,
        &syn(with_checksum(Ip::V4, TCP, b"", true)),
        None,
        0,
    );
    fragment[14 + 6] |= 0x20; // more fragments
    for (what, f) in [("icmp", icmp), ("fragment", fragment)] {
        let none = Seen {
            partial: false,
            plain: false,
        };
        assert_eq!(seen(&f), none, "{what}");
        assert_eq!(pending(&f), None, "{what}");
    }
    // Not an IP packet (ARP, the packet harness's EtherType, an IPv4 EtherType over another
    // version), tagged or not: nothing for the watch either.
    let not_ip = Seen {
        partial: false,
        plain: true,
    };
    for vlan in [None, Some(7)] {
        for (ethertype, first) in [
            (0x0806, 0x45),
            (0x88b5, 0x45),
            (0x0800, 0x00),
            (0x86dd, 0x45),
        ] {
            let f = build_frame(B, A, vlan, ethertype, &[first; 46]);
            assert_eq!(seen(&f), not_ip, "{ethertype:#06x} {first:#x} {vlan:?}");
        }
    }
    assert_eq!(seen(&[0; 13]), not_ip, "too short for an EtherType");
}

#[test]
fn a_super_frame_may_be_cut_with_what_tso_and_gro_leave_or_a_correct_checksum_only() {
    let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 253) as u8).collect();
    for ip in [Ip::V4, Ip::V6, Ip::V6Ext] {
        for vlan in [None, Some(10)] {
            let at = field_in_frame(ip, TCP, vlan.is_some());
            let build = |seg: &[u8]| frame(ip, TCP, seg, vlan, 0);
            let partial = build(&with_checksum(ip, TCP, &payload, true));
            let correct = build(&with_checksum(ip, TCP, &payload, false));
            // The pseudo-header sum without the TCP length, as some NICs' TSO wants it.
            let mut no_length = partial.clone();
            let sum = reference(&[&pseudo(ip, TCP, 0)]);
            no_length[at..at + 2].copy_from_slice(&sum.to_be_bytes());
            let mut corrupted = correct.clone();
            corrupted[at + 500] ^= 0x40;
            let mut garbage = partial.clone();
            garbage[at] ^= 0x81;
            let case = format!("{ip:?}, vlan {vlan:?}");
            assert!(tso_sound(&partial), "{case}: partial");
            assert!(tso_sound(&correct), "{case}: correct");
            assert!(tso_sound(&no_length), "{case}: without the length");
            assert!(
                !tso_sound(&corrupted),
                "{case}: corrupted after its checksum"
            );
            assert!(
                !tso_sound(&garbage),
                "{case}: a checksum field of neither kind"
            );
        }
    }
    // Not TCP: nothing to cut.
    let udp = frame(
        Ip::V4,
        UDP,
        &with_checksum(Ip::V4, UDP, &payload, true),
        None,
        0,
    );
    assert!(!tso_sound(&udp));
}

#[test]
fn crc32c_matches_the_standard_check_value() {
    // The CRC-32C check value (RFC 3720, B.4; "123456789").
    assert_eq!(crc32c(&[b"123456789"]), 0xe306_9283);
    assert_eq!(crc32c(&[b"1234", b"", b"56789"]), 0xe306_9283);
}

/// An IPv4/SCTP frame: common header (ports, verification tag, checksum) and one DATA chunk.
fn sctp_frame(checksum: [u8; 4]) -> Vec<u8> {
    let mut sctp = vec![0x13, 0x88, 0x13, 0x89, 0xde, 0xad, 0xbe, 0xef];
    sctp.extend_from_slice(&checksum);
    sctp.extend_from_slice(&[0, 3, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    sctp.extend_from_slice(b"ping");
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, SCTP, 0, 0];
    ip[2..4].copy_from_slice(&((20 + sctp.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&SRC4);
    ip.extend_from_slice(&DST4);
    ip.extend_from_slice(&sctp);
    build_frame(B, A, None, ETHERTYPE_IPV4, &ip)
}

#[test]
fn an_sctp_crc_left_to_the_device_is_filled_in_and_a_wrong_one_left_alone() {
    let mut f = sctp_frame([0; 4]);
    assert_eq!(verify(&f), Some(false));
    assert_eq!(complete_partial(&mut f), Checksum::Completed);
    assert_eq!(verify(&f), Some(true));
    // The CRC over the packet with a zero field, little-endian (as Linux stores it).
    let mut zeroed = f.clone();
    zeroed[42..46].fill(0);
    assert_eq!(crc32c(&[&zeroed[34..]]).to_le_bytes(), f[42..46]);
    let done = f.clone();
    assert_eq!(complete_partial(&mut f), Checksum::Untouched);
    assert_eq!(f, done);
    let mut wrong = sctp_frame([1, 2, 3, 4]);
    let before = wrong.clone();
    assert_eq!(complete_partial(&mut wrong), Checksum::Untouched);
    assert_eq!(wrong, before);
    assert_eq!(verify(&wrong), Some(false));
    let mut again = done.clone();
    assert!(make_partial(&mut again));
    assert_eq!(again, zeroed);
}
