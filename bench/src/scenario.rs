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
use crate::http::{json_str, Conn};
use crate::traffic::{now_ns, percentile};

fn ip(args: &[&str]) -> Result<(), String> {
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
    fn new(prefix: &str, n: usize) -> Result<Lab, String> {
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
            ip(&["link", "set", &format!("{name}h"), "up"])?;
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
        let child = Command::new(qswitch)
            .args(["serve", "--listen", &self.api, "--db"])
            .arg(self.work.join("q.db"))
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{qswitch}: {e}"))?;
        crate::interrupt::track(child.id());
        self.daemon = Some(child);
        let end = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&self.api).is_err() {
            if Instant::now() > end {
                return Err("the daemon did not start".into());
            }
            std::thread::sleep(Duration::from_millis(20));
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

fn id_of(body: &str) -> Result<String, String> {
    json_str(body, "id")
        .map(str::to_owned)
        .ok_or_else(|| format!("no id in {body}"))
}

/// Quantum v1.1 calls the scenarios make, in tenant `bench`.
const TENANT: &str = "/v1.1/tenants/bench";

fn create_network(c: &mut Conn, name: &str) -> Result<String, String> {
    let body = format!(r#"{{"network": {{"name": "{name}"}}}}"#);
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
    let body = format!(r#"{{"interface": {{"device": "{device}"}}}}"#);
    call(
        c,
        "PUT",
        &format!("{TENANT}/interfaces/{interface}"),
        Some(&body),
    )
    .map(drop)
}

fn plug(c: &mut Conn, net: &str, port: &str, interface: &str) -> Result<(), String> {
    let body = format!(r#"{{"attachment": {{"id": "{interface}"}}}}"#);
    let path = format!("{TENANT}/networks/{net}/ports/{port}/attachment");
    call(c, "PUT", &path, Some(&body)).map(drop)
}

fn default_qswitch() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("qswitch")))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "qswitch".into())
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn ms(ns: f64) -> f64 {
    ns / 1e6
}

/// `qswitch-bench plug-latency`: the time from an API plug call returning to the first frame
/// delivered through the new port, over many unplug/plug cycles while a generator sends.
pub fn plug_latency(args: &[String]) -> Result<(), String> {
    let count: usize = flag(args, "--count")
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let qswitch = flag(args, "--qswitch").unwrap_or_else(default_qswitch);
    let mut lab = Lab::new("qsbp", 2)?;
    lab.start_daemon(&qswitch)?;
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
    println!("## Control-to-forwarding latency ({count} unplug/plug cycles, 100 kpps offered)\n");
    println!("| measure | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|");
    let row = |name: &str, v: &[u64]| {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} |",
            ms(percentile(v, 0.5) as f64),
            ms(percentile(v, 0.99) as f64),
            ms(v.last().copied().unwrap_or(0) as f64)
        )
    };
    row("plug call (request to response)", &calls);
    row("plug request to first frame delivered", &after_request);
    println!(
        "| plug response to first frame delivered | {:.2} | {:.2} | {:.2} |",
        ms(pi(&after_return, 0.5)),
        ms(pi(&after_return, 0.99)),
        ms(after_return.last().copied().unwrap_or(0) as f64)
    );
    println!("\n{missed} of {count} plugs saw no frame within 2 s.");
    Ok(())
}

/// `qswitch-bench boot-storm`: `--vms` VMs get a port, an interface and a plug from `--clients`
/// concurrent API clients; reports the time until every port forwards (op-status UP), the
/// requests per VM, the slowest step, and checks real frames from a sample of VMs.
pub fn boot_storm(args: &[String]) -> Result<(), String> {
    let vms: usize = flag(args, "--vms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let clients: usize = flag(args, "--clients")
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let qswitch = flag(args, "--qswitch").unwrap_or_else(default_qswitch);
    eprintln!("creating {vms} VMs...");
    let mut lab = Lab::new("qsbs", vms.max(2))?;
    lab.start_daemon(&qswitch)?;
    let mut c = Conn::open(&lab.api).map_err(|e| e.to_string())?;
    let net = create_network(&mut c, "storm")?;
    let steps: Arc<Mutex<[Vec<u64>; 3]>> =
        Arc::new(Mutex::new([Vec::new(), Vec::new(), Vec::new()]));
    let start = Instant::now();
    let names = Arc::new(lab.vms.clone());
    let handles: Vec<_> = (0..clients.max(1))
        .map(|k| {
            let (api, net, names, steps) = (
                lab.api.clone(),
                net.clone(),
                Arc::clone(&names),
                Arc::clone(&steps),
            );
            std::thread::spawn(move || -> Result<(), String> {
                let mut c = Conn::open(&api).map_err(|e| e.to_string())?;
                for (i, vm) in names.iter().enumerate().skip(k).step_by(clients.max(1)) {
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
    let api_done = start.elapsed();
    // Every port forwards when its op-status reads UP.
    let end = Instant::now() + Duration::from_secs(60);
    let all_up = loop {
        let body = call(
            &mut c,
            "GET",
            &format!("{TENANT}/networks/{net}/ports/detail"),
            None,
        )?;
        let up = body.matches("\"UP\"").count();
        if up >= vms.max(2) {
            break start.elapsed();
        }
        if Instant::now() > end {
            return Err(format!("only {up} of {vms} ports came up"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Real frames: VM 0 listens, a sample of the others each send one frame.
    let sample: Vec<String> = lab.vms.iter().skip(1).take(10).cloned().collect();
    let mut sink = Agent::start(&lab.vms[0], None, "sink", &format!("{}v", lab.vms[0]))?;
    sink.ask("open")?;
    sink.write("recv 8")?;
    let mut sent = 0.0;
    for vm in &sample {
        let mut g = Agent::start(vm, None, "gen", &format!("{vm}v"))?;
        sent += g
            .ask("send 1 64 1000 0.01")?
            .first()
            .copied()
            .unwrap_or(0.0);
    }
    let frames: f64 = sink
        .read()?
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
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
    let s = steps.lock().map_err(|_| "lock")?;
    let names = ["create port", "register interface", "plug"];
    println!("## Boot storm: {vms} VMs, {clients} concurrent API clients\n");
    println!("| step | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|");
    let mut slowest = ("", 0u64);
    for (k, v) in s.iter().enumerate() {
        let mut v = v.clone();
        v.sort_unstable();
        let p99 = percentile(&v, 0.99);
        if p99 > slowest.1 {
            slowest = (names[k], p99);
        }
        println!(
            "| {} | {:.2} | {:.2} | {:.2} |",
            names[k],
            ms(percentile(&v, 0.5) as f64),
            ms(p99 as f64),
            ms(v.last().copied().unwrap_or(0) as f64)
        );
    }
    println!(
        "\nAPI calls done after {:.2} s; every port forwarding (op-status UP) after {:.2} s; \
         3 API requests per VM; slowest step (p99): {}. Frames sent by {} sample VMs to VM 0: \
         {} of {} received.",
        api_done.as_secs_f64(),
        all_up.as_secs_f64(),
        slowest.0,
        sample.len(),
        frames,
        sent
    );
    Ok(())
}
