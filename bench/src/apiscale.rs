//! The control plane at scale: every API call's latency on an empty store and again after the
//! store has grown to N ports, in both API versions, plus the cost of the bulk creates that grow
//! it (the first against the last).
//!
//! The store is grown through the v2.0 API as a cloud would: projects of `per_project` ports
//! each, every project with its network and a /24 subnet of 198.18.0.0/15 (so every port gets an
//! address), one bulk request per project. A probe project (holding a full page of 100 ports from
//! the start, so that list pages hold as many ports before as after) is measured before and
//! after: single calls one after another on one keep-alive connection, `samples` of each.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::http::{id_of, Conn};
use crate::report::median;

/// What to run.
#[derive(Debug, Clone)]
pub struct Scale {
    /// The API's `host:port`.
    pub addr: String,
    /// Ports to grow the store to.
    pub ports: usize,
    /// Ports per project (and per bulk request); at most 250 (one /24 each).
    pub per_project: usize,
    /// Samples of each call at each size.
    pub samples: usize,
}

type Times = BTreeMap<&'static str, Vec<Duration>>;

struct Client {
    conn: Conn,
    times: Times,
}

impl Client {
    fn call(
        &mut self,
        name: &'static str,
        method: &str,
        path: &str,
        body: Option<&str>,
        project: Option<&str>,
    ) -> Result<String, String> {
        let t = Instant::now();
        let r = self
            .conn
            .request_as(method, path, body, project)
            .map_err(|e| format!("{name}: {e}"))?;
        self.times.entry(name).or_default().push(t.elapsed());
        if r.status >= 400 {
            return Err(format!("{name}: {method} {path}: {} {}", r.status, r.body));
        }
        Ok(r.body)
    }
}

/// A project with a network and a /24 subnet (the `index`-th of 198.18.0.0/15); returns the
/// network id.
fn project(c: &mut Conn, tenant: &str, index: usize) -> Result<String, String> {
    let r = c
        .request_as(
            "POST",
            "/v2.0/networks",
            Some(r#"{"network": {"name": "scale"}}"#),
            Some(tenant),
        )
        .map_err(|e| e.to_string())?;
    if r.status != 201 {
        return Err(format!("create network: {} {}", r.status, r.body));
    }
    let net = id_of(&r.body)?;
    let cidr = format!("198.{}.{}.0/24", 18 + index / 256, index % 256);
    let body = json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": cidr}}).to_string();
    let r = c
        .request_as("POST", "/v2.0/subnets", Some(&body), Some(tenant))
        .map_err(|e| e.to_string())?;
    if r.status != 201 {
        return Err(format!("create subnet: {} {}", r.status, r.body));
    }
    Ok(net)
}

/// Ports per list page, and in the probe project from the start.
const PAGE: usize = 100;
const PAGE_QUERY: &str = "/v2.0/ports?limit=100";

/// Creates `n` ports on `net` in one bulk request; returns how long it took.
fn bulk(c: &mut Conn, tenant: &str, net: &str, n: usize) -> Result<Duration, String> {
    let items = vec![json!({"network_id": net}); n];
    let body = json!({ "ports": items }).to_string();
    let t = Instant::now();
    let r = c
        .request_as("POST", "/v2.0/ports", Some(&body), Some(tenant))
        .map_err(|e| e.to_string())?;
    let took = t.elapsed();
    if r.status != 201 {
        return Err(format!("bulk create: {} {}", r.status, r.body));
    }
    Ok(took)
}

/// One round of every call, in the probe project.
fn probe_round(c: &mut Client, tenant: &str, net: &str, n: usize) -> Result<(), String> {
    let me = Some(tenant);
    // v2.0
    let body = json!({"port": {"network_id": net}}).to_string();
    let port = id_of(&c.call("v2.0 create port", "POST", "/v2.0/ports", Some(&body), me)?)?;
    let one = format!("/v2.0/ports/{port}");
    c.call("v2.0 show port", "GET", &one, None, me)?;
    let rename = r#"{"port": {"name": "renamed"}}"#;
    c.call("v2.0 update port", "PUT", &one, Some(rename), me)?;
    c.call(
        "v2.0 list ports page (project)",
        "GET",
        PAGE_QUERY,
        None,
        me,
    )?;
    c.call(
        "v2.0 list ports page (admin, all)",
        "GET",
        PAGE_QUERY,
        None,
        None,
    )?;
    c.call(
        "v2.0 show network",
        "GET",
        &format!("/v2.0/networks/{net}"),
        None,
        me,
    )?;
    c.call("v2.0 delete port", "DELETE", &one, None, me)?;
    // v1.1 on the same network
    let base = format!("/v1.1/tenants/{tenant}");
    let ports = format!("{base}/networks/{net}/ports");
    let body = c.call(
        "v1.1 create port",
        "POST",
        &ports,
        Some(r#"{"port": {"state": "ACTIVE"}}"#),
        None,
    )?;
    let port = id_of(&body)?;
    let one = format!("{ports}/{port}");
    c.call("v1.1 show port", "GET", &one, None, None)?;
    let vif = format!("{tenant}-vif-{n}");
    let dev = format!("qsscale{n}");
    c.call(
        "v1.1 register interface",
        "PUT",
        &format!("{base}/interfaces/{vif}"),
        Some(&json!({"interface": {"device": dev}}).to_string()),
        None,
    )?;
    let att = format!("{one}/attachment");
    let plug = json!({"attachment": {"id": vif}}).to_string();
    c.call("v1.1 plug", "PUT", &att, Some(&plug), None)?;
    c.call(
        "v1.1 list ports page",
        "GET",
        &format!("{ports}?limit={PAGE}"),
        None,
        None,
    )?;
    c.call(
        "v1.1 show network",
        "GET",
        &format!("{base}/networks/{net}"),
        None,
        None,
    )?;
    c.call("v1.1 unplug", "DELETE", &att, None, None)?;
    c.call(
        "v1.1 unregister interface",
        "DELETE",
        &format!("{base}/interfaces/{vif}"),
        None,
        None,
    )?;
    c.call("v1.1 delete port", "DELETE", &one, None, None)?;
    Ok(())
}

fn probe(addr: &str, tenant: &str, net: &str, samples: usize) -> Result<Times, String> {
    let mut c = Client {
        conn: Conn::open(addr).map_err(|e| e.to_string())?,
        times: Times::new(),
    };
    for n in 0..samples {
        probe_round(&mut c, tenant, net, n)?;
    }
    Ok(c.times)
}

fn p(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// Runs the benchmark and prints its tables.
pub fn run(s: &Scale) -> Result<(), String> {
    let per = s.per_project.clamp(1, 250);
    let projects = s.ports.div_ceil(per);
    if projects > 511 {
        return Err(format!(
            "{projects} projects of {per} ports do not fit 198.18.0.0/15 (one /24 each)"
        ));
    }
    let mut c = Conn::open(&s.addr).map_err(|e| e.to_string())?;
    let run_id = std::process::id();
    let probe_tenant = format!("scale-probe-{run_id}");
    let probe_net = project(&mut c, &probe_tenant, 511)?;
    // A full page in the probe project, so that its list pages hold as many ports before the
    // store grows as after.
    bulk(&mut c, &probe_tenant, &probe_net, PAGE)?;
    let before = probe(&s.addr, &probe_tenant, &probe_net, s.samples)?;

    let mut bulks = Vec::with_capacity(projects);
    let grow = Instant::now();
    for i in 0..projects {
        let tenant = format!("scale-{run_id}-{i}");
        let net = project(&mut c, &tenant, i)?;
        let n = per.min(s.ports - i * per);
        bulks.push(bulk(&mut c, &tenant, &net, n)?);
        if (i + 1) % 40 == 0 {
            eprintln!(
                "{} ports in {:.0} s",
                (i + 1) * per,
                grow.elapsed().as_secs_f64()
            );
        }
    }
    let grown = grow.elapsed().as_secs_f64();
    let after = probe(&s.addr, &probe_tenant, &probe_net, s.samples)?;

    println!(
        "Control plane at {} ports ({projects} projects of {per}, one bulk create each, \
         grown in {grown:.1} s); API at {}, {} samples of each call, one client\n",
        s.ports, s.addr, s.samples
    );
    println!(
        "| call | p50 ms empty | p99 ms empty | p50 ms full | p99 ms full | full / empty (p50) |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, mut b) in before {
        let mut a = after.get(name).cloned().unwrap_or_default();
        b.sort();
        a.sort();
        let (b50, a50) = (p(&b, 0.5), p(&a, 0.5));
        println!(
            "| {name} | {b50:.2} | {:.2} | {a50:.2} | {:.2} | {:.2} |",
            p(&b, 0.99),
            p(&a, 0.99),
            a50 / b50.max(1e-6)
        );
    }
    let k = bulks.len().min(5);
    let ms = |v: &[Duration]| median(v.iter().map(|d| d.as_secs_f64() * 1e3).collect());
    println!(
        "\nbulk create of {per} ports: median of the first {k} {:.1} ms, of the last {k} {:.1} ms",
        ms(&bulks[..k]),
        ms(&bulks[bulks.len() - k..])
    );
    Ok(())
}

/// One API server to profile: its address and the processes whose CPU time it uses.
#[derive(Debug, Clone)]
pub struct Server {
    /// What to call it in the table.
    pub name: String,
    /// `host:port`.
    pub addr: String,
    /// Its processes (Neutron's uWSGI master and workers; qswitch's one).
    pub pids: Vec<u32>,
}

/// CPU time (user + system) the processes have used, in clock ticks.
pub(crate) fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|s| {
            // Fields after the command's closing parenthesis: utime is the 12th, stime the 13th.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
pub(crate) const TICKS_PER_SECOND: f64 = 100.0;

/// Each v2.0 call, `samples` times in a row, on each server: p50 latency and server CPU per
/// request. Projects are named in bodies and filters (Neutron's noauth ignores `X-Project-Id`).
pub fn compare(servers: &[Server], samples: usize) -> Result<(), String> {
    let mut rows: BTreeMap<&'static str, Vec<(f64, f64)>> = BTreeMap::new();
    for s in servers {
        let mut c = Conn::open(&s.addr).map_err(|e| format!("{}: {e}", s.name))?;
        let tenant = format!("profile-{}", std::process::id());
        let call = |c: &mut Conn, m: &str, p: &str, b: Option<&str>| -> Result<String, String> {
            let r = c.request(m, p, b).map_err(|e| format!("{}: {e}", s.name))?;
            if r.status >= 400 {
                return Err(format!("{}: {m} {p}: {} {}", s.name, r.status, r.body));
            }
            Ok(r.body)
        };
        let body = call(
            &mut c,
            "POST",
            "/v2.0/networks",
            Some(&format!(
                r#"{{"network": {{"name": "profile", "project_id": "{tenant}"}}}}"#
            )),
        )?;
        let net = id_of(&body)?;
        call(
            &mut c,
            "POST",
            "/v2.0/subnets",
            Some(
                &json!({"subnet": {
                    "network_id": net, "ip_version": 4, "cidr": "198.19.0.0/16", "project_id": tenant,
                }})
                .to_string(),
            ),
        )?;
        let page = vec![json!({"network_id": net, "project_id": tenant}); PAGE];
        call(
            &mut c,
            "POST",
            "/v2.0/ports",
            Some(&json!({ "ports": page }).to_string()),
        )?;
        let mut ids = Vec::with_capacity(samples);
        let mut timed = |name: &'static str,
                         c: &mut Conn,
                         reqs: &mut dyn FnMut(usize) -> (String, String, Option<String>)|
         -> Result<Vec<String>, String> {
            let mut lat = Vec::with_capacity(samples);
            let mut bodies = Vec::with_capacity(samples);
            let before = cpu_ticks(&s.pids);
            for i in 0..samples {
                let (m, p, b) = reqs(i);
                let t = Instant::now();
                bodies.push(call(c, &m, &p, b.as_deref())?);
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
            let cpu =
                (cpu_ticks(&s.pids) - before) as f64 / TICKS_PER_SECOND * 1e3 / samples as f64;
            rows.entry(name).or_default().push((median(lat), cpu));
            Ok(bodies)
        };
        let create = json!({"port": {"network_id": net, "project_id": tenant}}).to_string();
        for b in timed("create port", &mut c, &mut |_| {
            ("POST".into(), "/v2.0/ports".into(), Some(create.clone()))
        })? {
            ids.push(id_of(&b)?);
        }
        timed("show port", &mut c, &mut |i| {
            ("GET".into(), format!("/v2.0/ports/{}", ids[i]), None)
        })?;
        timed("update port (name)", &mut c, &mut |i| {
            (
                "PUT".into(),
                format!("/v2.0/ports/{}", ids[i]),
                Some(r#"{"port": {"name": "renamed"}}"#.into()),
            )
        })?;
        timed(
            "list ports, page of 100 (project filter)",
            &mut c,
            &mut |_| {
                (
                    "GET".into(),
                    format!("/v2.0/ports?project_id={tenant}&limit=100"),
                    None,
                )
            },
        )?;
        timed("show network", &mut c, &mut |_| {
            ("GET".into(), format!("/v2.0/networks/{net}"), None)
        })?;
        timed("delete port", &mut c, &mut |i| {
            ("DELETE".into(), format!("/v2.0/ports/{}", ids[i]), None)
        })?;
    }
    print!("| call |");
    for s in servers {
        print!(" {} p50 ms | {} CPU ms/request |", s.name, s.name);
    }
    println!();
    println!("|---|{}", "---|---|".repeat(servers.len()));
    for (name, v) in rows {
        print!("| {name} |");
        for (lat, cpu) in v {
            print!(" {lat:.2} | {cpu:.2} |");
        }
        println!();
    }
    Ok(())
}
