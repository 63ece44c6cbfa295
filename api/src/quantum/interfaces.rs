//! The interface registry extension (alias `interfaces`):
//! `/tenants/{tenant_id}/interfaces[/{interface_id}]`.
//!
//! The hypervisor side registers each host interface (a VM's tap or veth)
//! under the tenant that owns the VM; only that tenant can then plug the
//! interface id as an attachment (spec section 8, "attachments are
//! authenticated"). Like the original's extension controllers, reads and
//! writes answer 200 with the resource; removal answers 204.

use axum::body::Body;
use axum::response::Response;
use serde_json::json;

use super::views;
use crate::ctx::{opt_str, req_str, resource, Ctx, Reply};
use crate::fault::ApiError;

/// `GET /interfaces`: `{"interfaces": [{"id", "device"[, "host"]}]}`.
pub(crate) async fn list(ctx: Ctx) -> Response {
    let r = async {
        let tenant = ctx.tenant();
        let all = ctx.run(move |c| c.interfaces(&tenant)).await?;
        let links = ctx.links();
        let items: Vec<_> = all.iter().map(|i| views::interface(&links, i)).collect();
        Ok(Reply::ok(
            json!({ "interfaces": items }),
            views::ATTRS_INTERFACES,
        ))
    };
    let r: Result<Reply, ApiError> = r.await;
    ctx.finish(r)
}

/// `GET /interfaces/{id}`: `{"interface": {"id", "device"[, "host"]}}`.
pub(crate) async fn show(ctx: Ctx) -> Response {
    let r = async {
        let (tenant, id) = (ctx.tenant(), ctx.param("interface_id"));
        let i = ctx.read_point(|c| c.interface(&tenant, &id))?;
        Ok(Reply::ok(
            json!({ "interface": views::interface(&ctx.links(), &i) }),
            views::ATTRS_INTERFACES,
        ))
    };
    let r: Result<Reply, ApiError> = r.await;
    ctx.finish(r)
}

/// `PUT /interfaces/{id}` with `{"interface": {"device"[, "host"]}}`: registers the
/// interface (or changes its device and host) and answers 200 with it. Without `host`, the
/// device is on any host (one host).
pub(crate) async fn register(ctx: Ctx, body: Body) -> Response {
    let r = async {
        let res = resource(ctx.body(body).await?, "interface", false)?;
        let device = req_str(&res, "device")?;
        let host = opt_str(&res, "host")?.unwrap_or_default();
        let (tenant, id) = (ctx.tenant(), ctx.param("interface_id"));
        let (i, _) = ctx
            .run(move |c| c.register_interface_on(&tenant, &id, &device, &host))
            .await?;
        Ok(Reply::ok(
            json!({ "interface": views::interface(&ctx.links(), &i) }),
            views::ATTRS_INTERFACES,
        ))
    };
    let r = r.await;
    ctx.finish(r)
}

/// `DELETE /interfaces/{id}`: 204; InterfaceInUse while plugged.
pub(crate) async fn unregister(ctx: Ctx) -> Response {
    let r = async {
        let (tenant, id) = (ctx.tenant(), ctx.param("interface_id"));
        ctx.run(move |c| c.unregister_interface(&tenant, &id))
            .await?;
        Ok(Reply::no_content())
    };
    let r: Result<Reply, ApiError> = r.await;
    ctx.finish(r)
}
