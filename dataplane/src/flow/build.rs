//! Frames for the tests of the filter: IPv4 and IPv6 packets with TCP, UDP or ICMP headers.

use crate::wire::{build_frame, Mac, ETHERTYPE_IPV4, ETHERTYPE_IPV6};

pub(crate) const VM: Mac = Mac([0x02, 0, 0, 0, 0, 0x0a]);
pub(crate) const PEER: Mac = Mac([0x02, 0, 0, 0, 0, 0x0b]);

/// A TCP header with these ports and flags.
pub(crate) fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = flags;
    h
}

/// A UDP header and 4 bytes of payload.
pub(crate) fn udp(sport: u16, dport: u16) -> Vec<u8> {
    let mut h = vec![0u8; 12];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..6].copy_from_slice(&12u16.to_be_bytes());
    h
}

/// An ICMP header: type, code, identifier (echo) and 4 bytes more.
pub(crate) fn icmp(ty: u8, code: u8, id: u16) -> Vec<u8> {
    let mut h = vec![ty, code, 0, 0, 0, 0, 0, 1];
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h
}

/// An IPv4 header (no options) around `l4`, with fragment word `frag` and identification `id`.
pub(crate) fn ipv4_packet(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    l4: &[u8],
    frag: u16,
    id: u16,
) -> Vec<u8> {
    let mut ip = vec![0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    ip[6..8].copy_from_slice(&frag.to_be_bytes());
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    ip.extend_from_slice(l4);
    ip
}

/// An Ethernet frame from `VM` to `PEER` with an IPv4 packet.
pub(crate) fn v4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    build_frame(
        PEER,
        VM,
        None,
        ETHERTYPE_IPV4,
        &ipv4_packet(src, dst, proto, l4, 0, 1),
    )
}

/// An IPv6 packet around `l4`, after the extension headers `ext` (whose first byte chain the
/// caller sets; `first` is the Next Header of the fixed header).
pub(crate) fn ipv6_packet(
    src: [u8; 16],
    dst: [u8; 16],
    first: u8,
    ext: &[u8],
    l4: &[u8],
) -> Vec<u8> {
    let mut ip = vec![0u8; 40];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&((ext.len() + l4.len()) as u16).to_be_bytes());
    ip[6] = first;
    ip[7] = 64;
    ip[8..24].copy_from_slice(&src);
    ip[24..40].copy_from_slice(&dst);
    ip.extend_from_slice(ext);
    ip.extend_from_slice(l4);
    ip
}

/// An Ethernet frame from `VM` to `PEER` with an IPv6 packet.
pub(crate) fn v6(src: [u8; 16], dst: [u8; 16], proto: u8, l4: &[u8]) -> Vec<u8> {
    build_frame(
        PEER,
        VM,
        None,
        ETHERTYPE_IPV6,
        &ipv6_packet(src, dst, proto, &[], l4),
    )
}

/// An IPv6 address 2001:db8::`last`.
pub(crate) fn a6(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[15] = last;
    a
}
