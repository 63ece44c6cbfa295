//! End to end through the Neutron v2.0 API: a network, a subnet and two ports created over
//! REST; each port's "VM" is a namespace configured with the MAC and the address the port was
//! given, cabled to the switch by a veth whose host end is named by the Neutron/Nova convention
//! (`tap` + the first 11 characters of the port id). The switch opens each tap when it appears,
//! the ports go ACTIVE and the VMs ping each other; a spoofed source address is dropped by the
//! port's anti-spoofing rules until an allowed address pair (or turning port security off)
//! lets it through. Needs root (CI runs as root).

mod common;

use std::process::Command;
use std::time::Duration;

use common::http::{request, wait_ready};
use common::*;
use serde_json::{json, Value};

/// A namespace "VM" for a v2.0 port: the veth's host end is the port's tap device. The pair and
/// the namespace are deleted on drop, also when the test fails.
struct TapVm {
    ns: Netns,
    tap: String,
    ip: String,
}

impl TapVm {
    fn new(port: &Value, prefix_len: u8) -> TapVm {
        let id = port["id"].as_str().unwrap();
        let mac = port["mac_address"].as_str().unwrap();
        let ip = port["fixed_ips"][0]["ip_address"]
            .as_str()
            .unwrap()
            .to_owned();
        let ns = Netns::new(&unique("n"));
        let tap = format!("tap{}", &id[..11]);
        let dev = format!("{}v", ns.name);
        // The guard exists before the pair, so a failure below still deletes what was made.
        let vm = TapVm { ns, tap, ip };
        sh(&[
            "ip",
            "link",
            "add",
            &vm.tap,
            "type",
            "veth",
            "peer",
            "name",
            &dev,
            "netns",
            &vm.ns.name,
        ]);
        let _ = try_sh(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{}.disable_ipv6=1", vm.tap),
        ]);
        vm.ns.exec(&["ip", "link", "set", &dev, "address", mac]);
        vm.ns.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{}/{prefix_len}", vm.ip),
            "dev",
            &dev,
        ]);
        vm.ns.exec(&["ip", "link", "set", &dev, "up"]);
        sh(&["ip", "link", "set", &vm.tap, "up"]);
        vm
    }

    fn dev(&self) -> String {
        format!("{}v", self.ns.name)
    }

    /// Gives the VM's interface another MAC and forgets every neighbour, so the next ping
    /// resolves again (from the new MAC).
    fn set_mac(&self, mac: &str, peer: &TapVm) {
        self.ns
            .exec(&["ip", "link", "set", "dev", &self.dev(), "address", mac]);
        self.flush_neighbours();
        peer.flush_neighbours();
    }

    fn flush_neighbours(&self) {
        self.ns.exec(&["ip", "neigh", "flush", "dev", &self.dev()]);
    }

    fn ping(&self, ip: &str, from: Option<&str>) -> bool {
        let mut args = vec!["ping", "-c", "1", "-W", "1", "-q"];
        if let Some(src) = from {
            args.extend_from_slice(&["-I", src]);
        }
        args.push(ip);
        self.ns.try_exec(&args)
    }

    fn ping_until(&self, ip: &str, from: Option<&str>, timeout: Duration) -> bool {
        wait_for(timeout, || self.ping(ip, from))
    }
}

impl Drop for TapVm {
    fn drop(&mut self) {
        let _ = try_sh(&["ip", "link", "del", &self.tap]);
    }
}

struct Api {
    addr: String,
}

impl Api {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let text = body.map(|b| b.to_string());
        let r = request(&self.addr, method, path, text.as_deref());
        let v = if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        };
        (r.status, v)
    }

    fn create(&self, collection: &str, body: Value) -> Value {
        let (status, v) = self.call("POST", &format!("/v2.0/{collection}"), Some(body));
        assert_eq!(status, 201, "POST {collection}: {v}");
        v
    }

    fn status(&self, port: &str) -> String {
        let (_, v) = self.call("GET", &format!("/v2.0/ports/{port}"), None);
        v["port"]["status"].as_str().unwrap_or("").to_owned()
    }

    fn update_port(&self, port: &str, body: Value) {
        let (status, v) = self.call(
            "PUT",
            &format!("/v2.0/ports/{port}"),
            Some(json!({ "port": body })),
        );
        assert_eq!(status, 200, "PUT port: {v}");
    }
}

/// A daemon with its store in a fresh directory, and its API.
fn start() -> (Api, Daemon) {
    start_with(None)
}

/// As [`start`], the daemon reading `config` (TOML) as its configuration file, if given.
fn start_with(config: Option<&str>) -> (Api, Daemon) {
    let dir = std::env::temp_dir().join(unique("db"));
    std::fs::create_dir_all(&dir).unwrap();
    let db = store(&dir);
    let api = Api { addr: free_addr() };
    let cfg = dir.join("qswitch.toml");
    let mut args = vec!["--listen", &api.addr, "--db", &db];
    if let Some(toml) = config {
        std::fs::write(&cfg, toml).unwrap();
        args.extend(["--config", cfg.to_str().unwrap()]);
    }
    let daemon = Daemon::start_in(dir, &args);
    assert!(
        wait_ready(&api.addr),
        "daemon did not start:\n{}",
        daemon.log()
    );
    (api, daemon)
}

#[test]
fn the_daemon_reports_its_hosts_agent() {
    let (api, daemon) = start();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned();
    let mut agents = Value::Null;
    assert!(
        wait_for(Duration::from_secs(10), || {
            agents = api.call("GET", "/v2.0/agents", None).1["agents"].clone();
            agents.as_array().is_some_and(|a| !a.is_empty())
        }),
        "no agent reported:\n{}",
        daemon.log()
    );
    let a = &agents[0];
    assert_eq!(agents.as_array().unwrap().len(), 1, "{agents}");
    assert_eq!(a["host"], json!(host));
    assert_eq!(a["agent_type"], "qswitch agent");
    assert_eq!(a["alive"], true);
    assert!(a["configurations"]["workers"].as_u64().unwrap() >= 1, "{a}");
    let id = a["id"].as_str().unwrap();
    let (status, v) = api.call("GET", &format!("/v2.0/agents/{id}"), None);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["agent"]["host"], json!(host));
}

#[test]
fn v2_ports_bound_by_tap_name_forward_and_drop_spoofed_sources() {
    let (api, daemon) = start();

    // A subnet unique to this process inside 198.19.0.0/16 (within 198.18.0.0/15).
    let third = std::process::id() % 250 + 1;
    let cidr = format!("198.19.{third}.0/24");
    let net = api.create("networks", json!({"network": {"name": "e2e"}}))["network"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.create(
        "subnets",
        json!({"subnet": {"network_id": net, "cidr": cidr, "ip_version": 4}}),
    );
    let pa = api.create("ports", json!({"port": {"network_id": net, "name": "a"}}))["port"].clone();
    let pb = api.create("ports", json!({"port": {"network_id": net, "name": "b"}}))["port"].clone();
    let (ida, idb) = (
        pa["id"].as_str().unwrap().to_owned(),
        pb["id"].as_str().unwrap().to_owned(),
    );
    assert_eq!(api.status(&ida), "DOWN", "no device yet");

    let a = TapVm::new(&pa, 24);
    let b = TapVm::new(&pb, 24);
    assert!(
        wait_for(Duration::from_secs(10), || api.status(&ida) == "ACTIVE"
            && api.status(&idb) == "ACTIVE"),
        "ports did not go ACTIVE when their taps appeared:\n{}",
        daemon.log()
    );
    assert!(
        a.ping_until(&b.ip, None, Duration::from_secs(5)),
        "no ping between the two v2.0 ports:\n{}",
        daemon.log()
    );
    assert!(b.ping(&a.ip, None));
    // TCP both ways with the guests' default offloads, every byte checked.
    for (from, to) in [(&a, &b), (&b, &a)] {
        if let Err(e) = from.ns.tcp_transfer(&to.ns, &to.ip, 4 << 20) {
            panic!("TCP to {}: {e}\n{}", to.ip, daemon.log());
        }
    }

    // A source address the port was not given is dropped.
    let spoofed = format!("198.19.{third}.250");
    a.ns.exec(&[
        "ip",
        "addr",
        "add",
        &format!("{spoofed}/32"),
        "dev",
        &format!("{}v", a.ns.name),
    ]);
    assert!(
        !a.ping(&b.ip, Some(&spoofed)),
        "a spoofed source address went through"
    );
    assert!(a.ping(&b.ip, None), "the port's own address still works");

    // An allowed address pair lets it through, live.
    api.update_port(
        &ida,
        json!({"allowed_address_pairs": [{"ip_address": spoofed}]}),
    );
    assert!(
        a.ping_until(&b.ip, Some(&spoofed), Duration::from_secs(5)),
        "an allowed address pair did not pass:\n{}",
        daemon.log()
    );
    // Dropped again without the pair.
    api.update_port(&ida, json!({"allowed_address_pairs": []}));
    assert!(!a.ping(&b.ip, Some(&spoofed)));

    // A foreign source MAC is dropped; a pair with that MAC (and the port's address) passes.
    let foreign = "fa:16:3e:99:99:99";
    a.set_mac(foreign, &b);
    assert!(!a.ping(&b.ip, None), "a foreign source MAC went through");
    api.update_port(
        &ida,
        json!({"allowed_address_pairs": [{"ip_address": a.ip, "mac_address": foreign}]}),
    );
    a.flush_neighbours();
    b.flush_neighbours();
    assert!(
        a.ping_until(&b.ip, None, Duration::from_secs(5)),
        "an allowed pair with the foreign MAC did not pass:\n{}",
        daemon.log()
    );
    api.update_port(&ida, json!({"allowed_address_pairs": []}));
    a.set_mac(pa["mac_address"].as_str().unwrap(), &b);
    assert!(a.ping_until(&b.ip, None, Duration::from_secs(5)));

    // With port security off (its groups go with it, as Neutron requires) a sends from any
    // address; b's groups still decide what b receives: a is no longer a member of b's
    // default group, so b takes the ping only once a rule lets ICMP in from anywhere.
    api.update_port(
        &ida,
        json!({"port_security_enabled": false, "security_groups": []}),
    );
    assert!(
        !a.ping(&b.ip, Some(&spoofed)),
        "b's groups let a non-member in"
    );
    let default = pb["security_groups"][0].as_str().unwrap();
    api.create(
        "security-group-rules",
        json!({"security_group_rule": {"security_group_id": default, "direction": "ingress",
            "protocol": "icmp", "remote_ip_prefix": "0.0.0.0/0"}}),
    );
    assert!(
        a.ping_until(&b.ip, Some(&spoofed), Duration::from_secs(5)),
        "port security off and ICMP allowed still drops:\n{}",
        daemon.log()
    );

    // Admin down: the port is DOWN and forwards nothing.
    api.update_port(&idb, json!({"admin_state_up": false}));
    assert!(wait_for(Duration::from_secs(5), || api.status(&idb) == "DOWN"));
    assert!(!a.ping(&b.ip, None));

    // Deleting the ports and the network through the API.
    drop(a);
    drop(b);
    for id in [&ida, &idb] {
        let (s, _) = api.call("DELETE", &format!("/v2.0/ports/{id}"), None);
        assert_eq!(s, 204);
    }
    let (s, _) = api.call("DELETE", &format!("/v2.0/networks/{net}"), None);
    assert_eq!(s, 204);
}

/// The frames all workers handed to another worker, from the daemon's `/metrics`.
fn crossed(api: &Api) -> u64 {
    let r = request(&api.addr, "GET", "/metrics", None);
    r.body
        .lines()
        .filter(|l| l.starts_with("qswitch_worker_crossed_out_frames"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// The count of a port's drops under `reason`, from the daemon's `/metrics`.
fn drops(api: &Api, port: &str, reason: &str) -> u64 {
    let r = request(&api.addr, "GET", "/metrics", None);
    r.body
        .lines()
        .filter(|l| l.starts_with("qswitch_port_drops") && l.contains(port))
        .filter(|l| l.contains(&format!("reason=\"{reason}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The replies a background `ping` got, by sequence number, from its output.
fn replied_seqs(out: &str) -> Vec<u32> {
    out.lines()
        .filter_map(|l| l.split("icmp_seq=").nth(1)?.split(' ').next()?.parse().ok())
        .collect()
}

#[test]
fn security_groups_filter_traffic_between_vms_live() {
    // Two workers whatever the machine: the ports are spread over both (see the streams below).
    let (api, daemon) = start_with(Some("[switch]\nworkers = 2\n"));
    let third = std::process::id() % 120 + 100;
    let net = api.create("networks", json!({"network": {"name": "sg"}}))["network"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.create(
        "subnets",
        json!({"subnet": {"network_id": net, "cidr": format!("198.19.{third}.0/24"),
            "ip_version": 4}}),
    );
    let web = api.create(
        "security-groups",
        json!({"security_group": {"name": "web"}}),
    )["security_group"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let port = |groups: Option<Vec<&str>>| {
        let mut body = json!({"network_id": net});
        if let Some(g) = groups {
            body["security_groups"] = json!(g);
        }
        api.create("ports", json!({ "port": body }))["port"].clone()
    };
    // a and b in the project's default group; c in "web" only.
    let (pa, pb, pc) = (port(None), port(None), port(Some(vec![&web])));
    let default = pa["security_groups"][0].as_str().unwrap().to_owned();
    let (a, b, c) = (
        TapVm::new(&pa, 24),
        TapVm::new(&pb, 24),
        TapVm::new(&pc, 24),
    );
    let ids: Vec<String> = [&pa, &pb, &pc]
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        wait_for(Duration::from_secs(10), || ids
            .iter()
            .all(|id| api.status(id) == "ACTIVE")),
        "{}",
        daemon.log()
    );
    let rule = |group: &str, body: Value| {
        let mut r = body;
        r["security_group_id"] = json!(group);
        r["direction"] = json!("ingress");
        api.create("security-group-rules", json!({ "security_group_rule": r }))
            ["security_group_rule"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // Members of the default group reach each other; TCP and UDP too (replies tracked).
    assert!(
        a.ping_until(&b.ip, None, Duration::from_secs(5)),
        "{}",
        daemon.log()
    );
    a.ns.tcp_transfer(&b.ns, &b.ip, 1 << 20)
        .unwrap_or_else(|e| panic!("TCP a -> b: {e}\n{}", daemon.log()));
    assert_eq!(a.ns.udp_echo(&b.ns, &b.ip, 20, 300), (20, 0));

    // c's group lets nothing in, and c is not a member of a's group: no ping either way.
    assert!(!a.ping(&c.ip, None), "web lets ICMP in without a rule");
    assert!(!c.ping(&a.ip, None), "default lets a non-member in");
    assert!(drops(&api, &ids[2], "sg_ingress") > 0);
    assert!(drops(&api, &ids[0], "sg_ingress") > 0);

    // A rule applies at once: ICMP from the default group's members into web.
    let icmp = rule(
        &web,
        json!({"protocol": "icmp", "remote_group_id": default}),
    );
    assert!(
        a.ping_until(&c.ip, None, Duration::from_secs(5)),
        "{}",
        daemon.log()
    );
    assert!(b.ping(&c.ip, None));
    // An ICMP query's reply is tracked as an echo's is: c's timestamp replies reach a, whose
    // group lets nothing of c's in.
    assert_eq!(a.ns.icmp_timestamps(&c.ip, 3), 3, "{}", daemon.log());
    assert!(!c.ping(&a.ip, None));
    // TCP only where a rule allows it: 20000-20999 (the test servers' ports) from anywhere.
    assert!(
        a.ns.tcp_transfer(&c.ns, &c.ip, 4096).is_err(),
        "TCP without a rule"
    );
    let tcp = rule(
        &web,
        json!({"protocol": "tcp", "port_range_min": 20000,
        "port_range_max": 20999, "remote_ip_prefix": "0.0.0.0/0"}),
    );
    a.ns.tcp_transfer(&c.ns, &c.ip, 1 << 20)
        .unwrap_or_else(|e| panic!("TCP a -> c with a rule: {e}\n{}", daemon.log()));

    // The operator's view of what a port's groups track (admin).
    let tenant = pc["tenant_id"].as_str().unwrap().to_owned();
    let tracked = |port: &str| {
        let path = format!("/v1.1/tenants/{tenant}/networks/{net}/ports/{port}/connections");
        let (s, v) = api.call("GET", &path, None);
        assert_eq!(s, 200, "{v}");
        v["connections"].as_array().unwrap().clone()
    };
    let between = |x: &Value, proto: &str, from: &str, to: &str| {
        x["protocol"] == proto && x["source"] == from && x["destination"] == to
    };
    // c tracks the transfer its TCP rule let in; a, what it opened towards c.
    let of_c = tracked(&ids[2]);
    assert!(
        of_c.iter().any(|x| between(x, "tcp", &a.ip, &c.ip)
            && x["direction"] == "ingress"
            && x["cut"] == false
            && x["destination_port"]
                .as_u64()
                .is_some_and(|p| (20000..=20999).contains(&p))),
        "a's TCP into c: {of_c:?}"
    );
    let of_a = tracked(&ids[0]);
    assert!(
        of_a.iter()
            .any(|x| between(x, "tcp", &a.ip, &c.ip) && x["direction"] == "egress"),
        "a's TCP out to c: {of_a:?}"
    );

    // Membership changes apply live: b leaves the default group, so c no longer takes its ping.
    api.update_port(&ids[1], json!({"security_groups": [web]}));
    assert!(
        wait_for(Duration::from_secs(5), || !b.ping(&c.ip, None)),
        "a former member still reaches c"
    );
    assert!(a.ping(&c.ip, None), "a is still a member");

    // Removing a rule cuts the connections it allowed: a ping running across the removal
    // gets no replies after it.
    let child = std::process::Command::new("ip")
        .args([
            "netns", "exec", &a.ns.name, "ping", "-c", "30", "-i", "0.2", "-W", "1",
        ])
        .arg(&c.ip)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let (s, _) = api.call(
        "DELETE",
        &format!("/v2.0/security-group-rules/{icmp}"),
        None,
    );
    assert_eq!(s, 204);
    let out = child.wait_with_output().unwrap();
    let seqs = replied_seqs(&String::from_utf8_lossy(&out.stdout));
    assert!(seqs.len() >= 3, "the ping ran before the removal: {seqs:?}");
    assert!(
        seqs.iter().all(|s| *s < 20),
        "replies long after the rule went: {seqs:?}"
    );
    // The ping is cut by the rule's removal, as c's tracked connections say, on the command
    // line too.
    let of_c = tracked(&ids[2]);
    assert!(
        of_c.iter().any(|x| between(x, "icmp", &a.ip, &c.ip)
            && x["direction"] == "ingress"
            && x["icmp_type"] == 8
            && x["cut"] == true),
        "the cut ping: {of_c:?}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qswitch"))
        .args([
            "connections",
            "--api",
            &api.addr,
            "--tenant",
            &tenant,
            &net,
            &ids[2],
        ])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listing}");
    assert!(
        listing.lines().any(|l| l.starts_with("icmp")
            && l.contains("ingress")
            && l.contains(&format!("{} type 8", a.ip))
            && l.contains("(cut)")),
        "{listing}"
    );
    // The TCP rule stays in force.
    a.ns.tcp_transfer(&c.ns, &c.ip, 1 << 16)
        .unwrap_or_else(|e| panic!("TCP after the ICMP rule went: {e}"));
    // Removing it cuts established TCP streams into c, from a and from b. With two workers one
    // of them is on a worker other than c's (ports go to the least loaded worker): its segments
    // leave straight through c's socket once c's worker has published the connection (a few
    // crossings in all, not one per 64 KB), and stop all the same.
    let remove = || {
        let (s, _) = api.call("DELETE", &format!("/v2.0/security-group-rules/{tcp}"), None);
        assert_eq!(s, 204);
    };
    let crossed_before = crossed(&api);
    let ((from_a, at), (from_b, _)) = std::thread::scope(|scope| {
        let b_stream = scope.spawn(|| {
            b.ns.tcp_stream(&c.ns, &c.ip, 6, Duration::from_secs(2), || {})
        });
        let a_stream =
            a.ns.tcp_stream(&c.ns, &c.ip, 6, Duration::from_secs(2), remove);
        (a_stream, b_stream.join().unwrap())
    });
    std::thread::sleep(Duration::from_millis(300));
    let crossings = crossed(&api) - crossed_before;
    // From 1.5 s after the removal was answered on (the two streams start within a few hundred
    // milliseconds of each other).
    let cut = ((at.as_secs_f64() + 1.5) * 4.0).ceil() as usize;
    assert!(
        cut < 24,
        "the removal took until {at:?} into the 6 s streams"
    );
    let mut moved = 0;
    for (who, received) in [("a", from_a), ("b", from_b)] {
        let before: u64 = received[..6].iter().sum();
        assert!(
            before > 0,
            "{who}'s stream moved before the removal: {received:?}\n{}",
            daemon.log()
        );
        assert!(
            received[cut..].iter().all(|&b| b == 0),
            "{who}'s stream went on after the rule went ({at:?}): {received:?}"
        );
        moved += received.iter().sum::<u64>();
    }
    assert!(
        crossings < 200 && crossings * (256 << 10) < moved,
        "{crossings} frames crossed between the workers for {moved} bytes"
    );
    assert!(
        a.ns.tcp_transfer(&c.ns, &c.ip, 4096).is_err(),
        "TCP rule removed"
    );
}

/// Runs busybox's DHCP client on a VM's interface (address flushed first) with a script that
/// records what it was given and configures it; returns the record, or `None` with no lease.
fn dhcp_client(vm: &TapVm, tries: &str) -> Option<String> {
    let dir = std::env::temp_dir().join(unique("dhcp"));
    std::fs::create_dir_all(&dir).unwrap();
    let record = dir.join("lease");
    let script = dir.join("script.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$1\" in bound|renew)\n  echo \"ip=$ip subnet=$subnet mask=$mask \
             router=$router dns=$dns mtu=$mtu staticroutes=$staticroutes\" > {}\n  ip addr \
             add \"$ip/$mask\" dev \"$interface\"\n;; esac\n",
            record.display()
        ),
    )
    .unwrap();
    sh(&["chmod", "+x", script.to_str().unwrap()]);
    vm.ns.exec(&["ip", "addr", "flush", "dev", &vm.dev()]);
    let ok = vm.ns.try_exec(&[
        "busybox",
        "udhcpc",
        "-i",
        &vm.dev(),
        "-f",
        "-q",
        "-n",
        "-t",
        tries,
        "-T",
        "1",
        "-s",
        script.to_str().unwrap(),
    ]);
    let out = std::fs::read_to_string(&record).ok();
    let _ = std::fs::remove_dir_all(&dir);
    out.filter(|_| ok)
}

/// What ISC dhclient is asked for: an IPv4 lease, a DHCPv6 lease, or a DHCPv6 information
/// request only (`-S`).
#[derive(Clone, Copy, PartialEq)]
enum Dhclient {
    V4,
    V6,
    V6InfoOnly,
}

/// Runs ISC dhclient on a VM's interface with a script that records what it was given and
/// configures the address; returns the record, or `None` with no answer within `secs` seconds.
/// (dhclient 4.4 runs its script with `RENEW6` for the answer to an information request.)
fn dhclient(vm: &TapVm, ask: Dhclient, secs: u32) -> Option<String> {
    let dir = std::env::temp_dir().join(unique("dhclient"));
    std::fs::create_dir_all(&dir).unwrap();
    let record = dir.join("record");
    let script = dir.join("script.sh");
    let conf = dir.join("dhclient.conf");
    let body = if ask == Dhclient::V4 {
        "case \"$reason\" in BOUND|RENEW|REBOOT)\n  echo \"reason=$reason ip=$new_ip_address \
         mask=$new_subnet_mask router=$new_routers dns=$new_domain_name_servers \
         mtu=$new_interface_mtu routes=$new_rfc3442_classless_static_routes\" > {record}\n  \
         ip addr add \"$new_ip_address/$new_subnet_mask\" dev \"$interface\"\n;; esac\n"
    } else {
        "case \"$reason\" in BOUND6|RENEW6|INFORM6)\n  echo \"reason=$reason \
         ip=$new_ip6_address dns=$new_dhcp6_name_servers\" > {record}\n  [ -n \"$new_ip6_address\" ] \
         && ip -6 addr add \"$new_ip6_address/64\" dev \"$interface\" nodad\n;; esac\n"
    };
    let body = body.replace("{record}", &record.display().to_string());
    std::fs::write(&script, format!("#!/bin/sh\n{body}exit 0\n")).unwrap();
    // dhclient.conf's default `request` list leaves out option 121 (classless routes).
    let request = if ask == Dhclient::V4 {
        "option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;\n\
         request subnet-mask, routers, domain-name-servers, interface-mtu, \
         rfc3442-classless-static-routes;\n"
    } else {
        ""
    };
    std::fs::write(&conf, format!("timeout {secs};\nretry 1;\n{request}")).unwrap();
    sh(&["chmod", "+x", script.to_str().unwrap()]);
    if ask == Dhclient::V4 {
        vm.ns.exec(&["ip", "addr", "flush", "dev", &vm.dev()]);
    }
    let (lease, pid) = (dir.join("lease"), dir.join("pid"));
    let family = if ask == Dhclient::V4 { "-4" } else { "-6" };
    let mut args = vec![
        "dhclient",
        family,
        "-1",
        "-v",
        "-cf",
        conf.to_str().unwrap(),
        "-sf",
        script.to_str().unwrap(),
        "-lf",
        lease.to_str().unwrap(),
        "-pf",
        pid.to_str().unwrap(),
    ];
    if ask == Dhclient::V6InfoOnly {
        args.push("-S");
    }
    let dev = vm.dev();
    args.push(&dev);
    let run = Command::new("ip")
        .args(["netns", "exec", &vm.ns.name])
        .args(&args)
        .output()
        .unwrap();
    let ok = run.status.success();
    if !ok {
        eprintln!(
            "dhclient: {} {}",
            run.status,
            String::from_utf8_lossy(&run.stderr)
        );
    }
    // dhclient -1 goes on in the background once it has a lease, and its pid file may appear only
    // after the foreground process has returned: wait for it (an information request leaves none),
    // then stop the client.
    // The file may still name the foreground process, gone by now, whose pid another process
    // (another test's daemon) may have taken: only a dhclient is stopped.
    for _ in 0..if ask == Dhclient::V6InfoOnly { 1 } else { 50 } {
        if let Ok(p) = std::fs::read_to_string(&pid) {
            let p = p.trim();
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            if !p.is_empty() && comm.trim() == "dhclient" {
                let _ = Command::new("kill").arg(p).status();
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = std::fs::read_to_string(&record).ok();
    let _ = std::fs::remove_dir_all(&dir);
    out.filter(|_| ok)
}

/// A port on each network with a VM on it (a /24 address), once the switch forwards for all.
fn vms_on<const N: usize>(api: &Api, daemon: &Daemon, nets: [&str; N]) -> [(Value, TapVm); N] {
    let vms = nets.map(|n| {
        let p = api.create("ports", json!({"port": {"network_id": n}}))["port"].clone();
        let vm = TapVm::new(&p, 24);
        (p, vm)
    });
    assert!(
        wait_for(Duration::from_secs(10), || vms
            .iter()
            .all(|(p, _)| api.status(p["id"].as_str().unwrap()) == "ACTIVE")),
        "{}",
        daemon.log()
    );
    vms
}

/// A new network's id.
fn network(api: &Api, name: &str) -> String {
    api.create("networks", json!({"network": {"name": name}}))["network"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn the_switch_answers_a_ports_dhcp_client_with_its_address_and_subnet() {
    let (api, daemon) = start();
    // Subnets unique to this process inside 198.18.0.0/16.
    let third = std::process::id() % 120 + 1;
    let (lan, dark) = (format!("198.18.{third}"), format!("198.18.{}", third + 120));
    let net = |name: &str| network(&api, name);
    let (n1, n2) = (net("dhcp"), net("no-dhcp"));
    api.create(
        "subnets",
        json!({"subnet": {"network_id": n1, "cidr": format!("{lan}.0/24"), "ip_version": 4,
            "dns_nameservers": [format!("{lan}.53")],
            "host_routes": [{"destination": "198.19.0.0/16", "nexthop": format!("{lan}.254")}]}}),
    );
    api.create(
        "subnets",
        json!({"subnet": {"network_id": n2, "cidr": format!("{dark}.0/24"), "ip_version": 4,
            "enable_dhcp": false}}),
    );
    let [(pa, a), (_, c)] = vms_on(&api, &daemon, [&n1, &n2]);
    let lease = dhcp_client(&a, "5").unwrap_or_else(|| panic!("no lease:\n{}", daemon.log()));
    for want in [
        format!("ip={} ", a.ip),
        "subnet=255.255.255.0 ".into(),
        format!("router={lan}.1 "),
        format!("dns={lan}.53"),
        "mtu=1500".into(),
    ] {
        assert!(lease.contains(&want), "{want} in {lease}");
    }
    // The client configured exactly the port's address, and it works.
    let addrs =
        a.ns.exec(&["ip", "-4", "-o", "addr", "show", "dev", &a.dev()]);
    assert!(addrs.contains(&format!("{}/24", a.ip)), "{addrs}");
    // ISC dhclient gets the same (it asks for option 121 by name; busybox's takes what comes),
    // its classless routes with the default route through the gateway (RFC 3442: a client
    // given option 121 ignores option 3).
    let lease = dhclient(&a, Dhclient::V4, 10)
        .unwrap_or_else(|| panic!("no lease for dhclient:\n{}", daemon.log()));
    let lan_bytes = lan.replace('.', " ");
    for want in [
        format!("ip={} ", a.ip),
        "mask=255.255.255.0 ".into(),
        format!("router={lan}.1 "),
        format!("dns={lan}.53 "),
        "mtu=1500 ".into(),
        format!("16 198 19 {lan_bytes} 254"),
        format!("0 {lan_bytes} 1"),
    ] {
        assert!(lease.contains(&want), "{want} in {lease}");
    }
    // A subnet's settings reach the responder live.
    let subnet = pa["fixed_ips"][0]["subnet_id"].as_str().unwrap();
    let (status, v) = api.call(
        "PUT",
        &format!("/v2.0/subnets/{subnet}"),
        Some(json!({"subnet": {"dns_nameservers": [format!("{lan}.54")]}})),
    );
    assert_eq!(status, 200, "{v}");
    let lease = dhcp_client(&a, "5").unwrap_or_else(|| panic!("no lease:\n{}", daemon.log()));
    assert!(lease.contains(&format!("dns={lan}.54")), "{lease}");
    // No answer where DHCP is disabled.
    assert!(
        dhcp_client(&c, "2").is_none(),
        "a lease on a subnet without DHCP"
    );
}

/// Two networks, each with an IPv4 /24 unique to this process (`tag`): the first named
/// `first`, the second IPv4 only.
fn two_networks(api: &Api, first: &str, tag: u32) -> (String, String) {
    let (n1, n2) = (network(api, first), network(api, "v4-only"));
    for (n, cidr) in [
        (&n1, format!("198.18.{tag}.0/24")),
        (&n2, format!("198.18.{}.0/24", tag + 120)),
    ] {
        api.create(
            "subnets",
            json!({"subnet": {"network_id": n, "cidr": cidr, "ip_version": 4}}),
        );
    }
    (n1, n2)
}

/// The port's fixed IP that starts with `prefix` (an IPv6 prefix written `2001:db8:x::`).
fn address_in(port: &Value, prefix: &str) -> String {
    port["fixed_ips"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["ip_address"].as_str())
        .find(|ip| ip.starts_with(prefix.trim_end_matches(':')))
        .unwrap_or_else(|| panic!("no address in {prefix} on the port: {port}"))
        .to_owned()
}

/// Turns IPv6 on in a VM (every namespace of the tests starts with it off); without duplicate
/// address detection when `dad` is false, so that the link-local address is ready at once.
fn enable_ipv6(vm: &TapVm, dad: bool) {
    let dad = if dad { "1" } else { "0" };
    for (knob, v) in [("accept_dad", dad), ("disable_ipv6", "0")] {
        for conf in ["all", "default", vm.dev().as_str()] {
            vm.ns
                .exec(&["sysctl", "-qw", &format!("net.ipv6.conf.{conf}.{knob}={v}")]);
        }
    }
}

/// A VM's global IPv6 addresses, as `ip -o` lists them.
fn global_v6(vm: &TapVm) -> String {
    vm.ns.exec(&[
        "ip",
        "-6",
        "-o",
        "addr",
        "show",
        "dev",
        &vm.dev(),
        "scope",
        "global",
    ])
}

/// Has the port counted any of `counter` (a `qswitch_port_*_total` metric)?
fn counted(api: &Api, counter: &str, port_id: &str) -> bool {
    let scrape = request(&api.addr, "GET", "/metrics", None).body.clone();
    scrape.lines().any(|l| {
        l.starts_with(&format!("{counter}{{")) && l.contains(port_id) && !l.ends_with(" 0")
    })
}

#[test]
fn the_switch_answers_a_ports_dhcpv6_client_with_its_address_and_dns() {
    let (api, daemon) = start();
    let tag = std::process::id() % 120 + 1;
    let (n1, n2) = two_networks(&api, "dhcpv6", tag);
    let (stateful, stateless) = (
        format!("2001:db8:{tag:x}::"),
        format!("2001:db8:{:x}::", tag + 120),
    );
    for (prefix, mode) in [
        (&stateful, "dhcpv6-stateful"),
        (&stateless, "dhcpv6-stateless"),
    ] {
        api.create(
            "subnets",
            json!({"subnet": {"network_id": n1, "cidr": format!("{prefix}/64"), "ip_version": 6,
                "ipv6_ra_mode": mode, "ipv6_address_mode": mode,
                "dns_nameservers": [format!("{stateful}53")]}}),
        );
    }
    let [(pa, a), (_, c)] = vms_on(&api, &daemon, [&n1, &n2]);
    let v6 = address_in(&pa, &stateful);
    // IPv6 on in both VMs, without duplicate address detection (the client needs a link-local
    // address that is ready).
    enable_ipv6(&a, false);
    enable_ipv6(&c, false);
    std::thread::sleep(Duration::from_millis(500));
    let lease = dhclient(&a, Dhclient::V6, 10)
        .unwrap_or_else(|| panic!("no DHCPv6 lease:\n{}", daemon.log()));
    assert!(lease.contains("reason=BOUND6"), "{lease}");
    assert!(lease.contains(&format!("ip={v6} ")), "{v6} in {lease}");
    assert!(lease.contains(&format!("dns={stateful}53")), "{lease}");
    let addrs = global_v6(&a);
    assert!(addrs.contains(&format!("{v6}/64")), "{addrs}");
    // Stateless: an information request gets the DNS servers.
    let info = dhclient(&a, Dhclient::V6InfoOnly, 10)
        .unwrap_or_else(|| panic!("no DHCPv6 reply:\n{}", daemon.log()));
    assert!(info.contains(&format!("dns={stateful}53")), "{info}");
    // A network without DHCPv6 subnets answers nothing.
    assert!(
        dhclient(&c, Dhclient::V6InfoOnly, 3).is_none(),
        "a DHCPv6 answer without DHCPv6 subnets"
    );
    let ida = pa["id"].as_str().unwrap();
    assert!(
        counted(&api, "qswitch_port_dhcp_replies_total", ida),
        "no DHCP reply counted for {ida}"
    );
}

#[test]
fn the_switch_advertises_slaac_prefixes_and_the_vm_takes_its_ports_address() {
    let (api, daemon) = start();
    // Addresses unique to this process: 198.18.0.0/16 and the documentation prefix.
    let tag = std::process::id() % 120 + 1;
    let (n1, n2) = two_networks(&api, "slaac", tag);
    let prefix = format!("2001:db8:{tag:x}::");
    api.create(
        "subnets",
        json!({"subnet": {"network_id": n1, "cidr": format!("{prefix}/64"), "ip_version": 6,
            "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac",
            "dns_nameservers": [format!("{prefix}53")]}}),
    );
    let [(pa, a), (_, c)] = vms_on(&api, &daemon, [&n1, &n2]);
    let v6 = address_in(&pa, &prefix);
    // IPv6 on in both VMs: each kernel solicits a router once its link-local address is ready.
    enable_ipv6(&a, true);
    enable_ipv6(&c, true);
    let global = global_v6;
    // The VM forms, from the advertised prefix and its MAC, exactly the port's address.
    assert!(
        wait_for(Duration::from_secs(15), || global(&a)
            .contains(&format!("{v6}/64"))),
        "no {v6}/64 in {}:\n{}",
        global(&a),
        daemon.log()
    );
    // The advertisement names no default router (the switch routes nothing) and was counted.
    let routes = a.ns.exec(&["ip", "-6", "route", "show", "default"]);
    assert!(routes.trim().is_empty(), "a default route: {routes}");
    let ida = pa["id"].as_str().unwrap();
    assert!(
        counted(&api, "qswitch_port_ra_replies_total", ida),
        "no router advertisement counted for {ida}"
    );
    // A change of what is advertised reaches the VM, whose kernel will not solicit again: the
    // switch tells it unsolicited. The network's MTU lowered, the VM's IPv6 MTU follows.
    let (status, v) = api.call(
        "PUT",
        &format!("/v2.0/networks/{n1}"),
        Some(json!({"network": {"mtu": 1400}})),
    );
    assert_eq!(status, 200, "{v}");
    let mtu_knob = format!("net.ipv6.conf.{}.mtu", a.dev());
    let mtu = || a.ns.exec(&["sysctl", "-n", &mtu_knob]).trim().to_owned();
    assert!(
        wait_for(Duration::from_secs(10), || mtu() == "1400"),
        "the VM's IPv6 MTU is {} after the network's became 1400:\n{}",
        mtu(),
        daemon.log()
    );
    // A network without SLAAC subnets advertises nothing.
    std::thread::sleep(Duration::from_secs(2));
    assert!(global(&c).trim().is_empty(), "{}", global(&c));
}

/// A host outside the switch: a namespace holding one end of a veth pair whose other end
/// (`link`) stays in the root namespace, for a switch to open; deleted on drop.
struct Outside {
    ns: Netns,
    link: String,
}

impl Outside {
    fn new(tag: &str, cidr: &str) -> Outside {
        let ns = Netns::new(&unique(tag));
        let o = Outside {
            link: format!("{}u", ns.name),
            ns,
        };
        let dev = format!("{}o", o.ns.name);
        sh(&[
            "ip", "link", "add", &o.link, "type", "veth", "peer", "name", &dev, "netns", &o.ns.name,
        ]);
        let _ = try_sh(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{}.disable_ipv6=1", o.link),
        ]);
        sh(&["ip", "link", "set", &o.link, "up"]);
        o.ns.exec(&["ip", "addr", "add", cidr, "dev", &dev]);
        o.ns.exec(&["ip", "link", "set", &dev, "up"]);
        o
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = try_sh(&["ip", "link", "del", &self.link]);
    }
}

#[test]
fn provider_networks_reach_their_outside_segment_and_nothing_else() {
    // Two physical networks. "datacentre" carries tenant VLANs 100-199; its uplink is cabled
    // to the datacentre's own switch (a second qswitch, its trunk), where VLAN 200 leads to a
    // router (`r200`) and the untagged segment to another host (`r0`) with an address of the
    // same subnet, which the VLAN 200 network must not reach. "storage" is flat: its uplink
    // leads straight to a storage host.
    let third = std::process::id() % 100 + 1;
    let (net_a, net_b) = (format!("198.19.{third}"), format!("198.19.{}", third + 100));
    let cable = Cable::new("dc");
    let r200 = Outside::new("rv", &format!("{net_a}.1/24"));
    let r0 = Outside::new("ru", &format!("{net_a}.2/24"));
    let storage = Outside::new("st", &format!("{net_b}.1/24"));
    let _datacentre = Daemon::with_config(
        &format!(
            "[uplink]\ndevice = \"{}\"\n\
             [[network]]\nid = \"v200\"\nvlan = 200\n\
             [[network]]\nid = \"untagged\"\nvlan = 0\n\
             [[port]]\nid = \"r200\"\ndevice = \"{}\"\nnetwork = \"v200\"\n\
             [[port]]\nid = \"r0\"\ndevice = \"{}\"\nnetwork = \"untagged\"\n",
            cable.b, r200.link, r0.link
        ),
        &[],
    );
    let api = Api { addr: free_addr() };
    let daemon = Daemon::with_config(
        &format!(
            "[[physnet]]\nname = \"datacentre\"\ndevice = \"{}\"\nvlan_ranges = \"100:199\"\n\
             [[physnet]]\nname = \"storage\"\ndevice = \"{}\"\n",
            cable.a, storage.link
        ),
        &["--listen", &api.addr],
    );
    assert!(wait_ready(&api.addr), "{}", daemon.log());

    let network =
        |body: Value| api.call("POST", "/v2.0/networks", Some(json!({ "network": body })));
    // A tenant network draws its VLAN from the first physical network with ranges.
    let (s, tenant) = network(json!({"name": "t"}));
    assert_eq!(s, 201, "{tenant}");
    let t = &tenant["network"];
    assert_eq!(t["provider:network_type"], "vlan");
    assert_eq!(t["provider:physical_network"], "datacentre");
    assert_eq!(t["provider:segmentation_id"], 100);
    // Provider networks, as an admin maps them.
    let (s, a) = network(json!({"name": "a", "provider:network_type": "vlan",
        "provider:physical_network": "datacentre", "provider:segmentation_id": 200}));
    assert_eq!(s, 201, "{a}");
    let (s, b) = network(json!({"name": "b", "provider:network_type": "flat",
        "provider:physical_network": "storage"}));
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["network"]["provider:segmentation_id"], Value::Null);
    // Refusals, as Neutron's ML2 gives them.
    for (body, status, kind) in [
        (
            json!({"provider:network_type": "vlan", "provider:physical_network": "datacentre",
            "provider:segmentation_id": 200}),
            409,
            "VlanIdInUse",
        ),
        (
            json!({"provider:network_type": "flat", "provider:physical_network": "storage"}),
            409,
            "FlatNetworkInUse",
        ),
        (
            json!({"provider:network_type": "vlan", "provider:physical_network": "nowhere",
            "provider:segmentation_id": 5}),
            400,
            "InvalidInput",
        ),
        (
            json!({"provider:network_type": "vlan", "provider:physical_network": "datacentre",
            "provider:segmentation_id": 4095}),
            400,
            "InvalidInput",
        ),
        (
            json!({"provider:network_type": "vxlan"}),
            400,
            "InvalidInput",
        ),
    ] {
        let (s, v) = network(body.clone());
        assert_eq!(
            (s, v["NeutronError"]["type"].as_str()),
            (status, Some(kind)),
            "{body}: {v}"
        );
    }
    // VLAN 200 of the other physical network is another segment.
    let (s, v) = network(json!({"provider:network_type": "vlan",
        "provider:physical_network": "storage", "provider:segmentation_id": 200}));
    assert_eq!(s, 201, "{v}");
    let (s, v) = network(json!({"provider:network_type": "local"}));
    assert_eq!(
        (s, v["network"]["provider:physical_network"].clone()),
        (201, Value::Null)
    );

    let vm = |net: &Value, prefix: &str| {
        let id = net["network"]["id"].as_str().unwrap();
        api.create(
            "subnets",
            json!({"subnet": {"network_id": id, "cidr": format!("{prefix}.0/24"),
                "ip_version": 4, "gateway_ip": null,
                "allocation_pools": [{"start": format!("{prefix}.10"), "end": format!("{prefix}.20")}]}}),
        );
        let p = api.create(
            "ports",
            json!({"port": {"network_id": id,
            "port_security_enabled": false}}),
        )["port"]
            .clone();
        (p["id"].as_str().unwrap().to_owned(), TapVm::new(&p, 24))
    };
    let (pa, va) = vm(&a, &net_a);
    let (pb, vb) = vm(&b, &net_b);
    assert!(
        wait_for(Duration::from_secs(10), || api.status(&pa) == "ACTIVE"
            && api.status(&pb) == "ACTIVE"),
        "{}",
        daemon.log()
    );
    assert!(
        va.ping_until(&format!("{net_a}.1"), None, Duration::from_secs(10)),
        "VLAN 200 of datacentre: {}",
        daemon.log()
    );
    assert!(
        vb.ping_until(&format!("{net_b}.1"), None, Duration::from_secs(5)),
        "untagged on storage: {}",
        daemon.log()
    );
    // The VLAN 200 network reaches VLAN 200 only, not the untagged segment of datacentre.
    assert!(!va.ping(&format!("{net_a}.2"), None));
    // A tenant's traffic: TCP both ways, with default offloads.
    va.ns
        .tcp_transfer(&r200.ns, &format!("{net_a}.1"), 1 << 20)
        .unwrap_or_else(|e| panic!("TCP to datacentre: {e}\n{}", daemon.log()));
    r200.ns
        .tcp_transfer(&va.ns, &va.ip, 1 << 20)
        .unwrap_or_else(|e| panic!("TCP from datacentre: {e}\n{}", daemon.log()));
    vb.ns
        .tcp_transfer(&storage.ns, &format!("{net_b}.1"), 1 << 20)
        .unwrap_or_else(|e| panic!("TCP to storage: {e}\n{}", daemon.log()));
}

#[test]
fn the_switch_answers_arp_for_the_addresses_of_its_ports() {
    let (api, daemon) = start();
    let lan = format!("198.18.{}", std::process::id() % 120 + 1);
    let n = api.create("networks", json!({"network": {"name": "arp"}}))["network"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.create(
        "subnets",
        json!({"subnet": {"network_id": n, "cidr": format!("{lan}.0/24"), "ip_version": 4}}),
    );
    let [(pa, a), (pb, b)] = vms_on(&api, &daemon, [&n, &n]);
    let ida = pa["id"].as_str().unwrap();
    // b does no ARP at all: only the switch can tell a where b's address is.
    b.ns.exec(&["ip", "link", "set", "dev", &b.dev(), "arp", "off"]);
    a.flush_neighbours();
    let mac_b = pb["mac_address"].as_str().unwrap();
    let resolved = || {
        let _ = a.ping(&b.ip, None);
        a.ns.exec(&["ip", "neigh", "show", &b.ip, "dev", &a.dev()])
            .contains(mac_b)
    };
    assert!(
        wait_for(Duration::from_secs(5), resolved),
        "a never learnt {mac_b} for {}:\n{}",
        b.ip,
        daemon.log()
    );
    // Counted on the asking port.
    let scrape = request(&api.addr, "GET", "/metrics", None).body.clone();
    let answered = scrape.lines().any(|l| {
        l.starts_with("qswitch_port_arp_replies_total{") && l.contains(ida) && !l.ends_with(" 0")
    });
    assert!(answered, "no ARP reply counted for {ida}");
}
