//! Neutron QoS policies and rules over HTTP: admins write, projects read their own and the shared
//! policies, rule types, errors with Neutron's types, `qos_policy_id` on networks and ports.

use serde_json::{json, Value};

use crate::common::*;

fn body(r: &Resp) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {r:?}"))
}

fn kind(r: &Resp) -> String {
    body(r)["NeutronError"]["type"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// A member of project `p` (not an admin).
async fn as_member(app: &App, method: &str, uri: &str, b: Option<Value>, p: &str) -> Resp {
    let text = b.map(|v| v.to_string());
    app.req(
        method,
        uri,
        text.as_deref(),
        &[
            ("content-type", "application/json"),
            ("x-project-id", p),
            ("x-roles", "member"),
        ],
    )
    .await
}

#[tokio::test]
async fn policies_and_rules_follow_neutrons_routes_and_errors() {
    let app = app();
    let r = app
        .send(
            "POST",
            "/v2.0/qos/policies",
            &json!({"policy": {"name": "gold", "project_id": "p1"}}).to_string(),
        )
        .await;
    assert_eq!(r.code(), 201, "{r:?}");
    let p = body(&r)["policy"].clone();
    assert_eq!(
        (p["rules"].clone(), p["is_default"].clone()),
        (json!([]), json!(false))
    );
    let id = p["id"].as_str().unwrap().to_owned();
    let rules = format!("/v2.0/qos/policies/{id}/bandwidth_limit_rules");
    let r = app
        .send(
            "POST",
            &rules,
            r#"{"bandwidth_limit_rule": {"max_kbps": 100}}"#,
        )
        .await;
    assert_eq!(r.code(), 201, "{r:?}");
    let rule = body(&r)["bandwidth_limit_rule"].clone();
    assert_eq!(rule["direction"], "egress");
    assert_eq!(rule["max_burst_kbps"], 0);
    let rule_id = rule["id"].as_str().unwrap();
    for (b, code, k) in [
        (
            r#"{"bandwidth_limit_rule": {"max_kbps": 5}}"#,
            409,
            "QoSRulesConflict",
        ),
        (
            r#"{"bandwidth_limit_rule": {"max_kbps": "x"}}"#,
            400,
            "HTTPBadRequest",
        ),
        (
            r#"{"bandwidth_limit_rule": {"max_kbps": 2147483648}}"#,
            400,
            "HTTPBadRequest",
        ),
        (
            r#"{"bandwidth_limit_rule": {"max_burst_kbps": 5}}"#,
            400,
            "HTTPBadRequest",
        ),
        (
            r#"{"bandwidth_limit_rule": {"max_kpps": 5}}"#,
            400,
            "HTTPBadRequest",
        ),
    ] {
        let r = app.send("POST", &rules, b).await;
        assert_eq!((r.code(), kind(&r).as_str()), (code, k), "{b}: {r:?}");
    }
    let r = app
        .send(
            "PUT",
            &format!("{rules}/{rule_id}"),
            r#"{"bandwidth_limit_rule": {"direction": "ingress", "max_kbps": 7}}"#,
        )
        .await;
    assert_eq!(body(&r)["bandwidth_limit_rule"]["max_kbps"], 7, "{r:?}");
    let r = app.get(&format!("/v2.0/qos/policies/{id}")).await;
    let shown = body(&r)["policy"]["rules"][0].clone();
    assert_eq!(
        (
            shown["type"].clone(),
            shown["qos_policy_id"].clone(),
            shown["direction"].clone()
        ),
        (json!("bandwidth_limit"), json!(id), json!("ingress"))
    );
    let r = app
        .get(&format!("/v2.0/qos/policies/{id}/nothing_rules"))
        .await;
    assert_eq!(r.code(), 404);
    let r = app.get("/v2.0/qos/rule-types").await;
    assert_eq!(
        body(&r)["rule_types"],
        json!([{"type": "bandwidth_limit"}, {"type": "packet_rate_limit"}])
    );
    let r = app.get("/v2.0/qos/rule-types/packet_rate_limit").await;
    assert_eq!(body(&r)["rule_type"]["drivers"][0]["name"], "qswitch");
    assert_eq!(
        kind(&app.get("/v2.0/qos/rule-types/dscp_marking").await),
        "QosRuleTypeNotFound"
    );
    let r = app.get("/v2.0/qos/policies?name=gold&fields=id").await;
    assert_eq!(body(&r)["policies"], json!([{"id": id}]));
    let r = app.get("/v2.0/qos/policies?colour=red").await;
    assert_eq!(r.code(), 400);
    // Members read their own and the shared policies, and write nothing.
    let r = as_member(&app, "GET", "/v2.0/qos/policies", None, "p2").await;
    assert_eq!(body(&r)["policies"], json!([]));
    let r = as_member(
        &app,
        "POST",
        "/v2.0/qos/policies",
        Some(json!({"policy": {}})),
        "p1",
    )
    .await;
    assert_eq!((r.code(), kind(&r).as_str()), (403, "PolicyNotAuthorized"));
    let r = as_member(&app, "DELETE", &format!("{rules}/{rule_id}"), None, "p1").await;
    assert_eq!(r.code(), 403);
    let r = as_member(&app, "GET", &format!("/v2.0/qos/policies/{id}"), None, "p1").await;
    assert_eq!(r.code(), 200);
    // On a network of p1; not deletable while it is there.
    let r = app
        .send(
            "POST",
            "/v2.0/networks",
            &json!({"network": {"project_id": "p1", "qos_policy_id": id}}).to_string(),
        )
        .await;
    assert_eq!(body(&r)["network"]["qos_policy_id"], json!(id), "{r:?}");
    let net = body(&r)["network"]["id"].as_str().unwrap().to_owned();
    let r = as_member(
        &app,
        "POST",
        "/v2.0/ports",
        Some(json!({"port": {"network_id": net}})),
        "p1",
    )
    .await;
    let port = body(&r)["port"].clone();
    assert_eq!(
        (
            port["qos_policy_id"].clone(),
            port["qos_network_policy_id"].clone()
        ),
        (Value::Null, json!(id)),
        "{r:?}"
    );
    let r = app.delete(&format!("/v2.0/qos/policies/{id}")).await;
    assert_eq!((r.code(), kind(&r).as_str()), (409, "QosPolicyInUse"));
    // p2 cannot put p1's policy on its port.
    let r = app
        .send(
            "POST",
            "/v2.0/networks",
            &json!({"network": {"project_id": "p2"}}).to_string(),
        )
        .await;
    let net2 = body(&r)["network"]["id"].as_str().unwrap().to_owned();
    let p2_port = || {
        let b = json!({"port": {"network_id": net2, "qos_policy_id": id}});
        as_member(&app, "POST", "/v2.0/ports", Some(b), "p2")
    };
    let r = p2_port().await;
    assert_eq!((r.code(), kind(&r).as_str()), (404, "QosPolicyNotFound"));
    // Shared, p2 uses it; then it cannot be unshared.
    let r = app
        .send(
            "PUT",
            &format!("/v2.0/qos/policies/{id}"),
            r#"{"policy": {"shared": true}}"#,
        )
        .await;
    assert_eq!(r.code(), 200);
    let r = p2_port().await;
    assert_eq!(r.code(), 201, "{r:?}");
    let r = app
        .send(
            "PUT",
            &format!("/v2.0/qos/policies/{id}"),
            r#"{"policy": {"shared": false}}"#,
        )
        .await;
    assert_eq!((r.code(), kind(&r).as_str()), (409, "RbacPolicyInUse"));
    // Every caller lists rule types; their details are admins'.
    let r = as_member(&app, "GET", "/v2.0/qos/rule-types", None, "p1").await;
    assert_eq!(r.code(), 200);
    let r = as_member(
        &app,
        "GET",
        "/v2.0/qos/rule-types/bandwidth_limit",
        None,
        "p1",
    )
    .await;
    assert_eq!(r.code(), 403);
    // A bad body is 400 for a member too (checked before the rights).
    let long = "x".repeat(256);
    let r = as_member(
        &app,
        "POST",
        "/v2.0/qos/policies",
        Some(json!({"policy": {"name": long}})),
        "p1",
    )
    .await;
    assert_eq!(r.code(), 400);
    // A project manager writes its own project's policies, not another's.
    let manager = |method: &'static str, uri: String, b: Value| {
        let app = &app;
        async move {
            app.req(
                method,
                &uri,
                Some(&b.to_string()),
                &[
                    ("content-type", "application/json"),
                    ("x-project-id", "p2"),
                    ("x-roles", "member,manager"),
                ],
            )
            .await
        }
    };
    let r = manager(
        "POST",
        "/v2.0/qos/policies".into(),
        json!({"policy": {"name": "m"}}),
    )
    .await;
    assert_eq!(r.code(), 201, "{r:?}");
    let r = manager(
        "PUT",
        format!("/v2.0/qos/policies/{id}"),
        json!({"policy": {"name": "taken"}}),
    )
    .await;
    assert_eq!((r.code(), kind(&r).as_str()), (404, "QosPolicyNotFound"));
    let r = app
        .get("/v2.0/qos/policies?limit=1&sort_key=name&sort_dir=asc")
        .await;
    assert_eq!(r.code(), 200);
}
