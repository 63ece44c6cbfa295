//! Port security (anti-spoofing): a port may send only from its own MAC and, for ARP, IPv4 and
//! IPv6, only from its own addresses or an allowed address pair, as Neutron enforces it.
//!
//! # Design
//! The rules are compiled into small vectors in the snapshot; a check is a few comparisons over
//! the frame's source MAC and the sender address, read through checked slices. DHCP discovery
//! (IPv4 source 0.0.0.0), IPv6 duplicate address detection (source ::) and IPv6 link-local
//! sources are allowed, as Neutron allows them. Other EtherTypes are dropped.

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
        let ip = match frame.payload_ethertype() {
            ETHERTYPE_ARP => match payload.get(14..18) {
                // ARP sender protocol address (Ethernet/IPv4 ARP: 8-byte header + 6-byte SHA).
                Some(&[a, b, c, d]) => {
                    let spa = Ipv4Addr::new(a, b, c, d);
                    if spa.is_unspecified() {
                        return true; // ARP probe (RFC 5227)
                    }
                    IpAddr::V4(spa)
                }
                _ => return false,
            },
            ETHERTYPE_IPV4 => match payload.get(12..16) {
                Some(&[a, b, c, d]) => {
                    let s = Ipv4Addr::new(a, b, c, d);
                    if s.is_unspecified() {
                        return true; // DHCP discovery
                    }
                    IpAddr::V4(s)
                }
                _ => return false,
            },
            ETHERTYPE_IPV6 => match payload
                .get(8..24)
                .and_then(|s| <[u8; 16]>::try_from(s).ok())
            {
                Some(b) => {
                    let s = Ipv6Addr::from(b);
                    if s.is_unspecified() || (s.segments()[0] & 0xffc0) == 0xfe80 {
                        return true; // DAD and link-local
                    }
                    IpAddr::V6(s)
                }
                None => return false,
            },
            _ => return false,
        };
        (own_mac && self.fixed_ips.contains(&ip))
            || self.allowed_pairs.iter().any(|(m, p)| {
                *m == src
                    && match p {
                        Some(p) => p.contains(ip),
                        None => self.fixed_ips.contains(&ip),
                    }
            })
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

    #[test]
    fn dhcp_discovery_and_truncated_headers() {
        assert!(check(&ipv4(OWN, [0, 0, 0, 0])));
        let short = build_frame(Mac::BROADCAST, OWN, None, ETHERTYPE_IPV4, &[0x45, 0]);
        assert!(!check(&short));
        let other = build_frame(Mac::BROADCAST, OWN, None, 0x88cc, &[0; 40]);
        assert!(!check(&other));
    }
}
