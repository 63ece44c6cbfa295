//! Control-plane scenarios measured on real frames: the control-to-forwarding latency (an API plug
//! returning, to the first frame delivered) and the boot storm (many VMs getting a port, an
//! interface and a plug through the API at once).
//!
//! Both run the daemon in the root namespace with the VMs' host-side veth ends beside it, the VMs
//! in their own namespaces (names start with `qsb`), and tear everything down on drop.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::agent::Agent;
use serde_json::json;

use crate::http::{id_of, Conn};
use crate::report::{json_metrics, Metric};
use crate::traffic::{now_ns, percentile, udp_frame};
use dataplane::Mac;
use std::net::Ipv4Addr;

fn ip(args: &[&str]) -> Result<(), String> {
    crate::interrupt::check()?;
    let st = Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    st.success()
        .then_some(())
        .ok_or_else(|| format!("ip {args:?} failed"))
}

/// VMs (namespace + veth pair) and the daemon; all removed on drop.
struct Lab {
    vms: Vec<String>,
    daemon: Option<Child>,
    api: String,
    work: std::path::PathBuf,
}

impl Lab {
    /// `n` VMs; the host ends of their veths are named `<vm>h`, and up when `host_up`.
    fn new(prefix: &str, n: usize, host_up: bool) -> Result<Lab, String> {
        let mut lab = Lab {
            vms: Vec::new(),
            daemon: None,
            api: String::new(),
            work: std::env::temp_dir().join(format!("{prefix}-{}", std::process::id())),
        };
        std::fs::create_dir_all(&lab.work).map_err(|e| e.to_string())?;
        for i in 0..n {
            let name = format!("{prefix}{i}");
            let _ = ip(&["netns", "del", &name]);
            let _ = ip(&["link", "del", &format!("{name}h")]);
            ip(&["netns", "add", &name])?;
            lab.vms.push(name.clone());
            ip(&[
                "link",
                "add",
                &format!("{name}h"),
                "type",
                "veth",
                "peer",
                "name",
                &format!("{name}v"),
                "netns",
                &name,
            ])?;
            if host_up {
                ip(&["link", "set", &format!("{name}h"), "up"])?;
            }
            // No IPv6 discovery chatter from the VMs.
            ip(&[
                "netns",
                "exec",
                &name,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
            ])?;
            ip(&["-n", &name, "link", "set", &format!("{name}v"), "up"])?;
        }
        Ok(lab)
    }

    fn start_daemon(&mut self, qswitch: &str) -> Result<(), String> {
        let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        self.api = l.local_addr().map_err(|e| e.to_string())?.to_string();
        drop(l);
        let log =
            std::fs::File::create(self.work.join("qswitch.log")).map_err(|e| e.to_string())?;
        // A boot storm puts every VM in one tenant: no quotas.
        let config = self.work.join("qswitch.toml");
        std::fs::write(&config, UNLIMITED).map_err(|e| e.to_string())?;
        let child = Command::new(qswitch)
            .args(["serve", "--listen", &self.api, "--config"])
            .arg(&config)
            .arg("--db")
            .arg(self.work.join("q.db"))
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{qswitch}: {e}"))?;
        crate::interrupt::track(child.id());
        self.daemon = Some(child);
        if !crate::http::wait_listening(&self.api, Duration::from_secs(10)) {
            return Err("the daemon did not start".into());
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(d) = self.daemon.take() {
            crate::agent::stop(d);
        }
        for name in &self.vms {
            let _ = ip(&["link", "del", &format!("{name}h")]);
            let _ = ip(&["netns", "del", name]);
        }
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

fn call(c: &mut Conn, m: &str, path: &str, body: Option<&str>) -> Result<String, String> {
    let r = c
        .request(m, path, body)
        .map_err(|e| format!("{m} {path}: {e}"))?;
    if r.status >= 400 {
        return Err(format!("{m} {path}: {} {}", r.status, r.body));
    }
    Ok(r.body)
}

/// The daemon's configuration for the scenarios: quotas off (`bench/api/unlimited.toml`).
const UNLIMITED: &str = include_str!("../api/unlimited.toml");

/// Gives VM `vm`'s interface the address `mac`.
fn set_vm_mac(vm: &str, mac: Mac) -> Result<(), String> {
    ip(&[
        "-n",
        vm,
        "link",
        "set",
        &format!("{vm}v"),
        "address",
        &mac.to_string(),
    ])
}

/// Quantum v1.1 calls the scenarios make, in tenant `bench`.
const TENANT: &str = "/v1.1/tenants/bench";

fn create_network(c: &mut Conn, name: &str) -> Result<String, String> {
    let body = json!({"network": {"name": name}}).to_string();
    id_of(&call(
        c,
        "POST",
        &format!("{TENANT}/networks"),
        Some(&body),
    )?)
}

fn create_port(c: &mut Conn, net: &str) -> Result<String, String> {
    let body = r#"{"port": {"state": "ACTIVE"}}"#;
    id_of(&call(
        c,
        "POST",
        &format!("{TENANT}/networks/{net}/ports"),
        Some(body),
    )?)
}

fn register(c: &mut Conn, interface: &str, device: &str) -> Result<(), String> {
    let body = json!({"interface": {"device": device}}).to_string();
    call(
        c,
        "PUT",
        &format!("{TENANT}/interfaces/{interface}"),
        Some(&body),
    )
    .map(drop)
}

fn plug(c: &mut Conn, net: &str, port: &str, interface: &str) -> Result<(), String> {
    let body = json!({"attachment": {"id": interface}}).to_string();
    let path = format!("{TENANT}/networks/{net}/ports/{port}/attachment");
    call(c, "PUT", &path, Some(&body)).map(drop)
}

fn ms(ns: f64) -> f64 {
    ns / 1e6
}

/// `qswitch-bench plug-latency`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlugArgs {
    /// Unplug/plug cycles
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    count: u32,
    #[command(flatten)]
    common: crate::Common,
}

/// Which API a boot storm goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StormApi {
    /// Quantum v1.1
    #[value(name = "v1.1")]
    V11,
    /// Neutron v2.0
    #[value(name = "v2.0")]
    V20,
    /// One after the other, each on a fresh daemon
    Both,
}

/// `qswitch-bench boot-storm`.
#[derive(Debug, Clone, clap::Args)]
pub struct StormArgs {
    /// VMs booted at once
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(2..))]
    vms: u32,
    /// Concurrent API clients
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    clients: u32,
    /// Ports per v2.0 bulk create
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
    /// The API the storm goes through
    #[arg(long, value_enum, default_value = "both")]
    api: StormApi,
    #[command(flatten)]
    common: crate::Common,
}

/// `qswitch-bench plug-latency`: the time from an API plug call returning to the first frame
/// delivered through the new port, over many unplug/plug cycles while a generator sends.
pub fn plug_latency(args: PlugArgs) -> Result<(), String> {
    let count = args.count as usize;
    let qswitch = &args.common.qswitch;
    let mut lab = Lab::new("qsbp", 2, true)?;
    lab.start_daemon(qswitch)?;
    let mut c = Conn::open(&lab.api).map_err(|e| e.to_string())?;
    let net = create_network(&mut c, "plug")?;
    let mut ports = Vec::new();
    for (i, vm) in lab.vms.clone().iter().enumerate() {
        ports.push(create_port(&mut c, &net)?);
        register(&mut c, &format!("qsbp-if{i}"), &format!("{vm}h"))?;
    }
    let attach = format!("{TENANT}/networks/{net}/ports/{}/attachment", ports[1]);
    plug(&mut c, &net, &ports[0], "qsbp-if0")?;

    let mut gen = Agent::start(&lab.vms[0], Some(0), "gen", &format!("{}v", lab.vms[0]))?;
    let mut sink = Agent::start(&lab.vms[1], None, "sink", &format!("{}v", lab.vms[1]))?;
    sink.ask("open")?;
    let secs = count as f64 * 0.2 + 2.0;
    gen.write(&format!("send 1 64 100000 {secs}"))?;
    let (mut calls, mut after_return, mut after_request) = (Vec::new(), Vec::new(), Vec::new());
    let mut missed = 0;
    for _ in 0..count {
        call(&mut c, "DELETE", &attach, None)?;
        std::thread::sleep(Duration::from_millis(30));
        sink.write("first 2")?;
        std::thread::sleep(Duration::from_millis(5));
        let t0 = now_ns();
        plug(&mut c, &net, &ports[1], "qsbp-if1")?;
        let t1 = now_ns();
        let first: u64 = sink
            .read()?
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        calls.push(t1 - t0);
        if first == 0 {
            missed += 1;
            continue;
        }
        after_request.push(first.saturating_sub(t0));
        // Signed: forwarding may start before the plug call has answered.
        after_return.push(first as i64 - t1 as i64);
    }
    let _ = gen.read();
    calls.sort_unstable();
    after_request.sort_unstable();
    after_return.sort_unstable();
    let pi = |v: &[i64], p: f64| {
        if v.is_empty() {
            0.0
        } else {
            v[((v.len() - 1) as f64 * p).round() as usize] as f64
        }
    };
    let as_i64 = |v: &[u64]| -> Vec<i64> { v.iter().map(|&x| x as i64).collect() };
    let rows = [
        (
            "plug call (request to response)",
            "plug-call",
            as_i64(&calls),
        ),
        (
            "plug request to first frame delivered",
            "plug-request-to-first-frame",
            as_i64(&after_request),
        ),
        (
            "plug response to first frame delivered",
            "plug-response-to-first-frame",
            after_return,
        ),
    ];
    println!("## Control-to-forwarding latency ({count} unplug/plug cycles, 100 kpps offered)\n");
    println!("| measure | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|");
    let mut metrics = vec![metric("plugs-without-frame", missed as f64, "plugs")];
    for (name, key, v) in &rows {
        let (p50, p99, max) = (
            ms(pi(v, 0.5)),
            ms(pi(v, 0.99)),
            ms(v.last().copied().unwrap_or(0) as f64),
        );
        println!("| {name} | {p50:.2} | {p99:.2} | {max:.2} |");
        for (q, x) in [("p50", p50), ("p99", p99), ("max", max)] {
            metrics.push(metric(&format!("{key}-{q}"), x, "ms"));
        }
    }
    println!("\n{missed} of {count} plugs saw no frame within 2 s.");
    write_json(&args.common, "plug-latency.json", &metrics)
}

fn metric(test: &str, value: f64, unit: &str) -> Metric {
    Metric {
        dut: "qswitch".into(),
        test: test.into(),
        value,
        unit: unit.into(),
        note: String::new(),
    }
}

/// Writes `metrics` as `name` into `--out` (default `target/qswitch-bench`).
fn write_json(common: &crate::Common, name: &str, metrics: &[Metric]) -> Result<(), String> {
    let dir = &common.out;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let path = dir.join(name);
    std::fs::write(&path, json_metrics(metrics)).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// A VM's address, as its port has it (v2.0) or as the harness gave it (v1.1).
#[derive(Clone, Copy)]
struct VmAddr {
    mac: Mac,
    ip: Ipv4Addr,
}

/// One API's way through the storm: the per-step durations (ns) and the requests made.
struct Storm {
    steps: Vec<(&'static str, Vec<u64>)>,
    requests: usize,
    addrs: Vec<Option<VmAddr>>,
}

/// Quantum v1.1: per VM a port, an interface registration and a plug (v1.1 has no bulk calls).
fn storm_v11(lab: &Lab, clients: usize) -> Result<Storm, String> {
    let mut c = Conn::open(&lab.api).map_err(|e| e.to_string())?;
    let net = create_network(&mut c, "storm")?;
    let n = lab.vms.len();
    // The VMs keep the addresses the harness gives them: v1.1 ports have no anti-spoofing.
    let addrs: Vec<Option<VmAddr>> = (0..n).map(|i| Some(harness_addr(i))).collect();
    for (vm, a) in lab.vms.iter().zip(&addrs) {
        if let Some(a) = a {
            set_vm_mac(vm, a.mac)?;
        }
    }
    let steps: Arc<Mutex<[Vec<u64>; 3]>> = Arc::default();
    let names = Arc::new(lab.vms.clone());
    let handles: Vec<_> = (0..clients)
        .map(|k| {
            let (api, net, names, steps) = (
                lab.api.clone(),
                net.clone(),
                Arc::clone(&names),
                Arc::clone(&steps),
            );
            std::thread::spawn(move || -> Result<(), String> {
                let mut c = Conn::open(&api).map_err(|e| e.to_string())?;
                for (i, vm) in names.iter().enumerate().skip(k).step_by(clients) {
                    let t0 = Instant::now();
                    let p = create_port(&mut c, &net)?;
                    let t1 = Instant::now();
                    register(&mut c, &format!("qsbs-if{i}"), &format!("{vm}h"))?;
                    let t2 = Instant::now();
                    plug(&mut c, &net, &p, &format!("qsbs-if{i}"))?;
                    let t3 = Instant::now();
                    if let Ok(mut s) = steps.lock() {
                        s[0].push((t1 - t0).as_nanos() as u64);
                        s[1].push((t2 - t1).as_nanos() as u64);
                        s[2].push((t3 - t2).as_nanos() as u64);
                    }
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "client panicked")??;
    }
    let [a, b, p] = std::mem::take(&mut *steps.lock().map_err(|_| "lock")?);
    let path = format!("{TENANT}/networks/{net}/ports/detail");
    wait_forwarding(&mut c, &path, "\"UP\"", n)?;
    Ok(Storm {
        steps: vec![("create port", a), ("register interface", b), ("plug", p)],
        requests: 1 + 3 * n,
        addrs,
    })
}

/// A deterministic MAC and address for VM `i` (v1.1, where the harness picks them).
fn harness_addr(i: usize) -> VmAddr {
    let b = (i as u32).to_be_bytes();
    VmAddr {
        mac: Mac([0x02, 0xbe, 0xaa, b[1], b[2], b[3]]),
        ip: Ipv4Addr::new(198, 18, b[2], b[3]),
    }
}

/// Neutron v2.0, as Nova drives it today: the ports of a batch of VMs in one bulk call, then
/// each VM's tap device appears (the hypervisor's VIF plug: the host end of its veth is renamed
/// `tap` + the port id's first 11 characters, and the VM end takes the port's MAC).
fn storm_v2(lab: &Lab, clients: usize, batch: usize) -> Result<Storm, String> {
    let mut c = Conn::open(&lab.api).map_err(|e| e.to_string())?;
    let net = id_of(&call(
        &mut c,
        "POST",
        "/v2.0/networks",
        Some(r#"{"network": {"name": "storm"}}"#),
    )?)?;
    let subnet = format!(
        r#"{{"subnet": {{"network_id": "{net}", "ip_version": 4, "cidr": "198.18.0.0/16"}}}}"#
    );
    call(&mut c, "POST", "/v2.0/subnets", Some(&subnet))?;
    let n = lab.vms.len();
    let steps: Arc<Mutex<[Vec<u64>; 2]>> = Arc::default();
    let addrs: Arc<Mutex<Vec<Option<VmAddr>>>> = Arc::new(Mutex::new(vec![None; n]));
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(2));
    let names = Arc::new(lab.vms.clone());
    // Client k creates the ports of VMs k, k + clients, ... in batches of `batch`.
    let handles: Vec<_> = (0..clients)
        .map(|k| {
            let (api, net, names, steps, addrs, calls) = (
                lab.api.clone(),
                net.clone(),
                Arc::clone(&names),
                Arc::clone(&steps),
                Arc::clone(&addrs),
                Arc::clone(&calls),
            );
            std::thread::spawn(move || -> Result<(), String> {
                let mut c = Conn::open(&api).map_err(|e| e.to_string())?;
                let mine: Vec<usize> = (k..names.len()).step_by(clients).collect();
                for chunk in mine.chunks(batch) {
                    let items: Vec<serde_json::Value> = chunk
                        .iter()
                        .map(|&i| {
                            json!({
                                "network_id": net, "name": names[i], "device_id": names[i],
                                "device_owner": "compute:bench", "binding:host_id": "qsb-host",
                            })
                        })
                        .collect();
                    let body = json!({ "ports": items }).to_string();
                    let t0 = Instant::now();
                    let r = call(&mut c, "POST", "/v2.0/ports", Some(&body))?;
                    let t1 = Instant::now();
                    calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let ids = json_all(&r, "id");
                    let macs = json_all(&r, "mac_address");
                    let ips = json_all(&r, "ip_address");
                    if ids.len() != chunk.len()
                        || macs.len() != chunk.len()
                        || ips.len() != chunk.len()
                    {
                        return Err(format!(
                            "bulk create answered {} ports for {}",
                            ids.len(),
                            chunk.len()
                        ));
                    }
                    let mut plugs = Vec::new();
                    for (j, &i) in chunk.iter().enumerate() {
                        let a = VmAddr {
                            mac: Mac::parse(macs[j]).ok_or("bad MAC")?,
                            ip: ips[j].parse().map_err(|_| "bad address")?,
                        };
                        let vm = &names[i];
                        let t = Instant::now();
                        let tap = format!("tap{}", &ids[j][..11.min(ids[j].len())]);
                        set_vm_mac(vm, a.mac)?;
                        ip(&["link", "set", &format!("{vm}h"), "name", &tap, "up"])?;
                        plugs.push(t.elapsed().as_nanos() as u64);
                        if let Ok(mut v) = addrs.lock() {
                            v[i] = Some(a);
                        }
                    }
                    if let Ok(mut s) = steps.lock() {
                        // Every VM of the batch waited for the whole bulk call.
                        s[0].extend(std::iter::repeat_n(
                            (t1 - t0).as_nanos() as u64,
                            chunk.len(),
                        ));
                        s[1].extend(plugs);
                    }
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "client panicked")??;
    }
    let [create, vif] = std::mem::take(&mut *steps.lock().map_err(|_| "lock")?);
    let path = format!("/v2.0/ports?network_id={net}&status=ACTIVE&fields=id");
    wait_forwarding(&mut c, &path, "\"id\"", n)?;
    let addrs = std::mem::take(&mut *addrs.lock().map_err(|_| "lock")?);
    Ok(Storm {
        steps: vec![
            ("bulk create ports (the VM's batch)", create),
            ("VIF plug (tap device appears)", vif),
        ],
        requests: calls.load(std::sync::atomic::Ordering::Relaxed),
        addrs,
    })
}

/// Every value of `"key": "value"` in a JSON text, in order.
fn json_all<'a>(body: &'a str, key: &str) -> Vec<&'a str> {
    let pat = format!("\"{key}\":");
    body.split(&pat)
        .skip(1)
        .filter_map(|rest| {
            let rest = rest.trim_start().strip_prefix('"')?;
            rest.split_once('"').map(|(v, _)| v)
        })
        .collect()
}

/// Polls `path` (every 50 ms, up to 120 s) until `marker` appears `n` times: every port forwards.
fn wait_forwarding(c: &mut Conn, path: &str, marker: &str, n: usize) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let up = call(c, "GET", path, None)?.matches(marker).count();
        if up >= n {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(format!("only {up} of {n} ports came up"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `qswitch-bench boot-storm`: `--vms` VMs get their ports from `--clients` concurrent API
/// clients, through Quantum v1.1 (port, interface, plug per VM) and through Neutron v2.0 (bulk
/// port creation in batches of `--batch`, then the tap device), each on a fresh daemon
/// (`--api v1.1|v2.0|both`). Reports the time until every port forwards, the requests per VM,
/// the slowest step, and checks real frames from a sample of VMs.
pub fn boot_storm(args: StormArgs) -> Result<(), String> {
    let (vms, clients, batch) = (
        args.vms as usize,
        args.clients as usize,
        args.batch as usize,
    );
    let qswitch = &args.common.qswitch;
    let apis: &[&str] = match args.api {
        StormApi::Both => &["v1.1", "v2.0"],
        StormApi::V11 => &["v1.1"],
        StormApi::V20 => &["v2.0"],
    };
    let mut metrics = Vec::new();
    for api in apis {
        eprintln!("boot storm through {api}: creating {vms} VMs...");
        let mut lab = Lab::new("qsbs", vms, *api == "v1.1")?;
        lab.start_daemon(qswitch)?;
        let start = Instant::now();
        let storm = if *api == "v1.1" {
            storm_v11(&lab, clients)?
        } else {
            storm_v2(&lab, clients, batch)?
        };
        let all_up = start.elapsed();
        let (sent, frames) = sample_frames(&mut lab, &storm.addrs)?;
        let title = if *api == "v1.1" {
            format!("Quantum v1.1, {clients} clients")
        } else {
            format!("Neutron v2.0, {clients} clients, bulk calls of up to {batch} ports")
        };
        println!("## Boot storm: {vms} VMs through {title}\n");
        println!("| step (per VM) | p50 ms | p99 ms | max ms |");
        println!("|---|---|---|---|");
        let mut slowest = ("", 0u64);
        let m = |test: &str, value: f64, unit: &str| metric(&format!("{api}-{test}"), value, unit);
        for (name, v) in &storm.steps {
            let mut v = v.clone();
            v.sort_unstable();
            let p99 = percentile(&v, 0.99);
            if p99 > slowest.1 {
                slowest = (name, p99);
            }
            let (p50, max) = (percentile(&v, 0.5), v.last().copied().unwrap_or(0));
            println!(
                "| {name} | {:.2} | {:.2} | {:.2} |",
                ms(p50 as f64),
                ms(p99 as f64),
                ms(max as f64)
            );
            let mut step = metric(&format!("{api}-step"), ms(p50 as f64), "ms p50");
            step.note = (*name).to_owned();
            metrics.push(step);
            let mut step = metric(&format!("{api}-step"), ms(p99 as f64), "ms p99");
            step.note = (*name).to_owned();
            metrics.push(step);
        }
        metrics.extend([
            m("seconds-to-forwarding", all_up.as_secs_f64(), "s"),
            m("api-requests", storm.requests as f64, "requests"),
            m(
                "requests-per-vm",
                storm.requests as f64 / vms as f64,
                "requests",
            ),
            m("sample-frames-sent", sent as f64, "frames"),
            m("sample-frames-received", frames as f64, "frames"),
        ]);
        println!(
            "\nEvery port forwarding after {:.2} s ({:.0} VMs/s); {} API requests, {:.2} per VM; \
             slowest step (p99): {}. Frames sent by {} sample VMs to VM 0: {frames} of {sent} received.\n",
            all_up.as_secs_f64(),
            vms as f64 / all_up.as_secs_f64(),
            storm.requests,
            storm.requests as f64 / vms as f64,
            slowest.0,
            storm.addrs.len().saturating_sub(1).min(10),
        );
    }
    write_json(&args.common, "boot-storm.json", &metrics)
}

/// Real frames: VM 0 listens, up to 10 other VMs each send 10 IPv4/UDP frames to it from their
/// own MAC and address. Returns (sent, received).
fn sample_frames(lab: &mut Lab, addrs: &[Option<VmAddr>]) -> Result<(u64, u64), String> {
    let vm0 = addrs
        .first()
        .copied()
        .flatten()
        .ok_or("VM 0 has no address")?;
    let mut sink = Agent::start(&lab.vms[0], None, "sink", &format!("{}v", lab.vms[0]))?;
    sink.ask("open")?;
    sink.write("recv 5 5 5")?;
    let mut sent = 0u64;
    for (vm, a) in lab.vms.iter().zip(addrs).skip(1).take(10) {
        let a = a.ok_or("a VM has no address")?;
        let f = udp_frame((vm0.mac, vm0.ip), (a.mac, a.ip), 64);
        let hex: String = f.iter().map(|b| format!("{b:02x}")).collect();
        let mut g = Agent::start(vm, None, "gen", &format!("{vm}v"))?;
        sent += g
            .ask(&format!("raw {hex} 10"))?
            .first()
            .copied()
            .unwrap_or(0.0) as u64;
    }
    let frames = sink
        .read()?
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    drop(sink);
    if frames < sent {
        // Show the daemon's per-port counters (logged on shutdown) to say where frames went.
        if let Some(d) = lab.daemon.take() {
            crate::agent::stop(d);
        }
        let log = std::fs::read_to_string(lab.work.join("qswitch.log")).unwrap_or_default();
        for l in log
            .lines()
            .filter(|l| l.contains("port ") || l.contains("WARN"))
            .take(30)
        {
            eprintln!("{l}");
        }
    }
    Ok((sent, frames))
}
