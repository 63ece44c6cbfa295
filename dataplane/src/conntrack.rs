//! The connection table of stateful security groups: which connections each port's rules let
//! open, so that their replies pass without a rule.
//!
//! # Design
//! One table per worker holds the connections of all its ports; a port's slot is its *zone*
//! (as Neutron gives each port its own conntrack zone), so two VMs' connections never mix, and
//! a connection between two VMs of the switch is tracked twice: once in the zone of the VM that
//! sent it (egress) and once in the zone of the VM that received it (ingress). A key is the zone,
//! the protocol and the two endpoints in a fixed order, so one lookup finds a connection from
//! either side. ICMP echo is tracked by its identifier; other protocols without ports by
//! addresses.
//!
//! Entries live in a hash table (foldhash, randomly seeded, so a VM cannot aim collisions at the
//! table), one lookup per check. A key is hashed without its zone and the zone mixed in after
//! ([`Probe`]), so a frame checked in two zones (its sender's and its receiver's) builds and
//! hashes its key once. The entries' keys also sit in a slab that the sweeper walks a bounded
//! slice at a time, removing what has expired: timeouts depend on the protocol and on what was
//! seen (an established TCP connection stays a day, one reset goes after 10 s; see [`timeout`]).
//! Each zone holds at most its share ([`ConnTable::new`]): a VM that opens connections without
//! end fills only its own share, and its next new connections are dropped (`conntrack_full`)
//! while every other port's go on. When a snapshot is adopted, a zone whose port went or whose
//! slot a new port took ([`ConnTable::sync_zone`]) starts empty: the earlier entries are dead on
//! sight and swept.
//!
//! A port's established TCP connections are published for the other workers
//! ([`published`]), which then send their plain segments into the port themselves; an entry
//! that sees FIN or RST, or goes, is taken out of the port's table.
//!
//! Later fragments carry no ports: a first fragment that passed records its datagram (zone,
//! addresses, protocol, identification) for a few seconds so that the rest follows it, at most
//! [`FRAGMENTS_PER_ZONE`] datagrams per port; past them the port's oldest datagram makes room
//! (as Linux's fragment evictor drops the oldest queues), so that a flood of first fragments
//! (a remote host's, which the port's rules let in) displaces the port's own datagrams only
//! by sending 256 of them between one datagram's first and later fragments.

use core::hash::BuildHasher;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use hashbrown::HashTable;

use crate::acl::Direction;
use crate::flow::{tcp, Flow, Tuple};
use crate::stats::DropReason;
use crate::wire::ipproto::TCP;

pub mod published;

pub use published::Published;

type RandomState = foldhash::fast::RandomState;

/// A connection's identity: zone, protocol and the two endpoints, lower first, packed into five
/// words so that hashing and comparing it is a handful of word operations.
#[derive(Debug, Clone, Copy, Eq)]
pub struct Key {
    /// zone (16 bits) | protocol (8) | ICMP query kind (7) | IPv6 (1) | port of `a` (16) |
    /// port of `b` (16), then the addresses `a` and `b` as two words each.
    w: [u64; 5],
}

impl PartialEq for Key {
    /// Word by word, without a call to `memcmp`.
    #[inline]
    fn eq(&self, o: &Key) -> bool {
        let x = self.w.iter().zip(&o.w).fold(0, |acc, (a, b)| acc | (a ^ b));
        x == 0
    }
}

impl core::hash::Hash for Key {
    #[inline]
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        for w in self.w {
            state.write_u64(w);
        }
    }
}

impl Key {
    /// The key of the connection `t` belongs to, in zone `zone`.
    #[inline]
    pub fn of(zone: u16, t: &Tuple) -> Key {
        let (s, d) = (u128::from_be_bytes(t.src), u128::from_be_bytes(t.dst));
        let (a, pa, b, pb) = if (s, t.sport) <= (d, t.dport) {
            (s, t.sport, d, t.dport)
        } else {
            (d, t.dport, s, t.sport)
        };
        let head = u64::from(zone) << 48
            | u64::from(t.proto) << 40
            | u64::from(t.query & 0x7f) << 33
            | u64::from(t.v6) << 32
            | u64::from(pa) << 16
            | u64::from(pb);
        Key {
            w: [head, (a >> 64) as u64, a as u64, (b >> 64) as u64, b as u64],
        }
    }

    #[inline]
    fn zone(&self) -> u16 {
        (self.w[0] >> 48) as u16
    }

    /// The same connection in zone `zone`.
    #[inline]
    fn with_zone(mut self, zone: u16) -> Key {
        self.w[0] = self.w[0] & !(0xffff << 48) | u64::from(zone) << 48;
        self
    }

    #[inline]
    fn proto(&self) -> u8 {
        (self.w[0] >> 40) as u8
    }

    #[inline]
    fn v6(&self) -> bool {
        (self.w[0] >> 32) & 1 != 0
    }

    #[inline]
    fn query(&self) -> u8 {
        (self.w[0] >> 33) as u8 & 0x7f
    }

    /// Endpoint `a`: address and port.
    #[inline]
    fn a(&self) -> (u128, u16) {
        (
            u128::from(self.w[1]) << 64 | u128::from(self.w[2]),
            (self.w[0] >> 16) as u16,
        )
    }

    /// Endpoint `b`: address and port.
    #[inline]
    fn b(&self) -> (u128, u16) {
        (
            u128::from(self.w[3]) << 64 | u128::from(self.w[4]),
            self.w[0] as u16,
        )
    }

    /// Does `t` go from endpoint `a` to endpoint `b`?
    #[inline]
    fn a_to_b(&self, t: &Tuple) -> bool {
        (u128::from_be_bytes(t.src), t.sport) == self.a()
    }
}

/// A packet's connection without its zone, built and hashed once for every zone the packet is
/// checked in ([`ConnTable::probe`]).
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    key: Key,
    hash: u64,
}

impl Probe {
    /// The connection in zone `zone`, as the table finds it.
    #[inline]
    pub fn in_zone(&self, zone: u16) -> Hashed {
        Hashed {
            key: self.key.with_zone(zone),
            hash: zoned(self.hash, zone),
        }
    }
}

/// A key and its hash in the table.
#[derive(Debug, Clone, Copy)]
pub struct Hashed {
    key: Key,
    hash: u64,
}

/// Mixes a zone into the hash of a key without one: an odd multiple of the zone, so that a
/// connection's entries in different zones sit apart.
#[inline]
fn zoned(hash: u64, zone: u16) -> u64 {
    hash ^ (u64::from(zone) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The hash of `key` (zone included) in a table seeded with `seed`: what [`Probe::in_zone`]
/// gives.
fn hash_of(seed: &RandomState, key: &Key) -> u64 {
    zoned(seed.hash_one(key.with_zone(0)), key.zone())
}

/// How a connection was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// The direction of the packet that opened it, for the port.
    pub dir: Direction,
    /// The policy epoch it was allowed under.
    pub epoch: u64,
}

const SEEN_REPLY: u8 = 1;
const FIN_ORIG: u8 = 2;
const FIN_REPLY: u8 = 4;
const RESET: u8 = 8;
/// TCP: the opener acknowledged after the other side answered (the handshake completed).
const ESTABLISHED: u8 = 16;
/// TCP: a FIN or a reset was seen.
const CLOSING: u8 = FIN_ORIG | FIN_REPLY | RESET;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Its place in the sweeper's list of keys.
    slot: u32,
    gen: u32,
    start: Start,
    /// The opening packet went from `a` to `b`.
    orig_a: bool,
    /// The opening packet's ICMP type and code (for checking it again).
    icmp: (u8, u8),
    state: u8,
    /// No longer allowed by the rules: dropped both ways until it expires.
    cut: bool,
    /// Seconds, when a packet last passed.
    last: u32,
}

impl Entry {
    /// The packet that opened the connection, as the rules see it.
    fn opening(&self, k: &Key) -> Flow {
        let ((src, sport), (dst, dport)) = if self.orig_a {
            (k.a(), k.b())
        } else {
            (k.b(), k.a())
        };
        Flow {
            tuple: Tuple {
                v6: k.v6(),
                proto: k.proto(),
                src: src.to_be_bytes(),
                dst: dst.to_be_bytes(),
                sport,
                dport,
                query: k.query(),
            },
            icmp_type: self.icmp.0,
            icmp_code: self.icmp.1,
            ..Flow::default()
        }
    }

    /// Does `flow` go the way the opening packet went?
    #[inline]
    fn is_orig(&self, k: &Key, flow: &Flow) -> bool {
        k.a_to_b(&flow.tuple) == self.orig_a
    }

    #[inline]
    fn update(&mut self, k: &Key, flow: &Flow, now: u32) {
        let orig = self.is_orig(k, flow);
        if !orig {
            self.state |= SEEN_REPLY;
        }
        if k.proto() == TCP {
            let f = flow.tcp_flags;
            if f & tcp::SYN != 0 && f & tcp::ACK == 0 && orig && self.closed() {
                // The endpoints open the same connection again.
                self.state = 0;
            }
            if orig && f & tcp::ACK != 0 && f & tcp::SYN == 0 && self.state & SEEN_REPLY != 0 {
                self.state |= ESTABLISHED;
            }
            if f & tcp::RST != 0 {
                self.state |= RESET;
            }
            if f & tcp::FIN != 0 {
                self.state |= if orig { FIN_ORIG } else { FIN_REPLY };
            }
        }
        self.last = now;
    }

    fn closed(&self) -> bool {
        self.state & RESET != 0 || self.state & (FIN_ORIG | FIN_REPLY) == FIN_ORIG | FIN_REPLY
    }

    #[inline]
    fn expired(&self, k: &Key, now: u32) -> bool {
        // No timeout is shorter than 10 s: a connection seen in the last seconds (every one a
        // steady flow checks) is live without working out its timeout.
        let idle = now.saturating_sub(self.last);
        idle >= MIN_TIMEOUT && idle > timeout(k.proto(), self.state)
    }
}

/// Takes connection `key` of a port of generation `gen` out of its zone's table in `published`
/// ([`ConnTable::share`]), if it is there.
fn unpublish(published: &[Option<(u32, Arc<Published>)>], key: &Key, gen: u32) {
    if let Some(Some((g, table))) = published.get(usize::from(key.zone())) {
        if *g == gen {
            table.remove(key);
        }
    }
}

/// The shortest of [`timeout`]'s answers.
const MIN_TIMEOUT: u32 = 10;

/// How long a connection lives without a packet, in seconds: TCP a day once established (the
/// opener acknowledged the answer), 2 minutes while unanswered, 1 minute answered but not
/// acknowledged (a SYN flood whose answers never complete fills a port's share for a minute, not
/// a day), 30 s once both sides sent FIN, 10 s after a reset (Linux's and Open vSwitch's orders
/// of magnitude); UDP and other protocols with ports 30 s, 2 minutes once answered; ICMP 30 s;
/// other protocols 60 s, 10 minutes once answered.
pub fn timeout(proto: u8, state: u8) -> u32 {
    let replied = state & SEEN_REPLY != 0;
    match proto {
        TCP if state & RESET != 0 => 10,
        TCP if state & (FIN_ORIG | FIN_REPLY) == FIN_ORIG | FIN_REPLY => 30,
        TCP if state & ESTABLISHED != 0 => 86_400,
        TCP if replied => 60,
        TCP => 120,
        p if crate::flow::has_ports(p) => {
            if replied {
                120
            } else {
                30
            }
        }
        crate::wire::ipproto::ICMP | crate::wire::ipproto::ICMPV6 => 30,
        _ if replied => 600,
        _ => 60,
    }
}

/// A tracked connection as an operator reads it (`qswitch connections`): the packet that opened
/// it, which way it went for the port, how far it got and how long it lives on without a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// IP protocol.
    pub proto: u8,
    /// Source of the opening packet.
    pub src: std::net::IpAddr,
    /// Destination of the opening packet.
    pub dst: std::net::IpAddr,
    /// Its source and destination ports, for protocols with ports.
    pub ports: Option<(u16, u16)>,
    /// Its ICMP type, code and identifier (0 but for a query: [`crate::flow::icmp_query`]),
    /// for ICMP.
    pub icmp: Option<(u8, u8, u16)>,
    /// The opening packet's direction for the port: sent by its VM (egress) or to it.
    pub dir: Direction,
    /// How far it got: `new` (nothing back yet), `replied`, `established` (TCP: the opener
    /// acknowledged the answer), `closing` (a FIN), `closed` (FINs both ways), `reset`.
    pub state: &'static str,
    /// No longer allowed by the rules: its packets are dropped until it expires.
    pub cut: bool,
    /// Seconds since a packet of it passed this table's check (not the segments other workers
    /// sent straight into the port: [`published`]).
    pub idle_secs: u32,
    /// Seconds until it expires without another packet.
    pub expires_secs: u32,
}

impl Connection {
    /// Entry `e` of `key` at `now`; `cut` as the rules now say.
    fn of(key: &Key, e: &Entry, cut: bool, now: u32) -> Connection {
        let opening = e.opening(key);
        let t = &opening.tuple;
        let fins = e.state & (FIN_ORIG | FIN_REPLY);
        let state = if e.state & RESET != 0 {
            "reset"
        } else if fins == FIN_ORIG | FIN_REPLY {
            "closed"
        } else if fins != 0 {
            "closing"
        } else if e.state & ESTABLISHED != 0 {
            "established"
        } else if e.state & SEEN_REPLY != 0 {
            "replied"
        } else {
            "new"
        };
        let idle = now.saturating_sub(e.last);
        Connection {
            proto: t.proto,
            src: crate::flow::ip_of(t.v6, &t.src),
            dst: crate::flow::ip_of(t.v6, &t.dst),
            ports: crate::flow::has_ports(t.proto).then_some((t.sport, t.dport)),
            icmp: opening.is_icmp().then_some((e.icmp.0, e.icmp.1, t.sport)),
            dir: e.start.dir,
            state,
            cut,
            idle_secs: idle,
            expires_secs: timeout(t.proto, e.state).saturating_sub(idle),
        }
    }
}

/// A zone's generation and live entries.
#[derive(Debug, Clone, Copy, Default)]
struct ZoneCount {
    gen: u32,
    live: u32,
}

/// A datagram whose first fragment passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FragKey {
    zone: u16,
    gen: u32,
    v6: bool,
    proto: u8,
    src: [u8; 16],
    dst: [u8; 16],
    id: u32,
}

impl FragKey {
    fn of(zone: u16, gen: u32, f: &Flow) -> Self {
        FragKey {
            zone,
            gen,
            v6: f.tuple.v6,
            // An IPv6 datagram is its addresses and identification (RFC 8200 4.5): a later
            // fragment reads the fragment header's next header as its protocol, which is not
            // the first's where options headers follow the fragment header.
            proto: if f.tuple.v6 { 0 } else { f.tuple.proto },
            src: f.tuple.src,
            dst: f.tuple.dst,
            id: f.frag_id,
        }
    }
}

/// Datagrams a port may have remembered at once, and for how long (seconds).
const FRAGMENTS_PER_ZONE: u32 = 256;
const FRAGMENT_SECS: u32 = 5;

/// The connections of a worker's ports.
#[derive(Debug)]
pub struct ConnTable {
    conns: HashTable<(Key, Entry)>,
    /// Seeds the hash of [`Probe`]s.
    seed: RandomState,
    /// Every key, in a slab the sweeper walks (entries name their slot).
    keys: Vec<Option<Key>>,
    free: Vec<u32>,
    zones: Vec<ZoneCount>,
    per_zone: u32,
    cursor: usize,
    /// Datagrams whose first fragment passed, and until when their later fragments may follow;
    /// by zone, the same datagrams oldest first.
    fragments: HashMap<FragKey, u32, RandomState>,
    frag_order: Vec<VecDeque<FragKey>>,
    /// The second the fragments were last swept.
    frags_swept: u32,
    /// By zone: the port's generation and the table its established connections are published
    /// in for other workers ([`published`]).
    published: Vec<Option<(u32, Arc<Published>)>>,
}

/// The default share of a port: connections tracked at once.
pub const DEFAULT_PER_PORT: u32 = 65_536;

impl Default for ConnTable {
    fn default() -> Self {
        ConnTable::new(DEFAULT_PER_PORT)
    }
}

impl ConnTable {
    /// A table in which each port holds at most `per_zone` connections.
    pub fn new(per_zone: u32) -> Self {
        ConnTable {
            conns: HashTable::with_capacity(1024),
            seed: RandomState::default(),
            keys: Vec::with_capacity(1024),
            free: Vec::new(),
            zones: Vec::new(),
            per_zone: per_zone.max(1),
            cursor: 0,
            fragments: HashMap::with_hasher(RandomState::default()),
            frag_order: Vec::new(),
            frags_swept: 0,
            published: Vec::new(),
        }
    }

    /// Publishes the established connections of zone `zone`'s port in `table` from now on:
    /// `Some((gen, table))` for the port of generation `gen` ([`ConnTable::publish`]), `None`
    /// for none.
    pub fn share(&mut self, zone: u16, table: Option<(u32, Arc<Published>)>) {
        let z = usize::from(zone);
        if self.published.len() <= z {
            self.published.resize(z + 1, None);
        }
        self.published[z] = table;
    }

    /// Publishes connection `at` (a key with its zone) in its zone's table, if that is the table
    /// of the port of generation `gen`, the connection an established TCP connection of that
    /// port, without FIN or RST, not cut, allowed under policy epoch `epoch` and live at `now`:
    /// the port's check passes a segment of it without SYN, FIN or RST and changes nothing in
    /// it but the time a packet was last seen, so other workers may send such segments into the
    /// port themselves until its timeout could run out. Called for a segment that crossed and
    /// passed.
    pub fn publish(&self, at: &Hashed, gen: u32, epoch: u64, now: u32) {
        let key = &at.key;
        let Some(Some((g, table))) = self.published.get(usize::from(key.zone())) else {
            return;
        };
        let Some((_, e)) = self.conns.find(at.hash, |(k, _)| k == key) else {
            return;
        };
        let open = e.state & (ESTABLISHED | CLOSING) == ESTABLISHED;
        if *g == gen
            && e.gen == gen
            && key.proto() == TCP
            && open
            && !e.cut
            && e.start.epoch == epoch
            && !e.expired(key, now)
        {
            let until = e.last.saturating_add(timeout(TCP, e.state));
            table.insert(key, epoch, until);
        }
    }

    /// The connection `t` belongs to, to look up in any zone ([`Probe::in_zone`]).
    #[inline]
    pub fn probe(&self, t: &Tuple) -> Probe {
        let key = Key::of(0, t);
        Probe {
            key,
            hash: self.seed.hash_one(key),
        }
    }

    /// `key` and its hash.
    fn hashed(&self, key: &Key) -> Hashed {
        Hashed {
            key: *key,
            hash: hash_of(&self.seed, key),
        }
    }

    /// Connections tracked (dead ones not yet swept included).
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Slots of the key slab the sweeper walks ([`ConnTable::sweep`]).
    pub fn slab_len(&self) -> usize {
        self.keys.len()
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Live connections of a zone of generation `gen`.
    pub fn zone_len(&self, zone: u16, gen: u32) -> u32 {
        self.zones
            .get(usize::from(zone))
            .filter(|z| z.gen == gen)
            .map_or(0, |z| z.live)
    }

    /// The live connections of zone `zone` (its port of generation `gen`), by the opening
    /// packet's source, then destination. One met under an older policy epoch than `epoch`
    /// reads as cut unless `allowed` (the opening packet and direction) says the rules still
    /// let it be, as its next packet would find. Walks the whole table: for an operator's look,
    /// never per packet.
    pub fn connections(
        &self,
        zone: u16,
        gen: u32,
        epoch: u64,
        now: u32,
        allowed: impl Fn(&Flow, Direction) -> bool,
    ) -> Vec<Connection> {
        let mut out: Vec<Connection> = self
            .conns
            .iter()
            .filter(|(k, e)| k.zone() == zone && e.gen == gen && !e.expired(k, now))
            .map(|(k, e)| {
                let cut = match e.start.epoch == epoch {
                    true => e.cut,
                    false => !allowed(&e.opening(k), e.start.dir),
                };
                Connection::of(k, e, cut, now)
            })
            .collect();
        out.sort_by_key(|c| (c.src, c.dst, c.proto, c.ports, c.icmp));
        out
    }

    /// Makes zone `zone` belong to the port of generation `gen` now in its slot (`None`: no port):
    /// the connections of an earlier port are dead at once and swept. Called when a snapshot is
    /// adopted.
    pub fn sync_zone(&mut self, zone: u16, gen: Option<u32>) {
        let z = usize::from(zone);
        if let Some(count) = self.zones.get_mut(z) {
            let gen = gen.unwrap_or(u32::MAX);
            if count.gen != gen {
                if count.live > 0 {
                    *count = ZoneCount {
                        gen,
                        ..ZoneCount::default()
                    };
                }
                self.forget_fragments(z);
            }
        }
    }

    /// Zones known to the table (slots that tracked something).
    pub fn zones(&self) -> usize {
        self.zones.len()
    }

    /// Does the zone track anything (of any generation)?
    #[inline]
    pub fn tracks(&self, zone: u16) -> bool {
        self.zones
            .get(usize::from(zone))
            .is_some_and(|z| z.live > 0)
    }

    /// Looks up the live connection `at` (a key with its zone) of a zone of generation `gen`:
    /// `None` when there is none, else whether the packet may pass (false: the connection was
    /// cut). A connection allowed under an older epoch is checked again with `allowed` (the
    /// opening packet and direction). `update`, the packet itself, refreshes it (an ICMP error
    /// about it does not).
    #[inline]
    pub fn established(
        &mut self,
        at: &Hashed,
        gen: u32,
        epoch: u64,
        update: Option<&Flow>,
        now: u32,
        allowed: impl FnOnce(&Flow, Direction) -> bool,
    ) -> Option<bool> {
        let key = &at.key;
        let (_, e) = self.conns.find_mut(at.hash, |(k, _)| k == key)?;
        if e.gen != gen || e.expired(key, now) {
            self.remove(at);
            return None;
        }
        if e.start.epoch != epoch {
            e.cut = !allowed(&e.opening(key), e.start.dir);
            e.start.epoch = epoch;
        }
        if e.cut {
            return Some(false);
        }
        if let Some(f) = update {
            let orig = e.is_orig(key, f);
            // Not part of the connection, but the start of another: an ICMP query (an echo
            // request) from the side that answered, or a SYN once the connection has closed.
            // The rules decide.
            let syn = f.tcp_flags & (tcp::SYN | tcp::ACK) == tcp::SYN && key.proto() == TCP;
            if (f.is_query_request() && !orig) || (syn && e.closed()) {
                return None;
            }
            let was = e.state;
            e.update(key, f, now);
            if e.state & CLOSING != was & CLOSING {
                // Closing: its segments cross again, so that the owner sees it to the end.
                unpublish(&self.published, key, e.gen);
            }
        }
        Some(true)
    }

    /// Records the connection `at` (the probe of `flow`'s own tuple, in the zone) opened by
    /// `flow` in a zone of generation `gen`; refused when the zone holds its share already.
    pub fn open(
        &mut self,
        at: &Hashed,
        gen: u32,
        flow: &Flow,
        start: Start,
        now: u32,
    ) -> Result<(), DropReason> {
        let key = at.key;
        let z = usize::from(key.zone());
        self.claim_zone(z, gen);
        // The entry in the way: dead (expired, of an earlier generation), or one this packet
        // starts anew (a SYN once it closed, an echo request from the side that answered),
        // which counts no more once replaced.
        self.remove(at);
        if self.zones[z].live >= self.per_zone {
            return Err(DropReason::ConntrackFull);
        }
        let slot = match self.free.pop() {
            Some(i) => {
                self.keys[i as usize] = Some(key);
                i
            }
            None => {
                let Ok(i) = u32::try_from(self.keys.len()) else {
                    return Err(DropReason::ConntrackFull);
                };
                self.keys.push(Some(key));
                i
            }
        };
        let mut e = Entry {
            slot,
            gen,
            start,
            orig_a: key.a_to_b(&flow.tuple),
            icmp: (flow.icmp_type, flow.icmp_code),
            state: 0,
            cut: false,
            last: now,
        };
        e.update(&key, flow, now);
        let seed = &self.seed;
        self.conns
            .insert_unique(at.hash, (key, e), |(k, _)| hash_of(seed, k));
        self.zones[z].live += 1;
        Ok(())
    }

    fn remove(&mut self, at: &Hashed) {
        let Ok(found) = self.conns.find_entry(at.hash, |(k, _)| *k == at.key) else {
            return;
        };
        let ((key, e), _) = found.remove();
        // Published, it would go on passing elsewhere.
        unpublish(&self.published, &key, e.gen);
        if let Some(k) = self.keys.get_mut(e.slot as usize) {
            *k = None;
            self.free.push(e.slot);
        }
        if let Some(z) = self.zones.get_mut(usize::from(key.zone())) {
            if z.gen == e.gen {
                z.live = z.live.saturating_sub(1);
            }
        }
    }

    /// Visits up to `budget` slots of the slab and removes what has expired or belongs to a
    /// zone's earlier generation. Runs off the per-packet path.
    pub fn sweep(&mut self, now: u32, budget: usize) {
        for _ in 0..budget.min(self.keys.len()) {
            if self.cursor >= self.keys.len() {
                self.cursor = 0;
            }
            let Some(key) = self.keys[self.cursor] else {
                self.cursor += 1;
                continue;
            };
            self.cursor += 1;
            let at = self.hashed(&key);
            let found = self.conns.find(at.hash, |(k, _)| *k == key);
            let dead = found.is_some_and(|(_, e)| {
                e.expired(&key, now)
                    || self
                        .zones
                        .get(usize::from(key.zone()))
                        .is_none_or(|z| z.gen != e.gen)
            });
            if dead {
                self.remove(&at);
            }
        }
        if now != self.frags_swept && !self.fragments.is_empty() {
            // Once a second, the expired datagrams at the head of each zone's (at most 256, the
            // oldest first).
            self.frags_swept = now;
            let fragments = &mut self.fragments;
            for order in &mut self.frag_order {
                while let Some(k) = order.front() {
                    if fragments.get(k).is_some_and(|&until| until >= now) {
                        break;
                    }
                    fragments.remove(k);
                    order.pop_front();
                }
            }
        }
    }

    /// Forgets the datagrams remembered in zone `z` (its port went, or another took its slot).
    fn forget_fragments(&mut self, z: usize) {
        if let Some(order) = self.frag_order.get_mut(z) {
            for k in order.drain(..) {
                self.fragments.remove(&k);
            }
        }
    }

    /// Makes zone `z` the zone of generation `gen`, empty if it held another generation's.
    fn claim_zone(&mut self, z: usize, gen: u32) {
        if self.zones.len() <= z {
            self.zones.resize(z + 1, ZoneCount::default());
        }
        if self.zones[z].gen != gen {
            self.zones[z] = ZoneCount {
                gen,
                ..ZoneCount::default()
            };
            self.forget_fragments(z);
        }
    }

    /// Remembers that the first fragment of `flow`'s datagram passed (for [`FRAGMENT_SECS`]
    /// more, if it was already). A port remembers at most [`FRAGMENTS_PER_ZONE`] datagrams, so
    /// that one VM cannot crowd out the others; past them its oldest is forgotten (its later
    /// fragments, if any come still, are checked by the rules without ports).
    pub fn fragment_seen(&mut self, zone: u16, gen: u32, flow: &Flow, now: u32) {
        let z = usize::from(zone);
        self.claim_zone(z, gen);
        let key = FragKey::of(zone, gen, flow);
        let until = now.saturating_add(FRAGMENT_SECS);
        if self.frag_order.len() <= z {
            self.frag_order.resize_with(z + 1, VecDeque::new);
        }
        let order = &mut self.frag_order[z];
        if let Some(u) = self.fragments.get_mut(&key) {
            // Seen again (a first fragment sent twice): the newest, at the back.
            *u = until;
            if let Some(at) = order.iter().position(|k| *k == key) {
                order.remove(at);
                order.push_back(key);
            }
            return;
        }
        if order.len() >= FRAGMENTS_PER_ZONE as usize {
            if let Some(oldest) = order.pop_front() {
                self.fragments.remove(&oldest);
            }
        }
        order.push_back(key);
        self.fragments.insert(key, until);
    }

    /// Did the first fragment of `flow`'s datagram pass (recently)?
    pub fn fragment_passed(&self, zone: u16, gen: u32, flow: &Flow, now: u32) -> bool {
        self.fragments
            .get(&FragKey::of(zone, gen, flow))
            .is_some_and(|until| *until >= now)
    }
}

#[cfg(test)]
mod tests;
