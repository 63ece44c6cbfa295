//! Ports: the interface between the worker and whatever moves frames in and out.
//!
//! # Design
//! A port is a source and sink of frames that live in the worker's [`Umem`]. Like an AF_XDP
//! socket in copy mode, a port is handed empty chunks to receive into (`refill`), returns received
//! frames as descriptors (`recv`), takes frames to send (`send`, then `flush`) and gives their
//! chunks back once sent (`reclaim`). Every chunk move goes through the [`Umem`]'s ownership
//! tracking, so frame accounting holds whatever the backend. A port may also send a TCP
//! super-frame whole from the worker's own buffer (`takes_whole`, `send_whole`), with the
//! virtio-net header that tells the kernel how to segment it.
//!
//! Two backends: [`afxdp::AfXdpPort`] (real interfaces) and [`mem::MemPort`] (queues in memory,
//! for tests, the pipeline benchmark and the fuzzer).

pub mod afxdp;
pub mod mem;

use std::io;
use std::sync::Arc;

use crate::stats::XdpStats;
pub use crate::sys::packet::VnetHdr;
pub use crate::sys::ring::XdpDesc;
pub use crate::sys::umem::{Region, Umem};

/// Frames one flush of a copy-mode port hands the kernel at most: one kick's budget where the
/// kernel takes `XDP_MAX_TX_SKB_BUDGET` (256), eight kicks' on kernels whose kicks carry 32.
pub(crate) const FLUSH_FRAMES: u32 = 256;

/// Kicks a copy-mode port's transmit with `kick`, `left` frames being on its ring, a kick sending
/// `budget` at most, and its device having completed `done` frames in the last round (the worker
/// reclaims each port's completions once a round). While the port keeps up (no more on its ring
/// than two kicks carry: this one and the next round's), one kick, as the kernel's work of a flush
/// is then spread over rounds that poll the RX rings in between. One kick too while its device
/// completes less than a kick's worth a round: it is slow or stopped, and its kicks are refused
/// (`EAGAIN`, an skb built and freed each) until the stall rule takes over. Falling behind with a
/// device that keeps taking frames, again while a kick says it stopped at its budget with frames
/// left (`true`: `EAGAIN`), up to [`FLUSH_FRAMES`] frames' worth of kicks.
///
/// Kicked once a flush, a port on a kernel whose kicks carry 32 frames could be sent no more than
/// two kicks' worth a round (one after staging, one at the next round's start), however fast its
/// device: fed more (an uplink fed by several VMs), it fell behind and stalled as a slow device
/// does. Where kicks carry 256, one kick a flush, as before. (The kernel's published consumer
/// index cannot tell how much a kick took: before the budget option existed, a kick that stopped
/// at its budget did not publish it.) A kick told to try again because the device's queue is full
/// looks the same: hence `done`.
pub(crate) fn kick_through_budget(
    left: u32,
    budget: u32,
    done: u32,
    mut kick: impl FnMut() -> io::Result<bool>,
) -> io::Result<()> {
    let budget = budget.max(1);
    let kicks = if left <= budget.saturating_mul(2) || done < budget {
        1
    } else {
        left.div_ceil(budget)
            .clamp(1, (FLUSH_FRAMES / budget).max(1))
    };
    for _ in 0..kicks {
        if !kick()? {
            break;
        }
    }
    Ok(())
}

/// How a port's frames reach user space, as reported to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PortMode {
    /// Not open.
    #[default]
    Closed,
    /// Driver XDP, frames copied into the UMEM.
    NativeCopy,
    /// Driver XDP, frames DMAed straight into the UMEM.
    NativeZeroCopy,
    /// Generic (skb) XDP, frames copied.
    GenericCopy,
    /// In-memory test port.
    Memory,
}

impl PortMode {
    /// A short name: `native-copy`, `native-zerocopy`, `generic-copy`, `memory`, `closed`.
    pub fn name(self) -> &'static str {
        match self {
            PortMode::Closed => "closed",
            PortMode::NativeCopy => "native-copy",
            PortMode::NativeZeroCopy => "native-zerocopy",
            PortMode::GenericCopy => "generic-copy",
            PortMode::Memory => "memory",
        }
    }
}

/// Sends whole frames out of a port from any thread, with the virtio-net header of
/// [`PortIo::send_whole`]: a port's packet socket, which the other workers send through
/// ([`PortIo::whole_tx`]) as a multi-queue NIC lets every core transmit.
pub trait WholeTx: Send + Sync + core::fmt::Debug {
    /// As [`PortIo::send_whole`].
    fn send(&self, hdr: &VnetHdr, parts: &[&[u8]]) -> io::Result<()>;
}

/// A port's part in the switch's XDP shortcut ([`crate::shortcut`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortcutPort {
    /// Its interface's index.
    pub ifindex: u32,
    /// Its XDP program has the shortcut: its frames may take entries.
    pub takes: bool,
    /// Entries may send to it: `bpf_redirect` from generic XDP hands the frame to the
    /// device's transmit without the kernel's checks of what the device can take (partial
    /// checksums, GSO), which a veth takes as its peer's stack does (a tap, by the offloads
    /// its VMM asked for, which are not checked here).
    pub receives: bool,
}

/// A frame source and sink backed by the worker's UMEM.
pub trait PortIo: Sized + Send {
    /// What is needed to open one (a device name and mode for AF_XDP).
    type Spec: Send + Clone + core::fmt::Debug;

    /// Opens a port as slot `slot` over the frames of `region` (its worker's UMEM). Callable on
    /// any thread: the switch opens ports off the worker, which only adopts them.
    fn open(spec: &Self::Spec, slot: u16, region: &Region) -> io::Result<Self>;

    /// Starts receiving, once the worker has adopted the port: an AF_XDP port tops up its fill
    /// rings (within `target` chunks per queue) and enters its sockets in the device's map, so
    /// that the device's frames pass to the kernel's stack until there is room for them. An
    /// error closes the port.
    fn start(&mut self, _umem: &mut Umem, _target: u32) -> io::Result<()> {
        Ok(())
    }

    /// How frames move (reported to operators).
    fn mode(&self) -> PortMode;

    /// Moves up to `out.len()` received frames into `out`; their chunks are the worker's now.
    fn recv(&mut self, umem: &mut Umem, out: &mut [XdpDesc]) -> usize;

    /// How many frames `send` takes now without refusing any.
    fn tx_room(&mut self) -> u32;

    /// Queues worker-owned frames for transmission; returns how many were taken (all of them if
    /// `descs.len() <= tx_room()`). The caller keeps the rest.
    fn send(&mut self, umem: &mut Umem, descs: &[XdpDesc]) -> usize;

    /// Starts transmission of what was queued. An error means the port cannot send any more
    /// (interface gone or down).
    fn flush(&mut self) -> io::Result<()>;

    /// As [`PortIo::flush`], for frames left on the ring, but kicks the device whether or not it
    /// asked for a kick: for a port whose ring stays full and sends nothing (a zero-copy driver
    /// stuck with its wake-up flag clear, or a device that went down, which only a kick's error
    /// tells).
    fn kick(&mut self) -> io::Result<()> {
        self.flush()
    }

    /// Returns sent chunks to the pool; returns how many.
    fn reclaim(&mut self, umem: &mut Umem) -> usize;

    /// Tops up the receive side to about `target` chunks per queue from the pool.
    fn refill(&mut self, umem: &mut Umem, target: u32);

    /// Number of RX queues (each gets `target` chunks).
    fn queues(&self) -> u32 {
        1
    }

    /// The RX queues the port could have a socket on, were it opened again as it is (the room
    /// in its device's XSKMAP): a device that now has more than [`PortIo::queues`], up to
    /// this, is worth opening again.
    fn queue_room(&self) -> u32 {
        self.queues()
    }

    /// Did the last flush leave frames to send (a kick sends a budget)? Then the next round
    /// flushes again. One flag, no system call.
    fn tx_leftover(&self) -> bool {
        false
    }

    /// Has the kernel taken every frame queued for transmission? A worker sleeps only then
    /// (what the kernel takes next wakes no one).
    fn drained(&mut self) -> bool {
        true
    }

    /// Adds what signals this port's received frames to `out` (its sockets, readable when their
    /// RX rings hold frames), for an idle worker to sleep on. Returns false for a port that
    /// cannot signal (its worker then naps and looks again).
    fn wait_fds(&self, _out: &mut Vec<libc::pollfd>) -> bool {
        false
    }

    /// Does the port take frames whose partial TCP or UDP checksum the kernel finishes on
    /// transmit? Such a frame is sent with [`crate::sys::xsk::XDP_TX_METADATA`] and a request
    /// written before it ([`crate::sys::xsk::write_tx_checksum`]); any other frame must be
    /// complete. False by default.
    fn tx_checksum(&self) -> bool {
        false
    }

    /// Does the port send a TCP super-frame whole ([`PortIo::send_whole`])? False by default.
    fn takes_whole(&self) -> bool {
        false
    }

    /// Sends the frame made of `parts` whole, now, with `hdr` saying how it is to be cut into
    /// segments and where its partial checksum is to be finished ([`crate::sys::packet`]). Only
    /// for a port whose [`PortIo::takes_whole`] is true; the frame's bytes stay the caller's.
    fn send_whole(&mut self, _hdr: &VnetHdr, _parts: &[&[u8]]) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// What sends whole frames out of this port from other threads (the socket behind
    /// [`PortIo::send_whole`], shared), if the port has one. None by default.
    fn whole_tx(&self) -> Option<Arc<dyn WholeTx>> {
        None
    }

    /// What the port is to the switch's XDP shortcut ([`crate::shortcut`]); None for backends
    /// without an interface.
    fn shortcut(&self) -> Option<ShortcutPort> {
        None
    }

    /// Deepest fill level any of its queues has grown to (0 for backends without fill rings).
    fn fill_depth(&self) -> u32 {
        0
    }

    /// The kernel's statistics (zero for backends without any).
    fn xdp_stats(&self) -> XdpStats {
        XdpStats::default()
    }

    /// Closes the port and returns every chunk it held to the pool.
    fn close(self, umem: &mut Umem);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kicks a ring of `frames` whose kernel sends `budget` a kick, its device taking `takes` in
    /// all before its queue fills (having completed a kick's worth in the last round);
    /// returns the kicks made and the frames left.
    fn kicks(frames: u32, budget: u32, takes: u32) -> (u32, u32) {
        let (mut left, mut made) = (frames, 0);
        kick_through_budget(frames, budget, budget, || {
            made += 1;
            let taken = budget.min(left).min(takes.saturating_sub(frames - left));
            left -= taken;
            // Told to try again: stopped at the budget with frames left, or the queue full.
            Ok(left > 0)
        })
        .unwrap();
        (made, left)
    }

    #[test]
    fn a_flush_kicks_through_the_kernels_budget_up_to_its_frames() {
        // One kick takes them all (256 a kick): one kick.
        assert_eq!(kicks(200, 256, u32::MAX), (1, 0));
        // More than one kick's worth where kicks carry 256: still one; the rest next round.
        assert_eq!(kicks(1000, 256, u32::MAX), (1, 744));
        // 32 a kick, keeping up (two kicks' worth at most): one kick, the next round's takes
        // the rest. Falling behind: kicked until none are left, up to 256 frames' worth.
        assert_eq!(kicks(60, 32, u32::MAX), (1, 28));
        assert_eq!(kicks(100, 32, u32::MAX), (4, 0));
        assert_eq!(kicks(1000, 32, u32::MAX), (8, 1000 - 256));
        // A device whose queue fills after 40 frames: told to try again each time, kicked as
        // many times as the frames there were need (at most 8), then left to the next round.
        assert_eq!(kicks(100, 32, 40), (4, 60));
        // Nothing told to try again: one kick. A device that completed less than a kick's
        // worth in the last round (slow, or stopped): one kick, though told to try again.
        for (done, again) in [(32, false), (31, true), (0, true)] {
            let mut made = 0;
            kick_through_budget(100, 32, done, || {
                made += 1;
                Ok(again)
            })
            .unwrap();
            assert_eq!(made, 1, "{done} {again}");
        }
        // A kick that fails ends the kicks with its error.
        let e = kick_through_budget(10, 32, 32, || Err(io::ErrorKind::NotConnected.into()));
        assert_eq!(e.unwrap_err().kind(), io::ErrorKind::NotConnected);
    }
}
