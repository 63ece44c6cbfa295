//! The Quantum v1.0 and v1.1 APIs: one router per version, the same handlers,
//! differing in status codes, views, fault bodies and XML namespace.

mod extensions;
mod filters;
mod interfaces;
mod limits;
mod networks;
mod ports;
mod qos;
mod stats;
pub(crate) mod views;

use axum::extract::OriginalUri;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, MethodRouter};
use axum::Router;

use crate::ctx::{Ctx, VersionState};
use crate::fault::ApiError;
use crate::negotiate::Version;

/// Create answers 200 in v1.0 and 202 in v1.1.
pub(crate) fn create_status(v: Version) -> StatusCode {
    match v {
        Version::V10 => StatusCode::OK,
        Version::V11 => StatusCode::ACCEPTED,
    }
}

const T: &str = "/tenants/{tenant_id}";

/// The routes of one version, to be nested under `/v1.0` or `/v1.1`.
pub(crate) fn router(state: VersionState) -> Router {
    let net = format!("{T}/networks/{{network_id}}");
    let port = format!("{net}/ports/{{port_id}}");
    let ext: fn() -> MethodRouter<VersionState> =
        || MethodRouter::new().fallback(extensions::not_found);
    // The limits document is a v1.1 addition; v1.0 stays as it was.
    let mut router = Router::new();
    if state.version == Version::V11 {
        router = router.route(&format!("{T}/limits"), get(limits::show));
    }
    router
        .route(
            &format!("{T}/networks"),
            get(networks::list).post(networks::create),
        )
        .route(&format!("{T}/networks/detail"), get(networks::list_detail))
        .route(
            &net,
            get(networks::show)
                .put(networks::update)
                .delete(networks::delete),
        )
        .route(&format!("{net}/detail"), get(networks::show_detail))
        .route(
            &format!("{net}/ports"),
            get(ports::list).post(ports::create),
        )
        .route(&format!("{net}/ports/detail"), get(ports::list_detail))
        .route(
            &port,
            get(ports::show).put(ports::update).delete(ports::delete),
        )
        .route(&format!("{port}/detail"), get(ports::show_detail))
        .route(
            &format!("{port}/attachment"),
            get(ports::show_attachment)
                .put(ports::plug)
                .delete(ports::unplug),
        )
        .route(
            &format!("{port}/qos"),
            get(qos::show).put(qos::set).delete(qos::clear),
        )
        .route(&format!("{port}/stats"), get(stats::port_stats))
        .route(&format!("{port}/connections"), get(stats::connections))
        .route(&format!("{net}/mac_table"), get(stats::mac_table))
        .route(&format!("{T}/interfaces"), get(interfaces::list))
        .route(
            &format!("{T}/interfaces/{{interface_id}}"),
            get(interfaces::show)
                .put(interfaces::register)
                .delete(interfaces::unregister),
        )
        .route("/extensions", ext().get(extensions::list))
        .route("/extensions/{alias}", ext().get(extensions::show))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found(ctx: Ctx, OriginalUri(uri): OriginalUri) -> Response {
    ctx.finish(Err(ApiError::NotFound(format!(
        "No resource at {}",
        uri.path()
    ))))
}

async fn method_not_allowed(ctx: Ctx, method: Method) -> Response {
    ctx.finish(Err(ApiError::MethodNotAllowed {
        method: method.to_string(),
        allow: None,
    }))
}
