//! The HTTP front end of qswitch: the OpenStack Quantum API v1.0 and v1.1
//! (JSON and XML) and the Neutron v2.0 subset (JSON) on axum, over the
//! [`control`] crate.
//!
//! See `docs/ARCHITECTURE.md` for the layering and `docs/API.md` for every
//! call with curl examples. The contract is `spec/quantum-v1.md` sections
//! 0-5 (routes, faults, content negotiation, XML, filters, extensions) plus
//! section 8's authenticated attachments (the `interfaces` extension).
//!
//! Layout:
//! - [`router`] builds the whole application: `GET /` (versions document),
//!   `/v1.0/...` and `/v1.1/...` (the same handlers, per-version views and
//!   faults), `/v2.0/...` (Neutron), `GET /openapi.json`.
//! - `neutron`: the Neutron v2.0 subset (`spec/neutron-v2.md`): networks,
//!   subnets and ports of the same model, with Neutron's bodies, errors,
//!   filters, sorting and pagination.
//! - `negotiate`: versions, formats, the `.json`/`.xml` suffix and the
//!   `Content-Type`/`Accept` rules.
//! - `fault`: the one error type of the boundary and its mapping to status
//!   codes and bodies, per version and format.
//! - `ctx`: the request context extractor, body reading (size-capped) and
//!   the success reply.
//! - `xml`: the XML serializer and request parser.
//! - [`auth`]: no-auth and token modes (`X-Auth-Token`, SHA-256 digests,
//!   roles admin/member/hypervisor) and the one authorization rule every
//!   versioned handler passes through.
//! - [`limit`]: the rate-limiting tower middleware (per tenant and verb
//!   class, 429 with `Retry-After`).
//! - `page` and `links`: v1.1 pagination parameters, `*_links` next/previous
//!   links and ATOM `self`/`bookmark` links; `/tenants/...` bookmarks
//!   redirect to the current version.
//! - `quantum`: the routes and handlers, views and filters.
//!
//! Control-plane calls are synchronous (they wait for the store's commit)
//! and run on tokio's blocking pool. Every request gets a tracing span with
//! its method, path and matched route.
//!
//! ```no_run
//! # async fn serve() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let control = Arc::new(control::Control::open("qswitch.db", Arc::new(control::NullForwarder))?);
//! let app = api::router(control, api::ApiOptions::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9696").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod auth;
mod ctx;
mod fault;
pub mod limit;
mod links;
pub mod metrics;
mod negotiate;
mod neutron;
mod page;
mod quantum;
mod xml;

pub use auth::{token_digest, Auth, Principal, Role, Tokens};
pub use limit::{Clock, Rate, RateLimits};
pub use metrics::{metrics_router, Metrics, MetricsOptions};
pub use page::DEFAULT_MAX_PAGE_SIZE;

use std::sync::Arc;

use axum::extract::{MatchedPath, Request};
use axum::http::header::{CONTENT_TYPE, HOST, LOCATION};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use control::Control;
use serde_json::json;
use tower::ServiceExt;
use tower_http::trace::TraceLayer;

use crate::ctx::{Reply, VersionState};
use crate::fault::ApiError;
use crate::negotiate::{negotiate, Format, Suffix, Version};

/// The default cap on request bodies: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// The project of v2.0 requests that name none (noauth mode), as the
/// reference Neutron's noauth context names it.
pub const DEFAULT_TENANT: &str = "fake_project_id";

/// Options of the HTTP front end.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Request bodies above this many bytes are refused with 413.
    pub max_body_bytes: usize,
    /// The project v2.0 requests run as (admin) when they carry no
    /// `X-Project-Id`: clients that never send a tenant id work.
    pub default_tenant: String,
    /// The largest page of a v1.1 list, also the page size when a request
    /// gives no `limit`.
    pub max_page_size: usize,
    /// No-auth or token mode.
    pub auth: Auth,
    /// Request rates per tenant and verb class.
    pub rate_limits: RateLimits,
    /// The clock of the rate limiter.
    pub clock: Clock,
    /// The process's metrics, served at `/metrics`; `None`: the API's own only.
    pub metrics: Option<Arc<Metrics>>,
    /// List Neutron's `agent` extension: this process reports its host's agent (its data plane
    /// runs). Without one, `/v2.0/agents` still answers, with the agents others reported.
    pub agents: bool,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            default_tenant: DEFAULT_TENANT.to_owned(),
            max_page_size: DEFAULT_MAX_PAGE_SIZE,
            auth: Auth::NoAuth,
            rate_limits: RateLimits::default(),
            clock: Clock::system(),
            metrics: None,
            agents: false,
        }
    }
}

/// The OpenAPI 3 description of the JSON API, served at `/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../../docs/openapi.json");

/// The whole HTTP application, ready for `axum::serve`.
pub fn router(control: Arc<Control>, opts: ApiOptions) -> Router {
    let limiter = Arc::new(limit::RateLimiter::new(
        opts.rate_limits,
        opts.clock.clone(),
    ));
    let state = |version| VersionState {
        control: control.clone(),
        version,
        max_body: opts.max_body_bytes,
        max_page: opts.max_page_size.max(1),
        limiter: limiter.clone(),
    };
    let metrics = opts
        .metrics
        .clone()
        .unwrap_or_else(|| Metrics::new(control.clone(), MetricsOptions::default(), Vec::new()));
    let refusals = axum::middleware::from_fn_with_state(metrics.clone(), metrics::count_refusals);
    // Authentication runs first (outermost), then the refusal counter (which sees the caller),
    // then the rate limit (which charges the authenticated tenant), then the routes.
    let versioned = |version| {
        quantum::router(state(version))
            .layer(limit::RateLimitLayer {
                limiter: limiter.clone(),
                flavor: limit::Flavor::Quantum(version),
            })
            .layer(refusals.clone())
            .layer(axum::middleware::from_fn_with_state(
                auth::AuthState {
                    auth: opts.auth.clone(),
                    version,
                },
                auth::authenticate,
            ))
    };
    let trace = TraceLayer::new_for_http().make_span_with(|req: &Request| {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str)
            .unwrap_or("");
        tracing::info_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            route,
        )
    });
    let inner = Router::new()
        .route("/", get(versions).fallback(root_method_not_allowed))
        .route(
            "/openapi.json",
            get(openapi).fallback(root_method_not_allowed),
        )
        .route("/tenants/{*rest}", any(bookmark))
        .nest("/v1.0", versioned(Version::V10))
        .nest("/v1.1", versioned(Version::V11))
        .merge(
            neutron::router(neutron::NeutronState {
                control: control.clone(),
                max_body: opts.max_body_bytes,
                default_tenant: opts.default_tenant.clone(),
                agents: opts.agents,
            })
            .layer(limit::RateLimitLayer {
                limiter: limiter.clone(),
                flavor: limit::Flavor::Neutron,
            })
            .layer(refusals)
            .layer(axum::middleware::from_fn_with_state(
                opts.auth.clone(),
                auth::authenticate_v2,
            )),
        )
        .route(
            "/metrics",
            get(metrics::serve_api)
                .with_state((metrics.clone(), opts.auth.clone()))
                .fallback(root_method_not_allowed),
        )
        .route_layer(axum::middleware::from_fn(metrics::tag_route))
        .fallback(root_not_found)
        .layer(trace);
    // The suffix must come off before routing, so the rewrite wraps the
    // whole router; oversized header lines are refused before anything else.
    Router::new()
        .fallback_service(inner.map_request(negotiate::strip_suffix))
        .layer(axum::middleware::from_fn(header_limit))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::track,
        ))
}

/// The longest request header line accepted (name, `: ` and value), as common proxies' default
/// (nginx's `large_client_header_buffers` is 8k).
pub const MAX_HEADER_LINE: usize = 8 * 1024;

/// 431 for a request with a header line over [`MAX_HEADER_LINE`], in the fault format of the API
/// the path names.
async fn header_limit(req: Request, next: axum::middleware::Next) -> Response {
    let too_long = req
        .headers()
        .iter()
        .any(|(k, v)| k.as_str().len() + 2 + v.len() > MAX_HEADER_LINE);
    if !too_long {
        return next.run(req).await;
    }
    let path = req.uri().path();
    if path.starts_with("/v2.0") {
        return neutron::header_too_large(MAX_HEADER_LINE);
    }
    let version = if path.starts_with("/v1.0") {
        Some(Version::V10)
    } else if path.starts_with("/v1.1") {
        Some(Version::V11)
    } else {
        None
    };
    ApiError::HeaderTooLarge(MAX_HEADER_LINE).render(version, format_of(req.headers(), None))
}

fn format_of(req_headers: &HeaderMap, suffix: Option<Suffix>) -> Format {
    negotiate(suffix, req_headers)
}

/// `GET /`: the versions document; hrefs are built from the `Host` the
/// client used.
async fn versions(headers: HeaderMap, uri: Uri) -> Response {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".to_owned());
    let entry = |v: Version, status: &str| {
        json!({
            "id": v.as_str(),
            "status": status,
            "links": [{"rel": "self", "href": format!("http://{host}/{}", v.as_str())}],
        })
    };
    // v2.0 first: keystoneauth picks the entry whose major version matches
    // the service's (network: 2) and takes its self link as the endpoint;
    // Quantum clients address their version's URL directly.
    let body = json!({"versions": [
        neutron::version_entry(&host),
        entry(Version::V10, "CURRENT"),
        entry(Version::V11, "PROPOSED"),
    ]});
    const ATTRS: xml::Attrs<'static> =
        &[("version", &["id", "status"]), ("link", &["rel", "href"])];
    Reply::ok(body, ATTRS)
        .without_namespace()
        .render(None, format_of(&headers, None))
}

/// `/tenants/...`: a bookmark (a version-independent link). Answers a
/// permanent redirect to the same path in the current version: 301 for GET
/// and HEAD, 308 (method and body kept) for the others.
async fn bookmark(method: Method, uri: Uri) -> Response {
    let mut target = format!("/{}{}", links::CURRENT.as_str(), uri.path());
    if let Some(q) = uri.query() {
        target.push('?');
        target.push_str(q);
    }
    let status = if method == Method::GET || method == Method::HEAD {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::PERMANENT_REDIRECT
    };
    match HeaderValue::try_from(target) {
        Ok(location) => (status, [(LOCATION, location)]).into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// `GET /openapi.json`.
async fn openapi() -> Response {
    let mut resp = (StatusCode::OK, OPENAPI_JSON).into_response();
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Any path outside `/`, `/openapi.json`, `/v1.0/...`, `/v1.1/...` and the
/// v2.0 routes (whose unknown paths answer Neutron's 404).
async fn root_not_found(headers: HeaderMap, uri: Uri) -> Response {
    if uri.path().starts_with("/v2.0/") {
        return neutron::not_found().await;
    }
    ApiError::NotFound(format!("No resource at {}", uri.path()))
        .render(None, format_of(&headers, None))
}

/// A method other than GET on `/` or `/openapi.json`.
async fn root_method_not_allowed(headers: HeaderMap, method: Method) -> Response {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        allow: Some(HeaderValue::from_static("GET,HEAD")),
    }
    .render(None, format_of(&headers, None))
}
