//! End to end through the v1.1 production features: a QoS limit measured on real frames
//! (delivered rate within 10% of the configured one, changed live), port counters that match the
//! frames sent, the admin MAC table view, and the daemon's token authentication. Needs root (CI
//! runs as root).

mod common;

use std::time::Duration;

use common::http::{request, request_with, wait_ready};
use common::*;
use serde_json::Value;

struct Api {
    addr: String,
}

impl Api {
    fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let r = request(&self.addr, method, path, body);
        let v = if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        };
        (r.status, v)
    }

    fn ok(&self, method: &str, path: &str, body: Option<&str>) -> Value {
        let (s, v) = self.call(method, path, body);
        assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
        v
    }

    fn stats(&self, port: &str) -> Value {
        self.ok("GET", &format!("{port}/stats"), None)["stats"].clone()
    }
}

fn counter(stats: &Value, key: &str) -> u64 {
    stats[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {stats}"))
}

fn policed(stats: &Value) -> u64 {
    stats["drops"]["policed"].as_u64().unwrap()
}

/// Frames the kernel dropped before the switch saw them.
fn kernel_drops(stats: &Value) -> u64 {
    ["rx_dropped", "rx_ring_full", "rx_fill_ring_empty_descs"]
        .iter()
        .map(|k| stats["kernel"][k].as_u64().unwrap())
        .sum()
}

/// A port's counters once they stop moving (published every millisecond while traffic flows).
fn settled(api: &Api, port: &str) -> Value {
    let mut last = api.stats(port);
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(50));
        let now = api.stats(port);
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("counters of {port} never settled: {last}");
}

/// Sends `count` frames at `pps` from `from` and counts what `to` receives; returns (received,
/// seconds the sending took).
fn measure(from: &Vm, to: &Vm, pps: u32, count: u32) -> (usize, f64) {
    let frame = frame_hex(&to.mac, &from.mac, None, 0x51);
    let cap = to.count(30.0, TEST_ETHERTYPE);
    let secs = from.send_paced(pps, count, &frame);
    (cap.finish_count(), secs)
}

/// A daemon with its store in a fresh directory, and its API.
fn start() -> (Api, Daemon) {
    let dir = std::env::temp_dir().join(unique("db"));
    std::fs::create_dir_all(&dir).unwrap();
    let api = Api { addr: free_addr() };
    let db = store(&dir);
    let daemon = Daemon::start_in(dir, &["--listen", &api.addr, "--db", &db]);
    assert!(
        wait_ready(&api.addr),
        "daemon did not start:\n{}",
        daemon.log()
    );
    (api, daemon)
}

#[test]
fn qos_limits_real_frames_live_and_counters_match_frames_sent() {
    let vm1 = Vm::new("p", 1, 0);
    let vm2 = Vm::new("p", 2, 0);
    let (api, daemon) = start();

    let t = "/v1.1/tenants/qos";
    let (net, ports) = plugged_pair(&api, &daemon, t, [&vm1, &vm2]);
    let (p1, p2) = (&ports[0], &ports[1]);

    // Unlimited: every frame the switch receives arrives, and the counters say exactly what
    // happened: rx on vm1's port = tx on vm2's port = frames vm2 saw, 60 bytes each. A frame the
    // kernel could not hand to the switch (its rings full while a loaded host kept the worker off
    // the CPU) is in the kernel's own counters instead. A warm-up lets the rings grow first.
    measure(&vm1, &vm2, 1000, 200);
    let (a1, a2) = (settled(&api, p1), settled(&api, p2));
    let (seen, _) = measure(&vm1, &vm2, 1000, 300);
    let (b1, b2) = (settled(&api, p1), settled(&api, p2));
    let rx = counter(&b1, "rx_packets") - counter(&a1, "rx_packets");
    let lost = kernel_drops(&b1) - kernel_drops(&a1);
    assert!(
        rx + lost >= 300 && rx >= 285,
        "sent 300, switch got {rx}, kernel lost {lost}:\n{b1}"
    );
    assert_eq!(
        seen as u64, rx,
        "frames the switch received but did not deliver:\n{b1}"
    );
    assert_eq!(counter(&b1, "rx_bytes") - counter(&a1, "rx_bytes"), rx * 60);
    assert_eq!(counter(&b2, "tx_packets") - counter(&a2, "tx_packets"), rx);
    assert_eq!(counter(&b2, "tx_bytes") - counter(&a2, "tx_bytes"), rx * 60);
    assert_eq!(policed(&b1), policed(&a1));

    // 500 frames/s with a 50-frame bucket: 3000 frames at 1000/s over ~3 s. A token bucket
    // delivers its depth plus the rate times the time; the rate measured here counts the depth.
    let qos = api.ok(
        "PUT",
        &format!("{p1}/qos"),
        Some(r#"{"qos": {"rate_pps": 500, "burst_packets": 50}}"#),
    );
    assert_eq!(qos["qos"]["rate_pps"], 500);
    let (seen, secs) = measure(&vm1, &vm2, 1000, 3000);
    let rate = seen as f64 / secs;
    eprintln!("QoS 500 pps: {seen} of 3000 frames in {secs:.3} s = {rate:.1} pps");
    assert!(
        (rate - 500.0).abs() <= 50.0,
        "delivered {rate:.1} pps for 500"
    );
    let (c1, c2) = (settled(&api, p1), settled(&api, p2));
    let rx = counter(&c1, "rx_packets") - counter(&b1, "rx_packets");
    let lost = kernel_drops(&c1) - kernel_drops(&b1);
    assert!(
        rx + lost >= 3000,
        "sent 3000, switch got {rx}, kernel lost {lost}"
    );
    // Every frame received was either delivered or policed.
    assert_eq!(policed(&c1) - policed(&b1), rx - seen as u64, "{c1}");
    assert_eq!(
        counter(&c2, "tx_packets") - counter(&b2, "tx_packets"),
        seen as u64
    );

    // A live change to 250 frames/s, with the default bucket (100 ms of the rate: 25 frames).
    api.ok(
        "PUT",
        &format!("{p1}/qos"),
        Some(r#"{"qos": {"rate_pps": 250}}"#),
    );
    let (seen, secs) = measure(&vm1, &vm2, 1000, 3000);
    let rate = seen as f64 / secs;
    eprintln!("QoS 250 pps: {seen} of 3000 frames in {secs:.3} s = {rate:.1} pps");
    assert!(
        (rate - 250.0).abs() <= 25.0,
        "delivered {rate:.1} pps for 250"
    );

    // A bit rate: 400 kbit/s of 60-byte frames is ~833 frames/s; a 50-frame bucket.
    api.ok(
        "PUT",
        &format!("{p1}/qos"),
        Some(r#"{"qos": {"rate_bps": 400000, "burst_bits": 24000}}"#),
    );
    let (seen, secs) = measure(&vm1, &vm2, 2000, 4000);
    let bps = seen as f64 * 480.0 / secs;
    eprintln!("QoS 400 kbit/s: {seen} of 4000 frames in {secs:.3} s = {bps:.0} bit/s");
    assert!(
        (bps - 400_000.0).abs() <= 40_000.0,
        "delivered {bps:.0} bit/s"
    );

    // Removed: every frame passes again.
    let (s, _) = api.call("DELETE", &format!("{p1}/qos"), None);
    assert_eq!(s, 204);
    assert_eq!(
        api.ok("GET", &format!("{p1}/qos"), None)["qos"],
        serde_json::json!({})
    );
    let before = settled(&api, p1);
    let (seen, _) = measure(&vm1, &vm2, 1000, 300);
    let after = settled(&api, p1);
    let rx = counter(&after, "rx_packets") - counter(&before, "rx_packets");
    assert!(rx >= 285, "sent 300, switch got {rx}");
    assert_eq!(seen as u64, rx, "nothing policed any more: {after}");
    assert_eq!(policed(&after), policed(&before));

    // The switch learned vm1's MAC on its port (noauth: the caller is an admin).
    let macs = api.ok("GET", &format!("{t}/networks/{net}/mac_table"), None);
    let port1 = p1.rsplit('/').next().unwrap();
    let entry = macs["macs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == vm1.mac.as_str())
        .unwrap_or_else(|| panic!("vm1's MAC not in {macs}"));
    assert_eq!(entry["port_id"], port1);
    assert_eq!(entry["static"], false);
    assert!(entry["age"].as_u64().unwrap() < 60);
}

#[test]
fn token_mode_daemon_refuses_unknown_tokens_and_serves_known_ones() {
    let dir = std::env::temp_dir().join(unique("tk"));
    std::fs::create_dir_all(&dir).unwrap();
    let tokens = dir.join("tokens.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qswitch"))
        .args(["token-digest", "s3cret-a"])
        .output()
        .unwrap();
    let digest = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(digest.len(), 64);
    std::fs::write(
        &tokens,
        format!("[[token]]\nsha256 = \"{digest}\"\ntenant = \"a\"\nroles = [\"member\"]\n"),
    )
    .unwrap();
    let addr = free_addr();
    let db = store(&dir);
    let daemon = Daemon::start_in(
        dir.clone(),
        &[
            "--listen",
            &addr,
            "--db",
            &db,
            "--no-dataplane",
            "--auth",
            "token",
            "--tokens",
            tokens.to_str().unwrap(),
        ],
    );
    assert!(wait_ready(&addr), "daemon did not start:\n{}", daemon.log());
    let r = request(&addr, "GET", "/v1.1/tenants/a/networks", None);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["QuantumError"]["type"], "Unauthorized");
    let h = [("X-Auth-Token", "s3cret-a")];
    let r = request_with(&addr, "GET", "/v1.1/tenants/a/networks", None, &h);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = request_with(&addr, "GET", "/v1.1/tenants/b/networks", None, &h);
    assert_eq!(r.status, 404);

    // Without authentication the daemon does not serve a non-loopback address.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qswitch"))
        .args(["serve", "--no-dataplane", "--listen", "0.0.0.0:0"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing"));
}

#[test]
fn the_config_files_api_section_sets_page_size_rate_limits_and_quotas() {
    let addr = free_addr();
    let daemon = Daemon::with_config(
        "[api]\nmax_page_size = 2\n\
         [api.rate_limit]\nwrite_per_minute = 60\nwrite_burst = 3\n\
         [api.quotas]\nnetworks = 2\n",
        &["--listen", &addr, "--no-dataplane"],
    );
    assert!(wait_ready(&addr), "daemon did not start:\n{}", daemon.log());
    let create = |tenant: &str| {
        request(
            &addr,
            "POST",
            &format!("/v1.1/tenants/{tenant}/networks"),
            Some(r#"{"network": {"name": "n"}}"#),
        )
    };
    assert_eq!(create("a").status, 202);
    assert_eq!(create("a").status, 202);
    let r = create("a");
    assert_eq!(r.status, 409, "quota of 2 networks: {}", r.body);
    assert_eq!(r.json()["QuantumError"]["type"], "OverQuota");
    // That was the third write of a burst of 3: the fourth is refused.
    let r = create("a");
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.json()["QuantumError"]["type"], "OverLimit");
    // Another tenant is not affected by a's rate.
    assert_eq!(create("b").status, 202);
    // Pages hold at most 2 networks.
    let r = request(&addr, "GET", "/v1.1/tenants/a/networks?limit=50", None);
    assert_eq!(r.json()["networks"].as_array().unwrap().len(), 2);
    let limits = request(&addr, "GET", "/v1.1/tenants/a/limits", None).json();
    assert_eq!(limits["limits"]["absolute"]["maxNetworks"], 2);
    assert_eq!(limits["limits"]["rate"][0]["class"], "write");
    // After a second, one more write passes.
    assert!(wait_for(Duration::from_secs(3), || create("a").status == 409));
}

/// Creates a Quantum network of tenant path `t` and plugs a new port of it for each VM
/// (registering its device as an interface of the tenant); waits for both to come up. Returns
/// the network id and the ports' paths.
fn plugged_pair(api: &Api, daemon: &Daemon, t: &str, vms: [&Vm; 2]) -> (String, Vec<String>) {
    let net = api.ok(
        "POST",
        &format!("{t}/networks"),
        Some(r#"{"network": {"name": "q"}}"#),
    )["network"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ports = Vec::new();
    for (vm, vif) in [(vms[0], "vif-p1"), (vms[1], "vif-p2")] {
        let id = api.ok(
            "POST",
            &format!("{t}/networks/{net}/ports"),
            Some(r#"{"port": {"state": "ACTIVE"}}"#),
        )["port"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        api.ok(
            "PUT",
            &format!("{t}/interfaces/{vif}"),
            Some(&format!(r#"{{"interface": {{"device": "{}"}}}}"#, vm.host)),
        );
        let port = format!("{t}/networks/{net}/ports/{id}");
        api.ok(
            "PUT",
            &format!("{port}/attachment"),
            Some(&format!(r#"{{"attachment": {{"id": "{vif}"}}}}"#)),
        );
        assert!(
            wait_for(Duration::from_secs(10), || {
                api.ok("GET", &port, None)["port"]["op-status"] == "UP"
            }),
            "port did not come up:\n{}",
            daemon.log()
        );
        // The data plane's log names the port by its id and device.
        let opened = format!("port {id} on {} forwarding", vm.host);
        assert!(daemon.log().contains(&opened), "no {opened:?} in the log");
        ports.push(port);
    }
    (net, ports)
}

#[test]
fn neutron_qos_policies_limit_what_a_port_sends_and_receives() {
    let vm1 = Vm::new("p", 3, 0);
    let vm2 = Vm::new("p", 4, 0);
    let (api, daemon) = start();
    let t = "/v1.1/tenants/qosv2";
    // Quantum ports are v2.0 ports: their QoS policy is set through v2.0.
    let (net, ports) = plugged_pair(&api, &daemon, t, [&vm1, &vm2]);
    let id = |path: &str| path.rsplit('/').next().unwrap().to_owned();
    let p1 = id(&ports[0]);
    let policy = |rules: &[(&str, &str)]| {
        let (s, v) = api.call(
            "POST",
            "/v2.0/qos/policies",
            Some(r#"{"policy": {"name": "l"}}"#),
        );
        assert_eq!(s, 201, "{v}");
        let pid = v["policy"]["id"].as_str().unwrap().to_owned();
        for (collection, body) in rules {
            let (s, v) = api.call(
                "POST",
                &format!("/v2.0/qos/policies/{pid}/{collection}"),
                Some(body),
            );
            assert_eq!(s, 201, "{v}");
        }
        pid
    };
    measure(&vm1, &vm2, 1000, 200);

    // What vm1 sends: 1 kpps (a bucket of 100 ms of it), sent at 2 kpps.
    let pps = policy(&[(
        "packet_rate_limit_rules",
        r#"{"packet_rate_limit_rule": {"max_kpps": 1, "direction": "egress"}}"#,
    )]);
    let (s, v) = api.call(
        "PUT",
        &format!("/v2.0/ports/{p1}"),
        Some(&format!(r#"{{"port": {{"qos_policy_id": "{pps}"}}}}"#)),
    );
    assert_eq!(
        (s, v["port"]["qos_policy_id"].as_str()),
        (200, Some(pps.as_str())),
        "{v}"
    );
    let before = settled(&api, &ports[0]);
    let (seen, secs) = measure(&vm1, &vm2, 2000, 4000);
    let rate = seen as f64 / secs;
    eprintln!("egress 1 kpps: {seen} of 4000 frames in {secs:.3} s = {rate:.1} pps");
    assert!(
        (rate - 1000.0).abs() <= 100.0,
        "delivered {rate:.1} pps for 1000"
    );
    let after = settled(&api, &ports[0]);
    assert!(policed(&after) > policed(&before), "{after}");
    // In use: the policy cannot go.
    let (s, v) = api.call("DELETE", &format!("/v2.0/qos/policies/{pps}"), None);
    assert_eq!(
        (s, v["NeutronError"]["type"].as_str()),
        (409, Some("QosPolicyInUse"))
    );

    // What vm2 receives, from its network's policy (vm1's own policy removed): 400 kbit/s of
    // 60-byte frames is ~833 frames/s, with a 24 kbit (50-frame) bucket.
    let (s, _) = api.call(
        "PUT",
        &format!("/v2.0/ports/{p1}"),
        Some(r#"{"port": {"qos_policy_id": null}}"#),
    );
    assert_eq!(s, 200);
    let bw = policy(&[(
        "bandwidth_limit_rules",
        r#"{"bandwidth_limit_rule": {"max_kbps": 400, "max_burst_kbps": 24, "direction": "ingress"}}"#,
    )]);
    let (s, v) = api.call(
        "PUT",
        &format!("/v2.0/networks/{net}"),
        Some(&format!(r#"{{"network": {{"qos_policy_id": "{bw}"}}}}"#)),
    );
    assert_eq!(s, 200, "{v}");
    let before = settled(&api, &ports[1]);
    let (seen, secs) = measure(&vm1, &vm2, 2000, 4000);
    let bps = seen as f64 * 480.0 / secs;
    eprintln!("ingress 400 kbit/s: {seen} of 4000 frames in {secs:.3} s = {bps:.0} bit/s");
    assert!(
        (bps - 400_000.0).abs() <= 40_000.0,
        "delivered {bps:.0} bit/s for 400000"
    );
    let after = settled(&api, &ports[1]);
    assert!(
        policed(&after) - policed(&before) >= 4000 - seen as u64 - 50,
        "refused copies are counted on the receiving port: {after}"
    );
    // The policy deleted from the network: unlimited again.
    let (s, _) = api.call(
        "PUT",
        &format!("/v2.0/networks/{net}"),
        Some(r#"{"network": {"qos_policy_id": null}}"#),
    );
    assert_eq!(s, 200);
    let (seen, _) = measure(&vm1, &vm2, 1000, 1000);
    assert!(seen >= 980, "{seen} of 1000 without a policy");
}
