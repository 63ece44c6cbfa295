//! The Neutron v2.0 API subset (`spec/neutron-v2.md`): networks, subnets
//! and ports on the same model as Quantum's, the resources document and the
//! extensions that are implemented.
//!
//! - `attrs`: request bodies, per resource and verb.
//! - `query`: `fields=`, filters, sorting, pagination and links.
//! - `views`: the response bodies.
//! - `error`: the `NeutronError` body and the mapping of control errors.
//! - `extensions`: the descriptors of the implemented extensions.
//!
//! The caller's project: `X-Project-Id` (or `X-Tenant-Id`) when sent, as a
//! plain member of that project (an `X-Roles` holding `admin` makes it an
//! admin); otherwise, in noauth mode, an admin of the configured default
//! project, as Neutron's noauth runs every request. Any `X-Auth-Token` is
//! accepted and ignored.

mod agents;
pub(crate) mod attrs;
mod error;
mod extensions;
mod qos;
mod query;
mod unpaged;
pub(crate) mod views;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{OriginalUri, Path, State};
use axum::http::header::HOST;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use control::neutron::Scope;
use control::Control;
use serde_json::{json, Map, Value};

use self::error::NeutronError;

/// State of the v2.0 routes.
#[derive(Debug, Clone)]
pub(crate) struct NeutronState {
    pub(crate) control: Arc<Control>,
    pub(crate) max_body: usize,
    pub(crate) default_tenant: String,
    /// Whether the `agent` extension is listed.
    pub(crate) agents: bool,
}

/// The resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Network,
    Port,
    Subnet,
    SecurityGroup,
    SecurityGroupRule,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Self::Network,
        Self::Port,
        Self::Subnet,
        Self::SecurityGroup,
        Self::SecurityGroupRule,
    ];

    /// The key of one item in bodies.
    fn singular(self) -> &'static str {
        match self {
            Self::Network => "network",
            Self::Port => "port",
            Self::Subnet => "subnet",
            Self::SecurityGroup => "security_group",
            Self::SecurityGroupRule => "security_group_rule",
        }
    }

    /// The key of a list in bodies.
    fn plural(self) -> &'static str {
        match self {
            Self::Network => "networks",
            Self::Port => "ports",
            Self::Subnet => "subnets",
            Self::SecurityGroup => "security_groups",
            Self::SecurityGroupRule => "security_group_rules",
        }
    }

    /// The collection in URLs.
    fn path(self) -> &'static str {
        match self {
            Self::SecurityGroup => "security-groups",
            Self::SecurityGroupRule => "security-group-rules",
            k => k.plural(),
        }
    }

    fn from_path(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.path() == s)
    }
}

/// Whether `s` is one of the v2.0 collections (`networks`, `ports`, `subnets`).
pub(crate) fn is_collection(s: &str) -> bool {
    Kind::from_path(s).is_some()
}

type R<T> = Result<T, NeutronError>;

/// The v2.0 routes, to be merged into the application.
pub(crate) fn router(state: NeutronState) -> Router {
    Router::new()
        .route("/v2.0", get(resources).fallback(method_not_allowed))
        .route("/v2.0/", get(resources).fallback(method_not_allowed))
        .route(
            "/v2.0/extensions",
            get(extensions::list).fallback(method_not_allowed),
        )
        .route(
            "/v2.0/extensions/{alias}",
            get(extensions::show).fallback(method_not_allowed),
        )
        .route(
            "/v2.0/{collection}",
            get(list).post(create).fallback(method_not_allowed),
        )
        .route(
            "/v2.0/{collection}/{id}",
            get(show)
                .put(update)
                .delete(delete)
                .fallback(method_not_allowed),
        )
        .merge(qos::routes())
        .merge(agents::routes())
        .with_state(state)
}

/// The `versions` entry of v2.0 in the root document.
pub(crate) fn version_entry(host: &str) -> Value {
    json!({
        "id": "v2.0",
        "status": "CURRENT",
        "links": [{"rel": "self", "href": format!("http://{host}/v2.0/")}],
    })
}

fn host(headers: &HeaderMap) -> String {
    headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned()
}

/// The caller's scope (see the module notes).
fn scope(state: &NeutronState, headers: &HeaderMap) -> Scope {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let roles_admin = header("x-roles")
        .is_some_and(|r| r.split(',').any(|r| r.trim().eq_ignore_ascii_case("admin")));
    match header("x-project-id").or_else(|| header("x-tenant-id")) {
        Some(project) => Scope {
            tenant_id: project,
            admin: roles_admin,
        },
        None => Scope {
            tenant_id: state.default_tenant.clone(),
            admin: true,
        },
    }
}

fn ok(status: StatusCode, body: Value) -> Response {
    ok_text(status, body.to_string())
}

/// A JSON body already serialized (off the async runtime, for big lists).
fn ok_text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn finish(r: R<Response>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

async fn run<T, F>(state: &NeutronState, f: F) -> R<T>
where
    T: Send + 'static,
    F: FnOnce(&Control) -> control::Result<T> + Send + 'static,
{
    blocking(state, move |c| f(c).map_err(NeutronError::from)).await
}

/// Runs `f` on a blocking thread: store calls block on I/O, and building a big page is CPU work
/// that must not hold up the async runtime either.
async fn blocking<T, F>(state: &NeutronState, f: F) -> R<T>
where
    T: Send + 'static,
    F: FnOnce(&Control) -> R<T> + Send + 'static,
{
    let control = state.control.clone();
    match tokio::task::spawn_blocking(move || f(&control)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "control call panicked or was cancelled");
            Err(NeutronError::internal())
        }
    }
}

async fn read_json(state: &NeutronState, body: Body) -> R<Value> {
    let bytes = axum::body::to_bytes(body, state.max_body)
        .await
        .map_err(|e| {
            if e.into_inner().is::<http_body_util::LengthLimitError>() {
                NeutronError::too_large(state.max_body)
            } else {
                NeutronError::bad_request("Body contains invalid data")
            }
        })?;
    serde_json::from_slice(&bytes)
        .map_err(|_| NeutronError::bad_request("Body contains invalid data"))
}

/// The items of a POST body: `{"network": {...}}` (single) or
/// `{"networks": [...]}` (bulk).
fn items(kind: Kind, body: Value) -> R<(Vec<Map<String, Value>>, bool)> {
    let Value::Object(mut outer) = body else {
        return Err(NeutronError::bad_request("Body contains invalid data"));
    };
    if let Some(v) = outer.remove(kind.plural()) {
        let Value::Array(list) = v else {
            return Err(NeutronError::bad_request(format!(
                "Unable to find '{}' in request body",
                kind.singular()
            )));
        };
        if list.is_empty() {
            return Err(NeutronError::bad_request("Resources required"));
        }
        let mut out = Vec::with_capacity(list.len());
        for item in list {
            let Value::Object(mut m) = item else {
                return Err(NeutronError::bad_request("Body contains invalid data"));
            };
            // Each bulk item may be wrapped: `{"network": {...}}`.
            if let Some(Value::Object(inner)) = m.remove(kind.singular()) {
                m = inner;
            }
            out.push(m);
        }
        return Ok((out, true));
    }
    match outer.remove(kind.singular()) {
        Some(Value::Object(m)) => Ok((vec![m], false)),
        _ => Err(NeutronError::bad_request(format!(
            "Unable to find '{}' in request body",
            kind.singular()
        ))),
    }
}

fn kind_of(collection: &str) -> R<Kind> {
    Kind::from_path(collection).ok_or_else(NeutronError::not_found)
}

/// The visible items of a collection, as bodies, in creation order.
fn all_views(c: &Control, kind: Kind, s: &Scope) -> R<Vec<Map<String, Value>>> {
    Ok(match kind {
        Kind::Network => c.v2_networks(s)?.iter().map(views::network).collect(),
        Kind::Port => c.v2_ports(s)?.iter().map(views::port).collect(),
        Kind::Subnet => c.subnets(s)?.iter().map(views::subnet).collect(),
        Kind::SecurityGroup => c
            .security_groups(s)?
            .iter()
            .map(views::security_group)
            .collect(),
        Kind::SecurityGroupRule => c.sg_rules(s)?.iter().map(views::sg_rule).collect(),
    })
}

/// A show. Those that only read the store (an index seek or two on a pooled WAL reader, which
/// never waits for a writer) run on the runtime's thread, which costs less than the hop to a
/// blocking thread; a port's status comes from the switch, whose lock an update may hold for a
/// while, so a port show takes the hop.
async fn one_view(state: &NeutronState, kind: Kind, s: Scope, id: String) -> R<Map<String, Value>> {
    let c = &state.control;
    match kind {
        Kind::Port => Ok(views::port(&run(state, move |c| c.v2_port(&s, &id)).await?)),
        Kind::Network => point(|| Ok(views::network(&c.v2_network(&s, &id)?))),
        Kind::Subnet => point(|| Ok(views::subnet(&c.subnet(&s, &id)?))),
        Kind::SecurityGroup => point(|| Ok(views::security_group(&c.security_group(&s, &id)?))),
        Kind::SecurityGroupRule => point(|| Ok(views::sg_rule(&c.sg_rule(&s, &id)?))),
    }
}

/// Runs a point read on the runtime's thread; a panic in it is a 500, as on a blocking thread.
fn point<T>(f: impl FnOnce() -> R<T>) -> R<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        tracing::error!("a show panicked");
        Err(NeutronError::internal())
    })
}

/// `GET /v2.0/{collection}`.
async fn list(
    State(state): State<NeutronState>,
    Path(collection): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    finish(
        async {
            let kind = kind_of(&collection)?;
            let q = query::parse(kind, uri.query())?;
            let s = scope(&state, &headers);
            let base = format!("http://{}{}", host(&headers), uri.path());
            let body = blocking(&state, move |c| {
                // Lists page in the store when their filters allow it; the rest in memory.
                let pushed = match kind {
                    Kind::Port => query::port_pushdown(&q)?.map(|(pq, rest)| {
                        c.v2_ports_page(&s, pq)
                            .map(|page| (page.iter().map(views::port).collect(), rest))
                    }),
                    Kind::Network => query::network_pushdown(&q)?.map(|(nq, rest)| {
                        c.v2_networks_page(&s, nq)
                            .map(|page| (page.iter().map(views::network).collect(), rest))
                    }),
                    Kind::Subnet => query::subnet_pushdown(&q)?.map(|(sq, rest)| {
                        c.subnets_page(&s, sq)
                            .map(|page| (page.iter().map(views::subnet).collect(), rest))
                    }),
                    Kind::SecurityGroup | Kind::SecurityGroupRule => None,
                };
                let (items, q) = match pushed {
                    Some(page) => page?,
                    None => (all_views(c, kind, &s)?, q),
                };
                Ok(query::answer(&q, kind.plural(), &base, items)?.to_string())
            })
            .await?;
            Ok(ok_text(StatusCode::OK, body))
        }
        .await,
    )
}

/// `GET /v2.0/{collection}/{id}`.
async fn show(
    State(state): State<NeutronState>,
    Path((collection, id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    finish(
        async {
            let kind = kind_of(&collection)?;
            let item = one_view(&state, kind, scope(&state, &headers), id).await?;
            let q = query::fields_only(uri.query());
            Ok(ok(
                StatusCode::OK,
                json!({ kind.singular(): query::project(&q, item) }),
            ))
        }
        .await,
    )
}

/// `POST /v2.0/{collection}`: 201, single or bulk (all or nothing).
async fn create(
    State(state): State<NeutronState>,
    Path(collection): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    finish(
        async {
            let kind = kind_of(&collection)?;
            let s = scope(&state, &headers);
            let (bodies, bulk) = items(kind, read_json(&state, body).await?)?;
            let created: Vec<Map<String, Value>> = match kind {
                Kind::Network => {
                    let specs = bodies
                        .iter()
                        .map(|b| attrs::network_spec(b, &s))
                        .collect::<R<Vec<_>>>()?;
                    run(&state, move |c| c.create_networks(&s, specs))
                        .await?
                        .iter()
                        .map(views::network)
                        .collect()
                }
                Kind::Port => {
                    let specs = bodies
                        .iter()
                        .map(|b| attrs::port_spec(b, &s))
                        .collect::<R<Vec<_>>>()?;
                    run(&state, move |c| c.create_ports(&s, specs))
                        .await?
                        .iter()
                        .map(views::port)
                        .collect()
                }
                Kind::Subnet => {
                    let specs = bodies
                        .iter()
                        .map(|b| attrs::subnet_spec(b, &s))
                        .collect::<R<Vec<_>>>()?;
                    run(&state, move |c| c.create_subnets(&s, specs))
                        .await?
                        .iter()
                        .map(views::subnet)
                        .collect()
                }
                Kind::SecurityGroup => {
                    let specs = bodies
                        .iter()
                        .map(|b| attrs::security_group_spec(b, &s))
                        .collect::<R<Vec<_>>>()?;
                    run(&state, move |c| c.create_security_groups(&s, specs))
                        .await?
                        .iter()
                        .map(views::security_group)
                        .collect()
                }
                Kind::SecurityGroupRule => {
                    let specs = bodies
                        .iter()
                        .map(|b| attrs::sg_rule_spec(b, &s))
                        .collect::<R<Vec<_>>>()?;
                    run(&state, move |c| c.create_sg_rules(&s, specs))
                        .await?
                        .iter()
                        .map(views::sg_rule)
                        .collect()
                }
            };
            let body = if bulk {
                json!({ kind.plural(): created })
            } else {
                json!({ kind.singular(): created.into_iter().next() })
            };
            Ok(ok(StatusCode::CREATED, body))
        }
        .await,
    )
}

/// `PUT /v2.0/{collection}/{id}`: 200 with the changed resource.
async fn update(
    State(state): State<NeutronState>,
    Path((collection, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    finish(
        async {
            let kind = kind_of(&collection)?;
            let s = scope(&state, &headers);
            let value = read_json(&state, body).await?;
            let res = match value {
                Value::Object(mut m) => match m.remove(kind.singular()) {
                    Some(Value::Object(r)) => r,
                    _ => {
                        return Err(NeutronError::bad_request(format!(
                            "Unable to find '{}' in request body",
                            kind.singular()
                        )))
                    }
                },
                _ => return Err(NeutronError::bad_request("Body contains invalid data")),
            };
            let item = match kind {
                Kind::Network => {
                    let upd = attrs::network_update(&res, &s)?;
                    views::network(&run(&state, move |c| c.v2_update_network(&s, &id, upd)).await?)
                }
                Kind::Port => {
                    let upd = attrs::port_update(&res)?;
                    views::port(&run(&state, move |c| c.v2_update_port(&s, &id, upd)).await?)
                }
                Kind::Subnet => {
                    let upd = attrs::subnet_update(&res)?;
                    views::subnet(&run(&state, move |c| c.update_subnet(&s, &id, upd)).await?)
                }
                Kind::SecurityGroup => {
                    let upd = attrs::security_group_update(&res)?;
                    views::security_group(
                        &run(&state, move |c| c.update_security_group(&s, &id, upd)).await?,
                    )
                }
                Kind::SecurityGroupRule => {
                    let d = attrs::sg_rule_update(&res)?;
                    views::sg_rule(&run(&state, move |c| c.update_sg_rule(&s, &id, d)).await?)
                }
            };
            Ok(ok(StatusCode::OK, json!({ kind.singular(): item })))
        }
        .await,
    )
}

/// `DELETE /v2.0/{collection}/{id}`: 204, empty.
async fn delete(
    State(state): State<NeutronState>,
    Path((collection, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    finish(
        async {
            let kind = kind_of(&collection)?;
            let s = scope(&state, &headers);
            match kind {
                Kind::Network => run(&state, move |c| c.v2_delete_network(&s, &id)).await?,
                Kind::Port => run(&state, move |c| c.v2_delete_port(&s, &id)).await?,
                Kind::Subnet => run(&state, move |c| c.delete_subnet(&s, &id)).await?,
                Kind::SecurityGroup => {
                    run(&state, move |c| c.delete_security_group(&s, &id)).await?
                }
                Kind::SecurityGroupRule => run(&state, move |c| c.delete_sg_rule(&s, &id)).await?,
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

/// `GET /v2.0/`: the resources document.
async fn resources(headers: HeaderMap) -> Response {
    let host = host(&headers);
    let entry = |k: Kind| {
        json!({
            "name": k.singular(),
            "collection": k.plural(),
            "links": [{"rel": "self", "href": format!("http://{host}/v2.0/{}", k.plural())}],
        })
    };
    ok(
        StatusCode::OK,
        json!({"resources": [entry(Kind::Network), entry(Kind::Subnet), entry(Kind::Port)]}),
    )
}

async fn method_not_allowed(method: Method) -> Response {
    let _ = method;
    NeutronError::method_not_allowed().into_response()
}

/// Any other path under `/v2.0/`: 404 `HTTPNotFound`.
pub(crate) async fn not_found() -> Response {
    NeutronError::not_found().into_response()
}

/// 431 for a request header line over `limit` bytes.
pub(crate) fn header_too_large(limit: usize) -> Response {
    NeutronError::header_too_large(limit).into_response()
}
