//! Transport checksums a sender left for the device to finish (`CHECKSUM_PARTIAL`).
//!
//! # Design
//! A guest whose virtual NIC offers transmit checksum offload (veth and tap with virtio-net
//! offloads, Linux's defaults) hands its TCP and UDP segments over with the checksum only begun:
//! the field holds the pseudo-header sum (addresses, protocol, length), folded but not
//! complemented, and the device is expected to add the segment's bytes and complement. AF_XDP
//! copies the bytes and drops the skb metadata that said so, so the switch must finish the job,
//! or the receiver (another VM, or a NIC that does not rewrite the field) drops every segment.
//!
//! The headers alone tell a partial checksum from a complete one: a frame is partial when its
//! checksum field equals the pseudo-header sum computed from its own IP header ([`pending`]).
//! Only those are finished, one of two ways. Where the egress port's kernel can finish it on
//! transmit (AF_XDP transmit metadata, copy mode, a veth or tap), the worker asks it to, with the
//! [`Partial`]'s offsets (`csum_start`, `csum_offset`): the frame leaves as the guest's stack
//! left it, and a veth hands it to the receiving guest as a bridge would, unverified. Elsewhere
//! the switch finishes it ([`finish`]): the ones'-complement sum of the segment (which includes
//! the field), complemented, exactly what the device would have written. A frame whose checksum
//! is simply wrong is left as it is, so the receiver drops it as it would on a wire; real
//! corruption is never hidden. Completing is idempotent: a complete, correct checksum that
//! happens to equal the pseudo-header sum (one frame in 65 536) is rewritten with the same value.
//!
//! SCTP's offloaded CRC32c works the other way: the sender leaves the field zero and the device
//! computes the CRC over the packet; a zero field is filled in with the CRC (RFC 9653's zero
//! checksum, where negotiated, accepts a correct CRC as well), any other value is left alone.
//!
//! Handled: IPv4 (with options) and IPv6 (through hop-by-hop and destination-options headers),
//! TCP, UDP and SCTP, behind at most one VLAN tag. Left alone: fragments (Linux completes
//! checksums before fragmenting), IPv6 routing headers (the pseudo-header would name the final
//! destination), UDP with checksum 0 (none), UDP-Lite, tunnels, and anything truncated or
//! inconsistent (an IP length beyond the frame).
//!
//! No function in this module panics on any input, and none allocates.

use crate::wire::ipproto::{SCTP, TCP, UDP};
use crate::wire::{
    be16, is_vlan_tpid, tcp, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_HEADER_LEN, VLAN_TAG_LEN,
};

const SCTP_CSUM_OFFSET: usize = 8;
const SCTP_HEADER_LEN: usize = 12;
const TCP_CSUM_OFFSET: usize = 16;
const TCP_MIN_LEN: usize = 20;
const UDP_CSUM_OFFSET: usize = 6;
const UDP_LEN: usize = 8;
/// IPv6 extension headers walked before giving up.
pub(crate) const MAX_IPV6_EXT: usize = 8;

/// What [`complete_partial`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// Not a TCP or UDP segment it can check (other protocols, fragments, truncated headers).
    NotApplicable,
    /// The field did not hold the pseudo-header sum: complete (correct or not), left untouched.
    Untouched,
    /// The field held the pseudo-header sum and now holds the full checksum.
    Completed,
}

/// Where a segment's transport checksum lives, and the sum of its pseudo-header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    /// Offset of the transport header in the frame.
    start: usize,
    /// Length of the transport header and payload (from the IP header, not the frame: a frame
    /// may carry Ethernet padding).
    len: usize,
    /// Offset of the checksum field from `start`.
    field: usize,
    proto: u8,
    /// Pseudo-header sum, not folded.
    pseudo: u64,
}

/// A transport checksum its sender left for the device to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// TCP or UDP: the field holds the pseudo-header sum.
    Partial(Partial),
    /// SCTP: the CRC32c field left zero.
    Crc {
        /// Offset of the SCTP header in the frame.
        start: usize,
        /// Length of the SCTP packet.
        len: usize,
    },
}

/// Where a partial TCP or UDP checksum is finished, as the kernel's `csum_start` and
/// `csum_offset` say it to a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partial {
    /// Offset of the transport header in the frame: the sum covers it to the segment's end.
    pub start: usize,
    /// Offset of the checksum field from `start`.
    pub field: usize,
    /// Length of the transport header and payload.
    pub len: usize,
    udp: bool,
}

impl Partial {
    /// Does the segment end where a frame of `frame_len` bytes ends? A device sums from `start`
    /// to the frame's end, so a frame with Ethernet padding after its segment must be finished
    /// by [`finish`] instead.
    pub fn ends(&self, frame_len: usize) -> bool {
        self.start + self.len == frame_len
    }
}

/// What the transport checksum of `frame` still needs: `Some` if, and only if, its TCP or UDP
/// field holds exactly the pseudo-header sum (a partial checksum left for the device), or its
/// SCTP CRC32c field is zero.
pub fn pending(frame: &[u8]) -> Option<Pending> {
    pending_in(frame, segment(frame)?)
}

/// What the worker reads of every frame it forwards, in one pass over its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Its transport checksum was left for the device ([`pending`] finds it so).
    pub partial: bool,
    /// Its headers hold nothing for the MSS watch ([`crate::mss::MssTable::observe`], which
    /// reads TCP segments with SYN and ICMP errors): a TCP segment without SYN, UDP, SCTP, or
    /// not an IP packet at all.
    pub plain: bool,
}

/// [`pending`]`(frame).is_some()`, and whether `frame` is plain ([`Seen`]). Inline: the
/// worker calls it for every frame it forwards. The EtherType is read once.
#[inline(always)]
pub fn seen(frame: &[u8]) -> Seen {
    let Some((l3, ethertype)) = network(frame) else {
        return Seen {
            partial: false,
            plain: true,
        };
    };
    let Some(seg) = segment_at(frame, l3, ethertype) else {
        return Seen {
            partial: false,
            plain: !is_ip(frame, l3, ethertype),
        };
    };
    let syn = seg.proto == TCP && frame.get(seg.start + 13).is_some_and(|f| f & tcp::SYN != 0);
    Seen {
        partial: pending_in(frame, seg).is_some(),
        plain: !syn,
    }
}

/// [`pending`] for the segment `seg` of `frame`.
#[inline(always)]
fn pending_in(frame: &[u8], seg: Segment) -> Option<Pending> {
    let bytes = frame.get(seg.start..seg.start + seg.len)?;
    if seg.proto == SCTP {
        // SCTP's CRC32c offload leaves the field zero; a sender without offload never writes
        // zero (one CRC in 2^32), and RFC 9653's zero checksum accepts a correct CRC as well.
        return (bytes[SCTP_CSUM_OFFSET..SCTP_CSUM_OFFSET + 4] == [0; 4]).then_some(Pending::Crc {
            start: seg.start,
            len: seg.len,
        });
    }
    let field = u16::from_be_bytes([bytes[seg.field], bytes[seg.field + 1]]);
    let partial = fold(seg.pseudo);
    // 0x0000 and 0xffff are both zero in ones' complement; a TCP sender may write either (a UDP
    // field of 0 means "no checksum" and stays so).
    if field != partial && !(partial == 0xffff && field == 0 && seg.proto == TCP) {
        return None;
    }
    Some(Pending::Partial(Partial {
        start: seg.start,
        field: seg.field,
        len: seg.len,
        udp: seg.proto == UDP,
    }))
}

/// Finishes the checksum [`pending`] found in `frame`, as the device would have: the
/// ones'-complement sum of the segment (which includes the pseudo-header sum in the field),
/// complemented; or SCTP's CRC32c. Does nothing if `frame` is shorter than `p` says.
pub fn finish(frame: &mut [u8], p: Pending) {
    match p {
        Pending::Crc { start, len } => {
            let Some(bytes) = frame.get_mut(start..start + len) else {
                return;
            };
            let crc = crc32c(&[bytes]);
            bytes[SCTP_CSUM_OFFSET..SCTP_CSUM_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
        }
        Pending::Partial(p) => {
            let Some(bytes) = frame.get_mut(p.start..p.start + p.len) else {
                return;
            };
            let mut sum = !fold(sum_words(bytes, 0));
            if sum == 0 && p.udp {
                // RFC 768: a computed zero is sent as all ones (zero means "no checksum").
                sum = 0xffff;
            }
            bytes[p.field..p.field + 2].copy_from_slice(&sum.to_be_bytes());
        }
    }
}

/// Is `frame`, whose network header of `ethertype` starts at `l3`, an IPv4 or IPv6 packet: its
/// EtherType says so, and so does the version in its first byte? (What [`seen`] cannot read
/// further, it leaves to the MSS watch only if so.) Out of line: the frames [`seen`] reads to
/// their transport header never ask.
#[inline(never)]
fn is_ip(frame: &[u8], l3: usize, ethertype: u16) -> bool {
    let version = frame.get(l3).map(|b| b >> 4);
    matches!(
        (ethertype, version),
        (ETHERTYPE_IPV4, Some(4)) | (ETHERTYPE_IPV6, Some(6))
    )
}

/// Completes the TCP or UDP checksum of `frame` if, and only if, its field holds exactly the
/// pseudo-header sum (a partial checksum left for the device), and SCTP's CRC32c if its field is
/// zero: [`pending`], then [`finish`].
pub fn complete_partial(frame: &mut [u8]) -> Checksum {
    let Some(seg) = segment(frame) else {
        return Checksum::NotApplicable;
    };
    match pending_in(frame, seg) {
        Some(p) => {
            finish(frame, p);
            Checksum::Completed
        }
        None => Checksum::Untouched,
    }
}

/// Is the transport checksum of `frame` correct? `None` when `frame` is not a TCP, UDP or SCTP
/// segment [`complete_partial`] would look at. For tests and tools, and for the switch only in
/// [`tso_sound`], on the rare super-frame whose checksum is not partial.
pub fn verify(frame: &[u8]) -> Option<bool> {
    let seg = segment(frame)?;
    let bytes = frame.get(seg.start..seg.start + seg.len)?;
    if seg.proto == SCTP {
        let (head, rest) = bytes.split_at(SCTP_CSUM_OFFSET);
        let (field, chunks) = rest.split_at(4);
        let crc = crc32c(&[head, &[0; 4], chunks]);
        return Some(field == crc.to_le_bytes());
    }
    if seg.proto == UDP && bytes[seg.field] == 0 && bytes[seg.field + 1] == 0 {
        return Some(true);
    }
    Some(fold(sum_words(bytes, seg.pseudo)) == 0xffff)
}

/// May the TCP super-frame `frame` be cut into segments with fresh checksums without hiding a
/// corruption? Yes if its checksum is one a TSO send or the kernel's GRO leaves: the
/// pseudo-header sum over the frame's length (Linux), or without the length (the convention of
/// some NICs' TSO, which a VMM emulating one may pass on); or if it is correct. Any other value
/// is a wrong checksum, which segments computed afresh would hide.
pub fn tso_sound(frame: &[u8]) -> bool {
    let Some(seg) = segment(frame).filter(|s| s.proto == TCP) else {
        return false;
    };
    if matches!(pending_in(frame, seg), Some(Pending::Partial(_))) {
        return true;
    }
    let Some(bytes) = frame.get(seg.start..seg.start + seg.len) else {
        return false;
    };
    let field = u16::from_be_bytes([bytes[seg.field], bytes[seg.field + 1]]);
    // The pseudo-header sum counts the length once: taken out, it is the other convention's.
    field == fold(seg.pseudo - seg.len as u64) || verify(frame) == Some(true)
}

/// Writes the pseudo-header sum into the TCP or UDP checksum field of `frame`, as a sender with
/// checksum offload leaves it (the worker, for a super-frame it sends whole; tests, tools and
/// benchmarks). Returns false (and changes nothing) when `frame` is not a segment
/// [`complete_partial`] would look at.
pub fn make_partial(frame: &mut [u8]) -> bool {
    let Some(seg) = segment(frame) else {
        return false;
    };
    let at = seg.start + seg.field;
    if seg.proto == SCTP {
        frame[at..at + 4].fill(0);
    } else {
        frame[at..at + 2].copy_from_slice(&fold(seg.pseudo).to_be_bytes());
    }
    true
}

/// The ICMPv6 checksum of `msg` (its checksum field zero) between `src` and `dst` (RFC 4443
/// 2.3: over the IPv6 pseudo-header and the message).
pub(crate) fn icmpv6_checksum(src: &[u8; 16], dst: &[u8; 16], msg: &[u8]) -> u16 {
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX).to_be_bytes();
    let pseudo = sum_header(&len, sum_header(dst, sum_header(src, 0)));
    !fold(sum_words(
        msg,
        pseudo + u64::from(crate::wire::ipproto::ICMPV6),
    ))
}

/// Finishes a partial checksum as a device asked with `csum_start` and `csum_offset` does (and
/// the kernel's software fallback, `skb_checksum_help`): the sum from `start` to the frame's
/// end, complemented, a zero sent as all ones, stored at `start + field`. For the in-memory
/// port's emulation of the kernel and for tests; the caller checks the offsets fit.
pub(crate) fn device_finish(frame: &mut [u8], start: usize, field: usize) {
    let mut sum = !fold(sum_words(&frame[start..], 0));
    if sum == 0 {
        sum = 0xffff;
    }
    frame[start + field..start + field + 2].copy_from_slice(&sum.to_be_bytes());
}

/// The checksum of an IPv4 header whose checksum field is zero.
pub(crate) fn header_checksum(header: &[u8]) -> u16 {
    !fold(sum_header(header, 0))
}

/// Finds the TCP or UDP segment of an Ethernet frame (untagged or with one tag).
#[inline(always)]
fn segment(frame: &[u8]) -> Option<Segment> {
    let (l3, ethertype) = network(frame)?;
    segment_at(frame, l3, ethertype)
}

/// Where the network header of an Ethernet frame (untagged or with one tag) starts, and its
/// EtherType.
#[inline(always)]
fn network(frame: &[u8]) -> Option<(usize, u16)> {
    let ethertype = be16(frame, 12)?;
    if is_vlan_tpid(ethertype) {
        return Some((ETH_HEADER_LEN + VLAN_TAG_LEN, be16(frame, 16)?));
    }
    Some((ETH_HEADER_LEN, ethertype))
}

/// [`segment`] of a frame whose network header of `ethertype` starts at `l3`.
#[inline(always)]
fn segment_at(frame: &[u8], l3: usize, ethertype: u16) -> Option<Segment> {
    let ip = frame.get(l3..)?;
    let (start, len, proto, pseudo) = match ethertype {
        ETHERTYPE_IPV4 => ipv4(ip)?,
        ETHERTYPE_IPV6 => ipv6(ip)?,
        _ => return None,
    };
    let (field, min) = match proto {
        TCP => (TCP_CSUM_OFFSET, TCP_MIN_LEN),
        UDP => (UDP_CSUM_OFFSET, UDP_LEN),
        SCTP => (SCTP_CSUM_OFFSET, SCTP_HEADER_LEN),
        _ => return None,
    };
    if len < min || start.checked_add(len)? > ip.len() {
        return None;
    }
    if proto == UDP && usize::from(be16(ip, start + 4)?) != len {
        return None;
    }
    Some(Segment {
        start: l3 + start,
        len,
        field,
        proto,
        pseudo,
    })
}

/// IPv4: (transport offset, transport length, protocol, pseudo-header sum).
#[inline(always)]
fn ipv4(ip: &[u8]) -> Option<(usize, usize, u8, u64)> {
    let first = *ip.first()?;
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < 20 || ip.len() < ihl {
        return None;
    }
    let total = usize::from(be16(ip, 2)?);
    // More fragments, or not the first: Linux finishes checksums before it fragments.
    if be16(ip, 6)? & 0x3fff != 0 || total < ihl || total > ip.len() {
        return None;
    }
    let proto = ip[9];
    let len = total - ihl;
    let pseudo = sum_header(&ip[12..20], u64::from(proto) + len as u64);
    Some((ihl, len, proto, pseudo))
}

/// IPv6: (transport offset, transport length, protocol, pseudo-header sum).
fn ipv6(ip: &[u8]) -> Option<(usize, usize, u8, u64)> {
    if ip.len() < 40 || ip[0] >> 4 != 6 {
        return None;
    }
    let payload = usize::from(be16(ip, 4)?);
    // A payload length of 0 announces a jumbogram: not handled.
    if payload == 0 || 40 + payload > ip.len() {
        return None;
    }
    let (off, next) = ipv6_upper(ip)?;
    let len = (40 + payload).checked_sub(off)?;
    let pseudo = sum_header(&ip[8..40], u64::from(next) + len as u64);
    Some((off, len, next, pseudo))
}

/// Where the upper-layer header of the IPv6 packet `ip` (its fixed header first, checked by the
/// caller) starts, and its protocol: after the hop-by-hop and destination options headers, at
/// most [`MAX_IPV6_EXT`] of them. Routing (43), fragment (44) and any other header end the walk
/// and are returned as the protocol: a routing header changes the pseudo-header's destination,
/// and a fragment carries no whole upper-layer message. `None` when an options header overruns
/// the packet.
pub(crate) fn ipv6_upper(ip: &[u8]) -> Option<(usize, u8)> {
    let mut next = *ip.get(6)?;
    let mut off = 40;
    for _ in 0..MAX_IPV6_EXT {
        match next {
            0 | 60 => {
                let ext = ip.get(off..off + 2)?;
                next = ext[0];
                off += (usize::from(ext[1]) + 1) * 8;
            }
            _ => break,
        }
    }
    (off <= ip.len()).then_some((off, next))
}

/// Adds a few header bytes (an even number) to `sum` as ones'-complement 16-bit words: the
/// pseudo-header's addresses, where setting up [`sum_words`]'s wide loop costs more than it saves.
/// Four bytes at a time, as big-endian 32-bit words: a word's high half counts 2^16 times its
/// value, which is the value itself modulo 2^16 - 1, so the folded sum is the same (the unfolded
/// one is not, and no caller compares it unfolded).
#[inline]
fn sum_header(bytes: &[u8], sum: u64) -> u64 {
    debug_assert!(
        bytes.len().is_multiple_of(2),
        "header bytes come in 16-bit words"
    );
    let mut words = bytes.chunks_exact(4);
    let mut sum = sum;
    for w in &mut words {
        sum += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    if let &[a, b] = words.remainder() {
        sum += u64::from(u16::from_be_bytes([a, b]));
    }
    sum
}

/// Adds `data` to `sum` as big-endian 16-bit words (an odd last byte is padded with zero). The
/// result is not folded: the caller folds. A `u64` holds the sum of any frame without overflow.
///
/// The words are read in the machine's byte order, 8 bytes at a time, and the folded sum is
/// swapped once at the end: the ones'-complement sum does not depend on byte order but for that
/// swap (RFC 1071, 2.B), and so the loop needs no per-word swaps (it vectorises).
#[inline]
fn sum_words(data: &[u8], sum: u64) -> u64 {
    let mut acc = [0u64; 4];
    let mut blocks = data.chunks_exact(32);
    for b in &mut blocks {
        for (k, a) in acc.iter_mut().enumerate() {
            let w = u64::from_ne_bytes(word(&b[k * 8..k * 8 + 8]));
            *a += (w >> 32) + (w & 0xffff_ffff);
        }
    }
    let mut total = acc.iter().sum::<u64>();
    let mut words = blocks.remainder().chunks_exact(8);
    for w in &mut words {
        let w = u64::from_ne_bytes(word(w));
        total += (w >> 32) + (w & 0xffff_ffff);
    }
    let mut pairs = words.remainder().chunks_exact(2);
    for p in &mut pairs {
        total += u64::from(u16::from_ne_bytes([p[0], p[1]]));
    }
    if let &[last] = pairs.remainder() {
        // Padded with a zero: an odd last byte is the high byte of its 16-bit word (RFC 1071).
        total += u64::from(u16::from_ne_bytes([last, 0]));
    }
    sum + u64::from(u16::from_be(fold(total)))
}

/// Exactly 8 bytes as an array (callers pass 8-byte chunks).
#[inline]
fn word(b: &[u8]) -> [u8; 8] {
    let mut w = [0u8; 8];
    if let Ok(a) = <[u8; 8]>::try_from(b) {
        w = a;
    }
    w
}

/// CRC32c (Castagnoli, reflected polynomial 0x82f63b78), as SCTP uses it (RFC 9260, appendix A),
/// over the concatenation of `parts`. A byte at a time: SCTP is rare and this is not its hot path.
fn crc32c(parts: &[&[u8]]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0x82f6_3b78
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut crc = !0u32;
    for &b in parts.iter().flat_map(|p| p.iter()) {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// Folds a sum into 16 bits with end-around carry (not complemented).
#[inline]
fn fold(mut sum: u64) -> u16 {
    // Two 32-bit halves, then 16-bit halves twice: no data-dependent loop.
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

#[cfg(test)]
mod tests;
