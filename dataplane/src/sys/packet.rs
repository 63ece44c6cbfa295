//! Whole TCP super-frames out through a packet socket with a virtio-net header.
//!
//! # Design
//! AF_XDP carries no GSO metadata: a frame it transmits must fit the egress device's MTU, so a
//! guest's 64 KB TSO frame would have to leave as some forty segments, each copied into an skb
//! of its own and each run through the receiving guest's stack (or merged again by its GRO). A
//! packet socket with `PACKET_VNET_HDR` takes the frame whole, preceded by a
//! `struct virtio_net_hdr` that says what a guest's virtio-net driver says to its host: the
//! segment size (`gso_size`), the kind of segmentation, and where the partial checksum is to be
//! finished. The kernel builds one GSO skb from it; a veth or tap passes it on whole, as the
//! Linux bridge does, and a device without TSO has the kernel segment it in software on
//! transmit (`validate_xmit_skb`). One copy per 64 KB instead of forty.
//!
//! The socket is bound to the port's interface with protocol 0, so it receives nothing, and it
//! bypasses the queueing discipline (`PACKET_QDISC_BYPASS`), as the port's AF_XDP sockets do in
//! copy mode. Sends never block: a full socket buffer or device queue is an error the caller
//! counts as a lost frame.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::check;

const SOL_PACKET: libc::c_int = 263;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_QDISC_BYPASS: libc::c_int = 20;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum from `csum_start` to the end is to be finished,
/// its field at `csum_start + csum_offset` holding the pseudo-header sum.
pub const NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
pub const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_ECN`: the frame carries CWR, which only its first segment keeps.
pub const GSO_ECN: u8 = 0x80;

/// `struct virtio_net_hdr` in the legacy layout packet sockets use, its fields in the host's
/// byte order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct VnetHdr {
    /// [`NEEDS_CSUM`] or 0.
    pub flags: u8,
    /// [`GSO_TCPV4`] or [`GSO_TCPV6`], with [`GSO_ECN`]; 0 for a frame not to be segmented.
    pub gso_type: u8,
    /// Length of the headers (Ethernet to the end of TCP's): what the kernel keeps linear.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where the checksummed part begins (the transport header's offset in the frame).
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    fn bytes(&self) -> [u8; 10] {
        let mut b = [0u8; 10];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }
}

/// A packet socket that sends whole frames, with their virtio-net header, out of one interface.
#[derive(Debug)]
pub struct GsoTx {
    fd: OwnedFd,
}

impl GsoTx {
    /// Opens the socket on interface `ifindex`.
    pub fn open(ifindex: u32) -> io::Result<GsoTx> {
        // SAFETY: socket(2) with constant arguments; the descriptor is owned just below.
        let raw = check(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        })?;
        // SAFETY: `raw` is a new descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let on: libc::c_int = 1;
        for opt in [PACKET_VNET_HDR, PACKET_QDISC_BYPASS] {
            // SAFETY: `on` is a live c_int and its exact size is passed.
            check(unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    SOL_PACKET,
                    opt,
                    (&raw const on).cast(),
                    core::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            })?;
        }
        // SAFETY: sockaddr_ll is plain old data; all zeroes is a valid value of it.
        let mut sa: libc::sockaddr_ll = unsafe { core::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_ifindex = i32::try_from(ifindex)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index"))?;
        // SAFETY: `sa` is a valid sockaddr_ll and the length given is its size.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sa).cast::<libc::sockaddr>(),
                core::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        Ok(GsoTx { fd })
    }

    /// Sends one frame, the concatenation of `parts` (at most four), preceded by `hdr`. Never
    /// blocks: `WouldBlock` when the socket's buffer is full.
    pub fn send(&self, hdr: &VnetHdr, parts: &[&[u8]]) -> io::Result<()> {
        let head = hdr.bytes();
        let mut iov = [libc::iovec {
            iov_base: core::ptr::null_mut(),
            iov_len: 0,
        }; 5];
        if parts.len() >= iov.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "too many parts",
            ));
        }
        iov[0] = libc::iovec {
            iov_base: head.as_ptr().cast_mut().cast(),
            iov_len: head.len(),
        };
        for (v, p) in iov[1..].iter_mut().zip(parts) {
            *v = libc::iovec {
                iov_base: p.as_ptr().cast_mut().cast(),
                iov_len: p.len(),
            };
        }
        // SAFETY: msghdr is plain old data; all zeroes (no name, no control data) is valid.
        let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = parts.len() + 1;
        // SAFETY: every iovec points into `head` or into one of `parts`, all alive and unchanged
        // for the duration of the call, which only reads them (the kernel copies the frame).
        let n = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_ten_bytes_in_the_hosts_order() {
        let h = VnetHdr {
            flags: NEEDS_CSUM,
            gso_type: GSO_TCPV4 | GSO_ECN,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let b = h.bytes();
        assert_eq!(b[..2], [1, 0x81]);
        assert_eq!(u16::from_ne_bytes([b[2], b[3]]), 66);
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 1448);
        assert_eq!(u16::from_ne_bytes([b[6], b[7]]), 34);
        assert_eq!(u16::from_ne_bytes([b[8], b[9]]), 16);
    }
}
