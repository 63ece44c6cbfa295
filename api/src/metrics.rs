//! The operator's `/metrics`: Prometheus text exposition of the API's requests and refusals, the
//! control plane's store and revisions, and whatever collectors the daemon adds (the data plane's
//! counters).
//!
//! Nothing here runs on the packet path: collectors read published copies at scrape time. Label
//! sets are bounded (route templates, never raw URLs; tenant classes, never tenant ids unless
//! [`MetricsOptions::tenant_labels`] asks for them); `docs/OPERATIONS.md` lists every series.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use control::metrics::{latency_histogram, HistogramFn};
use control::Control;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::auth::{Principal, Role};

/// The route label of requests that matched no route.
const UNMATCHED: &str = "unmatched";

/// What the metrics may label by.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsOptions {
    /// Label refusals with the tenant id as well as its class (token mode: the token's tenant):
    /// one series per tenant that was ever refused. Off by default, as a cloud has unbounded
    /// tenants.
    pub tenant_labels: bool,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    tenant_class: &'static str,
    tenant: String,
}

/// Why a request was refused before or instead of doing its work: set on the response by the
/// rate limiter and by the quota faults, counted by [`count_refusals`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Over the tenant's request rate.
    RateLimit,
    /// Over the tenant's quota of a resource.
    Quota,
}

impl Refusal {
    /// Marks `resp` as refused for this reason.
    pub(crate) fn mark(self, mut resp: Response) -> Response {
        resp.extensions_mut().insert(self);
        resp
    }
}

/// The route template a request matched, carried on its response to [`track`].
#[derive(Debug, Clone)]
struct RouteTemplate(String);

/// Every metric of the process and the registry that exposes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, HistogramFn>,
    rate_limited: Family<RefusalLabels, Counter>,
    over_quota: Family<RefusalLabels, Counter>,
    options: MetricsOptions,
}

impl Metrics {
    /// The API's and the control plane's metrics, plus `collectors` (read at every scrape).
    pub fn new(
        control: Arc<Control>,
        options: MetricsOptions,
        collectors: Vec<Box<dyn Collector>>,
    ) -> Arc<Self> {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency =
            Family::<RouteLabels, Histogram, HistogramFn>::new_with_constructor(latency_histogram);
        let rate_limited = Family::<RefusalLabels, Counter>::default();
        let over_quota = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "qswitch_api_requests",
            "API requests answered, by route template, method and status",
            requests.clone(),
        );
        registry.register(
            "qswitch_api_request_duration_seconds",
            "Time to answer an API request (until the response head), by route template and method",
            latency.clone(),
        );
        registry.register(
            "qswitch_api_rate_limited",
            "API requests refused by the rate limiter (429), by tenant class",
            rate_limited.clone(),
        );
        registry.register(
            "qswitch_api_over_quota",
            "API requests refused by a quota (OverQuota), by tenant class",
            over_quota.clone(),
        );
        registry.register(
            "qswitch_store_transaction_duration_seconds",
            "Time of a store transaction, by kind (a write includes its commit)",
            control.metrics().transactions.clone(),
        );
        registry.register_collector(Box::new(Revisions(control)));
        for c in collectors {
            registry.register_collector(c);
        }
        Arc::new(Self {
            registry,
            requests,
            latency,
            rate_limited,
            over_quota,
            options,
        })
    }

    /// The whole exposition, in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(64 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    fn record(&self, route: String, method: &Method, status: StatusCode, started: Instant) {
        let method = method_label(method);
        self.latency
            .get_or_create(&RouteLabels {
                route: route.clone(),
                method,
            })
            .observe(started.elapsed().as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status: status.as_u16(),
            })
            .inc();
    }
}

/// The store's and the data plane's revisions, read at scrape time.
#[derive(Debug)]
struct Revisions(Arc<Control>);

impl Collector for Revisions {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let rows: [(&str, &str, u64); 2] = [
            (
                "qswitch_store_revision",
                "The last revision of the revision log this process committed",
                self.0.metrics().revision(),
            ),
            (
                "qswitch_dataplane_applied_revision",
                "The last revision handed to the data plane",
                self.0.applied_revision(),
            ),
        ];
        for (name, help, value) in rows {
            // A server without a data plane has no applied revision (it would read 0 and look
            // forever behind).
            if name == "qswitch_dataplane_applied_revision" && !self.0.has_dataplane() {
                continue;
            }
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

/// The route label of a request: its template, with a v2.0 `{collection}` resolved to the
/// collection it names when that is one of the API's (`/v2.0/ports/{id}`), so that each
/// resource has its own series and the label stays bounded.
fn route_label(template: &str, path: &str) -> String {
    let Some(i) = template.split('/').position(|s| s == "{collection}") else {
        return template.to_owned();
    };
    match path.split('/').nth(i) {
        Some(c) if crate::neutron::is_collection(c) => template.replacen("{collection}", c, 1),
        _ => template.to_owned(),
    }
}

/// A bounded method label: the standard verbs, anything else as `other`.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The class of a caller, a bounded label: its strongest role, or `noauth`.
fn tenant_class(req: &Request) -> &'static str {
    match req.extensions().get::<Principal>() {
        Some(p) if p.has(Role::Admin) => "admin",
        Some(p) if p.has(Role::Hypervisor) => "hypervisor",
        Some(_) => "member",
        None => "noauth",
    }
}

/// Outermost middleware: counts every request by route template, method and status, and times
/// it.
pub(crate) async fn track(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let resp = next.run(req).await;
    let route = resp
        .extensions()
        .get::<RouteTemplate>()
        .map_or_else(|| UNMATCHED.to_owned(), |r| r.0.clone());
    m.record(route, &method, resp.status(), started);
    resp
}

/// Route-layer middleware (runs only for matched routes): carries the matched template to
/// [`track`] on the response.
pub(crate) async fn tag_route(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| RouteTemplate(route_label(p.as_str(), req.uri().path())));
    let mut resp = next.run(req).await;
    if let Some(r) = route {
        resp.extensions_mut().insert(r);
    }
    resp
}

/// Middleware inside authentication (it sees the caller) and outside the rate limiter: counts
/// rate-limit and quota refusals by tenant class.
pub(crate) async fn count_refusals(
    State(m): State<Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let class = tenant_class(&req);
    // Only a token's tenant: in noauth mode the caller names any tenant it likes, and each new
    // name would be a new series.
    let tenant = match req.extensions().get::<Principal>() {
        Some(p) if m.options.tenant_labels => p.tenant.clone(),
        _ => String::new(),
    };
    let resp = next.run(req).await;
    let family = match resp.extensions().get::<Refusal>() {
        Some(Refusal::RateLimit) => &m.rate_limited,
        Some(Refusal::Quota) => &m.over_quota,
        None => return resp,
    };
    family
        .get_or_create(&RefusalLabels {
            tenant_class: class,
            tenant,
        })
        .inc();
    resp
}

/// `GET /metrics` of the API listener. In token mode it needs an admin token (the series name
/// every port and network of the host).
pub(crate) async fn serve_api(
    State((m, auth)): State<(Arc<Metrics>, crate::Auth)>,
    req: Request,
) -> Response {
    if let crate::Auth::Token(tokens) = &auth {
        let principal = req
            .headers()
            .get(crate::auth::TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|t| tokens.resolve(t.trim()));
        match principal {
            None => {
                return (
                    StatusCode::UNAUTHORIZED,
                    "an admin X-Auth-Token is needed\n",
                )
                    .into_response()
            }
            Some(p) if !p.has(Role::Admin) => {
                return (StatusCode::FORBIDDEN, "/metrics is for admin tokens\n").into_response()
            }
            Some(_) => {}
        }
    }
    exposition(&m).await
}

async fn exposition(m: &Arc<Metrics>) -> Response {
    let m = Arc::clone(m);
    // A scrape of a large host encodes tens of thousands of series: off the async workers.
    let text = match tokio::task::spawn_blocking(move || m.render()).await {
        Ok(Ok(text)) => text,
        // A partial page would read as a target without those series: say it failed instead.
        failed => {
            tracing::error!(?failed, "encoding the metrics failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut resp = text.into_response();
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE),
    );
    resp
}

/// The router of a separate metrics listener (`--metrics-listen`): `GET /metrics` only, without
/// authentication (bind it to a management address).
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move { exposition(&m).await }),
        )
        .with_state(metrics)
}

#[cfg(test)]
mod tests {
    use super::route_label;

    #[test]
    fn v2_collections_get_their_own_route_label() {
        assert_eq!(
            route_label("/v2.0/{collection}/{id}", "/v2.0/ports/abc"),
            "/v2.0/ports/{id}"
        );
        assert_eq!(
            route_label("/v2.0/{collection}", "/v2.0/subnets"),
            "/v2.0/subnets"
        );
        // Anything else keeps the template: the label stays bounded.
        assert_eq!(
            route_label("/v2.0/{collection}", "/v2.0/x%20y"),
            "/v2.0/{collection}"
        );
        assert_eq!(
            route_label(
                "/v1.1/tenants/{tenant_id}/networks",
                "/v1.1/tenants/a/networks"
            ),
            "/v1.1/tenants/{tenant_id}/networks"
        );
    }
}
