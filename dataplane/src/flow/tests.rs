//! The layer 3/4 view of crafted frames, and arbitrary bytes never panic.

use proptest::prelude::*;

use super::build::*;
use super::*;
use crate::wire::{build_frame, ETHERTYPE_IPV4, ETHERTYPE_IPV6};

const S4: [u8; 4] = [198, 18, 0, 1];
const D4: [u8; 4] = [198, 18, 0, 2];

fn ip(l3: L3) -> Flow {
    match l3 {
        L3::Ip(f) => f,
        other => panic!("not IP: {other:?}"),
    }
}

#[test]
fn tcp_udp_and_icmp_echo_read_their_ports_flags_and_identifier() {
    let f = ip(parse(&v4(S4, D4, TCP, &tcp(40000, 22, tcp::SYN))));
    assert!(!f.tuple.v6);
    assert_eq!(f.tuple.proto, TCP);
    assert_eq!(&f.tuple.src[..4], &S4);
    assert_eq!(&f.tuple.dst[..4], &D4);
    assert_eq!((f.tuple.sport, f.tuple.dport), (40000, 22));
    assert_eq!(f.tcp_flags, tcp::SYN);
    assert_eq!(f.fragment, Fragment::Whole);

    let f = ip(parse(&v6(a6(1), a6(2), UDP, &udp(5353, 53))));
    assert!(f.tuple.v6);
    assert_eq!(
        (f.tuple.proto, f.tuple.sport, f.tuple.dport),
        (UDP, 5353, 53)
    );
    assert_eq!(f.tuple.src, a6(1));

    let f = ip(parse(&v4(S4, D4, ICMP, &icmp(8, 0, 77))));
    assert!(f.is_echo_request());
    assert_eq!((f.tuple.sport, f.tuple.dport), (77, 77));
    let f = ip(parse(&v6(a6(1), a6(2), ICMPV6, &icmp(129, 0, 78))));
    assert!(f.is_echo_reply() && f.is_icmp());
    assert_eq!(f.tuple.sport, 78);
    assert_eq!(f.tuple.query, 0);
}

#[test]
fn icmp_queries_carry_their_identifier_and_kind() {
    let query = |v6_: bool, ty: u8| {
        let l4 = icmp(ty, 0, 9);
        let f = if v6_ {
            ip(parse(&v6(a6(1), a6(2), ICMPV6, &l4)))
        } else {
            ip(parse(&v4(S4, D4, ICMP, &l4)))
        };
        let id = (f.tuple.sport, f.tuple.dport) == (9, 9);
        (f.tuple.query, f.is_query_request(), f.is_query() && id)
    };
    assert_eq!(query(false, 8), (0, true, true));
    assert_eq!(query(false, 0), (0, false, true));
    assert_eq!(query(false, 13), (1, true, true));
    assert_eq!(query(false, 14), (1, false, true));
    assert_eq!(query(false, 15), (2, true, true));
    assert_eq!(query(false, 16), (2, false, true));
    assert_eq!(query(false, 17), (3, true, true));
    assert_eq!(query(false, 18), (3, false, true));
    assert_eq!(query(true, 128), (0, true, true));
    assert_eq!(query(true, 139), (4, true, true));
    assert_eq!(query(true, 140), (4, false, true));
    for (v6_, ty) in [
        (false, 9),
        (false, 10),
        (false, 19),
        (true, 13),
        (true, 133),
        (true, 141),
    ] {
        assert_eq!(query(v6_, ty), (0, false, false), "{v6_} {ty}");
    }
    // An error quoting a timestamp request names its connection.
    let inner = ipv4_packet(D4, S4, ICMP, &icmp(13, 0, 9), 0, 1);
    let mut err = icmp(3, 1, 0);
    err.extend_from_slice(&inner);
    let f = ip(parse(&v4(S4, D4, ICMP, &err)));
    let q = f.quoted.unwrap();
    assert_eq!((q.sport, q.dport, q.query), (9, 9, 1));
}

#[test]
fn behind_a_vlan_tag_and_other_ethertypes() {
    let packet = ipv4_packet(S4, D4, UDP, &udp(1, 2), 0, 1);
    let tagged = build_frame(PEER, VM, Some(10), ETHERTYPE_IPV4, &packet);
    assert_eq!(ip(parse(&tagged)).tuple.dport, 2);
    let arp = build_frame(PEER, VM, None, crate::wire::ETHERTYPE_ARP, &[0; 28]);
    assert_eq!(parse(&arp), L3::Arp);
    let other = build_frame(PEER, VM, None, 0x88cc, &[0; 28]);
    assert_eq!(parse(&other), L3::Other(0x88cc));
}

#[test]
fn inconsistent_ip_headers_are_malformed() {
    let mut packet = ipv4_packet(S4, D4, UDP, &udp(1, 2), 0, 1);
    packet[2..4].copy_from_slice(&200u16.to_be_bytes()); // longer than the frame
    let f = build_frame(PEER, VM, None, ETHERTYPE_IPV4, &packet);
    assert_eq!(parse(&f), L3::Malformed);
    let short = build_frame(PEER, VM, None, ETHERTYPE_IPV6, &[0x60; 20]);
    assert_eq!(parse(&short), L3::Malformed);
    let wrong_version = build_frame(PEER, VM, None, ETHERTYPE_IPV4, &[0x65; 40]);
    assert_eq!(parse(&wrong_version), L3::Malformed);
}

/// A chain of more extension headers than the parser walks hides the upper layer (the rules
/// would read protocol 60, ports 0): such a packet is malformed.
#[test]
fn an_extension_header_chain_longer_than_the_walk_is_malformed() {
    let chain = |n: usize| {
        let mut ext = Vec::new();
        for i in 0..n {
            ext.extend_from_slice(&[if i + 1 == n { UDP } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
        }
        let p = ipv6_packet(a6(1), a6(2), 60, &ext, &udp(547, 546));
        parse(&build_frame(PEER, VM, None, ETHERTYPE_IPV6, &p))
    };
    let f = ip(chain(MAX_IPV6_EXT));
    assert_eq!((f.tuple.proto, f.tuple.sport), (UDP, 547));
    assert_eq!(chain(MAX_IPV6_EXT + 1), L3::Malformed);
}

/// An IPv6 authentication header (IPsec AH, its length in 4-byte words less 2) is walked past,
/// as Linux's connection tracking does: the rules see the TCP ports behind it, not protocol 51.
#[test]
fn the_ports_behind_an_ipv6_authentication_header_are_read() {
    // AH: next header, length 4 (24 bytes: 12 fixed, a 12-byte ICV), reserved, SPI, sequence.
    let mut ah = vec![TCP, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 9];
    ah.extend_from_slice(&[0xab; 12]);
    let p = ipv6_packet(a6(1), a6(2), 51, &ah, &tcp(40000, 22, tcp::SYN));
    let f = ip(parse(&build_frame(PEER, VM, None, ETHERTYPE_IPV6, &p)));
    assert_eq!(
        (f.tuple.proto, f.tuple.sport, f.tuple.dport, f.tcp_flags),
        (TCP, 40000, 22, tcp::SYN)
    );
    // Behind a destination options header too; an AH that runs past the packet is malformed.
    let mut ext = vec![51, 0, 1, 4, 0, 0, 0, 0];
    ext.extend_from_slice(&ah);
    let p = ipv6_packet(a6(1), a6(2), 60, &ext, &tcp(40000, 22, tcp::SYN));
    let f = ip(parse(&build_frame(PEER, VM, None, ETHERTYPE_IPV6, &p)));
    assert_eq!((f.tuple.proto, f.tuple.dport), (TCP, 22));
    let p = ipv6_packet(a6(1), a6(2), 51, &[TCP, 200, 0, 0], &[]);
    assert_eq!(
        parse(&build_frame(PEER, VM, None, ETHERTYPE_IPV6, &p)),
        L3::Malformed
    );
}

/// A first fragment (or a whole packet) whose transport header is cut short hides its ports or
/// a TCP segment's flags: malformed.
#[test]
fn a_transport_header_cut_short_is_malformed() {
    let segment = tcp(1000, 22, tcp::SYN);
    // 8 bytes of a first fragment (ports, no flags); 13 of a whole packet.
    for (l4, frag) in [(&segment[..8], 0x2000), (&segment[..13], 0)] {
        let p = ipv4_packet(S4, D4, TCP, l4, frag, 7);
        let f = build_frame(PEER, VM, None, ETHERTYPE_IPV4, &p);
        assert_eq!(parse(&f), L3::Malformed, "{} bytes", l4.len());
    }
    let p = ipv4_packet(S4, D4, TCP, &segment[..14], 0x2000, 7);
    let f = ip(parse(&build_frame(PEER, VM, None, ETHERTYPE_IPV4, &p)));
    assert_eq!((f.tuple.dport, f.tcp_flags), (22, tcp::SYN));
    let p = ipv4_packet(S4, D4, UDP, &udp(1, 2)[..3], 0, 7);
    assert_eq!(
        parse(&build_frame(PEER, VM, None, ETHERTYPE_IPV4, &p)),
        L3::Malformed
    );
    // An ICMP header is 8 bytes: an empty first fragment is no echo reply.
    for (l4, frag) in [(&[][..], 0x2000), (&icmp(0, 0, 1)[..7], 0)] {
        let p = ipv4_packet(S4, D4, ICMP, l4, frag, 7);
        let f = build_frame(PEER, VM, None, ETHERTYPE_IPV4, &p);
        assert_eq!(parse(&f), L3::Malformed, "{} bytes", l4.len());
    }
    let p = ipv6_packet(a6(1), a6(2), ICMPV6, &[], &icmp(129, 0, 1)[..7]);
    let f = build_frame(PEER, VM, None, crate::wire::ETHERTYPE_IPV6, &p);
    assert_eq!(parse(&f), L3::Malformed);
    let p = ipv4_packet(S4, D4, ICMP, &icmp(0, 0, 1), 0x2000, 7);
    let f = ip(parse(&build_frame(PEER, VM, None, ETHERTYPE_IPV4, &p)));
    assert!(f.is_echo_reply());
}

#[test]
fn fragments_are_told_apart_and_later_ones_carry_no_ports() {
    // First fragment: offset 0, more fragments.
    let first = ipv4_packet(S4, D4, UDP, &udp(1000, 2000), 0x2000, 42);
    let f = ip(parse(&build_frame(PEER, VM, None, ETHERTYPE_IPV4, &first)));
    assert_eq!(
        (f.fragment, f.frag_id, f.tuple.dport),
        (Fragment::First, 42, 2000)
    );
    // A later fragment: offset 185 (1480 bytes); its first bytes are payload, not ports.
    let later = ipv4_packet(S4, D4, UDP, &udp(7, 7), 185, 42);
    let f = ip(parse(&build_frame(PEER, VM, None, ETHERTYPE_IPV4, &later)));
    assert_eq!(
        (f.fragment, f.frag_id, f.tuple.dport),
        (Fragment::Later, 42, 0)
    );

    // IPv6: hop-by-hop options, then a fragment header (offset 0, M), then UDP.
    let mut ext = vec![44, 0, 1, 4, 0, 0, 0, 0]; // hop-by-hop: next = fragment, PadN
    ext.extend_from_slice(&[UDP, 0, 0, 1, 0, 0, 0, 9]); // fragment: offset 0, M, id 9
    let p = ipv6_packet(a6(1), a6(2), 0, &ext, &udp(10, 20));
    let f = ip(parse(&build_frame(PEER, VM, None, ETHERTYPE_IPV6, &p)));
    assert_eq!(
        (f.tuple.proto, f.fragment, f.frag_id, f.tuple.dport),
        (UDP, Fragment::First, 9, 20)
    );
    let later = [UDP, 0, 0x05, 0xa8, 0, 0, 0, 9]; // offset 181, no M
    let p = ipv6_packet(a6(1), a6(2), 44, &later, &[1, 2, 3, 4, 5, 6, 7, 8]);
    let f = ip(parse(&build_frame(PEER, VM, None, ETHERTYPE_IPV6, &p)));
    assert_eq!(
        (f.tuple.proto, f.fragment, f.tuple.dport),
        (UDP, Fragment::Later, 0)
    );
}

#[test]
fn icmp_errors_quote_the_packet_they_are_about() {
    // A host answers "port unreachable" about a UDP datagram D4:5000 -> S4:53.
    let about = ipv4_packet(D4, S4, UDP, &udp(5000, 53), 0, 3);
    let mut l4 = vec![3, 3, 0, 0, 0, 0, 0, 0];
    l4.extend_from_slice(&about[..28]);
    let f = ip(parse(&v4(S4, D4, ICMP, &l4)));
    let q = f.quoted.expect("quoted");
    assert_eq!((q.proto, q.sport, q.dport), (UDP, 5000, 53));
    assert_eq!(&q.src[..4], &D4);
    // ICMPv6 packet too big about a TCP segment.
    let about = ipv6_packet(a6(2), a6(1), TCP, &[], &tcp(443, 50000, tcp::ACK));
    let mut l4 = vec![2, 0, 0, 0, 0, 0, 0x05, 0xdc];
    l4.extend_from_slice(&about[..48]);
    let f = ip(parse(&v6(a6(1), a6(2), ICMPV6, &l4)));
    let q = f.quoted.expect("quoted");
    assert_eq!((q.v6, q.proto, q.sport, q.dport), (true, TCP, 443, 50000));
    // An error quoting too little quotes nothing.
    let f = ip(parse(&v4(S4, D4, ICMP, &[3, 3, 0, 0, 0, 0, 0, 0, 0x45])));
    assert_eq!(f.quoted, None);
}

#[test]
fn parsing_in_place_leaves_nothing_of_the_frame_before() {
    // Every field some frame sets, then frames that set none of them.
    let about = ipv4_packet(D4, S4, UDP, &udp(5000, 53), 0, 3);
    let mut error = vec![3, 3, 0, 0, 0, 0, 0, 0];
    error.extend_from_slice(&about[..28]);
    let first = ipv4_packet(S4, D4, TCP, &tcp(1, 2, tcp::SYN), 0x2000, 42);
    let later = ipv4_packet(S4, D4, TCP, &tcp(1, 2, tcp::SYN), 185, 42);
    let frames = [
        build_frame(PEER, VM, None, ETHERTYPE_IPV4, &later),
        v4(S4, D4, TCP, &[0, 1, 0, 2]),
        build_frame(PEER, VM, None, ETHERTYPE_IPV4, &[0x65; 40]),
        build_frame(PEER, VM, None, 0x88cc, &[0; 28]),
        v6(a6(1), a6(2), TCP, &tcp(40000, 22, tcp::SYN | tcp::ACK)),
        v4(S4, D4, ICMP, &error),
        build_frame(PEER, VM, None, ETHERTYPE_IPV4, &first),
        v4(S4, D4, ICMP, &icmp(8, 0, 77)),
        v4(S4, D4, UDP, &udp(7, 8)),
        v4(S4, D4, 89, &[0; 8]),
        build_frame(PEER, VM, None, crate::wire::ETHERTYPE_ARP, &[0; 28]),
        v6(a6(3), a6(4), UDP, &udp(9, 10)),
    ];
    let mut l3 = L3::Malformed;
    for (i, a) in frames.iter().enumerate() {
        for b in &frames {
            parse_into(a, &mut l3);
            assert_eq!(l3, parse(a), "frame {i}");
            parse_into(b, &mut l3);
            assert_eq!(l3, parse(b), "after frame {i}");
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), ty in prop::sample::select(vec![0x0800u16, 0x86dd, 0x8100, 0x0806])) {
        let mut f = build_frame(PEER, VM, None, ty, &bytes);
        let _ = parse(&f);
        if f.len() > 14 {
            f[14] = if ty == 0x86dd { 0x60 } else { 0x45 };
            let _ = parse(&f);
        }
        let _ = parse(&bytes);
    }
}
