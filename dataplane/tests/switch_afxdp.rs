//! The `Switch` on real AF_XDP sockets, without the daemon: ports open on veth pairs, frames
//! cross, counters match the frames sent, the MAC table shows what was learned, and frame
//! accounting holds while ports come and go. Needs root (CI runs as root).

use std::process::Command;
use std::time::{Duration, Instant};

use dataplane::worker::LinkState;
use dataplane::{ConfigDelta, NetworkConfig, PortConfig, Switch, SwitchConfig, SwitchOptions};

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A veth pair: `host` stays in the root namespace, `vm` goes into namespace `ns`.
struct Pair {
    ns: String,
    host: String,
    vm: String,
}

impl Pair {
    fn new(tag: &str) -> Pair {
        Pair::with_queues(tag, 2)
    }

    /// A pair whose host end has `queues` RX queues.
    fn with_queues(tag: &str, queues: u32) -> Pair {
        let base = format!("qsx{tag}{:04}", std::process::id() % 10_000);
        let p = Pair {
            ns: base.clone(),
            host: format!("{base}h"),
            vm: format!("{base}v"),
        };
        let q = queues.to_string();
        assert!(sh(&["ip", "netns", "add", &p.ns]));
        assert!(sh(&[
            "ip",
            "link",
            "add",
            &p.host,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            &p.vm,
            "netns",
            &p.ns
        ]));
        let _ = sh(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{}.disable_ipv6=1", p.host),
        ]);
        assert!(sh(&["ip", "link", "set", &p.host, "up"]));
        let _ = sh(&[
            "ip",
            "netns",
            "exec",
            &p.ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
        ]);
        assert!(sh(&["ip", "-n", &p.ns, "link", "set", &p.vm, "up"]));
        p
    }

    fn send(&self, frames: &[String]) {
        let tool = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/tools/frames.py");
        let mut args = vec![
            "ip", "netns", "exec", &self.ns, "python3", tool, "send", &self.vm,
        ];
        args.extend(frames.iter().map(String::as_str));
        assert!(sh(&args));
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = sh(&["ip", "link", "del", &self.host]);
        let _ = sh(&["ip", "netns", "del", &self.ns]);
    }
}

fn frame(dst: &str, src: &str) -> String {
    format!("{dst}{src}88b5{}", "00".repeat(46))
}

/// Network `n`, VLAN 10 on the default physical network.
fn net_n() -> NetworkConfig {
    NetworkConfig {
        id: "n".into(),
        vlan: 10,
        mac_limit: 64,
        physnet: Some(dataplane::DEFAULT_PHYSNET.into()),
    }
}

/// Network `n` with ports `pa` on `a` and `pb` on `b`.
fn pa_pb(a: &Pair, b: &Pair) -> SwitchConfig {
    SwitchConfig {
        networks: vec![net_n()],
        ports: vec![
            PortConfig::access("pa", &a.host, "n"),
            PortConfig::access("pb", &b.host, "n"),
        ],
        ..SwitchConfig::default()
    }
}

fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn frames_cross_counters_match_and_accounting_holds() {
    let a = Pair::new("a");
    let b = Pair::new("b");
    // Two workers: the two ports go to one each (the least loaded), so every frame between them
    // crosses from one worker to the other.
    let sw = Switch::start(SwitchOptions {
        workers: 2,
        ..SwitchOptions::default()
    })
    .unwrap();
    assert_eq!(sw.workers(), 2);
    let cfg = pa_pb(&a, &b);
    sw.apply(cfg.clone()).unwrap();
    assert!(sw.wait_settled(Duration::from_secs(5)));
    for id in ["pa", "pb"] {
        let st = sw.port_status(id).unwrap();
        assert_eq!(st.link, LinkState::Up, "{st:?}");
        assert!(st.is_forwarding());
        assert_ne!(st.mode.name(), "closed");
    }
    let acc = sw.accounting().unwrap();
    assert_eq!(acc.free + acc.user + acc.in_kernel(), acc.total);
    assert_eq!(acc.user, 0);

    // b announces itself, then a sends 100 frames to it.
    b.send(&[frame("ffffffffffff", "020000000b0b")]);
    let to_b: Vec<String> = (0..100)
        .map(|_| frame("020000000b0b", "020000000a0a"))
        .collect();
    a.send(&to_b);
    assert!(
        wait_for(|| sw.port_stats("pb").unwrap().counters.tx_packets == 100),
        "pb sent {:?}",
        sw.port_stats("pb").map(|s| s.counters)
    );
    let pa = sw.port_stats("pa").unwrap().counters;
    assert_eq!(pa.rx_packets, 100);
    assert_eq!(pa.total_drops(), 0);
    let pb = sw.port_stats("pb").unwrap().counters;
    assert_eq!(pb.rx_packets, 1);
    assert_eq!(pb.floods, 1);
    // 101 frames crossed: b's flood one way, a's 100 the other.
    assert!(
        wait_for(|| {
            let w = sw.observe().workers;
            let out: u64 = w.iter().map(|w| w.crossed_out).sum();
            let taken: u64 = w.iter().map(|w| w.crossed_in).sum();
            out == 101 && taken == 101 && w.iter().all(|w| w.crossed_out > 0)
        }),
        "{:?}",
        sw.observe().workers
    );

    let macs = sw.mac_table("n").unwrap();
    let find = |m: &str| {
        macs.iter()
            .find(|e| e.mac.to_string() == m)
            .map(|e| e.port.clone())
    };
    assert_eq!(find("02:00:00:00:0b:0b").as_deref(), Some("pb"));
    assert_eq!(find("02:00:00:00:0a:0a").as_deref(), Some("pa"));

    // Closing a port returns every frame it held.
    let mut only_a = cfg.clone();
    only_a.ports.retain(|p| p.id == "pa");
    sw.apply(only_a).unwrap();
    assert!(wait_for(|| {
        let acc = sw.accounting().unwrap();
        acc.by_port.len() == 1 && acc.free + acc.user + acc.in_kernel() == acc.total
    }));
    // Its program detaches off the worker, moments later.
    assert!(wait_for(|| !has_xdp(&b.host)), "program left attached");
    sw.apply(cfg).unwrap();
    assert!(sw.wait_settled(Duration::from_secs(5)));
    let st = sw.port_status("pb").unwrap();
    assert_eq!(st.link, LinkState::Up, "{st:?}");
    sw.shutdown();
}

#[test]
fn the_mac_table_grows_before_the_workers_adopt_the_snapshot() {
    // A network that may learn 200 000 addresses: the table (64 slots at the start) must have
    // grown to twice that by the time `apply` returns, on the caller's thread, so that no worker
    // stops forwarding to copy it when it adopts the snapshot.
    let sw = Switch::start(SwitchOptions::default()).unwrap();
    let small = sw.mac_table_slots();
    assert!(small < 400_000, "{small}");
    let cfg = SwitchConfig {
        networks: vec![NetworkConfig {
            mac_limit: 200_000,
            ..net_n()
        }],
        ..SwitchConfig::default()
    };
    sw.apply(cfg).unwrap();
    let slots = sw.mac_table_slots();
    assert!(slots >= 400_000, "{slots} slots");
    // Removing the network shrinks nothing (a table never shrinks while the switch runs).
    sw.apply(SwitchConfig::default()).unwrap();
    assert_eq!(sw.mac_table_slots(), slots);
    sw.shutdown();
}

#[test]
fn a_port_whose_device_is_missing_is_down_and_opens_when_it_appears() {
    let sw = Switch::start(SwitchOptions::default()).unwrap();
    let name = format!("qsxl{:04}h", std::process::id() % 10_000);
    let cfg = SwitchConfig {
        networks: vec![net_n()],
        ports: vec![PortConfig::access("p", &name, "n")],
        ..SwitchConfig::default()
    };
    sw.apply(cfg).unwrap();
    let st = sw.port_status("p").unwrap();
    assert!(!st.is_forwarding());
    assert!(st.error.unwrap_or_default().contains("no interface"));
    // The device appears: the monitor opens the port.
    let pair = Pair {
        ns: String::new(),
        host: name.clone(),
        vm: format!("{name}p"),
    };
    assert!(sh(&[
        "ip", "link", "add", &pair.host, "type", "veth", "peer", "name", &pair.vm
    ]));
    assert!(sh(&["ip", "link", "set", &pair.host, "up"]));
    assert!(wait_for(|| sw.port_status("p").unwrap().is_forwarding()));
    // And disappears: the port goes down, the switch stays up.
    let _ = sh(&["ip", "link", "del", &pair.host]);
    assert!(wait_for(|| !sw.port_status("p").unwrap().is_forwarding()));
    sw.shutdown();
}

#[test]
fn conflicting_items_are_refused_one_by_one_and_admitted_when_freed() {
    let sw = Switch::start(SwitchOptions::default()).unwrap();
    let net = |id: &str, vlan| NetworkConfig {
        id: id.into(),
        vlan,
        mac_limit: 64,
        physnet: Some(dataplane::DEFAULT_PHYSNET.into()),
    };
    // No such devices: the ports are desired but not placed, and their checks still run.
    sw.update(ConfigDelta {
        networks: vec![net("a", 10), net("b", 10)],
        ports: vec![
            PortConfig::access("pa", "qsxnodev1", "a"),
            PortConfig::access("pb", "qsxnodev2", "b"),
            PortConfig::access("pc", "qsxnodev1", "a"),
        ],
        ..ConfigDelta::default()
    });
    let st = |id: &str| sw.port_status(id).unwrap();
    assert!(!st("pa").refused, "{:?}", st("pa"));
    assert!(st("pa").error.unwrap().contains("no interface"));
    assert!(st("pb").refused);
    assert!(st("pb").error.unwrap().contains("not forwarded"));
    assert!(st("pc").refused);
    assert!(st("pc").error.unwrap().contains("held by port pa"));

    // Network a and port pa go: b takes VLAN 10, pc takes the device but has no network.
    sw.update(ConfigDelta {
        removed_networks: vec!["a".into()],
        removed_ports: vec!["pa".into()],
        ..ConfigDelta::default()
    });
    assert!(!st("pb").refused, "{:?}", st("pb"));
    assert!(st("pc").error.unwrap().contains("does not exist"));
    assert!(sw.port_status("pa").is_none());
    sw.shutdown();
}

fn has_xdp(dev: &str) -> bool {
    Command::new("ip")
        .args(["-o", "link", "show", "dev", dev])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(" xdp"))
        .unwrap_or(false)
}

#[test]
fn a_registered_device_stays_prepared_across_its_ports_until_released() {
    let a = Pair::new("w");
    let sw = Switch::start(SwitchOptions::default()).unwrap();
    assert!(!has_xdp(&a.host));
    // Prepared ahead: the program is attached and the sockets are bound before any port
    // exists.
    sw.prepare_devices(std::slice::from_ref(&a.host));
    assert!(wait_for(|| has_xdp(&a.host)));
    assert!(
        wait_for(|| sw.bound_ahead(&a.host)),
        "no sockets bound ahead"
    );
    let net = net_n();
    let port = PortConfig::access("p", &a.host, "n");
    for _ in 0..3 {
        sw.update(ConfigDelta {
            networks: vec![net.clone()],
            ports: vec![port.clone()],
            ..ConfigDelta::default()
        });
        assert!(sw.wait_ports_settled(&["p".into()], Duration::from_secs(5)));
        assert!(sw.port_status("p").unwrap().is_forwarding());
        // The port took the sockets bound ahead (one on each of its device's two queues).
        assert!(!sw.bound_ahead(&a.host));
        let before = sw.port_stats("p").unwrap().counters.rx_packets;
        a.send(&[frame("ffffffffffff", "020000000a0a")]);
        assert!(wait_for(
            || sw.port_stats("p").unwrap().counters.rx_packets == before + 1
        ));
        sw.update(ConfigDelta {
            removed_ports: vec!["p".into()],
            ..ConfigDelta::default()
        });
        // The port is gone; the program stays for the next one, and sockets are bound ahead
        // again once the port's are released.
        std::thread::sleep(Duration::from_millis(50));
        assert!(has_xdp(&a.host), "detached with the port");
        assert!(
            wait_for(|| sw.bound_ahead(&a.host)),
            "no sockets bound ahead again after the port closed"
        );
    }
    sw.release_devices(std::slice::from_ref(&a.host));
    assert!(!sw.bound_ahead(&a.host));
    assert!(
        wait_for(|| !has_xdp(&a.host)),
        "still attached after release"
    );
    sw.shutdown();
}

/// The kernel lets go of a closed socket's queue later than its close returns; `queue_free`
/// sees when: busy while a socket is bound there, free again once it is closed and released.
#[test]
fn a_queue_reads_busy_until_the_kernel_has_let_go_of_its_socket() {
    use dataplane::sys::{netdev, umem::Umem, xsk};
    let a = Pair::with_queues("qf", 1);
    let ifindex = netdev::ifindex(&a.host).unwrap();
    assert!(
        wait_for(|| xsk::queue_free(ifindex, 0).unwrap()),
        "a new device's queue is free"
    );
    let umem = Umem::new(64, 4096).unwrap();
    let sizes = xsk::RingSizes {
        fill: 64,
        comp: 64,
        rx: 64,
        tx: 64,
    };
    // (The probe's own socket may still be releasing: a bind waits for it as the switch's do.)
    let mut sock = None;
    assert!(wait_for(|| {
        sock = xsk::XskSocket::open(&umem.region(), None, ifindex, 0, sizes, xsk::XDP_COPY).ok();
        sock.is_some()
    }));
    assert!(!xsk::queue_free(ifindex, 0).unwrap(), "busy while bound");
    drop(sock);
    assert!(
        wait_for(|| xsk::queue_free(ifindex, 0).unwrap()),
        "free once released"
    );
    // A device that is gone: an error, not "busy".
    assert!(xsk::queue_free(u32::MAX - 1, 0).is_err());
}

/// A port on a device other than a veth or a tap (here an `ifb` device) keeps its chunks from the
/// pool after its close until the kernel has let go of its queues; they all come back, and the
/// port opens again.
#[test]
fn a_port_whose_chunks_wait_for_the_kernel_gives_them_back_and_opens_again() {
    let dev = format!("qsxifb{:04}", std::process::id() % 10_000);
    assert!(sh(&["ip", "link", "add", &dev, "type", "ifb"]));
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = sh(&["ip", "link", "del", &self.0]);
        }
    }
    let _del = Del(dev.clone());
    assert!(sh(&["ip", "link", "set", &dev, "up"]));
    let waited = dataplane::port::afxdp::releases_waited_for_kernel();
    let sw = Switch::start(SwitchOptions::default()).unwrap();
    let cfg = SwitchConfig {
        networks: vec![net_n()],
        ports: vec![PortConfig::access("pd", &dev, "n")],
        ..SwitchConfig::default()
    };
    let none = SwitchConfig {
        networks: vec![net_n()],
        ..SwitchConfig::default()
    };
    for round in 1..=3 {
        sw.apply(cfg.clone()).unwrap();
        assert!(sw.wait_settled(Duration::from_secs(5)));
        let st = sw.port_status("pd").unwrap();
        assert_eq!(st.link, LinkState::Up, "round {round}: {st:?}");
        assert!(sw.accounting().unwrap().by_port.len() == 1);
        sw.apply(none.clone()).unwrap();
        assert!(
            wait_for(|| {
                let acc = sw.accounting().unwrap();
                acc.by_port.is_empty() && acc.free == acc.total
            }),
            "round {round}: {:?}",
            sw.accounting()
        );
        assert!(
            dataplane::port::afxdp::releases_waited_for_kernel() >= waited + round,
            "round {round}: the release waited for the kernel"
        );
    }
    sw.shutdown();
}

/// A port unplugged and plugged again at once (a registered device, as Quantum attachments do)
/// reopens every time: its old sockets are released off the worker while the new ones wait for
/// the device's queues, and the frames it held come back to the pool.
#[test]
fn a_port_plugged_again_at_once_forwards_each_time() {
    let a = Pair::new("p");
    let b = Pair::new("u");
    let sw = Switch::start(SwitchOptions {
        workers: 2,
        ..SwitchOptions::default()
    })
    .unwrap();
    sw.prepare_devices(&[a.host.clone(), b.host.clone()]);
    let net = net_n();
    let pa = PortConfig::access("pa", &a.host, "n");
    let pb = PortConfig::access("pb", &b.host, "n");
    sw.update(ConfigDelta {
        networks: vec![net],
        ports: vec![pa, pb.clone()],
        ..ConfigDelta::default()
    });
    assert!(sw.wait_settled(Duration::from_secs(5)));
    let ids = ["pb".to_owned()];
    for round in 1..=5 {
        sw.update(ConfigDelta {
            removed_ports: vec!["pb".into()],
            ..ConfigDelta::default()
        });
        sw.update(ConfigDelta {
            ports: vec![pb.clone()],
            ..ConfigDelta::default()
        });
        assert!(sw.wait_ports_settled(&ids, Duration::from_secs(5)));
        let st = sw.port_status("pb").unwrap();
        assert_eq!(st.link, LinkState::Up, "round {round}: {st:?}");
        // A frame from a floods to the new port (whose counters start afresh).
        a.send(&[frame("ffffffffffff", "020000000a0a")]);
        assert!(
            wait_for(|| sw.port_stats("pb").unwrap().counters.tx_packets == 1),
            "round {round}: {:?}",
            sw.port_stats("pb").map(|s| s.counters)
        );
    }
    // Another device takes the slot pb just freed (on the same worker, whose previous port is
    // still releasing its sockets).
    let c = Pair::new("v");
    sw.update(ConfigDelta {
        removed_ports: vec!["pb".into()],
        ports: vec![PortConfig::access("pc", &c.host, "n")],
        ..ConfigDelta::default()
    });
    assert!(sw.wait_ports_settled(&["pc".into()], Duration::from_secs(5)));
    let st = sw.port_status("pc").unwrap();
    assert_eq!(st.link, LinkState::Up, "{st:?}");
    a.send(&[frame("ffffffffffff", "020000000a0a")]);
    assert!(
        wait_for(|| sw.port_stats("pc").unwrap().counters.tx_packets == 1),
        "{:?}",
        sw.port_stats("pc").map(|s| s.counters)
    );
    // Every frame is accounted for, and none is held for a closed port once its release ends.
    assert!(wait_for(|| {
        let acc = sw.accounting().unwrap();
        acc.by_port.len() == 2 && acc.free + acc.user + acc.in_kernel() == acc.total
    }));
    sw.shutdown();
}

#[test]
fn ports_go_to_the_worker_polling_the_fewest_queues() {
    // A port with 4 RX queues weighs as much as two with 2.
    let wide = Pair::with_queues("x", 4);
    let b = Pair::with_queues("q", 2);
    let c = Pair::with_queues("y", 2);
    let sw = Switch::start(SwitchOptions {
        workers: 2,
        ..SwitchOptions::default()
    })
    .unwrap();
    let net = net_n();
    let mut cfg = SwitchConfig {
        networks: vec![net],
        ports: vec![PortConfig::access("wide", &wide.host, "n")],
        ..SwitchConfig::default()
    };
    // One at a time, so that the order of placement is known.
    sw.apply(cfg.clone()).unwrap();
    for (id, pair) in [("b", &b), ("c", &c)] {
        cfg.ports.push(PortConfig::access(id, &pair.host, "n"));
        sw.apply(cfg.clone()).unwrap();
    }
    assert!(sw.wait_settled(Duration::from_secs(5)));
    let worker = |id: &str| sw.port_status(id).unwrap().worker.unwrap();
    assert_ne!(worker("wide"), worker("b"));
    assert_eq!(worker("b"), worker("c"), "4 queues against 2 + 2");
    for id in ["wide", "b", "c"] {
        assert!(sw.port_status(id).unwrap().is_forwarding(), "{id}");
    }
}

/// Registered devices get their sockets bound ahead on the workers as their ports would be
/// spread (sockets bound ahead count as load), and each port then serves on the worker its
/// sockets were bound on.
#[test]
fn devices_bound_ahead_spread_over_the_workers_and_their_ports_stay_there() {
    let a = Pair::with_queues("ba", 2);
    let b = Pair::with_queues("bb", 2);
    let sw = Switch::start(SwitchOptions {
        workers: 2,
        ..SwitchOptions::default()
    })
    .unwrap();
    sw.prepare_devices(&[a.host.clone(), b.host.clone()]);
    assert!(wait_for(
        || sw.bound_ahead(&a.host) && sw.bound_ahead(&b.host)
    ));
    let net = net_n();
    sw.update(ConfigDelta {
        networks: vec![net],
        ports: vec![
            PortConfig::access("pa", &a.host, "n"),
            PortConfig::access("pb", &b.host, "n"),
        ],
        ..ConfigDelta::default()
    });
    assert!(sw.wait_settled(Duration::from_secs(5)));
    let worker = |id: &str| sw.port_status(id).unwrap().worker.unwrap();
    assert_ne!(worker("pa"), worker("pb"));
    assert!(!sw.bound_ahead(&a.host) && !sw.bound_ahead(&b.host));
    // Frames cross between the two workers' ports.
    a.send(&[frame("ffffffffffff", "020000000a0a")]);
    assert!(
        wait_for(|| sw.port_stats("pb").unwrap().counters.tx_packets == 1),
        "{:?}",
        sw.port_stats("pb").map(|s| s.counters)
    );
    sw.shutdown();
}

/// Idle workers sleep (here at once, and for up to ten minutes: no timer rescues a wake-up that
/// is lost), and whatever brings them work wakes them: frames on a port's sockets, frames handed
/// over by the other worker, and commands (a port added, and the switch's shutdown).
#[test]
fn sleeping_workers_wake_for_frames_handed_over_frames_and_commands() {
    let a = Pair::new("sa");
    let b = Pair::new("sb");
    let c = Pair::new("sc");
    let sw = Switch::start(SwitchOptions {
        workers: 2,
        worker: dataplane::WorkerConfig {
            idle_spin_ns: 0,
            idle_sleep_ns: 600_000_000_000,
            ..dataplane::WorkerConfig::default()
        },
        ..SwitchOptions::default()
    })
    .unwrap();
    let mut cfg = pa_pb(&a, &b);
    sw.apply(cfg.clone()).unwrap();
    assert!(sw.wait_settled(Duration::from_secs(5)));
    let worker = |id: &str| sw.port_status(id).unwrap().worker.unwrap();
    assert_ne!(worker("pa"), worker("pb"));
    b.send(&[frame("ffffffffffff", "020000000b0b")]);
    assert!(wait_for(|| sw
        .port_stats("pa")
        .unwrap()
        .counters
        .tx_packets
        == 1));
    for n in 1..=5 {
        // Both workers asleep again.
        std::thread::sleep(Duration::from_millis(50));
        a.send(&[frame("020000000b0b", "020000000a0a")]);
        assert!(
            wait_for(|| sw.port_stats("pb").unwrap().counters.tx_packets == n),
            "frame {n}: {:?}",
            sw.port_stats("pb").map(|s| s.counters)
        );
    }
    std::thread::sleep(Duration::from_millis(50));
    cfg.ports.push(PortConfig::access("pc", &c.host, "n"));
    sw.apply(cfg).unwrap();
    assert!(sw.wait_settled(Duration::from_secs(5)));
    assert!(sw.port_status("pc").unwrap().is_forwarding());
    std::thread::sleep(Duration::from_millis(50));
    c.send(&[frame("ffffffffffff", "020000000c0c")]);
    assert!(wait_for(|| {
        sw.port_stats("pa").unwrap().counters.tx_packets == 2
            && sw.port_stats("pb").unwrap().counters.tx_packets == 6
    }));
    sw.shutdown();
}

/// Captures frames of EtherType 0x0800 on `dev` in namespace `ns` while `during` runs: each as
/// (bytes, whether the kernel handed it over with its checksum still to finish).
fn capture_ipv4(ns: &str, dev: &str, during: impl FnOnce()) -> Vec<(Vec<u8>, bool)> {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;
    let tool = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/tools/frames.py");
    let mut child = Command::new("ip")
        .args([
            "netns", "exec", ns, "python3", tool, "capture", dev, "10", "800",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let _ = BufReader::new(child.stderr.take().unwrap()).read_line(&mut line);
    assert!(line.contains("ready"), "capture did not start: {line}");
    during();
    std::thread::sleep(Duration::from_millis(300));
    drop(child.stdin.take());
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = child.wait();
    out.lines()
        .filter_map(|l| {
            let hex = l.split("\"hex\": \"").nth(1)?.split('"').next()?;
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
                .collect::<Option<Vec<u8>>>()?;
            Some((bytes, l.contains("\"partial\": true")))
        })
        .collect()
}

/// The kernel's release as (major, minor), from `uname -r`.
fn kernel_release() -> (u32, u32) {
    let out = Command::new("uname").arg("-r").output().unwrap();
    let r = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut parts = r
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn a_kernel_with_transmit_metadata_is_found_to_have_it() {
    // Every test of the checksum offload expects what this probe says: were the registration
    // broken on a kernel that has the metadata (6.11 and later), they would all expect the
    // switch's fallback and pass.
    let umem = dataplane::sys::umem::Umem::new(16, 2048).unwrap();
    let found = dataplane::sys::xsk::kernel_has_tx_metadata(&umem.region());
    if kernel_release() >= (6, 11) {
        assert!(
            found,
            "kernel {:?} has AF_XDP transmit metadata",
            kernel_release()
        );
    }
}

#[test]
fn partial_checksums_are_left_to_the_kernel_with_the_offsets_it_needs() {
    let a = Pair::new("c");
    let b = Pair::new("d");
    // Behind b's VM end, a bridge forwards what arrives to a veth that cannot finish checksums
    // (`tx off`): the kernel finishes them there in software, from the offsets the switch gave
    // it; on the far end of that veth the frame is complete.
    let (br, x, y) = (
        format!("{}br", b.ns),
        format!("{}x", b.ns),
        format!("{}y", b.ns),
    );
    let in_b = |args: &[&str]| {
        let mut v = vec!["ip", "netns", "exec", &b.ns];
        v.extend_from_slice(args);
        assert!(sh(&v), "{args:?}");
    };
    in_b(&["ip", "link", "add", &br, "type", "bridge"]);
    // Where br_netfilter is loaded, bridged IPv4 would go through iptables too.
    let _ = sh(&[
        "ip",
        "netns",
        "exec",
        &b.ns,
        "sysctl",
        "-qw",
        "net.bridge.bridge-nf-call-iptables=0",
    ]);
    in_b(&["ip", "link", "add", &x, "type", "veth", "peer", "name", &y]);
    in_b(&["ethtool", "-K", &x, "tx", "off"]);
    for d in [&b.vm, &x] {
        in_b(&["ip", "link", "set", d, "master", &br]);
    }
    for d in [&br, &x, &y] {
        in_b(&["ip", "link", "set", d, "up"]);
    }
    let sw = Switch::start(SwitchOptions {
        workers: 1,
        ..SwitchOptions::default()
    })
    .unwrap();
    sw.apply(pa_pb(&a, &b)).unwrap();
    assert!(sw.wait_settled(Duration::from_secs(5)));

    // A TCP segment and a UDP datagram from a's VM, their checksums partial as a guest's stack
    // leaves them (the packet socket sends the bytes as they are).
    let segment = |proto: u8, len: usize| {
        let l4 = if proto == 6 { 20 } else { 8 };
        let total = 20 + l4 + len;
        let mut ip = vec![0x45, 0, 0, 0, 0, 7, 0x40, 0, 64, proto, 0, 0];
        ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        ip.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 2]);
        let mut sum: u32 = ip
            .chunks(2)
            .map(|w| u32::from(w[0]) << 8 | u32::from(w[1]))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        let mut hdr = vec![0u8; l4];
        hdr[0..4].copy_from_slice(&[0x30, 0x39, 0x1f, 0x90]);
        if proto == 6 {
            hdr[12] = 5 << 4;
            hdr[13] = 0x18;
        } else {
            hdr[4..6].copy_from_slice(&((8 + len) as u16).to_be_bytes());
        }
        ip.extend_from_slice(&hdr);
        ip.extend((0..len).map(|i| (i * 13 + 5) as u8));
        let mut f = dataplane::wire::build_frame(
            dataplane::wire::Mac([0x02, 0, 0, 0, 0x0b, 0x0b]),
            dataplane::wire::Mac([0x02, 0, 0, 0, 0x0a, 0x0a]),
            None,
            0x0800,
            &ip,
        );
        assert!(dataplane::csum::make_partial(&mut f));
        f
    };
    let sent = [segment(6, 1000), segment(17, 333)];
    let hex: Vec<String> = sent
        .iter()
        .map(|f| f.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let mut at_y = Vec::new();
    let at_vm = capture_ipv4(&b.ns, &b.vm, || {
        at_y = capture_ipv4(&b.ns, &y, || a.send(&hex));
    });
    // Only the test's frames (the namespace's own interfaces may send IGMP reports).
    let ours = |seen: Vec<(Vec<u8>, bool)>| -> Vec<(Vec<u8>, bool)> {
        seen.into_iter()
            .filter(|(f, _)| f.starts_with(&sent[0][..12]))
            .collect()
    };
    let (at_vm, at_y) = (ours(at_vm), ours(at_y));
    // At b's VM: the bytes as sent, handed over to finish, as through a bridge (where the
    // kernel cannot finish them for the switch, finished by the switch). (The two flows may take
    // different queues of a's veth, and arrive in either order.)
    let umem = dataplane::sys::umem::Umem::new(16, 2048).unwrap();
    let offload = dataplane::sys::xsk::kernel_has_tx_metadata(&umem.region());
    let mut at_vm = at_vm;
    at_vm.sort_by_key(|(f, _)| core::cmp::Reverse(f.len()));
    assert_eq!(at_vm.len(), 2, "{at_vm:?}");
    for ((got, partial), want) in at_vm.iter().zip(&sent) {
        assert_eq!(*partial, offload, "left to the receiving kernel");
        if offload {
            assert_eq!(got, want);
            assert_eq!(
                dataplane::csum::verify(got),
                Some(false),
                "the pseudo-header sum"
            );
        } else {
            let mut finished = want.clone();
            dataplane::csum::complete_partial(&mut finished);
            assert_eq!(
                got, &finished,
                "finished by the switch, nothing else changed"
            );
        }
    }
    // Past the veth without checksum offload: finished, and right.
    assert_eq!(at_y.len(), 2, "{at_y:?}");
    for (got, _) in &at_y {
        assert_eq!(
            dataplane::csum::verify(got),
            Some(true),
            "finished at the offsets given"
        );
    }
    let pa = sw.port_stats("pa").unwrap().counters;
    assert_eq!(pa.csum_completed, 2);
    sw.shutdown();
}

/// The VMM's side of a multi-queue tap (`tests/tools/mqtap.py`), in the root namespace.
struct MqTap {
    name: String,
    vmm: std::process::Child,
    answers: std::io::BufReader<std::process::ChildStdout>,
}

impl MqTap {
    fn new(tag: &str) -> MqTap {
        use std::process::Stdio;
        let name = format!("qsx{tag}{:04}", std::process::id() % 10_000);
        let tool = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/tools/mqtap.py");
        let mut vmm = Command::new("python3")
            .args([tool, &name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("mqtap.py");
        let answers = std::io::BufReader::new(vmm.stdout.take().unwrap());
        MqTap { name, vmm, answers }
    }

    fn ask(&mut self, line: &str) {
        use std::io::{BufRead, Write};
        let stdin = self.vmm.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        let mut answer = String::new();
        self.answers.read_line(&mut answer).unwrap();
        assert_eq!(answer.trim(), "ok", "mqtap.py {line}");
    }
}

impl Drop for MqTap {
    fn drop(&mut self) {
        drop(self.vmm.stdin.take());
        let _ = self.vmm.wait();
    }
}

/// A device that gains RX queues while its port is open (a guest enabling more of its virtio-net
/// queues, and its VMM attaching more of the tap's): the port is opened again with a socket on
/// each, so that no frame goes past the switch to the host's stack.
#[test]
fn a_device_that_gains_rx_queues_has_its_port_opened_again_on_them() {
    gains_queues("m", false);
}

/// As above, on a registered device (its program prepared ahead and kept across its ports).
#[test]
fn a_registered_device_that_gains_rx_queues_has_its_port_opened_again_on_them() {
    gains_queues("r", true);
}

fn gains_queues(tag: &str, registered: bool) {
    let mut tap = MqTap::new(tag);
    tap.ask("attach");
    assert!(sh(&["ip", "link", "set", &tap.name, "up"]));
    let sw = Switch::start(SwitchOptions::default()).unwrap();
    if registered {
        sw.prepare_devices(std::slice::from_ref(&tap.name));
        assert!(wait_for(|| has_xdp(&tap.name)), "prepared");
    }
    sw.update(ConfigDelta {
        networks: vec![net_n()],
        ports: vec![PortConfig::access("pa", &tap.name, "n")],
        ..ConfigDelta::default()
    });
    assert!(sw.wait_settled(Duration::from_secs(5)));
    let st = sw.port_status("pa").unwrap();
    assert_eq!(st.link, LinkState::Up, "{st:?}");
    let rx = || sw.port_stats("pa").unwrap().counters.rx_packets;
    let broadcast = frame("ffffffffffff", "020000000a0a");
    tap.ask(&format!("send 0 8 {broadcast}"));
    assert!(wait_for(|| rx() == 8), "{:?}", sw.port_stats("pa"));
    // A second queue: within a second the monitor sees it and the port opens again on both.
    tap.ask("attach");
    let end = Instant::now() + Duration::from_secs(10);
    let mut whole = false;
    while !whole && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
        if sw.port_status("pa").unwrap().link != LinkState::Up {
            continue;
        }
        let before = rx();
        tap.ask(&format!("send 1 8 {broadcast}"));
        whole = wait_for(|| rx() - before == 8);
    }
    assert!(
        whole,
        "frames on the new queue went past the port: {:?} {:?}",
        sw.port_status("pa"),
        sw.port_stats("pa").map(|s| s.counters)
    );
    // Opened again once: it stays up, and frames on either queue reach it.
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(50));
        let st = sw.port_status("pa").unwrap();
        assert_eq!(st.link, LinkState::Up, "{st:?}");
    }
    let before = rx();
    tap.ask(&format!("send 0 8 {broadcast}"));
    tap.ask(&format!("send 1 8 {broadcast}"));
    assert!(
        wait_for(|| rx() - before == 16),
        "{:?}",
        sw.port_stats("pa")
    );
    sw.shutdown();
}
