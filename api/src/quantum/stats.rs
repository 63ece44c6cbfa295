//! The port statistics extension (alias `portstats`):
//! `GET /tenants/{tenant_id}/networks/{network_id}/ports/{port_id}/stats`,
//! and the admin MAC table view (alias `mactable`):
//! `GET /tenants/{tenant_id}/networks/{network_id}/mac_table`.
//!
//! Both read live data-plane state through the control plane's forwarder:
//! counters at most a millisecond old, the MAC table as the workers hold it.

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
        "dhcp_replies",
        "arp_replies",
        "ra_replies",
    ],
)];

/// Each entry's fields are XML attributes.
pub(crate) const MAC_ATTRS: Attrs<'static> = &[("mac", &["address", "port_id", "age", "static"])];

/// `GET .../ports/{id}/stats`: `{"stats": {"rx_packets", "rx_bytes",
/// "rx_errors", "tx_packets", "tx_bytes", "tx_errors", "dropped", "floods", "csum_completed",
/// "gso_segmented", "dhcp_replies", "arp_replies", "ra_replies",
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
            "dhcp_replies": s.dhcp_replies,
            "arp_replies": s.arp_replies,
            "ra_replies": s.ra_replies,
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
