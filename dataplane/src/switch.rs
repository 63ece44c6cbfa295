//! The control-side handle of the data plane: applies configurations, opens and closes ports on
//! real interfaces, watches their devices, and answers status, counter and MAC-table queries.
//!
//! # Design
//! [`Switch::apply`] validates a [`SwitchConfig`], compiles it into a [`Snapshot`] (stable slots
//! per network and port), and sends the worker the difference: ports to close, the snapshot, ports
//! to open. It never waits for the worker. A monitor thread checks every 100 ms that each port's
//! device still exists with the same index: a port whose interface disappeared is closed and
//! reported DOWN, and opened again when the interface comes back, all without touching the
//! other ports. Shutdown (drop, or [`Switch::shutdown`]) closes every port: programs detach and
//! sockets close. If the process is killed instead, the kernel closes the fds and the BPF links
//! detach by themselves.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{ConfigError, SlotMap, Snapshot, SwitchConfig};
use crate::fdb::MacEntry;
use crate::port::afxdp::{AfXdpPort, AfXdpSpec, BindMode, XdpMode};
use crate::port::PortMode;
use crate::stats::PortStats;
use crate::sys::netdev;
use crate::sys::umem::Accounting;
use crate::sys::xsk::RingSizes;
use crate::wire::Mac;
use crate::worker::{Command, LinkState, PollMode, PortShared, Worker, WorkerConfig};

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
    /// Pin the worker thread to this CPU.
    pub cpu: Option<usize>,
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
    /// Why the port is not open, if it is not.
    pub error: Option<String>,
}

impl PortStatus {
    /// Up, open and forwarding.
    pub fn is_forwarding(&self) -> bool {
        self.admin_up && self.link == LinkState::Up
    }
}

/// One MAC table entry with the port's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacTableEntry {
    /// Address.
    pub mac: Mac,
    /// Port id (empty if the port is gone).
    pub port: String,
    /// Seconds since last seen.
    pub age_secs: u32,
    /// Static entry.
    pub is_static: bool,
}

struct PortHandle {
    device: String,
    shared: Arc<PortShared>,
    /// Interface index the open request was made for; `None` when not requested.
    requested: Option<u32>,
    last_attempt: Option<Instant>,
    /// Open requests sent; compared with the worker's count of requests carried out.
    sent: u64,
    admin_up: bool,
}

struct State {
    cfg: SwitchConfig,
    nets: SlotMap,
    ports: SlotMap,
    version: u64,
    handles: HashMap<String, PortHandle>,
}

struct Inner {
    tx: Mutex<Sender<Command<AfXdpPort>>>,
    pending: Arc<AtomicBool>,
    state: Mutex<State>,
    opts: SwitchOptions,
    stop: AtomicBool,
}

/// The running data plane.
pub struct Switch {
    inner: Arc<Inner>,
    worker: Option<JoinHandle<()>>,
    monitor: Option<JoinHandle<()>>,
}

impl core::fmt::Debug for Switch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Switch").finish_non_exhaustive()
    }
}

/// Retry interval for a port whose device exists but failed to open.
const RETRY: Duration = Duration::from_secs(1);

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, cmd: Command<AfXdpPort>) {
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send(cmd);
        }
        self.pending.store(true, Ordering::Release);
    }

    fn spec(&self, device: &str) -> AfXdpSpec {
        AfXdpSpec {
            device: device.to_owned(),
            xdp_mode: self.opts.xdp_mode,
            bind_mode: self.opts.bind_mode,
            rings: self.opts.rings,
        }
    }

    /// Opens ports whose device exists and closes ports whose device went away.
    fn reconcile_devices(&self, st: &mut State) {
        let now = Instant::now();
        let ids: Vec<String> = st.handles.keys().cloned().collect();
        for id in ids {
            let Some(slot) = st.ports.get(&id) else {
                continue;
            };
            let Some(h) = st.handles.get_mut(&id) else {
                continue;
            };
            let present = netdev::ifindex(&h.device);
            let state = h.shared.state();
            match h.requested {
                Some(ifi) if present != Some(ifi) || state == LinkState::Failed => {
                    // The interface vanished, was re-created, or stopped sending: close the port
                    // (it is reported DOWN); it is opened again once the device is usable.
                    self.send(Command::RemovePort { slot });
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
                    let idle = h.shared.attempts() >= h.sent;
                    if idle && h.last_attempt.is_none_or(|t| now - t >= wait) {
                        h.last_attempt = Some(now);
                        h.requested = Some(ifi);
                        h.sent += 1;
                        let spec = self.spec(&h.device);
                        self.send(Command::AddPort {
                            slot,
                            spec,
                            shared: Arc::clone(&h.shared),
                        });
                    }
                }
                Some(_) => {}
                None => {
                    let backoff = h.last_attempt.is_some_and(|t| now - t < RETRY / 10);
                    if let (Some(ifi), false) = (present, backoff) {
                        let spec = self.spec(&h.device);
                        h.requested = Some(ifi);
                        h.last_attempt = Some(now);
                        h.sent += 1;
                        self.send(Command::AddPort {
                            slot,
                            spec,
                            shared: Arc::clone(&h.shared),
                        });
                    }
                }
            }
        }
    }
}

impl Switch {
    /// Starts the worker and the device monitor, with no networks and no ports.
    pub fn start(opts: SwitchOptions) -> io::Result<Switch> {
        let worker: Worker<AfXdpPort> = Worker::new(opts.worker.clone())?;
        let (tx, rx) = mpsc::channel();
        let pending = Arc::new(AtomicBool::new(false));
        let inner = Arc::new(Inner {
            tx: Mutex::new(tx),
            pending: Arc::clone(&pending),
            state: Mutex::new(State {
                cfg: SwitchConfig::default(),
                nets: SlotMap::default(),
                ports: SlotMap::default(),
                version: 0,
                handles: HashMap::new(),
            }),
            opts: opts.clone(),
            stop: AtomicBool::new(false),
        });
        let cpu = opts.cpu;
        let worker = std::thread::Builder::new()
            .name("qswitch-worker".into())
            .spawn(move || {
                if let Some(cpu) = cpu {
                    if let Err(e) = crate::sys::pin_current_thread(cpu) {
                        log::warn!("cannot pin the worker to CPU {cpu}: {e}");
                    }
                }
                worker.run(rx, pending)
            })?;
        let m = Arc::clone(&inner);
        let monitor = std::thread::Builder::new()
            .name("qswitch-monitor".into())
            .spawn(move || {
                while !m.stop.load(Ordering::Acquire) {
                    let retry_soon = {
                        let mut st = m.lock();
                        m.reconcile_devices(&mut st);
                        st.handles
                            .values()
                            .any(|h| h.shared.state() == LinkState::OpenFailed && h.shared.busy())
                    };
                    // A queue still being released frees up within milliseconds: look again soon.
                    std::thread::sleep(Duration::from_millis(if retry_soon { 5 } else { 100 }));
                }
            })?;
        Ok(Switch {
            inner,
            worker: Some(worker),
            monitor: Some(monitor),
        })
    }

    /// Makes `cfg` the switch's configuration. Ports whose device exists are opened at once;
    /// the others as soon as their device appears. Nothing of an invalid configuration is applied.
    pub fn apply(&self, mut cfg: SwitchConfig) -> Result<(), ConfigError> {
        cfg.validate()?;
        // A port without an explicit MTU takes its interface's (frames up to the interface MTU
        // cross, longer ones are dropped and counted), or the default while the device is absent.
        for p in cfg.ports.iter_mut().filter(|p| p.mtu.is_none()) {
            p.mtu = netdev::mtu(&p.device).ok();
        }
        let inner = &self.inner;
        let mut st = inner.lock();
        // Close ports that are gone or moved to another device, before their slots can be reused.
        let mut gone = Vec::new();
        for (id, h) in &st.handles {
            let keep = cfg
                .ports
                .iter()
                .any(|p| &p.id == id && p.device == h.device);
            if !keep {
                gone.push(id.clone());
            }
        }
        for id in gone {
            if let (Some(slot), Some(h)) = (st.ports.get(&id), st.handles.remove(&id)) {
                if h.requested.is_some() {
                    inner.send(Command::RemovePort { slot });
                }
            }
        }
        st.version += 1;
        let version = st.version;
        let State { nets, ports, .. } = &mut *st;
        let snap = Snapshot::compile(&cfg, version, nets, ports);
        inner.send(Command::Snapshot(Arc::new(snap)));
        for p in &cfg.ports {
            let h = st
                .handles
                .entry(p.id.clone())
                .or_insert_with(|| PortHandle {
                    device: p.device.clone(),
                    shared: Arc::new(PortShared::default()),
                    requested: None,
                    last_attempt: None,
                    sent: 0,
                    admin_up: p.admin_up,
                });
            h.admin_up = p.admin_up;
        }
        st.cfg = cfg;
        inner.reconcile_devices(&mut st);
        Ok(())
    }

    /// Waits until every port whose device exists has been opened or has failed to open for good
    /// (the worker has processed the requests; a queue still being released is retried), or until
    /// `timeout` passes. Returns true if settled.
    pub fn wait_settled(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            let pending = {
                let st = self.inner.lock();
                st.handles.values().any(|h| {
                    let state = h.shared.state();
                    h.requested.is_some()
                        && (state == LinkState::Closed
                            || (state == LinkState::OpenFailed && h.shared.busy()))
                })
            };
            if !pending {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// The configuration last applied.
    pub fn config(&self) -> SwitchConfig {
        self.inner.lock().cfg.clone()
    }

    /// Status of one port.
    pub fn port_status(&self, id: &str) -> Option<PortStatus> {
        let st = self.inner.lock();
        let h = st.handles.get(id)?;
        Some(PortStatus {
            id: id.to_owned(),
            device: h.device.clone(),
            admin_up: h.admin_up,
            link: h.shared.state(),
            mode: h.shared.mode(),
            error: h.shared.error().or_else(|| {
                netdev::ifindex(&h.device)
                    .is_none()
                    .then(|| format!("no interface {}", h.device))
            }),
        })
    }

    /// Status of every port, sorted by id.
    pub fn ports(&self) -> Vec<PortStatus> {
        let ids: Vec<String> = self.inner.lock().handles.keys().cloned().collect();
        let mut v: Vec<PortStatus> = ids.iter().filter_map(|id| self.port_status(id)).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Counters of one port (at most a millisecond old while traffic flows).
    pub fn port_stats(&self, id: &str) -> Option<PortStats> {
        let st = self.inner.lock();
        st.handles.get(id).map(|h| h.shared.counters.read())
    }

    /// The live MAC table of a network.
    pub fn mac_table(&self, network: &str) -> Option<Vec<MacTableEntry>> {
        let (net, slots) = {
            let st = self.inner.lock();
            let net = st.nets.get(network)?;
            let slots: HashMap<u16, String> = st
                .handles
                .keys()
                .filter_map(|id| st.ports.get(id).map(|s| (s, id.clone())))
                .collect();
            (net, slots)
        };
        let (tx, rx) = mpsc::channel();
        self.inner.send(Command::MacTable { net, reply: tx });
        let entries: Vec<MacEntry> = rx.recv_timeout(Duration::from_secs(2)).ok()?;
        Some(
            entries
                .into_iter()
                .map(|e| MacTableEntry {
                    mac: e.mac,
                    port: slots.get(&e.port.slot).cloned().unwrap_or_default(),
                    age_secs: e.age_secs,
                    is_static: e.is_static,
                })
                .collect(),
        )
    }

    /// Where the UMEM's frames are (free, worker, kernel per port).
    pub fn accounting(&self) -> Option<Accounting> {
        let (tx, rx) = mpsc::channel();
        self.inner.send(Command::Accounting { reply: tx });
        rx.recv_timeout(Duration::from_secs(2)).ok()
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
        self.inner.send(Command::Stop);
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.stop();
    }
}
