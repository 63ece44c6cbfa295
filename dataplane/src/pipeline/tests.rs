//! Unit and property tests of the forwarding decision.

use proptest::prelude::*;

use super::*;
use crate::config::{NetworkConfig, PortConfig, SlotMap, SwitchConfig};
use crate::policer::PolicerConfig;
use crate::security::PortSecurity;
use crate::wire::{build_frame, ETHERTYPE_IPV4};

const VM1: Mac = Mac([0x02, 0, 0, 0, 0, 1]);
const VM2: Mac = Mac([0x02, 0, 0, 0, 0, 2]);
const VM3: Mac = Mac([0x02, 0, 0, 0, 0, 3]);

struct Fixture {
    snap: Snapshot,
    pipe: Pipeline,
    nets: SlotMap,
    ports: SlotMap,
    cfg: SwitchConfig,
}

impl Fixture {
    /// Networks a (VLAN 10) and b (VLAN 20); ports a1, a2, a3 in a, b1 in b, trunk up.
    fn new() -> Fixture {
        let net = |id: &str, vlan| NetworkConfig {
            id: id.into(),
            vlan,
            mac_limit: 8192,
            physnet: Some(crate::config::DEFAULT_PHYSNET.into()),
        };
        let cfg = SwitchConfig {
            networks: vec![net("a", 10), net("b", 20)],
            ports: vec![
                PortConfig::access("a1", "d1", "a"),
                PortConfig::access("a2", "d2", "a"),
                PortConfig::access("a3", "d3", "a"),
                PortConfig::access("b1", "d4", "b"),
                PortConfig::trunk("up", "d5"),
            ],
            ..SwitchConfig::default()
        };
        let mut f = Fixture {
            snap: Snapshot::default(),
            pipe: Pipeline::default(),
            nets: SlotMap::default(),
            ports: SlotMap::default(),
            cfg,
        };
        f.apply();
        f
    }

    fn apply(&mut self) {
        self.cfg.validate().unwrap();
        self.snap = Snapshot::compile(&self.cfg, 1, &mut self.nets, &mut self.ports);
        self.pipe.adopt(&self.snap, Now::default());
    }

    fn port_cfg(&mut self, id: &str) -> &mut PortConfig {
        self.cfg.ports.iter_mut().find(|p| p.id == id).unwrap()
    }

    fn p(&self, id: &str) -> u16 {
        self.ports.get(id).unwrap()
    }

    fn n(&self, id: &str) -> u16 {
        self.nets.get(id).unwrap()
    }

    fn send(&mut self, from: &str, frame: &[u8]) -> Verdict {
        let slot = self.p(from);
        self.pipe.process(&self.snap, slot, frame, Now::default())
    }

    fn drops(&self, port: &str, reason: DropReason) -> u64 {
        self.pipe.counters[usize::from(self.p(port))].drops[reason as usize]
    }
}

fn frame(dst: Mac, src: Mac) -> Vec<u8> {
    build_frame(dst, src, None, ETHERTYPE_IPV4, &[0; 46])
}

fn tagged(dst: Mac, src: Mac, vid: u16) -> Vec<u8> {
    build_frame(dst, src, Some(vid), ETHERTYPE_IPV4, &[0; 46])
}

#[test]
fn unknown_unicast_floods_then_learned_address_is_unicast() {
    let mut f = Fixture::new();
    let a = f.n("a");
    assert_eq!(f.send("a1", &frame(VM2, VM1)), Verdict::Flood { net: a });
    assert_eq!(
        f.send("a2", &frame(VM1, VM2)),
        Verdict::Unicast {
            port: f.p("a1"),
            net: a
        }
    );
}

#[test]
fn flood_scope_is_the_network_and_trunk_without_ingress() {
    let f = Fixture::new();
    let targets: Vec<u16> = flood_targets(&f.snap, f.n("a"), f.p("a1")).collect();
    assert_eq!(targets, vec![f.p("a2"), f.p("a3"), f.p("up")]);
    let from_trunk: Vec<u16> = flood_targets(&f.snap, f.n("b"), f.p("up")).collect();
    assert_eq!(from_trunk, vec![f.p("b1")]);
}

#[test]
fn broadcast_and_multicast_flood() {
    let mut f = Fixture::new();
    let a = f.n("a");
    assert_eq!(
        f.send("a1", &frame(Mac::BROADCAST, VM1)),
        Verdict::Flood { net: a }
    );
    let mcast = Mac([0x01, 0x00, 0x5e, 0, 0, 1]);
    assert_eq!(f.send("a1", &frame(mcast, VM1)), Verdict::Flood { net: a });
}

#[test]
fn networks_are_isolated_even_with_the_same_mac() {
    let mut f = Fixture::new();
    f.send("b1", &frame(Mac::BROADCAST, VM2)); // VM2 learned in b only
    assert_eq!(
        f.send("a1", &frame(VM2, VM1)),
        Verdict::Flood { net: f.n("a") }
    );
    // The same MAC now also appears in network a, on a2.
    f.send("a2", &frame(Mac::BROADCAST, VM2));
    assert_eq!(
        f.send("a1", &frame(VM2, VM1)),
        Verdict::Unicast {
            port: f.p("a2"),
            net: f.n("a")
        }
    );
    assert_eq!(
        f.pipe.fdb.lookup(f.n("b"), VM2, 0),
        Some(PortRef {
            slot: f.p("b1"),
            gen: 1
        })
    );
}

#[test]
fn an_entry_naming_a_port_of_another_segment_floods_and_never_leaves_there() {
    // As a worker still on a snapshot from before network a moved (or its slot was reused)
    // may leave: entries of a naming b's access port, and the uplink of another physical
    // network.
    let mut f = Fixture::new();
    f.cfg
        .ports
        .push(PortConfig::uplink("up2", "d6", "physnet2"));
    f.apply();
    let a = f.n("a");
    let at = |f: &Fixture, id: &str| PortRef {
        slot: f.p(id),
        gen: 1,
    };
    for (mac, port) in [(VM2, "b1"), (VM3, "up2")] {
        assert_eq!(f.pipe.fdb.learn(a, mac, at(&f, port), 0), Learn::Learned);
        assert_eq!(
            f.send("a1", &frame(mac, VM1)),
            Verdict::Flood { net: a },
            "not out of {port}"
        );
    }
    // The trunk of a's own physical network and a's own ports do carry it.
    assert_eq!(f.pipe.fdb.learn(a, VM3, at(&f, "up"), 0), Learn::Moved);
    let to_up = Verdict::Unicast {
        port: f.p("up"),
        net: a,
    };
    assert_eq!(f.send("a1", &frame(VM3, VM1)), to_up);
}

#[test]
fn an_entry_of_a_removed_port_whose_slot_the_ingress_took_floods() {
    let mut f = Fixture::new();
    // An entry of an earlier port in a1's slot (generation 0, before a1's 1).
    let gone = PortRef {
        slot: f.p("a1"),
        gen: 0,
    };
    f.pipe.fdb.learn(f.n("a"), VM3, gone, 0);
    assert_eq!(
        f.send("a1", &frame(VM3, VM1)),
        Verdict::Flood { net: f.n("a") }
    );
    assert_eq!(f.drops("a1", DropReason::SamePort), 0);
}

#[test]
fn tagged_frame_from_access_port_is_dropped() {
    let mut f = Fixture::new();
    assert_eq!(
        f.send("a1", &tagged(VM2, VM1, 20)),
        Verdict::Drop(DropReason::TaggedOnAccess)
    );
    assert_eq!(f.drops("a1", DropReason::TaggedOnAccess), 1);
    // Nothing was learned from it.
    assert_eq!(f.pipe.fdb.lookup(f.n("a"), VM1, 0), None);
}

#[test]
fn double_tagged_frame_from_access_port_is_dropped() {
    let mut f = Fixture::new();
    let inner = tagged(VM2, VM1, 20);
    let mut qinq = inner[..12].to_vec();
    qinq.extend_from_slice(&[0x88, 0xa8, 0, 10]);
    qinq.extend_from_slice(&inner[12..]);
    assert_eq!(
        f.send("a1", &qinq),
        Verdict::Drop(DropReason::TaggedOnAccess)
    );
}

#[test]
fn trunk_frames_are_classified_by_vlan() {
    let mut f = Fixture::new();
    assert_eq!(
        f.send("up", &tagged(VM2, VM1, 20)),
        Verdict::Flood { net: f.n("b") }
    );
    assert_eq!(
        f.send("up", &tagged(VM2, VM1, 30)),
        Verdict::Drop(DropReason::UnknownVlan)
    );
    assert_eq!(
        f.send("up", &frame(VM2, VM1)),
        Verdict::Drop(DropReason::UntaggedOnTrunk)
    );
    // A reply from b1 goes back to the trunk as unicast.
    assert_eq!(
        f.send("b1", &frame(VM1, VM2)),
        Verdict::Unicast {
            port: f.p("up"),
            net: f.n("b")
        }
    );
}

#[test]
fn double_tagged_frame_on_trunk_is_dropped() {
    let mut f = Fixture::new();
    let inner = tagged(VM2, VM1, 20);
    let mut qinq = inner[..12].to_vec();
    qinq.extend_from_slice(&[0x81, 0x00, 0, 10]);
    qinq.extend_from_slice(&inner[12..]);
    assert_eq!(f.send("up", &qinq), Verdict::Drop(DropReason::UnknownVlan));
}

#[test]
fn admin_down_port_neither_receives_nor_sends() {
    let mut f = Fixture::new();
    f.send("a2", &frame(Mac::BROADCAST, VM2));
    f.port_cfg("a2").admin_up = false;
    f.apply();
    assert_eq!(
        f.send("a2", &frame(VM1, VM2)),
        Verdict::Drop(DropReason::PortDown)
    );
    assert_eq!(
        f.send("a1", &frame(VM2, VM1)),
        Verdict::Drop(DropReason::EgressDown)
    );
    let targets: Vec<u16> = flood_targets(&f.snap, f.n("a"), f.p("a1")).collect();
    assert!(!targets.contains(&f.p("a2")));
}

#[test]
fn destination_on_the_ingress_port_is_dropped() {
    let mut f = Fixture::new();
    f.send("a1", &frame(Mac::BROADCAST, VM1));
    assert_eq!(
        f.send("a1", &frame(VM1, VM3)),
        Verdict::Drop(DropReason::SamePort)
    );
}

#[test]
fn mac_move_is_counted_and_followed() {
    let mut f = Fixture::new();
    f.send("a1", &frame(Mac::BROADCAST, VM1));
    f.send("a2", &frame(Mac::BROADCAST, VM1));
    assert_eq!(f.pipe.counters[usize::from(f.p("a2"))].mac_moves, 1);
    assert_eq!(
        f.send("a3", &frame(VM1, VM3)),
        Verdict::Unicast {
            port: f.p("a2"),
            net: f.n("a")
        }
    );
}

/// The pipeline reuses the table's recent answers for sources and destinations; a change any
/// other view (another worker) makes ends them at once, not at the next second.
#[test]
fn the_tables_recent_answers_are_reused_only_while_no_worker_changed_the_table() {
    let mut f = Fixture::new();
    let (a, a1, a2, a3) = (f.n("a"), f.p("a1"), f.p("a2"), f.p("a3"));
    let port = |f: &Fixture, slot: u16| PortRef {
        slot,
        gen: f.snap.port(slot).unwrap().gen,
    };
    let other = f.pipe.fdb.clone();
    f.send("a2", &frame(Mac::BROADCAST, VM2));
    for _ in 0..2 {
        assert_eq!(
            f.send("a1", &frame(VM2, VM1)),
            Verdict::Unicast { port: a2, net: a }
        );
    }
    // The destination moves on another worker: followed by the very next frame.
    assert_eq!(other.learn(a, VM2, port(&f, a3), 0), Learn::Moved);
    assert_eq!(
        f.send("a1", &frame(VM2, VM1)),
        Verdict::Unicast { port: a3, net: a }
    );
    // Removed there: flooded.
    assert!(other.remove(a, VM2, 0));
    assert_eq!(f.send("a1", &frame(VM2, VM1)), Verdict::Flood { net: a });
    // The source moves away on another worker: the next frame from it moves it back.
    assert_eq!(other.learn(a, VM1, port(&f, a3), 0), Learn::Moved);
    f.send("a1", &frame(VM2, VM1));
    assert_eq!(other.lookup(a, VM1, 0), Some(port(&f, a1)));
    assert_eq!(f.pipe.counters[usize::from(a1)].mac_moves, 1);
    // A shorter aging time, set elsewhere, counts as a change too.
    f.send("a2", &frame(VM1, VM2));
    assert_eq!(
        f.send("a1", &frame(VM2, VM1)),
        Verdict::Unicast { port: a2, net: a }
    );
    let at = |s: u64| Now::from_nanos(s * 1_000_000_000);
    f.pipe.process(&f.snap, a1, &frame(VM2, VM1), at(5));
    other.set_aging_secs(2);
    assert_eq!(
        f.pipe.process(&f.snap, a1, &frame(VM2, VM1), at(5)),
        Verdict::Flood { net: a },
        "VM2, last seen at 0, expired with an aging time of 2 s"
    );
}

/// Sources that take turns on one port (a trunk's, the packet harness's) are each remembered;
/// an answer of an epoch that came round again after 2^32 is not.
#[test]
fn the_memory_holds_interleaved_sources_and_forgets_across_an_epochs_wrap() {
    let mut f = Fixture::new();
    let (a, a1, a2) = (f.n("a"), f.p("a1"), f.p("a2"));
    f.send("a2", &frame(Mac::BROADCAST, VM2));
    let sources: Vec<Mac> = (1..=16).map(|i| Mac([0x02, 1, 0, 0, 0, i])).collect();
    for _ in 0..3 {
        for &s in &sources {
            assert_eq!(
                f.send("a1", &frame(VM2, s)),
                Verdict::Unicast { port: a2, net: a }
            );
        }
    }
    let me = PortRef {
        slot: a1,
        gen: f.snap.port(a1).unwrap().gen,
    };
    let remembered = sources
        .iter()
        .filter(|&&s| {
            let key = MacTable::key(a, s);
            f.pipe.memo.source(key) == Some(me)
        })
        .count();
    // Direct-mapped: two of the 16 may share a slot.
    assert!(remembered >= 12, "{remembered} of 16 sources remembered");
    let key = MacTable::key(a, VM2);
    assert!(f.pipe.memo.destination(key).is_some());
    // The epoch wraps: every slot of the old epochs is forgotten.
    let (changes, secs) = (f.pipe.memo.changes, f.pipe.memo.secs);
    f.pipe.memo.epoch = u32::MAX;
    f.pipe.memo.dst[Memo::slot(key)].epoch = 1;
    f.pipe.memo.hold(changes + 1, secs);
    assert_eq!(f.pipe.memo.epoch, 1);
    assert_eq!(f.pipe.memo.destination(key), None);
}

/// A frame from an address to itself, just moved by that very frame, is seen as on the ingress
/// port (dropped), not sent to where the address was remembered.
#[test]
fn a_move_made_by_the_frame_itself_ends_the_answers() {
    let mut f = Fixture::new();
    let a1 = f.p("a1");
    f.send("a2", &frame(Mac::BROADCAST, VM1));
    assert!(matches!(
        f.send("a1", &frame(VM1, VM2)),
        Verdict::Unicast { .. }
    ));
    assert_eq!(
        f.send("a1", &frame(VM1, VM1)),
        Verdict::Drop(DropReason::SamePort)
    );
    assert_eq!(f.pipe.counters[usize::from(a1)].mac_moves, 1);
}

/// Adopting a snapshot, or picking up a table another view grew, forgets every answer.
#[test]
fn a_snapshot_or_a_grown_table_ends_the_answers() {
    let mut f = Fixture::new();
    let a = f.n("a");
    f.send("a2", &frame(Mac::BROADCAST, VM2));
    f.send("a1", &frame(VM2, VM1));
    let key = MacTable::key(a, VM2);
    let remembered = |f: &Fixture| f.pipe.memo.destination(key).is_some();
    assert!(remembered(&f));
    f.apply();
    assert!(!remembered(&f), "a snapshot adopted");
    f.send("a1", &frame(VM2, VM1));
    assert!(remembered(&f));
    let mut grower = f.pipe.fdb.clone();
    grower.reserve(1 << 16);
    f.pipe.refresh(Now::default());
    assert!(!remembered(&f), "a grown table picked up");
}

#[test]
fn a_source_met_while_the_table_grows_is_forwarded_and_learned_once_it_is_grown() {
    let mut f = Fixture::new();
    f.send("a1", &frame(Mac::BROADCAST, VM1));
    f.send("a3", &frame(Mac::BROADCAST, VM3));
    let (go, grower) = f.pipe.fdb.growth_paused(100_000);
    let to = |f: &Fixture, port: &str| Verdict::Unicast {
        port: f.p(port),
        net: f.n("a"),
    };
    // VM2 is new: its frame goes where VM1 is, and a frame to VM2 floods. VM3 moves to a2 in
    // one frame (a migrated VM's announcement): frames to it still go to a3 meanwhile.
    assert_eq!(f.send("a2", &frame(VM1, VM2)), to(&f, "a1"));
    assert_eq!(f.send("a2", &frame(Mac::BROADCAST, VM3)), flood(&f));
    assert_eq!(f.pipe.counters[usize::from(f.p("a2"))].learn_deferred, 2);
    assert_eq!(f.send("a1", &frame(VM2, VM1)), flood(&f));
    assert_eq!(f.send("a1", &frame(VM3, VM1)), to(&f, "a3"));
    // Not while the copy runs.
    f.pipe.refresh(Now::default());
    assert_eq!(f.send("a1", &frame(VM2, VM1)), flood(&f));
    go.send(()).unwrap();
    grower.join().unwrap();
    // The worker's next round learns both, without another frame from them.
    f.pipe.refresh(Now::default());
    assert_eq!(f.send("a1", &frame(VM2, VM1)), to(&f, "a2"));
    assert_eq!(f.send("a1", &frame(VM3, VM1)), to(&f, "a2"));
    let a2 = f.pipe.counters[usize::from(f.p("a2"))];
    assert_eq!((a2.learn_deferred, a2.mac_moves), (2, 1));
}

#[test]
fn a_deferred_address_is_learned_where_it_was_last_seen_unless_learned_since() {
    let mut f = Fixture::new();
    for (port, vm) in [("a1", VM1), ("a3", VM3)] {
        f.send(port, &frame(Mac::BROADCAST, vm));
    }
    let (go, grower) = f.pipe.fdb.growth_paused(100_000);
    // VM2 is seen on a2, then a3: one address to learn, at a3. VM3 is seen on a2.
    f.send("a2", &frame(Mac::BROADCAST, VM2));
    f.send("a3", &frame(Mac::BROADCAST, VM2));
    f.send("a2", &frame(Mac::BROADCAST, VM3));
    go.send(()).unwrap();
    grower.join().unwrap();
    // Before the worker's next round, a frame learns VM3 on a1 (into the grown table): that
    // stands.
    f.send("a1", &frame(Mac::BROADCAST, VM3));
    f.pipe.refresh(Now::default());
    assert!(!f.pipe.has_deferred());
    let to = |f: &Fixture, port: &str| Verdict::Unicast {
        port: f.p(port),
        net: f.n("a"),
    };
    assert_eq!(f.send("a1", &frame(VM2, VM1)), to(&f, "a3"));
    assert_eq!(f.send("a3", &frame(VM3, VM2)), to(&f, "a1"));
}

#[test]
fn a_deferred_address_of_a_port_that_went_is_forgotten() {
    let mut f = Fixture::new();
    f.send("a1", &frame(Mac::BROADCAST, VM1));
    let (go, grower) = f.pipe.fdb.growth_paused(100_000);
    f.send("a2", &frame(Mac::BROADCAST, VM1));
    f.cfg.ports.retain(|p| p.id != "a2");
    f.apply();
    go.send(()).unwrap();
    grower.join().unwrap();
    f.pipe.refresh(Now::default());
    assert!(!f.pipe.has_deferred());
    assert_eq!(
        f.send("a3", &frame(VM1, VM3)),
        Verdict::Unicast {
            port: f.p("a1"),
            net: f.n("a")
        }
    );
}

fn flood(f: &Fixture) -> Verdict {
    Verdict::Flood { net: f.n("a") }
}

#[test]
fn learn_limit_floods_but_does_not_learn() {
    let mut f = Fixture::new();
    f.cfg.networks[0].mac_limit = 2;
    f.apply();
    for i in 0..5u8 {
        f.send("a1", &frame(Mac::BROADCAST, Mac([2, 0, 0, 0, 1, i])));
    }
    assert_eq!(f.pipe.counters[usize::from(f.p("a1"))].learn_limit, 3);
    assert_eq!(f.pipe.fdb.network_len(f.n("a")), 2);
    assert_eq!(
        f.send("a2", &frame(Mac([2, 0, 0, 0, 1, 4]), VM2)),
        Verdict::Flood { net: f.n("a") }
    );
}

#[test]
fn aging_uses_the_batch_clock() {
    let mut f = Fixture::new();
    let a1 = f.p("a1");
    f.pipe
        .process(&f.snap, a1, &frame(Mac::BROADCAST, VM1), Now::from_nanos(0));
    let a2 = f.p("a2");
    let at = |s: u64| Now::from_nanos(s * 1_000_000_000);
    assert!(matches!(
        f.pipe.process(&f.snap, a2, &frame(VM1, VM2), at(299)),
        Verdict::Unicast { .. }
    ));
    assert!(matches!(
        f.pipe.process(&f.snap, a2, &frame(VM1, VM2), at(300)),
        Verdict::Flood { .. }
    ));
}

#[test]
fn removed_network_forgets_its_macs() {
    let mut f = Fixture::new();
    f.send("b1", &frame(Mac::BROADCAST, VM2));
    f.cfg.ports.retain(|p| p.id != "b1");
    f.cfg.networks.retain(|n| n.id != "b");
    f.apply();
    f.cfg.networks.push(NetworkConfig {
        id: "c".into(),
        vlan: 30,
        mac_limit: 10,
        physnet: Some(crate::config::DEFAULT_PHYSNET.into()),
    });
    f.cfg.ports.push(PortConfig::access("c1", "d6", "c"));
    f.apply();
    assert_eq!(f.nets.get("c"), Some(f.n("c")));
    assert_eq!(f.pipe.fdb.lookup(f.n("c"), VM2, 0), None);
}

#[test]
fn static_entries_are_installed_from_config() {
    let mut f = Fixture::new();
    f.port_cfg("a3").static_macs = vec![VM3];
    f.apply();
    assert_eq!(
        f.send("a1", &frame(VM3, VM1)),
        Verdict::Unicast {
            port: f.p("a3"),
            net: f.n("a")
        }
    );
}

/// A static entry goes with the port that claimed it, or when the port no longer claims the
/// address (nothing else would remove it: static entries never age): the address is learned
/// where it is heard next, and no longer counts against its network's limit. Another port's
/// claim, at the same slot or not, stays.
#[test]
fn static_entries_go_when_their_port_no_longer_claims_them() {
    let mut f = Fixture::new();
    let a = f.n("a");
    let static_of = |f: &Fixture, mac| {
        f.pipe
            .fdb
            .entries(a, 0)
            .into_iter()
            .find(|e| e.mac == mac)
            .map(|e| (e.port.slot, e.is_static))
    };
    f.port_cfg("a3").static_macs = vec![VM3];
    f.port_cfg("a2").static_macs = vec![VM2];
    f.apply();
    let (a2, a3) = (f.p("a2"), f.p("a3"));
    assert_eq!(static_of(&f, VM3), Some((a3, true)));
    assert_eq!(f.pipe.fdb.network_len(a), 2);

    // a3 claims no address any more: its entry goes; a2's stays.
    f.port_cfg("a3").static_macs.clear();
    f.apply();
    assert_eq!(static_of(&f, VM3), None);
    assert_eq!(static_of(&f, VM2), Some((a2, true)));
    assert_eq!(f.pipe.fdb.network_len(a), 1);
    // The address is learned where it is heard.
    assert!(matches!(
        f.send("a1", &frame(VM1, VM3)),
        Verdict::Flood { .. }
    ));
    assert_eq!(static_of(&f, VM3), Some((f.p("a1"), false)));

    // a2 goes: its entry with it, and the address is unknown (flooded), not sent to a port
    // that is gone.
    f.cfg.ports.retain(|p| p.id != "a2");
    f.apply();
    assert_eq!(static_of(&f, VM2), None);
    assert!(matches!(
        f.send("a3", &frame(VM2, VM3)),
        Verdict::Flood { .. }
    ));

    // An address another port claims now stays that port's.
    f.port_cfg("a1").static_macs = vec![VM1];
    f.apply();
    f.port_cfg("a1").static_macs.clear();
    f.port_cfg("a3").static_macs = vec![VM1];
    f.apply();
    assert_eq!(static_of(&f, VM1), Some((a3, true)));

    // a3 goes and a new port takes its slot (another generation) claiming the same address in
    // the same snapshot: the entry is the new port's, and stays.
    f.cfg.ports.retain(|p| p.id != "a3");
    let mut a4 = PortConfig::access("a4", "d7", "a");
    a4.static_macs = vec![VM1];
    f.cfg.ports.push(a4);
    f.apply();
    assert_eq!(f.p("a4"), a3, "the slot is reused");
    let now = f.pipe.fdb.lookup(a, VM1, 0).unwrap();
    assert_eq!(now.gen, f.snap.port(a3).unwrap().gen);
    assert_eq!(static_of(&f, VM1), Some((a3, true)));
}

/// Two workers' pipelines share the table: one that adopts the older snapshot after the other
/// adopted the newer puts the entry back, and removes it again with the newer snapshot.
#[test]
fn static_entries_go_once_every_pipeline_adopted_the_snapshot_without_them() {
    let mut f = Fixture::new();
    f.port_cfg("a3").static_macs = vec![VM3];
    f.apply();
    let older = f.snap.clone();
    let mut other = Pipeline {
        fdb: f.pipe.fdb.clone(),
        ..Pipeline::default()
    };
    other.adopt(&older, Now::default());
    f.port_cfg("a3").static_macs.clear();
    f.apply();
    let a = f.n("a");
    assert_eq!(f.pipe.fdb.lookup(a, VM3, 0), None);
    other.adopt(&older, Now::default());
    assert_eq!(
        f.pipe.fdb.lookup(a, VM3, 0).map(|p| p.slot),
        Some(f.p("a3"))
    );
    other.adopt(&f.snap, Now::default());
    assert_eq!(f.pipe.fdb.lookup(a, VM3, 0), None);
    assert_eq!(f.pipe.fdb.network_len(a), 0);
}

/// A network moves to another VLAN (a new generation, as the switch gives it): a pipeline
/// still on the snapshot from before hears the old segment, and learns nothing into the new one
/// (its entries would count against the network's limit there, and name ports by the old
/// segment's view).
#[test]
fn a_pipeline_on_the_snapshot_before_a_network_moved_learns_nothing_into_it() {
    let mut f = Fixture::new();
    let older = f.snap.clone();
    let mut other = Pipeline {
        fdb: f.pipe.fdb.clone(),
        ..Pipeline::default()
    };
    other.adopt(&older, Now::default());
    f.nets.remove("a");
    f.cfg.networks[0].vlan = 11;
    f.apply();
    let (a, up) = (f.n("a"), f.p("up"));
    assert_ne!(f.snap.net(a).unwrap().gen, older.net(a).unwrap().gen);
    // VLAN 10 of the uplink is still network a to the other pipeline.
    let v = other.process(&older, up, &tagged(VM1, VM2, 10), Now::default());
    assert_eq!(v, Verdict::Flood { net: a });
    assert_eq!(f.pipe.fdb.lookup(a, VM2, 0), None);
    assert_eq!(f.pipe.fdb.network_len(a), 0);
    // Heard on the new segment, it is learned.
    assert_eq!(
        f.send("up", &tagged(VM1, VM2, 11)),
        Verdict::Flood { net: a }
    );
    assert_eq!(f.pipe.fdb.lookup(a, VM2, 0).map(|p| p.slot), Some(up));
}

#[test]
fn oversize_and_truncated_frames_are_counted() {
    let mut f = Fixture::new();
    let big = build_frame(VM2, VM1, None, ETHERTYPE_IPV4, &[0; 1501]);
    assert_eq!(f.send("a1", &big), Verdict::Drop(DropReason::Oversize));
    let max = build_frame(VM2, VM1, None, ETHERTYPE_IPV4, &[0; 1500]);
    assert!(matches!(f.send("a1", &max), Verdict::Flood { .. }));
    let max_tagged = build_frame(VM2, VM1, Some(10), ETHERTYPE_IPV4, &[0; 1500]);
    assert!(matches!(f.send("up", &max_tagged), Verdict::Flood { .. }));
    assert_eq!(f.send("a1", &[0; 13]), Verdict::Drop(DropReason::Truncated));
    assert_eq!(f.drops("a1", DropReason::Truncated), 1);
}

#[test]
fn invalid_sources_are_dropped() {
    let mut f = Fixture::new();
    assert_eq!(
        f.send("a1", &frame(VM2, Mac::BROADCAST)),
        Verdict::Drop(DropReason::InvalidSource)
    );
    assert_eq!(
        f.send("a1", &frame(VM2, Mac::ZERO)),
        Verdict::Drop(DropReason::InvalidSource)
    );
}

#[test]
fn port_security_drops_spoofed_frames() {
    let mut f = Fixture::new();
    f.port_cfg("a1").security = Some(PortSecurity {
        mac: VM1,
        ..Default::default()
    });
    f.apply();
    assert_eq!(
        f.send("a1", &frame(VM2, VM3)),
        Verdict::Drop(DropReason::Spoofed)
    );
    assert_eq!(f.drops("a1", DropReason::Spoofed), 1);
}

#[test]
fn policer_limits_ingress() {
    let mut f = Fixture::new();
    f.port_cfg("a1").policer = Some(PolicerConfig {
        pps: 10,
        burst_packets: 5,
        ..Default::default()
    });
    f.apply();
    let passed = (0..20)
        .filter(|_| f.send("a1", &frame(VM2, VM1)) != Verdict::Drop(DropReason::Policed))
        .count();
    assert_eq!(passed, 5);
    assert_eq!(f.drops("a1", DropReason::Policed), 15);
}

/// A policer keeps its bucket across snapshots while its port and configuration stay; a port
/// that takes a removed port's slot, with the same limit, starts with full buckets of its own.
#[test]
fn a_policer_is_its_ports_own() {
    let mut f = Fixture::new();
    let limit = PolicerConfig {
        pps: 10,
        burst_packets: 5,
        ..Default::default()
    };
    f.port_cfg("a1").policer = Some(limit);
    f.apply();
    let passed = |f: &mut Fixture, from: &str| {
        (0..20)
            .filter(|_| f.send(from, &frame(VM2, VM1)) != Verdict::Drop(DropReason::Policed))
            .count()
    };
    assert_eq!(passed(&mut f, "a1"), 5);
    f.port_cfg("a2").admin_up = false;
    f.apply();
    assert_eq!(
        passed(&mut f, "a1"),
        0,
        "the same port's bucket, still empty"
    );
    let a1 = f.p("a1");
    f.cfg.ports.retain(|p| p.id != "a1");
    let mut a4 = PortConfig::access("a4", "d7", "a");
    a4.policer = Some(limit);
    f.cfg.ports.push(a4);
    f.apply();
    assert_eq!(f.p("a4"), a1, "the slot is reused");
    assert_eq!(passed(&mut f, "a4"), 5);
}

#[test]
fn a_frame_between_two_filtered_ports_is_tracked_in_both_zones() {
    use crate::acl::{PortFilter, Remote, Rule};
    use crate::flow::build::{ipv4_packet, udp};
    use crate::security::IpPrefix;
    use crate::wire::ipproto::UDP;
    use std::sync::Arc;
    const IP1: [u8; 4] = [198, 18, 0, 1];
    const IP2: [u8; 4] = [198, 18, 0, 2];
    let datagram = |dst: Mac, src: Mac, from, sport, to, dport| {
        let packet = ipv4_packet(from, to, UDP, &udp(sport, dport), 0, 1);
        build_frame(dst, src, None, ETHERTYPE_IPV4, &packet)
    };
    let stateful = |remote| Rule::new(false, None, None, remote);
    let mut f = Fixture::new();
    // a1 may send anything and receives only replies; a2 receives from a1's address and sends
    // only replies. So the answer passes only as a connection tracked in both zones.
    let from_a1 = Remote::Prefix(IpPrefix::parse("198.18.0.1/32").unwrap());
    f.port_cfg("a1").filter = Some(Arc::new(PortFilter::new(
        vec![],
        vec![stateful(Remote::Any)],
    )));
    f.port_cfg("a2").filter = Some(Arc::new(PortFilter::new(vec![stateful(from_a1)], vec![])));
    f.apply();
    let (a1, a2) = (f.p("a1"), f.p("a2"));
    // Both MACs learned (ARP passes every filter).
    for (from, mac) in [("a1", VM1), ("a2", VM2)] {
        f.send(
            from,
            &build_frame(Mac::BROADCAST, mac, None, 0x0806, &[0; 28]),
        );
    }
    let through = |f: &mut Fixture, from: &str, frame: &[u8]| match f.send(from, frame) {
        Verdict::Unicast { port, .. } => f.pipe.admit(&f.snap, port, frame.len(), Now::default()),
        other => panic!("{other:?}"),
    };
    // An answer before the question: refused by a2's egress rules (none).
    let answer = datagram(VM1, VM2, IP2, 53, IP1, 4000);
    assert_eq!(f.send("a2", &answer), Verdict::Drop(DropReason::SgEgress));
    // The question opens the connection in a1's zone (egress) and in a2's (ingress).
    assert!(through(
        &mut f,
        "a1",
        &datagram(VM2, VM1, IP1, 4000, IP2, 53)
    ));
    let tracked = |f: &Fixture, slot| {
        let gen = f.snap.port(slot).unwrap().gen;
        f.pipe.conns.zone_len(slot, gen)
    };
    assert_eq!((tracked(&f, a1), tracked(&f, a2)), (1, 1));
    // Its answer passes both zones: a2's egress and a1's ingress find the connection.
    assert!(through(&mut f, "a2", &answer));
    // Another datagram back is no answer: a1's ingress refuses it (a2's egress finds none
    // either, so it never gets that far).
    let other = datagram(VM1, VM2, IP2, 54, IP1, 4000);
    assert_eq!(f.send("a2", &other), Verdict::Drop(DropReason::SgEgress));
    assert_eq!(f.pipe.conns.len(), 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any bytes on any port: never a panic, and each frame is either forwarded or counted as
    /// exactly one drop.
    #[test]
    fn arbitrary_frames_are_forwarded_or_counted(
        frames in proptest::collection::vec(
            (0u16..5, proptest::collection::vec(any::<u8>(), 0..1600)), 1..40),
    ) {
        let mut f = Fixture::new();
        for (port, bytes) in &frames {
            let before: u64 = f.pipe.counters.iter().map(LocalCounters::total_drops).sum();
            let v = f.pipe.process(&f.snap, *port, bytes, Now::default());
            let after: u64 = f.pipe.counters.iter().map(LocalCounters::total_drops).sum();
            match v {
                Verdict::Drop(_) => prop_assert_eq!(after, before + 1),
                Verdict::Unicast { port: to, .. } => {
                    prop_assert_eq!(after, before);
                    prop_assert_ne!(to, *port);
                }
                Verdict::Flood { .. } => prop_assert_eq!(after, before),
                Verdict::Dhcp | Verdict::Dhcp6 => {
                    prop_assert!(false, "no port of the fixture answers DHCP")
                }
                Verdict::Arp(_) => prop_assert!(false, "no port of the fixture has ARP answers"),
                Verdict::RouterSolicitation { .. } => {
                    prop_assert!(false, "no port of the fixture advertises prefixes")
                }
            }
        }
    }

    /// A frame from a VM never leaves for a port of another network.
    #[test]
    fn access_frames_stay_in_their_network(dst in any::<[u8; 6]>(), src in 1u8..255, port in 0usize..4) {
        let mut f = Fixture::new();
        let ids = ["a1", "a2", "a3", "b1"];
        let net = if port == 3 { f.n("b") } else { f.n("a") };
        // Teach the table an address in the other network with the same bytes as dst.
        let other = if port == 3 { "a1" } else { "b1" };
        f.send(other, &frame(Mac::BROADCAST, Mac(dst)));
        match f.send(ids[port], &frame(Mac(dst), Mac([2, 0, 0, 0, 9, src]))) {
            Verdict::Unicast { net: n, .. } | Verdict::Flood { net: n } => prop_assert_eq!(n, net),
            Verdict::Drop(_) => {}
            Verdict::Dhcp | Verdict::Dhcp6 => {
                    prop_assert!(false, "no port of the fixture answers DHCP")
                }
            Verdict::Arp(_) => prop_assert!(false, "no port of the fixture has ARP answers"),
            Verdict::RouterSolicitation { .. } => {
                prop_assert!(false, "no port of the fixture advertises prefixes")
            }
        }
    }
}

#[test]
fn adopting_a_snapshot_the_table_was_grown_for_copies_nothing() {
    // As the switch does: the table grown for the snapshot (entries and networks) before the
    // pipeline adopts it; the adoption then neither grows it nor adds network slots.
    let cfg = SwitchConfig {
        networks: (0..70u16)
            .map(|i| NetworkConfig {
                id: format!("n{i}"),
                vlan: 10 + i,
                mac_limit: 4096,
                physnet: Some(crate::DEFAULT_PHYSNET.into()),
            })
            .collect(),
        ..SwitchConfig::default()
    };
    cfg.validate().unwrap();
    let (mut nets, mut ports) = (SlotMap::default(), SlotMap::default());
    let snap = Snapshot::compile(&cfg, 1, &mut nets, &mut ports);
    let mut pipe = Pipeline::default();
    let mut view = pipe.fdb.clone();
    view.reserve_for(snap.mac_entries(), snap.nets.len());
    let grown = pipe.fdb.growths();
    pipe.adopt(&snap, Now::default());
    assert_eq!(pipe.fdb.growths(), grown, "the adoption grew the table");
    assert!(pipe.fdb.capacity() >= 2 * 70 * 4096);
    // Without the growth ahead, the adoption does it, once for entries and networks together.
    let mut fresh = Pipeline::default();
    let before = fresh.fdb.growths();
    fresh.adopt(&snap, Now::default());
    assert_eq!(fresh.fdb.growths(), before + 1);
}
