//! The applier: one thread that hands the data plane its changes in revision
//! order.
//!
//! Writers send their derived deltas from the store's commit callback, so the
//! channel holds them in commit order. The thread takes everything queued at
//! once (the deltas of concurrent writers become one change set), compares
//! each touched item with what the data plane already has, and calls
//! [`Forwarder::apply`] with only what differs. Writers wait on
//! [`Applier::wait`] with the ticket their send returned.
//!
//! Revisions are consecutive, so a delta that does not follow the last one reveals a lost
//! delta (an after-commit step that panicked before it sent its own). That gap, or a panic in
//! the forwarder, leaves the data plane's state unknown: the thread then derives the whole state
//! again from the store ([`Resync`]) and skips the deltas that state already holds, as a host
//! agent does when it finds a gap in the revision log.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{ControlError, Result};
use crate::forward::{
    Change, Changes, DesiredGroup, DesiredNetwork, DesiredPort, DesiredState, Forwarder,
};
use crate::reconcile::Delta;

/// How long a writer waits for the applier before answering anyway (the
/// change is committed; the data plane catches up).
const APPLY_WAIT: Duration = Duration::from_secs(5);

/// How soon a resync that failed (a store error, a panic in the forwarder) is tried again; each
/// further failure doubles the wait, up to [`RESYNC_RETRY_MAX`].
const RESYNC_RETRY: Duration = Duration::from_secs(1);
const RESYNC_RETRY_MAX: Duration = Duration::from_secs(32);

/// Derives the whole desired state and the revision it is as of, from one consistent read of
/// the store.
pub(crate) type Resync = Box<dyn Fn() -> Result<(u64, DesiredState, Vec<String>)> + Send>;

/// Work for the applier.
#[derive(Debug)]
pub(crate) enum Work {
    /// The whole desired state as of a revision, with the devices to keep prepared.
    Full(u64, DesiredState, Vec<String>),
    /// What one write touched, as of its revision.
    Delta(u64, Delta),
    /// The deltas since the last work are not known (the revision log was pruned past them):
    /// derive the whole state again from the store, as of this revision or later.
    Resync(u64),
}

/// How far the thread got: `done` counts the work items taken (tickets), in
/// the order they were sent; `revision` is the store revision reached.
#[derive(Debug, Default)]
struct Progress {
    done: Mutex<(u64, u64)>,
    cond: Condvar,
}

/// The handle writers use; dropping it stops the thread.
#[derive(Debug)]
pub(crate) struct Applier {
    queue: Option<Sender<Work>>,
    /// Tickets handed out: one per work item sent.
    sent: AtomicU64,
    progress: Arc<Progress>,
    thread: Option<JoinHandle<()>>,
}

impl Applier {
    pub(crate) fn start(forwarder: Arc<dyn Forwarder>, resync: Resync) -> Result<Self> {
        let (tx, rx) = mpsc::channel();
        let progress = Arc::new(Progress::default());
        let p = Arc::clone(&progress);
        let thread = std::thread::Builder::new()
            .name("qswitch-applier".into())
            .spawn(move || run(&rx, forwarder.as_ref(), &resync, &p))
            .map_err(|e| ControlError::Store {
                detail: format!("cannot start the applier thread: {e}"),
            })?;
        Ok(Self {
            queue: Some(tx),
            sent: AtomicU64::new(0),
            progress,
            thread: Some(thread),
        })
    }

    /// Queues work (called in revision order, under the store's write lock);
    /// returns its ticket for [`Applier::wait`].
    pub(crate) fn send(&self, work: Work) -> u64 {
        let ticket = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(q) = &self.queue {
            let _ = q.send(work);
        }
        ticket
    }

    /// The last store revision handed to the forwarder.
    pub(crate) fn applied(&self) -> u64 {
        self.progress
            .done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
    }

    /// Waits until the data plane's revision is other than `seen`, or `timeout` passed; the
    /// revision then.
    pub(crate) fn wait_applied(&self, seen: u64, timeout: Duration) -> u64 {
        let p = &self.progress;
        let guard = p.done.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = p
            .cond
            .wait_timeout_while(guard, timeout, |done| done.1 == seen)
            .unwrap_or_else(PoisonError::into_inner);
        guard.1
    }

    /// Waits until the work with this ticket has been handed to the
    /// forwarder (bounded).
    pub(crate) fn wait(&self, ticket: u64) {
        let p = &self.progress;
        let guard = p.done.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, timeout) = p
            .cond
            .wait_timeout_while(guard, APPLY_WAIT, |done| done.0 < ticket)
            .unwrap_or_else(PoisonError::into_inner);
        drop(guard);
        if timeout.timed_out() {
            tracing::warn!(ticket, "the data plane has not caught up with a write yet");
        }
    }
}

impl Drop for Applier {
    fn drop(&mut self) {
        self.queue = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the data plane has, by id.
#[derive(Default)]
struct Applied {
    networks: HashMap<String, DesiredNetwork>,
    ports: HashMap<String, DesiredPort>,
    groups: HashMap<String, DesiredGroup>,
}

/// Items by id.
fn by_id<T: Clone>(items: &[T], id: impl Fn(&T) -> &str) -> HashMap<String, T> {
    items
        .iter()
        .map(|x| (id(x).to_owned(), x.clone()))
        .collect()
}

fn run(rx: &Receiver<Work>, forwarder: &dyn Forwarder, resync: &Resync, progress: &Progress) {
    let mut have = Applied::default();
    // The revision the data plane's state is as of, and whether that state is known.
    let mut at: Option<u64> = None;
    let mut lost = false;
    let mut retry = RESYNC_RETRY;
    // Tickets of work taken while the data plane's state was unknown: their writers are told only
    // once a resync has handed the data plane a state that holds their changes.
    let mut owed: u64 = 0;
    loop {
        let first = if lost {
            match rx.recv_timeout(retry) {
                Ok(w) => Some(w),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match rx.recv() {
                Ok(w) => Some(w),
                Err(_) => return,
            }
        };
        let batch: Vec<Work> = first.into_iter().chain(rx.try_iter()).collect();
        let tickets = owed + batch.len() as u64;
        let mut reached = None;
        // A whole state was handed over: its revision stands even below the last one reached
        // (a database restored to an earlier revision).
        let mut reset = false;
        let mut pending = Pending::default();
        for work in batch {
            match work {
                Work::Full(rev, state, devices) => {
                    // Whatever came before is superseded: hand it over first, then the whole
                    // (which stands whether or not that went through).
                    pending.flush(&have, forwarder);
                    pending = Pending::default();
                    lost = !full(&mut have, forwarder, rev, state, &devices);
                    at = Some(rev);
                    reached = Some(rev);
                    reset = true;
                }
                Work::Resync(rev) => {
                    tracing::info!(
                        revision = rev,
                        "the revision log no longer holds what the data plane missed; resyncing"
                    );
                    pending = Pending::default();
                    lost = true;
                    // What follows is read again with the whole state: no gap to report.
                    at = None;
                }
                // Already part of a whole state handed over (a resync read past it).
                Work::Delta(rev, _) if at.is_some_and(|at| rev <= at) => {}
                Work::Delta(rev, delta) => {
                    if at.is_some_and(|at| rev != at + 1) {
                        tracing::error!(
                            after = at,
                            revision = rev,
                            "a write's change never reached the data plane; resyncing"
                        );
                        lost = true;
                    }
                    at = Some(rev);
                    if !lost {
                        pending.add(rev, delta, &mut have);
                    }
                }
            }
        }
        if lost {
            pending = Pending::default();
        } else {
            let flushed = pending.revision;
            if pending.flush(&have, forwarder) {
                reached = flushed.or(reached);
            } else {
                lost = true;
            }
        }
        // The data plane's state is unknown: the whole state from the store replaces it.
        if lost {
            let read = catch_unwind(AssertUnwindSafe(resync)).unwrap_or_else(|_| {
                Err(ControlError::Store {
                    detail: "deriving the desired state panicked".into(),
                })
            });
            match read {
                Ok((rev, state, devices)) => {
                    lost = !full(&mut have, forwarder, rev, state, &devices);
                    at = Some(rev);
                    reached = Some(rev);
                    reset = true;
                    if !lost {
                        tracing::info!(revision = rev, "the data plane is resynced with the store");
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, retry_secs = retry.as_secs(), "cannot resync the data plane");
                }
            }
        }
        if lost {
            owed = tickets;
            retry = (retry * 2).min(RESYNC_RETRY_MAX);
            continue;
        }
        owed = 0;
        retry = RESYNC_RETRY;
        let mut done = progress.done.lock().unwrap_or_else(PoisonError::into_inner);
        done.0 += tickets;
        done.1 = match reached {
            Some(rev) if reset => rev,
            Some(rev) => done.1.max(rev),
            None => done.1,
        };
        progress.cond.notify_all();
    }
}

/// Hands the forwarder a whole state in place of what it had, and the devices to keep prepared
/// in place of those it kept; false if the forwarder panicked.
fn full(
    have: &mut Applied,
    forwarder: &dyn Forwarder,
    rev: u64,
    state: DesiredState,
    devices: &[String],
) -> bool {
    let kept = catch_unwind(AssertUnwindSafe(|| forwarder.keep_devices(devices)));
    if kept.is_err() {
        tracing::error!("the data plane panicked taking the devices to keep prepared");
    }
    *have = Applied {
        networks: by_id(&state.networks, |n| &n.id),
        ports: by_id(&state.ports, |p| &p.id),
        groups: by_id(&state.groups, |g| &g.id),
    };
    kept.is_ok()
        && guarded(
            forwarder,
            &Changes {
                revision: rev,
                full: true,
                networks: state.networks.into_iter().map(Change::Set).collect(),
                ports: state.ports.into_iter().map(Change::Set).collect(),
                groups: state.groups.into_iter().map(Change::Set).collect(),
            },
        )
}

/// `forwarder.apply`, with a panic caught and logged (false): a bug in the data plane's apply
/// must not stop every later write from reaching it.
fn guarded(forwarder: &dyn Forwarder, changes: &Changes) -> bool {
    let ok = catch_unwind(AssertUnwindSafe(|| forwarder.apply(changes))).is_ok();
    if !ok {
        tracing::error!(
            revision = changes.revision,
            "the data plane panicked applying a change"
        );
    }
    ok
}

/// Deltas taken in one go: each touched item with what the data plane had
/// before the first of them, so that only real differences go out.
#[derive(Default)]
struct Pending {
    revision: Option<u64>,
    networks: Vec<(String, Option<DesiredNetwork>)>,
    ports: Vec<(String, Option<DesiredPort>)>,
    groups: Vec<(String, Option<DesiredGroup>)>,
    /// Devices to keep prepared or not, the last word for each winning.
    devices: Vec<(String, bool)>,
    seen: HashSet<String>,
}

impl Pending {
    fn add(&mut self, rev: u64, delta: Delta, have: &mut Applied) {
        self.revision = Some(rev);
        for (id, n) in delta.networks {
            track(
                &mut have.networks,
                &mut self.networks,
                &mut self.seen,
                'n',
                id,
                n,
            );
        }
        for (id, p) in delta.ports {
            track(&mut have.ports, &mut self.ports, &mut self.seen, 'p', id, p);
        }
        self.devices.extend(delta.devices);
        for (id, g) in delta.groups {
            track(
                &mut have.groups,
                &mut self.groups,
                &mut self.seen,
                'g',
                id,
                g,
            );
        }
    }

    /// Hands the differences to the forwarder; false if the forwarder panicked.
    fn flush(&mut self, have: &Applied, forwarder: &dyn Forwarder) -> bool {
        let Some(revision) = self.revision.take() else {
            return true;
        };
        self.seen.clear();
        // Registered devices first: a port that opens on one right after finds it prepared.
        let mut last: HashMap<String, bool> = HashMap::new();
        for (d, here) in std::mem::take(&mut self.devices) {
            last.insert(d, here);
        }
        let (keep, drop): (Vec<_>, Vec<_>) = last.into_iter().partition(|(_, here)| *here);
        let names = |v: Vec<(String, bool)>| v.into_iter().map(|(d, _)| d).collect::<Vec<_>>();
        let (keep, drop) = (names(keep), names(drop));
        let prepared = catch_unwind(AssertUnwindSafe(|| {
            if !drop.is_empty() {
                forwarder.release_devices(&drop);
            }
            if !keep.is_empty() {
                forwarder.prepare_devices(&keep);
            }
        }));
        if prepared.is_err() {
            tracing::error!("the data plane panicked taking registered devices; resyncing");
        }
        let changes = Changes {
            revision,
            full: false,
            networks: diff(std::mem::take(&mut self.networks), &have.networks),
            ports: diff(std::mem::take(&mut self.ports), &have.ports),
            groups: diff(std::mem::take(&mut self.groups), &have.groups),
        };
        prepared.is_ok() && (changes.is_empty() || guarded(forwarder, &changes))
    }
}

/// Records an item's new form in `have`, and in `touched` (once per batch) the form it had
/// before.
fn track<T>(
    have: &mut HashMap<String, T>,
    touched: &mut Vec<(String, Option<T>)>,
    seen: &mut HashSet<String>,
    kind: char,
    id: String,
    now: Option<T>,
) {
    let before = match now {
        Some(v) => have.insert(id.clone(), v),
        None => have.remove(&id),
    };
    if seen.insert(format!("{kind}{id}")) {
        touched.push((id, before));
    }
}

/// The items whose current form differs from the one they had before.
fn diff<T: Clone + PartialEq>(
    touched: Vec<(String, Option<T>)>,
    now: &HashMap<String, T>,
) -> Vec<Change<T>> {
    touched
        .into_iter()
        .filter_map(|(id, before)| match (before, now.get(&id)) {
            (Some(b), Some(n)) if b == *n => None,
            (None, None) => None,
            (_, Some(n)) => Some(Change::Set(n.clone())),
            (Some(_), None) => Some(Change::Removed(id)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(id: &str) -> DesiredPort {
        DesiredPort {
            id: id.into(),
            network_id: "n".into(),
            device: format!("tap-{id}"),
            admin_up: true,
            ..Default::default()
        }
    }

    fn delta(id: &str) -> Delta {
        Delta {
            ports: vec![(id.into(), Some(port(id)))],
            ..Default::default()
        }
    }

    /// Keeps the state its change sets lead to; panics on the apply whose number is `panic_on`.
    #[derive(Debug, Default)]
    struct Flaky {
        state: Mutex<DesiredState>,
        calls: Mutex<u32>,
        panic_on: Option<u32>,
    }

    impl Forwarder for Flaky {
        fn apply(&self, changes: &Changes) {
            let n = {
                let mut calls = self.calls.lock().unwrap();
                *calls += 1;
                *calls
            };
            assert_ne!(Some(n), self.panic_on, "a bug in the data plane");
            self.state.lock().unwrap().apply(changes);
        }
        fn port_up(&self, _: &str) -> bool {
            false
        }
    }

    impl Flaky {
        fn ports(&self) -> Vec<String> {
            let state = self.state.lock().unwrap();
            state.ports.iter().map(|p| p.id.clone()).collect()
        }
    }

    /// The store as a resync reads it: revision and state, and how many resyncs ran.
    type Truth = Arc<Mutex<(u64, DesiredState, u32)>>;

    fn resync_from(truth: &Truth) -> Resync {
        let truth = Arc::clone(truth);
        Box::new(move || {
            let mut t = truth.lock().unwrap();
            t.2 += 1;
            Ok((t.0, t.1.clone(), Vec::new()))
        })
    }

    fn state(ids: &[&str]) -> DesiredState {
        DesiredState {
            ports: ids.iter().map(|id| port(id)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_lost_delta_is_found_by_its_revision_gap_and_resynced() {
        let fwd = Arc::new(Flaky::default());
        let truth: Truth = Arc::default();
        let a = Applier::start(fwd.clone(), resync_from(&truth)).unwrap();
        a.wait(a.send(Work::Full(1, state(&[]), Vec::new())));
        a.wait(a.send(Work::Delta(2, delta("p2"))));
        assert_eq!(fwd.ports(), ["p2"]);
        assert_eq!(truth.lock().unwrap().2, 0, "no resync without a gap");

        // Revision 3 (port p3) committed but its delta never came; the store has both.
        *truth.lock().unwrap() = (4, state(&["p2", "p3", "p4"]), 0);
        a.wait(a.send(Work::Delta(4, delta("p4"))));
        assert_eq!(fwd.ports(), ["p2", "p3", "p4"]);
        assert_eq!(truth.lock().unwrap().2, 1);
        assert_eq!(a.applied(), 4);

        // Deltas the resync already covered are skipped; the next one applies as usual.
        a.wait(a.send(Work::Delta(5, delta("p5"))));
        assert_eq!(fwd.ports(), ["p2", "p3", "p4", "p5"]);
        assert_eq!(truth.lock().unwrap().2, 1);
        assert_eq!(a.applied(), 5);
    }

    #[test]
    fn a_panicking_forwarder_is_resynced_and_later_writes_still_reach_it() {
        let fwd = Arc::new(Flaky {
            panic_on: Some(2),
            ..Default::default()
        });
        let truth: Truth = Arc::default();
        let a = Applier::start(fwd.clone(), resync_from(&truth)).unwrap();
        a.wait(a.send(Work::Full(1, state(&[]), Vec::new())));
        // The second apply panics: the thread survives and resyncs from the store at once.
        *truth.lock().unwrap() = (2, state(&["p2"]), 0);
        a.wait(a.send(Work::Delta(2, delta("p2"))));
        assert_eq!(truth.lock().unwrap().2, 1);
        assert_eq!(fwd.ports(), ["p2"]);
        a.wait(a.send(Work::Delta(3, delta("p3"))));
        assert_eq!(fwd.ports(), ["p2", "p3"]);
        assert_eq!(a.applied(), 3);
    }

    #[test]
    fn a_failed_resync_is_retried() {
        let fwd = Arc::new(Flaky::default());
        let tries = Arc::new(Mutex::new(0u32));
        let t = Arc::clone(&tries);
        let resync: Resync = Box::new(move || {
            let mut n = t.lock().unwrap();
            *n += 1;
            if *n == 1 {
                return Err(ControlError::Store {
                    detail: "disk gone".into(),
                });
            }
            Ok((3, state(&["p2", "p3"]), Vec::new()))
        });
        let a = Applier::start(fwd.clone(), resync).unwrap();
        a.wait(a.send(Work::Full(1, state(&[]), Vec::new())));
        // The writer is answered only once the retried resync has brought its change.
        a.wait(a.send(Work::Delta(3, delta("p3"))));
        assert_eq!(fwd.ports(), ["p2", "p3"]);
        assert_eq!(*tries.lock().unwrap(), 2);
        assert_eq!(a.applied(), 3);
    }
}
