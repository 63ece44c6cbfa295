//! The applier: one thread that hands the data plane its changes in revision
//! order.
//!
//! Writers send their derived deltas from the store's commit callback, so the
//! channel holds them in commit order. The thread takes everything queued at
//! once (the deltas of concurrent writers become one change set), compares
//! each touched item with what the data plane already has, and calls
//! [`Forwarder::apply`] with only what differs. Writers wait on
//! [`Applier::wait`] with the ticket their send returned.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{ControlError, Result};
use crate::forward::{
    Change, Changes, DesiredGroup, DesiredNetwork, DesiredPort, DesiredState, Forwarder,
};
use crate::reconcile::Delta;

/// How long a writer waits for the applier before answering anyway (the
/// change is committed; the data plane catches up).
const APPLY_WAIT: Duration = Duration::from_secs(5);

/// Work for the applier.
#[derive(Debug)]
pub(crate) enum Work {
    /// The whole desired state as of a revision.
    Full(u64, DesiredState),
    /// What one write touched, as of its revision.
    Delta(u64, Delta),
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
    pub(crate) fn start(forwarder: Arc<dyn Forwarder>) -> Result<Self> {
        let (tx, rx) = mpsc::channel();
        let progress = Arc::new(Progress::default());
        let p = Arc::clone(&progress);
        let thread = std::thread::Builder::new()
            .name("qswitch-applier".into())
            .spawn(move || run(&rx, forwarder.as_ref(), &p))
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

fn run(rx: &Receiver<Work>, forwarder: &dyn Forwarder, progress: &Progress) {
    let mut have = Applied::default();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let tickets = batch.len() as u64;
        let mut reached = None;
        let mut pending = Pending::default();
        for work in batch {
            match work {
                Work::Full(rev, state) => {
                    // Whatever came before is superseded: hand it over first, then the whole.
                    pending.flush(&have, forwarder);
                    pending = Pending::default();
                    have = Applied {
                        networks: by_id(&state.networks, |n| &n.id),
                        ports: by_id(&state.ports, |p| &p.id),
                        groups: by_id(&state.groups, |g| &g.id),
                    };
                    forwarder.apply(&Changes {
                        revision: rev,
                        full: true,
                        networks: state.networks.into_iter().map(Change::Set).collect(),
                        ports: state.ports.into_iter().map(Change::Set).collect(),
                        groups: state.groups.into_iter().map(Change::Set).collect(),
                    });
                    reached = Some(rev);
                }
                Work::Delta(rev, delta) => pending.add(rev, delta, &mut have),
            }
        }
        reached = pending.flush(&have, forwarder).or(reached);
        let mut done = progress.done.lock().unwrap_or_else(PoisonError::into_inner);
        done.0 += tickets;
        done.1 = done.1.max(reached.unwrap_or_default());
        progress.cond.notify_all();
    }
}

/// Deltas taken in one go: each touched item with what the data plane had
/// before the first of them, so that only real differences go out.
#[derive(Default)]
struct Pending {
    revision: Option<u64>,
    networks: Vec<(String, Option<DesiredNetwork>)>,
    ports: Vec<(String, Option<DesiredPort>)>,
    groups: Vec<(String, Option<DesiredGroup>)>,
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

    /// Hands the differences to the forwarder; returns the revision reached.
    fn flush(&mut self, have: &Applied, forwarder: &dyn Forwarder) -> Option<u64> {
        let revision = self.revision.take()?;
        self.seen.clear();
        let changes = Changes {
            revision,
            full: false,
            networks: diff(std::mem::take(&mut self.networks), &have.networks),
            ports: diff(std::mem::take(&mut self.ports), &have.ports),
            groups: diff(std::mem::take(&mut self.groups), &have.groups),
        };
        if !changes.is_empty() {
            forwarder.apply(&changes);
        }
        Some(revision)
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
