//! `/tenants/{tenant_id}/networks/{network_id}/ports[/detail|/{port_id}[/detail]]`
//! and the port's `attachment` sub-resource.

use axum::body::Body;
use axum::response::Response;
use control::neutron::PortSpec;
use control::{PortState, PortView};
use serde_json::{json, Map, Value};

use super::filters::{self, Parsed};
use super::{create_status, views};
use crate::ctx::{req_str, resource, Ctx, Reply};
use crate::fault::ApiError;
use crate::links::Links;
use crate::negotiate::Version;
use crate::page;

/// The `state` parameter: absent, `null` or `""` default to `DOWN` (the
/// original's `_prepare_request_body`); anything else must be exactly
/// `ACTIVE` or `DOWN`.
fn state_param(res: &Map<String, Value>) -> Result<PortState, ApiError> {
    let raw = match res.get("state") {
        None | Some(Value::Null) => return Ok(PortState::Down),
        Some(Value::String(s)) if s.is_empty() => return Ok(PortState::Down),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    PortState::parse(&raw).map_err(ApiError::Control)
}

fn item(ctx: &Ctx, links: &Links, p: &PortView, detail: bool) -> Value {
    if detail {
        Value::Object(views::port(ctx.version, links, p))
    } else {
        views::port_brief(links, &p.port.network_id, &p.port.id)
    }
}

async fn list_impl(ctx: &Ctx, detail: bool) -> Result<Reply, ApiError> {
    let (tenant, net) = (ctx.tenant(), ctx.param("network_id"));
    let v = ctx.version;
    let links = ctx.links();
    if v == Version::V10 {
        let all = ctx.run(move |c| c.list_ports(&tenant, &net)).await?;
        // The network is looked up before the query is judged.
        let filter = filters::ports(ctx.version, ctx.query.as_deref())?;
        let items: Vec<Value> = match filter {
            Parsed::MatchNothing => Vec::new(),
            Parsed::Filter(f) => all
                .iter()
                .filter(|p| f.matches(p))
                .map(|p| item(ctx, &links, p, detail))
                .collect(),
        };
        return Ok(Reply::ok(json!({ "ports": items }), views::core_attrs(v)));
    }
    // v1.1: filters, then keyset paging. The network is looked up before
    // the query is judged.
    let parsed = filters::ports(v, ctx.query.as_deref())
        .and_then(|f| Ok((f, page::request(ctx.query.as_deref(), ctx.max_page)?)));
    let (filter, req) = match parsed {
        Ok(x) => x,
        Err(e) => {
            ctx.run(move |c| c.network_summary(&tenant, &net)).await?;
            return Err(e);
        }
    };
    let limit = req.limit;
    let page = ctx
        .run(move |c| {
            c.ports_page(&tenant, &net, &req, &|p| match &filter {
                Parsed::Filter(f) => f.matches(p),
                Parsed::MatchNothing => false,
            })
        })
        .await?;
    let body = page::body(
        ctx,
        "ports",
        &page,
        limit,
        |p| p.port.id.as_str(),
        |p| item(ctx, &links, p, detail),
    );
    Ok(Reply::ok(body, views::core_attrs(v)))
}

/// `GET /ports`: `{"ports": [{"id"}]}`.
pub(crate) async fn list(ctx: Ctx) -> Response {
    ctx.finish(list_impl(&ctx, false).await)
}

/// `GET /ports/detail`: `{"ports": [{"id", "state"[, "op-status"]}]}`.
pub(crate) async fn list_detail(ctx: Ctx) -> Response {
    ctx.finish(list_impl(&ctx, true).await)
}

/// `POST /ports`, body optional: 200 (v1.0) / 202 (v1.1).
pub(crate) async fn create(ctx: Ctx, body: Body) -> Response {
    let r = async {
        let res = resource(ctx.body(body).await?, "port", true)?;
        let (tenant, net) = (ctx.tenant(), ctx.param("network_id"));
        // The network is looked up before the state is judged.
        let state = match state_param(&res) {
            Ok(s) => s,
            Err(e) => {
                ctx.run(move |c| c.list_ports(&tenant, &net)).await?;
                return Err(e);
            }
        };
        let spec = PortSpec::bare(&tenant, &net, state == PortState::Active);
        let scope = ctx.scope();
        let p = ctx
            .run(move |c| {
                // Quantum puts ports only on the tenant's own networks (never on another's
                // shared one). A network's owner never changes, so this read cannot go stale.
                c.network_summary(&tenant, &net)?;
                c.create_ports(&scope, vec![spec])
            })
            .await?
            .remove(0)
            .record
            .port;
        Ok(Reply::body(
            create_status(ctx.version),
            json!({"port": views::port_brief(&ctx.links(), &p.network_id, &p.id)}),
            views::core_attrs(ctx.version),
        ))
    };
    let r = r.await;
    ctx.finish(r)
}

async fn show_impl(ctx: &Ctx, detail: bool) -> Result<Reply, ApiError> {
    let (tenant, net, port) = (ctx.tenant(), ctx.param("network_id"), ctx.param("port_id"));
    let p = ctx.run(move |c| c.port(&tenant, &net, &port)).await?;
    let links = ctx.links();
    let body = if detail {
        views::port_detail(ctx.version, &links, &p)
    } else {
        Value::Object(views::port(ctx.version, &links, &p))
    };
    Ok(Reply::ok(
        json!({ "port": body }),
        views::core_attrs(ctx.version),
    ))
}

/// `GET /ports/{id}`.
pub(crate) async fn show(ctx: Ctx) -> Response {
    ctx.finish(show_impl(&ctx, false).await)
}

/// `GET /ports/{id}/detail`: with the attachment when plugged.
pub(crate) async fn show_detail(ctx: Ctx) -> Response {
    ctx.finish(show_impl(&ctx, true).await)
}

/// `PUT /ports/{id}` with `{"port": {"state"}}`: 204.
pub(crate) async fn update(ctx: Ctx, body: Body) -> Response {
    let r = async {
        let res = resource(ctx.body(body).await?, "port", false)?;
        let (tenant, net, port) = (ctx.tenant(), ctx.param("network_id"), ctx.param("port_id"));
        // Not found beats a bad state: look the port up first.
        let state = match state_param(&res) {
            Ok(s) => s,
            Err(e) => {
                ctx.run(move |c| c.port(&tenant, &net, &port)).await?;
                return Err(e);
            }
        };
        ctx.run(move |c| c.set_port_state(&tenant, &net, &port, state))
            .await?;
        Ok(Reply::no_content())
    };
    let r = r.await;
    ctx.finish(r)
}

/// `DELETE /ports/{id}`: 204; PortInUse while plugged.
pub(crate) async fn delete(ctx: Ctx) -> Response {
    let r = async {
        let (tenant, net, port) = (ctx.tenant(), ctx.param("network_id"), ctx.param("port_id"));
        ctx.run(move |c| c.delete_port(&tenant, &net, &port))
            .await?;
        Ok(Reply::no_content())
    };
    let r = r.await;
    ctx.finish(r)
}

/// `GET /ports/{id}/attachment`: `{"attachment": {"id"}}` or
/// `{"attachment": {}}`. In XML the id is a child element (the original's
/// attachment metadata was never applied).
pub(crate) async fn show_attachment(ctx: Ctx) -> Response {
    let r = async {
        let (tenant, net, port) = (ctx.tenant(), ctx.param("network_id"), ctx.param("port_id"));
        let att = ctx.read_point(|c| c.attachment(&tenant, &net, &port))?;
        let body = match att {
            Some(id) => json!({"attachment": {"id": id}}),
            None => json!({"attachment": {}}),
        };
        Ok(Reply::ok(body, &[]))
    };
    let r = r.await;
    ctx.finish(r)
}

/// `PUT /ports/{id}/attachment` with `{"attachment": {"id"}}`: 204. The id
/// must be an interface registered to this tenant.
pub(crate) async fn plug(ctx: Ctx, body: Body) -> Response {
    let r = async {
        let res = resource(ctx.body(body).await?, "attachment", false)?;
        let (tenant, net, port) = (ctx.tenant(), ctx.param("network_id"), ctx.param("port_id"));
        // Request parsing comes before any lookup, as in the original.
        let id = req_str(&res, "id")?;
        ctx.run(move |c| c.plug(&tenant, &net, &port, &id)).await?;
        Ok(Reply::no_content())
    };
    let r = r.await;
    ctx.finish(r)
}

/// `DELETE /ports/{id}/attachment`: 204, also when nothing is plugged.
pub(crate) async fn unplug(ctx: Ctx) -> Response {
    let r = async {
        let (tenant, net, port) = (ctx.tenant(), ctx.param("network_id"), ctx.param("port_id"));
        ctx.run(move |c| c.unplug(&tenant, &net, &port)).await?;
        Ok(Reply::no_content())
    };
    let r = r.await;
    ctx.finish(r)
}
