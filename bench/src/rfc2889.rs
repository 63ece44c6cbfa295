//! RFC 2889 tests on a meshed veth topology: K ports, each a namespace with a generator agent,
//! joined by the device under test.
//!
//! - **Fully meshed throughput**: every port sends to every other port at the same rate; binary
//!   search for the highest per-port rate with no loss (aggregate delivered / offered).
//! - **Broadcast forwarding rate**: one port sends broadcast frames flat out; the rate at which
//!   each other port receives them.
//! - **Congestion control** (4 ports): port 0 sends to ports 2 and 3 in turn, port 1 sends to
//!   port 2, both at the same rate, so port 2 is offered 150 % of what port 3 is. Frames lost on
//!   the uncongested port 3 mean head-of-line blocking. Run at the "port rate" (the fully meshed
//!   per-port throughput: veth has no media rate, so this is the rate the DUT sustains on every
//!   port at once) and with both sources flat out (overload).
//! - **Address learning rate**: port 1 sends one frame from each of N new source addresses at
//!   rate R, then port 0 sends one frame to each of them at a low rate. The DUT learned them all
//!   if port 1 receives them and the monitor port 2 sees no flood; binary search on R (fresh DUT
//!   each trial), from the generator's flat-out rate down.
//! - **Address caching capacity**: the same check with N addresses taught at a rate below the
//!   learning rate; binary search on N (fresh DUT each trial). A forgotten address floods every
//!   frame sent to it (more than max(2, N/1000) frames at port 2 fails: the interface counters
//!   also count the odd stray frame), and so does one never learned.
//!
//! Not built: errored frames filtering and forward pressure. Receive counters are read from
//! `/proc/<agent pid>/net/dev` of each port's namespace by this process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::agent::Agent;
use crate::debug;
use crate::progress::Progress;
use crate::report::{json_metrics, Metric};
use crate::search;
use crate::topo::{self, counters, in_ns, mesh_mac, mesh_ns, start_dut, Daemons, Dut, Placement};

/// A meshed topology: namespace `qsbm<i>` holds `m<i>-v`, whose peer `m<i>-h` is a port of the
/// DUT in `qsbdut`. Torn down on drop.
struct Mesh {
    agents: Vec<Agent>,
    daemons: Daemons,
}

impl Mesh {
    fn build(dut: Dut, k: usize, qswitch: &str, work: &Path) -> Result<Mesh, String> {
        topo::teardown();
        // The guard first: a failure below tears down whatever was built.
        let mut mesh = Mesh {
            agents: Vec::new(),
            daemons: Daemons::default(),
        };
        let ip = |a: &[&str]| {
            crate::interrupt::check()?;
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
        mesh.daemons = start_dut(dut, &refs, qswitch, work, Placement::Pinned)?;
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
        self.daemons = Daemons::default();
        topo::teardown();
    }
}

struct Opts {
    duts: Vec<Dut>,
    ports: usize,
    trial: f64,
    steps: u32,
    caching_max: u32,
    caching_rate: f64,
    learn_addrs: u32,
    qswitch: String,
    work: PathBuf,
    out: PathBuf,
}

/// `qswitch-bench rfc2889`: fully meshed, broadcast, congestion control, address learning rate
/// and address caching capacity on a K-port mesh.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Short trials, small searches (explicit options still win)
    #[arg(long)]
    quick: bool,
    /// Devices under test (not none)
    #[arg(long, value_delimiter = ',', value_parser = crate::dut, default_value = "bridge,qswitch,ovs,ovs-afxdp")]
    duts: Vec<Dut>,
    /// Ports of the mesh
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(3..=topo::MAX_MESH as i64))]
    ports: u8,
    /// Seconds per trial [default: 1; 0.3 with --quick]
    #[arg(long, value_parser = crate::trial_secs)]
    trial: Option<f64>,
    /// Steps of each binary search [default: 5; 2 with --quick]
    #[arg(long)]
    steps: Option<u32>,
    /// Largest address count the caching search tries [default: 65536; 4096 with --quick]
    #[arg(long)]
    caching_max: Option<u32>,
    /// Frames per second of the caching test [default: 20000; 50000 with --quick]
    #[arg(long)]
    caching_rate: Option<f64>,
    /// Addresses of the learning-rate test [default: 2048; 1024 with --quick]
    #[arg(long)]
    learn_addrs: Option<u32>,
    #[command(flatten)]
    common: crate::Common,
}

/// `qswitch-bench rfc2889`.
pub fn run(a: Args) -> Result<(), String> {
    if a.duts.contains(&Dut::None) {
        return Err("rfc2889 needs a device under test (not none)".into());
    }
    let q = a.quick;
    let o = Opts {
        duts: a.duts,
        ports: usize::from(a.ports),
        trial: a.trial.unwrap_or(if q { 0.3 } else { 1.0 }),
        steps: a.steps.unwrap_or(if q { 2 } else { 5 }),
        caching_max: a.caching_max.unwrap_or(if q { 4096 } else { 65536 }),
        caching_rate: a
            .caching_rate
            .unwrap_or(if q { 50_000.0 } else { 20_000.0 }),
        learn_addrs: a.learn_addrs.unwrap_or(if q { 1024 } else { 2048 }),
        qswitch: a.common.qswitch,
        work: std::env::temp_dir().join(format!("qsb2889-{}", std::process::id())),
        out: a.common.out,
    };
    std::fs::create_dir_all(&o.work).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&o.out).map_err(|e| e.to_string())?;
    let duts = Dut::available(&o.duts);
    // Per DUT: meshed, broadcast, congestion, learning rate, caching.
    let mut bar = Progress::new(duts.len() * 5);
    let results = Dut::measure_each(&duts, |dut| measure(dut, &o, &mut bar))?;
    bar.finish();
    let _ = std::fs::remove_dir_all(&o.work);
    print(&o, &duts, &results);
    let metrics: Vec<Metric> = results
        .iter()
        .flat_map(|(dut, r)| r.metrics(dut.name()))
        .collect();
    let path = o.out.join("rfc2889.json");
    std::fs::write(&path, json_metrics(&metrics)).map_err(|e| e.to_string())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// What one DUT measured.
struct Results {
    /// Fully meshed throughput per port (pps).
    meshed: f64,
    /// Broadcast frames received per port per second.
    broadcast: f64,
    /// Congestion control at the port rate and flat out (`None` with fewer than 4 ports).
    congestion: Vec<Congestion>,
    /// Address learning rate (frames per second) and whether the generator's top rate passed.
    learning: (f64, bool),
    /// How many addresses the learning rate trials taught.
    learn_addrs: u32,
    /// Address caching capacity and whether the largest tried fit.
    caching: (u32, bool),
}

impl Results {
    fn metrics(&self, dut: &str) -> Vec<Metric> {
        let m = |test: &str, value: f64, unit: &str, note: &str| Metric {
            dut: dut.into(),
            test: test.into(),
            value,
            unit: unit.into(),
            note: note.into(),
        };
        let bound = |b: bool| if b { "lower bound: largest tried" } else { "" };
        let mut v = vec![
            m("fully-meshed-per-port", self.meshed, "pps", ""),
            m("broadcast-per-port", self.broadcast, "pps", ""),
            m(
                "address-learning-rate",
                self.learning.0,
                "fps",
                bound(self.learning.1),
            ),
            m(
                "address-learning-addresses",
                f64::from(self.learn_addrs),
                "addresses",
                "",
            ),
            m(
                "address-caching-capacity",
                f64::from(self.caching.0),
                "addresses",
                bound(self.caching.1),
            ),
        ];
        for c in &self.congestion {
            let load = c.label();
            v.push(m(
                &format!("congestion-{load}-congested-loss"),
                c.congested_loss(),
                "fraction",
                "",
            ));
            v.push(m(
                &format!("congestion-{load}-uncongested-loss"),
                c.uncongested_loss(),
                "fraction",
                c.verdict(),
            ));
        }
        v
    }
}

fn measure(dut: Dut, o: &Opts, bar: &mut Progress) -> Result<Results, String> {
    let show = |bar: &Progress, what: &str| bar.show(&format!("{}: {what}", dut.name()));
    let (meshed, broadcast, congestion) = {
        show(bar, "building the mesh");
        let mut m = Mesh::build(dut, o.ports, &o.qswitch, &o.work)?;
        show(bar, "fully meshed throughput");
        let per_port = meshed(&mut m, o)?;
        bar.advance();
        show(bar, "broadcast forwarding rate");
        let b = broadcast(&mut m, o)?;
        bar.advance();
        show(bar, "congestion control");
        let mut c = Vec::new();
        if o.ports >= 4 {
            if per_port > 0.0 {
                c.push(congestion(&mut m, o, per_port)?);
            }
            c.push(congestion(&mut m, o, 0.0)?);
        }
        bar.advance();
        (per_port, b, c)
    };
    show(bar, "address caching capacity");
    let caching = caching(dut, o, o.caching_rate)?;
    bar.advance();
    // RFC 2889 learns at most as many addresses as the DUT can hold.
    let learn_addrs = o.learn_addrs.min(caching.0.max(1));
    show(bar, "address learning rate");
    let learning = learning_rate(dut, learn_addrs, o)?;
    bar.advance();
    Ok(Results {
        meshed,
        broadcast,
        congestion,
        learning,
        learn_addrs,
        caching,
    })
}

fn print(o: &Opts, duts: &[Dut], results: &[(Dut, Results)]) {
    let qswitch = results
        .iter()
        .find(|(d, _)| *d == Dut::Qswitch)
        .map(|r| &r.1);
    let ratio = |a: Option<f64>, b: f64| match a {
        Some(a) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    };
    println!(
        "## RFC 2889 ({} ports, 64-byte frames, trial {} s, {} search steps)\n",
        o.ports, o.trial, o.steps
    );
    println!("| DUT | fully meshed per port Mpps | aggregate Mpps | qswitch ÷ DUT | broadcast per port Mpps | qswitch ÷ DUT |");
    println!("|---|---|---|---|---|---|");
    for (dut, r) in results {
        println!(
            "| {} | {:.3} | {:.3} | {} | {:.3} | {} |",
            dut.name(),
            r.meshed / 1e6,
            r.meshed * o.ports as f64 / 1e6,
            ratio(qswitch.map(|q| q.meshed), r.meshed),
            r.broadcast / 1e6,
            ratio(qswitch.map(|q| q.broadcast), r.broadcast),
        );
    }
    println!("\n### Address learning rate and caching capacity\n");
    println!(
        "Caching capacity: addresses taught at {:.0} kfps, binary search up to {}. Learning rate: \
         as many addresses as the DUT holds, up to {}; \">=\" means the generator's flat-out rate passed.\n",
        o.caching_rate / 1e3,
        o.caching_max,
        o.learn_addrs
    );
    println!("| DUT | caching capacity (addresses) | learning rate, kfps | addresses taught | qswitch ÷ DUT |");
    println!("|---|---|---|---|---|");
    for (dut, r) in results {
        let more = |b: bool| if b { ">= " } else { "" };
        println!(
            "| {} | {}{} | {}{:.1} | {} | {} |",
            dut.name(),
            more(r.caching.1),
            r.caching.0,
            more(r.learning.1),
            r.learning.0 / 1e3,
            r.learn_addrs,
            ratio(qswitch.map(|q| q.learning.0), r.learning.0),
        );
    }
    if o.ports >= 4 {
        println!("\n### Congestion control (ports 0 and 1 send; port 2 congested, port 3 not)\n");
        println!("| DUT | load per source | to congested port: offered / delivered Mpps, loss | to uncongested port: offered / delivered Mpps, loss | head-of-line blocking |");
        println!("|---|---|---|---|---|");
        for (dut, r) in results {
            for c in &r.congestion {
                println!(
                    "| {} | {} | {:.3} / {:.3}, {:.2} % | {:.3} / {:.3}, {:.2} % | {} |",
                    dut.name(),
                    c.load(),
                    c.to_congested / 1e6 / o.trial,
                    c.got_congested / 1e6 / o.trial,
                    c.congested_loss() * 100.0,
                    c.to_uncongested / 1e6 / o.trial,
                    c.got_uncongested / 1e6 / o.trial,
                    c.uncongested_loss() * 100.0,
                    c.verdict()
                );
            }
        }
    }
    for d in o.duts.iter().filter(|d| !duts.contains(d)) {
        println!(
            "\n{} skipped: {}",
            d.name(),
            d.unavailable().unwrap_or_default()
        );
    }
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
        if debug() {
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
    search::highest_rate(max, o.steps, |rate| {
        let (sent, got) = trial(m, rate)?;
        Ok((got >= sent).then_some(rate))
    })
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

/// One congestion control trial: frames offered to and delivered at each output port.
struct Congestion {
    /// Rate per source (pps); 0 = flat out.
    pps: f64,
    to_congested: f64,
    got_congested: f64,
    to_uncongested: f64,
    got_uncongested: f64,
}

impl Congestion {
    fn label(&self) -> &'static str {
        if self.pps > 0.0 {
            "port-rate"
        } else {
            "flat-out"
        }
    }

    fn load(&self) -> String {
        if self.pps > 0.0 {
            format!("port rate ({:.3} Mpps)", self.pps / 1e6)
        } else {
            "flat out".into()
        }
    }

    /// Head-of-line blocking: the uncongested port loses frames. Flat out, a DUT that is
    /// overloaded as a whole loses on every port; that is not told apart from blocking.
    fn verdict(&self) -> &'static str {
        match (self.uncongested_loss() > 0.0, self.pps > 0.0) {
            (false, _) => "no",
            (true, true) => "yes",
            (true, false) if self.congested_loss() > 0.0 => "overloaded: every port loses",
            (true, false) => "yes",
        }
    }

    fn congested_loss(&self) -> f64 {
        loss(self.to_congested, self.got_congested)
    }

    fn uncongested_loss(&self) -> f64 {
        loss(self.to_uncongested, self.got_uncongested)
    }
}

/// Loss at one output port. Port 0's alternation starts where its previous run ended, so its
/// split between ports 2 and 3 is known to one frame: a one-frame shortfall is not loss.
fn loss(offered: f64, got: f64) -> f64 {
    if offered > 0.0 && got + 1.0 < offered {
        1.0 - got / offered
    } else {
        0.0
    }
}

/// RFC 2889 congestion control on ports 0-3 at `pps` per source (0 = flat out).
fn congestion(m: &mut Mesh, o: &Opts, pps: f64) -> Result<Congestion, String> {
    let before = (m.rx(2), m.rx(3));
    let mut cmds = vec![None; o.ports];
    cmds[0] = Some(format!(
        "sendx list={},{} mac={} 2 64 {pps} {} 18446744073709551615",
        mesh_mac(2),
        mesh_mac(3),
        mesh_mac(0),
        o.trial
    ));
    cmds[1] = Some(format!(
        "sendx mac={} mac={} 1 64 {pps} {} 18446744073709551615",
        mesh_mac(2),
        mesh_mac(1),
        o.trial
    ));
    let sent = m.send_all(&cmds)?;
    std::thread::sleep(Duration::from_millis(50));
    // Port 0 alternates between ports 2 and 3, starting with 2.
    let half = (sent[0] / 2.0).floor();
    let c = Congestion {
        pps,
        to_congested: sent[0] - half + sent[1],
        got_congested: (m.rx(2) - before.0) as f64,
        to_uncongested: half,
        got_uncongested: (m.rx(3) - before.1) as f64,
    };
    if debug() {
        eprintln!(
            "congestion {pps:.0}: sent {sent:?}, port 2 {} of {}, port 3 {} of {}",
            c.got_congested, c.to_congested, c.got_uncongested, c.to_uncongested
        );
    }
    Ok(c)
}

/// Does a fresh DUT learn `n` new addresses taught at `rate` (0 = flat out), and remember them
/// all? Port 1 teaches (sending to port 0), then port 0 sends one frame to each address at
/// `test_rate` while port 2 watches for floods. Also returns the rate the addresses were taught at.
fn learns(dut: Dut, n: u32, rate: f64, test_rate: f64, o: &Opts) -> Result<(bool, f64), String> {
    let mut m = Mesh::build(dut, 3, &o.qswitch, &o.work)?;
    let secs = |r: f64| {
        if r > 0.0 {
            f64::from(n) / r + 1.0
        } else {
            30.0
        }
    };
    let taught = m.agents[1].ask(&format!(
        "sendx mac={} flow=4096 {n} 64 {rate} {} {n}",
        mesh_mac(0),
        secs(rate)
    ))?;
    let (sent, ns) = (
        taught.first().copied().unwrap_or(0.0),
        taught.get(1).copied().unwrap_or(0.0),
    );
    let achieved = if ns > 0.0 { sent / (ns / 1e9) } else { 0.0 };
    std::thread::sleep(Duration::from_millis(100));
    let (before1, before2) = (m.rx(1), m.rx(2));
    m.agents[0].ask(&format!(
        "sendx flow=4096 mac={} {n} 64 {test_rate} {} {n}",
        mesh_mac(0),
        secs(test_rate)
    ))?;
    std::thread::sleep(Duration::from_millis(100));
    let (got, flooded) = (m.rx(1) - before1, m.rx(2) - before2);
    if debug() {
        eprintln!(
            "n={n} rate {rate:.0} (achieved {achieved:.0}): taught {sent}, port 1 got {got}, port 2 saw {flooded}"
        );
    }
    // Allow a stray frame or two (the counters count every frame on the interface), not a
    // forgotten address.
    let slack = u64::from(n / 1000).max(2);
    let ok = sent >= f64::from(n) && flooded <= slack && got + slack >= u64::from(n);
    Ok((ok, achieved))
}

/// RFC 2889 address learning rate: the highest rate at which `n` new addresses are all learned
/// (binary search, from the generator's flat-out rate down). `(rate, true)` when flat out passed.
fn learning_rate(dut: Dut, n: u32, o: &Opts) -> Result<(f64, bool), String> {
    let test_rate = 10_000.0;
    let (ok, top) = learns(dut, n, 0.0, test_rate, o)?;
    if ok {
        return Ok((top, true));
    }
    let rate = search::highest_rate(top, o.steps, |rate| {
        Ok(learns(dut, n, rate, test_rate, o)?.0.then_some(rate))
    })?;
    Ok((rate, false))
}

/// Binary search for the address caching capacity, teaching at `rate`: `(n, true)` when even
/// the largest tried fit.
fn caching(dut: Dut, o: &Opts, rate: f64) -> Result<(u32, bool), String> {
    let (n, all) = search::largest_count(256, u64::from(o.caching_max), o.steps, |n| {
        let n = u32::try_from(n).map_err(|_| "too many addresses")?;
        learns(dut, n, rate, rate, o).map(|r| r.0)
    })?;
    Ok((u32::try_from(n).unwrap_or(u32::MAX), all))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(pps: f64, to_c: f64, got_c: f64, to_u: f64, got_u: f64) -> Congestion {
        Congestion {
            pps,
            to_congested: to_c,
            got_congested: got_c,
            to_uncongested: to_u,
            got_uncongested: got_u,
        }
    }

    #[test]
    fn loss_forgives_the_one_frame_split_and_nothing_more() {
        assert_eq!(loss(100.0, 99.0), 0.0);
        assert_eq!(loss(100.0, 101.0), 0.0);
        assert!((loss(100.0, 90.0) - 0.1).abs() < 1e-9);
        assert_eq!(loss(0.0, 0.0), 0.0);
    }

    #[test]
    fn head_of_line_blocking_is_loss_at_the_uncongested_port_only() {
        assert_eq!(c(1e5, 150.0, 150.0, 50.0, 50.0).verdict(), "no");
        // Dropping at the congested port is what a switch should do.
        assert_eq!(c(0.0, 150.0, 100.0, 50.0, 50.0).verdict(), "no");
        assert_eq!(c(1e5, 150.0, 150.0, 50.0, 40.0).verdict(), "yes");
        assert_eq!(c(0.0, 150.0, 150.0, 50.0, 40.0).verdict(), "yes");
        assert_eq!(
            c(0.0, 150.0, 100.0, 50.0, 40.0).verdict(),
            "overloaded: every port loses"
        );
        assert_eq!(c(0.0, 1.0, 1.0, 1.0, 1.0).label(), "flat-out");
        assert_eq!(c(5.0, 1.0, 1.0, 1.0, 1.0).label(), "port-rate");
    }
}
