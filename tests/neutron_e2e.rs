//! End to end through the Neutron v2.0 API: a network, a subnet and two ports created over
//! REST; each port's "VM" is a namespace configured with the MAC and the address the port was
//! given, cabled to the switch by a veth whose host end is named by the Neutron/Nova convention
//! (`tap` + the first 11 characters of the port id). The switch opens each tap when it appears,
//! the ports go ACTIVE and the VMs ping each other; a spoofed source address is dropped by the
//! port's anti-spoofing rules until an allowed address pair (or turning port security off)
//! lets it through. Needs root (CI runs as root).

mod common;

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

#[test]
fn v2_ports_bound_by_tap_name_forward_and_drop_spoofed_sources() {
    let dir = std::env::temp_dir().join(unique("db"));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("q.db");
    let api = Api { addr: free_addr() };
    let daemon = Daemon::start_in(dir, &["--listen", &api.addr, "--db", db.to_str().unwrap()]);
    assert!(
        wait_ready(&api.addr),
        "daemon did not start:\n{}",
        daemon.log()
    );

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

    // Everything passes with port security off (its groups go with it, as Neutron requires).
    api.update_port(
        &ida,
        json!({"port_security_enabled": false, "security_groups": []}),
    );
    assert!(
        a.ping_until(&b.ip, Some(&spoofed), Duration::from_secs(5)),
        "port security off still drops:\n{}",
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

#[test]
fn the_switch_answers_a_ports_dhcp_client_with_its_address_and_subnet() {
    let dir = std::env::temp_dir().join(unique("db"));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("q.db");
    let api = Api { addr: free_addr() };
    let daemon = Daemon::start_in(dir, &["--listen", &api.addr, "--db", db.to_str().unwrap()]);
    assert!(wait_ready(&api.addr), "{}", daemon.log());
    // Subnets unique to this process inside 198.18.0.0/16.
    let third = std::process::id() % 120 + 1;
    let (lan, dark) = (format!("198.18.{third}"), format!("198.18.{}", third + 120));
    let net = |name: &str| {
        api.create("networks", json!({"network": {"name": name}}))["network"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
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
    let pa = api.create("ports", json!({"port": {"network_id": n1}}))["port"].clone();
    let pc = api.create("ports", json!({"port": {"network_id": n2}}))["port"].clone();
    let a = TapVm::new(&pa, 24);
    let c = TapVm::new(&pc, 24);
    let (ida, idc) = (pa["id"].as_str().unwrap(), pc["id"].as_str().unwrap());
    assert!(
        wait_for(Duration::from_secs(10), || api.status(ida) == "ACTIVE"
            && api.status(idc) == "ACTIVE"),
        "{}",
        daemon.log()
    );
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
