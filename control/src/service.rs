//! [`Control`]: the operations of the Quantum model, with their rules.
//!
//! # Thread-safety
//!
//! [`Control`] holds no lock of its own: the store owns its concurrency.
//! Reads run on a pool of read connections and never wait for writers; a
//! write runs its rule checks and changes in one write transaction (writers
//! are serialized by the store), records what it touched in the store's
//! revision log, derives the desired form of just those items inside the same
//! transaction, commits, and hands that delta to the applier. The applier is
//! one thread that feeds the [`Forwarder`] in revision order, coalescing the
//! deltas of concurrent writers and dropping what changes nothing the data
//! plane sees. A write is answered once its delta is applied and the ports it
//! set are in force ([`Forwarder::settle`]), so a client that reads after a
//! plug sees the port's status. Operations are synchronous and block on disk
//! I/O (the commit's fsync): async callers run them on a blocking thread
//! (`tokio::task::spawn_blocking`), except shows that only read the store (an
//! index seek or two on a pooled WAL reader, which never waits for a writer),
//! which cost less than the hop to a blocking thread. A port's status is read
//! from the forwarder, which may lock: port shows take the hop.
//!
//! Both API versions create networks and ports through the same operations
//! ([`Control::create_networks`], [`Control::create_ports`]): quotas, segments
//! and inserts are written once; what differs between the versions (a Quantum
//! port is [`crate::neutron::PortSpec::bare`]) is the caller's choice of spec.
//!
//! # Limitations
//!
//! Writers are serialized by the store; concurrent writers share a commit (group
//! commit: one fsync for all of them), and bulk requests are one transaction.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::error::{ControlError, Result};
use crate::forward::{DesiredState, Forwarder};
use crate::model::{self, Interface, Network, NetworkView, Port, PortState, PortView};
use crate::quota::{Quotas, Resource};
use crate::reconcile;
use crate::store::sqlite::SqliteStore;
use crate::store::{AfterCommit, Store, Tx};

mod applier;

/// An applier ticket and the ports the write set (they must settle before it is answered).
type Ticket = (u64, u64, Vec<String>);

use applier::{Applier, Work};

/// A physical network: a name networks are mapped onto, and the VLAN ranges tenant networks
/// draw their segmentation ids from (Neutron's `network_vlan_ranges`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Physnet {
    /// Its name (`provider:physical_network`).
    pub name: String,
    /// Inclusive VLAN ranges for tenant networks; none: provider networks only.
    pub vlan_ranges: Vec<(u16, u16)>,
}

impl Physnet {
    /// The default physical network: `physnet1`, VLANs 1 to 4094 for tenant networks.
    pub fn default_set() -> Vec<Physnet> {
        vec![Physnet {
            name: "physnet1".into(),
            vlan_ranges: vec![(1, 4094)],
        }]
    }
}

/// Tunables of the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlOptions {
    /// The physical networks, in the order tenant networks draw VLANs from their ranges.
    pub physnets: Vec<Physnet>,
    /// Absolute limits per tenant (default: none).
    pub quotas: Quotas,
    /// Bind a v2.0 port to its `tap` device only when that device is registered as an interface
    /// of the port's tenant (by the hypervisor side), instead of whenever the device appears.
    /// On in token mode, where callers are authenticated; off in noauth mode.
    pub authorize_tap_binding: bool,
    /// The largest network MTU, and the default of a new network's (Neutron's
    /// `global_physnet_mtu`; default 1500).
    pub physnet_mtu: u32,
    /// The host this process's data plane runs on (Neutron's `[DEFAULT] host`): it forwards
    /// only for ports bound to it (`binding:host_id`) or bound to none. `None`: every port.
    pub host: Option<String>,
}

impl ControlOptions {
    fn derive(&self) -> reconcile::Derive {
        reconcile::Derive {
            authorize_tap: self.authorize_tap_binding,
            host: self.host.clone(),
        }
    }
}

impl Default for ControlOptions {
    fn default() -> Self {
        Self {
            physnets: Physnet::default_set(),
            quotas: Quotas::default(),
            authorize_tap_binding: false,
            physnet_mtu: crate::neutron::DEFAULT_MTU,
            host: None,
        }
    }
}

/// Whether a registration created an interface or changed an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// The interface id was new.
    Created,
    /// The interface id was already registered to this tenant; its device
    /// was set.
    Updated,
}

/// The control plane: the model, its store and the reconciler.
pub struct Control {
    /// Shared with the applier, which reads the whole state from it to resync.
    store: Arc<dyn Store>,
    forwarder: Arc<dyn Forwarder>,
    /// Shared with the after-commit steps of writes, which may run on another writer's thread.
    applier: Arc<Applier>,
    options: ControlOptions,
    metrics: Arc<crate::metrics::StoreMetrics>,
    /// The last revision handed to the applier (by a write's step or the follower).
    sent: Arc<Sent>,
    /// On a shared store: the thread that follows the other processes' revisions.
    follower: Option<Follower>,
}

/// The thread that hands the data plane the revisions other processes commit to a shared store.
/// Dropped, it stops at its next wake-up (at most [`FOLLOW_POLL`] later) and is waited for, so
/// that its references to the applier and the data plane are gone when the control plane is;
/// one stuck in a call to an unreachable database is waited for at most [`FOLLOW_STOP`], then
/// left to end on its own.
#[derive(Debug)]
struct Follower {
    stop: Arc<AtomicBool>,
    ended: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How long dropping a [`Follower`] waits for its thread.
const FOLLOW_STOP: std::time::Duration = std::time::Duration::from_secs(3);

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let ended = self
            .ended
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .recv_timeout(FOLLOW_STOP);
        match ended {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                tracing::warn!("the follower thread is still in a call to the store; not waiting");
            }
            _ => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
            }
        }
    }
}

/// How long a write on a shared store waits for the hosts of the ports it set to report them.
const SETTLE_REPORTED: std::time::Duration = std::time::Duration::from_secs(1);
/// How often a write waiting for host reports reads them, whatever it heard (a report made while
/// no connection listened).
const SETTLE_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// How long the follower waits for a wake-up before it looks at the store's revision anyway.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Inside a transaction of a shared store: the work for the revisions other processes
/// committed after `sent`, each revision's delta in order. When the revision log no longer
/// holds all of them (this process was away too long): with `whole`, the whole state; without
/// (inside a write, under the lock every server's writes wait on), a resync the applier does
/// from a read that stops no one. When the store's revision went back (a database restored from
/// a backup, rare): the whole state, here (what this transaction writes next builds on it).
fn catch_up(tx: &dyn Tx, sent: u64, derive: &reconcile::Derive, whole: bool) -> Result<Vec<Work>> {
    let Some(revisions) = tx.changes_after(sent)? else {
        let rev = tx.revision()?;
        tracing::info!(
            after = sent,
            revision = rev,
            "the revision log does not hold what this process missed; deriving the whole state"
        );
        if !whole && rev > sent {
            return Ok(vec![Work::Resync(rev)]);
        }
        return Ok(vec![whole_state(tx, rev, derive)?]);
    };
    revisions
        .into_iter()
        .map(|(rev, touched)| Ok(Work::Delta(rev, reconcile::delta(tx, &touched, derive)?)))
        .collect()
}

/// Records that `works` were handed to the applier: `sent` moves to the last one's revision
/// (back, when a whole state from a restored database is among them).
fn mark_sent(sent: &Sent, works: &[Work]) {
    let Some(last) = works.last().map(revision_of) else {
        return;
    };
    // The last revision that touched a port this data plane takes (a whole state sets every
    // port).
    let ports = works
        .iter()
        .filter(|w| match w {
            Work::Full(..) | Work::Resync(_) => true,
            Work::Delta(_, d) => d.takes_port,
        })
        .map(revision_of)
        .max();
    if works.iter().any(|w| matches!(w, Work::Full(..))) {
        sent.revision.store(last, Ordering::SeqCst);
        if let Some(r) = ports {
            sent.ports.store(r, Ordering::SeqCst);
        }
    } else {
        sent.revision.fetch_max(last, Ordering::SeqCst);
        if let Some(r) = ports {
            sent.ports.fetch_max(r, Ordering::SeqCst);
        }
    }
}

/// What this process has handed its applier: the last revision, and the last one that touched a
/// port its data plane takes (a host reports that one at once: a plug waits for it).
#[derive(Debug, Default)]
struct Sent {
    revision: AtomicU64,
    ports: AtomicU64,
}

/// The whole state as of `rev`, with the devices registered on this data plane's host.
fn whole_state(tx: &dyn Tx, rev: u64, derive: &reconcile::Derive) -> Result<Work> {
    Ok(Work::Full(
        rev,
        reconcile::desired_state(tx, derive)?,
        reconcile::devices_here(tx, derive)?,
    ))
}

/// The revision a piece of work brings the data plane to.
fn revision_of(work: &Work) -> u64 {
    match work {
        Work::Full(rev, ..) | Work::Delta(rev, _) | Work::Resync(rev) => *rev,
    }
}

/// Follows a shared store until `stop`: woken by the store (PostgreSQL's NOTIFY) or every
/// [`FOLLOW_POLL`], it hands the applier what other processes committed since this process last
/// did, in this process's write order (`Store::follow`: it keeps its place in revision order
/// among this process's own writes, without stopping other processes' writers). A store that
/// cannot be reached is tried again at the next wake-up.
fn follow(
    store: &dyn Store,
    applier: &Arc<Applier>,
    sent: &Arc<Sent>,
    derive: &reconcile::Derive,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::SeqCst) {
        store.wait_for_change(FOLLOW_POLL);
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let woken = std::time::Instant::now();
        // Behind, or ahead of a database restored to an earlier revision.
        let mut behind = false;
        let looked = store.read(&mut |tx| {
            behind = tx.revision()? != sent.revision.load(Ordering::SeqCst);
            Ok(())
        });
        if let Err(e) = looked {
            tracing::debug!(error = %e, "cannot read the store's revision; trying again");
            continue;
        }
        if !behind {
            continue;
        }
        let followed = store.follow(&mut |tx| {
            let works = catch_up(tx, sent.revision.load(Ordering::SeqCst), derive, true)?;
            if works.is_empty() {
                return Ok(None);
            }
            let (sent, applier) = (Arc::clone(sent), Arc::clone(applier));
            let step: AfterCommit = Box::new(move || {
                mark_sent(&sent, &works);
                for w in works {
                    applier.send(w);
                }
            });
            Ok(Some(step))
        });
        match followed {
            Ok(()) => tracing::debug!(
                revision = sent.revision.load(Ordering::SeqCst),
                took_us = woken.elapsed().as_micros() as u64,
                "followed the store's revisions"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot follow the store's revisions; trying again")
            }
        }
    }
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("store", &self.store)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Control {
    /// Opens (creating it with its schema on first start) the SQLite database
    /// at `path`, rebuilds the desired state from it and applies it once.
    pub fn open(path: impl AsRef<Path>, forwarder: Arc<dyn Forwarder>) -> Result<Self> {
        Self::open_with(path, forwarder, ControlOptions::default())
    }

    /// As [`Control::open`], with options.
    pub fn open_with(
        path: impl AsRef<Path>,
        forwarder: Arc<dyn Forwarder>,
        options: ControlOptions,
    ) -> Result<Self> {
        let store = SqliteStore::open(path.as_ref())?;
        Self::with_store(Box::new(store), forwarder, options)
    }

    /// Opens the store `db` names: a PostgreSQL database for a `postgres://` or
    /// `postgresql://` URL, else the SQLite file at that path (created with its schema on first
    /// start); rebuilds the desired state from it and applies it once.
    pub fn open_db(
        db: &str,
        forwarder: Arc<dyn Forwarder>,
        options: ControlOptions,
    ) -> Result<Self> {
        if crate::store::postgres::is_url(db) {
            let store = crate::store::postgres::PgStore::open(db)?;
            Self::with_store(Box::new(store), forwarder, options)
        } else {
            Self::open_with(db, forwarder, options)
        }
    }

    /// A control plane on an in-memory database (for tests).
    pub fn in_memory(forwarder: Arc<dyn Forwarder>, options: ControlOptions) -> Result<Self> {
        Self::with_store(Box::new(SqliteStore::open_in_memory()?), forwarder, options)
    }

    /// A control plane on any store; applies the stored state once.
    pub fn with_store(
        store: Box<dyn Store>,
        forwarder: Arc<dyn Forwarder>,
        options: ControlOptions,
    ) -> Result<Self> {
        let mut names = std::collections::HashSet::new();
        for p in &options.physnets {
            if p.name.is_empty() || !names.insert(p.name.as_str()) {
                return Err(ControlError::Invalid {
                    reason: format!("physical network {:?}: empty or named twice", p.name),
                });
            }
            for &(min, max) in &p.vlan_ranges {
                if min == 0 || min > max || max > 4094 {
                    return Err(ControlError::Invalid {
                        reason: format!(
                            "VLAN range {min}..{max} of {} is not within 1..4094",
                            p.name
                        ),
                    });
                }
            }
        }
        let store: Arc<dyn Store> = Arc::from(store);
        let resync = {
            let store = Arc::clone(&store);
            let derive = options.derive();
            Box::new(move || {
                let mut out = None;
                store.read(&mut |tx| {
                    out = Some((
                        tx.revision()?,
                        reconcile::desired_state(tx, &derive)?,
                        reconcile::devices_here(tx, &derive)?,
                    ));
                    Ok(())
                })?;
                out.ok_or_else(ran_twice)
            })
        };
        let applier = Arc::new(Applier::start(Arc::clone(&forwarder), resync)?);
        let sent = Arc::new(Sent::default());
        let mut control = Self {
            applier,
            store,
            forwarder,
            options,
            metrics: Arc::default(),
            sent,
            follower: None,
        };
        control.reconcile()?;
        if control.store.shared() && control.forwarder.forwards() {
            let stop = Arc::new(AtomicBool::new(false));
            let (store, applier, sent) = (
                Arc::clone(&control.store),
                Arc::clone(&control.applier),
                Arc::clone(&control.sent),
            );
            let (derive, halt) = (control.options.derive(), Arc::clone(&stop));
            let (end, ended) = std::sync::mpsc::channel();
            let thread = std::thread::Builder::new()
                .name("qswitch-follower".into())
                .spawn(move || {
                    follow(store.as_ref(), &applier, &sent, &derive, &halt);
                    // Its references go before the one waiting is told.
                    drop((store, applier, sent));
                    let _ = end.send(());
                })
                .map_err(|e| ControlError::Store {
                    detail: format!("cannot start the follower thread: {e}"),
                })?;
            control.follower = Some(Follower {
                stop,
                ended: std::sync::Mutex::new(ended),
                thread: Some(thread),
            });
        }
        // The devices registered on this host are in the whole state `reconcile` handed over.
        Ok(control)
    }

    /// Derives the whole desired state from the store and hands it to the
    /// data plane in place of what it had (done at startup; callable to
    /// force a resync).
    pub fn reconcile(&self) -> Result<()> {
        // An API server without a data plane on a shared store has nothing to hand one.
        if self.idle() {
            return Ok(());
        }
        let derive = self.options.derive();
        let ticket = Arc::new(OnceLock::new());
        // Derived in this process's write order (on a shared store, from a snapshot that stops
        // no other server's writes), so that it takes its place in revision order.
        let started = std::time::Instant::now();
        self.store.follow(&mut |tx| {
            let rev = tx.revision()?;
            Ok(Some(self.after_commit(
                rev,
                vec![whole_state(tx, rev, &derive)?],
                Vec::new(),
                &ticket,
            )))
        })?;
        self.metrics.observe("write", started);
        if let Some((t, _, _)) = ticket.get() {
            self.applier.wait(*t);
        }
        Ok(())
    }

    /// A write's after-commit step: counts the revision, hands `works` to the applier in order
    /// (the last is the write's own) and leaves the applier's ticket for the last (with the ports
    /// the write set) in `ticket` for the writer to wait on.
    fn after_commit(
        &self,
        rev: u64,
        works: Vec<Work>,
        set: Vec<String>,
        ticket: &Arc<OnceLock<Ticket>>,
    ) -> AfterCommit {
        let (applier, metrics, ticket, sent) = (
            Arc::clone(&self.applier),
            Arc::clone(&self.metrics),
            Arc::clone(ticket),
            Arc::clone(&self.sent),
        );
        let idle = self.idle();
        Box::new(move || {
            metrics.committed(rev);
            mark_sent(&sent, &works);
            sent.revision.fetch_max(rev, Ordering::SeqCst);
            let mut last = 0;
            for w in works {
                if !idle {
                    last = applier.send(w);
                }
            }
            let _ = ticket.set((last, rev, set));
        })
    }

    /// An API server without a data plane on a shared store: it hands its applier nothing (it
    /// sees only its own revisions, whose gaps, the other servers', would make it resync).
    fn idle(&self) -> bool {
        self.store.shared() && !self.forwarder.forwards()
    }

    /// The desired state as derived from the store right now.
    pub fn desired_state(&self) -> Result<DesiredState> {
        self.read(|tx| reconcile::desired_state(tx, &self.options.derive()))
    }

    /// The store's last committed revision.
    pub fn store_revision(&self) -> Result<u64> {
        self.read(|tx| tx.revision())
    }

    /// Whether this process drives a data plane (`--no-dataplane` does not).
    pub fn has_dataplane(&self) -> bool {
        self.forwarder.forwards()
    }

    /// The last revision handed to the data plane that touched one of its ports (a port to
    /// open, change or keep, or one bound to its host whose device is not there yet): a host
    /// reports its applied revision at once when it reaches this one, since a write that set a
    /// port bound to it waits for that report.
    pub fn last_port_revision(&self) -> u64 {
        self.sent.ports.load(Ordering::SeqCst)
    }

    /// Waits until the data plane's revision is other than `seen` (it applied another), or
    /// `timeout` passed; the revision then. A host's report loop wakes on it.
    pub fn wait_applied(&self, seen: u64, timeout: std::time::Duration) -> u64 {
        self.applier.wait_applied(seen, timeout)
    }

    /// The last revision the data plane has been handed.
    pub fn applied_revision(&self) -> u64 {
        self.applier.applied()
    }

    /// The control plane's own measurements (store latency, revisions), for exporters.
    pub fn metrics(&self) -> &crate::metrics::StoreMetrics {
        &self.metrics
    }

    fn read<T>(&self, f: impl FnOnce(&dyn Tx) -> Result<T>) -> Result<T> {
        let mut f = Some(f);
        let mut out = None;
        let started = std::time::Instant::now();
        let result = self.store.read(&mut |tx| {
            let f = f.take().ok_or_else(ran_twice)?;
            out = Some(f(tx)?);
            Ok(())
        });
        self.metrics.observe("read", started);
        result?;
        out.ok_or_else(ran_twice)
    }

    /// Runs `f` in one write transaction; on success derives what it touched,
    /// commits, hands the delta to the applier and waits until it is in
    /// force.
    fn write<T>(&self, f: impl FnOnce(&dyn Tx) -> Result<T>) -> Result<T> {
        let derive = self.options.derive();
        let mut f = Some(f);
        let mut out = None;
        let ticket = Arc::new(OnceLock::new());
        let started = std::time::Instant::now();
        let shared = self.store.shared() && self.forwarder.forwards();
        let result = self.store.write(&mut |tx| {
            // On a shared store, what other processes committed since comes first.
            let mut works = if shared {
                catch_up(
                    tx,
                    self.sent.revision.load(Ordering::SeqCst),
                    &derive,
                    false,
                )?
            } else {
                Vec::new()
            };
            let f = f.take().ok_or_else(ran_twice)?;
            out = Some(f(tx)?);
            let Some((rev, touched)) = tx.close_revision()? else {
                let Some(rev) = works.last().map(revision_of) else {
                    return Ok(None);
                };
                return Ok(Some(self.after_commit(rev, works, Vec::new(), &ticket)));
            };
            let (delta, set) = if self.forwarder.forwards() {
                let delta = reconcile::delta(tx, &touched, &derive)?;
                let set: Vec<String> = delta
                    .ports
                    .iter()
                    .filter(|(_, p)| p.is_some())
                    .map(|(id, _)| id.clone())
                    .collect();
                (delta, set)
            } else if self.store.shared() {
                // No data plane here: only which ports to wait for, on their hosts, not their
                // desired form (which takes a dozen reads under the write lock).
                let set = reconcile::touched_ports(tx, &touched, &derive)?;
                (reconcile::Delta::default(), set)
            } else {
                (reconcile::Delta::default(), Vec::new())
            };
            works.push(Work::Delta(rev, delta));
            Ok(Some(self.after_commit(rev, works, set, &ticket)))
        });
        self.metrics.observe("write", started);
        let committed = started.elapsed();
        result?;
        // Waiting for the data plane happens outside every lock.
        if let Some((ticket, rev, set)) = ticket.get() {
            self.applier.wait(*ticket);
            let applied = started.elapsed();
            if !set.is_empty() {
                self.forwarder.settle(set);
                if self.store.shared() {
                    self.settle_reported(*rev, set);
                }
            }
            // Where a write's time goes: the durable commit, the data plane taking the change,
            // and the ports it set opening (a plug answers after all three).
            tracing::debug!(
                committed_us = committed.as_micros() as u64,
                applied_us = applied.as_micros() as u64,
                settled_us = started.elapsed().as_micros() as u64,
                ports = set.len(),
                "write in force"
            );
        }
        out.ok_or_else(ran_twice)
    }

    /// On a shared store: waits (at most [`SETTLE_REPORTED`]) until the hosts these ports are
    /// bound to have reported having applied revision `rev` (a host reports its ports' states
    /// with the revision they are as of), so that a plug answers with the port forwarding, as it
    /// does where the data plane is in the same process. Ports bound to no host, or to a host
    /// whose agent is dead, are not waited for. One read of the hosts' revisions, then the
    /// revisions the hosts report as they are heard (the store's notifications), and a read
    /// every [`SETTLE_POLL`] besides (a report made while no connection listened).
    fn settle_reported(&self, rev: u64, set: &[String]) {
        // Heard from before the first look: a report committed after it is heard below. What
        // was heard before it (another database's, before a restore) is not trusted.
        let listening = self.store.hear_reports();
        let Ok(hosts) = self.read(|tx| tx.bound_hosts(set)) else {
            return;
        };
        let mut read_at = std::time::Instant::now();
        // The hosts still to hear from: alive, and behind `rev`.
        let behind = |hosts: &[crate::agent::HostState]| -> Vec<String> {
            let now = crate::agent::now_secs();
            hosts
                .iter()
                .filter(|h| h.alive(now) && h.revision < rev)
                .map(|h| h.host.clone())
                .collect()
        };
        let mut waited = behind(&hosts);
        let end = std::time::Instant::now() + SETTLE_REPORTED;
        // Not listening: each wait below sleeps its whole slice, and the reads do the work.
        let mut seen = listening.unwrap_or(u64::MAX);
        while !waited.is_empty() {
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                tracing::debug!(revision = rev, hosts = ?waited, "a host has not reported yet");
                return;
            }
            let slice = SETTLE_POLL.saturating_sub(read_at.elapsed());
            let count = self.store.wait_for_report(seen, left.min(slice));
            if let Some(since) = listening.filter(|_| count > seen) {
                seen = count;
                waited.retain(|h| self.store.heard_revision(h, since).is_none_or(|r| r < rev));
            }
            // A read every SETTLE_POLL whatever was heard: a report made while no connection
            // listened (between two listeners) is read, not waited for.
            if !waited.is_empty() && read_at.elapsed() >= SETTLE_POLL {
                read_at = std::time::Instant::now();
                if let Ok(hosts) = self.read(|tx| tx.bound_hosts(set)) {
                    waited = behind(&hosts);
                }
            }
        }
    }

    /// On a shared store, what the hosts reported about these ports (one read), the one report
    /// that speaks for each; `None` where this process's own data plane is the source.
    fn reported(&self, ids: &[String]) -> Option<HashMap<String, crate::agent::ReportedStatus>> {
        if !self.store.shared() || ids.is_empty() {
            return None;
        }
        let rows = self
            .read(|tx| tx.reported_statuses(Some(ids)))
            .unwrap_or_default();
        let now = crate::agent::now_secs();
        let mut out: HashMap<String, crate::agent::ReportedStatus> = HashMap::new();
        for r in rows {
            // The heaviest report; between equals, the first host by name (a stable answer).
            match out.get(&r.port_id) {
                Some(have)
                    if (have.weight(now), std::cmp::Reverse(&have.host))
                        >= (r.weight(now), std::cmp::Reverse(&r.host)) => {}
                _ => {
                    out.insert(r.port_id.clone(), r);
                }
            }
        }
        Some(out)
    }

    /// Whether a port forwards, and why the data plane refuses it (its status is then ERROR):
    /// from this process's data plane, or on a shared store from what the port's host reported
    /// (DOWN when that host's agent is dead). `known`: the reports of a list, read at once.
    fn forwarding(
        &self,
        port_id: &str,
        known: Option<&HashMap<String, crate::agent::ReportedStatus>>,
    ) -> (bool, Option<String>) {
        if !self.store.shared() {
            return (
                self.forwarder.port_up(port_id),
                self.forwarder.port_error(port_id),
            );
        }
        let fetched;
        let known = match known {
            Some(k) => k,
            None => {
                fetched = self.reported(&[port_id.to_owned()]).unwrap_or_default();
                &fetched
            }
        };
        let now = crate::agent::now_secs();
        known.get(port_id).map_or((false, None), |r| {
            let error = (r.status == "ERROR").then(|| r.reason.clone().unwrap_or_default());
            (r.forwarding(now), error)
        })
    }

    fn port_view(&self, port: Port) -> PortView {
        self.port_view_with(port, None)
    }

    /// A port's view, its status from `known` (the reports of a list) where given.
    fn port_view_with(
        &self,
        port: Port,
        known: Option<&HashMap<String, crate::agent::ReportedStatus>>,
    ) -> PortView {
        let forwarding = port.attachment.is_some() && self.forwarding(&port.id, known).0;
        PortView {
            op_status: model::port_op_status(&port, forwarding),
            port,
        }
    }

    /// The views of ports, their statuses read at once on a shared store.
    fn quantum_port_views(&self, ports: Vec<Port>) -> Vec<PortView> {
        let plugged: Vec<String> = ports
            .iter()
            .filter(|p| p.attachment.is_some())
            .map(|p| p.id.clone())
            .collect();
        let known = self.reported(&plugged);
        ports
            .into_iter()
            .map(|port| self.port_view_with(port, known.as_ref()))
            .collect()
    }

    fn network_view(&self, network: Network, ports: Vec<Port>) -> NetworkView {
        NetworkView {
            op_status: model::network_op_status(&network),
            ports: self.quantum_port_views(ports),
            network,
        }
    }

    // ---- networks -------------------------------------------------------

    /// A tenant's networks with their ports, in creation order.
    pub fn list_networks(&self, tenant_id: &str) -> Result<Vec<NetworkView>> {
        let (networks, ports) =
            self.read(|tx| Ok((tx.networks(tenant_id)?, tx.tenant_ports(tenant_id)?)))?;
        // Every port's status in one read.
        let mut by_network: HashMap<String, Vec<PortView>> = HashMap::new();
        for v in self.quantum_port_views(ports) {
            by_network
                .entry(v.port.network_id.clone())
                .or_default()
                .push(v);
        }
        Ok(networks
            .into_iter()
            .map(|network| NetworkView {
                op_status: model::network_op_status(&network),
                ports: by_network.remove(&network.id).unwrap_or_default(),
                network,
            })
            .collect())
    }

    /// One network without its ports (one index lookup, however many ports it has).
    pub fn network_summary(&self, tenant_id: &str, net_id: &str) -> Result<NetworkView> {
        let n = self.read(|tx| find_network(tx, tenant_id, net_id))?;
        Ok(self.network_view(n, Vec::new()))
    }

    /// One network with its ports.
    pub fn network(&self, tenant_id: &str, net_id: &str) -> Result<NetworkView> {
        let (n, ports) = self.read(|tx| {
            let n = find_network(tx, tenant_id, net_id)?;
            let ports = tx.ports(net_id)?;
            Ok((n, ports))
        })?;
        Ok(self.network_view(n, ports))
    }

    /// Networks whose physical network is not configured (they reach no uplink), with it: the
    /// daemon warns about them at start-up.
    pub fn networks_on_unknown_physnets(&self) -> Result<Vec<(String, String)>> {
        let known: std::collections::HashSet<&str> = self
            .options
            .physnets
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        self.read(|tx| {
            Ok(tx
                .all_networks()?
                .into_iter()
                .filter_map(|n| Some((n.id, n.physnet?)))
                .filter(|(_, p)| !known.contains(p.as_str()))
                .collect())
        })
    }

    /// A tenant network's segment: the lowest free VLAN of the first physical network whose
    /// ranges have one, in the configured order.
    pub(crate) fn tenant_segment(&self, tx: &dyn Tx) -> Result<(String, u16)> {
        for p in &self.options.physnets {
            for &(min, max) in &p.vlan_ranges {
                if let Some(vlan) = tx.free_vlan(&p.name, min, max)? {
                    return Ok((p.name.clone(), vlan));
                }
            }
        }
        let ranges = self.options.physnets.iter().flat_map(|p| &p.vlan_ranges);
        Err(ControlError::NoFreeVlan {
            min: ranges.clone().map(|r| r.0).min().unwrap_or(0),
            max: ranges.map(|r| r.1).max().unwrap_or(0),
        })
    }

    /// Renames a network.
    pub fn rename_network(&self, tenant_id: &str, net_id: &str, name: &str) -> Result<()> {
        self.write(|tx| {
            find_network(tx, tenant_id, net_id)?;
            model::validate_network_name(name)?;
            tx.rename_network(net_id, name)
        })
    }

    /// Deletes a network and its ports; refused while any port is plugged.
    pub fn delete_network(&self, tenant_id: &str, net_id: &str) -> Result<()> {
        self.write(|tx| {
            find_network(tx, tenant_id, net_id)?;
            if tx.ports(net_id)?.iter().any(|p| p.attachment.is_some()) {
                return Err(ControlError::NetworkInUse {
                    net_id: net_id.to_owned(),
                });
            }
            tx.delete_network(net_id)
        })
    }

    // ---- ports ----------------------------------------------------------

    /// A network's ports in creation order.
    pub fn list_ports(&self, tenant_id: &str, net_id: &str) -> Result<Vec<PortView>> {
        let ports = self.read(|tx| {
            find_network(tx, tenant_id, net_id)?;
            tx.ports(net_id)
        })?;
        Ok(self.quantum_port_views(ports))
    }

    /// One port.
    pub fn port(&self, tenant_id: &str, net_id: &str, port_id: &str) -> Result<PortView> {
        let port = self.read(|tx| find_port(tx, tenant_id, net_id, port_id))?;
        Ok(self.port_view(port))
    }

    /// Sets a port's admin state.
    pub fn set_port_state(
        &self,
        tenant_id: &str,
        net_id: &str,
        port_id: &str,
        state: PortState,
    ) -> Result<()> {
        self.write(|tx| {
            find_port(tx, tenant_id, net_id, port_id)?;
            tx.set_port_state(port_id, state)
        })
    }

    /// Deletes a port; refused while it is plugged.
    pub fn delete_port(&self, tenant_id: &str, net_id: &str, port_id: &str) -> Result<()> {
        self.write(|tx| {
            let p = find_port(tx, tenant_id, net_id, port_id)?;
            if let Some(att_id) = p.attachment {
                return Err(ControlError::PortInUse {
                    net_id: net_id.to_owned(),
                    port_id: port_id.to_owned(),
                    att_id,
                });
            }
            tx.delete_port(port_id)
        })
    }

    // ---- attachments ----------------------------------------------------

    /// The attachment plugged into a port, if any.
    pub fn attachment(
        &self,
        tenant_id: &str,
        net_id: &str,
        port_id: &str,
    ) -> Result<Option<String>> {
        self.read(|tx| Ok(find_port(tx, tenant_id, net_id, port_id)?.attachment))
    }

    /// Plugs a registered interface into a port.
    ///
    /// Rules, in order: the network and port must exist for this tenant; the
    /// interface must be registered to this tenant (`InterfaceNotRegistered`,
    /// checked before anything that could reveal where the id is plugged);
    /// an interface already on a port of this network (this port included)
    /// is `AlreadyAttached`; a port already plugged is `PortInUse`; an
    /// interface plugged anywhere else is `AlreadyAttached`.
    pub fn plug(
        &self,
        tenant_id: &str,
        net_id: &str,
        port_id: &str,
        interface_id: &str,
    ) -> Result<()> {
        self.write(|tx| {
            let port = find_port(tx, tenant_id, net_id, port_id)?;
            let registered = tx
                .interface(interface_id)?
                .is_some_and(|i| i.tenant_id == tenant_id);
            if !registered {
                return Err(ControlError::InterfaceNotRegistered {
                    interface_id: interface_id.to_owned(),
                });
            }
            let current = tx.port_by_attachment(interface_id)?;
            let already = |holder: Port| ControlError::AlreadyAttached {
                net_id: net_id.to_owned(),
                port_id: port_id.to_owned(),
                att_id: interface_id.to_owned(),
                att_port_id: holder.id,
            };
            if let Some(holder) = current.clone().filter(|h| h.network_id == net_id) {
                return Err(already(holder));
            }
            if let Some(att_id) = port.attachment {
                return Err(ControlError::PortInUse {
                    net_id: net_id.to_owned(),
                    port_id: port_id.to_owned(),
                    att_id,
                });
            }
            if let Some(holder) = current {
                return Err(already(holder));
            }
            tx.set_port_attachment(port_id, Some(interface_id))
        })
    }

    /// Unplugs a port's attachment (a no-op when nothing is plugged).
    pub fn unplug(&self, tenant_id: &str, net_id: &str, port_id: &str) -> Result<()> {
        self.write(|tx| {
            let port = find_port(tx, tenant_id, net_id, port_id)?;
            if port.attachment.is_some() {
                tx.set_port_attachment(port_id, None)?;
            }
            Ok(())
        })
    }

    // ---- interface registry ---------------------------------------------

    /// Registers a host interface to a tenant, on any host, or changes its device.
    ///
    /// An id registered to another tenant, or a device registered under
    /// another id, is `InterfaceConflict`.
    pub fn register_interface(
        &self,
        tenant_id: &str,
        interface_id: &str,
        device: &str,
    ) -> Result<(Interface, Registered)> {
        self.register_interface_on(tenant_id, interface_id, device, "")
    }

    /// As [`Control::register_interface`], for a device on `host` (empty: any host). A device
    /// name is registered once per host: under another id on the same host, or on any host
    /// while it is registered on one (or the other way round), it is `InterfaceConflict`.
    pub fn register_interface_on(
        &self,
        tenant_id: &str,
        interface_id: &str,
        device: &str,
        host: &str,
    ) -> Result<(Interface, Registered)> {
        model::validate_tenant_id(tenant_id)?;
        model::validate_interface_id(interface_id)?;
        model::validate_device(device)?;
        model::validate_host(host)?;
        let (iface, how) = self.write(|tx| {
            let existing = tx.interface(interface_id)?;
            if existing.as_ref().is_some_and(|i| i.tenant_id != tenant_id) {
                return Err(ControlError::InterfaceConflict {
                    reason: format!("Interface {interface_id} is already registered"),
                });
            }
            if existing.is_none() {
                check_quota(tx, &self.options.quotas, tenant_id, Resource::Interfaces)?;
            }
            let clash = tx.interfaces_by_device(device)?.into_iter().find(|other| {
                other.id != interface_id
                    && (other.host == host || other.host.is_empty() || host.is_empty())
            });
            if clash.is_some() {
                return Err(ControlError::InterfaceConflict {
                    reason: format!("Device {device} is already registered as another interface"),
                });
            }
            let iface = Interface {
                id: interface_id.to_owned(),
                tenant_id: tenant_id.to_owned(),
                device: device.to_owned(),
                host: host.to_owned(),
            };
            tx.upsert_interface(&iface)?;
            let how = if existing.is_some() {
                Registered::Updated
            } else {
                Registered::Created
            };
            Ok((iface, how))
        })?;
        // The data plane keeps the device prepared (a port opens on it at once), when it is on
        // its host: the write's delta says so (`reconcile::delta`), to every data plane.
        Ok((iface, how))
    }

    /// A tenant's registered interfaces.
    pub fn interfaces(&self, tenant_id: &str) -> Result<Vec<Interface>> {
        self.read(|tx| tx.interfaces(tenant_id))
    }

    /// One of a tenant's registered interfaces.
    pub fn interface(&self, tenant_id: &str, interface_id: &str) -> Result<Interface> {
        self.read(|tx| find_interface(tx, tenant_id, interface_id))
    }

    /// Removes an interface from the registry; refused while it is plugged.
    pub fn unregister_interface(&self, tenant_id: &str, interface_id: &str) -> Result<()> {
        self.write(|tx| {
            find_interface(tx, tenant_id, interface_id)?;
            if let Some(p) = tx.port_by_attachment(interface_id)? {
                return Err(ControlError::InterfaceInUse {
                    interface_id: interface_id.to_owned(),
                    port_id: p.id,
                });
            }
            tx.delete_interface(interface_id)
        })
    }
}

fn ran_twice() -> ControlError {
    ControlError::Store {
        detail: "a transaction body ran twice or not at all".into(),
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The tenant's network, or `NetworkNotFound` (also for another tenant's).
fn find_network(tx: &dyn Tx, tenant_id: &str, net_id: &str) -> Result<Network> {
    tx.network(tenant_id, net_id)?
        .ok_or_else(|| ControlError::NetworkNotFound {
            net_id: net_id.to_owned(),
        })
}

/// The port of the tenant's network: the network is looked up first.
fn find_port(tx: &dyn Tx, tenant_id: &str, net_id: &str, port_id: &str) -> Result<Port> {
    find_network(tx, tenant_id, net_id)?;
    tx.port(net_id, port_id)?
        .ok_or_else(|| ControlError::PortNotFound {
            net_id: net_id.to_owned(),
            port_id: port_id.to_owned(),
        })
}

/// `OverQuota` when one more `resource` would exceed the tenant's quota.
fn check_quota(tx: &dyn Tx, quotas: &Quotas, tenant_id: &str, resource: Resource) -> Result<()> {
    let Some(limit) = quotas.limit(resource) else {
        return Ok(());
    };
    let used = tx.tenant_usage(tenant_id)?.of(resource);
    if used >= limit {
        return Err(ControlError::OverQuota {
            resource: resource.as_str(),
            limit,
            used,
        });
    }
    Ok(())
}

fn find_interface(tx: &dyn Tx, tenant_id: &str, interface_id: &str) -> Result<Interface> {
    tx.interface(interface_id)?
        .filter(|i| i.tenant_id == tenant_id)
        .ok_or_else(|| ControlError::InterfaceNotFound {
            interface_id: interface_id.to_owned(),
        })
}

mod agents;
mod extensions;
mod neutron;
mod pages;
pub(crate) mod qos;
mod security;

#[cfg(test)]
mod tests;
