//! `/tenants/{tenant_id}/networks[/detail|/{network_id}[/detail]]`.

use axum::body::Body;
use axum::response::Response;
use serde_json::{json, Map, Value};

use control::neutron::{NetworkSpec, ProviderSpec};
use control::NetworkView;

use super::filters::{self, Parsed};
use super::{create_status, views};
use crate::ctx::{resource, Ctx, Reply};
use crate::fault::ApiError;
use crate::links::Links;
use crate::negotiate::Version;
use crate::neutron::attrs::{provider_given, provider_spec};
use crate::page;

/// The `name` parameter: required; an empty string is accepted (the model
/// allows empty and duplicate names).
fn name_param(res: &Map<String, Value>) -> Result<String, ApiError> {
    match res.get("name") {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(ApiError::MissingParam("name")),
        Some(_) => Err(ApiError::BadRequest(
            "Failed to parse request. Parameter: name must be a string".into(),
        )),
    }
}

/// The `provider` extension's attributes of a network to create (v1.1, admins; v1.0 bodies
/// stay as they were, so there they are ignored).
fn provider(ctx: &Ctx, res: &Map<String, Value>) -> Result<ProviderSpec, ApiError> {
    if ctx.version == Version::V10 {
        return Ok(ProviderSpec::default());
    }
    if provider_given(res).is_some() && !ctx.admin_rights() {
        return Err(ApiError::Forbidden(
            "Provider attributes (provider:network_type, provider:physical_network, \
             provider:segmentation_id) are for admins only",
        ));
    }
    provider_spec(res)
        .map_err(|(k, msg)| ApiError::BadRequest(format!("Invalid input for {k}. Reason: {msg}")))
}

fn item(ctx: &Ctx, links: &Links, n: &NetworkView, detail: bool) -> Value {
    if detail {
        Value::Object(views::network(ctx.version, links, n, ctx.admin_token()))
    } else {
        views::network_brief(links, &n.network.id)
    }
}

async fn list_impl(ctx: &Ctx, detail: bool) -> Result<Reply, ApiError> {
    let filter = filters::networks(ctx.version, ctx.query.as_deref())?;
    let tenant = ctx.tenant();
    let v = ctx.version;
    let links = ctx.links();
    if v == Version::V10 {
        let all = ctx.run(move |c| c.list_networks(&tenant)).await?;
        let items: Vec<Value> = match filter {
            Parsed::MatchNothing => Vec::new(),
            Parsed::Filter(f) => all
                .iter()
                .filter(|n| f.matches(n))
                .map(|n| item(ctx, &links, n, detail))
                .collect(),
        };
        return Ok(Reply::ok(
            json!({ "networks": items }),
            views::core_attrs(v),
        ));
    }
    // v1.1: filters, then keyset paging.
    let req = page::request(ctx.query.as_deref(), ctx.max_page)?;
    let limit = req.limit;
    let with_ports = match &filter {
        Parsed::Filter(f) => f.needs_ports(),
        Parsed::MatchNothing => false,
    };
    let page = ctx
        .run(move |c| {
            c.networks_page(&tenant, &req, with_ports, &|n| match &filter {
                Parsed::Filter(f) => f.matches(n),
                Parsed::MatchNothing => false,
            })
        })
        .await?;
    let body = page::body(
        ctx,
        "networks",
        &page,
        limit,
        |n| n.network.id.as_str(),
        |n| item(ctx, &links, n, detail),
    );
    Ok(Reply::ok(body, views::core_attrs(v)))
}

/// `GET /networks`: `{"networks": [{"id"}]}`.
pub(crate) async fn list(ctx: Ctx) -> Response {
    ctx.finish(list_impl(&ctx, false).await)
}

/// `GET /networks/detail`: `{"networks": [{"id", "name"[, "op-status"]}]}`.
pub(crate) async fn list_detail(ctx: Ctx) -> Response {
    ctx.finish(list_impl(&ctx, true).await)
}

/// `POST /networks` with `{"network": {"name"}}`: 200 (v1.0) / 202 (v1.1).
pub(crate) async fn create(ctx: Ctx, body: Body) -> Response {
    let r = async {
        let res = resource(ctx.body(body).await?, "network", false)?;
        let name = name_param(&res)?;
        let provider = provider(&ctx, &res)?;
        let mut spec = NetworkSpec::named(&ctx.tenant(), &name);
        spec.provider = provider;
        let scope = ctx.scope();
        let n = ctx
            .run(move |c| c.create_networks(&scope, vec![spec]))
            .await?
            .remove(0)
            .network;
        Ok(Reply::body(
            create_status(ctx.version),
            json!({"network": views::network_brief(&ctx.links(), &n.id)}),
            views::core_attrs(ctx.version),
        ))
    };
    let r = r.await;
    ctx.finish(r)
}

async fn show_impl(ctx: &Ctx, detail: bool) -> Result<Reply, ApiError> {
    let (tenant, net) = (ctx.tenant(), ctx.param("network_id"));
    // Only the detail view lists the ports: a show does not read them.
    let n = if detail {
        ctx.run(move |c| c.network(&tenant, &net)).await?
    } else {
        ctx.read_point(|c| c.network_summary(&tenant, &net))?
    };
    let links = ctx.links();
    let body = if detail {
        views::network_detail(ctx.version, &links, &n, ctx.admin_token())
    } else {
        Value::Object(views::network(ctx.version, &links, &n, ctx.admin_token()))
    };
    Ok(Reply::ok(
        json!({ "network": body }),
        views::core_attrs(ctx.version),
    ))
}

/// `GET /networks/{id}`.
pub(crate) async fn show(ctx: Ctx) -> Response {
    ctx.finish(show_impl(&ctx, false).await)
}

/// `GET /networks/{id}/detail`: with ports and attachments.
pub(crate) async fn show_detail(ctx: Ctx) -> Response {
    ctx.finish(show_impl(&ctx, true).await)
}

/// `PUT /networks/{id}` with `{"network": {"name"}}`: 204.
pub(crate) async fn update(ctx: Ctx, body: Body) -> Response {
    let r = async {
        let res = resource(ctx.body(body).await?, "network", false)?;
        let name = name_param(&res)?;
        let (tenant, net) = (ctx.tenant(), ctx.param("network_id"));
        ctx.run(move |c| c.rename_network(&tenant, &net, &name))
            .await?;
        Ok(Reply::no_content())
    };
    let r = r.await;
    ctx.finish(r)
}

/// `DELETE /networks/{id}`: 204; NetworkInUse while a port is plugged.
pub(crate) async fn delete(ctx: Ctx) -> Response {
    let r = async {
        let (tenant, net) = (ctx.tenant(), ctx.param("network_id"));
        ctx.run(move |c| c.delete_network(&tenant, &net)).await?;
        Ok(Reply::no_content())
    };
    let r = r.await;
    ctx.finish(r)
}
