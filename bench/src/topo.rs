//! The benchmark topology: a generator namespace and a sink namespace joined by the device under
//! test, built with `ip` and torn down by a guard, also when a run fails or is interrupted.
//!
//! ```text
//! [qsbgen] gen-v <-veth-> gen-h [qsbdut: DUT] sink-h <-veth-> sink-v [qsbsink]
//! ```
//!
//! With the `none` DUT, `gen-v` and `sink-v` are the two ends of one veth pair (this machine's
//! ceiling). Every name starts with `qsb`; no IP address is configured, no frame leaves the
//! namespaces.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Namespaces of the topology.
pub const NAMESPACES: [&str; 3] = ["qsbgen", "qsbsink", "qsbdut"];
/// Most ports a meshed topology has.
pub const MAX_MESH: usize = 8;

/// The namespace of port `i` of a meshed topology.
pub fn mesh_ns(i: usize) -> String {
    format!("qsbm{i}")
}

/// The MAC of port `i` of a meshed topology.
pub fn mesh_mac(i: usize) -> dataplane::Mac {
    dataplane::Mac([0x02, 0xbe, 0xff, 0, 1, i as u8])
}

/// The sink's MAC.
pub const SINK_MAC: dataplane::Mac = dataplane::Mac([0x02, 0xbe, 0xff, 0, 0, 2]);

/// Devices under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dut {
    /// No device: the generator's veth straight into the sink.
    None,
    /// The Linux bridge (bridge-nf-call-iptables off in the DUT namespace).
    Bridge,
    /// qswitch (release binary), worker pinned to CPU 1, busy polling.
    Qswitch,
    /// Open vSwitch in userspace mode (when installed).
    Ovs,
}

impl Dut {
    /// Parses `none`, `bridge`, `qswitch`, `ovs`.
    pub fn parse(s: &str) -> Option<Dut> {
        Some(match s {
            "none" => Dut::None,
            "bridge" => Dut::Bridge,
            "qswitch" => Dut::Qswitch,
            "ovs" => Dut::Ovs,
            _ => return None,
        })
    }

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Dut::None => "none",
            Dut::Bridge => "bridge",
            Dut::Qswitch => "qswitch",
            Dut::Ovs => "ovs",
        }
    }
}

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command inside namespace `ns`.
pub fn in_ns(ns: &str, args: &[&str]) -> Result<String, String> {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    run(&v)
}

/// Removes every namespace of the topology (and so every interface in them).
pub fn teardown() {
    let mesh = (0..MAX_MESH).map(mesh_ns);
    for ns in NAMESPACES.iter().map(|s| s.to_string()).chain(mesh) {
        let _ = Command::new("ip")
            .args(["netns", "del", &ns])
            .stderr(Stdio::null())
            .status();
    }
}

/// A built topology; dropping it tears it down (and stops the DUT).
#[derive(Debug)]
pub struct Topology {
    /// The device under test.
    pub dut: Dut,
    daemon: Option<Child>,
}

impl Topology {
    /// Builds the topology for `dut`. `qswitch` is the path of the qswitch binary; `work` a
    /// scratch directory.
    pub fn build(dut: Dut, qswitch: &str, work: &std::path::Path) -> Result<Topology, String> {
        teardown();
        let mut t = Topology { dut, daemon: None };
        for ns in NAMESPACES {
            run(&["ip", "netns", "add", ns])?;
            in_ns(ns, &["ip", "link", "set", "lo", "up"])?;
            let _ = in_ns(ns, &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
            let _ = in_ns(
                ns,
                &["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
            );
        }
        let veth = |a: &str, ans: &str, b: &str, bns: &str| {
            run(&[
                "ip", "link", "add", a, "netns", ans, "type", "veth", "peer", "name", b, "netns",
                bns,
            ])
        };
        if dut == Dut::None {
            veth("gen-v", "qsbgen", "sink-v", "qsbsink")?;
        } else {
            veth("gen-v", "qsbgen", "gen-h", "qsbdut")?;
            veth("sink-v", "qsbsink", "sink-h", "qsbdut")?;
            for d in ["gen-h", "sink-h"] {
                in_ns("qsbdut", &["ip", "link", "set", d, "up"])?;
            }
        }
        in_ns(
            "qsbgen",
            &[
                "ip",
                "link",
                "set",
                "gen-v",
                "address",
                "02:be:ff:00:00:01",
                "up",
            ],
        )?;
        let sink_mac = SINK_MAC.to_string();
        in_ns(
            "qsbsink",
            &["ip", "link", "set", "sink-v", "address", &sink_mac, "up"],
        )?;
        in_ns("qsbsink", &["nft", "add table netdev qsb"])?;
        in_ns(
            "qsbsink",
            &["nft", "add chain netdev qsb in { type filter hook ingress device sink-v priority 0; policy drop; }"],
        )?;
        if dut != Dut::None {
            t.daemon = start_dut(dut, &["gen-h", "sink-h"], qswitch, work)?;
        }
        Ok(t)
    }
}

/// Makes the device under test switch `devices` (interfaces in namespace `qsbdut`): a bridge
/// over them, or qswitch with one access port each on one network (returned: the daemon).
pub fn start_dut(
    dut: Dut,
    devices: &[&str],
    qswitch: &str,
    work: &std::path::Path,
) -> Result<Option<Child>, String> {
    match dut {
        Dut::None => Ok(None),
        Dut::Bridge => {
            in_ns("qsbdut", &["ip", "link", "add", "br0", "type", "bridge"])?;
            // Only present when br_netfilter is loaded; per namespace.
            let _ = in_ns(
                "qsbdut",
                &["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0"],
            );
            for d in devices {
                in_ns("qsbdut", &["ip", "link", "set", d, "master", "br0"])?;
            }
            in_ns("qsbdut", &["ip", "link", "set", "br0", "up"])?;
            Ok(None)
        }
        Dut::Qswitch => {
            let mode = std::env::var("QSB_XDP_MODE").unwrap_or_else(|_| "auto".into());
            let mut cfg = format!(
                "[switch]\ncpu = 1\npoll = \"busy\"\numem_frames = 131072\nxdp_mode = \"{mode}\"\n\
                 [[network]]\nid = \"n\"\nvlan = 10\n"
            );
            for d in devices {
                cfg.push_str(&format!(
                    "[[port]]\nid = \"{d}\"\ndevice = \"{d}\"\nnetwork = \"n\"\n"
                ));
            }
            let path = work.join("qswitch.toml");
            std::fs::write(&path, cfg).map_err(|e| e.to_string())?;
            let log = std::fs::File::create(work.join("qswitch.log")).map_err(|e| e.to_string())?;
            let db = work.join("qswitch.db");
            let _ = std::fs::remove_file(&db);
            let child = Command::new("ip")
                .args(["netns", "exec", "qsbdut", qswitch, "serve", "--config"])
                .arg(&path)
                .arg("--db")
                .arg(&db)
                .args(["--listen", "127.0.0.1:19696"])
                .stdout(log.try_clone().map_err(|e| e.to_string())?)
                .stderr(log)
                .spawn()
                .map_err(|e| format!("{qswitch}: {e}"))?;
            let end = Instant::now() + Duration::from_secs(10);
            loop {
                let links = in_ns("qsbdut", &["ip", "-o", "link", "show"])?;
                if links.matches(" xdp").count() >= devices.len() {
                    return Ok(Some(child));
                }
                if Instant::now() > end {
                    crate::agent::stop(child);
                    return Err("qswitch did not open its ports (see qswitch.log)".into());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Dut::Ovs => Err("Open vSwitch runs are not built yet".into()),
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if let Some(d) = self.daemon.take() {
            crate::agent::stop(d);
        }
        teardown();
    }
}

/// Reads `(rx_packets, tx_packets)` of `dev` from `/proc/<pid>/net/dev`, where `pid` is any
/// process inside the device's namespace: the read happens in the harness's own process.
pub fn counters(pid: u32, dev: &str) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{dev}:")))?;
    // bytes packets errs drop fifo frame compressed multicast | bytes packets ...
    let v: Vec<u64> = line
        .split_once(':')?
        .1
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    Some((*v.get(1)?, *v.get(9)?))
}
