//! The packet harness end to end in quick mode: it builds its topologies, measures every device
//! under test, writes its reports and leaves nothing behind. Behaviour only: no speed threshold.
//! Needs root (CI runs as root).

use std::path::PathBuf;
use std::process::Command;

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
    let r = Command::new(&exe)
        .args([
            "run", "--quick", "--sizes", "64", "--trial", "0.2", "--steps", "2",
        ])
        .args(["--duts", "none,bridge,qswitch"])
        .arg("--qswitch")
        .arg(&qswitch)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "harness failed:\n{stdout}\n{stderr}");
    for dut in ["none", "bridge", "qswitch"] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {dut} | 64 |")))
            .unwrap_or_else(|| panic!("no row for {dut}:\n{stdout}"));
        let offered: f64 = row.split('|').nth(3).unwrap().trim().parse().unwrap();
        assert!(offered > 0.0, "{dut} was offered nothing: {row}");
    }
    let json = std::fs::read_to_string(out.join("report.json")).unwrap();
    assert!(json.contains("\"test\": \"throughput\""));
    let svg = std::fs::read_to_string(out.join("throughput.svg")).unwrap();
    assert!(svg.starts_with("<svg"));
    let _ = std::fs::remove_dir_all(&out);

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
    let rfc = run(&["rfc2889", "--quick", "--duts", "qswitch"]);
    assert!(rfc.lines().any(|l| l.starts_with("| qswitch |")), "{rfc}");
    let plug = run(&["plug-latency", "--count", "3"]);
    assert!(
        plug.contains("plug response to first frame delivered"),
        "{plug}"
    );
    assert!(plug.contains("0 of 3 plugs saw no frame"), "{plug}");
    let storm = run(&["boot-storm", "--vms", "6", "--clients", "3"]);
    assert!(storm.contains("every port forwarding"), "{storm}");

    let ns = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(!ns.contains("qsb"), "namespaces left behind: {ns}");
}
