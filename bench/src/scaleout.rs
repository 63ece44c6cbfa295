//! `qswitch-bench scale-out`: the distributed deployment on one machine. A private PostgreSQL,
//! two API servers (`qswitch serve --no-dataplane`) and one `qswitch agent` per host, each host
//! a namespace whose uplink meets the others' on a bridge (the physical switch, in a namespace
//! of its own). Measures:
//!
//! - convergence: `--changes` port creates bound to hosts in turn, sent by `--clients` clients
//!   through both servers; the time until every agent reports the store's final revision
//!   applied, from the first change and from the last acknowledged one;
//! - plug to forwarding across processes: for `--plugs` ports, the time from their device
//!   appearing on their host until an API server reads them `ACTIVE` (what the host's agent
//!   reported), p50 and p99; from the `ip link add` of the veth pair, and from the moment both
//!   ends are up (the three `ip` commands take several milliseconds themselves);
//! - a Quantum plug across processes: for `--plugs` interfaces registered on their host, whose
//!   device exists (its agent prepared it ahead), the time a port's attachment `PUT` takes to
//!   answer; it answers once the host's agent reports the port forwarding.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::http::Conn;
use crate::report::Metric;
use crate::traffic::percentile;

/// `qswitch-bench scale-out`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Hosts, each with its agent
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=50))]
    hosts: u32,
    /// Port changes spread over the hosts
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    changes: u32,
    /// Concurrent API clients (spread over the two servers)
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    clients: u32,
    /// Ports whose plug-to-forwarding time is measured
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    plugs: u32,
    #[command(flatten)]
    common: crate::Common,
}

const FABRIC: &str = "qsbsofab";

fn host_ns(i: u32) -> String {
    format!("qsbso{i}")
}

use crate::topo::run as sh;

/// The processes of the run (servers, agents), stopped on drop.
#[derive(Default)]
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        while let Some(c) = self.0.pop() {
            crate::agent::stop(c);
        }
        crate::topo::teardown();
    }
}

impl Procs {
    fn spawn(&mut self, cmd: &mut Command, log: &std::path::Path) -> Result<(), String> {
        let f = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().map_err(|e| e.to_string())?)
            .stderr(f)
            .spawn()
            .map_err(|e| format!("{cmd:?}: {e}"))?;
        crate::interrupt::track(child.id());
        self.0.push(child);
        Ok(())
    }
}

fn free_addr() -> Result<String, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.to_string())
}

fn post(conn: &Conn, path: &str, body: &serde_json::Value) -> Result<serde_json::Value, String> {
    let r = conn
        .send("POST", path, Some(&body.to_string()), &[])
        .map_err(|e| format!("POST {path}: {e}"))?;
    if r.status / 100 != 2 {
        return Err(format!("POST {path}: {} {}", r.status, r.body));
    }
    r.json()
}

/// The lowest revision the agents report having applied (none reporting: 0), and how many report.
fn agents_revision(conn: &Conn) -> Result<(u64, usize), String> {
    let r = conn
        .send("GET", "/v2.0/agents", None, &[])
        .map_err(|e| e.to_string())?;
    let v = r.json()?;
    let revs: Vec<u64> = v["agents"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g["configurations"]["revision"].as_u64())
                .collect()
        })
        .unwrap_or_default();
    Ok((revs.iter().copied().min().unwrap_or(0), revs.len()))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn run(args: Args) -> Result<(), String> {
    crate::topo::teardown();
    let out = &args.common.out;
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let logs = out.join("scale-out");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    eprintln!(
        "scale-out: a private PostgreSQL, 2 API servers, {} agents",
        args.hosts
    );
    let pg = control::testing::PrivatePostgres::start(&[])?;
    let url = pg.create_database("scaleout", None)?;
    let mut procs = Procs::default();
    sh(&["ip", "netns", "add", FABRIC])?;
    sh(&[
        "ip", "netns", "exec", FABRIC, "ip", "link", "add", "fabric", "type", "bridge",
    ])?;
    sh(&[
        "ip", "netns", "exec", FABRIC, "ip", "link", "set", "fabric", "up",
    ])?;
    let servers = [free_addr()?, free_addr()?];
    for (i, addr) in servers.iter().enumerate() {
        procs.spawn(
            Command::new(&args.common.qswitch).args([
                "serve",
                "--no-dataplane",
                "--db",
                &url,
                "--listen",
                addr,
            ]),
            &logs.join(format!("server{i}.log")),
        )?;
    }
    for i in 0..args.hosts {
        let ns = host_ns(i);
        let (up, peer) = (format!("so{i}u"), format!("so{i}p"));
        sh(&["ip", "netns", "add", &ns])?;
        sh(&[
            "ip", "-n", FABRIC, "link", "add", &peer, "type", "veth", "peer", "name", &up, "netns",
            &ns,
        ])?;
        sh(&[
            "ip", "-n", FABRIC, "link", "set", &peer, "master", "fabric", "up",
        ])?;
        // The tag in the frame, as a wire carries it (OPERATIONS.md, "Uplinks").
        sh(&[
            "ip", "netns", "exec", FABRIC, "ethtool", "-K", &peer, "txvlan", "off",
        ])?;
        sh(&["ip", "-n", &ns, "link", "set", &up, "up"])?;
        let cfg = logs.join(format!("agent{i}.toml"));
        std::fs::write(
            &cfg,
            format!("[switch]\nworkers = 1\n\n[uplink]\ndevice = \"{up}\"\n"),
        )
        .map_err(|e| e.to_string())?;
        let cfg = cfg.to_string_lossy().into_owned();
        procs.spawn(
            Command::new("ip").args([
                "netns",
                "exec",
                &ns,
                &args.common.qswitch,
                "agent",
                "--db",
                &url,
                "--host",
                &ns,
                "--config",
                &cfg,
                // The API servers run without authentication: tap devices bind by name.
                "--tap-binding",
                "name",
            ]),
            &logs.join(format!("agent{i}.log")),
        )?;
    }
    let conns: Vec<Conn> = servers
        .iter()
        .map(|a| Conn::open(a).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let ready = Instant::now();
    while agents_revision(&conns[0]).map_or(true, |(_, n)| n < args.hosts as usize) {
        if ready.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "the agents did not all report (logs in {})",
                logs.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let net = post(
        &conns[0],
        "/v2.0/networks",
        &serde_json::json!({"network": {"name": "so"}}),
    )?;
    let net = net["network"]["id"].as_str().unwrap_or_default().to_owned();
    post(
        &conns[1],
        "/v2.0/subnets",
        &serde_json::json!({"subnet": {"network_id": net, "ip_version": 4,
            "cidr": "198.18.0.0/16"}}),
    )?;

    // Convergence.
    eprintln!(
        "{} port changes through {} clients on 2 servers...",
        args.changes, args.clients
    );
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let results: Vec<Result<Vec<Duration>, String>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..args.clients)
            .map(|c| {
                let (next, net, servers) = (&next, &net, &servers);
                let hosts = args.hosts;
                let total = args.changes as usize;
                s.spawn(move || {
                    let conn = Conn::open(&servers[c as usize % 2]).map_err(|e| e.to_string())?;
                    let mut times = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            return Ok(times);
                        }
                        let host = host_ns(i as u32 % hosts);
                        let t = Instant::now();
                        post(
                            &conn,
                            "/v2.0/ports",
                            &serde_json::json!({"port": {"network_id": net,
                                "binding:host_id": host, "port_security_enabled": false,
                                "project_id": format!("so{}", i / 400)}}),
                        )?;
                        times.push(t.elapsed());
                    }
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a client panicked".into())))
            .collect()
    });
    let last_ack = start.elapsed();
    let mut times = Vec::new();
    for r in results {
        times.extend(r?);
    }
    let final_rev: u64 = pg
        .psql("scaleout", "SELECT revision FROM revision")?
        .parse()
        .map_err(|e| format!("revision: {e}"))?;
    let converged = loop {
        let (rev, _) = agents_revision(&conns[0])?;
        if rev >= final_rev {
            break start.elapsed();
        }
        if start.elapsed() > last_ack + Duration::from_secs(60) {
            return Err(format!(
                "the agents did not reach revision {final_rev} within 60 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let mut us: Vec<u64> = times.iter().map(|d| d.as_micros() as u64).collect();
    us.sort_unstable();

    // Plug to forwarding across processes.
    eprintln!(
        "{} plugs: device appears on its host, API reads ACTIVE...",
        args.plugs
    );
    let mut plug_us = Vec::new();
    let mut up_us = Vec::new();
    for i in 0..args.plugs {
        let ns = host_ns(i % args.hosts);
        let port = post(
            &conns[(i % 2) as usize],
            "/v2.0/ports",
            &serde_json::json!({"port": {"network_id": net, "binding:host_id": ns,
                "port_security_enabled": false}}),
        )?;
        let id = port["port"]["id"].as_str().unwrap_or_default().to_owned();
        let tap = format!("tap{}", &id[..11.min(id.len())]);
        let path = format!("/v2.0/ports/{id}");
        let t = Instant::now();
        sh(&[
            "ip",
            "-n",
            &ns,
            "link",
            "add",
            &tap,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{tap}x"),
        ])?;
        sh(&["ip", "-n", &ns, "link", "set", &tap, "up"])?;
        sh(&["ip", "-n", &ns, "link", "set", &format!("{tap}x"), "up"])?;
        let up = Instant::now();
        let reader = &conns[((i + 1) % 2) as usize];
        loop {
            let r = reader
                .send("GET", &path, None, &[])
                .map_err(|e| e.to_string())?;
            if r.json()?["port"]["status"] == "ACTIVE" {
                plug_us.push(t.elapsed().as_micros() as u64);
                up_us.push(up.elapsed().as_micros() as u64);
                break;
            }
            if t.elapsed() > Duration::from_secs(10) {
                return Err(format!(
                    "port {id} never read ACTIVE (logs in {})",
                    logs.display()
                ));
            }
        }
    }
    plug_us.sort_unstable();
    up_us.sort_unstable();
    let mut quantum_us = quantum_plugs(&args, &conns, &logs)?;
    quantum_us.sort_unstable();
    let q = |v: &[u64], p: f64| percentile(v, p) as f64 / 1e3;

    println!(
        "## Scale-out: {} hosts, 2 API servers, one PostgreSQL\n",
        args.hosts
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| {} port changes acknowledged ({} clients) | {:.0} ms ({:.0} changes/s) |",
        args.changes,
        args.clients,
        ms(last_ack),
        f64::from(args.changes) / last_ack.as_secs_f64()
    );
    println!(
        "| a change, p50 / p99 | {:.1} / {:.1} ms |",
        q(&us, 0.5),
        q(&us, 0.99)
    );
    println!(
        "| every agent at the final revision ({final_rev}), from the first change | {:.0} ms |",
        ms(converged)
    );
    println!(
        "| every agent at the final revision, after the last acknowledgement | {:.1} ms |",
        ms(converged.saturating_sub(last_ack))
    );
    println!(
        "| device appears → API reads ACTIVE ({} plugs), p50 / p99 | {:.1} / {:.1} ms |",
        args.plugs,
        q(&plug_us, 0.5),
        q(&plug_us, 0.99)
    );
    println!(
        "| device up (both ends) → API reads ACTIVE, p50 / p99 | {:.1} / {:.1} ms |",
        q(&up_us, 0.5),
        q(&up_us, 0.99)
    );
    println!(
        "| Quantum plug, its device registered and present → answered, forwarding ({} plugs), p50 / p99 | {:.1} / {:.1} ms |",
        args.plugs,
        q(&quantum_us, 0.5),
        q(&quantum_us, 0.99)
    );
    let m = |test: &str, value: f64, unit: &str| Metric {
        dut: "qswitch".into(),
        test: test.into(),
        value,
        unit: unit.into(),
        note: String::new(),
    };
    let metrics = [
        m("changes-acknowledged", ms(last_ack), "ms"),
        m("change-p50", q(&us, 0.5), "ms"),
        m("change-p99", q(&us, 0.99), "ms"),
        m("converged-from-first", ms(converged), "ms"),
        m(
            "converged-after-last",
            ms(converged.saturating_sub(last_ack)),
            "ms",
        ),
        m("plug-to-active-p50", q(&plug_us, 0.5), "ms"),
        m("plug-to-active-p99", q(&plug_us, 0.99), "ms"),
        m("up-to-active-p50", q(&up_us, 0.5), "ms"),
        m("up-to-active-p99", q(&up_us, 0.99), "ms"),
        m("quantum-plug-p50", q(&quantum_us, 0.5), "ms"),
        m("quantum-plug-p99", q(&quantum_us, 0.99), "ms"),
    ];
    let path = out.join("scale-out.json");
    std::fs::write(&path, crate::report::json_metrics(&metrics))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("wrote {}", path.display());
    drop(procs);
    drop(pg);
    Ok(())
}

/// Quantum plugs as a hypervisor makes them: the interface registered with its device and host,
/// the device created and up (its agent prepares it), then the port's attachment set. Returns
/// each plug's answer time in µs; the plug answers once the host's agent reports the port
/// forwarding, and the port then reads `op-status` UP.
fn quantum_plugs(args: &Args, conns: &[Conn], logs: &std::path::Path) -> Result<Vec<u64>, String> {
    eprintln!(
        "{} Quantum plugs: device registered and present, attachment set...",
        args.plugs
    );
    let mut times = Vec::new();
    let mut net = String::new();
    for i in 0..args.plugs {
        // A tenant per 400 ports (the default port quota is 500), a network each.
        let t = format!("/v1.1/tenants/soq{}", i / 400);
        if i % 400 == 0 {
            let n = post(
                &conns[0],
                &format!("{t}/networks"),
                &serde_json::json!({"network": {"name": "soq"}}),
            )?;
            net = n["network"]["id"].as_str().unwrap_or_default().to_owned();
        }
        let ns = host_ns(i % args.hosts);
        let conn = &conns[(i % 2) as usize];
        let port = post(
            conn,
            &format!("{t}/networks/{net}/ports"),
            &serde_json::json!({"port": {"state": "ACTIVE"}}),
        )?;
        let port = port["port"]["id"].as_str().unwrap_or_default().to_owned();
        let (vif, dev) = (format!("soq-vif{i}"), format!("soq{i}"));
        let put = |path: &str, body: serde_json::Value| -> Result<(), String> {
            let r = conn
                .send("PUT", path, Some(&body.to_string()), &[])
                .map_err(|e| format!("PUT {path}: {e}"))?;
            if r.status / 100 != 2 {
                return Err(format!("PUT {path}: {} {}", r.status, r.body));
            }
            Ok(())
        };
        put(
            &format!("{t}/interfaces/{vif}"),
            serde_json::json!({"interface": {"device": dev, "host": ns}}),
        )?;
        let peer = format!("{dev}x");
        sh(&[
            "ip", "-n", &ns, "link", "add", &dev, "type", "veth", "peer", "name", &peer,
        ])?;
        sh(&["ip", "-n", &ns, "link", "set", &dev, "up"])?;
        sh(&["ip", "-n", &ns, "link", "set", &peer, "up"])?;
        // The agent prepares a registered device once it appears (its program attached, then
        // its sockets bound, 5 to 15 ms later): wait for that, as a plug comes well after the
        // hypervisor made the device.
        let seen = Instant::now();
        while !sh(&["ip", "-n", &ns, "link", "show", "dev", &dev])?.contains("xdp") {
            if seen.elapsed() > Duration::from_secs(10) {
                return Err(format!(
                    "{ns}'s agent did not prepare {dev} (logs in {})",
                    logs.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(200));
        let path = format!("{t}/networks/{net}/ports/{port}");
        let start = Instant::now();
        put(
            &format!("{path}/attachment"),
            serde_json::json!({"attachment": {"id": vif}}),
        )?;
        times.push(start.elapsed().as_micros() as u64);
        let r = conn
            .send("GET", &path, None, &[])
            .map_err(|e| e.to_string())?;
        let status = r.json()?["port"]["op-status"].clone();
        if status != "UP" {
            return Err(format!(
                "port {port} plugged on {ns} reads op-status {status} (logs in {})",
                logs.display()
            ));
        }
    }
    Ok(times)
}
