//! API load driver: concurrent clients over keep-alive connections run a mix of Quantum v1.1
//! calls against a running daemon and report requests per second and latency percentiles.
//!
//! ```sh
//! qswitch serve --no-dataplane --db /tmp/apibench.db --listen 127.0.0.1:9797 &
//! cargo run --release -p bench --bin qswitch-apibench -- --addr 127.0.0.1:9797 --clients 8 --seconds 10
//! ```
//!
//! The mix (per client, in turn): list networks, show network, list ports, create port,
//! register an interface and plug it into the new port. Each client works in its own tenant so
//! that the numbers are not only lock contention on one tenant's rows.
//!
//! `--paging-ports N` measures pagination instead: it creates N ports on one network (the
//! clients in parallel), walks the list with `limit=--page-size` through the `next` links, then
//! times page 1 against the deepest page reached (page 1000 of 100 000 ports at the defaults).
//! `--paging-network TENANT/NETWORK` walks an existing network instead (filled with
//! `bench/api/populate.py`, much faster than 100 000 creates through the API); the full recipe
//! is in `docs/BENCHMARKS.md`:
//!
//! `--show-only`: the clients only show their network (read throughput), each over a lean
//! keep-alive connection (`bench::http::RawGet`) so that the driver leaves the cores to the
//! server. `--writes-only`: they
//! only set their port's state (durable writes; concurrent writers share commits).
//!
//! `--compare NAME=HOST:PORT=PID[,PID...]` (twice or more: qswitch and the real Neutron from
//! `tools/neutron-reference`) times each v2.0 call `--samples` times in a row on each server and
//! reports its p50 and the server's CPU time per request (from `/proc/PID/stat`).
//!
//! `--scale N` measures every call (both API versions) on the empty store and again after
//! growing it to N ports through v2.0 bulk creates (`--per-project`, `--samples`): see
//! `bench::apiscale`.
//!
//! ```sh
//! cargo run --release -p bench --bin qswitch-apibench -- --addr 127.0.0.1:9797 --scale 100000
//! cargo run --release -p bench --bin qswitch-apibench -- --addr 127.0.0.1:9797 --paging-ports 10000
//! cargo run --release -p bench --bin qswitch-apibench -- --addr 127.0.0.1:9797 --paging-network acme/8bec...
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bench::http::{id_of, Conn, RawGet};
use clap::builder::TypedValueParser as _;

/// Drives a running daemon's API: a mixed load, pagination, growth to N ports, or a comparison
/// of servers call by call. `--addr` may also come from QSWITCH_API.
#[derive(Debug, clap::Parser)]
#[command(name = "qswitch-apibench", version)]
struct Args {
    /// The daemon's API address
    #[arg(long, env = "QSWITCH_API", default_value = "127.0.0.1:9696")]
    addr: String,
    /// Concurrent clients, each over its own keep-alive connection
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..).map(|n| n as usize))]
    clients: usize,
    /// Seconds of the mixed load
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Measure pagination over N new ports of one network instead
    #[arg(long, default_value_t = 0)]
    paging_ports: usize,
    /// Measure pagination over an existing network (TENANT/NETWORK)
    #[arg(long)]
    paging_network: Option<String>,
    /// Page size of the pagination walk
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..).map(|n| n as usize))]
    page_size: usize,
    /// Timed fetches of the first and the deepest page
    #[arg(long, default_value_t = 300)]
    rounds: usize,
    /// Measure every call on the empty store and again at N ports (see bench::apiscale)
    #[arg(long, default_value_t = 0)]
    scale: usize,
    /// Ports per project while growing to --scale
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u32).range(1..).map(|n| n as usize))]
    per_project: usize,
    /// Samples per call (--scale, --compare)
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..).map(|n| n as usize))]
    samples: usize,
    /// The clients only show their network (read throughput)
    #[arg(long, conflicts_with = "writes_only")]
    show_only: bool,
    /// The clients only set their port's state, DOWN and ACTIVE in turn (durable write
    /// throughput: each answer waits for its commit)
    #[arg(long)]
    writes_only: bool,
    /// With --show-only: GET this path instead of each client's own network (for example
    /// `/v2.0/ports/ID` or `/`)
    #[arg(long, requires = "show_only")]
    get: Option<String>,
    /// NAME=HOST:PORT=PID[,PID...]: a server to compare, twice or more
    #[arg(long)]
    compare: Vec<String>,
}

type Samples = BTreeMap<&'static str, Vec<Duration>>;

/// What the clients of the load run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Mix,
    ShowOnly,
    WritesOnly,
}

fn client(
    addr: &str,
    id: usize,
    until: Instant,
    load: Load,
    get: Option<String>,
) -> Result<Samples, String> {
    let mut c = Conn::open(addr).map_err(|e| e.to_string())?;
    let tenant = format!("bench-{id}-{}", std::process::id());
    // Device names are unique per run too (a registry entry outlives its run), within the
    // 15 characters of an interface name.
    let run = std::process::id() % 0x1000;
    let base = format!("/v1.1/tenants/{tenant}");
    let mut samples: Samples = BTreeMap::new();
    let mut timed = |c: &mut Conn, name: &'static str, m: &str, p: &str, b: Option<&str>| {
        let t = Instant::now();
        let r = c.request(m, p, b).map_err(|e| format!("{name}: {e}"))?;
        samples.entry(name).or_default().push(t.elapsed());
        if r.status >= 400 {
            return Err(format!("{name} {m} {p}: {} {}", r.status, r.body));
        }
        Ok(r)
    };
    let r = timed(
        &mut c,
        "create network",
        "POST",
        &format!("{base}/networks"),
        Some(r#"{"network": {"name": "bench"}}"#),
    )?;
    let net = id_of(&r.body)?;
    let mut n = 0u64;
    let label = if get.is_some() { "get" } else { "show network" };
    let show = get.unwrap_or_else(|| format!("{base}/networks/{net}"));
    if load == Load::ShowOnly {
        // The lean client: what is measured is the server, not the load driver's HTTP stack.
        let mut raw = RawGet::connect(addr, &show).map_err(|e| e.to_string())?;
        let mut shows = Vec::new();
        while Instant::now() < until {
            let t = Instant::now();
            let status = raw.get().map_err(|e| format!("{label}: {e}"))?;
            shows.push(t.elapsed());
            if status != 200 {
                let body = String::from_utf8_lossy(raw.body());
                return Err(format!("{label} GET {show}: {status} {body}"));
            }
        }
        samples.insert(label, shows);
        return Ok(samples);
    }
    if load == Load::WritesOnly {
        let ports = format!("{base}/networks/{net}/ports");
        let r = timed(
            &mut c,
            "create port",
            "POST",
            &ports,
            Some(r#"{"port": {"state": "ACTIVE"}}"#),
        )?;
        let port = format!("{ports}/{}", id_of(&r.body)?);
        let mut down = true;
        while Instant::now() < until {
            let body = serde_json::json!({"port": {"state": if down { "DOWN" } else { "ACTIVE" }}});
            timed(
                &mut c,
                "set port state",
                "PUT",
                &port,
                Some(&body.to_string()),
            )?;
            down = !down;
        }
    }
    while Instant::now() < until {
        timed(
            &mut c,
            "list networks",
            "GET",
            &format!("{base}/networks"),
            None,
        )?;
        timed(&mut c, "show network", "GET", &show, None)?;
        timed(
            &mut c,
            "list ports",
            "GET",
            &format!("{base}/networks/{net}/ports"),
            None,
        )?;
        let r = timed(
            &mut c,
            "create port",
            "POST",
            &format!("{base}/networks/{net}/ports"),
            Some(r#"{"port": {"state": "ACTIVE"}}"#),
        )?;
        let port = id_of(&r.body)?;
        timed(
            &mut c,
            "register interface",
            "PUT",
            &format!("{base}/interfaces/{tenant}-vif-{n}"),
            Some(
                &serde_json::json!({"interface": {"device": format!("qs{run:03x}b{id}x{n}")}})
                    .to_string(),
            ),
        )?;
        timed(
            &mut c,
            "plug",
            "PUT",
            &format!("{base}/networks/{net}/ports/{port}/attachment"),
            Some(&format!(
                r#"{{"attachment": {{"id": "{tenant}-vif-{n}"}}}}"#
            )),
        )?;
        n += 1;
    }
    Ok(samples)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// The `next` link of a v1.1 list body, as a path.
fn next_link(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let href = v
        .as_object()?
        .iter()
        .filter(|(k, _)| k.ends_with("_links"))
        .flat_map(|(_, l)| l.as_array().into_iter().flatten())
        .find(|l| l["rel"] == "next")?["href"]
        .as_str()?;
    let path = href.strip_prefix("http://")?;
    path.find('/').map(|i| path[i..].to_owned())
}

/// Walks the ports of an existing network (`TENANT/NETWORK`) or of a new one with `n` ports
/// made through the API, and times the first page against the deepest.
fn paging(a: &Args) -> Result<(), String> {
    let mut c = Conn::open(&a.addr).map_err(|e| e.to_string())?;
    if let Some(tn) = &a.paging_network {
        let (tenant, net) = tn
            .split_once('/')
            .ok_or("--paging-network TENANT/NETWORK")?;
        let ports = format!("/v1.1/tenants/{tenant}/networks/{net}/ports");
        return walk_and_time(a, &mut c, &ports);
    }
    let tenant = format!("paging-{}", std::process::id());
    let base = format!("/v1.1/tenants/{tenant}");
    let r = c
        .request(
            "POST",
            &format!("{base}/networks"),
            Some(r#"{"network": {"name": "paging"}}"#),
        )
        .map_err(|e| e.to_string())?;
    let net = id_of(&r.body)?;
    let ports = format!("{base}/networks/{net}/ports");
    let t = Instant::now();
    let per = a.paging_ports.div_ceil(a.clients.max(1));
    let handles: Vec<_> = (0..a.clients.max(1))
        .map(|i| {
            let (addr, ports) = (a.addr.clone(), ports.clone());
            let n = per.min(a.paging_ports.saturating_sub(i * per));
            std::thread::spawn(move || -> Result<(), String> {
                let mut c = Conn::open(&addr).map_err(|e| e.to_string())?;
                for _ in 0..n {
                    let r = c.request("POST", &ports, None).map_err(|e| e.to_string())?;
                    if r.status >= 400 {
                        return Err(format!("create port: {} {}", r.status, r.body));
                    }
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "client panicked")??;
    }
    println!(
        "{} ports created in {:.1} s",
        a.paging_ports,
        t.elapsed().as_secs_f64()
    );
    walk_and_time(a, &mut c, &ports)
}

/// Walks a port list's pages (up to 1000) through the `next` links, then times page 1 and the
/// last page reached, alternately.
fn walk_and_time(a: &Args, c: &mut Conn, ports: &str) -> Result<(), String> {
    // Walk the pages to find the deepest page's URL.
    let first = format!("{ports}?limit={}", a.page_size);
    let mut url = first.clone();
    let mut page = 1usize;
    let t = Instant::now();
    loop {
        let r = c.request("GET", &url, None).map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(format!("GET {url}: {} {}", r.status, r.body));
        }
        match next_link(&r.body) {
            Some(next) if page < 1000 => {
                url = next;
                page += 1;
            }
            _ => break,
        }
    }
    let walk = t.elapsed().as_secs_f64();
    println!(
        "walked {page} pages of {} in {walk:.2} s ({:.2} ms a page)\n",
        a.page_size,
        walk * 1e3 / page as f64
    );
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..a.rounds {
        for (i, u) in [&first, &url].into_iter().enumerate() {
            let t = Instant::now();
            let r = c.request("GET", u, None).map_err(|e| e.to_string())?;
            times[i].push(t.elapsed());
            if r.status != 200 {
                return Err(format!("GET {u}: {}", r.status));
            }
        }
    }
    println!(
        "| page (limit {}) | requests | p50 ms | p99 ms |",
        a.page_size
    );
    println!("|---|---|---|---|");
    let names = ["1".to_owned(), page.to_string()];
    for (name, v) in names.iter().zip(times.iter_mut()) {
        v.sort();
        println!(
            "| {name} | {} | {:.2} | {:.2} |",
            v.len(),
            pct(v, 0.5),
            pct(v, 0.99)
        );
    }
    Ok(())
}

/// `NAME=HOST:PORT=PID[,PID...]`: a server for `--compare`.
fn server(spec: &str) -> Result<bench::apiscale::Server, String> {
    let mut parts = spec.splitn(3, '=');
    let (Some(name), Some(addr), Some(pids)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!(
            "--compare {spec}: expected NAME=HOST:PORT=PID[,PID...]"
        ));
    };
    let pids = pids
        .split(',')
        .map(|p| {
            p.parse()
                .map_err(|_| format!("--compare {spec}: bad pid {p}"))
        })
        .collect::<Result<_, _>>()?;
    Ok(bench::apiscale::Server {
        name: name.to_owned(),
        addr: addr.to_owned(),
        pids,
    })
}

fn main() {
    let a = <Args as clap::Parser>::parse();
    if !a.compare.is_empty() {
        let servers: Result<Vec<_>, String> = a.compare.iter().map(|s| server(s)).collect();
        if let Err(e) = servers.and_then(|s| bench::apiscale::compare(&s, a.samples)) {
            eprintln!("qswitch-apibench: {e}");
            std::process::exit(1);
        }
        return;
    }
    if a.scale > 0 {
        let s = bench::apiscale::Scale {
            addr: a.addr.clone(),
            ports: a.scale,
            per_project: a.per_project,
            samples: a.samples,
        };
        if let Err(e) = bench::apiscale::run(&s) {
            eprintln!("qswitch-apibench: {e}");
            std::process::exit(1);
        }
        return;
    }
    if a.paging_ports > 0 || a.paging_network.is_some() {
        if let Err(e) = paging(&a) {
            eprintln!("qswitch-apibench: {e}");
            std::process::exit(1);
        }
        return;
    }
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(a.seconds);
    let handles: Vec<_> = (0..a.clients)
        .map(|i| {
            let addr = a.addr.clone();
            let load = match (a.show_only, a.writes_only) {
                (true, _) => Load::ShowOnly,
                (_, true) => Load::WritesOnly,
                _ => Load::Mix,
            };
            let get = a.get.clone();
            std::thread::spawn(move || client(&addr, i, until, load, get))
        })
        .collect();
    let mut all: Samples = BTreeMap::new();
    for h in handles {
        match h.join() {
            Ok(Ok(s)) => {
                for (k, v) in s {
                    all.entry(k).or_default().extend(v);
                }
            }
            Ok(Err(e)) => {
                eprintln!("client failed: {e}");
                std::process::exit(1);
            }
            Err(_) => std::process::exit(1),
        }
    }
    let wall = start.elapsed().as_secs_f64();
    println!(
        "{} clients, keep-alive, {:.1} s, API at {}\n",
        a.clients, wall, a.addr
    );
    println!("| call | requests | req/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    let mut total = 0usize;
    let mut every: Vec<Duration> = Vec::new();
    for (k, v) in &mut all {
        v.sort();
        total += v.len();
        every.extend(v.iter().copied());
        println!(
            "| {k} | {} | {:.0} | {:.2} | {:.2} |",
            v.len(),
            v.len() as f64 / wall,
            pct(v, 0.5),
            pct(v, 0.99)
        );
    }
    every.sort();
    println!(
        "| **all** | {total} | {:.0} | {:.2} | {:.2} |",
        total as f64 / wall,
        pct(&every, 0.5),
        pct(&every, 0.99)
    );
}
