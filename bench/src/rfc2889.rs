//! RFC 2889 tests on a meshed veth topology: K ports, each a namespace with a generator agent,
//! joined by the device under test.
//!
//! - **Fully meshed throughput**: every port sends to every other port at the same rate; binary
//!   search for the highest per-port rate with no loss (aggregate delivered / offered).
//! - **Broadcast forwarding rate**: one port sends broadcast frames flat out; the rate at which
//!   each other port receives them.
//! - **Address caching capacity**: port 1 sends from N new source addresses, then port 0 sends to
//!   those N addresses; if port 2 sees them the DUT forgot (or never learned) some, which it then
//!   floods (more than max(2, N/1000) frames at port 2: interface counters also count the odd
//!   stray frame). Binary search on N, with a fresh DUT each time.
//!
//! Not built yet: address learning rate, congestion control (head-of-line blocking), errored
//! frames filtering and forward pressure. Receive counters are read from
//! `/proc/<agent pid>/net/dev` of each port's namespace by this process.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use crate::agent::{self, Agent};
use crate::topo::{self, counters, in_ns, mesh_mac, mesh_ns, start_dut, Dut};

/// A meshed topology: namespace `qsbm<i>` holds `m<i>-v`, whose peer `m<i>-h` is a port of the
/// DUT in `qsbdut`. Torn down on drop.
struct Mesh {
    agents: Vec<Agent>,
    daemon: Option<Child>,
}

impl Mesh {
    fn build(dut: Dut, k: usize, qswitch: &str, work: &Path) -> Result<Mesh, String> {
        topo::teardown();
        let ip = |a: &[&str]| {
            let mut v = vec!["ip"];
            v.extend_from_slice(a);
            std::process::Command::new(v[0])
                .args(&v[1..])
                .status()
                .map_err(|e| e.to_string())
                .and_then(|s| s.success().then_some(()).ok_or(format!("{a:?} failed")))
        };
        ip(&["netns", "add", "qsbdut"])?;
        // No stray IPv6 chatter (router and listener discovery) from the DUT's own interfaces.
        let _ = in_ns(
            "qsbdut",
            &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
        );
        let _ = in_ns(
            "qsbdut",
            &["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
        );
        let mut devices = Vec::new();
        for i in 0..k {
            let ns = mesh_ns(i);
            ip(&["netns", "add", &ns])?;
            let _ = in_ns(&ns, &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
            let (v, h) = (format!("m{i}-v"), format!("m{i}-h"));
            ip(&[
                "link", "add", &v, "netns", &ns, "type", "veth", "peer", "name", &h, "netns",
                "qsbdut",
            ])?;
            let _ = in_ns(
                "qsbdut",
                &[
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{h}.disable_ipv6=1"),
                ],
            );
            in_ns("qsbdut", &["ip", "link", "set", &h, "up"])?;
            let mac = mesh_mac(i).to_string();
            in_ns(&ns, &["ip", "link", "set", &v, "address", &mac, "up"])?;
            in_ns(&ns, &["nft", "add table netdev qsb"])?;
            in_ns(
                &ns,
                &[
                    "nft",
                    &format!("add chain netdev qsb in {{ type filter hook ingress device {v} priority 0; policy drop; }}"),
                ],
            )?;
            devices.push(h);
        }
        let refs: Vec<&str> = devices.iter().map(String::as_str).collect();
        let daemon = start_dut(dut, &refs, qswitch, work)?;
        let mut mesh = Mesh {
            agents: Vec::new(),
            daemon,
        };
        for i in 0..k {
            // Generators share CPU 0; the DUT (qswitch's worker) has CPU 1.
            mesh.agents.push(Agent::start(
                &mesh_ns(i),
                Some(0),
                "gen",
                &format!("m{i}-v"),
            )?);
        }
        // Every port announces its address so that the DUT learns where it is.
        for (i, a) in mesh.agents.iter_mut().enumerate() {
            a.ask(&format!("sendx bcast mac={} 1 64 1000 0.01 1", mesh_mac(i)))?;
        }
        // Warm up: traffic on every port lets its receive rings grow to their working size.
        let warm: Vec<Option<String>> = (0..k)
            .map(|i| {
                Some(format!(
                    "sendx bcast mac={} 1 64 200000 0.05 10000",
                    mesh_mac(i)
                ))
            })
            .collect();
        mesh.send_all(&warm)?;
        std::thread::sleep(Duration::from_millis(100));
        Ok(mesh)
    }

    fn rx(&self, i: usize) -> u64 {
        counters(self.agents[i].pid(), &format!("m{i}-v")).map_or(0, |c| c.0)
    }

    /// Sends `cmd[i]` from every port `i` that has one, all at once; returns frames sent.
    fn send_all(&mut self, cmds: &[Option<String>]) -> Result<Vec<f64>, String> {
        for (a, c) in self.agents.iter_mut().zip(cmds) {
            if let Some(c) = c {
                a.write(c)?;
            }
        }
        let mut sent = vec![0.0; cmds.len()];
        for (i, (a, c)) in self.agents.iter_mut().zip(cmds).enumerate() {
            if c.is_some() {
                let r = a.read()?;
                sent[i] = r
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0.0);
            }
        }
        Ok(sent)
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        self.agents.clear();
        if let Some(d) = self.daemon.take() {
            agent::stop(d);
        }
        topo::teardown();
        if std::env::var_os("QSB_DEBUG").is_some() {
            if let Ok(log) = std::fs::read_to_string(
                std::env::temp_dir().join(format!("qsb2889-{}/qswitch.log", std::process::id())),
            ) {
                for l in log.lines().filter(|l| l.contains("port ")) {
                    eprintln!("{}", &l[l.len().min(60)..]);
                }
            }
        }
    }
}

struct Opts {
    duts: Vec<Dut>,
    ports: usize,
    trial: f64,
    steps: u32,
    caching_max: u32,
    qswitch: String,
    work: PathBuf,
}

/// `qswitch-bench rfc2889`.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut o = Opts {
        duts: vec![Dut::Bridge, Dut::Qswitch],
        ports: 4,
        trial: 1.0,
        steps: 5,
        caching_max: 65536,
        qswitch: std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("qswitch")))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "qswitch".into()),
        work: std::env::temp_dir().join(format!("qsb2889-{}", std::process::id())),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut v = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--quick" => {
                o.trial = 0.3;
                o.steps = 2;
                o.caching_max = 4096;
            }
            "--duts" => {
                o.duts = v()?
                    .split(',')
                    .map(|d| {
                        Dut::parse(d)
                            .filter(|d| *d != Dut::None)
                            .ok_or(format!("bad DUT {d}"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--ports" => {
                o.ports = v()?
                    .parse()
                    .ok()
                    .filter(|k| (3..=topo::MAX_MESH).contains(k))
                    .ok_or("--ports must be 3..=8")?
            }
            "--qswitch" => o.qswitch = v()?,
            _ => return Err(format!("unknown option {a}")),
        }
    }
    std::fs::create_dir_all(&o.work).map_err(|e| e.to_string())?;
    println!("## RFC 2889 ({} ports, trial {} s)\n", o.ports, o.trial);
    println!("| DUT | fully meshed, per port Mpps | aggregate Mpps | broadcast rate per port Mpps | address caching capacity |");
    println!("|---|---|---|---|---|");
    for &dut in &o.duts {
        eprintln!("rfc2889: {}", dut.name());
        let (per_port, broadcast) = {
            let mut m = Mesh::build(dut, o.ports, &o.qswitch, &o.work)?;
            (meshed(&mut m, &o)?, broadcast(&mut m, &o)?)
        };
        let capacity = caching(dut, &o)?;
        let cap = match capacity {
            (n, true) => format!(">= {n} (largest tried)"),
            (n, false) => n.to_string(),
        };
        println!(
            "| {} | {:.3} | {:.3} | {:.3} | {} |",
            dut.name(),
            per_port / 1e6,
            per_port * o.ports as f64 / 1e6,
            broadcast / 1e6,
            cap
        );
    }
    let _ = std::fs::remove_dir_all(&o.work);
    Ok(())
}

/// Highest per-port rate at which every port can send to every other with no loss.
fn meshed(m: &mut Mesh, o: &Opts) -> Result<f64, String> {
    let k = o.ports;
    let cmds = |pps: f64| -> Vec<Option<String>> {
        (0..k)
            .map(|i| {
                let others: Vec<String> = (0..k)
                    .filter(|&j| j != i)
                    .map(|j| mesh_mac(j).to_string())
                    .collect();
                Some(format!(
                    "sendx list={} mac={} {} 64 {pps} {} 18446744073709551615",
                    others.join(","),
                    mesh_mac(i),
                    k - 1,
                    o.trial
                ))
            })
            .collect()
    };
    let trial = |m: &mut Mesh, pps: f64| -> Result<(f64, f64), String> {
        let before: u64 = (0..k).map(|i| m.rx(i)).sum();
        let sent: f64 = m.send_all(&cmds(pps))?.iter().sum();
        std::thread::sleep(Duration::from_millis(50));
        let got = ((0..k).map(|i| m.rx(i)).sum::<u64>() - before) as f64;
        if std::env::var_os("QSB_DEBUG").is_some() {
            eprintln!("meshed pps {pps:.0}: sent {sent} got {got}");
        }
        Ok((sent, got))
    };
    // Flat out first: the ceiling of the search.
    let (sent, got) = trial(m, 0.0)?;
    let max = sent / o.trial / k as f64;
    if got >= sent {
        return Ok(max);
    }
    let (mut lo, mut hi) = (0.0, max);
    for _ in 0..o.steps {
        let mid = (lo + hi) / 2.0;
        let (sent, got) = trial(m, mid)?;
        if got >= sent {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// Broadcast frames from port 0, flat out: the mean rate at which the other ports receive them.
fn broadcast(m: &mut Mesh, o: &Opts) -> Result<f64, String> {
    let k = o.ports;
    let before: Vec<u64> = (0..k).map(|i| m.rx(i)).collect();
    let mut cmds = vec![None; k];
    cmds[0] = Some(format!(
        "sendx bcast mac={} 1 64 0 {} 18446744073709551615",
        mesh_mac(0),
        o.trial
    ));
    m.send_all(&cmds)?;
    std::thread::sleep(Duration::from_millis(50));
    let got: u64 = (1..k).map(|i| m.rx(i) - before[i]).sum();
    Ok(got as f64 / (k - 1) as f64 / o.trial)
}

/// Does the DUT remember `n` addresses? (Fresh DUT.)
fn remembers(dut: Dut, n: u32, o: &Opts) -> Result<bool, String> {
    let mut m = Mesh::build(dut, 3, &o.qswitch, &o.work)?;
    let secs = f64::from(n) / 100_000.0 + 1.0;
    // Port 1 teaches n addresses (sending to port 0), then port 0 sends to each of them.
    let mut cmds = vec![None, None, None];
    cmds[1] = Some(format!(
        "sendx mac={} flow=4096 {n} 64 100000 {secs} {n}",
        mesh_mac(0)
    ));
    m.send_all(&cmds)?;
    std::thread::sleep(Duration::from_millis(100));
    let before = m.rx(2);
    let mut cmds = vec![None, None, None];
    cmds[0] = Some(format!(
        "sendx flow=4096 mac={} {n} 64 100000 {secs} {n}",
        mesh_mac(0)
    ));
    m.send_all(&cmds)?;
    std::thread::sleep(Duration::from_millis(100));
    if std::env::var_os("QSB_DEBUG").is_some() {
        eprintln!(
            "n={n} port2 before {before} after {} port0 {} port1 {}",
            m.rx(2),
            m.rx(0),
            m.rx(1)
        );
    }
    // A forgotten address floods every frame sent to it; allow a stray frame or two (the
    // counters count every frame on the interface), not a forgotten address.
    Ok(m.rx(2) - before <= u64::from(n / 1000).max(2))
}

/// Binary search for the address caching capacity: `(n, true)` when even the largest tried fit.
fn caching(dut: Dut, o: &Opts) -> Result<(u32, bool), String> {
    let mut n = 256;
    let mut good = 0;
    while n <= o.caching_max {
        if !remembers(dut, n, o)? {
            break;
        }
        good = n;
        n *= 2;
    }
    if n > o.caching_max {
        return Ok((good, true));
    }
    let (mut lo, mut hi) = (good, n);
    for _ in 0..o.steps {
        let mid = (lo + hi) / 2;
        if mid == lo {
            break;
        }
        if remembers(dut, mid, o)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok((lo, false))
}
