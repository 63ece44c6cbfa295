//! The PostgreSQL store as several API servers use it: each test starts a private server
//! (`control::testing`) and opens one database from several control planes at once, as
//! several `qswitch serve --db postgres://…` processes would.

use std::collections::HashSet;
use std::sync::Arc;

use control::ipam::{Cidr, Family};
use control::neutron::{GatewayRequest, NetworkSpec, PortSpec, Scope, SubnetSpec};
use control::store::postgres::PgStore;
use control::testing::PrivatePostgres;
use control::{Control, ControlError, ControlOptions, NullForwarder};

fn server() -> PrivatePostgres {
    PrivatePostgres::start(&["fsync=off"]).unwrap_or_else(|e| panic!("{e}"))
}

fn open(url: &str) -> Control {
    let store = PgStore::open(url).unwrap();
    Control::with_store(
        Box::new(store),
        Arc::new(NullForwarder),
        ControlOptions::default(),
    )
    .unwrap()
}

/// A port of tenant `t` on `net` with every attribute at its default (an address from the
/// network's subnet, a fresh MAC, the default security group).
fn port_spec(net: &str) -> PortSpec {
    PortSpec {
        fixed_ips: None,
        port_security_enabled: None,
        ..PortSpec::bare("t", net, true)
    }
}

fn admin() -> Scope {
    Scope {
        tenant_id: "admin".into(),
        admin: true,
    }
}

#[test]
fn servers_starting_together_migrate_once_and_share_every_write() {
    let pg = server();
    let url = pg.create_database("shared", None).unwrap();
    // Four servers start at once on an empty database: one applies the schema, the others wait
    // for it and find it there.
    let controls: Vec<Control> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4).map(|_| s.spawn(|| open(&url))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        pg.psql("shared", "SELECT version FROM qswitch_schema")
            .unwrap(),
        "2"
    );
    // A write acknowledged by one is read by every other right after.
    let made = controls[0]
        .create_networks(&admin(), vec![NetworkSpec::named("t", "seen")])
        .unwrap();
    let id = &made[0].network.id;
    for c in &controls[1..] {
        assert_eq!(c.network("t", id).unwrap().network.name, "seen");
    }
}

#[test]
fn concurrent_creates_on_several_servers_never_duplicate_a_vlan_ip_or_mac() {
    let pg = server();
    let url = pg.create_database("race", None).unwrap();
    let a = open(&url);
    let b = open(&url);
    let scope = admin();
    let net = a
        .create_networks(&scope, vec![NetworkSpec::named("t", "ports")])
        .unwrap()
        .remove(0)
        .network
        .id;
    a.create_subnets(
        &scope,
        vec![SubnetSpec {
            tenant_id: "t".into(),
            network_id: net.clone(),
            name: String::new(),
            description: String::new(),
            family: Family::V4,
            cidr: Cidr::parse("198.18.0.0/22").unwrap(),
            gateway_ip: GatewayRequest::Default,
            allocation_pools: None,
            enable_dhcp: true,
            dns_nameservers: vec![],
            host_routes: vec![],
            ipv6_ra_mode: None,
            ipv6_address_mode: None,
        }],
    )
    .unwrap();
    let (nets, ports): (Vec<String>, Vec<String>) = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let c = if i % 2 == 0 { &a } else { &b };
                let (scope, net) = (&scope, &net);
                s.spawn(move || {
                    let mut made = (Vec::new(), Vec::new());
                    for j in 0..10 {
                        let n = c
                            .create_networks(
                                scope,
                                vec![NetworkSpec::named("t", &format!("{i}-{j}"))],
                            )
                            .unwrap_or_else(|e| panic!("network {i}-{j}: {e:?}"));
                        made.0.push(n[0].network.id.clone());
                        let p = c
                            .create_ports(scope, vec![port_spec(net)])
                            .unwrap_or_else(|e| panic!("port {i}-{j}: {e:?}"));
                        made.1.push(p[0].record.port.id.clone());
                    }
                    made
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).fold(
            (Vec::new(), Vec::new()),
            |mut acc, (n, p)| {
                acc.0.extend(n);
                acc.1.extend(p);
                acc
            },
        )
    });
    assert_eq!((nets.len(), ports.len()), (80, 80));
    let vlans = pg
        .psql(
            "race",
            "SELECT count(DISTINCT vlan), count(*) FROM networks",
        )
        .unwrap();
    assert_eq!(vlans, "81|81");
    let ips = pg
        .psql(
            "race",
            "SELECT count(DISTINCT ip_address), count(*) FROM ip_allocations",
        )
        .unwrap();
    assert_eq!(ips, "80|80");
    let macs = pg
        .psql(
            "race",
            "SELECT count(DISTINCT mac_address), count(*) FROM ports",
        )
        .unwrap();
    assert_eq!(macs, "80|80");
    // Each server reads every port, whichever server created it.
    for c in [&a, &b] {
        let seen: HashSet<String> = c
            .v2_ports(&scope)
            .unwrap()
            .into_iter()
            .map(|p| p.record.port.id)
            .collect();
        assert!(ports.iter().all(|p| seen.contains(p)));
    }
}

#[test]
fn a_stopped_database_is_unavailable_and_the_store_reconnects_by_itself() {
    let pg = server();
    let url = pg.create_database("restart", None).unwrap();
    let c = open(&url);
    let scope = admin();
    c.create_networks(&scope, vec![NetworkSpec::named("t", "before")])
        .unwrap();
    pg.stop().unwrap();
    let started = std::time::Instant::now();
    let read = c.list_networks("t");
    let write = c.create_networks(&scope, vec![NetworkSpec::named("t", "during")]);
    assert!(
        matches!(read, Err(ControlError::Unavailable { .. })),
        "{read:?}"
    );
    assert!(
        matches!(write, Err(ControlError::Unavailable { .. })),
        "{write:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    pg.restart().unwrap();
    c.create_networks(&scope, vec![NetworkSpec::named("t", "after")])
        .unwrap();
    let names: Vec<String> = c
        .list_networks("t")
        .unwrap()
        .into_iter()
        .map(|n| n.network.name)
        .collect();
    assert_eq!(names, ["before", "after"]);
}
