//! TCP goodput between two VMs through the device under test: what a tenant's bulk transfer
//! gets, as `iperf3` measures it, with the guests' offloads as Linux sets them by default and
//! with transmit checksum offload off.
//!
//! The topology is the packet harness's (`topo`): the generator namespace is the client VM, the
//! sink namespace the server VM (its drop filter removed), each with an address in
//! 198.18.0.0/24. Per DUT and repetition the topology is built once; then for each offload
//! setting (`ethtool -K <vm interface> tx on|off` on both VMs) and each stream count, one
//! `iperf3 -c ... -t SECS -P N -J` run. Repetitions go round the DUTs in turn; the report gives
//! the median goodput (what the receiver got, Gbit/s) and every run's figure.
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
use std::time::Duration;

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
    /// Why no data moved, when none did.
    failed: Option<String>,
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
    print(&o, &duts, &runs);
    let metrics: Vec<Metric> = summary(&duts, &o, &runs)
        .into_iter()
        .map(|(dut, off, n, med, all)| Metric {
            dut: dut.name().into(),
            test: format!("tcp-goodput-{}-{n}", off.name()),
            value: med,
            unit: "Gbit/s".into(),
            note: format!("runs {}", list(&all)),
        })
        .collect();
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
    let _topology = Topology::build(dut, &o.qswitch, &o.work, o.placement)?;
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
            let (gbps, retransmits, failed) = match iperf3(o.secs, streams) {
                Ok((g, r)) => (g, r, None),
                Err(e) => (0.0, 0, Some(e)),
            };
            if crate::debug() {
                progress::clear();
                eprintln!(
                    "{} {} P{streams}: {gbps:.2} Gbit/s, {retransmits} retransmits {failed:?}",
                    dut.name(),
                    offloads.name()
                );
            }
            runs.push(Run {
                dut,
                offloads,
                streams,
                gbps,
                retransmits,
                failed,
            });
            bar.advance();
        }
    }
    crate::topo::check_filtering(dut)?;
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

/// One iperf3 test: (receiver goodput in Gbit/s, sender retransmits).
fn iperf3(secs: u32, streams: u32) -> Result<(f64, u64), String> {
    crate::interrupt::check()?;
    let addr = SERVER_IP.to_string();
    let server = Command::new("ip")
        .args([
            "netns", "exec", SERVER_NS, "iperf3", "-s", "-1", "-B", &addr,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("iperf3 server: {e}"))?;
    let _server = Server(server);
    let (secs_s, streams_s) = (secs.to_string(), streams.to_string());
    let limit = (secs + 20).to_string();
    // The server needs a moment to listen: a refused connection is tried again. A connection
    // that times out (3 s) is a DUT that delivers no segment intact.
    let mut last = String::new();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let out = Command::new("timeout")
            .args([&limit, "ip", "netns", "exec", CLIENT_NS, "iperf3", "-c"])
            .args([&addr, "-t", &secs_s, "-P", &streams_s, "-J"])
            .args(["--connect-timeout", "3000"])
            .output()
            .map_err(|e| format!("iperf3 client: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // iperf3 -J may exit 0 after a failed connection: its JSON tells.
        if let Some(result) = parse_iperf3(&text).filter(|_| out.status.success()) {
            return Ok(result);
        }
        let error = iperf3_error(&text);
        if !error.contains("Connection refused") {
            return Err(error);
        }
        last = error;
    }
    Err(last)
}

/// The `error` of iperf3's JSON (`-J`), or its whole output when there is none.
fn iperf3_error(json: &str) -> String {
    json.split("\"error\":")
        .nth(1)
        .and_then(|s| s.split('"').nth(1))
        .map_or_else(|| json.trim().to_owned(), str::to_owned)
}

/// (receiver Gbit/s, sender retransmits) from iperf3's JSON (`-J`): the `end` section's
/// `sum_received.bits_per_second` and `sum_sent.retransmits`.
fn parse_iperf3(json: &str) -> Option<(f64, u64)> {
    let end = &json[json.find("\"end\"")?..];
    let number_after = |section: &str, key: &str| -> Option<f64> {
        let s = &end[end.find(section)?..];
        let s = &s[s.find(key)? + key.len()..];
        let s = s.trim_start_matches([':', ' ', '\t', '\n']);
        let n: String = s
            .chars()
            .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
            .collect();
        n.parse().ok()
    };
    let bps = number_after("\"sum_received\"", "\"bits_per_second\"")?;
    let retransmits = number_after("\"sum_sent\"", "\"retransmits\"").unwrap_or(0.0);
    Some((bps / 1e9, retransmits as u64))
}

fn list(v: &[f64]) -> String {
    v.iter()
        .map(|g| format!("{g:.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Per (DUT, offloads, streams): the median goodput and every run's.
fn summary(duts: &[Dut], o: &Options, runs: &[Run]) -> Vec<(Dut, Offloads, u32, f64, Vec<f64>)> {
    let mut out = Vec::new();
    for &dut in duts {
        for off in [Offloads::Default, Offloads::TxOff] {
            for &n in &o.streams {
                let all: Vec<f64> = runs
                    .iter()
                    .filter(|r| r.dut == dut && r.offloads == off && r.streams == n)
                    .map(|r| r.gbps)
                    .collect();
                if !all.is_empty() {
                    out.push((dut, off, n, median(all.clone()), all));
                }
            }
        }
    }
    out
}

fn print(o: &Options, duts: &[Dut], runs: &[Run]) {
    println!(
        "\nTCP goodput, iperf3 -t {} between two VMs through the DUT (median of {} run(s), Gbit/s)\n",
        o.secs, o.repeat
    );
    println!("| DUT | guest offloads | streams | goodput | runs | retransmits | qswitch ÷ DUT |");
    println!("|---|---|---|---|---|---|---|");
    let rows = summary(duts, o, runs);
    let mut failures = Vec::new();
    for (dut, off, n, med, all) in &rows {
        let these = || {
            runs.iter()
                .filter(|r| r.dut == *dut && r.offloads == *off && r.streams == *n)
        };
        let retrans: u64 = these().map(|r| r.retransmits).sum();
        if let Some(why) = these().find_map(|r| r.failed.as_deref()) {
            failures.push(format!(
                "{} {} {n} stream(s): {} of {} run(s) moved no data ({why})",
                dut.name(),
                off.name(),
                these().filter(|r| r.failed.is_some()).count(),
                all.len()
            ));
        }
        let ours = rows
            .iter()
            .find(|(d, f, k, _, _)| *d == Dut::Qswitch && f == off && k == n)
            .map(|r| r.3);
        let ratio = match ours {
            Some(q) if *med > 0.0 => format!("{:.2}", q / med),
            _ => "-".into(),
        };
        println!(
            "| {} | {} | {n} | {med:.2} | {} | {retrans} | {ratio} |",
            dut.name(),
            off.name(),
            list(all)
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
    fn iperf3_json_gives_the_receivers_rate_and_the_senders_retransmits() {
        let json = r#"{"start": {"bits_per_second": 1},
            "intervals": [{"sum": {"bits_per_second": 5e9}}],
            "end": {"streams": [{"receiver": {"bits_per_second": 1.1e9}}],
                "sum_sent": {"bytes": 10, "bits_per_second": 2.5e9, "retransmits": 7},
                "sum_received": {"bytes": 9, "bits_per_second": 2400000000.5}}}"#;
        let (gbps, retransmits) = parse_iperf3(json).unwrap();
        assert!((gbps - 2.4).abs() < 1e-6, "{gbps}");
        assert_eq!(retransmits, 7);
        let failed =
            "{\"start\": {}, \"error\": \"unable to connect to server: Connection timed out\"}";
        assert_eq!(parse_iperf3(failed), None);
        assert_eq!(
            iperf3_error(failed),
            "unable to connect to server: Connection timed out"
        );
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
