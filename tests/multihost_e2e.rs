//! Several hosts on one PostgreSQL database: an API server and one `qswitch agent` per host,
//! each host a network namespace with its VMs and an uplink; the uplinks meet on a Linux bridge
//! in the root namespace, the physical switch of the trunk. The database is a private
//! PostgreSQL server started by the test (reached by its Unix socket, a path, from every
//! namespace).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{http, sh, try_sh, unique, wait_for, Daemon, Netns};
use control::testing::PrivatePostgres;

/// A host: its namespace, its uplink (the other end on the bridge) and its agent.
struct Host {
    name: String,
    ns: Netns,
    uplink_peer: String,
    dir: std::path::PathBuf,
    agent: Option<Child>,
    binding: String,
}

impl Host {
    fn new(tag: &str, bridge: &str) -> Host {
        let name = unique(tag);
        let ns = Netns::new(&name);
        let (up, peer) = (format!("{name}u"), format!("{name}p"));
        sh(&[
            "ip", "link", "add", &peer, "type", "veth", "peer", "name", &up, "netns", &name,
        ]);
        sh(&["ip", "link", "set", &peer, "master", bridge]);
        // The bridge sends a frame's 802.1Q tag in the frame, not beside it (VLAN transmit
        // offload hands the tag to the peer as metadata, which XDP and AF_XDP do not see): what
        // a physical switch's wire carries (docs/OPERATIONS.md, "Uplinks").
        sh(&["ethtool", "-K", &peer, "txvlan", "off"]);
        sh(&["ip", "link", "set", &peer, "up"]);
        ns.exec(&["ip", "link", "set", &up, "up"]);
        let dir = std::env::temp_dir().join(format!("{name}d"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("agent.toml"),
            format!("[switch]\nworkers = 1\n\n[uplink]\ndevice = \"{up}\"\n"),
        )
        .unwrap();
        Host {
            name,
            ns,
            uplink_peer: peer,
            dir,
            agent: None,
            binding: String::new(),
        }
    }

    /// Starts this host's agent on the database at `url`, binding `tap` devices as `binding`
    /// says (`registered` or `name`).
    fn start_agent(&mut self, url: &str, binding: &str) {
        self.binding = binding.to_owned();
        self.restart_agent(url);
    }

    /// Starts this host's agent again, as it was started.
    fn restart_agent(&mut self, url: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("agent.log"))
            .unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                env!("CARGO_BIN_EXE_qswitch"),
                "agent",
            ])
            .args([
                "--db",
                url,
                "--host",
                &self.name,
                "--tap-binding",
                &self.binding,
            ])
            .arg("--config")
            .arg(self.dir.join("agent.toml"))
            .current_dir(&self.dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start qswitch agent");
        self.agent = Some(child);
    }

    /// Kills the agent with SIGKILL (its XDP links go with its fds).
    fn kill_agent(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = try_sh(&["kill", "-TERM", &c.id().to_string()]);
            let end = Instant::now() + Duration::from_secs(5);
            while Instant::now() < end && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = try_sh(&["ip", "link", "del", &self.uplink_peer]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A VM on a host: a namespace whose interface's peer, in the host's namespace, is named
/// after its Neutron port (`tap` + 11 characters of the id), as Nova names it.
struct Vm {
    ns: Netns,
    ip: String,
    port: String,
}

impl Vm {
    /// A VM whose interface's peer on `host` is `device`, with its own MAC and address `ip`
    /// (/24): as a Quantum port's VM, whose interface the hypervisor registers.
    fn plain(host: &Host, device: &str, ip: &str) -> Vm {
        let ns = Netns::new(&unique("vm"));
        let dev = format!("{}v", ns.name);
        host.ns.exec(&[
            "ip", "link", "add", device, "type", "veth", "peer", "name", &dev, "netns", &ns.name,
        ]);
        host.ns.exec(&["ip", "link", "set", device, "up"]);
        ns.exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", &dev]);
        ns.exec(&["ip", "link", "set", &dev, "up"]);
        Vm {
            ns,
            ip: ip.to_owned(),
            port: String::new(),
        }
    }

    fn new(host: &Host, port: &serde_json::Value) -> Vm {
        let ns = Netns::new(&unique("vm"));
        let id = port["id"].as_str().unwrap();
        let tap = format!("tap{}", &id[..11]);
        let dev = format!("{}v", ns.name);
        let mac = port["mac_address"].as_str().unwrap();
        let ip = port["fixed_ips"][0]["ip_address"]
            .as_str()
            .unwrap()
            .to_owned();
        host.ns.exec(&[
            "ip", "link", "add", &tap, "type", "veth", "peer", "name", &dev, "netns", &ns.name,
        ]);
        host.ns.exec(&["ip", "link", "set", &tap, "up"]);
        ns.exec(&["ip", "link", "set", &dev, "address", mac]);
        ns.exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", &dev]);
        ns.exec(&["ip", "link", "set", &dev, "up"]);
        Vm {
            ns,
            ip,
            port: id.to_owned(),
        }
    }

    fn ping(&self, ip: &str) -> bool {
        self.ns.try_exec(&["ping", "-c", "1", "-W", "1", "-q", ip])
    }

    fn ping_until(&self, ip: &str, timeout: Duration) -> bool {
        wait_for(timeout, || self.ping(ip))
    }
}

/// Pings from a VM, 10 ms apart, in the background.
struct Flow(Child);

impl Flow {
    fn start(from: &Vm, ip: &str, count: u32) -> Flow {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &from.ns.name,
                "ping",
                "-q",
                "-n",
                "-i",
                "0.01",
                "-W",
                "2",
            ])
            .args(["-c", &count.to_string(), ip])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ping");
        Flow(child)
    }

    /// Waits for the flow to end: how many pings were sent and how many answered.
    fn finish(self) -> (u32, u32) {
        let out = self.0.wait_with_output().expect("ping ends");
        let text = String::from_utf8_lossy(&out.stdout);
        // "300 packets transmitted, 300 received, ..."
        let line = text
            .lines()
            .find(|l| l.contains("transmitted"))
            .unwrap_or_else(|| panic!("no ping summary: {text}"));
        let mut n = line.split(',').map(|f| {
            f.trim()
                .split(' ')
                .next()
                .unwrap_or("")
                .parse::<u32>()
                .unwrap_or(0)
        });
        (n.next().unwrap_or(0), n.next().unwrap_or(0))
    }
}

/// The physical switch: a bridge in the root namespace, removed on drop.
struct Bridge(String);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = try_sh(&["ip", "link", "del", &self.0]);
    }
}

fn post(api: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
    let r = http::request(api, "POST", path, Some(&body.to_string()));
    assert_eq!(r.status, 201, "POST {path}: {}", r.body);
    r.json()
}

/// A Quantum call that must succeed; its body, if any.
fn quantum(api: &str, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
    let r = http::request(api, method, path, Some(&body.to_string()));
    assert!(r.status < 300, "{method} {path}: {} {}", r.status, r.body);
    if r.body.is_empty() {
        serde_json::Value::Null
    } else {
        r.json()
    }
}

/// Registers `vm`'s tap device on `host` for its port's project (noauth's), as the hypervisor
/// side does: an agent binding only registered devices opens it then.
fn register_tap(api: &str, host: &Host, vm: &Vm) {
    quantum(
        api,
        "PUT",
        &format!(
            "/v1.1/tenants/{}/interfaces/vif-{}",
            api::DEFAULT_TENANT,
            vm.port
        ),
        serde_json::json!({"interface": {"device": format!("tap{}", &vm.port[..11]),
            "host": host.name}}),
    );
}

/// The id of a Quantum resource in `v` (`{"network": {"id"}}`, `{"port": {"id"}}`).
fn id_of(v: &serde_json::Value, kind: &str) -> String {
    v[kind]["id"].as_str().unwrap().to_owned()
}

#[test]
fn vms_on_two_hosts_share_a_network_across_the_trunk_and_survive_an_agent_restart() {
    let pg = PrivatePostgres::start(&[]).unwrap_or_else(|e| panic!("{e}"));
    let url = pg.create_database("cloud", None).unwrap();
    let bridge = Bridge(unique("br"));
    sh(&["ip", "link", "add", &bridge.0, "type", "bridge"]);
    sh(&["ip", "link", "set", &bridge.0, "up"]);
    let mut a = Host::new("ha", &bridge.0);
    let mut b = Host::new("hb", &bridge.0);

    // The API server: no data plane of its own.
    let api_addr = common::free_addr();
    let _api = Daemon::start(&["--no-dataplane", "--db", &url, "--listen", &api_addr]);
    assert!(http::wait_ready(&api_addr), "the API server did not start");
    // Host a binds a port's tap device only once the hypervisor side registered it (the
    // agent's default, what token authentication needs); host b binds any device of the name.
    a.start_agent(&url, "registered");
    b.start_agent(&url, "name");

    // Two networks with the same addresses: VMs of different networks never meet.
    let mut vms = Vec::new();
    for (n, name) in ["red", "blue"].iter().enumerate() {
        let net = post(
            &api_addr,
            "/v2.0/networks",
            serde_json::json!({"network": {"name": name}}),
        );
        let net_id = net["network"]["id"].as_str().unwrap().to_owned();
        post(
            &api_addr,
            "/v2.0/subnets",
            serde_json::json!({"subnet": {"network_id": net_id, "ip_version": 4,
                "cidr": "198.18.10.0/24"}}),
        );
        let mut pair = Vec::new();
        for (h, host) in [&a, &b].into_iter().enumerate() {
            // red: .11 and .12, blue: .21 and .22
            let ip = format!("198.18.10.{}", 10 * (n + 1) + h + 1);
            let port = post(
                &api_addr,
                "/v2.0/ports",
                serde_json::json!({"port": {"network_id": net_id, "binding:host_id": host.name,
                    "port_security_enabled": false, "name": name,
                    "fixed_ips": [{"ip_address": ip}]}}),
            );
            pair.push(Vm::new(host, &port["port"]));
        }
        vms.push(pair);
    }
    let (red_a, red_b) = (&vms[0][0], &vms[0][1]);
    let (blue_a, blue_b) = (&vms[1][0], &vms[1][1]);
    // Host a's taps are not registered yet: host b's VM is on the trunk, host a's is not.
    let status = |vm: &Vm| {
        let path = format!("/v2.0/ports/{}", vm.port);
        http::request(&api_addr, "GET", &path, None).json()["port"]["status"].clone()
    };
    assert!(
        wait_for(Duration::from_secs(10), || status(red_b) == "ACTIVE"),
        "host b's VM never reads ACTIVE\n{}",
        b.log()
    );
    // (A ping that cannot fail for the network's sake works: the check below means something.)
    assert!(
        red_b.ping(&red_b.ip),
        "ping does not work in a VM namespace"
    );
    // For a while (each failed ping waits 1 s): not bound later either.
    for _ in 0..3 {
        assert!(
            !red_b.ping(&red_a.ip),
            "host a bound an unregistered tap device"
        );
        assert_eq!(status(red_a), "DOWN");
    }
    for vm in [red_a, blue_a] {
        register_tap(&api_addr, &a, vm);
    }
    assert!(
        red_a.ping_until(&red_b.ip, Duration::from_secs(20)),
        "red VMs on two hosts cannot reach each other\nagent a:\n{}\nagent b:\n{}",
        a.log(),
        b.log()
    );
    assert!(blue_b.ping_until(&blue_a.ip, Duration::from_secs(10)));
    // One subnet's addresses on two networks: a VM never reaches the other network's VMs,
    // on its host or across the trunk.
    for (from, to) in [
        (blue_b, red_a),
        (blue_a, red_b),
        (red_b, blue_a),
        (red_a, blue_b),
    ] {
        assert!(
            !from.ping(&to.ip),
            "{} reached {} on another network",
            from.ip,
            to.ip
        );
    }
    // TCP across the trunk, with the guests' default offloads.
    red_a
        .ns
        .tcp_transfer(&red_b.ns, &red_b.ip, 2_000_000)
        .unwrap_or_else(|e| panic!("TCP across hosts: {e}"));

    // The API server has no data plane: a port's status is what its host's agent reported.
    for vm in [red_a, red_b, blue_a, blue_b] {
        let p = http::request(&api_addr, "GET", &format!("/v2.0/ports/{}", vm.port), None).json();
        assert_eq!(p["port"]["status"], "ACTIVE", "{p}");
    }

    // Each agent reports itself alive, with the revision it has applied.
    let agents = http::request(&api_addr, "GET", "/v2.0/agents", None).json();
    let hosts: Vec<&str> = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["alive"] == true)
        .filter_map(|g| g["host"].as_str())
        .collect();
    assert!(
        hosts.contains(&a.name.as_str()) && hosts.contains(&b.name.as_str()),
        "{agents}"
    );

    // Quantum ports on both hosts, their VMs' devices of one name on each: each host's agent
    // opens only the interface registered on its host, and a port plugged with it is bound
    // there (its status is that host's word).
    let t = "/v1.1/tenants/qt";
    let qnet = id_of(
        &quantum(
            &api_addr,
            "POST",
            &format!("{t}/networks"),
            serde_json::json!({"network": {"name": "q"}}),
        ),
        "network",
    );
    let mut qvms = Vec::new();
    for (host, ip) in [(&a, "198.18.20.1"), (&b, "198.18.20.2")] {
        let port = id_of(
            &quantum(
                &api_addr,
                "POST",
                &format!("{t}/networks/{qnet}/ports"),
                serde_json::json!({"port": {"state": "ACTIVE"}}),
            ),
            "port",
        );
        let vif = format!("q-{}", host.name);
        quantum(
            &api_addr,
            "PUT",
            &format!("{t}/interfaces/{vif}"),
            serde_json::json!({"interface": {"device": "qvm0", "host": host.name}}),
        );
        let mut vm = Vm::plain(host, "qvm0", ip);
        vm.port = port;
        qvms.push((vm, vif));
    }
    // The VMs' devices exist (the hypervisor made them) before they are plugged, as Nova does.
    // Each host's agent heard of the registration on its host (through the revision log) and
    // keeps the device prepared, its program attached ahead of any port.
    for (host, (vm, _)) in [&a, &b].into_iter().zip(&qvms) {
        assert!(
            wait_for(Duration::from_secs(5), || {
                host.ns
                    .exec(&["ip", "link", "show", "dev", "qvm0"])
                    .contains("xdp")
            }),
            "{}'s agent did not prepare its registered device for {}\n{}",
            host.name,
            vm.ip,
            host.log()
        );
    }
    for (vm, vif) in &qvms {
        let path = format!("{t}/networks/{qnet}/ports/{}", vm.port);
        let plugged = Instant::now();
        quantum(
            &api_addr,
            "PUT",
            &format!("{path}/attachment"),
            serde_json::json!({"attachment": {"id": vif}}),
        );
        let answered = plugged.elapsed();
        let status =
            http::request(&api_addr, "GET", &path, None).json()["port"]["op-status"].clone();
        eprintln!("Quantum plug answered in {answered:?}; op-status then {status}");
    }
    let qvms: Vec<Vm> = qvms.into_iter().map(|(vm, _)| vm).collect();
    assert!(
        qvms[0].ping_until(&qvms[1].ip, Duration::from_secs(10)),
        "Quantum VMs on two hosts cannot reach each other\nagent a:\n{}\nagent b:\n{}",
        a.log(),
        b.log()
    );
    for vm in &qvms {
        let path = format!("{t}/networks/{qnet}/ports/{}", vm.port);
        assert!(
            wait_for(Duration::from_secs(5), || {
                http::request(&api_addr, "GET", &path, None).json()["port"]["op-status"] == "UP"
            }),
            "{path} is not UP"
        );
    }

    // A port created while both agents run reaches its host's data plane through the revision
    // log (LISTEN/NOTIFY), without a restart.
    let net_id = {
        let nets = http::request(&api_addr, "GET", "/v2.0/networks?name=red", None).json();
        nets["networks"][0]["id"].as_str().unwrap().to_owned()
    };
    let port = post(
        &api_addr,
        "/v2.0/ports",
        serde_json::json!({"port": {"network_id": net_id, "binding:host_id": b.name,
            "port_security_enabled": false}}),
    );
    assert_eq!(port["port"]["status"], "DOWN", "no device yet: {port}");
    let late = Vm::new(&b, &port["port"]);
    let plugged = Instant::now();
    let path = format!("/v2.0/ports/{}", late.port);
    assert!(
        wait_for(Duration::from_secs(5), || {
            http::request(&api_addr, "GET", &path, None).json()["port"]["status"] == "ACTIVE"
        }),
        "the late port never reads ACTIVE\n{}",
        b.log()
    );
    eprintln!(
        "late port ACTIVE through the API {:?} after its device appeared",
        plugged.elapsed()
    );
    assert!(
        late.ping_until(&red_a.ip, Duration::from_secs(10)),
        "a port created later on host b does not forward\n{}",
        b.log()
    );

    // Host a's agent dies (SIGKILL) and comes back: host b forwards on without losing a frame
    // (a flow between its two red VMs, 10 ms apart, throughout); host a's VM is cut off while its
    // agent is away, then resyncs and forwards again.
    let steady = Flow::start(&late, &red_b.ip, 300);
    let cut = Flow::start(red_b, &red_a.ip, 300);
    std::thread::sleep(Duration::from_millis(300));
    a.kill_agent();
    a.restart_agent(&url);
    let back = Instant::now();
    assert!(
        red_a.ping_until(&red_b.ip, Duration::from_secs(20)),
        "host a's VM is not forwarding after its agent restarted\n{}",
        a.log()
    );
    let answered = back.elapsed();
    let (sent, received) = steady.finish();
    assert_eq!(
        received, sent,
        "host b lost frames between its own VMs while host a's agent restarted"
    );
    let (sent, received) = cut.finish();
    // The issue's bound: the restarted agent forwards again within 1 s (100 pings, 10 ms apart).
    assert!(
        sent - received <= 100,
        "host a's VM was cut off {} ms across its agent's restart (more than 1 s)\n{}",
        (sent - received) * 10,
        a.log()
    );
    eprintln!(
        "host a's agent killed and restarted: {} of {} pings across hosts, 10 ms apart, lost \
         (about {} ms without forwarding); a single ping answered {:?} after the restart \
         (while both flows ran)",
        sent - received,
        sent,
        (sent - received) * 10,
        answered
    );

    // PostgreSQL restarts: the API answers 503 with a fault body meanwhile (quickly, never a
    // 500), the agents keep forwarding what they have, and everything reconnects by itself.
    pg.stop().unwrap();
    let asked = Instant::now();
    let r = http::request(&api_addr, "GET", "/v2.0/networks", None);
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["NeutronError"]["type"], "ServiceUnavailable");
    let r = http::request(
        &api_addr,
        "POST",
        "/v2.0/networks",
        Some(r#"{"network": {}}"#),
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        asked.elapsed() < Duration::from_secs(12),
        "{:?}",
        asked.elapsed()
    );
    assert!(
        red_a.ping_until(&red_b.ip, Duration::from_secs(5)),
        "forwarding stopped with the database"
    );
    assert!(late.ping_until(&red_a.ip, Duration::from_secs(5)));
    pg.restart().unwrap();
    let port = wait_until_created(&api_addr, &net_id, &a.name);
    let after = Vm::new(&a, &port);
    register_tap(&api_addr, &a, &after);
    assert!(
        after.ping_until(&red_b.ip, Duration::from_secs(10)),
        "a port created after the database restarted does not forward\n{}",
        a.log()
    );

    // Host b's agent dies and stays dead. Once its last heartbeat is older than the down time
    // (75 s, Neutron's `agent_down_time`; set back in the database here rather than waited for),
    // the API shows the agent dead and its host's ports DOWN, as Tempest's
    // `test_port_shut_down` reads them; restarted, it reports again and they read ACTIVE.
    let path = format!("/v2.0/ports/{}", late.port);
    let status = || http::request(&api_addr, "GET", &path, None).json()["port"]["status"].clone();
    assert_eq!(status(), "ACTIVE");
    b.kill_agent();
    pg.psql(
        "cloud",
        &format!(
            "UPDATE agents SET heartbeat_at = heartbeat_at - 100 WHERE host = '{}'",
            b.name
        ),
    )
    .unwrap();
    assert_eq!(status(), "DOWN", "a dead agent's port");
    let agents = http::request(
        &api_addr,
        "GET",
        &format!("/v2.0/agents?host={}", b.name),
        None,
    )
    .json();
    assert_eq!(agents["agents"][0]["alive"], false, "{agents}");
    b.restart_agent(&url);
    assert!(
        wait_for(Duration::from_secs(10), || status() == "ACTIVE"),
        "host b's port does not read ACTIVE after its agent came back\n{}",
        b.log()
    );
}

/// Creates a port on `net` bound to `host` once the API can write again (after a restart of the
/// database).
fn wait_until_created(api: &str, net: &str, host: &str) -> serde_json::Value {
    let body = serde_json::json!({"port": {"network_id": net, "binding:host_id": host,
        "port_security_enabled": false}})
    .to_string();
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let r = http::request(api, "POST", "/v2.0/ports", Some(&body));
        if r.status == 201 {
            return r.json()["port"].clone();
        }
        assert_eq!(r.status, 503, "while the database comes back: {}", r.body);
        assert!(
            Instant::now() < end,
            "the API did not come back: {}",
            r.body
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_killed_api_server_loses_no_acknowledged_write_and_clients_carry_on_through_another() {
    let pg = PrivatePostgres::start(&[]).unwrap_or_else(|e| panic!("{e}"));
    let url = pg.create_database("ha", None).unwrap();
    let addrs = [common::free_addr(), common::free_addr()];
    let mut first = Daemon::start(&["--no-dataplane", "--db", &url, "--listen", &addrs[0]]);
    let _second = Daemon::start(&["--no-dataplane", "--db", &url, "--listen", &addrs[1]]);
    assert!(addrs.iter().all(|a| http::wait_ready(a)));
    // 4 clients, 24 creates each 50 ms apart (under the project's quota of 100 networks); the
    // first server dies after about half of them.
    let acknowledged: Vec<String> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..4)
            .map(|c| {
                let addrs = &addrs;
                s.spawn(move || {
                    let mut made = Vec::new();
                    let mut i = 0usize;
                    while i < 24 {
                        std::thread::sleep(Duration::from_millis(50));
                        // Alternate between the servers; when one fails (dead: the connection
                        // is refused or cut), the client carries on through the other.
                        let body = format!(r#"{{"network": {{"name": "c{c}-{i}"}}}}"#);
                        for k in 0..2 {
                            let addr = &addrs[(c + i + k) % 2];
                            let Ok(conn) = bench::http::Conn::open(addr) else {
                                continue;
                            };
                            match conn.send("POST", "/v2.0/networks", Some(&body), &[]) {
                                Ok(r) if r.status == 201 => {
                                    made.push(
                                        r.json().unwrap()["network"]["id"]
                                            .as_str()
                                            .unwrap()
                                            .to_owned(),
                                    );
                                    break;
                                }
                                Ok(r) => panic!("{addr}: {} {}", r.status, r.body),
                                // The server died with the request in flight: not acknowledged.
                                Err(_) => {}
                            }
                        }
                        i += 1;
                    }
                    made
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(600));
        // SIGKILL the first server in the middle of the writes.
        let _ = first.child.kill();
        let _ = first.child.wait();
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    // Every create was acknowledged by one server or the other (the one in flight on the
    // killed server, if any, was retried on the survivor).
    assert_eq!(acknowledged.len(), 96);
    let nets = http::request(&addrs[1], "GET", "/v2.0/networks", None).json();
    let listed: std::collections::HashSet<&str> = nets["networks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !listed.contains(id.as_str()))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    let vlans: std::collections::HashSet<u64> = nets["networks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["provider:segmentation_id"].as_u64())
        .collect();
    assert_eq!(vlans.len(), listed.len(), "a VLAN was given twice");
}
