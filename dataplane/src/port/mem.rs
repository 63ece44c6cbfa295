//! An in-memory port: frames are injected into an inbox and collected from an outbox.
//!
//! It behaves like an AF_XDP socket in copy mode with multi-buffer (`XDP_USE_SG`): a frame in the
//! inbox is received only if fill chunks are available for all of it (else it is dropped and
//! counted as the kernel would, `rx_dropped`), and a frame larger than a chunk's data area
//! arrives as a chain of chunks, `XDP_PKT_CONTD` on all but the last, never cut by the batch.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{PortIo, PortMode, Region, ShortcutPort, Umem, VnetHdr, WholeTx, XdpDesc};
use crate::stats::XdpStats;
use crate::sys::umem::KERNEL_HEADROOM;
use crate::sys::xsk::{read_tx_checksum, TX_METADATA_LEN, XDP_PKT_CONTD, XDP_TX_METADATA};

/// How an in-memory port is opened.
#[derive(Debug, Clone, Default)]
pub struct MemSpec {
    /// Keep a copy of every frame sent (tests); without it, sent frames are only counted
    /// (benchmarks).
    pub capture: bool,
    /// TX ring size.
    pub tx_size: u32,
    /// Finish partial checksums on transmit when a frame's metadata asks, as the kernel does
    /// for an AF_XDP socket in copy mode on a veth ([`PortIo::tx_checksum`]). Descriptors are
    /// always checked as the kernel checks them with transmit metadata registered (as an AF_XDP
    /// port registers it wherever the kernel has it, whatever its device).
    pub tx_checksum: bool,
    /// Take TCP super-frames whole ([`PortIo::send_whole`]), as a packet socket with a
    /// virtio-net header does; each is cut into segments as the kernel's software GSO cuts it
    /// (into `outbox` with `capture`), so that tests see what a receiver would.
    pub whole: bool,
    /// With `whole`, also let other workers send whole frames out of the port
    /// ([`PortIo::whole_tx`]): they land in [`MemPort::direct`], not in `outbox`.
    pub direct: bool,
    /// An interface index to report with a shortcut program ([`PortIo::shortcut`]), for tests
    /// of the worker's side of [`crate::shortcut`]: no frame ever takes the entries.
    pub shortcut_ifindex: Option<u32>,
}

/// Whole frames other workers sent out of a memory port ([`PortIo::whole_tx`]), each cut into
/// the segments the kernel's software GSO would put on the wire.
#[derive(Debug, Default)]
pub struct MemWholeTx {
    /// The segments, oldest first.
    pub segments: Mutex<Vec<Vec<u8>>>,
    /// Frames sent.
    pub sent: AtomicU64,
    /// Set to make sends fail with this OS error (0: none), as a full socket buffer would.
    pub error: AtomicI32,
    /// Set to make sends of frames to be segmented fail with this OS error (0: none), as a veth
    /// whose other end runs a native XDP program refuses every GSO frame.
    pub refuse_gso: AtomicI32,
    /// Frames it takes before it refuses the rest with `ENOBUFS`, as a socket buffer that fills
    /// (`None`: no limit).
    pub room: Mutex<Option<u64>>,
}

impl WholeTx for MemWholeTx {
    fn send(&self, hdr: &VnetHdr, parts: &[&[u8]]) -> io::Result<()> {
        for (refusal, applies) in [(&self.error, true), (&self.refuse_gso, hdr.gso_type != 0)] {
            match refusal.load(Ordering::Relaxed) {
                e if e != 0 && applies => return Err(io::Error::from_raw_os_error(e)),
                _ => {}
            }
        }
        if let Ok(mut room) = self.room.lock() {
            match room.as_mut() {
                Some(0) => return Err(io::Error::from_raw_os_error(libc::ENOBUFS)),
                Some(n) => *n -= 1,
                None => {}
            }
        }
        let frame = parts.concat();
        // Without a header's request the frame goes as it is.
        let segments = match *hdr == VnetHdr::default() {
            true => Some(vec![frame]),
            false => gso_segments(&frame, hdr),
        }
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut s) = self.segments.lock() {
            s.extend(segments);
        }
        Ok(())
    }
}

/// An in-memory port.
#[derive(Debug)]
pub struct MemPort {
    slot: u16,
    spec: MemSpec,
    fill: VecDeque<u64>,
    comp: VecDeque<u64>,
    /// Frames waiting to be received, oldest first.
    pub inbox: VecDeque<Vec<u8>>,
    /// Frames sent, oldest first (with `capture`).
    pub outbox: Vec<Vec<u8>>,
    /// Frames sent.
    pub sent: u64,
    /// Frames sent with a request to finish their checksum (`tx_checksum`).
    pub checksum_requests: u64,
    /// Super-frames sent whole ([`PortIo::send_whole`]).
    pub whole_sent: u64,
    /// Set to make `send_whole` fail with this OS error, as a full socket buffer (`EAGAIN`) or
    /// a kernel refusing the header would.
    pub whole_error: Option<i32>,
    /// Set to report frames still on the TX ring after a flush ([`PortIo::drained`]), as a
    /// kick that left part of its budget would.
    pub undrained: bool,
    /// Set to make `flush` fail, as a vanished interface would.
    pub fail_tx: bool,
    /// Kicks that found frames on the TX ring ([`PortIo::flush`] after a send, and again while
    /// frames stay on it: [`PortIo::tx_leftover`]), as an AF_XDP port's copy mode makes them.
    pub kicks: u64,
    /// Of `kicks`, those made whether or not the device asked ([`PortIo::kick`]).
    pub forced: u64,
    /// Frames were sent since the last kick, or stayed on the ring after it.
    pending: bool,
    /// The frames at the front of the TX ring a kick handed to the device: with `completes`, the
    /// device completes only those, as copy mode sends only on a kick.
    kicked: usize,
    /// Frames completed in the last round ([`super::kick_through_budget`]).
    done: u32,
    /// Set to hand the device at most this many frames a kick, as copy mode sends a budget a
    /// kick (32 on kernels without `XDP_MAX_TX_SKB_BUDGET`). Only with `completes` set: without
    /// it every frame sent completes at the next round.
    pub kick_budget: Option<usize>,
    /// Set to complete at most this many sent frames a round, the others staying on the TX
    /// ring: a slow device, or with `Some(0)` one that stopped sending with its carrier up (a
    /// paused or hung NIC), whose ring fills. It then completes only frames a kick handed it
    /// (`flush`), as copy mode sends only then.
    pub completes: Option<usize>,
    /// Set to tell the worker the port can signal its received frames ([`PortIo::wait_fds`],
    /// with no descriptor to wait on): tests of what an idle worker waits on.
    pub signals: bool,
    /// What other workers send whole frames through (with `whole` and `direct`).
    pub direct: Option<Arc<MemWholeTx>>,
    stats: XdpStats,
    source: Option<(std::sync::Arc<Vec<Vec<u8>>>, usize)>,
    /// Set to have a receive give at most this many of the source's frames
    /// ([`MemPort::set_source`]; `Some(0)`: none): frames that trickle in, a few a round
    /// (benchmarks of a round's own work).
    pub source_batch: Option<usize>,
}

impl MemPort {
    /// Frames on the TX ring that no kick has handed the device yet.
    pub fn unkicked(&self) -> usize {
        self.comp.len() - self.kicked
    }

    /// One kick, as copy mode's `sendto`: hands the device up to a budget of the frames on the
    /// ring (none if it stopped). Returns whether it was told to try again (`EAGAIN`): it
    /// stopped at the budget with frames left, or the device stopped.
    fn kick_once(&mut self) -> bool {
        self.kicks += 1;
        // A device that stopped (`Some(0)`) takes nothing.
        if self.completes != Some(0) {
            let budget = self.kick_budget.unwrap_or(usize::MAX);
            self.kicked = self.kicked.saturating_add(budget).min(self.comp.len());
        }
        // What no kick handed the device yet stays on the ring, to be kicked again.
        self.pending = self.completes.is_some() && self.kicked < self.comp.len();
        self.pending
    }

    /// Makes the port receive `frames` over and over, without allocating (benchmarks).
    pub fn set_source(&mut self, frames: std::sync::Arc<Vec<Vec<u8>>>) {
        self.source = (!frames.is_empty()).then_some((frames, 0));
    }

    /// Frames received by the "kernel side" of this port and dropped for lack of a fill chunk.
    pub fn stats(&self) -> XdpStats {
        self.stats
    }

    /// Counts `n` frames the "kernel side" dropped (`rx_dropped`): tests of what the worker
    /// makes of the kernel's statistics.
    pub fn kernel_dropped(&mut self, n: u64) {
        self.stats.rx_dropped += n;
    }

    /// Checks descriptor `d` as the kernel checks it, and with `capture` keeps the frame it puts
    /// on the wire: a requested checksum finished as the kernel's software fallback finishes it
    /// (the sum from `csum_start` to the frame's end). False for a descriptor the kernel would
    /// refuse: options it does not know, metadata without room or registration, a request it
    /// cannot honour.
    fn transmit(&mut self, umem: &mut Umem, d: XdpDesc) -> bool {
        let meta = TX_METADATA_LEN;
        let off = (d.addr - umem.chunk_base(d.addr)) as usize;
        let end = off + d.len as usize;
        if off < meta || end > umem.chunk_size() as usize || d.options & !XDP_TX_METADATA != 0 {
            return false;
        }
        if d.options == 0 && !self.spec.capture {
            // Nothing more to check or keep (benchmarks: the bytes are not touched).
            return true;
        }
        let Some((chunk, _)) = umem.chunk_mut(d.addr) else {
            return false;
        };
        let request = if d.options & XDP_TX_METADATA != 0 {
            if !self.spec.tx_checksum {
                return false;
            }
            match read_tx_checksum(&chunk[off - meta..off]) {
                Some((start, field)) if off + start + field + 2 <= end => Some((start, field)),
                _ => return false,
            }
        } else {
            None
        };
        self.checksum_requests += u64::from(request.is_some());
        if self.spec.capture {
            let mut frame = chunk[off..end].to_vec();
            if let Some((start, field)) = request {
                crate::csum::device_finish(&mut frame, start, field);
            }
            self.outbox.push(frame);
        }
        true
    }
}

impl PortIo for MemPort {
    type Spec = MemSpec;

    fn open(spec: &MemSpec, slot: u16, _region: &Region) -> io::Result<Self> {
        Ok(MemPort {
            slot,
            spec: MemSpec {
                tx_size: if spec.tx_size == 0 {
                    2048
                } else {
                    spec.tx_size
                },
                ..spec.clone()
            },
            fill: VecDeque::new(),
            comp: VecDeque::new(),
            inbox: VecDeque::new(),
            outbox: Vec::new(),
            sent: 0,
            checksum_requests: 0,
            whole_sent: 0,
            whole_error: None,
            undrained: false,
            fail_tx: false,
            kicks: 0,
            forced: 0,
            pending: false,
            kicked: 0,
            done: 0,
            kick_budget: None,
            completes: None,
            signals: false,
            direct: (spec.whole && spec.direct).then(Arc::default),
            stats: XdpStats::default(),
            source: None,
            source_batch: None,
        })
    }

    fn mode(&self) -> PortMode {
        PortMode::Memory
    }

    fn recv(&mut self, umem: &mut Umem, out: &mut [XdpDesc]) -> usize {
        let mut n = 0;
        let room = (umem.chunk_size() - KERNEL_HEADROOM) as usize;
        if self.inbox.is_empty() {
            if let Some((frames, next)) = &mut self.source {
                let want = out.len().min(self.source_batch.unwrap_or(usize::MAX));
                while n < want {
                    let Some(addr) = self.fill.pop_front() else {
                        break;
                    };
                    let frame = &frames[*next];
                    *next = (*next + 1) % frames.len();
                    let len = frame.len().min(room);
                    if !umem.take(addr, self.slot) {
                        continue;
                    }
                    let data = addr + u64::from(KERNEL_HEADROOM);
                    match umem.frame(data, len as u32) {
                        Some(buf) => buf.copy_from_slice(&frame[..len]),
                        None => {
                            umem.release(addr);
                            continue;
                        }
                    }
                    out[n] = XdpDesc {
                        addr: data,
                        len: len as u32,
                        options: 0,
                    };
                    n += 1;
                }
                return n;
            }
        }
        while n < out.len() {
            let Some(frame) = self.inbox.front() else {
                break;
            };
            let chunks = frame.len().div_ceil(room).max(1);
            if chunks > out.len() - n {
                break;
            }
            if self.fill.is_empty() {
                self.stats.rx_fill_ring_empty_descs += 1;
                break;
            }
            let Some(frame) = self.inbox.pop_front() else {
                break;
            };
            if self.fill.len() < chunks {
                self.stats.rx_dropped += 1;
                continue;
            }
            let start = n;
            for (k, piece) in frame.chunks(room.max(1)).enumerate() {
                let Some(addr) = self.fill.pop_front() else {
                    break;
                };
                if !umem.take(addr, self.slot) {
                    continue;
                }
                let data = addr + u64::from(KERNEL_HEADROOM);
                let len = piece.len() as u32;
                match umem.frame(data, len) {
                    Some(buf) => buf.copy_from_slice(piece),
                    None => {
                        umem.release(addr);
                        continue;
                    }
                }
                let more = k + 1 < chunks;
                out[n] = XdpDesc {
                    addr: data,
                    len,
                    options: if more { XDP_PKT_CONTD } else { 0 },
                };
                n += 1;
            }
            if n - start != chunks {
                // A chunk could not be used: the frame is lost whole, as in the kernel.
                for d in &out[start..n] {
                    umem.release(d.addr);
                }
                n = start;
                self.stats.rx_dropped += 1;
            }
        }
        n
    }

    fn tx_room(&mut self) -> u32 {
        self.spec.tx_size.saturating_sub(self.comp.len() as u32)
    }

    fn send(&mut self, umem: &mut Umem, descs: &[XdpDesc]) -> usize {
        let n = descs.len().min(self.tx_room() as usize);
        for d in &descs[..n] {
            if self.transmit(umem, *d) {
                self.sent += 1;
            } else {
                // The kernel counts an invalid descriptor and skips it, its chunk never
                // completed (or, for a request it cannot honour, stops the ring at it). Here the
                // chunk is completed all the same: the tests and the fuzzer check that this
                // count stays zero instead.
                self.stats.tx_invalid_descs += 1;
            }
            if umem.give(d.addr, self.slot) {
                self.comp.push_back(umem.chunk_base(d.addr));
            }
        }
        self.pending |= n > 0;
        n
    }

    fn tx_checksum(&self) -> bool {
        self.spec.tx_checksum
    }

    fn takes_whole(&self) -> bool {
        self.spec.whole
    }

    fn drained(&mut self) -> bool {
        !self.undrained && (self.completes.is_none() || self.comp.is_empty())
    }

    fn send_whole(&mut self, hdr: &VnetHdr, parts: &[&[u8]]) -> io::Result<()> {
        if !self.spec.whole {
            return Err(io::ErrorKind::Unsupported.into());
        }
        if let Some(e) = self.whole_error {
            return Err(io::Error::from_raw_os_error(e));
        }
        let frame = parts.concat();
        let segments = gso_segments(&frame, hdr).ok_or_else(|| {
            // The kernel refuses a header that does not fit the frame (EINVAL).
            self.stats.tx_invalid_descs += 1;
            io::Error::from_raw_os_error(libc::EINVAL)
        })?;
        self.whole_sent += 1;
        self.sent += segments.len() as u64;
        if self.spec.capture {
            self.outbox.extend(segments);
        }
        Ok(())
    }

    fn whole_tx(&self) -> Option<Arc<dyn WholeTx>> {
        self.direct.clone().map(|tx| tx as Arc<dyn WholeTx>)
    }

    fn shortcut(&self) -> Option<ShortcutPort> {
        self.spec.shortcut_ifindex.map(|ifindex| ShortcutPort {
            ifindex,
            takes: true,
            receives: true,
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.fail_tx {
            return Err(io::Error::from_raw_os_error(libc::ENXIO));
        }
        if self.pending {
            // Kicked as an AF_XDP port in copy mode is, each kick handing the device a budget.
            let unsent = u32::try_from(self.unkicked()).unwrap_or(u32::MAX);
            let budget = self
                .kick_budget
                .map_or(u32::MAX, |b| u32::try_from(b).unwrap_or(u32::MAX).max(1));
            let done = self.done;
            super::kick_through_budget(unsent, budget, done, || Ok(self.kick_once()))?;
        }
        Ok(())
    }

    fn kick(&mut self) -> io::Result<()> {
        if self.fail_tx {
            return Err(io::Error::from_raw_os_error(libc::ENXIO));
        }
        if self.pending {
            self.forced += 1;
            self.kick_once();
        }
        Ok(())
    }

    fn tx_leftover(&self) -> bool {
        self.pending
    }

    fn reclaim(&mut self, umem: &mut Umem) -> usize {
        let n = match self.completes {
            Some(most) => self.comp.len().min(most).min(self.kicked),
            None => self.comp.len(),
        };
        self.kicked = self.kicked.saturating_sub(n);
        for addr in self.comp.drain(..n) {
            umem.complete(addr, self.slot);
        }
        self.done = u32::try_from(n).unwrap_or(u32::MAX);
        n
    }

    fn refill(&mut self, umem: &mut Umem, target: u32) {
        while self.fill.len() < target as usize {
            match umem.alloc_for(self.slot) {
                Some(a) => self.fill.push_back(a),
                None => break,
            }
        }
    }

    fn xdp_stats(&self) -> XdpStats {
        self.stats
    }

    fn wait_fds(&self, _out: &mut Vec<libc::pollfd>) -> bool {
        self.signals
    }

    fn close(self, umem: &mut Umem) {
        umem.reclaim_port(self.slot);
    }
}

/// What a receiver gets of `frame` sent with `hdr` through a packet socket: its segments as the
/// kernel cuts it (`gso_size` payload bytes each, headers copied, the checksum finished from
/// `csum_start`), or the frame itself with its checksum finished. `None` where the kernel would
/// refuse the header: a checksum request or headers beyond the frame, a segmentation whose
/// headers are not the frame's (`hdr_len` and `csum_start` must be where its TCP header says).
fn gso_segments(frame: &[u8], hdr: &VnetHdr) -> Option<Vec<Vec<u8>>> {
    let (start, field) = (usize::from(hdr.csum_start), usize::from(hdr.csum_offset));
    if hdr.flags != crate::sys::packet::NEEDS_CSUM
        || start + field + 2 > frame.len()
        || usize::from(hdr.hdr_len) > frame.len()
    {
        return None;
    }
    let mut out = Vec::new();
    if hdr.gso_type == 0 {
        out.push(frame.to_vec());
    } else {
        let hdr_len = usize::from(hdr.hdr_len);
        let plan = crate::gso::Plan::new(frame, hdr_len + usize::from(hdr.gso_size))?;
        if plan.vnet_hdr(frame, usize::from(hdr.gso_size), 0) != *hdr {
            return None;
        }
        for k in 0..plan.segments() {
            let mut seg = vec![0; hdr_len + usize::from(hdr.gso_size)];
            let len = plan.write(frame, k, &mut seg)?;
            seg.truncate(len);
            out.push(seg);
        }
    }
    for seg in &mut out {
        crate::csum::device_finish(seg, start, field);
    }
    Some(out)
}
