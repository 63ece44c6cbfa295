//! AF_XDP sockets: one per (interface, queue), all over the worker's UMEM.
//!
//! # Design
//! The first socket of a port registers its worker's UMEM region (`XDP_UMEM_REG`: each port
//! has a registration of its own over the same memory, so chunk addresses mean the same to all)
//! and binds with `XDP_USE_NEED_WAKEUP` (plus `XDP_ZEROCOPY` or `XDP_COPY`); the port's further
//! sockets bind with `XDP_SHARED_UMEM` alone, naming its first, and inherit its mode. Each socket
//! has its own fill and completion rings (required once several queues share a registration)
//! besides its RX and TX rings. Closing the socket (dropping it) unbinds it: in copy mode
//! nothing copies into its chunks once the close returns. The kernel lets go of the socket's
//! buffer pool later, though (deferred work, once the socket's last reference is gone and RTNL is
//! taken): until then a driver in zero-copy mode may still receive into the chunks it took from
//! the fill ring, and an skb that took a chunk's pages instead of copying them (zero-copy, or a
//! device that asks for that, virtio-net) may still be sent from it. [`queue_free`] tells when
//! that is over.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use super::check;
use super::ring::{ConsRing, ProdRing, RingOffset, XdpDesc};
use super::umem::Region;
use crate::stats::XdpStats;

const AF_XDP: libc::c_int = 44;
const SOL_XDP: libc::c_int = 283;
const XDP_MMAP_OFFSETS: libc::c_int = 1;
const XDP_RX_RING: libc::c_int = 2;
const XDP_TX_RING: libc::c_int = 3;
const XDP_UMEM_REG: libc::c_int = 4;
const XDP_UMEM_FILL_RING: libc::c_int = 5;
const XDP_UMEM_COMPLETION_RING: libc::c_int = 6;
const XDP_STATISTICS: libc::c_int = 7;
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;
/// Frames one copy-mode `sendto` may send, asked for with [`XDP_MAX_TX_SKB_BUDGET`].
pub const TX_BUDGET: u32 = 256;
/// Frames one copy-mode `sendto` sends on kernels without that option.
pub const DEFAULT_TX_BUDGET: u32 = 32;

const XDP_PGOFF_RX_RING: i64 = 0;
const XDP_PGOFF_TX_RING: i64 = 0x8000_0000;
const XDP_UMEM_PGOFF_FILL_RING: i64 = 0x1_0000_0000;
const XDP_UMEM_PGOFF_COMPLETION_RING: i64 = 0x1_8000_0000;

/// Bind flag: share the UMEM of another socket.
pub const XDP_SHARED_UMEM: u16 = 1;
/// Bind flag: force copy mode.
pub const XDP_COPY: u16 = 2;
/// Bind flag: force zero-copy mode.
pub const XDP_ZEROCOPY: u16 = 4;
/// Bind flag: the kernel sets NEED_WAKEUP flags instead of polling on its own.
pub const XDP_USE_NEED_WAKEUP: u16 = 8;
/// Bind flag: multi-buffer, a frame larger than a chunk arrives as a chain of descriptors (the
/// UMEM keeps it for every socket that shares it).
pub const XDP_USE_SG: u16 = 16;
/// Descriptor option: more chunks of this frame follow.
pub const XDP_PKT_CONTD: u32 = 1;
/// Descriptor option: the [`TX_METADATA_LEN`] bytes before the frame hold a request to the
/// kernel (`struct xsk_tx_metadata`, see [`write_tx_checksum`]).
pub const XDP_TX_METADATA: u32 = 2;
/// UMEM registration flag: `tx_metadata_len` is meant (kernel 6.11, and 6.8 to 6.10 with the
/// fix that made it required).
const XDP_UMEM_TX_METADATA_LEN: u32 = 4;
/// `xsk_tx_metadata` flag: finish the checksum from `csum_start` to the frame's end and store
/// it at `csum_start + csum_offset`.
const XDP_TXMD_FLAGS_CHECKSUM: u64 = 2;
/// Bytes reserved before every transmitted frame for its metadata: `sizeof(struct
/// xsk_tx_metadata)` (flags, then `csum_start`, `csum_offset` and a launch time). With it
/// registered, the kernel refuses any descriptor less than this far into its chunk.
pub const TX_METADATA_LEN: usize = 24;

/// Writes into `meta` (the [`TX_METADATA_LEN`] bytes before a frame) a request that the kernel
/// finish the frame's partial checksum on transmit: summed from byte `start` of the frame to
/// its end, stored at `start + field`. In copy mode the kernel marks the skb it builds
/// `CHECKSUM_PARTIAL` with those offsets, as a guest's stack leaves it: a veth hands it to its
/// peer as it is (the receiver trusts it, as it trusts the Linux bridge's), any other device
/// finishes it in software or hardware as it would for a local socket. Returns false (writes
/// nothing) when `meta` is shorter or an offset does not fit.
pub fn write_tx_checksum(meta: &mut [u8], start: usize, field: usize) -> bool {
    let (Ok(start), Ok(field)) = (u16::try_from(start), u16::try_from(field)) else {
        return false;
    };
    let Some(meta) = meta.get_mut(..TX_METADATA_LEN) else {
        return false;
    };
    // The kernel reads the struct in the machine's byte order: flags (u64), csum_start (u16),
    // csum_offset (u16), padding, launch_time (u64, ignored without its flag).
    meta.fill(0);
    meta[..8].copy_from_slice(&XDP_TXMD_FLAGS_CHECKSUM.to_ne_bytes());
    meta[8..10].copy_from_slice(&start.to_ne_bytes());
    meta[10..12].copy_from_slice(&field.to_ne_bytes());
    true
}

/// Reads back what [`write_tx_checksum`] wrote: `(csum_start, csum_offset)`, or `None` when
/// `meta` asks for anything else (the in-memory port checks requests as the kernel does).
pub fn read_tx_checksum(meta: &[u8]) -> Option<(usize, usize)> {
    let meta = meta.get(..TX_METADATA_LEN)?;
    let flags = u64::from_ne_bytes(meta[..8].try_into().ok()?);
    if flags != XDP_TXMD_FLAGS_CHECKSUM {
        return None;
    }
    let start = u16::from_ne_bytes([meta[8], meta[9]]);
    let field = u16::from_ne_bytes([meta[10], meta[11]]);
    Some((usize::from(start), usize::from(field)))
}

#[repr(C)]
struct UmemReg {
    addr: u64,
    len: u64,
    chunk_size: u32,
    headroom: u32,
    flags: u32,
    tx_metadata_len: u32,
}

#[repr(C)]
#[derive(Default)]
struct MmapOffsets {
    rx: RingOffset,
    tx: RingOffset,
    fr: RingOffset,
    cr: RingOffset,
}

#[repr(C)]
struct SockaddrXdp {
    family: u16,
    flags: u16,
    ifindex: u32,
    queue_id: u32,
    shared_umem_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct RawStats {
    rx_dropped: u64,
    rx_invalid_descs: u64,
    tx_invalid_descs: u64,
    rx_ring_full: u64,
    rx_fill_ring_empty_descs: u64,
    tx_ring_empty_descs: u64,
}

/// Ring sizes of one socket (powers of two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingSizes {
    /// Fill ring entries.
    pub fill: u32,
    /// Completion ring entries.
    pub comp: u32,
    /// RX ring entries.
    pub rx: u32,
    /// TX ring entries.
    pub tx: u32,
}

impl Default for RingSizes {
    fn default() -> Self {
        RingSizes {
            fill: 8192,
            comp: 2048,
            rx: 8192,
            tx: 2048,
        }
    }
}

/// One bound AF_XDP socket with its four rings.
pub struct XskSocket {
    /// Fill ring: chunks handed to the kernel for receiving.
    pub fill: ProdRing<u64>,
    /// Completion ring: chunks the kernel has finished sending.
    pub comp: ConsRing<u64>,
    /// RX ring: received frames.
    pub rx: ConsRing<XdpDesc>,
    /// TX ring: frames to send.
    pub tx: ProdRing<XdpDesc>,
    // Declared last: the rings are unmapped before the socket is closed.
    fd: OwnedFd,
    queue: u32,
    tx_metadata: bool,
    tx_budget: u32,
}

impl core::fmt::Debug for XskSocket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("XskSocket")
            .field("fd", &self.fd.as_raw_fd())
            .field("queue", &self.queue)
            .finish()
    }
}

fn setsockopt<T>(fd: BorrowedFd<'_>, name: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live `T` and the length passed is exactly its size.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            name,
            (val as *const T).cast(),
            core::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn getsockopt<T: Default>(fd: BorrowedFd<'_>, name: libc::c_int) -> io::Result<T> {
    let mut val = T::default();
    let mut len = core::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` is a writable `T` and `len` tells the kernel its exact size.
    check(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            name,
            (&mut val as *mut T).cast(),
            &mut len,
        )
    })?;
    Ok(val)
}

/// Registers `region` as the UMEM of socket `fd`, with room for transmit metadata where the
/// kernel has it: a kernel without it refuses the flag (`EINVAL`), and the registration is made
/// again without. Returns whether the room was registered.
fn register(fd: BorrowedFd<'_>, region: &Region) -> io::Result<bool> {
    let mut reg = UmemReg {
        addr: region.addr as u64,
        len: region.len as u64,
        chunk_size: region.chunk_size,
        headroom: 0,
        flags: XDP_UMEM_TX_METADATA_LEN,
        tx_metadata_len: TX_METADATA_LEN as u32,
    };
    match setsockopt(fd, XDP_UMEM_REG, &reg) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            reg.flags = 0;
            reg.tx_metadata_len = 0;
            setsockopt(fd, XDP_UMEM_REG, &reg).map(|()| false)
        }
        Err(e) => Err(e),
    }
}

/// Does this kernel register a UMEM with room for transmit metadata (so that ports on veth and
/// tap devices leave partial checksums to it)? Registers `region` with a socket of its own,
/// closed at once. False where that fails for any reason (no AF_XDP sockets, no memory to pin):
/// then a port's registration would most likely fail too.
pub fn kernel_has_tx_metadata(region: &Region) -> bool {
    // SAFETY: plain socket creation; the result is checked and owned right away.
    let raw = unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return false;
    }
    // SAFETY: `raw` is a fresh fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    register(fd.as_fd(), region).unwrap_or(false)
}

/// Successful binds of this process's sockets, by interface and queue ([`binds`]).
static BINDS: Mutex<BTreeMap<(u32, u32), u64>> = Mutex::new(BTreeMap::new());

/// How many sockets of this process have bound queue `queue` of interface `ifindex`: one that
/// changes proves that every buffer pool bound there before was released (a bind succeeds only
/// then).
pub fn binds(ifindex: u32, queue: u32) -> u64 {
    let binds = BINDS.lock().unwrap_or_else(|p| p.into_inner());
    binds.get(&(ifindex, queue)).copied().unwrap_or(0)
}

/// Has the kernel let go of every buffer pool bound to queue `queue` of interface `ifindex`
/// (every socket closed there fully released), so that no driver or skb in flight still uses
/// their chunks? A bind there fails with `EBUSY` until then: a socket of its own, on a UMEM of
/// two chunks, in copy mode, tries it and is closed at once (the queue then reads busy to the
/// next bind for as long as this socket's own release takes). Other errors are returned (the
/// device gone: `ENODEV`).
pub fn queue_free(ifindex: u32, queue: u32) -> io::Result<bool> {
    let umem = super::umem::Umem::new(2, 4096)?;
    let sizes = RingSizes {
        fill: 2,
        comp: 2,
        rx: 2,
        tx: 2,
    };
    match XskSocket::open(&umem.region(), None, ifindex, queue, sizes, XDP_COPY) {
        Ok(sock) => {
            // Closed before its UMEM is unmapped.
            drop(sock);
            Ok(true)
        }
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(false),
        Err(e) => Err(e),
    }
}

impl XskSocket {
    /// Opens and binds a socket on `(ifindex, queue)`.
    ///
    /// With `shared = None` the socket registers `region` and binds with `flags`
    /// (`XDP_USE_NEED_WAKEUP` and optionally `XDP_COPY` / `XDP_ZEROCOPY`); with `shared =
    /// Some(fd)` it shares the UMEM registered by that bound socket and `flags` are ignored.
    pub fn open(
        region: &Region,
        shared: Option<RawFd>,
        ifindex: u32,
        queue: u32,
        sizes: RingSizes,
        flags: u16,
    ) -> io::Result<XskSocket> {
        // SAFETY: plain socket creation; the result is checked and owned right away.
        let raw = check(unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: `raw` is a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let b = fd.as_fd();
        let tx_metadata = match shared {
            None => register(b, region)?,
            Some(_) => false,
        };
        setsockopt(b, XDP_UMEM_FILL_RING, &sizes.fill)?;
        setsockopt(b, XDP_UMEM_COMPLETION_RING, &sizes.comp)?;
        setsockopt(b, XDP_RX_RING, &sizes.rx)?;
        setsockopt(b, XDP_TX_RING, &sizes.tx)?;
        // Let one sendto() move up to 256 frames in copy mode (the default is 32). Older kernels
        // lack the option; that only costs more syscalls.
        let tx_budget = match setsockopt(b, XDP_MAX_TX_SKB_BUDGET, &TX_BUDGET) {
            Ok(()) => TX_BUDGET,
            Err(_) => DEFAULT_TX_BUDGET,
        };
        let off: MmapOffsets = getsockopt(b, XDP_MMAP_OFFSETS)?;
        let fill = ProdRing::map(b, &off.fr, sizes.fill, XDP_UMEM_PGOFF_FILL_RING)?;
        let comp = ConsRing::map(b, &off.cr, sizes.comp, XDP_UMEM_PGOFF_COMPLETION_RING)?;
        let rx = ConsRing::map(b, &off.rx, sizes.rx, XDP_PGOFF_RX_RING)?;
        let tx = ProdRing::map(b, &off.tx, sizes.tx, XDP_PGOFF_TX_RING)?;
        let sa = SockaddrXdp {
            family: AF_XDP as u16,
            flags: if shared.is_some() {
                XDP_SHARED_UMEM
            } else {
                flags
            },
            ifindex,
            queue_id: queue,
            shared_umem_fd: shared.map_or(0, |f| f as u32),
        };
        // SAFETY: `sa` is a complete `sockaddr_xdp` and its exact size is passed.
        check(unsafe {
            libc::bind(
                b.as_raw_fd(),
                (&sa as *const SockaddrXdp).cast(),
                core::mem::size_of::<SockaddrXdp>() as libc::socklen_t,
            )
        })?;
        *BINDS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((ifindex, queue))
            .or_insert(0) += 1;
        Ok(XskSocket {
            fill,
            comp,
            rx,
            tx,
            fd,
            queue,
            tx_metadata,
            tx_budget,
        })
    }

    /// Frames one copy-mode `sendto` sends at most: [`TX_BUDGET`] where the kernel took the
    /// option, else [`DEFAULT_TX_BUDGET`].
    pub fn tx_budget(&self) -> u32 {
        self.tx_budget
    }

    /// Did this socket register its UMEM with room for transmit metadata ([`TX_METADATA_LEN`])?
    /// Always false for a socket that shares another's registration: ask that one.
    pub fn tx_metadata(&self) -> bool {
        self.tx_metadata
    }

    /// The socket's fd (for the XSKMAP and for sharing the UMEM).
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The queue this socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Asks the kernel to transmit what is on the TX ring, if it asks for that or if `force`
    /// ([`ProdRing::wake`]). Returns how many frames remain on the ring as the kernel published
    /// it, to be woken for again, and whether the call was told to try again (`EAGAIN`: in copy
    /// mode, the kick stopped at its budget with frames left, or the device's queue was full).
    /// Transient conditions (`EAGAIN`, `EBUSY`, `ENOBUFS`) are not errors.
    #[inline]
    pub fn wake_tx(&mut self, force: bool) -> io::Result<(u32, bool)> {
        let fd = self.fd.as_raw_fd();
        let mut again = false;
        let left = self.tx.wake(force, || {
            // SAFETY: a zero-length send with no buffer and no address; only the fd is used.
            let r = unsafe {
                libc::sendto(
                    fd,
                    core::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    core::ptr::null(),
                    0,
                )
            };
            if r >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) => {
                    again = true;
                    Ok(())
                }
                Some(libc::EBUSY | libc::ENOBUFS | libc::EINTR) => Ok(()),
                _ => Err(e),
            }
        })?;
        Ok((left, again))
    }

    /// Wakes the kernel's receive side when the fill ring asks for it.
    #[inline]
    pub fn kick_rx(&self) {
        // SAFETY: a zero-length non-blocking receive with no buffer; only the fd is used.
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                core::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                core::ptr::null_mut(),
                core::ptr::null_mut(),
            );
        }
    }

    /// The kernel's statistics for this socket.
    pub fn statistics(&self) -> io::Result<XdpStats> {
        let s: RawStats = getsockopt(self.fd.as_fd(), XDP_STATISTICS)?;
        Ok(XdpStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        })
    }
}

const XDP_OPTIONS: libc::c_int = 8;
const XDP_OPTIONS_ZEROCOPY: u32 = 1;

impl XskSocket {
    /// Did the kernel bind this socket in zero-copy mode?
    pub fn is_zerocopy(&self) -> bool {
        getsockopt::<u32>(self.fd.as_fd(), XDP_OPTIONS)
            .map(|f| f & XDP_OPTIONS_ZEROCOPY != 0)
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checksum_request_reads_back_and_refuses_what_does_not_fit() {
        let mut meta = [0xffu8; TX_METADATA_LEN + 8];
        assert!(write_tx_checksum(&mut meta[8..], 38, 16));
        assert_eq!(meta[..8], [0xff; 8], "nothing written before the area");
        assert_eq!(read_tx_checksum(&meta[8..]), Some((38, 16)));
        assert_eq!(
            u64::from_ne_bytes(meta[8..16].try_into().unwrap()),
            XDP_TXMD_FLAGS_CHECKSUM
        );
        assert_eq!(meta[20..], [0; 12], "padding and launch time zero");
        assert!(!write_tx_checksum(&mut meta[..TX_METADATA_LEN - 1], 38, 16));
        assert!(!write_tx_checksum(&mut meta, 70_000, 16));
        assert_eq!(read_tx_checksum(&[0; TX_METADATA_LEN]), None, "no flag");
        assert_eq!(read_tx_checksum(&meta[..4]), None);
    }
}
