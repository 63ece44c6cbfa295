//! The per-frame forwarding decision: parse, classify, police, check, learn, look up.
//!
//! # Design
//! [`Pipeline::process`] takes one received frame and returns a [`Verdict`]: drop (with a reason,
//! already counted), unicast to one port, or flood within one network. It never allocates, never
//! locks, and never panics on any bytes: every header is read through `wire`'s checked views.
//! Moving buffers (rings, copies, tag push/pop) is the worker's job; this module only decides, so
//! the same code runs behind AF_XDP sockets, the in-memory ports of the tests, the benchmark and
//! the fuzzer.
//!
//! Rules, in order:
//! 1. Ingress port unknown, administratively down or bound to no network: drop `port_down`.
//! 2. Shorter than its headers: `truncated`; longer than the port's MTU allows: `oversize`.
//! 3. Access (VM) ports take untagged frames only: any tag, including double tags,
//!    `tagged_on_access`. The trunk takes tagged frames only (`untagged_on_trunk`) of a VLAN a
//!    local network owns (`unknown_vlan`), and a tagged frame inside the tag is dropped too.
//!    (The worker untags a priority-tagged frame, VLAN 0, before it comes here:
//!    [`crate::wire::strip_priority_tag`].)
//! 4. Source multicast or zero: `invalid_source`. Port security: `spoofed`. Policer: `policed`.
//!    Security groups, the VM's egress rules (`acl`): `sg_egress`, `conntrack_full`. The ingress
//!    rules of each port a frame goes to are checked by [`Pipeline::admit`], once per copy.
//! 5. Learn the source (limit hits and moves are counted), then look up the destination:
//!    group addresses and unknown unicast flood to the network's other ports; a destination
//!    learned on the ingress port itself is dropped (`same_port`), on a down port `egress_down`.

use crate::acl::{self, Direction, Policy, Zone};
use crate::config::{Role, Snapshot};
use crate::conntrack::{ConnTable, Probe};
use crate::fdb::{Learn, MacTable, PortRef, DEFAULT_AGING_SECS};
use crate::flow::{self, L3};
use crate::policer::Policer;
use crate::stats::{DropReason, LocalCounters};
use crate::wire::{EthernetFrame, Mac, ETHERTYPE_ARP, VLAN_TAG_LEN};

/// The time of a batch, read once by the worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Now {
    /// Seconds (for MAC aging).
    pub secs: u32,
    /// Nanoseconds (for policing).
    pub nanos: u64,
}

impl Now {
    /// A time `nanos` after the worker's epoch.
    pub fn from_nanos(nanos: u64) -> Now {
        Now {
            secs: u32::try_from(nanos / 1_000_000_000).unwrap_or(u32::MAX),
            nanos,
        }
    }
}

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Dropped; the reason has been counted on the ingress port.
    Drop(DropReason),
    /// Send to one port of network `net`.
    Unicast {
        /// Egress port slot.
        port: u16,
        /// Network slot (gives the VLAN for a trunk egress).
        net: u16,
    },
    /// A DHCP client message of a port with a DHCP configuration: the switch answers it (back
    /// to the ingress port); it goes nowhere else.
    Dhcp,
    /// A DHCPv6 client message of a port with a DHCPv6 configuration: answered as [`Verdict::Dhcp`].
    Dhcp6,
    /// An ARP request for an address another port of the network holds: the switch answers it
    /// with that port's MAC (back to the ingress port); it goes nowhere else.
    Arp(Mac),
    /// A router solicitation of a port with SLAAC prefixes: the switch answers it with a router
    /// advertisement back to the ingress port, and the solicitation floods as any multicast (a
    /// router on the network answers too).
    RouterSolicitation {
        /// Network slot.
        net: u16,
    },
    /// Send to every other admin-up port of network `net`, and the trunks.
    Flood {
        /// Network slot.
        net: u16,
    },
}

/// The mutable state the decision needs: MAC tables, counters and policers, owned by one worker.
#[derive(Debug)]
pub struct Pipeline {
    /// MAC tables of all networks.
    pub fdb: MacTable,
    /// Counters by port slot.
    pub counters: Vec<LocalCounters>,
    /// Connections of the ports' stateful security groups.
    pub conns: ConnTable,
    policers: Vec<Option<Policer>>,
    /// Policers of what ports' VMs receive, by slot.
    policers_in: Vec<Option<Policer>>,
    /// The layer 3/4 view of the frame [`Pipeline::process`] last decided on, for
    /// [`Pipeline::admit`]; read only while some port has security group rules.
    l3: Option<L3>,
    /// That frame's connection, once a check looked it up: the receiver's check finds it
    /// without building and hashing the key again.
    probe: Option<Probe>,
    /// Addresses whose learning a growth of the MAC table deferred, the latest port of each:
    /// learned once it is done ([`Pipeline::refresh`]), so that a single frame (a migrated VM's
    /// announcement) met during a growth is not lost. At most [`DEFERRED_MAX`].
    deferred: Vec<Deferred>,
    /// The MAC table's recent answers for sources and destinations, reused while they hold.
    memo: Memo,
    /// The static entries the last snapshot adopted gives (network, address, port), sorted:
    /// those the next one no longer gives are removed ([`MacTable::remove_static`]).
    statics: Vec<(u16, Mac, PortRef)>,
    /// By port slot, the generation of the port the last snapshot adopted has there (0: none):
    /// a port gone from it by the next is told to the MAC table ([`MacTable::forget_ports`]).
    port_gens: Vec<u32>,
}

/// The MAC table's recent answers to this pipeline: sources it refreshed or learned on their
/// ingress port, and the ports destinations were found on, [`MEMO_SLOTS`] of each in a
/// direct-mapped table. A VM's frames come from one address and go to a few; a trunk's come from
/// many in turn. VPP's learning and forwarding nodes likewise keep the last key and result of a
/// frame vector; OVS's exact-match cache is the same idea for whole flows. An answer is reused
/// only while it is still the table's:
/// * in the same second (a live entry cannot expire within it, and a refresh is already
///   stored: `seen` is at least that second, as a refresh never moves it back);
/// * with the table's change count ([`MacTable::changes`]) unchanged: a move, removal, revival,
///   replaced static entry, flushed network or new aging time, by any worker, ends every answer;
/// * until the pipeline adopts a snapshot or picks up a grown table.
///
/// Ending them all is one increment of `epoch`: an answer counts only if stored in the current
/// one. New addresses are no change, so only a destination found is remembered, never its
/// absence.
#[derive(Debug, Clone)]
struct Memo {
    /// The change count and second the current epoch's answers are of.
    changes: u64,
    secs: u32,
    /// The current epoch, never 0 (the epoch of an empty slot).
    epoch: u32,
    src: [Answer; MEMO_SLOTS],
    dst: [Answer; MEMO_SLOTS],
}

/// Answers [`Memo`] keeps of each kind: a few KiB, in the first-level cache with the table's
/// lines the frames need.
const MEMO_SLOTS: usize = 64;

/// One remembered answer: the table's key ([`MacTable::key`]) and the port.
#[derive(Debug, Clone, Copy, Default)]
struct Answer {
    key: u64,
    port: PortRef,
    epoch: u32,
}

impl Default for Memo {
    fn default() -> Self {
        Memo {
            changes: 0,
            secs: 0,
            epoch: 1,
            src: [Answer::default(); MEMO_SLOTS],
            dst: [Answer::default(); MEMO_SLOTS],
        }
    }
}

impl Memo {
    /// Ends every answer unless the table's change count and the second are still those of
    /// the current epoch.
    #[inline]
    fn hold(&mut self, changes: u64, secs: u32) {
        if self.changes != changes || self.secs != secs {
            self.next_epoch(changes, secs);
        }
    }

    #[cold]
    #[inline(never)]
    fn next_epoch(&mut self, changes: u64, secs: u32) {
        self.changes = changes;
        self.secs = secs;
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // After 2^32 epochs a slot's could come round again.
            *self = Memo {
                changes,
                secs,
                ..Memo::default()
            };
        }
    }

    /// Ends every answer.
    fn forget(&mut self) {
        self.next_epoch(self.changes, self.secs);
    }

    /// The slot of `key` in either table.
    #[inline]
    fn slot(key: u64) -> usize {
        // The high bits of a multiplicative hash (MEMO_SLOTS is 2^6).
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize
    }

    /// The port remembered for source `key`, if of the current epoch.
    #[inline]
    fn source(&self, key: u64) -> Option<PortRef> {
        self.find(&self.src, key)
    }

    /// The port remembered for destination `key`, if of the current epoch.
    #[inline]
    fn destination(&self, key: u64) -> Option<PortRef> {
        self.find(&self.dst, key)
    }

    #[inline]
    fn find(&self, table: &[Answer; MEMO_SLOTS], key: u64) -> Option<PortRef> {
        let a = &table[Self::slot(key)];
        (a.key == key && a.epoch == self.epoch).then_some(a.port)
    }

    /// Remembers, in the current epoch, that `key` is on `port` (in `table`, the sources or the
    /// destinations).
    #[inline]
    fn put(epoch: u32, table: &mut [Answer; MEMO_SLOTS], key: u64, port: PortRef) {
        table[Self::slot(key)] = Answer { key, port, epoch };
    }
}

/// The addresses a pipeline remembers to learn after a growth; past them, later frames learn.
pub const DEFERRED_MAX: usize = 256;

/// An address to learn once the MAC table's growth is done.
#[derive(Debug, Clone, Copy)]
struct Deferred {
    net: u16,
    mac: Mac,
    /// The port it was last seen on.
    port: PortRef,
    /// Where the table had it then: if that changed meanwhile (another frame learned it since,
    /// on this worker or another), the newer entry stands.
    was: Option<PortRef>,
    /// The network's generation then: a snapshot that re-creates the network, or removes the
    /// port, forgets the address.
    net_gen: u32,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline::new(DEFAULT_AGING_SECS, 1 << 20)
    }
}

impl Pipeline {
    /// A pipeline whose MAC table ages entries after `aging_secs` and holds at most `max_macs`.
    pub fn new(aging_secs: u32, max_macs: usize) -> Self {
        Pipeline::with_conntrack(aging_secs, max_macs, crate::conntrack::DEFAULT_PER_PORT)
    }

    /// As [`Pipeline::new`], each port tracking at most `per_port` connections.
    pub fn with_conntrack(aging_secs: u32, max_macs: usize, per_port: u32) -> Self {
        Pipeline {
            fdb: MacTable::new(aging_secs, max_macs),
            counters: Vec::new(),
            conns: ConnTable::new(per_port),
            policers: Vec::new(),
            policers_in: Vec::new(),
            l3: None,
            probe: None,
            deferred: Vec::new(),
            memo: Memo::default(),
            statics: Vec::new(),
            port_gens: Vec::new(),
        }
    }

    /// Adopts a new snapshot: declares networks to the MAC table (a new generation flushes),
    /// sizes the tables, installs static entries and removes those of the snapshot before that
    /// this one no longer gives, tells the table which ports went (their entries go on the
    /// sweeper's next pass), and (re)creates changed policers. Runs between batches, never per
    /// packet.
    ///
    /// Every worker adopts every snapshot into the one shared table, in order, and removes only
    /// what its own last snapshot gave. One that adopts an older snapshot after another adopted
    /// a newer one may put back a static entry the newer one removed, or remove one the newer
    /// one gives again; it mends either when it adopts the newer one itself, so the table
    /// converges once every worker has.
    pub fn adopt(&mut self, snap: &Snapshot, now: Now) {
        // Sized first, in one growth for entries and networks: nothing to do where the switch
        // grew the shared table before publishing the snapshot (`Switch`: a growth copies the
        // table, tens of milliseconds at a million entries). A growth before the declarations
        // copies the entries of a network the snapshot re-creates; its new generation then makes
        // them stale (read as absent, not counted, swept), as a flush without a growth does.
        self.fdb.reserve_for(snap.mac_entries(), snap.nets.len());
        self.memo.forget();
        // Addresses still to learn after a growth, of a port or network that went (or came
        // again): forgotten.
        self.deferred.retain(|d| {
            snap.port(d.port.slot).is_some_and(|p| p.gen == d.port.gen)
                && snap.net(d.net).is_some_and(|n| n.gen == d.net_gen)
        });
        for (slot, n) in snap.nets.iter().enumerate() {
            if let (Some(n), Ok(slot)) = (n, u16::try_from(slot)) {
                self.fdb
                    .sync_network(slot, n.gen, n.mac_limit, snap.version);
            }
        }
        // Connections of a port that went, or whose slot another port took, are dead.
        for zone in 0..self.conns.zones() {
            if let Ok(slot) = u16::try_from(zone) {
                self.conns.sync_zone(slot, snap.port(slot).map(|p| p.gen));
            }
        }
        if self.counters.len() < snap.ports.len() {
            self.counters
                .resize(snap.ports.len(), LocalCounters::default());
        }
        self.policers.resize(snap.ports.len(), None);
        self.policers_in.resize(snap.ports.len(), None);
        let mut statics = Vec::with_capacity(self.statics.len());
        for (slot, p) in snap.ports.iter().enumerate() {
            let Ok(slot16) = u16::try_from(slot) else {
                continue;
            };
            let Some(p) = p else {
                self.policers[slot] = None;
                self.policers_in[slot] = None;
                continue;
            };
            // A policer keeps its bucket while its port and its configuration stay the same (a
            // port that took a removed port's slot starts with full buckets of its own).
            let same_port = self.port_gens.get(slot) == Some(&p.gen);
            for (have, want) in [
                (&mut self.policers[slot], p.policer),
                (&mut self.policers_in[slot], p.policer_in),
            ] {
                let want = want.filter(|c| c.bps > 0 || c.pps > 0);
                if !same_port || want != have.as_ref().map(Policer::config) {
                    *have = want.map(|c| Policer::new(c, now.nanos));
                }
            }
            if let Role::Access(net) = p.role {
                let port = PortRef {
                    slot: slot16,
                    gen: p.gen,
                };
                let net_gen = snap.net(net).map_or(0, |n| n.gen);
                for &mac in &p.static_macs {
                    // (One refused as of an older generation is not this worker's to remove.)
                    if self.fdb.add_static((net, net_gen), mac, port, now.secs) != Learn::Stale {
                        statics.push((net, mac, port));
                    }
                }
            }
        }
        statics.sort_unstable();
        for &(net, mac, port) in &self.statics {
            if statics.binary_search(&(net, mac, port)).is_err() {
                self.fdb.remove_static(net, mac, port);
            }
        }
        self.statics = statics;
        self.forget_gone_ports(snap);
    }

    /// Tells the MAC table the ports the last snapshot had and `snap` has not (removed, or
    /// another port in their slot), so that their entries go on the sweeper's next pass.
    fn forget_gone_ports(&mut self, snap: &Snapshot) {
        let gens: Vec<u32> = snap
            .ports
            .iter()
            .map(|p| p.as_ref().map_or(0, |p| p.gen))
            .collect();
        let gone: Vec<PortRef> = self
            .port_gens
            .iter()
            .enumerate()
            .filter(|&(slot, &old)| old != 0 && gens.get(slot).copied() != Some(old))
            .filter_map(|(slot, &gen)| {
                Some(PortRef {
                    slot: u16::try_from(slot).ok()?,
                    gen,
                })
            })
            .collect();
        self.fdb.forget_ports(&gone);
        self.port_gens = gens;
    }

    /// Resets the counters of a slot (when a new port takes it).
    pub fn reset_counters(&mut self, slot: u16) {
        if let Some(c) = self.counters.get_mut(usize::from(slot)) {
            *c = LocalCounters::default();
        }
    }

    /// Counts a frame received on `ingress` (`len` bytes) and dropped before the decision (a
    /// multi-buffer frame that cannot be segmented).
    pub fn count_dropped(&mut self, ingress: u16, len: usize, reason: DropReason) {
        if let Some(c) = self.counters.get_mut(usize::from(ingress)) {
            c.rx_packets += 1;
            c.rx_bytes += len as u64;
            c.drop(reason);
        }
    }

    #[inline]
    fn drop(&mut self, ingress: u16, reason: DropReason) -> Verdict {
        if let Some(c) = self.counters.get_mut(usize::from(ingress)) {
            c.drop(reason);
        }
        Verdict::Drop(reason)
    }

    /// Decides what to do with `frame`, received on port slot `ingress`.
    #[inline]
    pub fn process(&mut self, snap: &Snapshot, ingress: u16, frame: &[u8], now: Now) -> Verdict {
        self.decide(snap, ingress, frame, false, now)
    }

    /// [`Pipeline::process`] for a TCP super-frame the worker has checked (`gso::Plan`), which
    /// may leave whole: larger than the port's MTU allows, and decided once for all of its
    /// segments.
    pub fn process_super(
        &mut self,
        snap: &Snapshot,
        ingress: u16,
        frame: &[u8],
        now: Now,
    ) -> Verdict {
        self.decide(snap, ingress, frame, true, now)
    }

    /// [`Pipeline::process`]; a frame above the port's largest is dropped unless `large`.
    #[inline(always)]
    fn decide(
        &mut self,
        snap: &Snapshot,
        ingress: u16,
        frame: &[u8],
        large: bool,
        now: Now,
    ) -> Verdict {
        if let Some(c) = self.counters.get_mut(usize::from(ingress)) {
            c.rx_packets += 1;
            c.rx_bytes += frame.len() as u64;
        }
        let Some(port) = snap.port(ingress) else {
            return self.drop(ingress, DropReason::PortDown);
        };
        if !port.admin_up {
            return self.drop(ingress, DropReason::PortDown);
        }
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return self.drop(ingress, DropReason::Truncated);
        };
        let tagged = eth.is_tagged();
        let tag_len = if tagged { VLAN_TAG_LEN } else { 0 };
        if frame.len() > port.max_frame as usize + tag_len && !large {
            return self.drop(ingress, DropReason::Oversize);
        }
        let net = match ingress_net(snap, port.role, &eth, tagged) {
            Ok(net) => net,
            Err(reason) => return self.drop(ingress, reason),
        };
        let Some(network) = snap.net(net) else {
            return self.drop(ingress, DropReason::PortDown);
        };
        let src = eth.src();
        if src.is_multicast() || src == Mac::ZERO {
            return self.drop(ingress, DropReason::InvalidSource);
        }
        if let Some(sec) = &port.security {
            if !sec.permits(&eth) {
                return self.drop(ingress, DropReason::Spoofed);
            }
        }
        if let Some(Some(p)) = self.policers.get_mut(usize::from(ingress)) {
            if !p.admit(frame.len(), now.nanos) {
                return self.drop(ingress, DropReason::Policed);
            }
        }
        // Read to layer 4 only where a port of the network filters (the sender, or a port the
        // frame may go to); only then may the sender's rules refuse the frame.
        self.read_l4(network.filtering, frame);
        if network.filtering {
            let l3 = self.l3.as_ref();
            let probe = &mut self.probe;
            if let Err(reason) = filter(
                &mut self.conns,
                l3,
                probe,
                snap,
                ingress,
                Direction::Egress,
                now,
            ) {
                return self.drop(ingress, reason);
            }
        }

        let me = PortRef {
            slot: ingress,
            gen: port.gen,
        };
        // Read before the table is: a change after this ends what is remembered now.
        self.memo.hold(self.fdb.changes(), now.secs);
        let src_key = MacTable::key(net, src);
        if self.memo.source(src_key) != Some(me) {
            let learned = self.fdb.learn_key(src_key, net, network.gen, me, now.secs);
            match learned {
                Learn::Refreshed | Learn::Learned => {
                    Memo::put(self.memo.epoch, &mut self.memo.src, src_key, me);
                }
                // Not learned: a snapshot of this network's new segment will learn it.
                Learn::StaticConflict | Learn::Stale => {}
                Learn::Moved => self.count(ingress, |c| c.mac_moves += 1),
                Learn::LimitReached => self.count(ingress, |c| c.learn_limit += 1),
                Learn::Deferred => self.defer(snap, net, src, me, now),
            }
            // Anything but a refresh may have changed the table (a move: a frame to its own
            // source must see it): the count is read again, and a change ends every answer,
            // including the one just stored (stored first on purpose: an answer stored after
            // this read would count in an epoch opened on a count read before it).
            if learned != Learn::Refreshed {
                self.memo.hold(self.fdb.changes(), now.secs);
            }
        }

        // The port's own client only: other MACs behind the port (nested guests, pairs) are
        // switched as usual.
        if let Some(d) = port.dhcp.as_ref().filter(|d| d.client_mac == src) {
            if crate::dhcp::client_message(frame).is_some_and(|at| d.asks(frame, at)) {
                return Verdict::Dhcp;
            }
        }
        if port.dhcp6.as_ref().is_some_and(|d| d.client_mac == src)
            && crate::dhcp6::client_message(frame).is_some()
        {
            return Verdict::Dhcp6;
        }
        if port.ra.as_ref().is_some_and(|r| r.client_mac == src)
            && crate::ra::is_solicitation(frame)
        {
            self.count(ingress, |c| c.floods += 1);
            return Verdict::RouterSolicitation { net };
        }
        // The EtherType first: the whole request is read for ARP frames only.
        let arp = matches!(port.role, Role::Access(_)) && eth.ethertype() == ETHERTYPE_ARP;
        if let Some(target) = arp.then(|| arp_request_target(frame)).flatten() {
            let owner = network.arp_owner(target);
            // Not for the asker's own address: that is a duplicate-address probe of its own.
            if let Some((mac, _)) = owner.filter(|&(_, slot)| slot != ingress) {
                return Verdict::Arp(mac);
            }
        }
        let dst = eth.dst();
        if !dst.is_multicast() {
            let dst_key = MacTable::key(net, dst);
            let mut found = self.memo.destination(dst_key);
            if found.is_none() {
                found = self.fdb.lookup_key(dst_key, now.secs);
                if let Some(port) = found {
                    Memo::put(self.memo.epoch, &mut self.memo.dst, dst_key, port);
                }
            }
            if let Some(to) = found {
                // An entry of a removed port whose slot was reused (by the ingress port too)
                // reads as unknown, and one naming a port that does not carry the network (of
                // another segment: [`NetView::carries`]): flood.
                let egress = snap
                    .port(to.slot)
                    .filter(|p| p.gen == to.gen && network.carries(net, p));
                if let Some(egress) = egress {
                    if to.slot == ingress {
                        return self.drop(ingress, DropReason::SamePort);
                    }
                    if !egress.admin_up {
                        return self.drop(ingress, DropReason::EgressDown);
                    }
                    return Verdict::Unicast { port: to.slot, net };
                }
            }
        }
        self.count(ingress, |c| c.floods += 1);
        Verdict::Flood { net }
    }

    /// Remembers to learn `mac` on `port` once the MAC table's growth is done.
    #[cold]
    fn defer(&mut self, snap: &Snapshot, net: u16, mac: Mac, port: PortRef, now: Now) {
        self.count(port.slot, |c| c.learn_deferred += 1);
        let was = self.fdb.lookup(net, mac, now.secs);
        let net_gen = snap.net(net).map_or(0, |n| n.gen);
        let full = self.deferred.len() >= DEFERRED_MAX;
        match self
            .deferred
            .iter_mut()
            .find(|d| (d.net, d.mac) == (net, mac))
        {
            Some(d) => (d.port, d.was, d.net_gen) = (port, was, net_gen),
            None if !full => self.deferred.push(Deferred {
                net,
                mac,
                port,
                was,
                net_gen,
            }),
            None => {}
        }
    }

    /// Addresses wait to be learned once the MAC table's growth is done: the worker should not
    /// sleep long.
    #[inline]
    pub fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Picks up the MAC table another view grew (one atomic load when nothing changed; a
    /// worker calls it every round), then learns the addresses a growth deferred, once it is
    /// done: each where it was last seen, unless a frame learned it elsewhere since.
    #[inline]
    pub fn refresh(&mut self, now: Now) {
        if self.fdb.refresh() {
            // Refreshes stored in the old table since its copy are lost: not to be skipped.
            self.memo.forget();
        }
        if !self.deferred.is_empty() && !self.fdb.is_growing() {
            self.catch_up(now);
        }
    }

    #[cold]
    fn catch_up(&mut self, now: Now) {
        let mut deferred = std::mem::take(&mut self.deferred);
        deferred.retain(|d| {
            if self.fdb.lookup(d.net, d.mac, now.secs) != d.was {
                return false;
            }
            let key = MacTable::key(d.net, d.mac);
            match self.fdb.learn_key(key, d.net, d.net_gen, d.port, now.secs) {
                Learn::Refreshed | Learn::Learned | Learn::StaticConflict | Learn::Stale => {}
                Learn::Moved => self.count(d.port.slot, |c| c.mac_moves += 1),
                Learn::LimitReached => self.count(d.port.slot, |c| c.learn_limit += 1),
                // Another growth began: next time.
                Learn::Deferred => return true,
            }
            false
        });
        self.deferred = deferred;
    }

    /// Is [`Pipeline::prefetch`] worth calling ([`MacTable::worth_prefetching`])?
    #[inline]
    pub fn worth_prefetching(&self) -> bool {
        self.fdb.worth_prefetching()
    }

    /// Prefetches the MAC table's lines that [`Pipeline::process`] will read for `frame`,
    /// received on `ingress` (its source's and its unicast destination's slots), a few frames
    /// before it is processed; nothing for a frame of no network (unknown port, malformed or
    /// with a tag the port refuses).
    #[inline]
    pub fn prefetch(&self, snap: &Snapshot, ingress: u16, frame: &[u8]) {
        let Some(port) = snap.port(ingress) else {
            return;
        };
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return;
        };
        let Ok(net) = ingress_net(snap, port.role, &eth, eth.is_tagged()) else {
            return;
        };
        self.fdb.prefetch(net, eth.src());
        let dst = eth.dst();
        if !dst.is_multicast() {
            self.fdb.prefetch(net, dst);
        }
    }

    /// Reads `frame` of network `net` to layer 4 for [`Pipeline::admit`], where the network has
    /// a filtering port, as [`Pipeline::process`] does: for a frame another worker decided on.
    #[inline]
    pub fn inspect(&mut self, snap: &Snapshot, net: u16, frame: &[u8]) {
        self.read_l4(snap.net(net).is_some_and(|n| n.filtering), frame);
    }

    /// [`Pipeline::inspect`] of a network that filters, or not.
    #[inline(always)]
    fn read_l4(&mut self, filtering: bool, frame: &[u8]) {
        self.probe = None;
        if filtering {
            self.parse_l4(frame);
        } else {
            self.l3 = None;
        }
    }

    /// Out of line: most networks do not filter, and the parser is large.
    #[inline(never)]
    fn parse_l4(&mut self, frame: &[u8]) {
        // In place: the last frame's view is overwritten, not rebuilt and copied.
        flow::parse_into(frame, self.l3.get_or_insert(L3::Malformed));
    }

    /// The frame last read ([`Pipeline::process`], [`Pipeline::inspect`]) on a network with
    /// security groups, if it is a whole TCP segment without SYN, FIN or RST: its addresses and
    /// ports. Such a segment of a connection a port's worker published
    /// ([`crate::conntrack::published`]) may be sent into that port by any worker.
    #[inline]
    pub fn plain_tcp(&self) -> Option<&flow::Tuple> {
        match &self.l3 {
            Some(L3::Ip(f))
                if f.tuple.proto == crate::wire::ipproto::TCP
                    && f.fragment == flow::Fragment::Whole
                    && f.quoted.is_none()
                    && f.tcp_flags & (flow::tcp::SYN | flow::tcp::FIN | flow::tcp::RST) == 0 =>
            {
                Some(&f.tuple)
            }
            _ => None,
        }
    }

    /// After [`Pipeline::admit`] let the frame last read into port `egress`: publishes its
    /// connection for the other workers ([`ConnTable::publish`]) if the frame is a plain TCP
    /// segment ([`Pipeline::plain_tcp`]) that the port's rules passed as part of an established
    /// connection. For a frame that crossed from another worker: what the others may send
    /// straight from then on.
    pub fn publish(&self, snap: &Snapshot, egress: u16, now: Now) {
        let (Some(_), Some(probe), Some(port)) = (self.plain_tcp(), &self.probe, snap.port(egress))
        else {
            return;
        };
        if port.filter.is_some() {
            let at = probe.in_zone(egress);
            self.conns
                .publish(&at, port.gen, snap.policy_epoch, now.secs);
        }
    }

    /// Does port `slot` have a rate limit, on what it sends or on what it receives?
    pub fn polices(&self, slot: u16) -> bool {
        let limited = |p: &[Option<Policer>]| matches!(p.get(usize::from(slot)), Some(Some(_)));
        limited(&self.policers) || limited(&self.policers_in)
    }

    /// May the frame [`Pipeline::process`] just forwarded (`len` bytes) be sent to port
    /// `egress`? Checks the ingress rules of the port's security groups, then the rate limit of
    /// what its VM receives (once per copy of a flood); a refused copy is counted on `egress`,
    /// whose rules or limit refused it.
    #[inline(always)]
    pub fn admit(&mut self, snap: &Snapshot, egress: u16, len: usize, now: Now) -> bool {
        self.admit_run(snap, egress, len, now, 1)
    }

    /// [`Pipeline::admit`] for a frame that is `frames` TCP segments merged (a refusal counts
    /// each; at least 1).
    #[inline(always)]
    pub fn admit_run(
        &mut self,
        snap: &Snapshot,
        egress: u16,
        len: usize,
        now: Now,
        frames: u32,
    ) -> bool {
        // The common case, inline: a network without filters (no layer 4 read) and a port
        // without a receive limit.
        if self.l3.is_none() && !matches!(self.policers_in.get(usize::from(egress)), Some(Some(_)))
        {
            return true;
        }
        self.admit_checked(snap, egress, len, now, frames)
    }

    /// [`Pipeline::admit`] where a rule or a limit may refuse the frame, `frames` frames merged.
    #[inline(never)]
    fn admit_checked(
        &mut self,
        snap: &Snapshot,
        egress: u16,
        len: usize,
        now: Now,
        frames: u32,
    ) -> bool {
        let l3 = self.l3.as_ref();
        let probe = &mut self.probe;
        let verdict = filter(
            &mut self.conns,
            l3,
            probe,
            snap,
            egress,
            Direction::Ingress,
            now,
        )
        .and_then(|()| match self.policers_in.get_mut(usize::from(egress)) {
            Some(Some(p)) => match p.admit_run(len, frames, now.nanos) {
                true => Ok(()),
                false => Err(DropReason::Policed),
            },
            _ => Ok(()),
        });
        match verdict {
            Ok(()) => true,
            Err(reason) => {
                self.count(egress, |c| c.drop_n(reason, frames.max(1)));
                false
            }
        }
    }

    #[inline]
    fn count(&mut self, slot: u16, f: impl FnOnce(&mut LocalCounters)) {
        if let Some(c) = self.counters.get_mut(usize::from(slot)) {
            f(c);
        }
    }
}

/// The network of `eth`, received on a port of role `role`: an access port's own network
/// (untagged frames only), or on a trunk the network of the frame's VLAN (the physical
/// network's flat network if untagged). `tagged`: `eth.is_tagged()`, which the caller read.
#[inline(always)]
fn ingress_net(
    snap: &Snapshot,
    role: Role,
    eth: &EthernetFrame<'_>,
    tagged: bool,
) -> Result<u16, DropReason> {
    match role {
        Role::Access(_) if tagged => Err(DropReason::TaggedOnAccess),
        Role::Access(net) => Ok(net),
        Role::Trunk(physnet) => match eth.vlan_id() {
            // Untagged: the physical network's flat network, if it has one.
            None => snap
                .uplink_net(physnet, 0)
                .ok_or(DropReason::UntaggedOnTrunk),
            // A tag inside the tag belongs to no network, nor does a priority tag (VLAN 0): the
            // worker untags those first (`wire::strip_priority_tag`).
            Some(vid) => snap
                .uplink_net(physnet, vid)
                .filter(|_| vid != 0 && !eth.is_double_tagged())
                .ok_or(DropReason::UnknownVlan),
        },
    }
}

/// Checks the frame `l3` against the security groups of port `slot` in direction `dir` (passes
/// when the port has none); `probe` is the frame's connection once looked up.
#[inline]
fn filter(
    conns: &mut ConnTable,
    l3: Option<&L3>,
    probe: &mut Option<Probe>,
    snap: &Snapshot,
    slot: u16,
    dir: Direction,
    now: Now,
) -> Result<(), DropReason> {
    let (Some(port), Some(l3)) = (snap.port(slot), l3) else {
        return Ok(());
    };
    let Some(filter) = &port.filter else {
        return Ok(());
    };
    let zone = Zone {
        slot,
        gen: port.gen,
        filter,
    };
    let policy = Policy {
        sets: &snap.address_sets,
        epoch: snap.policy_epoch,
    };
    acl::check(conns, zone, dir, l3, probe, policy, now.secs)
}

/// The ports a flood of network `net` from `ingress` reaches: the network's admin-up access
/// ports and its physical network's uplink, never the ingress port.
#[inline]
pub fn flood_targets<'a>(
    snap: &'a Snapshot,
    net: u16,
    ingress: u16,
) -> impl Iterator<Item = u16> + 'a {
    let (members, uplinks) = snap
        .net(net)
        .map_or((&[][..], &[][..]), |n| (&n.members[..], &n.uplinks[..]));
    members
        .iter()
        .chain(uplinks.iter())
        .copied()
        .filter(move |&p| p != ingress)
}

#[cfg(test)]
mod tests;

/// The address an ARP request (Ethernet, IPv4, untagged) asks for; `None` for anything else,
/// and for a gratuitous request (sender and target addresses the same: an announcement).
pub fn arp_request_target(frame: &[u8]) -> Option<std::net::Ipv4Addr> {
    let arp = frame.get(12..42)?;
    let request = arp[0..2] == [0x08, 0x06] // ethertype ARP
        && arp[2..4] == [0, 1] // hardware: Ethernet
        && arp[4..6] == [0x08, 0x00] // protocol: IPv4
        && arp[6] == 6
        && arp[7] == 4
        && arp[8..10] == [0, 1]; // request
    let (spa, tpa) = (&arp[16..20], &arp[26..30]);
    (request && spa != tpa).then(|| std::net::Ipv4Addr::new(tpa[0], tpa[1], tpa[2], tpa[3]))
}

/// Turns the ARP request in `frame` into the reply for `mac`, in place: back to its sender,
/// from `mac`, saying that the requested address is at `mac`.
pub fn arp_reply_in_place(frame: &mut [u8], mac: Mac) -> Option<()> {
    if frame.len() < 42 {
        return None;
    }
    let requester: [u8; 6] = frame[22..28].try_into().ok()?;
    let requester_ip: [u8; 4] = frame[28..32].try_into().ok()?;
    let asked: [u8; 4] = frame[38..42].try_into().ok()?;
    let sender: [u8; 6] = frame[6..12].try_into().ok()?;
    frame[0..6].copy_from_slice(&sender);
    frame[6..12].copy_from_slice(&mac.0);
    frame[20..22].copy_from_slice(&[0, 2]);
    frame[22..28].copy_from_slice(&mac.0);
    frame[28..32].copy_from_slice(&asked);
    frame[32..38].copy_from_slice(&requester);
    frame[38..42].copy_from_slice(&requester_ip);
    Some(())
}
