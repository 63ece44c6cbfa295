//! A port on a real interface: one AF_XDP socket per RX queue, the redirect program attached with
//! a BPF link, the sockets registered over the worker's UMEM.
//!
//! # Design
//! * Every RX queue of the interface gets a socket, so no frame bypasses the switch.
//! * XDP is attached natively when the driver allows it, else in generic mode (best effort, like
//!   OVS), but in generic mode first on a veth, where a native program would take TSO from the
//!   guest's end; either can be forced. Sockets bind in copy mode unless zero-copy is forced.
//!   The chosen modes are reported.
//! * A port is opened on any thread (the switch's opener, not the worker): its first socket
//!   registers the worker's UMEM region afresh (each port has its own registration of the same
//!   memory, so no port depends on another's sockets; in 2 MiB pages this takes 0.3 to 0.5 ms),
//!   and binding waits for the kernel's RTNL lock, which attaching programs to other devices
//!   holds for 15 to 30 ms at a time. The worker only adopts the port and calls `start`, which
//!   enters its sockets in the device's map.
//! * The fill ring of each queue is topped up in bulk using our own count of the chunks it holds,
//!   so the kernel's index is not read every loop. Its level starts small and doubles while
//!   traffic uses it, so many idle ports do not hold the UMEM hostage (the kernel never
//!   gives back what sits on a fill ring).
//! * Transmission uses the TX ring of queue 0; copy mode needs a `sendto` per batch.
//! * Sockets bind with `XDP_USE_SG` where the kernel has it and the program is frags-aware: a
//!   frame larger than a chunk (a guest's TSO frame through generic XDP) arrives as a chain of
//!   descriptors, `XDP_PKT_CONTD` on all but the last. `recv` returns whole chains only.
//! * Dropping the port detaches the program (the link fd closes) before closing the sockets.
//! * Closing a port is quick for the worker: it empties the port's map entries (frames pass to
//!   the kernel's stack again) and hands the sockets to a thread of their own, because the
//!   kernel's release of a socket waits for an RCU grace period (5 to 30 ms measured here, on
//!   the worker's every other port before). The port's chunks stay buried in the UMEM until the
//!   sockets are gone, and an open on the same device waits for its release ([`wait_closed`]).
//!   Where a driver or an skb may still use the chunks after the close returns (zero-copy; a
//!   device other than a veth or a tap, which may take a chunk's pages into an skb rather than
//!   copy them, as virtio-net does), they stay buried until the kernel has let go of the queues
//!   too ([`kernel_may_hold_chunks`], [`xsk::queue_free`]).

use std::collections::BTreeMap;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{PortIo, PortMode, Region, ShortcutPort, Umem, VnetHdr, WholeTx, XdpDesc};
use crate::shortcut::Shortcut;
use crate::stats::XdpStats;
use crate::sys::packet::GsoTx;
use crate::sys::{self, bpf, netdev, xsk};

/// Chunks moved to a fill ring at once, at least.
pub const REFILL_BULK: u32 = 128;

/// Which XDP attach mode to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Generic on a veth, where a native program would take TSO from the guest's end (and
    /// native costs as much per frame there, copying either way), on kernels with multi-buffer
    /// sockets (6.6 and later); elsewhere native if the driver supports it, else generic.
    #[default]
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (skb) mode only.
    Generic,
}

/// Which socket bind mode to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindMode {
    /// Copy: works on every device and lets every port share the worker's UMEM.
    #[default]
    Auto,
    /// Copy only.
    Copy,
    /// Zero-copy only (fails on drivers without support, e.g. veth).
    ZeroCopy,
}

/// How to open an AF_XDP port.
#[derive(Debug, Clone)]
pub struct AfXdpSpec {
    /// Interface name.
    pub device: String,
    /// XDP attach mode.
    pub xdp_mode: XdpMode,
    /// Socket bind mode.
    pub bind_mode: BindMode,
    /// Ring sizes of each socket.
    pub rings: xsk::RingSizes,
    /// The device's program, attached ahead by [`prepare`] off the worker (and possibly kept
    /// attached across ports, for a registered device); `open` attaches one itself when there
    /// is none, or it is for another interface index.
    pub prepared: Option<Arc<Prepared>>,
    /// Load a stamping program (each frame's arrival time, in metadata before it or over its
    /// Ethernet addresses: [`bpf::Stamp`]), for a measuring sink; the switch's ports never do.
    pub stamp_arrival: bpf::Stamp,
    /// Send TCP super-frames whole, through a packet socket with a virtio-net header
    /// ([`crate::sys::packet`]); without it they are cut into segments.
    pub whole: bool,
    /// The switch's XDP shortcut ([`crate::shortcut`]): where the program attaches in generic
    /// mode, it is the one with the shortcut in front.
    pub shortcut: Option<Arc<Shortcut>>,
}

impl AfXdpSpec {
    /// Best-effort modes and default rings on `device`.
    pub fn new(device: &str) -> Self {
        AfXdpSpec {
            device: device.to_owned(),
            xdp_mode: XdpMode::Auto,
            bind_mode: BindMode::Auto,
            rings: xsk::RingSizes::default(),
            prepared: None,
            stamp_arrival: bpf::Stamp::Off,
            whole: true,
            shortcut: None,
        }
    }
}

/// What opening a port needs from the kernel besides sockets: the XSKMAP, the program and its
/// attachment to the device. Attaching takes the kernel's RTNL lock and waits for an RCU grace
/// period (15 to 30 ms on a small VM, serialized across devices), so the switch does it on a
/// thread of its own, ahead of the port's sockets.
///
/// Dropping it detaches the program (closing the link); the last holder decides when, and
/// [`drop_later`] does it off the calling thread.
#[derive(Debug)]
pub struct Prepared {
    // Field order is drop order: the link (the attachment) goes first. The link and program
    // are held only to be closed when this is dropped.
    _link: OwnedFd,
    _prog: OwnedFd,
    map: OwnedFd,
    ifindex: u32,
    /// RX queues the map has room for: the device's then, at least [`MAP_QUEUES`].
    room: u32,
    native: bool,
    /// The program attached has the shortcut in front.
    shortcut: bool,
    /// The device's driver (`veth`, `tun`, a NIC's), read once: the lookup takes RTNL.
    driver: Option<String>,
}

impl Prepared {
    /// The interface index the program is attached to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
}

/// The least room a device's XSKMAP has for RX queues: as many as a tap can have (the kernel's
/// `MAX_TAP_QUEUES`), 2 KiB of kernel memory. A device may gain queues after its program is
/// attached (a guest enables more of its virtio-net queues and the hypervisor attaches more of
/// the tap's; `ethtool -L`): the port, opened again on the same program, binds a socket on
/// each queue the map has room for. Frames on a queue beyond it would go to the kernel's stack,
/// as on a queue without a socket (the device monitor warns of it).
pub const MAP_QUEUES: u32 = 256;

/// Creates the device's XSKMAP (an entry per RX queue, [`MAP_QUEUES`] at least) and program
/// and attaches it. Until sockets are bound into the map, the program passes every frame on to
/// the kernel's stack, as if nothing were attached.
pub fn prepare(spec: &AfXdpSpec) -> io::Result<Prepared> {
    let ifindex = netdev::ifindex(&spec.device).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface {}", spec.device),
        )
    })?;
    let room = netdev::rx_queues(&spec.device)
        .map_err(|e| context(e, "queues"))?
        .max(MAP_QUEUES);
    let map = bpf::create_xskmap(room).map_err(|e| context(e, "XSKMAP"))?;
    let plain = bpf::load_redirect_program(&map, spec.stamp_arrival)
        .map_err(|e| context(e, "XDP program"))?;
    // The shortcut forwards in generic mode only: a native redirect into a veth needs an XDP
    // program at the veth's far end, which a guest's end does not have.
    let short = match &spec.shortcut {
        Some(sc) if spec.stamp_arrival == bpf::Stamp::Off => match sc.load_program(&map) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(
                    "{}: the XDP shortcut's program: {e}; the port goes without",
                    spec.device
                );
                None
            }
        },
        _ => None,
    };
    let attach = |native: bool| {
        let (prog, mode) = match native {
            true => (&plain, bpf::XDP_FLAGS_DRV_MODE),
            false => (short.as_ref().unwrap_or(&plain), bpf::XDP_FLAGS_SKB_MODE),
        };
        bpf::attach_xdp(prog, ifindex, mode).map(|link| (link, native))
    };
    let driver = netdev::driver(&spec.device);
    let (link, native) = match spec.xdp_mode {
        XdpMode::Native => attach(true),
        XdpMode::Generic => attach(false),
        // A native program on a veth takes TSO from the guest's end (its every frame then
        // crosses the switch alone); generic mode leaves it, at no more cost per frame there.
        // Only where sockets take frames larger than a chunk (multi-buffer, 6.6 and later):
        // else the guest's TSO frames would be dropped.
        XdpMode::Auto if driver.as_deref() == Some("veth") && sys::kernel_version() >= (6, 6) => {
            attach(false).or_else(|_| attach(true))
        }
        XdpMode::Auto => attach(true).or_else(|_| attach(false)),
    }
    .map_err(|e| context(e, "XDP attach"))?;
    let (prog, shortcut) = match short {
        Some(p) if !native => (p, true),
        _ => (plain, false),
    };
    Ok(Prepared {
        ifindex,
        room,
        map,
        _prog: prog,
        _link: link,
        native,
        shortcut,
        driver,
    })
}

/// Drops a prepared device on a thread of its own when this is its last holder: detaching, like
/// attaching, waits for the kernel's RTNL lock and a grace period.
pub fn drop_later(pre: Arc<Prepared>) {
    if Arc::strong_count(&pre) > 1 {
        // Kept by another holder (a registered device stays attached): nothing to detach.
        return;
    }
    DETACHING.fetch_add(1, Ordering::AcqRel);
    let spawned = std::thread::Builder::new()
        .name("qswitch-detach".into())
        .spawn(move || {
            drop(pre);
            DETACHING.fetch_sub(1, Ordering::AcqRel);
        });
    if let Err(e) = spawned {
        // The closure (and the program with it) was dropped here.
        DETACHING.fetch_sub(1, Ordering::AcqRel);
        tracing::warn!("cannot detach on a thread of its own ({e}); detached here");
    }
}

/// Detaches still running on their threads.
static DETACHING: AtomicUsize = AtomicUsize::new(0);

/// Waits (at most `timeout`) until every program handed to [`drop_later`] is detached and
/// every closed port's sockets are released, so that a switch that shuts down leaves nothing
/// behind. Returns true when none is left.
pub fn wait_detached(timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while DETACHING.load(Ordering::Acquire) > 0 {
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// What a closed port whose sockets are still being released holds up: its device, whose queues
/// read busy to a new socket until then, and its worker's slot (by the worker's UMEM address),
/// whose chunks stay buried until then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Held {
    Device(u32),
    Slot(usize, u16),
}

/// Releases under way, by what they hold up.
static CLOSING: Mutex<BTreeMap<Held, usize>> = Mutex::new(BTreeMap::new());
/// Signalled whenever a release in [`CLOSING`] ends.
static CLOSED: Condvar = Condvar::new();

fn closing() -> std::sync::MutexGuard<'static, BTreeMap<Held, usize>> {
    CLOSING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits (at most `timeout`) until no closed port still releasing its sockets holds up interface
/// `ifindex` or slot `slot` of the worker whose UMEM is `region`, so that a new port there binds
/// its queues and its worker adopts it without waiting. Returns true if none does.
pub fn wait_closed(ifindex: u32, region: &Region, slot: u16, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    let keys = [Held::Device(ifindex), Held::Slot(region.addr, slot)];
    let mut held = closing();
    while keys.iter().any(|k| held.contains_key(k)) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        held = CLOSED
            .wait_timeout(held, left)
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0);
    }
    true
}

/// A closed port's sockets and program, released when this is dropped: the sockets first (then,
/// once the kernel has let go of their queues where it may hold chunks after the close, see
/// [`kernel_may_hold_chunks`], `released` is set), the program next (when this was its last
/// holder), and its entries in [`CLOSING`] last.
struct Release {
    held: Vec<Held>,
    queues: Vec<Queue>,
    /// The interface and queues to see free ([`xsk::queue_free`]) before `released` is set.
    wait: Option<(u32, Vec<u32>)>,
    pre: Option<Arc<Prepared>>,
    released: Arc<AtomicBool>,
}

/// How long a release waits for the kernel to let go of a closed port's queues (its deferred
/// work waits for RTNL, which a storm of attaches can hold for seconds) before the port's
/// chunks go back to the pool all the same.
const KERNEL_LETS_GO: Duration = Duration::from_secs(10);

/// May the kernel still use a port's chunks after its sockets' close returned, until it
/// releases their buffer pool (deferred work: [`xsk::queue_free`])? In zero-copy mode the
/// driver receives into the chunks it took from the fill ring until then; on a device that
/// takes a transmitted chunk's pages into its skb rather than copying them (virtio-net asks for
/// that), the skb may still be queued. A veth or a tap in copy mode copies both ways, and
/// nothing copies into a socket's chunks once its close returned.
fn kernel_may_hold_chunks(mode: PortMode, driver: Option<&str>) -> bool {
    mode == PortMode::NativeZeroCopy || !matches!(driver, Some("veth" | "tun"))
}

/// Releases that waited for the kernel to let go of their queues, since the process started.
static KERNEL_WAITS: AtomicUsize = AtomicUsize::new(0);

/// How many closed ports' releases waited for the kernel to let go of their queues
/// ([`kernel_may_hold_chunks`]) since the process started.
pub fn releases_waited_for_kernel() -> usize {
    KERNEL_WAITS.load(Ordering::Relaxed)
}

/// Waits (at most `timeout`) until the kernel has let go of queues `queues` of interface
/// `ifindex`: a probe bind there no longer reads busy ([`xsk::queue_free`]), or a socket of this
/// process bound there since (a port opened on it again, whose socket the probe would then read
/// as the old one: a bind succeeds only once the old pool is gone). Probes every millisecond at
/// first, then less often, up to every 16 ms (each takes RTNL). A probe that finds the device or
/// the queue gone counts as free; any other error is tried again. False on a timeout.
fn wait_queues_free(ifindex: u32, queues: &[u32], timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    for &q in queues {
        let binds = xsk::binds(ifindex, q);
        let mut pause = Duration::from_millis(1);
        while xsk::binds(ifindex, q) == binds {
            match xsk::queue_free(ifindex, q) {
                Ok(true) => break,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENODEV | libc::ENXIO | libc::EINVAL)
                    ) =>
                {
                    break
                }
                Ok(false) | Err(_) if Instant::now() >= end => return false,
                Ok(false) => {}
                Err(e) => tracing::debug!("queue {q} of interface {ifindex}: probe failed: {e}"),
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(16));
        }
    }
    true
}

impl Release {
    fn new(held: Vec<Held>, queues: Vec<Queue>, pre: Arc<Prepared>) -> Self {
        let mut closing = closing();
        for &k in &held {
            *closing.entry(k).or_insert(0) += 1;
        }
        drop(closing);
        DETACHING.fetch_add(1, Ordering::AcqRel);
        Release {
            held,
            queues,
            wait: None,
            pre: Some(pre),
            released: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        // Closing the sockets unbinds them; the kernel lets go of their chunks when it releases
        // their buffer pools, which may come later.
        self.queues.clear();
        if let Some((ifindex, queues)) = self.wait.take() {
            KERNEL_WAITS.fetch_add(1, Ordering::Relaxed);
            let start = Instant::now();
            if wait_queues_free(ifindex, &queues, KERNEL_LETS_GO) {
                tracing::debug!(
                    "interface {ifindex}: the kernel let go of a closed port's queues after {:?}",
                    start.elapsed()
                );
            } else {
                tracing::warn!(
                    "the kernel still holds a closed port's queues on interface {ifindex} after \
                     {KERNEL_LETS_GO:?}: its chunks go back to the pool all the same"
                );
            }
        }
        self.released.store(true, Ordering::Release);
        drop(self.pre.take());
        let mut closing = closing();
        for k in &self.held {
            if let Some(n) = closing.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    closing.remove(k);
                }
            }
        }
        drop(closing);
        CLOSED.notify_all();
        DETACHING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Closes a port that was opened but never started (a request withdrawn meanwhile) off this
/// thread, holding up its device until its sockets are released. It holds no chunk.
pub fn discard(port: AfXdpPort) {
    let AfXdpPort {
        ifindex,
        pre,
        queues,
        ..
    } = port;
    release_later(Release::new(vec![Held::Device(ifindex)], queues, pre));
}

/// Releases a closed port on a thread of its own (or here, if no thread can be made).
fn release_later(release: Release) {
    let spawned = std::thread::Builder::new()
        .name("qswitch-close".into())
        .spawn(move || drop(release));
    if let Err(e) = spawned {
        // The closure, and the release with it, was dropped: released here.
        tracing::warn!("cannot close a port's sockets on a thread of their own ({e}); closed here");
    }
}

struct Queue {
    sock: xsk::XskSocket,
    /// Chunks on the fill ring or the RX ring: given to the kernel, not yet received.
    in_fill: u32,
    /// How many chunks this queue's fill ring is kept at: starts small and doubles (up to the
    /// worker's cap) whenever traffic has used more than half of it, so idle ports hold few
    /// frames and busy ones many. Frames on a fill ring cannot be taken back.
    want: u32,
    /// The first chunks of a multi-buffer frame whose last chunk did not fit in the caller's
    /// batch: handed out first next time, so that `recv` only ever returns whole frames.
    carry: Vec<XdpDesc>,
}

/// Most chunks one frame may span: a 64 KB TSO frame in 1792-byte chunks takes 37. A chain
/// this long cannot come from the kernel and would never fit the worker's batch (64); its
/// chunks are returned to the pool.
const MAX_CHAIN: usize = 64;

/// Fill level of a new queue.
const INITIAL_FILL: u32 = 64;

/// An open AF_XDP port.
pub struct AfXdpPort {
    slot: u16,
    ifindex: u32,
    mode: PortMode,
    tx_checksum: bool,
    /// The packet socket that sends super-frames whole, on the devices that take them.
    whole: Option<Arc<GsoTx>>,
    // Field order is drop order: the program (when this is its last holder) goes first, then
    // the sockets.
    pre: Arc<Prepared>,
    queues: Vec<Queue>,
    rr: usize,
    tx_pending: bool,
    /// Frames its device completed in the last round ([`super::kick_through_budget`]).
    done: u32,
    buf: Vec<u64>,
    descs: Vec<XdpDesc>,
}

impl core::fmt::Debug for AfXdpPort {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AfXdpPort")
            .field("slot", &self.slot)
            .field("ifindex", &self.ifindex)
            .field("queues", &self.queues.len())
            .field("mode", &self.mode)
            .finish()
    }
}

impl AfXdpPort {
    /// The interface index the port was opened on.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Would an open on `device` now make these sockets: the same interface, and a socket for
    /// each RX queue it has (up to its map's size, as `open` binds)?
    pub fn fits(&self, device: &str) -> bool {
        netdev::ifindex(device) == Some(self.ifindex)
            && netdev::rx_queues(device)
                .is_ok_and(|n| n.min(self.pre.room) == self.queues.len() as u32)
    }

    /// A port bound ahead of its plug, given the slot it serves in: it was opened but never
    /// started, so it holds no chunk of any slot yet.
    pub fn into_slot(mut self, slot: u16) -> AfXdpPort {
        debug_assert!(self.queues.iter().all(|q| q.in_fill == 0));
        self.slot = slot;
        self
    }
}

fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// The other workers send whole frames through the port's packet socket: `sendmsg` on one
/// socket from several threads is safe, each call builds its own skb.
impl WholeTx for GsoTx {
    fn send(&self, hdr: &VnetHdr, parts: &[&[u8]]) -> io::Result<()> {
        GsoTx::send(self, hdr, parts)
    }
}

impl PortIo for AfXdpPort {
    type Spec = AfXdpSpec;

    fn open(spec: &AfXdpSpec, slot: u16, region: &Region) -> io::Result<Self> {
        // The program prepared ahead, if it is for the device as it is now (its link holds the
        // device's XDP hook: another program could not attach while it is kept).
        let current = netdev::ifindex(&spec.device);
        let pre = match spec.prepared.clone() {
            Some(p) if Some(p.ifindex) == current => p,
            _ => Arc::new(prepare(spec)?),
        };
        // A device is announced before it is finished (a veth sets its queue count right after
        // registering both ends): it may have fewer queues now than when its program was
        // prepared (its map has room to spare). A socket for each queue it has now, up to the
        // map's size.
        let nq = netdev::rx_queues(&spec.device)
            .map_err(|e| context(e, "queues"))?
            .min(pre.room);
        let (ifindex, native, driver) = (pre.ifindex, pre.native, pre.driver.clone());
        // The port's first socket registers the region and chooses the mode; its other sockets
        // share that registration and inherit the mode. `Auto` binds in copy mode, which every
        // device supports; zero-copy must be asked for. Multi-buffer too, where the kernel has
        // it (6.6 and later): frames larger than a chunk (a guest's TSO frames through generic
        // XDP) arrive as chains instead of being dropped.
        let flags = xsk::XDP_USE_NEED_WAKEUP
            | xsk::XDP_USE_SG
            | match spec.bind_mode {
                BindMode::Auto | BindMode::Copy => xsk::XDP_COPY,
                BindMode::ZeroCopy => xsk::XDP_ZEROCOPY,
            };
        let mut queues: Vec<Queue> = Vec::with_capacity(nq as usize);
        for q in 0..nq {
            let shared = queues.first().map(|f| f.sock.raw_fd());
            let sock = xsk::XskSocket::open(region, shared, ifindex, q, spec.rings, flags)
                .or_else(|e| match e.raw_os_error() {
                    // A kernel or driver without multi-buffer sockets.
                    Some(libc::EINVAL | libc::EOPNOTSUPP) if shared.is_none() => {
                        let flags = flags & !xsk::XDP_USE_SG;
                        xsk::XskSocket::open(region, None, ifindex, q, spec.rings, flags)
                    }
                    _ => Err(e),
                })
                // A queue still busy (the device's previous socket is being released) fails
                // the open as `ResourceBusy`: the caller retries. So does a queue the device no
                // longer has (read while the device was still being created): the retry
                // prepares for the queues it has now.
                .map_err(|e| {
                    let gone = e.raw_os_error() == Some(libc::EINVAL)
                        && netdev::rx_queues(&spec.device).is_ok_and(|n| n <= q);
                    let e = if gone {
                        io::Error::new(io::ErrorKind::ResourceBusy, "its queue count changed")
                    } else {
                        e
                    };
                    context(e, &format!("AF_XDP bind queue {q}"))
                })?;
            queues.push(Queue {
                sock,
                in_fill: 0,
                want: INITIAL_FILL,
                carry: Vec::with_capacity(MAX_CHAIN),
            });
        }
        let zc = queues[0].sock.is_zerocopy();
        let mode = match (native, zc) {
            (true, true) => PortMode::NativeZeroCopy,
            (true, false) => PortMode::NativeCopy,
            (false, _) => PortMode::GenericCopy,
        };
        // Partial checksums are left for the kernel to finish on transmit where the UMEM has
        // room for the request and the socket builds an skb (copy mode), and only towards the
        // devices that hand such an skb on as a guest's own stack leaves it: veth (to its peer,
        // which trusts it) and tun/tap (to the VMM, as virtio-net's "needs checksum"). A NIC's
        // driver may read fields a socket's skb lacks (its protocol, its network header):
        // frames to it are finished by the switch.
        let tx_checksum = queues[0].sock.tx_metadata()
            && mode != PortMode::NativeZeroCopy
            && matches!(driver.as_deref(), Some("veth" | "tun"));
        // TCP super-frames leave whole, through a packet socket with a virtio-net header: a veth
        // hands the GSO skb to its peer as it is, a tap to the VMM, a NIC segments it in its
        // hardware (TSO) or the kernel does on transmit. A port whose socket the kernel refused
        // gets their segments.
        let whole = spec
            .whole
            .then(|| {
                GsoTx::open(ifindex)
                    .map(Arc::new)
                    .map_err(|e| {
                        tracing::warn!("{}: super-frames will be segmented: {e}", spec.device)
                    })
                    .ok()
            })
            .flatten();
        Ok(AfXdpPort {
            slot,
            ifindex,
            mode,
            tx_checksum,
            whole,
            pre,
            queues,
            rr: 0,
            tx_pending: false,
            done: 0,
            buf: vec![0; spec.rings.fill.max(spec.rings.comp) as usize],
            descs: Vec::with_capacity(spec.rings.tx as usize),
        })
    }

    fn start(&mut self, umem: &mut Umem, target: u32) -> io::Result<()> {
        self.refill(umem, target);
        for q in &self.queues {
            bpf::map_set(&self.pre.map, q.sock.queue(), q.sock.raw_fd())
                .map_err(|e| context(e, "XSKMAP update"))?;
        }
        Ok(())
    }

    fn mode(&self) -> PortMode {
        self.mode
    }

    fn queues(&self) -> u32 {
        self.queues.len() as u32
    }

    fn queue_room(&self) -> u32 {
        self.pre.room
    }

    fn wait_fds(&self, out: &mut Vec<libc::pollfd>) -> bool {
        out.extend(
            self.queues
                .iter()
                .map(|q| crate::sys::wake::readable(q.sock.raw_fd())),
        );
        true
    }

    #[inline]
    fn recv(&mut self, umem: &mut Umem, out: &mut [XdpDesc]) -> usize {
        let nq = self.queues.len();
        let mut n = 0;
        for i in 0..nq {
            // Start with a different queue each time so that none starves.
            let q = &mut self.queues[(self.rr + i) % nq];
            let frame_start = n;
            if q.carry.len() > out.len() - n {
                continue;
            }
            out[n..n + q.carry.len()].copy_from_slice(&q.carry);
            n += q.carry.len();
            q.carry.clear();
            let got = q.sock.rx.pop(&mut out[n..]);
            q.in_fill -= (got as u32).min(q.in_fill);
            let (start, end) = (n, n + got);
            // Where the frame being read starts (the carried chunks begin one), and whether one
            // of its chunks was refused.
            let (mut chain, mut broken) = (frame_start, false);
            for j in start..end {
                let d = out[j];
                // A descriptor for a chunk this port did not hold cannot happen with a correct
                // kernel; `take` refuses it, and the whole frame it belongs to is dropped.
                if umem.take(d.addr, self.slot) {
                    if broken {
                        umem.release(d.addr);
                    } else {
                        out[n] = d;
                        n += 1;
                    }
                } else {
                    broken = true;
                    for c in &out[chain..n] {
                        umem.release(c.addr);
                    }
                    n = chain;
                }
                if d.options & xsk::XDP_PKT_CONTD == 0 {
                    (chain, broken) = (n, false);
                }
            }
            // The kernel publishes a frame's chunks together, but the batch may have cut the
            // last frame short: keep its first chunks for next time.
            let whole = out[frame_start..n]
                .iter()
                .rposition(|d| d.options & xsk::XDP_PKT_CONTD == 0)
                .map_or(frame_start, |p| frame_start + p + 1);
            q.carry.extend_from_slice(&out[whole..n]);
            n = whole;
            if q.carry.len() >= MAX_CHAIN {
                // A chain this long cannot come from the kernel and could never be handed out.
                for d in q.carry.drain(..) {
                    umem.release(d.addr);
                }
            }
            if n == out.len() {
                break;
            }
        }
        self.rr = self.rr.wrapping_add(1);
        n
    }

    #[inline]
    fn tx_room(&mut self) -> u32 {
        self.queues[0].sock.tx.free(64)
    }

    #[inline]
    fn send(&mut self, umem: &mut Umem, descs: &[XdpDesc]) -> usize {
        let room = self.tx_room() as usize;
        let take = descs.len().min(room);
        self.descs.clear();
        for d in &descs[..take] {
            if umem.give(d.addr, self.slot) {
                self.descs.push(*d);
            }
        }
        // Room was checked above, so the ring takes every descriptor.
        let pushed = self.queues[0].sock.tx.push(&self.descs);
        self.tx_pending |= pushed > 0;
        take
    }

    #[inline]
    fn flush(&mut self) -> io::Result<()> {
        if self.tx_pending {
            // In copy mode a kick sends a budget of frames (256 where the kernel takes the
            // option, else 32: then kicked again while told to). A zero-copy driver sends on
            // its own until it asks for a kick. Either way, what is left on the ring is looked
            // at again next round.
            // What is left on the ring after the last kick, as that kick read it (the kernel's
            // consumer index read once a kick, not again here).
            let sock = &mut self.queues[0].sock;
            let left = if self.mode == PortMode::NativeZeroCopy {
                sock.wake_tx(false)?.0
            } else {
                let (mut left, budget) = (sock.tx.outstanding(), sock.tx_budget());
                if left > 0 {
                    let done = self.done;
                    super::kick_through_budget(left, budget, done, || {
                        let (now_left, again) = sock.wake_tx(true)?;
                        left = now_left;
                        Ok(again)
                    })?;
                }
                left
            };
            self.tx_pending = left > 0;
        }
        Ok(())
    }

    fn kick(&mut self) -> io::Result<()> {
        self.tx_pending = self.queues[0].sock.wake_tx(true)?.0 > 0;
        Ok(())
    }

    fn tx_leftover(&self) -> bool {
        self.tx_pending
    }

    fn tx_checksum(&self) -> bool {
        self.tx_checksum
    }

    fn takes_whole(&self) -> bool {
        self.whole.is_some()
    }

    fn send_whole(&mut self, hdr: &VnetHdr, parts: &[&[u8]]) -> io::Result<()> {
        match &self.whole {
            Some(tx) => tx.send(hdr, parts),
            None => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    fn whole_tx(&self) -> Option<Arc<dyn WholeTx>> {
        self.whole.clone().map(|tx| tx as Arc<dyn WholeTx>)
    }

    fn shortcut(&self) -> Option<ShortcutPort> {
        Some(ShortcutPort {
            ifindex: self.ifindex,
            takes: self.pre.shortcut,
            receives: self.pre.driver.as_deref() == Some("veth"),
        })
    }

    fn drained(&mut self) -> bool {
        !self.tx_pending && self.queues[0].sock.tx.outstanding() == 0
    }

    #[inline]
    fn reclaim(&mut self, umem: &mut Umem) -> usize {
        let mut total = 0;
        let slot = self.slot;
        let buf = &mut self.buf;
        for q in &mut self.queues {
            let n = q.sock.comp.pop(buf);
            for &a in &buf[..n] {
                umem.complete(a, slot);
            }
            total += n;
        }
        self.done = u32::try_from(total).unwrap_or(u32::MAX);
        total
    }

    #[inline]
    fn refill(&mut self, umem: &mut Umem, target: u32) {
        let slot = self.slot;
        let cap = target.max(1);
        for q in &mut self.queues {
            q.want = q.want.min(cap);
            let bulk = (q.want / 2).clamp(1, REFILL_BULK);
            if q.in_fill + bulk > q.want {
                // A zero-copy driver that found the fill ring empty (before the last refill
                // reached it: the flag read then may have been older) waits for a kick, even
                // when there is nothing more to give it, while chunks wait on the ring. (Not
                // when the ring is empty: a driver whose own ring is not full keeps the flag
                // up, and each kick would only raise it again. Copy mode never raises it.)
                if q.sock.fill.needs_wakeup() && q.sock.fill.outstanding() > 0 {
                    q.sock.kick_rx();
                }
                continue;
            }
            // Traffic took more than half of what the fill ring held before we came back: give
            // it twice as much. (Read the kernel's index only here, once per bulk refill.)
            if q.sock.fill.outstanding() < q.want / 2 {
                q.want = (q.want * 2).min(cap);
            }
            let target = q.want;
            let want = q.sock.fill.free(target - q.in_fill).min(target - q.in_fill) as usize;
            let mut n = 0;
            while n < want.min(self.buf.len()) {
                match umem.alloc_for(slot) {
                    Some(a) => {
                        self.buf[n] = a;
                        n += 1;
                    }
                    None => break,
                }
            }
            // `want` was bounded by the ring's free space, so every chunk fits.
            let pushed = q.sock.fill.push(&self.buf[..n]);
            for &a in &self.buf[pushed..n] {
                if umem.take(a, slot) {
                    umem.release(a);
                }
            }
            q.in_fill += pushed as u32;
            if q.sock.fill.needs_wakeup() {
                q.sock.kick_rx();
            }
        }
    }

    fn fill_depth(&self) -> u32 {
        self.queues.iter().map(|q| q.want).max().unwrap_or(0)
    }

    fn xdp_stats(&self) -> XdpStats {
        let mut s = XdpStats::default();
        for q in &self.queues {
            if let Ok(x) = q.sock.statistics() {
                s += x;
            }
        }
        s
    }

    fn close(self, umem: &mut Umem) {
        let AfXdpPort {
            slot,
            ifindex,
            mode,
            pre,
            queues,
            ..
        } = self;
        // With the map empty the program redirects nothing: frames pass to the kernel's stack.
        for q in 0..queues.len() as u32 {
            let _ = bpf::map_clear(&pre.map, q);
        }
        // Chunks of a frame cut short by the last batch were taken from the kernel already.
        for d in queues.iter().flat_map(|q| &q.carry) {
            umem.release(d.addr);
        }
        let held = vec![Held::Device(ifindex), Held::Slot(umem.region().addr, slot)];
        let wait = kernel_may_hold_chunks(mode, pre.driver.as_deref())
            .then(|| (ifindex, queues.iter().map(|q| q.sock.queue()).collect()));
        let mut release = Release::new(held, queues, pre);
        release.wait = wait;
        umem.bury(slot, Arc::clone(&release.released));
        release_later(release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_wait_for_the_kernel_where_it_may_still_use_them_after_the_close() {
        // Copy mode on a veth or a tap: copied both ways, nothing left once the close returns.
        for driver in ["veth", "tun"] {
            for mode in [PortMode::GenericCopy, PortMode::NativeCopy] {
                assert!(!kernel_may_hold_chunks(mode, Some(driver)), "{driver}");
            }
        }
        // Zero-copy anywhere; any other device (virtio-net lends transmitted pages to its
        // skbs), or one whose driver could not be read.
        assert!(kernel_may_hold_chunks(
            PortMode::NativeZeroCopy,
            Some("veth")
        ));
        for driver in [Some("virtio_net"), Some("ice"), Some("dummy"), None] {
            for mode in [PortMode::GenericCopy, PortMode::NativeCopy] {
                assert!(kernel_may_hold_chunks(mode, driver), "{driver:?}");
            }
        }
    }
}
