//! The worker loop over in-memory ports: delivery, tagging, flood copies, back-pressure and
//! frame accounting.

use std::sync::Arc;

use super::*;
use crate::config::{NetworkConfig, PortConfig, SlotMap, SwitchConfig};
use crate::port::mem::{MemPort, MemSpec};
use crate::wire::{build_frame, EthernetFrame, Mac, ETHERTYPE_IPV4};
use std::os::fd::OwnedFd;

const VM1: Mac = Mac([0x02, 0, 0, 0, 0, 1]);
const VM2: Mac = Mac([0x02, 0, 0, 0, 0, 2]);
const VM3: Mac = Mac([0x02, 0, 0, 0, 0, 3]);

struct Rig {
    w: Worker<MemPort>,
    ports: SlotMap,
    nets: SlotMap,
    /// The clock of [`Rig::tick`], ns.
    clock: u64,
}

/// Opens an in-memory port in `slot` that keeps what it sends, with a 256-frame TX ring.
pub(super) fn open_mem_port(w: &mut Worker<MemPort>, slot: u16) {
    open_mem_port_with(w, slot, false);
}

/// As [`open_mem_port`]; with `tx_checksum` the port finishes checksums on request, as a veth's
/// kernel does ([`PortIo::tx_checksum`]).
pub(super) fn open_mem_port_with(w: &mut Worker<MemPort>, slot: u16, tx_checksum: bool) {
    open_mem_port_spec(w, slot, tx_checksum, false, false);
}

/// As [`open_mem_port_with`]; with `whole` the port also takes TCP super-frames whole, as a
/// veth's packet socket does ([`PortIo::takes_whole`]), and with `direct` from other workers
/// too ([`PortIo::whole_tx`]).
pub(super) fn open_mem_port_spec(
    w: &mut Worker<MemPort>,
    slot: u16,
    tx_checksum: bool,
    whole: bool,
    direct: bool,
) {
    w.handle(
        Command::AddPort {
            slot,
            spec: MemSpec {
                capture: true,
                tx_size: 256,
                tx_checksum,
                whole,
                direct,
                shortcut_ifindex: None,
            },
            shared: Arc::new(PortShared::default()),
        },
        Now::default(),
    );
}

/// Opens port `slot` on `w` with a TX ring of `tx_size` and the status `shared` (kept across
/// openings, as the switch keeps it), its frames captured, no offload.
fn open_plain_port(w: &mut Worker<MemPort>, slot: u16, tx_size: u32, shared: &Arc<PortShared>) {
    w.handle(
        Command::AddPort {
            slot,
            spec: MemSpec {
                capture: true,
                tx_size,
                tx_checksum: false,
                whole: false,
                direct: false,
                shortcut_ifindex: None,
            },
            shared: Arc::clone(shared),
        },
        Now::default(),
    );
}

fn cfg() -> SwitchConfig {
    let net = |id: &str, vlan| NetworkConfig {
        id: id.into(),
        vlan,
        mac_limit: 100,
        physnet: Some(crate::config::DEFAULT_PHYSNET.into()),
    };
    SwitchConfig {
        networks: vec![net("a", 10), net("b", 20)],
        ports: vec![
            PortConfig::access("a1", "d1", "a"),
            PortConfig::access("a2", "d2", "a"),
            PortConfig::access("a3", "d3", "a"),
            PortConfig::access("b1", "d4", "b"),
            PortConfig::trunk("up", "d5"),
        ],
        ..SwitchConfig::default()
    }
}

impl Rig {
    fn new(frames: u32) -> Rig {
        Rig::with(WorkerConfig {
            frames,
            ..WorkerConfig::default()
        })
    }

    fn with(wc: WorkerConfig) -> Rig {
        Rig::offloading(wc, &[])
    }

    /// As [`Rig::with`], the ports named in `offload` finishing checksums on request.
    fn offloading(wc: WorkerConfig, offload: &[&str]) -> Rig {
        Rig::ported(wc, offload, &[])
    }

    /// As [`Rig::offloading`], the ports named in `whole` finishing checksums on request and
    /// taking TCP super-frames whole.
    fn ported(wc: WorkerConfig, offload: &[&str], whole: &[&str]) -> Rig {
        Rig::opened(wc, |w, id, slot| {
            let whole = whole.contains(&id);
            let offload = whole || offload.contains(&id);
            open_mem_port_spec(w, slot, offload, whole, false);
        })
    }

    /// A worker of `wc` with [`cfg`]'s snapshot, each port opened by `open(worker, id, slot)`.
    fn opened(wc: WorkerConfig, open: impl Fn(&mut Worker<MemPort>, &str, u16)) -> Rig {
        let mut r = Rig {
            w: Worker::new(wc).unwrap(),
            ports: SlotMap::default(),
            nets: SlotMap::default(),
            clock: 0,
        };
        let c = cfg();
        r.apply(&c);
        for p in &c.ports {
            open(&mut r.w, &p.id, r.ports.get(&p.id).unwrap());
        }
        r
    }

    /// A worker of 4096 frames whose MAC entries age out after a second, network "a" learning
    /// at most `mac_limit` addresses.
    fn ageing_in_a_second(mac_limit: u32) -> Rig {
        let mut r = Rig::with(WorkerConfig {
            frames: 4096,
            aging_secs: 1,
            ..WorkerConfig::default()
        });
        let mut c = cfg();
        c.networks[0].mac_limit = mac_limit;
        r.apply(&c);
        r
    }

    /// [`Rig::ageing_in_a_second`] with a MAC table of 32 768 slots (network "a" learns up to
    /// 8 192), in which 200 addresses behind a2 were learned at second 0 (so expired from second
    /// 1); and how many entries network "a" counts, expired or not, until swept.
    fn with_200_expiring() -> (Rig, impl Fn(&Rig) -> u32) {
        let mut r = Rig::ageing_in_a_second(8192);
        assert_eq!(r.w.pipe.fdb.slots_seen(), 32_768);
        for i in 0..200u8 {
            r.inject("a2", frame(Mac::BROADCAST, Mac([0x02, 0, 0, 1, 0, i])));
        }
        r.run();
        let net = usize::from(r.nets.get("a").unwrap());
        (r, move |r: &Rig| r.w.pipe.fdb.network_sizes()[net].0)
    }

    /// A worker of 4096 frames that learned VM2 behind a2 and VM3 behind a3.
    fn knowing_vm2_and_vm3() -> Rig {
        let mut r = Rig::new(4096);
        r.learn("a2", VM2);
        r.learn("a3", VM3);
        r
    }

    fn apply(&mut self, c: &SwitchConfig) {
        let s = Snapshot::compile(c, 1, &mut self.nets, &mut self.ports);
        self.w
            .handle(Command::Snapshot(Arc::new(s)), Now::default());
    }

    fn port(&mut self, id: &str) -> &mut MemPort {
        let slot = self.ports.get(id).unwrap();
        self.w.port_mut(slot).unwrap()
    }

    fn inject(&mut self, id: &str, frame: Vec<u8>) {
        self.port(id).inbox.push_back(frame);
    }

    /// Teaches the switch that `mac` is behind port `id` (a broadcast from it), and forgets the
    /// copies of that broadcast every port sent.
    fn learn(&mut self, id: &str, mac: Mac) {
        self.inject(id, frame(Mac::BROADCAST, mac));
        self.run();
        for p in ["a1", "a2", "a3", "b1", "up"] {
            self.out(p);
        }
    }

    fn run(&mut self) {
        for _ in 0..4 {
            self.w.poll(Now::default());
        }
    }

    /// Moves the clock `ms` on and runs a round: the clock's work (housekeeping) runs too.
    fn tick(&mut self, ms: u64) {
        self.clock += ms * 1_000_000;
        self.w.round(Now::from_nanos(self.clock));
    }

    fn out(&mut self, id: &str) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.port(id).outbox)
    }

    /// The one frame port `id` sent, addressed to `mac`, while no other port sent any: what the
    /// switch answers or tells that port's VM alone. `what` names it in the failures.
    fn only_frame_to(&mut self, id: &str, mac: Mac, what: &str) -> Vec<u8> {
        let mut sent = self.out(id);
        assert_eq!(sent.len(), 1, "one {what}, on {id}");
        assert_eq!(&sent[0][0..6], &mac.0, "the {what} goes to {mac:?}");
        for p in ["a1", "a2", "a3", "b1", "up"]
            .into_iter()
            .filter(|&p| p != id)
        {
            assert!(self.out(p).is_empty(), "{p} sent a frame too");
        }
        sent.remove(0)
    }

    fn check_accounting(&mut self) {
        let a = self.w.accounting();
        assert_eq!(a.free + a.user + a.in_kernel(), a.total);
        if let Some(f) = &self.w.fast {
            f.assert_indexed();
        }
        assert_eq!(a.user, 0, "the worker holds no frame between rounds");
        for p in ["a1", "a2", "a3", "b1", "up"] {
            let slot = self.ports.get(p).unwrap();
            if let Some(port) = self.w.port_mut(slot) {
                let s = port.stats();
                assert_eq!(
                    s.tx_invalid_descs, 0,
                    "{p}: a descriptor the kernel would refuse"
                );
            }
        }
    }
}

fn frame(dst: Mac, src: Mac) -> Vec<u8> {
    build_frame(dst, src, None, ETHERTYPE_IPV4, &[0xab; 46])
}

#[test]
fn unicast_after_learning_reaches_only_its_port() {
    let mut r = Rig::new(4096);
    r.learn("a2", VM2);
    r.inject("a1", frame(VM2, VM1));
    r.run();
    assert_eq!(r.out("a2"), vec![frame(VM2, VM1)]);
    assert!(r.out("a3").is_empty());
    assert!(r.out("up").is_empty());
    assert!(r.out("b1").is_empty());
    r.check_accounting();
}

#[test]
fn flood_reaches_the_network_and_the_trunk_tagged() {
    let mut r = Rig::new(4096);
    r.inject("a1", frame(Mac::BROADCAST, VM1));
    r.run();
    assert_eq!(r.out("a2"), vec![frame(Mac::BROADCAST, VM1)]);
    assert_eq!(r.out("a3"), vec![frame(Mac::BROADCAST, VM1)]);
    assert!(r.out("a1").is_empty(), "never back out of the ingress port");
    assert!(r.out("b1").is_empty(), "never into another network");
    let up = r.out("up");
    assert_eq!(
        up,
        vec![build_frame(
            Mac::BROADCAST,
            VM1,
            Some(10),
            ETHERTYPE_IPV4,
            &[0xab; 46]
        )]
    );
    r.check_accounting();
}

#[test]
fn trunk_frames_are_untagged_into_their_network() {
    let mut r = Rig::new(4096);
    r.inject(
        "up",
        build_frame(Mac::BROADCAST, VM1, Some(20), ETHERTYPE_IPV4, &[1; 46]),
    );
    r.run();
    assert_eq!(
        r.out("b1"),
        vec![build_frame(
            Mac::BROADCAST,
            VM1,
            None,
            ETHERTYPE_IPV4,
            &[1; 46]
        )]
    );
    assert!(r.out("a1").is_empty());
    // The reply goes back tagged, as unicast.
    r.inject("b1", frame(VM1, VM2));
    r.run();
    let up = r.out("up");
    assert_eq!(up.len(), 1);
    let v = EthernetFrame::new_checked(&up[0]).unwrap();
    assert_eq!(v.vlan_id(), Some(20));
    r.check_accounting();
}

#[test]
fn tagged_frames_from_vms_never_leave() {
    let mut r = Rig::new(4096);
    r.inject(
        "a1",
        build_frame(Mac::BROADCAST, VM1, Some(20), ETHERTYPE_IPV4, &[0; 46]),
    );
    r.run();
    for p in ["a2", "a3", "b1", "up"] {
        assert!(r.out(p).is_empty(), "{p}");
    }
    let slot = r.ports.get("a1").unwrap();
    assert_eq!(
        r.w.counters(slot).drops[DropReason::TaggedOnAccess as usize],
        1
    );
    r.check_accounting();
}

/// `frame` with an 802.1Q tag of VLAN 0 and priority 5 after its addresses.
fn priority_tagged(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f.splice(12..12, [0x81, 0x00, 0xa0, 0x00]);
    f
}

#[test]
fn priority_tagged_frames_are_switched_as_untagged() {
    let mut r = Rig::new(4096);
    r.learn("a2", VM2);
    // From a VM: a broadcast and a unicast, as if untagged (the priority is not kept).
    r.inject("a1", priority_tagged(&frame(Mac::BROADCAST, VM1)));
    r.inject("a1", priority_tagged(&frame(VM2, VM1)));
    r.run();
    assert_eq!(
        r.out("a2"),
        vec![frame(Mac::BROADCAST, VM1), frame(VM2, VM1)]
    );
    assert_eq!(r.out("a3"), vec![frame(Mac::BROADCAST, VM1)]);
    let on_trunk = build_frame(Mac::BROADCAST, VM1, Some(10), ETHERTYPE_IPV4, &[0xab; 46]);
    assert_eq!(r.out("up"), vec![on_trunk]);
    assert!(r.out("b1").is_empty());
    // Learned on a1: the answer goes there alone.
    r.inject("a2", frame(VM1, VM2));
    r.run();
    assert_eq!(r.out("a1"), vec![frame(VM1, VM2)]);
    // A super-frame too: its segments leave untagged.
    let payload: Vec<u8> = (0..4000u32).map(|i| (i % 249) as u8).collect();
    r.inject("a1", partial_tcp(VM2, &payload, Some(0)));
    r.run();
    let segments = r.out("a2");
    assert_eq!(segments.len(), 3);
    assert!(segments.iter().all(|f| f[12..14] == [0x08, 0x00]));
    let joined: Vec<u8> = segments.iter().flat_map(|f| f[54..].to_vec()).collect();
    assert!(joined == payload);
    // A tag inside the priority tag is a tag: refused.
    let double = build_frame(Mac::BROADCAST, VM1, Some(10), ETHERTYPE_IPV4, &[0xab; 46]);
    r.inject("a1", priority_tagged(&double));
    r.run();
    for p in ["a2", "a3", "b1", "up"] {
        assert!(r.out(p).is_empty(), "{p}");
    }
    let a1 = r.ports.get("a1").unwrap();
    let c = r.w.counters(a1);
    assert_eq!(c.drops[DropReason::TaggedOnAccess as usize], 1);
    assert_eq!(c.rx_packets, 6);
    // On the trunk, a priority-tagged frame belongs to the flat network; with none, to no one.
    r.inject("up", priority_tagged(&frame(Mac::BROADCAST, VM3)));
    r.run();
    assert!(r.out("b1").is_empty());
    let up = r.ports.get("up").unwrap();
    assert_eq!(
        r.w.counters(up).drops[DropReason::UntaggedOnTrunk as usize],
        1
    );
    let mut c = cfg();
    c.networks[1].vlan = 0;
    r.apply(&c);
    r.inject("up", priority_tagged(&frame(Mac::BROADCAST, VM3)));
    r.run();
    assert_eq!(r.out("b1"), vec![frame(Mac::BROADCAST, VM3)]);
    r.check_accounting();
}

#[test]
fn a_table_large_enough_to_prefetch_forwards_and_drops_as_a_small_one() {
    let mut r = Rig::new(4096);
    assert!(
        !r.w.pipeline().worth_prefetching(),
        "200 addresses fit the caches"
    );
    // 60 000 addresses a network: a table of 6 MiB, whose slots the worker prefetches.
    let mut c = cfg();
    for n in &mut c.networks {
        n.mac_limit = 60_000;
    }
    r.apply(&c);
    assert!(r.w.pipeline().worth_prefetching());
    r.learn("a2", VM2);
    r.learn("b1", VM1);
    // One batch a port, malformed frames and a chain of 12 chunks (a TCP super-frame) among
    // the good ones: the frames looked ahead at are the frames processed, whatever they hold.
    let tagged = |vid, dst| build_frame(dst, VM2, Some(vid), ETHERTYPE_IPV4, &[7; 46]);
    let payload: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    for f in [
        frame(VM2, VM1),
        vec![0xff; 10],
        frame(VM2, VM1),
        tagged(20, VM2),
        partial_tcp(VM2, &payload, None),
        frame(VM2, VM1),
        frame(VM2, VM1),
    ] {
        r.inject("a1", f);
    }
    for f in [
        tagged(20, VM1),
        tagged(30, VM1),
        frame(VM1, VM2),
        tagged(20, VM1),
    ] {
        r.inject("up", f);
    }
    r.run();
    let mut a2 = r.out("a2");
    assert_eq!(
        a2.len(),
        4 + 14,
        "four frames and the super-frame's 14 segments"
    );
    let tail = a2.split_off(16);
    let segments = a2.split_off(2);
    assert_eq!(
        [a2, tail],
        [vec![frame(VM2, VM1); 2], vec![frame(VM2, VM1); 2]]
    );
    let joined: Vec<u8> = segments.iter().flat_map(|f| f[54..].to_vec()).collect();
    assert_eq!(joined, payload);
    assert_eq!(
        r.out("b1"),
        vec![build_frame(VM1, VM2, None, ETHERTYPE_IPV4, &[7; 46]); 2]
    );
    for p in ["a1", "a3", "up"] {
        assert!(r.out(p).is_empty(), "{p}");
    }
    let drops = |r: &Rig, p: &str, why: DropReason| {
        r.w.counters(r.ports.get(p).unwrap()).drops[why as usize]
    };
    assert_eq!(drops(&r, "a1", DropReason::Truncated), 1);
    assert_eq!(drops(&r, "a1", DropReason::TaggedOnAccess), 1);
    assert_eq!(drops(&r, "up", DropReason::UnknownVlan), 1);
    assert_eq!(drops(&r, "up", DropReason::UntaggedOnTrunk), 1);
    r.check_accounting();
}

/// The MAC table the operator is shown lists the addresses of the ports there are: those a port
/// that went had learned are not listed (as the switch treats them: unknown), neither as no
/// port's nor as the port that took its slot.
#[test]
fn the_mac_table_shown_leaves_out_the_addresses_of_ports_that_went() {
    let mut r = Rig::knowing_vm2_and_vm3();
    let listed = |r: &mut Rig| {
        let (tx, rx) = std::sync::mpsc::channel();
        let net = r.nets.get("a").unwrap();
        r.w.handle(Command::MacTable { net, reply: tx }, Now::default());
        let mut macs: Vec<(Mac, String)> = (rx.recv().unwrap().into_iter())
            .map(|e| (e.mac, e.port))
            .collect();
        macs.sort();
        macs
    };
    assert_eq!(
        listed(&mut r),
        vec![(VM2, "a2".to_owned()), (VM3, "a3".to_owned())]
    );
    // a2 goes, and a4 takes its slot.
    let a2 = r.ports.get("a2");
    let mut c = cfg();
    c.ports.retain(|p| p.id != "a2");
    c.ports.push(PortConfig::access("a4", "d6", "a"));
    r.apply(&c);
    assert_eq!(r.ports.get("a4"), a2, "the slot is reused");
    assert_eq!(listed(&mut r), vec![(VM3, "a3".to_owned())]);
}

/// A port that goes takes its addresses with it within a pass of the sweeper (under a second),
/// so that they stop counting against their network's limit, as a bridge flushes them; a port
/// that takes its slot keeps what it learns.
#[test]
fn a_port_that_goes_takes_its_addresses_out_of_the_table() {
    let mut r = Rig::knowing_vm2_and_vm3();
    let net = usize::from(r.nets.get("a").unwrap());
    let count = |r: &Rig| r.w.pipe.fdb.network_sizes()[net].0;
    assert_eq!(count(&r), 2);
    let mut c = cfg();
    c.ports.retain(|p| p.id != "a2");
    c.ports.push(PortConfig::access("a4", "d6", "a"));
    r.apply(&c);
    open_mem_port(&mut r.w, r.ports.get("a4").unwrap());
    r.inject("a4", frame(Mac::BROADCAST, VM1));
    r.run();
    for _ in 0..1000 {
        r.tick(1);
    }
    assert_eq!(count(&r), 2, "VM3 on a3 and VM1 on a4; VM2 gone with a2");
    let a = r.nets.get("a").unwrap();
    assert_eq!(r.w.pipe.fdb.lookup(a, VM2, 0), None);
    assert!(r.w.pipe.fdb.lookup(a, VM1, 0).is_some());
}

#[test]
fn every_frame_is_delivered_or_counted_under_load() {
    // Few frames, small TX rings: floods need copies and rings fill up.
    let mut r = Rig::new(512);
    let mut offered = 0u64;
    for i in 0..2000u32 {
        let src = Mac([2, 0, 0, 1, (i >> 8) as u8, i as u8]);
        let dst = if i % 3 == 0 { Mac::BROADCAST } else { VM2 };
        r.inject(["a1", "a2", "a3"][i as usize % 3], frame(dst, src));
        offered += 1;
        if i % 100 == 0 {
            r.run();
            r.check_accounting();
        }
    }
    for _ in 0..200 {
        r.run();
    }
    r.check_accounting();
    let rx: u64 = ["a1", "a2", "a3"]
        .iter()
        .map(|p| r.w.counters(r.ports.get(p).unwrap()).rx_packets)
        .sum();
    let kernel_drops: u64 = ["a1", "a2", "a3"]
        .iter()
        .map(|p| r.port(p).stats().rx_dropped)
        .sum();
    assert_eq!(rx + kernel_drops, offered);
    let pending: usize = ["a1", "a2", "a3"]
        .iter()
        .map(|p| r.port(p).inbox.len())
        .sum();
    assert_eq!(pending, 0);
}

#[test]
fn removing_a_port_returns_all_its_frames() {
    let mut r = Rig::new(4096);
    r.run();
    let slot = r.ports.get("a3").unwrap();
    let before = r.w.accounting();
    assert!(before.by_port.iter().any(|&(s, n)| s == slot && n > 0));
    r.w.handle(Command::RemovePort { slot }, Now::default());
    let after = r.w.accounting();
    assert!(after.by_port.iter().all(|&(s, _)| s != slot));
    r.check_accounting();
    // Floods skip the closed port and still reach the others.
    r.inject("a1", frame(Mac::BROADCAST, VM1));
    r.run();
    assert_eq!(r.out("a2").len(), 1);
}

#[test]
fn a_port_opened_again_goes_on_counting_the_kernels_drops_from_where_it_was() {
    let mut r = Rig::new(4096);
    let slot = r.ports.get("a1").unwrap();
    let shared = Arc::clone(&r.w.ports[usize::from(slot)].as_ref().unwrap().shared);
    let dropped = |s: &PortShared| s.counters.read_published().xdp.rx_dropped;
    // The kernel's statistics are read every 100 ms.
    r.port("a1").kernel_dropped(3);
    r.tick(101);
    assert_eq!(dropped(&shared), 3);
    // Its device goes and comes back: new sockets, which count from 0.
    r.w.handle(Command::RemovePort { slot }, Now::default());
    assert_eq!(dropped(&shared), 3, "kept while closed");
    open_plain_port(&mut r.w, slot, 256, &shared);
    r.tick(101);
    assert_eq!(dropped(&shared), 3, "never backwards");
    r.port("a1").kernel_dropped(2);
    r.tick(101);
    assert_eq!(dropped(&shared), 5);
    // Closed again, a drop after the last read: read as it closes, and kept.
    r.port("a1").kernel_dropped(1);
    r.w.handle(Command::RemovePort { slot }, Now::default());
    assert_eq!(dropped(&shared), 6);
}

#[test]
fn a_worker_without_a_port_shows_no_fill_ring() {
    let mut r = Rig::new(4096);
    r.tick(101);
    let fill = |r: &Rig| r.w.stats().read().fill_frames;
    assert!(fill(&r) >= 16, "{}", fill(&r));
    for p in ["a1", "a2", "a3", "b1", "up"] {
        let slot = r.ports.get(p).unwrap();
        r.w.handle(Command::RemovePort { slot }, Now::default());
    }
    r.tick(101);
    assert_eq!(fill(&r), 0);
    // The next port to open gets a ring as before.
    let a1 = r.ports.get("a1").unwrap();
    open_mem_port_spec(&mut r.w, a1, false, false, false);
    r.tick(101);
    assert!(fill(&r) >= 16, "{}", fill(&r));
}

#[test]
fn failed_transmit_marks_the_port_and_keeps_forwarding_elsewhere() {
    let mut r = Rig::new(4096);
    let shared = Arc::new(PortShared::default());
    let slot = r.ports.get("a2").unwrap();
    open_plain_port(&mut r.w, slot, 64, &shared);
    r.port("a2").fail_tx = true;
    r.inject("a1", frame(Mac::BROADCAST, VM1));
    r.run();
    assert_eq!(shared.state(), LinkState::Failed);
    r.inject("a1", frame(Mac::BROADCAST, VM1));
    r.run();
    assert_eq!(r.out("a3").len(), 2);
    r.check_accounting();
}

impl Rig {
    /// a2's device sends everything it holds at once again, its ring is emptied, and every
    /// frame is accounted for.
    fn a2_sends_again_and_all_is_accounted_for(&mut self) {
        self.port("a2").kick_budget = None;
        self.port("a2").completes = None;
        self.tick(1);
        self.out("a2");
        self.check_accounting();
    }

    /// a2's device completes `completes` frames a round from now; a1 sends it `n` frames, then
    /// one to a3.
    fn send_a2_then_a3(&mut self, completes: Option<usize>, n: usize) {
        self.port("a2").completes = completes;
        for _ in 0..n {
            self.inject("a1", frame(VM2, VM1));
        }
        self.inject("a1", frame(VM3, VM1));
    }
}

#[test]
fn a_port_whose_transmit_stalled_stops_holding_the_others_back_until_it_has_room_again() {
    let mut r = Rig::knowing_vm2_and_vm3();
    let (a1, a2) = (r.ports.get("a1").unwrap(), r.ports.get("a2").unwrap());
    let stalled = |r: &Rig| r.w.counters(a2).drops[DropReason::TxStalled as usize];
    // Whether a2 is stalled now, as its status shows it, and how many times it stalled.
    let status = |r: &Rig| {
        let o = r.w.ports[usize::from(a2)].as_ref().unwrap();
        (o.shared.tx_stalled(), r.w.counters(a2).tx_stalls)
    };
    // a2's device stops sending; a1 sends it 300 frames, then one to a3, and rounds run every
    // `ms`, 9 or 10 of them: a2's 256-frame TX ring fills, then a1's frames wait behind it, the
    // one for a3 too. Returns how many a2 took (a round takes four fifths of the room: the last
    // frame or so is not taken).
    let stop_a2 = |r: &mut Rig, ms: u64, rounds: usize, free: usize| {
        r.send_a2_then_a3(Some(0), 300);
        for _ in 0..rounds {
            r.tick(ms);
        }
        let on_ring = r.out("a2").len();
        assert!(
            (free - 6..=free).contains(&on_ring),
            "a2's ring full: {on_ring}"
        );
        assert!(
            r.out("a3").is_empty(),
            "held back while a2 may only be busy"
        );
        assert_eq!(r.port("a1").inbox.len(), 301 - on_ring);
        on_ring
    };
    let on_ring = stop_a2(&mut r, 1, 9, 256);
    assert_eq!(stalled(&r), 0);
    assert_eq!(status(&r), (false, 0));
    // Ten milliseconds short of room without sending: a2 stalled, holds no one back; what is
    // for it is dropped and counted there.
    for _ in 0..10 {
        r.tick(1);
    }
    assert_eq!(r.out("a3"), vec![frame(VM3, VM1)]);
    // (What room was left on its ring is used.)
    assert_eq!(r.out("a2").len(), 256 - on_ring);
    let lost = 300 - 256;
    assert_eq!(stalled(&r), lost);
    assert_eq!(status(&r), (true, 1));
    // Its time stalled is published as it grows, with no traffic.
    let published = |r: &Rig| {
        let o = r.w.ports[usize::from(a2)].as_ref().unwrap();
        o.shared.counters.read().counters.tx_stalled_ns
    };
    let before = published(&r);
    r.tick(1);
    r.tick(1);
    assert_eq!(published(&r), before + 2_000_000);
    r.inject("a3", frame(VM1, VM3));
    r.inject("a1", frame(VM2, VM1));
    r.inject("a1", frame(VM3, VM1));
    r.tick(1);
    assert_eq!(r.out("a1"), vec![frame(VM1, VM3)]);
    assert_eq!(r.out("a3"), vec![frame(VM3, VM1)]);
    assert_eq!(stalled(&r), lost + 1);
    // Its device sends again: the ring empties, and a2 gets its frames.
    r.port("a2").completes = None;
    r.tick(1);
    r.inject("a1", frame(VM2, VM1));
    r.tick(1);
    assert_eq!(r.out("a2"), vec![frame(VM2, VM1)]);
    assert_eq!(stalled(&r), lost + 1);
    assert_eq!(status(&r), (false, 1));
    // Its stall lasted 8 ms (from the round it stalled in to the one that saw room again).
    assert_eq!(r.w.counters(a2).tx_stalled_ns, 8_000_000);
    // Resumed, a2 holds frames back again as a busy port does, then, stopping again so soon
    // after its stall, stalls after a millisecond of rounds: two rounds a millisecond apart,
    // each gap counting at most half the time to stall. (The frame it just sent stays on its
    // ring.)
    stop_a2(&mut r, 0, 10, 255);
    assert_eq!(stalled(&r), lost + 1);
    r.tick(1);
    assert!(r.out("a3").is_empty(), "one gap alone");
    assert_eq!(stalled(&r), lost + 1);
    r.tick(1);
    assert_eq!(r.out("a3"), vec![frame(VM3, VM1)]);
    assert_eq!(stalled(&r), lost + 1 + (300 - 255));
    assert_eq!(status(&r), (true, 2));
    // A device that sends, slower than it is sent to (three frames a millisecond), a second
    // later: it holds the others back 10 ms too, then stalls, though it sends.
    r.port("a2").completes = None;
    r.tick(1);
    r.out("a2");
    r.clock += stall::RECENT_NS;
    r.send_a2_then_a3(Some(3), 600);
    // (Its ring fills in four rounds: 10 ms short of room from the fourth.)
    for _ in 0..12 {
        r.tick(1);
    }
    assert!(
        r.out("a3").is_empty(),
        "held back while a2 may only be busy"
    );
    let before = stalled(&r);
    assert_eq!(before, lost + 1 + (300 - 255));
    // (Once it stalls, a round takes a batch of a1's frames: the frame for a3 comes some rounds
    // after; at three frames a millisecond it would have waited over 100 ms.)
    for _ in 0..10 {
        r.tick(1);
    }
    assert_eq!(r.out("a3"), vec![frame(VM3, VM1)]);
    assert!(
        stalled(&r) > before,
        "what does not fit its ring dropped on it"
    );
    assert_eq!(status(&r), (true, 3));
    // Every frame a1 sent is accounted for: sent, or dropped on a2.
    r.port("a2").completes = None;
    r.tick(1);
    let sent = r.out("a2").len() as u64;
    let c = r.w.counters(a1);
    assert_eq!(c.rx_packets, 300 + 1 + 2 + 1 + 300 + 1 + 600 + 1);
    // (a2 had a3's broadcast first.)
    assert_eq!(r.w.counters(a2).tx_packets, 1 + 256 + 1 + 255 + sent);
    assert_eq!(r.w.counters(a2).total_drops(), stalled(&r));
    // (Frames for a2: 300, one while it stalled, one after, 300, 600.)
    assert_eq!(stalled(&r), 1_202 - (256 + 1 + 255 + sent));
    r.check_accounting();
}

#[test]
fn a_port_stalls_after_the_configured_time() {
    // Rounds a millisecond apart until a1's frame for a3, queued behind 300 for a2 whose device
    // stopped, reaches a3: a2 must have stalled first. Returns how many rounds that took.
    let rounds_to_a3 = |tx_stall_ns: u64| {
        let mut r = Rig::with(WorkerConfig {
            frames: 4096,
            tx_stall_ns,
            ..WorkerConfig::default()
        });
        r.learn("a2", VM2);
        r.learn("a3", VM3);
        r.send_a2_then_a3(Some(0), 300);
        (1..=40)
            .find(|_| {
                r.tick(1);
                !r.out("a3").is_empty()
            })
            .unwrap()
    };
    let default = rounds_to_a3(WorkerConfig::default().tx_stall_ns);
    let short = rounds_to_a3(3_000_000);
    let long = rounds_to_a3(20_000_000);
    // (The ring is short of room from the first rounds, and a3's frame goes a round or so
    // after the stall: a few rounds more than the stall time, the same few each time.)
    assert!((10..=17).contains(&default), "{default}");
    assert!((6..=8).contains(&(default - short)), "{default} {short}");
    assert!((9..=11).contains(&(long - default)), "{default} {long}");
}

#[test]
fn a_stalled_port_is_kicked_once_a_millisecond_while_its_kicks_send_nothing() {
    let mut r = Rig::knowing_vm2_and_vm3();
    let a2 = r.ports.get("a2").unwrap();
    // a2's device stops sending; its ring fills, and 10 ms later it stalls.
    r.port("a2").completes = Some(0);
    for _ in 0..300 {
        r.inject("a1", frame(VM2, VM1));
    }
    for _ in 0..20 {
        r.tick(1);
    }
    assert!(r.w.counters(a2).drops[DropReason::TxStalled as usize] > 0);
    // Runs `rounds` rounds `gap` ns apart, a frame for a2 in each; returns a2's kicks, and of
    // those the ones made whether or not its device asked.
    let kicks = |r: &mut Rig, rounds: usize, gap: u64| {
        let before = (r.port("a2").kicks, r.port("a2").forced);
        for _ in 0..rounds {
            r.inject("a1", frame(VM2, VM1));
            r.clock += gap;
            r.w.round(Now::from_nanos(r.clock));
        }
        (
            r.port("a2").kicks - before.0,
            r.port("a2").forced - before.1,
        )
    };
    // 500 rounds over 5 ms, each with a frame for a2: a kick a millisecond, not one a round,
    // each whether or not its device asked (one gone down is found so).
    let (k, forced) = kicks(&mut r, 500, 10_000);
    assert!((5..=6).contains(&k), "{k} kicks in 5 ms");
    assert_eq!(forced, k);
    // Its device sends a frame a round now, a round every 100 µs (too slow to resume it). The
    // next kick, within a millisecond, hands it its ring; from then it completes frames, and is
    // kicked every round that gives it one.
    r.port("a2").completes = Some(1);
    let (k, forced) = kicks(&mut r, 50, 100_000);
    assert!((40..=50).contains(&k), "{k} kicks in 50 rounds");
    assert!(
        forced <= 1,
        "kicked as any port once it sends: {forced} forced"
    );
    let stalled = |r: &Rig| r.w.ports[usize::from(a2)].as_ref().unwrap().tx.stalled();
    assert!(stalled(&r), "a frame every 100 µs does not resume it");
    r.a2_sends_again_and_all_is_accounted_for();
}

#[test]
fn a_stalled_port_whose_device_went_down_is_found_failed_and_no_longer_shows_stalled() {
    let mut r = Rig::knowing_vm2_and_vm3();
    let a2 = r.ports.get("a2").unwrap();
    let shared = Arc::clone(&r.w.ports[usize::from(a2)].as_ref().unwrap().shared);
    r.send_a2_then_a3(Some(0), 300);
    for _ in 0..20 {
        r.tick(1);
    }
    assert!(shared.tx_stalled());
    assert_eq!(shared.state(), LinkState::Up);
    // Its device goes down: the next kick, within a millisecond, fails.
    r.port("a2").fail_tx = true;
    r.inject("a1", frame(VM2, VM1));
    r.tick(1);
    r.tick(1);
    assert_eq!(shared.state(), LinkState::Failed);
    assert!(!shared.tx_stalled(), "a failed port is not shown stalled");
    assert_eq!(r.w.counters(a2).tx_stalls, 1);
}

#[test]
fn a_stalled_port_whose_device_sends_again_resumes_under_load_with_small_kicks() {
    let mut r = Rig::knowing_vm2_and_vm3();
    let a2 = r.ports.get("a2").unwrap();
    let stalled = |r: &Rig| r.w.ports[usize::from(a2)].as_ref().unwrap().tx.stalled();
    // a2's device stops; its ring fills, and it stalls.
    r.port("a2").completes = Some(0);
    for _ in 0..300 {
        r.inject("a1", frame(VM2, VM1));
    }
    for _ in 0..20 {
        r.tick(1);
    }
    assert!(stalled(&r));
    // It sends again, 32 frames a kick (copy mode on kernels without the budget option), while
    // a1 sends it 40 frames a round, rounds 500 µs apart: more than one kick a round carries.
    // Kicked as any port that sends, at the round's start and after staging (each round's
    // frames kicked within it but what one kick does not carry, from its second round on), it
    // catches up and resumes.
    r.port("a2").completes = Some(usize::MAX);
    r.port("a2").kick_budget = Some(32);
    let mut resumed = None;
    for k in 0..100 {
        for _ in 0..40 {
            r.inject("a1", frame(VM2, VM1));
        }
        r.clock += 500_000;
        r.w.round(Now::from_nanos(r.clock));
        if k > 0 {
            let unkicked = r.port("a2").unkicked();
            assert!(
                unkicked <= 40 - 32,
                "round {k}: {unkicked} frames left unkicked"
            );
        }
        if !stalled(&r) {
            resumed = Some(k);
            break;
        }
    }
    assert!(resumed.is_some(), "still stalled after 100 rounds");
    r.a2_sends_again_and_all_is_accounted_for();
}

#[test]
fn a_fast_port_sent_more_than_its_kicks_carry_in_a_round_keeps_up_and_loses_nothing() {
    // Copy mode on kernels without the budget option: a kick sends 32 frames. a1, a3 and the
    // uplink (tagged) each send a2 a full batch every round, rounds 200 µs apart for 20 ms: 192
    // frames a round for a device that sends all it is handed at once. The worker's kicks must
    // carry them, not stall a2 as though its device were slow.
    let mut r = Rig::knowing_vm2_and_vm3();
    let a2 = r.ports.get("a2").unwrap();
    r.learn("a1", VM1);
    let far = Mac([2, 0, 0, 0, 0, 0x44]);
    let from_up = build_frame(VM2, far, Some(10), ETHERTYPE_IPV4, &[0; 46]);
    r.port("a2").completes = Some(usize::MAX);
    r.port("a2").kick_budget = Some(32);
    let rounds = 100;
    let mut delivered = 0;
    for _ in 0..rounds {
        for _ in 0..MAX_BATCH {
            r.inject("a1", frame(VM2, VM1));
            r.inject("a3", frame(VM2, VM3));
            r.inject("up", from_up.clone());
        }
        r.clock += 200_000;
        r.w.round(Now::from_nanos(r.clock));
        delivered += r.out("a2").len();
    }
    r.port("a2").kick_budget = None;
    r.port("a2").completes = None;
    r.tick(1);
    delivered += r.out("a2").len();
    let c = r.w.counters(a2);
    assert_eq!(c.tx_stalls, 0, "a2 stalled");
    assert_eq!(c.total_drops(), 0, "{:?}", c.drops);
    assert_eq!(delivered, 3 * MAX_BATCH * rounds);
    r.check_accounting();
}

#[test]
fn a_device_that_stops_is_kicked_once_a_flush_not_through_the_budget() {
    // 32 frames a kick, a2's device stopped: every kick is refused. Before it stalls, a round
    // kicks it at most twice (its round's start and after staging), not eight times a flush.
    let mut r = Rig::knowing_vm2_and_vm3();
    r.port("a2").kick_budget = Some(32);
    r.port("a2").completes = Some(0);
    for _ in 0..300 {
        r.inject("a1", frame(VM2, VM1));
    }
    for k in 0..8 {
        let before = r.port("a2").kicks;
        r.inject("a1", frame(VM2, VM1));
        r.tick(1);
        let kicks = r.port("a2").kicks - before;
        assert!(kicks <= 2, "round {k}: {kicks} kicks");
    }
    r.a2_sends_again_and_all_is_accounted_for();
}

#[test]
fn an_idle_worker_sleeps_past_a_ring_that_does_not_drain_and_wakes_to_kick_it() {
    let mut r = Rig::new(4096);
    r.learn("a2", VM2);
    for p in ["a1", "a2", "a3", "b1", "up"] {
        r.port(p).signals = true;
    }
    r.tick(1);
    assert_eq!(r.w.what_to_wait_on(Now::from_nanos(r.clock)), Some(false));
    // a2's device stops with three frames on its ring, far from a stall: the worker naps
    // (it kicks a2 each time) for 10 ms, then sleeps, waking to kick a2 about every 10 ms.
    r.port("a2").completes = Some(0);
    for _ in 0..3 {
        r.inject("a1", frame(VM2, VM1));
    }
    r.tick(1);
    assert_eq!(r.out("a2").len(), 3);
    let t = r.clock;
    assert_eq!(r.w.what_to_wait_on(Now::from_nanos(t)), None);
    let later = Now::from_nanos(t + stall::UNDRAINED_NS);
    assert_eq!(r.w.what_to_wait_on(later), Some(true));
    // It sends again: nothing left to kick.
    r.port("a2").completes = None;
    r.tick(20);
    assert_eq!(r.w.what_to_wait_on(Now::from_nanos(r.clock)), Some(false));
    r.check_accounting();
}

#[test]
fn a_port_that_falls_behind_for_less_than_the_stall_time_loses_nothing() {
    let mut r = Rig::knowing_vm2_and_vm3();
    let a2 = r.ports.get("a2").unwrap();
    // a2's device sends 40 frames a round, one round a millisecond, and a1 sends it 800, 64 a
    // round: its 256-frame ring fills, then has less than a batch of room for a few
    // milliseconds, a1's frames waiting behind it, the one for a3 too. It catches up before
    // 10 ms: no stall, nothing lost. (With a stall after 1 ms, 61 of them were dropped.)
    r.send_a2_then_a3(Some(40), 800);
    for _ in 0..11 {
        r.tick(1);
    }
    assert!(r.out("a3").is_empty(), "held back");
    assert!(!r.port("a1").inbox.is_empty());
    for _ in 0..20 {
        r.tick(1);
    }
    assert_eq!(r.out("a3"), vec![frame(VM3, VM1)]);
    assert!(!r.w.ports[usize::from(a2)].as_ref().unwrap().tx.stalled());
    r.port("a2").completes = None;
    r.tick(1);
    assert_eq!(r.out("a2").len(), 800);
    assert_eq!(r.w.counters(a2).total_drops(), 0);
    r.check_accounting();
}

#[test]
fn oversize_frames_that_are_not_tcp_are_dropped_whole_or_chained() {
    let mut r = Rig::new(4096);
    // One chunk above the MTU, and a chain of two chunks: neither is TCP.
    r.inject(
        "a1",
        build_frame(VM2, VM1, None, ETHERTYPE_IPV4, &[0; 1600]),
    );
    r.inject(
        "a1",
        build_frame(VM2, VM1, None, ETHERTYPE_IPV4, &[0; 2000]),
    );
    r.run();
    let slot = r.ports.get("a1").unwrap();
    assert_eq!(r.w.counters(slot).drops[DropReason::Oversize as usize], 2);
    assert_eq!(r.w.counters(slot).rx_packets, 2);
    assert_eq!(r.port("a1").stats().rx_dropped, 0);
    assert!(r.out("a2").is_empty());
    r.check_accounting();
}

/// An IPv4/TCP frame from VM1 to VM2 carrying `payload`, its checksum zero: wrong, and so
/// dropped when long (a TSO super-frame's is partial: [`partial_tcp`]).
fn tcp_frame(payload: &[u8]) -> Vec<u8> {
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
    ];
    ip[2..4].copy_from_slice(&((40 + payload.len()) as u16).to_be_bytes());
    let mut tcp = vec![0u8; 20];
    tcp[4..8].copy_from_slice(&100u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x18;
    ip.extend(tcp);
    ip.extend_from_slice(payload);
    build_frame(VM2, VM1, None, ETHERTYPE_IPV4, &ip)
}

#[test]
fn a_tcp_super_frame_chain_leaves_as_segments_and_every_chunk_is_accounted() {
    for offload in [false, true] {
        super_frame_segments(offload);
    }
}

fn super_frame_segments(offload: bool) {
    let wc = WorkerConfig {
        frames: 4096,
        ..WorkerConfig::default()
    };
    let mut r = Rig::offloading(wc, if offload { &["a2"] } else { &[] });
    r.learn("a2", VM2);
    let payload: Vec<u8> = (0..20_000u32).map(|i| (i % 249) as u8).collect();
    // A chain of 12 chunks, then a single chunk above the MTU.
    r.inject("a1", partial_tcp(VM2, &payload, None));
    r.inject("a1", partial_tcp(VM2, &payload[..1600], None));
    r.run();
    let out = r.out("a2");
    assert_eq!(out.len(), 14 + 2);
    let mut joined = Vec::new();
    for f in &out {
        assert!(f.len() <= 1514);
        assert_eq!(crate::csum::verify(f), Some(true));
        joined.extend_from_slice(&f[54..]);
    }
    let want: Vec<u8> = payload.iter().chain(&payload[..1600]).copied().collect();
    assert_eq!(joined, want);
    assert!(
        r.out("a3").is_empty(),
        "learned unicast, segment by segment"
    );
    let slot = r.ports.get("a1").unwrap();
    assert_eq!(r.w.counters(slot).gso_segmented, 2);
    assert_eq!(r.w.counters(slot).rx_packets, 16);
    // Each segment's checksum is finished by a2's kernel, or by the switch.
    let requests = if offload { 16 } else { 0 };
    assert_eq!(r.port("a2").checksum_requests, requests);
    r.check_accounting();
}

/// A TCP frame from VM1 to `dst` carrying `payload`, its checksum left partial as a guest's
/// stack leaves it for its NIC; with `tag`, carrying that VLAN tag.
pub(super) fn partial_tcp(dst: Mac, payload: &[u8], tag: Option<u16>) -> Vec<u8> {
    let mut f = tcp_frame(payload);
    f[0..6].copy_from_slice(&dst.0);
    if let Some(vid) = tag {
        f = build_frame(dst, VM1, Some(vid), ETHERTYPE_IPV4, &f[14..]);
    }
    assert!(crate::csum::make_partial(&mut f));
    f
}

#[test]
fn partial_checksums_are_left_to_ports_that_finish_them_and_finished_for_the_others() {
    let wc = WorkerConfig {
        frames: 1024,
        ..WorkerConfig::default()
    };
    // a2 and the trunk (veths, say) finish checksums on transmit; a1 and a3 do not.
    let mut r = Rig::offloading(wc, &["a2", "up"]);
    r.learn("a2", VM2);
    let payload: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let requests = |r: &mut Rig| {
        (
            r.port("a2").checksum_requests,
            r.port("up").checksum_requests,
        )
    };

    // Learned unicast to a2: left to its kernel, which finishes it.
    r.inject("a1", partial_tcp(VM2, &payload, None));
    r.run();
    let out = r.out("a2");
    assert_eq!(out.len(), 1);
    assert_eq!(crate::csum::verify(&out[0]), Some(true));
    assert_eq!(requests(&mut r), (1, 0));

    // A flood: a2 and the trunk (tagged: the request's offsets follow the tag) get requests, a3
    // a checksum the switch computed.
    r.inject(
        "a1",
        partial_tcp(Mac([0x02, 0, 0, 0, 0, 9]), &payload, None),
    );
    r.run();
    assert_eq!(requests(&mut r), (2, 1));
    for p in ["a2", "a3", "up"] {
        let out = r.out(p);
        assert_eq!(out.len(), 1, "{p}");
        assert_eq!(crate::csum::verify(&out[0]), Some(true), "{p}");
    }
    assert!(r.out("b1").is_empty());

    // From the trunk, tagged, to a2: the tag is popped and the request's offsets follow.
    let mut tagged = partial_tcp(VM2, &payload, Some(10));
    tagged[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 7]);
    r.inject("up", tagged);
    r.run();
    let out = r.out("a2");
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0][12..14], &[0x08, 0x00], "untagged");
    assert_eq!(crate::csum::verify(&out[0]), Some(true));
    assert_eq!(requests(&mut r), (3, 1));

    // Ethernet padding after the segment: a device would sum it too, so the switch finishes it.
    let mut padded = partial_tcp(VM2, &payload[..10], None);
    padded.extend_from_slice(&[0xee; 6]);
    r.inject("a1", padded);
    r.run();
    let out = r.out("a2");
    assert_eq!(out.len(), 1);
    assert_eq!(crate::csum::verify(&out[0]), Some(true));
    assert_eq!(requests(&mut r), (3, 1));

    // A checksum that is simply wrong is neither finished nor left to the kernel: the receiver
    // drops the frame, as it would from a wire.
    let mut wrong = tcp_frame(&payload);
    wrong[50] ^= 0x5a;
    r.inject("a1", wrong.clone());
    r.run();
    assert_eq!(r.out("a2"), vec![wrong]);
    assert_eq!(requests(&mut r), (3, 1));

    let a1 = r.ports.get("a1").unwrap();
    let up = r.ports.get("up").unwrap();
    assert_eq!(
        r.w.counters(a1).csum_completed,
        3,
        "counted once per frame, on its ingress"
    );
    assert_eq!(r.w.counters(up).csum_completed, 1);
    r.check_accounting();
}

/// The segments in `out`, as a receiver checks them: each within `max` bytes, its checksum
/// right, its payload (after `headers` bytes) appended to what the others carried.
pub(super) fn reassembled(out: &[Vec<u8>], headers: usize, max: usize) -> Vec<u8> {
    let mut joined = Vec::new();
    for f in out {
        assert!(f.len() <= max, "a segment of {} bytes", f.len());
        assert_eq!(crate::csum::verify(f), Some(true));
        joined.extend_from_slice(&f[headers..]);
    }
    joined
}

#[test]
fn a_super_frame_leaves_whole_towards_a_port_that_takes_it_in_order_and_tagged_as_needed() {
    let wc = WorkerConfig {
        frames: 4096,
        ..WorkerConfig::default()
    };
    let mut r = Rig::ported(wc, &[], &["a2", "up"]);
    r.learn("a2", VM2);
    let a1 = r.ports.get("a1").unwrap();
    let a2 = r.ports.get("a2").unwrap();
    let payload: Vec<u8> = (0..20_000u32).map(|i| (i % 249) as u8).collect();
    // A small segment, a chain of 12 chunks, a single chunk above the MTU: one batch.
    r.inject("a1", partial_tcp(VM2, &payload[..100], None));
    r.inject("a1", partial_tcp(VM2, &payload, None));
    r.inject("a1", partial_tcp(VM2, &payload[..1600], None));
    r.run();
    let out = r.out("a2");
    // What the receiver gets: the small segment first (staged before the super-frames, sent
    // before them), then the kernel's segments of each.
    assert_eq!(out.len(), 1 + 14 + 2);
    assert_eq!(out[0].len(), 54 + 100);
    let want: Vec<u8> = [&payload[..100], &payload, &payload[..1600]].concat();
    assert_eq!(reassembled(&out, 54, 1514), want);
    assert_eq!(r.port("a2").whole_sent, 2);
    assert!(r.out("a3").is_empty() && r.out("up").is_empty());
    assert_eq!(r.w.counters(a1).gso_segmented, 0);
    assert_eq!(r.w.counters(a1).gso_whole, 2);
    assert_eq!(r.w.counters(a1).rx_packets, 3);
    assert_eq!(r.w.counters(a2).tx_packets, 3);

    // To the trunk: the network's tag pushed in front of the IP header of every segment.
    let announce = build_frame(Mac::BROADCAST, VM3, Some(10), ETHERTYPE_IPV4, &[0; 46]);
    r.inject("up", announce);
    r.run();
    for p in ["a1", "a2", "a3"] {
        r.out(p);
    }
    r.inject("a1", partial_tcp(VM3, &payload, None));
    r.run();
    let out = r.out("up");
    assert_eq!(out.len(), 14);
    assert!(out.iter().all(|f| f[12..16] == [0x81, 0, 0, 10]));
    assert_eq!(reassembled(&out, 58, 1518), payload);
    assert_eq!(r.port("up").whole_sent, 1);

    // From the trunk: the tag popped.
    r.inject("up", partial_tcp(VM2, &payload, Some(10)));
    r.run();
    let out = r.out("a2");
    assert_eq!(out.len(), 14);
    assert_eq!(reassembled(&out, 54, 1514), payload);
    assert_eq!(r.port("a2").whole_sent, 3);

    // Towards a port that does not take them (a3), or from a port with a rate limit: cut here.
    r.learn("a3", VM3);
    r.inject("a1", partial_tcp(VM3, &payload, None));
    r.run();
    assert_eq!(reassembled(&r.out("a3"), 54, 1514), payload);
    let mut c = cfg();
    c.ports[0].policer = Some(crate::policer::PolicerConfig {
        bps: 1 << 40,
        ..Default::default()
    });
    r.apply(&c);
    r.inject("a1", partial_tcp(VM2, &payload, None));
    r.run();
    assert_eq!(reassembled(&r.out("a2"), 54, 1514), payload);
    assert_eq!(r.port("a2").whole_sent, 3);
    assert_eq!(r.w.counters(a1).gso_segmented, 2);
    assert_eq!(r.port("a2").stats().tx_invalid_descs, 0);
    r.check_accounting();
}

/// `payload` to `dst` as a guest without TSO sends it: segments of `mss` bytes (the IPv4
/// identification and the sequence number advancing, PSH on the last), their checksums complete.
pub(super) fn tcp_segments(dst: Mac, payload: &[u8], mss: usize) -> Vec<Vec<u8>> {
    let mut whole = partial_tcp(dst, payload, None);
    // The IPv4 header checksum, as a sender writes it.
    let sum = crate::csum::header_checksum(&whole[14..34]);
    whole[24..26].copy_from_slice(&sum.to_be_bytes());
    let plan = crate::gso::Plan::new(&whole, 54 + mss).unwrap();
    (0..plan.segments())
        .map(|k| {
            let mut f = vec![0; 54 + mss];
            let n = plan.write(&whole, k, &mut f).unwrap();
            f.truncate(n);
            crate::csum::complete_partial(&mut f);
            f
        })
        .collect()
}

#[test]
fn segments_of_one_flow_leave_merged_towards_a_port_that_takes_super_frames_in_order() {
    let wc = WorkerConfig {
        frames: 4096,
        ..WorkerConfig::default()
    };
    let mut r = Rig::ported(wc, &[], &["a2"]);
    r.learn("a2", VM2);
    r.learn("a3", VM3);
    let a2 = r.ports.get("a2").unwrap();
    let payload: Vec<u8> = (0..12_000u32).map(|i| (i % 247) as u8).collect();
    let segs = tcp_segments(VM2, &payload, 1000);
    assert_eq!(segs.len(), 12);
    let sent = r.w.counters(a2).tx_packets;
    // One batch (the fill ring's first 16 buffers): merged into one frame, which the port's
    // kernel cuts into the very segments.
    for f in &segs {
        r.inject("a1", f.clone());
    }
    r.run();
    let out = r.out("a2");
    assert_eq!(out, segs);
    assert_eq!(r.port("a2").whole_sent, 1);
    assert_eq!(r.w.counters(a2).coalesced, 12);
    assert_eq!(r.w.counters(a2).tx_packets, sent + 1);

    // A socket that refuses the merged frame for want of room (or a device that takes no GSO
    // frame): cut back into the same segments, nothing lost.
    r.port("a2").whole_error = Some(libc::ENOBUFS);
    for f in &segs {
        r.inject("a1", f.clone());
    }
    r.run();
    assert_eq!(r.out("a2"), segs);
    assert_eq!(r.port("a2").whole_sent, 1);
    assert_eq!(r.w.counters(a2).coalesced, 12);
    r.port("a2").whole_error = None;

    // A segment whose checksum is wrong is not merged: it leaves as it came, between the
    // merged frames before and after it, in order.
    let mut bad = segs.clone();
    bad[7][60] ^= 1;
    for f in &bad {
        r.inject("a1", f.clone());
    }
    r.run();
    assert_eq!(r.out("a2"), bad);
    assert_eq!(r.port("a2").whole_sent, 3);
    assert_eq!(r.w.counters(a2).coalesced, 12 + 11);

    // A segment of another flow between them ends the run; so does any other frame to the
    // port (here a pure ACK); towards a port without a packet socket nothing is merged.
    let mut other = segs[3].clone();
    other[34] ^= 1; // the source port
    crate::csum::complete_partial(&mut other);
    let mut ack = partial_tcp(VM2, &[], None);
    crate::csum::complete_partial(&mut ack);
    let mixed = vec![
        segs[0].clone(),
        segs[1].clone(),
        other,
        segs[2].clone(),
        ack,
        segs[3].clone(),
    ];
    for f in &mixed {
        r.inject("a1", f.clone());
    }
    r.run();
    assert_eq!(r.out("a2"), mixed);
    assert_eq!(r.w.counters(a2).coalesced, 12 + 11 + 2);
    for f in tcp_segments(VM3, &payload, 1000) {
        r.inject("a1", f);
    }
    r.run();
    assert_eq!(r.out("a3"), tcp_segments(VM3, &payload, 1000));
    assert_eq!(r.port("a3").whole_sent, 0);
    assert_eq!(r.w.counters(a2).coalesced, 12 + 11 + 2);
    r.check_accounting();

    // `coalesce_segments = false`: nothing merged.
    let wc = WorkerConfig {
        frames: 4096,
        coalesce_segments: false,
        ..WorkerConfig::default()
    };
    let mut r = Rig::ported(wc, &[], &["a2"]);
    r.learn("a2", VM2);
    for f in &segs {
        r.inject("a1", f.clone());
    }
    r.run();
    assert_eq!(r.out("a2"), segs);
    assert_eq!(r.port("a2").whole_sent, 0);
}

#[test]
fn a_super_frame_the_socket_refuses_or_queued_frames_hold_is_cut() {
    let wc = WorkerConfig {
        frames: 4096,
        ..WorkerConfig::default()
    };
    let mut r = Rig::ported(wc, &[], &["a2"]);
    r.learn("a2", VM2);
    let a1 = r.ports.get("a1").unwrap();
    let payload: Vec<u8> = (0..20_000u32).map(|i| (i % 241) as u8).collect();
    // A full socket buffer, or a device that takes no GSO frame (a veth both of whose ends run
    // a native XDP program says the same): cut, and never held against the port.
    for e in [libc::EAGAIN, libc::ENOBUFS] {
        r.port("a2").whole_error = Some(e);
        for _ in 0..10 {
            r.inject("a1", partial_tcp(VM2, &payload, None));
            r.run();
            assert_eq!(reassembled(&r.out("a2"), 54, 1514), payload);
        }
    }
    assert_eq!(r.w.counters(a1).drops[DropReason::NoBuffer as usize], 0);
    r.port("a2").whole_error = None;
    r.inject("a1", partial_tcp(VM2, &payload, None));
    r.run();
    assert_eq!(reassembled(&r.out("a2"), 54, 1514), payload);
    assert_eq!(r.port("a2").whole_sent, 1);
    let whole_before = r.port("a2").whole_sent;
    // Frames left on the TX ring after the kicks would leave after it: cut behind them.
    r.port("a2").whole_error = None;
    r.port("a2").undrained = true;
    r.inject("a1", partial_tcp(VM2, &payload, None));
    r.run();
    assert_eq!(reassembled(&r.out("a2"), 54, 1514), payload);
    r.port("a2").undrained = false;
    // A refusal of another kind: cut instead; after eight in a row, every later one is cut
    // without trying.
    r.port("a2").whole_error = Some(libc::EINVAL);
    for _ in 0..8 {
        r.inject("a1", partial_tcp(VM2, &payload, None));
        r.run();
        assert_eq!(reassembled(&r.out("a2"), 54, 1514), payload);
    }
    r.port("a2").whole_error = None;
    r.inject("a1", partial_tcp(VM2, &payload, None));
    r.run();
    assert_eq!(reassembled(&r.out("a2"), 54, 1514), payload);
    assert_eq!(r.port("a2").whole_sent, whole_before);
    let c = r.w.counters(a1);
    // Received: the twenty cut for want of room and the one sent whole, the one cut behind the
    // ring's frames and the eight refused once each (decided whole), the last as its 14
    // segments (cut from the start).
    assert_eq!(
        (c.gso_whole, c.gso_segmented, c.rx_packets),
        (1, 20 + 1 + 8 + 1, 20 + 1 + 1 + 8 + 14)
    );
    r.check_accounting();
}

#[test]
fn a_super_frame_is_cut_only_if_its_checksum_is_partial_or_correct() {
    let mut r = Rig::new(4096);
    r.learn("a2", VM2);
    let payload: Vec<u8> = (0..6000u32).map(|i| (i % 239) as u8).collect();
    let partial = partial_tcp(VM2, &payload, None);
    let mut correct = partial.clone();
    assert_eq!(
        crate::csum::complete_partial(&mut correct),
        crate::csum::Checksum::Completed
    );
    // The pseudo-header sum without the TCP length, as some NICs' TSO wants it (an emulated
    // e1000e's guest driver writes it so).
    let mut no_length = partial.clone();
    let field = u16::from_be_bytes([no_length[50], no_length[51]]);
    let len = (no_length.len() - 34) as u32;
    let mut sum = u32::from(field) + 0xffff - len;
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    no_length[50..52].copy_from_slice(&(sum as u16).to_be_bytes());
    // Corrupted after its checksum was computed: cut and finished afresh, its segments would
    // verify and hide the corruption.
    let mut corrupted = correct.clone();
    corrupted[3000] ^= 0x5a;
    let a1 = r.ports.get("a1").unwrap();
    for (what, f, cut) in [
        ("corrupted", corrupted, false),
        ("partial", partial, true),
        ("correct", correct, true),
        ("partial without the length", no_length, true),
    ] {
        let bad = r.w.counters(a1).drops[DropReason::BadChecksum as usize];
        r.inject("a1", f);
        r.run();
        let out = r.out("a2");
        assert_eq!(out.len(), if cut { 5 } else { 0 }, "{what}");
        assert!(
            out.iter().all(|s| crate::csum::verify(s) == Some(true)),
            "{what}"
        );
        let dropped = r.w.counters(a1).drops[DropReason::BadChecksum as usize] - bad;
        assert_eq!(dropped, u64::from(!cut), "{what}");
    }
    assert_eq!(r.w.counters(a1).gso_segmented, 3);
    assert_eq!(r.w.counters(a1).drops[DropReason::Oversize as usize], 0);
    r.check_accounting();
}

#[test]
fn counters_publish_to_the_shared_copy() {
    let mut r = Rig::new(4096);
    let shared = Arc::new(PortShared::default());
    let slot = r.ports.get("a1").unwrap();
    r.w.handle(
        Command::AddPort {
            slot,
            spec: MemSpec::default(),
            shared: Arc::clone(&shared),
        },
        Now::default(),
    );
    r.inject("a1", frame(Mac::BROADCAST, VM1));
    r.run();
    r.w.publish(Now::from_nanos(1));
    let s = shared.counters.read();
    assert_eq!(s.counters.rx_packets, 1);
    assert_eq!(s.counters.floods, 1);
}

#[test]
fn segments_never_exceed_the_mss_the_peer_announced() {
    let mut r = Rig::new(4096);
    // VM2 answers a SYN with MSS 1000 (a clamped path): the switch sees it go by.
    let mut tcp = vec![0u8; 24];
    tcp[12] = 6 << 4;
    tcp[13] = 0x12;
    tcp[20..24].copy_from_slice(&[2, 4, 0x03, 0xe8]);
    let mut ip = vec![
        0x45, 0, 0, 44, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1,
    ];
    ip.extend(tcp);
    r.inject("a2", build_frame(VM1, VM2, None, ETHERTYPE_IPV4, &ip));
    r.run();
    for p in ["a1", "a2", "a3", "b1", "up"] {
        r.out(p);
    }
    let payload: Vec<u8> = (0..10_000u32).map(|i| (i % 241) as u8).collect();
    r.inject("a1", partial_tcp(VM2, &payload, None));
    r.run();
    let out = r.out("a2");
    assert_eq!(out.len(), 10_000usize.div_ceil(1000));
    let mut joined = Vec::new();
    for f in &out {
        assert!(
            f.len() - 14 <= 1040,
            "an IP packet of {} bytes",
            f.len() - 14
        );
        assert_eq!(crate::csum::verify(f), Some(true));
        joined.extend_from_slice(&f[54..]);
    }
    assert_eq!(joined, payload);
    r.check_accounting();
}

/// Traffic that never pauses: the sweeper still runs (by the clock, every round), so MACs that
/// stopped sending are gone after the ageing time and new MACs are learned at the limit.
#[test]
fn entries_age_out_and_learning_goes_on_under_traffic_that_never_pauses() {
    let mut r = Rig::ageing_in_a_second(3);
    let (x, y, z) = (
        Mac([0x02, 0, 0, 0, 0, 0x0a]),
        Mac([0x02, 0, 0, 0, 0, 0x0b]),
        Mac([0x02, 0, 0, 0, 0, 0x0c]),
    );
    let a3 = r.ports.get("a3").unwrap();
    let round = |r: &mut Rig, ms: u64| {
        let t = Now::from_nanos(ms * 1_000_000);
        // VM1 on a1 sends in every round: the worker always finds work.
        r.inject("a1", frame(Mac::BROADCAST, VM1));
        assert!(r.w.round(t) > 0);
    };
    // X and Y (on a2) send once, at the start, then fall silent: with VM1, the limit is full.
    r.inject("a2", frame(Mac::BROADCAST, x));
    r.inject("a2", frame(Mac::BROADCAST, y));
    round(&mut r, 0);
    let net = r.nets.get("a").unwrap();
    let live = |r: &Rig, ms: u64| -> Vec<Mac> {
        let secs = u32::try_from(ms / 1000).unwrap();
        r.w.pipe
            .fdb
            .entries(net, secs)
            .iter()
            .map(|e| e.mac)
            .collect()
    };
    assert_eq!(live(&r, 0).len(), 3);
    // Z cannot be learned yet.
    r.inject("a3", frame(Mac::BROADCAST, z));
    round(&mut r, 1);
    assert_eq!(r.w.counters(a3).learn_limit, 1);
    // Past the ageing time, under traffic all along: X and Y are gone, and Z is learned.
    for ms in 2..=3_000 {
        round(&mut r, ms);
    }
    let now = live(&r, 3_000);
    assert!(
        now.contains(&VM1) && !now.contains(&x) && !now.contains(&y),
        "{now:?}"
    );
    r.inject("a3", frame(Mac::BROADCAST, z));
    round(&mut r, 3_001);
    assert_eq!(r.w.counters(a3).learn_limit, 1, "Z hit the limit again");
    assert!(live(&r, 3_001).contains(&z));
    r.check_accounting();
}

/// a2 and a3 filter with the default group's rules (members: `members`); a1 does not filter.
fn filtered_cfg(members: &[[u8; 4]]) -> SwitchConfig {
    use crate::acl::{AddrSet, PortFilter, Remote, Rule};
    use crate::security::IpPrefix;
    let rule = |remote| Rule::new(false, None, None, remote);
    let filter = Arc::new(PortFilter::new(
        vec![rule(Remote::Group(Arc::from("g")))],
        vec![rule(Remote::Any)],
    ));
    let mut c = cfg();
    for p in c.ports.iter_mut().filter(|p| p.id == "a2" || p.id == "a3") {
        p.filter = Some(Arc::clone(&filter));
    }
    let set = AddrSet::new(members.iter().map(|a| IpPrefix::host((*a).into())));
    c.address_sets = Arc::new([(Arc::from("g"), Arc::new(set))].into_iter().collect());
    c
}

#[test]
fn security_groups_filter_each_copy_and_count_on_the_refusing_port() {
    use crate::flow::build::{ipv4_packet, udp};
    use crate::wire::ipproto::UDP;
    const IP1: [u8; 4] = [198, 18, 0, 1];
    const IP2: [u8; 4] = [198, 18, 0, 2];
    const ALL: [u8; 4] = [198, 18, 0, 255];
    let datagram =
        |dst: Mac, src: Mac, (from, sport): ([u8; 4], u16), (to, dport): ([u8; 4], u16)| {
            let packet = ipv4_packet(from, to, UDP, &udp(sport, dport), 0, 1);
            build_frame(dst, src, None, ETHERTYPE_IPV4, &packet)
        };
    let slot = |r: &Rig, id: &str| r.ports.get(id).unwrap();
    let sg_in = |r: &Rig, id: &str| r.w.counters(slot(r, id)).drops[DropReason::SgIngress as usize];

    let mut r = Rig::new(4096);
    r.apply(&filtered_cfg(&[IP2]));
    // A broadcast from a1 (not a member): a2 and a3 refuse their copies, the trunk takes its.
    let bcast = datagram(Mac::BROADCAST, VM1, (IP1, 4000), (ALL, 5000));
    r.inject("a1", bcast.clone());
    r.run();
    assert!(r.out("a2").is_empty() && r.out("a3").is_empty());
    assert_eq!(r.out("up").len(), 1);
    assert_eq!(
        (sg_in(&r, "a2"), sg_in(&r, "a3"), sg_in(&r, "a1")),
        (1, 1, 0)
    );
    // From a2 (a member): a3 takes it, and so does a1, which does not filter.
    r.inject(
        "a2",
        datagram(Mac::BROADCAST, VM2, (IP2, 4000), (IP1, 5000)),
    );
    r.run();
    assert_eq!((r.out("a1").len(), r.out("a3").len()), (1, 1));
    // a1's answer is a reply of the connection a2 opened; another datagram is not.
    r.inject("a1", datagram(VM2, VM1, (IP1, 5001), (IP2, 4000)));
    r.run();
    assert!(r.out("a2").is_empty(), "not a reply: another port");
    r.inject("a1", datagram(VM2, VM1, (IP1, 5000), (IP2, 4000)));
    r.run();
    assert_eq!(r.out("a2").len(), 1);
    // Membership changes apply: a1's address joins the group.
    r.apply(&filtered_cfg(&[IP1, IP2]));
    r.inject("a1", bcast);
    r.run();
    assert_eq!((r.out("a2").len(), r.out("a3").len()), (1, 1));
    r.check_accounting();
}

#[test]
fn fill_rings_hold_no_more_than_max_queue_of_the_workers_measured_work() {
    let mut r = Rig::new(32768);
    let by_frames = r.w.fill_target;
    assert!(by_frames > 1000, "{by_frames}");
    // (busy ns, frames) since the last measure, and the depth it leaves.
    let steps = [
        (500_000, 999, by_frames),  // too few frames to measure yet
        (2_500_000, 1, 1666),       // 3 µs a frame over 1000: 5 ms are 1666 frames
        (100_000, 1000, by_frames), // 100 ns a frame: the frame bound is the smaller
        (1_000_000_000, 1000, 256), // 1 ms a frame: the floor
    ];
    for (busy, frames, depth) in steps {
        r.w.working_ns += busy;
        r.w.rx_total += frames;
        r.w.measure_cost(0);
        assert_eq!(r.w.fill_target, depth, "{busy} ns over {frames} frames");
    }
    let mut r = Rig::with(WorkerConfig {
        max_queue_ns: 0,
        ..WorkerConfig::default()
    });
    r.w.working_ns += 3_000_000;
    r.w.rx_total += 1000;
    r.w.measure_cost(0);
    assert!(r.w.fill_target > 1000, "no time bound: frames only");
}

#[test]
fn fill_rings_are_bounded_by_what_a_frame_costs_while_frames_wait() {
    let mut r = Rig::new(65536);
    let by_frames = r.w.fill_target;
    assert!(by_frames > 4000, "{by_frames}");
    // Rounds of one frame each (3 µs: a round's fixed work and a transmit call a frame).
    let light = |r: &mut Rig, rounds: u64| {
        (r.w.behind, r.w.held_back) = (false, false);
        for _ in 0..rounds {
            r.w.rx_total += 1;
            r.w.account_round(3_000, 1);
        }
    };
    // Rounds that left frames waiting, 64 frames each in `ns`.
    let full = |r: &mut Rig, rounds: u64, ns: u64| {
        (r.w.behind, r.w.held_back) = (true, false);
        for _ in 0..rounds {
            r.w.rx_total += 64;
            r.w.account_round(ns, 64);
        }
    };
    light(&mut r, 1000);
    r.w.measure_cost(0);
    assert_eq!(r.w.fill_target, 1666, "5 ms at 3 µs a frame");
    // Among more such rounds, rounds that left frames waiting, 64 frames in 80 µs: a full
    // ring drains at 1.25 µs a frame, so 5 ms of queue is 4000 frames (over every round, 1.59
    // µs a frame, 3138 frames). Measured as soon as 4096 such frames have passed.
    light(&mut r, 1000);
    full(&mut r, 63, 80_000);
    assert_eq!(r.w.fill_target, 1666, "4032 frames: not measured yet");
    full(&mut r, 1, 80_000);
    assert_eq!(r.w.fill_target, 4000, "5 ms at 1.25 µs a frame");
    // A stall of the thread in such a round is not the frames' cost.
    let queued = r.w.queued;
    r.w.account_round(5_000_000, 64);
    assert_eq!(r.w.queued, queued);
    // Nor are commands handled after a round (a snapshot adopted in half a millisecond): the
    // round's own 80 µs count, and the next round's are its own.
    let (working, busy) = (r.w.working_ns, r.w.busy_ns);
    r.w.commands_ns = 500_000;
    r.w.account_round(580_000, 64);
    assert_eq!(r.w.queued.ns - queued.ns, 80_000);
    assert_eq!(r.w.working_ns - working, 80_000);
    assert_eq!(r.w.busy_ns - busy, 580_000, "the commands kept it busy");
    r.w.account_round(80_000, 64);
    assert_eq!(r.w.queued.ns - queued.ns, 160_000);
    (r.w.queued, r.w.working_ns) = (queued, working);
    // Light rounds again do not make the ring shallower: the cost while frames waited stays.
    light(&mut r, 1000);
    r.w.measure_cost(1_000_000_000);
    assert_eq!(r.w.fill_target, 4000);
    // Rounds held back by a full TX ring take no frame, and the frames waiting on the receive
    // rings wait through them, whether the round found other work or not: 900 µs of them and
    // 4096 frames in 5.12 ms drain at 1.47 µs a frame.
    (r.w.behind, r.w.held_back) = (false, true);
    r.w.account_round(600_000, 0);
    r.w.account_idle_round(300_000);
    r.w.account_idle_round(2_000_000); // a stall
    full(&mut r, 64, 80_000);
    assert_eq!(r.w.fill_target, 3403, "5 ms at 1.47 µs a frame");
    // An idle round that was not held back is nobody's wait.
    r.w.held_back = false;
    let queued = r.w.queued;
    r.w.account_idle_round(300_000);
    assert_eq!(r.w.queued, queued);
    // A round is held back whether or not frames wait behind it: a window's held-back time
    // counts up to its frames' own, 20 ms of it with 4096 frames in 5.12 ms making 2.5 µs a
    // frame, not 6.1.
    r.w.held_back = true;
    for _ in 0..20 {
        r.w.account_idle_round(1_000_000);
    }
    full(&mut r, 64, 80_000);
    assert_eq!(r.w.fill_target, 2000, "5 ms at 2.5 µs a frame");
    // A queue whose frames cost more (3.125 µs) is bounded at that cost once measured.
    r.w.round_ns = 30_000_000_000;
    full(&mut r, 64, 200_000);
    assert_eq!(r.w.fill_target, 1600, "5 ms at 3.125 µs a frame");
    // That cost serves ten seconds; then the cost over every round stands in, as measured at
    // the last publication (the light rounds' 3 µs a frame).
    full(&mut r, 1, 900_000); // 64 dear frames begin a window
    light(&mut r, 1000);
    r.w.measure_cost(39_000_000_000);
    assert_eq!(r.w.fill_target, 1600, "within ten seconds");
    light(&mut r, 1000);
    r.w.measure_cost(41_000_000_000);
    assert_eq!(r.w.fill_target, 1666, "5 ms at 3 µs a frame");
    // The window the dear frames began is older than ten seconds: the next one begins afresh
    // (with them, 1.45 µs a frame, 3448 frames).
    r.w.round_ns = 41_000_000_000;
    full(&mut r, 64, 80_000);
    assert_eq!(r.w.fill_target, 4000, "5 ms at 1.25 µs a frame");
}

#[test]
fn a_round_of_the_sweeper_walks_a_share_of_a_large_table_not_thousands_of_slots() {
    let (mut r, counted) = Rig::with_200_expiring();
    assert_eq!(counted(&r), 200);
    // The first round after two seconds asleep walks 8 ms' share of the table (1 024 of 32 768
    // slots, 5 of the 200 entries' homes), not 8 192 (46 went before): nearly all still count.
    r.tick(2_000);
    let left = counted(&r);
    assert!(left >= 180, "{left} of 200 left after one round");
    r.check_accounting();
}

#[test]
fn a_table_of_32_768_slots_is_swept_whole_in_about_256_ms() {
    let (mut r, counted) = Rig::with_200_expiring();
    // A round every millisecond, nothing owed: 128 slots each. The entries expire at second 1.
    for _ in 0..999 {
        r.tick(1);
    }
    assert_eq!(counted(&r), 200);
    // Half a pass: about half of them gone.
    for _ in 0..128 {
        r.tick(1);
    }
    let left = counted(&r);
    assert!(
        (50..=150).contains(&left),
        "{left} of 200 left after 128 ms"
    );
    // The whole pass (and two rounds more: each removal looks at its slot again, from the
    // same budget): all.
    for _ in 0..130 {
        r.tick(1);
    }
    assert_eq!(counted(&r), 0);
    r.check_accounting();
}

#[test]
fn an_idle_worker_pays_its_sweep_a_part_at_a_time_sleeping_a_millisecond_between() {
    let (mut r, counted) = Rig::with_200_expiring();
    let now = |r: &Rig| Now::from_nanos(r.clock);
    // Two seconds asleep: the waking round pays 8 ms' share, the rest of a pass of the table
    // (32 768 slots, 128 a millisecond: 256 ms) is owed, not of 800 ms (three passes).
    r.tick(2_000);
    assert!(counted(&r) >= 180);
    assert_eq!(r.w.sweep_debt, 256 - 8);
    // Paid before the worker sleeps again, a part of 16 384 slots (128 ms' share, half the
    // table) at a time, holding the table's writer lock no longer.
    assert!(!r.w.pay_debts(now(&r)));
    let left = counted(&r);
    assert!(
        (50..=150).contains(&left),
        "{left} of 200 left after a part"
    );
    assert_eq!(r.w.sweep_debt, 256 - 8 - 128);
    // The rest a millisecond later, the worker sleeping a millisecond, not its usual 100 ms;
    // not at once, even if asked.
    assert_eq!(r.w.sleep_ns(now(&r), false), 1_000_000);
    r.w.pay_debts(now(&r));
    assert_eq!(r.w.sweep_debt, 256 - 8 - 128);
    r.clock += 1_000_000;
    r.w.pay_debts(now(&r));
    assert_eq!(r.w.sweep_debt, 0);
    assert_eq!(r.w.sleep_ns(now(&r), false), r.w.cfg.idle_sleep_ns);
    // (Each removal looks at its slot again, from the same budget: the pass stops a slot short
    // for each of the 200, and an entry or so there waits for the next round's share.)
    assert!(counted(&r) <= 2, "{} left", counted(&r));
    r.tick(2);
    assert_eq!(counted(&r), 0);
    r.check_accounting();
}

#[test]
fn a_payment_walks_at_most_16_384_slots_or_8_ms_share() {
    // Up to 102 400 slots, 128 a millisecond: 128 ms' share. Larger: fewer milliseconds.
    assert_eq!(pay_ms(4_096), 128);
    assert_eq!(pay_ms(102_400), 128);
    let m = 1 << 20;
    assert_eq!(pay_ms(m), 12);
    assert!(sweep_share(m, pay_ms(m)) <= PAY_SLOTS);
    // A table so large that 8 ms' share is more: 8 ms, as a round pays while frames flow.
    assert_eq!(pay_ms(1 << 24), 8);
}

#[test]
fn a_round_that_leaves_frames_waiting_is_behind() {
    let mut r = Rig::knowing_vm2_and_vm3();
    for _ in 0..100 {
        r.inject("a1", frame(VM2, VM1));
    }
    r.w.poll(Now::default());
    assert!(r.w.behind, "a full batch taken: more may wait");
    assert_eq!(r.out("a2").len(), MAX_BATCH);
    r.w.poll(Now::default());
    assert!(!r.w.behind, "the rest taken: nothing waits");
    assert_eq!(r.out("a2").len(), 100 - MAX_BATCH);
    r.w.poll(Now::default());
    assert!(!r.w.behind, "nothing came");
    // Exactly a batch: the round cannot tell that nothing is left (it is counted behind), the
    // next can.
    for _ in 0..MAX_BATCH {
        r.inject("a1", frame(VM2, VM1));
    }
    r.w.poll(Now::default());
    assert!(r.w.behind);
    r.w.poll(Now::default());
    assert!(!r.w.behind);
    r.check_accounting();
}

/// An ARP request from `sha`/`spa` for `tpa`, broadcast.
fn arp_request(sha: Mac, spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut body = vec![0, 1, 0x08, 0x00, 6, 4, 0, 1];
    body.extend_from_slice(&sha.0);
    body.extend_from_slice(&spa);
    body.extend_from_slice(&[0; 6]);
    body.extend_from_slice(&tpa);
    body.resize(46, 0);
    build_frame(Mac::BROADCAST, sha, None, 0x0806, &body)
}

/// The advertisement of a port on one SLAAC subnet.
pub(super) fn slaac(vm: Mac, prefix: &str, mtu: u32) -> Arc<crate::ra::RaConfig> {
    Arc::new(crate::ra::RaConfig {
        client_mac: vm,
        prefixes: vec![prefix.parse().unwrap()],
        on_link: Vec::new(),
        managed: false,
        other: false,
        mtu,
        dns: vec![],
        router_mac: crate::dhcp::SERVER_MAC,
    })
}

#[test]
fn router_solicitations_of_slaac_ports_are_answered_by_the_switch() {
    let mut c = cfg();
    c.ports[0].ra = Some(slaac(VM1, "2001:db8:1::", 1500));
    let mut r = Rig::new(4096);
    r.apply(&c);
    r.tick(1);
    // The snapshot gave a1 an advertisement: its VM is told within the millisecond, to all
    // nodes in a frame to its MAC, on a1 alone.
    let told = r.only_frame_to("a1", VM1, "unsolicited advertisement");
    assert_eq!(told[14 + 40], 134, "a router advertisement");
    // The same advertisement again: nothing new to tell.
    r.apply(&c);
    r.tick(1);
    assert!(r.out("a1").is_empty());
    let slot = r.ports.get("a1").unwrap();
    assert_eq!(r.w.counters(slot).ra_replies, 1);
    let solicitation = |mac: Mac| {
        let mut f = vec![0x33, 0x33, 0, 0, 0, 2];
        f.extend_from_slice(&mac.0);
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 8, 58, 255]);
        f.extend_from_slice(&crate::ra::link_local(mac).octets());
        f.extend_from_slice(&[0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend_from_slice(&[133, 0, 0, 0, 0, 0, 0, 0]);
        f
    };
    r.inject("a1", solicitation(VM1));
    r.run();
    let answers = r.out("a1");
    assert_eq!(answers.len(), 1, "one advertisement, back to the asker");
    assert_eq!(&answers[0][0..6], &VM1.0);
    assert_eq!(answers[0][14 + 40], 134, "a router advertisement");
    // The solicitation floods as any multicast: a router on the network hears it too.
    for p in ["a2", "a3", "up"] {
        assert_eq!(r.out(p).len(), 1, "{p} did not get the solicitation");
    }
    assert!(r.out("b1").is_empty(), "another network saw it");
    assert_eq!(r.w.counters(slot).ra_replies, 2);
    // A port without SLAAC subnets: its solicitation is switched as any multicast.
    r.inject("a2", solicitation(VM2));
    r.run();
    assert!(r.out("a2").is_empty());
    assert_eq!(r.out("a1").len(), 1, "flooded");
    // A DNS server added (or the MTU, a prefix): the VM, which will not solicit again, is told.
    let mut changed = (**c.ports[0].ra.as_ref().unwrap()).clone();
    changed.dns.push("2001:db8::53".parse().unwrap());
    c.ports[0].ra = Some(Arc::new(changed));
    r.apply(&c);
    r.tick(1);
    let told = r.out("a1");
    assert_eq!(told.len(), 1);
    assert!(
        told[0].len() > answers[0].len(),
        "the advertisement carries the DNS server"
    );
    // Three in all, 4 s apart, in case one is lost: the VM will not ask.
    r.tick(3_000);
    assert!(r.out("a1").is_empty(), "not before 4 s");
    for _ in 0..2 {
        r.tick(1_000);
        assert_eq!(r.out("a1"), told);
        r.tick(3_000);
    }
    r.tick(10_000);
    assert!(r.out("a1").is_empty(), "three only");
    assert_eq!(r.w.counters(slot).ra_replies, 5);
    r.check_accounting();
}

#[test]
fn a_port_that_starts_forwarding_tells_its_vm_its_advertisement() {
    let mut c = cfg();
    c.ports[1].ra = Some(slaac(VM2, "2001:db8:2::", 1400));
    let mut r = Rig::new(4096);
    let slot = r.ports.get("a2").unwrap();
    r.w.handle(Command::RemovePort { slot }, Now::default());
    r.apply(&c);
    r.tick(1);
    open_mem_port(&mut r.w, slot);
    r.tick(1);
    let told = r.out("a2");
    assert_eq!(told.len(), 1, "told as it starts");
    assert_eq!(&told[0][0..6], &VM2.0);
    assert_eq!(r.w.counters(slot).ra_replies, 1);
    for p in ["a1", "a3", "b1", "up"] {
        assert!(r.out(p).is_empty(), "{p} was told");
    }
    // Down, it is told nothing (the plan's other copies are dropped); up again, it is told
    // anew: its VM's solicitations meanwhile went nowhere.
    c.ports[1].admin_up = false;
    r.apply(&c);
    r.tick(4_001);
    assert!(r.out("a2").is_empty());
    c.ports[1].admin_up = true;
    r.apply(&c);
    r.tick(1);
    assert_eq!(r.out("a2"), told);
    // Its advertisement taken away: nothing more is sent.
    c.ports[1].ra = None;
    r.apply(&c);
    r.tick(4_001);
    assert!(r.out("a2").is_empty());
    assert_eq!(r.w.counters(slot).ra_replies, 2);
    r.check_accounting();
}

#[test]
fn an_idle_worker_wakes_for_its_planned_router_advertisements() {
    let mut c = cfg();
    c.ports[0].ra = Some(slaac(VM1, "2001:db8:1::", 1500));
    let mut r = Rig::new(4096);
    let idle = r.w.cfg.idle_sleep_ns;
    assert!(idle > 30_000_000);
    assert_eq!(r.w.sleep_ns(Now::from_nanos(r.clock), false), idle);
    // The snapshot gives a1 an advertisement, due at once: the worker sleeps no longer than
    // the housekeeping's millisecond.
    r.apply(&c);
    assert_eq!(r.w.sleep_ns(Now::from_nanos(r.clock), false), 1_000_000);
    r.tick(1);
    r.only_frame_to("a1", VM1, "unsolicited advertisement");
    // The next copy is 4 s away: the usual sleep, until the copy is nearer than that.
    assert_eq!(r.w.sleep_ns(Now::from_nanos(r.clock), false), idle);
    for copy in 2..=RA_COPIES {
        r.clock += RA_INTERVAL_NS - 30_000_000;
        assert_eq!(r.w.sleep_ns(Now::from_nanos(r.clock), false), 30_000_000);
        // Past a ring that does not drain too, once the copy is nearer than the kick's 10 ms.
        r.clock += 25_000_000;
        assert_eq!(r.w.sleep_ns(Now::from_nanos(r.clock), true), 5_000_000);
        r.tick(5);
        r.only_frame_to("a1", VM1, &format!("copy {copy}"));
        // (The sweep the clock's jump left owed, a pass of this small table, is paid at once
        // before the worker sleeps.)
        r.w.pay_debts(Now::from_nanos(r.clock));
        assert_eq!(r.w.sweep_debt, 0);
    }
    // All sent: nothing more to wake for, even when the next copy would have been due.
    assert_eq!(r.w.sleep_ns(Now::from_nanos(r.clock), false), idle);
    r.clock += RA_INTERVAL_NS;
    assert_eq!(r.w.sleep_ns(Now::from_nanos(r.clock), false), idle);
    r.check_accounting();
}

#[test]
fn dhcpv6_messages_of_a_ports_client_are_answered_and_never_flood() {
    let mut c = cfg();
    c.ports[0].dhcp6 = Some(Arc::new(crate::dhcp6::Dhcp6Config {
        client_mac: VM1,
        addresses: Vec::new(),
        dns: vec!["2001:db8::53".parse().unwrap()],
        lease_secs: 3600,
        server_mac: crate::dhcp::SERVER_MAC,
    }));
    let mut r = Rig::new(4096);
    r.apply(&c);
    // An information request, from the client's link-local address to ff02::1:2.
    let request = |mac: Mac| {
        let mut f = vec![0x33, 0x33, 0, 1, 0, 2];
        f.extend_from_slice(&mac.0);
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 12, 17, 1]);
        f.extend_from_slice(&crate::ra::link_local(mac).octets());
        f.extend_from_slice(&[0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2]);
        f.extend_from_slice(&[2, 34, 2, 35, 0, 12, 0, 0]);
        f.extend_from_slice(&[11, 1, 2, 3]);
        f
    };
    r.inject("a1", request(VM1));
    r.run();
    let answer = r.only_frame_to("a1", VM1, "reply, back to the asker");
    assert_eq!(answer[14 + 48], 7, "a DHCPv6 reply");
    let slot = r.ports.get("a1").unwrap();
    assert_eq!(r.w.counters(slot).dhcp_replies, 1);
    // A port without DHCPv6: its message is switched as any multicast.
    r.inject("a2", request(VM2));
    r.run();
    assert_eq!(r.out("a1").len(), 1, "flooded");
    r.check_accounting();
}

#[test]
fn arp_requests_for_known_addresses_are_answered_by_the_switch() {
    const A2: [u8; 4] = [198, 18, 0, 2];
    let mut c = cfg();
    c.ports[1].arp = vec![(VM2, A2.into())];
    // b1, on another network, holds the same address: never answered across networks.
    c.ports[3].arp = vec![(Mac([0x02, 0, 0, 0, 0, 4]), [198, 18, 0, 9].into())];
    let mut r = Rig::new(4096);
    r.apply(&c);
    let ask = arp_request(VM1, [198, 18, 0, 1], A2);
    r.inject("a1", ask.clone());
    r.run();
    let reply = r.only_frame_to("a1", VM1, "reply, back to the asker");
    assert_eq!(&reply[6..12], &VM2.0, "from the owner's MAC");
    assert_eq!(&reply[20..22], &[0, 2], "a reply");
    assert_eq!(&reply[22..28], &VM2.0);
    assert_eq!(&reply[28..32], &A2);
    assert_eq!(&reply[32..38], &VM1.0);
    assert_eq!(&reply[38..42], &[198, 18, 0, 1]);
    let slot = r.ports.get("a1").unwrap();
    assert_eq!(r.w.counters(slot).arp_replies, 1);

    // Switched as before: an unknown address, the asker's own (a probe), another network's,
    // and an announcement (sender and target the same).
    for (from, mac, spa, tpa) in [
        ("a1", VM1, [198, 18, 0, 1], [198, 18, 0, 7]),
        ("a2", VM2, [0, 0, 0, 0], A2),
        ("a1", VM1, [198, 18, 0, 1], [198, 18, 0, 9]),
        ("a1", VM1, A2, A2),
    ] {
        r.inject(from, arp_request(mac, spa, tpa));
        r.run();
        assert!(r.out(from).is_empty(), "{tpa:?} answered");
        assert_eq!(r.out("a3").len(), 1, "{tpa:?} not flooded");
        for p in ["a1", "a2", "b1", "up"] {
            r.out(p);
        }
    }
    assert_eq!(r.w.counters(slot).arp_replies, 1);

    // Another port's address pair covering the address (a VRRP address): its holder answers.
    let a3 = Mac([0x02, 0, 0, 0, 0, 3]);
    c.ports[2].security = Some(crate::security::PortSecurity {
        mac: a3,
        fixed_ips: vec![],
        allowed_pairs: vec![(a3, crate::security::IpPrefix::parse("198.18.0.0/30"))],
    });
    r.apply(&c);
    r.inject("a1", ask);
    r.run();
    assert!(r.out("a1").is_empty(), "answered for a movable address");
    assert_eq!(r.out("a3").len(), 1, "flooded to the pair's holder");
    r.check_accounting();
}

/// A port adopted while its slot's previous port is still releasing its sockets (its chunks
/// buried) waits aside, and starts once the housekeeping finds the slot free; a port removed
/// meanwhile never starts.
#[test]
fn a_port_whose_slot_is_still_held_starts_once_the_slot_is_released() {
    let mut r = Rig::new(1024);
    let slot = r.ports.get("a1").unwrap();
    let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
    r.w.handle(Command::RemovePort { slot }, Now::default());
    r.w.umem.bury(slot, Arc::clone(&released));
    let shared = Arc::new(PortShared::default());
    let spec = MemSpec {
        capture: true,
        tx_size: 256,
        tx_checksum: false,
        whole: false,
        direct: false,
        shortcut_ifindex: None,
    };
    let open = |w: &mut Worker<MemPort>, shared: &Arc<PortShared>| {
        w.handle(
            Command::AddPort {
                slot,
                spec: spec.clone(),
                shared: Arc::clone(shared),
            },
            Now::default(),
        );
    };
    open(&mut r.w, &shared);
    let mut t = 0;
    let mut tick = |w: &mut Worker<MemPort>| {
        t += 2_000_000;
        w.round(Now::from_nanos(t));
    };
    tick(&mut r.w);
    assert_eq!(shared.state(), LinkState::Closed, "started on a held slot");
    assert!(r.w.port_mut(slot).is_none());
    released.store(true, std::sync::atomic::Ordering::Release);
    tick(&mut r.w);
    assert_eq!(shared.state(), LinkState::Up);
    r.inject("a2", frame(Mac::BROADCAST, VM2));
    r.run();
    assert_eq!(r.out("a1"), vec![frame(Mac::BROADCAST, VM2)]);

    // Removed while waiting: closed, never started.
    let again = Arc::new(std::sync::atomic::AtomicBool::new(false));
    r.w.handle(Command::RemovePort { slot }, Now::default());
    r.w.umem.bury(slot, Arc::clone(&again));
    let second = Arc::new(PortShared::default());
    open(&mut r.w, &second);
    r.w.handle(Command::RemovePort { slot }, Now::default());
    again.store(true, std::sync::atomic::Ordering::Release);
    tick(&mut r.w);
    assert_eq!(second.state(), LinkState::Closed);
    assert!(r.w.port_mut(slot).is_none());
    r.check_accounting();
}

/// A second open request for a port that is open, and fails (its queues are the open port's),
/// leaves the open port forwarding and its state as it was.
#[test]
fn a_failed_redundant_open_leaves_the_open_port_alone() {
    let mut r = Rig::new(1024);
    let slot = r.ports.get("a1").unwrap();
    let shared = Arc::new(PortShared::default());
    let open = |w: &mut Worker<MemPort>, opened: io::Result<MemPort>| {
        w.handle(
            Command::Adopt {
                slot,
                opened,
                shared: Arc::clone(&shared),
            },
            Now::default(),
        );
    };
    let spec = MemSpec {
        capture: true,
        tx_size: 256,
        tx_checksum: false,
        whole: false,
        direct: false,
        shortcut_ifindex: None,
    };
    let port = MemPort::open(&spec, slot, &r.w.region()).unwrap();
    open(&mut r.w, Ok(port));
    assert_eq!(shared.state(), LinkState::Up);
    let busy = io::Error::new(io::ErrorKind::ResourceBusy, "queue busy");
    open(&mut r.w, Err(busy));
    assert_eq!(shared.state(), LinkState::Up, "{:?}", shared.error());
    r.inject("a2", frame(Mac::BROADCAST, VM2));
    r.run();
    assert_eq!(r.out("a1"), vec![frame(Mac::BROADCAST, VM2)]);
    // Another port's failure in the slot closes what was there and is reported.
    let other = Arc::new(PortShared::default());
    r.w.handle(
        Command::Adopt {
            slot,
            opened: Err(io::Error::other("no such device")),
            shared: Arc::clone(&other),
        },
        Now::default(),
    );
    assert_eq!(other.state(), LinkState::OpenFailed);
    assert_eq!(shared.state(), LinkState::Closed);
    assert!(r.w.port_mut(slot).is_none());
    r.check_accounting();
}

// The XDP shortcut's worker side ([`crate::shortcut`]): what a worker installs, withdraws and
// refreshes. The maps are real (root); port a1 is the loopback interface, so that the kernel can
// run the real program on frames "received" there (`BPF_PROG_TEST_RUN`), the others have
// made-up interface indexes (no frame is ever sent to them).

/// The loopback interface: the kernel runs test programs on it.
const LO: u32 = 1;

/// A rig whose ports report a shortcut program: a1 on the loopback interface, the others on
/// interfaces 1000 + slot. Its program, on a map of no sockets.
/// None where the maps cannot be made (not root).
fn shortcut_rig(aging_secs: u32) -> Option<(Rig, Arc<Shortcut>, OwnedFd, OwnedFd)> {
    let sc = Arc::new(crate::shortcut::for_tests()?);
    let wc = WorkerConfig {
        frames: 4096,
        aging_secs,
        shortcut: Some(Arc::clone(&sc)),
        ..WorkerConfig::default()
    };
    let r = Rig::opened(wc, |w, id, slot| {
        let ifindex = if id == "a1" {
            LO
        } else {
            1000 + u32::from(slot)
        };
        w.handle(
            Command::AddPort {
                slot,
                spec: MemSpec {
                    capture: true,
                    tx_size: 256,
                    shortcut_ifindex: Some(ifindex),
                    ..MemSpec::default()
                },
                shared: Arc::new(PortShared::default()),
            },
            Now::default(),
        );
    });
    let xsks = crate::sys::bpf::create_xskmap(1).unwrap();
    let prog = sc
        .load_program(&xsks)
        .expect("the verifier takes the program");
    Some((r, sc, prog, xsks))
}

/// [`shortcut_rig`] with VM2 learned on a2 and the entry for VM1's frames from a1 to VM2
/// installed (by the worker, forwarding one).
fn installed_rig(aging_secs: u32) -> Option<(Rig, Arc<Shortcut>, OwnedFd, OwnedFd)> {
    let (mut r, sc, prog, xsks) = shortcut_rig(aging_secs)?;
    r.learn("a2", VM2);
    r.inject("a1", udp(VM2, VM1));
    r.round_now();
    assert_eq!(r.out("a2"), vec![udp(VM2, VM1)], "forwarded as before");
    assert_eq!(sc.hits(&a1_key(VM2)).unwrap(), Some(0), "and installed");
    Some((r, sc, prog, xsks))
}

/// A UDP datagram from `src` (198.18.0.1) to `dst` (198.18.0.2), as the program takes it.
fn udp(dst: Mac, src: Mac) -> Vec<u8> {
    let mut ip = vec![
        0x45, 0, 0, 48, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
    ];
    ip.extend_from_slice(&[0x9c, 0x40, 0x13, 0x89, 0, 28, 0, 0]);
    ip.resize(48, 0x5a);
    build_frame(dst, src, None, ETHERTYPE_IPV4, &ip)
}

/// VM2's address: 198.18.0.2.
const VM2_IP: [u8; 4] = [198, 18, 0, 2];

fn a1_key(dst: Mac) -> crate::shortcut::Key {
    crate::shortcut::Key {
        ingress: LO,
        dst,
        src: VM1,
    }
}

impl Rig {
    /// Runs a round at the rig's clock: the shortcut's checks run at the start of rounds,
    /// before the frames' lookups.
    fn round_now(&mut self) {
        self.w.round(Now::from_nanos(self.clock));
    }

    /// As [`Rig::learn`], from the broadcast `frame`.
    fn learn_from(&mut self, id: &str, frame: Vec<u8>) {
        self.inject(id, frame);
        self.round_now();
        for p in ["a1", "a2", "a3", "b1", "up"] {
            self.out(p);
        }
    }
}

#[test]
fn known_unicast_between_plain_ports_gets_a_shortcut_entry() {
    let Some((mut r, sc, _prog, _xsks)) = installed_rig(300) else {
        return;
    };
    // Unknown unicast floods, and gets no entry; nor does a broadcast.
    r.inject("a1", udp(Mac([0x02, 0, 0, 0, 0, 3]), VM1));
    r.inject("a1", udp(Mac::BROADCAST, VM1));
    r.round_now();
    assert_eq!(sc.hits(&a1_key(Mac([0x02, 0, 0, 0, 0, 3]))).unwrap(), None);
    assert_eq!(sc.hits(&a1_key(Mac::BROADCAST)).unwrap(), None);
    assert_eq!(r.w.stats().read().shortcut_installed, 0, "published later");
    r.tick(200);
    let s = r.w.stats().read();
    assert_eq!((s.shortcut_entries, s.shortcut_installed), (1, 1));
    r.check_accounting();
}

#[test]
fn ports_with_rules_get_no_shortcut_entry() {
    use crate::security::PortSecurity;
    type Change = fn(&mut SwitchConfig);
    let changes: [(&str, Change); 5] = [
        ("port security on the sender", |c| {
            c.ports[0].security = Some(PortSecurity {
                mac: VM1,
                fixed_ips: vec![[198, 18, 0, 1].into()],
                ..Default::default()
            });
        }),
        ("port security on the receiver", |c| {
            c.ports[1].security = Some(PortSecurity {
                mac: VM2,
                fixed_ips: vec![VM2_IP.into()],
                ..Default::default()
            });
        }),
        ("a rate limit on the sender", |c| {
            c.ports[0].policer = Some(crate::policer::PolicerConfig {
                bps: 1 << 40,
                ..Default::default()
            });
        }),
        ("a receive limit on the receiver", |c| {
            c.ports[1].policer_in = Some(crate::policer::PolicerConfig {
                bps: 1 << 40,
                ..Default::default()
            });
        }),
        ("security groups in the network", |c| {
            *c = filtered_cfg(&[]);
            c.ports[1].filter = None;
        }),
    ];
    for (what, change) in changes {
        let Some((mut r, sc, _prog, _xsks)) = shortcut_rig(300) else {
            return;
        };
        let mut c = cfg();
        change(&mut c);
        r.apply(&c);
        // Learned from a datagram VM2 may send (its port may check it).
        let mut from_vm2 = udp(Mac::BROADCAST, VM2);
        from_vm2[26..30].copy_from_slice(&VM2_IP);
        r.learn_from("a2", from_vm2);
        r.inject("a1", udp(VM2, VM1));
        r.round_now();
        assert_eq!(r.out("a2").len(), 1, "{what}: forwarded");
        assert_eq!(sc.hits(&a1_key(VM2)).unwrap(), None, "{what}: no entry");
    }
}

#[test]
fn entries_to_a_port_another_worker_moved_to_another_network_go_at_the_next_round() {
    let Some((mut r, sc, _prog, _xsks)) = installed_rig(300) else {
        return;
    };
    let a2 = r.ports.get("a2").unwrap();
    let net = |r: &Rig, id: &str| {
        let n = r.nets.get(id).unwrap();
        (
            n,
            r.w.snap.net(n).unwrap().gen,
            r.w.snap.port(a2).unwrap().gen,
        )
    };
    assert_eq!(sc.net(a2), Some(net(&r, "a")), "recorded as a2 opened");
    // a2's worker (another, as it may be) adopts a snapshot that makes a2 a port of network b,
    // which this worker has not adopted yet: its entry towards a2 goes at its next round.
    sc.set_net(a2, Some(net(&r, "b")));
    r.round_now();
    assert_eq!(sc.hits(&a1_key(VM2)).unwrap(), None, "withdrawn");
    r.inject("a1", udp(VM2, VM1));
    r.round_now();
    assert_eq!(
        r.out("a2"),
        vec![udp(VM2, VM1)],
        "this worker's snapshot decides"
    );
    assert_eq!(sc.hits(&a1_key(VM2)).unwrap(), None, "not installed again");
    // This worker adopts a snapshot (the same as before): a2's network recorded as it gives it.
    r.apply(&cfg());
    assert_eq!(sc.net(a2), Some(net(&r, "a")));
    r.check_accounting();
}

#[test]
fn entries_go_when_the_mac_table_or_the_snapshot_changes() {
    let Some((mut r, sc, _prog, _xsks)) = installed_rig(300) else {
        return;
    };
    // VM2 moves to a3: the entry towards a2 goes before the next round's frames.
    r.learn("a3", VM2);
    r.round_now();
    assert_eq!(sc.hits(&a1_key(VM2)).unwrap(), None, "withdrawn on a move");
    r.inject("a1", udp(VM2, VM1));
    r.round_now();
    assert_eq!(r.out("a3"), vec![udp(VM2, VM1)]);
    assert_eq!(
        sc.hits(&a1_key(VM2)).unwrap(),
        Some(0),
        "installed again, to a3"
    );
    // A snapshot that leaves both ports as they were keeps it; one that limits a1's rate
    // withdraws it.
    r.apply(&cfg());
    r.round_now();
    assert_eq!(sc.hits(&a1_key(VM2)).unwrap(), Some(0), "kept");
    let mut limited = cfg();
    limited.ports[0].policer = Some(crate::policer::PolicerConfig {
        bps: 1 << 40,
        ..Default::default()
    });
    r.apply(&limited);
    assert_eq!(
        sc.hits(&a1_key(VM2)).unwrap(),
        None,
        "withdrawn: a1 is limited"
    );
    // Plain again, installed again; then the egress port closes: withdrawn at the next round.
    r.apply(&cfg());
    r.inject("a1", udp(VM2, VM1));
    r.round_now();
    assert_eq!(r.out("a3").len(), 1);
    assert_eq!(sc.hits(&a1_key(VM2)).unwrap(), Some(0));
    let a3 = r.ports.get("a3").unwrap();
    assert!(sc.ifindex(a3).is_some());
    r.w.handle(Command::RemovePort { slot: a3 }, Now::default());
    assert_eq!(sc.ifindex(a3), None);
    r.round_now();
    assert_eq!(sc.hits(&a1_key(VM2)).unwrap(), None, "withdrawn: a3 closed");
    r.tick(200);
    let s = r.w.stats().read();
    assert_eq!((s.shortcut_installed, s.shortcut_withdrawn), (3, 3));
    r.check_accounting();
}

/// An address no shortcut entry uses.
const ELSEWHERE: Mac = Mac([0x02, 0, 0, 0, 0, 9]);

/// What a worker checks its shortcut entries against, no port rate-limited, at second `secs`:
/// for tests that hand `Fast` a view of the table other than its worker's, or another second.
fn unpoliced<'a>(
    fdb: &'a crate::fdb::MacTable,
    snap: &'a crate::config::Snapshot,
    secs: u32,
) -> fast::Basis<'a, impl Fn(u16) -> bool> {
    fast::Basis {
        fdb,
        snap,
        policed: |_| false,
        secs,
        largest: WorkerConfig::default().chunk_size - crate::sys::umem::KERNEL_HEADROOM,
    }
}

/// Shortcut entries the worker has checked against the table and the snapshot.
fn checked(r: &Rig) -> u64 {
    r.w.fast.as_ref().unwrap().checked.get()
}

#[test]
fn a_change_of_the_mac_table_checks_the_entries_of_the_addresses_it_changed() {
    let Some((mut r, sc, _prog, _xsks)) = installed_rig(300) else {
        return;
    };
    r.learn("a3", VM3);
    r.inject("a1", udp(VM3, VM1));
    r.round_now();
    assert_eq!(r.out("a3").len(), 1);
    assert_eq!(sc.hits(&a1_key(VM3)).unwrap(), Some(0), "a second entry");
    // An address no entry has moves: no entry is checked.
    r.learn("a2", ELSEWHERE);
    let before = checked(&r);
    r.learn("a3", ELSEWHERE);
    r.round_now();
    assert_eq!(checked(&r), before, "no entry of the address that moved");
    // VM3 moves to a2: its entry alone is checked, and withdrawn.
    r.learn("a2", VM3);
    r.round_now();
    assert_eq!(checked(&r) - before, 1);
    assert_eq!(sc.hits(&a1_key(VM3)).unwrap(), None, "withdrawn");
    assert_eq!(sc.hits(&a1_key(VM2)).unwrap(), Some(0), "the other kept");
    // Installed again (to a2); then VM1, the source of both, moves: both checked, both gone.
    r.inject("a1", udp(VM3, VM1));
    r.round_now();
    assert_eq!(sc.hits(&a1_key(VM3)).unwrap(), Some(0));
    let before = checked(&r);
    r.learn("a3", VM1);
    r.round_now();
    assert_eq!(checked(&r) - before, 2);
    assert_eq!(sc.hits(&a1_key(VM2)).unwrap(), None);
    assert_eq!(sc.hits(&a1_key(VM3)).unwrap(), None);
    r.check_accounting();
}

#[test]
fn every_entry_is_checked_when_the_table_cannot_tell_which_addresses_changed() {
    let Some((mut r, sc, _prog, _xsks)) = installed_rig(300) else {
        return;
    };
    // A new aging time may expire any address.
    let before = checked(&r);
    r.w.pipeline().fdb.set_aging_secs(300);
    r.round_now();
    assert_eq!(checked(&r) - before, 1);
    // Between two rounds, as many moves of an address no entry uses as the table tells: none
    // checked; one more: which addresses they were is lost, and every entry is checked.
    r.learn("a2", ELSEWHERE);
    r.learn("a3", ELSEWHERE);
    r.round_now();
    let net = r.nets.get("a").unwrap();
    let (a2, a3) = {
        let fdb = &r.w.pipeline().fdb;
        (
            fdb.lookup(net, VM2, 0).unwrap(),
            fdb.lookup(net, ELSEWHERE, 0).unwrap(),
        )
    };
    for (moves, expect) in [
        (crate::fdb::CHANGES_TOLD, 0),
        (crate::fdb::CHANGES_TOLD + 1, 1),
    ] {
        let fdb = &r.w.pipeline().fdb;
        for i in 0..moves {
            let to = if i % 2 == 0 { a2 } else { a3 };
            assert_eq!(fdb.learn(net, ELSEWHERE, to, 0), crate::fdb::Learn::Moved);
        }
        let before = checked(&r);
        r.round_now();
        assert_eq!(checked(&r) - before, expect, "after {moves} moves");
    }
    assert_eq!(sc.hits(&a1_key(VM2)).unwrap(), Some(0), "and kept");
    r.check_accounting();
}

#[test]
fn a_change_made_in_a_table_grown_since_the_round_began_is_checked_once_the_view_has_it() {
    let Some((mut r, sc, _prog, _xsks)) = installed_rig(300) else {
        return;
    };
    r.learn("a3", ELSEWHERE);
    let net = r.nets.get("a").unwrap();
    // The worker's view, as it was when its round refreshed it; then another worker grows the
    // table and moves VM2 in the grown one.
    let stale = r.w.pipeline().fdb.clone();
    let mut other = r.w.pipeline().fdb.clone();
    let a3 = other.lookup(net, ELSEWHERE, 0).unwrap();
    other.reserve(4 * other.capacity());
    assert!(!stale.is_current());
    assert_eq!(other.learn(net, VM2, a3, 0), crate::fdb::Learn::Moved);
    let w = &mut r.w;
    let b = unpoliced(&stale, &w.snap, 0);
    assert!(
        !w.fast.as_mut().unwrap().check(&b),
        "its lookups would not see the move: not checked yet"
    );
    assert_eq!(sc.hits(&a1_key(VM2)).unwrap(), Some(0));
    // The next round's refresh picks the grown table up, and its check withdraws the entry.
    r.round_now();
    assert_eq!(sc.hits(&a1_key(VM2)).unwrap(), None, "withdrawn");
    r.check_accounting();
}

#[test]
fn an_entry_forwarded_elsewhere_before_the_check_is_replaced() {
    let Some((mut r, sc, _prog, _xsks)) = installed_rig(300) else {
        return;
    };
    // VM2 moves to a3, and a frame to it is forwarded there before a round's check ran.
    r.learn("a3", VM2);
    r.inject("a1", udp(VM2, VM1));
    r.run();
    assert_eq!(r.out("a3"), vec![udp(VM2, VM1)]);
    assert_eq!(sc.hits(&a1_key(VM2)).unwrap(), Some(0));
    let f = r.w.fast.as_ref().unwrap();
    assert_eq!((f.len(), f.installed, f.withdrawn), (1, 2, 1), "replaced");
    r.check_accounting();
    // The check finds it right.
    r.round_now();
    assert_eq!(r.w.fast.as_ref().unwrap().withdrawn, 1);
    assert_eq!(sc.hits(&a1_key(VM2)).unwrap(), Some(0));
}

#[test]
fn reading_the_hits_withdraws_an_entry_gone_wrong_without_a_change_to_tell() {
    let Some((mut r, sc, _prog, _xsks)) = installed_rig(300) else {
        return;
    };
    // At 400 s VM2, seen at 0, has expired (VM1, seen at 200, has not); nothing has removed it,
    // so no change tells.
    let net = r.nets.get("a").unwrap();
    let fdb = &r.w.pipeline().fdb;
    let a1 = fdb.lookup(net, VM1, 0).unwrap();
    assert_eq!(fdb.learn(net, VM1, a1, 200), crate::fdb::Learn::Refreshed);
    let w = &mut r.w;
    let before = w.pipe.fdb.changes();
    let b = unpoliced(&w.pipe.fdb, &w.snap, 400);
    w.fast.as_mut().unwrap().sweep(&b, 1);
    assert_eq!(b.fdb.changes(), before);
    assert_eq!(sc.hits(&a1_key(VM2)).unwrap(), None, "withdrawn");
    r.check_accounting();
}

#[test]
fn after_a_sleep_a_round_reads_few_hits_and_the_rest_is_read_before_the_next_sleep() {
    let Some((mut r, _sc, _prog, _xsks)) = installed_rig(300) else {
        return;
    };
    // 90 more entries: 90 sources on a1 to VM2 (the network learns 100 addresses).
    for i in 0..90u8 {
        r.inject("a1", udp(VM2, Mac([0x02, 1, 0, 0, 0, i])));
    }
    r.round_now();
    r.round_now();
    assert_eq!(r.out("a2").len(), 90);
    assert_eq!(r.w.fast.as_ref().unwrap().len(), 91);
    // A round a second later (as after a sleep) owes every entry a read: it reads 64, the
    // frame that woke the worker waits for no more.
    let before = checked(&r);
    r.tick(1000);
    assert_eq!(checked(&r) - before, 64);
    // The rest before the worker sleeps again.
    assert!(!r.w.pay_debts(Now::from_nanos(r.clock)));
    assert_eq!(checked(&r) - before, 91);
    assert!(!r.w.pay_debts(Now::from_nanos(r.clock)));
    assert_eq!(checked(&r) - before, 91, "nothing more owed");
    // Never more than one pass owed: 10 s without a round read each entry once.
    r.tick(10_000);
    assert!(!r.w.pay_debts(Now::from_nanos(r.clock)));
    assert_eq!(checked(&r) - before, 182);
    r.check_accounting();
}

/// A UDP datagram from VM1 to VM2 of `len` bytes (as [`udp`], longer).
fn long_udp(len: usize) -> Vec<u8> {
    let mut f = udp(VM2, VM1);
    f.resize(len, 0x5a);
    let ip_len = (len - 14) as u16;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f
}

/// Ports of MTU 9000 (a chunk holds 1792 bytes of a frame): the shortcut takes no frame the
/// worker would drop, none larger than a chunk.
#[test]
fn a_shortcut_entry_takes_no_frame_larger_than_the_worker_forwards() {
    let Some((mut r, _sc, prog, _xsks)) = shortcut_rig(300) else {
        return;
    };
    let mut c = cfg();
    for p in &mut c.ports {
        p.mtu = Some(9000);
    }
    r.apply(&c);
    r.learn("a2", VM2);
    r.inject("a1", udp(VM2, VM1));
    r.round_now();
    assert_eq!(r.out("a2").len(), 1);
    let largest = (WorkerConfig::default().chunk_size - crate::sys::umem::KERNEL_HEADROOM) as usize;
    let run = |f: &[u8]| crate::sys::bpf::test_run(&prog, f, LO).unwrap();
    assert_eq!(run(&long_udp(largest)), 4, "taken");
    assert_eq!(
        run(&long_udp(largest + 1)),
        2,
        "to the worker (XDP_PASS here)"
    );
    r.check_accounting();
}

/// Frames from VM1 to VM2 of one batch, and then one from VM2 on a1 (a move): no entry is
/// installed for a destination that moved within the batch.
#[test]
fn no_shortcut_entry_for_a_destination_that_moved_within_the_batch() {
    let Some((mut r, sc, _prog, _xsks)) = shortcut_rig(300) else {
        return;
    };
    r.learn("a2", VM2);
    r.inject("a1", udp(VM2, VM1));
    r.inject("a1", frame(Mac::BROADCAST, VM2));
    r.round_now();
    assert_eq!(r.out("a2").len(), 2, "the datagram, and the broadcast");
    assert_eq!(sc.hits(&a1_key(VM2)).unwrap(), None);
    r.check_accounting();
}

/// Another port took a2's slot in the same network (its worker's snapshot says so, this
/// worker's not yet): entries towards the slot go at the next round, and none is installed.
#[test]
fn entries_towards_a_slot_another_port_took_go_at_the_next_round() {
    let Some((mut r, sc, _prog, _xsks)) = installed_rig(300) else {
        return;
    };
    let a2 = r.ports.get("a2").unwrap();
    let (net, net_gen, gen) = sc.net(a2).unwrap();
    sc.set_net(a2, Some((net, net_gen, gen + 1)));
    r.round_now();
    assert_eq!(sc.hits(&a1_key(VM2)).unwrap(), None, "withdrawn");
    r.inject("a1", udp(VM2, VM1));
    r.round_now();
    assert_eq!(r.out("a2").len(), 1);
    assert_eq!(sc.hits(&a1_key(VM2)).unwrap(), None, "not installed again");
    r.check_accounting();
}

/// A port that closes takes this worker's entries from and to it out of the map at once: its
/// device may be another port's, of another network, before any round.
#[test]
fn a_closing_port_withdraws_the_entries_from_and_to_it_at_once() {
    for closing in ["a1", "a2"] {
        let Some((mut r, sc, _prog, _xsks)) = installed_rig(300) else {
            return;
        };
        let slot = r.ports.get(closing).unwrap();
        r.w.handle(Command::RemovePort { slot }, Now::from_nanos(r.clock));
        assert_eq!(sc.hits(&a1_key(VM2)).unwrap(), None, "{closing}");
    }
}

#[test]
fn a_source_heard_only_through_the_shortcut_stays_learned_and_counted() {
    let Some((mut r, sc, prog, _xsks)) = installed_rig(2) else {
        return;
    };
    let (a1, a2) = (r.ports.get("a1").unwrap(), r.ports.get("a2").unwrap());
    let shared = |r: &Rig, slot: u16| {
        let open = r.w.ports[usize::from(slot)].as_ref().unwrap();
        Arc::clone(&open.shared)
    };
    let (s1, s2) = (shared(&r, a1), shared(&r, a2));
    let read = |s: &PortShared| s.counters.read().counters;
    r.w.publish(Now::from_nanos(r.clock));
    let before = (read(&s1), read(&s2));
    let seen = r.w.counters(a1).rx_packets;
    let f = udp(VM2, VM1);
    let len = f.len() as u64;
    // One frame through the shortcut counts at once, before any worker publishes.
    assert_eq!(
        crate::sys::bpf::test_run(&prog, &f, LO).unwrap(),
        4,
        "taken"
    );
    let (c1, c2) = (read(&s1), read(&s2));
    assert_eq!(c1.xdp_forwarded - before.0.xdp_forwarded, 1);
    assert_eq!(c1.rx_packets - before.0.rx_packets, 1);
    assert_eq!(c2.tx_bytes - before.1.tx_bytes, len);
    assert_eq!(r.w.counters(a1).rx_packets, seen, "no worker saw it");
    // Six seconds of VM1's frames, all through the shortcut (the kernel runs the program on
    // them), with VM2 answering through the worker: VM1, heard by no worker, stays learned
    // (ageing: 2 s), and no change of the table withdraws the entry.
    let mut through = 1;
    for _ in 0..30 {
        assert_eq!(
            crate::sys::bpf::test_run(&prog, &f, LO).unwrap(),
            4,
            "taken"
        );
        through += 1;
        r.inject("a2", udp(VM1, VM2));
        r.tick(200);
        assert_eq!(r.out("a1").len(), 1, "VM2's answer, through the worker");
    }
    let secs = u32::try_from(r.clock / 1_000_000_000).unwrap();
    let net = r.nets.get("a").unwrap();
    assert!(
        r.w.pipeline().fdb.lookup(net, VM1, secs).is_some(),
        "VM1, heard only through the shortcut, is still learned at {secs} s"
    );
    assert_eq!(sc.hits(&a1_key(VM2)).unwrap(), Some(through));
    assert_eq!(r.w.stats().read().shortcut_withdrawn, 0);
    r.w.publish(Now::from_nanos(r.clock));
    let (c1, c2) = (read(&s1), read(&s2));
    assert_eq!(c1.xdp_forwarded - before.0.xdp_forwarded, through);
    assert_eq!(c1.rx_packets - before.0.rx_packets, through);
    assert_eq!(c1.rx_bytes - before.0.rx_bytes, through * len);
    assert_eq!(c2.tx_packets - before.1.tx_packets, through);
    assert_eq!(c2.tx_bytes - before.1.tx_bytes, through * len);
    // a1 closes: what the shortcut forwarded stays in its counters, counted once.
    r.w.handle(Command::RemovePort { slot: a1 }, Now::default());
    assert_eq!(read(&s1), c1, "folded into the last values");
    assert_eq!(r.w.counters(a1).xdp_forwarded, c1.xdp_forwarded);
    assert_eq!(read(&s2), c2, "a2's too");
    // a1 opens again (its interface came back), and its pair takes the shortcut again: it goes
    // on from its last values.
    r.w.handle(
        Command::AddPort {
            slot: a1,
            spec: MemSpec {
                capture: true,
                tx_size: 256,
                shortcut_ifindex: Some(LO),
                ..MemSpec::default()
            },
            shared: Arc::clone(&s1),
        },
        Now::default(),
    );
    r.inject("a1", udp(VM2, VM1));
    r.round_now();
    assert_eq!(
        r.out("a2").len(),
        1,
        "through the worker, installing the entry again"
    );
    assert_eq!(crate::sys::bpf::test_run(&prog, &f, LO).unwrap(), 4);
    r.w.publish(Now::from_nanos(r.clock));
    let again = read(&s1);
    assert_eq!(again.xdp_forwarded, c1.xdp_forwarded + 1);
    assert_eq!(again.rx_packets, c1.rx_packets + 2);
    r.check_accounting();
}

#[test]
fn an_entry_goes_when_its_destination_ages_out() {
    let Some((mut r, sc, _prog, _xsks)) = installed_rig(2) else {
        return;
    };
    // VM2 falls silent: once its entry is swept (2 s), frames to it must flood again.
    for _ in 0..15 {
        r.tick(200);
    }
    assert_eq!(sc.hits(&a1_key(VM2)).unwrap(), None, "withdrawn");
    r.inject("a1", udp(VM2, VM1));
    r.round_now();
    assert_eq!(r.out("a3").len(), 1, "flooded");
    r.check_accounting();
}

#[test]
fn the_logs_name_a_port_by_its_id_and_device() {
    let named = PortShared::named("7f3c", "qsveth0");
    assert_eq!(named.label(3).to_string(), "port 7f3c on qsveth0");
    assert_eq!(
        PortShared::default().label(3).to_string(),
        "port in slot 3",
        "a port given no name"
    );
}
