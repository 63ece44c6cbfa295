//! Request bodies of the v2.0 resources: which attributes exist, which a
//! POST or a PUT may carry, and their conversion and validation, with
//! Neutron's messages (`neutron/api/v2/base.py:prepare_request_body`,
//! `neutron_lib/api/validators`).
//!
//! Order of the checks, as Neutron's: unknown attributes, attributes the
//! verb may not set, required ones, then each value.

use std::net::IpAddr;

use control::ipam::{self, Cidr, Family, IpPrefix, Prefix};
use control::mac::Mac;
use control::neutron::{
    FixedIpRequest, GatewayRequest, NetworkSpec, NetworkUpdate, PairRequest, PortSpec, PortUpdate,
    ProviderSpec, Scope, SubnetSpec, SubnetUpdate,
};
use control::security::{SecurityGroupSpec, SecurityGroupUpdate, SgRuleSpec};
use serde_json::{Map, Value};

use super::error::NeutronError;
use super::Kind;

type R<T> = Result<T, NeutronError>;

/// Longest name or description.
pub(crate) const MAX_NAME: usize = 255;

/// One attribute: may a POST set it, may a PUT change it, is it required
/// on POST.
struct Attr {
    name: &'static str,
    post: bool,
    put: bool,
    required: bool,
}

const fn a(name: &'static str, post: bool, put: bool, required: bool) -> Attr {
    Attr {
        name,
        post,
        put,
        required,
    }
}

const NETWORK: &[Attr] = &[
    a("id", false, false, false),
    a("name", true, true, false),
    a("tenant_id", true, false, false),
    a("project_id", true, false, false),
    a("admin_state_up", true, true, false),
    a("mtu", true, true, false),
    a("status", false, false, false),
    a("subnets", false, false, false),
    a("shared", true, true, false),
    a("port_security_enabled", true, true, false),
    a("router:external", true, true, false),
    a("qos_policy_id", true, true, false),
    a("provider:network_type", true, false, false),
    a("provider:physical_network", true, false, false),
    a("provider:segmentation_id", true, false, false),
    a("availability_zone_hints", false, false, false),
    a("availability_zones", false, false, false),
    a("ipv4_address_scope", false, false, false),
    a("ipv6_address_scope", false, false, false),
    a("description", true, true, false),
    a("tags", false, false, false),
    a("created_at", false, false, false),
    a("updated_at", false, false, false),
    a("revision_number", false, false, false),
];

const PORT: &[Attr] = &[
    a("id", false, false, false),
    a("name", true, true, false),
    a("network_id", true, false, true),
    a("tenant_id", true, false, false),
    a("project_id", true, false, false),
    a("mac_address", true, true, false),
    a("admin_state_up", true, true, false),
    a("status", false, false, false),
    a("device_id", true, true, false),
    a("device_owner", true, true, false),
    a("fixed_ips", true, true, false),
    a("port_security_enabled", true, true, false),
    a("security_groups", true, true, false),
    a("qos_policy_id", true, true, false),
    a("binding:vnic_type", true, true, false),
    a("binding:profile", true, true, false),
    a("binding:host_id", true, true, false),
    a("binding:vif_type", false, false, false),
    a("binding:vif_details", false, false, false),
    a("allowed_address_pairs", true, true, false),
    a("extra_dhcp_opts", true, true, false),
    a("description", true, true, false),
    a("tags", false, false, false),
    a("created_at", false, false, false),
    a("updated_at", false, false, false),
    a("revision_number", false, false, false),
];

const SUBNET: &[Attr] = &[
    a("id", false, false, false),
    a("name", true, true, false),
    a("tenant_id", true, false, false),
    a("project_id", true, false, false),
    a("network_id", true, false, true),
    a("ip_version", true, false, true),
    a("subnetpool_id", true, false, false),
    a("enable_dhcp", true, true, false),
    a("ipv6_ra_mode", true, false, false),
    a("ipv6_address_mode", true, false, false),
    a("gateway_ip", true, true, false),
    a("cidr", true, false, true),
    a("allocation_pools", true, true, false),
    a("host_routes", true, true, false),
    a("dns_nameservers", true, true, false),
    a("description", true, true, false),
    a("router:external", false, false, false),
    a("service_types", false, false, false),
    a("tags", false, false, false),
    a("created_at", false, false, false),
    a("updated_at", false, false, false),
    a("revision_number", false, false, false),
];

const SECURITY_GROUP: &[Attr] = &[
    a("id", false, false, false),
    a("name", true, true, false),
    a("description", true, true, false),
    a("tenant_id", true, false, false),
    a("project_id", true, false, false),
    a("stateful", true, true, false),
    a("shared", false, false, false),
    a("security_group_rules", false, false, false),
    a("tags", false, false, false),
    a("created_at", false, false, false),
    a("updated_at", false, false, false),
    a("revision_number", false, false, false),
];

const SECURITY_GROUP_RULE: &[Attr] = &[
    a("id", false, false, false),
    a("security_group_id", true, false, true),
    a("direction", true, false, true),
    a("ethertype", true, false, false),
    a("protocol", true, false, false),
    a("port_range_min", true, false, false),
    a("port_range_max", true, false, false),
    a("remote_ip_prefix", true, false, false),
    a("remote_group_id", true, false, false),
    a("remote_address_group_id", true, false, false),
    a("normalized_cidr", false, false, false),
    a("belongs_to_default_sg", false, false, false),
    a("description", true, true, false),
    a("tenant_id", true, false, false),
    a("project_id", true, false, false),
    a("created_at", false, false, false),
    a("updated_at", false, false, false),
    a("revision_number", false, false, false),
];

fn table(kind: Kind) -> &'static [Attr] {
    match kind {
        Kind::Network => NETWORK,
        Kind::Port => PORT,
        Kind::Subnet => SUBNET,
        Kind::SecurityGroup => SECURITY_GROUP,
        Kind::SecurityGroupRule => SECURITY_GROUP_RULE,
    }
}

/// Is `name` an attribute of the resource (for filters and sort keys)?
pub(crate) fn known(kind: Kind, name: &str) -> bool {
    table(kind).iter().any(|a| a.name == name)
}

/// Checks the attribute names of a POST (`create`) or PUT body.
fn check_names(kind: Kind, body: &Map<String, Value>, create: bool) -> R<()> {
    let attrs = table(kind);
    let unknown: Vec<&str> = body
        .keys()
        .filter(|k| !attrs.iter().any(|a| a.name == k.as_str()))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(NeutronError::bad_request(format!(
            "Unrecognized attribute(s) '{}'",
            unknown.join(", ")
        )));
    }
    for a in attrs {
        if !body.contains_key(a.name) {
            continue;
        }
        if create && !a.post {
            return Err(NeutronError::bad_request(format!(
                "Attribute '{}' not allowed in POST",
                a.name
            )));
        }
        if !create && !a.put {
            return Err(NeutronError::bad_request(format!(
                "Cannot update read-only attribute {}",
                a.name
            )));
        }
    }
    if create {
        if let Some(a) = attrs
            .iter()
            .find(|a| a.required && !body.contains_key(a.name))
        {
            return Err(NeutronError::bad_request(format!(
                "Failed to parse request. Required attribute '{}' not specified",
                a.name
            )));
        }
    }
    Ok(())
}

/// Neutron's `convert_to_boolean`.
pub(crate) fn to_bool(v: &Value) -> R<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
        Value::String(s) => str_to_bool(s),
        other => Err(NeutronError::invalid_input(format!(
            "'{}' cannot be converted to boolean.",
            py(other)
        ))),
    }
}

/// Neutron's `convert_to_boolean` on a query-string value.
pub(crate) fn str_to_bool(s: &str) -> R<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(NeutronError::invalid_input(format!(
            "'{s}' cannot be converted to boolean."
        ))),
    }
}

/// A value as Python prints it in Neutron's messages.
pub(crate) fn py(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        other => other.to_string(),
    }
}

pub(crate) fn opt_bool(body: &Map<String, Value>, name: &str) -> R<Option<bool>> {
    body.get(name).map(to_bool).transpose()
}

/// A string of at most `max` characters (`validate_string`).
pub(crate) fn string(body: &Map<String, Value>, name: &str, max: usize) -> R<Option<String>> {
    match body.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => {
            if s.chars().count() > max {
                Err(NeutronError::invalid_attr(
                    name,
                    format!("'{s}' exceeds maximum length of {max}."),
                ))
            } else {
                Ok(Some(s.clone()))
            }
        }
        Some(other) => Err(NeutronError::invalid_attr(
            name,
            format!("'{}' is not a valid string", py(other)),
        )),
    }
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn uuid(body: &Map<String, Value>, name: &str) -> R<Option<String>> {
    match body.get(name) {
        None => Ok(None),
        Some(Value::String(s)) if is_uuid(s) => Ok(Some(s.to_ascii_lowercase())),
        Some(other) => Err(NeutronError::invalid_attr(
            name,
            format!("'{}' is not a valid UUID.", py(other)),
        )),
    }
}

fn ip(attr: &str, v: &Value) -> R<IpAddr> {
    match v.as_str().and_then(ipam::parse_ip) {
        Some(ip) => Ok(ip),
        None => Err(NeutronError::invalid_attr(
            attr,
            format!("'{}' is not a valid IP address.", py(v)),
        )),
    }
}

fn list<'a>(body: &'a Map<String, Value>, name: &str) -> R<Option<&'a Vec<Value>>> {
    match body.get(name) {
        None => Ok(None),
        Some(Value::Array(v)) => Ok(Some(v)),
        Some(other) => Err(NeutronError::invalid_attr(
            name,
            format!("'{}' is not a list", py(other)),
        )),
    }
}

fn dict<'a>(attr: &str, v: &'a Value) -> R<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| NeutronError::invalid_attr(attr, format!("'{}' is not a dictionary", py(v))))
}

/// `security_groups`: a list of group ids (`null` is an empty list).
fn security_groups(body: &Map<String, Value>) -> R<Option<Vec<String>>> {
    if body.get("security_groups").is_some_and(Value::is_null) {
        return Ok(Some(Vec::new()));
    }
    let Some(items) = list(body, "security_groups")? else {
        return Ok(None);
    };
    let ids = items
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(NeutronError::invalid_attr(
                "security_groups",
                format!("'{}' is not a valid UUID", py(other)),
            )),
        })
        .collect::<R<Vec<_>>>()?;
    // Neutron's list validator: duplicates are named, in first-seen order.
    let mut dups: Vec<&str> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) && !dups.contains(&id.as_str()) {
            dups.push(id);
        }
    }
    if !dups.is_empty() {
        return Err(NeutronError::invalid_attr(
            "security_groups",
            format!("Duplicate items in the list: '{}'", dups.join(", ")),
        ));
    }
    Ok(Some(ids))
}

/// An optional string that may be `null`.
fn nullable_string(body: &Map<String, Value>, name: &str) -> R<Option<String>> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(NeutronError::invalid_attr(
            name,
            format!("'{}' is not a valid string", py(other)),
        )),
    }
}

/// An optional integer (or its decimal string) that may be `null`.
fn nullable_int(body: &Map<String, Value>, name: &str) -> R<Option<i64>> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .map(Some)
            .ok_or_else(|| {
                NeutronError::invalid_attr(name, format!("'{}' is not an integer", py(v)))
            }),
    }
}

/// A POST body of a security group.
pub(crate) fn security_group_spec(
    body: &Map<String, Value>,
    scope: &Scope,
) -> R<SecurityGroupSpec> {
    check_names(Kind::SecurityGroup, body, true)?;
    Ok(SecurityGroupSpec {
        tenant_id: project(body, scope)?,
        name: string(body, "name", MAX_NAME)?.unwrap_or_default(),
        description: string(body, "description", MAX_NAME)?.unwrap_or_default(),
        stateful: opt_bool(body, "stateful")?.unwrap_or(true),
    })
}

/// A PUT body of a security group.
pub(crate) fn security_group_update(body: &Map<String, Value>) -> R<SecurityGroupUpdate> {
    check_names(Kind::SecurityGroup, body, false)?;
    Ok(SecurityGroupUpdate {
        name: string(body, "name", MAX_NAME)?,
        description: string(body, "description", MAX_NAME)?,
        stateful: opt_bool(body, "stateful")?,
    })
}

/// A POST body of a security group rule (the rule itself is checked by the control plane).
pub(crate) fn sg_rule_spec(body: &Map<String, Value>, scope: &Scope) -> R<SgRuleSpec> {
    check_names(Kind::SecurityGroupRule, body, true)?;
    let direction = string(body, "direction", MAX_NAME)?.unwrap_or_default();
    if direction != "ingress" && direction != "egress" {
        return Err(NeutronError::invalid_attr(
            "direction",
            format!("{direction} is not in valid_values."),
        ));
    }
    if nullable_string(body, "remote_address_group_id")?.is_some() {
        return Err(NeutronError::invalid_input(
            "remote_address_group_id is not supported by this server.",
        ));
    }
    let protocol = match body.get("protocol") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) => Some(s.to_ascii_lowercase()),
        Some(other) => Some(py(other)),
    };
    let tenant = match (body.get("tenant_id"), body.get("project_id")) {
        (None, None) => None,
        _ => Some(project(body, scope)?),
    };
    let security_group_id = string(body, "security_group_id", MAX_NAME)?.unwrap_or_default();
    let ethertype = nullable_string(body, "ethertype")?;
    let port_range_min = nullable_int(body, "port_range_min")?;
    let port_range_max = nullable_int(body, "port_range_max")?;
    // Neutron's converters, in its attribute order: the protocol's, then the prefix's (netaddr's
    // `IPNetwork`), both before the rule's other checks.
    let remote_ip_prefix = match nullable_string(body, "remote_ip_prefix")? {
        None => None,
        Some(p) => {
            control::security::check_protocol(protocol.as_deref())?;
            Some(IpPrefix::parse(&p).ok_or_else(|| {
                NeutronError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "InvalidCIDR",
                    format!("Invalid CIDR {p} given as IP prefix."),
                )
            })?)
        }
    };
    Ok(SgRuleSpec {
        security_group_id,
        tenant_id: tenant,
        direction,
        ethertype,
        protocol,
        port_range_min,
        port_range_max,
        remote_ip_prefix,
        remote_group_id: nullable_string(body, "remote_group_id")?,
        description: string(body, "description", MAX_NAME)?.unwrap_or_default(),
    })
}

/// A PUT body of a security group rule: its description.
pub(crate) fn sg_rule_update(body: &Map<String, Value>) -> R<Option<String>> {
    check_names(Kind::SecurityGroupRule, body, false)?;
    string(body, "description", MAX_NAME)
}

/// A list the server keeps empty (extra DHCP options):
/// only `[]` is accepted.
fn empty_list_only(body: &Map<String, Value>, name: &str) -> R<()> {
    match list(body, name)? {
        Some(v) if !v.is_empty() => Err(NeutronError::invalid_input(format!(
            "{name} are not supported by this server."
        ))),
        _ => Ok(()),
    }
}

/// The project a create is for: the body's `project_id`/`tenant_id` (they
/// must agree; a non-admin may only name its own), else the caller's.
pub(crate) fn project(body: &Map<String, Value>, scope: &Scope) -> R<String> {
    let t = string(body, "tenant_id", MAX_NAME)?;
    let p = string(body, "project_id", MAX_NAME)?;
    let chosen = match (t, p) {
        (Some(t), Some(p)) if t != p => {
            return Err(NeutronError::bad_request(
                "'project_id' and 'tenant_id' do not match",
            ))
        }
        (t, p) => p.or(t),
    };
    match chosen {
        Some(c) if c != scope.tenant_id && !scope.admin => Err(NeutronError::bad_request(
            "Specifying 'project_id' or 'tenant_id' other than the authenticated project in \
             request requires admin privileges",
        )),
        Some(c) => Ok(c),
        None => Ok(scope.tenant_id.clone()),
    }
}

/// `mtu`: a non-negative integer (or its decimal string), as Neutron converts it; its upper
/// bound (the physical network's MTU) and its lower bounds (its subnets') are the control
/// plane's rules.
fn mtu(body: &Map<String, Value>) -> R<Option<u32>> {
    let Some(v) = body.get("mtu") else {
        return Ok(None);
    };
    let n = v
        .as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .ok_or_else(|| NeutronError::invalid_input(format!("'{}' is not an integer.", py(v))))?;
    if n < 0 {
        return Err(NeutronError::invalid_attr(
            "mtu",
            format!("'{n}' should be non-negative."),
        ));
    }
    Ok(Some(u32::try_from(n).unwrap_or(u32::MAX)))
}

/// `router:external`: only admins set it (Neutron's policy: on create when it differs from the
/// default, on update whenever it is given).
fn router_external(body: &Map<String, Value>, scope: &Scope, create: bool) -> R<Option<bool>> {
    let v = opt_bool(body, "router:external")?;
    let explicit = if create { v == Some(true) } else { v.is_some() };
    if explicit && !scope.admin {
        let rule = if create {
            "(rule:create_network and rule:create_network:router:external)"
        } else {
            "(rule:update_network and rule:update_network:router:external)"
        };
        return Err(NeutronError::policy(rule));
    }
    Ok(v)
}

/// The `provider:*` attributes of a network to create: admins only (Neutron's policy), a
/// string, a string and an integer (or its decimal string); `null` is absent. Their meaning is
/// the control plane's (ML2's type drivers' rules).
fn provider(body: &Map<String, Value>, scope: &Scope) -> R<ProviderSpec> {
    if let Some(first) = provider_given(body) {
        if !scope.admin {
            return Err(NeutronError::policy(&format!(
                "(rule:create_network and rule:create_network:{first})"
            )));
        }
    }
    provider_spec(body).map_err(|(k, msg)| NeutronError::invalid_attr(k, msg))
}

/// The `provider:*` attributes.
const PROVIDER_ATTRS: [&str; 3] = [
    "provider:network_type",
    "provider:physical_network",
    "provider:segmentation_id",
];

/// The first `provider:*` attribute the body gives (not `null`), if any.
pub(crate) fn provider_given(body: &Map<String, Value>) -> Option<&'static str> {
    PROVIDER_ATTRS
        .into_iter()
        .find(|k| body.get(*k).is_some_and(|v| !v.is_null()))
}

/// The `provider:*` attributes of a body (both faces): the type and the physical network
/// strings, the segmentation id an integer or its decimal string; `null` is absent. A wrong
/// type is the attribute's name with the message.
pub(crate) fn provider_spec(
    body: &Map<String, Value>,
) -> Result<ProviderSpec, (&'static str, String)> {
    let text = |k: &'static str| match body.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err((k, format!("'{}' is not a valid string", py(v)))),
    };
    let id = "provider:segmentation_id";
    let segmentation_id = match body.get(id) {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| (id, format!("'{}' is not an integer", py(v))))?,
        ),
    };
    Ok(ProviderSpec {
        network_type: text("provider:network_type")?,
        physical_network: text("provider:physical_network")?,
        segmentation_id,
    })
}

/// A POST body of a network.
pub(crate) fn network_spec(body: &Map<String, Value>, scope: &Scope) -> R<NetworkSpec> {
    if body.contains_key("segments") {
        return Err(NeutronError::invalid_input(
            "the multi-provider extension (segments) is not supported; use the provider:* \
             attributes",
        ));
    }
    check_names(Kind::Network, body, true)?;
    let router_external = router_external(body, scope, true)?.unwrap_or(false);
    let provider = provider(body, scope)?;
    Ok(NetworkSpec {
        tenant_id: project(body, scope)?,
        name: string(body, "name", MAX_NAME)?.unwrap_or_default(),
        admin_state_up: opt_bool(body, "admin_state_up")?.unwrap_or(true),
        shared: opt_bool(body, "shared")?.unwrap_or(false),
        mtu: mtu(body)?,
        description: string(body, "description", MAX_NAME)?.unwrap_or_default(),
        port_security_enabled: opt_bool(body, "port_security_enabled")?.unwrap_or(true),
        router_external,
        provider,
        qos_policy_id: qos_policy_id(body)?.flatten(),
    })
}

/// A PUT body of a network.
pub(crate) fn network_update(body: &Map<String, Value>, scope: &Scope) -> R<NetworkUpdate> {
    check_names(Kind::Network, body, false)?;
    let router_external = router_external(body, scope, false)?;
    Ok(NetworkUpdate {
        name: string(body, "name", MAX_NAME)?,
        admin_state_up: opt_bool(body, "admin_state_up")?,
        shared: opt_bool(body, "shared")?,
        mtu: mtu(body)?,
        description: string(body, "description", MAX_NAME)?,
        port_security_enabled: opt_bool(body, "port_security_enabled")?,
        router_external,
        qos_policy_id: qos_policy_id(body)?,
    })
}

/// `qos_policy_id`: a policy id, or `null` (no policy); absent: `None`.
fn qos_policy_id(body: &Map<String, Value>) -> R<Option<Option<String>>> {
    match body.get("qos_policy_id") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(v) => Err(NeutronError::invalid_attr(
            "qos_policy_id",
            format!("'{}' is not a valid UUID", py(v)),
        )),
    }
}

fn mac(body: &Map<String, Value>) -> R<Option<Mac>> {
    match body.get("mac_address") {
        None => Ok(None),
        Some(v) => v.as_str().and_then(Mac::parse).map(Some).ok_or_else(|| {
            NeutronError::invalid_attr(
                "mac_address",
                format!("'{}' is not a valid MAC address.", py(v)),
            )
        }),
    }
}

fn fixed_ips(body: &Map<String, Value>) -> R<Option<Vec<FixedIpRequest>>> {
    let Some(items) = list(body, "fixed_ips")? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        // Other keys are ignored, as Neutron ignores them.
        let d = dict("fixed_ips", item)?;
        let subnet_id = match d.get("subnet_id") {
            None => None,
            Some(Value::String(s)) if is_uuid(s) => Some(s.to_ascii_lowercase()),
            Some(other) => {
                return Err(NeutronError::invalid_attr(
                    "fixed_ips",
                    format!("'{}' is not a valid UUID.", py(other)),
                ))
            }
        };
        let ip_address = d
            .get("ip_address")
            .map(|v| ip("fixed_ips", v))
            .transpose()?;
        out.push(FixedIpRequest {
            subnet_id,
            ip_address,
        });
    }
    Ok(Some(out))
}

fn address_pairs(body: &Map<String, Value>) -> R<Option<Vec<PairRequest>>> {
    let Some(items) = list(body, "allowed_address_pairs")? else {
        return Ok(None);
    };
    let mut out: Vec<PairRequest> = Vec::with_capacity(items.len());
    for item in items {
        let d = dict("allowed_address_pairs", item)?;
        if let Some(k) = d
            .keys()
            .find(|k| k.as_str() != "mac_address" && k.as_str() != "ip_address")
        {
            return Err(NeutronError::bad_request(format!(
                "Unrecognized attribute(s) '{k}'"
            )));
        }
        let ip = match d.get("ip_address") {
            // A host prefix given bare stays bare, as Neutron answers it.
            Some(Value::String(s)) => match Prefix::parse(s) {
                Some(p) => p,
                None => {
                    return Err(NeutronError::bad_request(format!(
                        "'{s}' is not a valid IP address or CIDR."
                    )))
                }
            },
            _ => {
                return Err(NeutronError::bad_request(
                    "AllowedAddressPair must contain ip_address",
                ))
            }
        };
        let mac_address = match d.get("mac_address") {
            None => None,
            Some(v) => Some(v.as_str().and_then(Mac::parse).ok_or_else(|| {
                NeutronError::invalid_attr(
                    "mac_address",
                    format!("'{}' is not a valid MAC address.", py(v)),
                )
            })?),
        };
        if out
            .iter()
            .any(|p| p.ip_address == ip && p.mac_address == mac_address)
        {
            return Err(NeutronError::bad_request(
                "Request contains duplicate address pair",
            ));
        }
        out.push(PairRequest {
            ip_address: ip,
            mac_address,
        });
    }
    Ok(Some(out))
}

fn binding(body: &Map<String, Value>) -> R<()> {
    if let Some(v) = body.get("binding:vnic_type") {
        if v.as_str() != Some("normal") {
            return Err(NeutronError::invalid_attr(
                "binding:vnic_type",
                format!(
                    "'{}' is not in ['normal'] (the only VNIC type of this switch)",
                    py(v)
                ),
            ));
        }
    }
    if let Some(v) = body.get("binding:profile") {
        if !(v.is_null() || v.as_object().is_some_and(Map::is_empty)) {
            return Err(NeutronError::invalid_input(
                "binding:profile must be empty on this server.",
            ));
        }
    }
    empty_list_only(body, "extra_dhcp_opts")
}

/// A POST body of a port.
pub(crate) fn port_spec(body: &Map<String, Value>, scope: &Scope) -> R<PortSpec> {
    check_names(Kind::Port, body, true)?;
    binding(body)?;
    Ok(PortSpec {
        tenant_id: project(body, scope)?,
        network_id: uuid(body, "network_id")?.unwrap_or_default(),
        name: string(body, "name", MAX_NAME)?.unwrap_or_default(),
        admin_state_up: opt_bool(body, "admin_state_up")?.unwrap_or(true),
        mac_address: mac(body)?,
        fixed_ips: fixed_ips(body)?,
        device_id: string(body, "device_id", MAX_NAME)?.unwrap_or_default(),
        device_owner: string(body, "device_owner", MAX_NAME)?.unwrap_or_default(),
        description: string(body, "description", MAX_NAME)?.unwrap_or_default(),
        port_security_enabled: opt_bool(body, "port_security_enabled")?,
        allowed_address_pairs: address_pairs(body)?.unwrap_or_default(),
        host_id: string(body, "binding:host_id", MAX_NAME)?.unwrap_or_default(),
        security_groups: security_groups(body)?,
        qos_policy_id: qos_policy_id(body)?.flatten(),
        // Nova names a VM's device after its Neutron port.
        bind_tap: true,
    })
}

/// A PUT body of a port.
pub(crate) fn port_update(body: &Map<String, Value>) -> R<PortUpdate> {
    check_names(Kind::Port, body, false)?;
    binding(body)?;
    Ok(PortUpdate {
        name: string(body, "name", MAX_NAME)?,
        admin_state_up: opt_bool(body, "admin_state_up")?,
        mac_address: mac(body)?,
        fixed_ips: fixed_ips(body)?,
        device_id: string(body, "device_id", MAX_NAME)?,
        device_owner: string(body, "device_owner", MAX_NAME)?,
        description: string(body, "description", MAX_NAME)?,
        port_security_enabled: opt_bool(body, "port_security_enabled")?,
        allowed_address_pairs: address_pairs(body)?,
        host_id: string(body, "binding:host_id", MAX_NAME)?,
        security_groups: security_groups(body)?,
        qos_policy_id: qos_policy_id(body)?,
    })
}

fn gateway(body: &Map<String, Value>) -> R<Option<GatewayRequest>> {
    match body.get("gateway_ip") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(GatewayRequest::Disabled)),
        Some(v) => Ok(Some(GatewayRequest::Address(ip("gateway_ip", v)?))),
    }
}

fn pools(body: &Map<String, Value>) -> R<Option<Vec<(String, String)>>> {
    let Some(items) = list(body, "allocation_pools")? else {
        return Ok(None);
    };
    items
        .iter()
        .map(|item| {
            let d = dict("allocation_pools", item)?;
            let get = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_owned);
            match (get("start"), get("end")) {
                (Some(s), Some(e)) if d.len() == 2 => Ok((s, e)),
                _ => Err(NeutronError::invalid_attr(
                    "allocation_pools",
                    format!(
                        "Invalid data format for IP pool: '{}'",
                        Value::Object(d.clone())
                    ),
                )),
            }
        })
        .collect::<R<Vec<_>>>()
        .map(Some)
}

fn nameservers(body: &Map<String, Value>) -> R<Option<Vec<IpAddr>>> {
    let Some(items) = list(body, "dns_nameservers")? else {
        return Ok(None);
    };
    let mut out: Vec<IpAddr> = Vec::new();
    for v in items {
        let ip = ip("dns_nameservers", v)?;
        if out.contains(&ip) {
            return Err(NeutronError::invalid_attr(
                "dns_nameservers",
                format!("Duplicate nameserver '{ip}'"),
            ));
        }
        out.push(ip);
    }
    Ok(Some(out))
}

fn routes(body: &Map<String, Value>) -> R<Option<Vec<(Cidr, IpAddr)>>> {
    let Some(items) = list(body, "host_routes")? else {
        return Ok(None);
    };
    items
        .iter()
        .map(|item| {
            let d = dict("host_routes", item)?;
            let dest = d
                .get("destination")
                .and_then(Value::as_str)
                .and_then(Cidr::parse);
            let hop = d.get("nexthop").map(|v| ip("host_routes", v));
            match (dest, hop) {
                (Some(c), Some(h)) if d.len() == 2 => Ok((c, h?)),
                _ => Err(NeutronError::invalid_attr(
                    "host_routes",
                    format!(
                        "Invalid data format for hostroute: '{}'",
                        Value::Object(d.clone())
                    ),
                )),
            }
        })
        .collect::<R<Vec<_>>>()
        .map(Some)
}

fn ipv6_mode(body: &Map<String, Value>, name: &str) -> R<Option<String>> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s))
            if ["slaac", "dhcpv6-stateful", "dhcpv6-stateless"].contains(&s.as_str()) =>
        {
            Ok(Some(s.clone()))
        }
        Some(v) => Err(NeutronError::invalid_attr(
            name,
            format!(
                "'{}' is not in ['dhcpv6-stateful', 'dhcpv6-stateless', 'slaac']",
                py(v)
            ),
        )),
    }
}

/// A POST body of a subnet.
pub(crate) fn subnet_spec(body: &Map<String, Value>, scope: &Scope) -> R<SubnetSpec> {
    check_names(Kind::Subnet, body, true)?;
    let family = body
        .get("ip_version")
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .and_then(|n| u8::try_from(n).ok())
        .and_then(Family::from_version)
        .ok_or_else(|| {
            NeutronError::invalid_attr(
                "ip_version",
                format!(
                    "{} is not in [4, 6]",
                    py(body.get("ip_version").unwrap_or(&Value::Null))
                ),
            )
        })?;
    if !matches!(body.get("subnetpool_id"), None | Some(Value::Null)) {
        return Err(NeutronError::invalid_input(
            "subnet pools are not supported by this server.",
        ));
    }
    let cidr = match body.get("cidr") {
        Some(v) => v.as_str().and_then(Cidr::parse).ok_or_else(|| {
            NeutronError::invalid_input(format!("{} is not in a CIDR format.", py(v)))
        })?,
        None => {
            return Err(NeutronError::bad_request_class(
                "Bad subnets request: a subnetpool must be specified in the absence of a cidr.",
            ))
        }
    };
    let ra = ipv6_mode(body, "ipv6_ra_mode")?;
    let addr = ipv6_mode(body, "ipv6_address_mode")?;
    let enable_dhcp = opt_bool(body, "enable_dhcp")?.unwrap_or(true);
    if (family == Family::V4 || !enable_dhcp) && (ra.is_some() || addr.is_some()) {
        return Err(NeutronError::invalid_input(
            "ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to \
             False, or when ip_version is 4.",
        ));
    }
    Ok(SubnetSpec {
        tenant_id: project(body, scope)?,
        network_id: uuid(body, "network_id")?.unwrap_or_default(),
        name: string(body, "name", MAX_NAME)?.unwrap_or_default(),
        description: string(body, "description", MAX_NAME)?.unwrap_or_default(),
        family,
        cidr,
        gateway_ip: gateway(body)?.unwrap_or_default(),
        allocation_pools: pools(body)?,
        enable_dhcp,
        dns_nameservers: nameservers(body)?.unwrap_or_default(),
        host_routes: routes(body)?.unwrap_or_default(),
        ipv6_ra_mode: ra,
        ipv6_address_mode: addr,
    })
}

/// A PUT body of a subnet.
pub(crate) fn subnet_update(body: &Map<String, Value>) -> R<SubnetUpdate> {
    check_names(Kind::Subnet, body, false)?;
    Ok(SubnetUpdate {
        name: string(body, "name", MAX_NAME)?,
        description: string(body, "description", MAX_NAME)?,
        gateway_ip: gateway(body)?,
        allocation_pools: pools(body)?,
        enable_dhcp: opt_bool(body, "enable_dhcp")?,
        dns_nameservers: nameservers(body)?,
        host_routes: routes(body)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_checked_by_shape() {
        assert!(is_uuid("6fbc6351-2a56-4beb-a699-4122ab9d653b"));
        assert!(!is_uuid("nonexist"));
        assert!(!is_uuid("6fbc6351x2a56-4beb-a699-4122ab9d653b"));
    }

    #[test]
    fn booleans_convert_like_neutron() {
        assert!(str_to_bool("True").unwrap());
        assert!(!str_to_bool("0").unwrap());
        let e = str_to_bool("maybe").unwrap_err();
        assert_eq!(
            e.message,
            "Invalid input for operation: 'maybe' cannot be converted to boolean."
        );
    }
}
