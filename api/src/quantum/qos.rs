//! The QoS extension (alias `qos`):
//! `/tenants/{tenant_id}/networks/{network_id}/ports/{port_id}/qos`.
//!
//! A port's ingress rate limit, enforced by the data plane's token bucket on
//! the frames the port's VM sends; a change applies to the next frame. It is
//! a view of Neutron QoS policies: the egress rules of the policy the port
//! takes, written into a policy of the port's own (see `control`'s
//! `service::qos`).
//! `GET` answers `{"qos": {...}}` (`{"qos": {}}` when the port has none),
//! `PUT` sets it and answers 200 with the limit in force, `DELETE` removes what `PUT` set
//! (204; a policy set through Neutron stays).

use axum::body::Body;
use axum::response::Response;
use control::QosLimit;
use serde_json::{json, Map, Value};

use crate::ctx::{resource, Ctx, Reply};
use crate::fault::ApiError;
use crate::xml::Attrs;

/// Every field is an XML attribute.
pub(crate) const ATTRS: Attrs<'static> = &[(
    "qos",
    &["rate_bps", "burst_bits", "rate_pps", "burst_packets"],
)];

const FIELDS: [&str; 4] = ["rate_bps", "burst_bits", "rate_pps", "burst_packets"];

fn view(q: &QosLimit) -> Value {
    json!({
        "rate_bps": q.rate_bps,
        "burst_bits": q.burst_bits,
        "rate_pps": q.rate_pps,
        "burst_packets": q.burst_packets,
    })
}

/// A non-negative integer field: a JSON number, or a string of digits (XML
/// attributes are strings); absent is 0.
fn field(res: &Map<String, Value>, name: &'static str) -> Result<u64, ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "Failed to parse request. Parameter: {name} must be a non-negative integer"
        ))
    };
    match res.get(name) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(bad),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

fn parse(res: &Map<String, Value>) -> Result<QosLimit, ApiError> {
    if let Some(k) = res.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::BadRequest(format!(
            "Unknown QoS field '{k}'; valid fields are: {}",
            FIELDS.join(", ")
        )));
    }
    Ok(QosLimit {
        rate_bps: field(res, "rate_bps")?,
        burst_bits: field(res, "burst_bits")?,
        rate_pps: field(res, "rate_pps")?,
        burst_packets: field(res, "burst_packets")?,
    })
}

fn ids(ctx: &Ctx) -> (String, String, String) {
    (ctx.tenant(), ctx.param("network_id"), ctx.param("port_id"))
}

/// `GET .../qos`.
pub(crate) async fn show(ctx: Ctx) -> Response {
    let r = async {
        let (t, n, p) = ids(&ctx);
        let q = ctx.run(move |c| c.port_qos(&t, &n, &p)).await?;
        let body = q.as_ref().map_or_else(|| json!({}), view);
        Ok(Reply::ok(json!({ "qos": body }), ATTRS))
    };
    let r: Result<Reply, ApiError> = r.await;
    ctx.finish(r)
}

/// `PUT .../qos` with `{"qos": {"rate_bps", "burst_bits", "rate_pps",
/// "burst_packets"}}`: 200 with the limit now in force.
pub(crate) async fn set(ctx: Ctx, body: Body) -> Response {
    let r = async {
        let res = resource(ctx.body(body).await?, "qos", false)?;
        let (t, n, p) = ids(&ctx);
        // Not found beats a bad body: look the port up first.
        let q = match parse(&res) {
            Ok(q) => q,
            Err(e) => {
                ctx.run(move |c| c.port(&t, &n, &p)).await?;
                return Err(e);
            }
        };
        let now = ctx.run(move |c| c.set_port_qos(&t, &n, &p, &q)).await?;
        let body = now.as_ref().map_or_else(|| json!({}), view);
        Ok(Reply::ok(json!({ "qos": body }), ATTRS))
    };
    let r = r.await;
    ctx.finish(r)
}

/// `DELETE .../qos`: 204, also when there was no limit.
pub(crate) async fn clear(ctx: Ctx) -> Response {
    let r = async {
        let (t, n, p) = ids(&ctx);
        ctx.run(move |c| c.clear_port_qos(&t, &n, &p)).await?;
        Ok(Reply::no_content())
    };
    let r: Result<Reply, ApiError> = r.await;
    ctx.finish(r)
}
