//! Neutron QoS (`qos` and its relatives): `/v2.0/qos/policies` with their
//! `bandwidth_limit_rules` and `packet_rate_limit_rules`, and `/v2.0/qos/rule-types`. Writes are
//! admins' (Neutron's policy: 403 `PolicyNotAuthorized` for others); a project sees its own
//! policies and the shared ones. Lists take `fields`, filters on any attribute and sort keys;
//! they are not paged (a project has few policies).

use axum::body::Body;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use control::qos::{QosDirection, QosRule, QosRuleType};
use control::{PolicyView, QosPolicySpec, QosPolicyUpdate, QosRuleSpec};
use serde_json::{json, Map, Value};

use super::attrs::{self, opt_bool, py, string, MAX_NAME};
use super::error::NeutronError;
use super::unpaged::{check_keys, no_content, object, query};
use super::{finish, method_not_allowed, ok, read_json, run, scope, NeutronState, R};

/// The QoS routes.
pub(crate) fn routes() -> Router<NeutronState> {
    Router::new()
        .route(
            "/v2.0/qos/policies",
            get(list_policies)
                .post(create_policy)
                .fallback(method_not_allowed),
        )
        .route(
            "/v2.0/qos/policies/{id}",
            get(show_policy)
                .put(update_policy)
                .delete(delete_policy)
                .fallback(method_not_allowed),
        )
        .route(
            "/v2.0/qos/policies/{id}/{rules}",
            get(list_rules)
                .post(create_rule)
                .fallback(method_not_allowed),
        )
        .route(
            "/v2.0/qos/policies/{id}/{rules}/{rule_id}",
            get(show_rule)
                .put(update_rule)
                .delete(delete_rule)
                .fallback(method_not_allowed),
        )
        .route(
            "/v2.0/qos/rule-types",
            get(rule_types).fallback(method_not_allowed),
        )
        .route(
            "/v2.0/qos/rule-types/{ty}",
            get(rule_type).fallback(method_not_allowed),
        )
}

const POLICY_ATTRS: &[&str] = &[
    "id",
    "name",
    "description",
    "shared",
    "is_default",
    "tenant_id",
    "project_id",
    "rules",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
];

/// A rule as its own resource shows it.
fn rule_view(r: &QosRule) -> Map<String, Value> {
    let (rate, burst) = r.rule_type.keys();
    let mut m = Map::new();
    m.insert("id".into(), json!(r.id));
    m.insert(rate.into(), json!(r.neutron_rate()));
    m.insert(burst.into(), json!(r.neutron_burst()));
    m.insert("direction".into(), json!(r.direction.as_str()));
    m
}

fn policy_view((p, rules): &PolicyView) -> Map<String, Value> {
    let rules: Vec<Value> = rules
        .iter()
        .map(|r| {
            let mut m = rule_view(r);
            m.insert("qos_policy_id".into(), json!(r.policy_id));
            m.insert("type".into(), json!(r.rule_type.as_str()));
            Value::Object(m)
        })
        .collect();
    match json!({
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "shared": p.shared,
        "is_default": p.is_default,
        "project_id": p.tenant_id,
        "tenant_id": p.tenant_id,
        "rules": rules,
        "tags": [],
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "revision_number": p.revision_number,
    }) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// QoS writes are an admin's or a project manager's (Neutron 29's `ADMIN_OR_PROJECT_MANAGER`;
/// the control plane keeps a manager to its own project's policies), rule named after the
/// operation.
fn admin_only(state: &NeutronState, headers: &HeaderMap, rule: &str) -> R<control::neutron::Scope> {
    let s = scope(state, headers);
    let manager = headers
        .get("x-roles")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|r| {
            r.split(',')
                .any(|r| r.trim().eq_ignore_ascii_case("manager"))
        });
    if !s.admin && !manager {
        return Err(NeutronError::policy(&format!("rule:{rule}")));
    }
    Ok(s)
}

/// As [`admin_only`] for a change of an existing policy (or of its rules): a caller who may not
/// see the policy learns that it is not found before that it may not change it, as in Neutron.
async fn may_change(
    state: &NeutronState,
    headers: &HeaderMap,
    rule: &str,
    policy_id: &str,
) -> R<control::neutron::Scope> {
    match admin_only(state, headers, rule) {
        Ok(s) => Ok(s),
        Err(denied) => {
            let s = scope(state, headers);
            let id = policy_id.to_owned();
            run(state, move |c| c.qos_policy(&s, &id)).await?;
            Err(denied)
        }
    }
}

async fn list_policies(
    State(state): State<NeutronState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    finish(
        async {
            let q = query(&uri, POLICY_ATTRS, true)?;
            let s = scope(&state, &headers);
            let all = run(&state, move |c| c.qos_policies(&s)).await?;
            q.answer("policies", all.iter().map(policy_view).collect())
        }
        .await,
    )
}

async fn show_policy(
    State(state): State<NeutronState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    finish(
        async {
            let q = query(&uri, POLICY_ATTRS, false)?;
            let s = scope(&state, &headers);
            let p = run(&state, move |c| c.qos_policy(&s, &id)).await?;
            Ok(ok(
                StatusCode::OK,
                json!({ "policy": q.project(policy_view(&p)) }),
            ))
        }
        .await,
    )
}

async fn create_policy(
    State(state): State<NeutronState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    finish(
        async {
            // The body is checked before the caller's rights, as Neutron does (a bad body is 400
            // for everyone).
            let s = scope(&state, &headers);
            let b = object(read_json(&state, body).await?, "policy")?;
            check_keys(
                &b,
                &[
                    "name",
                    "description",
                    "shared",
                    "is_default",
                    "tenant_id",
                    "project_id",
                ],
            )?;
            let spec = QosPolicySpec {
                tenant_id: attrs::project(&b, &s)?,
                name: string(&b, "name", MAX_NAME)?.unwrap_or_default(),
                description: string(&b, "description", MAX_NAME)?.unwrap_or_default(),
                shared: opt_bool(&b, "shared")?.unwrap_or(false),
                is_default: opt_bool(&b, "is_default")?.unwrap_or(false),
            };
            admin_only(&state, &headers, "create_policy")?;
            let p = run(&state, move |c| c.create_qos_policy(spec)).await?;
            Ok(ok(
                StatusCode::CREATED,
                json!({ "policy": policy_view(&p) }),
            ))
        }
        .await,
    )
}

async fn update_policy(
    State(state): State<NeutronState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    finish(
        async {
            let b = object(read_json(&state, body).await?, "policy")?;
            check_keys(&b, &["name", "description", "shared", "is_default"])?;
            let upd = QosPolicyUpdate {
                name: string(&b, "name", MAX_NAME)?,
                description: string(&b, "description", MAX_NAME)?,
                shared: opt_bool(&b, "shared")?,
                is_default: opt_bool(&b, "is_default")?,
            };
            let s = may_change(&state, &headers, "update_policy", &id).await?;
            let p = run(&state, move |c| c.update_qos_policy(&s, &id, upd)).await?;
            Ok(ok(StatusCode::OK, json!({ "policy": policy_view(&p) })))
        }
        .await,
    )
}

async fn delete_policy(
    State(state): State<NeutronState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    finish(
        async {
            let s = may_change(&state, &headers, "delete_policy", &id).await?;
            run(&state, move |c| c.delete_qos_policy(&s, &id)).await?;
            Ok(no_content())
        }
        .await,
    )
}

/// The rule type of a rules collection (`bandwidth_limit_rules`), else 404.
fn rule_kind(collection: &str) -> R<QosRuleType> {
    QosRuleType::ALL
        .into_iter()
        .find(|t| collection.strip_suffix("_rules") == Some(t.as_str()))
        .ok_or_else(NeutronError::not_found)
}

fn singular(ty: QosRuleType) -> String {
    format!("{}_rule", ty.as_str())
}

/// A non-negative integer below 2^31 (or its decimal string), as Neutron's range validator.
fn amount(b: &Map<String, Value>, key: &str) -> R<Option<u64>> {
    let Some(v) = b.get(key) else {
        return Ok(None);
    };
    let n = v
        .as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .ok_or_else(|| NeutronError::invalid_attr(key, format!("'{}' is not an integer", py(v))))?;
    if n < 0 {
        return Err(NeutronError::invalid_attr(
            key,
            format!("'{n}' is too small - must be at least '0'"),
        ));
    }
    if n > i64::from(i32::MAX) {
        return Err(NeutronError::invalid_attr(
            key,
            format!("'{n}' is too large - must be no larger than '{}'", i32::MAX),
        ));
    }
    Ok(Some(n as u64))
}

fn rule_spec(ty: QosRuleType, b: &Map<String, Value>, create: bool) -> R<QosRuleSpec> {
    let (rate, burst) = ty.keys();
    check_keys(b, &[rate, burst, "direction"])?;
    let direction = match b.get("direction") {
        None => None,
        Some(v) => Some(v.as_str().and_then(QosDirection::parse).ok_or_else(|| {
            NeutronError::invalid_attr("direction", format!("{} is not in valid_values", py(v)))
        })?),
    };
    let spec = QosRuleSpec {
        rate: amount(b, rate)?,
        burst: amount(b, burst)?,
        direction,
    };
    if create && spec.rate.is_none() {
        return Err(NeutronError::bad_request(format!(
            "Failed to parse request. Required attribute '{rate}' not specified"
        )));
    }
    Ok(spec)
}

async fn list_rules(
    State(state): State<NeutronState>,
    Path((id, rules)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    finish(
        async {
            let ty = rule_kind(&rules)?;
            let (rate, burst) = ty.keys();
            let q = query(&uri, &["id", rate, burst, "direction"], true)?;
            let s = scope(&state, &headers);
            let all = run(&state, move |c| c.qos_rules(&s, &id, ty)).await?;
            q.answer(&rules, all.iter().map(rule_view).collect())
        }
        .await,
    )
}

async fn show_rule(
    State(state): State<NeutronState>,
    Path((id, rules, rule_id)): Path<(String, String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    finish(
        async {
            let ty = rule_kind(&rules)?;
            let q = query(&uri, &[], false)?;
            let s = scope(&state, &headers);
            let r = run(&state, move |c| c.qos_rule(&s, &id, ty, &rule_id)).await?;
            Ok(ok(
                StatusCode::OK,
                json!({ singular(ty): q.project(rule_view(&r)) }),
            ))
        }
        .await,
    )
}

async fn create_rule(
    State(state): State<NeutronState>,
    Path((id, rules)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    finish(write_rule(&state, id, &rules, None, &headers, body).await)
}

async fn update_rule(
    State(state): State<NeutronState>,
    Path((id, rules, rule_id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    finish(write_rule(&state, id, &rules, Some(rule_id), &headers, body).await)
}

/// Creates a rule of policy `id` (`rule_id` `None`: 201) or changes one (200). The body is
/// checked before the caller's rights, as for policies.
async fn write_rule(
    state: &NeutronState,
    id: String,
    rules: &str,
    rule_id: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> R<Response> {
    let ty = rule_kind(rules)?;
    let b = object(read_json(state, body).await?, &singular(ty))?;
    let spec = rule_spec(ty, &b, rule_id.is_none())?;
    let verb = if rule_id.is_some() {
        "update"
    } else {
        "create"
    };
    let s = may_change(
        state,
        headers,
        &format!("{verb}_policy_{}", singular(ty)),
        &id,
    )
    .await?;
    let (status, r) = match rule_id {
        None => (
            StatusCode::CREATED,
            run(state, move |c| c.create_qos_rule(&s, &id, ty, spec)).await?,
        ),
        Some(rule_id) => (
            StatusCode::OK,
            run(state, move |c| {
                c.update_qos_rule(&s, &id, ty, &rule_id, spec)
            })
            .await?,
        ),
    };
    Ok(ok(status, json!({ singular(ty): rule_view(&r) })))
}

async fn delete_rule(
    State(state): State<NeutronState>,
    Path((id, rules, rule_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    finish(
        async {
            let ty = rule_kind(&rules)?;
            let rule = format!("delete_policy_{}", singular(ty));
            let s = may_change(&state, &headers, &rule, &id).await?;
            run(&state, move |c| c.delete_qos_rule(&s, &id, ty, &rule_id)).await?;
            Ok(no_content())
        }
        .await,
    )
}

/// The parameters a rule type takes, as `/v2.0/qos/rule-types/{type}` describes them.
fn rule_type_view(ty: QosRuleType, details: bool) -> Value {
    if !details {
        return json!({ "type": ty.as_str() });
    }
    let (rate, burst) = ty.keys();
    let range = json!({"start": 0, "end": i32::MAX});
    json!({
        "type": ty.as_str(),
        "drivers": [{
            "name": "qswitch",
            "supported_parameters": [
                {"parameter_name": rate, "parameter_type": "range", "parameter_values": range},
                {"parameter_name": burst, "parameter_type": "range", "parameter_values": range},
                {"parameter_name": "direction", "parameter_type": "choices",
                 "parameter_values": ["egress", "ingress"]},
            ],
        }],
    })
}

/// The rule types, for every caller.
async fn rule_types() -> Response {
    finish(Ok::<_, NeutronError>(()).map(|()| {
        let all: Vec<Value> = QosRuleType::ALL
            .into_iter()
            .map(|t| rule_type_view(t, false))
            .collect();
        ok(StatusCode::OK, json!({ "rule_types": all }))
    }))
}

/// A rule type's details: an admin's (Neutron's policy; the list is for every caller).
async fn rule_type(
    State(state): State<NeutronState>,
    Path(ty): Path<String>,
    headers: HeaderMap,
) -> Response {
    finish((|| {
        if !scope(&state, &headers).admin {
            return Err(NeutronError::policy("rule:get_rule_type"));
        }
        let t = QosRuleType::parse(&ty).ok_or_else(|| {
            NeutronError::new(
                StatusCode::NOT_FOUND,
                "QosRuleTypeNotFound",
                format!("QoS rule type {ty} could not be found."),
            )
        })?;
        Ok(ok(
            StatusCode::OK,
            json!({ "rule_type": rule_type_view(t, true) }),
        ))
    })())
}
