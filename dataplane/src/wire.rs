//! Checked views of the frame headers the switch reads: Ethernet II and 802.1Q.
//!
//! # Design
//! Every view is built with `new_checked`, which performs the only length check; after it every
//! accessor is infallible and never indexes outside the buffer. Unknown EtherTypes stay
//! representable: the switch forwards by MAC and VLAN only and never needs to understand the payload
//! (port security, in `pipeline`, reads ARP and IP source addresses through its own checked views).
//!
//! No function in this module panics on any input.

use core::fmt;

/// Length of an Ethernet II header without a VLAN tag.
pub const ETH_HEADER_LEN: usize = 14;
/// Length of one 802.1Q tag (TPID + TCI).
pub const VLAN_TAG_LEN: usize = 4;
/// EtherType of an 802.1Q customer tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType of an 802.1ad service tag (QinQ outer tag).
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// EtherType of the legacy QinQ tag some switches still emit.
pub const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// IP protocol numbers the switch reads (checksums, segmentation, segment-size learning).
pub mod ipproto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

/// TCP header flags the switch reads (connection tracking, segments merged and cut, the MSS
/// watch, the partial-checksum test's pass).
pub mod tcp {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// CWR.
    pub const CWR: u8 = 0x80;
}

mod field {
    use core::ops::Range;
    pub(super) const DESTINATION: Range<usize> = 0..6;
    pub(super) const SOURCE: Range<usize> = 6..12;
    pub(super) const ETHERTYPE: Range<usize> = 12..14;
    /// The TCI of the first tag, when the frame is tagged.
    pub(super) const TCI: Range<usize> = 14..16;
    /// The EtherType after the first tag.
    pub(super) const INNER_ETHERTYPE: Range<usize> = 16..18;
}

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The broadcast address ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    /// The all-zero address, never a valid source.
    pub const ZERO: Mac = Mac([0; 6]);

    /// Group (multicast or broadcast) addresses have the I/G bit set.
    #[inline]
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }

    /// The address as the low 48 bits of a `u64`.
    #[inline]
    pub fn to_u64(self) -> u64 {
        let b = self.0;
        // The zeros last and a shift, rather than first: one byte swap of the register the six
        // bytes arrive in, where the zeros first cost a shuffle of every byte.
        u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], 0, 0]) >> 16
    }

    /// The inverse of [`Mac::to_u64`]; the top 16 bits are ignored.
    #[inline]
    pub fn from_u64(v: u64) -> Mac {
        let b = v.to_be_bytes();
        Mac([b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-` separators).
    pub fn parse(s: &str) -> Option<Mac> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let part = parts.next()?;
            if part.len() != 2 {
                return None;
            }
            *byte = u8::from_str_radix(part, 16).ok()?;
        }
        parts.next().is_none().then_some(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The big-endian 16-bit word at `at`, if `b` holds it.
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    match b.get(at..at + 2)? {
        &[x, y] => Some(u16::from_be_bytes([x, y])),
        _ => None,
    }
}

/// Is this EtherType one of the VLAN tag protocol identifiers?
#[inline]
pub fn is_vlan_tpid(ethertype: u16) -> bool {
    matches!(
        ethertype,
        ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
    )
}

/// Is `frame` priority-tagged: an 802.1Q tag of VLAN 0, which carries a priority only, with no
/// tag inside it? 802.1Q, the Linux bridge and Open vSwitch take such a frame as untagged.
#[inline]
pub fn is_priority_tagged(frame: &[u8]) -> bool {
    match frame.get(12..18) {
        Some(&[0x81, 0x00, hi, lo, t0, t1]) => {
            hi & 0x0f == 0 && lo == 0 && !is_vlan_tpid(u16::from_be_bytes([t0, t1]))
        }
        _ => false,
    }
}

/// Does `frame` carry TCP right after its IP header (behind one tag at most; an IPv6 header
/// followed by extension headers reads as not)?
#[inline]
pub fn carries_tcp(frame: &[u8]) -> bool {
    let tagged = be16(frame, 12).is_some_and(is_vlan_tpid);
    let l3 = if tagged {
        ETH_HEADER_LEN + VLAN_TAG_LEN
    } else {
        ETH_HEADER_LEN
    };
    match be16(frame, l3 - 2) {
        Some(ETHERTYPE_IPV4) => frame.get(l3 + 9) == Some(&ipproto::TCP),
        Some(ETHERTYPE_IPV6) => frame.get(l3 + 6) == Some(&ipproto::TCP),
        _ => false,
    }
}

/// Removes the tag of a frame [`is_priority_tagged`] found priority-tagged, in place
/// ([`pop_vlan_tag`]). Returns the untagged frame, `frame`'s last `len - 4` bytes (all of
/// `frame` if it is too short to hold a tag).
#[cold]
pub fn strip_priority_tag(frame: &mut [u8]) -> &mut [u8] {
    let len = frame.len();
    match pop_vlan_tag(frame, 0, len) {
        Some(off) => &mut frame[off..],
        None => frame,
    }
}

/// A read-only view of an Ethernet frame whose header length has been checked.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<'a> {
    buf: &'a [u8],
}

/// The frame is shorter than an Ethernet header, or shorter than the VLAN tag it announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated;

impl<'a> EthernetFrame<'a> {
    /// Checks that `buf` holds a full Ethernet header, and a full tag if the frame announces one.
    #[inline]
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, Truncated> {
        if buf.len() < ETH_HEADER_LEN {
            return Err(Truncated);
        }
        let frame = EthernetFrame { buf };
        if frame.is_tagged() && buf.len() < ETH_HEADER_LEN + VLAN_TAG_LEN {
            return Err(Truncated);
        }
        Ok(frame)
    }

    #[inline]
    fn u16_at(&self, range: core::ops::Range<usize>) -> u16 {
        // The constructor checked the lengths every caller relies on; `get` keeps this total anyway.
        match self.buf.get(range) {
            Some(&[a, b]) => u16::from_be_bytes([a, b]),
            _ => 0,
        }
    }

    #[inline]
    fn mac_at(&self, range: core::ops::Range<usize>) -> Mac {
        let mut m = [0u8; 6];
        if let Some(s) = self.buf.get(range) {
            m.copy_from_slice(s);
        }
        Mac(m)
    }

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> Mac {
        self.mac_at(field::DESTINATION)
    }

    /// Source address.
    #[inline]
    pub fn src(&self) -> Mac {
        self.mac_at(field::SOURCE)
    }

    /// The outer EtherType (a TPID if the frame is tagged).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        self.u16_at(field::ETHERTYPE)
    }

    /// Does the frame carry at least one VLAN tag (802.1Q or 802.1ad)?
    #[inline]
    pub fn is_tagged(&self) -> bool {
        is_vlan_tpid(self.ethertype())
    }

    /// VLAN id of the outer tag, if tagged.
    #[inline]
    pub fn vlan_id(&self) -> Option<u16> {
        self.is_tagged().then(|| self.u16_at(field::TCI) & 0x0fff)
    }

    /// Is the frame tagged twice (a tag inside the outer tag)?
    #[inline]
    pub fn is_double_tagged(&self) -> bool {
        self.is_tagged() && is_vlan_tpid(self.u16_at(field::INNER_ETHERTYPE))
    }

    /// The EtherType of the payload, after any single tag.
    #[inline]
    pub fn payload_ethertype(&self) -> u16 {
        if self.is_tagged() {
            self.u16_at(field::INNER_ETHERTYPE)
        } else {
            self.ethertype()
        }
    }

    /// The bytes after the Ethernet header and any single tag.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let start = if self.is_tagged() {
            ETH_HEADER_LEN + VLAN_TAG_LEN
        } else {
            ETH_HEADER_LEN
        };
        self.buf.get(start..).unwrap_or(&[])
    }
}

/// Writes an 802.1Q tag with `vid` into `chunk`, for the untagged frame at `chunk[off..off+len]`,
/// by moving the two addresses 4 bytes towards the start. Returns the new offset of the frame.
///
/// Returns `None` (and leaves the chunk untouched) when there is no headroom or the range is
/// outside the chunk.
#[inline]
pub fn push_vlan_tag(chunk: &mut [u8], off: usize, len: usize, vid: u16) -> Option<usize> {
    let new_off = off.checked_sub(VLAN_TAG_LEN)?;
    if len < ETH_HEADER_LEN || off.checked_add(len)? > chunk.len() {
        return None;
    }
    chunk.copy_within(off..off + 12, new_off);
    let tag = [0x81, 0x00, (vid >> 8) as u8 & 0x0f, vid as u8];
    chunk[new_off + 12..new_off + 16].copy_from_slice(&tag);
    Some(new_off)
}

/// Removes the outer tag of the tagged frame at `chunk[off..off+len]` by moving the two addresses
/// 4 bytes towards the payload. Returns the new offset (the new length is `len - 4`).
#[inline]
pub fn pop_vlan_tag(chunk: &mut [u8], off: usize, len: usize) -> Option<usize> {
    if len < ETH_HEADER_LEN + VLAN_TAG_LEN || off.checked_add(len)? > chunk.len() {
        return None;
    }
    chunk.copy_within(off..off + 12, off + VLAN_TAG_LEN);
    Some(off + VLAN_TAG_LEN)
}

/// Builds a frame for tests and tools: `dst`, `src`, an optional VLAN tag, `ethertype`, payload.
pub fn build_frame(
    dst: Mac,
    src: Mac,
    vlan: Option<u16>,
    ethertype: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_HEADER_LEN + VLAN_TAG_LEN + payload.len());
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    if let Some(vid) = vlan {
        f.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        f.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = Mac([0x02, 0, 0, 0, 0, 0xa]);
    const B: Mac = Mac([0x02, 0, 0, 0, 0, 0xb]);

    #[test]
    fn only_an_802_1q_tag_of_vlan_0_with_no_tag_inside_is_a_priority_tag() {
        let tagged = |tpid: u16, tci: u16, inner: u16| {
            let mut f = build_frame(B, A, None, tpid, &[0; 46]);
            f[14..16].copy_from_slice(&tci.to_be_bytes());
            f[16..18].copy_from_slice(&inner.to_be_bytes());
            f
        };
        assert!(is_priority_tagged(&tagged(
            ETHERTYPE_VLAN,
            0,
            ETHERTYPE_IPV4
        )));
        assert!(is_priority_tagged(&tagged(ETHERTYPE_VLAN, 0xe000, 0x0806)));
        assert!(
            is_priority_tagged(&tagged(ETHERTYPE_VLAN, 0x1000, 0x0806)),
            "DEI set"
        );
        assert!(!is_priority_tagged(&tagged(
            ETHERTYPE_VLAN,
            1,
            ETHERTYPE_IPV4
        )));
        assert!(!is_priority_tagged(&tagged(
            ETHERTYPE_VLAN,
            0x0100,
            ETHERTYPE_IPV4
        )));
        assert!(!is_priority_tagged(&tagged(
            ETHERTYPE_QINQ,
            0,
            ETHERTYPE_IPV4
        )));
        assert!(!is_priority_tagged(&tagged(
            ETHERTYPE_VLAN,
            0,
            ETHERTYPE_VLAN
        )));
        assert!(!is_priority_tagged(&build_frame(
            B,
            A,
            None,
            ETHERTYPE_IPV4,
            &[0; 46]
        )));
        assert!(!is_priority_tagged(&tagged(ETHERTYPE_VLAN, 0, 0)[..17]));

        let mut f = tagged(ETHERTYPE_VLAN, 0xa000, ETHERTYPE_IPV4);
        let untagged = strip_priority_tag(&mut f).to_vec();
        assert_eq!(
            untagged,
            build_frame(B, A, None, ETHERTYPE_IPV4, &[0; 46])[..untagged.len()]
        );
        assert_eq!(untagged.len(), 56);
        assert_eq!(strip_priority_tag(&mut [0u8; 17]).len(), 17);
    }

    #[test]
    fn untagged_frame_is_parsed() {
        let f = build_frame(B, A, None, ETHERTYPE_IPV4, &[1, 2, 3]);
        let v = EthernetFrame::new_checked(&f).unwrap();
        assert_eq!(v.dst(), B);
        assert_eq!(v.src(), A);
        assert!(!v.is_tagged());
        assert_eq!(v.vlan_id(), None);
        assert_eq!(v.payload_ethertype(), ETHERTYPE_IPV4);
        assert_eq!(v.payload(), &[1, 2, 3]);
    }

    #[test]
    fn tagged_frame_is_parsed() {
        let f = build_frame(B, A, Some(100), ETHERTYPE_ARP, &[9]);
        let v = EthernetFrame::new_checked(&f).unwrap();
        assert_eq!(v.vlan_id(), Some(100));
        assert!(!v.is_double_tagged());
        assert_eq!(v.payload_ethertype(), ETHERTYPE_ARP);
        assert_eq!(v.payload(), &[9]);
    }

    #[test]
    fn double_tagged_frame_is_recognised() {
        let inner = build_frame(B, A, Some(20), ETHERTYPE_IPV4, &[]);
        let mut f = inner[..12].to_vec();
        f.extend_from_slice(&[0x88, 0xa8, 0x00, 0x0a]);
        f.extend_from_slice(&inner[12..]);
        let v = EthernetFrame::new_checked(&f).unwrap();
        assert!(v.is_double_tagged());
        assert_eq!(v.vlan_id(), Some(10));
    }

    #[test]
    fn short_frames_are_rejected() {
        assert_eq!(EthernetFrame::new_checked(&[0; 13]).unwrap_err(), Truncated);
        let mut f = build_frame(B, A, None, ETHERTYPE_VLAN, &[]);
        f.push(0);
        assert!(EthernetFrame::new_checked(&f).is_err());
    }

    #[test]
    fn push_then_pop_restores_the_frame() {
        let f = build_frame(B, A, None, ETHERTYPE_IPV4, &[7; 50]);
        let mut chunk = vec![0u8; 256 + f.len()];
        chunk[256..].copy_from_slice(&f);
        let off = push_vlan_tag(&mut chunk, 256, f.len(), 42).unwrap();
        let tagged = &chunk[off..off + f.len() + 4];
        assert_eq!(
            tagged,
            &build_frame(B, A, Some(42), ETHERTYPE_IPV4, &[7; 50])[..]
        );
        let off2 = pop_vlan_tag(&mut chunk, off, f.len() + 4).unwrap();
        assert_eq!(&chunk[off2..off2 + f.len()], &f[..]);
    }

    #[test]
    fn push_without_headroom_fails() {
        let mut chunk = vec![0u8; 64];
        assert_eq!(push_vlan_tag(&mut chunk, 2, 60, 1), None);
        assert_eq!(push_vlan_tag(&mut chunk, 8, 60, 1), None);
    }

    #[test]
    fn mac_text_round_trips() {
        let m = Mac::parse("fa:16:3e:00:01:ff").unwrap();
        assert_eq!(m.to_string(), "fa:16:3e:00:01:ff");
        assert_eq!(Mac::from_u64(m.to_u64()), m);
        // The last byte lowest: the MAC table's hash relies on the bytes that vary most there.
        assert_eq!(m.to_u64(), 0xfa16_3e00_01ff);
        assert_eq!(Mac::BROADCAST.to_u64(), 0xffff_ffff_ffff);
        assert!(Mac::parse("fa:16:3e:00:01").is_none());
        assert!(Mac::parse("fa:16:3e:00:01:ff:00").is_none());
        assert!(Mac::BROADCAST.is_multicast());
    }
}
