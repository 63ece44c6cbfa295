//! The packet harness end to end in quick mode: it builds its topologies, measures every device
//! under test, writes its reports and leaves nothing behind. Behaviour only: no speed threshold.
//! Needs root (CI runs as root).

use std::path::PathBuf;
use std::process::Command;

/// Removes a report folder when dropped: also when an assertion fails.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
}

/// The value of the metric `test` in a metrics report.
fn metric(json: &serde_json::Value, test: &str) -> Option<f64> {
    json.as_array()?.iter().find(|m| m["test"] == test)?["value"].as_f64()
}

#[test]
fn loads_out_of_order_are_refused_before_anything_runs() {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_qswitch-bench"));
    for loads in ["90,50", "50", "50,50,90"] {
        let r = Command::new(&exe)
            .args(["run", "--duts", "bridge", "--loads", loads])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&r.stderr);
        // Refused by the argument parser (status 2), before the harness lock is taken: this may
        // run beside the quick run below, which holds it.
        assert_eq!(r.status.code(), Some(2), "--loads {loads}: {stderr}");
        assert!(stderr.contains("expected LIGHT,HEAVY"), "{stderr}");
    }
}

#[test]
fn quick_run_reports_every_dut_and_cleans_up() {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_qswitch-bench"));
    let qswitch = exe.parent().unwrap().join("qswitch");
    assert!(
        qswitch.exists(),
        "build the workspace first: {}",
        qswitch.display()
    );
    let out = std::env::temp_dir().join(format!("qsb-test-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(out.clone());
    // Open vSwitch is measured where it is installed (CI installs it) and skipped with a line
    // saying so elsewhere.
    let ovs = bench::topo::Dut::Ovs.unavailable().is_none();
    let duts: &[&str] = if ovs {
        &[
            "none",
            "bridge",
            "qswitch",
            "qswitch-shortcut",
            "qswitch-sg",
            "ovs",
            "ovs-afxdp",
            "xdp-redirect",
            "xdp-redirect-native",
        ]
    } else {
        &[
            "none",
            "bridge",
            "qswitch",
            "qswitch-shortcut",
            "qswitch-sg",
            "xdp-redirect",
            "xdp-redirect-native",
        ]
    };
    let r = Command::new(&exe)
        .args([
            "run", "--quick", "--sizes", "64", "--trial", "0.2", "--steps", "2", "--repeat", "2",
        ])
        .args([
            "--duts",
            "none,bridge,qswitch,qswitch-shortcut,qswitch-sg,ovs,ovs-afxdp,xdp-redirect,xdp-redirect-native",
        ])
        .arg("--qswitch")
        .arg(&qswitch)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "harness failed:\n{stdout}\n{stderr}");
    let lock = std::env::temp_dir().join("qswitch-bench.lock");
    assert!(!lock.exists(), "{} left behind", lock.display());
    if !ovs {
        assert!(
            stderr.contains("skipping ovs: Open vSwitch is not installed"),
            "{stderr}"
        );
    }
    for dut in duts {
        let Some(row) = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {dut} | 64 |")))
        else {
            // OVS's AF_XDP ports depend on how it was built: a DUT that could not start is
            // skipped with a line saying why, which is the harness's behaviour to check.
            assert!(
                dut.starts_with("ovs") && stderr.contains(&format!("skipping {dut}: ")),
                "no row for {dut}:\n{stdout}\n{stderr}"
            );
            continue;
        };
        let offered: f64 = row.split('|').nth(3).unwrap().trim().parse().unwrap();
        assert!(offered > 0.0, "{dut} was offered nothing: {row}");
    }
    let json = read_json(&out.join("report.json"));
    let rows = json.as_array().unwrap();
    assert!(rows.iter().any(|r| r["test"] == "throughput"), "{json}");
    // Frames crossed qswitch flat out, on `qswitch-sg` through anti-spoofing and both ports'
    // security groups, on `qswitch-shortcut` inside XDP (the harness drops those rows unless
    // the daemon's metrics show it), and the XDP cross-connect in both modes.
    for dut in [
        "qswitch",
        "qswitch-shortcut",
        "qswitch-sg",
        "xdp-redirect",
        "xdp-redirect-native",
    ] {
        let delivered = rows
            .iter()
            .find(|r| r["dut"] == dut && r["test"] == "delivered")
            .and_then(|r| r["pps"].as_f64());
        assert!(
            delivered.is_some_and(|d| d > 0.0),
            "{dut} delivered nothing: {json}"
        );
    }
    assert!(
        rows.iter()
            .any(|r| r["cdf"].as_array().is_some_and(|c| c[0][0] == 0.0)),
        "no latency CDF in the JSON report"
    );
    // The machine's pauses, probed on every CPU before each DUT of each repetition.
    let stalls = read_json(&out.join("stalls.json"));
    let probes = stalls.as_array().unwrap();
    assert_eq!(probes.len(), 2 * duts.len(), "{stalls}");
    let allowed = dataplane::sys::allowed_cpus().unwrap().len();
    assert!(
        probes.iter().any(|p| p["before"] == "qswitch (run 2/2)"),
        "{stalls}"
    );
    for p in probes {
        let cpus = p["cpus"].as_array().unwrap();
        assert_eq!(cpus.len(), allowed, "{stalls}");
        assert!(
            cpus.iter()
                .all(|c| c["secs"].as_f64().is_some_and(|s| s >= 1.9)
                    && c["lost"].as_f64().is_some_and(|l| (0.0..1.0).contains(&l))),
            "{stalls}"
        );
    }
    assert!(
        stdout.contains("- before qswitch (run 1/2): CPU 0: "),
        "{stdout}"
    );
    let svg = std::fs::read_to_string(out.join("throughput.svg")).unwrap();
    assert!(svg.starts_with("<svg"));
    let cdf = std::fs::read_to_string(out.join("latency-cdf-64.svg")).unwrap();
    // One curve per DUT that forwarded and per load (50 % and 90 %).
    assert!(cdf.matches("<polyline").count() >= 2 * 3, "{cdf}");

    // RFC 2889 on four ports, the control-to-forwarding latency and a small boot storm (one
    // after the other: they would share namespaces and CPUs).
    let run = |args: &[&str]| {
        let r = Command::new(&exe)
            .args(args)
            .arg("--qswitch")
            .arg(&qswitch)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&r.stdout).into_owned();
        assert!(
            r.status.success(),
            "{args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&r.stderr)
        );
        stdout
    };
    let rfc_out = out.join("rfc2889");
    let rfc = run(&[
        "rfc2889",
        "--quick",
        "--duts",
        "qswitch",
        "--out",
        rfc_out.to_str().unwrap(),
    ]);
    // Meshed and broadcast, caching and learning, congestion at the port rate and flat out.
    let rows: Vec<&str> = rfc
        .lines()
        .filter(|l| l.starts_with("| qswitch |"))
        .collect();
    // The congestion test's port-rate row needs a meshed rate above 0, which a short trial
    // with one lost frame may not give.
    assert!(rows.len() == 3 || rows.len() == 4, "{rfc}");
    assert!(
        rows[1].contains("| >= 4096 |"),
        "qswitch forgot addresses: {rfc}"
    );
    assert!(rows.last().unwrap().contains("flat out"), "{rfc}");
    let json = read_json(&rfc_out.join("rfc2889.json"));
    for test in [
        "fully-meshed-per-port",
        "broadcast-per-port",
        "address-learning-rate",
        "address-caching-capacity",
        "congestion-flat-out-uncongested-loss",
    ] {
        assert!(metric(&json, test).is_some(), "{test}: {json}");
    }
    let plug = run(&[
        "plug-latency",
        "--count",
        "3",
        "--out",
        rfc_out.to_str().unwrap(),
    ]);
    let json = read_json(&rfc_out.join("plug-latency.json"));
    assert!(metric(&json, "plug-call-p50").is_some(), "{json}");
    assert!(
        plug.contains("plug response to first frame delivered"),
        "{plug}"
    );
    assert!(plug.contains("0 of 3 plugs saw no frame"), "{plug}");
    // Through v1.1 (three calls per VM) and v2.0 (bulk calls of two ports); five sample VMs
    // send ten frames each to VM 0, through anti-spoofing rules on v2.0.
    let storm = run(&[
        "boot-storm",
        "--vms",
        "6",
        "--clients",
        "3",
        "--batch",
        "2",
        "--out",
        rfc_out.to_str().unwrap(),
    ]);
    let json = read_json(&rfc_out.join("boot-storm.json"));
    assert!(metric(&json, "v2.0-requests-per-vm").is_some(), "{json}");
    assert_eq!(storm.matches("Every port forwarding").count(), 2, "{storm}");
    assert_eq!(storm.matches("50 of 50 received").count(), 2, "{storm}");
    assert!(storm.contains("19 API requests, 3.17 per VM"), "{storm}");
    // Network, subnet and one bulk call per client.
    assert!(storm.contains("5 API requests, 0.83 per VM"), "{storm}");
    // TCP goodput between two VMs through qswitch, both offload settings, without and with
    // security groups: a transfer that moved no byte (a checksum the switch left partial, a
    // reply the rules refused) fails the run, and so does a filtered row whose connection
    // tables tracked nothing.
    let goodput = run(&[
        "goodput",
        "--quick",
        "--duts",
        "qswitch,qswitch-sg",
        "--time",
        "1",
        "--streams",
        "1",
        "--out",
        rfc_out.to_str().unwrap(),
    ]);
    let json = read_json(&rfc_out.join("goodput.json"));
    for dut in ["qswitch", "qswitch-sg"] {
        // The sender's round-trip time beside each goodput (iperf3 reports it on Linux), and
        // the CPU time of the switch's process.
        for test in [
            "tcp-goodput-default-1",
            "tcp-goodput-tx-off-1",
            "tcp-rtt-default-1",
            "tcp-rtt-tx-off-1",
            "tcp-switch-cpus-default-1",
            "tcp-switch-cpus-tx-off-1",
            "tcp-cpus-busy-default-1",
        ] {
            let value = json
                .as_array()
                .and_then(|a| a.iter().find(|m| m["dut"] == dut && m["test"] == test))
                .and_then(|m| m["value"].as_f64())
                .unwrap_or_else(|| panic!("no {dut} {test} in {json}\n{goodput}"));
            assert!(value > 0.0, "{dut} {test}: {json}");
        }
        let row = format!("| {dut} | default | 1 |");
        assert!(goodput.contains(&row), "{goodput}");
    }
    assert!(
        goodput.contains("| sender's RTT, µs | CPUs busy | the switch's threads, CPUs |"),
        "{goodput}"
    );

    let ns = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(!ns.contains("qsb"), "namespaces left behind: {ns}");
    interrupted_run_tears_down(&exe, &qswitch);
}

fn harness_namespaces() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("qsb"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// SIGINT in the middle of a run (qswitch forwarding, agents sending) stops every process the
/// harness started and deletes its namespaces; the harness exits with 130.
fn interrupted_run_tears_down(exe: &std::path::Path, qswitch: &std::path::Path) {
    let out = std::env::temp_dir().join(format!("qsb-int-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(out.clone());
    let child = Command::new(exe)
        .args(["run", "--duts", "qswitch", "--sizes", "64", "--trial", "1"])
        .arg("--qswitch")
        .arg(qswitch)
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the DUT forwards (its topology is up and the agents run), then interrupt.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let pids = Command::new("ip")
            .args(["netns", "pids", "qsbdut"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        if !pids.is_empty() && !harness_namespaces().is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < end, "the run never started");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let r = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted, tearing down"), "{stderr}");
    assert_eq!(harness_namespaces(), "", "namespaces left behind");
    let lock = std::env::temp_dir().join("qswitch-bench.lock");
    assert!(!lock.exists(), "{} left behind", lock.display());
    let left = Command::new("pgrep")
        .args(["-f", &format!("{} serve", qswitch.display())])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "qswitch left running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}
