//! IPv6 router advertisements for a port's IPv6 subnets, answered by the switch: a VM's router
//! solicitation gets, back on its own port only, an advertisement of the prefixes of its
//! subnets that have an `ipv6_ra_mode`, as OVN answers solicitations in its datapath. From a
//! `slaac` or `dhcpv6-stateless` prefix the VM forms with its MAC (EUI-64) the very address
//! Neutron gave its port; a `dhcpv6-stateful` prefix is on-link only, and the managed flag sends
//! the VM to DHCPv6 ([`crate::dhcp6`]) for its address; with either DHCPv6 mode the
//! other-configuration flag sends it there for its DNS servers. The solicitation still floods
//! as any multicast does (below).
//!
//! What the advertisement carries (RFC 4861 4.2, 4.6): each prefix on-link (and autonomous
//! unless stateful), the network's MTU, the router's link-layer address, and the subnets' DNS
//! servers (RDNSS, RFC 8106).
//! Lifetimes are infinite, as in OVN's answers: nothing refreshes them on a timer (a VM solicits
//! when its interface comes up, and a kernel that got an answer never asks again), so finite
//! ones would expire. What is added reaches the VM anyway: the switch sends the port three
//! unsolicited advertisements ([`unsolicited`], to all nodes in a frame to the VM's MAC), a few
//! seconds apart, when the port starts forwarding or comes up and whenever what it advertises
//! changes (a DNS server or a prefix added, the MTU), as a router advertises a change of its
//! configuration (RFC 4861 6.2.4). What is removed is not withdrawn (no advertisement with
//! lifetime 0): a removed DNS server or prefix stays with the VM until it restarts its
//! interface. The switch routes nothing,
//! so the router lifetime is 0: no VM takes the switch for a default router. Its source is the
//! link-local address of [`crate::dhcp::SERVER_MAC`] (EUI-64). The solicitation itself still goes
//! where any multicast goes, so a router on the network (a provider network's gateway, a VM)
//! hears it and answers as well.

use std::net::Ipv6Addr;

use crate::csum::icmpv6_checksum;
use crate::wire::ipproto::ICMPV6;
use crate::wire::{Mac, ETH_HEADER_LEN};

/// What the switch advertises to a port's VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaConfig {
    /// The port's MAC: only its solicitations are answered.
    pub client_mac: Mac,
    /// The autonomous prefixes (/64: `slaac` and `dhcpv6-stateless` subnets) of the port.
    pub prefixes: Vec<Ipv6Addr>,
    /// On-link prefixes the VM takes no address from (`dhcpv6-stateful` subnets), with their
    /// lengths.
    pub on_link: Vec<(Ipv6Addr, u8)>,
    /// The managed-address flag: addresses come from DHCPv6.
    pub managed: bool,
    /// The other-configuration flag: DNS servers come from DHCPv6.
    pub other: bool,
    /// The network's MTU.
    pub mtu: u32,
    /// The subnets' IPv6 DNS servers.
    pub dns: Vec<Ipv6Addr>,
    /// The advertisements' source MAC.
    pub router_mac: Mac,
}

const IPV6_HEADER: usize = 40;
const SOLICITATION: u8 = 133;
const ADVERTISEMENT: u8 = 134;
/// Hop limit of every Neighbor Discovery message: a router on the link, not beyond.
const ND_HOP_LIMIT: u8 = 255;
/// Prefix and DNS lifetimes: infinity (RFC 4861 4.6.2, RFC 8106 5.1).
const FOREVER: u32 = u32::MAX;
/// Prefixes and DNS servers beyond these are left out (an advertisement stays far below the
/// minimum IPv6 MTU).
const MAX_PREFIXES: usize = 8;
const MAX_DNS: usize = 3;

/// The all-routers group's MAC (`ff02::2`): where a host sends its solicitations.
const ALL_ROUTERS_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 2];

/// Is `frame` (untagged) an ICMPv6 router solicitation to all routers, with the hop limit
/// Neighbor Discovery requires? Behind hop-by-hop or destination options headers too.
pub fn is_solicitation(frame: &[u8]) -> bool {
    if frame.len() < ETH_HEADER_LEN + IPV6_HEADER + 8
        || frame[0..6] != ALL_ROUTERS_MAC
        || frame[12..14] != [0x86, 0xdd]
        || frame[ETH_HEADER_LEN] >> 4 != 6
        || frame[ETH_HEADER_LEN + 7] != ND_HOP_LIMIT
    {
        return false;
    }
    let ip = &frame[ETH_HEADER_LEN..];
    match crate::csum::ipv6_upper(ip) {
        Some((at, ICMPV6)) => ip
            .get(at..at + 8)
            .is_some_and(|m| m[0] == SOLICITATION && m[1] == 0),
        _ => false,
    }
}

/// The link-local address of `mac` (modified EUI-64, RFC 4291 2.5.1).
pub fn link_local(mac: Mac) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 0x02,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

/// Writes into `out` the advertisement that answers the solicitation `frame` (checked with
/// [`is_solicitation`]) from the port's client; its length. `None`: not the port's client, or no
/// room.
pub fn respond(cfg: &RaConfig, frame: &[u8], out: &mut [u8]) -> Option<usize> {
    if !is_solicitation(frame) || frame[6..12] != cfg.client_mac.0 {
        return None;
    }
    let ip = &frame[ETH_HEADER_LEN..];
    let asker: [u8; 16] = ip[8..24].try_into().ok()?;
    // To the solicitation's source, or to all nodes when it had none yet (RFC 4861 6.2.6).
    if asker == [0; 16] {
        advertise(cfg, ALL_NODES, ALL_NODES_MAC, out)
    } else {
        advertise(cfg, Ipv6Addr::from(asker), cfg.client_mac.0, out)
    }
}

/// Writes into `out` an unsolicited advertisement for the port's VM: to all nodes, in a frame
/// to the VM's MAC (RFC 6085), so that only the VM takes it, not a host behind it; its length.
pub fn unsolicited(cfg: &RaConfig, out: &mut [u8]) -> Option<usize> {
    advertise(cfg, ALL_NODES, cfg.client_mac.0, out)
}

/// The all-nodes group (`ff02::1`) and its MAC.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

/// Writes the advertisement of `cfg` to `dst_ip` at `dst_mac` into `out`; its length.
fn advertise(cfg: &RaConfig, dst_ip: Ipv6Addr, dst_mac: [u8; 6], out: &mut [u8]) -> Option<usize> {
    let src_ip = link_local(cfg.router_mac);

    let mut ra: Vec<u8> = Vec::with_capacity(256);
    ra.extend_from_slice(&[ADVERTISEMENT, 0, 0, 0]);
    // Current hop limit 64, the managed and other-configuration flags, router lifetime 0,
    // reachable time and retransmission timer unspecified.
    let flags = u8::from(cfg.managed) << 7 | u8::from(cfg.other) << 6;
    ra.extend_from_slice(&[64, flags, 0, 0]);
    ra.extend_from_slice(&[0; 8]);
    // Source link-layer address.
    ra.extend_from_slice(&[1, 1]);
    ra.extend_from_slice(&cfg.router_mac.0);
    // MTU.
    ra.extend_from_slice(&[5, 1, 0, 0]);
    ra.extend_from_slice(&cfg.mtu.to_be_bytes());
    let prefixes = cfg.prefixes.iter().map(|p| (p, 64, 0xc0));
    let on_link = cfg.on_link.iter().map(|(p, len)| (p, *len, 0x80));
    for (prefix, len, flags) in prefixes.chain(on_link).take(MAX_PREFIXES) {
        // Prefix information: on-link, and autonomous (a /64) unless addresses are managed.
        ra.extend_from_slice(&[3, 4, len, flags]);
        ra.extend_from_slice(&FOREVER.to_be_bytes());
        ra.extend_from_slice(&FOREVER.to_be_bytes());
        ra.extend_from_slice(&[0; 4]);
        ra.extend_from_slice(&prefix.octets());
    }
    let dns: Vec<&Ipv6Addr> = cfg.dns.iter().take(MAX_DNS).collect();
    if !dns.is_empty() {
        let units = u8::try_from(1 + 2 * dns.len()).ok()?;
        ra.extend_from_slice(&[25, units, 0, 0]);
        ra.extend_from_slice(&FOREVER.to_be_bytes());
        for d in dns {
            ra.extend_from_slice(&d.octets());
        }
    }
    let sum = icmpv6_checksum(&src_ip.octets(), &dst_ip.octets(), &ra);
    ra[2..4].copy_from_slice(&sum.to_be_bytes());

    let len = ETH_HEADER_LEN + IPV6_HEADER + ra.len();
    let f = out.get_mut(..len)?;
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&cfg.router_mac.0);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    let h = &mut f[ETH_HEADER_LEN..ETH_HEADER_LEN + IPV6_HEADER];
    h[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
    h[4..6].copy_from_slice(&u16::try_from(ra.len()).ok()?.to_be_bytes());
    h[6] = ICMPV6;
    h[7] = ND_HOP_LIMIT;
    h[8..24].copy_from_slice(&src_ip.octets());
    h[24..40].copy_from_slice(&dst_ip.octets());
    f[ETH_HEADER_LEN + IPV6_HEADER..].copy_from_slice(&ra);
    Some(len)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const VM: Mac = Mac([0xfa, 0x16, 0x3e, 0x12, 0x34, 0x56]);

    fn config() -> RaConfig {
        RaConfig {
            client_mac: VM,
            prefixes: vec!["2001:db8:1::".parse().unwrap()],
            on_link: Vec::new(),
            managed: false,
            other: false,
            mtu: 1450,
            dns: vec!["2001:db8::53".parse().unwrap()],
            router_mac: crate::dhcp::SERVER_MAC,
        }
    }

    /// A router solicitation from `mac` at `src` (`::` or its link-local address).
    fn solicitation(mac: Mac, src: Ipv6Addr) -> Vec<u8> {
        let mut f = vec![0x33, 0x33, 0, 0, 0, 2];
        f.extend_from_slice(&mac.0);
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 8, ICMPV6, 255]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&[0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend_from_slice(&[SOLICITATION, 0, 0, 0, 0, 0, 0, 0]);
        f
    }

    #[test]
    fn a_solicitation_gets_the_prefixes_mtu_and_dns_from_a_router_of_lifetime_zero() {
        let asker = link_local(VM);
        let rs = solicitation(VM, asker);
        assert!(is_solicitation(&rs));
        let mut out = [0u8; 512];
        let n = respond(&config(), &rs, &mut out).unwrap();
        let f = &out[..n];
        assert_eq!(f[0..6], VM.0, "unicast back to the asker");
        assert_eq!(f[6..12], crate::dhcp::SERVER_MAC.0);
        let ip = &f[ETH_HEADER_LEN..];
        assert_eq!((ip[6], ip[7]), (ICMPV6, 255));
        assert_eq!(ip[8..24], link_local(crate::dhcp::SERVER_MAC).octets());
        assert_eq!(ip[24..40], asker.octets());
        let ra = &ip[IPV6_HEADER..];
        assert_eq!(usize::from(u16::from_be_bytes([ip[4], ip[5]])), ra.len());
        assert_eq!((ra[0], ra[1]), (ADVERTISEMENT, 0));
        assert_eq!(ra[5], 0, "neither managed nor other configuration");
        assert_eq!(ra[6..8], [0, 0], "router lifetime 0: not a default router");
        // The checksum verifies: summing the message with it gives all ones.
        let src: Ipv6Addr = <[u8; 16]>::try_from(&ip[8..24]).unwrap().into();
        let mut zeroed = ra.to_vec();
        zeroed[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(
            u16::from_be_bytes([ra[2], ra[3]]),
            icmpv6_checksum(&src.octets(), &asker.octets(), &zeroed)
        );
        // Options: source link-layer address, MTU, one prefix, DNS.
        let opts = &ra[16..];
        assert_eq!(opts[0..2], [1, 1]);
        assert_eq!(opts[8..16], [5, 1, 0, 0, 0, 0, 0x05, 0xaa]);
        let pio = &opts[16..48];
        assert_eq!(pio[0..4], [3, 4, 64, 0xc0], "a /64, on-link and autonomous");
        assert_eq!(
            pio[16..32],
            "2001:db8:1::".parse::<Ipv6Addr>().unwrap().octets()
        );
        let rdnss = &opts[48..];
        assert_eq!(rdnss[0..2], [25, 3]);
        assert_eq!(
            rdnss[8..24],
            "2001:db8::53".parse::<Ipv6Addr>().unwrap().octets()
        );
    }

    #[test]
    fn dhcpv6_subnets_set_the_flags_and_stateful_prefixes_are_on_link_only() {
        let cfg = RaConfig {
            prefixes: vec!["2001:db8:1::".parse().unwrap()],
            on_link: vec![("2001:db8:2::".parse().unwrap(), 56)],
            managed: true,
            other: true,
            ..config()
        };
        let mut out = [0u8; 512];
        let n = respond(&cfg, &solicitation(VM, link_local(VM)), &mut out).unwrap();
        let ra = &out[ETH_HEADER_LEN + IPV6_HEADER..n];
        assert_eq!(ra[5], 0xc0, "managed and other configuration");
        let opts = &ra[16..];
        assert_eq!(opts[16..20], [3, 4, 64, 0xc0], "autonomous");
        assert_eq!(
            opts[48..52],
            [3, 4, 56, 0x80],
            "on-link only, its own length"
        );
        assert_eq!(
            opts[64..80],
            "2001:db8:2::".parse::<Ipv6Addr>().unwrap().octets()
        );
    }

    #[test]
    fn a_solicitation_without_a_source_is_answered_to_all_nodes() {
        let rs = solicitation(VM, Ipv6Addr::UNSPECIFIED);
        let mut out = [0u8; 512];
        let n = respond(&config(), &rs, &mut out).unwrap();
        assert_eq!(out[0..6], [0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(
            out[ETH_HEADER_LEN + 24..ETH_HEADER_LEN + 40],
            "ff02::1".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert!(n > ETH_HEADER_LEN + IPV6_HEADER + 16);
    }

    #[test]
    fn an_unsolicited_advertisement_goes_to_all_nodes_in_a_frame_to_the_vm() {
        let (mut solicited, mut unsolicited) = ([0u8; 512], [0u8; 512]);
        let rs = solicitation(VM, Ipv6Addr::UNSPECIFIED);
        let n = respond(&config(), &rs, &mut solicited).unwrap();
        assert_eq!(super::unsolicited(&config(), &mut unsolicited), Some(n));
        // The answer to a solicitation without a source, but for the frame's destination.
        assert_eq!(unsolicited[0..6], VM.0);
        assert_eq!(solicited[0..6], [0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(solicited[6..n], unsolicited[6..n]);
        assert_eq!(
            unsolicited[ETH_HEADER_LEN + 24..ETH_HEADER_LEN + 40],
            "ff02::1".parse::<Ipv6Addr>().unwrap().octets()
        );
        // From the responder's link-local address, hop limit 255, a valid checksum.
        let ip = &unsolicited[ETH_HEADER_LEN..n];
        assert_eq!(ip[7], 255);
        assert_eq!(ip[8..24], link_local(config().router_mac).octets());
        let (src, dst): ([u8; 16], [u8; 16]) = (
            ip[8..24].try_into().unwrap(),
            ip[24..40].try_into().unwrap(),
        );
        let mut body = ip[IPV6_HEADER..].to_vec();
        let sum = u16::from_be_bytes([body[2], body[3]]);
        body[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(icmpv6_checksum(&src, &dst, &body), sum);
        // No room: no advertisement.
        assert_eq!(super::unsolicited(&config(), &mut [0u8; 40]), None);
    }

    /// `frame`'s IPv6 packet with an extension header of `kind` (8 bytes, PadN) inserted
    /// before its upper-layer header.
    pub(crate) fn with_extension(frame: &[u8], kind: u8) -> Vec<u8> {
        let ip = ETH_HEADER_LEN;
        let mut f = frame[..ip + IPV6_HEADER].to_vec();
        let next = f[ip + 6];
        f[ip + 6] = kind;
        let payload = u16::from_be_bytes([f[ip + 4], f[ip + 5]]) + 8;
        f[ip + 4..ip + 6].copy_from_slice(&payload.to_be_bytes());
        f.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
        f.extend_from_slice(&frame[ip + IPV6_HEADER..]);
        f
    }

    #[test]
    fn a_solicitation_behind_options_headers_is_answered_and_behind_others_not() {
        let rs = solicitation(VM, link_local(VM));
        let mut out = [0u8; 512];
        for kind in [0, 60] {
            let f = with_extension(&rs, kind);
            assert!(is_solicitation(&f), "behind header {kind}");
            assert!(respond(&config(), &f, &mut out).is_some());
            // An options header longer than the packet.
            let mut long = f.clone();
            long[ETH_HEADER_LEN + IPV6_HEADER + 1] = 9;
            assert!(!is_solicitation(&long));
        }
        // A routing or fragment header: not a solicitation the switch answers.
        for kind in [43, 44] {
            assert!(!is_solicitation(&with_extension(&rs, kind)), "{kind}");
        }
    }

    #[test]
    fn only_the_ports_own_solicitations_are_answered() {
        let other = Mac([0xfa, 0x16, 0x3e, 0, 0, 9]);
        let mut out = [0u8; 512];
        assert!(respond(&config(), &solicitation(other, link_local(other)), &mut out).is_none());
        // Not a solicitation: a hop limit other than 255, another ICMPv6 type, truncated.
        let mut rs = solicitation(VM, link_local(VM));
        rs[ETH_HEADER_LEN + 7] = 64;
        assert!(!is_solicitation(&rs));
        let mut rs = solicitation(VM, link_local(VM));
        rs[ETH_HEADER_LEN + IPV6_HEADER] = 135;
        assert!(!is_solicitation(&rs));
        let rs = solicitation(VM, link_local(VM));
        assert!(!is_solicitation(&rs[..ETH_HEADER_LEN + IPV6_HEADER + 4]));
        // Only solicitations to all routers: one sent to a router's own MAC is that router's.
        let mut rs = solicitation(VM, link_local(VM));
        rs[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        assert!(!is_solicitation(&rs));
        // No room: nothing written.
        let mut small = [0u8; 64];
        assert!(respond(&config(), &solicitation(VM, link_local(VM)), &mut small).is_none());
    }

    #[test]
    fn link_local_addresses_are_modified_eui64() {
        assert_eq!(
            link_local(VM),
            "fe80::f816:3eff:fe12:3456".parse::<Ipv6Addr>().unwrap()
        );
    }
}
