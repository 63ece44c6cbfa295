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

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bench::http::{json_str, Conn};

struct Args {
    addr: String,
    clients: usize,
    seconds: f64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        addr: "127.0.0.1:9696".into(),
        clients: 8,
        seconds: 10.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or(format!("{k} needs a value"));
        match k.as_str() {
            "--addr" => a.addr = v()?,
            "--clients" => a.clients = v()?.parse().map_err(|e| format!("--clients: {e}"))?,
            "--seconds" => a.seconds = v()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            _ => return Err(format!("unknown option {k}")),
        }
    }
    Ok(a)
}

type Samples = BTreeMap<&'static str, Vec<Duration>>;

fn client(addr: &str, id: usize, until: Instant) -> Result<Samples, String> {
    let mut c = Conn::open(addr).map_err(|e| e.to_string())?;
    let tenant = format!("bench-{id}-{}", std::process::id());
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
    let net = json_str(&r.body, "id").ok_or("no network id")?.to_owned();
    let mut n = 0u64;
    while Instant::now() < until {
        timed(
            &mut c,
            "list networks",
            "GET",
            &format!("{base}/networks"),
            None,
        )?;
        timed(
            &mut c,
            "show network",
            "GET",
            &format!("{base}/networks/{net}"),
            None,
        )?;
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
        let port = json_str(&r.body, "id").ok_or("no port id")?.to_owned();
        timed(
            &mut c,
            "register interface",
            "PUT",
            &format!("{base}/interfaces/{tenant}-vif-{n}"),
            Some(&format!(r#"{{"interface": {{"device": "qsab{id}x{n}"}}}}"#)),
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

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("qswitch-apibench: {e}");
            std::process::exit(2);
        }
    };
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(a.seconds);
    let handles: Vec<_> = (0..a.clients)
        .map(|i| {
            let addr = a.addr.clone();
            std::thread::spawn(move || client(&addr, i, until))
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
