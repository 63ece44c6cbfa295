//! Token mode: 401 without a valid token, tenant isolation for every method
//! on every path, roles for interfaces and the MAC table.

use std::sync::Arc;

use serde_json::Value;

use crate::common::*;

pub(crate) const ADMIN: &str = "tok-admin";
pub(crate) const A: &str = "tok-a";
const B: &str = "tok-b";
const HYPERVISOR: &str = "tok-hyp";

fn tokens() -> api::Tokens {
    use api::{Principal, Role};
    let mut t = api::Tokens::new();
    let p = |tenant: &str, roles: &[Role]| Principal {
        tenant: tenant.into(),
        roles: roles.to_vec(),
    };
    t.insert_token(ADMIN, p("ops", &[Role::Admin])).unwrap();
    t.insert_token(A, p("a", &[Role::Member])).unwrap();
    t.insert_token(B, p("b", &[Role::Member])).unwrap();
    t.insert_token(HYPERVISOR, p("svc", &[Role::Hypervisor]))
        .unwrap();
    t
}

pub(crate) fn token_app() -> App {
    app_with(
        control::ControlOptions::default(),
        api::ApiOptions {
            auth: api::Auth::Token(Arc::new(tokens())),
            ..Default::default()
        },
    )
}

pub(crate) async fn call(
    app: &App,
    token: &str,
    method: &str,
    uri: &str,
    body: Option<&str>,
) -> Resp {
    let mut h = vec![("content-type", "application/json")];
    if !token.is_empty() {
        h.push(("x-auth-token", token));
    }
    app.req(method, uri, body, &h).await
}

async fn ok_json(app: &App, token: &str, method: &str, uri: &str, body: &str) -> Value {
    let r = call(app, token, method, uri, Some(body)).await;
    assert!(r.status.is_success(), "{method} {uri}: {r:?}");
    r.json()
}

#[tokio::test]
async fn missing_or_unknown_tokens_are_401_with_the_versions_fault_body() {
    let app = token_app();
    for token in ["", "not-a-token", "tok-a "] {
        let r = call(&app, token, "GET", "/v1.1/tenants/a/networks", None).await;
        if token == "tok-a " {
            // Surrounding whitespace is not part of a token.
            assert_eq!(r.code(), 200, "{r:?}");
            continue;
        }
        assert_eq!(r.code(), 401, "{r:?}");
        assert_eq!(r.json()["QuantumError"]["type"], "Unauthorized");
        let r = call(&app, token, "POST", "/v1.0/tenants/a/networks", Some("{}")).await;
        assert_eq!(r.code(), 401);
        assert_eq!(r.json()["unauthorized"]["code"], 401);
        let r = call(&app, token, "GET", "/v1.1/extensions.xml", None).await;
        assert_eq!(r.code(), 401);
        assert!(r.body.starts_with("<QuantumError"), "{}", r.body);
    }
    // The versions document needs no token.
    assert_eq!(call(&app, "", "GET", "/", None).await.code(), 200);
}

struct World {
    app: App,
    net: String,
    port: String,
}

/// Tenant a with a network, a plugged port (interface registered by the
/// hypervisor) and a QoS limit.
async fn world() -> World {
    let app = token_app();
    let net = ok_json(
        &app,
        A,
        "POST",
        "/v1.1/tenants/a/networks",
        r#"{"network": {"name": "a-net"}}"#,
    )
    .await["network"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let port = ok_json(
        &app,
        A,
        "POST",
        &format!("/v1.1/tenants/a/networks/{net}/ports"),
        r#"{"port": {"state": "ACTIVE"}}"#,
    )
    .await["port"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = call(
        &app,
        A,
        "PUT",
        "/v1.1/tenants/a/interfaces/vif-a",
        Some(r#"{"interface": {"device": "tap-a"}}"#),
    )
    .await;
    assert_eq!(r.code(), 403, "members do not register interfaces");
    assert_eq!(r.json()["QuantumError"]["type"], "Forbidden");
    ok_json(
        &app,
        HYPERVISOR,
        "PUT",
        "/v1.1/tenants/a/interfaces/vif-a",
        r#"{"interface": {"device": "tap-a"}}"#,
    )
    .await;
    let r = call(
        &app,
        A,
        "PUT",
        &format!("/v1.1/tenants/a/networks/{net}/ports/{port}/attachment"),
        Some(r#"{"attachment": {"id": "vif-a"}}"#),
    )
    .await;
    assert_eq!(r.code(), 204, "{r:?}");
    ok_json(
        &app,
        A,
        "PUT",
        &format!("/v1.1/tenants/a/networks/{net}/ports/{port}/qos"),
        r#"{"qos": {"rate_pps": 100}}"#,
    )
    .await;
    World { app, net, port }
}

#[tokio::test]
async fn another_tenant_gets_404_for_every_method_on_every_path() {
    let w = world().await;
    let before = w.app.control.desired_state().unwrap();
    let usage = w.app.control.usage("a").unwrap();
    for v in ["v1.0", "v1.1"] {
        let t = format!("/{v}/tenants/a");
        let n = format!("{t}/networks/{}", w.net);
        let p = format!("{n}/ports/{}", w.port);
        let paths = [
            (format!("{t}/networks"), "collection"),
            (format!("{t}/networks/detail"), "collection"),
            (n.clone(), "network"),
            (format!("{n}/detail"), "network"),
            (format!("{n}/ports"), "network"),
            (format!("{n}/ports/detail"), "network"),
            (format!("{n}/mac_table"), "network"),
            (p.clone(), "network"),
            (format!("{p}/detail"), "network"),
            (format!("{p}/attachment"), "network"),
            (format!("{p}/qos"), "network"),
            (format!("{p}/stats"), "network"),
            (format!("{p}/connections"), "network"),
            (format!("{t}/interfaces"), "collection"),
            (format!("{t}/interfaces/vif-a"), "interface"),
            (format!("{t}/limits"), "collection"),
        ];
        for (path, kind) in &paths {
            for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
                let body = r#"{"network": {"name": "x"}, "port": {"state": "DOWN"}}"#;
                let r = call(&w.app, B, method, path, Some(body)).await;
                let (code, key) = match (v, *kind) {
                    ("v1.0", "network") => (420, "networkNotFound"),
                    ("v1.1", "network") => (404, "NetworkNotFound"),
                    ("v1.0", "interface") => (404, "interfaceNotFound"),
                    ("v1.1", "interface") => (404, "InterfaceNotFound"),
                    _ => (404, ""),
                };
                assert_eq!(r.code(), code, "{method} {path}: {r:?}");
                let j = r.json();
                if v == "v1.1" && !key.is_empty() {
                    assert_eq!(j["QuantumError"]["type"], key, "{method} {path}");
                } else if !key.is_empty() {
                    assert!(j.get(key).is_some(), "{method} {path}: {j}");
                }
            }
        }
    }
    // Nothing of tenant a changed.
    assert_eq!(w.app.control.desired_state().unwrap(), before);
    assert_eq!(w.app.control.usage("a").unwrap(), usage);
    // Tenant a itself, and an admin, still see everything.
    for token in [A, ADMIN] {
        let r = call(
            &w.app,
            token,
            "GET",
            &format!("/v1.1/tenants/a/networks/{}/detail", w.net),
            None,
        )
        .await;
        assert_eq!(r.code(), 200);
        assert_eq!(r.json()["network"]["ports"][0]["attachment"]["id"], "vif-a");
    }
}

#[tokio::test]
async fn admins_read_every_tenant_and_alone_read_mac_tables() {
    let w = world().await;
    let uri = format!("/v1.1/tenants/a/networks/{}/mac_table", w.net);
    let r = call(&w.app, A, "GET", &uri, None).await;
    assert_eq!(r.code(), 403);
    assert_eq!(r.json()["QuantumError"]["type"], "Forbidden");
    let r = call(&w.app, ADMIN, "GET", &uri, None).await;
    assert_eq!(r.code(), 200, "{r:?}");
    // So are a port's tracked connections.
    let conns = format!(
        "/v1.1/tenants/a/networks/{}/ports/{}/connections",
        w.net, w.port
    );
    let r = call(&w.app, A, "GET", &conns, None).await;
    assert_eq!(r.code(), 403);
    assert_eq!(r.json()["QuantumError"]["type"], "Forbidden");
    let r = call(&w.app, ADMIN, "GET", &conns, None).await;
    assert_eq!(r.code(), 200, "{r:?}");
    let r = call(&w.app, ADMIN, "GET", "/v1.1/tenants/a/networks", None).await;
    assert_eq!(r.json()["networks"].as_array().unwrap().len(), 1);
    // The hypervisor role opens interfaces of any tenant, nothing else.
    let r = call(
        &w.app,
        HYPERVISOR,
        "GET",
        "/v1.1/tenants/a/interfaces",
        None,
    )
    .await;
    assert_eq!(r.code(), 200);
    let r = call(&w.app, HYPERVISOR, "GET", "/v1.1/tenants/a/networks", None).await;
    assert_eq!(r.code(), 404);
    // A member may read, not change, its interfaces.
    let r = call(&w.app, A, "GET", "/v1.1/tenants/a/interfaces/vif-a", None).await;
    assert_eq!(r.code(), 200);
    let r = call(
        &w.app,
        A,
        "DELETE",
        "/v1.1/tenants/a/interfaces/vif-a",
        None,
    )
    .await;
    assert_eq!(r.code(), 403);
}

#[tokio::test]
async fn neutron_v2_takes_the_project_and_roles_from_the_token() {
    let app = token_app();
    let r = call(&app, "", "GET", "/v2.0/networks", None).await;
    assert_eq!(r.code(), 401);
    assert_eq!(r.json()["error"]["code"], 401);
    let r = call(&app, "nope", "GET", "/v2.0/networks", None).await;
    assert_eq!(r.code(), 401);
    // Tenant a's network, made through v2.0 with a's token.
    let r = call(
        &app,
        A,
        "POST",
        "/v2.0/networks",
        Some(r#"{"network": {"name": "a-v2"}}"#),
    )
    .await;
    assert_eq!(r.code(), 201, "{r:?}");
    assert_eq!(r.json()["network"]["project_id"], "a");
    let id = r.json()["network"]["id"].as_str().unwrap().to_owned();
    // Tenant b cannot claim a's project or the admin role with headers.
    let spoofed = [
        ("content-type", "application/json"),
        ("x-auth-token", B),
        ("x-project-id", "a"),
        ("x-roles", "admin"),
    ];
    let r = app.req("GET", "/v2.0/networks", None, &spoofed).await;
    assert_eq!(r.code(), 200);
    assert_eq!(r.json()["networks"], serde_json::json!([]), "{r:?}");
    let r = app
        .req("DELETE", &format!("/v2.0/networks/{id}"), None, &spoofed)
        .await;
    assert_eq!(r.code(), 404, "{r:?}");
    // An admin token sees it.
    let r = call(&app, ADMIN, "GET", &format!("/v2.0/networks/{id}"), None).await;
    assert_eq!(r.code(), 200, "{r:?}");
    // And the Quantum view of tenant a has it too.
    let r = call(&app, A, "GET", "/v1.1/tenants/a/networks", None).await;
    assert_eq!(r.json()["networks"][0]["id"], id.as_str());
}
