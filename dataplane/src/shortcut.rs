//! Forwarding inside XDP: known unicast between plain VM ports, in the sender's call.
//!
//! # Design
//! A frame the switch forwards goes from the kernel to a worker's socket, through the decision,
//! and back to the kernel by the egress socket: two kernel paths, a second CPU and the worker's
//! queue (docs/BENCHMARKS.md, "Forwarding inside XDP: the ceiling"). For a frame that no rule of
//! the switch needs to see, the port's XDP program can send it out of its egress interface
//! itself (`bpf_redirect`), as the Linux bridge forwards in the sender's call. The worker stays
//! the one place that decides: it installs what it decided, and only where the program's
//! result is the same.
//!
//! - **The map** ([`Shortcut`]): a BPF hash map from (ingress interface, destination MAC,
//!   source MAC) to the egress interface, the largest frame it takes, and the two ports'
//!   counter indexes (their slots). The program (`sys::bpf::load_shortcut_program`) looks every
//!   frame up, unless the frame is one the switch must see: group destinations, ARP, VLAN tags,
//!   IPv4 fragments, all TCP (its super-frames must go through the worker, and a flow split
//!   between two paths is reordered), DHCP and DHCPv6, ICMP "unreachable", ICMPv6, IPv6
//!   extension headers, frames larger than the entry's largest. Those, and every frame without
//!   an entry, go to the worker as before.
//! - **Installing**: once a batch's frames have left, a worker installs (ingress, destination,
//!   source) for each frame of it that the program may carry ([`may_carry`]) and that it
//!   forwarded unicast between two ports of one network that are VM ports (untagged), without
//!   port security, security groups or rate limits, the ingress attached in generic mode (a
//!   native redirect into a veth needs an XDP program at its far end), the egress a veth (a
//!   redirect from XDP skips the kernel's checks of what a device takes). The key holds the
//!   source, so a frame from an address the table has elsewhere (a move) or does not know
//!   (learning) never matches: it reaches the worker, which learns it.
//! - **Withdrawing**: when the MAC table's [`crate::fdb::MacTable::changes`] moved (a move, a
//!   removal, a revival), a worker checks the entries it installed from or to the addresses
//!   that changed ([`crate::fdb::MacTable::changed_since`]) against the table and the
//!   snapshot, and withdraws those that are no longer what it would install. It checks all of
//!   them when the table cannot tell which addresses changed (more than it keeps, a network
//!   flushed, a new aging time), when this map's [`Shortcut::epoch`] moved (a port opened,
//!   closed or stopped sending, or its worker's snapshot gave it another network:
//!   [`Shortcut::set_net`]) and when it adopts a snapshot. It reads both counts in each
//!   round, after its sweep and before its lookups, so an entry installed from a table that
//!   changed meanwhile lives at most until its next round; a worker that sees or makes a change
//!   wakes the others.
//! - **Ageing and counters**: frames taken by an entry never reach the worker. Once a second
//!   the worker reads each of its entries' hits and refreshes the source's MAC entry where they
//!   grew ([`crate::fdb::MacTable::touch`]), so an address that sends only through the shortcut
//!   never ages out; and checks the entry as a change would (a destination expired goes then,
//!   if the table's sweeper has not removed it yet). The program counts frames and bytes per
//!   port in a memory-mapped array; readers of a port's counters add what grew since the port
//!   opened ([`crate::stats::Live`]), so they count at once.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::sys::bpf::{self, MappedArray, SHORTCUT_KEY_LEN, SHORTCUT_VALUE_LEN};
use crate::wire::Mac;

/// Slots the counters array has: ports on higher slots are never installed.
pub const MAX_SLOTS: usize = 4096;
/// Entries the map holds at most (installs past it fail, and the frames keep going to the
/// worker).
pub const MAX_ENTRIES: u32 = 65536;

/// A port's registration in the shortcut's table of ports ([`Shortcut::set_port`]): its
/// interface, and which opening of a port it was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Registration(u64);

/// The shortcut shared by a switch's workers: the map, the per-port counters, and each open
/// port's registration (its interface).
pub struct Shortcut {
    map: OwnedFd,
    counters: MappedArray,
    /// By slot: the registration of the port open there ([`Registration`]: its interface
    /// index in the low 32 bits; 0: none).
    registered: Box<[AtomicU64]>,
    /// Registrations made: the next one's number ([`Shortcut::set_port`]).
    registrations: AtomicU32,
    /// By slot: the network of the port open there, in its worker's snapshot, and the port's
    /// generation ([`Shortcut::set_net`]; 0: none).
    nets: Box<[AtomicU64]>,
    gens: Box<[AtomicU32]>,
    epoch: AtomicU64,
}

impl core::fmt::Debug for Shortcut {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Shortcut")
            .field("epoch", &self.epoch())
            .finish()
    }
}

/// An entry's key: (ingress interface, destination, source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The ingress interface's index.
    pub ingress: u32,
    /// The destination address.
    pub dst: Mac,
    /// The source address.
    pub src: Mac,
}

impl Key {
    /// The first key in order, and the last (bounds of a range of keys).
    pub const MIN: Key = Key {
        ingress: 0,
        dst: Mac([0; 6]),
        src: Mac([0; 6]),
    };
    /// See [`Key::MIN`].
    pub const MAX: Key = Key {
        ingress: u32::MAX,
        dst: Mac([0xff; 6]),
        src: Mac([0xff; 6]),
    };

    fn bytes(&self) -> [u8; SHORTCUT_KEY_LEN] {
        let mut k = [0u8; SHORTCUT_KEY_LEN];
        k[0..4].copy_from_slice(&self.ingress.to_ne_bytes());
        k[4..10].copy_from_slice(&self.dst.0);
        k[10..16].copy_from_slice(&self.src.0);
        k
    }
}

/// Where an entry sends its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The egress interface's index.
    pub egress: u32,
    /// The largest frame it takes, whole (larger ones go to the worker).
    pub max_frame: u32,
    /// The ingress port's slot (its counters).
    pub ingress_slot: u16,
    /// The egress port's slot.
    pub egress_slot: u16,
}

/// A port's frames and bytes through the shortcut: received, sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Frames received on the port that the shortcut forwarded.
    pub rx_packets: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Frames the shortcut sent to the port.
    pub tx_packets: u64,
    /// Their bytes.
    pub tx_bytes: u64,
}

impl Counts {
    /// What grew since `before`.
    pub fn since(&self, before: &Counts) -> Counts {
        Counts {
            rx_packets: self.rx_packets.wrapping_sub(before.rx_packets),
            rx_bytes: self.rx_bytes.wrapping_sub(before.rx_bytes),
            tx_packets: self.tx_packets.wrapping_sub(before.tx_packets),
            tx_bytes: self.tx_bytes.wrapping_sub(before.tx_bytes),
        }
    }
}

impl Shortcut {
    /// Creates the map and the counters.
    pub fn new() -> io::Result<Shortcut> {
        let map = bpf::create_hash(
            SHORTCUT_KEY_LEN as u32,
            SHORTCUT_VALUE_LEN as u32,
            MAX_ENTRIES,
            b"qswitch_short",
        )?;
        let counters = MappedArray::create(
            bpf::SHORTCUT_COUNTERS_LEN as u32,
            MAX_SLOTS as u32,
            b"qswitch_scount",
        )?;
        Ok(Shortcut {
            map,
            counters,
            registered: (0..MAX_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            registrations: AtomicU32::new(0),
            nets: (0..MAX_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            gens: (0..MAX_SLOTS).map(|_| AtomicU32::new(0)).collect(),
            epoch: AtomicU64::new(0),
        })
    }

    /// Loads a port's program: the shortcut, then its queues' sockets in `xsks`.
    pub fn load_program(&self, xsks: &OwnedFd) -> io::Result<OwnedFd> {
        bpf::load_shortcut_program(xsks, &self.map, &self.counters)
    }

    /// Counts a change that may make installed entries wrong: every worker checks its entries
    /// at its next round.
    pub fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::Release);
    }

    /// See [`Shortcut::bump`].
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Records that entries may send to interface `ifindex` (0: to none) for the port open on
    /// `slot`, and bumps the epoch. Returns the registration, for [`Shortcut::clear_port`]: none
    /// (`Registration::default()`) for `ifindex` 0 or a slot beyond the table.
    pub fn set_port(&self, slot: u16, ifindex: u32) -> Registration {
        let mut reg = Registration::default();
        if let Some(i) = self.registered.get(usize::from(slot)) {
            if ifindex != 0 {
                let n = self.registrations.fetch_add(1, Ordering::Relaxed);
                reg = Registration(u64::from(n) << 32 | u64::from(ifindex));
            }
            i.store(reg.0, Ordering::Release);
        }
        self.bump();
        reg
    }

    /// Clears registration `reg` of `slot` ([`Shortcut::set_port`]) if it is still there, and
    /// bumps the epoch. A port opened on the slot since keeps its own, even on the same
    /// interface (the port handed from one worker to another, which opened it first).
    pub fn clear_port(&self, slot: u16, reg: Registration) {
        if let Some(i) = self.registered.get(usize::from(slot)) {
            let _ = i.compare_exchange(reg.0, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
        self.bump();
    }

    /// Records the network (slot and generation) the snapshot of the worker that owns the port
    /// open on `slot` gives it, and the port's generation (`(net, net_gen, port_gen)`), `None`
    /// for none; bumps the epoch if that changed. Entries send to the port only frames of that
    /// network, and only for that port: a worker installing from an older snapshot (the port's
    /// network changed in place since, the port keeping its slot and generation; or another
    /// port took the slot) withdraws its entries at its next round, and installs none.
    pub fn set_net(&self, slot: u16, net: Option<(u16, u32, u32)>) {
        let v = net.map_or(0, |(n, g, _)| 1 << 63 | u64::from(n) << 32 | u64::from(g));
        let gen = net.map_or(0, |(_, _, p)| p);
        let (Some(a), Some(p)) = (
            self.nets.get(usize::from(slot)),
            self.gens.get(usize::from(slot)),
        ) else {
            return;
        };
        let was_gen = p.swap(gen, Ordering::AcqRel);
        if a.swap(v, Ordering::AcqRel) != v || was_gen != gen {
            self.bump();
        }
    }

    /// See [`Shortcut::set_net`].
    #[inline]
    pub fn net(&self, slot: u16) -> Option<(u16, u32, u32)> {
        let v = self.nets.get(usize::from(slot))?.load(Ordering::Acquire);
        let gen = self.gens.get(usize::from(slot))?.load(Ordering::Acquire);
        (v != 0).then_some(((v >> 32) as u16, v as u32, gen))
    }

    /// The interface of the port open on `slot`, if one is.
    #[inline]
    pub fn ifindex(&self, slot: u16) -> Option<u32> {
        let i = self
            .registered
            .get(usize::from(slot))?
            .load(Ordering::Acquire) as u32;
        (i != 0).then_some(i)
    }

    /// Installs (or replaces) an entry.
    pub fn install(&self, key: &Key, route: &Route) -> io::Result<()> {
        let mut v = [0u8; SHORTCUT_VALUE_LEN];
        v[0..4].copy_from_slice(&route.egress.to_ne_bytes());
        v[4..8].copy_from_slice(&route.max_frame.to_ne_bytes());
        v[8..12].copy_from_slice(&u32::from(route.ingress_slot).to_ne_bytes());
        v[12..16].copy_from_slice(&u32::from(route.egress_slot).to_ne_bytes());
        bpf::map_update(&self.map, &key.bytes(), &v)
    }

    /// Removes an entry: false if it was not there.
    pub fn withdraw(&self, key: &Key) -> io::Result<bool> {
        bpf::map_delete(&self.map, &key.bytes())
    }

    /// The frames an entry has forwarded, if it is installed.
    pub fn hits(&self, key: &Key) -> io::Result<Option<u64>> {
        let mut v = [0u8; SHORTCUT_VALUE_LEN];
        if !bpf::map_lookup(&self.map, &key.bytes(), &mut v)? {
            return Ok(None);
        }
        let mut h = [0u8; 8];
        h.copy_from_slice(&v[16..24]);
        Ok(Some(u64::from_ne_bytes(h)))
    }

    /// What the shortcut has forwarded from and to the port on `slot`, since the switch
    /// started (whichever ports had the slot).
    pub fn counts(&self, slot: u16) -> Counts {
        let w = |i| {
            self.counters
                .word(usize::from(slot), i)
                .map_or(0, |a| a.load(Ordering::Relaxed))
        };
        Counts {
            rx_packets: w(0),
            rx_bytes: w(1),
            tx_packets: w(2),
            tx_bytes: w(3),
        }
    }
}

/// Could the program ever forward `frame` (as far as a look at three fields tells)? False for
/// group destinations, ARP, RARP, VLAN tags, 802.3 lengths, TCP and IPv6 other than UDP, which
/// it always leaves to the worker: the worker offers no entry for them.
#[inline]
pub fn may_carry(frame: &[u8]) -> bool {
    let (Some(&first), Some(&[hi, lo])) = (frame.first(), frame.get(12..14)) else {
        return false;
    };
    if first & 1 != 0 {
        return false;
    }
    match u16::from_be_bytes([hi, lo]) {
        0x0800 => frame.get(23) != Some(&6),
        0x86dd => frame.get(20) == Some(&17),
        0x0806 | 0x8035 | 0x8100 | 0x88a8 | 0x9100 | 0x9200 => false,
        t => t >= 0x0600,
    }
}

/// The maps, for tests: None (with a line saying why) where this process may not create BPF
/// maps because it does not run as root; as root (CI) a failure panics.
#[cfg(test)]
pub(crate) fn for_tests() -> Option<Shortcut> {
    match Shortcut::new() {
        Ok(sc) => Some(sc),
        Err(e) if !crate::sys::privileged() => {
            eprintln!("skipped: creating BPF maps needs root ({e})");
            None
        }
        Err(e) => panic!("the shortcut's maps: {e}"),
    }
}

#[cfg(test)]
mod tests;
