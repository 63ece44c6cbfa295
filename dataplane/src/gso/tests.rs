//! Segmentation of crafted super-frames: every segment valid on its own, the payload intact.

use proptest::prelude::*;

use super::*;
use crate::wire::{build_frame, Mac};

const A: Mac = Mac([0x02, 0, 0, 0, 0, 0xa]);
const B: Mac = Mac([0x02, 0, 0, 0, 0, 0xb]);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ip {
    V4,
    V6,
    /// IPv6 with a destination-options header.
    V6Ext,
}

const SEQ: u32 = 0xffff_f000; // wraps inside the frame
const ID: u16 = 0xfffe;

/// A TCP super-frame with `payload`, TCP options of `opts` bytes and `flags`.
fn super_frame(ip: Ip, payload: &[u8], opts: usize, flags: u8, vlan: Option<u16>) -> Vec<u8> {
    let mut tcp = vec![0u8; 20 + opts];
    tcp[0..4].copy_from_slice(&[0x30, 0x39, 0x00, 0x50]);
    tcp[4..8].copy_from_slice(&SEQ.to_be_bytes());
    tcp[12] = (((20 + opts) / 4) as u8) << 4;
    tcp[13] = flags;
    for (i, b) in tcp[20..].iter_mut().enumerate() {
        *b = if i + 1 == opts { 0 } else { 1 }; // NOPs, then end of options
    }
    tcp.extend_from_slice(payload);
    let mut l3 = Vec::new();
    match ip {
        Ip::V4 => {
            l3.extend_from_slice(&[0x46, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0]);
            l3[2..4].copy_from_slice(&((24 + tcp.len()) as u16).to_be_bytes());
            l3[4..6].copy_from_slice(&ID.to_be_bytes());
            l3.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 2]);
            l3.extend_from_slice(&[1, 1, 1, 0]); // options: NOP NOP NOP EOL
        }
        Ip::V6 | Ip::V6Ext => {
            let ext = if ip == Ip::V6Ext { 8 } else { 0 };
            l3.extend_from_slice(&[0x60, 0, 0, 0]);
            l3.extend_from_slice(&((ext + tcp.len()) as u16).to_be_bytes());
            l3.extend_from_slice(&[if ext > 0 { 60 } else { 6 }, 64]);
            l3.extend_from_slice(&[0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            l3.extend_from_slice(&[0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
            if ext > 0 {
                l3.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
            }
        }
    }
    l3.extend_from_slice(&tcp);
    let ethertype = if ip == Ip::V4 { 0x0800 } else { 0x86dd };
    let mut f = build_frame(B, A, vlan, ethertype, &l3);
    // Whatever the sender left in the checksum: the segments get their own.
    assert!(csum::make_partial(&mut f));
    f
}

fn segments(f: &[u8], max_len: usize) -> Vec<Vec<u8>> {
    let plan = Plan::new(f, max_len).expect("segmentable");
    (0..plan.segments())
        .map(|k| {
            let mut buf = vec![0u8; 2048];
            let n = plan.write(f, k, &mut buf).expect("segment");
            buf.truncate(n);
            // Left partial for the device, as the guest's stack leaves it.
            assert!(matches!(csum::pending(&buf), Some(csum::Pending::Partial(p)) if p.ends(n)));
            assert_eq!(csum::complete_partial(&mut buf), csum::Checksum::Completed);
            buf
        })
        .collect()
}

fn check(ip: Ip, payload: &[u8], opts: usize, flags: u8, vlan: Option<u16>, max_len: usize) {
    let f = super_frame(ip, payload, opts, flags, vlan);
    let segs = segments(&f, max_len);
    let l3 = 14 + if vlan.is_some() { 4 } else { 0 };
    let l4 = l3
        + match ip {
            Ip::V4 => 24,
            Ip::V6 => 40,
            Ip::V6Ext => 48,
        };
    let hdr = l4 + 20 + opts;
    let mss = max_len - hdr;
    assert_eq!(segs.len(), payload.len().div_ceil(mss));
    let mut joined = Vec::new();
    for (k, s) in segs.iter().enumerate() {
        assert!(s.len() <= max_len, "segment {k}: {} bytes", s.len());
        assert_eq!(&s[..l3], &f[..l3], "Ethernet header and tag kept");
        assert_eq!(csum::verify(s), Some(true), "segment {k}: TCP checksum");
        let ip_len = u16::from_be_bytes([s[l3 + 2], s[l3 + 3]]) as usize;
        match ip {
            Ip::V4 => {
                assert_eq!(ip_len, s.len() - l3);
                assert_eq!(csum::header_checksum(&s[l3..l4]), 0, "IPv4 header checksum");
                let id = u16::from_be_bytes([s[l3 + 4], s[l3 + 5]]);
                assert_eq!(id, ID.wrapping_add(k as u16));
            }
            _ => {
                let payload_len = u16::from_be_bytes([s[l3 + 4], s[l3 + 5]]) as usize;
                assert_eq!(payload_len, s.len() - l3 - 40);
            }
        }
        let seq = u32::from_be_bytes(s[l4 + 4..l4 + 8].try_into().unwrap());
        assert_eq!(seq, SEQ.wrapping_add((k * mss) as u32));
        let last = k + 1 == segs.len();
        let fl = s[l4 + 13];
        assert_eq!(
            fl & tcp::FIN != 0,
            last && flags & tcp::FIN != 0,
            "FIN on the last only"
        );
        assert_eq!(
            fl & tcp::PSH != 0,
            last && flags & tcp::PSH != 0,
            "PSH on the last only"
        );
        assert_eq!(
            fl & tcp::CWR != 0,
            k == 0 && flags & tcp::CWR != 0,
            "CWR on the first only"
        );
        assert_eq!(fl & 0x10, flags & 0x10, "ACK everywhere");
        assert_eq!(&s[l4 + 20..hdr], &f[l4 + 20..hdr], "TCP options kept");
        joined.extend_from_slice(&s[hdr..]);
    }
    assert_eq!(joined, payload, "the payload, in order, nothing lost");
}

#[test]
fn tcp_super_frames_split_into_valid_segments_within_the_mtu() {
    let payload: Vec<u8> = (0..30_000u32).map(|i| (i * 31 % 251) as u8).collect();
    for ip in [Ip::V4, Ip::V6, Ip::V6Ext] {
        for vlan in [None, Some(7)] {
            check(ip, &payload, 12, 0x18 | tcp::FIN | tcp::CWR, vlan, 1514);
            check(ip, &payload[..1461], 0, 0x10, vlan, 1514);
        }
    }
}

#[test]
fn what_is_not_plain_tcp_is_not_segmented() {
    let payload = vec![7u8; 5000];
    let tcp = super_frame(Ip::V4, &payload, 0, 0x10, None);
    let mut udp = tcp.clone();
    udp[14 + 9] = 17;
    let mut frag = tcp.clone();
    frag[14 + 6] = 0x20;
    let mut long = tcp.clone();
    long[14 + 2] = 0xff; // IP length beyond the frame
    let mut v6 = super_frame(Ip::V6, &payload, 0, 0x10, None);
    v6[14 + 6] = 44; // fragment header
    for (what, f) in [
        ("UDP", udp),
        ("fragment", frag),
        ("IP length beyond the frame", long),
        ("IPv6 fragment", v6),
        ("ARP", build_frame(B, A, None, 0x0806, &[0; 28])),
        ("truncated", tcp[..40].to_vec()),
    ] {
        assert_eq!(Plan::new(&f, 1514), None, "{what}");
    }
    // Headers that leave no room for payload in a segment.
    assert_eq!(Plan::new(&tcp, 54), None);
    let plan = Plan::new(&tcp, 1514).unwrap();
    assert_eq!(plan.write(&tcp, plan.segments(), &mut [0; 2048]), None);
    assert_eq!(plan.write(&tcp, 0, &mut [0; 100]), None);
}

#[test]
fn a_frame_without_a_payload_has_a_plan_to_send_it_alone_and_none_to_split_it() {
    for (ip, vlan) in [(Ip::V4, None), (Ip::V6Ext, Some(7))] {
        let mut ack = super_frame(ip, &[], 12, 0x10, vlan);
        assert_eq!(Plan::new(&ack, 1514), None, "{ip:?}: nothing to split");
        let plan = Plan::lone(&ack).unwrap();
        assert_eq!((plan.headers(), plan.end()), (ack.len(), ack.len()));
        let hdr = plan.vnet_hdr(&ack, 1, 0);
        assert_eq!((hdr.gso_type, hdr.hdr_len), (0, ack.len() as u16));
        // Ethernet padding is not the segment's.
        ack.resize(ack.len() + 6, 0);
        assert_eq!(Plan::lone(&ack).unwrap().end(), ack.len() - 6);
    }
    let tcp = super_frame(Ip::V4, &[1; 100], 0, 0x10, None);
    assert_eq!(Plan::lone(&tcp), Plan::new(&tcp, tcp.len() + 1));
    assert_eq!(Plan::lone(&tcp[..40]), None, "truncated");
}

proptest! {
    #[test]
    fn any_super_frame_reassembles_to_its_payload(
        len in 1usize..20_000,
        opts in (0usize..=10).prop_map(|n| n * 4),
        max_len in 200usize..1600,
        case in 0usize..3,
    ) {
        let ip = [Ip::V4, Ip::V6, Ip::V6Ext][case];
        let payload: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        check(ip, &payload, opts, 0x18, None, max_len);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), max in 0usize..2000) {
        if let Some(p) = Plan::new(&bytes, max) {
            let mut out = vec![0u8; 2048];
            for k in 0..p.segments().min(4) {
                let _ = p.write(&bytes, k, &mut out);
            }
        }
    }
}
