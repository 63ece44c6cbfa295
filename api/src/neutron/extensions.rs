//! `GET /v2.0/extensions[/{alias}]`: the extensions this server implements,
//! and only those (clients probe them: `openstack port create` needs the
//! list to answer 200).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::error::NeutronError;
use super::{ok, NeutronState};

/// (alias, name, description, updated) of every implemented extension.
const EXTENSIONS: &[(&str, &str, &str, &str)] = &[
    (
        "agent",
        "agent",
        "The agent management extension (each host's qswitch data plane as a `qswitch agent`)",
        "2013-02-03T10:00:00-00:00",
    ),
    (
        "allowed-address-pairs",
        "Allowed Address Pairs",
        "Provides allowed address pairs, enforced by the switch's anti-spoofing",
        "2013-07-23T10:00:00-00:00",
    ),
    (
        "binding",
        "Port Binding",
        "Expose port bindings of a virtual port to external application \
         (binding:host_id; VNIC type normal; a port is bound to device tap + 11 characters of its id)",
        "2014-02-03T10:00:00-00:00",
    ),
    (
        "filter-validation",
        "Filter parameters validation",
        "Provides validation on filtering parameters.",
        "2018-03-21T10:00:00-00:00",
    ),
    (
        "net-mtu-writable",
        "Network MTU (writable)",
        "Provides a writable MTU attribute for a network resource.",
        "2017-07-12T00:00:00-00:00",
    ),
    (
        "network-mtu",
        "Network MTU",
        "Provides MTU attribute for a network resource.",
        "2015-03-25T10:00:00-00:00",
    ),
    (
        "pagination",
        "Pagination support",
        "Extension that indicates that pagination is enabled.",
        "2016-06-12T00:00:00-00:00",
    ),
    (
        "port-security",
        "Port Security",
        "Provides port security",
        "2012-07-23T10:00:00-00:00",
    ),
    (
        "port-security-groups-filtering",
        "Port filtering on security groups",
        "Provides security groups filtering when listing ports",
        "2018-01-09T09:00:00-00:00",
    ),
    (
        "provider",
        "Provider Network",
        "Expose mapping of virtual networks to physical networks (vlan, flat and local; \
         admins set them on create)",
        "2012-09-07T10:00:00-00:00",
    ),
    (
        "qos",
        "Quality of Service",
        "The Quality of Service extension: policies with bandwidth and packet rate limit \
         rules, on ports and networks, enforced by the switch's policers",
        "2015-06-08T10:00:00-00:00",
    ),
    (
        "qos-bw-limit-direction",
        "Direction for QoS bandwidth limit rule",
        "Allow to configure QoS bandwidth limit rule with specific direction: ingress or egress",
        "2017-04-10T10:00:00-00:00",
    ),
    (
        "qos-default",
        "QoS default policy",
        "Expose the QoS default policy per project",
        "2017-04-06T10:00:00-00:00",
    ),
    (
        "qos-port-network-policy",
        "QoS port network policy ID",
        "Adds a the QoS network ID to the port definition",
        "2019-11-01T10:00:00-00:00",
    ),
    (
        "qos-pps",
        "QoS Packet Rate Limit Rule",
        "Add QoS Rule Packet Rate Limit",
        "2021-01-01T00:00:00-00:00",
    ),
    (
        "qos-rule-type-details",
        "Details of QoS rule types",
        "Expose details about QoS rule types supported by loaded backend drivers",
        "2017-06-22T10:00:00-00:00",
    ),
    (
        "project-id",
        "project_id field enabled",
        "Extension that indicates that project_id field is enabled.",
        "2016-09-09T09:09:09-09:09",
    ),
    (
        "security-group",
        "security-group",
        "The security groups extension.",
        "2012-10-05T10:00:00-00:00",
    ),
    (
        "security-groups-normalized-cidr",
        "Security group rule normalized CIDR",
        "Add new field with normalized remote_ip_prefix cidr in SG rule",
        "2019-08-02T10:00:00-00:00",
    ),
    (
        "security-groups-rules-belongs-to-default-sg",
        "Security group rule belongs to the project's default security group",
        "Flag to determine if the security group rule belongs to the project's default \
         security group",
        "2023-05-08T00:00:00-00:00",
    ),
    (
        "sorting",
        "Sorting support",
        "Extension that indicates that sorting is enabled.",
        "2016-06-12T00:00:00-00:00",
    ),
    (
        "standard-attr-description",
        "standard-attr-description",
        "Extension to add descriptions to standard attributes",
        "2016-02-10T10:00:00-00:00",
    ),
    (
        "standard-attr-revisions",
        "Resource revision numbers",
        "This extension will display the revision number of neutron resources.",
        "2016-04-11T10:00:00-00:00",
    ),
    (
        "standard-attr-timestamp",
        "Resource timestamps",
        "Adds created_at and updated_at fields to all Neutron resources that have Neutron \
         standard attributes.",
        "2016-09-12T10:00:00-00:00",
    ),
    (
        "stateful-security-group",
        "Stateful security group",
        "Indicates if the security group is stateful or not",
        "2019-11-26T09:00:00-00:00",
    ),
];

fn descriptor(e: &(&str, &str, &str, &str)) -> Value {
    json!({"name": e.1, "alias": e.0, "description": e.2, "updated": e.3, "links": []})
}

/// `GET /v2.0/extensions`.
/// The extensions this server lists: `agent` only where a host's agent reports (see
/// `ApiOptions::agents`), so that clients that need an agent find the extension only then.
fn listed(
    state: &NeutronState,
) -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str, &'static str)> + '_ {
    EXTENSIONS
        .iter()
        .filter(move |e| state.agents || e.0 != "agent")
}

pub(crate) async fn list(State(state): State<NeutronState>) -> Response {
    let all: Vec<Value> = listed(&state).map(descriptor).collect();
    ok(StatusCode::OK, json!({ "extensions": all }))
}

/// `GET /v2.0/extensions/{alias}`: the descriptor, or 404.
pub(crate) async fn show(State(state): State<NeutronState>, Path(alias): Path<String>) -> Response {
    match listed(&state).find(|e| e.0 == alias) {
        Some(e) => ok(StatusCode::OK, json!({ "extension": descriptor(e) })),
        None => NeutronError {
            status: StatusCode::NOT_FOUND,
            kind: "HTTPNotFound",
            message: format!("Extension with alias {alias} does not exist"),
        }
        .into_response(),
    }
}
