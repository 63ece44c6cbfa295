//! The control-side handle of the data plane: applies configurations, opens and closes ports on
//! real interfaces, watches their devices, and answers status, counter and MAC-table queries.
//!
//! # Design
//! The switch keeps the desired networks and ports by id. [`Switch::update`] changes some of
//! them, [`Switch::sync`] replaces them all and [`Switch::apply`] does the same after checking
//! that a whole configuration (the TOML file's) is consistent. Each item is checked on its own:
//! a network whose VLAN another network holds, or a port whose device another port holds, whose
//! network is not forwarded, or that finds no free slot, is *refused* (reported in
//! [`PortStatus::error`] and the log) while everything else goes on. A change costs what it
//! changes: the forwarding [`Snapshot`] the worker runs with holds the networks and only the
//! *placed* ports (those whose device exists on this host, each with a stable slot), so desired
//! ports whose devices live elsewhere or do not exist yet cost nothing on the packet path.
//!
//! After a change the switch sends the worker the difference: ports to close, the snapshot, ports
//! to open. It never waits for the worker. A monitor thread, woken by the kernel's link events
//! (rtnetlink) as soon as an interface appears, changes or goes, and at least every 100 ms,
//! checks that each placed port's device still exists with the same index (a port whose
//! interface disappeared is closed and reported DOWN, and opened again when the interface comes
//! back) and looks through the host's interfaces (one directory read) for the devices of desired
//! ports not placed yet. Shutdown
//! (drop, or [`Switch::shutdown`]) closes every port: programs detach and sockets close. If the
//! process is killed instead, the kernel closes the fds and the BPF links detach by themselves.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::acl::{AddrSet, AddrSets};
use crate::config::{
    ConfigError, NetworkConfig, PortConfig, PortRole, SlotMap, Snapshot, SwitchConfig, MAX_VLAN,
    NONE,
};
use crate::conntrack::Connection;
use crate::fdb::MacTable;
use crate::port::afxdp::{self, AfXdpPort, AfXdpSpec, BindMode, Prepared, XdpMode};
use crate::port::{PortIo, PortMode, Region};
use crate::shortcut::Shortcut;
use crate::stats::{PortStats, WorkerReading, WorkerStats};
use crate::sys::netdev;
use crate::sys::umem::Accounting;
use crate::sys::wake::Wake;
use crate::sys::xsk::RingSizes;
use crate::wire::Mac;
use crate::worker::{self, Command, LinkState, PollMode, PortShared, Worker, WorkerConfig};

/// How to run the switch.
#[derive(Debug, Clone, Default)]
pub struct SwitchOptions {
    /// Worker parameters (UMEM size, aging, poll mode).
    pub worker: WorkerConfig,
    /// XDP attach mode for every port.
    pub xdp_mode: XdpMode,
    /// Socket bind mode for every port.
    pub bind_mode: BindMode,
    /// Ring sizes.
    pub rings: RingSizes,
    /// Pin the workers to CPUs from this one on (worker `i` to `cpu + i`).
    pub cpu: Option<usize>,
    /// Poll-mode workers to run; 0: one per CPU the process may use.
    pub workers: usize,
    /// Forward known unicast between plain VM ports inside XDP ([`crate::shortcut`]): the
    /// workers install what they decided into the ports' programs.
    pub xdp_shortcut: bool,
}

impl SwitchOptions {
    /// The number of workers these options run: `workers`, or one per CPU the process may use
    /// (at least 1, at most 64).
    pub fn worker_count(&self) -> usize {
        let n = if self.workers == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            self.workers
        };
        n.clamp(1, 64)
    }
}

/// A port as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortStatus {
    /// Port id.
    pub id: String,
    /// Host device.
    pub device: String,
    /// Administrative state from the configuration.
    pub admin_up: bool,
    /// Whether the device is open.
    pub link: LinkState,
    /// How frames move.
    pub mode: PortMode,
    /// Refused by the switch (see `error`): a conflict or a limit, not a missing device.
    pub refused: bool,
    /// Why the port is not open, if it is not.
    pub error: Option<String>,
    /// The worker that serves it, while it is placed.
    pub worker: Option<u16>,
    /// Whether its device exists on this host.
    pub present: bool,
    /// Whether its transmit is stalled now: its TX ring short of room for the stall time,
    /// frames beyond its room dropped (`tx_stalled`) until it has room again.
    pub tx_stalled: bool,
}

impl PortStatus {
    /// Up, open and forwarding.
    pub fn is_forwarding(&self) -> bool {
        self.admin_up && self.link == LinkState::Up
    }
}

/// A port's state as a gauge shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortState {
    /// Administratively up, open and forwarding.
    Up,
    /// Administratively up, but its device is absent or not open yet.
    Down,
    /// Administratively down (on purpose).
    AdminDown,
    /// Refused by the switch, or its device failed to open or to send.
    Error,
}

impl PortState {
    /// Every state, in gauge order.
    pub const ALL: [PortState; 4] = [
        PortState::Up,
        PortState::Down,
        PortState::AdminDown,
        PortState::Error,
    ];

    /// Its name as a label value.
    pub fn name(self) -> &'static str {
        match self {
            PortState::Up => "up",
            PortState::Down => "down",
            PortState::AdminDown => "admin_down",
            PortState::Error => "error",
        }
    }
}

/// A port as an exporter reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct PortObservation {
    /// Port id.
    pub id: String,
    /// Host device.
    pub device: String,
    /// Network id; `None` for an uplink.
    pub network: Option<String>,
    /// Up, down or in error.
    pub state: PortState,
    /// Its transmit is stalled now ([`PortStatus::tx_stalled`]).
    pub tx_stalled: bool,
    /// Its counters (zeros while not placed).
    pub stats: PortStats,
}

/// A forwarded network as an exporter reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkObservation {
    /// Network id.
    pub id: String,
    /// Its VLAN on its physical network's uplink (0: flat or local).
    pub vlan: u16,
    /// Its physical network (`None`: local).
    pub physnet: Option<String>,
    /// Live entries of its MAC table (at most 100 ms old).
    pub mac_entries: u32,
    /// Its learning limit.
    pub mac_limit: u32,
}

/// One reading of everything an exporter reports; see [`Switch::observe`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// Every desired port, sorted by id.
    pub ports: Vec<PortObservation>,
    /// Every forwarded network, sorted by id.
    pub networks: Vec<NetworkObservation>,
    /// Each worker's statistics, by worker index.
    pub workers: Vec<WorkerReading>,
}

/// One MAC table entry with the port's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacTableEntry {
    /// Address.
    pub mac: Mac,
    /// Port id.
    pub port: String,
    /// Seconds since last seen.
    pub age_secs: u32,
    /// Static entry.
    pub is_static: bool,
}

struct PortHandle {
    shared: Arc<PortShared>,
    /// Interface index the open request was made for; `None` when not requested.
    requested: Option<u32>,
    last_attempt: Option<Instant>,
    /// Open requests sent; compared with the worker's count of requests carried out.
    sent: u64,
    /// The worker that serves the port while it is placed.
    worker: u16,
    /// What the port adds to its worker's load: its device's RX queues (each gets a socket the
    /// worker polls), at least 1.
    weight: u32,
    /// Whether the device was seen with more RX queues than its map has room for (warned once).
    over_room: bool,
}

impl PortHandle {
    fn new(shared: PortShared, worker: u16, weight: u32) -> Self {
        PortHandle {
            shared: Arc::new(shared),
            requested: None,
            last_attempt: None,
            sent: 0,
            worker,
            weight,
            over_room: false,
        }
    }
}

/// A desired network and whether it forwards.
struct NetEntry {
    cfg: NetworkConfig,
    /// Why it is not forwarded, if it is not.
    refused: Option<String>,
}

/// A desired port.
struct PortEntry {
    cfg: PortConfig,
    /// Why it is not forwarded, if it is not (its own conflicts, not a missing device).
    refused: Option<String>,
    /// Present while the port is placed: it has a slot and the worker may hold it open.
    handle: Option<PortHandle>,
    /// The MTU it runs with: the configured one, or its interface's when placed.
    mtu: Option<u32>,
}

impl PortEntry {
    /// Opened, or failed to open for good, or not asked to open.
    fn settled(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| {
            let state = h.shared.state();
            h.requested.is_none()
                || !(state == LinkState::Closed
                    || (state == LinkState::OpenFailed && h.shared.busy()))
        })
    }
}

/// Which items to add, change or remove. Items are matched by id; an item given again replaces
/// the earlier one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigDelta {
    /// Networks added or changed.
    pub networks: Vec<NetworkConfig>,
    /// Ids of networks removed.
    pub removed_networks: Vec<String>,
    /// Ports added or changed.
    pub ports: Vec<PortConfig>,
    /// Ids of ports removed.
    pub removed_ports: Vec<String>,
    /// Address sets (of remote security groups) added or changed, by group id.
    pub address_sets: Vec<(String, Arc<AddrSet>)>,
    /// Ids of address sets removed.
    pub removed_address_sets: Vec<String>,
}

impl ConfigDelta {
    /// True when it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
            && self.removed_networks.is_empty()
            && self.ports.is_empty()
            && self.removed_ports.is_empty()
            && self.address_sets.is_empty()
            && self.removed_address_sets.is_empty()
    }
}

#[derive(Default)]
struct State {
    networks: HashMap<String, NetEntry>,
    ports: HashMap<String, PortEntry>,
    /// VLAN id → the forwarded network holding it.
    /// Segment (physical network, VLAN id or 0 for untagged) → the forwarded network holding
    /// it. Local networks hold none.
    vlans: HashMap<(String, u16), String>,
    /// Device → the accepted port holding it.
    devices: HashMap<String, String>,
    /// Ports whose own checks failed, re-examined when something is released.
    refused: HashSet<String>,
    /// Ports with a slot.
    placed: HashSet<String>,
    nets: SlotMap,
    slots: SlotMap,
    version: u64,
    /// Address sets of remote security groups.
    address_sets: Arc<AddrSets>,
    /// Moves with every change of a port's rules or of an address set.
    policy_epoch: u64,
    /// RX queues of the placed ports, per worker (its length is the number of workers).
    load: Vec<u32>,
    /// Sockets bound ahead on registered devices that no placed port holds, by device.
    ahead: HashMap<String, BoundAhead>,
    /// Devices whose sockets are being bound ahead, with the worker and the RX queues they are
    /// for (counted as that worker's load while they are bound ahead).
    binding: HashMap<String, (u16, u32)>,
    /// Registered devices whose sockets could not be bound ahead, with the interface index it
    /// failed on: tried again only once the device is re-created.
    unbindable: HashMap<String, u32>,
    /// Where the device monitor's next look at the placed ports' queue counts begins
    /// ([`QUEUE_LOOKS`] a look).
    queue_look: usize,
}

/// Placed ports whose devices' RX queues the monitor counts a look (every 100 ms), in turn: a
/// device that gained queues is seen within a second up to 640 ports (a count reads a sysfs
/// folder, a few microseconds).
const QUEUE_LOOKS: usize = 64;

/// A registered device's sockets, bound ahead of its port on a worker's UMEM and not started
/// (not in the device's map: frames pass to the kernel's stack, and no chunk is given). Binding
/// takes 5 to 15 ms on this project's 2-CPU test machine, most of it the kernel allocating and
/// zeroing the socket's buffer pool (one descriptor per chunk of the worker's UMEM: 3.5 MiB of
/// kernel memory per RX queue with the default 32 768 chunks, held while the device stays
/// registered); a plug on the device adopts these instead of binding.
struct BoundAhead {
    worker: u16,
    port: AfXdpPort,
}

/// The most ports the snapshot can hold (slots are 16 bits, one value marks "none").
const MAX_SLOTS: usize = NONE as usize;

impl State {
    /// Accepts or refuses a network on its own merits (its VLAN).
    fn admit_network(&mut self, id: &str) {
        let Some(n) = self.networks.get_mut(id) else {
            return;
        };
        let vlan = n.cfg.vlan;
        n.refused = match &n.cfg.physnet {
            _ if vlan > MAX_VLAN => Some(format!("VLAN {vlan} is outside 1..=4094")),
            None if vlan != 0 => Some(format!("a local network has no VLAN (got {vlan})")),
            None => None,
            Some(physnet) => {
                let segment = (physnet.clone(), vlan);
                match self.vlans.get(&segment) {
                    Some(holder) if holder != id => Some(if vlan == 0 {
                        format!("the untagged segment of {physnet} is held by network {holder}")
                    } else {
                        format!("VLAN {vlan} of {physnet} is held by network {holder}")
                    }),
                    _ => {
                        self.vlans.insert(segment, id.to_owned());
                        None
                    }
                }
            }
        };
        if let Some(reason) = &n.refused {
            tracing::warn!("network {id} is not forwarded: {reason}");
        }
    }

    fn release_network(&mut self, id: &str, cfg: &NetworkConfig) {
        if let Some(physnet) = &cfg.physnet {
            let segment = (physnet.clone(), cfg.vlan);
            if self.vlans.get(&segment).is_some_and(|h| h == id) {
                self.vlans.remove(&segment);
            }
        }
    }

    /// Accepts or refuses a port on its own merits: its network forwards, its device is free.
    fn admit_port(&mut self, id: &str) {
        let Some(p) = self.ports.get(id) else {
            return;
        };
        let reason = match &p.cfg.role {
            PortRole::Access { network } => match self.networks.get(network) {
                None => Some(format!("network {network} does not exist")),
                Some(n) if n.refused.is_some() => {
                    Some(format!("network {network} is not forwarded"))
                }
                Some(_) => None,
            },
            // One uplink per physical network (two would make a loop).
            PortRole::Trunk { physnet } => self
                .ports
                .iter()
                .find(|(other, o)| {
                    other.as_str() != id
                        && o.refused.is_none()
                        && matches!(&o.cfg.role, PortRole::Trunk { physnet: q } if q == physnet)
                })
                .map(|(other, _)| format!("physical network {physnet} has uplink {other}")),
        }
        .or_else(|| match self.devices.get(&p.cfg.device) {
            Some(holder) if holder != id => {
                Some(format!("device {} is held by port {holder}", p.cfg.device))
            }
            _ => None,
        });
        let accepted = reason.is_none();
        if accepted {
            self.devices.insert(p.cfg.device.clone(), id.to_owned());
            self.refused.remove(id);
        } else if self.refused.insert(id.to_owned()) {
            tracing::warn!(
                "port {id} is not forwarded: {}",
                reason.as_deref().unwrap_or("")
            );
        }
        if let Some(p) = self.ports.get_mut(id) {
            p.refused = reason;
        }
    }

    /// Is `device` held by a placed port (which opens, or has opened, its sockets)?
    fn holds(&self, device: &str) -> bool {
        self.devices
            .get(device)
            .is_some_and(|id| self.placed.contains(id))
    }

    fn release_port_device(&mut self, id: &str, device: &str) {
        if self.devices.get(device).is_some_and(|h| h == id) {
            self.devices.remove(device);
        }
    }

    /// Places an accepted port whose device exists: gives it a slot. Returns whether it is
    /// placed.
    fn place(&mut self, id: &str) -> bool {
        let Some(p) = self.ports.get(id) else {
            return false;
        };
        if p.refused.is_some() {
            return false;
        }
        if p.handle.is_some() {
            return true;
        }
        if netdev::ifindex(&p.cfg.device).is_none() {
            return false;
        }
        if self.slots.get(id).is_none() && self.slots.live() >= MAX_SLOTS - 1 {
            let reason = format!(
                "no free port slot (a switch holds at most {} open ports)",
                MAX_SLOTS - 1
            );
            tracing::warn!("port {id} is not forwarded: {reason}");
            self.refused.insert(id.to_owned());
            if let Some(p) = self.ports.get_mut(id) {
                p.refused = Some(reason);
            }
            return false;
        }
        // (A slot is free: counted above.)
        let _ = self.slots.get_or_insert(id);
        let Some(p) = self.ports.get_mut(id) else {
            return false;
        };
        // A port without an explicit MTU takes its interface's (frames up to the interface MTU
        // cross, longer ones are dropped and counted).
        p.mtu = p.cfg.mtu.or_else(|| netdev::mtu(&p.cfg.device).ok());
        // The configured worker, the one its device's sockets are bound ahead on (or being
        // bound), or the one polling the fewest queues (a port brings every RX queue of its
        // device).
        let weight = netdev::rx_queues(&p.cfg.device).unwrap_or(1).max(1);
        let dev = &p.cfg.device;
        let least = match (self.ahead.get(dev), self.binding.get(dev)) {
            (Some(k), _) => usize::from(k.worker),
            (None, Some(&(w, _))) => usize::from(w),
            (None, None) => least_loaded(&self.load),
        };
        let worker = match p.cfg.worker.map(usize::from) {
            Some(w) if w < self.load.len() => w,
            Some(w) => {
                tracing::warn!(
                    "port {id}: worker {w} does not exist ({} workers); using worker {least}",
                    self.load.len()
                );
                least
            }
            None => least,
        };
        if let Some(l) = self.load.get_mut(worker) {
            *l += weight;
        }
        p.handle = Some(PortHandle::new(
            PortShared::named(id, dev),
            worker as u16,
            weight,
        ));
        self.placed.insert(id.to_owned());
        true
    }

    /// Takes a port out of the snapshot: asks the worker to close it and frees its slot at the
    /// next compile.
    fn unplace(&mut self, id: &str, inner: &Inner) {
        let Some(p) = self.ports.get_mut(id) else {
            return;
        };
        if let Some(h) = p.handle.take() {
            if let (Some(slot), true) = (self.slots.get(id), h.requested.is_some()) {
                inner.send_to(h.worker, Command::RemovePort { slot });
            }
            if let Some(l) = self.load.get_mut(usize::from(h.worker)) {
                *l = l.saturating_sub(h.weight);
            }
        }
        self.slots.remove(id);
        self.placed.remove(id);
    }

    /// Forgets a port: closes it and releases its device. Returns whether it existed.
    fn remove_port(&mut self, id: &str, inner: &Inner) -> bool {
        self.unplace(id, inner);
        let Some(p) = self.ports.remove(id) else {
            return false;
        };
        self.release_port_device(id, &p.cfg.device);
        self.refused.remove(id);
        true
    }

    /// Sets and removes address sets; a change moves the policy epoch.
    fn update_address_sets(&mut self, set: Vec<(String, Arc<AddrSet>)>, removed: &[String]) {
        let mut changed = false;
        for id in removed {
            if self.address_sets.contains_key(id.as_str()) {
                Arc::make_mut(&mut self.address_sets).remove(id.as_str());
                changed = true;
            }
        }
        for (id, s) in set {
            if self.address_sets.get(id.as_str()) != Some(&s) {
                Arc::make_mut(&mut self.address_sets).insert(Arc::from(id), s);
                changed = true;
            }
        }
        if changed {
            self.policy_epoch += 1;
        }
    }

    /// Compiles the forwarded networks and placed ports into a snapshot.
    fn compile(&mut self) -> Snapshot {
        self.version += 1;
        let cfg = SwitchConfig {
            networks: self
                .networks
                .values()
                .filter(|n| n.refused.is_none())
                .map(|n| n.cfg.clone())
                .collect(),
            ports: self
                .placed
                .iter()
                .filter_map(|id| self.ports.get(id))
                .map(|p| PortConfig {
                    mtu: p.mtu,
                    worker: p.handle.as_ref().map(|h| h.worker),
                    ..p.cfg.clone()
                })
                .collect(),
            address_sets: Arc::clone(&self.address_sets),
            policy_epoch: self.policy_epoch,
        };
        Snapshot::compile(&cfg, self.version, &mut self.nets, &mut self.slots)
    }
}

/// The worker polling the fewest queues.
fn least_loaded(load: &[u32]) -> usize {
    (0..load.len()).min_by_key(|&w| load[w]).unwrap_or(0)
}

/// The switch's end of one worker.
struct Hand {
    tx: Mutex<Sender<Command<AfXdpPort>>>,
    pending: Arc<AtomicBool>,
    /// Wakes the worker if it sleeps (after `pending` is set).
    wake: Option<Arc<Wake>>,
    /// What the worker publishes about itself.
    stats: Arc<WorkerStats>,
    /// The worker's UMEM, which the opener registers each of its ports over.
    region: Region,
}

struct Inner {
    /// The workers, by index.
    crew: Vec<Hand>,
    state: Mutex<State>,
    opts: SwitchOptions,
    stop: AtomicBool,
    /// Ports to open (program attached, sockets bound) off the worker, before it adopts them.
    opener: Mutex<Option<Sender<OpenJob>>>,
    /// Registered devices to prepare (program attached, sockets bound ahead): a queue and a
    /// thread of their own, so that a port's open does not queue behind them.
    preparer: Mutex<Option<Sender<OpenJob>>>,
    /// Devices kept prepared while they are registered.
    warm: Mutex<Warm>,
    /// Held while an opener attaches a program.
    attaching: Mutex<()>,
    /// A view of the MAC table the workers share, to grow it before they adopt a snapshot
    /// that needs more room.
    fdb: Mutex<MacTable>,
}

/// Devices the control plane expects ports on (registered interfaces): their programs are
/// attached ahead and stay attached across ports, so that a plug does not wait for the kernel's
/// attach (15 to 30 ms, serialized); their sockets are bound ahead too, while no port holds
/// them ([`BoundAhead`], in the switch's state).
#[derive(Default)]
struct Warm {
    /// Devices to keep prepared.
    pinned: HashSet<String>,
    /// Their prepared programs (a device that does not exist yet has none).
    prepared: HashMap<String, Arc<Prepared>>,
    /// Devices with a preparation queued.
    queued: HashSet<String>,
    /// Devices whose preparation failed, with the interface index it failed on (the device may
    /// already carry a port's own program): tried again only once the device is re-created.
    failed: HashMap<String, u32>,
}

/// Work for the opener threads (ports) and the preparer thread (devices).
enum OpenJob {
    /// A port to open: prepared, then handed to the worker if still wanted.
    Port {
        id: String,
        slot: u16,
        /// The handle's request count when the job was made: a later request supersedes it.
        sent: u64,
        spec: AfXdpSpec,
        shared: Arc<PortShared>,
    },
    /// A registered device to prepare ahead of its port: its program attached, its sockets
    /// bound.
    Device(AfXdpSpec),
}

/// The running data plane.
pub struct Switch {
    inner: Arc<Inner>,
    workers: Vec<JoinHandle<()>>,
    monitor: Option<JoinHandle<()>>,
    openers: Vec<JoinHandle<()>>,
}

impl core::fmt::Debug for Switch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Switch").finish_non_exhaustive()
    }
}

/// Retry interval for a port whose device exists but failed to open.
const RETRY: Duration = Duration::from_secs(1);

/// Opener threads. Attaching a program and binding a socket both take the kernel's RTNL lock,
/// which anything else configuring the host's interfaces contends for (a hypervisor creating tap
/// devices): openers waiting for it side by side get their turns sooner than one waiting for
/// each in turn. Attaches are one at a time among them; binds are not.
const OPENERS: usize = 4;

/// How long the opener retries a bind whose queue still reads busy: the kernel finishes
/// releasing a closed socket's queue from a work queue, after the socket is gone.
const BUSY_WAIT: Duration = Duration::from_millis(100);

/// Opens a port for a worker (off it), retrying while the device's queues read busy (only with
/// its program prepared: an open that attaches is not repeated every millisecond).
fn open_port(spec: &AfXdpSpec, slot: u16, region: &Region) -> io::Result<AfXdpPort> {
    let start = Instant::now();
    let retry = spec.prepared.is_some();
    loop {
        match AfXdpPort::open(spec, slot, region) {
            Err(e)
                if retry
                    && e.kind() == io::ErrorKind::ResourceBusy
                    && start.elapsed() < BUSY_WAIT =>
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            r => return r.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", spec.device))),
        }
    }
}

/// How long the opener waits for a closed port of the same device, or of the same worker's
/// slot, to release its sockets (an RCU grace period, 5 to 30 ms here, longer on a loaded
/// host); past it the open is tried anyway and, if the device's queues or the slot are still
/// held, retried.
const CLOSE_WAIT: Duration = Duration::from_millis(500);

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a command to worker `w`.
    fn send_to(&self, w: u16, cmd: Command<AfXdpPort>) {
        let Some(hand) = self.crew.get(usize::from(w)) else {
            return;
        };
        if let Ok(tx) = hand.tx.lock() {
            let _ = tx.send(cmd);
        }
        hand.pending.store(true, Ordering::Release);
        if let Some(w) = &hand.wake {
            w.notify();
        }
    }

    /// Sends a command, made for each, to every worker.
    fn send_all(&self, cmd: impl Fn() -> Command<AfXdpPort>) {
        for w in 0..self.crew.len() {
            self.send_to(w as u16, cmd());
        }
    }

    fn spec(&self, device: &str) -> AfXdpSpec {
        AfXdpSpec {
            device: device.to_owned(),
            xdp_mode: self.opts.xdp_mode,
            bind_mode: self.opts.bind_mode,
            rings: self.opts.rings,
            whole: self.opts.worker.whole_super_frames,
            shortcut: self.opts.worker.shortcut.clone(),
            ..AfXdpSpec::new(device)
        }
    }

    /// Asks for a port to be opened: the opener thread attaches its program (the slow part,
    /// serialized by the kernel) and opens its sockets, then the worker adopts it, so the worker
    /// never stalls on an open.
    fn open_port(&self, id: &str, slot: u16, h: &PortHandle, device: &str) {
        let job = OpenJob::Port {
            id: id.to_owned(),
            slot,
            sent: h.sent,
            spec: self.spec(device),
            shared: Arc::clone(&h.shared),
        };
        if !self.queue(job) {
            // No opener (shutting down): nothing to open.
            h.shared.attempt_dropped();
        }
    }

    fn queue(&self, job: OpenJob) -> bool {
        let to = match job {
            OpenJob::Port { .. } => &self.opener,
            OpenJob::Device(_) => &self.preparer,
        };
        match to.lock() {
            Ok(o) => o.as_ref().is_some_and(|tx| tx.send(job).is_ok()),
            Err(_) => false,
        }
    }

    fn warm(&self) -> MutexGuard<'_, Warm> {
        self.warm.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The device's program, kept attached if it is registered, or attached now.
    fn prepared(&self, spec: &AfXdpSpec) -> io::Result<Arc<Prepared>> {
        let kept = || {
            let current = netdev::ifindex(&spec.device);
            self.warm()
                .prepared
                .get(&spec.device)
                .filter(|p| Some(p.ifindex()) == current)
                .cloned()
        };
        if let Some(p) = kept() {
            return Ok(p);
        }
        // One attach at a time (the kernel serializes them anyway), so that two openers never
        // attach to one device; the other openers go on binding sockets meanwhile.
        let _attaching = self.attaching.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = kept() {
            return Ok(p);
        }
        let p = Arc::new(afxdp::prepare(spec)?);
        let mut warm = self.warm();
        if warm.pinned.contains(&spec.device) {
            if let Some(stale) = warm.prepared.insert(spec.device.clone(), Arc::clone(&p)) {
                afxdp::drop_later(stale);
            }
        }
        Ok(p)
    }

    /// Keeps the registered devices prepared: lets go of programs whose device vanished or was
    /// re-created, and queues the registered devices present on the host (one directory read)
    /// that have no program yet. Costs what the host has, not what is registered.
    fn tend_warm(&self) {
        let mut warm = self.warm();
        let gone: Vec<String> = warm
            .prepared
            .iter()
            .filter(|(dev, p)| netdev::ifindex(dev) != Some(p.ifindex()))
            .map(|(dev, _)| dev.clone())
            .collect();
        for dev in gone {
            if let Some(p) = warm.prepared.remove(&dev) {
                afxdp::drop_later(p);
            }
        }
        if warm.pinned.len() == warm.prepared.len() {
            return;
        }
        let present: Vec<String> = netdev::names()
            .into_iter()
            .filter(|d| warm.pinned.contains(d))
            .filter(|d| {
                warm.failed
                    .get(d)
                    .is_none_or(|&ifi| netdev::ifindex(d) != Some(ifi))
            })
            .collect();
        drop(warm);
        self.queue_devices(&present);
    }

    /// Queues the preparation of these registered devices, those not prepared or queued yet.
    fn queue_devices(&self, devices: &[String]) {
        for dev in devices {
            if !self.warm().prepared.contains_key(dev) {
                self.queue_device(dev);
            }
        }
    }

    /// Queues the preparation of a registered device (its program, then its sockets bound
    /// ahead), unless one is queued.
    fn queue_device(&self, dev: &str) {
        if !self.warm().queued.insert(dev.to_owned()) {
            return;
        }
        if !self.queue(OpenJob::Device(self.spec(dev))) {
            self.warm().queued.remove(dev);
        }
    }

    /// An opener thread: prepares each port and opens it (or adopts its sockets bound ahead),
    /// then hands it to the worker if it is still the request in force (the port may have been
    /// removed, or asked again, meanwhile). The preparer thread runs this too, for devices.
    fn run_opener(&self, jobs: &Mutex<mpsc::Receiver<OpenJob>>) {
        loop {
            let job = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
            let Ok(job) = job else {
                return;
            };
            let (id, slot, sent, mut spec, shared) = match job {
                OpenJob::Device(spec) => {
                    self.prepare_ahead(&spec);
                    continue;
                }
                OpenJob::Port {
                    id,
                    slot,
                    sent,
                    spec,
                    shared,
                } => (id, slot, sent, spec, shared),
            };
            let wanted = self.wanted(&self.lock(), &id, slot, sent, &shared);
            let Some((worker, region)) = wanted.and_then(|w| {
                let h = self.crew.get(usize::from(w))?;
                Some((w, h.region))
            }) else {
                shared.attempt_dropped();
                continue;
            };
            let ahead = self.take_bound_ahead(&spec.device, worker);
            // A port closed moments ago on this device, or in this slot of the worker, may
            // still be releasing its sockets (off its worker): the device's queues read busy,
            // its old program may still be attached, and the slot's chunks stay buried until
            // then. So wait before preparing (or adopting sockets bound ahead).
            if let Some(ifi) = netdev::ifindex(&spec.device) {
                let waited = Instant::now();
                let released = afxdp::wait_closed(ifi, &region, slot, CLOSE_WAIT);
                tracing::debug!(
                    "port {id} on {}: waited {} µs for closed ports' sockets{}",
                    spec.device,
                    waited.elapsed().as_micros(),
                    if released {
                        ""
                    } else {
                        ", still held: opening anyway"
                    }
                );
            }
            let started = Instant::now();
            let bound_ahead = ahead.is_some();
            let opened = match ahead {
                Some(port) => Ok(port.into_slot(slot)),
                None => {
                    // A failed preparation is tried again by the open, which reports the error.
                    spec.prepared = self.prepared(&spec).ok();
                    open_port(&spec, slot, &region)
                }
            };
            tracing::debug!(
                "port {id} on {}: open took {} µs{}",
                spec.device,
                started.elapsed().as_micros(),
                if bound_ahead { " (bound ahead)" } else { "" }
            );
            let st = self.lock();
            if self.wanted(&st, &id, slot, sent, &shared) != Some(worker) {
                // Withdrawn meanwhile.
                drop(st);
                if let Ok(port) = opened {
                    afxdp::discard(port);
                }
                shared.attempt_dropped();
                continue;
            }
            self.send_to(
                worker,
                Command::Adopt {
                    slot,
                    opened,
                    shared,
                },
            );
            drop(st);
        }
    }

    /// A registered device: its program attached ahead of its port, and its sockets bound.
    fn prepare_ahead(&self, spec: &AfXdpSpec) {
        let pinned = self.warm().pinned.contains(&spec.device);
        let stopping = self.stop.load(Ordering::Acquire);
        let prepared = (pinned && !stopping).then(|| self.prepared(spec));
        if let Some(Ok(pre)) = &prepared {
            self.bind_ahead(spec, pre);
        }
        let failed = matches!(prepared, Some(Err(_)));
        let mut warm = self.warm();
        warm.queued.remove(&spec.device);
        match netdev::ifindex(&spec.device) {
            Some(ifi) if failed => {
                tracing::debug!(
                    "cannot prepare {} ahead; its ports attach on open",
                    spec.device
                );
                warm.failed.insert(spec.device.clone(), ifi);
            }
            _ => {
                warm.failed.remove(&spec.device);
            }
        }
    }

    /// Binds the sockets of a prepared device that no port holds, on the UMEM of the worker
    /// with the fewest queues (counting sockets bound ahead), for its port to adopt: see
    /// [`BoundAhead`].
    fn bind_ahead(&self, spec: &AfXdpSpec, pre: &Arc<Prepared>) {
        let (dev, ifi) = (&spec.device, pre.ifindex());
        let worker = {
            let mut st = self.lock();
            if st.ahead.contains_key(dev)
                || st.binding.contains_key(dev)
                || st.holds(dev)
                || st.unbindable.get(dev) == Some(&ifi)
            {
                return;
            }
            let mut load = st.load.clone();
            let ahead = st.ahead.values().map(|k| (k.worker, k.port.queues()));
            for (w, q) in ahead.chain(st.binding.values().copied()) {
                if let Some(l) = load.get_mut(usize::from(w)) {
                    *l += q;
                }
            }
            let worker = least_loaded(&load) as u16;
            let queues = netdev::rx_queues(dev).unwrap_or(1).max(1);
            st.binding.insert(dev.clone(), (worker, queues));
            worker
        };
        let Some(region) = self.crew.get(usize::from(worker)).map(|h| h.region) else {
            self.lock().binding.remove(dev);
            return;
        };
        afxdp::wait_closed(ifi, &region, NONE, CLOSE_WAIT);
        let spec = AfXdpSpec {
            prepared: Some(Arc::clone(pre)),
            ..spec.clone()
        };
        let started = Instant::now();
        let opened = open_port(&spec, NONE, &region);
        let mut st = self.lock();
        st.binding.remove(dev);
        let port = match opened {
            Ok(port) => port,
            Err(e) => {
                // A queue still held (a port closed moments ago, or one that took the device
                // meanwhile) is tried again by the monitor; other failures wait for the device
                // to be re-created.
                if e.kind() != io::ErrorKind::ResourceBusy && !st.holds(dev) {
                    tracing::debug!("cannot bind {dev} ahead ({e}); its port binds on open");
                    st.unbindable.insert(dev.clone(), ifi);
                }
                return;
            }
        };
        // A port placed on the device meanwhile waits for these sockets (`take_bound_ahead`),
        // or adopts them at its next try.
        let wanted = !self.stop.load(Ordering::Acquire)
            && !st.ahead.contains_key(dev)
            && netdev::ifindex(dev) == Some(ifi);
        if !wanted {
            drop(st);
            afxdp::discard(port);
            return;
        }
        tracing::debug!(
            "{dev}: sockets bound ahead on worker {worker} in {} µs",
            started.elapsed().as_micros()
        );
        st.ahead.insert(dev.clone(), BoundAhead { worker, port });
        drop(st);
        // Released meanwhile (`release_devices` unpins first, then closes what is bound ahead).
        if !self.warm().pinned.contains(dev) {
            if let Some(k) = self.lock().ahead.remove(dev) {
                afxdp::discard(k.port);
            }
        }
    }

    /// The sockets bound ahead on `device`, for a port that `worker` serves, if they still fit
    /// it (the same interface, with as many queues); sockets that do not are closed. Sockets
    /// being bound ahead right now are waited for (at most `BUSY_WAIT`): the port's own bind
    /// would find the queues busy meanwhile.
    fn take_bound_ahead(&self, device: &str, worker: u16) -> Option<AfXdpPort> {
        let end = Instant::now() + BUSY_WAIT;
        let k = loop {
            let mut st = self.lock();
            if !st.binding.contains_key(device) || Instant::now() >= end {
                break st.ahead.remove(device)?;
            }
            drop(st);
            std::thread::sleep(Duration::from_millis(1));
        };
        if k.worker == worker && k.port.fits(device) {
            return Some(k.port);
        }
        afxdp::discard(k.port);
        None
    }

    /// Keeps sockets bound ahead on the prepared devices that no port holds: closes those of
    /// devices no longer prepared (released, vanished or re-created) and queues the binding of
    /// the others that have none (again after their port closed). A device a port holds keeps
    /// its sockets: that port's open adopts them.
    fn tend_bound_ahead(&self) {
        let prepared: HashMap<String, u32> = self
            .warm()
            .prepared
            .iter()
            .map(|(d, p)| (d.clone(), p.ifindex()))
            .collect();
        let mut st = self.lock();
        let stale: Vec<String> = st
            .ahead
            .iter()
            .filter(|(d, k)| prepared.get(*d) != Some(&k.port.ifindex()))
            .map(|(d, _)| d.clone())
            .collect();
        let closing: Vec<BoundAhead> = stale.iter().filter_map(|d| st.ahead.remove(d)).collect();
        st.unbindable.retain(|d, ifi| prepared.get(d) == Some(ifi));
        let wanting: Vec<String> = prepared
            .iter()
            .filter(|(d, ifi)| {
                !st.ahead.contains_key(*d)
                    && !st.binding.contains_key(*d)
                    && !st.holds(d)
                    && st.unbindable.get(*d) != Some(*ifi)
            })
            .map(|(d, _)| d.clone())
            .collect();
        drop(st);
        for k in closing {
            afxdp::discard(k.port);
        }
        for dev in &wanting {
            self.queue_device(dev);
        }
    }

    /// The worker of port `id` if this open request (`slot`, `sent`, `shared`) is still the one
    /// in force: the port may have been removed, or asked again, meanwhile.
    fn wanted(
        &self,
        st: &State,
        id: &str,
        slot: u16,
        sent: u64,
        shared: &Arc<PortShared>,
    ) -> Option<u16> {
        if self.stop.load(Ordering::Acquire) || st.slots.get(id) != Some(slot) {
            return None;
        }
        let h = st.ports.get(id)?.handle.as_ref()?;
        // This very handle (a port re-created on the same slot starts counting again), and its
        // request in force.
        (Arc::ptr_eq(&h.shared, shared) && h.requested.is_some() && h.sent == sent)
            .then_some(h.worker)
    }

    /// Compiles and publishes a new snapshot, then opens what needs opening. The MAC table is
    /// grown here first, if the snapshot's networks need more room: a growth copies the table
    /// (tens of milliseconds at a million entries), which the worker adopting the snapshot
    /// would otherwise do between two rounds, forwarding nothing meanwhile.
    fn publish(&self, st: &mut State) {
        let snap = Arc::new(st.compile());
        self.fdb
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .reserve_for(snap.mac_entries(), snap.nets.len());
        self.send_all(|| Command::Snapshot(Arc::clone(&snap)));
        self.reconcile_devices(st);
    }

    /// Places the desired ports whose devices appeared on the host since the last look.
    fn discover_devices(&self, st: &mut State) -> bool {
        let waiting = st.devices.len() > st.placed.len();
        if !waiting {
            return false;
        }
        let mut placed = false;
        for name in netdev::names() {
            let Some(id) = st.devices.get(&name).cloned() else {
                continue;
            };
            if !st.placed.contains(&id) {
                placed |= st.place(&id);
            }
        }
        placed
    }

    /// Opens placed ports whose device exists and closes ports whose device went away.
    fn reconcile_devices(&self, st: &mut State) {
        let now = Instant::now();
        let State {
            ports,
            placed,
            slots,
            queue_look,
            load,
            ..
        } = st;
        let n = placed.len().max(1);
        let first = *queue_look % n;
        *queue_look = first + QUEUE_LOOKS;
        for (i, id) in placed.iter().enumerate() {
            let Some(slot) = slots.get(id) else {
                continue;
            };
            let Some(p) = ports.get_mut(id) else {
                continue;
            };
            let Some(h) = p.handle.as_mut() else {
                continue;
            };
            let device = &p.cfg.device;
            let present = netdev::ifindex(device);
            // The worker reports a port's state, then counts the attempt: read in the other
            // order, so that a counted attempt comes with its state (never an older one).
            let attempts = h.shared.attempts();
            let state = h.shared.state();
            // A device that gained RX queues (a guest enabled more of its virtio-net queues):
            // frames on a queue without a socket go to the kernel's stack, not to the switch.
            let mut grown = false;
            if (i + n - first) % n < QUEUE_LOOKS && state == LinkState::Up && present.is_some() {
                if let Ok(q) = netdev::rx_queues(device) {
                    grown = h.shared.lacks_queues(q);
                    if grown {
                        tracing::info!(
                            "port {id} on {device}: {q} RX queues now; opening it again to take \
                             them"
                        );
                        // Its worker polls that many now.
                        if let Some(l) = load.get_mut(usize::from(h.worker)) {
                            *l = l.saturating_sub(h.weight) + q;
                        }
                        h.weight = q;
                    }
                    let room = h.shared.queue_room();
                    if q > room && !h.over_room {
                        tracing::warn!(
                            "port {id} on {device}: {q} RX queues, room for {room}: frames on \
                             the others go to the kernel's stack, not to the switch"
                        );
                    }
                    h.over_room = q > room;
                }
            }
            match h.requested {
                Some(ifi) if present != Some(ifi) || state == LinkState::Failed || grown => {
                    // The interface vanished, was re-created, or stopped sending: close the port
                    // (it is reported DOWN); it is opened again once the device is usable. One
                    // that gained queues is opened again likewise.
                    self.send_to(h.worker, Command::RemovePort { slot });
                    h.requested = None;
                    h.last_attempt = Some(now);
                }
                Some(ifi) if state == LinkState::OpenFailed => {
                    // A queue still being released frees up within milliseconds; other failures
                    // are retried every second.
                    let wait = if h.shared.busy() {
                        Duration::ZERO
                    } else {
                        RETRY
                    };
                    // Only once the worker has carried out the previous request.
                    let idle = attempts >= h.sent;
                    if idle && h.last_attempt.is_none_or(|t| now - t >= wait) {
                        h.last_attempt = Some(now);
                        h.requested = Some(ifi);
                        h.sent += 1;
                        self.open_port(id, slot, h, device);
                    }
                }
                Some(_) => {}
                None => {
                    let backoff = h.last_attempt.is_some_and(|t| now - t < RETRY / 10);
                    if let (Some(ifi), false) = (present, backoff) {
                        h.requested = Some(ifi);
                        h.last_attempt = Some(now);
                        h.sent += 1;
                        self.open_port(id, slot, h, device);
                    }
                }
            }
        }
    }
}

impl Switch {
    /// Starts the workers and the device monitor, with no networks and no ports.
    pub fn start(mut opts: SwitchOptions) -> io::Result<Switch> {
        if opts.xdp_shortcut && opts.worker.shortcut.is_none() {
            let sc = Shortcut::new()
                .map_err(|e| io::Error::new(e.kind(), format!("the XDP shortcut's maps: {e}")))?;
            opts.worker.shortcut = Some(Arc::new(sc));
        }
        let n = opts.worker_count();
        let wc = &opts.worker;
        let fdb = MacTable::new(wc.aging_secs, wc.max_macs);
        let epoch = Instant::now();
        // Ring buffers between each pair of workers: 2 MiB per direction with two workers,
        // fewer per pair with more.
        let depth = (1024 / n.saturating_sub(1).max(1)).max(64);
        let mut workers = Vec::with_capacity(n);
        let mut crew = Vec::with_capacity(n);
        let mut loops = Vec::with_capacity(n);
        for links in worker::cross::mesh(n, depth, wc.chunk_size as usize) {
            let w: Worker<AfXdpPort> = Worker::in_crew(wc.clone(), links, fdb.clone(), epoch)?;
            let (tx, rx) = mpsc::channel();
            let pending = Arc::new(AtomicBool::new(false));
            crew.push(Hand {
                tx: Mutex::new(tx),
                pending: Arc::clone(&pending),
                wake: w.wake(),
                stats: w.stats(),
                region: w.region(),
            });
            loops.push((w, rx, pending));
        }
        let inner = Arc::new(Inner {
            crew,
            state: Mutex::new(State {
                load: vec![0; n],
                ..State::default()
            }),
            opts: opts.clone(),
            stop: AtomicBool::new(false),
            opener: Mutex::new(None),
            preparer: Mutex::new(None),
            warm: Mutex::new(Warm::default()),
            attaching: Mutex::new(()),
            fdb: Mutex::new(fdb),
        });
        let (jobs_tx, jobs) = mpsc::channel();
        if let Ok(mut o) = inner.opener.lock() {
            *o = Some(jobs_tx);
        }
        let jobs = Arc::new(Mutex::new(jobs));
        let mut openers = Vec::with_capacity(OPENERS + 1);
        for i in 0..OPENERS {
            let (o, jobs) = (Arc::clone(&inner), Arc::clone(&jobs));
            openers.push(
                std::thread::Builder::new()
                    .name(format!("qswitch-opener{i}"))
                    .spawn(move || o.run_opener(&jobs))?,
            );
        }
        let (devices_tx, devices) = mpsc::channel();
        if let Ok(mut o) = inner.preparer.lock() {
            *o = Some(devices_tx);
        }
        let (o, devices) = (Arc::clone(&inner), Mutex::new(devices));
        openers.push(
            std::thread::Builder::new()
                .name("qswitch-prepare".into())
                .spawn(move || o.run_opener(&devices))?,
        );
        for (w, rx, pending) in loops {
            let id = w.id();
            let cpu = opts.cpu.map(|c| c + usize::from(id));
            let name = if n == 1 {
                "qswitch-worker".to_owned()
            } else {
                format!("qswitch-worker{id}")
            };
            workers.push(std::thread::Builder::new().name(name).spawn(move || {
                if let Some(cpu) = cpu {
                    if let Err(e) = crate::sys::pin_current_thread(cpu) {
                        tracing::warn!("cannot pin worker {id} to CPU {cpu}: {e}");
                    }
                }
                // A worker that panics has closed its sockets, then unmapped its UMEM, as it
                // unwound (its fields' drop order). The process stops then: its ports would
                // forward nothing, and the buffers its peers handed it would never come back
                // (their rounds are bounded by them). Restarted, it forwards again from the
                // store, as after any crash.
                let run = std::panic::AssertUnwindSafe(move || w.run(rx, pending));
                if std::panic::catch_unwind(run).is_err() {
                    tracing::error!(
                        "worker {id} panicked: stopping the process (restarted, it forwards \
                         again from the store)"
                    );
                    std::process::abort();
                }
            })?);
        }
        tracing::info!("data plane: {n} worker{}", if n == 1 { "" } else { "s" });
        let m = Arc::clone(&inner);
        let monitor = std::thread::Builder::new()
            .name("qswitch-monitor".into())
            .spawn(move || {
                // Woken by the kernel when an interface appears (a VM's device: its port opens
                // at once); without the socket, it looks every 100 ms.
                let events = netdev::LinkEvents::open()
                    .map_err(|e| tracing::warn!(error = %e, "no link events; polling interfaces"))
                    .ok();
                while !m.stop.load(Ordering::Acquire) {
                    m.tend_warm();
                    m.tend_bound_ahead();
                    let retry_soon = {
                        let mut st = m.lock();
                        if m.discover_devices(&mut st) {
                            m.publish(&mut st);
                        } else {
                            m.reconcile_devices(&mut st);
                        }
                        st.placed.iter().any(|id| {
                            st.ports
                                .get(id)
                                .and_then(|p| p.handle.as_ref())
                                .is_some_and(|h| {
                                    h.shared.state() == LinkState::OpenFailed && h.shared.busy()
                                })
                        })
                    };
                    // A queue still being released frees up within milliseconds (the kernel
                    // finishes the release from a work queue): look again soon.
                    let pause = Duration::from_millis(if retry_soon { 5 } else { 100 });
                    match &events {
                        Some(e) => {
                            e.wait(pause);
                        }
                        None => std::thread::sleep(pause),
                    }
                }
            })?;
        Ok(Switch {
            inner,
            workers,
            monitor: Some(monitor),
            openers,
        })
    }

    /// Checks that `cfg` is consistent as a whole (the configuration file), then makes it the
    /// switch's configuration. Nothing of an inconsistent configuration is applied.
    pub fn apply(&self, cfg: SwitchConfig) -> Result<(), ConfigError> {
        cfg.validate()?;
        self.sync(cfg);
        Ok(())
    }

    /// Makes `cfg` the switch's whole configuration, item by item: what conflicts is refused and
    /// reported, the rest forwards.
    pub fn sync(&self, cfg: SwitchConfig) {
        let delta = {
            let st = self.inner.lock();
            let nets: HashSet<&str> = cfg.networks.iter().map(|n| n.id.as_str()).collect();
            let ports: HashSet<&str> = cfg.ports.iter().map(|p| p.id.as_str()).collect();
            ConfigDelta {
                removed_address_sets: st
                    .address_sets
                    .keys()
                    .filter(|id| !cfg.address_sets.contains_key(&**id))
                    .map(|id| id.to_string())
                    .collect(),
                address_sets: cfg
                    .address_sets
                    .iter()
                    .map(|(id, set)| (id.to_string(), Arc::clone(set)))
                    .collect(),
                removed_networks: st
                    .networks
                    .keys()
                    .filter(|id| !nets.contains(id.as_str()))
                    .cloned()
                    .collect(),
                removed_ports: st
                    .ports
                    .keys()
                    .filter(|id| !ports.contains(id.as_str()))
                    .cloned()
                    .collect(),
                networks: cfg.networks,
                ports: cfg.ports,
            }
        };
        self.update(delta);
    }

    /// Adds, changes and removes networks and ports. Each item is accepted or refused on its
    /// own; ports whose device exists are opened at once, the others as soon as their device
    /// appears. Costs what it changes, plus one snapshot of the forwarded networks and the
    /// ports placed on this host.
    pub fn update(&self, delta: ConfigDelta) {
        if delta.is_empty() {
            return;
        }
        let inner = &self.inner;
        let mut st = inner.lock();
        // Whether something was released that a refused port may have been waiting for.
        let mut released = false;
        // Whether a network came, went or changed its VLAN (refused items may now be admitted).
        let mut nets_changed = false;
        // Whether a network went or changed its VLAN (its ports may have to be refused).
        let mut nets_lost = false;
        for id in &delta.removed_ports {
            released |= st.remove_port(id, inner);
        }
        for id in &delta.removed_networks {
            if let Some(n) = st.networks.remove(id) {
                st.release_network(id, &n.cfg);
                released = true;
                nets_changed = true;
                nets_lost = true;
            }
        }
        for n in delta.networks {
            let id = n.id.clone();
            match st.networks.get_mut(&id) {
                Some(e) if e.cfg == n => continue,
                // Only the learning limit changed: same segment, same MAC table.
                Some(e) if e.cfg.vlan == n.vlan && e.cfg.physnet == n.physnet => {
                    e.cfg = n;
                    continue;
                }
                Some(_) => {
                    // Another segment: its old one is released, and a fresh slot generation
                    // forgets what was learned on the old one.
                    if let Some(old) = st.networks.remove(&id) {
                        st.release_network(&id, &old.cfg);
                    }
                    st.nets.remove(&id);
                    released = true;
                    nets_lost = true;
                }
                None => {}
            }
            st.networks.insert(
                id.clone(),
                NetEntry {
                    cfg: n,
                    refused: None,
                },
            );
            st.admit_network(&id);
            nets_changed = true;
        }
        if nets_changed {
            // Networks that came, went or changed their VLAN: a refused network may now forward.
            let refused: Vec<String> = st
                .networks
                .iter()
                .filter(|(_, n)| n.refused.is_some())
                .map(|(id, _)| id.clone())
                .collect();
            for id in refused {
                st.admit_network(&id);
            }
        }
        if nets_lost {
            // The ports on a network that went (or is refused now) are refused: one pass over
            // the ports, only when a network is lost.
            let orphans: Vec<String> = st
                .ports
                .iter()
                .filter(|(_, p)| match &p.cfg.role {
                    PortRole::Access { network } => {
                        st.networks.get(network).is_none_or(|n| n.refused.is_some())
                    }
                    PortRole::Trunk { .. } => false,
                })
                .filter(|(id, _)| !st.refused.contains(*id))
                .map(|(id, _)| id.clone())
                .collect();
            for id in orphans {
                st.admit_port(&id);
                st.unplace(&id, inner);
            }
        }
        st.update_address_sets(delta.address_sets, &delta.removed_address_sets);
        for p in delta.ports {
            let id = p.id.clone();
            if let Some(e) = st.ports.get_mut(&id) {
                if e.cfg == p {
                    continue;
                }
                if e.cfg.filter != p.filter {
                    // Tracked connections are checked again against the new rules.
                    st.policy_epoch += 1;
                }
                let Some(e) = st.ports.get_mut(&id) else {
                    continue;
                };
                if e.cfg.device == p.device && e.cfg.role == p.role {
                    // Same device, same network: the port stays open with its new settings (its
                    // MTU read again from the interface when none is configured).
                    if e.handle.is_some() {
                        e.mtu = p.mtu.or_else(|| netdev::mtu(&p.device).ok());
                    }
                    e.cfg = p;
                    continue;
                }
                // Another device or network: another port, in its slot's next generation, so
                // that nothing kept by slot and generation (its MAC entries, its connection
                // table zone, its XDP shortcut entries, its policers' buckets) outlives the move.
                released |= st.remove_port(&id, inner);
            }
            st.ports.insert(
                id.clone(),
                PortEntry {
                    cfg: p,
                    refused: None,
                    handle: None,
                    mtu: None,
                },
            );
            st.admit_port(&id);
            st.place(&id);
        }
        if released || nets_changed {
            let waiting: Vec<String> = st.refused.iter().cloned().collect();
            for id in waiting {
                st.admit_port(&id);
                st.place(&id);
            }
        }
        inner.publish(&mut st);
    }

    /// Waits until every placed port whose device exists has been opened or has failed to open
    /// for good (the worker has processed the requests; a queue still being released is
    /// retried), or until `timeout` passes. Returns true if settled.
    pub fn wait_settled(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |st| {
            st.placed
                .iter()
                .all(|id| st.ports.get(id).is_none_or(PortEntry::settled))
        })
    }

    /// As [`Switch::wait_settled`], for the given ports only (ports not placed on this host
    /// are settled).
    pub fn wait_ports_settled(&self, ids: &[String], timeout: Duration) -> bool {
        self.wait_until(timeout, |st| {
            ids.iter()
                .all(|id| st.ports.get(id).is_none_or(PortEntry::settled))
        })
    }

    fn wait_until(&self, timeout: Duration, done: impl Fn(&State) -> bool) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if done(&self.inner.lock()) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Status of one port.
    pub fn port_status(&self, id: &str) -> Option<PortStatus> {
        let st = self.inner.lock();
        let p = st.ports.get(id)?;
        let h = p.handle.as_ref();
        let device = &p.cfg.device;
        let link = h.map_or(LinkState::Closed, |h| h.shared.state());
        // An open port's device exists; others are looked up.
        let present = link == LinkState::Up || netdev::ifindex(device).is_some();
        Some(PortStatus {
            id: id.to_owned(),
            device: device.clone(),
            admin_up: p.cfg.admin_up,
            link,
            mode: h.map_or(PortMode::Closed, |h| h.shared.mode()),
            refused: p.refused.is_some(),
            error: p
                .refused
                .clone()
                .or_else(|| h.and_then(|h| h.shared.error()))
                .or_else(|| (!present).then(|| format!("no interface {device}"))),
            worker: h.map(|h| h.worker),
            present,
            tx_stalled: h.is_some_and(|h| h.shared.tx_stalled()),
        })
    }

    /// Keeps these devices prepared (their programs attached, passing every frame on until a
    /// port opens on them, and their sockets bound while no port holds them) from now on, so
    /// that a port on one of them starts without attaching or binding: the control plane's
    /// registered interfaces. A device that does not exist yet is prepared when it appears.
    pub fn prepare_devices(&self, devices: &[String]) {
        let mut warm = self.inner.warm();
        for d in devices {
            warm.pinned.insert(d.clone());
        }
        drop(warm);
        let present: Vec<String> = devices
            .iter()
            .filter(|d| netdev::ifindex(d).is_some())
            .cloned()
            .collect();
        self.inner.queue_devices(&present);
    }

    /// Keeps exactly these devices prepared: those kept and not named are released.
    pub fn keep_devices(&self, devices: &[String]) {
        let wanted: HashSet<&String> = devices.iter().collect();
        let gone: Vec<String> = self
            .inner
            .warm()
            .pinned
            .iter()
            .filter(|d| !wanted.contains(d))
            .cloned()
            .collect();
        self.release_devices(&gone);
        self.prepare_devices(devices);
    }

    /// Stops keeping these devices prepared: their sockets bound ahead close, and a program no
    /// open port uses detaches.
    pub fn release_devices(&self, devices: &[String]) {
        let mut warm = self.inner.warm();
        for d in devices {
            warm.pinned.remove(d);
            warm.failed.remove(d);
            if let Some(p) = warm.prepared.remove(d) {
                afxdp::drop_later(p);
            }
        }
        drop(warm);
        let mut st = self.inner.lock();
        let ahead: Vec<BoundAhead> = devices.iter().filter_map(|d| st.ahead.remove(d)).collect();
        drop(st);
        for k in ahead {
            afxdp::discard(k.port);
        }
    }

    /// Whether `device`'s sockets are bound ahead, waiting for its port (see
    /// [`prepare_devices`](Self::prepare_devices)).
    pub fn bound_ahead(&self, device: &str) -> bool {
        self.inner.lock().ahead.contains_key(device)
    }

    /// Whether the switch forwards for this port now (admin up and open): no system call.
    pub fn is_forwarding(&self, id: &str) -> bool {
        let st = self.inner.lock();
        st.ports.get(id).is_some_and(|p| {
            p.cfg.admin_up
                && p.handle
                    .as_ref()
                    .is_some_and(|h| h.shared.state() == LinkState::Up)
        })
    }

    /// Why the switch refuses this port (a conflict or a limit), if it does.
    pub fn refusal(&self, id: &str) -> Option<String> {
        self.inner.lock().ports.get(id)?.refused.clone()
    }

    /// Status of every port, sorted by id.
    pub fn ports(&self) -> Vec<PortStatus> {
        let ids: Vec<String> = self.inner.lock().ports.keys().cloned().collect();
        let mut v: Vec<PortStatus> = ids.iter().filter_map(|id| self.port_status(id)).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Counters of one port (at most a millisecond old while traffic flows); zeros for a port
    /// not placed on this host.
    pub fn port_stats(&self, id: &str) -> Option<PortStats> {
        let st = self.inner.lock();
        let p = st.ports.get(id)?;
        Some(
            p.handle
                .as_ref()
                .map_or_else(PortStats::default, |h| h.shared.counters.read()),
        )
    }

    /// Whether the port's transmit is stalled now ([`PortStatus::tx_stalled`]); false for a port
    /// not open here or unknown.
    pub fn tx_stalled(&self, id: &str) -> bool {
        let st = self.inner.lock();
        st.ports
            .get(id)
            .and_then(|p| p.handle.as_ref())
            .is_some_and(|h| h.shared.tx_stalled())
    }

    /// The connections a port's stateful security groups track, as its worker holds them; empty
    /// for a port not placed on this host, `None` for an unknown port or a worker that did not
    /// answer within 2 s.
    pub fn connections(&self, id: &str) -> Option<Vec<Connection>> {
        let (worker, slot) = {
            let st = self.inner.lock();
            let p = st.ports.get(id)?;
            match (p.handle.as_ref(), st.slots.get(id)) {
                (Some(h), Some(slot)) => (h.worker, slot),
                _ => return Some(Vec::new()),
            }
        };
        let (tx, rx) = mpsc::channel();
        self.inner
            .send_to(worker, Command::Connections { slot, reply: tx });
        rx.recv_timeout(Duration::from_secs(2)).ok()
    }

    /// Slots in the MAC table the workers share: at least twice the sum of the networks' learning
    /// limits (up to `[switch] max_macs`), a power of two, 64 at least; it never shrinks while
    /// the switch runs.
    pub fn mac_table_slots(&self) -> usize {
        self.inner
            .fdb
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .capacity()
    }

    /// The live MAC table of a network.
    pub fn mac_table(&self, network: &str) -> Option<Vec<MacTableEntry>> {
        let net = self.inner.lock().nets.get(network)?;
        // The table is shared: any worker answers, on the clock they share, naming each
        // entry's port as its snapshot has it.
        let (tx, rx) = mpsc::channel();
        self.inner.send_to(0, Command::MacTable { net, reply: tx });
        rx.recv_timeout(Duration::from_secs(2)).ok()
    }

    /// Everything an exporter reports, read in one pass from the published copies (no system
    /// call, nothing asked of the worker): ports sorted by id with their counters, forwarded
    /// networks with their MAC tables' sizes, the worker's own statistics.
    pub fn observe(&self) -> Observation {
        let st = self.inner.lock();
        let mut ports: Vec<PortObservation> = st
            .ports
            .iter()
            .map(|(id, p)| {
                let h = p.handle.as_ref();
                let link = h.map_or(LinkState::Closed, |h| h.shared.state());
                let state = if p.refused.is_some()
                    || matches!(link, LinkState::Failed | LinkState::OpenFailed)
                {
                    PortState::Error
                } else if !p.cfg.admin_up {
                    PortState::AdminDown
                } else if link == LinkState::Up {
                    PortState::Up
                } else {
                    PortState::Down
                };
                PortObservation {
                    id: id.clone(),
                    device: p.cfg.device.clone(),
                    network: match &p.cfg.role {
                        PortRole::Access { network } => Some(network.clone()),
                        PortRole::Trunk { .. } => None,
                    },
                    state,
                    tx_stalled: h.is_some_and(|h| h.shared.tx_stalled()),
                    stats: h.map_or_else(PortStats::default, |h| h.shared.counters.read()),
                }
            })
            .collect();
        ports.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let mut networks: Vec<NetworkObservation> = st
            .networks
            .iter()
            .filter(|(_, n)| n.refused.is_none())
            .map(|(id, n)| {
                let (entries, _) = st
                    .nets
                    .get(id)
                    .map_or((0, 0), |slot| self.inner.crew[0].stats.macs(slot));
                NetworkObservation {
                    id: id.clone(),
                    vlan: n.cfg.vlan,
                    physnet: n.cfg.physnet.clone(),
                    mac_entries: entries,
                    mac_limit: n.cfg.mac_limit,
                }
            })
            .collect();
        networks.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        Observation {
            ports,
            networks,
            workers: self.inner.crew.iter().map(|h| h.stats.read()).collect(),
        }
    }

    /// Where the UMEMs' frames are (free, workers, kernel per port), over all workers.
    pub fn accounting(&self) -> Option<Accounting> {
        let mut all = Accounting::default();
        for w in 0..self.inner.crew.len() {
            let (tx, rx) = mpsc::channel();
            self.inner
                .send_to(w as u16, Command::Accounting { reply: tx });
            let a = rx.recv_timeout(Duration::from_secs(2)).ok()?;
            all.total += a.total;
            all.free += a.free;
            all.user += a.user;
            all.by_port.extend(a.by_port);
        }
        Some(all)
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.inner.crew.len()
    }

    /// The worker's poll mode.
    pub fn poll_mode(&self) -> PollMode {
        self.inner.opts.worker.poll
    }

    /// Closes every port (programs detached, sockets closed) and stops the threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.inner.stop.store(true, Ordering::Release);
        if let Some(m) = self.monitor.take() {
            let _ = m.join();
        }
        for queue in [&self.inner.opener, &self.inner.preparer] {
            if let Ok(mut o) = queue.lock() {
                *o = None;
            }
        }
        for o in self.openers.drain(..) {
            let _ = o.join();
        }
        // Sockets bound ahead on the workers' UMEMs close before the workers unmap them, with
        // those discarded meanwhile (each close waits for a grace period: side by side).
        let ahead = std::mem::take(&mut self.inner.lock().ahead);
        for (_, k) in ahead {
            afxdp::discard(k.port);
        }
        if !afxdp::wait_detached(Duration::from_secs(5)) {
            tracing::warn!("sockets still closing when the workers stop");
        }
        self.inner.send_all(|| Command::Stop);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        // Every port is closed: the programs kept for registered devices detach now, and those
        // handed to detach threads are waited for.
        let mut warm = self.inner.warm();
        warm.pinned.clear();
        warm.prepared.clear();
        drop(warm);
        if !afxdp::wait_detached(Duration::from_secs(5)) {
            tracing::warn!(
                "programs still detaching at shutdown; the kernel detaches them at exit"
            );
        }
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.stop();
    }
}
