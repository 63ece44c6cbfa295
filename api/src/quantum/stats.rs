//! The port statistics extension (alias `portstats`):
//! `GET /tenants/{tenant_id}/networks/{network_id}/ports/{port_id}/stats`,
//! the admin MAC table view (alias `mactable`):
//! `GET /tenants/{tenant_id}/networks/{network_id}/mac_table`,
//! and the admin view of a port's tracked connections (alias `connections`):
//! `GET /tenants/{tenant_id}/networks/{network_id}/ports/{port_id}/connections`.
//!
//! All read live data-plane state through the control plane's forwarder:
//! counters at most a millisecond old, the tables as the workers hold them.

use axum::response::Response;
use serde_json::{json, Map, Value};

use crate::ctx::{Ctx, Reply};
use crate::fault::ApiError;
use crate::xml::Attrs;

/// Scalar counters are XML attributes (as the original `portstats`).
pub(crate) const STATS_ATTRS: Attrs<'static> = &[(
    "stats",
    &[
        "rx_packets",
        "rx_bytes",
        "rx_errors",
        "tx_packets",
        "tx_bytes",
        "tx_errors",
        "dropped",
        "floods",
        "csum_completed",
        "gso_segmented",
        "gso_whole",
        "coalesced",
        "dhcp_replies",
        "arp_replies",
        "ra_replies",
        "xdp_forwarded",
        "tx_stalls",
        "tx_stalled_ms",
        "tx_stalled",
    ],
)];

/// Each entry's fields are XML attributes.
pub(crate) const MAC_ATTRS: Attrs<'static> = &[("mac", &["address", "port_id", "age", "static"])];

/// Each connection's fields are XML attributes.
pub(crate) const CONNECTION_ATTRS: Attrs<'static> = &[(
    "connection",
    &[
        "protocol",
        "ethertype",
        "direction",
        "source",
        "source_port",
        "destination",
        "destination_port",
        "icmp_type",
        "icmp_code",
        "icmp_id",
        "state",
        "cut",
        "idle",
        "expires",
    ],
)];

/// `GET .../ports/{id}/stats`: `{"stats": {"rx_packets", "rx_bytes",
/// "rx_errors", "tx_packets", "tx_bytes", "tx_errors", "dropped", "floods", "csum_completed",
/// "gso_segmented", "gso_whole", "coalesced", "dhcp_replies", "arp_replies", "ra_replies",
/// "xdp_forwarded", "tx_stalls", "tx_stalled_ms", "tx_stalled" (a boolean),
/// "drops": {reason: n}, "kernel": {name: n}}}`.
pub(crate) async fn port_stats(ctx: Ctx) -> Response {
    let r = async {
        let (t, n, p) = (ctx.tenant(), ctx.param("network_id"), ctx.param("port_id"));
        let s = ctx.run(move |c| c.port_stats(&t, &n, &p)).await?;
        let map = |v: &[(String, u64)]| {
            Value::Object(
                v.iter()
                    .map(|(k, n)| (k.clone(), Value::from(*n)))
                    .collect::<Map<String, Value>>(),
            )
        };
        let body = json!({"stats": {
            "rx_packets": s.rx_packets,
            "rx_bytes": s.rx_bytes,
            "rx_errors": s.rx_errors,
            "tx_packets": s.tx_packets,
            "tx_bytes": s.tx_bytes,
            "tx_errors": s.tx_errors,
            "dropped": s.dropped,
            "floods": s.floods,
            "csum_completed": s.csum_completed,
            "gso_segmented": s.gso_segmented,
            "gso_whole": s.gso_whole,
            "coalesced": s.coalesced,
            "dhcp_replies": s.dhcp_replies,
            "arp_replies": s.arp_replies,
            "ra_replies": s.ra_replies,
            "xdp_forwarded": s.xdp_forwarded,
            "tx_stalls": s.tx_stalls,
            "tx_stalled_ms": s.tx_stalled_ms,
            "tx_stalled": s.tx_stalled,
            "drops": map(&s.drops),
            "kernel": map(&s.kernel),
        }});
        Ok(Reply::ok(body, STATS_ATTRS))
    };
    let r: Result<Reply, ApiError> = r.await;
    ctx.finish(r)
}

/// `GET .../networks/{id}/mac_table` (admin): `{"macs": [{"address",
/// "port_id", "age", "static"}]}`, ordered by address.
pub(crate) async fn mac_table(ctx: Ctx) -> Response {
    let r = async {
        let (t, n) = (ctx.tenant(), ctx.param("network_id"));
        let mut entries = ctx.run(move |c| c.mac_table(&t, &n)).await?;
        entries.sort_by(|a, b| a.mac.cmp(&b.mac));
        let items: Vec<Value> = entries
            .iter()
            .map(|e| {
                json!({
                    "address": e.mac,
                    "port_id": e.port_id,
                    "age": e.age_secs,
                    "static": e.is_static,
                })
            })
            .collect();
        Ok(Reply::ok(json!({ "macs": items }), MAC_ATTRS))
    };
    let r: Result<Reply, ApiError> = r.await;
    ctx.finish(r)
}

/// `GET .../ports/{id}/connections` (admin): `{"connections": [{"protocol", "ethertype",
/// "direction", "source", "destination", "source_port" and "destination_port" (protocols with
/// ports), "icmp_type", "icmp_code" and "icmp_id" (ICMP), "state", "cut", "idle",
/// "expires"}]}`: the packet that opened each connection, which way it went for the port, and
/// how far it got.
pub(crate) async fn connections(ctx: Ctx) -> Response {
    let r = async {
        let (t, n, p) = (ctx.tenant(), ctx.param("network_id"), ctx.param("port_id"));
        let conns = ctx.run(move |c| c.connections(&t, &n, &p)).await?;
        let items: Vec<Value> = conns
            .iter()
            .map(|c| {
                let protocol = control::security::protocol_name(c.protocol)
                    .map_or_else(|| c.protocol.to_string(), str::to_owned);
                let mut v = json!({
                    "protocol": protocol,
                    "ethertype": if c.source.is_ipv4() { "IPv4" } else { "IPv6" },
                    "direction": if c.ingress { "ingress" } else { "egress" },
                    "source": c.source.to_string(),
                    "destination": c.destination.to_string(),
                    "state": c.state,
                    "cut": c.cut,
                    "idle": c.idle_secs,
                    "expires": c.expires_secs,
                });
                if let Some(m) = v.as_object_mut() {
                    if let Some((sport, dport)) = c.ports {
                        m.insert("source_port".into(), sport.into());
                        m.insert("destination_port".into(), dport.into());
                    }
                    if let Some((ty, code, id)) = c.icmp {
                        m.insert("icmp_type".into(), ty.into());
                        m.insert("icmp_code".into(), code.into());
                        m.insert("icmp_id".into(), id.into());
                    }
                }
                v
            })
            .collect();
        Ok(Reply::ok(json!({ "connections": items }), CONNECTION_ATTRS))
    };
    let r: Result<Reply, ApiError> = r.await;
    ctx.finish(r)
}
