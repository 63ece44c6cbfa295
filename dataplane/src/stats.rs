//! Per-port counters: what the worker counts, and how operators read it.
//!
//! # Design
//! The worker counts into plain `u64`s it owns ([`LocalCounters`]) and publishes them into the
//! port's shared [`PortCounters`] (relaxed atomic stores) at most every millisecond and whenever it
//! goes idle, so the per-packet path never touches a shared cache line. Readers see values at most
//! a millisecond old while traffic flows, and exact values once it stops. Frames the XDP
//! shortcut forwarded from and to the port are counted by its program ([`crate::shortcut`]),
//! and readers add them live ([`Live`]): they count at once.

use core::sync::atomic::{
    AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Arc, Mutex, PoisonError};

use crate::shortcut::{Counts, Shortcut};

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// Why a frame was dropped. Every drop is counted under exactly one reason.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $(#[doc = $doc] $variant,)*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant),*];
            /// Number of reasons.
            pub const COUNT: usize = Self::ALL.len();

            /// The counter's stable name (used by the CLI, the API and metrics).
            pub fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name,)* }
            }
        }
    };
}

drop_reasons! {
    Truncated => "truncated", "Shorter than an Ethernet header or the VLAN tag it announces.";
    Oversize => "oversize", "Longer than the port's MTU allows.";
    InvalidSource => "invalid_source", "Source address is multicast, broadcast or zero.";
    PortDown => "port_down", "Arrived on a port that is administratively down or unbound.";
    TaggedOnAccess => "tagged_on_access", "A VLAN-tagged (or double-tagged) frame from a VM port.";
    UntaggedOnTrunk => "untagged_on_trunk", "An untagged frame on an uplink whose physical network has no flat network.";
    UnknownVlan => "unknown_vlan", "A tagged frame on an uplink whose VLAN no network of its physical network owns (or a double tag).";
    SamePort => "same_port", "The destination is learned on the ingress port itself.";
    EgressDown => "egress_down", "The destination port is down.";
    NoBuffer => "no_buffer", "No free frame for a flood copy, a tag push or a segment, or no transmit room for a super-frame's segments.";
    Spoofed => "spoofed", "Port security: a source MAC or IP the port does not own.";
    Policed => "policed", "Over the port's QoS rate limit: of what its VM sends, or (per copy) of what it receives.";
    TxError => "tx_error", "The kernel refused the transmit (interface gone or down).";
    DhcpUnanswered => "dhcp_unanswered", "A DHCP client message the responder answers nothing to (a release, a decline, another server's, not the port's MAC).";
    SgEgress => "sg_egress", "Security groups: a frame the VM sent that no rule of its groups allows, or of a connection a rule change cut.";
    SgIngress => "sg_ingress", "Security groups: a frame to the VM that no rule of its groups allows (counted on the VM's port), or of a cut connection.";
    ConntrackFull => "conntrack_full", "Security groups: a new connection beyond the port's share of the connection table.";
    BadChecksum => "bad_checksum", "A TCP super-frame (a guest's TSO send) whose checksum is neither left partial nor correct: it cannot leave whole, and cut into segments with fresh checksums its corruption would be hidden.";
    TxStalled => "tx_stalled", "Beyond the TX ring's room of a port whose transmit stalled: its ring has had less than 64 frames of room for 10 ms, whether it sends or not (1 ms within a second of its last stall; its device sends slower than it is sent to, or stopped sending while its carrier is up). Its frames are dropped, rather than holding back every other port, until it has 64 frames of room again.";
}

/// Counters of one port, as a worker accumulates them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalCounters {
    /// Frames received from the port.
    pub rx_packets: u64,
    /// Bytes received from the port.
    pub rx_bytes: u64,
    /// Frames sent to the port.
    pub tx_packets: u64,
    /// Bytes sent to the port.
    pub tx_bytes: u64,
    /// Frames received on this port that were flooded.
    pub floods: u64,
    /// Source addresses not learned because the network was at its limit.
    pub learn_limit: u64,
    /// Source addresses that moved to this port from another.
    pub mac_moves: u64,
    /// Frames from this port whose new or moved source address was not learned at once because
    /// the MAC table was growing: the worker learns it (up to 256 addresses) once the copy is
    /// done.
    pub learn_deferred: u64,
    /// Times the worker stopped reading this port because an egress TX ring was full.
    pub backpressure: u64,
    /// Frames received from this port whose partial TCP/UDP checksum (left by the sender for
    /// its NIC to finish) was finished, by the switch or by the egress port's kernel.
    pub csum_completed: u64,
    /// TCP super-frames (a guest's TSO frames, received as multi-buffer chains) received from
    /// this port that the switch split into MTU-sized segments.
    pub gso_segmented: u64,
    /// TCP super-frames received from this port that left whole, through the egress port's
    /// packet socket with a virtio-net header (`crate::sys::packet`), or were handed over whole
    /// to the worker of the egress port (which cuts them if that port has no such socket).
    pub gso_whole: u64,
    /// TCP segments sent to this port merged into super-frames (`crate::coalesce`): frames of
    /// one flow that came one after another, each counted once on its ingress port, sent as
    /// one frame through the port's packet socket.
    pub coalesced: u64,
    /// DHCP replies the switch's responder sent to this port.
    pub dhcp_replies: u64,
    /// ARP replies the switch sent to this port for its network's known addresses.
    pub arp_replies: u64,
    /// Router advertisements the switch sent to this port (answers to its solicitations).
    pub ra_replies: u64,
    /// Frames received on this port that its XDP program forwarded itself, by the switch's
    /// shortcut ([`crate::shortcut`]); they are in `rx_packets` too (and in the egress port's
    /// `tx_packets`).
    pub xdp_forwarded: u64,
    /// Times the port's transmit stalled (`crate::worker::stall`): its TX ring short of room
    /// for the stall time, frames beyond its room dropped (`tx_stalled`) until it had room
    /// again.
    pub tx_stalls: u64,
    /// Time (ns) the port's transmit spent stalled, the current stall's so far included (as
    /// far as the worker's last round).
    pub tx_stalled_ns: u64,
    /// Drops of frames received on (or destined to) this port, by reason.
    pub drops: [u64; DropReason::COUNT],
}

impl LocalCounters {
    /// Counts one drop.
    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    /// Counts `frames` dropped frames for `reason` (a merged run's segments).
    pub fn drop_n(&mut self, reason: DropReason, frames: u32) {
        self.drops[reason as usize] += u64::from(frames);
    }

    /// All drops, whatever the reason.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Adds what the XDP shortcut forwarded from and to the port: received, sent, and received
    /// again as `xdp_forwarded`.
    pub fn add_shortcut(&mut self, n: &Counts) {
        self.rx_packets += n.rx_packets;
        self.rx_bytes += n.rx_bytes;
        self.tx_packets += n.tx_packets;
        self.tx_bytes += n.tx_bytes;
        self.xdp_forwarded += n.rx_packets;
    }
}

/// Where the XDP shortcut counts an open port's frames: its slot in the shortcut's counters, and
/// what they held when the port opened there.
#[derive(Debug)]
pub struct Live {
    /// The switch's shortcut.
    pub sc: Arc<Shortcut>,
    /// The port's slot.
    pub slot: u16,
    /// The slot's counts when the port opened.
    pub base: Counts,
}

impl Live {
    /// What the shortcut forwarded from and to the port since it opened.
    fn grown(&self) -> Counts {
        self.sc.counts(self.slot).since(&self.base)
    }
}

/// The kernel's `XDP_STATISTICS` of a port, summed over its queues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// Dropped for reasons other than invalid descriptors (e.g. frame larger than a chunk).
    pub rx_dropped: u64,
    /// Invalid descriptors on RX.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors on TX.
    pub tx_invalid_descs: u64,
    /// Dropped because the RX ring was full (back-pressure from a full TX ring).
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a frame arrived.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the TX ring was empty when the kernel looked.
    pub tx_ring_empty_descs: u64,
}

impl XdpStats {
    /// Each count the larger of `self`'s and `newer`'s: a socket's counts only grow, and a read
    /// that failed for one of a port's sockets (its device going) sums lower than the last.
    pub fn max_each(self, newer: XdpStats) -> XdpStats {
        XdpStats {
            rx_dropped: self.rx_dropped.max(newer.rx_dropped),
            rx_invalid_descs: self.rx_invalid_descs.max(newer.rx_invalid_descs),
            tx_invalid_descs: self.tx_invalid_descs.max(newer.tx_invalid_descs),
            rx_ring_full: self.rx_ring_full.max(newer.rx_ring_full),
            rx_fill_ring_empty_descs: self
                .rx_fill_ring_empty_descs
                .max(newer.rx_fill_ring_empty_descs),
            tx_ring_empty_descs: self.tx_ring_empty_descs.max(newer.tx_ring_empty_descs),
        }
    }
}

impl core::ops::AddAssign for XdpStats {
    fn add_assign(&mut self, o: XdpStats) {
        self.rx_dropped += o.rx_dropped;
        self.rx_invalid_descs += o.rx_invalid_descs;
        self.tx_invalid_descs += o.tx_invalid_descs;
        self.rx_ring_full += o.rx_ring_full;
        self.rx_fill_ring_empty_descs += o.rx_fill_ring_empty_descs;
        self.tx_ring_empty_descs += o.tx_ring_empty_descs;
    }
}

/// Everything an operator can read about a port's traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// The switch's own counters.
    pub counters: LocalCounters,
    /// The kernel's socket statistics.
    pub xdp: XdpStats,
}

/// The published copy of a port's counters, shared between the worker and readers.
#[derive(Debug, Default)]
pub struct PortCounters {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    floods: AtomicU64,
    learn_limit: AtomicU64,
    mac_moves: AtomicU64,
    learn_deferred: AtomicU64,
    backpressure: AtomicU64,
    csum_completed: AtomicU64,
    gso_segmented: AtomicU64,
    gso_whole: AtomicU64,
    coalesced: AtomicU64,
    dhcp_replies: AtomicU64,
    arp_replies: AtomicU64,
    ra_replies: AtomicU64,
    xdp_forwarded: AtomicU64,
    tx_stalls: AtomicU64,
    tx_stalled_ns: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
    xdp: [AtomicU64; 6],
    /// Sent out of the port by other workers, straight through its packet socket: frames,
    /// bytes and segments merged, added by each (several writers), read into `tx_packets`,
    /// `tx_bytes` and `coalesced`.
    direct: [AtomicU64; 3],
    /// While the port is open with the XDP shortcut, where its frames are counted there, read
    /// into `rx_*`, `tx_*` and `xdp_forwarded`. Folded into the published counters when the port
    /// closes, under the lock, so that a reader never counts them twice or not at all.
    live: Mutex<Option<Live>>,
}

impl PortCounters {
    /// Publishes the worker's counters (single writer: the worker).
    pub fn publish(&self, c: &LocalCounters, x: &XdpStats) {
        self.rx_packets.store(c.rx_packets, Relaxed);
        self.rx_bytes.store(c.rx_bytes, Relaxed);
        self.tx_packets.store(c.tx_packets, Relaxed);
        self.tx_bytes.store(c.tx_bytes, Relaxed);
        self.floods.store(c.floods, Relaxed);
        self.learn_limit.store(c.learn_limit, Relaxed);
        self.mac_moves.store(c.mac_moves, Relaxed);
        self.learn_deferred.store(c.learn_deferred, Relaxed);
        self.backpressure.store(c.backpressure, Relaxed);
        self.csum_completed.store(c.csum_completed, Relaxed);
        self.gso_segmented.store(c.gso_segmented, Relaxed);
        self.gso_whole.store(c.gso_whole, Relaxed);
        self.coalesced.store(c.coalesced, Relaxed);
        self.dhcp_replies.store(c.dhcp_replies, Relaxed);
        self.arp_replies.store(c.arp_replies, Relaxed);
        self.ra_replies.store(c.ra_replies, Relaxed);
        self.xdp_forwarded.store(c.xdp_forwarded, Relaxed);
        self.tx_stalls.store(c.tx_stalls, Relaxed);
        self.tx_stalled_ns.store(c.tx_stalled_ns, Relaxed);
        for (a, v) in self.drops.iter().zip(c.drops) {
            a.store(v, Relaxed);
        }
        let xs = [
            x.rx_dropped,
            x.rx_invalid_descs,
            x.tx_invalid_descs,
            x.rx_ring_full,
            x.rx_fill_ring_empty_descs,
            x.tx_ring_empty_descs,
        ];
        for (a, v) in self.xdp.iter().zip(xs) {
            a.store(v, Relaxed);
        }
    }

    /// Counts a frame of `bytes` that another worker sent out of the port, `merged` segments
    /// merged into it (0 for a single segment).
    pub fn sent_direct(&self, bytes: u64, merged: u64) {
        self.direct[0].fetch_add(1, Relaxed);
        self.direct[1].fetch_add(bytes, Relaxed);
        self.direct[2].fetch_add(merged, Relaxed);
    }

    /// Reads the last published values, with what other workers sent out of the port and what
    /// the XDP shortcut forwarded from and to it.
    pub fn read(&self) -> PortStats {
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        let s = self.read_published();
        PortStats {
            counters: self.completed(s.counters, &live),
            xdp: s.xdp,
        }
    }

    /// The port's own worker's counters `c` (exact, not published yet) with what a reader adds:
    /// what other workers sent out of the port and what the XDP shortcut forwarded from and to
    /// it.
    pub fn complete(&self, c: LocalCounters) -> LocalCounters {
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        self.completed(c, &live)
    }

    fn completed(&self, c: LocalCounters, live: &Option<Live>) -> LocalCounters {
        let mut c = self.with_direct(c);
        if let Some(l) = live {
            c.add_shortcut(&l.grown());
        }
        c
    }

    /// The port opened with the XDP shortcut on `slot`: from now on readers add what it counts
    /// there.
    pub fn count_live(&self, sc: Arc<Shortcut>, slot: u16) {
        let base = sc.counts(slot);
        *self.live.lock().unwrap_or_else(PoisonError::into_inner) = Some(Live { sc, slot, base });
    }

    /// The port closes: what the shortcut forwarded since it opened is added to `c`, its
    /// worker's counters, which are published (with `x`) as the last values, all under the
    /// lock readers take.
    pub fn close_live(&self, c: &mut LocalCounters, x: &XdpStats) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(l) = live.take() {
            c.add_shortcut(&l.grown());
        }
        self.publish(c, x);
    }

    /// The port's own worker's counters `c` with what other workers sent out of the port.
    fn with_direct(&self, mut c: LocalCounters) -> LocalCounters {
        c.tx_packets += self.direct[0].load(Relaxed);
        c.tx_bytes += self.direct[1].load(Relaxed);
        c.coalesced += self.direct[2].load(Relaxed);
        c
    }

    /// Frames other workers sent out of the port.
    pub fn sent_by_others(&self) -> u64 {
        self.direct[0].load(Relaxed)
    }

    /// Reads the values the port's own worker published (what it starts from when the port is
    /// opened again).
    pub fn read_published(&self) -> PortStats {
        let mut drops = [0; DropReason::COUNT];
        for (d, a) in drops.iter_mut().zip(&self.drops) {
            *d = a.load(Relaxed);
        }
        let x = |i: usize| self.xdp[i].load(Relaxed);
        PortStats {
            counters: LocalCounters {
                rx_packets: self.rx_packets.load(Relaxed),
                rx_bytes: self.rx_bytes.load(Relaxed),
                tx_packets: self.tx_packets.load(Relaxed),
                tx_bytes: self.tx_bytes.load(Relaxed),
                floods: self.floods.load(Relaxed),
                learn_limit: self.learn_limit.load(Relaxed),
                mac_moves: self.mac_moves.load(Relaxed),
                learn_deferred: self.learn_deferred.load(Relaxed),
                backpressure: self.backpressure.load(Relaxed),
                csum_completed: self.csum_completed.load(Relaxed),
                gso_segmented: self.gso_segmented.load(Relaxed),
                gso_whole: self.gso_whole.load(Relaxed),
                coalesced: self.coalesced.load(Relaxed),
                dhcp_replies: self.dhcp_replies.load(Relaxed),
                arp_replies: self.arp_replies.load(Relaxed),
                ra_replies: self.ra_replies.load(Relaxed),
                xdp_forwarded: self.xdp_forwarded.load(Relaxed),
                tx_stalls: self.tx_stalls.load(Relaxed),
                tx_stalled_ns: self.tx_stalled_ns.load(Relaxed),
                drops,
            },
            xdp: XdpStats {
                rx_dropped: x(0),
                rx_invalid_descs: x(1),
                tx_invalid_descs: x(2),
                rx_ring_full: x(3),
                rx_fill_ring_empty_descs: x(4),
                tx_ring_empty_descs: x(5),
            },
        }
    }
}

/// What a worker publishes about itself and its MAC table, for exporters: written by the worker
/// every 100 ms from its clock-driven housekeeping, never on the per-packet path.
#[derive(Debug, Default)]
pub struct WorkerStats {
    rounds: AtomicU64,
    busy_ns: AtomicU64,
    behind_ns: AtomicU64,
    rx_frames: AtomicU64,
    gaps_over_1ms: AtomicU64,
    /// Over the last complete window ([`WorkerStats::WINDOW_NS`]).
    /// The last complete window's busy and behind times, millionths of it: busy in the high 32
    /// bits, behind in the low (one store, so that a reader never pairs two windows').
    window_ppm: AtomicU64,
    window_max_gap_ns: AtomicU64,
    conntrack_entries: AtomicU64,
    crossed_out: AtomicU64,
    crossed_in: AtomicU64,
    crossed_lost: AtomicU64,
    /// The XDP shortcut's entries: held now, installed and withdrawn over the worker's life.
    shortcut: [AtomicU64; 3],
    /// The deepest a busy queue's fill ring is kept, and the cost of a frame that bounds it.
    fill_frames: AtomicU64,
    frame_cost_ns: AtomicU64,
    /// Per network slot: live MAC entries and learning limit. The worker only `try_lock`s it, so
    /// a slow reader costs the worker one skipped update, never a wait.
    macs: std::sync::Mutex<Vec<(u32, u32)>>,
}

/// One reading of a [`WorkerStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WorkerReading {
    /// Loop rounds run.
    pub rounds: u64,
    /// Seconds spent in rounds that found work.
    pub busy_seconds: f64,
    /// Seconds spent in rounds that left frames waiting (a receive gave all the round asked of
    /// it, or there was no room to take any): the worker was behind what arrived.
    pub behind_seconds: f64,
    /// Frames received.
    pub rx_frames: u64,
    /// Gaps over a millisecond between two rounds while forwarding.
    pub gaps_over_1ms: u64,
    /// Share of the last complete window spent in rounds that found work (0 to 1). A worker
    /// that keeps up is busy most of the time all the same: see `behind_ratio`.
    pub busy_ratio: f64,
    /// Share of the last complete window spent in rounds that left frames waiting (0 to 1): how
    /// often the worker was behind what arrived, its saturation.
    pub behind_ratio: f64,
    /// Longest gap between two rounds while forwarding, in the last complete window, seconds.
    pub max_gap_seconds: f64,
    /// Connections in the worker's connection table (security groups).
    pub conntrack_entries: u64,
    /// Frames (or flood copies) the worker handed to another worker, whose port they go to.
    pub crossed_out: u64,
    /// Frames the worker took from other workers, for its ports.
    pub crossed_in: u64,
    /// Frames taken from other workers whose port or network had gone from its slot, or had not
    /// reached this worker yet, when the worker took them, or whose port was not open on it:
    /// dropped. A merged run of TCP segments taken whole counts once per segment (it is one of
    /// `crossed_in`), so this may exceed `crossed_in`.
    pub crossed_lost: u64,
    /// XDP shortcut entries the worker holds installed ([`crate::shortcut`]).
    pub shortcut_entries: u64,
    /// XDP shortcut entries the worker installed, over its life.
    pub shortcut_installed: u64,
    /// XDP shortcut entries the worker withdrew (the MAC table or the ports changed), over its
    /// life.
    pub shortcut_withdrawn: u64,
    /// The deepest a busy receive queue's fill ring is kept (frames): what the kernel can
    /// receive into while the worker is held off its core.
    pub fill_frames: u64,
    /// The worker's cost of a frame while frames wait (rounds that left frames on a receive
    /// ring or held them back), measured within the last 10 s, else over every round that found
    /// work, seconds: with `max_queue_us`, it bounds `fill_frames`. 0 until measured.
    pub frame_cost_seconds: f64,
}

impl WorkerStats {
    /// The window of the busy and behind ratios and the longest gap: 10 s.
    pub const WINDOW_NS: u64 = 10_000_000_000;

    /// Publishes the lifetime counters (single writer: the worker).
    pub fn publish(
        &self,
        rounds: u64,
        busy_ns: u64,
        behind_ns: u64,
        rx_frames: u64,
        gaps_over_1ms: u64,
    ) {
        self.rounds.store(rounds, Relaxed);
        // Busy before behind (a part of it), released with it: a reader that sees this behind
        // sees this busy or a later one, never behind above busy.
        self.busy_ns.store(busy_ns, Relaxed);
        self.behind_ns.store(behind_ns, Release);
        self.rx_frames.store(rx_frames, Relaxed);
        self.gaps_over_1ms.store(gaps_over_1ms, Relaxed);
    }

    /// Publishes a completed window: busy and behind times and longest gap over `len_ns`.
    pub fn publish_window(&self, busy_ns: u64, behind_ns: u64, max_gap_ns: u64, len_ns: u64) {
        let ppm = |ns: u64| (ns.saturating_mul(1_000_000) / len_ns.max(1)).min(1_000_000);
        self.window_ppm
            .store(ppm(busy_ns) << 32 | ppm(behind_ns), Relaxed);
        self.window_max_gap_ns.store(max_gap_ns, Relaxed);
    }

    /// Publishes the frames handed to and taken from other workers, and of those taken, the
    /// frames that found their port or network gone.
    pub fn publish_crossed(&self, out: u64, r#in: u64, lost: u64) {
        self.crossed_out.store(out, Relaxed);
        self.crossed_in.store(r#in, Relaxed);
        self.crossed_lost.store(lost, Relaxed);
    }

    /// Publishes the XDP shortcut's entries held, installed and withdrawn.
    pub fn publish_shortcut(&self, held: u64, installed: u64, withdrawn: u64) {
        for (a, v) in self.shortcut.iter().zip([held, installed, withdrawn]) {
            a.store(v, Relaxed);
        }
    }

    /// Publishes the fill rings' depth and the cost of a frame that bounds it.
    pub fn publish_fill(&self, frames: u32, frame_cost_ns: u64) {
        self.fill_frames.store(u64::from(frames), Relaxed);
        self.frame_cost_ns.store(frame_cost_ns, Relaxed);
    }

    /// Publishes the connection table's size.
    pub fn publish_conntrack(&self, entries: u64) {
        self.conntrack_entries.store(entries, Relaxed);
    }

    /// Publishes the MAC tables' sizes; skipped (not waited for) while a reader holds them.
    pub fn publish_macs(&self, fill: impl FnOnce(&mut Vec<(u32, u32)>)) {
        if let Ok(mut m) = self.macs.try_lock() {
            m.clear();
            fill(&mut m);
        }
    }

    /// Live entries and learning limit of the network in `slot`, as last published.
    pub fn macs(&self, slot: u16) -> (u32, u32) {
        self.macs
            .lock()
            .map(|m| m.get(usize::from(slot)).copied().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Reads the last published values.
    pub fn read(&self) -> WorkerReading {
        // Behind first, acquired, then busy: never less than the behind read ([`Self::publish`]).
        let behind_ns = self.behind_ns.load(Acquire);
        let window = self.window_ppm.load(Relaxed);
        WorkerReading {
            rounds: self.rounds.load(Relaxed),
            busy_seconds: self.busy_ns.load(Relaxed) as f64 / 1e9,
            behind_seconds: behind_ns as f64 / 1e9,
            rx_frames: self.rx_frames.load(Relaxed),
            gaps_over_1ms: self.gaps_over_1ms.load(Relaxed),
            busy_ratio: (window >> 32) as f64 / 1e6,
            behind_ratio: (window & 0xffff_ffff) as f64 / 1e6,
            max_gap_seconds: self.window_max_gap_ns.load(Relaxed) as f64 / 1e9,
            conntrack_entries: self.conntrack_entries.load(Relaxed),
            crossed_out: self.crossed_out.load(Relaxed),
            crossed_in: self.crossed_in.load(Relaxed),
            crossed_lost: self.crossed_lost.load(Relaxed),
            shortcut_entries: self.shortcut[0].load(Relaxed),
            shortcut_installed: self.shortcut[1].load(Relaxed),
            shortcut_withdrawn: self.shortcut[2].load(Relaxed),
            fill_frames: self.fill_frames.load(Relaxed),
            frame_cost_seconds: self.frame_cost_ns.load(Relaxed) as f64 / 1e9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reason_names_are_unique() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn published_counters_read_back() {
        // Every field named, each its own value: a field added and not published fails here.
        let mut c = LocalCounters {
            rx_packets: 3,
            rx_bytes: 10,
            tx_packets: 11,
            tx_bytes: 99,
            floods: 12,
            learn_limit: 13,
            mac_moves: 14,
            learn_deferred: 4,
            backpressure: 15,
            csum_completed: 2,
            gso_segmented: 1,
            gso_whole: 5,
            coalesced: 6,
            dhcp_replies: 16,
            arp_replies: 17,
            ra_replies: 18,
            xdp_forwarded: 8,
            tx_stalls: 19,
            tx_stalled_ns: 20,
            drops: [0; DropReason::COUNT],
        };
        c.drop(DropReason::Oversize);
        let x = XdpStats {
            rx_ring_full: 7,
            ..Default::default()
        };
        let shared = PortCounters::default();
        shared.publish(&c, &x);
        let s = shared.read();
        assert_eq!(s.counters, c);
        assert_eq!(s.xdp, x);
        assert_eq!(s.counters.total_drops(), 1);
    }

    #[test]
    fn worker_stats_read_back() {
        let w = WorkerStats::default();
        w.publish(10, 2_500_000_000, 500_000_000, 7, 1);
        w.publish_window(
            5_000_000_000,
            1_000_000_000,
            3_000_000,
            WorkerStats::WINDOW_NS,
        );
        w.publish_macs(|m| m.extend([(0, 0), (3, 100)]));
        w.publish_fill(3000, 1_500);
        let r = w.read();
        assert_eq!(r.fill_frames, 3000);
        assert!((r.frame_cost_seconds - 1.5e-6).abs() < 1e-15);
        assert_eq!((r.rounds, r.rx_frames, r.gaps_over_1ms), (10, 7, 1));
        assert!((r.busy_seconds - 2.5).abs() < 1e-9);
        assert!((r.behind_seconds - 0.5).abs() < 1e-9);
        assert!((r.busy_ratio - 0.5).abs() < 1e-9);
        assert!((r.behind_ratio - 0.1).abs() < 1e-9);
        assert!((r.max_gap_seconds - 0.003).abs() < 1e-12);
        assert_eq!(w.macs(1), (3, 100));
        assert_eq!(w.macs(9), (0, 0));
    }
}
