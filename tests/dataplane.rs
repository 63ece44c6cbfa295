//! End to end: the real daemon on the root-side ends of veth pairs, real frames from network
//! namespaces. Needs root (CI runs as root).

mod common;

use std::time::Duration;

use common::*;

/// Networks a (VLAN 10: vm1, vm2) and b (VLAN 20: vm3), and an uplink trunk whose far end is
/// in its own namespace.
struct Lab {
    vm1: Vm,
    vm2: Vm,
    vm3: Vm,
    up: Vm,
    daemon: Daemon,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let vm1 = Vm::new(tag, 1, 0);
        let vm2 = Vm::new(tag, 2, 0);
        let vm3 = Vm::new(tag, 3, 0);
        let up = Vm::new(tag, 9, 0);
        let toml = format!(
            r#"
[uplink]
device = "{up}"
[[network]]
id = "a"
vlan = 10
[[network]]
id = "b"
vlan = 20
[[port]]
id = "vm1"
device = "{h1}"
network = "a"
[[port]]
id = "vm2"
device = "{h2}"
network = "a"
[[port]]
id = "vm3"
device = "{h3}"
network = "b"
"#,
            up = up.host,
            h1 = vm1.host,
            h2 = vm2.host,
            h3 = vm3.host
        );
        let daemon = Daemon::with_config(&toml, &[]);
        let lab = Lab {
            vm1,
            vm2,
            vm3,
            up,
            daemon,
        };
        let ready = wait_for(Duration::from_secs(10), || {
            [&lab.vm1, &lab.vm2, &lab.vm3, &lab.up]
                .iter()
                .all(|v| has_xdp(&v.host))
        });
        assert!(ready, "ports did not open:\n{}", lab.daemon.log());
        lab
    }
}

const BCAST: &str = "ff:ff:ff:ff:ff:ff";

#[test]
fn ping_works_inside_a_network() {
    let lab = Lab::new("p");
    assert!(
        lab.vm1.ping_until(&lab.vm2.ip, Duration::from_secs(5)),
        "no ping inside network a:\n{}",
        lab.daemon.log()
    );
    // ARP answered, then several echo round trips.
    assert!(lab.vm2.ping(&lab.vm1.ip));
}

#[test]
fn nothing_crosses_networks() {
    let lab = Lab::new("i");
    // vm3 (network b) has an address in the same IP subnet, but is in another L2 network.
    assert!(!lab.vm1.ping(&lab.vm3.ip));
    assert!(!lab.vm3.ping(&lab.vm1.ip));
}

#[test]
fn broadcast_floods_to_its_network_and_the_trunk_only() {
    let lab = Lab::new("f");
    let c2 = lab.vm2.capture(10.0, TEST_ETHERTYPE);
    let c3 = lab.vm3.capture(10.0, TEST_ETHERTYPE);
    let cu = lab.up.capture(10.0, TEST_ETHERTYPE);
    let c1 = lab.vm1.capture(10.0, TEST_ETHERTYPE);
    let f = frame_hex(BCAST, &lab.vm1.mac, None, 0x11);
    lab.vm1.send(std::slice::from_ref(&f));
    let (s1, s2, s3, su) = (c1.finish(), c2.finish(), c3.finish(), cu.finish());
    assert_eq!(
        s2,
        vec![Seen {
            hex: f.clone(),
            vlan: None
        }],
        "vm2 gets it untagged"
    );
    assert!(s3.is_empty(), "vm3 is in another network: {s3:?}");
    assert!(s1.is_empty(), "never back to the sender: {s1:?}");
    assert_eq!(su.len(), 1, "the trunk gets one copy: {su:?}");
    assert_eq!(su[0].vlan, Some(10), "tagged with network a's VLAN");
}

#[test]
fn unknown_unicast_is_flooded_and_learned_unicast_is_not() {
    let lab = Lab::new("u");
    let unknown = "02:00:00:00:77:77";
    let c2 = lab.vm2.capture(10.0, TEST_ETHERTYPE);
    lab.vm1
        .send(&[frame_hex(unknown, &lab.vm1.mac, None, 0x21)]);
    assert_eq!(c2.finish().len(), 1, "unknown unicast floods");
    // vm2 announces itself; a frame to it then reaches vm2 only, not the trunk.
    lab.vm2.send(&[frame_hex(BCAST, &lab.vm2.mac, None, 0x22)]);
    std::thread::sleep(Duration::from_millis(100));
    let c2 = lab.vm2.capture(10.0, TEST_ETHERTYPE);
    let cu = lab.up.capture(10.0, TEST_ETHERTYPE);
    lab.vm1
        .send(&[frame_hex(&lab.vm2.mac, &lab.vm1.mac, None, 0x23)]);
    assert_eq!(c2.finish().len(), 1);
    assert!(cu.finish().is_empty(), "learned unicast is not flooded");
}

#[test]
fn tagged_frames_from_a_vm_are_dropped() {
    let lab = Lab::new("t");
    let c2 = lab.vm2.capture(10.0, TEST_ETHERTYPE);
    let c3 = lab.vm3.capture(10.0, TEST_ETHERTYPE);
    let cu = lab.up.capture(10.0, TEST_ETHERTYPE);
    // A VM in network a tries to hop into network b's VLAN, and to reach its own VLAN tagged.
    lab.vm1.send(&[
        frame_hex(BCAST, &lab.vm1.mac, Some(20), 0x31),
        frame_hex(BCAST, &lab.vm1.mac, Some(10), 0x32),
    ]);
    assert!(c2.finish().is_empty());
    assert!(c3.finish().is_empty());
    assert!(cu.finish().is_empty());
}

#[test]
fn trunk_frames_reach_their_network_untagged() {
    let lab = Lab::new("k");
    let c1 = lab.vm1.capture(10.0, TEST_ETHERTYPE);
    let c3 = lab.vm3.capture(10.0, TEST_ETHERTYPE);
    let remote = "02:00:00:00:99:01";
    lab.up.send(&[
        frame_hex(BCAST, remote, Some(20), 0x41),
        frame_hex(BCAST, remote, Some(30), 0x42), // no local network owns VLAN 30
    ]);
    let s3 = c3.finish();
    assert_eq!(
        s3,
        vec![Seen {
            hex: frame_hex(BCAST, remote, None, 0x41),
            vlan: None
        }]
    );
    assert!(c1.finish().is_empty());
    // The reply from vm3 to the remote host goes back out tagged with VLAN 20.
    let cu = lab.up.capture(10.0, TEST_ETHERTYPE);
    lab.vm3.send(&[frame_hex(remote, &lab.vm3.mac, None, 0x43)]);
    let su = cu.finish();
    assert_eq!(su.len(), 1, "{su:?}");
    assert_eq!(su[0].vlan, Some(20));
}

#[test]
fn a_port_that_loses_its_device_recovers_and_the_others_keep_forwarding() {
    let lab = Lab::new("r");
    assert!(lab.vm1.ping_until(&lab.vm2.ip, Duration::from_secs(5)));
    // vm2's cable is pulled while traffic flows between vm1 and the trunk side.
    lab.vm2.unplug_cable();
    let c = lab.up.capture(10.0, TEST_ETHERTYPE);
    lab.vm1.send(&[frame_hex(BCAST, &lab.vm1.mac, None, 0x51)]);
    assert_eq!(
        c.finish().len(),
        1,
        "the switch still forwards:\n{}",
        lab.daemon.log()
    );
    // The cable comes back: the port reopens by itself.
    lab.vm2.plug_cable();
    assert!(
        wait_for(Duration::from_secs(5), || has_xdp(&lab.vm2.host)),
        "port did not reopen:\n{}",
        lab.daemon.log()
    );
    assert!(lab.vm1.ping_until(&lab.vm2.ip, Duration::from_secs(5)));
}

#[test]
fn shutdown_detaches_every_program_also_after_sigkill() {
    let mut lab = Lab::new("s");
    assert!(lab.daemon.signal("-TERM"), "daemon did not stop on SIGTERM");
    for v in [&lab.vm1, &lab.vm2, &lab.vm3, &lab.up] {
        assert!(!has_xdp(&v.host), "{} still has XDP after SIGTERM", v.host);
    }
    let toml = std::fs::read_to_string(lab.daemon.dir.join("qswitch.toml")).unwrap();
    let mut d = Daemon::with_config(&toml, &[]);
    assert!(wait_for(Duration::from_secs(10), || has_xdp(&lab.vm1.host)));
    assert!(d.signal("-KILL"));
    assert!(
        wait_for(Duration::from_secs(5), || !has_xdp(&lab.vm1.host)),
        "a killed switch must not leave programs behind"
    );
}

#[test]
fn frames_longer_than_the_port_mtu_are_dropped() {
    // The interfaces carry 1600 bytes, the switch's ports are configured for 1500.
    let vm1 = Vm::new("m", 1, 0);
    let vm2 = Vm::new("m", 2, 0);
    for v in [&vm1, &vm2] {
        sh(&["ip", "link", "set", &v.host, "mtu", "1600"]);
        v.ns.exec(&["ip", "link", "set", &v.dev, "mtu", "1600"]);
    }
    let toml = format!(
        "[[network]]\nid = \"a\"\nvlan = 10\n\
         [[port]]\nid = \"p1\"\ndevice = \"{}\"\nnetwork = \"a\"\nmtu = 1500\n\
         [[port]]\nid = \"p2\"\ndevice = \"{}\"\nnetwork = \"a\"\nmtu = 1500\n",
        vm1.host, vm2.host
    );
    let d = Daemon::with_config(&toml, &[]);
    assert!(
        wait_for(Duration::from_secs(10), || has_xdp(&vm1.host)
            && has_xdp(&vm2.host)),
        "{}",
        d.log()
    );
    let mk = |payload: usize, marker: u8| {
        let mut f = frame_hex(BCAST, &vm1.mac, None, marker);
        f.truncate(28); // addresses + EtherType
        f.push_str(&format!("{marker:02x}").repeat(payload));
        f
    };
    let c = vm2.capture(10.0, TEST_ETHERTYPE);
    vm1.send(&[mk(1500, 0x61), mk(1501, 0x62)]);
    let seen = c.finish();
    assert_eq!(
        seen.len(),
        1,
        "only the 1514-byte frame crosses: {}",
        seen.len()
    );
    assert_eq!(seen[0].hex.len(), 1514 * 2);
}
