//! The operator's commands against a running daemon: `qswitch ports`, `macs` and `stats` show
//! what the switch really does. Needs root (CI runs as root).

mod common;

use std::process::Command;
use std::time::Duration;

use common::http::{request, wait_ready};
use common::*;

fn qswitch(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_qswitch"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network of tenant path `t` with one port per VM, each VM's host device registered (as
/// `{tag}{i}`) and plugged; returns the network and port ids.
fn plugged_network(addr: &str, t: &str, vms: [&Vm; 2], tag: &str) -> (String, Vec<String>) {
    let net = request(
        addr,
        "POST",
        &format!("{t}/networks"),
        Some(r#"{"network": {"name": "n"}}"#),
    )
    .json()["network"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ports = Vec::new();
    for (i, vm) in vms.iter().enumerate() {
        let p = request(
            addr,
            "POST",
            &format!("{t}/networks/{net}/ports"),
            Some(r#"{"port": {"state": "ACTIVE"}}"#),
        )
        .json()["port"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let body = format!(r#"{{"interface": {{"device": "{}"}}}}"#, vm.host);
        let r = request(
            addr,
            "PUT",
            &format!("{t}/interfaces/{tag}{i}"),
            Some(&body),
        );
        assert!(r.status < 300, "{}", r.body);
        let body = format!(r#"{{"attachment": {{"id": "{tag}{i}"}}}}"#);
        let r = request(
            addr,
            "PUT",
            &format!("{t}/networks/{net}/ports/{p}/attachment"),
            Some(&body),
        );
        assert_eq!(r.status, 204, "{}", r.body);
        ports.push(p);
    }
    (net, ports)
}

#[test]
fn ports_macs_and_stats_show_the_switch_state() {
    let vm1 = Vm::new("c", 1, 0);
    let vm2 = Vm::new("c", 2, 0);
    let dir = std::env::temp_dir().join(unique("db"));
    std::fs::create_dir_all(&dir).unwrap();
    let addr = free_addr();
    let db = store(&dir);
    let daemon = Daemon::start_in(dir, &["--listen", &addr, "--db", &db]);
    assert!(wait_ready(&addr), "{}", daemon.log());
    let t = "/v1.1/tenants/ops";
    let (net, ports) = plugged_network(&addr, t, [&vm1, &vm2], "cli");
    assert!(
        vm1.ping_until(&vm2.ip, Duration::from_secs(5)),
        "{}",
        daemon.log()
    );

    let listing = qswitch(&["ports", "--api", &addr, "--tenant", "ops", &net]);
    for p in &ports {
        let line = listing
            .lines()
            .find(|l| l.starts_with(p.as_str()))
            .unwrap_or_else(|| panic!("{listing}"));
        assert!(line.contains("UP"), "{line}");
    }
    let macs = qswitch(&["macs", "--api", &addr, "--tenant", "ops", &net]);
    for (vm, p) in [(&vm1, &ports[0]), (&vm2, &ports[1])] {
        let line = macs
            .lines()
            .find(|l| l.starts_with(&vm.mac))
            .unwrap_or_else(|| panic!("{macs}"));
        assert!(line.contains(p.as_str()), "{line}");
    }
    let stats = qswitch(&["stats", "--api", &addr, "--tenant", "ops", &net, &ports[0]]);
    let rx: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("rx_packets"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{stats}"));
    assert!(rx >= 2, "ARP and ICMP from vm1 were counted: {stats}");
    assert!(
        stats
            .lines()
            .any(|l| l.split_whitespace().eq(["tx_stalled", "no"])),
        "{stats}"
    );
    assert!(
        stats
            .lines()
            .any(|l| l.split_whitespace().eq(["tx_stalled_ms", "0"])),
        "{stats}"
    );
    // A bad network id is a clear error, not a crash.
    let out = Command::new(env!("CARGO_BIN_EXE_qswitch"))
        .args(["macs", "--api", &addr, "--tenant", "ops", "no-such-net"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
}

/// One sample of a scrape, as Python's `prometheus_client` parser read it.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: serde_json::Map<String, serde_json::Value>,
    value: f64,
}

/// Scrapes `http://addr/metrics` and parses it with a real Prometheus text parser.
fn scrape(addr: &str) -> Vec<Sample> {
    let r = request(addr, "GET", "/metrics", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        r.header("content-type")
    );
    let python = python_with(&["prometheus_client"]);
    let tool = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/metrics.py");
    let mut child = Command::new(python)
        .arg(tool)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(r.body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused the page: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        r.body
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Sample {
                name: v["name"].as_str().unwrap().to_owned(),
                labels: v["labels"].as_object().unwrap().clone(),
                value: v["value"].as_f64().unwrap(),
            }
        })
        .collect()
}

/// The value of the one sample of `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels[*k] == *v))
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?}: {found:?}");
    found.first().map(|s| s.value)
}

#[test]
fn metrics_count_the_frames_sent_and_the_requests_made() {
    let vm1 = Vm::new("m", 1, 0);
    let vm2 = Vm::new("m", 2, 0);
    let (addr, maddr) = (free_addr(), free_addr());
    let daemon = Daemon::with_config(
        "[api.quotas]\nnetworks = 1\n",
        &["--listen", &addr, "--metrics-listen", &maddr],
    );
    assert!(wait_ready(&addr) && wait_ready(&maddr), "{}", daemon.log());
    let t = "/v1.1/tenants/ops";
    let (net, ports) = plugged_network(&addr, t, [&vm1, &vm2], "m");
    // Over the quota of one network: a refusal, counted by tenant class.
    let r = request(
        &addr,
        "POST",
        &format!("{t}/networks"),
        Some(r#"{"network": {"name": "n2"}}"#),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        vm1.ping_until(&vm2.ip, Duration::from_secs(5)),
        "{}",
        daemon.log()
    );
    // Frames the switch must drop, each under one reason: tagged frames from a VM port.
    let tagged: Vec<String> = (0..7)
        .map(|i| frame_hex(&vm2.mac, &vm1.mac, Some(10), i))
        .collect();
    vm1.send(&tagged);
    let before = scrape(&maddr);
    let lists = |s: &[Sample]| {
        value(
            s,
            "qswitch_api_requests_total",
            &[
                ("route", "/v1.1/tenants/{tenant_id}/networks"),
                ("method", "GET"),
                ("status", "200"),
            ],
        )
        .unwrap_or(0.0)
    };
    for _ in 0..5 {
        assert_eq!(
            request(&addr, "GET", &format!("{t}/networks"), None).status,
            200
        );
    }
    // Counters are published within a millisecond and the MAC table sizes within 100 ms.
    std::thread::sleep(Duration::from_millis(300));
    let s = scrape(&maddr);
    assert_eq!(lists(&s) - lists(&before), 5.0, "five list requests");
    assert_eq!(
        value(
            &s,
            "qswitch_api_over_quota_total",
            &[("tenant_class", "noauth")]
        ),
        Some(1.0)
    );
    let port = |i: usize| {
        let dev = if i == 0 { &vm1.host } else { &vm2.host };
        vec![
            ("port", ports[i].as_str()),
            ("device", dev.as_str()),
            ("network", net.as_str()),
        ]
    };
    let mut l0 = port(0);
    l0.push(("reason", "tagged_on_access"));
    assert_eq!(value(&s, "qswitch_port_drops_total", &l0), Some(7.0));
    let rx = value(&s, "qswitch_port_rx_packets_total", &port(0)).unwrap();
    assert!(rx >= 9.0, "7 tagged frames, ARP and ICMP from vm1: {rx}");
    let tx = value(&s, "qswitch_port_tx_packets_total", &port(1)).unwrap();
    assert!(tx >= 2.0, "ARP and ICMP to vm2: {tx}");
    for i in 0..2 {
        let mut up = port(i);
        up.push(("state", "up"));
        assert_eq!(value(&s, "qswitch_port_state", &up), Some(1.0));
        let mut err = port(i);
        err.push(("state", "error"));
        assert_eq!(value(&s, "qswitch_port_state", &err), Some(0.0));
        assert_eq!(value(&s, "qswitch_port_tx_stalled", &port(i)), Some(0.0));
        assert_eq!(
            value(&s, "qswitch_port_tx_stalls_total", &port(i)),
            Some(0.0)
        );
        assert_eq!(
            value(&s, "qswitch_port_tx_stalled_seconds_total", &port(i)),
            Some(0.0)
        );
    }
    let macs = value(&s, "qswitch_network_mac_entries", &[("network", &net)]).unwrap();
    assert!(macs >= 2.0, "both VMs learned: {macs}");
    assert!(value(&s, "qswitch_network_mac_limit", &[("network", &net)]).unwrap() > 0.0);
    assert!(value(&s, "qswitch_worker_rounds_total", &[("worker", "0")]).unwrap() > 0.0);
    // A few pings leave nothing waiting after a round.
    let w0 = [("worker", "0")];
    assert!(value(&s, "qswitch_worker_behind_seconds_total", &w0).unwrap() < 0.1);
    assert_eq!(value(&s, "qswitch_worker_behind_ratio", &w0), Some(0.0));
    // The fill rings' bound: by frames alone (at least 16), a few pings too few to measure
    // a frame's cost.
    assert!(value(&s, "qswitch_worker_fill_frames", &w0).unwrap() >= 16.0);
    assert_eq!(
        value(&s, "qswitch_worker_frame_cost_seconds", &w0),
        Some(0.0)
    );
    assert!(value(&s, "qswitch_store_revision", &[]).unwrap() >= 3.0);

    // A deleted port's series are gone from the next scrape.
    let r = request(
        &addr,
        "DELETE",
        &format!("{t}/networks/{net}/ports/{}/attachment", ports[1]),
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let r = request(
        &addr,
        "DELETE",
        &format!("{t}/networks/{net}/ports/{}", ports[1]),
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let s = scrape(&maddr);
    assert!(
        !s.iter()
            .any(|x| x.labels.get("port").is_some_and(|p| *p == *ports[1])),
        "series of the deleted port remain"
    );
    assert!(value(&s, "qswitch_port_rx_packets_total", &port(0)).is_some());
    // The API listener serves the same page (noauth mode).
    let r = request(&addr, "GET", "/metrics", None);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("qswitch_port_rx_packets_total"));
}

#[test]
fn the_command_line_takes_the_environment_explains_itself_and_names_bad_options() {
    let help = qswitch(&["serve", "--help"]);
    for needle in [
        "--metrics-listen",
        "QSWITCH_LISTEN",
        "QSWITCH_DB",
        "--log-format",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
    assert!(qswitch(&["completions", "bash"]).contains("qswitch"));
    let out = Command::new(env!("CARGO_BIN_EXE_qswitch"))
        .args(["serve", "--listen", "nowhere"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--listen"), "{err}");
    // Options from the environment, JSON log lines.
    let dir = std::env::temp_dir().join(unique("env"));
    std::fs::create_dir_all(&dir).unwrap();
    let addr = free_addr();
    let log = std::fs::File::create(dir.join("log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_qswitch"))
        .arg("serve")
        .env("QSWITCH_LISTEN", &addr)
        .env("QSWITCH_DB", dir.join("env.db"))
        .env("QSWITCH_NO_DATAPLANE", "1")
        .env("QSWITCH_LOG_FORMAT", "json")
        .current_dir(&dir)
        .stderr(log)
        .spawn()
        .unwrap();
    let ready = wait_ready(&addr);
    let r = ready.then(|| request(&addr, "GET", "/v1.1/tenants/env/networks", None));
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    let db_made = dir.join("env.db").exists();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ready, "{text}");
    assert_eq!(r.map(|r| r.status), Some(200));
    assert!(db_made, "QSWITCH_DB took effect");
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap_or(""))
        .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {text}"));
    assert!(first["fields"]["message"].is_string(), "{first}");
    assert!(
        text.contains("data plane off"),
        "QSWITCH_NO_DATAPLANE took effect: {text}"
    );
}
