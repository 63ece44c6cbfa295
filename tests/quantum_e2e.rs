//! End to end through the Quantum API: two tenants, three networks, four namespace "VMs". Every
//! network, port, interface and attachment is created over REST; real frames then show that the
//! switch forwards exactly what the API says. Needs root (CI runs as root).

mod common;

use std::time::Duration;

use common::http::{request, wait_ready};
use common::*;

struct Api {
    addr: String,
}

impl Api {
    fn post(&self, path: &str, body: &str) -> serde_json::Value {
        let r = request(&self.addr, "POST", path, Some(body));
        assert!(
            r.status == 200 || r.status == 202,
            "POST {path}: {} {}",
            r.status,
            r.body
        );
        r.json()
    }

    fn put(&self, path: &str, body: &str) -> u16 {
        request(&self.addr, "PUT", path, Some(body)).status
    }

    fn network(&self, tenant: &str, name: &str) -> String {
        let v = self.post(
            &format!("/v1.1/tenants/{tenant}/networks"),
            &format!(r#"{{"network": {{"name": "{name}"}}}}"#),
        );
        v["network"]["id"].as_str().unwrap().to_owned()
    }

    /// Creates a port on `net`, registers `vm`'s host device as interface `vif` and plugs it.
    fn plug(&self, tenant: &str, net: &str, vm: &Vm, vif: &str) -> String {
        let v = self.post(
            &format!("/v1.1/tenants/{tenant}/networks/{net}/ports"),
            r#"{"port": {"state": "ACTIVE"}}"#,
        );
        let port = v["port"]["id"].as_str().unwrap().to_owned();
        let s = self.put(
            &format!("/v1.1/tenants/{tenant}/interfaces/{vif}"),
            &format!(r#"{{"interface": {{"device": "{}"}}}}"#, vm.host),
        );
        assert!(s == 200 || s == 201 || s == 204, "register {vif}: {s}");
        let s = self.put(
            &format!("/v1.1/tenants/{tenant}/networks/{net}/ports/{port}/attachment"),
            &format!(r#"{{"attachment": {{"id": "{vif}"}}}}"#),
        );
        assert_eq!(s, 204, "plug {vif}");
        port
    }

    fn op_status(&self, tenant: &str, net: &str, port: &str) -> String {
        let r = request(
            &self.addr,
            "GET",
            &format!("/v1.1/tenants/{tenant}/networks/{net}/ports/{port}"),
            None,
        );
        r.json()["port"]["op-status"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

#[test]
fn api_drives_forwarding_and_survives_kill_9() {
    // Tenant A: networks a1 (vm1, vm2) and a2 (vm3). Tenant B: network b1 (vm4).
    let vm1 = Vm::new("e", 1, 0);
    let vm2 = Vm::new("e", 2, 0);
    let vm3 = Vm::new("e", 3, 0);
    let vm4 = Vm::new("e", 4, 0);
    let dir = std::env::temp_dir().join(unique("db"));
    std::fs::create_dir_all(&dir).unwrap();
    let db = store(&dir);
    let api = Api { addr: free_addr() };
    let args = ["--listen", &api.addr, "--db", &db];
    let mut daemon = Daemon::start_in(dir.clone(), &args);
    assert!(
        wait_ready(&api.addr),
        "daemon did not start:\n{}",
        daemon.log()
    );

    let (ta, tb) = ("tenant-a", "tenant-b");
    let a1 = api.network(ta, "a1");
    let a2 = api.network(ta, "a2");
    let b1 = api.network(tb, "b1");
    let p1 = api.plug(ta, &a1, &vm1, "vif1");
    let p2 = api.plug(ta, &a1, &vm2, "vif2");
    api.plug(ta, &a2, &vm3, "vif3");
    api.plug(tb, &b1, &vm4, "vif4");

    // Tenant B cannot plug tenant A's interface, nor see A's network.
    let pb = api.post(
        &format!("/v1.1/tenants/{tb}/networks/{b1}/ports"),
        r#"{"port": {"state": "ACTIVE"}}"#,
    )["port"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let s = api.put(
        &format!("/v1.1/tenants/{tb}/networks/{b1}/ports/{pb}/attachment"),
        r#"{"attachment": {"id": "vif1"}}"#,
    );
    assert_eq!(s, 404, "another tenant's interface must not be pluggable");
    let r = request(
        &api.addr,
        "GET",
        &format!("/v1.1/tenants/{tb}/networks/{a1}"),
        None,
    );
    assert_eq!(r.status, 404);

    assert_eq!(api.op_status(ta, &a1, &p1), "UP", "{}", daemon.log());
    assert!(
        vm1.ping_until(&vm2.ip, Duration::from_secs(5)),
        "no ping inside a1:\n{}",
        daemon.log()
    );
    // A tenant's TCP with the guests' default offloads (partial checksums), bytes checked.
    if let Err(e) = vm1.ns.tcp_transfer(&vm2.ns, &vm2.ip, 4 << 20) {
        panic!("TCP inside a1: {e}\n{}", daemon.log());
    }
    assert!(!vm1.ping(&vm3.ip), "a1 and a2 are different networks");
    assert!(!vm1.ping(&vm4.ip), "tenant B's network is unreachable");
    assert!(!vm4.ping(&vm2.ip));

    // Unplug vm2: traffic to it stops at once and its port goes DOWN.
    let r = request(
        &api.addr,
        "DELETE",
        &format!("/v1.1/tenants/{ta}/networks/{a1}/ports/{p2}/attachment"),
        None,
    );
    assert_eq!(r.status, 204);
    assert!(!vm1.ping(&vm2.ip), "unplugged port still forwards");
    assert_eq!(api.op_status(ta, &a1, &p2), "DOWN");

    // Plug it back, then kill -9 the daemon and restart it on the same database.
    let s = api.put(
        &format!("/v1.1/tenants/{ta}/networks/{a1}/ports/{p2}/attachment"),
        r#"{"attachment": {"id": "vif2"}}"#,
    );
    assert_eq!(s, 204);
    assert!(vm1.ping_until(&vm2.ip, Duration::from_secs(5)));
    assert!(daemon.signal("-KILL"));
    assert!(
        !vm1.ping(&vm2.ip),
        "nothing forwards while the daemon is down"
    );
    let daemon2 = Daemon::start_in(dir, &args);
    assert!(
        wait_ready(&api.addr),
        "daemon did not restart:\n{}",
        daemon2.log()
    );
    assert!(
        vm1.ping_until(&vm2.ip, Duration::from_secs(5)),
        "forwarding did not come back after restart:\n{}",
        daemon2.log()
    );
    assert!(!vm1.ping(&vm3.ip));
    assert!(!vm1.ping(&vm4.ip));
    assert_eq!(api.op_status(ta, &a1, &p1), "UP");
}
