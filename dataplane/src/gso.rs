//! TCP super-frames: the virtio-net header that has the kernel segment one sent whole, or its
//! segmentation by the switch (what a guest's NIC does with TSO), for the guests whose
//! super-frames reach it whole.
//!
//! # Design
//! A guest that keeps TSO hands its interface TCP segments of up to 64 KB (one header, the payload
//! of many MTU-sized segments). On a veth in native XDP mode the kernel takes TSO away from the
//! guest while the switch is attached, so none arrive; where frames reach the program through
//! generic XDP (tap devices, a veth in `auto` or generic mode) they do, and multi-buffer AF_XDP
//! (`XDP_USE_SG`) hands them to the worker as a chain of chunks. AF_XDP carries no GSO metadata (no
//! `gso_size`), so the switch segments at the largest size the ingress port's MTU allows, as any
//! TCP sender may: the receiver sees ordinary segments, each within the MTU.
//!
//! Towards a known unicast destination the worker sends a super-frame whole, through a packet
//! socket ([`crate::sys::packet`]) with the header [`Plan::vnet_hdr`] makes: the kernel (or the
//! egress NIC) cuts it as [`Plan::write`] would. Elsewhere the switch cuts it itself.
//!
//! A [`Plan`] reads the super-frame's headers once (Ethernet, at most one VLAN tag, IPv4 with
//! options or IPv6 with hop-by-hop and destination options, TCP with options); [`Plan::write`]
//! then builds segment `k`: the headers copied, the IP length set (and for IPv4 the
//! identification advanced by `k` and the header checksum recomputed), the sequence number
//! advanced by `k` times the segment size, FIN and PSH kept on the last segment only and CWR on the
//! first only, and the TCP checksum left partial (the pseudo-header sum), as the guest's own
//! stack leaves it for its NIC: the worker finishes it as it finishes a guest's partial
//! checksums, or has the egress port's kernel finish it on transmit. Anything else (UDP, whose GSO datagram size cannot be
//! known; IP fragments; tunnels) is not segmentable and is dropped by the caller as oversize.
//!
//! No function in this module panics on any input.

use crate::csum;
use crate::sys::packet::{VnetHdr, GSO_ECN, GSO_TCPV4, GSO_TCPV6, NEEDS_CSUM};
use crate::wire::ipproto::TCP;
use crate::wire::{
    be16, is_vlan_tpid, tcp, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_HEADER_LEN, VLAN_TAG_LEN,
};

/// How a super-frame splits into segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Offset of the IP header.
    l3: usize,
    /// Offset of the TCP header.
    l4: usize,
    /// Length of every header, Ethernet to TCP options.
    hdr: usize,
    /// End of the IP packet in the frame (Ethernet padding excluded).
    end: usize,
    /// Payload bytes per segment.
    mss: usize,
    ipv4: bool,
}

impl Plan {
    /// Plans the segmentation of `frame` into frames of at most `max_len` bytes. `None` when it
    /// is not a TCP segment this module can split.
    pub fn new(frame: &[u8], max_len: usize) -> Option<Plan> {
        Self::parse(frame, max_len).filter(|p| p.hdr < p.end && max_len > p.hdr)
    }

    /// The plan of a TCP frame sent as it is, one segment: like [`Plan::new`] with room for the
    /// whole frame, but a frame without a payload (a SYN, a FIN, an acknowledgment) has one too.
    pub fn lone(frame: &[u8]) -> Option<Plan> {
        Self::parse(frame, frame.len().saturating_add(1))
    }

    fn parse(frame: &[u8], max_len: usize) -> Option<Plan> {
        let mut l3 = ETH_HEADER_LEN;
        let mut ethertype = be16(frame, 12)?;
        if is_vlan_tpid(ethertype) {
            ethertype = be16(frame, 16)?;
            l3 += VLAN_TAG_LEN;
        }
        let (l4, end, ipv4) = match ethertype {
            ETHERTYPE_IPV4 => {
                let first = *frame.get(l3)?;
                let ihl = usize::from(first & 0x0f) * 4;
                let total = usize::from(be16(frame, l3 + 2)?);
                let fragment = be16(frame, l3 + 6)? & 0x3fff != 0;
                if first >> 4 != 4 || ihl < 20 || fragment || *frame.get(l3 + 9)? != TCP {
                    return None;
                }
                (l3 + ihl, l3 + total, true)
            }
            ETHERTYPE_IPV6 => {
                if *frame.get(l3)? >> 4 != 6 {
                    return None;
                }
                let end = l3 + 40 + usize::from(be16(frame, l3 + 4)?);
                let mut next = *frame.get(l3 + 6)?;
                let mut off = l3 + 40;
                // Hop-by-hop and destination options are copied into every segment (as many as
                // the checksum code walks).
                for _ in 0..csum::MAX_IPV6_EXT {
                    if next != 0 && next != 60 {
                        break;
                    }
                    next = *frame.get(off)?;
                    off += (usize::from(*frame.get(off + 1)?) + 1) * 8;
                }
                if next != TCP {
                    return None;
                }
                (off, end, false)
            }
            _ => return None,
        };
        let tcp_len = usize::from(*frame.get(l4 + 12)? >> 4) * 4;
        let hdr = l4 + tcp_len;
        if tcp_len < 20 || end > frame.len() || hdr > end {
            return None;
        }
        Some(Plan {
            l3,
            l4,
            hdr,
            end,
            mss: max_len.saturating_sub(hdr),
            ipv4,
        })
    }

    /// The destination address of the super-frame (4 or 16 bytes).
    pub fn destination<'a>(&self, frame: &'a [u8]) -> Option<&'a [u8]> {
        if self.ipv4 {
            frame.get(self.l3 + 16..self.l3 + 20)
        } else {
            frame.get(self.l3 + 24..self.l3 + 40)
        }
    }

    /// Offset of the IP header.
    pub fn l3(&self) -> usize {
        self.l3
    }

    /// Offset of the TCP header.
    pub fn l4(&self) -> usize {
        self.l4
    }

    /// Is it IPv4 (else IPv6)?
    pub fn ipv4(&self) -> bool {
        self.ipv4
    }

    /// Length of every header, Ethernet to TCP options.
    pub fn headers(&self) -> usize {
        self.hdr
    }

    /// The longest segment, headers included.
    pub fn segment_len(&self) -> usize {
        self.hdr + self.mss
    }

    /// End of the IP packet: the frame without its Ethernet padding.
    pub fn end(&self) -> usize {
        self.end
    }

    /// The virtio-net header that has the kernel cut `frame` as [`Plan::write`] would, into
    /// segments of at most `mss` payload bytes (the plan's own size at most), when the frame
    /// is sent whole through a packet socket ([`crate::sys::packet`]); its offsets moved by
    /// `shift` bytes (4 for a tag pushed in front of the IP header, -4 for one popped). A frame
    /// whose payload fits one segment gets no segmentation, only its checksum to finish. The
    /// frame's TCP checksum field must hold the pseudo-header sum ([`csum::make_partial`]).
    pub fn vnet_hdr(&self, frame: &[u8], mss: usize, shift: isize) -> VnetHdr {
        let mss = mss.min(self.mss);
        let at = |off: usize| off.saturating_add_signed(shift) as u16;
        let cwr = frame.get(self.l4 + 13).is_some_and(|f| f & tcp::CWR != 0);
        let gso_type = if self.end - self.hdr <= mss {
            0
        } else {
            let kind = if self.ipv4 { GSO_TCPV4 } else { GSO_TCPV6 };
            kind | if cwr { GSO_ECN } else { 0 }
        };
        VnetHdr {
            flags: NEEDS_CSUM,
            gso_type,
            hdr_len: at(self.hdr),
            gso_size: mss.min(usize::from(u16::MAX)) as u16,
            csum_start: at(self.l4),
            csum_offset: 16,
        }
    }

    /// How many segments the frame makes.
    pub fn segments(&self) -> usize {
        (self.end - self.hdr).div_ceil(self.mss)
    }

    /// Writes segment `k` of `frame` into `dst` and returns its length, or `None` if `k` is out
    /// of range or `dst` too small. The segment's TCP checksum holds the pseudo-header sum, for
    /// the device (or [`csum::finish`]) to finish.
    pub fn write(&self, frame: &[u8], k: usize, dst: &mut [u8]) -> Option<usize> {
        let from = self.hdr.checked_add(k.checked_mul(self.mss)?)?;
        if from >= self.end {
            return None;
        }
        let to = (from + self.mss).min(self.end);
        let len = self.hdr + (to - from);
        let out = dst.get_mut(..len)?;
        out[..self.hdr].copy_from_slice(frame.get(..self.hdr)?);
        out[self.hdr..].copy_from_slice(frame.get(from..to)?);
        let ip_len = len - self.l3;
        if self.ipv4 {
            put16(out, self.l3 + 2, ip_len as u16);
            let id = be16(out, self.l3 + 4)?.wrapping_add(k as u16);
            put16(out, self.l3 + 4, id);
            put16(out, self.l3 + 10, 0);
            let ihl = self.l4 - self.l3;
            let sum = csum::header_checksum(&out[self.l3..self.l3 + ihl]);
            put16(out, self.l3 + 10, sum);
        } else {
            put16(out, self.l3 + 4, (ip_len - 40) as u16);
        }
        let seq = u32::from_be_bytes(out.get(self.l4 + 4..self.l4 + 8)?.try_into().ok()?);
        let seq = seq.wrapping_add((k * self.mss) as u32);
        out[self.l4 + 4..self.l4 + 8].copy_from_slice(&seq.to_be_bytes());
        let last = to == self.end;
        let mut flags = out[self.l4 + 13];
        if !last {
            flags &= !(tcp::FIN | tcp::PSH);
        }
        if k > 0 {
            flags &= !tcp::CWR;
        }
        out[self.l4 + 13] = flags;
        // The pseudo-header sum, as a sender with checksum offload leaves it.
        if !csum::make_partial(out) {
            return None;
        }
        Some(len)
    }
}

#[inline]
fn put16(b: &mut [u8], at: usize, v: u16) {
    if let Some(s) = b.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests;
