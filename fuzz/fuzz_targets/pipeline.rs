//! Fuzzes parse + classify + filter + learn + forward through the worker with in-memory ports: the
//! first byte of each record picks the ingress port, the next two the frame length, then the
//! bytes. Ports a1 and a2 have security group rules (stateful, a remote group, a port range, an
//! ICMP type), so layer 3/4 parsing and the connection table see every frame.
//! Properties: no panic; frame accounting holds after every round (that every frame is
//! forwarded or counted as exactly one drop is the property test in `dataplane/src/pipeline`);
//! every descriptor is one the kernel would take; and every TCP, UDP or SCTP frame that leaves
//! has a correct checksum (finished by the switch, or by the port as a veth's kernel finishes
//! it on request), unless it came in with a wrong one (neither correct nor left partial) and
//! leaves as it came, but for a VLAN tag pushed or popped; and no TCP super-frame is cut into
//! segments unless its checksum allowed it (`csum::tso_sound`): the segments' fresh checksums
//! would hide a wrong one.
//!
//! Run: `fuzz/run.sh pipeline 60` (stable toolchain, libFuzzer coverage instrumentation), or
//! `cargo fuzz run pipeline fuzz/corpus/pipeline` with cargo-fuzz on nightly.
#![no_main]

use std::collections::HashSet;
use std::sync::Arc;

use dataplane::acl::{AddrSet, PortFilter, Remote, Rule};
use dataplane::config::{NetworkConfig, PortConfig, SlotMap, Snapshot, SwitchConfig};
use dataplane::csum;
use dataplane::pipeline::Now;
use dataplane::port::mem::{MemPort, MemSpec};
use dataplane::security::IpPrefix;
use dataplane::worker::{Command, PortShared, Worker, WorkerConfig};
use dataplane::Mac;
use libfuzzer_sys::fuzz_target;

/// `frame` without its VLAN tag, if it carries one: what the switch may change of a frame it
/// forwards as it came.
fn untagged(frame: &[u8]) -> Vec<u8> {
    let tagged = frame.len() >= 18
        && dataplane::wire::is_vlan_tpid(u16::from_be_bytes([frame[12], frame[13]]));
    if tagged {
        [&frame[..12], &frame[16..]].concat()
    } else {
        frame.to_vec()
    }
}

/// Checks the frames every port sent since the last call: a TCP, UDP or SCTP frame whose
/// checksum is wrong must be one of the frames that came in so (`wrong`, untagged).
fn check_sent(w: &mut Worker<MemPort>, wrong: &HashSet<Vec<u8>>) {
    for p in 0..4u16 {
        for out in std::mem::take(&mut w.port_mut(p).unwrap().outbox) {
            if csum::verify(&out) == Some(false) {
                assert!(
                    wrong.contains(&untagged(&out)),
                    "port {p} sent a frame whose checksum is not finished: {out:02x?}"
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let net = |id: &str, vlan| NetworkConfig {
        id: id.into(),
        vlan,
        mac_limit: 16,
        physnet: Some(dataplane::DEFAULT_PHYSNET.into()),
    };
    let group = Remote::Group(Arc::from("g"));
    let ping = Rule {
        icmp_type: Some(8),
        ..Rule::new(false, Some(1), None, Remote::Any)
    };
    let mut stateless = Rule::new(true, Some(17), Some((53, 53)), Remote::Any);
    stateless.stateful = false;
    let filter = Arc::new(PortFilter::new(
        vec![
            Rule::new(false, None, None, group.clone()),
            Rule::new(false, Some(6), Some((22, 80)), Remote::Any),
            ping,
            stateless,
        ],
        vec![
            Rule::new(false, None, None, Remote::Any),
            Rule::new(true, None, None, group),
        ],
    ));
    let filtered = |id, dev| PortConfig {
        filter: Some(Arc::clone(&filter)),
        ..PortConfig::access(id, dev, "a")
    };
    let members = ["198.18.0.1", "198.18.0.0/30", "2001:db8::1"]
        .iter()
        .filter_map(|a| IpPrefix::parse(a));
    let cfg = SwitchConfig {
        networks: vec![net("a", 10), net("b", 20)],
        ports: vec![
            filtered("a1", "d1"),
            // The switch answers ARP for a2's address, a2's router solicitations and its DHCPv6
            // client.
            PortConfig {
                arp: vec![(
                    Mac([2, 0, 0, 0, 0, 2]),
                    std::net::Ipv4Addr::new(198, 18, 0, 2),
                )],
                dhcp6: Some(Arc::new(dataplane::dhcp6::Dhcp6Config {
                    client_mac: Mac([2, 0, 0, 0, 0, 2]),
                    addresses: vec![std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2)],
                    dns: vec![std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53)],
                    lease_secs: 3600,
                    server_mac: dataplane::dhcp::SERVER_MAC,
                })),
                ra: Some(Arc::new(dataplane::ra::RaConfig {
                    client_mac: Mac([2, 0, 0, 0, 0, 2]),
                    prefixes: vec![std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0)],
                    on_link: vec![(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0), 64)],
                    managed: true,
                    other: true,
                    mtu: 1500,
                    dns: vec![std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53)],
                    router_mac: dataplane::dhcp::SERVER_MAC,
                })),
                ..filtered("a2", "d2")
            },
            PortConfig::access("b1", "d3", "b"),
            PortConfig::trunk("up", "d4"),
        ],
        address_sets: Arc::new(
            [(Arc::from("g"), Arc::new(AddrSet::new(members)))]
                .into_iter()
                .collect(),
        ),
        policy_epoch: 1,
    };
    let (mut ns, mut ps) = (SlotMap::default(), SlotMap::default());
    let snap = Arc::new(Snapshot::compile(&cfg, 1, &mut ns, &mut ps));
    let mut w: Worker<MemPort> = Worker::new(WorkerConfig {
        frames: 256,
        ..WorkerConfig::default()
    })
    .unwrap();
    w.handle(Command::Snapshot(snap), Now::default());
    for slot in 0..4u16 {
        w.handle(
            Command::AddPort {
                slot,
                // Two ports finish checksums on request, as veths do: every request the
                // worker writes is checked as the kernel checks it.
                spec: MemSpec {
                    capture: true,
                    tx_size: 32,
                    tx_checksum: slot % 2 == 1,
                    whole: slot % 2 == 1,
                    direct: false,
                    shortcut_ifindex: None,
                },
                shared: Arc::new(PortShared::default()),
            },
            Now::default(),
        );
    }
    // The frames that came in with a wrong checksum, untagged; the super-frames that may be cut.
    let mut wrong = HashSet::new();
    let mut cuttable = 0u64;
    let mut rest = data;
    while rest.len() >= 3 {
        let port = u16::from(rest[0] % 4);
        let len = (usize::from(rest[1]) << 8 | usize::from(rest[2])).min(rest.len() - 3);
        let frame = rest[3..3 + len].to_vec();
        rest = &rest[3 + len..];
        if csum::verify(&frame) == Some(false) && csum::pending(&frame).is_none() {
            wrong.insert(untagged(&frame));
        }
        cuttable += u64::from(frame.len() > 1514 && csum::tso_sound(&frame));
        w.port_mut(port).unwrap().inbox.push_back(frame);
        w.poll(Now::default());
        check_sent(&mut w, &wrong);
        let a = w.accounting();
        assert_eq!(a.free + a.user + a.in_kernel(), a.total);
        assert_eq!(a.user, 0);
        for p in 0..4u16 {
            let refused = w.port_mut(p).unwrap().stats().tx_invalid_descs;
            assert_eq!(refused, 0, "port {p}: a descriptor the kernel would refuse");
        }
    }
    for _ in 0..8 {
        w.poll(Now::default());
    }
    check_sent(&mut w, &wrong);
    let cut: u64 = (0..4u16)
        .map(|p| w.counters(p).gso_segmented + w.counters(p).gso_whole)
        .sum();
    assert!(
        cut <= cuttable,
        "{cut} super-frames cut or sent whole, {cuttable} with a checksum that allows it"
    );
});
