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

use std::io::{BufRead, BufReader, Read};
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

/// The generator's MAC (of its interface, `gen-v`).
pub const GEN_MAC: dataplane::Mac = dataplane::Mac([0x02, 0xbe, 0xff, 0, 0, 1]);
/// The sink's MAC.
pub const SINK_MAC: dataplane::Mac = dataplane::Mac([0x02, 0xbe, 0xff, 0, 0, 2]);
/// The generator's address, where a DUT or a test needs one (its port's fixed IP on
/// `qswitch-sg`, the client VM's in the goodput test).
pub const GEN_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 18, 0, 1);
/// The sink's address.
pub const SINK_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 18, 0, 2);

/// Where qswitch's worker runs and how it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// One worker (`QSB_WORKERS` for more, pinned from CPU 1 on), pinned to CPU 1 and busy
    /// polling: the packet tests, whose generator owns CPU 0.
    Pinned,
    /// The daemon's defaults (adaptive polling, no pinning, a worker per CPU unless
    /// `QSB_WORKERS` says how many): a host whose guests need the cores too, as in the TCP
    /// goodput test.
    Defaults,
}

/// Devices under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dut {
    /// No device: the generator's veth straight into the sink.
    None,
    /// The Linux bridge (bridge-nf-call-iptables off in the DUT namespace).
    Bridge,
    /// qswitch (release binary), worker pinned to CPU 1, busy polling.
    Qswitch,
    /// qswitch as `Qswitch` in generic XDP mode whatever `QSB_XDP_MODE` says: on a veth the
    /// guests keep TSO (as guests behind tap devices do) and their super-frames cross whole.
    /// (`auto`, the daemon's default, takes generic mode on a veth too.)
    QswitchGeneric,
    /// qswitch as `Qswitch` in native XDP mode whatever `QSB_XDP_MODE` says: on a veth the
    /// kernel takes TSO from the guests, and every frame crosses the switch alone.
    QswitchNative,
    /// qswitch as `Qswitch` with `xdp_shortcut = true`, in generic XDP mode whatever
    /// `QSB_XDP_MODE` says: known unicast between its plain ports crosses inside the ports' XDP
    /// programs, installed by the worker (docs/ARCHITECTURE.md).
    QswitchShortcut,
    /// qswitch as `Qswitch`, its two ports Neutron v2.0 ports with fixed IPs, port security and
    /// the project's default security group (stateful: egress anything, ingress from the
    /// group's members), plugged through Quantum. The generator sends IPv4/UDP from its port's
    /// MAC and address, so every frame passes anti-spoofing and both ports' rules and
    /// connection tables. Two-port topologies only (`run`, `goodput`).
    QswitchSg,
    /// Open vSwitch's userspace datapath (`datapath_type=netdev`) with its default ports on the
    /// veths (packet sockets, polled by the main thread), pinned to CPU 1.
    Ovs,
    /// Open vSwitch's userspace datapath with AF_XDP ports (`type=afxdp`), its PMD thread on CPU 1
    /// (the other threads float).
    OvsAfxdp,
    /// No switch: an XDP program on each of the DUT's two ports sends every frame out of the
    /// other (`bpf_redirect`, no lookup), in generic mode as qswitch's `auto` takes on a veth.
    /// No frame reaches user space: the ceiling of forwarding inside XDP on this machine.
    /// Two-port topologies only (`run`, `goodput`).
    XdpRedirect,
    /// `XdpRedirect` in native XDP mode.
    XdpRedirectNative,
}

impl Dut {
    /// Every device under test, in report order.
    pub const ALL: [Dut; 11] = [
        Dut::None,
        Dut::Bridge,
        Dut::Qswitch,
        Dut::QswitchGeneric,
        Dut::QswitchNative,
        Dut::QswitchShortcut,
        Dut::QswitchSg,
        Dut::Ovs,
        Dut::OvsAfxdp,
        Dut::XdpRedirect,
        Dut::XdpRedirectNative,
    ];

    /// Parses `none`, `bridge`, `qswitch`, `qswitch-generic`, `qswitch-native`,
    /// `qswitch-shortcut`, `qswitch-sg`, `ovs`, `ovs-afxdp`, `xdp-redirect`,
    /// `xdp-redirect-native`.
    pub fn parse(s: &str) -> Option<Dut> {
        Dut::ALL.into_iter().find(|d| d.name() == s)
    }

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Dut::None => "none",
            Dut::Bridge => "bridge",
            Dut::Qswitch => "qswitch",
            Dut::QswitchGeneric => "qswitch-generic",
            Dut::QswitchNative => "qswitch-native",
            Dut::QswitchShortcut => "qswitch-shortcut",
            Dut::QswitchSg => "qswitch-sg",
            Dut::Ovs => "ovs",
            Dut::OvsAfxdp => "ovs-afxdp",
            Dut::XdpRedirect => "xdp-redirect",
            Dut::XdpRedirectNative => "xdp-redirect-native",
        }
    }

    /// Do the DUT's ports filter by security groups (so that only IPv4 from each port's own MAC
    /// and address passes)?
    pub fn filters(self) -> bool {
        self == Dut::QswitchSg
    }

    /// Why this DUT cannot run on this machine, if it cannot (Open vSwitch not installed).
    pub fn unavailable(self) -> Option<String> {
        match self {
            Dut::Ovs | Dut::OvsAfxdp => ovs::missing(),
            _ => None,
        }
    }

    /// The DUTs of `duts` that can run here; prints a line for each one skipped, saying why.
    pub fn available(duts: &[Dut]) -> Vec<Dut> {
        duts.iter()
            .copied()
            .filter(|d| match d.unavailable() {
                Some(why) => {
                    eprintln!("skipping {}: {why}", d.name());
                    false
                }
                None => true,
            })
            .collect()
    }

    /// Runs `measure` on each of `duts` in turn. One DUT failing does not throw away what the
    /// others measured: it is skipped with a line saying why. An interrupt ends the whole run.
    pub fn measure_each<T>(
        duts: &[Dut],
        mut measure: impl FnMut(Dut) -> Result<T, String>,
    ) -> Result<Vec<(Dut, T)>, String> {
        let mut results = Vec::new();
        for &dut in duts {
            match measure(dut) {
                Ok(r) => results.push((dut, r)),
                Err(e) if crate::interrupt::requested() => return Err(e),
                Err(e) => {
                    crate::progress::clear();
                    eprintln!("skipping {}: {e}", dut.name());
                }
            }
        }
        Ok(results)
    }
}

/// Runs a command (unless an interrupt was requested), failing with its stderr.
pub(crate) fn run(args: &[&str]) -> Result<String, String> {
    crate::interrupt::check()?;
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

/// Every namespace the harness owns: the names start with `qsb`.
fn harness_namespaces() -> Vec<String> {
    list(&["ip", "netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("qsb"))
        .map(str::to_owned)
        .collect()
}

/// Is `pid` still running (not gone, not a zombie)?
pub fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().to_owned()))
        .is_some_and(|r| !r.starts_with('Z'))
}

fn signal_all(sig: &str, pids: &[String]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(sig)
        .arg("--")
        .args(pids)
        .stderr(Stdio::null())
        .status();
}

/// Sends SIGTERM to `pids` (children of this process: a PID stays theirs until reaped), waits up
/// to `grace` for them to exit, then SIGKILLs the rest.
pub fn terminate(pids: &[String], grace: Duration) {
    signal_all("-TERM", pids);
    let end = Instant::now() + grace;
    while Instant::now() < end && pids.iter().any(|p| alive(p)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: Vec<String> = pids.iter().filter(|p| alive(p)).cloned().collect();
    signal_all("-KILL", &left);
}

/// Runs a listing command, without the interrupt check (teardown must work after one).
fn list(args: &[&str]) -> String {
    Command::new(args[0])
        .args(&args[1..])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The processes inside the harness's namespaces.
fn namespace_pids(spaces: &[String]) -> Vec<String> {
    spaces
        .iter()
        .flat_map(|ns| {
            list(&["ip", "netns", "pids", ns])
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Removes every namespace of the harness (and so every interface in them), after stopping
/// whatever still runs inside them (agents, a DUT daemon, Open vSwitch): SIGTERM, then SIGKILL
/// after 3 s to those still inside (listed again: a PID that left may have been reused). Returns
/// whether there was anything to remove.
pub fn teardown() -> bool {
    let spaces = harness_namespaces();
    if spaces.is_empty() {
        return false;
    }
    let pids = namespace_pids(&spaces);
    signal_all("-TERM", &pids);
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end && pids.iter().any(|p| alive(p)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    signal_all("-KILL", &namespace_pids(&spaces));
    for ns in spaces {
        let _ = Command::new("ip")
            .args(["netns", "del", &ns])
            .stderr(Stdio::null())
            .status();
    }
    true
}

/// Processes a DUT runs (qswitch, Open vSwitch's database and switch, or the holder of
/// `xdp-redirect`'s links), stopped on drop: SIGTERM, then SIGKILL after 5 s, the last started
/// first.
#[derive(Debug, Default)]
pub struct Daemons(Vec<Child>);

impl Daemons {
    fn push(&mut self, child: Child) {
        crate::interrupt::track(child.id());
        self.0.push(child);
    }

    /// Their process ids (`ip netns exec` execs the daemon: the child is the daemon).
    pub fn pids(&self) -> Vec<u32> {
        self.0.iter().map(Child::id).collect()
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        while let Some(c) = self.0.pop() {
            crate::agent::stop(c);
        }
    }
}

/// A built topology; dropping it tears it down (and stops the DUT).
#[derive(Debug)]
pub struct Topology {
    /// The device under test.
    pub dut: Dut,
    daemons: Daemons,
}

impl Topology {
    /// Builds the topology for `dut`. `qswitch` is the path of the qswitch binary; `work` a
    /// scratch directory.
    pub fn build(
        dut: Dut,
        qswitch: &str,
        work: &std::path::Path,
        placement: Placement,
    ) -> Result<Topology, String> {
        teardown();
        let mut t = Topology {
            dut,
            daemons: Daemons::default(),
        };
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
        let gen_mac = GEN_MAC.to_string();
        in_ns(
            "qsbgen",
            &["ip", "link", "set", "gen-v", "address", &gen_mac, "up"],
        )?;
        let sink_mac = SINK_MAC.to_string();
        in_ns(
            "qsbsink",
            &["ip", "link", "set", "sink-v", "address", &sink_mac, "up"],
        )?;
        // Frames that reach the sink's stack are dropped at ingress: while the sink's socket is
        // open (every `run` trial) its program takes them before this chain; otherwise (the
        // scenarios) they would cost the stack's receive path.
        in_ns("qsbsink", &["nft", "add table netdev qsb"])?;
        in_ns(
            "qsbsink",
            &["nft", "add chain netdev qsb in { type filter hook ingress device sink-v priority 0; policy drop; }"],
        )?;
        if dut != Dut::None {
            t.daemons = start_dut(dut, &["gen-h", "sink-h"], qswitch, work, placement)?;
        }
        Ok(t)
    }

    /// The processes the device under test forwards in (none for the bridge and the XDP
    /// cross-connect: they forward in the senders' own calls; the cross-connect's process only
    /// holds its links).
    pub fn pids(&self) -> Vec<u32> {
        match self.dut {
            Dut::XdpRedirect | Dut::XdpRedirectNative => Vec::new(),
            _ => self.daemons.pids(),
        }
    }
}

/// Makes the device under test switch `devices` (interfaces in namespace `qsbdut`): a bridge
/// over them, qswitch with one access port each on one network, an Open vSwitch bridge, or the
/// XDP cross-connect between two devices (returned: the processes it runs).
pub fn start_dut(
    dut: Dut,
    devices: &[&str],
    qswitch: &str,
    work: &std::path::Path,
    placement: Placement,
) -> Result<Daemons, String> {
    let mut daemons = Daemons::default();
    match dut {
        Dut::None => Ok(daemons),
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
            Ok(daemons)
        }
        Dut::Qswitch
        | Dut::QswitchGeneric
        | Dut::QswitchNative
        | Dut::QswitchShortcut
        | Dut::QswitchSg => {
            if dut.filters() && devices != ["gen-h", "sink-h"] {
                return Err(format!(
                    "{} runs on the two-port topology only (run, goodput)",
                    dut.name()
                ));
            }
            let mode = match dut {
                // The shortcut forwards in generic mode only.
                Dut::QswitchGeneric | Dut::QswitchShortcut => "generic".into(),
                Dut::QswitchNative => "native".into(),
                _ => std::env::var("QSB_XDP_MODE").unwrap_or_else(|_| "auto".into()),
            };
            // The daemon's own UMEM and fill depth unless the environment asks otherwise.
            let sizing: String = [
                ("umem_frames", "QSB_UMEM_FRAMES"),
                ("max_fill", "QSB_MAX_FILL"),
                ("max_queue_us", "QSB_MAX_QUEUE_US"),
                ("idle_spin_us", "QSB_IDLE_SPIN_US"),
            ]
            .iter()
            .filter_map(|(key, var)| Some(format!("{key} = {}\n", std::env::var(var).ok()?)))
            .collect();
            let pin = match placement {
                Placement::Pinned => {
                    let workers = std::env::var("QSB_WORKERS").unwrap_or_else(|_| "1".into());
                    format!("cpu = 1\npoll = \"busy\"\nworkers = {workers}\n")
                }
                // The daemon's default (a worker per core) unless the environment asks.
                Placement::Defaults => std::env::var("QSB_WORKERS")
                    .map(|w| format!("workers = {w}\n"))
                    .unwrap_or_default(),
            };
            let mut cfg = format!("[switch]\n{pin}{sizing}xdp_mode = \"{mode}\"\n");
            if dut == Dut::QswitchShortcut {
                cfg.push_str("xdp_shortcut = true\n");
            }
            // With security groups the ports come from the API (below), as a cloud's do.
            if !dut.filters() {
                cfg.push_str("[[network]]\nid = \"n\"\nvlan = 10\n");
                for d in devices {
                    cfg.push_str(&format!(
                        "[[port]]\nid = \"{d}\"\ndevice = \"{d}\"\nnetwork = \"n\"\n"
                    ));
                }
            }
            let path = work.join("qswitch.toml");
            std::fs::write(&path, cfg).map_err(|e| e.to_string())?;
            let log = std::fs::File::create(work.join("qswitch.log")).map_err(|e| e.to_string())?;
            let db = work.join("qswitch.db");
            for stale in ["qswitch.db", "qswitch.db-wal", "qswitch.db-shm"] {
                let _ = std::fs::remove_file(work.join(stale));
            }
            let child = Command::new("ip")
                .args(["netns", "exec", "qsbdut", qswitch, "serve", "--config"])
                .arg(&path)
                .arg("--db")
                .arg(&db)
                .args(["--listen", DUT_API])
                .stdout(log.try_clone().map_err(|e| e.to_string())?)
                .stderr(log)
                .spawn()
                .map_err(|e| format!("{qswitch}: {e}"))?;
            daemons.push(child);
            if dut.filters() {
                // The API listens inside the DUT's namespace: this binary makes the calls there.
                let me = std::env::current_exe().map_err(|e| e.to_string())?;
                let me = me.to_string_lossy();
                in_ns("qsbdut", &[&me, "dut-ports", DUT_API])
                    .map_err(|e| format!("creating the filtered ports: {e}"))?;
            }
            wait_xdp(devices, "qswitch did not open its ports (see qswitch.log)")?;
            Ok(daemons)
        }
        Dut::Ovs | Dut::OvsAfxdp => {
            ovs::start(&mut daemons, dut == Dut::OvsAfxdp, devices, work)?;
            Ok(daemons)
        }
        Dut::XdpRedirect | Dut::XdpRedirectNative => {
            let [a, b] = devices else {
                return Err(format!(
                    "{} cross-connects two ports: the two-port topology only (run, goodput)",
                    dut.name()
                ));
            };
            // The links live as long as the process that made them, inside the DUT's namespace.
            let me = std::env::current_exe().map_err(|e| e.to_string())?;
            let mode = if dut == Dut::XdpRedirectNative {
                "native"
            } else {
                "generic"
            };
            let mut child = Command::new("ip")
                .args(["netns", "exec", "qsbdut"])
                .arg(&me)
                .args(["xdp-cross", mode, a, b])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("{}: {e}", me.display()))?;
            // It says "attached" once both links hold, or why not before it exits.
            let mut line = String::new();
            let _ = BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line);
            if !line.contains("attached") {
                let mut why = String::new();
                let _ = child.stderr.take().expect("piped").read_to_string(&mut why);
                crate::agent::stop(child);
                return Err(format!("the cross-connect did not attach: {}", why.trim()));
            }
            daemons.push(child);
            Ok(daemons)
        }
    }
}

/// `qswitch-bench xdp-cross MODE A B`, run inside `qsbdut` for `xdp-redirect` (`native`:
/// `xdp-redirect-native`): attaches to each of the two interfaces, in XDP mode `native` or
/// `generic`, a program that sends every frame out of the other, says `attached` on stdout, and
/// holds the links until the process is stopped.
pub fn xdp_cross(native: bool, a: &str, b: &str) -> Result<std::convert::Infallible, String> {
    use dataplane::sys::{bpf, netdev};
    let mode = if native {
        bpf::XDP_FLAGS_DRV_MODE
    } else {
        bpf::XDP_FLAGS_SKB_MODE
    };
    let index = |d: &str| netdev::ifindex(d).ok_or_else(|| format!("{d}: no such interface"));
    let (ia, ib) = (index(a)?, index(b)?);
    // Held, never read: dropping a link detaches its program.
    let mut _links = Vec::new();
    for (from, name, to) in [(ia, a, ib), (ib, b, ia)] {
        let prog = bpf::load_cross_connect_program(to)
            .map_err(|e| format!("loading the program for {name}: {e}"))?;
        let link =
            bpf::attach_xdp(&prog, from, mode).map_err(|e| format!("attaching to {name}: {e}"))?;
        _links.push(link);
    }
    println!("{a} <-> {b}: attached");
    loop {
        std::thread::park();
    }
}

/// Where the DUT's qswitch serves its API, inside namespace `qsbdut`.
const DUT_API: &str = "127.0.0.1:19696";
/// The project the filtered ports belong to.
const DUT_PROJECT: &str = "qsb";

/// `qswitch-bench dut-ports API`, run inside `qsbdut` for `qswitch-sg`: through the API at `api`,
/// a network with an IPv4 subnet (198.18.0.0/24, DHCP off), and on it the generator's and the
/// sink's ports (their MACs and addresses, port security on, the project's default security
/// group) plugged into `gen-h` and `sink-h` through Quantum attachments.
pub fn dut_ports(api: &str) -> Result<(), String> {
    if !crate::http::wait_listening(api, Duration::from_secs(10)) {
        return Err(format!("qswitch's API did not answer at {api}"));
    }
    let mut c = crate::http::Conn::open(api).map_err(|e| e.to_string())?;
    let mut call = |method: &str, path: &str, body: serde_json::Value| {
        let r = c
            .request(method, path, Some(&body.to_string()))
            .map_err(|e| format!("{method} {path}: {e}"))?;
        if r.status >= 300 {
            return Err(format!("{method} {path}: {} {}", r.status, r.body));
        }
        if r.body.trim().is_empty() {
            return Ok(serde_json::Value::Null);
        }
        r.json()
    };
    let net = call(
        "POST",
        "/v2.0/networks",
        serde_json::json!({"network": {"name": "qsb", "tenant_id": DUT_PROJECT}}),
    )?;
    let net = net["network"]["id"]
        .as_str()
        .ok_or("no network id")?
        .to_owned();
    let subnet = serde_json::json!({"subnet": {
        "network_id": net, "tenant_id": DUT_PROJECT, "ip_version": 4,
        "cidr": "198.18.0.0/24", "enable_dhcp": false,
    }});
    call("POST", "/v2.0/subnets", subnet)?;
    for (name, device, mac, ip) in [
        ("gen", "gen-h", GEN_MAC, GEN_IP),
        ("sink", "sink-h", SINK_MAC, SINK_IP),
    ] {
        let port = serde_json::json!({"port": {
            "network_id": net, "tenant_id": DUT_PROJECT, "name": name,
            "mac_address": mac.to_string(), "fixed_ips": [{"ip_address": ip.to_string()}],
        }});
        let port = call("POST", "/v2.0/ports", port)?;
        let groups = port["port"]["security_groups"]
            .as_array()
            .map_or(0, Vec::len);
        if groups != 1 || port["port"]["port_security_enabled"] != true {
            return Err(format!("port {name} is not filtered: {port}"));
        }
        let id = port["port"]["id"].as_str().ok_or("no port id")?;
        let interface = format!("qsb-{name}");
        let tenant = format!("/v1.1/tenants/{DUT_PROJECT}");
        call(
            "PUT",
            &format!("{tenant}/interfaces/{interface}"),
            serde_json::json!({"interface": {"device": device}}),
        )?;
        call(
            "PUT",
            &format!("{tenant}/networks/{net}/ports/{id}/attachment"),
            serde_json::json!({"attachment": {"id": interface}}),
        )?;
    }
    Ok(())
}

/// For a DUT that filters by security groups: fails unless its security groups saw the traffic
/// (see [`filtering_evidence`]); for `qswitch-shortcut`, unless frames crossed inside XDP (see
/// [`shortcut_evidence`]): a row that says it measured them did.
pub fn check_evidence(dut: Dut) -> Result<(), String> {
    let flag = match dut {
        _ if dut.filters() => "--check",
        Dut::QswitchShortcut => "--check-shortcut",
        _ => return Ok(()),
    };
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    in_ns(
        "qsbdut",
        &[&me.to_string_lossy(), "dut-ports", flag, DUT_API],
    )
    .map(drop)
    .map_err(|e| format!("{}: {e}", dut.name()))
}

/// The sum of metric `name`'s series (the name whole, or with a suffix such as `_total`) that
/// carry every label of `labels`, in a Prometheus text scrape's `body`.
pub fn metric_sum(body: &str, name: &str, labels: &[&str]) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Reads qswitch's metrics at `api` until `judge` (given the scrape, and whether it is the
/// last look) gives its verdict: within 3 s, as they are published.
fn judge_metrics(
    api: &str,
    judge: impl Fn(&str, bool) -> Option<Result<String, String>>,
) -> Result<String, String> {
    let c = crate::http::Conn::open(api).map_err(|e| e.to_string())?;
    let end = Instant::now() + Duration::from_secs(3);
    loop {
        let r = c
            .send("GET", "/metrics", None, &[])
            .map_err(|e| format!("GET /metrics: {e}"))?;
        if let Some(verdict) = judge(&r.body, Instant::now() > end) {
            return verdict;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `qswitch-bench dut-ports --check-shortcut API`: reads qswitch's metrics and says how many of
/// the generator port's frames its XDP program forwarded itself. Fails if none did.
pub fn shortcut_evidence(api: &str) -> Result<String, String> {
    judge_metrics(api, |body, last| {
        let gen = ["device=\"gen-h\""];
        let inside = metric_sum(body, "qswitch_port_xdp_forwarded", &gen);
        let received = metric_sum(body, "qswitch_port_rx_packets", &gen);
        if inside > 0.0 {
            Some(Ok(format!(
                "{inside} of {received} frames crossed inside XDP"
            )))
        } else {
            last.then(|| {
                Err(format!(
                    "no frame crossed inside XDP ({received} frames received)"
                ))
            })
        }
    })
}

/// `qswitch-bench dut-ports --check API`: reads qswitch's metrics and says how many connections its workers track and how many frames the sink's
/// port was sent. Fails unless both are above zero (the sender's egress rules opened connections;
/// every frame the sink's port sent passed its ingress rules) and no frame was refused by a
/// rule (the row would then measure refusals).
pub fn filtering_evidence(api: &str) -> Result<String, String> {
    judge_metrics(api, |body, last| {
        let sum = |name: &str, labels: &[&str]| metric_sum(body, name, labels);
        let tracked = sum("qswitch_conntrack_entries", &[]);
        let delivered = sum("qswitch_port_tx_packets", &["device=\"sink-h\""]);
        let refused = sum("qswitch_port_drops", &["reason=\"sg_"]);
        if refused > 0.0 {
            return Some(Err(format!("its security groups refused {refused} frames")));
        }
        if tracked > 0.0 && delivered > 0.0 {
            return Some(Ok(format!(
                "{tracked} connections tracked, {delivered} frames through both ports' rules"
            )));
        }
        last.then(|| {
            Err(format!(
                "its security groups saw no traffic ({tracked} connections tracked, {delivered} \
                 frames to the sink)"
            ))
        })
    })
}

/// Waits (up to 10 s) until every one of `devices` in `qsbdut` has an XDP program attached.
fn wait_xdp(devices: &[&str], failure: &str) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let links = in_ns("qsbdut", &["ip", "-o", "link", "show"])?;
        if links.matches(" xdp").count() >= devices.len() {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(failure.into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Open vSwitch as a device under test: a private database and switch daemon inside `qsbdut`
/// (their sockets, database and logs in the run's scratch directory), one bridge with the
/// userspace datapath, and the default `NORMAL` flow (MAC learning, flooding).
mod ovs {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use super::{in_ns, run, wait_xdp, Daemons};

    const SCHEMAS: [&str; 2] = [
        "/usr/share/openvswitch/vswitch.ovsschema",
        "/usr/local/share/openvswitch/vswitch.ovsschema",
    ];

    fn find(program: &str) -> Option<PathBuf> {
        let path = std::env::var("PATH").unwrap_or_default();
        let found = path
            .split(':')
            .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"])
            .map(|d| Path::new(d).join(program))
            .find(|p| p.is_file());
        found
    }

    fn schema() -> Option<&'static str> {
        SCHEMAS.into_iter().find(|s| Path::new(s).is_file())
    }

    /// Why Open vSwitch cannot run here, if it cannot.
    pub(super) fn missing() -> Option<String> {
        let tools = ["ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl"];
        let absent: Vec<&str> = tools.into_iter().filter(|t| find(t).is_none()).collect();
        if !absent.is_empty() {
            return Some(format!(
                "Open vSwitch is not installed ({} not found; Debian: apt-get install openvswitch-switch)",
                absent.join(", ")
            ));
        }
        schema()
            .is_none()
            .then(|| "Open vSwitch's vswitch.ovsschema not found".to_owned())
    }

    fn vsctl(db: &str, args: &[&str]) -> Result<String, String> {
        let mut v = vec!["ovs-vsctl", "--timeout=20"];
        let db = format!("--db=unix:{db}");
        v.push(&db);
        v.extend_from_slice(args);
        run(&v)
    }

    /// Starts the database and the switch in `qsbdut` and builds bridge `br0` over `devices`
    /// (AF_XDP ports when `afxdp`).
    pub(super) fn start(
        daemons: &mut Daemons,
        afxdp: bool,
        devices: &[&str],
        work: &Path,
    ) -> Result<(), String> {
        if let Some(why) = missing() {
            return Err(why);
        }
        let dir = work.join("ovs");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let d = |f: &str| dir.join(f).display().to_string();
        let (conf, sock) = (d("conf.db"), d("db.sock"));
        run(&[
            "ovsdb-tool",
            "create",
            &conf,
            schema().unwrap_or(SCHEMAS[0]),
        ])?;
        let log = std::fs::File::create(dir.join("ovs.log")).map_err(|e| e.to_string())?;
        // Packet-socket ports are polled by the main thread: the whole switch goes on CPU 1.
        // With AF_XDP ports the PMD thread polls them, on CPU 1 by `pmd-cpu-mask`, and the other
        // threads (handlers, revalidators) float, as qswitch's threads beside its worker do.
        let pin: &[&str] = if afxdp { &[] } else { &["taskset", "-c", "1"] };
        let spawn = |args: &[&str]| -> Result<std::process::Child, String> {
            Command::new("ip")
                .args(["netns", "exec", "qsbdut"])
                .args(pin)
                .args(args)
                // Runtime files (control sockets, the bridge's management socket) stay here.
                .env("OVS_RUNDIR", &dir)
                .env("OVS_DBDIR", &dir)
                .env("OVS_LOGDIR", &dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| e.to_string())?)
                .stderr(log.try_clone().map_err(|e| e.to_string())?)
                .spawn()
                .map_err(|e| format!("{}: {e}", args[0]))
        };
        let remote = format!("--remote=punix:{sock}");
        daemons.push(spawn(&["ovsdb-server", &conf, &remote])?);
        let end = Instant::now() + Duration::from_secs(10);
        while !Path::new(&sock).exists() {
            if Instant::now() > end {
                return Err("ovsdb-server did not start (see ovs/ovs.log)".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        vsctl(&sock, &["--no-wait", "init"])?;
        if afxdp {
            // The PMD thread polls the AF_XDP ports on CPU 1, where qswitch's worker runs.
            vsctl(
                &sock,
                &[
                    "--no-wait",
                    "set",
                    "Open_vSwitch",
                    ".",
                    "other_config:pmd-cpu-mask=0x2",
                ],
            )?;
        }
        let db = format!("unix:{sock}");
        daemons.push(spawn(&["ovs-vswitchd", &db, "--disable-system"])?);
        vsctl(
            &sock,
            &[
                "add-br",
                "br0",
                "--",
                "set",
                "bridge",
                "br0",
                "datapath_type=netdev",
            ],
        )?;
        // The DUT namespace has no IPv6: no discovery chatter from the bridge's own port.
        let _ = in_ns("qsbdut", &["ip", "link", "set", "br0", "up"]);
        let mode = match std::env::var("QSB_XDP_MODE").as_deref() {
            Ok("native") => "native",
            Ok("generic") => "generic",
            _ => "best-effort",
        };
        for dev in devices {
            let mut args = vec!["add-port", "br0", dev];
            let opt = format!("options:xdp-mode={mode}");
            if afxdp {
                args.extend(["--", "set", "interface", dev, "type=afxdp", &opt]);
            }
            vsctl(&sock, &args)?;
        }
        let end = Instant::now() + Duration::from_secs(10);
        for dev in devices {
            loop {
                let ofport = vsctl(&sock, &["get", "interface", dev, "ofport"])?;
                if ofport.trim().parse::<i64>().is_ok_and(|p| p > 0) {
                    break;
                }
                if Instant::now() > end {
                    let err = vsctl(&sock, &["get", "interface", dev, "error"]).unwrap_or_default();
                    return Err(format!("Open vSwitch did not add {dev}: {}", err.trim()));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if afxdp {
            wait_xdp(
                devices,
                "Open vSwitch did not open its AF_XDP ports (see ovs/ovs.log)",
            )?;
        }
        Ok(())
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.daemons = Daemons::default();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duts_parse_by_name_and_name_what_is_known() {
        for d in Dut::ALL {
            assert_eq!(Dut::parse(d.name()), Some(d));
        }
        let e = crate::dut("vpp").unwrap_err();
        assert!(
            e.contains("unknown DUT vpp") && e.contains("ovs-afxdp"),
            "{e}"
        );
    }
}
