//! The layer 3 and 4 view of a frame that security groups match on and connections are tracked
//! by: addresses, protocol, ports (or ICMP type, code and a query's identifier), TCP flags, the
//! fragment it is, and for an ICMP error the flow of the packet it quotes.
//!
//! # Design
//! [`parse`] reads the headers once per frame through checked slices, behind at most one VLAN
//! tag, walking at most [`MAX_IPV6_EXT`] IPv6 extension headers (hop-by-hop, routing,
//! destination options, fragment, authentication: those Linux's connection tracking and
//! `ip6tables` skip to reach the upper layer). Addresses are kept as 16 bytes (IPv4 in the first four) so
//! that one key type serves both families. A frame whose IP header is inconsistent (short,
//! wrong version, lengths beyond the frame) is [`L3::Malformed`]: the filter refuses it.
//!
//! No function in this module panics on any input, and none allocates.

use crate::csum::MAX_IPV6_EXT;
use crate::wire::ipproto::{ICMP, ICMPV6, SCTP, TCP, UDP};
use crate::wire::{
    be16, is_vlan_tpid, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_HEADER_LEN, VLAN_TAG_LEN,
};

/// The IPv6 authentication header's protocol number (IPsec AH).
const AH: u8 = 51;

/// DCCP's protocol number (a protocol with ports).
pub const DCCP: u8 = 33;
/// UDP-Lite's protocol number (a protocol with ports).
pub const UDPLITE: u8 = 136;

/// Does this protocol carry source and destination ports in its first four bytes?
#[inline]
pub fn has_ports(proto: u8) -> bool {
    matches!(proto, TCP | UDP | SCTP | DCCP | UDPLITE)
}

/// An address as a [`Tuple`] holds it (IPv4 in the first four bytes).
pub fn ip_of(v6: bool, a: &[u8; 16]) -> std::net::IpAddr {
    if v6 {
        std::net::IpAddr::from(*a)
    } else {
        std::net::IpAddr::from([a[0], a[1], a[2], a[3]])
    }
}

/// Where a packet sits in a fragmented datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fragment {
    /// A whole datagram.
    #[default]
    Whole,
    /// The first fragment: it carries the transport header.
    First,
    /// A later fragment: no transport header; matched through its datagram's first fragment.
    Later,
}

/// The addresses, protocol and ports of a packet (or of the packet an ICMP error quotes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Tuple {
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// IP protocol (the last header of an IPv6 chain).
    pub proto: u8,
    /// Source address (IPv4 in the first four bytes).
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// Source port; for an ICMP query or its reply (an echo, say), the identifier; else 0.
    pub sport: u16,
    /// Destination port; for an ICMP query or its reply, the identifier; else 0.
    pub dport: u16,
    /// For an ICMP query or its reply, which kind of query ([`icmp_query`]): an echo's
    /// identifier is not a timestamp request's. Else 0.
    pub query: u8,
}

/// One IP packet as the filter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flow {
    /// Addresses, protocol and ports.
    pub tuple: Tuple,
    /// ICMP type (ICMP and ICMPv6 only).
    pub icmp_type: u8,
    /// ICMP code (ICMP and ICMPv6 only).
    pub icmp_code: u8,
    /// TCP flags (TCP only).
    pub tcp_flags: u8,
    /// Fragment position.
    pub fragment: Fragment,
    /// The datagram's identification (fragments only).
    pub frag_id: u32,
    /// For an ICMP error: the packet it quotes, as that packet was sent.
    pub quoted: Option<Tuple>,
}

/// TCP flags.
pub use crate::wire::tcp;

/// What a frame is, for the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L3 {
    /// ARP (always allowed, as Neutron allows it).
    Arp,
    /// An IP packet.
    Ip(Flow),
    /// Another EtherType.
    Other(u16),
    /// An IP header that does not hold together.
    Malformed,
}

impl Flow {
    /// Is this an ICMP echo request (which starts an ICMP "connection")?
    #[inline]
    pub fn is_echo_request(&self) -> bool {
        self.is_icmp_type(8, 128)
    }

    /// Is this an ICMP echo reply?
    #[inline]
    pub fn is_echo_reply(&self) -> bool {
        self.is_icmp_type(0, 129)
    }

    /// Is this an ICMP query (an echo, timestamp, information or address mask request, an
    /// ICMPv6 echo request or node information query), which starts an ICMP "connection"?
    #[inline]
    pub fn is_query_request(&self) -> bool {
        self.query().is_some_and(|(_, request)| request)
    }

    /// Is this an ICMP query or a reply to one, which belongs to a connection by its identifier?
    #[inline]
    pub fn is_query(&self) -> bool {
        self.query().is_some()
    }

    /// The kind of ICMP query this is, and whether it is the request ([`icmp_query`]).
    #[inline]
    fn query(&self) -> Option<(u8, bool)> {
        if !self.is_icmp() {
            return None;
        }
        icmp_query(self.tuple.v6, self.icmp_type)
    }

    /// Is this ICMP (of its family)?
    #[inline]
    pub fn is_icmp(&self) -> bool {
        (self.tuple.proto == ICMP && !self.tuple.v6)
            || (self.tuple.proto == ICMPV6 && self.tuple.v6)
    }

    /// Is this ICMP of type `v4` (ICMPv6 of type `v6`)?
    #[inline]
    fn is_icmp_type(&self, v4: u8, v6: u8) -> bool {
        self.is_icmp() && self.icmp_type == if self.tuple.v6 { v6 } else { v4 }
    }
}

/// Reads a frame's layer 3 and 4 headers.
pub fn parse(frame: &[u8]) -> L3 {
    let mut l3 = L3::Malformed;
    parse_into(frame, &mut l3);
    l3
}

/// [`parse`] into `out`, in place: the per-frame path writes each field once, where the filter
/// reads it. (Returning the view by value copies it whole right after its fields were written,
/// and wide loads of freshly written narrow fields stall on store forwarding.)
#[inline]
pub fn parse_into(frame: &[u8], out: &mut L3) {
    let (mut ethertype, mut l3) = match be16(frame, 12) {
        Some(t) => (t, ETH_HEADER_LEN),
        None => return *out = L3::Malformed,
    };
    if is_vlan_tpid(ethertype) {
        match be16(frame, 16) {
            Some(t) => ethertype = t,
            None => return *out = L3::Malformed,
        }
        l3 += VLAN_TAG_LEN;
    }
    let ip = frame.get(l3..).unwrap_or_default();
    let v6 = match ethertype {
        ETHERTYPE_ARP => return *out = L3::Arp,
        ETHERTYPE_IPV4 => false,
        ETHERTYPE_IPV6 => true,
        other => return *out = L3::Other(other),
    };
    if !matches!(out, L3::Ip(_)) {
        *out = L3::Ip(Flow::default());
    }
    let L3::Ip(flow) = out else {
        return;
    };
    let header = if v6 {
        ipv6_header(ip, false, &mut flow.tuple)
    } else {
        ipv4_header(ip, false, &mut flow.tuple)
    };
    let Some(h) = header else {
        return *out = L3::Malformed;
    };
    flow.icmp_type = 0;
    flow.icmp_code = 0;
    flow.tcp_flags = 0;
    flow.fragment = h.fragment;
    flow.frag_id = h.frag_id;
    flow.quoted = None;
    if h.fragment != Fragment::Later {
        // A transport header cut short (a tiny first fragment, RFC 1858) would hide its ports,
        // a TCP segment's flags or an ICMP message's type and identifier from the rules and the
        // connection table (an empty one would read as an echo reply): malformed.
        let need = match flow.tuple.proto {
            TCP => 14,
            p if has_ports(p) => 4,
            _ if flow.is_icmp() => 8,
            _ => 0,
        };
        if h.l4.len() < need {
            return *out = L3::Malformed;
        }
        transport(flow, h.l4);
    }
}

/// An IP header as read, beyond the addresses and protocol: the transport bytes and the
/// fragment position.
struct Header<'a> {
    l4: &'a [u8],
    fragment: Fragment,
    frag_id: u32,
}

/// An IPv4 address in the 16 bytes of a [`Tuple`]'s address, built whole (one store).
#[inline]
fn v4_addr(b: &[u8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&b[..4]);
    a
}

/// Where a fragment sits, from its offset and more-fragments flag.
fn position(offset: u16, more: bool) -> Fragment {
    match (offset, more) {
        (0, false) => Fragment::Whole,
        (0, true) => Fragment::First,
        _ => Fragment::Later,
    }
}

/// An IPv4 header, its addresses and protocol written into `t` (ports zero). A quoted header
/// (inside an ICMP error) may be cut short: its total length is not checked.
fn ipv4_header<'a>(ip: &'a [u8], quoted: bool, t: &mut Tuple) -> Option<Header<'a>> {
    let first = *ip.first()?;
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < 20 || ip.len() < ihl {
        return None;
    }
    let total = usize::from(be16(ip, 2)?);
    let end = if quoted {
        ip.len()
    } else {
        if total < ihl || total > ip.len() {
            return None;
        }
        total
    };
    let frag = be16(ip, 6)?;
    let h = Header {
        l4: ip.get(ihl..end)?,
        fragment: position(frag & 0x1fff, frag & 0x2000 != 0),
        frag_id: u32::from(be16(ip, 4)?),
    };
    *t = Tuple {
        v6: false,
        proto: ip[9],
        src: v4_addr(&ip[12..16]),
        dst: v4_addr(&ip[16..20]),
        sport: 0,
        dport: 0,
        query: 0,
    };
    Some(h)
}

/// An IPv6 header and its extension headers (as [`ipv4_header`]).
fn ipv6_header<'a>(ip: &'a [u8], quoted: bool, t: &mut Tuple) -> Option<Header<'a>> {
    if ip.len() < 40 || ip[0] >> 4 != 6 {
        return None;
    }
    let payload = usize::from(be16(ip, 4)?);
    let end = if quoted {
        ip.len()
    } else {
        // A payload length of 0 announces a jumbogram: not handled.
        if payload == 0 || 40 + payload > ip.len() {
            return None;
        }
        40 + payload
    };
    let mut next = ip[6];
    let mut off = 40;
    let (mut fragment, mut frag_id) = (Fragment::Whole, 0);
    for _ in 0..MAX_IPV6_EXT {
        match next {
            // Hop-by-hop, routing and destination options: skipped.
            0 | 43 | 60 => {
                let ext = ip.get(off..off + 2)?;
                next = ext[0];
                off += (usize::from(ext[1]) + 1) * 8;
            }
            // Authentication header (IPsec AH), whose length counts 4-byte words less 2: skipped
            // too, as Linux skips it, so that the rules see the ports behind it.
            AH => {
                let ext = ip.get(off..off + 2)?;
                next = ext[0];
                off += (usize::from(ext[1]) + 2) * 4;
            }
            // Fragment header: 8 bytes, offset and M flag, 32-bit identification.
            44 => {
                let ext = ip.get(off..off + 8)?;
                next = ext[0];
                let word = u16::from_be_bytes([ext[2], ext[3]]);
                fragment = position(word >> 3, word & 1 != 0);
                frag_id = u32::from_be_bytes([ext[4], ext[5], ext[6], ext[7]]);
                off += 8;
                if fragment == Fragment::Later {
                    break;
                }
            }
            _ => break,
        }
    }
    // More extension headers than the walk reads: what follows (a router advertisement, a
    // DHCPv6 server's answer, any port) would be hidden from the rules, which a receiver walking
    // the whole chain is not. Malformed: refused.
    if fragment != Fragment::Later && matches!(next, 0 | 43 | 44 | 60 | AH) {
        return None;
    }
    let h = Header {
        l4: ip.get(off..end)?,
        fragment,
        frag_id,
    };
    let addr = |at: usize| <[u8; 16]>::try_from(&ip[at..at + 16]).unwrap_or_default();
    *t = Tuple {
        v6: true,
        proto: next,
        src: addr(8),
        dst: addr(24),
        sport: 0,
        dport: 0,
        query: 0,
    };
    Some(h)
}

/// The upper layer of an IPv6 packet (from its fixed header on) as the rules read it, past every
/// extension header they walk: its protocol and its bytes (`None` for a later fragment's, which
/// carry no upper-layer header). `None` where the packet is malformed (lengths beyond it, more
/// extension headers than the walk reads).
pub(crate) fn ipv6_transport(ip: &[u8]) -> Option<(u8, Option<&[u8]>)> {
    let mut t = Tuple::default();
    let h = ipv6_header(ip, false, &mut t)?;
    Some((t.proto, (h.fragment != Fragment::Later).then_some(h.l4)))
}

/// Fills in ports, ICMP fields and TCP flags from the transport bytes (left zero when short).
fn transport(flow: &mut Flow, l4: &[u8]) {
    let t = &mut flow.tuple;
    if has_ports(t.proto) {
        t.sport = be16(l4, 0).unwrap_or(0);
        t.dport = be16(l4, 2).unwrap_or(0);
        if t.proto == TCP {
            flow.tcp_flags = l4.get(13).copied().unwrap_or(0);
        }
        return;
    }
    if !flow.is_icmp() {
        return;
    }
    let (Some(&ty), Some(&code)) = (l4.first(), l4.get(1)) else {
        return;
    };
    flow.icmp_type = ty;
    flow.icmp_code = code;
    if let Some((query, _)) = icmp_query(flow.tuple.v6, ty) {
        let id = be16(l4, 4).unwrap_or(0);
        flow.tuple.sport = id;
        flow.tuple.dport = id;
        flow.tuple.query = query;
    } else if is_icmp_error(flow.tuple.v6, ty) {
        flow.quoted = l4.get(8..).and_then(|inner| quoted(flow.tuple.v6, inner));
    }
}

/// The ICMP queries whose replies Linux's connection tracking pairs with them by identifier
/// (`nf_conntrack_proto_icmp`, `_icmpv6`): of ICMP type `ty`, the kind of query (0 for an echo,
/// 1 to 3 for a timestamp, information and address mask request, 4 for an ICMPv6 node
/// information query) and whether it is the request (else the reply); `None` for other types.
#[inline]
pub fn icmp_query(v6: bool, ty: u8) -> Option<(u8, bool)> {
    if v6 {
        return match ty {
            128 | 129 => Some((0, ty == 128)),
            139 | 140 => Some((4, ty == 139)),
            _ => None,
        };
    }
    match ty {
        0 | 8 => Some((0, ty == 8)),
        13..=18 => Some(((ty - 11) / 2, ty % 2 == 1)),
        _ => None,
    }
}

/// ICMP errors, which quote the packet they are about: destination unreachable, source quench,
/// redirect, time exceeded, parameter problem (IPv4); destination unreachable, packet too big,
/// time exceeded, parameter problem (IPv6).
#[inline]
fn is_icmp_error(v6: bool, ty: u8) -> bool {
    if v6 {
        matches!(ty, 1..=4)
    } else {
        matches!(ty, 3 | 4 | 5 | 11 | 12)
    }
}

/// The tuple of a packet quoted in an ICMP error (its IP header and at least 8 bytes more).
fn quoted(v6: bool, inner: &[u8]) -> Option<Tuple> {
    let mut t = Tuple::default();
    let h = if v6 {
        ipv6_header(inner, true, &mut t)?
    } else {
        ipv4_header(inner, true, &mut t)?
    };
    let l4 = h.l4;
    if h.fragment == Fragment::Later {
        return Some(t);
    }
    if has_ports(t.proto) {
        t.sport = be16(l4, 0)?;
        t.dport = be16(l4, 2)?;
    } else if (t.proto == ICMP && !v6) || (t.proto == ICMPV6 && v6) {
        if let Some((query, _)) = icmp_query(v6, *l4.first()?) {
            let id = be16(l4, 4)?;
            t.sport = id;
            t.dport = id;
            t.query = query;
        }
    }
    Some(t)
}

#[cfg(test)]
pub(crate) mod build;
#[cfg(test)]
mod tests;
