//! The poll-mode worker: owns a UMEM, the ports that share it, the MAC tables and the counters,
//! and moves frames between the ports.
//!
//! # Design
//! One loop iteration ([`Worker::poll`]):
//! 1. every open port returns its sent chunks to the pool and has its fill rings topped up;
//! 2. the batch size is bounded by four fifths of the smallest free TX room of any port (a
//!    chain's segments outnumber its chunks by at most a quarter), so a full TX ring
//!    holds frames back in the ingress port's RX ring (where the kernel counts `rx_ring_full`
//!    if it overflows) and no buffer is ever lost in user space; a port whose transmit stalled
//!    (less than a batch of room for 10 ms, sending or not, [`stall`]) no longer bounds it
//!    until it has a batch of room again, and what does not fit its ring is dropped on it;
//! 3. each port's batch (up to 64 frames) goes through the [`Pipeline`]; a forwarded frame whose
//!    TCP/UDP checksum the sender left partial is completed ([`csum`]); a frame that came as a
//!    chain of chunks (a TSO super-frame, multi-buffer AF_XDP) is gathered and, towards a known
//!    unicast destination, decided once and sent whole through the egress port's packet socket
//!    ([`PortIo::send_whole`], after what is staged for that port; handed over whole to another
//!    worker's port), else split into segments that fit the port's MTU ([`gso`]), each then
//!    processed as a frame of its own; the resulting descriptors are staged per egress port: a unicast frame moves its descriptor (zero copy),
//!    a flood copies the frame for all targets but the last, and a tag is pushed or popped in
//!    place when the frame crosses between an access port and the trunk;
//! 4. each egress port with staged frames is sent and kicked once per ingress batch (a stalled
//!    port that completes nothing only at the round's start, at most once a millisecond).
//!
//! Configuration arrives as [`Command`]s on a channel, checked between batches through one
//! flag: a new [`Snapshot`] (read-copy-update), ports opened or closed, and queries. The hot path
//! takes no lock and allocates nothing.
//!
//! # Several workers
//! A switch runs several workers (one per core by default). Each owns its ports and its own
//! UMEM, so no ring is shared between threads. The MAC table is shared (lookups lock-free, see
//! [`crate::fdb`]); the snapshot says which worker owns each port. A frame whose egress port
//! belongs to another worker is copied into that worker's bounded ring ([`cross`]), once per
//! worker for a flood; the owner checks the port's ingress security group rules (its
//! connection-table zone lives there) and sends it. TCP towards a VM's port of another worker
//! leaves through the port's packet socket from the deciding worker instead ([`direct`]); towards
//! a port with security group rules, once the owner published the connection
//! ([`crate::conntrack::published`]). A round takes no more frames than every
//! ring can carry, so a full ring holds frames back in the RX rings, as a full TX ring does.
//!
//! # Thread-safety
//! The worker is one thread. It shares with the rest of the process the per-port
//! [`PortShared`] (relaxed atomics it publishes at most every millisecond and when idle), the MAC
//! table and its rings to the other workers.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::coalesce;
use crate::config::{Role, Snapshot, NONE};
use crate::csum;
use crate::dhcp;
use crate::fdb::{PortRef, DEFAULT_AGING_SECS};
use crate::gso;
use crate::mss::MssTable;
use crate::pipeline::{flood_targets, Now, Pipeline, Verdict};
use crate::port::{PortIo, PortMode, Region, VnetHdr, XdpDesc};
use crate::shortcut::Shortcut;
use crate::stats::{DropReason, LocalCounters, PortCounters, WorkerStats, XdpStats};
use crate::sys::umem::{Accounting, Umem, KERNEL_HEADROOM};
use crate::sys::wake::Wake;
use crate::sys::xsk::{write_tx_checksum, TX_METADATA_LEN, XDP_PKT_CONTD, XDP_TX_METADATA};
use crate::wire::{
    self, is_vlan_tpid, pop_vlan_tag, push_vlan_tag, EthernetFrame, Mac, ETH_HEADER_LEN,
    VLAN_TAG_LEN,
};

pub mod cross;
pub mod direct;
mod fast;
mod stall;

use crate::conntrack::{Connection, Key, Published};
use crate::fdb::MacTable;
use cross::{Crossing, Links, Target};
use direct::DirectPort;

/// Largest batch taken from one port at a time.
pub const MAX_BATCH: usize = 64;

/// How many frames ahead of its turn a received frame's first cache line is prefetched: about
/// as many transfers as a core keeps in flight, each taking the time of several frames' work.
const PREFETCH_AHEAD: usize = 8;

/// How many frames ahead of its turn a received frame's MAC table slots are prefetched
/// ([`Pipeline::prefetch`]): half of [`PREFETCH_AHEAD`], so that the frame's first line, asked
/// for then, has arrived and the slots' lines have as long again to come.
const LOOKUP_AHEAD: usize = PREFETCH_AHEAD / 2;

/// Room for the largest multi-buffer frame (an IP packet of 64 KB, its Ethernet header and a
/// tag, with margin), so gathering one never allocates.
const GSO_BUF: usize = 72 * 1024;

/// Most segments one super-frame may make: a 64 KB frame at the smallest segment size `mss`
/// accepts (552-byte IPv4 packets, about 430 bytes of payload with TCP options) makes 153. A port
/// MTU so small that a frame would need more is refused, not allowed to drain the UMEM.
const MAX_SEGMENTS: usize = 256;

/// Frames staged for one egress port before it is sent early: stages are otherwise sent once per
/// round, so that a `sendto` carries the frames of every ingress port, not of one batch.
const STAGE_CAP: usize = 256;

/// How the worker waits when there is no traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PollMode {
    /// Spin for `idle_spin_ns` without traffic, yielding the CPU between polls, then sleep until
    /// a frame, a command or a frame from another worker arrives (or the clock's work is due):
    /// an idle worker takes no CPU, and a process sharing its core runs while it has no work.
    #[default]
    Adaptive,
    /// Never sleep (lowest latency, one core always busy).
    Busy,
}

/// Worker parameters.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Chunks in the UMEM.
    pub frames: u32,
    /// Bytes per chunk (2048 carries frames up to 1792 bytes).
    pub chunk_size: u32,
    /// MAC aging, seconds.
    pub aging_secs: u32,
    /// Cap on the MAC table's total entries.
    pub max_macs: usize,
    /// Connections a port's stateful security groups may track at once.
    pub conntrack_per_port: u32,
    /// Idle behaviour.
    pub poll: PollMode,
    /// Largest fill ring target per queue.
    pub max_fill: u32,
    /// The longest a frame may wait for the worker, in its work: a busy queue's fill ring holds
    /// no more frames than the worker handles in this time (at its measured cost per frame),
    /// so that a rate it cannot keep up with loses frames at once instead of building a queue
    /// of milliseconds. 0: bounded in frames only (`max_fill`).
    pub max_queue_ns: u64,
    /// How long an adaptive worker spins without traffic before it sleeps: traffic with shorter
    /// gaps never waits for a wake-up (but, when another task is runnable on the worker's CPU,
    /// may wait for that task after the worker yielded to it).
    pub idle_spin_ns: u64,
    /// The longest an adaptive worker sleeps without traffic (the clock's work, ageing and
    /// counters, runs at least this often while idle; every millisecond while closed ports'
    /// chunks, or ports waiting for them, are pending).
    pub idle_sleep_ns: u64,
    /// Send a guest's TCP super-frames whole towards a known unicast destination (through its
    /// port's packet socket, handed over whole to its worker), instead of cutting them into
    /// segments here.
    pub whole_super_frames: bool,
    /// Merge the consecutive TCP segments of a flow, within a batch, into one super-frame sent
    /// whole, towards a VM's port (not the uplink) that sends super-frames whole
    /// ([`crate::coalesce`]); only with `whole_super_frames`.
    pub coalesce_segments: bool,
    /// The switch's XDP shortcut, shared by its workers ([`crate::shortcut`]): known unicast
    /// between plain VM ports forwarded by the ports' XDP programs, installed by the workers.
    pub shortcut: Option<Arc<Shortcut>>,
    /// How long a port's TX ring may stay short of a batch's room, holding the worker's other
    /// ports back, before the port stalls and frames beyond its room are dropped ([`stall`]);
    /// a millisecond, or this if shorter, within a second of its last stall.
    pub tx_stall_ns: u64,
}

/// The default bound on a frame's wait: 5 ms of the worker's work. Shallower rings lose frames
/// whenever the worker is held off its core for longer (kernel threads take a core for up to
/// 8 ms on the machines measured; docs/BENCHMARKS.md).
pub const DEFAULT_MAX_QUEUE_NS: u64 = 5_000_000;

/// How long an adaptive worker spins without traffic before it sleeps, by default: as long as
/// a few wake-ups cost. A worker whose traffic comes further apart (the acknowledgments of a TCP
/// flow, a few every 100 µs) sleeps between them and leaves its CPU to the guests; spinning
/// through such gaps (2 ms before) took a CPU the guests' stacks needed on a small host (TCP
/// between two VMs on different workers, 2 CPUs: 4.0 to 4.6 Gbit/s against 6.6).
pub const DEFAULT_IDLE_SPIN_NS: u64 = 50_000;

/// The shallowest fill ring the time bound leaves a busy queue.
const MIN_BOUNDED_FILL: u32 = 256;

/// Frames taken in rounds that left frames waiting over which the cost of a frame is measured
/// ([`Worker::measure_cost`]): a few milliseconds of a standing queue, several stalls' drains at
/// moderate loads, so that one preemption of the thread (under the millisecond that counts as a
/// stall) moves the bound little.
const QUEUED_MEASURE: u64 = 4096;

/// The rounds that left frames waiting (`behind`: a receive ring gave all the round asked;
/// `held_back`: no room to take any) since the cost of a frame was last measured from them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct QueuedWindow {
    /// When the window began (ns).
    since: u64,
    /// Time in those rounds that took frames.
    ns: u64,
    /// Time in those that took none (held back, waiting for room), counted up to `ns`: a round
    /// is held back whether or not frames wait behind it, and a long wait with nothing behind
    /// it (a full TX ring, an idle receive ring) is no frame's cost.
    held_ns: u64,
    /// Frames those rounds received and took from other workers.
    frames: u64,
}

impl QueuedWindow {
    fn starting(now_ns: u64) -> Self {
        QueuedWindow {
            since: now_ns,
            ..QueuedWindow::default()
        }
    }

    fn add(&mut self, gap: u64, frames: u64) {
        if frames > 0 {
            self.ns += gap;
            self.frames += frames;
        } else {
            self.held_ns += gap;
        }
    }

    /// A frame's cost over the window, ns (at least 1).
    fn cost(&self) -> u64 {
        ((self.ns + self.held_ns.min(self.ns)) / self.frames.max(1)).max(1)
    }
}

/// How long a cost measured while frames waited serves ([`Worker::measure_cost`]) before the
/// cost over every round takes over again (the safe side): a cost measured long ago may be of
/// other traffic.
const QUEUED_COST_NS: u64 = 10_000_000_000;

/// The longest the sweeper takes to walk the MAC table and the connection table whole, ms, of
/// the clock: an expired entry stops counting against its network's limit (or its port's share)
/// within a second, a fifth of it left for turns lost to another worker's sweep or a sleep.
pub const SWEEP_PASS_MS: usize = 800;

/// The fewest slots of each table the sweeper walks a millisecond: a table of up to 102 400
/// slots is walked whole in less than [`SWEEP_PASS_MS`] (32 768 slots in 256 ms).
const SWEEP_MIN_PER_MS: usize = 128;

/// The most of the MAC table's slots an idle worker sweeps at once when it pays its debt before
/// sleeping ([`Worker::pay_debts`]), or 8 ms' share if more: the sweep holds the table's writer
/// lock, which another worker's learning waits for. 16 384 slots take about 85 µs (the bench
/// `sweep/1m/part`); a table of up to 16 384 slots, or of 102 400 after a sleep of up to 128 ms,
/// is paid at once.
const PAY_SLOTS: usize = 16_384;

/// The slots of a table of `slots` the sweeper walks for `ms` milliseconds of the clock: the
/// share that walks it whole in [`SWEEP_PASS_MS`], at least [`SWEEP_MIN_PER_MS`] a millisecond.
fn sweep_share(slots: usize, ms: usize) -> usize {
    let per_pass = slots.saturating_mul(ms).div_ceil(SWEEP_PASS_MS);
    per_pass.max(SWEEP_MIN_PER_MS.saturating_mul(ms))
}

/// The milliseconds of sweep that walk a table of `slots` whole ([`sweep_share`]): what a
/// sleep may leave owed at most.
fn pass_ms(slots: usize) -> usize {
    slots.div_ceil(SWEEP_MIN_PER_MS).clamp(1, SWEEP_PASS_MS)
}

/// The milliseconds of sweep an idle worker pays at once on a MAC table of `slots`: as many as
/// walk at most [`PAY_SLOTS`] of it, 8 at least (what a round pays while frames flow).
fn pay_ms(slots: usize) -> usize {
    (PAY_SLOTS / sweep_share(slots, 1)).max(8)
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            frames: 32768,
            chunk_size: 2048,
            aging_secs: DEFAULT_AGING_SECS,
            max_macs: 1 << 20,
            conntrack_per_port: crate::conntrack::DEFAULT_PER_PORT,
            poll: PollMode::Adaptive,
            max_fill: 8192,
            max_queue_ns: DEFAULT_MAX_QUEUE_NS,
            idle_spin_ns: DEFAULT_IDLE_SPIN_NS,
            idle_sleep_ns: 100_000_000,
            whole_super_frames: true,
            coalesce_segments: true,
            shortcut: None,
            tx_stall_ns: stall::STALL_NS,
        }
    }
}

/// The state of an open (or opening) port, as its owner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LinkState {
    /// Not open (yet, or any more).
    Closed = 0,
    /// Open and forwarding.
    Up = 1,
    /// Was open, then the kernel refused to send (interface gone or down).
    Failed = 2,
    /// Opening failed; see the error.
    OpenFailed = 3,
}

/// What the worker shares about a port with the rest of the process.
#[derive(Debug, Default)]
pub struct PortShared {
    /// Counters, published by the worker.
    pub counters: PortCounters,
    state: AtomicU8,
    mode: AtomicU8,
    error: Mutex<Option<String>>,
    busy: AtomicBool,
    tx_stalled: AtomicBool,
    attempts: std::sync::atomic::AtomicU64,
    /// While it is up: the RX queues it has a socket on, and those it could have, were it
    /// opened again ([`PortIo::queue_room`]).
    queues: AtomicU32,
    queue_room: AtomicU32,
    /// How the logs name the port: its id and device ([`PortShared::named`]); empty where it
    /// was given none (the logs then say its slot).
    name: String,
}

impl PortShared {
    /// The shared state of port `id`, on device `device`, as the logs name it.
    pub fn named(id: &str, device: &str) -> Self {
        PortShared {
            name: format!("{id} on {device}"),
            ..PortShared::default()
        }
    }

    /// The port as the logs name it, in `slot`: `port <id> on <device>`, or `port in slot N`
    /// where it was given no name.
    fn label(&self, slot: u16) -> PortLabel<'_> {
        PortLabel {
            slot,
            name: &self.name,
        }
    }

    /// The port's state.
    pub fn state(&self) -> LinkState {
        match self.state.load(Ordering::Acquire) {
            1 => LinkState::Up,
            2 => LinkState::Failed,
            3 => LinkState::OpenFailed,
            _ => LinkState::Closed,
        }
    }

    /// The mode it was opened in.
    pub fn mode(&self) -> PortMode {
        match self.mode.load(Ordering::Relaxed) {
            1 => PortMode::NativeCopy,
            2 => PortMode::NativeZeroCopy,
            3 => PortMode::GenericCopy,
            4 => PortMode::Memory,
            _ => PortMode::Closed,
        }
    }

    /// Did the last open fail only because the device's queue was still held by a socket being
    /// released (worth retrying at once)?
    pub fn busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed)
    }

    /// Is its transmit stalled now ([`stall`]): frames beyond its TX ring's room dropped
    /// (`tx_stalled`) until it has room again? False while it is not open.
    pub fn tx_stalled(&self) -> bool {
        self.tx_stalled.load(Ordering::Relaxed)
    }

    /// How many open requests the worker has carried out for this port.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Acquire)
    }

    /// Counts an open request as carried out without reaching the worker (it was superseded).
    pub(crate) fn attempt_dropped(&self) {
        self.attempts.fetch_add(1, Ordering::Release);
    }

    /// While it is up, the RX queues it has a socket on: fewer than `device_queues`, the
    /// queues its device has now, where it could have more, opened again (frames on a queue
    /// without a socket go to the kernel's stack, not to the switch)?
    pub fn lacks_queues(&self, device_queues: u32) -> bool {
        self.state() == LinkState::Up
            && device_queues.min(self.queue_room.load(Ordering::Relaxed))
                > self.queues.load(Ordering::Relaxed)
    }

    /// While it is up, the RX queues it could have a socket on ([`PortIo::queue_room`]).
    pub fn queue_room(&self) -> u32 {
        match self.state() {
            LinkState::Up => self.queue_room.load(Ordering::Relaxed),
            _ => 0,
        }
    }

    /// The last error, if the port failed.
    pub fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }

    fn set(&self, state: LinkState, mode: PortMode, error: Option<String>) {
        if let Ok(mut e) = self.error.lock() {
            *e = error;
        }
        let m = match mode {
            PortMode::Closed => 0,
            PortMode::NativeCopy => 1,
            PortMode::NativeZeroCopy => 2,
            PortMode::GenericCopy => 3,
            PortMode::Memory => 4,
        };
        self.mode.store(m, Ordering::Relaxed);
        // Opened afresh, closed or failed: no stall yet.
        self.tx_stalled.store(false, Ordering::Relaxed);
        self.state.store(state as u8, Ordering::Release);
    }
}

/// A port as the logs name it ([`PortShared::label`]).
struct PortLabel<'a> {
    slot: u16,
    name: &'a str,
}

impl core::fmt::Display for PortLabel<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.name.is_empty() {
            write!(f, "port in slot {}", self.slot)
        } else {
            write!(f, "port {}", self.name)
        }
    }
}

/// A request to the worker.
pub enum Command<P: PortIo> {
    /// Adopt a new forwarding snapshot.
    Snapshot(Arc<Snapshot>),
    /// Open a port in `slot` (closing whatever was there), here on the worker.
    AddPort {
        /// Slot (as in the snapshot).
        slot: u16,
        /// How to open it.
        spec: P::Spec,
        /// Where to report its state and counters.
        shared: Arc<PortShared>,
    },
    /// Take a port opened elsewhere into `slot` (closing whatever was there); an error is
    /// reported as the port's.
    Adopt {
        /// Slot (as in the snapshot).
        slot: u16,
        /// The port, or why it could not be opened.
        opened: io::Result<P>,
        /// Where to report its state and counters.
        shared: Arc<PortShared>,
    },
    /// Close the port in `slot`.
    RemovePort {
        /// Slot.
        slot: u16,
    },
    /// Send the live entries of a network's MAC table.
    MacTable {
        /// Network slot.
        net: u16,
        /// Where to send them, each with its port's id in the worker's snapshot.
        reply: Sender<Vec<crate::switch::MacTableEntry>>,
    },
    /// Send the tracked connections of a port's security groups (its zone in this worker's
    /// connection table, which holds every connection of the ports it owns).
    Connections {
        /// Port slot.
        slot: u16,
        /// Where to send them.
        reply: Sender<Vec<Connection>>,
    },
    /// Send the frame accounting.
    Accounting {
        /// Where to send it.
        reply: Sender<Accounting>,
    },
    /// Close every port and end the loop.
    Stop,
}

impl<P: PortIo> core::fmt::Debug for Command<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Command::Snapshot(s) => write!(f, "Snapshot(v{})", s.version),
            Command::AddPort { slot, spec, .. } => write!(f, "AddPort({slot}, {spec:?})"),
            Command::Adopt { slot, opened, .. } => match opened {
                Ok(_) => write!(f, "Adopt({slot})"),
                Err(e) => write!(f, "Adopt({slot}, {e})"),
            },
            Command::RemovePort { slot } => write!(f, "RemovePort({slot})"),
            Command::MacTable { net, .. } => write!(f, "MacTable({net})"),
            Command::Connections { slot, .. } => write!(f, "Connections({slot})"),
            Command::Accounting { .. } => write!(f, "Accounting"),
            Command::Stop => write!(f, "Stop"),
        }
    }
}

struct Open<P> {
    io: P,
    shared: Arc<PortShared>,
    healthy: bool,
    /// The port's kernel finishes partial checksums on transmit ([`PortIo::tx_checksum`]).
    tx_checksum: bool,
    /// The port sends TCP super-frames whole ([`PortIo::takes_whole`]).
    takes_whole: bool,
    /// Super-frames in a row its socket refused ([`WHOLE_REFUSALS`] turn `takes_whole` off).
    whole_refusals: u32,
    /// The kernel's statistics of the port's sockets, as last read.
    xdp: XdpStats,
    /// What the port's sockets before these counted (published when it opened): a port opened
    /// again (its device came back) has new sockets, which count from 0.
    xdp_before: XdpStats,
    /// When the last warning about frames the kernel dropped was logged.
    warned_at: Option<u64>,
    /// The table the port's established connections are published in for the other workers
    /// while the port is offered to them ([`direct`]), and the slot's generation it is for.
    published: Option<(u32, Arc<Published>)>,
    /// Its XDP program has the switch's shortcut: entries for its frames may be installed.
    shortcut: bool,
    /// Whether its transmit stalled ([`stall`]).
    tx: stall::TxWatch,
}

impl<P> Open<P> {
    /// The kernel's statistics of the port since it first opened, for its published counters.
    fn xdp_total(&self) -> XdpStats {
        let mut total = self.xdp_before;
        total += self.xdp;
        total
    }

    /// Why a frame its TX ring has no room for is lost: the port stalled (`tx_stalled`), or
    /// else `no_buffer`.
    fn no_room(&self) -> DropReason {
        if self.tx.stalled() {
            DropReason::TxStalled
        } else {
            DropReason::NoBuffer
        }
    }
}

/// Sends the TCP frame `buf` (`plan`'s) whole through `send`, its checksum made partial for the
/// kernel to finish and the header telling it to cut at the smaller of the plan's segment size
/// and `egress_mss`. `(tagged, to_trunk, vlan)`: the frame carries its network's tag, the port
/// is the uplink where it must carry tag `vlan`; the tag is pushed or popped on the way, the
/// frame's bytes left as they are. Returns the length sent; `InvalidData` for a frame that
/// cannot be sent so (no segment size, no TCP header to make partial).
fn send_frame_whole(
    buf: &mut [u8],
    plan: &gso::Plan,
    (tagged, to_trunk, vlan): (bool, bool, u16),
    egress_mss: usize,
    send: impl FnOnce(&VnetHdr, &[&[u8]]) -> io::Result<()>,
) -> io::Result<usize> {
    if egress_mss == 0 || !csum::make_partial(buf) {
        return Err(io::ErrorKind::InvalidData.into());
    }
    let mut tag = [0u8; VLAN_TAG_LEN];
    let (shift, parts, count) = frame_parts(buf, (tagged, to_trunk, vlan), &mut tag);
    let hdr = plan.vnet_hdr(buf, egress_mss, shift);
    send(&hdr, &parts[..count])?;
    Ok(buf.len().saturating_add_signed(shift))
}

/// Frame `buf` as it leaves a port, in at most three parts, `tag` holding a tag pushed:
/// `(tagged, to_trunk, vlan)` as for [`send_frame_whole`]. Returns how far the bytes after the
/// MAC addresses moved, the parts and how many there are.
fn frame_parts<'a>(
    buf: &'a [u8],
    (tagged, to_trunk, vlan): (bool, bool, u16),
    tag: &'a mut [u8; VLAN_TAG_LEN],
) -> (isize, [&'a [u8]; 3], usize) {
    match (tagged, to_trunk) {
        (false, true) => {
            tag[..2].copy_from_slice(&wire::ETHERTYPE_VLAN.to_be_bytes());
            tag[2..].copy_from_slice(&(vlan & 0x0fff).to_be_bytes());
            (4, [&buf[..12], &tag[..], &buf[12..]], 3)
        }
        (true, false) => (-4, [&buf[..12], &buf[12 + VLAN_TAG_LEN..], &[]], 2),
        _ => (0, [buf, &[], &[]], 1),
    }
}

/// Stops a port whose transmit failed (its interface gone or down): counted, logged and
/// reported; the switch closes it.
fn tx_failed<P: PortIo>(o: &mut Open<P>, slot: u16, c: &mut LocalCounters, e: &io::Error) {
    c.drop(DropReason::TxError);
    o.healthy = false;
    tracing::warn!("{} stopped: transmit failed: {e}", o.shared.label(slot));
    o.shared.set(
        LinkState::Failed,
        o.io.mode(),
        Some(format!("transmit failed: {e}")),
    );
}

/// A statistics window of the worker's ([`WorkerStats::WINDOW_NS`]): when it started, the busy
/// and behind times at its start, and the longest gap between rounds in it so far.
#[derive(Debug, Default)]
struct Window {
    start: u64,
    busy_at_start: u64,
    behind_at_start: u64,
    max_gap: u64,
}

/// A worker: one UMEM, its ports, the pipeline.
pub struct Worker<P: PortIo> {
    // Field order is drop order: the ports (their sockets, which the kernel writes through into
    // the UMEM) close before the UMEM is unmapped, on every path, a panic included.
    ports: Vec<Option<Open<P>>>,
    /// Ports opened for a slot whose previous port's chunks are still buried (its sockets being
    /// released on another thread): started as soon as the slot is free.
    parked: Vec<(u16, P, Arc<PortShared>)>,
    /// Unsolicited router advertisements still to send: (slot, generation, copies left, when
    /// the next is due in ns).
    ra_due: Vec<(u16, u32, u8, u64)>,
    pipe: Pipeline,
    snap: Arc<Snapshot>,
    active: Vec<u16>,
    rx: Vec<XdpDesc>,
    /// A multi-buffer frame gathered for segmentation (64 KB and more, allocated once).
    gso_buf: Vec<u8>,
    /// Super-frames leave whole where they can ([`WorkerConfig::whole_super_frames`]).
    whole: bool,
    /// TCP segments are merged where they can ([`WorkerConfig::coalesce_segments`]); off
    /// while a super-frame is cut here (its segments are not merged again).
    merging: bool,
    /// TCP segments of one flow being merged for one port ([`coalesce`]): open only while a
    /// port's batch (or the frames taken from other workers) is handled, closed before anything
    /// else is staged for that port.
    merge: Option<Merge>,
    /// The merged frame (64 KB, allocated when first used).
    merge_buf: Vec<u8>,
    /// Segment size limits learned from SYNs and ICMP errors, for segmentation.
    mss: MssTable,
    stage: Vec<Vec<XdpDesc>>,
    staged: Vec<u16>,
    fill_target: u32,
    cfg: WorkerConfig,
    last_publish: u64,
    /// The clock's work (the sweepers) is accounted for up to this time, in whole milliseconds
    /// since the last (the fraction after it counts towards the next).
    last_sweep: u64,
    last_xdp: u64,
    dirty: bool,
    /// Frames received, over the worker's life.
    rx_total: u64,
    /// Time spent in rounds that found work, over the worker's life.
    busy_ns: u64,
    /// Time spent in rounds that left frames waiting ([`Worker::behind`]), over the worker's
    /// life: the worker is behind what arrives. A worker that keeps up is busy most of the time
    /// all the same (each round's few frames cost a transmit call), so `busy_ns` does not say
    /// how close it is to its capacity; this does.
    behind_ns: u64,
    /// Longest time between the start of a round that found work and the start of the next (a
    /// long round, or the thread held off its CPU), and how many such gaps exceeded a
    /// millisecond: a fill ring shallower than the rate times the gap runs dry.
    max_gap_ns: u64,
    gaps_over_1ms: u64,
    /// Rounds run, over the worker's life.
    rounds: u64,
    /// The current statistics window.
    window: Window,
    /// The worker's cost of a frame that bounds the fill rings in time, ns: the cost measured
    /// while frames waited (`queued_cost`), if measured within [`QUEUED_COST_NS`], else the cost
    /// over every round (`round_cost_ns`); 0 until measured ([`Worker::measure_cost`]).
    frame_ns: u64,
    /// The cost of a frame in rounds that left frames waiting (ns), and when it was measured:
    /// the rate at which a standing queue, a full fill ring, drains.
    queued_cost: Option<(u64, u64)>,
    /// The rounds that left frames waiting since `queued_cost` was last measured.
    queued: QueuedWindow,
    /// The cost of a frame over every round that found work (working time over frames received
    /// and taken from other workers, over the last stretch of at least a thousand), ns; 0 until
    /// measured. A round with few frames costs more a frame (its fixed work, a transmit call
    /// for one or two frames), so it overstates how long a full ring takes to drain (up to two
    /// and a half times, measured on a 2 vCPU VM).
    round_cost_ns: u64,
    /// Time in rounds that found work, leaving out gaps over a millisecond: those are stalls
    /// (the thread held off its core), not the cost of frames.
    working_ns: u64,
    /// Working time and frames when `round_cost_ns` was last measured.
    cost_mark: (u64, u64),
    /// Time spent handling commands (a snapshot's adoption, a port's start) since the last
    /// round was counted: part of the gap between two rounds, but no frame's cost.
    commands_ns: u64,
    /// When the worker's own statistics were last published.
    last_stats: u64,
    stats: Arc<WorkerStats>,
    /// Rings to and from the other workers.
    links: Links,
    /// Other workers' ports this worker sends TCP out of itself ([`direct`]), by slot: its copy
    /// of the switch's table, and the table's version copied.
    direct: Vec<Option<Arc<DirectPort>>>,
    direct_seen: u64,
    /// The second of the round being polled: a published connection goes straight until its
    /// second ([`Worker::may_go_straight`]).
    secs: u32,
    /// The time of the round being polled (ns): whether a stalled port is kicked ([`stall`]).
    round_ns: u64,
    /// Frames handed to other workers, and received from them, over the worker's life.
    crossed: (u64, u64),
    /// Frames received from other workers for a port or network no longer, or not yet, the one
    /// they were meant for in this worker's snapshot ([`Worker::meant`]), dropped.
    crossed_lost: u64,
    /// The peer whose frames [`Worker::take_crossings`] took first in the last round.
    first_peer: usize,
    /// The workers frames were handed to (a bit each), woken after each ingress port's batch.
    woken: u64,
    /// The last round left frames where they were for want of room (a full TX ring or pool
    /// towards a peer), or would have if any had waited: they wait in RX rings or channels
    /// that would wake a sleeper at once, while what frees the room does not wake it. Such a
    /// worker naps instead.
    held_back: bool,
    /// The last round left frames waiting that it could have taken: a port's receive gave all
    /// the round asked of it (a full batch, or as much as the round had room for), or there was
    /// no room to take any (`held_back`).
    behind: bool,
    /// Milliseconds of the MAC and connection tables' sweep ([`Worker::sweep`]) the worker owes
    /// for the time it slept: paid 8 a millisecond while frames flow, and before it sleeps again
    /// in parts a millisecond apart ([`Worker::pay_debts`]); at most a pass of the larger table.
    sweep_debt: usize,
    /// When (ns) the next part of the debt may be paid before the worker sleeps.
    next_pay: u64,
    /// What an idle worker sleeps on (scratch, rebuilt each time it sleeps).
    pollfds: Vec<libc::pollfd>,
    /// The clock every worker of a switch shares (MAC entries are stamped with its seconds).
    epoch: Instant,
    /// The XDP shortcut's entries this worker installed, if the switch has the shortcut.
    fast: Option<fast::Fast>,
    /// Unicast frames of the batch being handled that may get an entry: (ingress, egress,
    /// network, (destination, source)).
    offers: Vec<(u16, u16, u16, (Mac, Mac))>,
    /// Last: unmapped after every socket that shares it has closed.
    umem: Umem,
}

/// Watches port `slot`'s transmit ([`stall`]): its TX ring has `free` room after it completed
/// `done` frames this round, at `now` (ns). Counts a stall and its time, shows it in the port's
/// status while it lasts, and logs it and its end (at most every 10 s per port). Returns the
/// time stalled it counted (ns).
fn watch_tx<P>(
    slot: u16,
    o: &mut Open<P>,
    c: &mut LocalCounters,
    free: u32,
    done: usize,
    now: u64,
) -> u64 {
    match o.tx.observe(free, done, now) {
        Some(stall::Change::Stalled { tell }) => {
            c.tx_stalls += 1;
            o.shared.tx_stalled.store(true, Ordering::Relaxed);
            if tell {
                let t = o.tx.times();
                tracing::warn!(
                    "{}: transmit stalled: its TX ring has had less than {MAX_BATCH} \
                     frames of room for {} ms, or {} ms within a second of its last stall (its \
                     device sends slower than it is sent to, or stopped); frames that do not fit \
                     it are dropped (tx_stalled) until it has room again, so that it holds no \
                     other port back",
                    o.shared.label(slot),
                    t.stall_ns as f64 / 1e6,
                    t.restall_ns as f64 / 1e6
                );
            }
        }
        Some(stall::Change::Resumed { tell }) => {
            o.shared.tx_stalled.store(false, Ordering::Relaxed);
            if tell {
                tracing::info!("{}: transmit resumed", o.shared.label(slot));
            }
        }
        None => {}
    }
    let stalled = o.tx.stalled_ns(now);
    c.tx_stalled_ns += stalled;
    stalled
}

/// Warns (at most every 10 s per port) when the kernel dropped frames of a port before they
/// reached the switch: no free buffer on the fill ring for a whole frame, or, on a kernel
/// without multi-buffer sockets, a frame larger than a UMEM chunk (a guest's TSO super-frames
/// where they reach generic XDP: tap devices, `xdp_mode = "generic"`; `auto` takes generic mode
/// on a veth only with multi-buffer sockets).
fn warn_kernel_drops<P>(slot: u16, o: &mut Open<P>, x: &XdpStats, now: u64) {
    let new = x.rx_dropped.saturating_sub(o.xdp.rx_dropped);
    let quiet = o
        .warned_at
        .is_some_and(|t| now.saturating_sub(t) < 10_000_000_000);
    if new == 0 || quiet {
        return;
    }
    o.warned_at = Some(now);
    tracing::warn!(
        "{}: the kernel dropped {new} received frames before the switch saw them \
         ({} in all): no free buffer on the fill ring for a whole frame, or a frame larger than \
         a UMEM chunk on a kernel without multi-buffer sockets (see docs/OPERATIONS.md, \
         \"Offloads\")",
        o.shared.label(slot),
        o.xdp_before.rx_dropped + x.rx_dropped
    );
}

impl<P: PortIo> core::fmt::Debug for Worker<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Worker")
            .field("umem", &self.umem)
            .field("active", &self.active)
            .field("snapshot", &self.snap.version)
            .finish()
    }
}

impl<P: PortIo> Worker<P> {
    /// A worker with no ports, alone (its own MAC table, no other workers).
    pub fn new(cfg: WorkerConfig) -> io::Result<Self> {
        let fdb = MacTable::new(cfg.aging_secs, cfg.max_macs);
        Worker::in_crew(cfg, Links::default(), fdb, Instant::now())
    }

    /// A worker among others: `links` (from [`cross::mesh`]) reach them, `fdb` is a view of the
    /// MAC table they share, and `epoch` the clock they share.
    pub fn in_crew(
        cfg: WorkerConfig,
        links: Links,
        fdb: MacTable,
        epoch: Instant,
    ) -> io::Result<Self> {
        let mut pipe =
            Pipeline::with_conntrack(cfg.aging_secs, cfg.max_macs, cfg.conntrack_per_port);
        pipe.fdb = fdb;
        let fast = cfg.shortcut.clone().map(fast::Fast::new);
        Ok(Worker {
            umem: Umem::new(cfg.frames, cfg.chunk_size)?,
            pipe,
            snap: Arc::new(Snapshot::default()),
            ports: Vec::new(),
            parked: Vec::new(),
            ra_due: Vec::new(),
            active: Vec::new(),
            rx: vec![XdpDesc::default(); MAX_BATCH],
            gso_buf: Vec::with_capacity(GSO_BUF),
            whole: cfg.whole_super_frames,
            merging: cfg.coalesce_segments && cfg.whole_super_frames,
            merge: None,
            merge_buf: Vec::new(),
            mss: MssTable::default(),
            stage: Vec::new(),
            staged: Vec::new(),
            fill_target: 0,
            cfg,
            last_publish: 0,
            last_sweep: 0,
            last_xdp: 0,
            dirty: false,
            rx_total: 0,
            busy_ns: 0,
            behind_ns: 0,
            max_gap_ns: 0,
            gaps_over_1ms: 0,
            rounds: 0,
            window: Window::default(),
            frame_ns: 0,
            queued_cost: None,
            queued: QueuedWindow::default(),
            round_cost_ns: 0,
            working_ns: 0,
            commands_ns: 0,
            cost_mark: (0, 0),
            last_stats: 0,
            stats: Arc::default(),
            links,
            direct: Vec::new(),
            direct_seen: 0,
            secs: 0,
            round_ns: 0,
            crossed: (0, 0),
            crossed_lost: 0,
            first_peer: 0,
            woken: 0,
            held_back: false,
            behind: false,
            sweep_debt: 0,
            next_pay: 0,
            pollfds: Vec::new(),
            epoch,
            fast,
            offers: Vec::new(),
        })
    }

    /// This worker's index among the switch's workers.
    pub fn id(&self) -> u16 {
        self.links.id
    }

    /// Where its UMEM is, to open ports for it on another thread.
    pub fn region(&self) -> Region {
        self.umem.region()
    }

    /// What wakes the worker when it sleeps: notify it after setting the command flag given to
    /// [`Worker::run`]. None: it naps instead, and needs no waking.
    pub fn wake(&self) -> Option<Arc<Wake>> {
        self.links.wake.clone()
    }

    /// What the worker publishes about itself, for exporters.
    pub fn stats(&self) -> Arc<WorkerStats> {
        Arc::clone(&self.stats)
    }

    /// The port in `slot`, if open (tests use it to reach in-memory ports).
    pub fn port_mut(&mut self, slot: u16) -> Option<&mut P> {
        self.ports
            .get_mut(usize::from(slot))
            .and_then(Option::as_mut)
            .map(|o| &mut o.io)
    }

    /// The worker's counters of a slot (exact, unpublished).
    pub fn counters(&self, slot: u16) -> LocalCounters {
        self.pipe
            .counters
            .get(usize::from(slot))
            .copied()
            .unwrap_or_default()
    }

    /// Where every frame is.
    pub fn accounting(&self) -> Accounting {
        self.umem.accounting()
    }

    /// The pipeline (MAC tables), for inspection.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipe
    }

    fn ensure_slot(&mut self, slot: u16) {
        let n = usize::from(slot) + 1;
        if self.ports.len() < n {
            self.ports.resize_with(n, || None);
        }
        if self.stage.len() < n {
            self.stage.resize_with(n, || Vec::with_capacity(STAGE_CAP));
        }
        if self.pipe.counters.len() < n {
            self.pipe.counters.resize(n, LocalCounters::default());
        }
    }

    fn recompute_fill_target(&mut self) {
        let queues: u32 = self
            .active
            .iter()
            .filter_map(|&s| self.ports[usize::from(s)].as_ref())
            .map(|o| o.io.queues())
            .sum();
        // Half the frames wait in fill rings; the other half are in flight (RX, TX, copies).
        // (A `max_fill` below 16, which the file refuses, is taken as 16.)
        let by_frames = (self.cfg.frames / 2 / queues.max(1)).clamp(16, self.cfg.max_fill.max(16));
        self.fill_target = by_frames.min(self.fill_by_time());
    }

    /// The deepest fill ring the time bound allows: what the worker handles in `max_queue_ns`
    /// at its measured cost per frame, at least `MIN_BOUNDED_FILL`; unbounded until measured.
    fn fill_by_time(&self) -> u32 {
        if self.cfg.max_queue_ns == 0 || self.frame_ns == 0 {
            return u32::MAX;
        }
        let frames = self.cfg.max_queue_ns / self.frame_ns;
        u32::try_from(frames)
            .unwrap_or(u32::MAX)
            .max(MIN_BOUNDED_FILL)
    }

    /// Measures the cost of a frame, and bounds the fill rings by it: the cost in rounds that
    /// left frames waiting, over [`QUEUED_MEASURE`] of their frames, which is how fast a full
    /// ring drains; where none was measured within [`QUEUED_COST_NS`] (frames have not waited,
    /// or not lately: the traffic may have changed), the cost over every round that found work
    /// (a frame there costs more: a shallower ring, on the safe side), which is kept current
    /// either way. [`Worker::count_queued`] calls it as soon as a window of waiting frames is
    /// full; every publication of the worker's statistics (100 ms) too. `now_ns`, the time.
    fn measure_cost(&mut self, now_ns: u64) {
        let (working, seen) = self.cost_mark;
        let total = self.frames_taken();
        if total - seen >= 1000 {
            self.round_cost_ns = ((self.working_ns - working) / (total - seen)).max(1);
            self.cost_mark = (self.working_ns, total);
        }
        let q = self.queued;
        if q.frames >= QUEUED_MEASURE {
            self.queued_cost = Some((q.cost(), now_ns));
            self.queued = QueuedWindow::starting(now_ns);
        }
        let cost = match self.queued_cost {
            Some((cost, at)) if now_ns.saturating_sub(at) < QUEUED_COST_NS => cost,
            _ => self.round_cost_ns,
        };
        if cost != self.frame_ns {
            self.frame_ns = cost;
            self.recompute_fill_target();
        }
    }

    /// Carries out one command. Returns false for [`Command::Stop`].
    pub fn handle(&mut self, cmd: Command<P>, now: Now) -> bool {
        match cmd {
            Command::Snapshot(s) => {
                self.pipe.adopt(&s, now);
                // The XDP shortcut's entries the snapshot no longer allows go (every worker
                // adopts every snapshot, and checks its own), after this worker's ports' networks
                // are recorded as the snapshot gives them, for every installer.
                if let Some(f) = self.fast.as_mut() {
                    for &slot in &self.active {
                        f.port_net(slot, network_of(&s, slot));
                    }
                    f.revalidate(&fast::basis(&self.pipe, &s, now.secs, &self.umem));
                }
                let n = s.ports.len();
                if n > 0 {
                    self.ensure_slot(u16::try_from(n - 1).unwrap_or(u16::MAX - 2));
                }
                // Ports whose router advertisement the snapshot changes (or that come up) tell
                // their VMs: planned now, sent from the next rounds' housekeeping.
                let changed: Vec<u16> = (self.active.iter().copied())
                    .filter(|&slot| {
                        advertised(&s, slot).is_some_and(|(_, up, ra)| up && ra.is_some())
                    })
                    .filter(|&slot| advertised(&s, slot) != advertised(&self.snap, slot))
                    .collect();
                self.snap = s;
                for slot in changed {
                    self.schedule_ra(slot);
                }
                for k in 0..self.active.len() {
                    self.offer_direct(self.active[k]);
                }
            }
            Command::AddPort { slot, spec, shared } => {
                let done = Arc::clone(&shared);
                self.add_port(slot, spec, shared);
                done.attempts.fetch_add(1, Ordering::Release);
            }
            Command::Adopt {
                slot,
                opened,
                shared,
            } => {
                let done = Arc::clone(&shared);
                self.adopt(slot, opened, shared);
                done.attempts.fetch_add(1, Ordering::Release);
            }
            Command::RemovePort { slot } => self.close_port(slot),
            Command::MacTable { net, reply } => {
                // Entries of a port that went (its slot empty, or another port's now) are dead:
                // frames to their addresses are flooded, and the sweeper removes them on its
                // next pass. Not listed: the port that took the slot would be shown with
                // addresses it never had, and a gone one's as belonging to no port. Each is
                // named by this snapshot's port, so the names match the filter.
                let snap = &self.snap;
                let entries = (self.pipe.fdb.entries(net, now.secs).into_iter())
                    .filter_map(|e| {
                        let p = snap.port(e.port.slot).filter(|p| p.gen == e.port.gen)?;
                        Some(crate::switch::MacTableEntry {
                            mac: e.mac,
                            port: p.id.clone(),
                            age_secs: e.age_secs,
                            is_static: e.is_static,
                        })
                    })
                    .collect();
                let _ = reply.send(entries);
            }
            Command::Connections { slot, reply } => {
                // A port without a filter (port security off) is not filtered: what it tracked
                // before is dead.
                let snap = &self.snap;
                let conns = match snap
                    .port(slot)
                    .and_then(|p| Some((p.gen, p.filter.as_ref()?)))
                {
                    Some((gen, f)) => self.pipe.conns.connections(
                        slot,
                        gen,
                        snap.policy_epoch,
                        now.secs,
                        |opening, dir| {
                            crate::acl::still_allowed(f, &snap.address_sets, opening, dir)
                        },
                    ),
                    None => Vec::new(),
                };
                let _ = reply.send(conns);
            }
            Command::Accounting { reply } => {
                let _ = reply.send(self.umem.accounting());
            }
            Command::Stop => {
                for &slot in &self.active {
                    if let Some(o) = self.ports[usize::from(slot)].as_ref() {
                        let c = o.shared.counters.complete(self.counters(slot));
                        let drops: Vec<String> = crate::stats::DropReason::ALL
                            .iter()
                            .filter(|r| c.drops[**r as usize] > 0)
                            .map(|r| format!("{}={}", r.name(), c.drops[*r as usize]))
                            .collect();
                        tracing::info!(
                            "{}: rx {} tx {} xdp forwarded {} floods {} backpressure {} checksums completed {} super-frames segmented {} whole {} segments coalesced {} sent by other workers {} transmit stalls {} drops [{}] fill depth {} kernel {:?}",
                            o.shared.label(slot),
                            c.rx_packets,
                            c.tx_packets,
                            c.xdp_forwarded,
                            c.floods,
                            c.backpressure,
                            c.csum_completed,
                            c.gso_segmented,
                            c.gso_whole,
                            c.coalesced,
                            o.shared.counters.sent_by_others(),
                            c.tx_stalls,
                            drops.join(" "),
                            o.io.fill_depth(),
                            {
                                // (Since the port first opened, as its published counters.)
                                let mut kernel = o.xdp_before;
                                kernel += o.io.xdp_stats();
                                kernel
                            }
                        );
                    }
                }
                let parked: Vec<u16> = self.parked.iter().map(|p| p.0).collect();
                for slot in self.active.clone().into_iter().chain(parked) {
                    self.close_port(slot);
                }
                // Every socket is closed before the UMEM goes.
                if !self.umem.reap_all(Duration::from_secs(5)) {
                    tracing::warn!("worker: a closed port's sockets were not released within 5 s");
                }
                if self.rx_total > 0 {
                    tracing::info!(
                        "worker: {} frames received, {:.1} ns of busy rounds per frame \
                         (user space plus the TX syscalls' kernel work); longest gap between \
                         rounds {} us, {} gaps over 1 ms",
                        self.rx_total,
                        self.busy_ns as f64 / self.rx_total as f64,
                        self.max_gap_ns / 1000,
                        self.gaps_over_1ms
                    );
                }
                return false;
            }
        }
        true
    }

    fn add_port(&mut self, slot: u16, spec: P::Spec, shared: Arc<PortShared>) {
        let opened = P::open(&spec, slot, &self.umem.region())
            .map_err(|e| io::Error::new(e.kind(), format!("{spec:?}: {e}")));
        self.adopt(slot, opened, shared);
    }

    /// Takes a port opened for `slot` (closing whatever was there), or reports why it could
    /// not be opened.
    fn adopt(&mut self, slot: u16, opened: io::Result<P>, shared: Arc<PortShared>) {
        let io = match opened {
            Ok(io) => io,
            Err(e) => {
                let running = self
                    .ports
                    .get(usize::from(slot))
                    .and_then(Option::as_ref)
                    .is_some_and(|o| Arc::ptr_eq(&o.shared, &shared));
                if running {
                    // A redundant request for a port that is open: it stays as it is.
                    tracing::debug!(
                        "{}: a second open failed ({e}); the port stays open",
                        shared.label(slot)
                    );
                } else {
                    self.close_port(slot);
                    self.failed(slot, &e, &shared);
                }
                return;
            }
        };
        self.close_port(slot);
        self.ensure_slot(slot);
        // The slot's previous port may still be releasing its sockets on another thread, its
        // chunks buried: the new port waits aside (started once they are reclaimed), the worker
        // does not.
        if self.umem.unbury(slot, Duration::ZERO) {
            self.start_port(slot, io, shared);
        } else {
            tracing::debug!(
                "{}: waiting for the slot's previous port to be released",
                shared.label(slot)
            );
            self.parked.push((slot, io, shared));
        }
    }

    /// Starts parked ports whose slots are free now.
    fn start_parked(&mut self) {
        let mut i = 0;
        while i < self.parked.len() {
            let slot = self.parked[i].0;
            if self.umem.unbury(slot, Duration::ZERO) {
                let (slot, io, shared) = self.parked.swap_remove(i);
                self.start_port(slot, io, shared);
            } else {
                i += 1;
            }
        }
    }

    fn start_port(&mut self, slot: u16, mut io: P, shared: Arc<PortShared>) {
        if self.fill_target == 0 {
            self.recompute_fill_target();
        }
        if let Err(e) = io.start(&mut self.umem, self.fill_target) {
            io.close(&mut self.umem);
            self.failed(slot, &e, &shared);
            return;
        }
        let tx_checksum = io.tx_checksum();
        let takes_whole = io.takes_whole();
        let mut shortcut = false;
        if let (Some(f), Some(p)) = (self.fast.as_mut(), io.shortcut()) {
            f.open(slot, p, network_of(&self.snap, slot));
            shortcut = p.takes;
            // Readers add what the shortcut forwards from and to the port at once.
            shared.counters.count_live(Arc::clone(&f.sc), slot);
        }
        tracing::info!(
            "{} forwarding: {} ({} queues, partial checksums finished by {}, TCP \
             super-frames sent {})",
            shared.label(slot),
            io.mode().name(),
            io.queues(),
            if tx_checksum {
                "the kernel on transmit"
            } else {
                "the switch"
            },
            if takes_whole { "whole" } else { "as segments" }
        );
        // A port that is re-opened (its device came back) keeps its counters, the kernel's too.
        let published = shared.counters.read_published();
        self.pipe.counters[usize::from(slot)] = published.counters;
        shared.busy.store(false, Ordering::Relaxed);
        // (Published by the state's release store.)
        shared.queues.store(io.queues(), Ordering::Relaxed);
        shared.queue_room.store(io.queue_room(), Ordering::Relaxed);
        shared.set(LinkState::Up, io.mode(), None);
        self.ports[usize::from(slot)] = Some(Open {
            io,
            shared,
            healthy: true,
            tx_checksum,
            takes_whole,
            whole_refusals: 0,
            xdp: XdpStats::default(),
            xdp_before: published.xdp,
            warned_at: None,
            published: None,
            shortcut,
            tx: stall::TxWatch::new(stall::StallTimes::new(self.cfg.tx_stall_ns)),
        });
        self.active.push(slot);
        self.recompute_fill_target();
        self.schedule_ra(slot);
        self.offer_direct(slot);
    }

    /// Offers the other workers port `slot`'s packet socket ([`direct`]) while it is a VM's port
    /// of this worker that is up and sends super-frames whole; withdraws the offer otherwise.
    /// The offer carries the table the port's established connections are published in (one
    /// per generation of the slot, kept while the port is offered), told the policy epoch this
    /// worker applies now.
    fn offer_direct(&mut self, slot: u16) {
        if !self.whole || self.links.out.iter().all(Option::is_none) {
            return;
        }
        let epoch = self.snap.policy_epoch;
        let Some(Some(o)) = self.ports.get_mut(usize::from(slot)) else {
            self.links.direct.offer(slot, None);
            return;
        };
        let offer = match (self.snap.port(slot), network_of(&self.snap, slot)) {
            (Some(v), Some((net, net_gen, _))) if o.healthy && o.takes_whole => {
                o.io.whole_tx().map(|tx| (v.gen, (net, net_gen), tx))
            }
            _ => None,
        };
        let Some((gen, net, tx)) = offer else {
            if let Some((_, old)) = o.published.take() {
                old.retire();
                self.pipe.conns.share(slot, None);
            }
            self.links.direct.offer(slot, None);
            return;
        };
        let published = match &o.published {
            Some((g, p)) if *g == gen => Arc::clone(p),
            _ => {
                let p = Arc::new(Published::default());
                if let Some((_, old)) = o.published.replace((gen, Arc::clone(&p))) {
                    old.retire();
                }
                self.pipe.conns.share(slot, Some((gen, Arc::clone(&p))));
                p
            }
        };
        published.set_epoch(epoch);
        let guarded = filters(&self.snap, slot, net.0);
        let policed = self.pipe.polices(slot);
        let port = DirectPort::new(
            gen,
            net,
            tx,
            Arc::clone(&o.shared),
            published,
            (guarded, policed),
        );
        self.links.direct.offer(slot, Some(Arc::new(port)));
    }

    /// Reports that the port for `slot` could not be opened or started.
    fn failed(&self, slot: u16, e: &io::Error, shared: &PortShared) {
        let busy = e.kind() == io::ErrorKind::ResourceBusy;
        shared.busy.store(busy, Ordering::Relaxed);
        if busy {
            tracing::debug!("{}: still busy ({e}), retrying", shared.label(slot));
        } else {
            tracing::warn!("{} failed to open: {e}", shared.label(slot));
        }
        shared.set(LinkState::OpenFailed, PortMode::Closed, Some(e.to_string()));
    }

    fn close_port(&mut self, slot: u16) {
        if let Some(i) = self.parked.iter().position(|p| p.0 == slot) {
            let (_, io, shared) = self.parked.swap_remove(i);
            io.close(&mut self.umem);
            shared.set(LinkState::Closed, PortMode::Closed, None);
        }
        let Some(mut open) = self.ports.get_mut(usize::from(slot)).and_then(Option::take) else {
            return;
        };
        self.links.direct.withdraw(slot, &open.shared);
        if let Some((_, old)) = &open.published {
            old.retire();
            self.pipe.conns.share(slot, None);
        }
        self.active.retain(|&s| s != slot);
        if let Some(f) = self.fast.as_mut() {
            f.close(slot);
        }
        // The last values, with what the XDP shortcut forwarded while the port was open: what
        // the port starts from if it opens again.
        // (The kernel's statistics read now: what its sockets counted since the last read would
        // be lost with them.)
        open.xdp = open.xdp.max_each(open.io.xdp_stats());
        if let Some(c) = self.pipe.counters.get_mut(usize::from(slot)) {
            open.shared.counters.close_live(c, &open.xdp_total());
        }
        open.io.close(&mut self.umem);
        open.shared.set(LinkState::Closed, PortMode::Closed, None);
        self.recompute_fill_target();
    }

    /// One round over all ports. Returns the number of frames received and completed.
    pub fn poll(&mut self, now: Now) -> usize {
        let mut work = 0;
        self.held_back = false;
        self.behind = false;
        self.secs = now.secs;
        self.round_ns = now.nanos;
        // Another worker opened or closed a port this one may send TCP out of itself.
        if self.links.direct.version() != self.direct_seen {
            self.direct_seen = self.links.direct.copy_into(&mut self.direct);
        }
        // Every frame received this round may go to any port, and to every other worker: the
        // round takes no more than the smallest free TX room and the fewest free buffers towards
        // a peer, so a full TX ring or a full ring to a peer holds frames back in the RX rings.
        let mut room = u32::MAX;
        let mut peers_room = u32::MAX;
        for o in self.links.out.iter_mut().flatten() {
            peers_room = peers_room.min(u32::try_from(o.reclaim()).unwrap_or(u32::MAX));
        }
        for &s in &self.active {
            if let Some(o) = self.ports[usize::from(s)].as_mut() {
                // Frames a kick left on the TX ring (copy mode sends a budget a kick) are kicked
                // again, whether or not this round sends more. A stalled port that completes
                // nothing is kicked only here, for the frames of the rounds before too, and less
                // often.
                if o.healthy && o.io.tx_leftover() && o.tx.kick_due(now.nanos) {
                    // (A stalled port that completes nothing is kicked whether or not its
                    // device asked: a device that went down is found by the kick's error.)
                    let kicked = if o.tx.kicked_freely(now.nanos) {
                        o.io.flush()
                    } else {
                        o.io.kick()
                    };
                    if let Err(e) = kicked {
                        tx_failed(o, s, &mut self.pipe.counters[usize::from(s)], &e);
                    }
                }
                let done = o.io.reclaim(&mut self.umem);
                work += done;
                if o.healthy {
                    o.io.refill(&mut self.umem, self.fill_target);
                    let free = o.io.tx_room();
                    let c = &mut self.pipe.counters[usize::from(s)];
                    let stalled = watch_tx(s, o, c, free, done, now.nanos);
                    // Its time stalled grows without traffic too: published as the counters
                    // are while traffic flows, at most every millisecond.
                    self.dirty |=
                        stalled > 0 && now.nanos.saturating_sub(self.last_publish) >= 1_000_000;
                    // A stalled port holds no other back: what does not fit its ring is dropped.
                    if !o.tx.stalled() {
                        room = room.min(free);
                    }
                }
            }
        }
        // Frames from other workers first, bounded by the TX room only: they never cross again,
        // so taking them never waits on a peer (two workers whose rings towards each other are
        // full still drain each other's).
        work += self.take_crossings(&mut room, now);
        room = room.min(peers_room);
        for i in 0..self.active.len() {
            let slot = self.active[i];
            let Some(o) = self.ports[usize::from(slot)].as_mut() else {
                continue;
            };
            if !o.healthy {
                continue;
            }
            let offer_fast = o.shortcut && self.fast.is_some();
            // A chain of chunks may become more segments than it had chunks (1792-byte chunks
            // into 1448-byte segments: at most 5 for 4), so a round takes no more chunks than
            // four fifths of the room: its segments always fit.
            let take = ((room as usize).min(2 * MAX_BATCH) * 4 / 5).min(MAX_BATCH);
            if take == 0 {
                self.pipe.counters[usize::from(slot)].backpressure += 1;
                self.held_back = true;
                continue;
            }
            let n = o.io.recv(&mut self.umem, &mut self.rx[..take]);
            // All it asked for: more may wait.
            self.behind |= n == take;
            if n == 0 {
                continue;
            }
            room = room.saturating_sub(n as u32);
            work += n;
            self.rx_total += n as u64;
            let max_frame = self.snap.port(slot).map_or(u32::MAX, |p| p.max_frame);
            // The frames' first lines are asked for `PREFETCH_AHEAD` frames before their turn,
            // so that their transfers from the core the kernel wrote them on overlap. A cursor,
            // not `j + PREFETCH_AHEAD`: a chain moves `j` past all its chunks at once.
            // Then, `LOOKUP_AHEAD` frames before their turn, the MAC table's lines each frame
            // will read, where the table is larger than the caches (else they are there, and
            // asking costs more than it saves).
            let lookup_ahead = if self.pipe.worth_prefetching() {
                LOOKUP_AHEAD
            } else {
                0
            };
            let (mut fetched, mut looked) = (0, 0);
            let mut j = 0;
            while j < n {
                // Frame `j + PREFETCH_AHEAD` too; never a chunk behind `j` (a chain longer than
                // the distance was released already).
                fetched = fetched.max(j);
                while fetched < n.min(j + PREFETCH_AHEAD + 1) {
                    self.umem.prefetch(self.rx[fetched].addr);
                    fetched += 1;
                }
                if lookup_ahead > 0 {
                    looked = looked.max(j);
                    while looked < n.min(j + lookup_ahead + 1) {
                        let d = self.rx[looked];
                        // Not a chain's later chunks: they hold no headers.
                        let first = looked == 0 || self.rx[looked - 1].options & XDP_PKT_CONTD == 0;
                        if first {
                            if let Some(bytes) = self.umem.frame(d.addr, d.len) {
                                self.pipe.prefetch(&self.snap, slot, bytes);
                            }
                        }
                        looked += 1;
                    }
                }
                let mut d = self.rx[j];
                let chained = d.options & XDP_PKT_CONTD != 0;
                if chained || (d.len > max_frame && self.above_mtu(d, max_frame)) {
                    // A frame larger than a chunk (its chunks up to the first without the
                    // flag), or a single chunk above the MTU (a TSO send of a little more than
                    // one segment): segmented if it is TCP.
                    let end = if chained {
                        self.rx[j..n]
                            .iter()
                            .position(|c| c.options & XDP_PKT_CONTD == 0)
                            .map_or(n, |p| j + p + 1)
                    } else {
                        j + 1
                    };
                    // Its own chunks were counted in `room` already.
                    let budget = room + (end - j) as u32;
                    let segments = self.super_frame(slot, j, end, budget, now);
                    room = room.saturating_sub(segments.saturating_sub((end - j) as u32));
                    j = end;
                    continue;
                }
                j += 1;
                let mut macs = None;
                let verdict = match self.umem.frame(d.addr, d.len) {
                    Some(mut bytes) => {
                        // A priority tag (VLAN 0) is no tag: the frame is switched untagged.
                        if wire::is_priority_tagged(bytes) {
                            bytes = wire::strip_priority_tag(bytes);
                            d.addr += VLAN_TAG_LEN as u64;
                            d.len -= VLAN_TAG_LEN as u32;
                        }
                        let bytes = &*bytes;
                        let v = self.pipe.process(&self.snap, slot, bytes, now);
                        if offer_fast
                            && matches!(v, Verdict::Unicast { .. })
                            && crate::shortcut::may_carry(bytes)
                        {
                            macs = EthernetFrame::new_checked(bytes)
                                .ok()
                                .map(|e| (e.dst(), e.src()));
                        }
                        if let Verdict::Unicast { net, .. } | Verdict::Flood { net } = v {
                            // The headers read once for both.
                            let seen = csum::seen(bytes);
                            if !seen.plain {
                                let mtu = max_frame.saturating_sub(ETH_HEADER_LEN as u32);
                                self.mss.observe(net, bytes, mtu, now.secs);
                            }
                            // A checksum left for the device is finished as each copy is
                            // staged (`finish_checksum`), by the switch or by the egress
                            // port's kernel.
                            if seen.partial {
                                self.pipe.counters[usize::from(slot)].csum_completed += 1;
                                d.options |= UNFINISHED;
                            }
                        }
                        v
                    }
                    None => Verdict::Drop(DropReason::Truncated),
                };
                if let (Some(macs), Verdict::Unicast { port, net }) = (macs, verdict) {
                    self.offers.push((slot, port, net, macs));
                }
                self.emit(slot, d, verdict, now);
            }
            // The frames copied for other workers go over before this worker's own sends (a
            // send runs the receiver's stack, for microseconds): their workers start at once.
            self.hand_over();
            self.flush_staged(false);
            // Entries for what this batch forwarded, once its frames left.
            if !self.offers.is_empty() {
                self.offer_fast(now);
            }
        }
        self.hand_over();
        self.flush_staged(true);
        // What other workers handed over and the ports sent: its buffers go back, and with them
        // the senders may send those ports' TCP straight again. A stalled port's frames count
        // as sent (it holds no buffer back), as do those of a port no longer open.
        let ports = &mut self.ports;
        for i in &mut self.links.inbound {
            i.release(|slot| match ports.get_mut(usize::from(slot)) {
                Some(Some(o)) => o.tx.stalled() || !o.healthy || o.io.drained(),
                _ => true,
            });
        }
        if work > 0 {
            self.dirty = true;
        }
        if self.dirty && now.nanos.saturating_sub(self.last_publish) >= 1_000_000 {
            self.publish(now);
        }
        work
    }

    /// Installs XDP shortcut entries for the unicast frames the worker just forwarded
    /// (`offers`), where their pairs' frames may go so ([`fast::Fast::offer`]). Out of line:
    /// only frames the program may carry come here (`shortcut::may_carry`): the first of a
    /// pair, and those of pairs that cannot have an entry (a port with rules).
    #[inline(never)]
    fn offer_fast(&mut self, now: Now) {
        // The frames staged for this worker's egress ports leave first: the pairs' next frames,
        // inside XDP, must not overtake them. (Frames handed to another worker may still be
        // overtaken, until it sends them.)
        for k in 0..self.offers.len() {
            let egress = self.offers[k].1;
            if self.owner(egress) == self.links.id {
                self.flush_port(egress);
            }
        }
        let Some(f) = self.fast.as_mut() else {
            self.offers.clear();
            return;
        };
        let b = fast::basis(&self.pipe, &self.snap, now.secs, &self.umem);
        for (ingress, egress, net, macs) in self.offers.drain(..) {
            f.offer(&b, (ingress, egress, net), macs);
        }
    }

    /// The network of a frame received on `slot`: its access network, or on the trunk the
    /// network of the frame's VLAN (the tag read from the gathered frame).
    fn ingress_net(&self, slot: u16, tagged: bool) -> Option<u16> {
        match self.snap.port(slot)?.role {
            Role::Access(net) => Some(net),
            Role::Trunk(physnet) if tagged => {
                let vid = wire::be16(&self.gso_buf, 14)? & 0x0fff;
                self.snap.uplink_net(physnet, vid).filter(|_| vid != 0)
            }
            Role::Trunk(physnet) => self.snap.uplink_net(physnet, 0),
        }
    }

    /// Is the single-chunk frame `d` longer than `max_frame` allows, with a tag if it has one?
    fn above_mtu(&mut self, d: XdpDesc, max_frame: u32) -> bool {
        let tagged = self
            .umem
            .frame(d.addr, d.len)
            .and_then(|b| wire::be16(b, 12))
            .is_some_and(is_vlan_tpid);
        d.len > max_frame + if tagged { VLAN_TAG_LEN as u32 } else { 0 }
    }

    /// Handles the frame whose chunks are `self.rx[from..to]` (a multi-buffer chain, or one chunk
    /// above the MTU): a TCP super-frame is gathered and, towards a known unicast destination,
    /// decided once and sent whole (`whole_egress`, `whole_out`); otherwise it is split into
    /// segments that fit the ingress port's MTU and what its destination takes (`gso`, `mss`),
    /// and each segment goes through the pipeline as if the guest's NIC had sent it. Anything
    /// else is dropped as oversize. A super-frame whose checksum is neither left partial (as a
    /// TSO send or GRO leaves it) nor correct is dropped as `bad_checksum`: whole or cut, its
    /// checksum would be computed afresh, hiding what corrupted it (`csum::tso_sound`).
    /// `budget` is the TX room the segments may take (and the buffers towards other workers).
    /// Returns the number of segments made, or that crossed to another worker.
    fn super_frame(&mut self, slot: u16, from: usize, to: usize, budget: u32, now: Now) -> u32 {
        self.gso_buf.clear();
        for d in &self.rx[from..to] {
            if let Some(bytes) = self.umem.frame(d.addr, d.len) {
                self.gso_buf.extend_from_slice(bytes);
            }
            self.umem.release(d.addr);
        }
        if wire::is_priority_tagged(&self.gso_buf) {
            self.gso_buf.drain(12..12 + VLAN_TAG_LEN);
        }
        let tagged = wire::be16(&self.gso_buf, 12).is_some_and(is_vlan_tpid);
        // Segments are built in one chunk each, behind the kernel's headroom (room for a tag).
        let max_len = (self.snap.port(slot).map_or(0, |p| p.max_frame as usize)
            + if tagged { VLAN_TAG_LEN } else { 0 })
        .min((self.umem.chunk_size() - KERNEL_HEADROOM) as usize);
        let mut plan = gso::Plan::new(&self.gso_buf, max_len);
        if plan.is_some() && !csum::tso_sound(&self.gso_buf) {
            self.pipe
                .count_dropped(slot, self.gso_buf.len(), DropReason::BadChecksum);
            return 0;
        }
        // Never larger than the guest's own segments would be: the peer's MSS and the path's
        // MTU, as the switch saw them go by (`mss`).
        let limit = plan.as_ref().and_then(|p| {
            let net = self.ingress_net(slot, tagged)?;
            let l3 = p.l3();
            let cap = self
                .mss
                .limit(net, p.destination(&self.gso_buf)?, now.secs)?;
            Some(l3 + usize::from(cap))
        });
        if let Some(cap) = limit.filter(|&c| c < max_len) {
            plan = gso::Plan::new(&self.gso_buf, cap);
        }
        let Some(plan) = plan.filter(|p| p.segments() <= MAX_SEGMENTS) else {
            self.pipe
                .count_dropped(slot, self.gso_buf.len(), DropReason::Oversize);
            return 0;
        };
        // Towards a known unicast destination the frame is decided once and leaves whole
        // (`whole_out`); anywhere else it is cut here.
        let mut decided = None;
        if let Some(to) = self.whole_egress(slot, tagged, now) {
            let len = plan.end();
            let v = self
                .pipe
                .process_super(&self.snap, slot, &self.gso_buf[..len], now);
            match v {
                Verdict::Unicast { port, net } if port == to => {
                    if let Some(crossed) = self.whole_out(slot, port, net, &plan, budget, now) {
                        return crossed;
                    }
                    decided = Some(v);
                }
                Verdict::Drop(_) => return 0,
                v => decided = Some(v),
            }
        }
        // A frame decided already was counted as received: a loss is only a drop.
        let lost = |pipe: &mut Pipeline, len: usize| match decided {
            Some(_) => pipe.counters[usize::from(slot)].drop(DropReason::NoBuffer),
            None => pipe.count_dropped(slot, len, DropReason::NoBuffer),
        };
        let segments = plan.segments();
        if segments > budget as usize {
            // Not enough transmit room for every segment: the whole frame is lost, as a frame
            // is when a NIC's ring is full (TCP sends it again).
            lost(&mut self.pipe, self.gso_buf.len());
            return 0;
        }
        self.pipe.counters[usize::from(slot)].gso_segmented += 1;
        // A frame decided whole whose verdict changed since (its destination moved) is cut
        // and its segments follow that verdict: it was counted and checked once already.
        let mut made = 0;
        // Segments this worker cuts are not merged again (`stage_unicast`). (Those another
        // worker cut and handed over, one by one, may be.)
        let merging = core::mem::replace(&mut self.merging, false);
        for k in 0..segments {
            let Some(base) = self.umem.alloc() else {
                // A frame decided already is one frame lost; else each segment was one.
                let missing = if decided.is_some() { 1 } else { segments - k };
                for _ in 0..missing {
                    lost(&mut self.pipe, 0);
                }
                break;
            };
            let addr = base + u64::from(KERNEL_HEADROOM);
            let off = KERNEL_HEADROOM as usize;
            let verdict = match self.umem.chunk_mut(base) {
                Some((chunk, _)) => match plan.write(&self.gso_buf, k, &mut chunk[off..]) {
                    Some(len) => {
                        made += 1;
                        let v = match decided {
                            Some(v) => v,
                            None => {
                                self.pipe
                                    .process(&self.snap, slot, &chunk[off..off + len], now)
                            }
                        };
                        Some((len, v))
                    }
                    None => None,
                },
                None => None,
            };
            match verdict {
                Some((len, v)) => {
                    // Its checksum is partial, as the guest left the frame's.
                    let d = XdpDesc {
                        addr,
                        len: len as u32,
                        options: UNFINISHED,
                    };
                    self.emit(slot, d, v, now);
                }
                None => {
                    // Cannot happen: the plan fits a chunk. Counted anyway.
                    self.umem.release(base);
                    let missing = if decided.is_some() { 1 } else { segments - k };
                    for _ in 0..missing {
                        lost(&mut self.pipe, 0);
                    }
                    break;
                }
            }
        }
        self.merging = merging;
        made
    }

    /// The port a super-frame in `gso_buf`, received on `slot`, would leave whole through: its
    /// destination's, if the MAC table has it, on another worker or on a healthy port of this
    /// one that takes super-frames whole, and neither port has a rate limit (a limit applies to
    /// the segments a guest's own NIC would send, as it does to the segments the switch cuts).
    fn whole_egress(&self, slot: u16, tagged: bool, now: Now) -> Option<u16> {
        if !self.whole || self.pipe.polices(slot) {
            return None;
        }
        let net = self.ingress_net(slot, tagged)?;
        let dst = Mac(self.gso_buf.get(..6)?.try_into().ok()?);
        let to = self.pipe.fdb.lookup(net, dst, now.secs)?.slot;
        if to == slot || self.pipe.polices(to) {
            return None;
        }
        let here = self.owner(to) == self.links.id;
        let takes = !here
            || matches!(
                self.ports.get(usize::from(to)),
                Some(Some(o)) if o.healthy && o.takes_whole
            );
        takes.then_some(to)
    }

    /// Sends the super-frame in `gso_buf`, received on `ingress` and decided for `egress` of
    /// network `net`, whole: out of `egress` if it is this worker's ([`Worker::send_whole`]),
    /// or, if it is another worker's port, out of its socket from here ([`Worker::send_straight`],
    /// which cuts it if the socket refuses it whole) or handed over whole to its worker. The
    /// buffers towards other workers it took, of `budget` at most (0 unless it was cut and its
    /// segments crossed); `None`, and nothing done, when the frame must be cut instead (every
    /// buffer for super-frames towards that worker is in flight).
    fn whole_out(
        &mut self,
        ingress: u16,
        egress: u16,
        net: u16,
        plan: &gso::Plan,
        budget: u32,
        now: Now,
    ) -> Option<u32> {
        let vlan = self.snap.net(net).map_or(0, |n| n.vlan);
        let tagged = vlan != 0
            && matches!(
                self.snap.port(ingress).map(|p| p.role),
                Some(Role::Trunk(_))
            );
        if self.owner(egress) != self.links.id {
            // The segments of a run open for that port go first.
            if self.merge.as_ref().is_some_and(|m| m.egress == egress) {
                self.close_merge();
            }
            let via = Via {
                egress,
                net,
                tagged,
                blame: ingress,
            };
            let straight = if self.may_go_straight(egress, net) {
                self.send_straight(via, plan, 0, budget)
            } else {
                None
            };
            let counters = &mut self.pipe.counters[usize::from(ingress)];
            return match straight {
                Some(Straight::Whole) => {
                    counters.gso_whole += 1;
                    Some(0)
                }
                Some(Straight::Cut { crossed }) => {
                    counters.gso_segmented += 1;
                    Some(crossed)
                }
                // Counted as a drop only, as a frame this worker cuts and cannot send is.
                Some(Straight::Lost) => Some(0),
                None if self.hand_over_whole(via, plan, 0) => {
                    self.pipe.counters[usize::from(ingress)].gso_whole += 1;
                    Some(0)
                }
                None => None,
            };
        }
        if !self.pipe.admit(&self.snap, egress, plan.end(), now) {
            return Some(0);
        }
        match self.send_whole(egress, net, tagged, plan) {
            Whole::Sent => self.pipe.counters[usize::from(ingress)].gso_whole += 1,
            Whole::Cut => return None,
        }
        Some(0)
    }

    /// Hands the TCP frame in `gso_buf` (a super-frame, or `merged` segments merged), decided
    /// for another worker's port (`via`: the port, its network, the tag, the ingress port),
    /// over whole to that worker. False, and nothing done, when every buffer for super-frames
    /// towards it is in flight.
    fn hand_over_whole(&mut self, via: Via, plan: &gso::Plan, merged: u32) -> bool {
        let Via {
            egress,
            net,
            tagged,
            blame: ingress,
        } = via;
        let (owner, port, net_gen) = (self.owner(egress), self.port_ref(egress), self.net_gen(net));
        let ingress = self.port_ref(ingress);
        let Some(o) = self.links.to(owner) else {
            return false;
        };
        self.gso_buf.truncate(plan.end());
        let segment = plan.segment_len() as u32;
        if !o.send_whole(
            port,
            (net, net_gen),
            ingress,
            tagged,
            &mut self.gso_buf,
            (segment, merged),
        ) {
            return false;
        }
        // The pool's buffer it got: its capacity once, then it circulates.
        self.gso_buf.reserve_exact(GSO_BUF);
        self.crossed.0 += 1;
        self.woken |= 1 << (owner & 63);
        true
    }

    /// The packet socket of another worker's port `egress` that this worker may send frames of
    /// network `net` out of itself ([`direct`]): a VM's port, up, offered for the generation the
    /// snapshot has, and without a rate limit, while no TCP frame this worker handed over for it
    /// is still out ([`cross::Outbound::in_flight`]: a segment sent straight would overtake it).
    /// Whether a frame may go so past the port's security groups is
    /// [`Worker::may_go_straight`]'s to say.
    #[inline]
    fn straight_port(&self, egress: u16, net: u16) -> Option<&Arc<DirectPort>> {
        let dp = self.direct.get(usize::from(egress))?.as_ref()?;
        let v = self.snap.port(egress)?;
        if let Some(Some(o)) = self.links.out.get(usize::from(v.worker)) {
            if o.in_flight(egress) > 0 {
                return None;
            }
        }
        let ok = self.whole
            && v.gen == dp.gen
            && v.admin_up
            && matches!(v.role, Role::Access(n) if n == net)
            && self.snap.net(net).is_some_and(|n| dp.net == (net, n.gen))
            && dp.shared.state() == LinkState::Up
            && !dp.policed
            && !self.pipe.polices(egress);
        ok.then_some(dp)
    }

    /// May the frame the pipeline decided last, for another worker's port `egress` of network
    /// `net`, leave through the port's socket from here ([`Worker::straight_port`])? Where the
    /// network has security groups and the port has rules, only as a plain TCP segment
    /// ([`Pipeline::plain_tcp`]) of a connection the port's worker published: one its check
    /// would pass without a change ([`crate::conntrack::published`]). Everything else crosses
    /// to be checked there.
    #[inline]
    fn may_go_straight(&self, egress: u16, net: u16) -> bool {
        let Some(dp) = self.straight_port(egress, net) else {
            return false;
        };
        // Unfiltered in both snapshots, the owner's and this worker's (one may be newer).
        if !dp.guarded && !filters(&self.snap, egress, net) {
            return true;
        }
        self.pipe
            .plain_tcp()
            .is_some_and(|t| dp.published.admits(&Key::of(egress, t), self.secs))
    }

    /// Sends the TCP frame in `gso_buf` (`plan`'s: a super-frame or merged segments) `via`
    /// another worker's port (its network, its tag, where losses are counted), through the
    /// port's packet socket ([`direct`]), and counts it there (`merged`: the segments merged
    /// into it). A frame the socket refuses whole (no room; or a guest end running a native XDP
    /// program, which refuses every GSO frame) is cut into its segments, each sent the same way
    /// or, refused too, handed over with the rest, within `budget` ([`Worker::cut_over`]). How
    /// it left; `None`, and nothing done, where the port is not to be sent to from here.
    fn send_straight(
        &mut self,
        via: Via,
        plan: &gso::Plan,
        merged: u32,
        budget: u32,
    ) -> Option<Straight> {
        let Via {
            egress,
            net,
            tagged,
            ..
        } = via;
        self.straight_port(egress, net)?;
        let mss = self.egress_mss(egress, plan, tagged);
        let vlan = self.snap.net(net).map_or(0, |n| n.vlan);
        let Some(Some(dp)) = self.direct.get(usize::from(egress)) else {
            return None;
        };
        let buf = &mut self.gso_buf[..plan.end()];
        match send_frame_whole(buf, plan, (tagged, false, vlan), mss, |h, p| dp.send(h, p)) {
            Ok(len) => {
                dp.shared
                    .counters
                    .sent_direct(len as u64, u64::from(merged));
                Some(Straight::Whole)
            }
            Err(_) => Some(self.cut_over(via, plan, budget, merged)),
        }
    }

    /// Sends frame `d` (this worker's chunk; the caller keeps it), of network `net` and
    /// carrying its tag if `tagged`, out of another worker's port `egress` through the port's
    /// packet socket as it is (without Ethernet padding): if it is TCP, with a payload or
    /// without, its checksum partial (left for the kernel to finish, made so if it was correct)
    /// or, neither partial nor correct, left wrong for the receiver to drop as it would off a
    /// wire. False where the port is not to be sent to from here, the frame is not TCP, or the
    /// socket refused it; a checksum made partial on the way is marked `UNFINISHED` in `d`.
    /// `sound`: the checksum is known to be partial or correct (else it is checked here).
    fn send_lone(
        &mut self,
        egress: u16,
        net: u16,
        tagged: bool,
        d: &mut XdpDesc,
        sound: bool,
    ) -> bool {
        if self.straight_port(egress, net).is_none() {
            return false;
        }
        let vlan = self.snap.net(net).map_or(0, |n| n.vlan);
        let (Some(Some(dp)), Some(frame)) = (
            self.direct.get(usize::from(egress)),
            self.umem.frame(d.addr, d.len),
        ) else {
            return false;
        };
        let Some(plan) = gso::Plan::lone(frame) else {
            return false;
        };
        let frame = &mut frame[..plan.end()];
        // A partial checksum is the pseudo-header sum exactly (`csum::pending`, which marked it).
        let sound = sound || d.options & UNFINISHED != 0 || csum::verify(frame) == Some(true);
        let send = |h: &VnetHdr, p: &[&[u8]]| dp.send(h, p);
        let sent = if sound {
            if !csum::make_partial(frame) {
                return false;
            }
            d.options |= UNFINISHED;
            // One segment: the header asks for no segmentation, only the checksum.
            let mss = (plan.end() - plan.headers()).max(1);
            send_frame_whole(frame, &plan, (tagged, false, vlan), mss, send)
        } else {
            let mut tag = [0u8; VLAN_TAG_LEN];
            let (shift, parts, count) = frame_parts(frame, (tagged, false, vlan), &mut tag);
            let len = frame.len().saturating_add_signed(shift);
            send(&VnetHdr::default(), &parts[..count]).map(|()| len)
        };
        match sent {
            Ok(len) => {
                dp.shared.counters.sent_direct(len as u64, 0);
                true
            }
            Err(_) => false,
        }
    }

    /// Payload bytes a segment of the frame `plan` reads (carrying a tag if `tagged`) may carry
    /// out of `egress`: its largest frame less the headers (without a tag: `max_frame` is the
    /// untagged frame's). 0 for a port the snapshot does not have.
    fn egress_mss(&self, egress: u16, plan: &gso::Plan, tagged: bool) -> usize {
        let headers = plan.headers() - if tagged { VLAN_TAG_LEN } else { 0 };
        self.snap
            .port(egress)
            .map_or(0, |p| (p.max_frame as usize).saturating_sub(headers))
    }

    /// Sends the super-frame in `gso_buf` (of network `net`, carrying its tag if `tagged`)
    /// whole out of this worker's port `egress`, its tag pushed or popped as the port's role
    /// requires, after what is staged for that port (so that the guest's frames leave in the
    /// order they came). The header has the kernel cut it at the smaller of the plan's segment
    /// size and the one the port's MTU allows; its checksum is left partial for the kernel to
    /// finish. A frame that cannot go whole after frames staged before it (the port's TX ring
    /// still holds some after a few kicks: they would leave after it), or that the socket
    /// refuses, is left to be cut (`Whole::Cut`). A refusal for want of room (a full socket
    /// buffer or device queue; also every GSO frame sent into a veth both of whose ends run a
    /// native XDP program, which says the same) is not held against the port; after
    /// [`WHOLE_REFUSALS`] refusals of any other kind in a row the port sends no more
    /// super-frames whole.
    fn send_whole(&mut self, egress: u16, net: u16, tagged: bool, plan: &gso::Plan) -> Whole {
        let vlan = self.snap.net(net).map_or(0, |n| n.vlan);
        let to_trunk =
            vlan != 0 && matches!(self.snap.port(egress).map(|p| p.role), Some(Role::Trunk(_)));
        let end = plan.end();
        let egress_mss = self.egress_mss(egress, plan, tagged);
        self.flush_port(egress);
        let Some(Some(o)) = self.ports.get_mut(usize::from(egress)) else {
            return Whole::Cut;
        };
        if o.tx.stalled() {
            // Its ring is full (what it holds would leave after this frame): no kicks spent on
            // draining it.
            return Whole::Cut;
        }
        // In copy mode a kick sends a budget of frames: what it left would leave after this one.
        for _ in 0..WHOLE_FLUSHES {
            if o.io.drained() {
                break;
            }
            if o.io.flush().is_err() {
                break;
            }
        }
        if !o.io.drained() {
            return Whole::Cut;
        }
        let buf = &mut self.gso_buf[..end];
        match send_frame_whole(buf, plan, (tagged, to_trunk, vlan), egress_mss, |h, p| {
            o.io.send_whole(h, p)
        }) {
            Ok(len) => {
                o.whole_refusals = 0;
                let c = &mut self.pipe.counters[usize::from(egress)];
                c.tx_packets += 1;
                c.tx_bytes += len as u64;
                Whole::Sent
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                // Cannot happen: the port is in the snapshot, and the plan read a TCP header.
                Whole::Cut
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::ENOBUFS)) => {
                // The socket's buffer or the device's queue is full, or the device takes no GSO
                // frame (a veth both of whose ends run a native XDP program): the segments may
                // still go.
                Whole::Cut
            }
            Err(e) => {
                o.whole_refusals += 1;
                if o.whole_refusals >= WHOLE_REFUSALS {
                    o.takes_whole = false;
                    tracing::warn!(
                        "{}: super-frames will be segmented: {WHOLE_REFUSALS} sent whole in a \
                         row were refused, the last: {e}",
                        o.shared.label(egress)
                    );
                    self.offer_direct(egress);
                }
                Whole::Cut
            }
        }
    }

    /// Sends a super-frame another worker handed over whole to its port: whole if the port
    /// takes it, else cut here into segments that fit the port's MTU (`cut_for`), after the
    /// port's ingress security group rules and receive limit. Losses are counted on the port.
    /// Returns the segments staged (0 if it left whole).
    fn deliver_whole(&mut self, c: &mut Crossing, now: Now) -> u32 {
        let Target::Port(PortRef { slot: p, .. }) = c.target else {
            return 0;
        };
        // A merged run lost here is counted once per segment, as wherever else it is lost.
        let frames = c.merged.max(1);
        if !self.meant(c) {
            self.crossed_lost += u64::from(frames);
            return 0;
        }
        if !self.is_sendable(p) {
            self.count_unsendable(p, frames);
            return 0;
        }
        let mut staged = 0;
        core::mem::swap(&mut self.gso_buf, &mut c.whole);
        let len = (c.len as usize).min(self.gso_buf.len());
        match gso::Plan::new(&self.gso_buf[..len], c.segment as usize) {
            Some(plan) => {
                self.pipe.inspect(&self.snap, c.net, &self.gso_buf[..len]);
                if self.pipe.admit_run(&self.snap, p, len, now, frames) {
                    self.pipe.publish(&self.snap, p, now);
                    let takes =
                        matches!(self.ports.get(usize::from(p)), Some(Some(o)) if o.takes_whole);
                    let whole = takes && self.send_whole(p, c.net, c.tagged, &plan) == Whole::Sent;
                    if whole {
                        self.pipe.counters[usize::from(p)].coalesced += u64::from(c.merged);
                    } else {
                        staged = self.cut_merged_for(p, c.net, c.tagged, &plan, c.merged);
                    }
                }
            }
            // Cannot happen: the sender planned it.
            None => self.pipe.counters[usize::from(p)].drop_n(DropReason::Oversize, frames),
        }
        core::mem::swap(&mut self.gso_buf, &mut c.whole);
        staged
    }

    /// Segment `k` of the super-frame in `gso_buf` (`plan`'s), written into a chunk of this
    /// worker's, its checksum partial (`UNFINISHED`); `None`, nothing held, without a chunk.
    fn cut_segment(&mut self, plan: &gso::Plan, k: usize) -> Option<XdpDesc> {
        let off = KERNEL_HEADROOM as usize;
        let base = self.umem.alloc()?;
        let len = self
            .umem
            .chunk_mut(base)
            .and_then(|(chunk, _)| plan.write(&self.gso_buf, k, &mut chunk[off..]));
        let Some(len) = len else {
            self.umem.release(base);
            return None;
        };
        Some(XdpDesc {
            addr: base + off as u64,
            len: len as u32,
            options: UNFINISHED,
        })
    }

    /// How the super-frame in `gso_buf` (`plan`'s, carrying a tag if `tagged`) is cut for port
    /// `egress`: into segments that fit its MTU, a chunk, and `plan`'s segment size.
    fn plan_for(&self, egress: u16, tagged: bool, plan: &gso::Plan) -> Option<gso::Plan> {
        let max = self.snap.port(egress).map_or(0, |p| p.max_frame as usize)
            + if tagged { VLAN_TAG_LEN } else { 0 };
        let max = max
            .min(plan.segment_len())
            .min((self.umem.chunk_size() - KERNEL_HEADROOM) as usize);
        gso::Plan::new(&self.gso_buf[..plan.end()], max)
    }

    /// Cuts the super-frame in `gso_buf` into segments that fit port `egress` (and `plan`'s
    /// segment size) and stages them for it, their checksums partial: for a port that does not
    /// take super-frames whole, when another worker handed one over. A frame whose segments the
    /// port's TX ring has no room for is lost whole (`no_buffer` on the port, `tx_stalled` if
    /// it stalled), as the ingress worker's own cut would lose it. Returns the segments staged,
    /// and why the others were lost (one loss counted).
    fn cut_for(
        &mut self,
        egress: u16,
        net: u16,
        tagged: bool,
        plan: &gso::Plan,
    ) -> (u32, DropReason) {
        let vlan = self.snap.net(net).map_or(0, |n| n.vlan);
        let Some(plan) = self.plan_for(egress, tagged, plan) else {
            self.pipe.counters[usize::from(egress)].drop(DropReason::Oversize);
            return (0, DropReason::Oversize);
        };
        self.flush_port(egress);
        let room = match self.ports.get_mut(usize::from(egress)) {
            Some(Some(o)) => o.io.tx_room() as usize,
            _ => 0,
        };
        if plan.segments() > room.min(STAGE_CAP) {
            let lost = self.no_room(egress);
            self.pipe.counters[usize::from(egress)].drop(lost);
            return (0, lost);
        }
        let mut staged = 0;
        for k in 0..plan.segments() {
            let Some(d) = self.cut_segment(&plan, k) else {
                self.pipe.counters[usize::from(egress)].drop(DropReason::NoBuffer);
                break;
            };
            self.stage_to(egress, d, tagged, vlan, egress);
            staged += 1;
        }
        // What the rest of the round stages finds room.
        self.flush_port(egress);
        (staged, DropReason::NoBuffer)
    }

    /// [`Worker::cut_for`] for a frame of `merged` segments merged (0 for a guest's
    /// super-frame): each merged segment it could not stage is a loss (`cut_for` counts one:
    /// the other segments' here). Returns the segments staged.
    fn cut_merged_for(
        &mut self,
        egress: u16,
        net: u16,
        tagged: bool,
        plan: &gso::Plan,
        merged: u32,
    ) -> u32 {
        let (staged, lost) = self.cut_for(egress, net, tagged, plan);
        for _ in 1..merged.saturating_sub(staged) {
            self.pipe.counters[usize::from(egress)].drop(lost);
        }
        staged
    }

    /// Publishes counters (and, at most every 100 ms, the kernel's statistics).
    pub fn publish(&mut self, now: Now) {
        let read_xdp = now.nanos.saturating_sub(self.last_xdp) >= 100_000_000;
        if read_xdp {
            self.last_xdp = now.nanos;
        }
        for &s in &self.active {
            if let Some(o) = self.ports[usize::from(s)].as_mut() {
                if read_xdp {
                    let x = o.xdp.max_each(o.io.xdp_stats());
                    warn_kernel_drops(s, o, &x, now.nanos);
                    o.xdp = x;
                }
                if let Some(f) = self.fast.as_mut() {
                    if !o.healthy {
                        // Its interface refused to send: the entries to and from it go.
                        f.close(s);
                    }
                }
                o.shared
                    .counters
                    .publish(&self.pipe.counters[usize::from(s)], &o.xdp_total());
            }
        }
        self.last_publish = now.nanos;
        self.dirty = false;
    }

    /// Housekeeping off the per-packet path: ages out `ms` milliseconds' share of the MAC table
    /// and of the connection table: [`SWEEP_MIN_PER_MS`] slots a millisecond, or more for a
    /// table that would otherwise take longer than [`SWEEP_PASS_MS`] to walk whole. (1 024 slots
    /// a millisecond before, whatever the size, walked a small table over and over, its lines
    /// evicting the worker's own, and a large one in more than a second.)
    pub fn sweep(&mut self, now: Now, ms: usize) {
        let fdb = sweep_share(self.pipe.fdb.slots_seen(), ms);
        self.pipe.fdb.try_sweep(now.secs, fdb);
        let conns = sweep_share(self.pipe.conns.slab_len(), ms);
        self.pipe.conns.sweep(now.secs, conns);
    }

    /// One round of the loop: the clock's work first, every round, traffic or not (ageing must
    /// not wait for a pause), then the ports. Returns the frames handled.
    pub fn round(&mut self, now: Now) -> usize {
        self.rounds += 1;
        // Another worker may have grown the shared MAC table (one atomic load if not); what a
        // growth deferred is learned once it is done.
        self.pipe.refresh(now);
        self.housekeep(now);
        // After the clock's work (its sweep may remove addresses entries go to) and before
        // this round's lookups: the XDP shortcut's entries installed from a table or ports that
        // changed since go. The other workers are woken to check theirs (one that sleeps would
        // not look before its sleep ends).
        let mut changed = false;
        if let Some(f) = self.fast.as_mut() {
            changed = f.check(&fast::basis(&self.pipe, &self.snap, now.secs, &self.umem));
        }
        let work = self.poll(now);
        if let Some(f) = &self.fast {
            if changed || f.moved(&self.pipe.fdb) {
                self.wake_all();
            }
        }
        work
    }

    /// Work driven by the clock, run at the start of every round whether or not frames flow (as
    /// VPP's age scanner runs on a timer): the MAC and connection tables' sweeper owes each
    /// millisecond's share of them ([`Worker::sweep`]: each table whole within [`SWEEP_PASS_MS`]),
    /// so entries that expired stop counting against their network's learning limit even under
    /// traffic that never pauses. Once a millisecond it pays what the time since owes, at most 8
    /// milliseconds' share (the rest, at most a whole pass, is a debt paid before the worker next
    /// sleeps, at most [`PAY_SLOTS`] at once, so that a frame that wakes it waits for at most 8
    /// milliseconds' share of the sleep's). The shortcut's entries have their hits read likewise
    /// (about once a second each, at most 64 a round or the share of 8 ms, the rest before the
    /// worker next sleeps: [`Worker::pay_debts`]). Costs one comparison in the other rounds.
    /// Counters are published from `poll`, also by the clock.
    fn housekeep(&mut self, now: Now) {
        let since = now.nanos.saturating_sub(self.last_sweep);
        if since >= 1_000_000 {
            let ms = usize::try_from(since / 1_000_000).unwrap_or(usize::MAX);
            // Never more than a pass of the larger table: more would walk it again.
            let pass = pass_ms(self.pipe.fdb.slots_seen()).max(pass_ms(self.pipe.conns.slab_len()));
            let owed = self.sweep_debt.saturating_add(ms).min(pass);
            let now_ms = owed.min(8);
            self.sweep(now, now_ms);
            self.sweep_debt = owed - now_ms;
            // Every entry's hits read, and the entry checked, about once a second: their
            // sources stay learned, and no entry outlives what it was installed from by more.
            if let Some(f) = self.fast.as_mut() {
                f.sweep_for(
                    &fast::basis(&self.pipe, &self.snap, now.secs, &self.umem),
                    ms,
                );
            }
            // The fraction of a millisecond left over counts towards the next.
            self.last_sweep = now.nanos - since % 1_000_000;
            // Chunks of closed ports whose sockets are released go back to the pool, and ports
            // that waited for their slots start.
            self.umem.reap();
            if !self.parked.is_empty() {
                self.start_parked();
            }
            if !self.ra_due.is_empty() {
                self.send_due_ras(now);
            }
        }
        if now.nanos.saturating_sub(self.last_stats) >= 100_000_000 {
            self.publish_stats(now);
        }
    }

    /// Publishes the worker's own statistics and its MAC tables' sizes, and every port's
    /// counters with the kernel's statistics (every 100 ms, traffic or not: when the kernel drops
    /// every frame before the switch sees one, its counters are the ones that move).
    fn publish_stats(&mut self, now: Now) {
        self.last_stats = now.nanos;
        self.measure_cost(now.nanos);
        self.publish(now);
        self.stats.publish(
            self.rounds,
            self.busy_ns,
            self.behind_ns,
            self.rx_total,
            self.gaps_over_1ms,
        );
        self.stats
            .publish_crossed(self.crossed.0, self.crossed.1, self.crossed_lost);
        // (None while the worker has no port open: the target is kept for the next to open.)
        let fill = if self.active.is_empty() {
            0
        } else {
            self.fill_target
        };
        self.stats.publish_fill(fill, self.frame_ns);
        let w = &self.window;
        let len = now.nanos.saturating_sub(w.start);
        if len >= WorkerStats::WINDOW_NS {
            self.stats.publish_window(
                self.busy_ns - w.busy_at_start,
                self.behind_ns - w.behind_at_start,
                w.max_gap,
                len,
            );
            self.window = Window {
                start: now.nanos,
                busy_at_start: self.busy_ns,
                behind_at_start: self.behind_ns,
                max_gap: 0,
            };
        }
        let fdb = &self.pipe.fdb;
        self.stats.publish_macs(|m| m.extend(fdb.network_sizes()));
        self.stats.publish_conntrack(self.pipe.conns.len() as u64);
        if let Some(f) = &self.fast {
            self.stats
                .publish_shortcut(f.len() as u64, f.installed, f.withdrawn);
        }
    }

    #[inline]
    fn is_sendable(&self, slot: u16) -> bool {
        matches!(self.ports.get(usize::from(slot)), Some(Some(o)) if o.healthy)
    }

    /// Turns a verdict into staged descriptors (or a released chunk). Always inline: called
    /// for every frame, its call cost about 30 instructions of register moves.
    #[inline(always)]
    fn emit(&mut self, ingress: u16, d: XdpDesc, verdict: Verdict, now: Now) {
        let (net, unicast) = match verdict {
            Verdict::Drop(_) => {
                self.umem.release(d.addr);
                return;
            }
            Verdict::Dhcp => {
                self.answer_dhcp(ingress, d);
                return;
            }
            Verdict::Dhcp6 => {
                self.answer_dhcp6(ingress, d);
                return;
            }
            Verdict::Arp(mac) => {
                self.answer_arp(ingress, d, mac);
                return;
            }
            Verdict::RouterSolicitation { net } => {
                self.answer_router_solicitation(ingress, d);
                (net, None)
            }
            Verdict::Unicast { port, net } => (net, Some(port)),
            Verdict::Flood { net } => (net, None),
        };
        let vlan = self.snap.net(net).map_or(0, |n| n.vlan);
        // Frames of a flat network are untagged on the uplink too.
        let ingress_tagged = vlan != 0
            && matches!(
                self.snap.port(ingress).map(|p| p.role),
                Some(Role::Trunk(_))
            );
        if let Some(port) = unicast {
            let owner = self.owner(port);
            if owner != self.links.id {
                self.send_across(owner, port, d, (net, ingress_tagged), ingress);
                return;
            }
            if !self.is_sendable(port) {
                self.pipe.counters[usize::from(ingress)].drop(DropReason::EgressDown);
                self.umem.release(d.addr);
            } else if self.pipe.admit(&self.snap, port, d.len as usize, now) {
                self.stage_unicast(port, d, ingress_tagged, (net, vlan), ingress);
            } else {
                self.umem.release(d.addr);
            }
            return;
        }
        if !self.links.out.is_empty() {
            // Once to each other worker with ports to flood to, before the copies here (the
            // last of which may move the tag in place).
            let mut foreign = 0u64;
            for next in flood_targets(&self.snap, net, ingress) {
                let owner = self.owner(next);
                if owner != self.links.id {
                    foreign |= 1 << (owner & 63);
                }
            }
            while foreign != 0 {
                let owner = foreign.trailing_zeros() as u16;
                foreign &= foreign - 1;
                self.cross(owner, Target::Flood, net, ingress, ingress_tagged, d);
            }
        }
        self.flood_here(d, net, ingress, ingress_tagged, vlan, now);
    }

    /// Wakes every other worker that sleeps.
    #[cold]
    fn wake_all(&self) {
        for w in self.links.out.iter().flatten() {
            if let Some(wake) = &w.wake {
                wake.notify();
            }
        }
    }

    /// Hands the frames copied for other workers over, and wakes those workers if they sleep.
    /// Frames for a worker that is gone (at shutdown) are counted as lost on their ingress (a
    /// merged run once per segment).
    #[inline]
    fn hand_over(&mut self) {
        let (counters, crossed) = (&mut self.pipe.counters, &mut self.crossed.0);
        for o in self.links.out.iter_mut().flatten() {
            o.flush(|ingress, frames| {
                counters[usize::from(ingress)].drop_n(DropReason::NoBuffer, frames);
                *crossed -= 1;
            });
        }
        self.wake_peers();
    }

    /// Wakes the workers frames were handed to, if they sleep.
    #[inline]
    fn wake_peers(&mut self) {
        while self.woken != 0 {
            let to = self.woken.trailing_zeros() as usize;
            self.woken &= self.woken - 1;
            if let Some(w) = self.links.out.get(to).and_then(Option::as_ref) {
                if let Some(wake) = &w.wake {
                    wake.notify();
                }
            }
        }
    }

    /// Sleeps, when idle, until a frame arrives on a port or from another worker, a command is
    /// pending, or the clock's work is due (see [`PollMode::Adaptive`]). Returns the frames a
    /// last look found (then it did not sleep). A worker without a wake-up, or with a port that
    /// cannot signal its frames, naps briefly instead.
    fn sleep(&mut self, pending: &AtomicBool, now: Now) -> usize {
        const NAP: Duration = Duration::from_micros(200);
        let Some(wake) = self.links.wake.clone() else {
            std::thread::sleep(NAP);
            return 0;
        };
        wake.going_to_sleep();
        // Once more, now that wakers see the flag: a command or frame that came before it
        // would not wake the worker. (A command is not traffic: the loop takes it next.)
        if pending.load(Ordering::Acquire) {
            wake.awake();
            return 0;
        }
        let found = self.round(now);
        if found > 0 {
            wake.awake();
            return found;
        }
        // A change of the MAC table this round made (its sweep), or one its shortcut check left
        // to the next round (a table grown since its refresh): the next round looks first.
        if self.fast.as_ref().is_some_and(|f| f.moved(&self.pipe.fdb)) {
            wake.awake();
            return 0;
        }
        let Some(stuck) = self.what_to_wait_on(now) else {
            wake.awake();
            std::thread::sleep(NAP);
            return 0;
        };
        // Nothing waits: the sweepers' debts are paid now rather than before the next frame.
        if self.pay_debts(now) {
            // What the MAC sweeper removed may make other workers' shortcut entries wrong, and
            // this one's.
            self.wake_all();
            wake.awake();
            return 0;
        }
        let timeout = self.sleep_ns(now, stuck);
        wake.wait(&mut self.pollfds, Duration::from_nanos(timeout));
        0
    }

    /// How long an idle worker sleeps at most, `stuck` if a port's ring does not drain
    /// ([`Worker::what_to_wait_on`]): `idle_sleep_ns`, less where the clock's work cannot wait
    /// that long (1 ms at least, the housekeeping's step).
    fn sleep_ns(&self, now: Now, stuck: bool) -> u64 {
        // Frames to release, or addresses to learn once a growth of the MAC table is done:
        // nothing wakes the worker for either.
        // Or sweep left owed on a large table ([`Worker::pay_debts`]).
        let pending_release = self.umem.has_graves()
            || !self.parked.is_empty()
            || self.pipe.has_deferred()
            || self.sweep_debt > 0;
        let most = if pending_release {
            1_000_000
        } else if stuck {
            self.cfg.idle_sleep_ns.min(stall::UNDRAINED_NS)
        } else {
            self.cfg.idle_sleep_ns
        };
        // A planned router advertisement goes out on time, the first as the port starts.
        let ra = (self.ra_due.iter())
            .filter(|d| d.2 > 0)
            .map(|d| d.3.saturating_sub(now.nanos));
        ra.fold(most, u64::min).max(1_000_000)
    }

    /// What an idle worker waits on, as the last round left the ports (it may have started
    /// one), in `pollfds`: `None` if it must nap instead (frames held back for want of room, or
    /// sent frames the kernel has not taken yet: what ends that wakes no one). `Some(true)` if a
    /// port's ring does not drain (it stalled and its kicks send nothing, or a few frames have
    /// stayed on it with nothing sent for 10 ms: that may last hours): the worker sleeps, and
    /// wakes to kick it about every 10 ms.
    fn what_to_wait_on(&mut self, now: Now) -> Option<bool> {
        let mut signals = !self.held_back;
        let mut stuck = false;
        self.pollfds.clear();
        for &s in &self.active {
            if let Some(o) = self.ports[usize::from(s)].as_mut() {
                // A port that failed to send is not polled (its frames stay on its RX ring):
                // it must not wake the worker either.
                if o.healthy {
                    let drained = o.io.drained();
                    let port_stuck = o.tx.stuck(drained, now.nanos);
                    stuck |= port_stuck;
                    signals &= (drained || port_stuck) && o.io.wait_fds(&mut self.pollfds);
                }
            }
        }
        signals.then_some(stuck)
    }

    /// Pays what the clock's work left owed ([`Worker::housekeep`]): the sweep's share (at most
    /// [`PAY_SLOTS`] of the MAC table, or 8 ms' share; the rest after a millisecond's sleep) and
    /// the shortcut's hits to read. True if that changed the MAC table where a shortcut entry may
    /// depend on it.
    fn pay_debts(&mut self, now: Now) -> bool {
        if let Some(f) = self.fast.as_mut() {
            f.pay(&fast::basis(&self.pipe, &self.snap, now.secs, &self.umem));
        }
        if self.sweep_debt == 0 || now.nanos < self.next_pay {
            return false;
        }
        // A part at a time on a large table, a part a millisecond at most (the worker sleeps a
        // millisecond while it owes: [`Worker::sleep_ns`]), even where a part's removals send it
        // round first: another worker's learning never waits for a whole pass.
        let ms = self.sweep_debt.min(pay_ms(self.pipe.fdb.slots_seen()));
        self.sweep(now, ms);
        self.sweep_debt -= ms;
        self.next_pay = now.nanos.saturating_add(1_000_000);
        self.fast.as_ref().is_some_and(|f| f.moved(&self.pipe.fdb))
    }

    /// The worker that owns port `slot` (this one for a port the snapshot does not know).
    #[inline]
    fn owner(&self, slot: u16) -> u16 {
        self.snap.port(slot).map_or(self.links.id, |p| p.worker)
    }

    /// Copies frame `d` to worker `to` (the caller still owns `d`); counted on the ingress port
    /// as `no_buffer` if the ring is full (cannot happen while rounds are bounded by the rings'
    /// room) or the frame does not fit.
    fn cross(&mut self, to: u16, target: Target, net: u16, ingress: u16, tagged: bool, d: XdpDesc) {
        let net = (net, self.net_gen(net));
        let from = self.port_ref(ingress);
        let sent = match (self.links.to(to), self.umem.frame(d.addr, d.len)) {
            (Some(o), Some(bytes)) => {
                let unfinished = d.options & UNFINISHED != 0;
                o.send(target, net, from, tagged, unfinished, bytes)
            }
            _ => false,
        };
        if sent {
            self.crossed.0 += 1;
            self.woken |= 1 << (to & 63);
        } else {
            self.pipe.counters[usize::from(ingress)].drop(DropReason::NoBuffer);
        }
    }

    /// Takes frames other workers handed over, at most `room` (lowered by what it takes), and
    /// sends them to this worker's ports. Returns how many it took.
    fn take_crossings(&mut self, room: &mut u32, now: Now) -> usize {
        let mut taken: usize = 0;
        // Each round begins with the next peer: where the room runs out, one busy peer does not
        // keep the others' buffers (and so their rounds) waiting.
        let peers = self.links.inbound.len();
        self.first_peer = (self.first_peer + 1) % peers.max(1);
        let first = self.first_peer;
        for k in (0..peers).map(|i| (first + i) % peers) {
            while *room > 0 {
                let Some(mut c) = self.links.inbound[k].next() else {
                    break;
                };
                *room -= 1;
                taken += 1;
                if c.is_whole() {
                    let staged = self.deliver_whole(&mut c, now);
                    *room = room.saturating_sub(staged.saturating_sub(1));
                } else {
                    self.deliver(&c, now);
                }
                self.links.inbound[k].done(c);
                if taken.is_multiple_of(MAX_BATCH) {
                    // Stages stay within their capacity (they never grow).
                    self.flush_staged(false);
                }
            }
            // Frames may be left in the channel.
            self.held_back |= *room == 0;
        }
        // A run of handed-over frames ends with them (its losses are counted on the port).
        if self.merge.is_some() {
            self.close_merge();
        }
        self.crossed.1 += taken as u64;
        taken
    }

    /// Sends a frame another worker handed over to its port, or floods it to this worker's
    /// ports of its network, each copy through the port's ingress security group rules.
    fn deliver(&mut self, c: &Crossing, now: Now) {
        if !self.meant(c) {
            self.crossed_lost += 1;
            return;
        }
        // Before a buffer is sought: a loss is counted on the port only while it is open.
        if let Target::Port(p) = c.target {
            if !self.is_sendable(p.slot) {
                self.count_unsendable(p.slot, 1);
                return;
            }
        }
        let frame = c.frame();
        let Some(base) = self.umem.alloc() else {
            // Counted as a flood copy without a buffer is: on each port it would have reached.
            match c.target {
                Target::Port(p) => {
                    self.pipe.counters[usize::from(p.slot)].drop(DropReason::NoBuffer);
                }
                Target::Flood => {
                    let snap = Arc::clone(&self.snap);
                    for t in flood_targets(&snap, c.net, self.ingress_here(c)) {
                        if self.is_sendable(t) {
                            self.pipe.counters[usize::from(t)].drop(DropReason::NoBuffer);
                        }
                    }
                }
            }
            return;
        };
        let off = KERNEL_HEADROOM as usize;
        let copied = self
            .umem
            .chunk_mut(base)
            .and_then(|(chunk, _)| chunk.get_mut(off..off + frame.len()))
            .map(|dst| dst.copy_from_slice(frame))
            .is_some();
        if !copied {
            // Cannot happen: the sender's chunks are the size of ours.
            self.umem.release(base);
            if let Target::Port(p) = c.target {
                self.pipe.counters[usize::from(p.slot)].drop(DropReason::NoBuffer);
            }
            return;
        }
        let d = XdpDesc {
            addr: base + u64::from(KERNEL_HEADROOM),
            len: c.len,
            options: if c.unfinished { UNFINISHED } else { 0 },
        };
        self.pipe.inspect(&self.snap, c.net, frame);
        let vlan = self.snap.net(c.net).map_or(0, |n| n.vlan);
        match c.target {
            Target::Port(PortRef { slot: p, .. })
                if self.pipe.admit(&self.snap, p, d.len as usize, now) =>
            {
                // The other workers send the rest of an established connection straight.
                self.pipe.publish(&self.snap, p, now);
                // A failure is counted on the port: the ingress belongs to another worker.
                self.stage_unicast(p, d, c.tagged, (c.net, vlan), p);
            }
            Target::Port(_) => self.umem.release(d.addr),
            Target::Flood => {
                let ingress = self.ingress_here(c);
                self.flood_here(d, c.net, ingress, c.tagged, vlan, now);
            }
        }
    }

    /// Counts `frames` frames another worker handed over for port `p` (one, or a merged run's
    /// segments), which cannot send them: on the port (`egress_down`) while it is open here, its
    /// transmit failed; among the crossings lost while it is not (its device is missing, or not
    /// opened yet): a port that is not open publishes no counters, and starts from those it last
    /// published when it opens, so a count there would be lost. (The sender could not know: its
    /// snapshot has the port.)
    fn count_unsendable(&mut self, p: u16, frames: u32) {
        if matches!(self.ports.get(usize::from(p)), Some(Some(_))) {
            self.pipe.counters[usize::from(p)].drop_n(DropReason::EgressDown, frames);
        } else {
            self.crossed_lost += u64::from(frames);
        }
    }

    /// Are crossing `c`'s network and port, in this worker's snapshot, the ones its sender
    /// meant: the same generations in the same slots? A slot reused since holds another network
    /// (another VLAN on a trunk) or port (perhaps of another network), and one this worker's
    /// snapshot does not have yet, none: the frame is dropped, counted as lost among the
    /// crossings (no port of this worker's is to blame). A port must carry the network here
    /// too ([`crate::config::NetView::carries`]).
    fn meant(&self, c: &Crossing) -> bool {
        let Some(n) = self.snap.net(c.net).filter(|n| n.gen == c.net_gen) else {
            return false;
        };
        match c.target {
            Target::Port(p) => self
                .snap
                .port(p.slot)
                .is_some_and(|v| v.gen == p.gen && n.carries(c.net, v)),
            Target::Flood => true,
        }
    }

    /// Crossing `c`'s ingress port in this worker's snapshot: its slot, or [`NONE`] where the slot
    /// holds another port by now (one of a flood's targets as any other, and not where a copy's
    /// loss is counted), or none.
    fn ingress_here(&self, c: &Crossing) -> u16 {
        let i = c.ingress;
        if self.snap.port(i.slot).is_some_and(|p| p.gen == i.gen) {
            i.slot
        } else {
            NONE
        }
    }

    /// Port `slot` as a crossing's target, with the generation this worker's snapshot gives it
    /// (0, which no port has, if none: cannot happen, the frame was decided on that snapshot).
    fn port_ref(&self, slot: u16) -> PortRef {
        let gen = self.snap.port(slot).map_or(0, |p| p.gen);
        PortRef { slot, gen }
    }

    /// Port `slot` as a crossing's target ([`Worker::port_ref`]).
    fn to_port(&self, slot: u16) -> Target {
        Target::Port(self.port_ref(slot))
    }

    /// Network `net`'s generation in this worker's snapshot, for a crossing (0 if none, as
    /// for [`Worker::port_ref`]).
    fn net_gen(&self, net: u16) -> u32 {
        self.snap.net(net).map_or(0, |n| n.gen)
    }

    /// Floods frame `d` of network `net` to this worker's ports of it (other workers' ports are
    /// not sendable here), each copy through the port's ingress rules.
    fn flood_here(
        &mut self,
        d: XdpDesc,
        net: u16,
        ingress: u16,
        ingress_tagged: bool,
        vlan: u16,
        now: Now,
    ) {
        let snap = Arc::clone(&self.snap);
        let mut current: Option<u16> = None;
        for next in flood_targets(&snap, net, ingress) {
            if !self.is_sendable(next) || !self.pipe.admit(&snap, next, d.len as usize, now) {
                continue;
            }
            if let Some(target) = current {
                match self.umem.copy_frame(d.addr, d.len) {
                    Some(addr) => {
                        let copy = XdpDesc { addr, ..d };
                        let at = self.counted_on(ingress, target);
                        self.stage_to(target, copy, ingress_tagged, vlan, at);
                    }
                    None => self.pipe.counters[usize::from(target)].drop(DropReason::NoBuffer),
                }
            }
            current = Some(next);
        }
        let Some(current) = current else {
            self.umem.release(d.addr);
            return;
        };
        let at = self.counted_on(ingress, current);
        self.stage_to(current, d, ingress_tagged, vlan, at);
    }

    /// Where a failure to stage a copy for `target` is counted: on the ingress port if this
    /// worker owns it (and publishes its counters), else on the target. (An ingress port this
    /// worker's snapshot does not have yet is another worker's.)
    #[inline]
    fn counted_on(&self, ingress: u16, target: u16) -> u16 {
        if self
            .snap
            .port(ingress)
            .is_some_and(|p| p.worker == self.links.id)
        {
            ingress
        } else {
            target
        }
    }

    /// Answers a port's DHCP client message in its own chunk and sends the reply back to the
    /// port; a message that gets no answer is counted and its chunk released.
    fn answer_dhcp(&mut self, port: u16, d: XdpDesc) {
        let cfg = self.snap.port(port).and_then(|p| p.dhcp.clone());
        let answered = self.answer_in_place(port, d, |request, out| {
            let cfg = cfg.as_deref()?;
            dhcp::respond(cfg, request, dhcp::client_message(request)?, out)
        });
        self.count_dhcp(port, answered);
    }

    fn answer_dhcp6(&mut self, port: u16, d: XdpDesc) {
        let cfg = self.snap.port(port).and_then(|p| p.dhcp6.clone());
        let answered = self.answer_in_place(port, d, |request, out| {
            let cfg = cfg.as_deref()?;
            crate::dhcp6::respond(cfg, request, crate::dhcp6::client_message(request)?, out)
        });
        self.count_dhcp(port, answered);
    }

    /// Counts a DHCP message of `port`'s client: answered, or dropped unanswered.
    fn count_dhcp(&mut self, port: u16, answered: bool) {
        let c = &mut self.pipe.counters[usize::from(port)];
        if answered {
            c.dhcp_replies += 1;
        } else {
            c.drop(DropReason::DhcpUnanswered);
        }
    }

    /// Writes the switch's answer to a frame a port sent over the frame itself, in its own chunk
    /// (`respond` gets a copy of the request and the chunk from the frame's start), and sends it
    /// back to the port. Without an answer the chunk is released. Rare and small frames: the copy
    /// costs nothing that matters.
    fn answer_in_place(
        &mut self,
        port: u16,
        mut d: XdpDesc,
        respond: impl FnOnce(&[u8], &mut [u8]) -> Option<usize>,
    ) -> bool {
        let len = (|| {
            let request = self.umem.frame(d.addr, d.len)?.to_vec();
            let (chunk, off) = self.umem.chunk_mut(d.addr)?;
            respond(&request, &mut chunk[off..])
        })();
        match len.and_then(|n| u32::try_from(n).ok()) {
            Some(n) => {
                d.len = n;
                self.stage_to(port, d, false, 0, port);
                true
            }
            None => {
                self.umem.release(d.addr);
                false
            }
        }
    }

    /// Answers an ARP request for a known address in its own chunk, back to the asking port.
    fn answer_arp(&mut self, port: u16, d: XdpDesc, mac: Mac) {
        let answered = self
            .umem
            .frame(d.addr, d.len)
            .and_then(|f| crate::pipeline::arp_reply_in_place(f, mac));
        let c = &mut self.pipe.counters[usize::from(port)];
        if answered.is_some() {
            c.arp_replies += 1;
            self.stage_to(port, d, false, 0, port);
        } else {
            // Cannot happen (the decision read the same bytes); counted all the same.
            c.drop(DropReason::Truncated);
            self.umem.release(d.addr);
        }
    }

    /// Answers a port's router solicitation with an advertisement of its SLAAC prefixes, written
    /// over a copy of it and sent back to the port (the solicitation itself floods). Without a
    /// free buffer there is no answer, and nothing is dropped: the VM solicits again.
    fn answer_router_solicitation(&mut self, port: u16, d: XdpDesc) {
        let cfg = self.snap.port(port).and_then(|p| p.ra.clone());
        let Some(addr) = self.umem.copy_frame(d.addr, d.len) else {
            return;
        };
        let copy = XdpDesc { addr, ..d };
        if self.answer_in_place(port, copy, |request, out| {
            crate::ra::respond(cfg.as_deref()?, request, out)
        }) {
            self.pipe.counters[usize::from(port)].ra_replies += 1;
        }
    }

    /// Plans the unsolicited router advertisements of port `slot` ([`crate::ra`]), as it starts
    /// forwarding or what it is advertised changes: [`RA_COPIES`] of them, the first at the
    /// next millisecond's housekeeping, then [`RA_INTERVAL_NS`] apart (RFC 4861 6.2.4 sends up
    /// to three), so that one lost on the way does not lose the change: the VM will not solicit
    /// again. A plan made earlier for the slot is replaced.
    fn schedule_ra(&mut self, slot: u16) {
        let Some(p) = self
            .snap
            .port(slot)
            .filter(|p| p.ra.is_some() && p.admin_up)
        else {
            return;
        };
        self.ra_due.retain(|d| d.0 != slot);
        self.ra_due.push((slot, p.gen, RA_COPIES, 0));
    }

    /// Sends the planned advertisements that are due. A port that went, changed generation, lost
    /// its advertisement or went down has its plan dropped; one without a free buffer now is
    /// tried again at the next millisecond.
    fn send_due_ras(&mut self, now: Now) {
        let mut i = 0;
        while i < self.ra_due.len() {
            let (slot, gen, left, at) = self.ra_due[i];
            let cfg = (self.snap.port(slot))
                .filter(|p| p.gen == gen && p.admin_up)
                .and_then(|p| p.ra.clone());
            let Some(cfg) = cfg.filter(|_| left > 0 && self.is_sendable(slot)) else {
                self.ra_due.swap_remove(i);
                continue;
            };
            if at <= now.nanos && self.announce_ra(slot, &cfg) {
                self.ra_due[i].2 -= 1;
                self.ra_due[i].3 = now.nanos + RA_INTERVAL_NS;
            }
            i += 1;
        }
    }

    /// Stages an unsolicited advertisement of `cfg` for port `slot`; false without a free buffer.
    fn announce_ra(&mut self, slot: u16, cfg: &crate::ra::RaConfig) -> bool {
        let Some(chunk) = self.umem.alloc() else {
            return false;
        };
        // At the offset the kernel leaves, as a frame the worker received or copied.
        let addr = chunk + u64::from(KERNEL_HEADROOM);
        let len = (self.umem.chunk_mut(addr))
            .and_then(|(bytes, off)| crate::ra::unsolicited(cfg, &mut bytes[off..]))
            .and_then(|n| u32::try_from(n).ok());
        let Some(len) = len else {
            // Cannot happen (a chunk holds far more than an advertisement); counted as a copy
            // sent, so that the plan still ends.
            self.umem.release(chunk);
            return true;
        };
        let d = XdpDesc {
            addr,
            len,
            options: 0,
        };
        self.stage_to(slot, d, false, 0, slot);
        self.pipe.counters[usize::from(slot)].ra_replies += 1;
        true
    }

    /// Stages a frame of network `net` (VLAN `vlan`) decided for this worker's port `egress`
    /// (counted on `blame` if lost), or merges it with the segments before it
    /// ([`Worker::merge_segment`]) where that port is a VM's that sends super-frames whole.
    /// Inline: every unicast frame passes here.
    #[inline(always)]
    fn stage_unicast(
        &mut self,
        egress: u16,
        d: XdpDesc,
        tagged: bool,
        (net, vlan): (u16, u16),
        blame: u16,
    ) {
        // Towards a VM's port only: the uplink may be a veth into another switch in native XDP
        // mode, which with this one's native program refuses every GSO frame (every merged
        // frame would be built, refused and cut).
        let merges = self.merging
            && matches!(
                self.ports.get(usize::from(egress)),
                Some(Some(o)) if o.healthy && o.takes_whole
            )
            && matches!(
                self.snap.port(egress).map(|p| p.role),
                Some(Role::Access(_))
            );
        let d = if merges {
            match self.merge_segment(egress, d, tagged, net, blame) {
                Some(d) => d,
                None => return,
            }
        } else {
            d
        };
        self.stage_to(egress, d, tagged, vlan, blame);
    }

    /// Sends frame `d` of network `net` (carrying its tag if `tagged`), received on `ingress`
    /// and decided for port `egress` of worker `owner`: out of that port from here if it is TCP
    /// that may go so ([`Worker::straight`]), else handed over. Out of line: most frames stay on
    /// their worker.
    #[inline(never)]
    fn send_across(
        &mut self,
        owner: u16,
        egress: u16,
        d: XdpDesc,
        (net, tagged): (u16, bool),
        ingress: u16,
    ) {
        let d = if self.merge.is_some()
            || matches!(self.direct.get(usize::from(egress)), Some(Some(_)))
        {
            match self.straight(egress, d, tagged, net, ingress) {
                Some(d) => d,
                None => return,
            }
        } else {
            d
        };
        self.cross(owner, self.to_port(egress), net, ingress, tagged, d);
        self.umem.release(d.addr);
    }

    /// Sends frame `d` of network `net`, received on `ingress` and decided for another worker's
    /// port `egress`, out of that port itself ([`direct`]) where it may go so from here
    /// ([`Worker::may_go_straight`]) and is TCP: merged with the flow's segments
    /// ([`Worker::merge_segment`]) or, one that may not be merged (without a payload, for one),
    /// on its own ([`Worker::send_lone`]), so that nothing of a flow crosses while the rest of
    /// it goes straight. Returns `d` when it is not taken, for the caller to hand over, after
    /// closing any run open for `egress` (the port's frames keep their order).
    fn straight(
        &mut self,
        egress: u16,
        d: XdpDesc,
        tagged: bool,
        net: u16,
        ingress: u16,
    ) -> Option<XdpDesc> {
        let straight = self.may_go_straight(egress, net);
        let mut d = if straight && self.merging {
            self.merge_segment(egress, d, tagged, net, ingress)?
        } else {
            d
        };
        if self.merge.as_ref().is_some_and(|m| m.egress == egress) {
            self.close_merge();
        }
        if straight && self.send_lone(egress, net, tagged, &mut d, false) {
            self.umem.release(d.addr);
            return None;
        }
        Some(d)
    }

    /// Merges frame `d` into the run of segments open for `egress`, if it is the next segment
    /// of that run's flow, or starts a run with it if it is a TCP segment that may be merged
    /// (closing any other run: one is open at a time). A segment whose checksums are not sound
    /// is never merged (the merged frame's checksum would hide it). Returns `d` when it is not
    /// taken, for the caller to stage. Out of line: the common frame does not come here.
    #[inline(never)]
    fn merge_segment(
        &mut self,
        egress: u16,
        d: XdpDesc,
        tagged: bool,
        net: u16,
        blame: u16,
    ) -> Option<XdpDesc> {
        let Some(frame) = self.umem.frame(d.addr, d.len) else {
            return Some(d);
        };
        let Some(seg) = coalesce::Segment::parse(frame) else {
            return Some(d);
        };
        if !coalesce::sound(frame, &seg, d.options & UNFINISHED != 0) {
            return Some(d);
        }
        // `merge_buf` holds the run's first headers, then (once a second segment joined) the
        // payloads.
        let joined = self
            .merge
            .as_mut()
            .filter(|m| {
                m.egress == egress && m.net == net && m.tagged == tagged && m.blame == blame
            })
            .is_some_and(|m| m.run.join(&self.merge_buf, frame, &seg));
        if !joined {
            let run = coalesce::Run::start(frame, seg);
            self.close_merge();
            let Some(frame) = self.umem.frame(d.addr, d.len) else {
                return Some(d);
            };
            self.merge_buf.clear();
            self.merge_buf.reserve_exact(GSO_BUF);
            self.merge_buf.extend_from_slice(&frame[..seg.headers()]);
            self.merge = Some(Merge {
                egress,
                blame,
                net,
                tagged,
                first: Some(d),
                run,
            });
            return None;
        }
        // The run's second segment: the first's payload is copied out of its buffer first.
        let first = self
            .merge
            .as_mut()
            .and_then(|m| Some((m.first.take()?, m.run.first_payload())));
        if let Some((f, payload)) = first {
            if let Some(bytes) = self.umem.frame(f.addr, f.len).and_then(|b| b.get(payload)) {
                self.merge_buf.extend_from_slice(bytes);
            }
            self.umem.release(f.addr);
        }
        if let Some(frame) = self.umem.frame(d.addr, d.len) {
            self.merge_buf
                .extend_from_slice(&frame[seg.headers()..seg.headers() + seg.payload()]);
        }
        self.umem.release(d.addr);
        None
    }

    /// Sends the run of segments open, if any: its one segment staged as it came, or the
    /// segments merged into one super-frame sent whole ([`Worker::send_whole`]; cut back into
    /// them where it cannot leave whole). The segments that left merged are counted in
    /// `coalesced` on the port.
    #[inline(never)]
    fn close_merge(&mut self) {
        let Some(m) = self.merge.take() else {
            return;
        };
        let vlan = self.snap.net(m.net).map_or(0, |n| n.vlan);
        let straight = self.owner(m.egress) != self.links.id;
        if let Some(first) = m.first {
            if straight {
                self.close_straight_one(&m, first);
            } else {
                self.stage_to(m.egress, first, m.tagged, vlan, m.blame);
            }
            return;
        }
        let count = m.run.count();
        let plan = m.run.finish(&mut self.merge_buf).and_then(|end| {
            self.merge_buf.truncate(end);
            gso::Plan::new(&self.merge_buf, m.run.headers() + m.run.size())
        });
        let Some(plan) = plan else {
            // Cannot happen: the run read these headers.
            for _ in 0..count {
                self.pipe.counters[usize::from(m.blame)].drop(DropReason::NoBuffer);
            }
            return;
        };
        // `send_whole` and `cut_for` send what `gso_buf` holds: a super-frame being cut may be
        // there (its segments are what closed the run), and is put back after.
        core::mem::swap(&mut self.gso_buf, &mut self.merge_buf);
        if straight {
            let via = Via {
                egress: m.egress,
                net: m.net,
                tagged: m.tagged,
                blame: m.blame,
            };
            // Its segments were each counted in their rounds' room: only the buffers free
            // towards that worker bound what crosses.
            if self.send_straight(via, &plan, count, u32::MAX).is_none() {
                if self.hand_over_whole(via, &plan, count) {
                    // Now: a run may close after the round's last hand-over.
                    self.hand_over();
                } else {
                    self.cut_over(via, &plan, u32::MAX, count);
                }
            }
            core::mem::swap(&mut self.gso_buf, &mut self.merge_buf);
            return;
        }
        match self.send_whole(m.egress, m.net, m.tagged, &plan) {
            Whole::Sent => {
                self.pipe.counters[usize::from(m.egress)].coalesced += u64::from(count);
            }
            Whole::Cut => {
                self.cut_merged_for(m.egress, m.net, m.tagged, &plan, count);
            }
        }
        core::mem::swap(&mut self.gso_buf, &mut self.merge_buf);
    }

    /// Sends the one segment of run `m`, towards another worker's port, out of that port
    /// ([`Worker::send_lone`]), or hands it over if it cannot go so.
    fn close_straight_one(&mut self, m: &Merge, mut d: XdpDesc) {
        // The run checked its segment's checksum (`coalesce::sound`).
        if !self.send_lone(m.egress, m.net, m.tagged, &mut d, true) {
            let owner = self.owner(m.egress);
            self.cross(owner, self.to_port(m.egress), m.net, m.blame, m.tagged, d);
            self.hand_over();
        }
        self.umem.release(d.addr);
    }

    /// Cuts the TCP frame in `gso_buf` (`plan`'s: a super-frame, or `merged` segments merged),
    /// `via` another worker's port (its network, its tag, where losses are counted), into
    /// segments that fit the port (and `plan`'s segment size), each sent out of the port from
    /// here ([`Worker::send_lone`]) until one cannot be. Then the rest crosses to the port's
    /// worker, so that it keeps its order: the whole frame if none was sent (nor lost) yet and a
    /// buffer for super-frames towards that worker is free (that worker sends it whole or cuts
    /// it, within its own room); else the rest as segments, if they fit the buffers free
    /// towards it and `budget` (the round's room, which the frames received behind this one were
    /// counted in already); else the rest is lost, as `no_buffer` on `blame` (once for a
    /// super-frame, as a frame whose segments do not fit is lost whole where this worker cuts
    /// for its own ports, and TCP sends it again; for a merged run, once per merged segment,
    /// in the rest's share of them). A segment without a buffer here is lost (`no_buffer` on
    /// `blame`).
    fn cut_over(&mut self, via: Via, plan: &gso::Plan, budget: u32, merged: u32) -> Straight {
        let Via {
            egress,
            net,
            tagged,
            blame,
        } = via;
        let owner = self.owner(egress);
        let Some(cut) = self.plan_for(egress, tagged, plan) else {
            self.pipe.counters[usize::from(blame)].drop(DropReason::Oversize);
            return Straight::Lost;
        };
        let segments = cut.segments();
        let mut k = 0;
        while k < segments {
            let Some(mut d) = self.cut_segment(&cut, k) else {
                self.pipe.counters[usize::from(blame)].drop(DropReason::NoBuffer);
                k += 1;
                continue;
            };
            // Its checksum is partial (`plan.write`).
            let sent = self.send_lone(egress, net, tagged, &mut d, true);
            self.umem.release(d.addr);
            if !sent {
                break;
            }
            k += 1;
        }
        if k == segments {
            return Straight::Cut { crossed: 0 };
        }
        if k == 0 && self.hand_over_whole(via, plan, merged) {
            self.hand_over();
            return Straight::Whole;
        }
        let rest = (segments - k) as u32;
        let free = self.links.to(owner).map_or(0, |o| o.reclaim());
        if rest > budget.min(u32::try_from(free).unwrap_or(u32::MAX)) {
            // A merged run's segments were each received (and counted) on their own: the rest's
            // share of them, where the port's segments are smaller than the run's.
            let lost = (u64::from(merged) * u64::from(rest)).div_ceil(segments as u64);
            for _ in 0..lost.max(1) {
                self.pipe.counters[usize::from(blame)].drop(DropReason::NoBuffer);
            }
            return if k == 0 {
                Straight::Lost
            } else {
                Straight::Cut { crossed: 0 }
            };
        }
        for k in k..segments {
            let Some(d) = self.cut_segment(&cut, k) else {
                self.pipe.counters[usize::from(blame)].drop(DropReason::NoBuffer);
                continue;
            };
            self.cross(owner, self.to_port(egress), net, blame, tagged, d);
            self.umem.release(d.addr);
        }
        self.hand_over();
        Straight::Cut { crossed: rest }
    }

    /// Stages a worker-owned frame for `egress`, pushing or popping the VLAN tag as the egress
    /// port's role requires. Inline, with the branches only some frames take out of line: every
    /// frame sent passes here.
    #[inline(always)]
    fn stage_to(&mut self, egress: u16, mut d: XdpDesc, tagged: bool, vlan: u16, ingress: u16) {
        if self.merge.as_ref().is_some_and(|m| m.egress == egress) {
            self.close_merge();
        }
        let to_trunk =
            vlan != 0 && matches!(self.snap.port(egress).map(|p| p.role), Some(Role::Trunk(_)));
        if to_trunk != tagged {
            let Some(retagged) = self.retag(d, to_trunk, vlan) else {
                self.pipe.counters[usize::from(ingress)].drop(DropReason::NoBuffer);
                self.umem.release(d.addr);
                return;
            };
            d = retagged;
        }
        // Only the kernel's options leave the worker. (The descriptor is built whole, never
        // through its address: a field written alone just before the whole is read back
        // stalls the store's forwarding: 10.7 % of `poll`'s samples in `worker/1k-udp`.)
        let options = if d.options & UNFINISHED != 0 {
            self.finish_checksum(egress, d)
        } else {
            0
        };
        let stage = &mut self.stage[usize::from(egress)];
        if stage.is_empty() {
            self.staged.push(egress);
        }
        stage.push(XdpDesc { options, ..d });
    }

    /// Frame `d` with VLAN tag `vlan` pushed (`to_trunk`) or its tag popped, in its chunk;
    /// `None` if that cannot be done (no room in its chunk, a frame too short to untag).
    #[inline(never)]
    fn retag(&mut self, d: XdpDesc, to_trunk: bool, vlan: u16) -> Option<XdpDesc> {
        let (chunk, off) = self.umem.chunk_mut(d.addr)?;
        let len = d.len as usize;
        let new_off = if to_trunk {
            push_vlan_tag(chunk, off, len, vlan)
        } else {
            pop_vlan_tag(chunk, off, len)
        }?;
        Some(XdpDesc {
            addr: self.umem.chunk_base(d.addr) + new_off as u64,
            len: if to_trunk {
                d.len + VLAN_TAG_LEN as u32
            } else {
                d.len - VLAN_TAG_LEN as u32
            },
            options: d.options,
        })
    }

    /// Finishes the checksum the sender of frame `d` left for the device, as it leaves for
    /// `egress`: a port whose kernel finishes it on transmit gets the request in the frame's
    /// metadata (and the frame is sent as it came, its checksum field holding the pseudo-header
    /// sum); any other gets the frame with the checksum computed here. Each copy of a flood is
    /// finished on its own, after any tag was pushed or popped. Out of line: only frames whose
    /// checksum was left unfinished come here (every segment of a guest that offloads them, at
    /// the cost of a call each). Returns the options `d` leaves with: `XDP_TX_METADATA` for a
    /// request in the metadata, else none.
    #[inline(never)]
    fn finish_checksum(&mut self, egress: u16, d: XdpDesc) -> u32 {
        let offload = matches!(self.ports.get(usize::from(egress)), Some(Some(o)) if o.tx_checksum);
        let Some((chunk, off)) = self.umem.chunk_mut(d.addr) else {
            return 0;
        };
        let (head, rest) = chunk.split_at_mut(off);
        let Some(frame) = rest.get_mut(..d.len as usize) else {
            return 0;
        };
        match csum::pending(frame) {
            Some(csum::Pending::Partial(p))
                if offload
                    && p.ends(frame.len())
                    && head.len() >= TX_METADATA_LEN
                    && write_tx_checksum(&mut head[off - TX_METADATA_LEN..], p.start, p.field) =>
            {
                return XDP_TX_METADATA;
            }
            Some(p) => csum::finish(frame, p),
            None => {}
        }
        0
    }

    /// Sends the staged frames of every egress port (`all`), or of those whose stage could not
    /// take another batch.
    fn flush_staged(&mut self, all: bool) {
        if self.merge.is_some() {
            self.close_merge();
        }
        let mut k = 0;
        while k < self.staged.len() {
            let slot = self.staged[k];
            if !all && self.stage[usize::from(slot)].len() + MAX_BATCH <= STAGE_CAP {
                k += 1;
                continue;
            }
            self.flush_at(k);
        }
    }

    /// Sends the frames staged for port `slot`, if any.
    fn flush_port(&mut self, slot: u16) {
        if self.merge.as_ref().is_some_and(|m| m.egress == slot) {
            self.close_merge();
        }
        if let Some(k) = self.staged.iter().position(|&s| s == slot) {
            self.flush_at(k);
        }
    }

    /// Why a frame for port `slot` that its TX ring has no room for is lost ([`Open::no_room`]).
    fn no_room(&self, slot: u16) -> DropReason {
        match self.ports.get(usize::from(slot)) {
            Some(Some(o)) => o.no_room(),
            _ => DropReason::NoBuffer,
        }
    }

    /// Sends the frames staged for the port at `self.staged[k]`, and takes it off that list.
    fn flush_at(&mut self, k: usize) {
        let slot = self.staged.swap_remove(k);
        let i = usize::from(slot);
        let stage = core::mem::take(&mut self.stage[i]);
        if let Some(o) = self.ports[i].as_mut() {
            let sent = o.io.send(&mut self.umem, &stage);
            let c = &mut self.pipe.counters[i];
            c.tx_packets += sent as u64;
            c.tx_bytes += stage[..sent].iter().map(|d| u64::from(d.len)).sum::<u64>();
            // Only a stalled port has less room than the round took (kept total anyway).
            let lost = o.no_room();
            for d in &stage[sent..] {
                c.drop(lost);
                self.umem.release(d.addr);
            }
            // A stalled port that completes nothing is kicked only at a round's start.
            if o.tx.kicked_freely(self.round_ns) {
                if let Err(e) = o.io.flush() {
                    tx_failed(o, slot, c, &e);
                }
            }
        } else {
            for d in &stage {
                self.umem.release(d.addr);
            }
        }
        self.stage[i] = stage;
        self.stage[i].clear();
    }

    /// Frames received, and taken from other workers, over the worker's life.
    fn frames_taken(&self) -> u64 {
        self.rx_total + self.crossed.1
    }

    /// Counts `gap` ns and `frames` frames of a round that left frames waiting into the window
    /// of such rounds, and measures the cost of a frame at once, not at the next publication,
    /// when the window holds [`QUEUED_MEASURE`] frames: a queue that stands after the cost rose
    /// (larger frames, more rules) is bounded at the new cost within that many of its frames
    /// (twice that many at most: the window may begin with an earlier queue's). A window that
    /// began more than [`QUEUED_COST_NS`] ago holds another time's traffic: a new one begins.
    fn count_queued(&mut self, gap: u64, frames: u64) {
        let now = self.round_ns;
        if now.saturating_sub(self.queued.since) > QUEUED_COST_NS {
            self.queued = QueuedWindow::starting(now);
        }
        self.queued.add(gap, frames);
        if self.queued.frames >= QUEUED_MEASURE {
            self.measure_cost(now);
        }
    }

    /// Counts a round that found nothing and lasted `gap` ns: if it was held back (no TX room
    /// or none towards a peer), the frames on the receive rings waited through it, and the
    /// spin, yield or nap after it.
    fn account_idle_round(&mut self, gap: u64) {
        let work = gap.saturating_sub(std::mem::take(&mut self.commands_ns));
        if self.held_back && work <= 1_000_000 {
            self.count_queued(work, 0);
        }
    }

    /// Counts a round that found work, which lasted `gap` ns and received or took from other
    /// workers `frames` frames, into the worker's busy, behind and working times, its queued
    /// work and its gaps. The commands handled after it (`commands_ns`) count into the busy
    /// and behind times and the gaps, not into the cost of its frames.
    fn account_round(&mut self, gap: u64, frames: u64) {
        // It left frames waiting (or, held back by a full TX ring or a busy peer, would have:
        // the frames on the receive rings wait through it, which slows their drain).
        let waiting = self.behind || self.held_back;
        self.busy_ns += gap;
        if waiting {
            self.behind_ns += gap;
        }
        let work = gap.saturating_sub(std::mem::take(&mut self.commands_ns));
        if work <= 1_000_000 {
            self.working_ns += work;
            if waiting {
                self.count_queued(work, frames);
            }
        }
        self.max_gap_ns = self.max_gap_ns.max(gap);
        self.window.max_gap = self.window.max_gap.max(gap);
        self.gaps_over_1ms += u64::from(gap > 1_000_000);
        if gap > 5_000_000 {
            tracing::debug!(
                "worker: {:.1} ms between two rounds while forwarding (frames arriving meanwhile \
                 wait in fill rings of at most {} frames)",
                gap as f64 / 1e6,
                self.fill_target
            );
        }
    }

    /// Runs the loop until [`Command::Stop`] or until the command channel closes.
    pub fn run(mut self, commands: Receiver<Command<P>>, pending: Arc<AtomicBool>) {
        let epoch = self.epoch;
        let now = || Now::from_nanos(u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX));
        // Not 0: the first round follows no round that found work.
        let mut idle: u32 = 1;
        let mut prev_round = now().nanos;
        // When the current stretch without traffic began.
        let mut idle_since = prev_round;
        // Frames the last round that found work received or took from other workers.
        let mut round_frames = 0;
        loop {
            if pending.swap(false, Ordering::Acquire) {
                let start = now().nanos;
                loop {
                    match commands.try_recv() {
                        Ok(cmd) => {
                            if !self.handle(cmd, now()) {
                                return;
                            }
                        }
                        Err(std::sync::mpsc::TryRecvError::Empty) => break,
                        Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                            self.handle(Command::Stop, now());
                            return;
                        }
                    }
                }
                self.commands_ns += now().nanos.saturating_sub(start);
            }
            let t = now();
            let gap = t.nanos.saturating_sub(prev_round);
            if idle == 0 {
                // Only while traffic flows (an idle adaptive worker sleeps on purpose).
                // The previous round found work: it lasted until now (one clock read a round).
                self.account_round(gap, round_frames);
            } else {
                self.account_idle_round(gap);
            }
            prev_round = t.nanos;
            let seen = self.frames_taken();
            if self.round(t) > 0 {
                round_frames = self.frames_taken() - seen;
                idle = 0;
                continue;
            }
            if idle == 0 {
                idle_since = t.nanos;
            }
            idle = idle.saturating_add(1);
            if self.dirty {
                self.publish(t);
            }
            match self.cfg.poll {
                PollMode::Busy => std::hint::spin_loop(),
                PollMode::Adaptive
                    if t.nanos.saturating_sub(idle_since) < self.cfg.idle_spin_ns =>
                {
                    // Wait a little before polling again: polling an idle ring at full speed only
                    // bounces its cache line between the cores. Then let whatever else is
                    // runnable on this CPU run (a VM, the receiving guest's stack); back at once
                    // when nothing is.
                    for _ in 0..64 {
                        std::hint::spin_loop();
                    }
                    std::thread::yield_now();
                }
                PollMode::Adaptive => {
                    // The sleep's last look is a round: one that finds work is the one timed
                    // next.
                    let t = now();
                    let seen = self.frames_taken();
                    if self.sleep(&pending, t) > 0 {
                        prev_round = t.nanos;
                        round_frames = self.frames_taken() - seen;
                        idle = 0;
                    }
                }
            }
        }
    }
}

/// A descriptor option of the worker's own, never handed to a port: the frame's checksum was
/// left for the device to finish (`csum::pending`), which [`Worker::finish_checksum`] sees to as
/// each copy is staged.
const UNFINISHED: u32 = 1 << 31;

/// Flushes a port's TX ring gets, at most, to send what is staged before a super-frame leaves
/// whole behind it (each a kick, or a few for a port that falls behind: [`PortIo::flush`]). (A
/// zero-copy device completes on its own: one look, in effect.)
const WHOLE_FLUSHES: usize = 8;

/// Super-frames in a row a port's socket may refuse (other than for lack of room) before the
/// port cuts every later one.
const WHOLE_REFUSALS: u32 = 8;

/// A run of TCP segments of one flow being merged for one port ([`Worker::merge_segment`]).
#[derive(Debug)]
struct Merge {
    egress: u16,
    /// Where a loss is counted: the segments' ingress port, or `egress` for frames another
    /// worker handed over.
    blame: u16,
    net: u16,
    /// The segments carry their network's tag (they came from the trunk).
    tagged: bool,
    /// The first segment, until a second joins it (then both are in `merge_buf`).
    first: Option<XdpDesc>,
    run: coalesce::Run,
}

/// A TCP frame leaving out of another worker's port's socket ([`Worker::send_straight`]): the
/// port, the frame's network, whether it carries the network's tag, and the port its losses are
/// counted on.
#[derive(Debug, Clone, Copy)]
struct Via {
    egress: u16,
    net: u16,
    tagged: bool,
    blame: u16,
}

/// How a TCP frame left out of another worker's port's socket ([`Worker::send_straight`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Straight {
    /// Whole: out of the socket, or handed over whole to the port's worker.
    Whole,
    /// Cut into segments; `crossed` of them handed over to the port's worker.
    Cut { crossed: u32 },
    /// Lost before any of it left (counted as dropped).
    Lost,
}

/// What became of a super-frame sent whole ([`Worker::send_whole`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Whole {
    /// Sent.
    Sent,
    /// Not sent: to be cut instead.
    Cut,
}

/// Unsolicited advertisements sent for each change, and the time between them.
const RA_COPIES: u8 = 3;
const RA_INTERVAL_NS: u64 = 4_000_000_000;

/// Does `snap` filter what port `slot` of network `net` receives: the network has security
/// groups and the port rules?
fn filters(snap: &Snapshot, slot: u16, net: u16) -> bool {
    snap.net(net).is_some_and(|n| n.filtering)
        && snap.port(slot).is_some_and(|p| p.filter.is_some())
}

/// The network (slot and generation) `snap` gives port `slot`, if it is a VM's port, and the
/// port's generation.
fn network_of(snap: &Snapshot, slot: u16) -> Option<(u16, u32, u32)> {
    let port = snap.port(slot)?;
    match port.role {
        Role::Access(net) => Some((net, snap.net(net)?.gen, port.gen)),
        Role::Trunk(_) => None,
    }
}

/// Port `slot` of `snap` as its router advertisements go: its generation, whether it is up, and
/// what it is told (a port coming up is told again: its VM's solicitations went nowhere).
fn advertised(snap: &Snapshot, slot: u16) -> Option<(u32, bool, Option<&crate::ra::RaConfig>)> {
    snap.port(slot)
        .map(|p| (p.gen, p.admin_up, p.ra.as_deref()))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod crew_tests;
