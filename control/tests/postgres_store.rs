//! The PostgreSQL store as several API servers use it: each test starts a private server
//! (`control::testing`) and opens one database from several control planes at once, as
//! several `qswitch serve --db postgres://…` processes would.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use control::agent::{HostReport, PortReport};
use control::forward::{Changes, DesiredState, Forwarder};
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
        "4"
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
    // A restart while the store is idle: its pooled connections, closed by the server, are
    // noticed when taken, and the next calls succeed at once.
    pg.stop().unwrap();
    pg.restart().unwrap();
    assert_eq!(c.list_networks("t").unwrap().len(), 2);
    c.create_networks(&scope, vec![NetworkSpec::named("t", "idle")])
        .unwrap();
    // Rows that span several reads of the socket (long names; the quota allows 100 networks):
    // the connection hands them over in batches, each taken before the next.
    let many: Vec<NetworkSpec> = (0..97)
        .map(|i| NetworkSpec::named("t", &format!("{i:02}{}", "n".repeat(250))))
        .collect();
    c.create_networks(&scope, many).unwrap();
    assert_eq!(c.list_networks("t").unwrap().len(), 100);
}

/// A data plane that keeps the state it was handed (as a host's agent does).
#[derive(Debug, Default)]
struct Kept(Mutex<DesiredState>);

impl Forwarder for Kept {
    fn apply(&self, changes: &Changes) {
        self.0.lock().unwrap().apply(changes);
    }
    fn port_up(&self, _port_id: &str) -> bool {
        false
    }
}

impl Kept {
    fn networks(&self) -> Vec<String> {
        let s = self.0.lock().unwrap();
        s.networks.iter().map(|n| n.id.clone()).collect()
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < end, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn report(c: &Control, host: &str, ports: &[(&str, &'static str)]) {
    let changed: Vec<PortReport> = ports
        .iter()
        .map(|(id, status)| PortReport {
            port_id: (*id).to_owned(),
            status,
            reason: None,
        })
        .collect();
    let revision = c.store_revision().unwrap();
    let r = HostReport {
        revision,
        changed: &changed,
        gone: &[],
        full: true,
    };
    c.report_host(host, "{}", false, &r).unwrap();
}

#[test]
fn a_ports_status_is_the_word_of_the_host_it_is_bound_to() {
    let pg = server();
    let url = pg.create_database("status", None).unwrap();
    let c = open(&url);
    let scope = admin();
    let net = c
        .create_networks(&scope, vec![NetworkSpec::named("t", "n")])
        .unwrap()
        .remove(0)
        .network
        .id;
    let bound = c
        .create_ports(
            &scope,
            vec![PortSpec {
                host_id: "h1".into(),
                ..port_spec(&net)
            }],
        )
        .unwrap()
        .remove(0)
        .record
        .port
        .id;
    let unbound = c.create_ports(&scope, vec![port_spec(&net)]).unwrap()[0]
        .record
        .port
        .id
        .clone();
    let active = |id: &str| c.v2_port(&scope, id).unwrap().active;
    // Every host takes an unbound port, and opens it where its device is: the bound host speaks
    // for its port, whatever another host says or in which order they report.
    report(&c, "h1", &[(&bound, "ACTIVE"), (&unbound, "DOWN")]);
    report(&c, "h2", &[(&bound, "DOWN"), (&unbound, "ACTIVE")]);
    assert!(active(&bound) && active(&unbound));
    report(&c, "h1", &[(&bound, "ACTIVE"), (&unbound, "DOWN")]);
    assert!(active(&bound) && active(&unbound));
    // Only the bound host: another host's ACTIVE does not make it forward.
    report(&c, "h1", &[]);
    report(&c, "h2", &[(&bound, "ACTIVE"), (&unbound, "ACTIVE")]);
    assert!(!active(&bound));
    assert!(active(&unbound));
    let listed: Vec<bool> = c
        .v2_ports(&scope)
        .unwrap()
        .iter()
        .map(|p| p.active)
        .collect();
    assert_eq!(listed, [false, true]);
    // The port moves to h2: h2's word counts now.
    c.v2_update_port(
        &scope,
        &bound,
        control::neutron::PortUpdate {
            host_id: Some("h2".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(active(&bound));
}

#[test]
fn an_agents_heartbeat_never_undoes_an_admins_change() {
    let pg = server();
    let url = pg.create_database("beats", None).unwrap();
    let (agent_side, api) = (open(&url), open(&url));
    agent_side.report_agent("h1", "{}", true).unwrap();
    let id = api.agents(&admin()).unwrap()[0].id.clone();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                agent_side
                    .report_agent("h1", r#"{"ports": 1}"#, false)
                    .unwrap();
            }
        });
        for i in 0..40 {
            let up = i % 2 == 1;
            let desc = format!("change {i}");
            api.update_agent(&admin(), &id, Some(up), Some(Some(desc.clone())))
                .unwrap();
            std::thread::sleep(Duration::from_millis(2));
            let a = api.agent(&admin(), &id).unwrap();
            assert_eq!(
                (a.admin_state_up, a.description.as_deref()),
                (up, Some(desc.as_str())),
                "a heartbeat wrote over change {i}"
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert_eq!(
        api.agent(&admin(), &id).unwrap().configurations,
        r#"{"ports": 1}"#
    );
}

#[test]
fn a_follower_resyncs_when_the_database_goes_back_and_stops_with_its_control_plane() {
    let pg = server();
    let url = pg.create_database("back", None).unwrap();
    let api = open(&url);
    let kept = Arc::new(Kept::default());
    let host = Control::with_store(
        Box::new(PgStore::open(&url).unwrap()),
        kept.clone(),
        ControlOptions::default(),
    )
    .unwrap();
    let scope = admin();
    let mut made = Vec::new();
    for name in ["one", "two"] {
        let n = api
            .create_networks(&scope, vec![NetworkSpec::named("t", name)])
            .unwrap();
        made.push(n[0].network.id.clone());
    }
    wait_until("the host follows both networks", || kept.networks() == made);
    let before = api.store_revision().unwrap();
    // The database is restored from a backup taken before "two" was made.
    pg.psql(
        "back",
        &format!(
            "DELETE FROM networks WHERE id = '{}'; UPDATE revision SET revision = revision - 1",
            made[1]
        ),
    )
    .unwrap();
    wait_until("the host resyncs with the restored database", || {
        kept.networks() == made[..1] && host.applied_revision() == before - 1
    });
    // What is written next reaches the host.
    let three = api
        .create_networks(&scope, vec![NetworkSpec::named("t", "three")])
        .unwrap()[0]
        .network
        .id
        .clone();
    wait_until("the host follows a write after the restore", || {
        kept.networks() == [made[0].clone(), three.clone()]
    });
    // Its control plane gone, nothing of it holds the data plane any more (the follower
    // thread was waited for).
    drop(host);
    assert_eq!(Arc::strong_count(&kept), 1);
}
