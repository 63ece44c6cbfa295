//! The largest TCP segment each remote host takes, learned from the traffic the switch forwards,
//! so that segmenting a guest's super-frame never makes segments larger than the guest would.
//!
//! # Design
//! A guest sizes its TCP segments by the peer's MSS option and by path MTU discovery (ICMP
//! "fragmentation needed", ICMPv6 "packet too big"); with TSO it hands the NIC a super-frame and
//! that size (`gso_size`), which AF_XDP does not pass on. The switch segments at the port's MTU
//! (`gso`), which is larger than the guest's size when the peer's MSS is clamped (PPPoE, tunnels)
//! or a router beyond the uplink has a smaller MTU: such segments would be dropped on the path
//! for as long as the connection lasts. Both messages cross the switch, so it reads them as they
//! go by: a SYN (or SYN-ACK) with an MSS option says its sender takes IP packets of at most
//! MSS + 40 bytes (+ 60 for IPv6, RFC 6691); an ICMP message says how large a packet towards the
//! address it quotes may be. [`MssTable`] keeps, per network and address, the smallest such limit
//! (never below 552 bytes for IPv4, Linux's smallest path MTU, or 1280 for IPv6), for 10 minutes
//! (Linux's path MTU expiry); segmentation takes the smaller of the port's MTU and that limit.
//!
//! A fixed table (4096 entries, allocated once), indexed by a hash of the network and address; a
//! colliding entry is replaced, and limits at or above the MTU are not kept. Reading a frame
//! costs a few byte comparisons unless it is a SYN or an ICMP error; the worker does not hand
//! it TCP segments without SYN, UDP, SCTP or frames that are not IP at all (`csum::seen` tells
//! them apart in the pass over the headers the partial-checksum test makes anyway). A limit is per network, so
//! no tenant lowers another's segments; within a network, anyone can send such a message (as to
//! any TCP stack), and the floors bound what it costs: smaller segments, never lost ones.
//!
//! No function in this module panics on any input.

use crate::wire::ipproto::{ICMP, ICMPV6, TCP};
use crate::wire::{
    be16, is_vlan_tpid, tcp, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_HEADER_LEN, VLAN_TAG_LEN,
};

const ENTRIES: usize = 4096;
/// How long a limit holds, seconds.
pub const EXPIRY_SECS: u32 = 600;
const MIN_V4: u16 = 552;
const MIN_V6: u16 = 1280;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Entry {
    /// IPv4 addresses are mapped into IPv6 (`::ffff:a.b.c.d`).
    addr: u128,
    net: u16,
    /// Largest IP packet towards `addr`; 0 for an empty entry.
    limit: u16,
    secs: u32,
}

/// Per network and remote address, the largest IP packet a TCP segment towards it may be.
#[derive(Debug)]
pub struct MssTable {
    entries: Box<[Entry]>,
}

impl Default for MssTable {
    fn default() -> Self {
        MssTable {
            entries: vec![Entry::default(); ENTRIES].into_boxed_slice(),
        }
    }
}

fn v4(b: &[u8]) -> Option<u128> {
    let a: [u8; 4] = b.get(..4)?.try_into().ok()?;
    Some(0xffff_0000_0000 | u128::from(u32::from_be_bytes(a)))
}

fn v6(b: &[u8]) -> Option<u128> {
    Some(u128::from_be_bytes(b.get(..16)?.try_into().ok()?))
}

/// The MSS option of a TCP header, if any.
fn mss_option(tcp: &[u8]) -> Option<u16> {
    let len = usize::from(*tcp.get(12)? >> 4) * 4;
    let mut opts = tcp.get(20..len)?;
    while let Some(&kind) = opts.first() {
        match kind {
            0 => return None,
            1 => opts = &opts[1..],
            _ => {
                let l = usize::from(*opts.get(1)?);
                if kind == 2 && l == 4 {
                    return be16(opts, 2);
                }
                if l < 2 {
                    return None; // malformed: Linux stops here too
                }
                opts = opts.get(l..)?;
            }
        }
    }
    None
}

impl MssTable {
    fn slot(net: u16, addr: u128) -> usize {
        let h = (addr ^ (addr >> 64) ^ u128::from(net).rotate_left(48)) as u64;
        (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 52) as usize % ENTRIES
    }

    fn lower(&mut self, net: u16, addr: u128, limit: u16, floor: u16, mtu: u32, secs: u32) {
        let limit = limit.max(floor);
        // At or above the MTU it changes nothing: not worth a slot.
        if u32::from(limit) >= mtu {
            return;
        }
        let e = &mut self.entries[Self::slot(net, addr)];
        let live = e.limit != 0
            && e.addr == addr
            && e.net == net
            && secs.saturating_sub(e.secs) < EXPIRY_SECS;
        // A larger limit while a smaller one holds neither raises it nor keeps it alive: the
        // smaller one expires on time.
        if live && limit > e.limit {
            return;
        }
        *e = Entry {
            addr,
            net,
            limit,
            secs,
        };
    }

    /// The largest IP packet a segment towards `addr` (an IPv4 or IPv6 address, 4 or 16 bytes)
    /// in network `net` may be, if the switch has learned one.
    pub fn limit(&self, net: u16, addr: &[u8], secs: u32) -> Option<u16> {
        let addr = if addr.len() == 4 {
            v4(addr)?
        } else {
            v6(addr)?
        };
        let e = &self.entries[Self::slot(net, addr)];
        (e.limit != 0
            && e.addr == addr
            && e.net == net
            && secs.saturating_sub(e.secs) < EXPIRY_SECS)
            .then_some(e.limit)
    }

    /// Reads a frame forwarded in network `net`, whose ports have an MTU of `mtu`: a TCP SYN's
    /// MSS option, or an ICMP "fragmentation needed" / ICMPv6 "packet too big" about a TCP packet.
    /// Limits at or above `mtu` are not kept.
    pub fn observe(&mut self, net: u16, frame: &[u8], mtu: u32, secs: u32) {
        let (mut l3, mut ethertype) = (ETH_HEADER_LEN, be16(frame, 12).unwrap_or(0));
        if is_vlan_tpid(ethertype) {
            l3 += VLAN_TAG_LEN;
            ethertype = be16(frame, 16).unwrap_or(0);
        }
        let Some(ip) = frame.get(l3..) else {
            return;
        };
        match ethertype {
            ETHERTYPE_IPV4 if ip.len() >= 20 && ip[0] >> 4 == 4 => {
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                // Not a later fragment: its payload is no header.
                let first = be16(ip, 6).is_some_and(|f| f & 0x1fff == 0);
                let Some(l4) = ip.get(ihl..).filter(|_| ihl >= 20 && first) else {
                    return;
                };
                match ip[9] {
                    TCP if l4.get(13).is_some_and(|f| f & tcp::SYN != 0) => {
                        if let (Some(m), Some(src)) = (mss_option(l4), v4(&ip[12..16])) {
                            self.lower(net, src, m.saturating_add(40), MIN_V4, mtu, secs);
                        }
                    }
                    // Destination unreachable, fragmentation needed: the next hop's MTU, and
                    // the header of the packet that did not fit.
                    ICMP if l4.first() == Some(&3)
                        && l4.get(1) == Some(&4)
                        && l4.get(8).is_some_and(|v| v >> 4 == 4)
                        && l4.get(17) == Some(&TCP) =>
                    {
                        if let (Some(next_hop), Some(dst)) =
                            (be16(l4, 6), l4.get(24..28).and_then(v4))
                        {
                            self.lower(net, dst, next_hop, MIN_V4, mtu, secs);
                        }
                    }
                    _ => {}
                }
            }
            ETHERTYPE_IPV6 if ip.len() >= 40 && ip[0] >> 4 == 6 => {
                let l4 = &ip[40..];
                match ip[6] {
                    TCP if l4.get(13).is_some_and(|f| f & tcp::SYN != 0) => {
                        if let (Some(m), Some(src)) = (mss_option(l4), v6(&ip[8..24])) {
                            self.lower(net, src, m.saturating_add(60), MIN_V6, mtu, secs);
                        }
                    }
                    // Packet too big: the MTU (32 bits), then the packet that did not fit.
                    ICMPV6 if l4.first() == Some(&2) && l4.get(8).is_some_and(|v| v >> 4 == 6) => {
                        let path = l4
                            .get(4..8)
                            .and_then(|b| b.try_into().ok())
                            .map(u32::from_be_bytes);
                        if let (Some(path), Some(dst)) = (path, l4.get(32..48).and_then(v6)) {
                            let path = u16::try_from(path).unwrap_or(u16::MAX);
                            self.lower(net, dst, path, MIN_V6, mtu, secs);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
