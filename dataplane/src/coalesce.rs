//! TCP segments of one flow merged into one super-frame before they leave, as a receiving NIC's
//! driver merges them for its stack (GRO).
//!
//! # Design
//! A guest without TSO towards the switch (a veth in native XDP mode takes it away; a guest may
//! turn it off) sends MTU-sized segments, and the receiving guest's stack runs once for each.
//! Where the egress port is a VM's and sends super-frames whole (a packet socket with a
//! virtio-net header, [`crate::sys::packet`]), the worker merges the consecutive segments of one
//! flow it sends out of that port within one batch into one super-frame: the receiving stack
//! runs once for up to 64 KB, as it would behind a NIC with GRO, and the kernel (or the egress
//! NIC) cuts the frame again into the very segments it was made of wherever it must
//! ([`crate::gso::Plan::vnet_hdr`]: the segment size is the first segment's payload, or less
//! where the egress port's MTU is smaller).
//!
//! The rules are Linux's (`tcp_gro_receive`, `inet_gro_receive`, `ipv6_gro_receive`), kept
//! narrow: a segment joins a run only if it is the next one of the same flow and says nothing
//! the merged frame could not say for it.
//! - IPv4 without options and not a fragment, or IPv6 without extension headers; TCP carrying
//!   payload, with ACK and no flag but PSH (a PSH ends the run, and the merged frame carries it).
//! - Every header the same as the first segment's (Ethernet and tag, TOS or traffic class and
//!   flow label, TTL, addresses, ports, acknowledgment, window, TCP options byte for byte),
//!   but the IPv4 identification, one more than the last segment's (the kernel numbers the
//!   segments it cuts so; a sender that repeats one identification with DF, which Linux's GRO
//!   also merges, is not merged here: the virtio-net header cannot say so), and the sequence
//!   number, the last segment's end.
//! - Every segment but the last as long as the first, the last no longer; 64 KB at most.
//! - Every segment sound: its TCP checksum partial (left to the device) or correct, its IPv4
//!   header checksum correct. The merged frame's checksum is computed afresh, so a corrupted
//!   segment would be hidden in it: such a segment is never merged, and leaves as it came, for
//!   its receiver to drop.
//!
//! No function in this module panics on any input.

use crate::csum;
use crate::gso::Plan;
use crate::wire::{be16, tcp};

/// The longest IP packet a merged frame may be (IPv4's total length, IPv6's payload length).
const MAX_IP_LEN: usize = 65_535;

/// Where the headers of a TCP segment that may be merged lie: those of a super-frame's
/// [`Plan`], which reads them the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment(Plan);

impl Segment {
    /// The headers of `frame` if it is a TCP segment that may be merged (see the module's
    /// rules; its checksums are the caller's to check, [`sound`]). `None` for anything else.
    pub fn parse(frame: &[u8]) -> Option<Segment> {
        // Any segment size: only the headers matter.
        let p = Plan::new(frame, usize::MAX)?;
        // IPv4 without options, IPv6 without extension headers.
        let plain_ip = p.l4() - p.l3() == if p.ipv4() { 20 } else { 40 };
        let flags = *frame.get(p.l4() + 13)?;
        let plain_tcp = flags & !tcp::PSH == tcp::ACK && be16(frame, p.l4() + 18)? == 0;
        (plain_ip && plain_tcp).then_some(Segment(p))
    }

    /// Payload bytes.
    pub fn payload(&self) -> usize {
        self.0.end() - self.0.headers()
    }

    /// Length of every header, Ethernet to TCP options: where the payload starts.
    pub fn headers(&self) -> usize {
        self.0.headers()
    }

    fn l3(&self) -> usize {
        self.0.l3()
    }

    fn l4(&self) -> usize {
        self.0.l4()
    }

    fn ipv4(&self) -> bool {
        self.0.ipv4()
    }
}

/// Are the checksums of segment `seg` of `frame` sound: its IPv4 header checksum correct, and
/// its TCP checksum correct or, if `partial`, left to the device (the caller found the field
/// holding the pseudo-header sum)?
pub fn sound(frame: &[u8], seg: &Segment, partial: bool) -> bool {
    let header = !seg.ipv4()
        || frame
            .get(seg.l3()..seg.l4())
            .is_some_and(|h| csum::header_checksum(h) == 0);
    header && (partial || csum::verify(frame) == Some(true))
}

/// A run of segments of one flow being merged: what the next one must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    seg: Segment,
    /// Payload bytes of the first segment: of every one but the last.
    size: usize,
    /// The sequence number the next segment must have.
    next_seq: u32,
    /// The IPv4 identification the next segment must have.
    next_id: u16,
    /// Segments merged.
    count: u32,
    /// Payload bytes merged.
    bytes: usize,
    /// No segment may join any more: the last was short or carried PSH.
    ended: bool,
    /// The last segment carried PSH.
    psh: bool,
}

impl Run {
    /// A run that starts with segment `seg` of `frame`.
    pub fn start(frame: &[u8], seg: Segment) -> Run {
        let mut run = Run {
            seg,
            size: seg.payload(),
            next_seq: 0,
            next_id: 0,
            count: 0,
            bytes: 0,
            ended: false,
            psh: false,
        };
        run.advance(frame, &seg);
        run
    }

    fn advance(&mut self, frame: &[u8], seg: &Segment) {
        let payload = seg.payload();
        let seq = read32(frame, seg.l4() + 4).unwrap_or(0);
        self.next_seq = seq.wrapping_add(payload as u32);
        self.next_id = be16(frame, seg.l3() + 4).unwrap_or(0).wrapping_add(1);
        self.count += 1;
        self.bytes += payload;
        self.psh = frame.get(seg.l4() + 13).is_some_and(|f| f & tcp::PSH != 0);
        self.ended = payload < self.size || self.psh;
    }

    /// Length of every header, Ethernet to TCP options.
    pub fn headers(&self) -> usize {
        self.seg.headers()
    }

    /// Where the first segment's payload lies in its frame.
    pub fn first_payload(&self) -> core::ops::Range<usize> {
        self.seg.headers()..self.seg.headers() + self.size
    }

    /// Segments merged so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The payload size of every segment but the last: the merged frame's segment size.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Does segment `seg` of `frame` follow the run, whose first segment's headers are `head`
    /// (at least [`Segment::headers`] bytes)? If so, the run now includes it: the caller appends
    /// its payload ([`Segment::payload`], from [`Segment::headers`]).
    pub fn join(&mut self, head: &[u8], frame: &[u8], seg: &Segment) -> bool {
        let s = &self.seg;
        let payload = seg.payload();
        if self.ended
            || seg.headers() != s.headers()
            || seg.l4() != s.l4()
            || payload > self.size
            || s.headers() - s.l3() + self.bytes + payload > MAX_IP_LEN
        {
            return false;
        }
        let (Some(h), Some(f)) = (head.get(..s.headers()), frame.get(..s.headers())) else {
            return false;
        };
        let same = |from: usize, to: usize| h[from..to] == f[from..to];
        let (l3, l4) = (s.l3(), s.l4());
        let ip = if s.ipv4() {
            // Version to TOS; flags to protocol; the addresses.
            same(0, l3 + 2)
                && same(l3 + 6, l3 + 10)
                && same(l3 + 12, l3 + 20)
                && be16(f, l3 + 4) == Some(self.next_id)
        } else {
            // Version, traffic class, flow label; next header to the addresses.
            same(0, l3 + 4) && same(l3 + 6, l3 + 40)
        };
        let tcp = ip
            && same(l4, l4 + 4)
            && read32(f, l4 + 4) == Some(self.next_seq)
            && same(l4 + 8, l4 + 13)
            && h[l4 + 13] & !tcp::PSH == f[l4 + 13] & !tcp::PSH
            && same(l4 + 14, l4 + 16)
            && same(l4 + 18, s.headers());
        if tcp {
            self.advance(frame, seg);
        }
        tcp
    }

    /// Makes the headers of `merged` (the first segment's headers, then every segment's
    /// payload) say what it now holds: the IP length, the IPv4 header checksum, and PSH if the
    /// last segment had it. The TCP checksum is the sender's to make partial
    /// ([`csum::make_partial`]). Returns the merged frame's length, or `None` if `merged` is
    /// shorter than the run.
    pub fn finish(&self, merged: &mut [u8]) -> Option<usize> {
        let s = &self.seg;
        let end = s.headers() + self.bytes;
        let frame = merged.get_mut(..end)?;
        if s.ipv4() {
            put16(frame, s.l3() + 2, u16::try_from(end - s.l3()).ok()?);
            put16(frame, s.l3() + 10, 0);
            let sum = csum::header_checksum(&frame[s.l3()..s.l4()]);
            put16(frame, s.l3() + 10, sum);
        } else {
            put16(frame, s.l3() + 4, u16::try_from(end - s.l3() - 40).ok()?);
        }
        if self.psh {
            frame[s.l4() + 13] |= tcp::PSH;
        }
        Some(end)
    }
}

fn read32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests;
