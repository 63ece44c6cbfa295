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

#[test]
fn ports_macs_and_stats_show_the_switch_state() {
    let vm1 = Vm::new("c", 1, 0);
    let vm2 = Vm::new("c", 2, 0);
    let dir = std::env::temp_dir().join(unique("db"));
    std::fs::create_dir_all(&dir).unwrap();
    let addr = free_addr();
    let db = dir.join("q.db");
    let daemon = Daemon::start_in(dir, &["--listen", &addr, "--db", db.to_str().unwrap()]);
    assert!(wait_ready(&addr), "{}", daemon.log());
    let t = "/v1.1/tenants/ops";
    let net = request(
        &addr,
        "POST",
        &format!("{t}/networks"),
        Some(r#"{"network": {"name": "n"}}"#),
    )
    .json()["network"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ports = Vec::new();
    for (i, vm) in [&vm1, &vm2].iter().enumerate() {
        let p = request(
            &addr,
            "POST",
            &format!("{t}/networks/{net}/ports"),
            Some(r#"{"port": {"state": "ACTIVE"}}"#),
        )
        .json()["port"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let body = format!(r#"{{"interface": {{"device": "{}"}}}}"#, vm.host);
        request(&addr, "PUT", &format!("{t}/interfaces/cli{i}"), Some(&body));
        let body = format!(r#"{{"attachment": {{"id": "cli{i}"}}}}"#);
        let r = request(
            &addr,
            "PUT",
            &format!("{t}/networks/{net}/ports/{p}/attachment"),
            Some(&body),
        );
        assert_eq!(r.status, 204, "{}", r.body);
        ports.push(p);
    }
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
    // A bad network id is a clear error, not a crash.
    let out = Command::new(env!("CARGO_BIN_EXE_qswitch"))
        .args(["macs", "--api", &addr, "--tenant", "ops", "no-such-net"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
}
