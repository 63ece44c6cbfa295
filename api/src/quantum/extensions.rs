//! `/extensions[/{alias}]`: the extension descriptors (spec section 4).
//!
//! Only GET exists; other methods are 404, as the original's
//! `ExtensionController` answered.

use axum::response::Response;
use serde_json::{json, Value};

use crate::ctx::{Ctx, Reply};
use crate::fault::ApiError;
use crate::negotiate::Version;

/// The interface registry's alias.
pub(crate) const INTERFACES_ALIAS: &str = "interfaces";
/// The QoS extension's alias.
pub(crate) const QOS_ALIAS: &str = "qos";
/// The port statistics extension's alias (the original's).
pub(crate) const PORTSTATS_ALIAS: &str = "portstats";
/// The MAC table extension's alias.
pub(crate) const MACTABLE_ALIAS: &str = "mactable";
pub(crate) const CONNECTIONS_ALIAS: &str = "connections";
/// The provider networks extension's alias (Neutron's).
pub(crate) const PROVIDER_ALIAS: &str = "provider";

/// Every extension this server provides in a version, in the original descriptor format (the
/// provider extension's attributes are v1.1's: v1.0 bodies stay as they were).
fn descriptors(v: Version) -> Vec<Value> {
    let mut all = vec![
        json!({
            "name": "Interface Registry",
            "alias": INTERFACES_ALIAS,
            "description": "Host interfaces registered by the hypervisor side under the tenant \
                            that owns them; a tenant can plug only its own registered \
                            interfaces as attachments. \
                            PUT/GET/DELETE /tenants/{tenant_id}/interfaces/{interface_id}, \
                            GET /tenants/{tenant_id}/interfaces.",
            "namespace": "http://qswitch.org/ext/interfaces/api/v1.0",
            "updated": "2026-11-25T00:00:00-00:00",
            "links": []
        }),
        json!({
            "name": "Port QoS",
            "alias": QOS_ALIAS,
            "description": "An ingress rate limit per port (bits per second and packets per \
                            second, each with a burst), enforced by the switch's token bucket on \
                            every frame the port's VM sends; changes apply to the next frame. \
                            A view of the port's Neutron QoS policy (its egress rules). \
                            GET/PUT/DELETE /tenants/{tenant_id}/networks/{network_id}/ports/\
                            {port_id}/qos with {\"qos\": {\"rate_bps\", \"burst_bits\", \
                            \"rate_pps\", \"burst_packets\"}}.",
            "namespace": "http://qswitch.org/ext/qos/api/v1.0",
            "updated": "2026-12-03T00:00:00-00:00",
            "links": []
        }),
        json!({
            "name": "Port Statistics",
            "alias": PORTSTATS_ALIAS,
            "description": "Live counters of a port from the switch: rx/tx packets, bytes and \
                            errors, drops by reason and the kernel's socket statistics. \
                            GET /tenants/{tenant_id}/networks/{network_id}/ports/{port_id}/stats.",
            "namespace": "http://docs.openstack.org/ext/portstats/api/v1.0",
            "updated": "2026-11-25T00:00:00-00:00",
            "links": []
        }),
        json!({
            "name": "MAC Table",
            "alias": MACTABLE_ALIAS,
            "description": "The switch's MAC table of a network (admin only): each learned or \
                            static address with its port and age in seconds. \
                            GET /tenants/{tenant_id}/networks/{network_id}/mac_table.",
            "namespace": "http://qswitch.org/ext/mactable/api/v1.0",
            "updated": "2026-11-25T00:00:00-00:00",
            "links": []
        }),
        json!({
            "name": "Tracked Connections",
            "alias": CONNECTIONS_ALIAS,
            "description": "The connections a port's stateful security groups track in the \
                            switch (admin only): for each, the packet that opened it (protocol, \
                            addresses and ports, or ICMP type, code and identifier), its \
                            direction for the port, its state, whether a rule change cut it, and \
                            its idle and remaining seconds. \
                            GET /tenants/{tenant_id}/networks/{network_id}/ports/{port_id}/\
                            connections.",
            "namespace": "http://qswitch.org/ext/connections/api/v1.0",
            "updated": "2026-12-05T00:00:00-00:00",
            "links": []
        }),
        json!({
            "name": "Provider Network",
            "alias": PROVIDER_ALIAS,
            "description": "v1.1 networks on a segment an admin names: provider:network_type \
                            (vlan, flat or local), provider:physical_network and \
                            provider:segmentation_id, given on POST /tenants/{tenant_id}/networks \
                            by admins and shown to admins.",
            "namespace": "http://docs.openstack.org/ext/provider/api/v1.0",
            "updated": "2026-12-03T00:00:00-00:00",
            "links": []
        }),
    ];
    if v == Version::V10 {
        all.retain(|d| d["alias"] != PROVIDER_ALIAS);
    }
    all
}

/// `GET /extensions`: `{"extensions": [descriptor, ...]}`.
pub(crate) async fn list(ctx: Ctx) -> Response {
    ctx.finish(Ok(Reply::ok(
        json!({ "extensions": descriptors(ctx.version) }),
        &[],
    )))
}

/// `GET /extensions/{alias}`: the bare descriptor, or 404.
pub(crate) async fn show(ctx: Ctx) -> Response {
    let alias = ctx.param("alias");
    let found = descriptors(ctx.version)
        .into_iter()
        .find(|d| d["alias"].as_str() == Some(alias.as_str()));
    let r = match found {
        // The bare descriptor; in XML its root element is `extension`.
        Some(Value::Object(d)) => Ok(Reply::ok(json!({ "extension": d }), &[]).bare()),
        _ => Err(ApiError::NotFound(format!(
            "Extension with alias {alias} does not exist"
        ))),
    };
    ctx.finish(r)
}

/// Any other method on `/extensions[/{alias}]`: 404.
pub(crate) async fn not_found(ctx: Ctx) -> Response {
    ctx.finish(Err(ApiError::NotFound(
        "The resource could not be found.".to_owned(),
    )))
}
