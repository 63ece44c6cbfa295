//! `GET /v1.1/tenants/{tenant_id}/limits`: the tenant's rate limits (with
//! what is left of each right now) and absolute limits (quotas, with what it
//! holds), in the shape of Nova's limits document.
//!
//! An unlimited value is `-1`.

use axum::response::Response;
use serde_json::{json, Value};

use crate::ctx::{Ctx, Reply};
use crate::fault::ApiError;
use crate::limit::Class;

/// `{"limits": {"rate": [...], "absolute": {...}}}`.
pub(crate) async fn show(ctx: Ctx) -> Response {
    let r = async {
        let tenant = ctx.tenant();
        let t = tenant.clone();
        let (usage, quotas) = ctx.run(move |c| c.usage(&t)).await?;
        // Rate limits are charged to the caller's tenant in token mode.
        let charged = ctx
            .principal
            .as_ref()
            .map_or(tenant.as_str(), |p| p.tenant.as_str());
        let rates = ctx.limiter.limits();
        let rate: Vec<Value> = [Class::Read, Class::Write]
            .into_iter()
            .filter_map(|c| {
                let r = rates.of(c)?;
                Some(json!({
                    "class": c.as_str(),
                    "verbs": c.verbs(),
                    "value": r.per_minute,
                    "unit": "MINUTE",
                    "burst": r.burst,
                    "remaining": ctx.limiter.remaining(charged, c),
                }))
            })
            .collect();
        let max = |q: Option<u64>| q.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX));
        let body = json!({"limits": {
            "rate": rate,
            "absolute": {
                "maxNetworks": max(quotas.networks),
                "maxSubnets": max(quotas.subnets),
                "maxPorts": max(quotas.ports),
                "maxInterfaces": max(quotas.interfaces),
                "totalNetworksUsed": usage.networks,
                "totalSubnetsUsed": usage.subnets,
                "totalPortsUsed": usage.ports,
                "totalInterfacesUsed": usage.interfaces,
            },
        }});
        Ok(Reply::ok(body, &[]))
    };
    let r: Result<Reply, ApiError> = r.await;
    ctx.finish(r)
}
