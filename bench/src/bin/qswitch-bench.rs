//! `qswitch-bench`: builds a veth topology per device under test and measures it the way RFC 2544
//! measures LAN switches, with qswitch, the Linux bridge and no device side by side in one run.
//!
//! ```sh
//! cargo build --release --workspace && sudo ./target/release/qswitch-bench run   # full run
//! sudo ./target/release/qswitch-bench run --quick                             # about 1 minute
//! ```
//!
//! Tests per DUT and frame size: the generator flat out (offered and delivered rate); RFC 2544
//! throughput (binary search for the highest rate with no loss) and the partial-drop rate (0.5 %
//! loss allowed); back-to-back (the longest burst at full rate with no loss); latency percentiles
//! at 50 % and 90 % of the throughput (`--loads`). On the `none` topology
//! the harness also measures `trafgen -P 1` (when installed) beside its own generator.
//!
//! Traffic comes from AF_XDP agents: this binary re-executed inside the generator and sink
//! namespaces (`agent gen|sink`), driven over their stdin. The sink's counters are read by this
//! process from `/proc/<agent pid>/net/dev`: no process is forked under load.

use std::io::{BufRead, Write};

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bench::agent::Agent;
use bench::progress::{self, Progress};
use bench::report::{aggregate, json, svg_bars, svg_cdf, Point};
use bench::scenario;
use bench::search;
use bench::topo::{self, Dut, Placement, Topology, SINK_MAC};
use bench::traffic::{cdf, cdf_quantiles, frame, percentile, Generator, Sink};
use dataplane::sys::bpf::Stamp;
use dataplane::Mac;

/// Measures qswitch against the Linux bridge, no device and Open vSwitch on the same veth
/// topology. `--out` and `--qswitch` may also come from QSB_OUT and QSB_QSWITCH.
#[derive(Debug, Parser)]
#[command(name = "qswitch-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// RFC 2544: throughput, partial drop, back-to-back and latency per DUT and frame size
    Run(RunArgs),
    /// The time from an API plug to the first frame through the new port
    PlugLatency(scenario::PlugArgs),
    /// Many VMs booted at once through the API, until every port forwards
    BootStorm(scenario::StormArgs),
    /// RFC 2889 on a K-port mesh
    Rfc2889(bench::rfc2889::Args),
    /// TCP goodput between two VMs (iperf3), default offloads and tx checksum offload off
    Goodput(bench::goodput::Args),
    /// Hosts' agents and two API servers on one PostgreSQL: convergence and plug latency
    ScaleOut(bench::scaleout::Args),
    /// Print a shell completion script
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Internal: a traffic agent inside a namespace, driven over stdin
    #[command(hide = true)]
    Agent {
        /// gen or sink
        #[arg(value_parser = ["gen", "sink"])]
        role: String,
        /// Its interface
        device: String,
    },
    /// Internal: creates `qswitch-sg`'s filtered ports through the API inside its namespace
    #[command(hide = true)]
    DutPorts {
        /// The API's address
        api: String,
        /// Only check, from the daemon's metrics, that the ports' rules saw the traffic
        #[arg(long)]
        check: bool,
        /// Only check, from the daemon's metrics, that frames crossed inside XDP
        #[arg(long, conflicts_with = "check")]
        check_shortcut: bool,
    },
    /// Internal: `xdp-redirect`'s cross-connect between two interfaces, held until stopped
    #[command(hide = true)]
    XdpCross {
        /// The XDP mode
        #[arg(value_parser = ["generic", "native"])]
        mode: String,
        /// One interface
        a: String,
        /// The other
        b: String,
    },
}

fn main() {
    let cli = Cli::parse();
    let measuring = !matches!(
        cli.command,
        Cmd::Agent { .. } | Cmd::Completions { .. } | Cmd::DutPorts { .. } | Cmd::XdpCross { .. }
    );
    // Every command builds namespaces with fixed names (one run at a time), but the internal
    // ones that run inside them (agents, `dut-ports`, `xdp-cross`) and `completions`.
    if measuring {
        if let Err(e) = bench::agent::exclusive() {
            eprintln!("qswitch-bench: cannot take the harness lock: {e}");
            std::process::exit(1);
        }
    }
    if measuring {
        if let Err(e) = bench::interrupt::install() {
            eprintln!("qswitch-bench: cannot install the signal handlers: {e}");
            bench::agent::release();
            std::process::exit(1);
        }
    }
    let r = match cli.command {
        Cmd::Run(a) => run(a),
        Cmd::PlugLatency(a) => scenario::plug_latency(a),
        Cmd::BootStorm(a) => scenario::boot_storm(a),
        Cmd::Rfc2889(a) => bench::rfc2889::run(a),
        Cmd::Goodput(a) => bench::goodput::run(a),
        Cmd::ScaleOut(a) => bench::scaleout::run(a),
        Cmd::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "qswitch-bench", &mut std::io::stdout());
            Ok(())
        }
        Cmd::Agent { role, device } => agent(&role, &device),
        Cmd::DutPorts {
            api,
            check_shortcut: true,
            ..
        } => topo::shortcut_evidence(&api).map(|e| println!("{e}")),
        Cmd::DutPorts {
            api, check: true, ..
        } => topo::filtering_evidence(&api).map(|e| println!("{e}")),
        Cmd::DutPorts { api, .. } => topo::dut_ports(&api),
        Cmd::XdpCross { mode, a, b } => {
            topo::xdp_cross(mode == "native", &a, &b).map(|n| match n {})
        }
    };
    if bench::interrupt::requested() {
        // Whatever the run returned, the watcher is tearing down and exits with 130.
        bench::interrupt::wait_for_exit();
    }
    // Released (its file removed) before the process ends; an interrupt's teardown does the same.
    bench::agent::release();
    if let Err(e) = r {
        progress::clear();
        eprintln!("qswitch-bench: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// Agents (inside a namespace)

fn agent(role: &str, dev: &str) -> Result<(), String> {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    let mut gen = if role == "gen" {
        Some(Generator::open(dev).map_err(|e| format!("generator on {dev}: {e}"))?)
    } else {
        None
    };
    let mut sink: Option<Sink> = None;
    let mut warned_unstamped = false;
    writeln!(out, "ready").map_err(|e| e.to_string())?;
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let w: Vec<&str> = line.split_whitespace().collect();
        let reply = match (w.as_slice(), gen.as_mut()) {
            (["send", flows, size, pps, secs], Some(g)) => {
                let p = |s: &str| s.parse::<f64>().unwrap_or(0.0);
                let sent = g
                    .send(SINK_MAC, p(flows) as u32, p(size) as usize, p(pps), p(secs))
                    .map_err(|e| e.to_string())?;
                format!("sent {} {}", sent.frames, sent.elapsed.as_nanos())
            }
            (["sendudp", flows, size, pps, secs, max], Some(g)) => {
                let p = |s: &str| s.parse::<f64>().unwrap_or(0.0);
                let max = max.parse().unwrap_or(u64::MAX);
                let sent = g
                    .send_udp(p(flows) as u32, p(size) as usize, p(pps), p(secs), max)
                    .map_err(|e| e.to_string())?;
                format!("sent {} {}", sent.frames, sent.elapsed.as_nanos())
            }
            (["sendx", dst, src, flows, size, pps, secs, max], Some(g)) => {
                let p = |s: &str| s.parse::<f64>().unwrap_or(0.0);
                let n = (p(flows) as u32).max(1);
                let templates = (0..n)
                    .map(|i| Ok(frame(addr(dst, i)?, addr(src, i)?, p(size) as usize)))
                    .collect::<Result<Vec<_>, String>>()?;
                let sent = g
                    .send_frames(&templates, p(pps), p(secs), max.parse().unwrap_or(u64::MAX))
                    .map_err(|e| e.to_string())?;
                format!("sent {} {}", sent.frames, sent.elapsed.as_nanos())
            }
            (["raw", hex, count], Some(g)) => {
                let bytes = (0..hex.len() / 2)
                    .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
                    .collect::<Result<Vec<u8>, _>>()
                    .map_err(|_| format!("bad frame {hex:?}"))?;
                let mut sent = 0;
                for _ in 0..count.parse::<u32>().unwrap_or(1) {
                    g.send_one(&bytes).map_err(|e| e.to_string())?;
                    sent += 1;
                }
                format!("sent {sent} 0")
            }
            (["announce"], _) => {
                let mut g = Generator::open(dev).map_err(|e| e.to_string())?;
                g.send_one(&frame(Mac::BROADCAST, SINK_MAC, 64))
                    .map_err(|e| e.to_string())?;
                "ok".into()
            }
            (["open"], None) => {
                sink = Some(Sink::open(dev).map_err(|e| format!("sink on {dev}: {e}"))?);
                "ok".into()
            }
            (["first", secs], None) => {
                let s = sink.as_mut().ok_or("first before open")?;
                let t = s.first(Duration::from_secs_f64(secs.parse().unwrap_or(1.0)));
                format!("first {}", t.unwrap_or(0))
            }
            (["recv", min, max, quiet], None) => {
                let s = sink.as_mut().ok_or("recv before open")?;
                let secs = |v: &str| Duration::from_secs_f64(v.parse().unwrap_or(1.0));
                let mut seen = s.receive(secs(min), secs(max), secs(quiet));
                if seen.stamped < seen.frames && s.stamp() != Stamp::Off && !warned_unstamped {
                    warned_unstamped = true;
                    progress::clear();
                    eprintln!(
                        "warning: the sink's program stamped {} of {} frames with their arrival \
                         time; the others' latency includes the sink's wait to read them",
                        seen.stamped, seen.frames
                    );
                }
                seen.latencies.sort_unstable();
                let l = &seen.latencies;
                let c: Vec<String> = cdf(l).iter().map(u64::to_string).collect();
                format!(
                    "seen {} {} {} {} {} cdf={}",
                    seen.frames,
                    percentile(l, 0.5),
                    percentile(l, 0.9),
                    percentile(l, 0.99),
                    l.last().copied().unwrap_or(0),
                    c.join(",")
                )
            }
            _ => format!("error unknown command {line:?}"),
        };
        writeln!(out, "{reply}").map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A frame address in an agent command: `bcast`, `mac=<MAC>`, `flow=<base>` (flow MAC `base + i`)
/// or `list=<MAC>,<MAC>,...` (the `i`-th, round robin).
fn addr(spec: &str, i: u32) -> Result<Mac, String> {
    let bad = || format!("bad address {spec:?}");
    if spec == "bcast" {
        return Ok(Mac::BROADCAST);
    }
    let (kind, v) = spec.split_once('=').ok_or_else(bad)?;
    match kind {
        "mac" => Mac::parse(v).ok_or_else(bad),
        "flow" => Ok(bench::traffic::flow_mac(
            v.parse::<u32>().map_err(|_| bad())? + i,
        )),
        "list" => {
            let l: Vec<&str> = v.split(',').collect();
            Mac::parse(l[i as usize % l.len()]).ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

// ---------------------------------------------------------------------------------------------
// The run

struct Opts {
    /// Runs of every measurement (medians reported).
    repeat: usize,
    /// Longest back-to-back burst tried.
    burst_max: u64,
    duts: Vec<Dut>,
    sizes: Vec<usize>,
    /// The light and the heavy load latency is measured at, % of a no-loss rate.
    loads: [u32; 2],
    trial: f64,
    steps: u32,
    flows: u32,
    out: PathBuf,
    qswitch: String,
}

/// `qswitch-bench run`.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// 64 and 1518 B only, short trials, small searches: about a minute (explicit options win)
    #[arg(long)]
    quick: bool,
    /// Devices under test
    #[arg(long, value_delimiter = ',', value_parser = bench::dut, default_value = "none,bridge,qswitch,qswitch-sg,ovs,ovs-afxdp")]
    duts: Vec<Dut>,
    /// Frame sizes, bytes (60 to 1518) [default: 64,128,256,512,1024,1518; 64,1518 with --quick]
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u16).range(60..=1518))]
    sizes: Option<Vec<u16>>,
    /// Seconds per trial [default: 2; 0.4 with --quick]
    #[arg(long, value_parser = bench::trial_secs)]
    trial: Option<f64>,
    /// Steps of each binary search [default: 7; 3 with --quick]
    #[arg(long)]
    steps: Option<u32>,
    /// Rounds over every DUT; medians are reported
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Flows the generator cycles through: source MACs, or UDP source ports on qswitch-sg
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=16384))]
    flows: u32,
    /// The two loads latency is measured at, light then heavy, in % of each DUT's no-loss rate
    /// (and of the reference DUT's)
    #[arg(long, value_name = "LIGHT,HEAVY", default_value = "50,90", value_parser = bench::loads)]
    loads: [u32; 2],
    #[command(flatten)]
    common: bench::Common,
}

fn options(a: RunArgs) -> Opts {
    let q = a.quick;
    let sizes = match a.sizes {
        Some(s) => s.into_iter().map(usize::from).collect(),
        None if q => vec![64, 1518],
        None => vec![64, 128, 256, 512, 1024, 1518],
    };
    Opts {
        repeat: a.repeat as usize,
        burst_max: if q { 4096 } else { 1 << 17 },
        duts: a.duts,
        sizes,
        loads: a.loads,
        trial: a.trial.unwrap_or(if q { 0.4 } else { 2.0 }),
        steps: a.steps.unwrap_or(if q { 3 } else { 7 }),
        flows: a.flows,
        out: a.common.out,
        qswitch: a.common.qswitch,
    }
}

/// Latency percentiles (p50, p90, p99, max) in µs and the CDF as (quantile, µs) pairs.
type Latency = ([f64; 4], Vec<(f64, f64)>);

struct Rig {
    gen: Agent,
    sink: Agent,
    /// The DUT filters by security groups: IPv4/UDP from the ports' own addresses.
    udp: bool,
}

impl Rig {
    /// Readies the sink for the trials: its socket stays open on the sink's port through every
    /// trial of the DUT (the sink's receive path costs the CPU it runs on, on this machine one
    /// the DUT shares, so a throughput trial without it would find a rate a latency trial, which
    /// needs it, cannot hold). The sink's MAC is learned first, from a broadcast: a filtering
    /// DUT knows its ports' MACs already (and would refuse a frame that is not IP).
    fn open(&mut self) -> Result<(), String> {
        if !self.udp {
            self.sink.ask("announce")?;
        }
        self.sink.ask("open").map(drop)
    }

    /// The generator's command to send `size`-byte frames of `o.flows` flows at `pps` for
    /// `secs` or until `max` frames have gone.
    fn send_cmd(&self, o: &Opts, size: usize, pps: f64, secs: f64, max: Option<u64>) -> String {
        let flows = o.flows.max(1);
        match (self.udp, max) {
            (true, max) => format!(
                "sendudp {flows} {size} {pps} {secs} {}",
                max.unwrap_or(u64::MAX)
            ),
            (false, None) => format!("send {flows} {size} {pps} {secs}"),
            (false, Some(n)) => {
                format!("sendx mac={SINK_MAC} flow=0 {flows} {size} {pps} {secs} {n}")
            }
        }
    }

    /// Offers `pps` (0 = flat out) for `secs`, or until `max` frames have gone, and counts what
    /// reached the sink's port. Every trial runs alike, throughput, back-to-back and latency: the
    /// sink's socket open (see [`Rig::open`]) and reading, so that a rate the search finds is a
    /// rate the latency trials hold.
    fn measure(
        &mut self,
        o: &Opts,
        size: usize,
        pps: f64,
        secs: f64,
        max: Option<u64>,
    ) -> Result<Trial, String> {
        let before = topo::counters(self.sink.pid(), "sink-v").ok_or("no sink counters")?;
        // A burst (`max`) lasts as long as it takes, a trial `secs`. The sink reads until the
        // traffic has drained (50 ms without a marked frame, past `secs` for a trial), at most
        // `secs` + 0.3 s from its start.
        let min = if max.is_some() { 0.0 } else { secs };
        self.sink
            .write(&format!("recv {min} {} 0.05", secs + 0.3))?;
        let r = self.gen.ask(&self.send_cmd(o, size, pps, secs, max))?;
        // Frames still queued in the DUT reach the port within this, sink reading or not.
        std::thread::sleep(Duration::from_millis(50));
        let seen = self.sink.read()?;
        let after = topo::counters(self.sink.pid(), "sink-v").ok_or("no sink counters")?;
        let t = Trial::new(&r, after.0.saturating_sub(before.0) as f64, &seen);
        if bench::debug() {
            progress::clear();
            eprintln!(
                "trial {size} B at {pps:.0} pps: sent {} in {:.3} s, {} reached the sink's port, \
                 the sink read {}",
                t.sent, t.secs, t.delivered, t.read
            );
        }
        Ok(t)
    }

    /// One trial: offers `pps` (0 = flat out) for `secs`; returns (offered pps, delivered pps, loss).
    fn trial(
        &mut self,
        o: &Opts,
        size: usize,
        pps: f64,
        secs: f64,
    ) -> Result<(f64, f64, f64), String> {
        let t = self.measure(o, size, pps, secs, None)?;
        Ok((t.sent / t.secs, t.delivered.min(t.sent) / t.secs, t.loss()))
    }

    /// RFC 2544 binary search for the highest rate with loss at most `tolerance`.
    fn search(&mut self, o: &Opts, size: usize, max: f64, tolerance: f64) -> Result<f64, String> {
        let (offered, _, loss) = self.trial(o, size, max, o.trial)?;
        if loss <= tolerance {
            return Ok(offered);
        }
        search::highest_rate(max, o.steps, |rate| {
            let (offered, _, loss) = self.trial(o, size, rate, o.trial)?;
            Ok((loss <= tolerance).then_some(offered))
        })
    }

    /// Does a burst of `n` frames sent back to back (flat out) arrive whole?
    fn burst_passes(&mut self, o: &Opts, size: usize, n: u64) -> Result<bool, String> {
        let t = self.measure(o, size, 0.0, o.trial.max(1.0), Some(n))?;
        Ok(t.sent as u64 == n && t.delivered as u64 >= n)
    }

    /// RFC 2544 back-to-back: the longest burst at the maximum rate that crosses with no loss
    /// (doubling up to `max`, then a binary search). `(frames, true)` when even `max` passed.
    fn back_to_back(&mut self, o: &Opts, size: usize, max: u64) -> Result<(u64, bool), String> {
        search::largest_count(64, max, o.steps, |n| self.burst_passes(o, size, n))
    }

    /// Latency at `pps`, and the share of the frames sent that did not reach the sink's port.
    fn latency(&mut self, o: &Opts, size: usize, pps: f64) -> Result<(Latency, f64), String> {
        let t = self.measure(o, size, pps, o.trial, None)?;
        if t.read < 0.999 * t.delivered {
            // The frames it missed are the ones that waited longest in its ring.
            progress::clear();
            eprintln!(
                "warning: latency at {size} B, {pps:.0} pps: the sink read {:.1} % of the frames \
                 that reached its port; the percentiles leave the rest out",
                100.0 * t.read / t.delivered
            );
        }
        let loss = t.loss();
        Ok((t.latency, loss))
    }
}

/// What one trial saw.
struct Trial {
    /// Frames the generator sent, and in how long (seconds).
    sent: f64,
    secs: f64,
    /// Frames that reached the sink's port (its kernel counter: what the DUT delivered, whether
    /// or not the sink then kept up).
    delivered: f64,
    /// Frames the sink read, and their latency.
    read: f64,
    latency: Latency,
}

impl Trial {
    /// From the generator's answer (`sent ns`), the sink port's received-frame count and the
    /// sink's answer (`seen FRAMES p50 p90 p99 max cdf=...`, nanoseconds).
    fn new(sent: &[f64], delivered: f64, seen: &str) -> Trial {
        let v: Vec<f64> = seen
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let us = |i: usize| v.get(i).copied().unwrap_or(0.0) / 1e3;
        let curve: Vec<(f64, f64)> = seen
            .split_once("cdf=")
            .map(|(_, c)| {
                cdf_quantiles()
                    .into_iter()
                    .zip(c.split(',').filter_map(|x| x.parse::<f64>().ok()))
                    .map(|(q, ns)| (q, ns / 1e3))
                    .collect()
            })
            .unwrap_or_default();
        Trial {
            sent: sent.first().copied().unwrap_or(0.0),
            // Nanoseconds; a second when the answer has none.
            secs: sent.get(1).copied().unwrap_or(1e9) / 1e9,
            delivered,
            read: v.first().copied().unwrap_or(0.0),
            latency: ([us(1), us(2), us(3), us(4)], curve),
        }
    }

    /// The share of the frames sent that did not reach the sink's port.
    fn loss(&self) -> f64 {
        if self.sent > 0.0 {
            (1.0 - self.delivered / self.sent).max(0.0)
        } else {
            0.0
        }
    }
}

/// trafgen's rate to the sink (reading, as in the harness's own trials) over the `none` DUT.
fn trafgen_rate(o: &Opts, sink: &mut Agent) -> Option<f64> {
    let sink_pid = sink.pid();
    let cfg = o.out.join("trafgen.cfg");
    let dst: Vec<String> = SINK_MAC.0.iter().map(|b| format!("0x{b:02x}")).collect();
    let text = format!(
        "{{ {}, 0x02, 0xbe, 0, 0, 0, 1, 0x88, 0xb5, fill(0x00, 46) }}\n",
        dst.join(", ")
    );
    std::fs::write(&cfg, text).ok()?;
    let before = topo::counters(sink_pid, "sink-v")?;
    // trafgen's frames carry no marker: the sink reads for the whole window.
    let window = o.trial + 0.5;
    sink.write(&format!("recv {window} {window} 0.05")).ok()?;
    let t0 = Instant::now();
    let spawned = Command::new("ip")
        .args([
            "netns", "exec", "qsbgen", "taskset", "-c", "0", "trafgen", "-o", "gen-v", "-c",
        ])
        .arg(&cfg)
        .args(["-P", "1", "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
    // The sink's answer is read whatever happens, so that the next question gets its own.
    let read = sink.read();
    let mut child = spawned.ok()?;
    let after = topo::counters(sink_pid, "sink-v");
    let dt = t0.elapsed().as_secs_f64();
    // trafgen forks a worker: signal the whole group, and kill it if it lingers.
    let group = format!("-{}", child.id());
    let quiet = |sig: &str| {
        // The group may be gone already: "No such process" is not news.
        let _ = Command::new("kill")
            .args([sig, "--", &group])
            .stderr(Stdio::null())
            .status();
    };
    quiet("-INT");
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end && !matches!(child.try_wait(), Ok(Some(_))) {
        std::thread::sleep(Duration::from_millis(20));
    }
    quiet("-KILL");
    let _ = child.wait();
    read.ok()?;
    let after = after?;
    // The first half second is start-up; rate over the whole window is a lower bound. Nothing
    // at all: trafgen is not there (or could not send).
    Some((after.0 - before.0) as f64 / dt).filter(|r| *r > 0.0)
}

use std::os::unix::process::CommandExt as _;

/// How long the machine's pauses are probed before each DUT's trials.
const STALL_PROBE: Duration = Duration::from_secs(2);
/// How long the previous DUT's teardown is left to finish in the kernel before a probe.
const SETTLE: Duration = Duration::from_secs(1);

/// The machine's pauses measured before one DUT (of one repetition) was built.
#[derive(serde::Serialize)]
struct StallProbe {
    before: String,
    cpus: Vec<bench::stalls::CpuStalls>,
}

fn run(args: RunArgs) -> Result<(), String> {
    let o = options(args);
    std::fs::create_dir_all(&o.out).map_err(|e| e.to_string())?;
    let work = o.out.join("work");
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let mut points: Vec<Point> = Vec::new();
    let duts = Dut::available(&o.duts);
    // The sink shares the tester's CPU 0 with the generator, the same for every DUT, so that its
    // reads never take time from a DUT's own threads on CPU 1 (the bridge's work runs on CPU 0,
    // in the generator's calls, either way; the sink's arrival stamps make its wake-ups no part
    // of the latency). QSB_SINK_CPU names another CPU, or `any` lets the scheduler place it.
    let sink_cpu = match std::env::var("QSB_SINK_CPU") {
        Ok(v) if v == "any" => None,
        Ok(v) => Some(
            v.parse()
                .map_err(|_| format!("QSB_SINK_CPU={v}: a CPU number or `any`"))?,
        ),
        Err(_) => Some(0),
    };
    // The machine's own pauses are probed on every CPU the harness may use, before each DUT's
    // topology is built (a crashed run's leftovers removed first, and the previous DUT's
    // teardown given a second to finish, so that little of ours runs).
    let cpus = dataplane::sys::allowed_cpus().map_err(|e| format!("sched_getaffinity: {e}"))?;
    topo::teardown();
    let mut stalls: Vec<StallProbe> = Vec::new();
    // Per DUT and size: flat out, throughput, partial drop, back-to-back, latency.
    const PHASES: usize = 5;
    let mut bar = Progress::new(o.repeat * duts.len() * o.sizes.len() * PHASES);
    let mut trafgen = None;
    // The first device measured after `none` (the bridge, in the default order) is the reference:
    // every later one also has its latency measured at the reference's two loads' rates, so
    // that the latency table compares DUTs at the same offered rates, not only each at its own.
    let reference = duts.iter().copied().find(|&d| d != Dut::None);
    let mut reference_rates: Vec<(usize, f64)> = Vec::new();
    // Repetitions go round all DUTs in turn, so that a slow spell of the machine spreads over
    // every DUT instead of hitting one.
    for rep in 0..o.repeat {
        for &dut in &duts {
            let dut_label = if o.repeat > 1 {
                format!("{} (run {}/{})", dut.name(), rep + 1, o.repeat)
            } else {
                dut.name().to_owned()
            };
            bar.show(&format!("{dut_label}: the machine's pauses"));
            // The kernel finishes deleting the previous DUT's namespaces (or a crashed run's:
            // their veths, programs and sockets) on a work queue after `ip netns del` returns.
            std::thread::sleep(SETTLE);
            stalls.push(StallProbe {
                before: dut_label.clone(),
                cpus: bench::stalls::probe(&cpus, STALL_PROBE),
            });
            bar.show(&format!("{dut_label}: building the topology"));
            let t = match Topology::build(dut, &o.qswitch, &work, Placement::Pinned) {
                Ok(t) => t,
                Err(e) => {
                    progress::clear();
                    eprintln!("skipping {}: {e}", dut.name());
                    for _ in 0..o.sizes.len() * PHASES {
                        bar.advance();
                    }
                    continue;
                }
            };
            let gen = Agent::start("qsbgen", Some(0), "gen", "gen-v")?;
            // Real time unless QSB_SINK_RT=0 (see `Agent::start_with`).
            let sink = if std::env::var("QSB_SINK_RT").is_ok_and(|v| v == "0") {
                Agent::start("qsbsink", sink_cpu, "sink", "sink-v")?
            } else {
                Agent::start_realtime("qsbsink", sink_cpu, "sink", "sink-v")?
            };
            let mut rig = Rig {
                gen,
                sink,
                udp: dut.filters(),
            };
            rig.open()?;
            for &size in &o.sizes {
                let phase = |bar: &Progress, what: &str| {
                    bar.show(&format!("{dut_label} {size} B: {what}"));
                };
                phase(&bar, "flat out");
                let (offered, delivered, loss) = rig.trial(&o, size, 0.0, o.trial)?;
                bar.advance();
                let mut pt = |test: &str, pps: f64, loss: f64, lat: Option<Latency>, note: &str| {
                    let (latency_us, cdf) = match lat {
                        Some((l, c)) => (Some(l), c),
                        None => (None, Vec::new()),
                    };
                    points.push(Point {
                        dut: dut.name().into(),
                        size,
                        test: test.into(),
                        pps,
                        loss,
                        latency_us,
                        cdf,
                        note: note.into(),
                        runs: vec![pps],
                        worst_loss: loss,
                    })
                };
                pt("offered", offered, 0.0, None, "generator flat out");
                pt("delivered", delivered, loss, None, "generator flat out");
                phase(&bar, "throughput (no loss)");
                let thr = rig.search(&o, size, offered, 0.0)?;
                bar.advance();
                let note = if (thr - offered).abs() < 1.0 {
                    "generator-bound"
                } else {
                    ""
                };
                pt("throughput", thr, 0.0, None, note);
                phase(&bar, "partial drop (0.5 %)");
                let partial = rig.search(&o, size, offered, 0.005)?;
                bar.advance();
                pt("partial-drop-0.5%", partial, 0.005, None, "");
                phase(&bar, "back-to-back");
                let (burst, all) = rig.back_to_back(&o, size, o.burst_max)?;
                bar.advance();
                let note = if all { "largest tried" } else { "" };
                pt("back-to-back", burst as f64, 0.0, None, note);
                phase(&bar, "latency");
                for pct in o.loads {
                    let frac = f64::from(pct) / 100.0;
                    if thr > 0.0 {
                        let (lat, loss) = rig.latency(&o, size, thr * frac)?;
                        pt(&format!("latency@{pct}%"), thr * frac, loss, Some(lat), "");
                    }
                }
                if Some(dut) == reference {
                    reference_rates.retain(|&(s, _)| s != size);
                    reference_rates.push((size, thr));
                } else if dut != Dut::None {
                    let r = reference.map_or("", Dut::name);
                    let rate = reference_rates.iter().find(|&&(s, _)| s == size);
                    for pct in o.loads {
                        let Some(&(_, rate)) = rate.filter(|(_, r)| *r > 0.0) else {
                            continue;
                        };
                        let frac = f64::from(pct) / 100.0;
                        let (lat, loss) = rig.latency(&o, size, rate * frac)?;
                        let name = format!("latency@{r} {pct}%");
                        pt(&name, rate * frac, loss, Some(lat), "the reference's rate");
                    }
                }
                bar.advance();
            }
            if dut == Dut::None && trafgen.is_none() {
                trafgen = trafgen_rate(&o, &mut rig.sink);
            }
            if let Err(e) = topo::check_evidence(dut) {
                // The row did not measure what it says: dropped, the others kept.
                progress::clear();
                eprintln!("skipping {}: {e}", dut.name());
                points.retain(|p| p.dut != dut.name());
            }
            drop(rig);
            drop(t);
        }
    }
    topo::teardown();
    bar.finish();
    let points = aggregate(&points);
    print_report(&o, &duts, &points, trafgen, &stalls);
    let write = |name: &str, text: String| {
        std::fs::write(o.out.join(name), text).map_err(|e| format!("{name}: {e}"))
    };
    write("report.json", json(&points))?;
    write(
        "stalls.json",
        serde_json::to_string_pretty(&stalls).unwrap_or_default(),
    )?;
    write(
        "throughput.svg",
        svg_bars(
            &points,
            "throughput",
            "RFC 2544 throughput (no loss) by frame size",
        ),
    )?;
    let mut files = vec![
        "report.json".to_owned(),
        "stalls.json".to_owned(),
        "throughput.svg".to_owned(),
    ];
    for &size in &o.sizes {
        let name = format!("latency-cdf-{size}.svg");
        write(
            &name,
            svg_cdf(
                &points,
                size,
                &format!("One-way latency CDF, {size} B frames"),
                o.loads,
            ),
        )?;
        files.push(name);
    }
    eprintln!("wrote {} in {}", files.join(", "), o.out.display());
    Ok(())
}

fn print_report(
    o: &Opts,
    duts: &[Dut],
    points: &[Point],
    trafgen: Option<f64>,
    stalls: &[StallProbe],
) {
    let get = |dut: &str, size: usize, test: &str| {
        points
            .iter()
            .find(|p| p.dut == dut && p.size == size && p.test == test)
    };
    println!(
        "## RFC 2544 throughput (trial {} s, {} search steps, {} flows, {} run{}{})\n",
        o.trial,
        o.steps,
        o.flows,
        o.repeat,
        if o.repeat > 1 { "s" } else { "" },
        if o.repeat > 1 {
            ": medians, throughput range in brackets"
        } else {
            ""
        }
    );
    println!("| DUT | size | offered Mpps | throughput Mpps | Gbit/s | partial-drop Mpps | of none | qswitch ÷ DUT | back-to-back frames | note |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &size in &o.sizes {
        for dut in duts {
            let Some(t) = get(dut.name(), size, "throughput") else {
                continue;
            };
            let off = get(dut.name(), size, "offered").map_or(0.0, |p| p.pps);
            let pd = get(dut.name(), size, "partial-drop-0.5%").map_or(0.0, |p| p.pps);
            let ratio = |a: Option<&Point>, b: Option<&Point>| match (a, b) {
                (Some(a), Some(b)) if b.pps > 0.0 => format!("{:.2}", a.pps / b.pps),
                _ => "-".to_string(),
            };
            let of_none = ratio(Some(t), get("none", size, "throughput"));
            let qswitch_over = ratio(get("qswitch", size, "throughput"), Some(t));
            let b2b = get(dut.name(), size, "back-to-back").map_or("-".to_string(), |p| {
                let more = if p.note.is_empty() { "" } else { ">= " };
                format!("{more}{:.0}", p.pps)
            });
            let range = if t.runs.len() > 1 {
                let lo = t.runs.iter().copied().fold(f64::MAX, f64::min);
                let hi = t.runs.iter().copied().fold(0.0, f64::max);
                format!(" ({:.3}-{:.3})", lo / 1e6, hi / 1e6)
            } else {
                String::new()
            };
            println!(
                "| {} | {size} | {:.3} | {:.3}{range} | {:.2} | {:.3} | {of_none} | {qswitch_over} | {b2b} | {} |",
                dut.name(),
                off / 1e6,
                t.pps / 1e6,
                t.gbps(),
                pd / 1e6,
                t.note
            );
        }
    }
    println!("\n## Latency (µs, one way, generator to sink)\n");
    println!("| DUT | size | load | p50 | p90 | p99 | max | loss (worst run) |");
    println!("|---|---|---|---|---|---|---|---|");
    for p in points.iter().filter(|p| p.latency_us.is_some()) {
        let l = p.latency_us.unwrap_or_default();
        println!(
            "| {} | {} | {} ({:.3} Mpps) | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} % |",
            p.dut,
            p.size,
            p.test.trim_start_matches("latency@"),
            p.pps / 1e6,
            l[0],
            l[1],
            l[2],
            l[3],
            p.worst_loss * 100.0
        );
    }
    println!(
        "\n## The machine's own pauses ({} s before each DUT, a loop reading the clock on each \
         CPU; a frame crossing a paused CPU waits as long)\n",
        STALL_PROBE.as_secs()
    );
    for p in stalls {
        for c in &p.cpus {
            println!("- before {}: {}", p.before, bench::stalls::describe(c));
        }
    }
    if let (Some(tg), Some(ours)) = (
        trafgen,
        points
            .iter()
            .find(|p| p.dut == "none" && p.test == "offered" && p.size == o.sizes[0]),
    ) {
        println!(
            "\nGenerator check on `none`, {} B: qswitch-bench {:.3} Mpps, trafgen -P 1 {:.3} Mpps (ratio {:.2}).",
            o.sizes[0],
            ours.pps / 1e6,
            tg / 1e6,
            ours.pps / tg
        );
    } else if duts.contains(&Dut::None) {
        println!("\ntrafgen not installed (or it sent nothing): generator comparison skipped.");
    }
    for d in o.duts.iter().filter(|d| !duts.contains(d)) {
        println!(
            "\n{} skipped: {}",
            d.name(),
            d.unavailable().unwrap_or_default()
        );
    }
    if duts.contains(&Dut::Ovs) || duts.contains(&Dut::OvsAfxdp) {
        println!("\nOpen vSwitch runs its userspace datapath (datapath_type=netdev): with packet-socket ports polled by its main thread, the whole process pinned to CPU 1 (`ovs`), or with AF_XDP ports polled by its PMD thread on CPU 1, its other threads floating (`ovs-afxdp`).");
    }
    if duts.contains(&Dut::Bridge) {
        println!("\nThe bridge runs with bridge-nf-call-iptables=0 in its namespace (where br_netfilter is loaded).");
    }
}

#[cfg(test)]
mod tests {
    use super::Trial;

    #[test]
    fn a_trial_reads_the_generator_the_port_and_the_sink() {
        let sink = "seen 900 30000 50000 70000 90000 cdf=1000,2000,3000";
        let t = Trial::new(&[1000.0, 2e9], 950.0, sink);
        assert_eq!(
            (t.sent, t.secs, t.delivered, t.read),
            (1000.0, 2.0, 950.0, 900.0)
        );
        // Loss is what the DUT did not deliver to the sink's port, not what the sink missed.
        assert!((t.loss() - 0.05).abs() < 1e-9);
        assert_eq!(t.latency.0, [30.0, 50.0, 70.0, 90.0]);
        assert_eq!(t.latency.1[..3], [(0.0, 1.0), (0.01, 2.0), (0.02, 3.0)]);
        // More at the port than sent (a stray frame): no negative loss.
        assert_eq!(Trial::new(&[10.0, 1e9], 11.0, "seen 10").loss(), 0.0);
        // Nothing sent, or an answer cut short: no loss, no panic.
        let empty = Trial::new(&[], 0.0, "");
        assert_eq!((empty.loss(), empty.latency.0), (0.0, [0.0; 4]));
    }
}
