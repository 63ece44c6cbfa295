//! IP address management: CIDRs, gateways, allocation pools and the choice
//! of a free address, for IPv4 and IPv6 alike.
//!
//! # Design
//!
//! An address is a `u128` with its family (IPv4 in the low 32 bits), so one
//! set of arithmetic serves both. A subnet's pools are inclusive ranges; the
//! allocator walks the addresses already held (a sorted set the size of the
//! port count), never the address space: the first free address of a pool
//! is its first address, or one past a run of held addresses. Finding one
//! costs O(held) whatever the prefix length, so a /8 or an IPv6 /64 costs
//! the same as a /29.
//!
//! The rules and messages follow Neutron's (`neutron/ipam/utils.py`,
//! `neutron/db/ipam_backend_mixin.py`): the default gateway is the first
//! host (the subnet-router anycast address, i.e. the network address, for
//! IPv6), the default pool is every other usable address, pools must lie in
//! the CIDR, must not overlap each other and must not hold the gateway.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{ControlError, Result};

/// An IP version: 4 or 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// From Neutron's `ip_version`.
    pub fn from_version(v: u8) -> Option<Self> {
        match v {
            4 => Some(Self::V4),
            6 => Some(Self::V6),
            _ => None,
        }
    }

    /// Neutron's `ip_version`.
    pub fn version(self) -> u8 {
        match self {
            Self::V4 => 4,
            Self::V6 => 6,
        }
    }

    fn bits(self) -> u8 {
        match self {
            Self::V4 => 32,
            Self::V6 => 128,
        }
    }

    /// The family of an address.
    pub fn of(ip: IpAddr) -> Self {
        if ip.is_ipv4() {
            Self::V4
        } else {
            Self::V6
        }
    }
}

/// An address as a number.
pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// A number as an address of `family` (IPv4 takes the low 32 bits).
pub fn from_u128(family: Family, n: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX))),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// Parses an address (no prefix).
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

/// A normalised CIDR: host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The family.
    pub family: Family,
    /// The network address as a number.
    pub network: u128,
    /// Prefix length.
    pub len: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n` or `x::/n` and zeroes the host bits, as Neutron
    /// stores it (`10.0.0.5/24` is `10.0.0.0/24`). A bare address is a host
    /// prefix.
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => {
                if l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()) || l.len() > 3 {
                    return None;
                }
                (parse_ip(a)?, l.parse::<u8>().ok()?)
            }
            None => {
                let a = parse_ip(s)?;
                (a, Family::of(a).bits())
            }
        };
        let family = Family::of(addr);
        if len > family.bits() {
            return None;
        }
        let mut c = Cidr {
            family,
            network: 0,
            len,
        };
        c.network = to_u128(addr) & c.mask();
        Some(c)
    }

    fn host_bits(&self) -> u32 {
        u32::from(self.family.bits() - self.len)
    }

    fn mask(&self) -> u128 {
        let all = match self.family {
            Family::V4 => u128::from(u32::MAX),
            Family::V6 => u128::MAX,
        };
        let host = self.host_bits();
        if host >= 128 {
            0
        } else {
            all & !((1u128 << host) - 1)
        }
    }

    /// The last address of the prefix.
    pub fn last(&self) -> u128 {
        let host = self.host_bits();
        if host >= 128 {
            u128::MAX
        } else {
            self.network | ((1u128 << host) - 1)
        }
    }

    /// Does the prefix hold `n` (an address of the same family)?
    pub fn contains(&self, n: u128) -> bool {
        n >= self.network && n <= self.last()
    }

    /// Does the prefix hold this address?
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        Family::of(ip) == self.family && self.contains(to_u128(ip))
    }

    /// Do the two prefixes share an address?
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.family == other.family && self.network <= other.last() && other.network <= self.last()
    }

    /// The default gateway: the first host for IPv4, the network address
    /// (subnet-router anycast) for IPv6. `None` for prefixes with no room
    /// (IPv4 /31 and /32, IPv6 /128).
    pub fn default_gateway(&self) -> Option<u128> {
        match self.family {
            Family::V4 if self.len <= 30 => Some(self.network + 1),
            Family::V6 if self.len < 128 => Some(self.network),
            _ => None,
        }
    }

    /// The usable range: without the network and broadcast addresses for
    /// IPv4 (/31 and /32 keep all), without the network address for IPv6.
    pub fn usable(&self) -> Option<(u128, u128)> {
        match self.family {
            Family::V4 if self.len >= 31 => Some((self.network, self.last())),
            Family::V4 => Some((self.network + 1, self.last() - 1)),
            Family::V6 if self.len == 128 => Some((self.network, self.network)),
            Family::V6 => Some((self.network + 1, self.last())),
        }
    }

    /// The default pools: the usable range without the gateway.
    pub fn default_pools(&self, gateway: Option<u128>) -> Vec<Pool> {
        let Some((first, last)) = self.usable() else {
            return Vec::new();
        };
        match gateway {
            Some(g) if g >= first && g <= last => {
                let mut v = Vec::new();
                if g > first {
                    v.push(Pool { first, last: g - 1 });
                }
                if g < last {
                    v.push(Pool { first: g + 1, last });
                }
                v
            }
            _ => vec![Pool { first, last }],
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", from_u128(self.family, self.network), self.len)
    }
}

/// An address or a CIDR as a request gave it (an allowed address pair's `ip_address`): a bare
/// address shows bare, a prefix as its normalised CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// The prefix (a bare address is a host prefix).
    pub cidr: Cidr,
    /// Given without a length.
    pub bare: bool,
}

impl Prefix {
    /// Parses `a.b.c.d`, `a.b.c.d/n`, `x::1` or `x::/n`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(Prefix {
            cidr: Cidr::parse(s)?,
            bare: !s.contains('/'),
        })
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.bare {
            write!(f, "{}", from_u128(self.cidr.family, self.cidr.network))
        } else {
            self.cidr.fmt(f)
        }
    }
}

/// An address with a prefix length, host bits kept (`10.9.0.5/24`), as Neutron converts a security
/// group rule's `remote_ip_prefix` (netaddr's `IPNetwork`): a bare address is a host prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPrefix {
    /// The address as given.
    pub addr: IpAddr,
    /// The prefix length.
    pub len: u8,
}

impl IpPrefix {
    /// Parses what [`Cidr::parse`] accepts, keeping the host bits.
    pub fn parse(s: &str) -> Option<Self> {
        let cidr = Cidr::parse(s)?;
        let addr = parse_ip(s.split_once('/').map_or(s, |(a, _)| a))?;
        Some(IpPrefix {
            addr,
            len: cidr.len,
        })
    }

    /// The prefix with its host bits cleared (`normalized_cidr`).
    pub fn cidr(&self) -> Cidr {
        let mut c = Cidr {
            family: Family::of(self.addr),
            network: 0,
            len: self.len,
        };
        c.network = to_u128(self.addr) & c.mask();
        c
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// An inclusive range of addresses of one subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// First address.
    pub first: u128,
    /// Last address.
    pub last: u128,
}

impl Pool {
    /// `first-last` in the subnet's family, as Neutron's messages print it.
    pub fn display(&self, family: Family) -> String {
        format!(
            "{}-{}",
            from_u128(family, self.first),
            from_u128(family, self.last)
        )
    }

    /// Parses a stored `first-last`.
    pub fn parse_stored(s: &str) -> Option<Self> {
        let (a, b) = s.split_once('-')?;
        Some(Pool {
            first: to_u128(parse_ip(a)?),
            last: to_u128(parse_ip(b)?),
        })
    }
}

/// Checks pools given by a client: each inside the CIDR, in order, of the
/// subnet's family; no two overlapping; the gateway in none of them.
pub fn validate_pools(
    cidr: &Cidr,
    gateway: Option<u128>,
    pools: &[(String, String)],
) -> Result<Vec<Pool>> {
    let mut out: Vec<Pool> = Vec::with_capacity(pools.len());
    for (start, end) in pools {
        let as_given = || ControlError::InvalidAllocationPool {
            pool: format!("{{'start': '{start}', 'end': '{end}'}}"),
        };
        let (Some(a), Some(b)) = (parse_ip(start), parse_ip(end)) else {
            return Err(as_given());
        };
        if Family::of(a) != cidr.family || Family::of(b) != cidr.family {
            return Err(as_given());
        }
        let pool = Pool {
            first: to_u128(a),
            last: to_u128(b),
        };
        if pool.first > pool.last {
            return Err(as_given());
        }
        if !cidr.contains(pool.first) || !cidr.contains(pool.last) {
            return Err(ControlError::OutOfBoundsAllocationPool {
                pool: pool.display(cidr.family),
                cidr: cidr.to_string(),
            });
        }
        out.push(pool);
    }
    for (i, p) in out.iter().enumerate() {
        for q in &out[i + 1..] {
            if p.first <= q.last && q.first <= p.last {
                return Err(ControlError::OverlappingAllocationPools {
                    pool_1: p.display(cidr.family),
                    pool_2: q.display(cidr.family),
                    cidr: cidr.to_string(),
                });
            }
        }
    }
    if let Some(g) = gateway {
        if let Some(p) = out.iter().find(|p| p.first <= g && g <= p.last) {
            return Err(ControlError::GatewayConflictWithAllocationPools {
                pool: p.display(cidr.family),
                ip: from_u128(cidr.family, g).to_string(),
            });
        }
    }
    Ok(out)
}

/// The first address of the pools (in their order) that is not held.
///
/// Walks `held` within each pool, never the pool itself: O(held).
pub fn first_free(pools: &[Pool], held: &BTreeSet<u128>) -> Option<u128> {
    for p in pools {
        let mut candidate = p.first;
        for &h in held.range(p.first..=p.last) {
            if h != candidate {
                break;
            }
            if candidate == p.last {
                break;
            }
            candidate += 1;
        }
        if candidate <= p.last && !held.contains(&candidate) {
            return Some(candidate);
        }
    }
    None
}

/// Stored lists are one item a line.
pub fn split_lines(s: &str) -> Vec<String> {
    s.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The EUI-64 address of `mac` in `cidr` (RFC 4291, appendix A: the universal/local bit
/// flipped, `ff:fe` in the middle).
pub fn eui64(cidr: &Cidr, mac: &str) -> Option<u128> {
    let m: Vec<u8> = mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).ok())
        .collect::<Option<_>>()?;
    let [a, b, c, d, e, f] = m[..] else {
        return None;
    };
    let iid = u64::from_be_bytes([a ^ 0x02, b, c, 0xff, 0xfe, d, e, f]);
    let net = cidr.network & !u128::from(u64::MAX);
    Some(net | u128::from(iid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> u128 {
        to_u128(s.parse().unwrap())
    }

    #[test]
    fn cidrs_are_normalised_and_bounded() {
        let c = Cidr::parse("10.9.0.5/24").unwrap();
        assert_eq!(c.to_string(), "10.9.0.0/24");
        assert_eq!(c.default_gateway(), Some(ip("10.9.0.1")));
        assert_eq!(
            c.default_pools(c.default_gateway()),
            vec![Pool {
                first: ip("10.9.0.2"),
                last: ip("10.9.0.254")
            }]
        );
        let v6 = Cidr::parse("2001:db8::1/64").unwrap();
        assert_eq!(v6.to_string(), "2001:db8::/64");
        assert_eq!(v6.default_gateway(), Some(ip("2001:db8::")));
        assert_eq!(
            v6.default_pools(v6.default_gateway())[0].display(Family::V6),
            "2001:db8::1-2001:db8::ffff:ffff:ffff:ffff"
        );
        for bad in ["bogus", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/x", "::/129"] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains(ip("255.255.255.255")));
    }

    #[test]
    fn pools_are_checked_like_neutron() {
        let c = Cidr::parse("10.11.0.0/24").unwrap();
        let p = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        let gw = Some(ip("10.11.0.1"));
        assert!(matches!(
            validate_pools(&c, gw, &[p("10.11.0.1", "10.11.0.20")]),
            Err(ControlError::GatewayConflictWithAllocationPools { .. })
        ));
        assert!(matches!(
            validate_pools(&c, gw, &[p("10.11.0.10", "10.11.1.20")]),
            Err(ControlError::OutOfBoundsAllocationPool { .. })
        ));
        assert!(matches!(
            validate_pools(
                &c,
                gw,
                &[p("10.11.0.10", "10.11.0.20"), p("10.11.0.15", "10.11.0.30")]
            ),
            Err(ControlError::OverlappingAllocationPools { .. })
        ));
        assert!(matches!(
            validate_pools(&c, gw, &[p("10.11.0.20", "10.11.0.10")]),
            Err(ControlError::InvalidAllocationPool { .. })
        ));
        assert_eq!(
            validate_pools(&c, gw, &[p("10.11.0.10", "10.11.0.20")])
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn allocation_skips_held_runs_without_scanning_the_space() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        let pools = c.default_pools(c.default_gateway());
        let mut held = BTreeSet::new();
        assert_eq!(first_free(&pools, &held), Some(ip("10.0.0.2")));
        for n in 2..1000u128 {
            held.insert(ip("10.0.0.0") + n);
        }
        assert_eq!(first_free(&pools, &held), Some(ip("10.0.0.0") + 1000));
        let v6 = Cidr::parse("2001:db8::/64").unwrap();
        let pools6 = v6.default_pools(v6.default_gateway());
        assert_eq!(
            first_free(&pools6, &BTreeSet::new()),
            Some(ip("2001:db8::1"))
        );
        // A full pool.
        let small = Cidr::parse("10.1.0.0/30").unwrap();
        let sp = small.default_pools(small.default_gateway());
        let full: BTreeSet<u128> = [ip("10.1.0.2")].into();
        assert_eq!(first_free(&sp, &full), None);
    }
}
