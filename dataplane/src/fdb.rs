//! The MAC table (forwarding database) of every network a worker serves.
//!
//! # Design
//! One open-addressing hash table with linear probing holds the entries of all networks, keyed by
//! `(network slot, MAC)` packed into one `u64`, so that two networks never see each other's entries
//! and the same MAC may live in several networks at once. An entry records the port it was learned
//! on (slot and generation), when it was last seen, and whether it is static.
//!
//! * **Aging.** An entry not seen for `aging` seconds is treated as absent at once and removed by
//!   the incremental sweeper ([`MacTable::sweep`]), which the worker runs off the per-packet path.
//! * **Limits.** Each network has a learning limit (default [`DEFAULT_MAC_LIMIT`], like OVS's
//!   `MAC_DEFAULT_MAX`). Past it frames still flood but their source is not learned: the caller
//!   counts [`Learn::LimitReached`].
//! * **O(1) flush.** Each network has a generation number; bumping it (because the network was
//!   removed, re-created or reconfigured) makes all its entries stale in O(1). Stale entries read
//!   as absent and are reclaimed by the sweeper or reused by the next insert on their probe path.
//!   Ports also carry a generation, checked by the pipeline, so an entry of a removed port is never
//!   used for a new port that reuses its slot.
//! * **Capacity** is fixed between reconfigurations (twice the sum of the network limits, capped),
//!   so learning never allocates. [`MacTable::reserve`] grows it when a snapshot is adopted.
//!
//! # Thread-safety
//! A table belongs to one worker thread, which owns all the ports of its networks; it is not shared.
//! Operators read it through a copy the worker publishes (see `worker`).
//!
//! # Limitations
//! With several workers, each would learn its own view; one worker serves all ports today.

use crate::wire::Mac;

/// Default per-network learning limit (entries).
pub const DEFAULT_MAC_LIMIT: u32 = 8192;
/// Default idle time after which a learned entry expires, in seconds.
pub const DEFAULT_AGING_SECS: u32 = 300;

/// A port as the table stores it: its slot in the worker's port array and the slot's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRef {
    /// Index of the port in the forwarding snapshot.
    pub slot: u16,
    /// Generation of that slot; a different generation means another port.
    pub gen: u32,
}

/// What learning a source address did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learn {
    /// The address was already known on this port; its age was refreshed.
    Refreshed,
    /// A new entry was created.
    Learned,
    /// The address moved from another port to this one.
    Moved,
    /// The network is at its limit (or the table is full): the address was not learned.
    LimitReached,
    /// The address is a static entry of another port; static entries are never moved.
    StaticConflict,
}

/// One entry, as the operator's view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacEntry {
    /// The address.
    pub mac: Mac,
    /// The port it is reached through.
    pub port: PortRef,
    /// Seconds since the address was last seen (0 for static entries).
    pub age_secs: u32,
    /// Static entries never age and never move.
    pub is_static: bool,
}

const EMPTY: u64 = 0;
const FLAG_STATIC: u8 = 1;

#[derive(Clone, Copy, Default)]
struct Entry {
    /// `(net + 1) << 48 | mac`, or [`EMPTY`].
    key: u64,
    net_gen: u32,
    port_gen: u32,
    seen: u32,
    port: u16,
    flags: u8,
}

#[derive(Debug, Clone, Copy, Default)]
struct NetState {
    gen: u32,
    limit: u32,
    count: u32,
}

/// The MAC table of one worker: all networks, isolated by key.
pub struct MacTable {
    slots: Vec<Entry>,
    mask: usize,
    /// Occupied slots, stale or not.
    used: usize,
    nets: Vec<NetState>,
    aging: u32,
    max_entries: usize,
    sweep_cursor: usize,
}

impl core::fmt::Debug for MacTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MacTable")
            .field("capacity", &self.slots.len())
            .field("used", &self.used)
            .field("aging", &self.aging)
            .finish()
    }
}

#[inline]
fn key_of(net: u16, mac: Mac) -> u64 {
    (u64::from(net) + 1) << 48 | mac.to_u64()
}

#[inline]
fn net_of(key: u64) -> usize {
    ((key >> 48) as usize).wrapping_sub(1)
}

#[inline]
fn hash(key: u64) -> u64 {
    // A multiplicative (Fibonacci) hash, then fold the high bits down: cheap and well spread for
    // MAC addresses, whose low bytes vary most.
    let h = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^ (h >> 29)
}

impl MacTable {
    /// An empty table with the given aging time (seconds) and a cap on its total entries.
    pub fn new(aging_secs: u32, max_entries: usize) -> Self {
        let mut t = MacTable {
            slots: Vec::new(),
            mask: 0,
            used: 0,
            nets: Vec::new(),
            aging: aging_secs.max(1),
            max_entries: max_entries.max(16),
            sweep_cursor: 0,
        };
        t.rehash(64);
        t
    }

    /// The configured aging time in seconds.
    pub fn aging_secs(&self) -> u32 {
        self.aging
    }

    /// Sets the aging time; takes effect on the next lookup.
    pub fn set_aging_secs(&mut self, secs: u32) {
        self.aging = secs.max(1);
    }

    /// Number of live entries of a network.
    pub fn network_len(&self, net: u16) -> u32 {
        self.nets.get(usize::from(net)).map_or(0, |n| n.count)
    }

    /// Live entries and learning limit of every network slot, in slot order.
    pub fn network_sizes(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.nets.iter().map(|n| (n.count, n.limit))
    }

    /// Slots in the table (twice the entries it is sized for).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Declares network `net` with generation `gen` and learning `limit`. A generation different
    /// from the one the table knows flushes the network in O(1).
    pub fn sync_network(&mut self, net: u16, gen: u32, limit: u32) {
        let i = usize::from(net);
        if self.nets.len() <= i {
            self.nets.resize(i + 1, NetState::default());
        }
        let n = &mut self.nets[i];
        if n.gen != gen {
            n.gen = gen;
            n.count = 0;
        }
        n.limit = limit;
    }

    /// Flushes every entry of `net` in O(1).
    pub fn flush_network(&mut self, net: u16) {
        if let Some(n) = self.nets.get_mut(usize::from(net)) {
            n.gen = n.gen.wrapping_add(1);
            n.count = 0;
        }
    }

    /// Grows the table so that `entries` live entries fit at a load of at most one half. Called
    /// when configuration changes, never per packet.
    pub fn reserve(&mut self, entries: usize) {
        let want = (entries.min(self.max_entries) * 2)
            .next_power_of_two()
            .max(64);
        if want > self.slots.len() {
            self.rehash(want);
        }
    }

    fn rehash(&mut self, cap: usize) {
        let old = core::mem::replace(&mut self.slots, vec![Entry::default(); cap]);
        self.mask = cap - 1;
        self.used = 0;
        for e in old.into_iter().filter(|e| e.key != EMPTY) {
            if self.is_current(&e) {
                let mut i = self.home(e.key);
                while self.slots[i].key != EMPTY {
                    i = (i + 1) & self.mask;
                }
                self.slots[i] = e;
                self.used += 1;
            }
        }
        self.sweep_cursor = 0;
    }

    #[inline]
    fn home(&self, key: u64) -> usize {
        (hash(key) as usize) & self.mask
    }

    /// Is the entry of the network's current generation? (Expiry is checked separately.)
    #[inline]
    fn is_current(&self, e: &Entry) -> bool {
        self.nets
            .get(net_of(e.key))
            .is_some_and(|n| n.gen == e.net_gen)
    }

    #[inline]
    fn is_live(&self, e: &Entry, now: u32) -> bool {
        self.is_current(e) && (e.flags & FLAG_STATIC != 0 || now.wrapping_sub(e.seen) < self.aging)
    }

    /// Finds the slot of `key`, live or not.
    #[inline]
    fn find(&self, key: u64) -> Option<usize> {
        let mut i = self.home(key);
        loop {
            let k = self.slots[i].key;
            if k == key {
                return Some(i);
            }
            if k == EMPTY {
                return None;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Where is `mac` in network `net`? Expired and stale entries read as absent.
    #[inline]
    pub fn lookup(&self, net: u16, mac: Mac, now: u32) -> Option<PortRef> {
        let i = self.find(key_of(net, mac))?;
        let e = &self.slots[i];
        self.is_live(e, now).then_some(PortRef {
            slot: e.port,
            gen: e.port_gen,
        })
    }

    /// Learns (or refreshes) that `mac` is reached through `port` in network `net`.
    #[inline]
    pub fn learn(&mut self, net: u16, mac: Mac, port: PortRef, now: u32) -> Learn {
        let key = key_of(net, mac);
        if let Some(i) = self.find(key) {
            let live = self.is_live(&self.slots[i], now);
            let e = &mut self.slots[i];
            if live {
                if e.port == port.slot && e.port_gen == port.gen {
                    e.seen = now;
                    return Learn::Refreshed;
                }
                if e.flags & FLAG_STATIC != 0 {
                    return Learn::StaticConflict;
                }
                e.port = port.slot;
                e.port_gen = port.gen;
                e.seen = now;
                return Learn::Moved;
            }
            // A stale or expired entry of this very key: revive it if the network has room.
            return self.revive(i, net, port, now, 0);
        }
        self.insert_new(key, net, port, now, 0)
    }

    /// Installs a static entry: it never ages and learning never moves it.
    pub fn add_static(&mut self, net: u16, mac: Mac, port: PortRef, now: u32) -> Learn {
        let key = key_of(net, mac);
        if let Some(i) = self.find(key) {
            if self.is_live(&self.slots[i], now) {
                let e = &mut self.slots[i];
                e.port = port.slot;
                e.port_gen = port.gen;
                e.flags = FLAG_STATIC;
                return Learn::Refreshed;
            }
            return self.revive(i, net, port, now, FLAG_STATIC);
        }
        self.insert_new(key, net, port, now, FLAG_STATIC)
    }

    /// Removes a live entry of a network, if present.
    pub fn remove(&mut self, net: u16, mac: Mac, now: u32) -> bool {
        match self.find(key_of(net, mac)) {
            Some(i) => {
                let live = self.is_live(&self.slots[i], now);
                self.delete_slot(i);
                if live {
                    self.dec_count(net);
                }
                live
            }
            None => false,
        }
    }

    fn has_room(&self, net: u16) -> bool {
        self.nets
            .get(usize::from(net))
            .is_some_and(|n| n.count < n.limit)
    }

    fn inc_count(&mut self, net: u16) {
        if let Some(n) = self.nets.get_mut(usize::from(net)) {
            n.count += 1;
        }
    }

    fn dec_count(&mut self, net: u16) {
        if let Some(n) = self.nets.get_mut(usize::from(net)) {
            n.count = n.count.saturating_sub(1);
        }
    }

    fn revive(&mut self, i: usize, net: u16, port: PortRef, now: u32, flags: u8) -> Learn {
        // An expired entry of the current generation still counts against the limit until it is
        // revived or swept; a stale one (old generation) does not.
        let was_counted = self.is_current(&self.slots[i]);
        if !was_counted && !self.has_room(net) && flags == 0 {
            return Learn::LimitReached;
        }
        let gen = self.nets.get(usize::from(net)).map_or(0, |n| n.gen);
        self.slots[i] = Entry {
            key: self.slots[i].key,
            net_gen: gen,
            port_gen: port.gen,
            seen: now,
            port: port.slot,
            flags,
        };
        if !was_counted {
            self.inc_count(net);
        }
        Learn::Learned
    }

    fn insert_new(&mut self, key: u64, net: u16, port: PortRef, now: u32, flags: u8) -> Learn {
        let Some(state) = self.nets.get(usize::from(net)).copied() else {
            return Learn::LimitReached;
        };
        if flags == 0 && state.count >= state.limit {
            return Learn::LimitReached;
        }
        // Keep the load at or below 3/4 so probes stay short: reclaim dead entries first, and
        // refuse to learn if the table is still full of live ones.
        if self.used + 1 > self.slots.len() / 4 * 3 {
            // Bounded, so that a flood of new addresses cannot make each frame scan the table.
            self.sweep(now, 256);
            if self.used + 1 > self.slots.len() / 4 * 3 {
                return Learn::LimitReached;
            }
        }
        let mut i = self.home(key);
        while self.slots[i].key != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.slots[i] = Entry {
            key,
            net_gen: state.gen,
            port_gen: port.gen,
            seen: now,
            port: port.slot,
            flags,
        };
        self.used += 1;
        self.inc_count(net);
        Learn::Learned
    }

    /// Backward-shift deletion: keeps every probe chain unbroken without tombstones.
    fn delete_slot(&mut self, mut hole: usize) {
        self.slots[hole] = Entry::default();
        self.used -= 1;
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            let key = self.slots[j].key;
            if key == EMPTY {
                return;
            }
            let home = self.home(key);
            // Can the entry at j move back to the hole? Only if its home is not in (hole, j].
            let dist_home = j.wrapping_sub(home) & self.mask;
            let dist_hole = j.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                self.slots[hole] = self.slots[j];
                self.slots[j] = Entry::default();
                hole = j;
            }
        }
    }

    /// Removes up to `budget` slots' worth of expired and stale entries, resuming where the last
    /// call stopped. Returns how many entries were removed.
    pub fn sweep(&mut self, now: u32, budget: usize) -> usize {
        let cap = self.slots.len();
        let mut removed = 0;
        let mut i = self.sweep_cursor;
        for _ in 0..budget.min(cap) {
            let e = self.slots[i];
            if e.key != EMPTY && !self.is_live(&e, now) {
                let net = net_of(e.key);
                if self.is_current(&e) {
                    // Expired, not stale: it still counted against its network's limit.
                    if let Ok(net) = u16::try_from(net) {
                        self.dec_count(net);
                    }
                }
                self.delete_slot(i);
                removed += 1;
                // The shift may have moved an unvisited entry into `i`: look at it again.
                continue;
            }
            i = (i + 1) & self.mask;
        }
        self.sweep_cursor = i;
        removed
    }

    /// The live entries of a network, for the operator's view.
    pub fn entries(&self, net: u16, now: u32) -> Vec<MacEntry> {
        let want = u64::from(net) + 1;
        let mut out: Vec<MacEntry> = self
            .slots
            .iter()
            .filter(|e| e.key != EMPTY && e.key >> 48 == want && self.is_live(e, now))
            .map(|e| MacEntry {
                mac: Mac::from_u64(e.key),
                port: PortRef {
                    slot: e.port,
                    gen: e.port_gen,
                },
                age_secs: if e.flags & FLAG_STATIC != 0 {
                    0
                } else {
                    now.wrapping_sub(e.seen)
                },
                is_static: e.flags & FLAG_STATIC != 0,
            })
            .collect();
        out.sort_by_key(|e| e.mac);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u32) -> Mac {
        let b = n.to_be_bytes();
        Mac([0x02, 0, b[0], b[1], b[2], b[3]])
    }
    const P1: PortRef = PortRef { slot: 1, gen: 1 };
    const P2: PortRef = PortRef { slot: 2, gen: 1 };

    fn table() -> MacTable {
        let mut t = MacTable::new(300, 1 << 20);
        t.sync_network(0, 1, 8192);
        t.sync_network(1, 1, 8192);
        t.reserve(16384);
        t
    }

    #[test]
    fn learned_address_is_found_in_its_network_only() {
        let mut t = table();
        assert_eq!(t.learn(0, mac(1), P1, 0), Learn::Learned);
        assert_eq!(t.lookup(0, mac(1), 1), Some(P1));
        assert_eq!(t.lookup(1, mac(1), 1), None);
    }

    #[test]
    fn same_mac_lives_in_two_networks() {
        let mut t = table();
        t.learn(0, mac(1), P1, 0);
        t.learn(1, mac(1), P2, 0);
        assert_eq!(t.lookup(0, mac(1), 0), Some(P1));
        assert_eq!(t.lookup(1, mac(1), 0), Some(P2));
        assert_eq!(t.network_len(0), 1);
        assert_eq!(t.network_len(1), 1);
    }

    #[test]
    fn entries_age_out_after_the_aging_time() {
        let mut t = table();
        t.set_aging_secs(300);
        t.learn(0, mac(1), P1, 1000);
        assert_eq!(t.lookup(0, mac(1), 1299), Some(P1));
        assert_eq!(t.lookup(0, mac(1), 1300), None);
        assert_eq!(t.sweep(1300, usize::MAX), 1);
        assert_eq!(t.network_len(0), 0);
    }

    #[test]
    fn refresh_keeps_an_entry_alive() {
        let mut t = table();
        t.learn(0, mac(1), P1, 0);
        assert_eq!(t.learn(0, mac(1), P1, 200), Learn::Refreshed);
        assert_eq!(t.lookup(0, mac(1), 450), Some(P1));
    }

    #[test]
    fn mac_move_updates_the_port() {
        let mut t = table();
        t.learn(0, mac(1), P1, 0);
        assert_eq!(t.learn(0, mac(1), P2, 1), Learn::Moved);
        assert_eq!(t.lookup(0, mac(1), 1), Some(P2));
        assert_eq!(t.network_len(0), 1);
    }

    #[test]
    fn limit_stops_learning_but_not_lookup() {
        let mut t = table();
        t.sync_network(0, 1, 3);
        for i in 0..3 {
            assert_eq!(t.learn(0, mac(i), P1, 0), Learn::Learned);
        }
        assert_eq!(t.learn(0, mac(3), P1, 0), Learn::LimitReached);
        assert_eq!(t.lookup(0, mac(3), 0), None);
        assert_eq!(t.lookup(0, mac(2), 0), Some(P1));
        // Another network is not affected by this one's limit.
        assert_eq!(t.learn(1, mac(3), P1, 0), Learn::Learned);
        // Once entries age out and the sweeper reclaims them, there is room again.
        assert_eq!(t.learn(0, mac(0), P1, 100), Learn::Refreshed);
        assert_eq!(t.sweep(350, usize::MAX), 3); // mac(1), mac(2), and mac(3) of network 1
        assert_eq!(t.learn(0, mac(4), P1, 350), Learn::Learned);
    }

    #[test]
    fn static_entries_neither_age_nor_move() {
        let mut t = table();
        t.add_static(0, mac(9), P1, 0);
        assert_eq!(t.learn(0, mac(9), P2, 10), Learn::StaticConflict);
        assert_eq!(t.lookup(0, mac(9), 1_000_000), Some(P1));
    }

    #[test]
    fn flush_is_o1_and_forgets_only_that_network() {
        let mut t = table();
        for i in 0..100 {
            t.learn(0, mac(i), P1, 0);
            t.learn(1, mac(i), P2, 0);
        }
        t.flush_network(0);
        assert_eq!(t.lookup(0, mac(5), 0), None);
        assert_eq!(t.network_len(0), 0);
        assert_eq!(t.lookup(1, mac(5), 0), Some(P2));
        // Stale entries are reused by new inserts and reclaimed by the sweeper.
        assert_eq!(t.learn(0, mac(5), P2, 0), Learn::Learned);
        assert_eq!(t.sweep(0, usize::MAX), 99);
        assert_eq!(t.network_len(0), 1);
        assert_eq!(t.network_len(1), 100);
    }

    #[test]
    fn new_generation_flushes() {
        let mut t = table();
        t.learn(0, mac(1), P1, 0);
        t.sync_network(0, 2, 8192);
        assert_eq!(t.lookup(0, mac(1), 0), None);
    }

    #[test]
    fn many_entries_survive_deletes_in_probe_chains() {
        let mut t = MacTable::new(300, 1 << 20);
        t.sync_network(0, 1, 100_000);
        t.reserve(100_000);
        for i in 0..50_000 {
            t.learn(0, mac(i), P1, 0);
        }
        for i in (0..50_000).step_by(2) {
            assert!(t.remove(0, mac(i), 0));
        }
        for i in 0..50_000 {
            assert_eq!(t.lookup(0, mac(i), 0).is_some(), i % 2 == 1, "mac {i}");
        }
        assert_eq!(t.network_len(0), 25_000);
    }

    #[test]
    fn full_table_refuses_to_learn_instead_of_growing() {
        let mut t = MacTable::new(300, 16);
        t.sync_network(0, 1, 1_000_000);
        t.reserve(1_000_000);
        let cap = t.capacity();
        let learned = (0..1000)
            .filter(|&i| t.learn(0, mac(i), P1, 0) == Learn::Learned)
            .count();
        assert_eq!(t.capacity(), cap);
        assert_eq!(learned, cap / 4 * 3);
    }

    #[test]
    fn entries_lists_live_entries_with_age() {
        let mut t = table();
        t.learn(0, mac(2), P1, 10);
        t.add_static(0, mac(1), P2, 0);
        let e = t.entries(0, 15);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].mac, mac(1));
        assert!(e[0].is_static);
        assert_eq!(e[1].age_secs, 5);
    }
}
