//! The MAC table (forwarding database) of every network, shared by all workers.
//!
//! # Design
//! One open-addressing hash table with linear probing holds the entries of all networks, keyed by
//! `(network slot, MAC)` packed into one `u64`, so that two networks never see each other's entries
//! and the same MAC may live in several networks at once. An entry records the port it was learned
//! on (slot and generation), when it was last seen, and whether it is static.
//!
//! * **Aging.** An entry not seen for `aging` seconds is treated as absent at once and removed by
//!   the incremental sweeper ([`MacTable::sweep`]), which the workers run off the per-packet path.
//! * **Limits.** Each network has a learning limit (default [`DEFAULT_MAC_LIMIT`], like OVS's
//!   `MAC_DEFAULT_MAX`). Past it frames still flood but their source is not learned: the caller
//!   counts [`Learn::LimitReached`].
//! * **O(1) flush.** Each network has a generation number; bumping it (because the network was
//!   removed, re-created or reconfigured) makes all its entries stale in O(1). Stale entries read
//!   as absent and are reclaimed by the sweeper, or revived by the next insert of their address.
//!   Ports also carry a generation, checked by the pipeline, so an entry of a removed port is never
//!   used for a new port that reuses its slot; the workers tell the table which ports went
//!   ([`MacTable::forget_ports`]), and the sweeper removes their entries on its next pass
//!   (within about a second), as the Linux bridge flushes a removed port's entries, so that
//!   they stop counting against their network's limit.
//! * **Capacity** is fixed between reconfigurations (twice the sum of the network limits, capped),
//!   so learning never allocates. [`MacTable::reserve_for`] grows it for a snapshot: the switch
//!   calls it before publishing one, and a worker's adoption finds the room made.
//! * **Large tables.** The 2 MiB-aligned stretches of a table live in huge pages where the
//!   kernel allows ([`crate::sys::huge_pages`]), and above [`PREFETCH_ABOVE`] the worker
//!   prefetches the slots of the frames it will process next ([`MacTable::prefetch`]): a table
//!   of a million addresses (48 MiB) otherwise costs each frame two misses to memory and two TLB
//!   misses, one after the other.
//!
//! # Thread-safety
//! Every worker holds a [`MacTable`], a view of one shared table (`Clone` makes another view).
//! Lookups vastly outnumber changes, so reads take no lock and write nothing shared:
//! * **Lookups** are lock-free under a sequence lock (as VPP's bihash readers are): a reader
//!   notes the table's sequence number, probes with relaxed atomic loads, and probes again if a
//!   writer ran meanwhile (the number moved or is odd).
//! * **Refreshes** (a known address seen again on its port, nearly every frame) store the entry's
//!   `seen` second with one relaxed compare-and-swap, only when the second is later: at most one
//!   write a second per entry to a line other workers read, and never back.
//! * **Refusals** a reader can decide alone take no lock either: a static entry of another port,
//!   an unknown address in a network at its limit, or one in a table that learning found full
//!   this second, nothing removed since (`Tables::full`): a flood of spoofed sources does not make
//!   every worker queue on the writer lock.
//! * **Changes** (learning a new address, a move, static entries, the sweeper's removals,
//!   network limits and generations) take the writer mutex, and mark the sequence number odd
//!   while they move entries. Only these contend, and they are rare: at most one per new or
//!   moved address.
//! * **Which addresses changed**: a change that may make a copy of an entry held elsewhere
//!   wrong (a move, a removal, a revival, a static entry replaced, a network flushed, a new
//!   aging time) counts in [`MacTable::changes`], and the table keeps the addresses of the last
//!   1 024 in a ring written under the mutex and read without a lock
//!   ([`MacTable::changed_since`]), so that a holder of many copies (a worker's XDP shortcut
//!   entries) checks only those of the addresses that changed.
//! * **Growth** copies the table into a new one of the size asked and publishes it; each view
//!   picks it up at its next [`MacTable::refresh`] (a worker calls it every round). The copy, tens
//!   of milliseconds at a million entries, runs outside the writer mutex, so that workers do not
//!   wait for it: while it runs, lookups and refreshes read the old table, the sweeper skips its
//!   turns, and learning a new or moved address is deferred ([`Learn::Deferred`]; the frame is
//!   forwarded as it would be, and the pipeline learns the address once the copy is done). A
//!   change written under the mutex meanwhile (a network's generation or limit, a static entry:
//!   a worker adopting late a snapshot that changed them; a removal, the aging time) moves the old
//!   table's sequence number, and the grower then copies again holding the mutex, as every
//!   growth did before; for that copy, what else takes the mutex waits. A refresh stored in the
//!   old table meanwhile is lost, which costs at most a relearn.
//!
//! A refresh may race with a removal that shifts another entry into the slot it read: the
//! compare-and-swap then finds another `seen` and writes nothing, unless both were last seen in the
//! same second: the other entry is then refreshed to now, which may keep it up to an aging time
//! longer than its own traffic would (its port is never changed: aging only). Workers stamp with a
//! clock they share, read at slightly different moments: a `seen` a second ahead of a worker's
//! `now` counts as fresh.

use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use crate::wire::Mac;

/// Default per-network learning limit (entries).
pub const DEFAULT_MAC_LIMIT: u32 = 8192;
/// Default idle time after which a learned entry expires, in seconds.
pub const DEFAULT_AGING_SECS: u32 = 300;

/// A port as the table stores it: its slot in the worker's port array and the slot's generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
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
    /// The table is growing: a new or moved address is not learned until the copy is done (the
    /// pipeline learns it then, or a later frame does). See the module documentation.
    Deferred,
    /// The address is a static entry of another port; static entries are never moved.
    StaticConflict,
    /// The learner's view of the network is older than the table's: the network moved to
    /// another segment (or its slot was reused) since, and what a worker still on the old
    /// snapshot hears belongs to the old one. Not learned, not counted.
    Stale,
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

/// The table size (bytes of slots) above which the worker prefetches its lines: a table of
/// 1 MiB is mostly in a core's level-2 cache while it is busy.
pub const PREFETCH_ABOVE: usize = 1 << 20;

const EMPTY: u64 = 0;
const FLAG_STATIC: u8 = 1;

/// An entry as the code handles it (a copy of a [`Slot`]).
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

/// An entry as the table stores it: atomics, so that readers never need a lock. In this order
/// (`key` first, `seen` last): [`MacTable::prefetch`] asks for the lines of both.
#[derive(Default)]
#[repr(C)]
struct Slot {
    key: AtomicU64,
    /// `port_gen << 32 | flags << 16 | port`.
    meta: AtomicU64,
    net_gen: AtomicU32,
    seen: AtomicU32,
}

#[derive(Default)]
struct Net {
    gen: AtomicU32,
    limit: AtomicU32,
    /// The snapshot version `limit` was declared by: a worker still adopting an older snapshot
    /// (of the same generation) does not put its limit back.
    limit_version: AtomicU64,
    count: AtomicU32,
}

/// One generation of storage: replaced whole when it grows.
struct Tables {
    /// Odd while a writer moves entries.
    seq: AtomicU64,
    aging: AtomicU32,
    slots: Box<[Slot]>,
    mask: usize,
    nets: Box<[Net]>,
    /// `FULL | second` when learning last found this table full (three quarters of its slots
    /// used, and nothing dead in the 256 it swept then), 0 once room may have been made since
    /// (a removal, a network flushed, a shorter aging time, a growth begun): a new address is
    /// refused that second without the writer mutex, so that a source of ever new addresses (a
    /// spoofing VM) costs the workers one locked sweep a second, not one a frame. The sweeper's
    /// first removal ends the mark early.
    full: AtomicU64,
}

/// [`Tables::full`]'s mark bit above the second.
const FULL: u64 = 1 << 32;

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

const RELAXED: Ordering = Ordering::Relaxed;

/// Is second `now` after `seen`? A refresh only moves an entry's `seen` forward: a worker whose
/// clock still reads the second before must not take back another's refresh.
#[inline]
fn later(now: u32, seen: u32) -> bool {
    (now.wrapping_sub(seen) as i32) > 0
}

/// Is an entry of age `age` (now less seen, wrapping) younger than `aging`? An age that reads
/// negative is a `seen` ahead of now (another worker read the shared clock a moment later):
/// fresh. Any aging time works, up to `u32::MAX` (never, in effect): compared as signed, one of
/// 2^31 s or more read as negative and aged every entry at once.
#[inline]
fn fresh(age: u32, aging: u32) -> bool {
    (age as i32) < 0 || age < aging
}

impl Tables {
    fn new(cap: usize, nets: usize, aging: u32) -> Tables {
        let slots: Box<[Slot]> = std::iter::repeat_with(Slot::default).take(cap).collect();
        // Read at random: in 2 MiB pages a large table misses the TLB far less (the aligned
        // stretches inside it; a table of 6 MiB has two at least). Advice: a refusal leaves it
        // on small pages.
        let _ = crate::sys::huge_pages(&slots);
        Tables {
            seq: AtomicU64::new(0),
            aging: AtomicU32::new(aging),
            slots,
            mask: cap - 1,
            nets: std::iter::repeat_with(Net::default).take(nets).collect(),
            full: AtomicU64::new(0),
        }
    }

    /// Did learning find this table full in second `now`, with no room made since?
    #[inline]
    fn found_full(&self, now: u32) -> bool {
        self.full.load(RELAXED) == FULL | u64::from(now)
    }

    /// Room may have been made: learning looks under the writer mutex again (held by the
    /// caller).
    fn room_made(&self) {
        self.full.store(0, RELAXED);
    }

    #[inline]
    fn load(&self, i: usize) -> Entry {
        let s = &self.slots[i];
        let meta = s.meta.load(RELAXED);
        Entry {
            key: s.key.load(RELAXED),
            net_gen: s.net_gen.load(RELAXED),
            port_gen: (meta >> 32) as u32,
            seen: s.seen.load(RELAXED),
            port: meta as u16,
            flags: (meta >> 16) as u8,
        }
    }

    /// Writes an entry (the writer mutex held, the sequence number odd).
    fn store(&self, i: usize, e: &Entry) {
        let s = &self.slots[i];
        s.meta.store(
            u64::from(e.port_gen) << 32 | u64::from(e.flags) << 16 | u64::from(e.port),
            RELAXED,
        );
        s.net_gen.store(e.net_gen, RELAXED);
        s.seen.store(e.seen, RELAXED);
        s.key.store(e.key, RELAXED);
    }

    /// Marks the start of a change readers must not see half done (the writer mutex held).
    fn begin(&self) {
        let s = self.seq.load(RELAXED);
        self.seq.store(s.wrapping_add(1), RELAXED);
        fence(Ordering::Release);
    }

    /// Marks its end.
    fn end(&self) {
        let s = self.seq.load(RELAXED);
        self.seq.store(s.wrapping_add(1), Ordering::Release);
    }

    /// Runs `f` on a consistent state: again if a writer moved entries meanwhile. `f` must be a
    /// pure read that tolerates torn values (it only probes and copies). Always inline: a call
    /// adds about 20 of a lookup's 55 instructions.
    #[inline(always)]
    fn read<R>(&self, f: impl Fn(&Tables) -> R) -> R {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            if before & 1 == 0 {
                let r = f(self);
                fence(Ordering::Acquire);
                if self.seq.load(RELAXED) == before {
                    return r;
                }
            }
            std::hint::spin_loop();
        }
    }

    #[inline]
    fn home(&self, key: u64) -> usize {
        (hash(key) as usize) & self.mask
    }

    #[inline]
    fn aging(&self) -> u32 {
        self.aging.load(RELAXED)
    }

    /// Is the entry of the network's current generation? (Expiry is checked separately.)
    #[inline]
    fn is_current(&self, e: &Entry) -> bool {
        self.nets
            .get(net_of(e.key))
            .is_some_and(|n| n.gen.load(RELAXED) == e.net_gen)
    }

    /// Live: of the network's current generation, and static or seen less than the aging time
    /// ago. A `seen` ahead of `now` (another worker read the shared clock a moment later) is
    /// fresh, not a wrapped-around age.
    #[inline]
    fn is_live(&self, e: &Entry, now: u32) -> bool {
        self.is_current(e)
            && (e.flags & FLAG_STATIC != 0 || fresh(now.wrapping_sub(e.seen), self.aging()))
    }

    /// Finds the slot of `key`, live or not. Bounded by the table's size, so that a probe racing
    /// a writer always ends.
    #[inline]
    fn find(&self, key: u64) -> Option<usize> {
        let mut i = self.home(key);
        for _ in 0..self.slots.len() {
            let k = self.slots[i].key.load(RELAXED);
            if k == key {
                return Some(i);
            }
            if k == EMPTY {
                return None;
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    fn net(&self, net: u16) -> Option<&Net> {
        self.nets.get(usize::from(net))
    }
}

/// The state only writers touch, behind the mutex.
struct Writer {
    /// The current tables (views may still read older ones until they refresh).
    tables: Arc<Tables>,
    /// Occupied slots, stale or not.
    used: usize,
    sweep_cursor: usize,
    /// By port slot, the latest generation of the slot whose port went
    /// ([`MacTable::forget_ports`]): the sweeper removes entries of that generation or an earlier
    /// one (a slot's generations only grow, and a port that went never comes back under its
    /// generation; a slot would have to be reused 2^32 times for its generation to wrap).
    gone: Vec<u32>,
}

struct Shared {
    writer: Mutex<Writer>,
    /// Held for a whole growth: one at a time.
    growth: Mutex<()>,
    /// Set (under the writer mutex) while a growth copies the table: learning defers.
    growing: AtomicBool,
    /// A test's rendezvous with the next growth, after its copy: the growth says it got there,
    /// then waits for the word to go on.
    #[cfg(test)]
    pause_growth: Mutex<Option<Rendezvous>>,
    /// Growths that copied again under the mutex, for tests.
    #[cfg(test)]
    recopies: AtomicU64,
    /// The current tables, for views that see `version` move.
    published: RwLock<Arc<Tables>>,
    version: AtomicU64,
    max_entries: usize,
    /// Counts the changes that may make a copy of an entry held elsewhere wrong, and keeps the
    /// addresses of the last ones. See [`MacTable::changes`].
    changes: Changes,
}

/// Changes since a holder of copies last looked that [`MacTable::changed_since`] can still tell
/// the addresses of: one that falls further behind checks every copy.
pub(crate) const CHANGES_TOLD: usize = 1024;

/// Slots of [`Changes`]' log: one more than the changes it tells, for the change that may be
/// writing over the oldest while a reader reads it.
const CHANGE_LOG: usize = CHANGES_TOLD + 1;

/// What a change of every address is logged as (no address's key is 0).
const EVERY_ADDRESS: u64 = 0;

/// The changes that may make a copy of an entry held elsewhere wrong: a move, a removal (swept
/// or not), a revival, a static entry replaced (each of one address), a network flushed or a
/// new aging time (of every address). New addresses do not count. The count, and the key of
/// each of the last changes in a ring of [`CHANGE_LOG`], by its number (change `n` takes the
/// count from `n` to `n + 1`, in slot `n % CHANGE_LOG`), so that a holder of copies (the XDP
/// shortcut's entries) checks only those of the addresses that changed. Written only under the
/// writer mutex; read without a lock, as a sequence lock is: a reader that may have read a key
/// overwritten meanwhile sees the count past it ([`MacTable::changed_since`]).
struct Changes {
    count: AtomicU64,
    log: Box<[AtomicU64]>,
}

impl Changes {
    fn new() -> Changes {
        Changes {
            count: AtomicU64::new(0),
            log: (0..CHANGE_LOG)
                .map(|_| AtomicU64::new(EVERY_ADDRESS))
                .collect(),
        }
    }

    /// Notes a change of the address of `key` (or of every address: [`EVERY_ADDRESS`]), after
    /// the entry was written. `_writer`: only the mutex's holder writes the log.
    fn note(&self, _writer: &Writer, key: u64) {
        let n = self.count.load(RELAXED);
        // The count read (and the mutex's earlier holders' writes) before the log's slot is
        // overwritten: a reader that sees the new key sees a count past the one it overwrote.
        fence(Ordering::Release);
        self.log[n as usize % CHANGE_LOG].store(key, RELAXED);
        self.count.store(n + 1, Ordering::Release);
    }
}

/// A view of the MAC table shared by all workers: all networks, isolated by key. Lookups through
/// it take no lock; see the module documentation.
pub struct MacTable {
    shared: Arc<Shared>,
    tables: Arc<Tables>,
    version: u64,
}

impl Clone for MacTable {
    /// Another view of the same table.
    fn clone(&self) -> Self {
        MacTable {
            shared: Arc::clone(&self.shared),
            tables: Arc::clone(&self.tables),
            version: self.version,
        }
    }
}

impl core::fmt::Debug for MacTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MacTable")
            .field("capacity", &self.tables.slots.len())
            .field("aging", &self.tables.aging())
            .finish()
    }
}

impl MacTable {
    /// An empty table with the given aging time (seconds) and a cap on its total entries.
    pub fn new(aging_secs: u32, max_entries: usize) -> Self {
        let tables = Arc::new(Tables::new(64, 0, aging_secs.max(1)));
        let shared = Arc::new(Shared {
            writer: Mutex::new(Writer {
                tables: Arc::clone(&tables),
                used: 0,
                sweep_cursor: 0,
                gone: Vec::new(),
            }),
            growth: Mutex::new(()),
            growing: AtomicBool::new(false),
            #[cfg(test)]
            pause_growth: Mutex::new(None),
            #[cfg(test)]
            recopies: AtomicU64::new(0),
            published: RwLock::new(Arc::clone(&tables)),
            version: AtomicU64::new(0),
            max_entries: max_entries.max(16),
            changes: Changes::new(),
        });
        MacTable {
            shared,
            tables,
            version: 0,
        }
    }

    /// Picks up the table another view grew (one atomic load when nothing changed); true if it
    /// did.
    #[inline]
    pub fn refresh(&mut self) -> bool {
        let v = self.shared.version.load(Ordering::Acquire);
        let grown = v != self.version;
        if grown {
            let t = self
                .shared
                .published
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            self.tables = Arc::clone(&t);
            self.version = v;
        }
        grown
    }

    /// Does this view read the latest table (no growth published since its last
    /// [`MacTable::refresh`])? A change counted in [`MacTable::changes`] may have been made in a
    /// table grown since: a reader of the count that then finds its view current sees the
    /// change in its lookups (a growth publishes under the writer mutex, before any later
    /// change).
    #[inline]
    pub fn is_current(&self) -> bool {
        self.shared.version.load(Ordering::Acquire) == self.version
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        // A writer panics only on a bug; the table stays consistent enough to keep forwarding.
        self.shared
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The configured aging time in seconds.
    pub fn aging_secs(&self) -> u32 {
        self.writer().tables.aging()
    }

    /// Sets the aging time; takes effect on the next lookup.
    pub fn set_aging_secs(&self, secs: u32) {
        let w = self.writer();
        let t = &w.tables;
        // Bracketed as a change of entries is, so that a growth copying meanwhile sees it.
        t.begin();
        t.aging.store(secs.max(1), RELAXED);
        t.room_made();
        t.end();
        // A shorter time may expire entries copied elsewhere.
        self.shared.changes.note(&w, EVERY_ADDRESS);
    }

    /// Number of live entries of a network.
    pub fn network_len(&self, net: u16) -> u32 {
        self.writer()
            .tables
            .net(net)
            .map_or(0, |n| n.count.load(RELAXED))
    }

    /// Live entries and learning limit of every network slot, in slot order.
    pub fn network_sizes(&self) -> Vec<(u32, u32)> {
        let t = Arc::clone(&self.writer().tables);
        t.nets
            .iter()
            .map(|n| (n.count.load(RELAXED), n.limit.load(RELAXED)))
            .collect()
    }

    /// Slots in the table (twice the entries it is sized for).
    pub fn capacity(&self) -> usize {
        self.writer().tables.slots.len()
    }

    /// Slots in this handle's view of the table, without a lock: a growth shows once the handle
    /// refreshed ([`MacTable::refresh`]).
    pub fn slots_seen(&self) -> usize {
        self.tables.slots.len()
    }

    /// Declares network `net` with generation `gen` and learning `limit`, as snapshot `version`
    /// has it. A generation newer than the one the table knows flushes the network in O(1); an
    /// older one, or a limit of an older snapshot than the one that declared the table's (a
    /// worker that has not adopted the latest snapshot yet), changes nothing, so workers
    /// adopting the same snapshots at different moments never undo each other's declarations.
    pub fn sync_network(&mut self, net: u16, gen: u32, limit: u32, version: u64) {
        let i = usize::from(net);
        self.reserve_for(0, i + 1);
        {
            let w = self.writer();
            let t = &w.tables;
            let n = &t.nets[i];
            let cur = n.gen.load(RELAXED);
            let newer = (gen.wrapping_sub(cur) as i32) > 0;
            let later_limit = version >= n.limit_version.load(RELAXED);
            if newer || (gen == cur && later_limit && n.limit.load(RELAXED) != limit) {
                // Bracketed as a change of entries is (a new generation hides them all), so
                // that a growth copying meanwhile sees it.
                t.begin();
                if newer {
                    n.gen.store(gen, RELAXED);
                    n.count.store(0, RELAXED);
                    t.room_made();
                }
                n.limit.store(limit, RELAXED);
                n.limit_version.store(version, RELAXED);
                t.end();
                if newer {
                    self.shared.changes.note(&w, EVERY_ADDRESS);
                }
            }
        }
        self.refresh();
    }

    /// How many times the table has grown (or its networks array): for tests.
    #[cfg(test)]
    pub(crate) fn growths(&self) -> u64 {
        self.shared.version.load(Ordering::Acquire)
    }

    /// Grows the table so that `entries` live entries fit at a load of at most one half. Called
    /// when configuration changes, never per packet.
    pub fn reserve(&mut self, entries: usize) {
        self.reserve_for(entries, 0);
    }

    /// [`MacTable::reserve`], and room for network slots below `nets`, in one growth: a later
    /// [`MacTable::sync_network`] of those slots then copies nothing. (Growing either copies
    /// the whole table, tens of milliseconds at a million entries.)
    pub fn reserve_for(&mut self, entries: usize, nets: usize) {
        let want = (entries.min(self.shared.max_entries) * 2)
            .next_power_of_two()
            .max(64);
        self.grow(want, nets);
        self.refresh();
    }

    /// Grows the table to at least `want` slots and `nets` network slots, if it is smaller, and
    /// publishes it. The copy runs outside the writer mutex; see the module documentation.
    fn grow(&self, want: usize, nets: usize) {
        let too_small = |t: &Tables| want > t.slots.len() || nets > t.nets.len();
        if !too_small(&self.writer().tables) {
            return;
        }
        // One growth at a time; the one before may have made the room.
        let _one = self
            .shared
            .growth
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (old, seq) = {
            let w = self.writer();
            if !too_small(&w.tables) {
                return;
            }
            self.shared.growing.store(true, RELAXED);
            // Learners defer until the larger table is out, not refused by the old one's mark.
            w.tables.room_made();
            (Arc::clone(&w.tables), w.tables.seq.load(RELAXED))
        };
        let _growing = Growing(&self.shared.growing);
        // As `sync_network` rounded it, before both came through here.
        let nets = if nets > old.nets.len() {
            nets.next_power_of_two().max(64)
        } else {
            old.nets.len()
        };
        let cap = want.max(old.slots.len());
        let first = copy(&old, cap, nets);
        #[cfg(test)]
        self.pause_growth();
        let mut w = self.writer();
        // Every change of `old` under the mutex (entries, a network's generation or limit, the
        // aging time) moved its sequence number; only growths replace `w.tables`, one at a time.
        let (new, used) = if old.seq.load(RELAXED) == seq {
            first
        } else {
            // Copy again, holding the mutex (the first copy freed before).
            drop(first);
            #[cfg(test)]
            self.shared.recopies.fetch_add(1, RELAXED);
            copy(&w.tables, cap, nets)
        };
        let new = Arc::new(new);
        w.tables = Arc::clone(&new);
        w.used = used;
        w.sweep_cursor = 0;
        *self
            .shared
            .published
            .write()
            .unwrap_or_else(PoisonError::into_inner) = new;
        self.shared.version.fetch_add(1, Ordering::Release);
    }

    /// Starts growing the table to room for `entries` on another thread and returns once that
    /// growth has made its copy, with the sender whose word lets it finish and the thread: for
    /// tests of what happens during a growth. Fails (rather than hangs) if no growth gets there.
    #[cfg(test)]
    pub(crate) fn growth_paused(
        &self,
        entries: usize,
    ) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
        use std::sync::mpsc::channel;
        let (there, got_there) = channel();
        let (go, wait_go) = channel();
        *self.shared.pause_growth.lock().unwrap() = Some(Rendezvous { there, go: wait_go });
        let mut g = self.clone();
        let grower = std::thread::spawn(move || g.reserve(entries));
        got_there
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("a growth reached the end of its copy");
        (go, grower)
    }

    /// Is a growth copying the table? Learning a new or moved address is deferred meanwhile.
    #[inline]
    pub fn is_growing(&self) -> bool {
        self.shared.growing.load(RELAXED)
    }

    /// Meets a test at the end of a growth's copy, before the growth takes the mutex again, if
    /// it asked.
    #[cfg(test)]
    fn pause_growth(&self) {
        let pause = self
            .shared
            .pause_growth
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(r) = pause {
            let _ = r.there.send(());
            let _ = r.go.recv();
        }
    }

    /// Where is `mac` in network `net`? Expired and stale entries read as absent.
    #[inline]
    pub fn lookup(&self, net: u16, mac: Mac, now: u32) -> Option<PortRef> {
        self.lookup_key(key_of(net, mac), now)
    }

    /// The table's key of `mac` in network `net`: one word, never 0, the same for the same
    /// pair. For callers that keep it (the pipeline's memory of the table's recent answers) and
    /// hand it to [`MacTable::lookup_key`] and [`MacTable::learn_key`].
    #[inline]
    pub fn key(net: u16, mac: Mac) -> u64 {
        key_of(net, mac)
    }

    /// [`MacTable::lookup`] by [`MacTable::key`].
    #[inline]
    pub fn lookup_key(&self, key: u64, now: u32) -> Option<PortRef> {
        self.tables.read(|t| {
            let e = t.load(t.find(key)?);
            t.is_live(&e, now).then_some(PortRef {
                slot: e.port,
                gen: e.port_gen,
            })
        })
    }

    /// Is the table larger than a core's caches are likely to hold ([`PREFETCH_ABOVE`])? Only
    /// then is [`MacTable::prefetch`] worth its work: a smaller table's lines are in cache.
    #[inline]
    pub fn worth_prefetching(&self) -> bool {
        // Elsewhere `sys::prefetch` does nothing.
        cfg!(target_arch = "x86_64")
            && self.tables.slots.len() * core::mem::size_of::<Slot>() > PREFETCH_ABOVE
    }

    /// Asks the CPU to bring the lines of `mac`'s home slot in network `net` closer, ahead of
    /// [`MacTable::learn`] or [`MacTable::lookup`]: a hint that reads nothing (see
    /// [`crate::sys::prefetch`]). A table larger than the caches costs a miss to memory per
    /// address otherwise; the worker asks a few frames ahead, so the misses of a batch overlap
    /// (as VPP's nodes prefetch their bihash buckets).
    #[inline]
    pub fn prefetch(&self, net: u16, mac: Mac) {
        let t = &self.tables;
        let slot = &t.slots[t.home(key_of(net, mac))];
        // A slot (24 bytes) may straddle two lines: its first field and its last.
        crate::sys::prefetch(core::ptr::from_ref(&slot.key).cast());
        crate::sys::prefetch(core::ptr::from_ref(&slot.seen).cast());
    }

    /// Learns (or refreshes) that `mac` is reached through `port` in network `net`, of the
    /// generation the table holds (the pipeline learns by [`MacTable::learn_key`], with the
    /// generation of its own snapshot).
    pub fn learn(&self, net: u16, mac: Mac, port: PortRef, now: u32) -> Learn {
        // (The current table's: this view's may be one a growth replaced.)
        let gen = self
            .writer()
            .tables
            .net(net)
            .map_or(0, |n| n.gen.load(RELAXED));
        self.learn_key(key_of(net, mac), net, gen, port, now)
    }

    /// [`MacTable::learn`] by [`MacTable::key`] of `net` and the address, where the learner's
    /// snapshot has the network at generation `net_gen`: a new, moved or revived entry is
    /// written only while the table has the network at that generation too
    /// ([`Learn::Stale`] otherwise). A refresh of this very port's live entry is not checked:
    /// it changes nothing but the entry's age.
    #[inline]
    pub fn learn_key(&self, key: u64, net: u16, net_gen: u32, port: PortRef, now: u32) -> Learn {
        // The common cases, without the lock: a live entry of this very port, a static entry of
        // another, or a network at its limit that does not know the address.
        let fast = self.tables.read(|t| match t.find(key) {
            Some(i) => {
                let e = t.load(i);
                if !t.is_live(&e, now) {
                    None
                } else if e.port == port.slot && e.port_gen == port.gen {
                    Some((Learn::Refreshed, i, e.seen))
                } else if e.flags & FLAG_STATIC != 0 {
                    Some((Learn::StaticConflict, i, e.seen))
                } else {
                    None
                }
            }
            // (A learner on another generation is told `Stale` under the mutex, not counted.)
            None => ((!has_room(t, net) || t.found_full(now))
                && t.net(net).is_none_or(|n| n.gen.load(RELAXED) == net_gen))
            .then_some((Learn::LimitReached, 0, 0)),
        });
        if let Some((verdict, i, seen)) = fast {
            if verdict == Learn::Refreshed && later(now, seen) {
                // Only if the slot still holds what was read: a removal may have shifted another
                // entry into it since, which must not be revived.
                let _ = self.tables.slots[i]
                    .seen
                    .compare_exchange(seen, now, RELAXED, RELAXED);
            }
            return verdict;
        }
        self.learn_locked(key, net, net_gen, port, now)
    }

    /// [`MacTable::learn`] under the writer mutex: a new address, a move, or an entry to revive.
    /// Out of line, so that the lock-free common case inlines into the pipeline small.
    #[inline(never)]
    fn learn_locked(&self, key: u64, net: u16, net_gen: u32, port: PortRef, now: u32) -> Learn {
        // Neither wait for a growth's copy nor make it copy again: the caller learns the address
        // once the copy is done. Checked before the mutex, which a growth holds at its start and
        // end, and under it (a growth may have started while this waited).
        if self.shared.growing.load(RELAXED) {
            return Learn::Deferred;
        }
        let mut w = self.writer();
        if self.shared.growing.load(RELAXED) {
            return Learn::Deferred;
        }
        let t = Arc::clone(&w.tables);
        // Generations change under this mutex (`sync_network`): checked once, it holds.
        if t.net(net).is_some_and(|n| n.gen.load(RELAXED) != net_gen) {
            return Learn::Stale;
        }
        if let Some(i) = t.find(key) {
            let e = t.load(i);
            if t.is_live(&e, now) {
                if e.port == port.slot && e.port_gen == port.gen {
                    if later(now, e.seen) {
                        t.slots[i].seen.store(now, RELAXED);
                    }
                    return Learn::Refreshed;
                }
                if e.flags & FLAG_STATIC != 0 {
                    return Learn::StaticConflict;
                }
                t.begin();
                t.store(
                    i,
                    &Entry {
                        port: port.slot,
                        port_gen: port.gen,
                        seen: now,
                        ..e
                    },
                );
                t.end();
                self.shared.changes.note(&w, key);
                return Learn::Moved;
            }
            // A stale or expired entry of this very key: revive it if the network has room (a
            // refusal changed nothing: the other workers' answers stand).
            let r = revive(&t, i, net, port, now, 0);
            if r != Learn::LimitReached {
                self.shared.changes.note(&w, key);
            }
            return r;
        }
        insert_new(&t, &mut w, key, net, port, now, 0, &self.shared.changes)
    }

    /// How many changes that may make a copy of an entry wrong the table has had: moves,
    /// removals (swept or not), revivals of expired or stale entries, static entries replaced,
    /// networks flushed, a new aging time. Learning a new address does not count. A holder of
    /// copies (the XDP shortcut's entries, the pipeline's remembered answers) reads it before it
    /// looks entries up, and checks or drops its copies when it moved since.
    #[inline]
    pub fn changes(&self) -> u64 {
        self.shared.changes.count.load(Ordering::Acquire)
    }

    /// The addresses that changed since [`MacTable::changes`] read `from`: their keys
    /// ([`MacTable::key`]) into `out` (cleared first; in the order of the changes, an address
    /// as often as it changed), and the count they bring it to. None when that may have been
    /// any address: more than 1 024 changes since ([`CHANGES_TOLD`]), or one of every address
    /// (a network flushed, a new aging time). Then every copy must be checked. Lock-free. A
    /// view that has not picked up a growth yet ([`MacTable::is_current`]) may not see in its
    /// lookups the changes told.
    pub fn changed_since(&self, from: u64, out: &mut Vec<u64>) -> Option<u64> {
        let c = &self.shared.changes;
        out.clear();
        let to = c.count.load(Ordering::Acquire);
        if to.wrapping_sub(from) > CHANGES_TOLD as u64 {
            return None;
        }
        for n in from..to {
            let key = c.log[n as usize % CHANGE_LOG].load(RELAXED);
            if key == EVERY_ADDRESS {
                return None;
            }
            out.push(key);
        }
        // The keys read before the count is read again (see `Changes::note`): change
        // `from + CHANGE_LOG`, the first to write over a slot read, starts once the count is
        // that far, so a key it wrote shows as a count at least that far.
        fence(Ordering::Acquire);
        let now = c.count.load(RELAXED);
        (now.wrapping_sub(from) < CHANGE_LOG as u64).then_some(to)
    }

    /// Refreshes `mac`'s entry in network `net` if it is live and of `port`, as a frame from it
    /// would: never learns, moves or revives. For frames forwarded where the table did not see
    /// them (the XDP shortcut). Lock-free.
    pub fn touch(&self, net: u16, mac: Mac, port: PortRef, now: u32) -> bool {
        let key = key_of(net, mac);
        let found = self.tables.read(|t| {
            let i = t.find(key)?;
            let e = t.load(i);
            (t.is_live(&e, now) && e.port == port.slot && e.port_gen == port.gen)
                .then_some((i, e.seen))
        });
        let Some((i, seen)) = found else {
            return false;
        };
        if later(now, seen) {
            // Only if the slot still holds what was read (as `learn` does).
            let _ = self.tables.slots[i]
                .seen
                .compare_exchange(seen, now, RELAXED, RELAXED);
        }
        true
    }

    /// Installs a static entry of network `net` of generation `net_gen`: it never ages and
    /// learning never moves it. `Stale` (nothing installed) where the table knows the network's
    /// slot at another generation: a worker adopting an older snapshot late would otherwise put
    /// a removed network's static entry into the network that took its slot.
    pub fn add_static(
        &self,
        (net, net_gen): (u16, u32),
        mac: Mac,
        port: PortRef,
        now: u32,
    ) -> Learn {
        let key = key_of(net, mac);
        let mut w = self.writer();
        let t = Arc::clone(&w.tables);
        if t.net(net).is_some_and(|n| n.gen.load(RELAXED) != net_gen) {
            return Learn::Stale;
        }
        if let Some(i) = t.find(key) {
            let e = t.load(i);
            if t.is_live(&e, now) {
                // Every worker installs the static entries of each snapshot it adopts: an
                // unchanged one is not written again (a write makes lookups probe again).
                let same = e.port == port.slot && e.port_gen == port.gen && e.flags == FLAG_STATIC;
                if !same {
                    t.begin();
                    t.store(
                        i,
                        &Entry {
                            port: port.slot,
                            port_gen: port.gen,
                            flags: FLAG_STATIC,
                            ..e
                        },
                    );
                    t.end();
                    self.shared.changes.note(&w, key);
                }
                return Learn::Refreshed;
            }
            let r = revive(&t, i, net, port, now, FLAG_STATIC);
            self.shared.changes.note(&w, key);
            return r;
        }
        insert_new(
            &t,
            &mut w,
            key,
            net,
            port,
            now,
            FLAG_STATIC,
            &self.shared.changes,
        )
    }

    /// Removes a live entry of a network, if present.
    pub fn remove(&self, net: u16, mac: Mac, now: u32) -> bool {
        self.remove_if(net, mac, now, |_| true).unwrap_or(false)
    }

    /// Removes the static entry of `mac` in network `net` if it is still `port`'s: the port
    /// went, or no longer claims the address (its port security turned off, its address
    /// changed). Static entries never age, so nothing else would: the address would stay
    /// bound to a port that is gone, refused to learning elsewhere, and counted against its
    /// network's limit for good. Another port's entry of the address, static or learned, stays.
    /// Returns whether one was removed.
    pub fn remove_static(&self, net: u16, mac: Mac, port: PortRef) -> bool {
        let theirs =
            |e: &Entry| e.flags & FLAG_STATIC != 0 && e.port == port.slot && e.port_gen == port.gen;
        self.remove_if(net, mac, 0, theirs).is_some()
    }

    /// Ports that went: the sweeper removes their entries, static or learned, on its next pass
    /// (until then lookups still find them; the pipeline reads an entry of a port its snapshot
    /// does not have as unknown). Any worker may say so, of any snapshot it adopts, again or
    /// late: a port's slot and generation never name another port.
    pub fn forget_ports(&self, ports: &[PortRef]) {
        if ports.is_empty() {
            return;
        }
        let mut w = self.writer();
        for p in ports {
            let i = usize::from(p.slot);
            if w.gone.len() <= i {
                w.gone.resize(i + 1, 0);
            }
            w.gone[i] = w.gone[i].max(p.gen);
        }
    }

    /// Removes the entry of `mac` in network `net`, live or not, if `which` says so of it.
    /// `Some(whether it was live at now)` if it did.
    fn remove_if(
        &self,
        net: u16,
        mac: Mac,
        now: u32,
        which: impl FnOnce(&Entry) -> bool,
    ) -> Option<bool> {
        let key = key_of(net, mac);
        let mut w = self.writer();
        let t = Arc::clone(&w.tables);
        let i = t.find(key)?;
        let e = t.load(i);
        if !which(&e) {
            return None;
        }
        t.begin();
        delete_slot(&t, &mut w, i);
        t.end();
        // An expired entry of the current generation still counted against the limit.
        if t.is_current(&e) {
            dec_count(&t, net);
        }
        self.shared.changes.note(&w, key);
        Some(t.is_live(&e, now))
    }

    /// Removes up to `budget` slots' worth of expired and stale entries, resuming where the last
    /// call stopped. Returns how many entries were removed.
    pub fn sweep(&self, now: u32, budget: usize) -> usize {
        let mut w = self.writer();
        let t = Arc::clone(&w.tables);
        sweep(&t, &mut w, now, budget, &self.shared.changes)
    }

    /// As [`MacTable::sweep`], unless another worker holds the writer lock (it is sweeping or
    /// learning) or the table is growing: then nothing, at once. The workers' clock-driven
    /// housekeeping uses this.
    pub fn try_sweep(&self, now: u32, budget: usize) -> usize {
        if self.shared.growing.load(RELAXED) {
            return 0;
        }
        let mut w = match self.shared.writer.try_lock() {
            Ok(w) => w,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return 0,
        };
        if self.shared.growing.load(RELAXED) {
            return 0;
        }
        let t = Arc::clone(&w.tables);
        sweep(&t, &mut w, now, budget, &self.shared.changes)
    }

    /// The live entries of a network, for the operator's view.
    pub fn entries(&self, net: u16, now: u32) -> Vec<MacEntry> {
        let want = u64::from(net) + 1;
        let t = Arc::clone(&self.writer().tables);
        let mut out: Vec<MacEntry> = (0..t.slots.len())
            .map(|i| t.load(i))
            .filter(|e| e.key != EMPTY && e.key >> 48 == want && t.is_live(e, now))
            .map(|e| MacEntry {
                mac: Mac::from_u64(e.key),
                port: PortRef {
                    slot: e.port,
                    gen: e.port_gen,
                },
                age_secs: if e.flags & FLAG_STATIC != 0 {
                    0
                } else {
                    // (A `seen` a moment ahead of now, stamped by another worker, is age 0.)
                    now.saturating_sub(e.seen)
                },
                is_static: e.flags & FLAG_STATIC != 0,
            })
            .collect();
        out.sort_by_key(|e| e.mac);
        out
    }
}

/// A test's rendezvous with a growth ([`MacTable::growth_paused`]).
#[cfg(test)]
struct Rendezvous {
    there: std::sync::mpsc::Sender<()>,
    go: std::sync::mpsc::Receiver<()>,
}

/// Clears [`Shared::growing`] when a growth ends, whichever way.
struct Growing<'a>(&'a AtomicBool);

impl Drop for Growing<'_> {
    fn drop(&mut self) {
        self.0.store(false, RELAXED);
    }
}

/// A new table of `cap` slots and `nets` networks holding `old`'s current entries, and how many.
/// Made outside the writer mutex, it is used only if `old`'s sequence number did not move
/// meanwhile (see `MacTable::grow`); a refresh's `seen` racing the copy may be read before or
/// after.
fn copy(old: &Tables, cap: usize, nets: usize) -> (Tables, usize) {
    let new = Tables::new(cap, nets.max(old.nets.len()), old.aging());
    for (n, o) in new.nets.iter().zip(old.nets.iter()) {
        n.gen.store(o.gen.load(RELAXED), RELAXED);
        n.limit.store(o.limit.load(RELAXED), RELAXED);
        n.limit_version
            .store(o.limit_version.load(RELAXED), RELAXED);
        n.count.store(o.count.load(RELAXED), RELAXED);
    }
    let mut used = 0;
    for i in 0..old.slots.len() {
        let e = old.load(i);
        if e.key != EMPTY && old.is_current(&e) {
            let mut j = new.home(e.key);
            while new.slots[j].key.load(RELAXED) != EMPTY {
                j = (j + 1) & new.mask;
            }
            new.store(j, &e);
            used += 1;
        }
    }
    (new, used)
}

fn has_room(t: &Tables, net: u16) -> bool {
    t.net(net)
        .is_some_and(|n| n.count.load(RELAXED) < n.limit.load(RELAXED))
}

fn inc_count(t: &Tables, net: u16) {
    if let Some(n) = t.net(net) {
        n.count.store(n.count.load(RELAXED) + 1, RELAXED);
    }
}

fn dec_count(t: &Tables, net: u16) {
    if let Some(n) = t.net(net) {
        n.count
            .store(n.count.load(RELAXED).saturating_sub(1), RELAXED);
    }
}

// The functions below run with the writer mutex held (`w` proves it).

fn revive(t: &Tables, i: usize, net: u16, port: PortRef, now: u32, flags: u8) -> Learn {
    // An expired entry of the current generation still counts against the limit until it is
    // revived or swept; a stale one (old generation) does not.
    let e = t.load(i);
    let was_counted = t.is_current(&e);
    if !was_counted && !has_room(t, net) && flags == 0 {
        return Learn::LimitReached;
    }
    let gen = t.net(net).map_or(0, |n| n.gen.load(RELAXED));
    t.begin();
    t.store(
        i,
        &Entry {
            key: e.key,
            net_gen: gen,
            port_gen: port.gen,
            seen: now,
            port: port.slot,
            flags,
        },
    );
    t.end();
    if !was_counted {
        inc_count(t, net);
    }
    Learn::Learned
}

#[allow(clippy::too_many_arguments)]
fn insert_new(
    t: &Tables,
    w: &mut Writer,
    key: u64,
    net: u16,
    port: PortRef,
    now: u32,
    flags: u8,
    changes: &Changes,
) -> Learn {
    let Some(state) = t.net(net) else {
        return Learn::LimitReached;
    };
    if flags == 0 && state.count.load(RELAXED) >= state.limit.load(RELAXED) {
        return Learn::LimitReached;
    }
    // Keep the load at or below 3/4 so probes stay short: reclaim dead entries first, and
    // refuse to learn if the table is still full of live ones.
    if w.used + 1 > t.slots.len() / 4 * 3 {
        // Bounded, so that a flood of new addresses cannot make each frame scan the table.
        sweep(t, w, now, 256, changes);
        if w.used + 1 > t.slots.len() / 4 * 3 {
            t.full.store(FULL | u64::from(now), RELAXED);
            return Learn::LimitReached;
        }
    }
    let mut i = t.home(key);
    while t.slots[i].key.load(RELAXED) != EMPTY {
        i = (i + 1) & t.mask;
    }
    t.begin();
    t.store(
        i,
        &Entry {
            key,
            net_gen: state.gen.load(RELAXED),
            port_gen: port.gen,
            seen: now,
            port: port.slot,
            flags,
        },
    );
    t.end();
    w.used += 1;
    inc_count(t, net);
    Learn::Learned
}

/// Backward-shift deletion: keeps every probe chain unbroken without tombstones. The caller
/// brackets it with `begin`/`end`.
fn delete_slot(t: &Tables, w: &mut Writer, mut hole: usize) {
    t.store(hole, &Entry::default());
    w.used -= 1;
    t.room_made();
    let mut j = hole;
    loop {
        j = (j + 1) & t.mask;
        let key = t.slots[j].key.load(RELAXED);
        if key == EMPTY {
            return;
        }
        let home = t.home(key);
        // Can the entry at j move back to the hole? Only if its home is not in (hole, j].
        let dist_home = j.wrapping_sub(home) & t.mask;
        let dist_hole = j.wrapping_sub(hole) & t.mask;
        if dist_home >= dist_hole {
            t.store(hole, &t.load(j));
            t.store(j, &Entry::default());
            hole = j;
        }
    }
}

/// Removes up to `budget` slots' worth of expired and stale entries, and those of ports that went
/// ([`MacTable::forget_ports`]); each removal is a change of its address ([`MacTable::changes`]).
fn sweep(t: &Tables, w: &mut Writer, now: u32, budget: usize, changes: &Changes) -> usize {
    let cap = t.slots.len();
    let mut removed = 0;
    let mut i = w.sweep_cursor & t.mask;
    for _ in 0..budget.min(cap) {
        let e = t.load(i);
        let gone = || {
            w.gone
                .get(usize::from(e.port))
                .is_some_and(|&g| e.port_gen <= g)
        };
        if e.key != EMPTY && (!t.is_live(&e, now) || gone()) {
            if t.is_current(&e) {
                // Expired or its port's, not stale: it still counted against its network's
                // limit.
                if let Ok(net) = u16::try_from(net_of(e.key)) {
                    dec_count(t, net);
                }
            }
            // One removal at a time, so that readers wait for one shift, not for the scan.
            t.begin();
            delete_slot(t, w, i);
            t.end();
            changes.note(w, e.key);
            removed += 1;
            // The shift may have moved an unvisited entry into `i`: look at it again.
            continue;
        }
        i = (i + 1) & t.mask;
    }
    w.sweep_cursor = i;
    removed
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

    #[test]
    fn one_growth_makes_room_for_entries_and_networks() {
        let mut t = MacTable::new(300, 1 << 20);
        t.sync_network(0, 1, 1000, 0);
        assert_eq!(t.learn(0, mac(1), P1, 0), Learn::Learned);
        let grown = MacTable::growths;
        let before = grown(&t);
        t.reserve_for(100_000, 70);
        assert_eq!(grown(&t), before + 1, "one growth");
        assert!(t.capacity() >= 200_000);
        // Declaring those networks, and reserving what is there, copies nothing more.
        let after = grown(&t);
        for net in 1..70u16 {
            t.sync_network(net, 1, 1000, 0);
        }
        t.reserve_for(100_000, 70);
        t.reserve(50);
        assert_eq!(grown(&t), after);
        // The entry came along.
        assert_eq!(t.lookup(0, mac(1), 0), Some(P1));
        // A network beyond the room still grows the table.
        t.sync_network(200, 1, 10, 0);
        assert_eq!(grown(&t), after + 1);
    }

    fn recopies(t: &MacTable) -> u64 {
        t.shared.recopies.load(RELAXED)
    }

    #[test]
    fn learning_during_a_growth_is_deferred_and_lookups_go_on() {
        let mut t = table();
        assert_eq!(t.learn(0, mac(1), P1, 0), Learn::Learned);
        t.add_static((0, 1), mac(9), P2, 0);
        let (slots, grown) = (t.capacity(), t.growths());
        let (go, grower) = t.growth_paused(100_000);
        // The copy runs outside the writer mutex: nothing here waits for it, and nothing here
        // changes what it copies.
        assert!(t.is_growing());
        assert_eq!(t.learn(0, mac(2), P2, 1), Learn::Deferred, "a new address");
        assert_eq!(t.learn(0, mac(1), P2, 1), Learn::Deferred, "a move");
        assert_eq!(t.learn(0, mac(1), P1, 1), Learn::Refreshed, "no lock");
        assert_eq!(t.lookup(0, mac(1), 1), Some(P1));
        assert_eq!(t.try_sweep(1000, 1 << 20), 0, "the sweeper waits too");
        // A worker adopting a snapshot it already adopted writes nothing.
        t.sync_network(0, 1, 8192, 0);
        assert_eq!(t.add_static((0, 1), mac(9), P2, 0), Learn::Refreshed);
        go.send(()).unwrap();
        grower.join().unwrap();
        assert!(!t.is_growing());
        assert_eq!(recopies(&t), 0, "the copy made beside the mutex was used");
        t.refresh();
        assert!(t.capacity() > slots);
        assert_eq!(t.growths(), grown + 1);
        assert_eq!(t.lookup(0, mac(1), 1), Some(P1), "copied");
        assert_eq!(
            t.learn(0, mac(2), P2, 1),
            Learn::Learned,
            "learned once grown"
        );
        assert_eq!(t.learn(0, mac(1), P2, 1), Learn::Moved);
        assert_eq!(t.network_len(0), 3);
    }

    #[test]
    fn a_change_made_during_a_growth_is_in_the_grown_table() {
        // Each change that takes the writer mutex, alone during a growth's copy: the grower
        // copies again, and the grown table has it.
        type Change = fn(&mut MacTable);
        type Check = fn(&MacTable);
        let cases: [(&str, Change, Check); 5] = [
            (
                "a static entry",
                |t| assert_eq!(t.add_static((0, 1), mac(3), P2, 0), Learn::Learned),
                |t| assert_eq!(t.learn(0, mac(3), P1, 0), Learn::StaticConflict),
            ),
            (
                "a removal",
                |t| assert!(t.remove(0, mac(1), 0)),
                |t| assert_eq!((t.lookup(0, mac(1), 0), t.network_len(0)), (None, 1)),
            ),
            (
                "a network's new generation",
                |t| t.sync_network(1, 2, 8192, 0),
                |t| assert_eq!((t.lookup(1, mac(5), 0), t.network_len(1)), (None, 0)),
            ),
            (
                "a network's limit",
                |t| t.sync_network(0, 1, 2, 0),
                |t| assert_eq!(t.learn(0, mac(4), P1, 0), Learn::LimitReached),
            ),
            (
                "the aging time",
                |t| t.set_aging_secs(7),
                |t| assert_eq!(t.aging_secs(), 7),
            ),
        ];
        for (what, change, check) in cases {
            let mut t = table();
            t.learn(0, mac(1), P1, 0);
            t.learn(0, mac(2), P1, 0);
            t.learn(1, mac(5), P1, 0);
            let (go, grower) = t.growth_paused(100_000);
            change(&mut t);
            go.send(()).unwrap();
            grower.join().unwrap();
            t.refresh();
            assert!(t.capacity() >= 200_000, "{what}");
            assert_eq!(recopies(&t), 1, "{what}");
            check(&t);
            assert_eq!(t.lookup(0, mac(2), 0), Some(P1), "{what}");
        }
    }

    fn table() -> MacTable {
        let mut t = MacTable::new(300, 1 << 20);
        t.sync_network(0, 1, 8192, 0);
        t.sync_network(1, 1, 8192, 0);
        t.reserve(16384);
        t
    }

    #[test]
    fn learned_address_is_found_in_its_network_only() {
        let t = table();
        assert_eq!(t.learn(0, mac(1), P1, 0), Learn::Learned);
        assert_eq!(t.lookup(0, mac(1), 1), Some(P1));
        assert_eq!(t.lookup(1, mac(1), 1), None);
    }

    #[test]
    fn same_mac_lives_in_two_networks() {
        let t = table();
        t.learn(0, mac(1), P1, 0);
        t.learn(1, mac(1), P2, 0);
        assert_eq!(t.lookup(0, mac(1), 0), Some(P1));
        assert_eq!(t.lookup(1, mac(1), 0), Some(P2));
        assert_eq!(t.network_len(0), 1);
        assert_eq!(t.network_len(1), 1);
    }

    #[test]
    fn entries_age_out_after_the_aging_time() {
        let t = table();
        t.set_aging_secs(300);
        t.learn(0, mac(1), P1, 1000);
        assert_eq!(t.lookup(0, mac(1), 1299), Some(P1));
        assert_eq!(t.lookup(0, mac(1), 1300), None);
        assert_eq!(t.sweep(1300, usize::MAX), 1);
        assert_eq!(t.network_len(0), 0);
    }

    /// A port that went loses its entries, static or learned, on the sweeper's next pass, and
    /// they stop counting against their network's limit; a later port in its slot keeps its own.
    #[test]
    fn entries_of_ports_that_went_are_swept() {
        let t = table();
        t.set_aging_secs(300);
        t.learn(0, mac(1), P1, 0);
        t.add_static((0, 1), mac(2), P1, 0);
        t.learn(0, mac(3), P2, 0);
        assert_eq!(t.sweep(1, usize::MAX), 0, "nothing is gone yet");
        t.forget_ports(&[P1]);
        // Said again, or late, by another worker: no harm.
        t.forget_ports(&[P1, PortRef { slot: 1, gen: 0 }]);
        let next = PortRef { slot: 1, gen: 2 };
        t.learn(0, mac(4), next, 1);
        assert_eq!(t.lookup(0, mac(1), 1), Some(P1), "until swept");
        assert_eq!(t.sweep(1, usize::MAX), 2);
        assert_eq!(t.lookup(0, mac(1), 1), None);
        assert_eq!(t.lookup(0, mac(2), 1), None);
        assert_eq!(t.lookup(0, mac(3), 1), Some(P2));
        assert_eq!(t.lookup(0, mac(4), 1), Some(next));
        assert_eq!(t.network_len(0), 2);
        // The old port's address heard on the new one is learned there, and stays.
        assert_eq!(t.learn(0, mac(1), next, 2), Learn::Learned);
        assert_eq!(t.sweep(2, usize::MAX), 0);
    }

    #[test]
    fn a_refresh_never_takes_an_entry_back_to_an_earlier_second() {
        let t = table();
        t.set_aging_secs(300);
        assert_eq!(t.learn(0, mac(1), P1, 0), Learn::Learned);
        assert_eq!(t.learn(0, mac(1), P1, 10), Learn::Refreshed);
        // A worker whose clock still reads the second before.
        assert_eq!(t.learn(0, mac(1), P1, 9), Learn::Refreshed);
        assert!(t.touch(0, mac(1), P1, 8));
        assert_eq!(t.lookup(0, mac(1), 309), Some(P1), "seen at 10, not 8 or 9");
    }

    #[test]
    fn changes_count_what_may_make_a_copy_of_an_entry_wrong() {
        let t = table();
        t.set_aging_secs(300);
        let c = t.changes();
        assert_eq!(t.learn(0, mac(1), P1, 0), Learn::Learned);
        assert_eq!(t.learn(0, mac(1), P1, 10), Learn::Refreshed);
        assert!(t.touch(0, mac(1), P1, 20), "refreshed as a frame would");
        assert!(!t.touch(0, mac(1), P2, 20), "never moved");
        assert!(!t.touch(0, mac(9), P1, 20), "never learned");
        assert_eq!(t.changes(), c, "new addresses and refreshes are no change");
        assert_eq!(t.lookup(0, mac(1), 319), Some(P1), "touched at 20");
        assert_eq!(t.learn(0, mac(1), P2, 30), Learn::Moved);
        assert_eq!(t.changes(), c + 1);
        // Expired, then learned again before the sweeper saw it: a revival.
        t.learn(0, mac(2), P1, 0);
        assert_eq!(t.learn(0, mac(2), P2, 400), Learn::Learned);
        assert_eq!(t.changes(), c + 2);
        assert!(t.remove(0, mac(2), 400));
        assert_eq!(t.changes(), c + 3);
        assert_eq!(t.sweep(400, usize::MAX), 1, "mac(1), idle since 30");
        assert_eq!(t.changes(), c + 4);
        assert_eq!(t.sweep(400, usize::MAX), 0);
        assert_eq!(t.changes(), c + 4, "a sweep that removes nothing");
    }

    #[test]
    fn any_aging_time_works_up_to_never() {
        // 2^31 s and more: compared as signed, every entry read as aged at once.
        for aging in [i32::MAX as u32 + 1, u32::MAX] {
            let mut t = MacTable::new(aging, 1 << 10);
            t.sync_network(0, 1, 8192, 0);
            assert_eq!(t.learn(0, mac(1), P1, 10), Learn::Learned);
            assert_eq!(t.lookup(0, mac(1), 1_000_000), Some(P1), "{aging}");
            assert_eq!(t.learn(0, mac(1), P1, 1_000_001), Learn::Refreshed);
            assert_eq!(t.sweep(2_000_000, usize::MAX), 0);
        }
        // A `seen` a second ahead of now (another worker's clock) is fresh, and shown as age 0.
        let t = table();
        t.learn(0, mac(2), P1, 11);
        assert_eq!(t.lookup(0, mac(2), 10), Some(P1));
        assert_eq!(t.entries(0, 10)[0].age_secs, 0);
    }

    /// Workers adopt the same snapshots at different moments: one still on an older snapshot
    /// puts neither its learning limit back (same generation) nor its static entries into a
    /// network that took the slot since (newer generation).
    #[test]
    fn a_late_adopter_of_an_older_snapshot_undoes_nothing() {
        let mut t = table();
        t.sync_network(0, 1, 2, 5);
        t.sync_network(0, 1, 8192, 4);
        assert_eq!(t.network_sizes()[0], (0, 2), "the newer limit stands");
        t.learn(0, mac(1), P1, 0);
        t.learn(0, mac(2), P1, 0);
        assert_eq!(t.learn(0, mac(3), P1, 0), Learn::LimitReached);
        t.sync_network(0, 1, 8192, 6);
        assert_eq!(
            t.learn(0, mac(3), P1, 0),
            Learn::Learned,
            "a newer one applies"
        );
        // Slot 0 now holds generation 2 (another network): generation 1's static entry stays out.
        t.sync_network(0, 2, 8192, 7);
        assert_eq!(t.add_static((0, 1), mac(9), P2, 0), Learn::Stale);
        assert_eq!(t.lookup(0, mac(9), 0), None);
        assert_eq!(t.add_static((0, 2), mac(9), P2, 0), Learn::Learned);
        assert_eq!(t.lookup(0, mac(9), 0), Some(P2));
    }

    /// Two workers learning the same addresses on their own ports (each move undone by the
    /// other) while a third sweeps with a clock that ages the idle ones: the network's count
    /// stays exactly its live entries, within its limit, and every lookup answers one of the two
    /// ports.
    #[test]
    fn concurrent_learners_and_the_sweeper_keep_the_count_exact() {
        let mut t = table();
        const ADDRS: u32 = 300;
        t.sync_network(0, 2, 200, 1);
        let stop = Arc::new(AtomicBool::new(false));
        let learner = |port: PortRef, odd: bool| {
            let (t, stop) = (t.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut k = 0u32;
                while !stop.load(Ordering::Acquire) && k < 2_000_000 {
                    // Each address learned at second 0 by one learner, at 0 to 1000 by the other.
                    let i = k.wrapping_mul(7919) % ADDRS;
                    let now = if i % 2 == u32::from(odd) { 0 } else { k % 1000 };
                    let r = t.learn(0, mac(i), port, now);
                    assert_ne!(r, Learn::Stale);
                    if let Some(p) = t.lookup(0, mac(i), now) {
                        assert!(p == P1 || p == P2, "{p:?}");
                    }
                    k += 1;
                }
            })
        };
        let (a, b) = (learner(P1, false), learner(P2, true));
        let sweeper = {
            let (t, stop) = (t.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut now = 0;
                while !stop.load(Ordering::Acquire) {
                    now = (now + 7) % 1300;
                    t.try_sweep(now, 64);
                }
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(300));
        stop.store(true, Ordering::Release);
        for h in [a, b, sweeper] {
            h.join().unwrap();
        }
        // At a time no entry has aged (every `seen` is 0 to 1000, aging 300 s: "now" 0 reads
        // every one as live), the count is every current entry.
        let live = t.entries(0, 0).len() as u32;
        assert_eq!(t.network_len(0), live);
        assert!(live <= 200, "{live}");
        // Once all have aged, sweeps remove every one of them (a pass that removes entries does
        // not look again at the slots before its start: swept until one removes nothing), and
        // the count follows.
        let mut gone = 0;
        loop {
            let n = t.sweep(5000, usize::MAX);
            if n == 0 {
                break;
            }
            gone += n;
        }
        assert_eq!(gone, live as usize);
        assert_eq!(t.network_len(0), 0);
        assert!(t.entries(0, 0).is_empty());
    }

    /// A worker's lookups race growths published by another view (the worker refreshing its
    /// view between passes, as it does each round): a live entry never reads absent, nor on
    /// another port, in the table it had or in the one it picks up.
    #[test]
    fn lookups_racing_growths_find_every_live_entry() {
        let mut t = MacTable::new(300, 1 << 20);
        t.sync_network(0, 1, 1 << 20, 0);
        t.reserve(1000);
        const ADDRS: u32 = 500;
        let port = |i: u32| if i.is_multiple_of(2) { P1 } else { P2 };
        for i in 0..ADDRS {
            assert_eq!(t.learn(0, mac(i), port(i), 0), Learn::Learned);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (mut r, stop) = (t.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let (mut passes, mut grown) = (0u32, 0u32);
                loop {
                    // One more pass once told to stop: over the last table, whatever the
                    // scheduler let this thread see before.
                    let last = stop.load(Ordering::Acquire);
                    grown += u32::from(r.refresh());
                    for i in 0..ADDRS {
                        assert_eq!(r.lookup(0, mac(i), 1), Some(port(i)), "{i}");
                    }
                    passes += 1;
                    if last {
                        break;
                    }
                }
                (passes, grown)
            })
        };
        let before = t.capacity();
        for k in 11..18 {
            t.reserve(1 << k);
        }
        assert_eq!(t.capacity(), before << 7, "seven growths");
        stop.store(true, Ordering::Release);
        let (passes, grown) = reader.join().unwrap();
        assert!(
            passes > 0 && grown > 0,
            "{passes} passes, {grown} growths seen"
        );
    }

    /// An address the network has no room to revive changes nothing: the workers' remembered
    /// answers are not ended for it.
    #[test]
    fn a_refused_revival_is_no_change() {
        let mut t = table();
        t.learn(0, mac(1), P1, 0);
        // A new generation leaves mac(1) stale in its slot; the limit is then filled.
        t.sync_network(0, 2, 1, 1);
        t.learn(0, mac(2), P1, 0);
        let c = t.changes();
        assert_eq!(t.learn(0, mac(1), P1, 0), Learn::LimitReached);
        assert_eq!(t.changes(), c);
    }

    #[test]
    fn the_table_keeps_which_addresses_changed() {
        let t = table();
        let key = |m| MacTable::key(0, m);
        let mut out = vec![7];
        let c = t.changes();
        assert_eq!(t.changed_since(c, &mut out), Some(c));
        assert!(out.is_empty(), "cleared");
        t.learn(0, mac(1), P1, 0);
        t.learn(0, mac(2), P1, 0);
        t.learn(0, mac(3), P1, 0);
        assert_eq!(t.learn(0, mac(2), P2, 10), Learn::Moved);
        assert!(t.remove(0, mac(3), 10));
        assert_eq!(t.learn(0, mac(2), P1, 20), Learn::Moved);
        assert_eq!(
            t.add_static((0, 1), mac(1), P2, 20),
            Learn::Refreshed,
            "replaced"
        );
        // mac(2) idle since 20, mac(1) static: the sweep removes mac(2) alone.
        assert_eq!(t.sweep(400, usize::MAX), 1);
        let all = [mac(2), mac(3), mac(2), mac(1), mac(2)].map(key);
        assert_eq!(t.changed_since(c, &mut out), Some(c + 5));
        assert_eq!(out, all, "each change's address, in order");
        assert_eq!(t.changed_since(c + 3, &mut out), Some(c + 5));
        assert_eq!(out, all[3..]);
        // A new aging time may touch any address: every copy must be checked.
        t.set_aging_secs(100);
        assert_eq!(t.changed_since(c, &mut out), None);
        assert_eq!(t.changed_since(c + 5, &mut out), None);
        t.learn(0, mac(9), P1, 30);
        let c = t.changes();
        assert_eq!(
            t.changed_since(c, &mut out),
            Some(c),
            "nothing since: a new address"
        );
        // As many changes as the table tells, then one more: none of them is told.
        let told = CHANGES_TOLD as u64;
        for i in 0..=told {
            t.learn(0, mac(9), if i % 2 == 0 { P2 } else { P1 }, 30);
        }
        assert_eq!(t.changes(), c + told + 1);
        assert_eq!(t.changed_since(c, &mut out), None, "one too many");
        assert_eq!(t.changed_since(c + 1, &mut out), Some(c + told + 1));
        assert_eq!(out.len(), CHANGES_TOLD);
        assert!(out.iter().all(|&k| k == key(mac(9))));
        // A network flushed (a new generation) may touch any address too.
        let mut t = t;
        let c = t.changes();
        t.sync_network(0, 2, 1000, 0);
        assert_eq!(t.changed_since(c, &mut out), None);
    }

    #[test]
    fn a_reader_of_the_change_log_is_told_each_change_in_order_or_nothing_while_a_writer_runs() {
        let t = table();
        const ADDRS: u32 = 64;
        for i in 0..ADDRS {
            t.learn(0, mac(i), P1, 0);
        }
        let start = t.changes();
        // The reader tells the writer to stop once it has seen enough; the writer stops anyway
        // after 4 million changes, and says so.
        let (stop, done) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        // The writer moves the addresses back and forth, and keeps the order of its changes.
        let writer = {
            let (t, stop, done) = (t.clone(), Arc::clone(&stop), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut on_p2 = [false; ADDRS as usize];
                let mut order = Vec::new();
                let mut k = 0u32;
                while !stop.load(Ordering::Acquire) && k < 4_000_000 {
                    let i = k.wrapping_mul(7919) % ADDRS;
                    let on = &mut on_p2[i as usize];
                    *on = !*on;
                    let to = if *on { P2 } else { P1 };
                    assert_eq!(t.learn(0, mac(i), to, 0), Learn::Moved);
                    order.push(MacTable::key(0, mac(i)));
                    k += 1;
                }
                done.store(true, Ordering::Release);
                order
            })
        };
        let mut told = Vec::new();
        let (mut from, mut untold, mut told_keys) = (start, 0u32, 0usize);
        let mut out = Vec::new();
        let mut lag = 0u64;
        while (told_keys < 20_000 || untold < 3) && !done.load(Ordering::Acquire) {
            // Falls behind by 0 to 1 100 changes before it asks: as many as the log tells,
            // and more.
            lag = (lag + 37) % 1100;
            while t.changes() < from + lag && !done.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            match t.changed_since(from, &mut out) {
                Some(to) => {
                    assert_eq!(to - from, out.len() as u64);
                    told_keys += out.len();
                    told.push((from, out.clone()));
                    from = to;
                }
                None => {
                    untold += 1;
                    from = t.changes();
                }
            }
        }
        stop.store(true, Ordering::Release);
        let order = writer.join().unwrap();
        assert!(
            told_keys >= 20_000 && untold >= 3,
            "the reader was told {told_keys} changes, and nothing {untold} times"
        );
        for (from, keys) in told {
            let at = usize::try_from(from - start).unwrap();
            assert_eq!(keys, order[at..at + keys.len()], "changes from {at}");
        }
    }

    #[test]
    fn a_full_tables_own_sweep_counts_as_a_change() {
        let (t, _) = full_table();
        let c = t.changes();
        // Every entry expired: learning makes room by sweeping them.
        assert_eq!(t.learn(0, mac(5000), P1, 400), Learn::Learned);
        assert!(t.changes() > c);
    }

    /// A table full of live entries refuses ever new addresses (a spoofing VM's) without the
    /// writer mutex for the rest of the second its learning found it full, and learns again as
    /// soon as a removal makes room.
    #[test]
    fn a_full_table_refuses_new_addresses_without_the_writer_mutex() {
        let (t, _) = full_table();
        // Learning with the writer mutex held elsewhere: a refusal must not wait for it.
        let learn = |i: u32, now: u32| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::scope(|s| {
                let held = t.writer();
                s.spawn(|| tx.send(t.learn_key(MacTable::key(0, mac(i)), 0, 1, P1, now)));
                let r = rx.recv_timeout(std::time::Duration::from_secs(5));
                drop(held);
                r.ok()
            })
        };
        for i in 5000..5100 {
            assert_eq!(learn(i, 0), Some(Learn::LimitReached), "{i}");
        }
        // The next second, one learner looks (and sweeps) under the mutex again.
        assert_eq!(t.learn(0, mac(6000), P1, 1), Learn::LimitReached);
        assert_eq!(learn(6001, 1), Some(Learn::LimitReached));
        // A removal makes room: learning takes it at once.
        assert!(t.remove(0, mac(3), 1));
        assert_eq!(t.learn(0, mac(6002), P1, 1), Learn::Learned);

        // So do a network flushed and a shorter aging time, the same second.
        let (mut t, _) = full_table();
        assert_eq!(t.learn(0, mac(7000), P1, 0), Learn::LimitReached);
        t.sync_network(0, 2, 1_000_000, 1);
        assert_eq!(t.learn(0, mac(7001), P1, 0), Learn::Learned);
        let (t, _) = full_table();
        assert_eq!(t.learn(0, mac(7000), P1, 5), Learn::LimitReached);
        t.set_aging_secs(2);
        assert_eq!(t.learn(0, mac(7001), P1, 5), Learn::Learned);
    }

    #[test]
    fn refresh_keeps_an_entry_alive() {
        let t = table();
        t.learn(0, mac(1), P1, 0);
        assert_eq!(t.learn(0, mac(1), P1, 200), Learn::Refreshed);
        assert_eq!(t.lookup(0, mac(1), 450), Some(P1));
    }

    #[test]
    fn mac_move_updates_the_port() {
        let t = table();
        t.learn(0, mac(1), P1, 0);
        assert_eq!(t.learn(0, mac(1), P2, 1), Learn::Moved);
        assert_eq!(t.lookup(0, mac(1), 1), Some(P2));
        assert_eq!(t.network_len(0), 1);
    }

    #[test]
    fn limit_stops_learning_but_not_lookup() {
        let mut t = table();
        t.sync_network(0, 1, 3, 0);
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
        let t = table();
        t.add_static((0, 1), mac(9), P1, 0);
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
        t.sync_network(0, 2, 8192, 0);
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
    fn an_older_generation_changes_nothing() {
        // A worker still on the older snapshot declares the network after one on the newer.
        let mut t = table();
        t.sync_network(0, 2, 8192, 0);
        t.learn(0, mac(1), P1, 0);
        t.sync_network(0, 1, 8192, 0);
        assert_eq!(t.lookup(0, mac(1), 0), Some(P1));
        assert_eq!(t.network_len(0), 1);
    }

    #[test]
    fn a_learner_on_an_older_generation_writes_nothing() {
        // The network moved to another segment; a worker still on the snapshot from before it
        // hears addresses of the old segment.
        let mut t = table();
        let key = |n| MacTable::key(0, mac(n));
        assert_eq!(t.learn_key(key(1), 0, 1, P1, 0), Learn::Learned);
        assert_eq!(t.learn_key(key(2), 0, 1, P1, 0), Learn::Learned);
        t.sync_network(0, 2, 8192, 0);
        assert_eq!(
            t.learn(0, mac(2), P2, 0),
            Learn::Learned,
            "heard in the new"
        );
        assert_eq!(
            t.learn_key(key(1), 0, 1, P1, 0),
            Learn::Stale,
            "a stale revival"
        );
        assert_eq!(
            t.learn_key(key(2), 0, 1, P1, 0),
            Learn::Stale,
            "a stale move"
        );
        assert_eq!(
            t.learn_key(key(3), 0, 1, P1, 0),
            Learn::Stale,
            "a stale address"
        );
        assert_eq!(t.lookup(0, mac(1), 0), None);
        assert_eq!(t.lookup(0, mac(2), 0), Some(P2));
        assert_eq!(t.lookup(0, mac(3), 0), None);
        assert_eq!(
            t.network_len(0),
            1,
            "nothing stale counts against the limit"
        );
        // The same port, once its worker adopted the new snapshot.
        assert_eq!(t.learn_key(key(3), 0, 2, P1, 0), Learn::Learned);
        assert_eq!(t.learn_key(key(3), 0, 2, P1, 1), Learn::Refreshed);
        // At the new generation's limit, a stale learner is not counted as refused by it.
        t.sync_network(0, 2, 2, 0);
        assert_eq!(t.learn_key(key(4), 0, 2, P1, 0), Learn::LimitReached);
        assert_eq!(t.learn_key(key(4), 0, 1, P1, 0), Learn::Stale);
    }

    #[test]
    fn an_entry_stamped_a_second_ahead_is_fresh() {
        let t = table();
        t.learn(0, mac(1), P1, 11);
        assert_eq!(t.lookup(0, mac(1), 10), Some(P1));
        assert_eq!(t.sweep(10, usize::MAX), 0);
    }

    #[test]
    fn new_generation_flushes() {
        let mut t = table();
        t.learn(0, mac(1), P1, 0);
        t.sync_network(0, 2, 8192, 0);
        assert_eq!(t.lookup(0, mac(1), 0), None);
    }

    #[test]
    fn many_entries_survive_deletes_in_probe_chains() {
        let mut t = MacTable::new(300, 1 << 20);
        t.sync_network(0, 1, 100_000, 0);
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
        let (t, cap) = full_table();
        assert_eq!(t.capacity(), cap, "not grown");
    }

    /// A table of 64 slots (`max_macs` 16) whose network's limit is far above: 1 000 addresses
    /// learned at second 0 fill it to three quarters (checked), the rest refused. Returns the
    /// table and its capacity before the learning.
    fn full_table() -> (MacTable, usize) {
        let mut t = MacTable::new(300, 16);
        t.sync_network(0, 1, 1_000_000, 0);
        t.reserve(1_000_000);
        let cap = t.capacity();
        let learned = (0..1000)
            .filter(|&i| t.learn(0, mac(i), P1, 0) == Learn::Learned)
            .count();
        assert_eq!(learned, cap / 4 * 3, "learned up to three quarters");
        (t, cap)
    }

    #[test]
    fn entries_lists_live_entries_with_age() {
        let t = table();
        t.learn(0, mac(2), P1, 10);
        t.add_static((0, 1), mac(1), P2, 0);
        let e = t.entries(0, 15);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].mac, mac(1));
        assert!(e[0].is_static);
        assert_eq!(e[1].age_secs, 5);
    }

    #[test]
    fn readers_never_miss_a_stable_entry_while_another_view_removes() {
        // Removals shift entries back along their probe chains: a reader racing them must retry,
        // never report a stable address as unknown or as another port's. The stable addresses
        // are learned after the ones removed, so that they sit behind them in their chains and
        // move when those go.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        for round in 0..40u32 {
            let mut t = MacTable::new(300, 1 << 20);
            t.sync_network(0, 1, 1 << 20, 0);
            // 8192 slots, 6000 entries: long probe chains, many shifts.
            t.reserve(4096);
            let churn = 100_000..104_000;
            for i in churn.clone() {
                t.learn(0, mac(i), P2, 0);
            }
            for i in 0..2000 {
                t.learn(0, mac(i), P1, 0);
            }
            stop.store(false, RELAXED);
            let reader = t.clone();
            let done = Arc::clone(&stop);
            let start = Arc::new(std::sync::Barrier::new(2));
            let started = Arc::clone(&start);
            let check = std::thread::spawn(move || {
                started.wait();
                while !done.load(RELAXED) {
                    for i in 0..2000 {
                        assert_eq!(
                            reader.lookup(0, mac(i), 1),
                            Some(P1),
                            "round {round}, mac {i}"
                        );
                    }
                }
            });
            start.wait();
            for i in churn {
                assert!(t.remove(0, mac(i), 0));
            }
            stop.store(true, RELAXED);
            check.join().expect("reader");
            assert_eq!(t.network_len(0), 2000);
        }
    }

    #[test]
    fn a_view_picks_up_the_table_another_view_grew() {
        let mut a = MacTable::new(300, 1 << 20);
        let mut b = a.clone();
        a.sync_network(0, 1, 100_000, 0);
        a.learn(0, mac(1), P1, 0);
        a.reserve(100_000);
        b.refresh();
        assert_eq!(b.capacity(), a.capacity());
        assert_eq!(b.lookup(0, mac(1), 0), Some(P1));
        assert_eq!(b.learn(0, mac(2), P2, 0), Learn::Learned);
        assert_eq!(a.lookup(0, mac(2), 0), Some(P2));
    }

    #[test]
    fn only_a_table_larger_than_the_caches_is_worth_prefetching_and_a_prefetch_changes_nothing() {
        let mut t = table();
        assert!(!t.worth_prefetching(), "32 768 slots: 768 KiB");
        t.learn(0, mac(1), P1, 0);
        t.reserve(1 << 16);
        assert!(t.worth_prefetching(), "131 072 slots: 3 MiB");
        for n in 0..1000 {
            t.prefetch(0, mac(n));
            t.prefetch(7, mac(n));
        }
        assert_eq!(t.lookup(0, mac(1), 0), Some(P1));
        assert_eq!(t.lookup(0, mac(2), 0), None);
        assert_eq!(t.network_len(0), 1);
    }
}
