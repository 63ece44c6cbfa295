//! Neutron's `agent` extension: `/v2.0/agents` lists the hosts' agents (each `qswitch serve`
//! with its data plane on reports itself, see `control::agent`), shows one, changes its
//! `admin_state_up` and description, and deletes it. Admins only, as in Neutron: anyone else
//! lists none and finds none (404 `HTTPNotFound`, as Neutron hides what a policy forbids). Lists
//! take `fields`, filters and sort keys on Neutron's filterable attributes; they are not paged.

use axum::body::Body;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use control::agent::{self, Agent};
use serde_json::{json, Map, Value};

use super::attrs::{opt_bool, string, MAX_NAME};
use super::error::NeutronError;
use super::unpaged::{check_keys, no_content, object, query};
use super::{finish, method_not_allowed, ok, read_json, run, scope, NeutronState};

/// The agent routes.
pub(crate) fn routes() -> Router<NeutronState> {
    Router::new()
        .route("/v2.0/agents", get(list).fallback(method_not_allowed))
        .route(
            "/v2.0/agents/{id}",
            get(show)
                .put(update)
                .delete(delete)
                .fallback(method_not_allowed),
        )
}

/// What a list filters and sorts on (Neutron's filterable agent attributes).
const FILTERS: &[&str] = &[
    "id",
    "agent_type",
    "binary",
    "topic",
    "host",
    "admin_state_up",
    "alive",
    "description",
];

/// What an agent shows besides [`FILTERS`].
const SHOWN: &[&str] = &[
    "created_at",
    "started_at",
    "heartbeat_timestamp",
    "configurations",
    "availability_zone",
    "resources_synced",
];

/// What an admin may change.
const UPDATABLE: &[&str] = &["admin_state_up", "description"];

/// The caller's scope, if an admin's: anyone else is told, as Neutron tells them, that there is
/// no such resource.
fn admin(
    state: &NeutronState,
    headers: &HeaderMap,
) -> Result<control::neutron::Scope, NeutronError> {
    let s = scope(state, headers);
    if s.admin {
        Ok(s)
    } else {
        Err(NeutronError::not_found())
    }
}

fn view(a: &Agent, now: i64) -> Map<String, Value> {
    let v = json!({
        "id": a.id,
        "agent_type": a.agent_type,
        "binary": a.binary,
        "topic": a.topic,
        "host": a.host,
        "admin_state_up": a.admin_state_up,
        "created_at": agent::timestamp(a.created_at),
        "started_at": agent::timestamp(a.started_at),
        "heartbeat_timestamp": agent::timestamp(a.heartbeat_at),
        "alive": a.alive(now),
        "description": a.description,
        "configurations": serde_json::from_str::<Value>(&a.configurations)
            .unwrap_or_else(|_| json!({})),
        "availability_zone": null,
        "resources_synced": null,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

async fn list(
    State(state): State<NeutronState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    finish(
        async {
            let q = query(&uri, FILTERS, true)?;
            let s = scope(&state, &headers);
            let all = run(&state, move |c| c.agents(&s)).await?;
            let now = agent::now_secs();
            q.answer("agents", all.iter().map(|a| view(a, now)).collect())
        }
        .await,
    )
}

async fn show(
    State(state): State<NeutronState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    finish(
        async {
            let q = query(&uri, FILTERS, false)?;
            let s = admin(&state, &headers)?;
            let a = run(&state, move |c| c.agent(&s, &id)).await?;
            let v = q.project(view(&a, agent::now_secs()));
            Ok(ok(StatusCode::OK, json!({ "agent": v })))
        }
        .await,
    )
}

async fn update(
    State(state): State<NeutronState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    finish(
        async {
            let b = object(read_json(&state, body).await?, "agent")?;
            if let Some(k) = b
                .keys()
                .map(String::as_str)
                .find(|k| (FILTERS.contains(k) || SHOWN.contains(k)) && !UPDATABLE.contains(k))
            {
                return Err(NeutronError::bad_request(format!(
                    "Cannot update read-only attribute {k}"
                )));
            }
            check_keys(&b, UPDATABLE)?;
            let up = opt_bool(&b, "admin_state_up")?;
            let description = match b.get("description") {
                None => None,
                Some(Value::Null) => Some(None),
                Some(_) => Some(string(&b, "description", MAX_NAME)?),
            };
            let s = admin(&state, &headers)?;
            let a = run(&state, move |c| c.update_agent(&s, &id, up, description)).await?;
            Ok(ok(
                StatusCode::OK,
                json!({ "agent": view(&a, agent::now_secs()) }),
            ))
        }
        .await,
    )
}

async fn delete(
    State(state): State<NeutronState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    finish(
        async {
            let s = admin(&state, &headers)?;
            run(&state, move |c| c.delete_agent(&s, &id)).await?;
            Ok(no_content())
        }
        .await,
    )
}
