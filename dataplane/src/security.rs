//! Port security (anti-spoofing): a port may send only from its own MAC and, for ARP, IPv4 and
//! IPv6, only from its own addresses or an allowed address pair, as Neutron enforces it.
//!
//! # Design
//! The rules are compiled into small vectors in the snapshot; a check is a few comparisons over
//! the frame's source MAC and the sender address, read through checked slices. As Neutron's
//! firewall allows them: DHCP discovery from IPv4 0.0.0.0 (UDP 68 to 67 only); from IPv6 ::
//! only duplicate address detection and MLD reports (ICMPv6 135, 131, 143); the port's own
//! link-local address (modified EUI-64 of its MAC), an IPv6 allowed pair's MAC's own, or one an
//! allowed pair covers; a neighbour
//! advertisement only for an address the port may use, and an ARP packet only with its sender
//! hardware address the frame's own source. Other EtherTypes are dropped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::{EthernetFrame, Mac, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6};

/// An address or a prefix a port may send from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPrefix {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length (32 or 128 for a single address).
    pub len: u8,
}

impl IpPrefix {
    /// A single address.
    pub fn host(addr: IpAddr) -> Self {
        let len = if addr.is_ipv4() { 32 } else { 128 };
        IpPrefix { addr, len }
    }

    /// Parses `a.b.c.d`, `a.b.c.d/n`, or the IPv6 forms.
    pub fn parse(s: &str) -> Option<Self> {
        match s.split_once('/') {
            None => s.parse().ok().map(IpPrefix::host),
            Some((a, l)) => {
                let addr: IpAddr = a.parse().ok()?;
                let len: u8 = l.parse().ok()?;
                let max = if addr.is_ipv4() { 32 } else { 128 };
                (len <= max).then_some(IpPrefix { addr, len })
            }
        }
    }

    /// Does the prefix contain `ip`?
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The anti-spoofing rules of one port.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortSecurity {
    /// The port's own MAC.
    pub mac: Mac,
    /// The port's fixed IPs.
    pub fixed_ips: Vec<IpAddr>,
    /// Allowed address pairs: a MAC and, optionally, the addresses it may use (with no prefix,
    /// the MAC may use the port's fixed IPs).
    pub allowed_pairs: Vec<(Mac, Option<IpPrefix>)>,
}

impl PortSecurity {
    /// May this frame (untagged, from a VM) leave the port?
    pub fn permits(&self, frame: &EthernetFrame<'_>) -> bool {
        let src = frame.src();
        let own_mac = src == self.mac;
        if !own_mac && !self.allowed_pairs.iter().any(|(m, _)| *m == src) {
            return false;
        }
        let payload = frame.payload();
        match frame.payload_ethertype() {
            ETHERTYPE_ARP => self.permits_arp(src, own_mac, payload),
            ETHERTYPE_IPV4 => self.permits_ipv4(src, own_mac, payload),
            ETHERTYPE_IPV6 => self.permits_ipv6(src, own_mac, payload),
            _ => false,
        }
    }

    /// May the sender `src` (the port's own MAC if `own_mac`, else an allowed pair's) use
    /// address `ip`? Its own link-local address (modified EUI-64 of `src`) too where it may
    /// use IPv6, as Neutron's iptables firewall allows it: the port's MAC, or a pair's with an
    /// IPv6 address.
    fn may_use(&self, src: Mac, own_mac: bool, ip: IpAddr) -> bool {
        let pairs = || self.allowed_pairs.iter().filter(move |(m, _)| *m == src);
        let v6 = |p: &Option<IpPrefix>| match p {
            Some(p) => p.addr.is_ipv6(),
            None => self.fixed_ips.iter().any(IpAddr::is_ipv6),
        };
        (own_mac && self.fixed_ips.contains(&ip))
            || pairs().any(|(_, p)| match p {
                Some(p) => p.contains(ip),
                None => self.fixed_ips.contains(&ip),
            })
            || (ip == IpAddr::V6(crate::ra::link_local(src))
                && (own_mac || pairs().any(|(_, p)| v6(p))))
    }

    /// Ethernet/IPv4 ARP whose sender hardware address is the frame's source, and whose sender
    /// protocol address the sender may use (0.0.0.0: a probe, RFC 5227).
    fn permits_arp(&self, src: Mac, own_mac: bool, arp: &[u8]) -> bool {
        let (Some([0, 1, 8, 0, 6, 4]), Some(sha), Some(&[a, b, c, d])) =
            (arp.get(..6), arp.get(8..14), arp.get(14..18))
        else {
            return false;
        };
        let spa = Ipv4Addr::new(a, b, c, d);
        sha == src.0 && (spa.is_unspecified() || self.may_use(src, own_mac, IpAddr::V4(spa)))
    }

    fn permits_ipv4(&self, src: Mac, own_mac: bool, ip: &[u8]) -> bool {
        let Some(&[a, b, c, d]) = ip.get(12..16) else {
            return false;
        };
        let s = Ipv4Addr::new(a, b, c, d);
        if !s.is_unspecified() {
            return self.may_use(src, own_mac, IpAddr::V4(s));
        }
        // DHCP discovery: UDP from 68 to 67, in a first (or only) fragment.
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let first = ip.get(6..8).is_some_and(|f| f[0] & 0x1f == 0 && f[1] == 0);
        ihl >= 20
            && first
            && ip.get(9) == Some(&17)
            && ip.get(ihl..ihl + 4) == Some(&[0, 68, 0, 67])
    }

    fn permits_ipv6(&self, src: Mac, own_mac: bool, ip: &[u8]) -> bool {
        let Some(b) = ip.get(8..24).and_then(|s| <[u8; 16]>::try_from(s).ok()) else {
            return false;
        };
        let s = Ipv6Addr::from(b);
        // The ICMPv6 message, if the packet is one, read past every extension header the
        // security groups read past (a routing or fragment header in front hides nothing). A
        // packet the walk cannot read to its end (more headers than it reads) is refused.
        let icmp = match crate::flow::ipv6_transport(ip) {
            None => return false,
            Some((58, Some(m))) => Some(m),
            Some(_) => None,
        };
        let kind = icmp.and_then(|m| m.first().copied());
        if s.is_unspecified() {
            // Duplicate address detection and MLD reports (v1, v2).
            return matches!(kind, Some(131 | 135 | 143));
        }
        if !self.may_use(src, own_mac, IpAddr::V6(s)) {
            return false;
        }
        match (kind, icmp) {
            // A neighbour advertisement speaks for its target address: one the sender may use.
            (Some(136), Some(m)) => m
                .get(8..24)
                .and_then(|t| <[u8; 16]>::try_from(t).ok())
                .is_some_and(|t| self.may_use(src, own_mac, IpAddr::V6(Ipv6Addr::from(t)))),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::build_frame;

    const OWN: Mac = Mac([0xfa, 0x16, 0x3e, 0, 0, 1]);
    const PAIR: Mac = Mac([0xfa, 0x16, 0x3e, 0, 0, 2]);
    const OTHER: Mac = Mac([0xfa, 0x16, 0x3e, 0, 0, 3]);

    fn ipv4(src_mac: Mac, src: [u8; 4]) -> Vec<u8> {
        let mut ip = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 1, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&[198, 18, 0, 9]);
        build_frame(Mac::BROADCAST, src_mac, None, ETHERTYPE_IPV4, &ip)
    }

    fn arp(src_mac: Mac, spa: [u8; 4]) -> Vec<u8> {
        let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
        a.extend_from_slice(&src_mac.0);
        a.extend_from_slice(&spa);
        a.extend_from_slice(&[0; 6]);
        a.extend_from_slice(&[198, 18, 0, 9]);
        build_frame(Mac::BROADCAST, src_mac, None, ETHERTYPE_ARP, &a)
    }

    fn rules() -> PortSecurity {
        PortSecurity {
            mac: OWN,
            fixed_ips: vec!["198.18.0.1".parse().unwrap()],
            allowed_pairs: vec![(PAIR, IpPrefix::parse("198.18.1.0/24"))],
        }
    }

    fn check(f: &[u8]) -> bool {
        rules().permits(&EthernetFrame::new_checked(f).unwrap())
    }

    #[test]
    fn own_mac_and_ip_pass() {
        assert!(check(&ipv4(OWN, [198, 18, 0, 1])));
        assert!(check(&arp(OWN, [198, 18, 0, 1])));
    }

    #[test]
    fn spoofed_ip_or_mac_is_refused() {
        assert!(!check(&ipv4(OWN, [198, 18, 0, 2])));
        assert!(!check(&arp(OWN, [198, 18, 0, 2])));
        assert!(!check(&ipv4(OTHER, [198, 18, 0, 1])));
    }

    #[test]
    fn allowed_pair_passes_within_its_prefix() {
        assert!(check(&ipv4(PAIR, [198, 18, 1, 77])));
        assert!(!check(&ipv4(PAIR, [198, 18, 2, 77])));
    }

    /// An IPv4 packet of protocol `proto` whose first four payload bytes are `l4`.
    fn ipv4_l4(src: [u8; 4], proto: u8, l4: [u8; 4]) -> Vec<u8> {
        let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, proto, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&[255, 255, 255, 255]);
        ip.extend_from_slice(&l4);
        ip.extend_from_slice(&[0; 4]);
        build_frame(Mac::BROADCAST, OWN, None, ETHERTYPE_IPV4, &ip)
    }

    /// An IPv6 packet from `src` carrying `upper` (protocol `next`), behind `hops` hop-by-hop
    /// headers.
    fn ipv6(src_mac: Mac, src: &str, hops: usize, next: u8, upper: &[u8]) -> Vec<u8> {
        let src: Ipv6Addr = src.parse().unwrap();
        let mut ip = vec![0x60, 0, 0, 0];
        let len = u16::try_from(hops * 8 + upper.len()).unwrap();
        ip.extend_from_slice(&len.to_be_bytes());
        ip.push(if hops > 0 { 0 } else { next });
        ip.push(255);
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&"ff02::1".parse::<Ipv6Addr>().unwrap().octets());
        for h in 0..hops {
            ip.push(if h + 1 == hops { next } else { 0 });
            ip.extend_from_slice(&[0; 7]);
        }
        ip.extend_from_slice(upper);
        build_frame(Mac::BROADCAST, src_mac, None, ETHERTYPE_IPV6, &ip)
    }

    /// An ICMPv6 message of `kind` whose target (bytes 8 to 24) is `target`.
    fn icmpv6(kind: u8, target: &str) -> Vec<u8> {
        let mut m = vec![kind, 0, 0, 0, 0x20, 0, 0, 0];
        m.extend_from_slice(&target.parse::<Ipv6Addr>().unwrap().octets());
        m
    }

    fn rules6() -> PortSecurity {
        PortSecurity {
            fixed_ips: vec!["2001:db8::1".parse().unwrap()],
            ..rules()
        }
    }

    fn check6(f: &[u8]) -> bool {
        rules6().permits(&EthernetFrame::new_checked(f).unwrap())
    }

    /// The port's link-local address (of `OWN`, modified EUI-64).
    const OWN_LLA: &str = "fe80::f816:3eff:fe00:1";

    #[test]
    fn a_neighbour_advertisement_speaks_only_for_the_ports_own_addresses() {
        let na = |target| ipv6(OWN, OWN_LLA, 0, 58, &icmpv6(136, target));
        assert!(check6(&na("2001:db8::1")));
        assert!(check6(&na(OWN_LLA)));
        assert!(!check6(&na("2001:db8::2")), "another VM's address");
        assert!(!check6(&na("fe80::1")), "the router's link-local address");
        // A solicitation asks about any address.
        assert!(check6(&ipv6(OWN, OWN_LLA, 0, 58, &icmpv6(135, "fe80::1"))));
        // More options headers than the walk reads: refused, whatever the target.
        assert!(check6(&ipv6(
            OWN,
            OWN_LLA,
            8,
            58,
            &icmpv6(136, "2001:db8::1")
        )));
        assert!(!check6(&ipv6(
            OWN,
            OWN_LLA,
            9,
            58,
            &icmpv6(136, "2001:db8::1")
        )));
    }

    /// Behind a routing header (segments left 0) or an atomic fragment header, an advertisement
    /// is still read for its target.
    #[test]
    fn a_neighbour_advertisement_behind_a_routing_or_fragment_header_is_read() {
        for (first, ext) in [
            (43u8, [58u8, 0, 0, 0, 0, 0, 0, 0]),
            (44, [58, 0, 0, 0, 0, 0, 0, 7]),
        ] {
            let frame = |target| {
                let mut m = ext.to_vec();
                m.extend_from_slice(&icmpv6(136, target));
                ipv6(OWN, OWN_LLA, 0, first, &m)
            };
            assert!(check6(&frame("2001:db8::1")), "header {first}");
            assert!(!check6(&frame("fe80::1")), "header {first}");
        }
    }

    /// An allowed pair's MAC may use its own link-local address and advertise its addresses (a
    /// VRRP virtual MAC, a nested guest).
    #[test]
    fn an_allowed_pair_speaks_for_its_own_addresses() {
        let pair = PortSecurity {
            allowed_pairs: vec![(PAIR, IpPrefix::parse("2001:db8::10"))],
            ..rules6()
        };
        let check = |f: &[u8]| pair.permits(&EthernetFrame::new_checked(f).unwrap());
        let pair_lla = "fe80::f816:3eff:fe00:2";
        assert!(check(&ipv6(PAIR, pair_lla, 0, 58, &icmpv6(133, "::"))));
        assert!(check(&ipv6(
            PAIR,
            "2001:db8::10",
            0,
            58,
            &icmpv6(136, "2001:db8::10")
        )));
        assert!(!check(&ipv6(
            PAIR,
            "2001:db8::10",
            0,
            58,
            &icmpv6(136, "2001:db8::1")
        )));
        assert!(!check(&ipv6(PAIR, OWN_LLA, 0, 58, &icmpv6(133, "::"))));
        // A pair of IPv4 only (the rules' `PAIR`) has no IPv6 address, link-local or other.
        assert!(!check6(&ipv6(PAIR, pair_lla, 0, 58, &icmpv6(133, "::"))));
    }

    #[test]
    fn only_the_ports_own_link_local_address_passes() {
        let udp = [0, 1, 0, 2, 0, 8, 0, 0];
        assert!(check6(&ipv6(OWN, OWN_LLA, 0, 17, &udp)));
        assert!(check6(&ipv6(OWN, "2001:db8::1", 0, 17, &udp)));
        assert!(!check6(&ipv6(OWN, "fe80::1", 0, 17, &udp)));
        assert!(!check6(&ipv6(OWN, "2001:db8::2", 0, 17, &udp)));
    }

    #[test]
    fn the_unspecified_source_is_for_address_detection_and_dhcp_only() {
        // IPv6 ::: a solicitation (duplicate address detection), MLD reports behind a
        // hop-by-hop header; nothing else.
        assert!(check6(&ipv6(OWN, "::", 0, 58, &icmpv6(135, "2001:db8::1"))));
        assert!(check6(&ipv6(OWN, "::", 1, 58, &icmpv6(143, "::"))));
        assert!(!check6(&ipv6(
            OWN,
            "::",
            0,
            58,
            &icmpv6(136, "2001:db8::1")
        )));
        assert!(!check6(&ipv6(OWN, "::", 0, 17, &[0, 1, 0, 2, 0, 8, 0, 0])));
        // IPv4 0.0.0.0: DHCP (UDP 68 to 67) only, behind options too; a header length below
        // 20 bytes reads nothing.
        assert!(check(&ipv4_l4([0; 4], 17, [0, 68, 0, 67])));
        let mut options = ipv4_l4([0; 4], 17, [1, 1, 1, 1]);
        options[14] = 0x46;
        options[14 + 3] = 32;
        options.splice(14 + 24..14 + 24, [0, 68, 0, 67]);
        assert!(check(&options));
        let mut short = ipv4_l4([0; 4], 17, [0; 4]);
        short[14] = 0x44;
        short[14 + 16..14 + 20].copy_from_slice(&[0, 68, 0, 67]);
        assert!(!check(&short));
        assert!(!check(&ipv4_l4([0; 4], 17, [0, 68, 0, 53])));
        assert!(!check(&ipv4_l4([0; 4], 6, [0, 68, 0, 67])));
    }

    #[test]
    fn arp_must_carry_its_senders_own_hardware_address() {
        let mut f = arp(OWN, [198, 18, 0, 1]);
        f[14 + 8..14 + 14].copy_from_slice(&OTHER.0);
        assert!(!check(&f), "another MAC as the sender's");
        let mut f = arp(OWN, [198, 18, 0, 1]);
        f[14 + 4] = 8;
        assert!(!check(&f), "not Ethernet/IPv4 ARP");
        assert!(check(&arp(OWN, [0, 0, 0, 0])), "a probe");
    }

    #[test]
    fn dhcp_discovery_and_truncated_headers() {
        assert!(check(&ipv4_l4([0; 4], 17, [0, 68, 0, 67])));
        let short = build_frame(Mac::BROADCAST, OWN, None, ETHERTYPE_IPV4, &[0x45, 0]);
        assert!(!check(&short));
        let other = build_frame(Mac::BROADCAST, OWN, None, 0x88cc, &[0; 40]);
        assert!(!check(&other));
    }
}
