//! The v2.0 bodies of networks, ports and subnets: Neutron ML2's key set,
//! in its order.

use control::neutron::{NetworkRecord, PortStatusView, Subnet};
use control::security::{GroupView, SgRule};
use serde_json::{json, Map, Value};

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A network.
pub(crate) fn network(n: &NetworkRecord) -> Map<String, Value> {
    let a = &n.attrs;
    let net = &n.network;
    let mut m = object(json!({
        "id": n.network.id,
        "name": n.network.name,
        "tenant_id": n.network.tenant_id,
        "project_id": n.network.tenant_id,
        "admin_state_up": a.admin_state_up,
        "mtu": a.mtu,
        "status": "ACTIVE",
        "subnets": n.subnets,
        "shared": a.shared,
        "port_security_enabled": a.port_security_enabled,
        "router:external": a.router_external,
        "qos_policy_id": a.qos_policy_id,
        "availability_zone_hints": [],
        "availability_zones": [],
        "ipv4_address_scope": null,
        "ipv6_address_scope": null,
        "description": a.description,
        "tags": [],
        "created_at": a.created_at,
        "updated_at": a.updated_at,
        "revision_number": a.revision_number,
    }));
    m.extend(provider(net));
    m
}

/// A network's `provider:*` attributes, as Neutron shows them (both faces).
pub(crate) fn provider(net: &control::Network) -> Map<String, Value> {
    object(json!({
        "provider:network_type": net.network_type.as_str(),
        "provider:physical_network": net.physnet,
        "provider:segmentation_id": net.segmentation_id(),
    }))
}

/// A port; `status` is ACTIVE while the data plane forwards for it.
pub(crate) fn port(p: &PortStatusView) -> Map<String, Value> {
    let r = &p.record;
    let a = &r.attrs;
    let fixed: Vec<Value> = a
        .fixed_ips
        .iter()
        .map(|f| json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address}))
        .collect();
    let pairs: Vec<Value> = a
        .allowed_address_pairs
        .iter()
        .map(|p| json!({"mac_address": p.mac_address, "ip_address": p.ip_address}))
        .collect();
    let bound = r.port.attachment.is_some() || !a.host_id.is_empty();
    object(json!({
        "id": r.port.id,
        "name": a.name,
        "network_id": r.port.network_id,
        "tenant_id": a.tenant_id,
        "project_id": a.tenant_id,
        "mac_address": a.mac_address,
        "admin_state_up": r.port.state == control::PortState::Active,
        "status": match (&p.error, p.active) {
            (Some(_), _) => "ERROR",
            (None, true) => "ACTIVE",
            (None, false) => "DOWN",
        },
        "device_id": a.device_id,
        "device_owner": a.device_owner,
        "fixed_ips": fixed,
        "port_security_enabled": a.port_security_enabled,
        "security_groups": a.security_groups,
        "qos_policy_id": a.qos_policy_id,
        "qos_network_policy_id": a.network_qos_policy_id,
        "resource_request": null,
        "binding:vnic_type": "normal",
        "binding:profile": {},
        "binding:host_id": a.host_id,
        "binding:vif_type": if bound { "tap" } else { "unbound" },
        "binding:vif_details": {},
        "allowed_address_pairs": pairs,
        "extra_dhcp_opts": [],
        "description": a.description,
        "tags": [],
        "created_at": a.created_at,
        "updated_at": a.updated_at,
        "revision_number": a.revision_number,
    }))
}

/// A subnet.
pub(crate) fn subnet(s: &Subnet) -> Map<String, Value> {
    let pools: Vec<Value> = s
        .allocation_pools
        .iter()
        .map(|(a, b)| json!({"start": a, "end": b}))
        .collect();
    let routes: Vec<Value> = s
        .host_routes
        .iter()
        .map(|(d, n)| json!({"destination": d, "nexthop": n}))
        .collect();
    object(json!({
        "id": s.id,
        "name": s.name,
        "tenant_id": s.tenant_id,
        "project_id": s.tenant_id,
        "network_id": s.network_id,
        "ip_version": s.family.version(),
        "subnetpool_id": null,
        "enable_dhcp": s.enable_dhcp,
        "ipv6_ra_mode": s.ipv6_ra_mode,
        "ipv6_address_mode": s.ipv6_address_mode,
        "gateway_ip": s.gateway_ip,
        "cidr": s.cidr,
        "allocation_pools": pools,
        "host_routes": routes,
        "dns_nameservers": s.dns_nameservers,
        "description": s.description,
        "router:external": false,
        "service_types": [],
        "tags": [],
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "revision_number": s.revision_number,
    }))
}

/// A security group rule.
pub(crate) fn sg_rule(r: &SgRule) -> Map<String, Value> {
    object(json!({
        "id": r.id,
        "security_group_id": r.security_group_id,
        "tenant_id": r.tenant_id,
        "project_id": r.tenant_id,
        "direction": r.direction,
        "ethertype": r.ethertype,
        "protocol": r.protocol,
        "port_range_min": r.port_range_min,
        "port_range_max": r.port_range_max,
        "remote_ip_prefix": r.remote_ip_prefix,
        "normalized_cidr": r.normalized_cidr(),
        "remote_group_id": r.remote_group_id,
        "remote_address_group_id": null,
        "belongs_to_default_sg": r.in_default_group,
        "description": r.description,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "revision_number": r.revision_number,
    }))
}

/// A security group with its rules.
pub(crate) fn security_group((g, rules): &GroupView) -> Map<String, Value> {
    let rules: Vec<Map<String, Value>> = rules.iter().map(sg_rule).collect();
    object(json!({
        "id": g.id,
        "name": g.name,
        "stateful": g.stateful,
        "tenant_id": g.tenant_id,
        "project_id": g.tenant_id,
        "description": g.description,
        "shared": false,
        "security_group_rules": rules,
        "tags": [],
        "created_at": g.created_at,
        "updated_at": g.updated_at,
        "revision_number": g.revision_number,
    }))
}
