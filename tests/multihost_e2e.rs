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
        }
    }

    /// Starts this host's agent on the database at `url`.
    fn start_agent(&mut self, url: &str) {
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
            .args(["--db", url, "--host", &self.name, "--config"])
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
}

impl Vm {
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
        Vm { ns, ip }
    }

    fn ping(&self, ip: &str) -> bool {
        self.ns.try_exec(&["ping", "-c", "1", "-W", "1", "-q", ip])
    }

    fn ping_until(&self, ip: &str, timeout: Duration) -> bool {
        wait_for(timeout, || self.ping(ip))
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
    a.start_agent(&url);
    b.start_agent(&url);

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

    // Host a's agent dies: it comes back, resyncs and forwards again.
    a.kill_agent();
    a.start_agent(&url);
    let back = Instant::now();
    assert!(
        red_a.ping_until(&red_b.ip, Duration::from_secs(20)),
        "host a's VM is not forwarding after its agent restarted\n{}",
        a.log()
    );
    eprintln!(
        "host a forwarding again {:?} after its agent restarted",
        back.elapsed()
    );

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
    let late = Vm::new(&b, &port["port"]);
    assert!(
        late.ping_until(&red_a.ip, Duration::from_secs(10)),
        "a port created later on host b does not forward\n{}",
        b.log()
    );
    drop(pg);
}
