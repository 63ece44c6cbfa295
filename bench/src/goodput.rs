//! TCP goodput between two VMs through the device under test: what a tenant's bulk transfer
//! gets, as `iperf3` measures it, with the guests' offloads as Linux sets them by default and
//! with transmit checksum offload off.
//!
//! The topology is the packet harness's (`topo`): the generator namespace is the client VM, the
//! sink namespace the server VM (its drop filter removed), each with an address in
//! 198.18.0.0/24. Per DUT and repetition the topology is built once; then for each offload
//! setting (`ethtool -K <vm interface> tx on|off` on both VMs) and each stream count, one
//! `iperf3 -c ... -t SECS -P N -J` run. Repetitions go round the DUTs in turn; the report gives
//! the median goodput (what the receiver got, Gbit/s) and every run's figure. Beside it, medians
//! too: the sender's mean round-trip time (iperf3's mean of its one-a-second samples of the
//! kernel's smoothed RTT), which grows with the queue a switch keeps in front of its slowest
//! stage; how many of the machine's CPUs were busy while the client ran; and how much CPU time
//! was charged to the switch's own threads (the bridge has none: it forwards in the guests' own
//! calls), which includes the guests' stack work run in those threads' softirqs ([`CpuUse`]).
//!
//! qswitch runs with the daemon's defaults (adaptive polling, no pinning: the guests need the
//! cores as much as the switch; a worker per CPU, or `QSB_WORKERS`); `--pinned` pins its worker
//! to CPU 1 with busy polling, as the packet tests do. Open vSwitch's PMD thread busy-polls on CPU 1 either way.
//!
//! With checksum offload on, a veth peer also offers TSO: through the bridge, 64 KB segments
//! cross whole. A native XDP program on a veth (OVS AF_XDP's, or qswitch's in `qswitch-native`)
//! takes TSO away from its peer, so the guest segments in software and every MTU-sized frame
//! crosses the switch alone. qswitch's default (`auto`) attaches to a veth in generic mode, which
//! leaves the guests their TSO (as a tap's guests keep it): their super-frames cross qswitch
//! whole (`qswitch-generic` forces that mode on every port).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::progress::{self, Progress};
use crate::report::{json_metrics, median, Metric};
use crate::topo::{in_ns, Dut, Placement, Topology};

const CLIENT_NS: &str = "qsbgen";
const CLIENT_DEV: &str = "gen-v";
const SERVER_NS: &str = "qsbsink";
const SERVER_DEV: &str = "sink-v";
/// The VMs' addresses: the generator's and the sink's (their ports' fixed IPs on `qswitch-sg`).
const CLIENT_IP: std::net::Ipv4Addr = crate::topo::GEN_IP;
const SERVER_IP: std::net::Ipv4Addr = crate::topo::SINK_IP;

/// The guests' transmit offloads in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offloads {
    /// As Linux sets up a veth: checksum offload on (and TSO where the peer allows it).
    Default,
    /// `ethtool -K <dev> tx off`: the guest computes every checksum (and so cannot use TSO).
    TxOff,
}

impl Offloads {
    fn name(self) -> &'static str {
        match self {
            Offloads::Default => "default",
            Offloads::TxOff => "tx-off",
        }
    }
}

#[derive(Debug)]
struct Options {
    duts: Vec<Dut>,
    secs: u32,
    streams: Vec<u32>,
    repeat: usize,
    placement: Placement,
    qswitch: String,
    work: PathBuf,
    out: PathBuf,
}

/// One iperf3 run.
#[derive(Debug, Clone)]
struct Run {
    dut: Dut,
    offloads: Offloads,
    streams: u32,
    /// What the receiver got, Gbit/s.
    gbps: f64,
    /// Segments the sender retransmitted.
    retransmits: u64,
    /// The sender's smoothed round-trip time, µs (iperf3's mean of its per-second samples,
    /// averaged over the streams), when iperf3 reports it.
    rtt_us: Option<f64>,
    /// The CPUs in use while it ran.
    cpu: CpuUse,
    /// Why no data moved, when none did.
    failed: Option<String>,
}

/// How many CPUs were busy while an iperf3 client ran, on average: all of the machine's work
/// (`busy`), and the time charged to the DUT's own processes' threads (`switch`: qswitch, Open
/// vSwitch; `None` for the bridge, whose work runs in the guests' own calls and their
/// softirqs). Where the kernel charges softirq time to the thread it interrupts (without
/// `CONFIG_IRQ_TIME_ACCOUNTING`), the switch's threads are charged for what runs in their
/// softirqs too: the receiving guest's stack behind a veth, which a send runs at once, and the
/// sending guest's stack answering the acknowledgments it delivers.
#[derive(Debug, Clone, Copy, Default)]
struct CpuUse {
    busy: f64,
    switch: Option<f64>,
}

/// What measures a [`CpuUse`]: the DUT's processes, and the machine's CPUs.
struct CpuMeter {
    pids: Vec<u32>,
    cpus: usize,
}

impl CpuMeter {
    fn of(pids: Vec<u32>) -> CpuMeter {
        let cpus = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|t| parse_proc_stat(&t))
            .map_or(1, |(_, n)| n.max(1));
        CpuMeter { pids, cpus }
    }

    fn sample(&self) -> CpuSample {
        CpuSample {
            at: Instant::now(),
            machine: machine_ticks().unwrap_or_default(),
            switch: crate::apiscale::cpu_ticks(&self.pids),
        }
    }

    /// What was used since `before`.
    fn since(&self, before: &CpuSample) -> CpuUse {
        before.until(&self.sample(), self.cpus, !self.pids.is_empty())
    }
}

/// The CPU counters a [`CpuUse`] is the difference of.
struct CpuSample {
    at: Instant,
    /// The machine's (busy, all) clock ticks, all CPUs.
    machine: (u64, u64),
    /// The DUT's processes' user and system ticks.
    switch: u64,
}

impl CpuSample {
    /// What was used from `self` until `later`, on a machine of `cpus` CPUs.
    fn until(&self, later: &CpuSample, cpus: usize, has_switch: bool) -> CpuUse {
        let (busy, all) = (
            later.machine.0.saturating_sub(self.machine.0),
            later.machine.1.saturating_sub(self.machine.1),
        );
        let secs = later.at.duration_since(self.at).as_secs_f64();
        let switch = later.switch.saturating_sub(self.switch) as f64
            / crate::apiscale::TICKS_PER_SECOND
            / secs.max(1e-9);
        CpuUse {
            busy: if all == 0 {
                0.0
            } else {
                busy as f64 / all as f64 * cpus as f64
            },
            switch: has_switch.then_some(switch),
        }
    }
}

/// The machine's CPU time from the first line of `/proc/stat`, in clock ticks: (busy, all).
/// Busy is user, nice, system, irq and softirq time; all adds idle, iowait and steal (time the
/// hypervisor gave to others).
fn machine_ticks() -> Option<(u64, u64)> {
    parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?).map(|(t, _)| t)
}

/// [`machine_ticks`] from the text of `/proc/stat`, and the number of `cpuN` lines.
fn parse_proc_stat(text: &str) -> Option<((u64, u64), usize)> {
    let first = text.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = first
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let field = |i: usize| v.get(i).copied().unwrap_or(0);
    let busy = field(0) + field(1) + field(2) + field(5) + field(6);
    let all = busy + field(3) + field(4) + field(7);
    let cpus = text
        .lines()
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    Some(((busy, all), cpus))
}

/// `qswitch-bench goodput`.
pub fn run(args: Args) -> Result<(), String> {
    let o = options(args);
    if which("iperf3").is_none() {
        return Err("iperf3 is not installed (apt-get install iperf3)".into());
    }
    std::fs::create_dir_all(&o.work).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&o.out).map_err(|e| e.to_string())?;
    let duts = Dut::available(&o.duts);
    let per_dut = 2 * o.streams.len();
    let mut bar = Progress::new(duts.len() * o.repeat * per_dut);
    let mut runs = Vec::new();
    for _ in 0..o.repeat {
        let round = Dut::measure_each(&duts, |dut| measure(dut, &o, &mut bar))?;
        runs.extend(round.into_iter().flat_map(|(_, r)| r));
    }
    bar.finish();
    let _ = std::fs::remove_dir_all(&o.work);
    let rows = summary(&duts, &o, &runs);
    print(&o, &rows);
    let mut metrics = Vec::new();
    for r in &rows {
        let (dut, off, n) = (r.dut.name(), r.offloads.name(), r.streams);
        let metric = |test: &str, value: f64, unit: &str, note: String| Metric {
            dut: dut.into(),
            test: format!("tcp-{test}-{off}-{n}"),
            value,
            unit: unit.into(),
            note,
        };
        metrics.push(metric(
            "goodput",
            r.goodput,
            "Gbit/s",
            format!("runs {}", list(&r.runs)),
        ));
        if let Some(rtt) = r.rtt_us {
            let note = "the sender's mean smoothed RTT, median of the runs".into();
            metrics.push(metric("rtt", rtt, "us", note));
        }
        let note = "the machine's busy CPUs while the client ran, median of the runs".into();
        metrics.push(metric("cpus-busy", r.busy, "CPUs", note));
        if let Some(cpus) = r.switch {
            let note = "CPU time charged to the switch's threads while the client ran, per \
                        second, median of the runs"
                .into();
            metrics.push(metric("switch-cpus", cpus, "CPUs", note));
        }
    }
    let path = o.out.join("goodput.json");
    std::fs::write(&path, json_metrics(&metrics)).map_err(|e| e.to_string())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// `qswitch-bench goodput`: TCP goodput between two VM namespaces (iperf3), default offloads
/// and transmit checksum offload off.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Two-second runs, one round (explicit --time and --repeat still win)
    #[arg(long)]
    quick: bool,
    /// Devices under test
    #[arg(long, value_delimiter = ',', value_parser = crate::dut, default_value = "bridge,qswitch,qswitch-native,qswitch-sg,ovs-afxdp")]
    duts: Vec<Dut>,
    /// Seconds per iperf3 run [default: 5; 2 with --quick]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    time: Option<u32>,
    /// Parallel TCP streams per run, a list (1 to 128 each)
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=128), default_value = "1,4")]
    streams: Vec<u32>,
    /// Rounds over every DUT; medians are reported [default: 3; 1 with --quick]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: Option<u32>,
    /// Pin the guests' and the switch's threads to separate CPUs
    #[arg(long)]
    pinned: bool,
    #[command(flatten)]
    common: crate::Common,
}

fn options(a: Args) -> Options {
    Options {
        duts: a.duts,
        secs: a.time.unwrap_or(if a.quick { 2 } else { 5 }),
        streams: a.streams,
        repeat: a.repeat.unwrap_or(if a.quick { 1 } else { 3 }) as usize,
        placement: if a.pinned {
            Placement::Pinned
        } else {
            Placement::Defaults
        },
        qswitch: a.common.qswitch,
        work: std::env::temp_dir().join(format!("qsbgoodput-{}", std::process::id())),
        out: a.common.out,
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/bin", "/usr/sbin"])
        .map(|d| std::path::Path::new(d).join(program))
        .find(|p| p.is_file());
    found
}

/// Builds the topology for `dut` and runs every offload setting and stream count on it.
fn measure(dut: Dut, o: &Options, bar: &mut Progress) -> Result<Vec<Run>, String> {
    let topology = Topology::build(dut, &o.qswitch, &o.work, o.placement)?;
    let meter = CpuMeter::of(topology.pids());
    in_ns(SERVER_NS, &["nft", "delete table netdev qsb"])?;
    for (ns, dev, ip) in [
        (CLIENT_NS, CLIENT_DEV, CLIENT_IP),
        (SERVER_NS, SERVER_DEV, SERVER_IP),
    ] {
        let ip = ip.to_string();
        in_ns(ns, &["ip", "addr", "add", &format!("{ip}/24"), "dev", dev])?;
    }
    let mut runs = Vec::new();
    for offloads in [Offloads::Default, Offloads::TxOff] {
        let tx = if offloads == Offloads::Default {
            "on"
        } else {
            "off"
        };
        for (ns, dev) in [(CLIENT_NS, CLIENT_DEV), (SERVER_NS, SERVER_DEV)] {
            in_ns(ns, &["ethtool", "-K", dev, "tx", tx])?;
        }
        for &streams in &o.streams {
            bar.show(&format!(
                "goodput {} {} {streams} stream(s)",
                dut.name(),
                offloads.name()
            ));
            // A transfer that fails (no connection: the DUT delivers no segment intact) is a
            // result of its own, not a reason to give up on the DUT.
            crate::interrupt::check()?;
            let (result, cpu) = iperf3(o.secs, streams, &meter);
            let (t, failed) = match result {
                Ok(t) => (t, None),
                Err(e) => (Transfer::default(), Some(e)),
            };
            if crate::debug() {
                progress::clear();
                eprintln!(
                    "{} {} P{streams}: {:.2} Gbit/s, {} retransmits, RTT {:?} µs, {cpu:?} {failed:?}",
                    dut.name(),
                    offloads.name(),
                    t.gbps,
                    t.retransmits,
                    t.rtt_us
                );
            }
            runs.push(Run {
                dut,
                offloads,
                streams,
                gbps: t.gbps,
                retransmits: t.retransmits,
                rtt_us: t.rtt_us,
                cpu,
                failed,
            });
            bar.advance();
        }
    }
    // Security groups must have seen the traffic. (TCP never takes `qswitch-shortcut`'s
    // shortcut: its rows measure that TCP is no worse for it.)
    if dut.filters() {
        crate::topo::check_evidence(dut)?;
    }
    Ok(runs)
}

/// An iperf3 server in the server VM, for one test; killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One iperf3 test, and the CPUs used while its client ran (the attempt that connected).
fn iperf3(secs: u32, streams: u32, meter: &CpuMeter) -> (Result<Transfer, String>, CpuUse) {
    if let Err(e) = crate::interrupt::check() {
        return (Err(e), CpuUse::default());
    }
    let addr = SERVER_IP.to_string();
    let server = Command::new("ip")
        .args([
            "netns", "exec", SERVER_NS, "iperf3", "-s", "-1", "-B", &addr,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let server = match server {
        Ok(s) => s,
        Err(e) => return (Err(format!("iperf3 server: {e}")), CpuUse::default()),
    };
    let _server = Server(server);
    let (secs_s, streams_s) = (secs.to_string(), streams.to_string());
    let limit = (secs + 20).to_string();
    // The server needs a moment to listen: a refused connection is tried again. A connection
    // that times out (3 s) is a DUT that delivers no segment intact.
    let mut last = (String::new(), CpuUse::default());
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let before = meter.sample();
        let out = Command::new("timeout")
            .args([&limit, "ip", "netns", "exec", CLIENT_NS, "iperf3", "-c"])
            .args([&addr, "-t", &secs_s, "-P", &streams_s, "-J"])
            .args(["--connect-timeout", "3000"])
            .output();
        let used = meter.since(&before);
        let out = match out {
            Ok(o) => o,
            Err(e) => return (Err(format!("iperf3 client: {e}")), used),
        };
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // iperf3 -J may exit 0 after a failed connection: its JSON tells.
        if let Some(result) = parse_iperf3(&text).filter(|_| out.status.success()) {
            return (Ok(result), used);
        }
        let error = iperf3_error(&text);
        if !error.contains("Connection refused") {
            return (Err(error), used);
        }
        last = (error, used);
    }
    (Err(last.0), last.1)
}

/// The `error` of iperf3's JSON (`-J`), or its whole output when there is none.
fn iperf3_error(json: &str) -> String {
    json.split("\"error\":")
        .nth(1)
        .and_then(|s| s.split('"').nth(1))
        .map_or_else(|| json.trim().to_owned(), str::to_owned)
}

/// What one iperf3 test measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Transfer {
    /// What the receiver got, Gbit/s.
    gbps: f64,
    /// Segments the sender retransmitted.
    retransmits: u64,
    /// The sender's mean smoothed RTT, µs, averaged over the streams.
    rtt_us: Option<f64>,
}

/// A [`Transfer`] from iperf3's JSON (`-J`): the `end` section's
/// `sum_received.bits_per_second`, `sum_sent.retransmits` and each stream's
/// `sender.mean_rtt`. `None` when the JSON has no received sum (the test failed).
fn parse_iperf3(json: &str) -> Option<Transfer> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let end = v.get("end")?;
    let bps = end.get("sum_received")?.get("bits_per_second")?.as_f64()?;
    let retransmits = end
        .get("sum_sent")
        .and_then(|s| s.get("retransmits"))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    let rtts: Vec<f64> = end
        .get("streams")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("sender")?.get("mean_rtt")?.as_f64())
        .collect();
    let rtt_us = (!rtts.is_empty()).then(|| rtts.iter().sum::<f64>() / rtts.len() as f64);
    Some(Transfer {
        gbps: bps / 1e9,
        retransmits,
        rtt_us,
    })
}

/// The median of the values the runs report, `None` if none does.
fn median_of(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = values.flatten().collect();
    (!v.is_empty()).then(|| median(v))
}

fn list(v: &[f64]) -> String {
    v.iter()
        .map(|g| format!("{g:.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One row of the report: a (DUT, offloads, streams) and what its runs measured.
struct Row {
    dut: Dut,
    offloads: Offloads,
    streams: u32,
    /// The median goodput, Gbit/s, and every run's.
    goodput: f64,
    runs: Vec<f64>,
    /// Retransmits, all runs together.
    retransmits: u64,
    /// Medians of the runs that report them ([`Run`], [`CpuUse`]).
    rtt_us: Option<f64>,
    busy: f64,
    switch: Option<f64>,
    /// How many runs moved no data, and why the first of them did not.
    failed: Option<(usize, String)>,
}

/// The report's rows: per DUT, offload setting and stream count that has runs.
fn summary(duts: &[Dut], o: &Options, runs: &[Run]) -> Vec<Row> {
    let mut rows = Vec::new();
    for &dut in duts {
        for offloads in [Offloads::Default, Offloads::TxOff] {
            for &streams in &o.streams {
                let these: Vec<&Run> = runs
                    .iter()
                    .filter(|r| r.dut == dut && r.offloads == offloads && r.streams == streams)
                    .collect();
                if these.is_empty() {
                    continue;
                }
                let gbps: Vec<f64> = these.iter().map(|r| r.gbps).collect();
                let failed: Vec<&str> = these.iter().filter_map(|r| r.failed.as_deref()).collect();
                rows.push(Row {
                    dut,
                    offloads,
                    streams,
                    goodput: median(gbps.clone()),
                    runs: gbps,
                    retransmits: these.iter().map(|r| r.retransmits).sum(),
                    rtt_us: median_of(these.iter().map(|r| r.rtt_us)),
                    busy: median(these.iter().map(|r| r.cpu.busy).collect()),
                    switch: median_of(these.iter().map(|r| r.cpu.switch)),
                    failed: failed.first().map(|why| (failed.len(), (*why).to_owned())),
                });
            }
        }
    }
    rows
}

fn print(o: &Options, rows: &[Row]) {
    println!(
        "\nTCP goodput, iperf3 -t {} between two VMs through the DUT (median of {} run(s), Gbit/s)\n",
        o.secs, o.repeat
    );
    println!(
        "| DUT | guest offloads | streams | goodput | runs | retransmits | sender's RTT, µs | CPUs busy | the switch's threads, CPUs | qswitch ÷ DUT |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut failures = Vec::new();
    for r in rows {
        let (dut, off, n) = (r.dut.name(), r.offloads.name(), r.streams);
        if let Some((count, why)) = &r.failed {
            failures.push(format!(
                "{dut} {off} {n} stream(s): {count} of {} run(s) moved no data ({why})",
                r.runs.len()
            ));
        }
        let ours = rows
            .iter()
            .find(|q| q.dut == Dut::Qswitch && q.offloads == r.offloads && q.streams == n)
            .map(|q| q.goodput);
        let ratio = match ours {
            Some(q) if r.goodput > 0.0 => format!("{:.2}", q / r.goodput),
            _ => "-".into(),
        };
        let rtt = r.rtt_us.map_or_else(|| "-".into(), |us| format!("{us:.0}"));
        let switch = r.switch.map_or_else(|| "-".into(), |c| format!("{c:.2}"));
        println!(
            "| {dut} | {off} | {n} | {:.2} | {} | {} | {rtt} | {:.2} | {switch} | {ratio} |",
            r.goodput,
            list(&r.runs),
            r.retransmits,
            r.busy
        );
    }
    for f in failures {
        println!("\n{f}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iperf3_json_gives_the_receivers_rate_and_the_senders_retransmits_and_rtt() {
        let json = r#"{"start": {"bits_per_second": 1},
            "intervals": [{"sum": {"bits_per_second": 5e9}}],
            "end": {"streams": [
                    {"sender": {"bits_per_second": 2e9, "mean_rtt": 100, "max_rtt": 900},
                     "receiver": {"bits_per_second": 1.1e9}},
                    {"sender": {"bits_per_second": 5e8, "mean_rtt": 300},
                     "receiver": {"bits_per_second": 1.3e9}}],
                "sum_sent": {"bytes": 10, "bits_per_second": 2.5e9, "retransmits": 7},
                "sum_received": {"bytes": 9, "bits_per_second": 2400000000.5}}}"#;
        let t = parse_iperf3(json).unwrap();
        assert!((t.gbps - 2.4).abs() < 1e-6, "{t:?}");
        assert_eq!(t.retransmits, 7);
        assert_eq!(t.rtt_us, Some(200.0), "the streams' mean RTTs averaged");
        // An iperf3 that reports no RTT (not Linux): the rest still counts.
        let bare = r#"{"end": {"streams": [{"sender": {"bits_per_second": 1}}],
            "sum_sent": {"retransmits": 0}, "sum_received": {"bits_per_second": 1e9}}}"#;
        let t = parse_iperf3(bare).unwrap();
        assert_eq!((t.gbps, t.retransmits, t.rtt_us), (1.0, 0, None));
        let failed =
            "{\"start\": {}, \"error\": \"unable to connect to server: Connection timed out\"}";
        assert_eq!(parse_iperf3(failed), None);
        assert_eq!(
            iperf3_error(failed),
            "unable to connect to server: Connection timed out"
        );
    }

    #[test]
    fn cpu_use_counts_busy_cpus_and_the_switchs_time() {
        let stat = "cpu  100 5 50 800 20 3 7 15 0 0\ncpu0 50 2 25 400 10 1 3 8 0 0\n\
                    cpu1 50 3 25 400 10 2 4 7 0 0\nintr 12345\nctxt 99\n";
        // Busy: user, nice, system, irq, softirq; all adds idle, iowait and steal.
        assert_eq!(parse_proc_stat(stat), Some(((165, 1000), 2)));
        assert_eq!(parse_proc_stat("intr 1\n"), None);
        let at = Instant::now();
        let before = CpuSample {
            at,
            machine: (165, 1000),
            switch: 40,
        };
        let after = CpuSample {
            at: at + Duration::from_secs(2),
            machine: (165 + 300, 1000 + 400),
            switch: 40 + 150,
        };
        // 300 of 400 ticks busy on 2 CPUs; 150 ticks (1.5 s) of the switch's in 2 s.
        let used = before.until(&after, 2, true);
        assert!((used.busy - 1.5).abs() < 1e-9, "{used:?}");
        assert!((used.switch.unwrap() - 0.75).abs() < 1e-9, "{used:?}");
        assert_eq!(before.until(&after, 2, false).switch, None);
    }

    #[test]
    fn rows_take_medians_over_the_runs_that_report_each_figure() {
        let run = |dut, gbps, rtt_us, busy, switch, failed: Option<&str>| Run {
            dut,
            offloads: Offloads::Default,
            streams: 1,
            gbps,
            retransmits: 2,
            rtt_us,
            cpu: CpuUse { busy, switch },
            failed: failed.map(str::to_owned),
        };
        let runs = [
            run(Dut::Qswitch, 9.0, Some(300.0), 1.9, Some(1.2), None),
            run(Dut::Qswitch, 0.0, None, 1.0, Some(1.0), Some("timed out")),
            run(Dut::Qswitch, 7.0, Some(100.0), 1.7, Some(1.4), None),
            run(Dut::Bridge, 20.0, Some(20.0), 1.6, None, None),
        ];
        let o = Options {
            duts: vec![Dut::Bridge, Dut::Qswitch],
            secs: 1,
            streams: vec![1, 4],
            repeat: 3,
            placement: Placement::Defaults,
            qswitch: String::new(),
            work: PathBuf::new(),
            out: PathBuf::new(),
        };
        let rows = summary(&o.duts, &o, &runs);
        // Only the (DUT, offloads, streams) that have runs.
        assert_eq!(rows.len(), 2);
        let (bridge, q) = (&rows[0], &rows[1]);
        assert_eq!(
            (bridge.dut, bridge.switch, bridge.failed.clone()),
            (Dut::Bridge, None, None)
        );
        assert_eq!(q.runs, vec![9.0, 0.0, 7.0]);
        assert_eq!((q.goodput, q.retransmits, q.busy), (7.0, 6, 1.7));
        // The failed run reports no RTT: the median is over the two that do.
        assert_eq!(q.rtt_us, Some(200.0));
        assert_eq!(q.switch, Some(1.2));
        assert_eq!(q.failed, Some((1, "timed out".to_owned())));
    }

    #[test]
    fn options_parse_and_refuse_nonsense() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let parse = |v: &[&str]| {
            use clap::Parser;
            Cli::try_parse_from(std::iter::once(&"goodput").chain(v)).map(|c| options(c.args))
        };
        let o = parse(&["--streams", "1,2,8", "--time", "3", "--repeat", "2"]).unwrap();
        assert_eq!(o.streams, vec![1, 2, 8]);
        assert_eq!((o.secs, o.repeat), (3, 2));
        let q = parse(&["--quick", "--repeat", "4"]).unwrap();
        assert_eq!(
            (q.secs, q.repeat),
            (2, 4),
            "an explicit option wins over --quick"
        );
        assert_eq!(parse(&[]).unwrap().duts.len(), 5);
        for bad in [
            &["--streams", "0"][..],
            &["--time", "0"],
            &["--repeat", "x"],
            &["--duts", "hub"],
            &["--frobnicate"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
