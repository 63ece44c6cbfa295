//! Two workers in one thread, each with its own UMEM and ports, one shared MAC table: frames
//! cross between them in both directions, floods reach the ports of both, isolation holds,
//! every frame is accounted for per worker, and full rings hold frames back instead of losing
//! them.

use std::sync::Arc;

use super::*;
use crate::config::{NetworkConfig, PortConfig, PortRole, SlotMap, SwitchConfig};
use crate::port::mem::{MemPort, MemWholeTx};
use crate::wire::{build_frame, EthernetFrame, Mac, ETHERTYPE_IPV4};

const VM1: Mac = Mac([0x02, 0, 0, 0, 0, 1]);
const VM2: Mac = Mac([0x02, 0, 0, 0, 0, 2]);
const VM3: Mac = Mac([0x02, 0, 0, 0, 0, 3]);

/// Ports and the worker that owns each: a1 and b1 on worker 0, a2, a3 and the trunk on 1.
const OWNERS: [(&str, u16); 5] = [("a1", 0), ("b1", 0), ("a2", 1), ("a3", 1), ("up", 1)];

struct Crew {
    w: Vec<Worker<MemPort>>,
    /// The configuration the workers have, its version, and its networks' slots.
    cfg: SwitchConfig,
    version: u64,
    nets: SlotMap,
    ports: SlotMap,
    /// The time the workers' rounds run at.
    now: Now,
    /// Crossing buffers per ordered pair of workers.
    depth: usize,
}

fn owner(id: &str) -> usize {
    usize::from(OWNERS.iter().find(|(p, _)| *p == id).unwrap().1)
}

impl Crew {
    fn new(frames: u32, depth: usize) -> Crew {
        Crew::with(frames, depth, |_| {})
    }

    fn with(frames: u32, depth: usize, edit: impl FnOnce(&mut SwitchConfig)) -> Crew {
        Crew::offloading(frames, depth, edit, &[])
    }

    /// As [`Crew::with`], the ports named in `offload` finishing checksums on request.
    fn offloading(
        frames: u32,
        depth: usize,
        edit: impl FnOnce(&mut SwitchConfig),
        offload: &[&str],
    ) -> Crew {
        Crew::ported(frames, depth, edit, offload, &[])
    }

    /// As [`Crew::offloading`], the ports named in `whole` also taking TCP super-frames whole.
    fn ported(
        frames: u32,
        depth: usize,
        edit: impl FnOnce(&mut SwitchConfig),
        offload: &[&str],
        whole: &[&str],
    ) -> Crew {
        Crew::socketed(frames, depth, edit, offload, whole, &[])
    }

    /// As [`Crew::ported`], the ports named in `direct` (of those in `whole`) also taking them
    /// from the other worker, through their sockets ([`PortIo::whole_tx`]).
    fn socketed(
        frames: u32,
        depth: usize,
        edit: impl FnOnce(&mut SwitchConfig),
        offload: &[&str],
        whole: &[&str],
        direct: &[&str],
    ) -> Crew {
        let wc = WorkerConfig {
            frames,
            ..WorkerConfig::default()
        };
        let fdb = MacTable::new(wc.aging_secs, wc.max_macs);
        let epoch = Instant::now();
        let w: Vec<Worker<MemPort>> = cross::mesh(2, depth, wc.chunk_size as usize)
            .into_iter()
            .map(|l| Worker::in_crew(wc.clone(), l, fdb.clone(), epoch).unwrap())
            .collect();
        let net = |id: &str, vlan| NetworkConfig {
            id: id.into(),
            vlan,
            mac_limit: 100,
            physnet: Some(crate::config::DEFAULT_PHYSNET.into()),
        };
        let on = |mut p: PortConfig| {
            p.worker = Some(owner(&p.id) as u16);
            p
        };
        let mut cfg = SwitchConfig {
            networks: vec![net("a", 10), net("b", 20)],
            ports: vec![
                on(PortConfig::access("a1", "d1", "a")),
                on(PortConfig::access("b1", "d2", "b")),
                on(PortConfig::access("a2", "d3", "a")),
                on(PortConfig::access("a3", "d4", "a")),
                on(PortConfig::trunk("up", "d5")),
            ],
            ..SwitchConfig::default()
        };
        edit(&mut cfg);
        let mut c = Crew {
            w,
            cfg,
            version: 0,
            nets: SlotMap::default(),
            ports: SlotMap::default(),
            now: Now::default(),
            depth,
        };
        c.reconfigure(|_| {});
        for (id, o) in OWNERS {
            let slot = c.ports.get(id).unwrap();
            let w = &mut c.w[usize::from(o)];
            let whole = whole.contains(&id);
            let direct = whole && direct.contains(&id);
            let offload = whole || offload.contains(&id);
            super::tests::open_mem_port_spec(w, slot, offload, whole, direct);
        }
        c
    }

    /// Edits the configuration and gives both workers its next snapshot.
    fn reconfigure(&mut self, edit: impl FnOnce(&mut SwitchConfig)) {
        let snap = self.next_snapshot(edit);
        for w in &mut self.w {
            w.handle(Command::Snapshot(Arc::clone(&snap)), Now::default());
        }
    }

    /// Port `old` goes (closed on its worker), and `new`, a port of network `net` on worker 1,
    /// takes its slot and is opened there. Returns the slot.
    fn reslot(&mut self, old: &str, new: &str, net: &str) -> u16 {
        let slot = self.ports.get(old).unwrap();
        self.w[owner(old)].handle(Command::RemovePort { slot }, Now::default());
        self.reconfigure(|cfg| {
            cfg.ports.retain(|p| p.id != old);
            let mut p = PortConfig::access(new, &format!("d-{new}"), net);
            p.worker = Some(1);
            cfg.ports.push(p);
        });
        assert_eq!(self.ports.get(new), Some(slot), "{new} took {old}'s slot");
        super::tests::open_mem_port_spec(&mut self.w[1], slot, false, false, false);
        slot
    }

    /// Network a goes, and network c (VLAN 30) takes its slot and its ports, in one snapshot.
    fn replace_network_a(&mut self) {
        let net = self.nets.get("a").unwrap();
        self.reconfigure(|cfg| {
            cfg.networks.retain(|n| n.id != "a");
            cfg.networks.push(NetworkConfig {
                id: "c".into(),
                vlan: 30,
                mac_limit: 100,
                physnet: Some(crate::config::DEFAULT_PHYSNET.into()),
            });
            for p in &mut cfg.ports {
                if let PortRole::Access { network } = &mut p.role {
                    if network == "a" {
                        *network = "c".into();
                    }
                }
            }
        });
        assert_eq!(self.nets.get("c"), Some(net), "c took a's slot");
    }

    /// Edits the configuration and compiles its next snapshot, for the caller to hand out.
    fn next_snapshot(&mut self, edit: impl FnOnce(&mut SwitchConfig)) -> Arc<Snapshot> {
        edit(&mut self.cfg);
        self.version += 1;
        Arc::new(Snapshot::compile(
            &self.cfg,
            self.version,
            &mut self.nets,
            &mut self.ports,
        ))
    }

    fn port(&mut self, id: &str) -> &mut MemPort {
        let slot = self.ports.get(id).unwrap();
        self.w[owner(id)].port_mut(slot).unwrap()
    }

    fn inject(&mut self, id: &str, frame: Vec<u8>) {
        self.port(id).inbox.push_back(frame);
    }

    fn run(&mut self) {
        for _ in 0..4 {
            for w in &mut self.w {
                w.poll(self.now);
            }
        }
    }

    /// VM2 announces itself on a2 (worker 1): every worker learns it, and the flood it made is
    /// cleared from the other ports.
    fn announce_vm2(&mut self) {
        self.inject("a2", frame(Mac::BROADCAST, VM2));
        self.run();
        for p in ["a1", "a3", "up"] {
            self.take(p);
        }
    }

    fn take(&mut self, id: &str) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.port(id).outbox)
    }

    /// Takes what port `id` sent, one frame (else panics), and returns its VLAN tag.
    fn take_one_tag(&mut self, id: &str) -> Option<u16> {
        let out = self.take(id);
        assert_eq!(out.len(), 1, "{id}: one frame");
        EthernetFrame::new_checked(&out[0]).unwrap().vlan_id()
    }

    fn counters(&self, id: &str) -> LocalCounters {
        self.w[owner(id)].counters(self.ports.get(id).unwrap())
    }

    fn check_accounting(&mut self) {
        for w in &self.w {
            let a = w.accounting();
            assert_eq!(
                a.free + a.user + a.in_kernel(),
                a.total,
                "worker {}",
                w.id()
            );
            assert_eq!(a.user, 0, "worker {} holds no frame between rounds", w.id());
        }
        for (id, o) in OWNERS {
            // (A port a test removed has no slot.)
            let Some(slot) = self.ports.get(id) else {
                continue;
            };
            if let Some(p) = self.w[usize::from(o)].port_mut(slot) {
                assert_eq!(p.stats().tx_invalid_descs, 0, "{id}: refused descriptors");
            }
        }
        // Every crossing buffer is back with its sender between rounds.
        let depth = self.depth;
        let whole = cross::whole_depth(self.w.len());
        for w in &mut self.w {
            let id = w.id();
            for (to, o) in w.links.out.iter_mut().enumerate() {
                if let Some(o) = o {
                    assert_eq!(o.reclaim(), depth, "worker {id}'s buffers towards {to}");
                    assert_eq!(o.whole_free(), whole, "{id} to {to}: super-frames");
                }
            }
        }
    }
}

fn frame(dst: Mac, src: Mac) -> Vec<u8> {
    build_frame(dst, src, None, ETHERTYPE_IPV4, &[0xab; 46])
}

#[test]
fn unicast_crosses_between_workers_both_ways() {
    let mut c = Crew::new(4096, 64);
    c.inject("a2", frame(Mac::BROADCAST, VM2));
    c.run();
    assert_eq!(c.take("a1"), vec![frame(Mac::BROADCAST, VM2)]);
    for p in ["a3", "up"] {
        c.take(p);
    }
    // Worker 0 knows VM2 (learned by worker 1) and sends to it across.
    c.inject("a1", frame(VM2, VM1));
    c.run();
    assert_eq!(c.take("a2"), vec![frame(VM2, VM1)]);
    assert!(c.take("a3").is_empty() && c.take("up").is_empty());
    // And back.
    c.inject("a2", frame(VM1, VM2));
    c.run();
    assert_eq!(c.take("a1"), vec![frame(VM1, VM2)]);
    assert!(c.take("b1").is_empty());
    assert_eq!(c.counters("a2").tx_packets, 1);
    assert_eq!(c.counters("a1").tx_packets, 2);
    let (out0, in1) = (c.w[0].crossed.0, c.w[1].crossed.1);
    assert_eq!((out0, in1), (1, 1), "one unicast from worker 0 to 1");
    c.check_accounting();
}

#[test]
fn a_super_frame_crosses_whole_and_leaves_whole_or_is_cut_by_the_receiving_worker() {
    use super::tests::{partial_tcp, reassembled};
    // a2 (worker 1) takes super-frames whole; a3 (worker 1) does not.
    let mut c = Crew::ported(4096, 64, |_| {}, &[], &["a2"]);
    c.announce_vm2();
    c.inject("a3", frame(Mac::BROADCAST, VM3));
    c.run();
    for p in ["a1", "a2", "up"] {
        c.take(p);
    }
    let payload: Vec<u8> = (0..20_000u32).map(|i| (i % 247) as u8).collect();
    // A small segment first, then super-frames to each: the order holds across.
    c.inject("a1", partial_tcp(VM2, &payload[..100], None));
    c.inject("a1", partial_tcp(VM2, &payload, None));
    c.inject("a1", partial_tcp(VM3, &payload, None));
    c.run();
    let out = c.take("a2");
    assert_eq!(out.len(), 1 + 14);
    let want: Vec<u8> = [&payload[..100], &payload[..]].concat();
    assert_eq!(reassembled(&out, 54, 1514), want);
    assert_eq!(c.port("a2").whole_sent, 1);
    let out = c.take("a3");
    assert_eq!(out.len(), 14, "cut by worker 1");
    assert_eq!(reassembled(&out, 54, 1514), payload);
    assert!(c.take("up").is_empty() && c.take("b1").is_empty());
    let a1 = c.counters("a1");
    assert_eq!((a1.gso_whole, a1.gso_segmented, a1.rx_packets), (2, 0, 3));
    // Besides the other VM's announcement each.
    assert_eq!(c.counters("a2").tx_packets, 1 + 1 + 1);
    assert_eq!(c.counters("a3").tx_packets, 1 + 14);
    let (out0, in1) = (c.w[0].crossed.0, c.w[1].crossed.1);
    assert_eq!((out0, in1), (3, 3), "one small frame, two super-frames");
    c.check_accounting();
}

#[test]
fn partial_checksums_crossing_workers_are_finished_on_the_egress_worker() {
    // a2 (worker 1) finishes checksums on transmit; a3 and the trunk (worker 1) do not.
    let mut c = Crew::offloading(4096, 64, |_| {}, &["a2"]);
    c.announce_vm2();
    let mut ip = vec![
        0x45, 0, 0, 60, 0, 1, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
    ];
    ip.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 40, 0, 0]);
    ip.extend_from_slice(&[0x5a; 32]);
    let udp = |dst: Mac| {
        let mut f = build_frame(dst, VM1, None, ETHERTYPE_IPV4, &ip);
        assert!(crate::csum::make_partial(&mut f));
        f
    };
    // Learned unicast across workers: left to a2's kernel.
    c.inject("a1", udp(VM2));
    c.run();
    let out = c.take("a2");
    assert_eq!(out.len(), 1);
    assert_eq!(crate::csum::verify(&out[0]), Some(true));
    assert_eq!(c.port("a2").checksum_requests, 1);
    // A flood crosses once, partial; worker 1 leaves a2's copy to its kernel and finishes the
    // others (the trunk's after its tag is pushed).
    c.inject("a1", udp(Mac::BROADCAST));
    c.run();
    assert_eq!(c.port("a2").checksum_requests, 2);
    for p in ["a2", "a3", "up"] {
        let out = c.take(p);
        assert_eq!(out.len(), 1, "{p}");
        assert_eq!(crate::csum::verify(&out[0]), Some(true), "{p}");
    }
    assert_eq!(c.counters("a1").csum_completed, 2);
    c.check_accounting();
}

#[test]
fn many_frames_crossing_in_batches_arrive_in_order_and_every_buffer_comes_back() {
    let mut c = Crew::new(4096, 256);
    c.announce_vm2();
    let numbered = |k: u16| {
        let mut payload = [0xab; 46];
        payload[..2].copy_from_slice(&k.to_be_bytes());
        build_frame(VM2, VM1, None, ETHERTYPE_IPV4, &payload)
    };
    for k in 0..300 {
        c.inject("a1", numbered(k));
    }
    let mut got = Vec::new();
    for _ in 0..20 {
        c.run();
        got.extend(c.take("a2"));
    }
    assert_eq!(got, (0..300).map(numbered).collect::<Vec<_>>());
    c.check_accounting();
}

#[test]
fn floods_reach_the_ports_of_both_workers_and_no_other_network() {
    let mut c = Crew::new(4096, 64);
    c.inject("a1", frame(Mac::BROADCAST, VM1));
    c.run();
    assert_eq!(c.take("a2"), vec![frame(Mac::BROADCAST, VM1)]);
    assert_eq!(c.take("a3"), vec![frame(Mac::BROADCAST, VM1)]);
    let up = c.take("up");
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
    assert!(c.take("a1").is_empty() && c.take("b1").is_empty());
    assert_eq!(
        c.w[0].crossed.0, 1,
        "a flood crosses once per worker, not per port"
    );
    // From the trunk (worker 1), tagged for network b: only b1, on worker 0, untagged.
    c.inject(
        "up",
        build_frame(Mac::BROADCAST, VM3, Some(20), ETHERTYPE_IPV4, &[1; 46]),
    );
    c.run();
    assert_eq!(
        c.take("b1"),
        vec![build_frame(
            Mac::BROADCAST,
            VM3,
            None,
            ETHERTYPE_IPV4,
            &[1; 46]
        )]
    );
    for p in ["a1", "a2", "a3"] {
        assert!(c.take(p).is_empty(), "{p}");
    }
    // b1's reply goes back to the trunk across workers, tagged.
    c.inject("b1", frame(VM3, VM2));
    c.run();
    assert_eq!(c.take_one_tag("up"), Some(20));
    c.check_accounting();
}

#[test]
fn a_mac_moving_between_ports_of_different_workers_follows() {
    let mut c = Crew::new(4096, 64);
    c.inject("a1", frame(Mac::BROADCAST, VM1));
    c.run();
    c.inject("a2", frame(Mac::BROADCAST, VM1));
    c.run();
    assert_eq!(c.counters("a2").mac_moves, 1);
    for p in ["a1", "a2", "a3", "up"] {
        c.take(p);
    }
    c.inject("a3", frame(VM1, VM2));
    c.run();
    assert_eq!(c.take("a2"), vec![frame(VM1, VM2)]);
    assert!(c.take("a1").is_empty());
    c.check_accounting();
}

#[test]
fn a_frame_crossing_for_a_port_whose_slot_another_took_meanwhile_is_dropped() {
    let mut c = Crew::new(4096, 64);
    c.announce_vm2();
    // Worker 0 hands a frame for a2 (network a) over; worker 1 has not taken it yet.
    c.inject("a1", frame(VM2, VM1));
    c.w[0].poll(c.now);
    assert_eq!(c.w[0].crossed.0, 1);
    // Meanwhile a2 goes, and a port of network b takes its slot on worker 1.
    let slot = c.reslot("a2", "b2", "b");
    c.run();
    let b2 = c.w[1].port_mut(slot).unwrap();
    assert!(b2.outbox.is_empty(), "network a's frame reached network b");
    assert_eq!((c.w[1].crossed.1, c.w[1].crossed_lost), (1, 1));
    // A flood of network a that crossed before its network's slot went to another network is
    // dropped too; one of the network then is delivered.
    c.inject("a1", frame(Mac::BROADCAST, VM1));
    c.w[0].poll(c.now);
    c.replace_network_a();
    c.run();
    for p in ["a3", "up"] {
        assert!(c.take(p).is_empty(), "{p}: a flood of the network gone");
    }
    assert_eq!(c.w[1].crossed_lost, 2);
    c.inject("a1", frame(Mac::BROADCAST, VM1));
    c.run();
    assert_eq!(c.take("a3"), vec![frame(Mac::BROADCAST, VM1)]);
    assert_eq!(c.w[1].crossed_lost, 2);
    c.check_accounting();
}

/// A frame handed over for a port its worker has not open (its device went) is counted where
/// the worker publishes it, among the crossings lost, not on the closed port's counters, which
/// nobody reads until it opens again, and then from what it last published.
#[test]
fn a_frame_crossing_for_a_port_that_is_not_open_is_counted_as_lost() {
    let mut c = Crew::new(4096, 64);
    c.announce_vm2();
    let a2 = c.ports.get("a2").unwrap();
    c.w[1].handle(Command::RemovePort { slot: a2 }, c.now);
    let before = c.w[1].counters(a2);
    c.inject("a1", frame(VM2, VM1));
    c.run();
    assert_eq!((c.w[1].crossed.1, c.w[1].crossed_lost), (1, 1));
    assert_eq!(c.w[1].counters(a2).drops, before.drops, "a2 is not open");
    c.check_accounting();
}

#[test]
fn a_flood_crossing_from_a_port_whose_slot_another_took_meanwhile_reaches_that_one_too() {
    let mut c = Crew::new(4096, 64);
    c.announce_vm2();
    // Worker 0 hands a1's broadcast over; worker 1 has not taken it yet.
    c.inject("a1", frame(Mac::BROADCAST, VM1));
    c.w[0].poll(c.now);
    assert_eq!(c.w[0].crossed.0, 1);
    // Meanwhile a1 goes, and a4, a port of the same network on worker 1, takes its slot.
    let slot = c.reslot("a1", "a4", "a");
    c.run();
    // a4 did not send the flood: it gets its copy, as the network's other ports do.
    let a4 = std::mem::take(&mut c.w[1].port_mut(slot).unwrap().outbox);
    assert_eq!(a4, vec![frame(Mac::BROADCAST, VM1)], "a4");
    for p in ["a2", "a3"] {
        assert_eq!(c.take(p), vec![frame(Mac::BROADCAST, VM1)], "{p}");
    }
    assert_eq!(c.take("up").len(), 1, "the trunk");
    assert_eq!(c.w[1].crossed_lost, 0);
    c.check_accounting();
}

#[test]
fn a_frame_crossing_to_the_trunk_for_a_network_whose_slot_another_took_meanwhile_is_dropped() {
    let mut c = Crew::new(4096, 64);
    // VM3, behind the trunk (worker 1), in network a (VLAN 10).
    let tagged = |vlan| build_frame(Mac::BROADCAST, VM3, Some(vlan), ETHERTYPE_IPV4, &[1; 46]);
    c.inject("up", tagged(10));
    c.run();
    for p in ["a1", "a2", "a3"] {
        c.take(p);
    }
    // Worker 0 hands a frame for it over; before worker 1 takes it, network c (VLAN 30) takes
    // a's slot. The trunk keeps its slot and generation: only the network's tells.
    c.inject("a1", frame(VM3, VM1));
    c.w[0].poll(c.now);
    c.replace_network_a();
    c.run();
    assert!(
        c.take("up").is_empty(),
        "network a's frame left tagged for c"
    );
    assert_eq!(c.w[1].crossed_lost, 1);
    // Network c's own frames cross, tagged 30.
    c.inject("up", tagged(30));
    c.run();
    for p in ["a2", "a3"] {
        c.take(p);
    }
    assert_eq!(c.take("a1").len(), 1);
    c.inject("a1", frame(VM3, VM1));
    c.run();
    assert_eq!(c.take_one_tag("up"), Some(30));
    assert_eq!(c.w[1].crossed_lost, 1);
    c.check_accounting();
}

#[test]
fn a_frame_crossing_for_a_port_its_worker_has_not_heard_of_yet_is_dropped() {
    let mut c = Crew::new(4096, 64);
    // a4, with a static address, on worker 1: worker 0 adopts the snapshot first, and with it
    // the address (the table is shared).
    let snap = c.next_snapshot(|cfg| {
        cfg.ports.push(PortConfig {
            worker: Some(1),
            static_macs: vec![VM3],
            ..PortConfig::access("a4", "d6", "a")
        })
    });
    c.w[0].handle(Command::Snapshot(Arc::clone(&snap)), Now::default());
    c.inject("a1", frame(VM3, VM1));
    c.run();
    assert_eq!((c.w[0].crossed.0, c.w[1].crossed_lost), (1, 1));
    // Once worker 1 has the snapshot and the port, frames for it arrive.
    c.w[1].handle(Command::Snapshot(snap), Now::default());
    let slot = c.ports.get("a4").unwrap();
    super::tests::open_mem_port_spec(&mut c.w[1], slot, false, false, false);
    c.inject("a1", frame(VM3, VM1));
    c.run();
    let a4 = c.w[1].port_mut(slot).unwrap();
    assert_eq!(a4.outbox, vec![frame(VM3, VM1)]);
    assert_eq!(c.w[1].crossed_lost, 1);
    c.check_accounting();
}

#[test]
fn a_full_ring_holds_frames_back_and_loses_none() {
    // Four buffers between the workers, 300 frames at once: rounds take what the ring carries.
    let mut c = Crew::new(4096, 4);
    c.announce_vm2();
    for _ in 0..300 {
        c.inject("a1", frame(VM2, VM1));
    }
    let mut got = 0;
    for _ in 0..200 {
        c.run();
        got += c.take("a2").len();
        c.check_accounting();
    }
    assert_eq!(got, 300);
    assert_eq!(c.counters("a1").total_drops(), 0);
    assert_eq!(c.port("a1").stats().rx_dropped, 0);
}

#[test]
fn a_port_whose_transmit_stalled_holds_back_neither_its_worker_nor_the_other() {
    let mut c = Crew::new(4096, 8);
    c.announce_vm2();
    c.inject("a3", frame(Mac::BROADCAST, VM3));
    c.inject("a1", frame(Mac::BROADCAST, VM1));
    c.run();
    for p in ["a1", "a2", "a3", "up"] {
        c.take(p);
    }
    // a2's device (worker 1) stops sending. What a1 (worker 0) sends it fills a2's ring, then
    // the ring to worker 1, which takes no more: a1's frame for a3 waits too, and a3's for a1
    // sent then, though neither goes to a2.
    c.port("a2").completes = Some(0);
    for _ in 0..300 {
        c.inject("a1", frame(VM2, VM1));
    }
    c.inject("a1", frame(VM3, VM1));
    let mut ms = 0;
    let mut run_ms = |c: &mut Crew, n: u64| {
        for _ in 0..n {
            ms += 1;
            c.now = Now::from_nanos(ms * 1_000_000);
            // (Eight buffers between the workers: many rounds to fill a2's ring.)
            for _ in 0..16 {
                c.run();
            }
        }
    };
    run_ms(&mut c, 1);
    c.inject("a3", frame(VM1, VM3));
    run_ms(&mut c, 8);
    let on_ring = c.take("a2").len();
    assert!((250..=256).contains(&on_ring), "a2's ring full: {on_ring}");
    assert!(
        c.take("a3").is_empty(),
        "worker 0 waits on the ring to worker 1"
    );
    assert!(c.take("a1").is_empty(), "worker 1 waits on a2");
    // a2 stalls: both workers go on; a2's frames are dropped on it.
    run_ms(&mut c, 10);
    assert_eq!(c.take("a3"), vec![frame(VM3, VM1)]);
    assert_eq!(c.take("a1"), vec![frame(VM1, VM3)]);
    assert_eq!(c.take("a2").len(), 256 - on_ring);
    let stalled = |c: &Crew| c.counters("a2").drops[DropReason::TxStalled as usize];
    assert_eq!(stalled(&c), 300 - 256);
    // A super-frame handed over whole, which worker 1 cuts for a2: lost whole, on a2, as
    // stalled (not for want of buffers). (Four chunks: a round takes no more than four fifths
    // of the eight buffers towards worker 1.)
    let payload = vec![7u8; 5_000];
    c.inject("a1", super::tests::partial_tcp(VM2, &payload, None));
    run_ms(&mut c, 1);
    assert_eq!(stalled(&c), 300 - 256 + 1);
    assert_eq!(c.counters("a2").drops[DropReason::NoBuffer as usize], 0);
    assert_eq!(c.counters("a1").total_drops(), 0);
    c.check_accounting();
}

#[test]
fn a_port_s_rules_and_connections_live_on_its_worker() {
    use crate::acl::{AddrSet, PortFilter, Remote, Rule};
    use crate::flow::build::{ipv4_packet, udp};
    use crate::security::IpPrefix;
    use crate::wire::ipproto::UDP;
    const IP1: [u8; 4] = [198, 18, 0, 1];
    const IP2: [u8; 4] = [198, 18, 0, 2];
    const IP3: [u8; 4] = [198, 18, 0, 3];
    let datagram = |dst: Mac, src: Mac, from: ([u8; 4], u16), to: ([u8; 4], u16)| {
        let packet = ipv4_packet(from.0, to.0, UDP, &udp(from.1, to.1), 0, 1);
        build_frame(dst, src, None, ETHERTYPE_IPV4, &packet)
    };
    // a2 (worker 1) takes new connections only from group g (a3's address); it sends anywhere.
    let mut c = Crew::with(4096, 64, |cfg| {
        let rule = |remote| Rule::new(false, None, None, remote);
        let filter = Arc::new(PortFilter::new(
            vec![rule(Remote::Group(Arc::from("g")))],
            vec![rule(Remote::Any)],
        ));
        for p in cfg.ports.iter_mut().filter(|p| p.id == "a2") {
            p.filter = Some(Arc::clone(&filter));
        }
        let set = AddrSet::new([IpPrefix::host(IP3.into())]);
        cfg.address_sets = Arc::new([(Arc::from("g"), Arc::new(set))].into_iter().collect());
    });
    c.inject("a2", frame(Mac::BROADCAST, VM2));
    c.inject("a1", frame(Mac::BROADCAST, VM1));
    c.run();
    for p in ["a1", "a2", "a3", "up"] {
        c.take(p);
    }
    let refused = |c: &Crew| c.counters("a2").drops[DropReason::SgIngress as usize];
    // a1's broadcast was not IP as a2's rules read it: refused.
    assert_eq!(refused(&c), 1);
    // A new connection from a1 (worker 0) is refused by a2's rules on worker 1, counted there.
    c.inject("a1", datagram(VM2, VM1, (IP1, 5000), (IP2, 4000)));
    c.run();
    assert!(c.take("a2").is_empty());
    assert_eq!(refused(&c), 2);
    // a2 opens one towards a1: its egress check and its connection entry are on worker 1, ...
    c.inject("a2", datagram(VM1, VM2, (IP2, 4000), (IP1, 5000)));
    c.run();
    assert_eq!(c.take("a1").len(), 1);
    // ... so a1's reply, decided on worker 0, passes a2's rules on worker 1; another does not.
    c.inject("a1", datagram(VM2, VM1, (IP1, 5000), (IP2, 4000)));
    c.inject("a1", datagram(VM2, VM1, (IP1, 5001), (IP2, 4000)));
    c.run();
    assert_eq!(c.take("a2").len(), 1);
    assert_eq!(refused(&c), 3);
    assert_eq!(
        c.w[0].pipeline().conns.len(),
        0,
        "a2's zone is not on worker 0"
    );
    // The operator's view asks a2's worker: the connection a2 opened, answered by a1.
    let slot = c.ports.get("a2").unwrap();
    let ask = |w: &mut Worker<MemPort>| {
        let (tx, rx) = std::sync::mpsc::channel();
        w.handle(Command::Connections { slot, reply: tx }, Now::default());
        rx.recv().unwrap()
    };
    let conns = ask(&mut c.w[1]);
    assert_eq!(conns.len(), 1, "{conns:?}");
    let (from, to) = (std::net::IpAddr::from(IP2), std::net::IpAddr::from(IP1));
    assert_eq!(
        (conns[0].src, conns[0].dst, conns[0].ports, conns[0].dir),
        (from, to, Some((4000, 5000)), crate::acl::Direction::Egress)
    );
    assert_eq!((conns[0].state, conns[0].cut), ("replied", false));
    assert!(ask(&mut c.w[0]).is_empty());
    c.check_accounting();
}

#[test]
fn only_the_worker_that_owns_a_port_tells_its_vm_its_advertisement() {
    let mut c = Crew::with(4096, 256, |cfg| {
        cfg.ports[2].ra = Some(super::tests::slaac(VM2, "2001:db8:2::", 1500));
    });
    let slot = c.ports.get("a2").unwrap();
    // Both workers adopted the snapshot; a2 is worker 1's. Their housekeeping runs.
    for w in &mut c.w {
        w.round(Now::from_nanos(1_000_000));
    }
    c.run();
    let told = c.take("a2");
    assert_eq!(told.len(), 1, "one advertisement, from a2's worker");
    assert_eq!(&told[0][0..6], &VM2.0);
    assert_eq!(c.w[1].counters(slot).ra_replies, 1);
    assert_eq!(
        c.w[0].counters(slot).ra_replies,
        0,
        "worker 0 sent nothing for a2"
    );
    for p in ["a1", "b1", "a3", "up"] {
        assert!(c.take(p).is_empty(), "{p} was told");
    }
    c.check_accounting();
}

#[test]
fn a_frame_for_a_port_that_moved_to_another_network_meanwhile_never_reaches_it() {
    // VM2 learned on a2 (worker 1) in network a; worker 1 adopts a snapshot in which a2 is a
    // port of network b (same slot, same generation) before it takes worker 0's frame for VM2.
    let mut c = Crew::new(4096, 64);
    c.announce_vm2();
    let snap = c.next_snapshot(|cfg| {
        let a2 = cfg.ports.iter_mut().find(|p| p.id == "a2").unwrap();
        a2.role = PortRole::Access {
            network: "b".into(),
        };
    });
    c.w[1].handle(Command::Snapshot(Arc::clone(&snap)), Now::default());
    c.inject("a1", frame(VM2, VM1));
    c.w[0].poll(c.now);
    assert_eq!(c.w[0].crossed.0, 1);
    c.w[1].poll(c.now);
    assert!(c.take("a2").is_empty(), "a frame of network a on b's port");
    assert_eq!(c.w[1].crossed_lost, 1);
    // Worker 0 on the new snapshot too: its table's entry names a port of b, so it floods in a.
    c.w[0].handle(Command::Snapshot(snap), Now::default());
    c.inject("a1", frame(VM2, VM1));
    c.run();
    assert!(c.take("a2").is_empty());
    assert_eq!(c.take("a3").len(), 1, "flooded in a");
    c.check_accounting();
}

#[test]
fn tcp_is_not_sent_straight_into_a_port_that_moved_to_another_network() {
    use super::tests::tcp_segments;
    use std::sync::atomic::Ordering::Relaxed;
    // a2 (worker 1) takes super-frames whole, from worker 0 too; worker 1 adopts a snapshot in
    // which a2 is a port of network b (same slot, same generation), and offers it so; worker 0,
    // still on the one before, must neither send a's TCP into it nor have it delivered there.
    let mut c = Crew::socketed(4096, 64, |_| {}, &[], &["a2"], &["a2"]);
    c.announce_vm2();
    let sink = Arc::clone(c.port("a2").direct.as_ref().unwrap());
    let snap = c.next_snapshot(|cfg| {
        let a2 = cfg.ports.iter_mut().find(|p| p.id == "a2").unwrap();
        a2.role = PortRole::Access {
            network: "b".into(),
        };
    });
    c.w[1].handle(Command::Snapshot(snap), Now::default());
    let payload: Vec<u8> = (0..6_000u32).map(|i| (i % 247) as u8).collect();
    for f in tcp_segments(VM2, &payload, 1000) {
        c.inject("a1", f);
    }
    c.run();
    assert_eq!(sink.sent.load(Relaxed), 0, "sent into b's port");
    assert!(c.take("a2").is_empty());
    assert!(c.w[1].crossed_lost > 0, "handed over, and dropped there");
    c.check_accounting();
}

#[test]
fn a_merged_run_handed_over_whole_and_lost_there_is_counted_once_per_segment() {
    use super::tests::tcp_segments;
    use std::sync::atomic::Ordering::Relaxed;
    // a2 (worker 1) takes super-frames whole, from worker 0 too, but its socket refuses worker
    // 0's sends (a full buffer): the runs worker 0 merges from a1's segments are handed over
    // whole.
    let mut c = Crew::socketed(4096, 64, |_| {}, &[], &["a2"], &["a2"]);
    c.announce_vm2();
    let slot = c.ports.get("a2").unwrap();
    let sink = Arc::clone(c.port("a2").direct.as_ref().unwrap());
    sink.error.store(libc::ENOBUFS, Relaxed);
    let payload: Vec<u8> = (0..12_000u32).map(|i| (i % 247) as u8).collect();
    let segs = tcp_segments(VM2, &payload, 1000);
    // Handed over in `n` frames: merged into one, or one by one.
    let merge_and_hand_over = |c: &mut Crew, n: u64| {
        let before = c.w[0].crossed.0;
        for f in &segs {
            c.inject("a1", f.clone());
        }
        c.w[0].poll(c.now);
        assert_eq!(c.w[0].crossed.0, before + n, "one frame, whole");
    };
    let rx = |c: &Crew| c.counters("a1").rx_packets;
    let rx_before = rx(&c);

    // A receive limit on a2 of a frame a second, which a frame from a3 (worker 1) used up,
    // refuses a1's segments on worker 1: all 12 lost. Worker 0, whose snapshot has no limit yet,
    // neither merges nor sends straight into a port its owner limits (the owner's offer says
    // so): the segments cross one by one.
    let snap = c.next_snapshot(|cfg| {
        let a2 = cfg.ports.iter_mut().find(|p| p.id == "a2").unwrap();
        a2.policer_in = Some(crate::policer::PolicerConfig {
            pps: 1,
            burst_packets: 1,
            ..Default::default()
        });
    });
    // (Worker 0 adopts it later: one that polices a2 does not merge for it.)
    c.w[1].handle(Command::Snapshot(Arc::clone(&snap)), Now::default());
    c.inject("a3", frame(VM2, VM3));
    c.w[1].poll(c.now);
    assert_eq!(c.take("a2"), vec![frame(VM2, VM3)]);
    merge_and_hand_over(&mut c, 12);
    c.w[1].poll(c.now);
    let policed = |c: &Crew| c.w[1].counters(slot).drops[DropReason::Policed as usize];
    assert_eq!(policed(&c), 12, "each segment");
    c.w[0].handle(Command::Snapshot(snap), Now::default());
    assert!(c.take("a2").is_empty());

    // a2's device goes on worker 1 before it takes the next run: 12 crossings lost.
    c.reconfigure(|cfg| {
        let a2 = cfg.ports.iter_mut().find(|p| p.id == "a2").unwrap();
        a2.policer_in = None;
    });
    merge_and_hand_over(&mut c, 1);
    c.w[1].handle(Command::RemovePort { slot }, Now::default());
    c.w[1].poll(c.now);
    assert_eq!(c.w[1].crossed_lost, 12, "each segment");
    assert_eq!(rx(&c), rx_before + 24);
    c.check_accounting();
}

#[test]
fn tcp_towards_the_other_workers_vm_leaves_merged_through_its_socket_without_crossing() {
    use super::tests::tcp_segments;
    use std::sync::atomic::Ordering::Relaxed;
    // a2 (worker 1) takes super-frames whole, from worker 0 too.
    let mut c = Crew::socketed(4096, 64, |_| {}, &[], &["a2"], &["a2"]);
    c.announce_vm2();
    let slot = c.ports.get("a2").unwrap();
    let sink = Arc::clone(c.port("a2").direct.as_ref().unwrap());
    let taken = |sink: &MemWholeTx| std::mem::take(&mut *sink.segments.lock().unwrap());
    let shared = |c: &Crew| {
        let o = c.w[1].ports[usize::from(slot)].as_ref().unwrap();
        o.shared.counters.read().counters
    };
    let before = shared(&c).tx_packets;
    let payload: Vec<u8> = (0..12_000u32).map(|i| (i % 247) as u8).collect();
    let segs = tcp_segments(VM2, &payload, 1000);

    // Worker 0 merges a1's segments and sends them out of a2 itself: nothing crosses.
    for f in &segs {
        c.inject("a1", f.clone());
    }
    c.run();
    assert!(taken(&sink) == segs, "the segments, merged and cut back");
    assert_eq!(sink.sent.load(Relaxed), 1);
    assert!(c.take("a2").is_empty(), "nothing through worker 1");
    assert_eq!(c.w[0].crossed.0, 0);
    let s = shared(&c);
    assert_eq!(
        (s.tx_packets, s.coalesced),
        (before + 1, 12),
        "counted on a2"
    );

    // A lone segment goes the same way, so that it cannot overtake or be overtaken by a run.
    c.inject("a1", segs[0].clone());
    c.run();
    assert!(taken(&sink) == [segs[0].clone()], "the lone segment");
    assert_eq!((sink.sent.load(Relaxed), c.w[0].crossed.0), (2, 0));
    assert_eq!(
        shared(&c).coalesced,
        12,
        "a lone segment is not a merged one"
    );

    // A segment that may not be merged (its checksum is wrong) goes the same way, as it came,
    // between the merged frames before and after it: no data of the flow crosses.
    let mut bad = segs.clone();
    bad[7][60] ^= 1;
    for f in &bad {
        c.inject("a1", f.clone());
    }
    c.run();
    assert!(taken(&sink) == bad, "in order, the wrong checksum kept");
    assert_eq!((sink.sent.load(Relaxed), c.w[0].crossed.0), (5, 0));

    // A guest end that refuses frames to be segmented (a native XDP program on it): the merged
    // frame is cut back and its segments sent one by one, still from here.
    sink.refuse_gso.store(libc::ENOBUFS, Relaxed);
    for f in &segs {
        c.inject("a1", f.clone());
    }
    c.run();
    assert!(taken(&sink) == segs, "cut back, in order");
    assert_eq!((sink.sent.load(Relaxed), c.w[0].crossed.0), (5 + 12, 0));
    sink.refuse_gso.store(0, Relaxed);

    // A socket that refuses everything (a full buffer): the merged frame is handed over whole,
    // and worker 1 sends it, its segments counted as merged; nothing lost.
    sink.error.store(libc::ENOBUFS, Relaxed);
    let merged_before = c.w[1].counters(slot).coalesced;
    for f in &segs {
        c.inject("a1", f.clone());
    }
    c.inject("a1", segs[0].clone());
    c.run();
    assert!(taken(&sink).is_empty());
    let mut want = segs.clone();
    want.push(segs[0].clone());
    assert!(c.take("a2") == want, "sent by worker 1");
    assert_eq!(c.port("a2").whole_sent, 1);
    assert_eq!(
        c.w[0].crossed.0, 2,
        "the merged frame, whole, and the lone segment"
    );
    assert_eq!(c.w[1].counters(slot).coalesced, merged_before + 12);
    sink.error.store(0, Relaxed);

    // A super-frame goes straight too, after the segments of the run open for the port.
    let big: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    for f in &segs[..3] {
        c.inject("a1", f.clone());
    }
    c.inject("a1", super::tests::partial_tcp(VM2, &big, None));
    c.run();
    let out = taken(&sink);
    assert_eq!(out.len(), 3 + 14);
    assert!(out[..3] == segs[..3], "the run first");
    assert_eq!(super::tests::reassembled(&out[3..], 54, 1514), big);
    assert_eq!(c.w[0].crossed.0, 2);

    // The port opened again (its device came back) starts from its own worker's counters:
    // what others sent is not counted twice.
    let o = c.w[1].ports[usize::from(slot)].as_ref().unwrap();
    let kept = Arc::clone(&o.shared);
    c.w[1].publish(Now::default());
    let before = kept.counters.read().counters;
    assert!(before.coalesced >= 12 + 11 + 3, "{before:?}");
    c.w[1].handle(Command::RemovePort { slot }, Now::default());
    c.w[1].handle(
        Command::AddPort {
            slot,
            spec: crate::port::mem::MemSpec {
                capture: true,
                tx_size: 256,
                tx_checksum: true,
                whole: true,
                direct: true,
                shortcut_ifindex: None,
            },
            shared: Arc::clone(&kept),
        },
        Now::default(),
    );
    c.w[1].publish(Now::default());
    let after = kept.counters.read().counters;
    assert_eq!(
        (after.tx_packets, after.tx_bytes, after.coalesced),
        (before.tx_packets, before.tx_bytes, before.coalesced)
    );
    let sink = Arc::clone(c.port("a2").direct.as_ref().unwrap());

    // Once worker 1 closes a2, worker 0 no longer sends through its socket (it hands the
    // segments over, and worker 1 counts them as sent to a port that is down).
    c.w[1].handle(Command::RemovePort { slot }, Now::default());
    for f in &segs {
        c.inject("a1", f.clone());
    }
    c.run();
    assert!(taken(&sink).is_empty());
    assert_eq!(sink.sent.load(Relaxed), 0);
    assert_eq!(c.w[0].crossed.0, 2 + 12);
    c.check_accounting();
}

#[test]
fn tcp_towards_a_port_without_rules_leaves_straight_though_its_network_filters() {
    use super::tests::tcp_segments;
    use crate::acl::{PortFilter, Rule};
    use std::sync::atomic::Ordering::Relaxed;
    // a3 has security groups, a2 none: the network's frames are read to layer 4, but a2's
    // worker has nothing to check for a2, so worker 0 sends a1's segments out of a2 itself.
    let mut c = Crew::socketed(
        4096,
        64,
        |cfg| {
            let any = Rule::new(false, None, None, crate::acl::Remote::Any);
            let filter = Arc::new(PortFilter::new(vec![any.clone()], vec![any]));
            for p in cfg.ports.iter_mut().filter(|p| p.id == "a3") {
                p.filter = Some(Arc::clone(&filter));
            }
        },
        &[],
        &["a2"],
        &["a2"],
    );
    c.announce_vm2();
    let sink = Arc::clone(c.port("a2").direct.as_ref().unwrap());
    let segs = tcp_segments(
        VM2,
        &(0..12_000u32).map(|i| i as u8).collect::<Vec<_>>(),
        1000,
    );
    for f in &segs {
        c.inject("a1", f.clone());
    }
    c.run();
    assert!(*sink.segments.lock().unwrap() == segs, "merged by worker 0");
    assert_eq!(sink.sent.load(Relaxed), 1);
    assert!(c.take("a2").is_empty());
    assert_eq!(c.w[0].crossed.0, 0);
    c.check_accounting();
}

/// IPv4 addresses of VM1 and VM2 in the tests of security groups.
const IP1: [u8; 4] = [198, 18, 0, 1];
const IP2: [u8; 4] = [198, 18, 0, 2];

/// A TCP segment from `src` (port `sport`) to `dst` (port 80 of the other address) with
/// `flags` and `payload`, its checksums right.
fn segment(dst: Mac, src: Mac, sport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    use crate::flow::build::{ipv4_packet, tcp};
    let (from, to) = if src == VM1 { (IP1, IP2) } else { (IP2, IP1) };
    let (sport, dport) = if src == VM1 { (sport, 80) } else { (80, sport) };
    let mut l4 = tcp(sport, dport, flags);
    l4.extend_from_slice(payload);
    let mut f = build_frame(
        dst,
        src,
        None,
        ETHERTYPE_IPV4,
        &ipv4_packet(from, to, 6, &l4, 0, 1),
    );
    let sum = crate::csum::header_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    assert!(crate::csum::make_partial(&mut f));
    crate::csum::complete_partial(&mut f);
    f
}

/// Rules that take TCP in from address set `group` and let any TCP out.
fn tcp_rules(group: &str) -> Option<Arc<crate::acl::PortFilter>> {
    use crate::acl::{PortFilter, Remote, Rule};
    let tcp = |remote| Rule::new(false, Some(6), None, remote);
    Some(Arc::new(PortFilter::new(
        vec![tcp(Remote::Group(Arc::from(group)))],
        vec![tcp(Remote::Any)],
    )))
}

/// An address set of these hosts.
fn hosts(members: &[[u8; 4]]) -> Arc<crate::acl::AddrSet> {
    use crate::security::IpPrefix;
    Arc::new(crate::acl::AddrSet::new(
        members.iter().map(|&a| IpPrefix::host(a.into())),
    ))
}

/// Two workers, a2 (worker 1) with rules that take TCP from group g (VM1's address; group h is
/// empty) and taking super-frames whole, from worker 0 too.
fn guarded_crew() -> Crew {
    Crew::socketed(
        4096,
        64,
        |cfg| {
            for p in cfg.ports.iter_mut().filter(|p| p.id == "a2") {
                p.filter = tcp_rules("g");
            }
            let sets = [
                (Arc::from("g"), hosts(&[IP1])),
                (Arc::from("h"), hosts(&[])),
            ];
            cfg.address_sets = Arc::new(sets.into_iter().collect());
        },
        &[],
        &["a2"],
        &["a2"],
    )
}

#[test]
fn established_tcp_into_a_port_with_rules_leaves_straight_once_its_worker_published_it() {
    use crate::wire::tcp::{ACK, FIN, PSH, RST, SYN};
    let mut c = guarded_crew();
    let sink = Arc::clone(c.port("a2").direct.as_ref().unwrap());
    let straight = |sink: &MemWholeTx| std::mem::take(&mut *sink.segments.lock().unwrap());
    let refused = |c: &Crew| c.counters("a2").drops[DropReason::SgIngress as usize];
    let data = |sport, n: u8| segment(VM2, VM1, sport, PSH | ACK, &[n; 100]);

    // The handshake: the SYN (a flood: VM2 is not known yet) and the acknowledgment cross to
    // worker 1, which checks them against a2's rules and tracks the connection.
    c.inject("a1", segment(Mac::BROADCAST, VM1, 1000, SYN, &[]));
    c.run();
    assert_eq!(c.take("a2").len(), 1, "the SYN");
    for p in ["a3", "up"] {
        c.take(p);
    }
    c.inject("a2", segment(VM1, VM2, 1000, SYN | ACK, &[]));
    c.run();
    assert_eq!(c.take("a1").len(), 1, "the answer");
    c.inject("a1", segment(VM2, VM1, 1000, ACK, &[]));
    c.run();
    assert_eq!(
        c.take("a2").len(),
        1,
        "the acknowledgment, through worker 1"
    );
    assert_eq!(c.w[0].crossed.0, 2);
    assert!(straight(&sink).is_empty());

    // Established now, and published by worker 1: the data goes straight from worker 0.
    c.inject("a1", data(1000, 1));
    c.inject("a1", data(1000, 2));
    c.run();
    assert_eq!(straight(&sink), [data(1000, 1), data(1000, 2)]);
    assert!(c.take("a2").is_empty());
    assert_eq!(c.w[0].crossed.0, 2, "nothing more crossed");

    // A day on, the timeout of an established connection (its last packet at second 0): a2's
    // own segment keeps it alive on worker 1, but what was published counted until then only.
    // The next segment crosses, and worker 1 publishes the connection again.
    c.now = Now::from_nanos(86_400 * 1_000_000_000);
    c.inject("a2", segment(VM1, VM2, 1000, ACK, &[]));
    c.run();
    for p in ["a1", "a3", "up"] {
        c.take(p);
    }
    c.inject("a1", data(1000, 1));
    c.run();
    c.inject("a1", data(1000, 2));
    c.run();
    assert_eq!(c.take("a2"), [data(1000, 1)]);
    assert_eq!(straight(&sink), [data(1000, 2)]);
    assert_eq!(c.w[0].crossed.0, 3);

    // Another connection, never opened with a SYN: its segments cross (the rules let a2's
    // worker track it, but not as established), each of them.
    c.inject("a1", data(1001, 3));
    c.run();
    c.inject("a1", data(1001, 4));
    c.run();
    assert_eq!(c.take("a2"), [data(1001, 3), data(1001, 4)]);
    assert_eq!(c.w[0].crossed.0, 5);

    // A SYN of the published connection, and a first fragment of it, cross: a SYN may start
    // another connection, and a passing first fragment is remembered for the rest.
    let syn = segment(VM2, VM1, 1000, SYN, &[]);
    let mut first = data(1000, 9);
    first[20] |= 0x20;
    first[24..26].fill(0);
    let sum = crate::csum::header_checksum(&first[14..34]);
    first[24..26].copy_from_slice(&sum.to_be_bytes());
    c.inject("a1", syn.clone());
    c.inject("a1", first.clone());
    c.run();
    assert!(straight(&sink).is_empty());
    assert_eq!(c.take("a2"), [syn, first]);
    assert_eq!(c.w[0].crossed.0, 7);

    // A reset crosses, and the owner takes its connection out: the rest of it crosses too.
    for (from, to, flags) in [(VM1, VM2, SYN), (VM2, VM1, SYN | ACK), (VM1, VM2, ACK)] {
        c.inject(
            if from == VM1 { "a1" } else { "a2" },
            segment(to, from, 1002, flags, &[]),
        );
        c.run();
    }
    c.take("a1");
    assert_eq!(c.take("a2").len(), 2, "the SYN and the acknowledgment");
    c.inject("a1", data(1002, 1));
    c.run();
    assert_eq!(straight(&sink), [data(1002, 1)]);
    let rst = segment(VM2, VM1, 1002, RST | ACK, &[]);
    c.inject("a1", rst.clone());
    c.run();
    c.inject("a1", data(1002, 2));
    c.run();
    assert!(straight(&sink).is_empty());
    assert_eq!(c.take("a2"), [rst, data(1002, 2)]);
    assert_eq!(c.w[0].crossed.0, 11);

    // A new policy epoch (an address set changed) that still allows the connection: the next
    // segment crosses to be checked again, then the rest goes straight.
    c.reconfigure(|cfg| {
        let sets = [
            (Arc::from("g"), hosts(&[IP1])),
            (Arc::from("h"), hosts(&[IP2])),
        ];
        cfg.address_sets = Arc::new(sets.into_iter().collect());
        cfg.policy_epoch += 1;
    });
    c.inject("a1", data(1000, 5));
    c.run();
    c.inject("a1", data(1000, 6));
    c.run();
    assert_eq!(c.take("a2"), [data(1000, 5)]);
    assert_eq!(straight(&sink), [data(1000, 6)]);
    assert_eq!(c.w[0].crossed.0, 12);

    // A segment with FIN or RST changes the connection: it crosses, after the data before it.
    c.inject("a1", data(1000, 7));
    c.inject("a1", segment(VM2, VM1, 1000, FIN | ACK, &[]));
    c.run();
    assert_eq!(straight(&sink), [data(1000, 7)]);
    assert_eq!(c.take("a2"), [segment(VM2, VM1, 1000, FIN | ACK, &[])]);
    assert_eq!(c.w[0].crossed.0, 13);

    // Rules that no longer let VM1 in cut the connection: its segments cross and are refused,
    // none goes straight again.
    c.reconfigure(|cfg| {
        for p in cfg.ports.iter_mut().filter(|p| p.id == "a2") {
            p.filter = tcp_rules("h");
        }
        cfg.policy_epoch += 1;
    });
    let before = refused(&c);
    for n in 8..11 {
        c.inject("a1", data(1000, n));
        c.run();
    }
    assert!(straight(&sink).is_empty());
    assert!(c.take("a2").is_empty());
    assert_eq!(refused(&c), before + 3);
    assert_eq!(c.w[0].crossed.0, 16);

    // A reset crosses as well (and is refused with the connection).
    c.inject("a1", segment(VM2, VM1, 1000, RST, &[]));
    c.run();
    assert!(straight(&sink).is_empty());
    assert_eq!(c.w[0].crossed.0, 17);
    c.check_accounting();
}

#[test]
fn a_port_withdrawn_from_the_other_workers_retires_what_it_published() {
    use crate::wire::tcp::{ACK, PSH, SYN};
    let mut c = guarded_crew();
    let slot = c.ports.get("a2").unwrap();
    c.inject("a1", segment(Mac::BROADCAST, VM1, 1000, SYN, &[]));
    c.run();
    c.inject("a2", segment(VM1, VM2, 1000, SYN | ACK, &[]));
    c.run();
    c.inject("a1", segment(VM2, VM1, 1000, ACK, &[]));
    c.run();
    let data = segment(VM2, VM1, 1000, PSH | ACK, &[1; 100]);
    let crate::flow::L3::Ip(f) = crate::flow::parse(&data) else {
        panic!("not IP");
    };
    let key = Key::of(slot, &f.tuple);
    let table = Arc::clone(&c.w[0].direct[usize::from(slot)].as_ref().unwrap().published);
    assert!(table.admits(&key, 0), "published");

    // a2's socket refuses what worker 1 sends it whole, for a reason other than room: after
    // WHOLE_REFUSALS frames a2 takes no more, and worker 1 withdraws it from worker 0. The
    // table worker 0 still holds admits nothing from then on.
    c.port("a2").whole_error = Some(libc::EINVAL);
    let segs = super::tests::tcp_segments(VM2, &[7; 2000], 1000);
    for _ in 0..WHOLE_REFUSALS {
        for f in &segs {
            c.inject("a1", f.clone());
        }
        c.run();
    }
    assert!(!table.admits(&key, 0), "retired");
    assert!(c.w[0].direct[usize::from(slot)].is_none(), "withdrawn");
    c.check_accounting();
}

#[test]
fn a_merged_run_the_other_workers_socket_refuses_crosses_whole_in_its_round() {
    use std::sync::atomic::Ordering::Relaxed;
    let (mut c, sink) = a2_sent_to_straight(64, 1500);
    // a2's socket refuses everything: a1's run, merged by worker 0, crosses whole within worker
    // 0's round, and worker 1's next round sends it.
    sink.error.store(libc::ENOBUFS, Relaxed);
    let segs = super::tests::tcp_segments(VM2, &[5u8; 6000], 1000);
    for f in &segs {
        c.inject("a1", f.clone());
    }
    c.w[0].poll(c.now);
    c.w[1].poll(c.now);
    assert!(c.take("a2") == segs, "sent by worker 1 in its next round");
    assert_eq!(c.w[0].crossed.0, 1, "whole");
    let slot = c.ports.get("a2").unwrap();
    assert_eq!(c.w[1].counters(slot).coalesced, 6, "its segments, merged");
    assert_eq!(c.counters("a1").drops.iter().sum::<u64>(), 0);
    c.run();
    c.check_accounting();
}

/// A segment that crossed (a2's socket refused it) is not overtaken by the flow's next one:
/// worker 0 sends a2's TCP straight again only once worker 1 has sent what crossed.
#[test]
fn a_segment_that_crossed_is_not_overtaken_by_the_next_sent_straight() {
    use crate::wire::tcp::{ACK, PSH};
    use std::sync::atomic::Ordering::Relaxed;
    let (mut c, sink) = a2_sent_to_straight(64, 1500);
    let straight = |sink: &MemWholeTx| std::mem::take(&mut *sink.segments.lock().unwrap());
    let data = |n: u8| segment(VM2, VM1, 1000, PSH | ACK, &[n; 100]);
    sink.error.store(libc::ENOBUFS, Relaxed);
    c.inject("a1", data(1));
    c.w[0].poll(c.now);
    sink.error.store(0, Relaxed);
    c.inject("a1", data(2));
    c.w[0].poll(c.now);
    assert!(straight(&sink).is_empty(), "behind the one that crossed");
    c.w[1].poll(c.now);
    assert_eq!(c.take("a2"), [data(1), data(2)]);
    c.inject("a1", data(3));
    c.w[0].poll(c.now);
    assert_eq!(straight(&sink), [data(3)], "straight again");
    assert_eq!(c.w[0].crossed.0, 2);
    c.run();
    c.check_accounting();
}

/// Rules given to a2 reach its worker first: the other worker, whose snapshot has none yet,
/// sends a2 straight only the connections a2's worker published (none), as the owner's offer
/// says, and the rest crosses to be checked there.
#[test]
fn tcp_into_a_port_its_owner_filters_crosses_though_the_senders_snapshot_has_no_rules() {
    use crate::wire::tcp::{ACK, PSH};
    let (mut c, sink) = a2_sent_to_straight(64, 1500);
    let data = |n: u8| segment(VM2, VM1, 1000, PSH | ACK, &[n; 100]);
    c.inject("a1", data(1));
    c.run();
    assert_eq!(sink.segments.lock().unwrap().len(), 1, "straight before");
    let snap = c.next_snapshot(|cfg| {
        for p in cfg.ports.iter_mut().filter(|p| p.id == "a2") {
            p.filter = tcp_rules("g");
        }
    });
    c.w[1].handle(Command::Snapshot(snap), Now::default());
    let crossed = c.w[0].crossed.0;
    c.inject("a1", data(2));
    c.w[0].poll(c.now);
    assert_eq!(sink.segments.lock().unwrap().len(), 1, "not straight");
    assert_eq!(c.w[0].crossed.0, crossed + 1);
    c.w[1].poll(c.now);
    assert!(
        c.take("a2").is_empty(),
        "no connection: refused by a2's rules"
    );
    assert_eq!(c.counters("a2").drops[DropReason::SgIngress as usize], 1);
}

/// Two workers with `depth` buffers between them, a2 (worker 1) with MTU `mtu`, taking
/// super-frames whole, from worker 0 too, through its socket; VM2 announced on it. Returns the
/// socket's sink too.
fn a2_sent_to_straight(depth: usize, mtu: u32) -> (Crew, Arc<MemWholeTx>) {
    let mut c = Crew::socketed(
        4096,
        depth,
        |cfg| {
            for p in cfg.ports.iter_mut().filter(|p| p.id == "a2") {
                p.mtu = Some(mtu);
            }
        },
        &[],
        &["a2"],
        &["a2"],
    );
    c.announce_vm2();
    let sink = Arc::clone(c.port("a2").direct.as_ref().unwrap());
    (c, sink)
}

#[test]
fn a_super_frame_refused_whole_leaves_straight_in_segments_that_fit_the_egress_port() {
    use std::sync::atomic::Ordering::Relaxed;
    // a2 (worker 1) has a smaller MTU than a1, and its guest end takes no frame to be segmented.
    let (mut c, sink) = a2_sent_to_straight(64, 1000);
    sink.refuse_gso.store(libc::ENOBUFS, Relaxed);
    let big: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    c.inject("a1", super::tests::partial_tcp(VM2, &big, None));
    c.run();
    let out = std::mem::take(&mut *sink.segments.lock().unwrap());
    assert_eq!(out.len(), 20_000usize.div_ceil(1000 - 40));
    assert!(out.iter().all(|f| f.len() <= 1014), "within a2's MTU");
    assert_eq!(super::tests::reassembled(&out, 54, 1014), big);
    assert_eq!(c.w[0].crossed.0, 0);
    assert_eq!(c.counters("a1").gso_segmented, 1, "cut, not sent whole");
    c.check_accounting();
}

#[test]
fn a_super_frame_the_other_workers_socket_refuses_crosses_whole_or_within_the_free_buffers() {
    use std::sync::atomic::Ordering::Relaxed;
    // 16 buffers from worker 0 to worker 1; a2 (worker 1, MTU 600) takes super-frames whole,
    // from worker 0 too, but its socket refuses everything (a full buffer).
    let (mut c, sink) = a2_sent_to_straight(16, 600);
    sink.error.store(libc::ENOBUFS, Relaxed);
    let no_buffer = |c: &Crew| c.counters("a1").drops[DropReason::NoBuffer as usize];
    let big: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    // 36 segments of 560 bytes, more than the 16 buffers: the frame crosses whole, and worker
    // 1 sends it. (Cut here, 20 of its segments were lost.)
    c.inject("a1", super::tests::partial_tcp(VM2, &big, None));
    c.run();
    assert!(
        super::tests::reassembled(&c.take("a2"), 54, 614) == big,
        "all of it"
    );
    assert_eq!((c.w[0].crossed.0, no_buffer(&c)), (1, 0));

    // Every buffer for super-frames in flight: cut here, its 36 segments do not fit the 16
    // buffers, so it is lost whole, counted once; none of it crosses.
    let held = c.w[0].links.out[1].as_mut().unwrap().hold_whole();
    c.inject("a1", super::tests::partial_tcp(VM2, &big, None));
    c.run();
    assert!(c.take("a2").is_empty(), "no segment of it");
    assert_eq!((c.w[0].crossed.0, no_buffer(&c)), (1, 1));

    // Its 8 segments fit: they cross, and worker 1 sends them, with the frames behind it.
    let small: Vec<u8> = (0..4_000u32).map(|i| (i % 241) as u8).collect();
    c.inject("a1", super::tests::partial_tcp(VM2, &small, None));
    for _ in 0..4 {
        c.inject("a1", frame(VM2, VM1));
    }
    c.run();
    let out = c.take("a2");
    assert_eq!(out.len(), 8 + 4);
    assert!(
        super::tests::reassembled(&out[..8], 54, 614) == small,
        "all of it"
    );
    assert_eq!((c.w[0].crossed.0, no_buffer(&c)), (1 + 8 + 4, 1));
    // A merged run of 12 segments of 1000 bytes, cut again for a2 into 22 of 560, more than
    // the 16 buffers: lost, each of the 12 segments received counted.
    let segs = super::tests::tcp_segments(VM2, &[7u8; 12_000], 1000);
    for f in &segs {
        c.inject("a1", f.clone());
    }
    c.run();
    assert!(c.take("a2").is_empty(), "no segment of it");
    assert_eq!((c.w[0].crossed.0, no_buffer(&c)), (13, 1 + 12));
    // The same run, refused whole (its guest end takes no frame to be segmented), its socket
    // taking 5 of its 22 segments before it is full: the other 17 do not fit the 16 buffers,
    // and their share of the 12 merged segments, 10, is lost.
    sink.error.store(0, Relaxed);
    sink.refuse_gso.store(libc::ENOBUFS, Relaxed);
    *sink.room.lock().unwrap() = Some(5);
    for f in &segs {
        c.inject("a1", f.clone());
    }
    c.run();
    assert_eq!(sink.segments.lock().unwrap().len(), 5, "sent straight");
    assert!(c.take("a2").is_empty(), "nothing of the rest");
    assert_eq!((c.w[0].crossed.0, no_buffer(&c)), (13, 1 + 12 + 10));
    *sink.room.lock().unwrap() = None;
    sink.refuse_gso.store(0, Relaxed);
    c.w[0].links.out[1].as_mut().unwrap().unhold_whole(held);
    c.check_accounting();
}

/// A TCP acknowledgment without a payload from VM1 to `dst` over IPv6, its checksum left
/// partial as a guest with checksum offload leaves it.
fn partial_ack_v6(dst: Mac) -> Vec<u8> {
    let mut ip = vec![0x60, 0, 0, 0, 0, 20, 6, 64];
    ip.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    ip.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    let mut tcp = [0u8; 20];
    tcp[12] = 5 << 4;
    tcp[13] = 0x10;
    ip.extend_from_slice(&tcp);
    let mut f = build_frame(dst, VM1, None, crate::wire::ETHERTYPE_IPV6, &ip);
    assert!(crate::csum::make_partial(&mut f));
    f
}

/// `f` with its partial checksum finished, as the kernel finishes it on transmit.
fn finished(f: &[u8]) -> Vec<u8> {
    let mut f = f.to_vec();
    crate::csum::complete_partial(&mut f);
    f
}

#[test]
fn tcp_without_a_payload_towards_the_other_workers_vm_leaves_straight_too() {
    use std::sync::atomic::Ordering::Relaxed;
    let mut c = Crew::socketed(4096, 64, |_| {}, &[], &["a2"], &["a2"]);
    c.announce_vm2();
    let sink = Arc::clone(c.port("a2").direct.as_ref().unwrap());
    // An acknowledgment as a guest with checksum offload sends it (partial), the same padded
    // to Ethernet's shortest frame, one whose checksum is simply wrong, and one over IPv6.
    let mut ack = super::tests::partial_tcp(VM2, &[], None);
    let sum = crate::csum::header_checksum(&ack[14..34]);
    ack[24..26].copy_from_slice(&sum.to_be_bytes());
    let mut padded = ack.clone();
    padded.resize(60, 0);
    let mut wrong = finished(&ack);
    wrong[50] ^= 0x40;
    let v6 = partial_ack_v6(VM2);
    for f in [&ack, &padded, &wrong, &v6] {
        c.inject("a1", f.clone());
    }
    c.run();
    let out = std::mem::take(&mut *sink.segments.lock().unwrap());
    assert_eq!(out.len(), 4, "through a2's socket, from worker 0");
    assert_eq!(c.w[0].crossed.0, 0, "nothing crossed");
    assert!(
        out[0] == finished(&ack),
        "its checksum finished on transmit"
    );
    assert!(out[1] == finished(&ack), "without the padding, finished");
    assert!(out[2] == wrong, "the wrong checksum left wrong");
    assert_eq!(crate::csum::verify(&out[2]), Some(false));
    assert!(out[3] == finished(&v6), "IPv6, finished");
    assert_eq!(crate::csum::verify(&out[3]), Some(true));
    assert_eq!(sink.sent.load(Relaxed), 4);

    // Refused by the socket (a full buffer), it crosses, and worker 1 finishes its checksum.
    sink.error.store(libc::ENOBUFS, Relaxed);
    c.inject("a1", ack.clone());
    c.run();
    assert_eq!(c.w[0].crossed.0, 1);
    assert!(c.take("a2") == [finished(&ack)], "sent by worker 1");
    c.check_accounting();
}

#[test]
fn tcp_without_a_payload_from_the_trunk_leaves_straight_its_tag_popped() {
    use std::sync::atomic::Ordering::Relaxed;
    // a1 (worker 0) takes frames from worker 1, which owns the trunk.
    let mut c = Crew::socketed(4096, 64, |_| {}, &[], &["a1"], &["a1"]);
    c.inject("a1", frame(Mac::BROADCAST, VM1));
    c.run();
    for p in ["a2", "a3", "up"] {
        c.take(p);
    }
    let sink = Arc::clone(c.port("a1").direct.as_ref().unwrap());
    // From a host beyond the trunk, tagged with network a's VLAN.
    let from = |tag| {
        let mut f = super::tests::partial_tcp(VM1, &[], tag);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 9]);
        f
    };
    c.inject("up", from(Some(10)));
    c.run();
    let out = std::mem::take(&mut *sink.segments.lock().unwrap());
    assert!(
        out == [finished(&from(None))],
        "untagged, its checksum finished"
    );
    assert_eq!(c.w[1].crossed.0, 0, "nothing crossed");
    assert_eq!(sink.sent.load(Relaxed), 1);
    c.check_accounting();
}
