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
            vlan: None,
            partial: false
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
fn priority_tagged_frames_are_switched_as_untagged() {
    let lab = Lab::new("q");
    let c2 = lab.vm2.capture(10.0, TEST_ETHERTYPE);
    let c3 = lab.vm3.capture(10.0, TEST_ETHERTYPE);
    let cu = lab.up.capture(10.0, TEST_ETHERTYPE);
    // An 802.1Q tag of VLAN 0 carries a priority only: the frame is vm1's untagged frame.
    lab.vm1
        .send(&[frame_hex(BCAST, &lab.vm1.mac, Some(0), 0x51)]);
    let untagged = Seen {
        hex: frame_hex(BCAST, &lab.vm1.mac, None, 0x51),
        vlan: None,
        partial: false,
    };
    assert_eq!(c2.finish(), vec![untagged]);
    let su = cu.finish();
    assert_eq!(su.len(), 1, "{su:?}");
    assert_eq!(su[0].vlan, Some(10));
    assert!(c3.finish().is_empty());
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
            vlan: None,
            partial: false
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
    let _daemon = two_ports("", [&vm1.host, &vm2.host], "mtu = 1500\n");
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

/// IPv6 addresses of the VMs (the benchmarking range of RFC 5180).
const V6_1: &str = "2001:2::1";
const V6_2: &str = "2001:2::2";

/// Asserts that the VM's interface has Linux's defaults: the stack leaves TCP and UDP checksums
/// partial for the device to finish.
fn assert_default_offloads(vm: &Vm) {
    let k = vm.offloads();
    assert!(k.contains("tx-checksumming: on"), "{}: {k}", vm.dev);
}

/// The partial checksums finished (by the switch or the egress port's kernel), from the per-port
/// lines of the shutdown log.
#[test]
fn tcp_and_udp_over_ipv4_and_ipv6_cross_the_switch_with_default_offloads() {
    let mut lab = Lab::new("c");
    assert_default_offloads(&lab.vm1);
    assert_default_offloads(&lab.vm2);
    lab.vm1.enable_ipv6(V6_1);
    lab.vm2.enable_ipv6(V6_2);
    let mb8 = 8 << 20;
    for (from, to, ip) in [
        (&lab.vm1, &lab.vm2, lab.vm2.ip.as_str()),
        (&lab.vm2, &lab.vm1, lab.vm1.ip.as_str()),
        (&lab.vm1, &lab.vm2, V6_2),
    ] {
        if let Err(e) = from.ns.tcp_transfer(&to.ns, ip, mb8) {
            panic!("TCP to {ip}: {e}\n{}", lab.daemon.log());
        }
    }
    for ip in [lab.vm2.ip.as_str(), V6_2] {
        let (echoed, altered) = lab.vm1.ns.udp_echo(&lab.vm2.ns, ip, 200, 1200);
        assert_eq!(altered, 0, "UDP to {ip}: datagrams altered");
        assert!(echoed >= 196, "UDP to {ip}: {echoed} of 200 echoed");
    }
    // The ports are veths: where the kernel can, the switch leaves the guests' partial
    // checksums for it to finish on transmit, so the receiving guest gets them as a bridge hands
    // them over; elsewhere the switch finishes them.
    let offload = kernel_finishes_checksums();
    let cap = lab.vm2.capture(30.0, 0x0800);
    if let Err(e) = lab.vm1.ns.tcp_transfer(&lab.vm2.ns, &lab.vm2.ip, 1 << 20) {
        panic!("TCP with a capture: {e}");
    }
    // vm1's TCP frames (its super-frames leave whole, segments the switch merges, and vm2's
    // interface may merge too (GRO), before the capture sees them).
    let vm1_ip: String = (lab.vm1.ip.split('.'))
        .map(|o| format!("{:02x}", o.parse::<u8>().unwrap()))
        .collect();
    let from_vm1: Vec<Seen> = cap
        .finish()
        .into_iter()
        .filter(|s| s.hex.get(46..48) == Some("06") && s.hex.get(52..60) == Some(&vm1_ip))
        .collect();
    // Without the kernel's help they arrive finished (GRO may still mark the segments it
    // merged as to be finished, with the merged packet's pseudo-header sum); with it, every
    // one arrives to be finished.
    let partial = from_vm1.iter().filter(|s| s.partial).count();
    assert!(
        !from_vm1.is_empty() && (!offload || partial == from_vm1.len()),
        "{partial} of vm1's {} TCP frames reached vm2 with their checksum left to finish \
         (the kernel can finish them: {offload})",
        from_vm1.len()
    );
    for s in &from_vm1 {
        assert_eq!(
            dataplane::csum::verify(&as_finished(s)),
            Some(true),
            "{s:?}"
        );
    }
    assert!(lab.daemon.signal("-TERM"));
    let log = lab.daemon.log();
    // Frames with a partial checksum: segments and datagrams (`checksums completed`), and the
    // guests' TSO frames where they keep TSO (counted as super-frames instead).
    let partial: u64 = ["checksums completed ", "super-frames segmented ", " whole "]
        .iter()
        .map(|what| port_total(&log, what))
        .sum();
    assert!(
        partial > 1000,
        "the guests' partial checksums were seen and finished:\n{log}"
    );
}

#[test]
fn tcp_crosses_the_uplink_trunk_between_two_switches() {
    // In native XDP mode: every attachment of the end-to-end tests but this one and
    // `segment_guests` is generic (`auto` on a veth).
    uplink_tcp("x", "[switch]\nxdp_mode = \"native\"\n");
}

#[test]
fn tcp_super_frames_cross_the_uplink_trunk_whole_tagged_and_untagged() {
    // In generic XDP mode the guests keep TSO: switch 1 sends vm1's super-frames whole out of its
    // uplink with the VLAN's tag pushed, switch 2 receives them tagged and sends them whole to
    // vm2 with the tag popped, and back.
    let (log1, log2) = uplink_tcp("u", "[switch]\nxdp_mode = \"generic\"\n");
    for log in [&log1, &log2] {
        let whole = port_total(log, " whole ");
        assert!(whole > 50, "{whole} super-frames left whole:\n{log}");
    }
}

/// Two hosts: vm1 behind switch 1, vm2 behind switch 2, their uplinks joined by a cable, each
/// daemon's configuration starting with `head`. Frames cross the cable tagged with network a's
/// VLAN: TCP both ways (IPv4 and IPv6), then UDP. Returns the daemons' logs, after their stop.
fn uplink_tcp(tag: &str, head: &str) -> (String, String) {
    let vm1 = Vm::new(tag, 1, 0);
    let vm2 = Vm::new(tag, 2, 0);
    let cable = Cable::new(tag);
    let config = |uplink: &str, dev: &str| {
        format!(
            "{head}[uplink]\ndevice = \"{uplink}\"\n[[network]]\nid = \"a\"\nvlan = 10\n\
             [[port]]\nid = \"vm\"\ndevice = \"{dev}\"\nnetwork = \"a\"\n"
        )
    };
    let mut d1 = Daemon::with_config(&config(&cable.a, &vm1.host), &[]);
    let mut d2 = Daemon::with_config(&config(&cable.b, &vm2.host), &[]);
    assert!(
        wait_for(Duration::from_secs(10), || [
            &vm1.host, &vm2.host, &cable.a, &cable.b
        ]
        .iter()
        .all(|d| has_xdp(d))),
        "ports did not open:\n{}\n{}",
        d1.log(),
        d2.log()
    );
    vm1.enable_ipv6(V6_1);
    vm2.enable_ipv6(V6_2);
    for (from, to, ip) in [(&vm1, &vm2, vm2.ip.as_str()), (&vm2, &vm1, V6_1)] {
        if let Err(e) = from.ns.tcp_transfer(&to.ns, ip, 4 << 20) {
            panic!("TCP to {ip}: {e}\n{}\n{}", d1.log(), d2.log());
        }
    }
    let (echoed, altered) = vm1.ns.udp_echo(&vm2.ns, &vm2.ip, 100, 1400);
    assert_eq!(altered, 0);
    assert!(echoed >= 98, "{echoed} of 100 UDP datagrams echoed");
    assert!(d1.signal("-TERM") && d2.signal("-TERM"));
    (d1.log(), d2.log())
}

/// A daemon with ports `p1` and `p2` on `devices`, in network `a` (VLAN 10), each port's lines
/// ending with `port_extra`, after `head` (a `[switch]` section, or nothing); returned once both
/// devices have its program.
fn two_ports(head: &str, devices: [&str; 2], port_extra: &str) -> Daemon {
    let mut toml = format!("{head}[[network]]\nid = \"a\"\nvlan = 10\n");
    for (k, dev) in devices.iter().enumerate() {
        let id = k + 1;
        toml.push_str(&format!(
            "[[port]]\nid = \"p{id}\"\ndevice = \"{dev}\"\nnetwork = \"a\"\n{port_extra}"
        ));
    }
    let d = Daemon::with_config(&toml, &[]);
    assert!(
        wait_for(Duration::from_secs(10), || devices
            .iter()
            .all(|v| has_xdp(v))),
        "{}",
        d.log()
    );
    d
}

/// A host's MAC and IPv4 address.
type Host<'a> = (&'a str, &'a str);

fn host(vm: &Vm) -> Host<'_> {
    (&vm.mac, &vm.ip)
}

/// An IPv4/UDP frame from `src` to `dst` whose checksum field holds `field(pseudo, full)`,
/// given the pseudo-header sum and the correct checksum.
fn udp_frame(src: Host, dst: Host, payload: &[u8], field: impl Fn(u16, u16) -> u16) -> Vec<u8> {
    fn sum(words: &[u8], mut acc: u32) -> u32 {
        for pair in words.chunks(2) {
            acc += u32::from(pair[0]) << 8 | pair.get(1).copied().map_or(0, u32::from);
        }
        acc
    }
    fn fold(mut s: u32) -> u16 {
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }
    let ip = |s: &str| -> Vec<u8> { s.split('.').map(|o| o.parse::<u8>().unwrap()).collect() };
    let mac = |s: &str| -> Vec<u8> {
        s.split(':')
            .map(|o| u8::from_str_radix(o, 16).unwrap())
            .collect()
    };
    let (sip, dip) = (ip(src.1), ip(dst.1));
    let udp_len = 8 + payload.len() as u16;
    let mut udp = vec![0x9c, 0x41, 0x9c, 0x42];
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let pseudo = sum(&sip, sum(&dip, 17 + u32::from(udp_len)));
    let full = !fold(sum(&udp, pseudo));
    udp[6..8].copy_from_slice(&field(fold(pseudo), full).to_be_bytes());
    let mut ipv4 = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
    ipv4[2..4].copy_from_slice(&(20 + udp_len).to_be_bytes());
    ipv4.extend_from_slice(&sip);
    ipv4.extend_from_slice(&dip);
    let hsum = !fold(sum(&ipv4, 0));
    ipv4[10..12].copy_from_slice(&hsum.to_be_bytes());
    let mut f = mac(dst.0);
    f.extend(mac(src.0));
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend(ipv4);
    f.extend(udp);
    f
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Does this kernel finish partial checksums on transmit for the switch (AF_XDP transmit
/// metadata)? Where it does not, the switch finishes them itself.
fn kernel_finishes_checksums() -> bool {
    let umem = dataplane::sys::umem::Umem::new(16, 2048).unwrap();
    dataplane::sys::xsk::kernel_has_tx_metadata(&umem.region())
}

/// The bytes of a captured frame, and whether its receiver was told its checksum is still to
/// be finished (`Seen::partial`): then its field must hold exactly the pseudo-header sum, and it
/// is finished here as the receiving kernel would, had it not trusted it.
fn as_finished(s: &Seen) -> Vec<u8> {
    let mut b: Vec<u8> = (0..s.hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s.hex[i..i + 2], 16).unwrap())
        .collect();
    if s.partial {
        assert_eq!(
            dataplane::csum::complete_partial(&mut b),
            dataplane::csum::Checksum::Completed,
            "handed over to finish, its field holds the pseudo-header sum"
        );
    }
    b
}

#[test]
fn a_wrong_checksum_crosses_untouched_and_a_partial_one_arrives_to_be_finished() {
    let lab = Lab::new("w");
    let payload = b"qswitch checksum test payload, 40 bytes.";
    let wrong = udp_frame(host(&lab.vm1), host(&lab.vm2), payload, |_, full| {
        full ^ 0x0101
    });
    let partial = udp_frame(host(&lab.vm1), host(&lab.vm2), payload, |pseudo, _| pseudo);
    let complete = udp_frame(host(&lab.vm1), host(&lab.vm2), payload, |_, full| full);
    assert_ne!(partial, complete);
    let c2 = lab.vm2.capture(10.0, 0x0800);
    lab.vm1.send(&[hex(&wrong), hex(&partial)]);
    let seen = c2.finish();
    assert_eq!(
        seen,
        vec![
            Seen {
                hex: hex(&wrong),
                vlan: None,
                partial: false
            },
            if kernel_finishes_checksums() {
                Seen {
                    hex: hex(&partial),
                    vlan: None,
                    partial: true,
                }
            } else {
                Seen {
                    hex: hex(&complete),
                    vlan: None,
                    partial: false,
                }
            }
        ],
        "the wrong checksum reaches the receiver as it was sent (so it drops it); the partial \
         one as the sender left it, its receiver told to finish it (vm2's port is a veth, whose \
         kernel the switch asks to), as the Linux bridge hands it over"
    );
    assert_eq!(as_finished(&seen[1]), complete);
}

/// TCP both ways (8 MB, IPv4 one way and IPv6 the other) between two guests that keep TSO,
/// through a daemon in generic XDP mode with `workers` workers and `super_frames` as given.
/// Returns the super-frames the daemon's ports reported at its stop: segmented, and sent whole.
fn tso_guests(tag: &str, workers: u32, super_frames: &str) -> (u64, u64) {
    // In generic XDP mode the guests keep TSO (as guests behind tap devices do): their 64 KB
    // frames reach the switch as multi-buffer chains.
    let vm1 = Vm::new(tag, 1, 0);
    let vm2 = Vm::new(tag, 2, 0);
    let mut d = two_ports(
        &format!(
            "[switch]\nxdp_mode = \"generic\"\nworkers = {workers}\nsuper_frames = \"{super_frames}\"\n"
        ),
        [&vm1.host, &vm2.host],
        "",
    );
    for vm in [&vm1, &vm2] {
        let k = vm.offloads();
        assert!(k.contains("tcp-segmentation-offload: on"), "{k}");
    }
    let log = tcp_both_ways(&vm1, &vm2, &mut d);
    (
        port_total(&log, "super-frames segmented "),
        port_total(&log, " whole "),
    )
}

/// 8 MB of TCP from `vm1` to `vm2` over IPv4, then from `vm2` to `vm1` over IPv6, through
/// daemon `d`, which is then stopped: its log.
fn tcp_both_ways(vm1: &Vm, vm2: &Vm, d: &mut Daemon) -> String {
    vm1.enable_ipv6(V6_1);
    vm2.enable_ipv6(V6_2);
    for (from, to, ip) in [(vm1, vm2, vm2.ip.as_str()), (vm2, vm1, V6_1)] {
        if let Err(e) = from.ns.tcp_transfer(&to.ns, ip, 8 << 20) {
            panic!("TCP to {ip}: {e}\n{}", d.log());
        }
    }
    assert!(d.signal("-TERM"));
    d.log()
}

/// The sum over the ports of the counter the daemon's stop log prints after `what`.
fn port_total(log: &str, what: &str) -> u64 {
    port_counts(log, what).iter().sum()
}

/// The counter the daemon's stop log prints after `what`, port by port.
fn port_counts(log: &str, what: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|l| l.split(what).nth(1))
        .filter_map(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        .collect()
}

#[test]
fn tcp_from_guests_that_keep_tso_leaves_whole_within_a_worker_and_across() {
    // The super-frames leave whole, through the egress veth's packet socket with their segment
    // size, and the receiving guest's stack takes them as it takes the Linux bridge's: between
    // two ports of one worker, and between ports of two (sent by the ingress port's worker
    // through the other's socket, or handed over whole).
    for (tag, workers) in [("g", 1), ("h", 2)] {
        let (segmented, whole) = tso_guests(tag, workers, "whole");
        assert!(
            whole > 100,
            "{workers} workers: {whole} super-frames left whole, {segmented} were segmented"
        );
        // Some are cut: while the buffers for super-frames towards the other worker are all
        // in flight, or before the destination was learned (a flood).
        assert!(
            segmented < whole,
            "{workers} workers: {segmented} segmented, {whole} whole"
        );
    }
}

#[test]
fn tcp_from_guests_that_keep_tso_is_segmented_by_the_switch_when_told() {
    // `super_frames = "segment"`: the switch cuts them into segments within the MTU.
    let (segmented, whole) = tso_guests("s", 2, "segment");
    assert!(
        segmented > 100 && whole == 0,
        "{segmented} super-frames segmented, {whole} whole"
    );
}

/// TCP both ways (8 MB, IPv4 one way and IPv6 the other) between two guests without TSO
/// towards the switch (native XDP on veth takes it away), vm1 with tx checksum offload off,
/// through a daemon with `workers` workers and `coalesce` as given. Returns the segments each
/// of the daemon's ports reported merged at its stop.
fn segment_guests(tag: &str, workers: u32, coalesce: bool) -> (Vec<u64>, Vec<u64>) {
    let vm1 = Vm::new(tag, 1, 0);
    let vm2 = Vm::new(tag, 2, 0);
    let mut d = two_ports(
        &format!("[switch]\nxdp_mode = \"native\"\nworkers = {workers}\ncoalesce = {coalesce}\n"),
        [&vm1.host, &vm2.host],
        "",
    );
    vm1.ns.exec(&["ethtool", "-K", &vm1.dev, "tx", "off"]);
    for vm in [&vm1, &vm2] {
        let k = vm.offloads();
        assert!(k.contains("tcp-segmentation-offload: off"), "{k}");
    }
    let log = tcp_both_ways(&vm1, &vm2, &mut d);
    (
        port_counts(&log, "segments coalesced "),
        port_counts(&log, "sent by other workers "),
    )
}

#[test]
fn tcp_segments_of_one_flow_leave_merged_within_a_worker_and_across() {
    // Complete checksums one way (tx off), partial the other: both merged, the content intact
    // (`tcp_transfer` checks it), between ports of one worker and of two.
    // Each port's guest receives 8 MB: vm2 from vm1's complete checksums, vm1 from vm2's
    // partial ones. With two workers, the worker of the port a flow enters by merges its
    // segments and sends them out of the other worker's port itself, through that port's socket.
    for (tag, workers) in [("m", 1), ("n", 2)] {
        let (merged, straight) = segment_guests(tag, workers, true);
        assert!(
            merged.len() == 2 && merged.iter().all(|&n| n > 500),
            "{workers} workers: {merged:?} segments merged, by port"
        );
        let crossed = if workers == 1 {
            straight == [0, 0]
        } else {
            straight.len() == 2 && straight.iter().all(|&n| n > 50)
        };
        assert!(
            crossed,
            "{workers} workers: {straight:?} frames sent by the other worker"
        );
    }
    assert_eq!(segment_guests("o", 1, false).0, [0, 0], "coalesce = false");
}

/// The VMM's side of a tap device (`tests/tools/vmm.py`): writes a guest's frames with the
/// virtio-net header, offloads negotiated. The tap goes away with the process.
struct Vmm {
    child: std::process::Child,
    tap: String,
}

impl Vmm {
    fn start(guest_mac: &str, peer: &Vm) -> Vmm {
        use std::io::BufRead;
        let tap = format!("{}t", unique("v"));
        let tool = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/vmm.py");
        let mut child = std::process::Command::new("python3")
            .arg(tool)
            .args([&tap, guest_mac, &peer.mac, "198.18.0.1", &peer.ip])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("vmm.py");
        let mut line = String::new();
        let _ = std::io::BufReader::new(child.stderr.take().unwrap()).read_line(&mut line);
        assert!(line.contains("ready"), "vmm.py: {line}");
        sh(&["ip", "link", "set", &tap, "up"]);
        Vmm { child, tap }
    }

    /// A VMM whose guest (MAC 02:00:00:00:00:01) is on network `a` with `peer`, through a daemon
    /// forwarding on both ports.
    fn beside(peer: &Vm) -> (Vmm, Daemon) {
        Vmm::beside_with(peer, "")
    }

    /// As [`Vmm::beside`], the daemon's configuration starting with `head`.
    fn beside_with(peer: &Vm, head: &str) -> (Vmm, Daemon) {
        let vmm = Vmm::start("02:00:00:00:00:01", peer);
        let d = two_ports(head, [&vmm.tap, &peer.host], "");
        (vmm, d)
    }

    fn send(&mut self, what: &str) {
        assert_eq!(self.ask(what), "sent");
    }

    /// One command, one line of answer.
    fn ask(&mut self, what: &str) -> String {
        use std::io::{BufRead, Write};
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{what}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        let mut out = std::io::BufReader::new(self.child.stdout.as_mut().unwrap());
        out.read_line(&mut line).unwrap();
        line.trim().to_owned()
    }
}

impl Drop for Vmm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn partial_checksums_reach_a_tap_guest_as_virtio_nets_needs_checksum() {
    // The VMM negotiated checksum offload with its guest (TUN_F_CSUM): the switch leaves the
    // checksum of vm2's datagram to the tap's kernel, which hands it to the VMM as the
    // virtio-net header's "needs checksum" with where to finish it, as from a local socket.
    let vm2 = Vm::new("n", 2, 0);
    let (mut vmm, d) = Vmm::beside(&vm2);
    let guest = ("02:00:00:00:00:01", "198.18.0.1");
    let payload = b"to a guest behind a tap, to be finished";
    let partial = udp_frame(host(&vm2), guest, payload, |pseudo, _| pseudo);
    let complete = udp_frame(host(&vm2), guest, payload, |_, full| full);
    vm2.send(&[hex(&partial)]);
    let got = vmm.ask("recv 5");
    let field = |k: &str| -> u64 {
        got.split(&format!("\"{k}\": "))
            .nth(1)
            .and_then(|v| v.split([',', '}']).next()?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{k} in {got}\n{}", d.log()))
    };
    if !kernel_finishes_checksums() {
        // The switch finished it: an ordinary frame.
        assert_eq!(field("flags"), 0, "{got}");
        assert!(got.contains(&hex(&complete)), "finished: {got}");
        return;
    }
    assert_eq!(field("flags"), 1, "VIRTIO_NET_HDR_F_NEEDS_CSUM: {got}");
    assert_eq!(
        (field("csum_start"), field("csum_offset")),
        (34, 6),
        "{got}"
    );
    assert!(
        got.contains(&hex(&partial)),
        "the datagram as vm2 left it: {got}"
    );
    let mut finished = partial.clone();
    assert_eq!(
        dataplane::csum::complete_partial(&mut finished),
        dataplane::csum::Checksum::Completed
    );
    assert_eq!(finished, complete);
}

#[test]
fn a_tap_guests_tso_frames_and_partial_checksums_arrive_as_valid_segments() {
    tap_guests_tso_frames("q", true);
}

#[test]
fn a_tap_guests_tso_frames_arrive_whole_with_their_checksums_to_finish() {
    tap_guests_tso_frames("k", false);
}

/// A VM behind a tap whose VMM negotiated checksum offload and TSO sends a 20 000-byte TCP
/// super-frame (a chain of chunks), a 1 600-byte one (one chunk, above the MTU) and a UDP
/// datagram, all with their checksums left partial, to a VM behind a veth: they arrive cut into
/// segments (`segment`: `super_frames = "segment"`), or whole, as GSO frames whose checksums are
/// to be finished (each TCP frame as the VMM wrote it).
fn tap_guests_tso_frames(tag: &str, segment: bool) {
    let vm2 = Vm::new(tag, 2, 0);
    let head = if segment {
        "[switch]\nsuper_frames = \"segment\"\n"
    } else {
        ""
    };
    let (mut vmm, d) = Vmm::beside_with(&vm2, head);
    // The switch learns where vm2 is (a frame it sends the guest): its frames are known
    // unicast, not floods (which are always cut).
    let guest = ("02:00:00:00:00:01", "198.18.0.1");
    vm2.send(&[hex(&udp_frame(host(&vm2), guest, b"here", |_, full| full))]);
    let c = vm2.capture(10.0, 0x0800);
    vmm.send("tso 20000");
    vmm.send("tso 1600");
    vmm.send("udp 100");
    // vm2's port is a veth: the checksums reach it to be finished, as through a bridge, where
    // the kernel can finish them for the switch.
    let seen = c.finish();
    // (Without the kernel's help GRO may still mark merged segments so: checked below.)
    let offload = kernel_finishes_checksums();
    assert!(!offload || seen.iter().all(|s| s.partial), "{seen:?}");
    let seen: Vec<Vec<u8>> = seen.iter().map(as_finished).collect();
    let tcp: Vec<&Vec<u8>> = seen.iter().filter(|f| f[23] == 6).collect();
    let udp: Vec<&Vec<u8>> = seen.iter().filter(|f| f[23] == 17).collect();
    let frames = if segment {
        20_000usize.div_ceil(1460) + 2
    } else {
        2
    };
    assert_eq!(tcp.len(), frames, "{seen:?}\n{}", d.log());
    let mut payload = Vec::new();
    for (k, f) in tcp.iter().enumerate() {
        assert!(
            !segment || f.len() <= 1514,
            "segment {k}: {} bytes",
            f.len()
        );
        assert_eq!(dataplane::csum::verify(f), Some(true), "segment {k}");
        let seq = u32::from_be_bytes(f[38..42].try_into().unwrap());
        assert_eq!(seq as usize, 1000 + payload.len(), "segment {k}");
        payload.extend_from_slice(&f[54..]);
    }
    let pattern = |n: usize| (0..n).map(|i| ((i * 7 + 1) % 251) as u8);
    let want: Vec<u8> = pattern(20_000).chain(pattern(1_600)).collect();
    assert_eq!(payload, want, "the super-frame's payload, in order");
    assert_eq!(udp.len(), 1);
    assert_eq!(dataplane::csum::verify(udp[0]), Some(true));
}

/// The sum over the series of metric `name` in a scrape of the daemon at `addr`.
fn metric_sum(addr: &str, name: &str) -> f64 {
    let r = common::http::request(addr, "GET", "/metrics", None);
    bench::topo::metric_sum(&r.body, name, &[])
}

#[test]
fn known_unicast_crosses_inside_xdp_with_the_shortcut_and_default_offloads() {
    // Two workers (the ports on different ones), an ageing time shorter than the pings below.
    let vm1 = Vm::new("x", 1, 0);
    let vm2 = Vm::new("x", 2, 0);
    let addr = free_addr();
    let toml = format!(
        "[switch]\nxdp_shortcut = true\naging_secs = 3\nworkers = 2\n\
         [[network]]\nid = \"a\"\nvlan = 10\n\
         [[port]]\nid = \"p1\"\ndevice = \"{}\"\nnetwork = \"a\"\n\
         [[port]]\nid = \"p2\"\ndevice = \"{}\"\nnetwork = \"a\"\n",
        vm1.host, vm2.host
    );
    let mut d = Daemon::with_config(&toml, &["--listen", &addr]);
    assert!(
        wait_for(Duration::from_secs(10), || has_xdp(&vm1.host)
            && has_xdp(&vm2.host)),
        "{}",
        d.log()
    );
    assert_default_offloads(&vm1);
    assert_default_offloads(&vm2);
    assert!(
        vm1.ping_until(&vm2.ip, Duration::from_secs(5)),
        "{}",
        d.log()
    );
    // Six seconds of pings, twice the ageing time: after the first echo each way, every one
    // crosses inside XDP, and both addresses stay learned (no entry withdrawn: no change).
    let out = vm1
        .ns
        .exec(&["ping", "-c", "30", "-i", "0.2", "-W", "1", &vm2.ip]);
    assert!(out.contains(" 30 received"), "{out}\n{}", d.log());
    std::thread::sleep(Duration::from_millis(300));
    let forwarded = metric_sum(&addr, "qswitch_port_xdp_forwarded_total");
    assert!(
        forwarded >= 56.0,
        "{forwarded} frames inside XDP\n{}",
        d.log()
    );
    assert!(metric_sum(&addr, "qswitch_worker_xdp_shortcut_installed_total") >= 2.0);
    assert_eq!(
        metric_sum(&addr, "qswitch_worker_xdp_shortcut_withdrawn_total"),
        0.0,
        "an address aged out while its frames took the shortcut\n{}",
        d.log()
    );
    // A tenant's traffic: UDP datagrams (their checksums left partial by the sender), intact,
    // inside XDP, then TCP over IPv4 and IPv6 both ways, which stays with the worker.
    let before = metric_sum(&addr, "qswitch_port_xdp_forwarded_total");
    let (echoed, altered) = vm1.ns.udp_echo(&vm2.ns, &vm2.ip, 200, 1200);
    assert_eq!(altered, 0, "UDP datagrams altered");
    assert!(echoed >= 196, "{echoed} of 200 UDP datagrams echoed");
    std::thread::sleep(Duration::from_millis(300));
    let udp = metric_sum(&addr, "qswitch_port_xdp_forwarded_total") - before;
    assert!(
        udp >= 390.0,
        "{udp} of about 400 datagrams crossed inside XDP"
    );
    let before_tcp = before + udp;
    let log = tcp_both_ways(&vm1, &vm2, &mut d);
    let inside = port_total(&log, "xdp forwarded ") as f64;
    let rx = port_total(&log, ": rx ") as f64;
    assert!(
        inside - before_tcp < 20.0 && rx - inside > 200.0,
        "TCP crossed inside XDP: {inside} of {rx} frames, {before_tcp} before the TCP:\n{log}"
    );
}
