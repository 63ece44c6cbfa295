//! Tenant isolation: tenant B's requests on tenant A's ids are NotFound, on
//! every method of every path, and change nothing.

use serde_json::json;

use crate::common::*;

struct World {
    app: App,
    net: String,
    port: String,
}

async fn world() -> World {
    let app = app();
    let net = app.network("v1.1", "a", "a-net").await;
    let port = app.port("v1.1", "a", &net, "ACTIVE").await;
    app.register("v1.1", "a", "vif-a", "tap-a").await;
    assert_eq!(
        app.plug("v1.1", "a", &net, &port, "vif-a").await.code(),
        204
    );
    World { app, net, port }
}

#[tokio::test]
async fn other_tenant_gets_network_not_found_on_every_network_path() {
    let w = world().await;
    let before = w.app.fwd.count();
    for (v, code, key) in [
        ("v1.0", 420, "networkNotFound"),
        ("v1.1", 404, "NetworkNotFound"),
    ] {
        let n = format!("/{v}/tenants/b/networks/{}", w.net);
        let p = format!("{n}/ports/{}", w.port);
        let calls: Vec<(&str, String, Option<&str>)> = vec![
            ("GET", n.clone(), None),
            ("GET", format!("{n}/detail"), None),
            ("PUT", n.clone(), Some(r#"{"network": {"name": "stolen"}}"#)),
            ("DELETE", n.clone(), None),
            ("GET", format!("{n}/ports"), None),
            ("GET", format!("{n}/ports/detail"), None),
            (
                "POST",
                format!("{n}/ports"),
                Some(r#"{"port": {"state": "ACTIVE"}}"#),
            ),
            ("GET", p.clone(), None),
            ("GET", format!("{p}/detail"), None),
            ("PUT", p.clone(), Some(r#"{"port": {"state": "DOWN"}}"#)),
            ("DELETE", p.clone(), None),
            ("GET", format!("{p}/attachment"), None),
            (
                "PUT",
                format!("{p}/attachment"),
                Some(r#"{"attachment": {"id": "vif-a"}}"#),
            ),
            ("DELETE", format!("{p}/attachment"), None),
        ];
        for (m, uri, body) in calls {
            let r = match body {
                Some(b) => w.app.send(m, &uri, b).await,
                None => w.app.req(m, &uri, None, &[]).await,
            };
            assert_eq!(r.code(), code, "{m} {uri}: {r:?}");
            let j = r.json();
            let found = if v == "v1.0" {
                j[key].clone()
            } else {
                j["QuantumError"]["type"].clone()
            };
            assert!(
                !found.is_null() && (v == "v1.0" || found == key),
                "{m} {uri}: {j}"
            );
        }
    }
    // Tenant A's world is untouched and nothing was applied.
    assert_eq!(w.app.fwd.count(), before);
    let r = w
        .app
        .get(&format!("/v1.1/tenants/a/networks/{}/detail", w.net))
        .await;
    assert_eq!(
        r.json(),
        json!({"network": {"id": w.net, "name": "a-net", "op-status": "UP", "ports": [
            {"id": w.port, "state": "ACTIVE", "op-status": "DOWN", "attachment": {"id": "vif-a"}}
        ]}})
    );
}

#[tokio::test]
async fn other_tenant_lists_are_empty() {
    let w = world().await;
    for v in ["v1.0", "v1.1"] {
        assert_eq!(
            w.app.get(&format!("/{v}/tenants/b/networks")).await.json(),
            json!({"networks": []})
        );
        assert_eq!(
            w.app
                .get(&format!("/{v}/tenants/b/networks/detail"))
                .await
                .json(),
            json!({"networks": []})
        );
        assert_eq!(
            w.app
                .get(&format!("/{v}/tenants/b/interfaces"))
                .await
                .json(),
            json!({"interfaces": []})
        );
    }
}

#[tokio::test]
async fn other_tenant_gets_interface_not_found_on_the_registry() {
    let w = world().await;
    for (v, code) in [("v1.0", 404), ("v1.1", 404)] {
        let uri = format!("/{v}/tenants/b/interfaces/vif-a");
        let r = w.app.get(&uri).await;
        assert_eq!(r.code(), code);
        if v == "v1.1" {
            assert_eq!(r.json()["QuantumError"]["type"], "InterfaceNotFound");
        } else {
            assert_eq!(r.json()["interfaceNotFound"]["code"], 404);
        }
        assert_eq!(w.app.delete(&uri).await.code(), code);
        // Re-registering someone else's id is a conflict, not a takeover.
        let r = w
            .app
            .send("PUT", &uri, r#"{"interface": {"device": "tap-b"}}"#)
            .await;
        assert_eq!(r.code(), 409, "{r:?}");
    }
    assert_eq!(
        w.app.control.interface("a", "vif-a").unwrap().device,
        "tap-a"
    );
}

#[tokio::test]
async fn same_network_id_under_another_tenant_cannot_get_ports() {
    let w = world().await;
    let b_net = w.app.network("v1.1", "b", "b-net").await;
    // B's network exists, but A's port id is not on it.
    let r = w
        .app
        .get(&format!(
            "/v1.1/tenants/b/networks/{b_net}/ports/{}",
            w.port
        ))
        .await;
    assert_eq!(r.code(), 404);
    assert_eq!(r.json()["QuantumError"]["type"], "PortNotFound");
}
