use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::*;
use crate::forward::{Change, Changes, DesiredNetwork, DesiredPort, NullForwarder};
use crate::model::OpStatus;
use crate::neutron::{NetworkSpec, PortSpec, Scope};
use crate::security::GroupView;

/// Records every applied state; reports the ports listed in `up` as up.
#[derive(Debug, Default)]
struct Recorder {
    applied: Mutex<Vec<DesiredState>>,
    up: Mutex<HashSet<String>>,
}

impl Forwarder for Recorder {
    fn apply(&self, changes: &Changes) {
        let mut applied = self.applied.lock().unwrap();
        let mut state = applied.last().cloned().unwrap_or_default();
        state.apply(changes);
        applied.push(state);
    }
    fn port_up(&self, port_id: &str) -> bool {
        self.up.lock().unwrap().contains(port_id)
    }
}

impl Recorder {
    fn last(&self) -> DesiredState {
        self.applied.lock().unwrap().last().cloned().unwrap()
    }
    fn count(&self) -> usize {
        self.applied.lock().unwrap().len()
    }
}

fn setup() -> (Control, Arc<Recorder>) {
    setup_with(ControlOptions::default())
}

fn setup_with(options: ControlOptions) -> (Control, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    let control = Control::in_memory(rec.clone(), options).unwrap();
    (control, rec)
}

/// A tenant network of `tenant`, made as the Quantum face makes it.
fn create_network(c: &Control, tenant: &str, name: &str) -> Result<Network> {
    let scope = Scope {
        tenant_id: tenant.into(),
        admin: false,
    };
    let mut made = c.create_networks(&scope, vec![NetworkSpec::named(tenant, name)])?;
    Ok(made.remove(0).network)
}

/// A bare port (a Quantum port) of `tenant` on `net`.
fn create_port(c: &Control, tenant: &str, net: &str, state: PortState) -> Result<Port> {
    let scope = Scope {
        tenant_id: tenant.into(),
        admin: false,
    };
    let spec = PortSpec::bare(tenant, net, state == PortState::Active);
    Ok(c.create_ports(&scope, vec![spec])?.remove(0).record.port)
}

const A: &str = "tenant-a";
const B: &str = "tenant-b";

#[test]
fn opening_applies_the_stored_state_once() {
    let (_c, rec) = setup();
    assert_eq!(rec.count(), 1);
    assert_eq!(rec.last(), DesiredState::default());
}

#[test]
fn restart_rebuilds_desired_state_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let (net, port) = {
        let c = Control::open(&path, Arc::new(NullForwarder)).unwrap();
        let net = create_network(&c, A, "n").unwrap();
        c.register_interface(A, "vif-1", "tap0").unwrap();
        let port = create_port(&c, A, &net.id, PortState::Active).unwrap();
        c.plug(A, &net.id, &port.id, "vif-1").unwrap();
        (net, port)
    };
    let rec = Arc::new(Recorder::default());
    let _c = Control::open(&path, rec.clone()).unwrap();
    assert_eq!(rec.count(), 1);
    assert_eq!(
        rec.last(),
        DesiredState {
            networks: vec![DesiredNetwork {
                id: net.id.clone(),
                tenant_id: A.into(),
                vlan: 1,
                physnet: Some("physnet1".into()),
            }],
            ports: vec![DesiredPort {
                id: port.id,
                network_id: net.id,
                device: "tap0".into(),
                admin_up: true,
                // Quantum ports carry a MAC but no anti-spoofing rules.
                mac: rec.last().ports[0].mac.clone(),
                fixed_ips: vec![],
                security: None,
                qos: None,
                qos_ingress: None,
                dhcp: None,
                dhcp6: None,
                ra: None,
                filter: None,
            }],
            groups: vec![],
        }
    );
}

#[test]
fn networks_get_distinct_vlans_and_freed_vlans_are_reused() {
    let (c, _) = setup();
    let n1 = create_network(&c, A, "one").unwrap();
    let n2 = create_network(&c, B, "two").unwrap();
    assert_eq!((n1.vlan, n2.vlan), (1, 2));
    c.delete_network(A, &n1.id).unwrap();
    let n3 = create_network(&c, A, "three").unwrap();
    assert_eq!(n3.vlan, 1);
}

#[test]
fn exhausting_vlans_is_a_clear_error_and_creates_nothing() {
    let (c, _) = setup_with(ControlOptions {
        physnets: vec![crate::service::Physnet {
            name: "physnet1".into(),
            vlan_ranges: vec![(100, 101)],
        }],
        ..Default::default()
    });
    create_network(&c, A, "a").unwrap();
    create_network(&c, A, "b").unwrap();
    assert_eq!(
        create_network(&c, A, "c"),
        Err(ControlError::NoFreeVlan { min: 100, max: 101 })
    );
    assert_eq!(c.list_networks(A).unwrap().len(), 2);
}

#[test]
fn invalid_vlan_range_is_refused() {
    let opts = ControlOptions {
        physnets: vec![crate::service::Physnet {
            name: "physnet1".into(),
            vlan_ranges: vec![(0, 10)],
        }],
        ..Default::default()
    };
    assert!(Control::in_memory(Arc::new(NullForwarder), opts).is_err());
}

#[test]
fn another_tenants_network_is_not_found() {
    let (c, _) = setup();
    let n = create_network(&c, A, "n").unwrap();
    let p = create_port(&c, A, &n.id, PortState::Down).unwrap();
    let nf = Err(ControlError::NetworkNotFound {
        net_id: n.id.clone(),
    });
    assert_eq!(c.network(B, &n.id).map(drop), nf);
    assert_eq!(c.rename_network(B, &n.id, "x"), nf);
    assert_eq!(c.delete_network(B, &n.id), nf);
    assert_eq!(c.list_ports(B, &n.id).map(drop), nf);
    assert_eq!(c.port(B, &n.id, &p.id).map(drop), nf);
    assert_eq!(create_port(&c, B, &n.id, PortState::Down).map(drop), nf);
    assert_eq!(c.set_port_state(B, &n.id, &p.id, PortState::Active), nf);
    assert_eq!(c.delete_port(B, &n.id, &p.id), nf);
    assert_eq!(c.attachment(B, &n.id, &p.id).map(drop), nf);
    assert_eq!(c.unplug(B, &n.id, &p.id), nf);
    assert!(c.list_networks(B).unwrap().is_empty());
    assert_eq!(c.network(A, &n.id).unwrap().network.name, "n");
}

#[test]
fn port_of_another_network_is_not_found() {
    let (c, _) = setup();
    let n1 = create_network(&c, A, "1").unwrap();
    let n2 = create_network(&c, A, "2").unwrap();
    let p = create_port(&c, A, &n1.id, PortState::Down).unwrap();
    assert_eq!(
        c.port(A, &n2.id, &p.id).map(drop),
        Err(ControlError::PortNotFound {
            net_id: n2.id.clone(),
            port_id: p.id.clone()
        })
    );
}

#[test]
fn plugging_an_unregistered_or_foreign_interface_changes_nothing() {
    let (c, rec) = setup();
    let n = create_network(&c, A, "n").unwrap();
    let p = create_port(&c, A, &n.id, PortState::Active).unwrap();
    c.register_interface(B, "vif-b", "tap9").unwrap();
    let before = rec.count();
    for id in ["vif-b", "vif-nowhere"] {
        assert_eq!(
            c.plug(A, &n.id, &p.id, id),
            Err(ControlError::InterfaceNotRegistered {
                interface_id: id.into()
            })
        );
    }
    assert_eq!(c.attachment(A, &n.id, &p.id).unwrap(), None);
    assert_eq!(rec.count(), before);
}

#[test]
fn plug_rules_follow_the_reference_order() {
    let (c, _) = setup();
    let n = create_network(&c, A, "n").unwrap();
    let other = create_network(&c, A, "other").unwrap();
    let p1 = create_port(&c, A, &n.id, PortState::Active).unwrap();
    let p2 = create_port(&c, A, &n.id, PortState::Active).unwrap();
    let q = create_port(&c, A, &other.id, PortState::Active).unwrap();
    c.register_interface(A, "vif-1", "tap1").unwrap();
    c.register_interface(A, "vif-2", "tap2").unwrap();
    c.plug(A, &n.id, &p1.id, "vif-1").unwrap();

    let already = |port: &str, net: &str| ControlError::AlreadyAttached {
        net_id: net.into(),
        port_id: port.into(),
        att_id: "vif-1".into(),
        att_port_id: p1.id.clone(),
    };
    // Same id into the same port again.
    assert_eq!(
        c.plug(A, &n.id, &p1.id, "vif-1"),
        Err(already(&p1.id, &n.id))
    );
    // Same id into another port of the same network.
    assert_eq!(
        c.plug(A, &n.id, &p2.id, "vif-1"),
        Err(already(&p2.id, &n.id))
    );
    // Another id into a plugged port.
    assert_eq!(
        c.plug(A, &n.id, &p1.id, "vif-2"),
        Err(ControlError::PortInUse {
            net_id: n.id.clone(),
            port_id: p1.id.clone(),
            att_id: "vif-1".into()
        })
    );
    // Same id into a port of another network.
    assert_eq!(
        c.plug(A, &other.id, &q.id, "vif-1"),
        Err(already(&q.id, &other.id))
    );
}

#[test]
fn plugged_ports_block_deletes_until_unplugged() {
    let (c, _) = setup();
    let n = create_network(&c, A, "n").unwrap();
    let p = create_port(&c, A, &n.id, PortState::Down).unwrap();
    c.register_interface(A, "vif", "tap0").unwrap();
    c.plug(A, &n.id, &p.id, "vif").unwrap();
    assert_eq!(
        c.delete_network(A, &n.id),
        Err(ControlError::NetworkInUse {
            net_id: n.id.clone()
        })
    );
    assert!(matches!(
        c.delete_port(A, &n.id, &p.id),
        Err(ControlError::PortInUse { .. })
    ));
    assert!(matches!(
        c.unregister_interface(A, "vif"),
        Err(ControlError::InterfaceInUse { .. })
    ));
    c.unplug(A, &n.id, &p.id).unwrap();
    c.unplug(A, &n.id, &p.id).unwrap();
    c.delete_network(A, &n.id).unwrap();
    c.unregister_interface(A, "vif").unwrap();
    assert!(c.interfaces(A).unwrap().is_empty());
}

#[test]
fn deleting_a_network_deletes_its_unplugged_ports() {
    let (c, _) = setup();
    let n = create_network(&c, A, "n").unwrap();
    let p = create_port(&c, A, &n.id, PortState::Down).unwrap();
    c.delete_network(A, &n.id).unwrap();
    let n2 = create_network(&c, A, "n2").unwrap();
    assert!(matches!(
        c.port(A, &n2.id, &p.id),
        Err(ControlError::PortNotFound { .. })
    ));
}

#[test]
fn forwarder_sees_plug_state_change_unplug_and_delete() {
    let (c, rec) = setup();
    let n = create_network(&c, A, "n").unwrap();
    let p = create_port(&c, A, &n.id, PortState::Active).unwrap();
    c.register_interface(A, "vif", "tap0").unwrap();
    assert!(rec.last().ports.is_empty());

    c.plug(A, &n.id, &p.id, "vif").unwrap();
    let port = DesiredPort {
        id: p.id.clone(),
        network_id: n.id.clone(),
        device: "tap0".into(),
        admin_up: true,
        mac: rec.last().ports[0].mac.clone(),
        fixed_ips: vec![],
        security: None,
        qos: None,
        qos_ingress: None,
        dhcp: None,
        dhcp6: None,
        ra: None,
        filter: None,
    };
    assert_eq!(rec.last().ports, vec![port.clone()]);

    c.set_port_state(A, &n.id, &p.id, PortState::Down).unwrap();
    assert_eq!(
        rec.last().ports,
        vec![DesiredPort {
            admin_up: false,
            ..port.clone()
        }]
    );

    // A device change of a plugged interface moves the port.
    c.register_interface(A, "vif", "tap1").unwrap();
    assert_eq!(rec.last().ports[0].device, "tap1");

    c.unplug(A, &n.id, &p.id).unwrap();
    assert!(rec.last().ports.is_empty());
    assert_eq!(rec.last().networks.len(), 1);

    c.delete_port(A, &n.id, &p.id).unwrap();
    c.delete_network(A, &n.id).unwrap();
    assert_eq!(rec.last(), DesiredState::default());
}

#[test]
fn op_status_is_up_only_when_forwarder_reports_it() {
    let (c, rec) = setup();
    let n = create_network(&c, A, "n").unwrap();
    let p = create_port(&c, A, &n.id, PortState::Active).unwrap();
    c.register_interface(A, "vif", "tap0").unwrap();
    rec.up.lock().unwrap().insert(p.id.clone());
    // Not plugged yet: DOWN even if the forwarder says up.
    assert_eq!(c.port(A, &n.id, &p.id).unwrap().op_status, OpStatus::Down);
    c.plug(A, &n.id, &p.id, "vif").unwrap();
    assert_eq!(c.port(A, &n.id, &p.id).unwrap().op_status, OpStatus::Up);
    c.set_port_state(A, &n.id, &p.id, PortState::Down).unwrap();
    assert_eq!(c.port(A, &n.id, &p.id).unwrap().op_status, OpStatus::Down);
    c.set_port_state(A, &n.id, &p.id, PortState::Active)
        .unwrap();
    rec.up.lock().unwrap().clear();
    assert_eq!(c.port(A, &n.id, &p.id).unwrap().op_status, OpStatus::Down);
    assert_eq!(c.network(A, &n.id).unwrap().op_status, OpStatus::Up);
}

#[test]
fn failed_writes_do_not_reach_the_forwarder() {
    let (c, rec) = setup();
    let before = rec.count();
    assert!(create_port(&c, A, "missing", PortState::Down).is_err());
    assert!(create_network(&c, A, "bad\u{0}name").is_err());
    assert_eq!(rec.count(), before);
}

#[test]
fn interface_registry_is_scoped_and_guards_ids_and_devices() {
    let (c, _) = setup();
    assert_eq!(
        c.register_interface(A, "vif", "tap0").unwrap().1,
        Registered::Created
    );
    assert_eq!(
        c.register_interface(A, "vif", "tap1").unwrap().1,
        Registered::Updated
    );
    assert!(matches!(
        c.register_interface(B, "vif", "tap5"),
        Err(ControlError::InterfaceConflict { .. })
    ));
    assert!(matches!(
        c.register_interface(A, "vif-2", "tap1"),
        Err(ControlError::InterfaceConflict { .. })
    ));
    assert!(matches!(
        c.register_interface(A, "vif-3", "bad/dev"),
        Err(ControlError::Invalid { .. })
    ));
    assert_eq!(
        c.interface(B, "vif"),
        Err(ControlError::InterfaceNotFound {
            interface_id: "vif".into()
        })
    );
    assert_eq!(
        c.unregister_interface(B, "vif"),
        Err(ControlError::InterfaceNotFound {
            interface_id: "vif".into()
        })
    );
    assert!(c.interfaces(B).unwrap().is_empty());
    assert_eq!(c.interface(A, "vif").unwrap().device, "tap1");
}

#[test]
fn lists_keep_creation_order_and_group_ports_by_network() {
    let (c, _) = setup();
    let n1 = create_network(&c, A, "z").unwrap();
    let n2 = create_network(&c, A, "a").unwrap();
    let p1 = create_port(&c, A, &n2.id, PortState::Down).unwrap();
    let p2 = create_port(&c, A, &n1.id, PortState::Down).unwrap();
    let p3 = create_port(&c, A, &n2.id, PortState::Active).unwrap();
    let nets = c.list_networks(A).unwrap();
    let ids: Vec<_> = nets.iter().map(|n| n.network.id.clone()).collect();
    assert_eq!(ids, vec![n1.id.clone(), n2.id.clone()]);
    let ports = |v: &NetworkView| {
        v.ports
            .iter()
            .map(|p| p.port.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ports(&nets[0]), vec![p2.id]);
    assert_eq!(ports(&nets[1]), vec![p1.id, p3.id]);
}

#[test]
fn concurrent_creates_get_unique_vlans() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(Control::open(dir.path().join("q.db"), Arc::new(NullForwarder)).unwrap());
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                (0..10)
                    .map(|i| {
                        create_network(&c, &format!("t{t}"), &format!("n{i}"))
                            .unwrap()
                            .vlan
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    let mut vlans: Vec<u16> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    vlans.sort_unstable();
    assert_eq!(vlans, (1..=40).collect::<Vec<u16>>());
}

/// A v2.0 network of tenant A with port security on.
fn v2_network(c: &Control, scope: &crate::neutron::Scope) -> crate::neutron::NetworkRecord {
    let spec = NetworkSpec {
        mtu: Some(1500),
        ..NetworkSpec::named(A, "n")
    };
    c.create_networks(scope, vec![spec]).unwrap().remove(0)
}

#[test]
fn tenant_networks_draw_from_the_physnets_in_order_and_provider_segments_are_checked() {
    use crate::neutron::ProviderSpec;
    use crate::service::Physnet;
    let opts = ControlOptions {
        physnets: vec![
            Physnet {
                name: "a".into(),
                vlan_ranges: vec![(10, 10)],
            },
            Physnet {
                name: "b".into(),
                vlan_ranges: vec![(20, 21)],
            },
            Physnet {
                name: "c".into(),
                vlan_ranges: vec![],
            },
        ],
        ..Default::default()
    };
    let c = Control::in_memory(Arc::new(NullForwarder), opts).unwrap();
    let scope = crate::neutron::Scope {
        tenant_id: A.into(),
        admin: true,
    };
    let make = |p: ProviderSpec| {
        let spec = NetworkSpec {
            provider: p,
            ..NetworkSpec::named(A, "n")
        };
        c.create_networks(&scope, vec![spec])
            .map(|mut v| v.remove(0).network)
    };
    let seg = |n: crate::model::Network| (n.physnet.unwrap_or_default(), n.vlan);
    let tenant = || make(ProviderSpec::default());
    assert_eq!(seg(tenant().unwrap()), ("a".into(), 10));
    assert_eq!(seg(tenant().unwrap()), ("b".into(), 20));
    // A provider VLAN takes one of b's range: the next tenant network gets none there.
    let p = |ty: &str, physnet: Option<&str>, id: Option<i64>| ProviderSpec {
        network_type: Some(ty.into()),
        physical_network: physnet.map(str::to_owned),
        segmentation_id: id,
    };
    assert_eq!(
        seg(make(p("vlan", Some("b"), Some(21))).unwrap()),
        ("b".into(), 21)
    );
    assert!(matches!(tenant(), Err(ControlError::NoFreeVlan { .. })));
    // The same VLAN elsewhere is another segment; twice on one physnet is refused.
    assert_eq!(
        seg(make(p("vlan", Some("c"), Some(21))).unwrap()),
        ("c".into(), 21)
    );
    let in_use = make(p("vlan", Some("c"), Some(21))).unwrap_err();
    assert!(matches!(
        in_use,
        ControlError::SegmentInUse {
            kind: "VlanIdInUse",
            ..
        }
    ));
    let msg = |e: ControlError| e.to_string();
    assert_eq!(
        msg(make(p("vlan", Some("c"), None)).unwrap_err()),
        "Invalid input for operation: Physical network c requires segmentation_id to be \
         specified when creating a provider network."
    );
    assert!(msg(make(p("vlan", Some("x"), Some(3))).unwrap_err()).contains("unknown for VLAN"));
    assert!(msg(make(p("vlan", Some("a"), Some(4095))).unwrap_err()).contains("out of range"));
    assert!(msg(make(p("vlan", None, Some(3))).unwrap_err()).contains("requires physical_network"));
    assert!(msg(make(p("gre", None, None)).unwrap_err()).contains("'gre' not supported"));
    // Flat: one per physical network, never with an id; local: nothing else.
    let flat = make(p("flat", Some("c"), None)).unwrap();
    assert_eq!(
        (flat.network_type, flat.vlan),
        (crate::model::NetworkType::Flat, 0)
    );
    assert!(matches!(
        make(p("flat", Some("c"), None)).unwrap_err(),
        ControlError::SegmentInUse {
            kind: "FlatNetworkInUse",
            ..
        }
    ));
    assert!(msg(make(p("flat", Some("a"), Some(1))).unwrap_err()).contains("prohibited"));
    assert!(msg(make(p("flat", None, None)).unwrap_err()).contains("required for flat"));
    let local = make(p("local", None, None)).unwrap();
    assert_eq!(local.physnet, None);
    assert!(msg(make(p("local", Some("a"), None)).unwrap_err()).contains("prohibited"));
}

/// A v2.0 port of tenant A on `net`, every attribute left to its default.
fn v2_port(
    c: &Control,
    scope: &crate::neutron::Scope,
    net: &str,
) -> crate::neutron::PortStatusView {
    c.create_ports(scope, vec![v2_port_spec(net)])
        .unwrap()
        .remove(0)
}

/// A port of tenant `A` on `net` with every attribute at its default.
fn v2_port_spec(net: &str) -> crate::neutron::PortSpec {
    crate::neutron::PortSpec {
        tenant_id: A.into(),
        network_id: net.into(),
        name: String::new(),
        admin_state_up: true,
        mac_address: None,
        fixed_ips: None,
        device_id: String::new(),
        device_owner: String::new(),
        description: String::new(),
        port_security_enabled: None,
        allowed_address_pairs: Vec::new(),
        host_id: String::new(),
        security_groups: None,
        qos_policy_id: None,
        bind_tap: true,
    }
}

#[test]
fn tap_binding_needs_a_registered_device_when_authorized() {
    use crate::neutron::{tap_device, Scope};
    for authorize in [false, true] {
        let c = Control::in_memory(
            Arc::new(NullForwarder),
            ControlOptions {
                authorize_tap_binding: authorize,
                ..ControlOptions::default()
            },
        )
        .unwrap();
        let scope = Scope {
            tenant_id: A.into(),
            admin: false,
        };
        let net = v2_network(&c, &scope);
        let port = v2_port(&c, &scope, &net.network.id);
        let id = port.record.port.id.clone();
        let bound = |c: &Control| c.desired_state().unwrap().ports.iter().any(|p| p.id == id);
        // Without authorization the device binds as soon as it exists; with it, only once the
        // hypervisor side registered it for the port's tenant (not another tenant's).
        assert_eq!(bound(&c), !authorize, "authorize={authorize}");
        c.register_interface(B, "vif-b", &tap_device(&id)).unwrap();
        assert_eq!(
            bound(&c),
            !authorize,
            "another tenant's registration, authorize={authorize}"
        );
        c.unregister_interface(B, "vif-b").unwrap();
        c.register_interface(A, "vif-a", &tap_device(&id)).unwrap();
        assert!(bound(&c), "own registration, authorize={authorize}");
    }
}

#[test]
fn interfaces_are_registered_per_host_and_bind_their_ports_there() {
    use crate::neutron::{tap_device, Scope};
    let c = Control::in_memory(
        Arc::new(NullForwarder),
        ControlOptions {
            authorize_tap_binding: true,
            host: Some("h1".into()),
            ..ControlOptions::default()
        },
    )
    .unwrap();
    // One device name per host: the same name on two hosts, never twice on one, and never on
    // one host and on any host at once.
    c.register_interface_on(A, "on-1", "tap7", "h1").unwrap();
    c.register_interface_on(A, "on-2", "tap7", "h2").unwrap();
    for (id, host) in [("again-1", "h1"), ("anywhere", "")] {
        assert!(matches!(
            c.register_interface_on(A, id, "tap7", host),
            Err(ControlError::InterfaceConflict { .. })
        ));
    }
    assert!(matches!(
        c.register_interface_on(A, "bad", "tap8", "h 1"),
        Err(ControlError::Invalid { .. })
    ));
    assert_eq!(c.interface(A, "on-2").unwrap().host, "h2");

    // A Quantum port plugged with an interface of another host is that host's to forward.
    let n = create_network(&c, A, "n").unwrap();
    let forwarded = |c: &Control, port: &str| {
        c.desired_state()
            .unwrap()
            .ports
            .iter()
            .any(|p| p.id == port)
    };
    let here = create_port(&c, A, &n.id, PortState::Active).unwrap();
    let there = create_port(&c, A, &n.id, PortState::Active).unwrap();
    c.plug(A, &n.id, &here.id, "on-1").unwrap();
    c.plug(A, &n.id, &there.id, "on-2").unwrap();
    assert!(forwarded(&c, &here.id));
    assert!(!forwarded(&c, &there.id));
    // Moved to this host (the same id, its device now here): forwarded here.
    c.register_interface_on(A, "on-2", "tap9", "h1").unwrap();
    assert!(forwarded(&c, &there.id));

    // A v2.0 port's tap binds only to a device registered on this host (or on any).
    let scope = Scope {
        tenant_id: A.into(),
        admin: false,
    };
    let net = v2_network(&c, &scope);
    let id = v2_port(&c, &scope, &net.network.id).record.port.id;
    c.register_interface_on(A, "tap-there", &tap_device(&id), "h2")
        .unwrap();
    assert!(!forwarded(&c, &id), "registered on another host");
    c.register_interface_on(A, "tap-here", &tap_device(&id), "h1")
        .unwrap();
    assert!(forwarded(&c, &id), "registered on this host");
}

#[test]
fn catching_up_inside_a_write_derives_the_whole_state_only_after_a_restore() {
    let c = Control::in_memory(Arc::new(NullForwarder), ControlOptions::default()).unwrap();
    create_network(&c, A, "one").unwrap();
    create_network(&c, A, "two").unwrap();
    let now = c.store_revision().unwrap();
    let derive = reconcile::Derive::default();
    let caught = |sent: u64| {
        let mut out = Vec::new();
        c.store
            .read(&mut |tx| {
                out = catch_up(tx, sent, &derive, false)?;
                Ok(())
            })
            .unwrap();
        out
    };
    // Behind: the deltas of what it missed, in order.
    let works = caught(now - 2);
    assert_eq!(
        works.iter().map(revision_of).collect::<Vec<_>>(),
        [now - 1, now]
    );
    assert!(works.iter().all(|w| matches!(w, Work::Delta(..))));
    // Up to date: nothing.
    assert!(caught(now).is_empty());
    // Ahead of the store (a database restored from a backup): the whole state, at once.
    let works = caught(now + 3);
    assert!(
        matches!(&works[..], [Work::Full(rev, state, _)] if *rev == now && state.networks.len() == 2),
        "{works:?}"
    );
}

#[test]
fn an_interface_moving_between_hosts_moves_its_port_in_and_out_of_the_data_plane() {
    let log = Arc::new(ChangeLog::default());
    let c = Control::in_memory(
        log.clone(),
        ControlOptions {
            host: Some("h1".into()),
            ..ControlOptions::default()
        },
    )
    .unwrap();
    let n = create_network(&c, A, "n").unwrap();
    let p = create_port(&c, A, &n.id, PortState::Active).unwrap();
    c.register_interface_on(A, "vif", "tap0", "h2").unwrap();
    c.plug(A, &n.id, &p.id, "vif").unwrap();
    let last = || log.sets.lock().unwrap().last().cloned().unwrap();
    assert!(
        !last()
            .ports
            .iter()
            .any(|ch| matches!(ch, Change::Set(d) if d.id == p.id)),
        "another host's interface"
    );
    c.register_interface_on(A, "vif", "tap0", "h1").unwrap();
    assert!(
        matches!(&last().ports[..], [Change::Set(d)] if d.id == p.id && d.device == "tap0"),
        "{:?}",
        last()
    );
    c.register_interface_on(A, "vif", "tap0", "h2").unwrap();
    assert_eq!(last().ports, vec![Change::Removed(p.id.clone())]);
}

/// Keeps the set of devices it is told to keep prepared.
#[derive(Debug, Default)]
struct Prepared(Mutex<HashSet<String>>);

impl Forwarder for Prepared {
    fn apply(&self, _changes: &Changes) {}
    fn port_up(&self, _port_id: &str) -> bool {
        false
    }
    fn prepare_devices(&self, devices: &[String]) {
        self.0.lock().unwrap().extend(devices.iter().cloned());
    }
    fn release_devices(&self, devices: &[String]) {
        let mut set = self.0.lock().unwrap();
        for d in devices {
            set.remove(d);
        }
    }
    fn keep_devices(&self, devices: &[String]) {
        *self.0.lock().unwrap() = devices.iter().cloned().collect();
    }
}

#[test]
fn a_data_plane_keeps_prepared_the_devices_registered_on_its_host() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let options = || ControlOptions {
        host: Some("h1".into()),
        ..ControlOptions::default()
    };
    let fwd = Arc::new(Prepared::default());
    let c = Control::open_with(&db, fwd.clone(), options()).unwrap();
    let prepared = |f: &Prepared| {
        let mut v: Vec<String> = f.0.lock().unwrap().iter().cloned().collect();
        v.sort();
        v
    };
    c.register_interface_on(A, "here", "tap1", "h1").unwrap();
    c.register_interface_on(A, "there", "tap2", "h2").unwrap();
    c.register_interface_on(A, "anywhere", "tap3", "").unwrap();
    assert_eq!(prepared(&fwd), ["tap1", "tap3"]);
    // Moved away, renamed, removed.
    c.register_interface_on(A, "here", "tap1", "h2").unwrap();
    c.register_interface_on(A, "anywhere", "tap4", "").unwrap();
    c.register_interface_on(A, "there", "tap2", "h1").unwrap();
    assert_eq!(prepared(&fwd), ["tap2", "tap4"]);
    c.unregister_interface(A, "there").unwrap();
    assert_eq!(prepared(&fwd), ["tap4"]);
    // A whole state (a resync) says which devices to keep: what a lost delta left is mended.
    fwd.prepare_devices(&["stale".to_owned()]);
    c.reconcile().unwrap();
    assert_eq!(prepared(&fwd), ["tap4"]);
    // A data plane that starts later prepares what is registered on its host by then.
    drop(c);
    let again = Arc::new(Prepared::default());
    let _c = Control::open_with(&db, again.clone(), options()).unwrap();
    assert_eq!(prepared(&again), ["tap4"]);
}

/// Records the change sets themselves (not only the state they lead to).
#[derive(Debug, Default)]
struct ChangeLog {
    sets: Mutex<Vec<Changes>>,
}

impl Forwarder for ChangeLog {
    fn apply(&self, changes: &Changes) {
        self.sets.lock().unwrap().push(changes.clone());
    }
    fn port_up(&self, _port_id: &str) -> bool {
        false
    }
}

#[test]
fn writes_hand_over_only_what_they_change() {
    let log = Arc::new(ChangeLog::default());
    let c = Control::in_memory(log.clone(), ControlOptions::default()).unwrap();
    let sets = || log.sets.lock().unwrap().clone();
    assert!(sets()[0].full, "startup hands over the whole state");

    let n = create_network(&c, A, "n").unwrap();
    c.register_interface(A, "vif", "tap0").unwrap();
    let p = create_port(&c, A, &n.id, PortState::Active).unwrap();
    let before = sets().len();
    c.plug(A, &n.id, &p.id, "vif").unwrap();
    let last = sets().last().cloned().unwrap();
    assert_eq!(sets().len(), before + 1);
    assert!(!last.full);
    assert!(last.networks.is_empty());
    assert!(
        matches!(&last.ports[..], [Change::Set(d)] if d.id == p.id && d.device == "tap0"),
        "{last:?}"
    );
    assert!(last.revision > sets()[0].revision);

    // Names change nothing the data plane sees: no change set at all.
    let before = sets().len();
    c.rename_network(A, &n.id, "renamed").unwrap();
    assert_eq!(sets().len(), before);

    // The network's admin state reaches its ports.
    let scope = crate::neutron::Scope {
        tenant_id: A.into(),
        admin: true,
    };
    c.v2_update_network(
        &scope,
        &n.id,
        crate::neutron::NetworkUpdate {
            admin_state_up: Some(false),
            ..Default::default()
        },
    )
    .unwrap();
    let last = sets().last().cloned().unwrap();
    assert!(
        matches!(&last.ports[..], [Change::Set(d)] if !d.admin_up),
        "{last:?}"
    );

    c.unplug(A, &n.id, &p.id).unwrap();
    let last = sets().last().cloned().unwrap();
    assert_eq!(last.ports, vec![Change::Removed(p.id.clone())]);
    assert_eq!(c.applied_revision(), c.store_revision().unwrap());
}

#[test]
fn concurrent_writers_leave_the_data_plane_equal_to_the_store() {
    let (c, rec) = setup();
    let c = Arc::new(c);
    let n = create_network(&c, A, "n").unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let c = Arc::clone(&c);
            let net = n.id.clone();
            s.spawn(move || {
                for i in 0..10 {
                    let vif = format!("vif-{t}-{i}");
                    c.register_interface(A, &vif, &format!("tq{t}x{i}"))
                        .unwrap();
                    let p = create_port(&c, A, &net, PortState::Active).unwrap();
                    c.plug(A, &net, &p.id, &vif).unwrap();
                    if i % 3 == 0 {
                        c.unplug(A, &net, &p.id).unwrap();
                    }
                }
            });
        }
    });
    let mut want = c.desired_state().unwrap();
    let mut got = rec.last();
    want.ports.sort_by(|a, b| a.id.cmp(&b.id));
    got.ports.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(got, want);
    assert_eq!(c.applied_revision(), c.store_revision().unwrap());
}

#[test]
fn resync_hands_over_the_whole_state_again() {
    let log = Arc::new(ChangeLog::default());
    let c = Control::in_memory(log.clone(), ControlOptions::default()).unwrap();
    create_network(&c, A, "n").unwrap();
    c.reconcile().unwrap();
    let last = log.sets.lock().unwrap().last().cloned().unwrap();
    assert!(last.full);
    assert_eq!(last.networks.len(), 1);
}

#[test]
fn security_groups_reach_the_data_plane_as_rules_and_address_sets() {
    use crate::ipam::Family;
    use crate::neutron::{GatewayRequest, PortUpdate, Scope, SubnetSpec};
    use crate::security::{SecurityGroupSpec, SgRuleSpec};
    let log = Arc::new(ChangeLog::default());
    let c = Control::in_memory(log.clone(), ControlOptions::default()).unwrap();
    let sets = || log.sets.lock().unwrap().clone();
    let scope = Scope {
        tenant_id: A.into(),
        admin: false,
    };
    let net = v2_network(&c, &scope);
    c.create_subnets(
        &scope,
        vec![SubnetSpec {
            tenant_id: A.into(),
            network_id: net.network.id.clone(),
            name: String::new(),
            description: String::new(),
            family: Family::V4,
            cidr: crate::ipam::Cidr::parse("198.18.0.0/24").unwrap(),
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
    let p1 = v2_port(&c, &scope, &net.network.id);
    let p2 = v2_port(&c, &scope, &net.network.id);
    let ip = |p: &crate::neutron::PortStatusView| p.record.attrs.fixed_ips[0].ip_address.clone();
    let default = p1.record.attrs.security_groups[0].clone();

    // Each port: Neutron's default rules; the default group's set: both ports' addresses.
    let state = c.desired_state().unwrap();
    let filter = state.ports[0].filter.clone().expect("port security is on");
    assert_eq!(filter.rules.len(), 4, "{filter:?}");
    let ingress: Vec<_> = filter.rules.iter().filter(|r| r.ingress).collect();
    assert!(ingress
        .iter()
        .all(|r| r.remote_group.as_deref() == Some(default.as_str()) && r.stateful));
    let group = state.groups.iter().find(|g| g.id == default).unwrap();
    let mut want = vec![ip(&p1), ip(&p2)];
    want.sort();
    assert_eq!(group.addresses, want);

    // A rule reaches every port of its group, and nothing else moves.
    let before = sets().len();
    c.create_sg_rules(
        &scope,
        vec![SgRuleSpec {
            security_group_id: default.clone(),
            direction: "ingress".into(),
            protocol: Some("tcp".into()),
            port_range_min: Some(22),
            port_range_max: Some(22),
            remote_ip_prefix: crate::ipam::IpPrefix::parse("0.0.0.0/0"),
            ..SgRuleSpec::default()
        }],
    )
    .unwrap();
    let last = sets().last().cloned().unwrap();
    assert_eq!(sets().len(), before + 1);
    assert_eq!(last.ports.len(), 2, "{last:?}");
    assert!(last.groups.is_empty() && last.networks.is_empty());
    assert!(last.ports.iter().all(|p| matches!(p, Change::Set(d)
        if d.filter.as_ref().unwrap().rules.iter().any(|r| r.port_min == Some(22) && r.protocol == Some(6)))));

    // A port that leaves the group: its rules go, and so does its address from the set.
    let web = c
        .create_security_groups(
            &scope,
            vec![SecurityGroupSpec {
                tenant_id: A.into(),
                name: "web".into(),
                description: String::new(),
                stateful: true,
            }],
        )
        .unwrap()
        .remove(0);
    c.v2_update_port(
        &scope,
        &p2.record.port.id,
        PortUpdate {
            security_groups: Some(vec![web.0.id.clone()]),
            ..PortUpdate::default()
        },
    )
    .unwrap();
    let state = c.desired_state().unwrap();
    let group = |id: &str| state.groups.iter().find(|g| g.id == id).unwrap().clone();
    assert_eq!(group(&default).addresses, vec![ip(&p1)]);
    assert_eq!(group(&web.0.id).addresses, vec![ip(&p2)]);
    let p2_filter = state
        .ports
        .iter()
        .find(|p| p.id == p2.record.port.id)
        .unwrap();
    assert_eq!(
        p2_filter.filter.as_ref().unwrap().rules.len(),
        2,
        "a new group's default egress rules"
    );
    let last = sets().last().cloned().unwrap();
    assert_eq!(last.groups.len(), 2, "{last:?}");
    // A deleted port leaves its group's set.
    c.v2_delete_port(&scope, &p1.record.port.id).unwrap();
    let state = c.desired_state().unwrap();
    let set = state.groups.iter().find(|g| g.id == default).unwrap();
    assert!(set.addresses.is_empty(), "{set:?}");
    assert_eq!(c.applied_revision(), c.store_revision().unwrap());
    // The data plane's view equals a full derivation.
    let mut live = DesiredState::default();
    for s in sets() {
        live.apply(&s);
    }
    let mut want = c.desired_state().unwrap();
    for st in [&mut live, &mut want] {
        st.ports.sort_by(|a, b| a.id.cmp(&b.id));
        st.groups.sort_by(|a, b| a.id.cmp(&b.id));
    }
    assert_eq!(live, want);
}

#[test]
fn slaac_subnets_give_eui64_addresses_and_go_with_them() {
    use crate::ipam::Family;
    use crate::neutron::{GatewayRequest, Scope, SubnetSpec};
    let (c, _) = setup();
    let scope = Scope {
        tenant_id: A.into(),
        admin: false,
    };
    let net = v2_network(&c, &scope);
    let subnet = |cidr: &str, mode: Option<&str>, family| SubnetSpec {
        tenant_id: A.into(),
        network_id: net.network.id.clone(),
        name: String::new(),
        description: String::new(),
        family,
        cidr: crate::ipam::Cidr::parse(cidr).unwrap(),
        gateway_ip: GatewayRequest::Default,
        allocation_pools: None,
        enable_dhcp: true,
        dns_nameservers: vec![],
        host_routes: vec![],
        ipv6_ra_mode: mode.map(str::to_owned),
        ipv6_address_mode: mode.map(str::to_owned),
    };
    let specs = vec![
        subnet("198.18.0.0/24", None, Family::V4),
        subnet("2001:db8:1::/64", Some("slaac"), Family::V6),
    ];
    let made = c.create_subnets(&scope, specs).unwrap();
    let port = v2_port(&c, &scope, &net.network.id);
    let ips: Vec<String> = port
        .record
        .attrs
        .fixed_ips
        .iter()
        .map(|f| f.ip_address.clone())
        .collect();
    // fa:16:3e:dd:ee:ff -> 2001:db8:1::f816:3eff:fedd:eeff
    let m: Vec<u8> = port
        .record
        .attrs
        .mac_address
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    let mut want = [0u8; 16];
    want[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 1]);
    want[8..].copy_from_slice(&[m[0] ^ 2, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]);
    assert_eq!(ips.len(), 2, "{ips:?}");
    assert_eq!(
        ips[1].parse::<std::net::Ipv6Addr>().unwrap(),
        std::net::Ipv6Addr::from(want)
    );
    // The SLAAC subnet can go while the port holds an address in it; the port loses it.
    c.delete_subnet(&scope, &made[1].id).unwrap();
    let after = c.v2_port(&scope, &port.record.port.id).unwrap();
    assert_eq!(after.record.attrs.fixed_ips.len(), 1);
    // The IPv4 subnet, with an address in use, cannot.
    assert!(c.delete_subnet(&scope, &made[0].id).is_err());

    // A SLAAC subnet added later gives the ports already there their address, as Neutron does;
    // a router interface is left alone.
    let router = c
        .create_ports(
            &scope,
            vec![crate::neutron::PortSpec {
                device_owner: "network:router_interface".into(),
                ..v2_port_spec(&net.network.id)
            }],
        )
        .unwrap()
        .remove(0);
    let again = c
        .create_subnets(
            &scope,
            vec![subnet("2001:db8:2::/64", Some("slaac"), Family::V6)],
        )
        .unwrap()
        .remove(0);
    let after = c.v2_port(&scope, &port.record.port.id).unwrap();
    let v6: Vec<_> = after
        .record
        .attrs
        .fixed_ips
        .iter()
        .filter(|f| f.subnet_id == again.id)
        .collect();
    want[4..6].copy_from_slice(&[0, 2]);
    assert_eq!(
        v6.iter()
            .map(|f| f.ip_address.parse::<std::net::Ipv6Addr>().unwrap())
            .collect::<Vec<_>>(),
        [std::net::Ipv6Addr::from(want)]
    );
    assert_eq!(
        after.record.attrs.revision_number,
        port.record.attrs.revision_number + 1
    );
    let r = c.v2_port(&scope, &router.record.port.id).unwrap();
    assert!(r
        .record
        .attrs
        .fixed_ips
        .iter()
        .all(|f| f.subnet_id != again.id));
    // The data plane has the address (anti-spoofing, router advertisements) at once.
    let desired = c.desired_state().unwrap();
    let d = desired
        .ports
        .iter()
        .find(|d| d.id == port.record.port.id)
        .expect("a port bound by its tap name is a desired port");
    assert!(d
        .fixed_ips
        .contains(&std::net::IpAddr::V6(std::net::Ipv6Addr::from(want))));
}

#[test]
fn dhcpv6_subnets_give_ports_dhcpv6_answers_and_advertisement_flags() {
    use crate::ipam::Family;
    use crate::neutron::{GatewayRequest, Scope, SubnetSpec};
    let (c, _) = setup();
    let scope = Scope {
        tenant_id: A.into(),
        admin: false,
    };
    let net = v2_network(&c, &scope);
    let subnet = |cidr: &str, mode: &str| SubnetSpec {
        tenant_id: A.into(),
        network_id: net.network.id.clone(),
        name: String::new(),
        description: String::new(),
        family: Family::V6,
        cidr: crate::ipam::Cidr::parse(cidr).unwrap(),
        gateway_ip: GatewayRequest::Default,
        allocation_pools: None,
        enable_dhcp: true,
        dns_nameservers: vec!["2001:db8::53".parse().unwrap()],
        host_routes: vec![],
        ipv6_ra_mode: Some(mode.into()),
        ipv6_address_mode: Some(mode.into()),
    };
    c.create_subnets(
        &scope,
        vec![
            subnet("2001:db8:a::/64", "dhcpv6-stateful"),
            subnet("2001:db8:b::/64", "dhcpv6-stateless"),
        ],
    )
    .unwrap();
    let port = v2_port(&c, &scope, &net.network.id);
    let ips: Vec<std::net::Ipv6Addr> = port
        .record
        .attrs
        .fixed_ips
        .iter()
        .map(|f| f.ip_address.parse().unwrap())
        .collect();
    assert_eq!(ips.len(), 2, "one from each subnet: {ips:?}");
    let stateful = ips[0];
    assert_eq!(stateful.segments()[..4], [0x2001, 0xdb8, 0xa, 0]);
    let desired = c.desired_state().unwrap();
    let d = desired
        .ports
        .iter()
        .find(|d| d.id == port.record.port.id)
        .unwrap();
    let dhcp6 = d.dhcp6.clone().expect("DHCPv6 answers");
    assert_eq!(
        dhcp6.addresses,
        [stateful],
        "only the stateful subnet's address"
    );
    assert_eq!(
        dhcp6.dns,
        ["2001:db8::53".parse::<std::net::Ipv6Addr>().unwrap()]
    );
    let ra = d.ra.clone().expect("an advertisement");
    assert_eq!(
        ra.on_link,
        [("2001:db8:a::".parse::<std::net::Ipv6Addr>().unwrap(), 64)]
    );
    assert_eq!(
        ra.prefixes,
        ["2001:db8:b::".parse::<std::net::Ipv6Addr>().unwrap()]
    );
    assert!(ra.managed && ra.other);
}

#[test]
fn qos_policies_give_ports_their_limits_and_follow_changes() {
    use crate::neutron::{NetworkUpdate, PortUpdate, Scope};
    use crate::qos::{QosDirection, QosRuleType};
    use crate::{QosPolicySpec, QosRuleSpec};
    let (c, rec) = setup();
    let scope = Scope {
        tenant_id: A.into(),
        admin: true,
    };
    let net = v2_network(&c, &scope);
    let id = v2_port(&c, &scope, &net.network.id).record.port.id;
    let limits = |rec: &Recorder| {
        let s = rec.last();
        let p = s.ports.iter().find(|p| p.id == id).unwrap().clone();
        (p.qos, p.qos_ingress)
    };
    assert_eq!(limits(&rec), (None, None));
    let policy = |is_default: bool| {
        c.create_qos_policy(QosPolicySpec {
            tenant_id: A.into(),
            is_default,
            ..Default::default()
        })
        .map(|p| p.0.id)
    };
    let pol = policy(false).unwrap();
    let rule = |rate, direction| QosRuleSpec {
        rate: Some(rate),
        burst: Some(100),
        direction,
    };
    c.create_qos_rule(&scope, &pol, QosRuleType::BandwidthLimit, rule(1000, None))
        .unwrap();
    // The network's policy applies to its port.
    let set_net = |p: Option<String>| NetworkUpdate {
        qos_policy_id: Some(p),
        ..Default::default()
    };
    c.v2_update_network(&scope, &net.network.id, set_net(Some(pol.clone())))
        .unwrap();
    let egress = limits(&rec).0.map(|l| (l.rate_bps, l.burst_bits));
    assert_eq!(egress, Some((1_000_000, 100_000)));
    // A rule added to the policy reaches the port at once.
    c.create_qos_rule(
        &scope,
        &pol,
        QosRuleType::PacketRateLimit,
        rule(2, Some(QosDirection::Ingress)),
    )
    .unwrap();
    assert_eq!(limits(&rec).1.map(|l| l.rate_pps), Some(2000));
    // A second rule of a type and direction is refused.
    let twin = c.create_qos_rule(&scope, &pol, QosRuleType::BandwidthLimit, rule(5, None));
    assert!(matches!(
        twin,
        Err(ControlError::QosConflict {
            kind: "QoSRulesConflict",
            ..
        })
    ));
    // The network's own ports (DHCP, routers) do not take its policy.
    let owned = |owner: &str| PortUpdate {
        device_owner: Some(owner.into()),
        ..Default::default()
    };
    c.v2_update_port(&scope, &id, owned("network:dhcp"))
        .unwrap();
    assert_eq!(limits(&rec), (None, None));
    c.v2_update_port(&scope, &id, owned("compute:nova"))
        .unwrap();
    assert!(limits(&rec).0.is_some());
    // The port's own policy (without rules) wins over its network's.
    let own = policy(false).unwrap();
    let set_port = PortUpdate {
        qos_policy_id: Some(Some(own.clone())),
        ..Default::default()
    };
    c.v2_update_port(&scope, &id, set_port).unwrap();
    assert_eq!(limits(&rec), (None, None));
    assert!(matches!(
        c.delete_qos_policy(&scope, &own),
        Err(ControlError::QosConflict {
            kind: "QosPolicyInUse",
            ..
        })
    ));
    // A project's default policy goes to its new networks; there is one default.
    let d = policy(true).unwrap();
    assert!(matches!(
        policy(true),
        Err(ControlError::QosConflict {
            kind: "QoSPolicyDefaultAlreadyExists",
            ..
        })
    ));
    let net2 = v2_network(&c, &scope);
    assert_eq!(net2.attrs.qos_policy_id.as_deref(), Some(d.as_str()));
    // Another project sees neither a policy that is not shared nor may use it.
    let other = Scope {
        tenant_id: B.into(),
        admin: false,
    };
    assert!(matches!(
        c.qos_policy(&other, &pol),
        Err(ControlError::QosPolicyNotFound { .. })
    ));
}

/// A data plane whose apply panics once, on its `nth` change set.
#[derive(Debug)]
struct PanicsOnce {
    inner: Recorder,
    calls: Mutex<u32>,
    nth: u32,
}

impl Forwarder for PanicsOnce {
    fn apply(&self, changes: &Changes) {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            *calls
        };
        assert_ne!(n, self.nth, "a bug in the data plane");
        self.inner.apply(changes);
    }
    fn port_up(&self, port_id: &str) -> bool {
        self.inner.port_up(port_id)
    }
}

#[test]
fn a_data_plane_that_panics_is_resynced_and_keeps_following_writes() {
    let fwd = Arc::new(PanicsOnce {
        inner: Recorder::default(),
        calls: Mutex::new(0),
        nth: 3,
    });
    let c = Control::in_memory(fwd.clone(), ControlOptions::default()).unwrap();
    let n = create_network(&c, A, "n").unwrap();
    let mut plugged = Vec::new();
    for i in 0..3 {
        let vif = format!("vif-{i}");
        c.register_interface(A, &vif, &format!("tp{i}")).unwrap();
        let p = create_port(&c, A, &n.id, PortState::Active).unwrap();
        // Every write is answered, the one whose change set panicked included.
        c.plug(A, &n.id, &p.id, &vif).unwrap();
        plugged.push(p.id);
    }
    let ids = |s: DesiredState| {
        let mut ids: Vec<String> = s.ports.into_iter().map(|p| p.id).collect();
        ids.sort();
        ids
    };
    plugged.sort();
    assert_eq!(ids(fwd.inner.last()), plugged);
    assert_eq!(fwd.inner.last(), c.desired_state().unwrap());
    assert_eq!(c.applied_revision(), c.store_revision().unwrap());
}

/// The shape of a group's rules, in the order the API lists them, with the group's own id as
/// `self`.
fn rule_shapes(group: &GroupView) -> Vec<String> {
    let (g, rules) = group;
    rules
        .iter()
        .map(|r| {
            let remote = r.remote_group_id.as_deref().map(|id| match id == g.id {
                true => "self",
                false => "other",
            });
            format!(
                "{} {} {:?} {:?} {:?} {:?} {:?} {:?}",
                r.direction,
                r.ethertype,
                r.protocol,
                r.port_range_min,
                r.port_range_max,
                r.remote_ip_prefix,
                remote,
                r.description
            )
        })
        .collect()
}

#[test]
fn ports_from_before_security_groups_get_their_projects_default_group() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    // Schema 5: v2.0 ports with port security on (one of another project, on a shared
    // network), one with it off, and a Quantum port.
    crate::store::sqlite::create_at_schema(
        &path,
        5,
        "INSERT INTO networks (id, tenant_id, name, vlan, shared) VALUES ('n', 'tenant-a', 'n', 7, 1); \
         INSERT INTO ports (id, network_id, state, port_security_enabled, tenant_id) VALUES \
             ('p1', 'n', 'ACTIVE', 1, NULL), ('p2', 'n', 'ACTIVE', 1, 'tenant-b'), \
             ('p3', 'n', 'ACTIVE', 1, 'tenant-a'), ('off', 'n', 'ACTIVE', 0, NULL); \
         INSERT INTO ports (id, network_id, state) VALUES ('quantum', 'n', 'ACTIVE');",
    );
    let c = Control::open(&path, Arc::new(NullForwarder)).unwrap();
    let admin = Scope {
        tenant_id: "admin".into(),
        admin: true,
    };
    let groups_of = |port: &str| {
        c.v2_port(&admin, port)
            .unwrap()
            .record
            .attrs
            .security_groups
    };
    let default_of = |tenant: &str| {
        let scope = Scope {
            tenant_id: tenant.into(),
            admin: false,
        };
        let mut found: Vec<GroupView> = c
            .security_groups(&scope)
            .unwrap()
            .into_iter()
            .filter(|(g, _)| g.name == "default")
            .collect();
        assert_eq!(found.len(), 1, "{tenant} has one default group");
        found.remove(0)
    };
    let (a, b) = (default_of(A), default_of(B));
    assert!(a.0.is_default && b.0.is_default && a.0.stateful && b.0.stateful);
    assert_eq!(
        groups_of("p1"),
        vec![a.0.id.clone()],
        "the network's project's"
    );
    assert_eq!(
        groups_of("p3"),
        vec![a.0.id.clone()],
        "one group per project"
    );
    assert_eq!(
        groups_of("p2"),
        vec![b.0.id.clone()],
        "the port's own project's"
    );
    let revision = |port: &str| {
        c.v2_port(&admin, port)
            .unwrap()
            .record
            .attrs
            .revision_number
    };
    assert_eq!(revision("p1"), 2, "a port given a group counts the change");
    assert_eq!(revision("off"), 1);
    assert!(groups_of("off").is_empty());
    assert!(groups_of("quantum").is_empty());
    for id in [&a.0.id, &b.0.id] {
        uuid::Uuid::parse_str(id).unwrap();
    }
    // The same group, with the same rules, as the service makes for a project's first use.
    let fresh = default_of("tenant-c");
    assert_eq!(rule_shapes(&a), rule_shapes(&fresh));
    assert_eq!(rule_shapes(&b), rule_shapes(&fresh));
    assert_eq!(rule_shapes(&a).len(), 4);
    assert_eq!(
        (&a.0.name, &a.0.description),
        (&fresh.0.name, &fresh.0.description)
    );
    let rule_ids: HashSet<&str> = a.1.iter().chain(&b.1).map(|r| r.id.as_str()).collect();
    assert_eq!(rule_ids.len(), 8, "every rule its own id");
    for id in rule_ids {
        uuid::Uuid::parse_str(id).unwrap();
    }
}

#[test]
fn ports_made_with_no_group_since_security_groups_keep_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    // Schema 6: a port with port security on and no group was asked for so.
    crate::store::sqlite::create_at_schema(
        &path,
        6,
        "INSERT INTO networks (id, tenant_id, name, vlan) VALUES ('n', 'tenant-a', 'n', 7); \
         INSERT INTO ports (id, network_id, state, port_security_enabled) VALUES \
             ('p', 'n', 'ACTIVE', 1);",
    );
    let c = Control::open(&path, Arc::new(NullForwarder)).unwrap();
    let scope = Scope {
        tenant_id: A.into(),
        admin: false,
    };
    let port = c.v2_port(&scope, "p").unwrap();
    assert!(port.record.attrs.security_groups.is_empty());
}
