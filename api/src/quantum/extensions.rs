//! `/extensions[/{alias}]`: the extension descriptors (spec section 4).
//!
//! Only GET exists; other methods are 404, as the original's
//! `ExtensionController` answered.

use axum::response::Response;
use serde_json::{json, Value};

use crate::ctx::{Ctx, Reply};
use crate::fault::ApiError;

/// The interface registry's alias.
pub(crate) const INTERFACES_ALIAS: &str = "interfaces";

/// Every extension this server provides, in the original descriptor format.
fn descriptors() -> Vec<Value> {
    vec![json!({
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
    })]
}

/// `GET /extensions`: `{"extensions": [descriptor, ...]}`.
pub(crate) async fn list(ctx: Ctx) -> Response {
    ctx.finish(Ok(Reply::ok(json!({ "extensions": descriptors() }), &[])))
}

/// `GET /extensions/{alias}`: the bare descriptor, or 404.
pub(crate) async fn show(ctx: Ctx) -> Response {
    let alias = ctx.param("alias");
    let found = descriptors()
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
