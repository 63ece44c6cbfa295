//! A worker's side of the XDP shortcut ([`crate::shortcut`]): the entries it installed, their
//! withdrawal when the MAC table or the ports change (after a change of some addresses, only
//! the entries from or to them are looked at: a change costs the entries it may touch, not
//! every entry), and the sources they keep alive.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::config::{PortView, Role, Snapshot};
use crate::fdb::{MacTable, PortRef};
use crate::pipeline::Pipeline;
use crate::port::ShortcutPort;
use crate::shortcut::{Key, Registration, Route, Shortcut, MAX_SLOTS};
use crate::sys::umem::{Umem, KERNEL_HEADROOM};
use crate::wire::Mac;

/// Entries one worker installs at most; past them, frames keep going through the worker.
pub(super) const MAX_INSTALLED: usize = 16384;

/// Entries whose hits a round reads at most (a system call each, about a microsecond): at
/// 16 384 entries, a round a millisecond reads about 16.
const SWEEP_PER_ROUND: usize = 64;

/// What a worker installed, and what it read last.
#[derive(Debug)]
pub(super) struct Fast {
    pub(super) sc: Arc<Shortcut>,
    /// The MAC table's changes and the shortcut's epoch, when last read.
    seen: (u64, u64),
    /// The entries installed, in the order they were; `index` finds them, and `by_address`
    /// those of an address (the [`MacTable::key`] of its network and MAC), from or to it.
    entries: Vec<(Key, Installed)>,
    index: HashMap<Key, usize>,
    by_address: BTreeSet<(u64, Key)>,
    /// Scratch: the addresses the MAC table changed, the entries to check.
    changed: Vec<u64>,
    suspects: Vec<Key>,
    /// Entries checked against the table and the snapshot, for tests.
    #[cfg(test)]
    pub(super) checked: std::cell::Cell<u64>,
    /// The next entry whose hits the sweep reads, and thousandths of an entry owed to the next
    /// sweep ([`Fast::sweep_for`], [`Fast::pay`]).
    cursor: usize,
    owed: usize,
    /// The second an install last failed (the map full): no other is tried within it.
    refused_at: Option<u32>,
    /// Installs that failed, entries installed and withdrawn (replaced ones too), over the
    /// worker's life: installed less withdrawn is the entries held.
    pub(super) refused: u64,
    pub(super) installed: u64,
    pub(super) withdrawn: u64,
    /// By slot, for this worker's ports: the interface frames take entries from (0: none) and
    /// the port's registration in the shortcut's table for entries to send to (none: 0).
    own: Vec<(u32, Registration)>,
}

/// An entry this worker installed: what it was installed from, and the hits read last.
#[derive(Debug, Clone, Copy)]
struct Installed {
    net: u16,
    /// The ingress port (the source's), and the egress port (the destination's).
    port: PortRef,
    egress: PortRef,
    route: Route,
    hits: u64,
}

/// What entries are checked against, and installed from: the MAC table (this worker's view),
/// the snapshot, which ports have a rate limit (`policed(slot)`), the clock's second, and the
/// largest frame the worker forwards other than TCP (what one of its chunks holds: a larger
/// frame comes as a chain, which the worker cuts if it is TCP and drops if not).
pub(super) struct Basis<'a, F: Fn(u16) -> bool> {
    pub(super) fdb: &'a MacTable,
    pub(super) snap: &'a Snapshot,
    pub(super) policed: F,
    pub(super) secs: u32,
    pub(super) largest: u32,
}

/// The basis a worker's pipeline, snapshot and memory give, at second `secs`.
pub(super) fn basis<'a>(
    pipe: &'a Pipeline,
    snap: &'a Snapshot,
    secs: u32,
    umem: &Umem,
) -> Basis<'a, impl Fn(u16) -> bool + 'a> {
    Basis {
        fdb: &pipe.fdb,
        snap,
        policed: move |slot| pipe.polices(slot),
        secs,
        largest: umem.chunk_size().saturating_sub(KERNEL_HEADROOM),
    }
}

/// May frames of this port of network `net` take, or be sent by, an entry? A VM's port
/// (untagged), up, without port security (its rules read every frame).
fn plain(p: &PortView, net: u16) -> bool {
    p.role == Role::Access(net) && p.admin_up && p.security.is_none()
}

/// The route frames from port `ingress` to port `egress` of network `net` may take inside
/// XDP, if both ports and the network let every such frame go without the switch's rules:
/// no security groups in the network, no rate limit on either port (`policed`), the egress port
/// open and able to take them (in the shortcut's table).
fn route(
    sc: &Shortcut,
    b: &Basis<impl Fn(u16) -> bool>,
    (ingress, egress, net): (u16, u16, u16),
) -> Option<(Route, PortRef, PortRef)> {
    let (pi, pe, n) = (
        b.snap.port(ingress)?,
        b.snap.port(egress)?,
        b.snap.net(net)?,
    );
    let policed = &b.policed;
    if n.filtering || !plain(pi, net) || !plain(pe, net) || policed(ingress) || policed(egress) {
        return None;
    }
    // The egress port's worker's snapshot gives it this network too, and the port open there
    // is this one (not a port that took the slot since).
    if sc.net(egress) != Some((net, n.gen, pe.gen)) {
        return None;
    }
    let route = Route {
        egress: sc.ifindex(egress)?,
        // No frame the worker would drop (one above a port's MTU, or larger than a chunk).
        max_frame: pi.max_frame.min(pe.max_frame).min(b.largest),
        ingress_slot: ingress,
        egress_slot: egress,
    };
    let at = |slot, gen| PortRef { slot, gen };
    Some((route, at(ingress, pi.gen), at(egress, pe.gen)))
}

impl Fast {
    pub(super) fn new(sc: Arc<Shortcut>) -> Fast {
        Fast {
            sc,
            seen: (0, 0),
            entries: Vec::new(),
            index: HashMap::new(),
            by_address: BTreeSet::new(),
            changed: Vec::new(),
            suspects: Vec::new(),
            #[cfg(test)]
            checked: std::cell::Cell::new(0),
            cursor: 0,
            owed: 0,
            refused_at: None,
            refused: 0,
            installed: 0,
            withdrawn: 0,
            own: Vec::new(),
        }
    }

    /// Entries installed.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The interface frames of this worker's port `slot` take entries from, if any.
    fn takes(&self, slot: u16) -> Option<u32> {
        let i = self.own.get(usize::from(slot))?.0;
        (i != 0).then_some(i)
    }

    /// Has the MAC table or the shortcut's table of ports changed since the last call? Then
    /// the entries that may have gone wrong go: those from or to the addresses the table
    /// changed, where it still knows which ([`MacTable::changed_since`]), else all of them
    /// ([`Fast::revalidate`]). Run in each round after the view of the table was refreshed and
    /// the clock's work (its sweep) ran, and before the lookups: an entry installed from a
    /// table or ports that changed meanwhile lives until the next round at most. Two atomic
    /// loads when nothing changed.
    #[inline]
    pub(super) fn check(&mut self, b: &Basis<impl Fn(u16) -> bool>) -> bool {
        let now = (b.fdb.changes(), self.sc.epoch());
        if now == self.seen {
            return false;
        }
        let (from, epoch) = self.seen;
        // A port that opened, closed or stopped sending may be any entry's.
        let told = (now.1 == epoch)
            .then(|| b.fdb.changed_since(from, &mut self.changed))
            .flatten();
        if !b.fdb.is_current() {
            // A change counted (up to the count read last, which orders this read after it)
            // may have been made in a table grown since this round's refresh, which this view's
            // lookups do not see yet: the next round looks, after its own refresh.
            return false;
        }
        match told {
            Some(to) => {
                self.seen = (to, now.1);
                self.revalidate_changed(b);
            }
            None => {
                self.seen = now;
                self.revalidate(b);
            }
        }
        true
    }

    /// [`Fast::revalidate`] for the entries from or to the addresses in `changed` alone.
    fn revalidate_changed(&mut self, b: &Basis<impl Fn(u16) -> bool>) {
        self.changed.sort_unstable();
        self.changed.dedup();
        let mut suspects = std::mem::take(&mut self.suspects);
        suspects.clear();
        for &a in &self.changed {
            let of = self.by_address.range((a, Key::MIN)..=(a, Key::MAX));
            suspects.extend(of.map(|&(_, key)| key));
        }
        // An entry between two addresses that both changed, once.
        suspects.sort_unstable();
        suspects.dedup();
        for key in &suspects {
            if let Some(&i) = self.index.get(key) {
                if !self.still_right(i, b) {
                    self.withdraw_at(i);
                }
            }
        }
        self.suspects = suspects;
    }

    /// Did the MAC table or the shortcut's table of ports change since [`Fast::check`] last
    /// read them (during this round)?
    #[inline]
    pub(super) fn moved(&self, fdb: &MacTable) -> bool {
        (fdb.changes(), self.sc.epoch()) != self.seen
    }

    /// Withdraws every entry that is no longer what it would be installed as now: both ports
    /// as the snapshot has them (and open), the source still learned on the ingress port and the
    /// destination on the egress port. A worker calls it when it adopts a snapshot, and when the
    /// MAC table or the ports change: user-space lookups, a system call only for each entry
    /// withdrawn.
    pub(super) fn revalidate(&mut self, b: &Basis<impl Fn(u16) -> bool>) {
        let mut i = 0;
        while i < self.entries.len() {
            // Withdrawn: the last entry takes its place, looked at next.
            if self.still_right(i, b) || !self.withdraw_at(i) {
                i += 1;
            }
        }
    }

    /// Is entry `i` still what it would be installed as now (see [`Fast::revalidate`])?
    fn still_right(&self, i: usize, b: &Basis<impl Fn(u16) -> bool>) -> bool {
        #[cfg(test)]
        self.checked.set(self.checked.get() + 1);
        let (key, inst) = self.entries[i];
        let slots = (inst.port.slot, inst.egress.slot, inst.net);
        self.takes(inst.port.slot) == Some(key.ingress)
            && route(&self.sc, b, slots).is_some_and(|r| r == (inst.route, inst.port, inst.egress))
            && b.fdb.lookup(inst.net, key.src, b.secs) == Some(inst.port)
            && b.fdb.lookup(inst.net, key.dst, b.secs) == Some(inst.egress)
    }

    /// Withdraws entry `i` from the map and forgets it; true if it did. An entry the map
    /// could not delete (an error other than its absence) is kept, and withdrawn at a later
    /// check or sweep: forgotten, it would forward for good.
    fn withdraw_at(&mut self, i: usize) -> bool {
        if self.sc.withdraw(&self.entries[i].0).is_err() {
            return false;
        }
        self.withdrawn += 1;
        self.forget(i);
        true
    }

    /// Installs an entry for frames from `src` on port `ingress` to `dst`, which the worker
    /// forwarded to `egress` in network `net`, if both ports and the network let every such
    /// frame go without the switch's rules, and the source is learned on `ingress` (else its
    /// frames must reach the worker to be learned, or moved). An entry of the same key towards
    /// another port is replaced.
    pub(super) fn offer(
        &mut self,
        b: &Basis<impl Fn(u16) -> bool>,
        (ingress, egress, net): (u16, u16, u16),
        (dst, src): (Mac, Mac),
    ) {
        let Some(ingress_if) = self.takes(ingress) else {
            return;
        };
        let key = Key {
            ingress: ingress_if,
            dst,
            src,
        };
        let at = self.index.get(&key).copied();
        if at.is_some_and(|i| self.entries[i].1.egress.slot == egress)
            || (at.is_none() && self.entries.len() >= MAX_INSTALLED)
            || self.refused_at == Some(b.secs)
        {
            return;
        }
        let Some((route, me, to)) = route(&self.sc, b, (ingress, egress, net)) else {
            return;
        };
        // Both addresses still where the frame found them: a later frame of the batch may have
        // moved either (the check of the next round would withdraw the entry, but frames
        // meanwhile would take it).
        if b.fdb.lookup(net, src, b.secs) != Some(me) || b.fdb.lookup(net, dst, b.secs) != Some(to)
        {
            return;
        }
        if let Err(e) = self.sc.install(&key, &route) {
            if self.refused == 0 {
                tracing::warn!("XDP shortcut: an entry was not installed: {e}");
            }
            self.refused += 1;
            self.refused_at = Some(b.secs);
            return;
        }
        self.installed += 1;
        let inst = Installed {
            net,
            port: me,
            egress: to,
            route,
            hits: 0,
        };
        match at {
            Some(i) => {
                // The entry towards the old port is gone: replaced.
                self.withdrawn += 1;
                self.unlink(i);
                self.entries[i] = (key, inst);
            }
            None => {
                self.index.insert(key, self.entries.len());
                self.entries.push((key, inst));
            }
        }
        for mac in [key.src, key.dst] {
            self.by_address.insert((MacTable::key(net, mac), key));
        }
    }

    /// Reads the hits of the entries due after `ms` more milliseconds, so that each is read about
    /// once a second (a fraction of an entry carries over to the next call), from where the last
    /// call stopped; see [`Fast::sweep`]. At most [`SWEEP_PER_ROUND`] of them, or the share of
    /// 8 ms if more: after a sleep the rest stays owed, for the next rounds or the next sleep
    /// ([`Fast::pay`]), so that the frame that woke the worker does not wait for them.
    pub(super) fn sweep_for(&mut self, b: &Basis<impl Fn(u16) -> bool>, ms: usize) {
        // Never more than one pass owed.
        let pass = self.entries.len().saturating_mul(1000);
        self.owed = self
            .owed
            .saturating_add(self.entries.len().saturating_mul(ms))
            .min(pass);
        // A round that comes late under traffic reads its share of up to 8 ms, so the reading
        // keeps up; one after a sleep leaves the rest owed.
        let cap = SWEEP_PER_ROUND.max((self.entries.len() * ms.min(8)).div_ceil(1000));
        let now = (self.owed / 1000).min(cap);
        if now > 0 {
            self.owed -= now * 1000;
            self.sweep(b, now);
        }
    }

    /// Reads what the rounds left owed ([`Fast::sweep_for`]): called before the worker sleeps,
    /// when no frame waits.
    pub(super) fn pay(&mut self, b: &Basis<impl Fn(u16) -> bool>) {
        let due = self.owed / 1000;
        if due > 0 {
            self.owed %= 1000;
            self.sweep(b, due);
        }
    }

    /// Reads the hits of up to `budget` entries, from where the last call stopped, and
    /// refreshes the source of each whose hits grew: an address that sends only through the
    /// shortcut stays learned. Then checks each against the table and the snapshot, as a change
    /// would, and withdraws it if it went wrong without a change to tell (a destination expired
    /// that the table's sweeper has not removed yet): an entry outlives what it was installed
    /// from by a second at most. Entries the map no longer has are forgotten.
    pub(super) fn sweep(&mut self, b: &Basis<impl Fn(u16) -> bool>, budget: usize) {
        let mut left = budget.min(self.entries.len());
        while left > 0 && !self.entries.is_empty() {
            left -= 1;
            if self.cursor >= self.entries.len() {
                self.cursor = 0;
            }
            let (key, inst) = self.entries[self.cursor];
            match self.sc.hits(&key) {
                Ok(Some(h)) => {
                    if h != inst.hits {
                        self.entries[self.cursor].1.hits = h;
                        b.fdb.touch(inst.net, key.src, inst.port, b.secs);
                    }
                    // Withdrawn: the last entry takes its place, looked at next.
                    if self.still_right(self.cursor, b) || !self.withdraw_at(self.cursor) {
                        self.cursor += 1;
                    }
                }
                Ok(None) => {
                    // Not in the map any more (it cannot be, but then it is gone).
                    self.withdrawn += 1;
                    self.forget(self.cursor);
                }
                Err(_) => self.cursor += 1,
            }
        }
    }

    /// Panics unless `index` and `by_address` hold each entry, and nothing else.
    #[cfg(test)]
    pub(super) fn assert_indexed(&self) {
        let mut pairs = BTreeSet::new();
        for (i, (key, inst)) in self.entries.iter().enumerate() {
            assert_eq!(self.index.get(key), Some(&i), "{key:?} indexed");
            for mac in [key.src, key.dst] {
                pairs.insert((MacTable::key(inst.net, mac), *key));
            }
        }
        assert_eq!(self.index.len(), self.entries.len());
        assert_eq!(pairs, self.by_address, "each entry by its two addresses");
    }

    /// Removes entry `i` from `by_address`.
    fn unlink(&mut self, i: usize) {
        let (key, inst) = self.entries[i];
        for mac in [key.src, key.dst] {
            self.by_address.remove(&(MacTable::key(inst.net, mac), key));
        }
    }

    /// Removes entry `i` from this worker's records (not from the map).
    fn forget(&mut self, i: usize) {
        self.unlink(i);
        let (key, _) = self.entries.swap_remove(i);
        self.index.remove(&key);
        if let Some((moved, _)) = self.entries.get(i) {
            self.index.insert(*moved, i);
        }
    }

    /// This worker's port `slot` opened: its frames may take entries (if its program has the
    /// shortcut), and entries may send to it (if it takes what they send).
    /// `net`: as [`Fast::port_net`], recorded before the port's interface is, so that no
    /// installer pairs the interface with what the slot's earlier port left recorded.
    pub(super) fn open(&mut self, slot: u16, port: ShortcutPort, net: Option<(u16, u32, u32)>) {
        let i = usize::from(slot);
        if i >= MAX_SLOTS {
            return;
        }
        if self.own.len() <= i {
            self.own.resize(i + 1, (0, Registration::default()));
        }
        let takes = if port.takes { port.ifindex } else { 0 };
        let receives = if port.receives { port.ifindex } else { 0 };
        let mut reg = Registration::default();
        if receives != 0 {
            self.sc.set_net(slot, net);
            reg = self.sc.set_port(slot, receives);
        }
        self.own[i] = (takes, reg);
    }

    /// This worker's snapshot gives its port `slot` network `net` (slot and generation, and
    /// the port's generation), or none: recorded for the installers of entries that send to it
    /// ([`Shortcut::set_net`]).
    pub(super) fn port_net(&self, slot: u16, net: Option<(u16, u32, u32)>) {
        if self
            .own
            .get(usize::from(slot))
            .is_some_and(|o| o.1 != Registration::default())
        {
            self.sc.set_net(slot, net);
        }
    }

    /// This worker's port `slot` closed, or stopped sending (its interface gone): no entry
    /// takes its frames or sends to it any more. Once, and only what this worker registered
    /// (a port opened on the slot since by another worker stays).
    pub(super) fn close(&mut self, slot: u16) {
        let Some(own) = self.own.get_mut(usize::from(slot)) else {
            return;
        };
        let (takes, receives) = std::mem::take(own);
        // This worker's entries that take its frames, or send to it, go now: its device may be
        // another port's, of another network, as soon as it closes. (Other workers' entries
        // that send to it go at their next round.)
        let mut i = 0;
        while i < self.entries.len() {
            let (key, inst) = self.entries[i];
            let its = (takes != 0 && key.ingress == takes) || inst.egress.slot == slot;
            if !its || !self.withdraw_at(i) {
                i += 1;
            }
        }
        if receives != Registration::default() {
            self.sc.clear_port(slot, receives);
        } else if takes != 0 {
            // Only this worker's entries take its frames: they go at its next check.
            self.sc.bump();
        }
    }
}
