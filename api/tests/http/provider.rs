//! The Quantum v1.1 `provider` extension: admins map a network onto a segment of a physical
//! network; only admins set and see the attributes; v1.0 bodies stay as they were.

use serde_json::{json, Value};

use crate::auth::{call, token_app, A, ADMIN};
use crate::common::*;

const NETS: &str = "/v1.1/tenants/a/networks";

async fn create(app: &App, token: &str, body: Value) -> Resp {
    call(app, token, "POST", NETS, Some(&body.to_string())).await
}

fn id_of(r: &Resp) -> String {
    r.json()["network"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn admins_create_provider_networks_and_alone_see_their_segments() {
    let app = token_app();
    let r = create(
        &app,
        ADMIN,
        json!({"network": {"name": "dc", "provider:network_type": "vlan",
            "provider:physical_network": "physnet1", "provider:segmentation_id": 200}}),
    )
    .await;
    assert_eq!(r.code(), 202, "{r:?}");
    let dc = id_of(&r);
    let r = call(&app, ADMIN, "GET", &format!("{NETS}/{dc}"), None).await;
    assert_eq!(
        r.json()["network"],
        json!({"id": dc, "name": "dc", "op-status": "UP", "provider:network_type": "vlan",
            "provider:physical_network": "physnet1", "provider:segmentation_id": 200})
    );
    // The owner is no admin: the core view only.
    let r = call(&app, A, "GET", &format!("{NETS}/{dc}"), None).await;
    assert_eq!(
        r.json()["network"],
        json!({"id": dc, "name": "dc", "op-status": "UP"})
    );
    // Detail lists carry them too, for admins.
    let r = call(&app, ADMIN, "GET", &format!("{NETS}/detail"), None).await;
    assert_eq!(r.json()["networks"][0]["provider:segmentation_id"], 200);
    let r = call(&app, ADMIN, "GET", &format!("{NETS}/{dc}/detail"), None).await;
    assert_eq!(r.json()["network"]["provider:network_type"], "vlan");

    // Flat and local; a tenant network shows the VLAN it was given.
    let r = create(
        &app,
        ADMIN,
        json!({"network": {"name": "f", "provider:network_type": "flat",
            "provider:physical_network": "physnet1"}}),
    )
    .await;
    assert_eq!(r.code(), 202, "{r:?}");
    let r = call(&app, ADMIN, "GET", &format!("{NETS}/{}", id_of(&r)), None).await;
    assert_eq!(r.json()["network"]["provider:segmentation_id"], Value::Null);
    let r = create(
        &app,
        ADMIN,
        json!({"network": {"name": "l", "provider:network_type": "local"}}),
    )
    .await;
    let r = call(&app, ADMIN, "GET", &format!("{NETS}/{}", id_of(&r)), None).await;
    assert_eq!(
        r.json()["network"]["provider:physical_network"],
        Value::Null
    );
    let r = create(&app, A, json!({"network": {"name": "t"}})).await;
    assert_eq!(r.code(), 202);
    let r = call(&app, ADMIN, "GET", &format!("{NETS}/{}", id_of(&r)), None).await;
    assert_eq!(r.json()["network"]["provider:network_type"], "vlan");
    assert_eq!(r.json()["network"]["provider:segmentation_id"], 1);
}

#[tokio::test]
async fn provider_attributes_are_refused_to_tenants_and_checked_for_admins() {
    let app = token_app();
    let body = json!({"network": {"name": "x", "provider:network_type": "vlan"}});
    let r = create(&app, A, body).await;
    assert_eq!(r.code(), 403, "{r:?}");
    assert!(r.body.contains("admins only"), "{}", r.body);

    let cases = [
        (
            json!({"provider:network_type": "gre"}),
            400,
            "not supported",
        ),
        (
            json!({"provider:network_type": "vlan", "provider:physical_network": "nope"}),
            400,
            "unknown",
        ),
        (
            json!({"provider:network_type": "vlan", "provider:physical_network": "physnet1",
                "provider:segmentation_id": 4095}),
            400,
            "out of range",
        ),
        (
            json!({"provider:network_type": "vlan", "provider:segmentation_id": "x"}),
            400,
            "is not an integer",
        ),
        (
            json!({"provider:network_type": "local", "provider:physical_network": "physnet1"}),
            400,
            "prohibited",
        ),
    ];
    for (attrs, code, text) in cases {
        let mut net = attrs.as_object().unwrap().clone();
        net.insert("name".into(), "x".into());
        let r = create(&app, ADMIN, json!({ "network": net })).await;
        assert_eq!(r.code(), code, "{attrs}: {r:?}");
        assert!(r.body.contains(text), "{attrs}: {}", r.body);
    }
    // A segment in use is a conflict; nothing was created by the refusals.
    let seg = json!({"network": {"name": "s", "provider:network_type": "vlan",
        "provider:physical_network": "physnet1", "provider:segmentation_id": 7}});
    assert_eq!(create(&app, ADMIN, seg.clone()).await.code(), 202);
    let r = create(&app, ADMIN, seg).await;
    assert_eq!(r.code(), 409, "{r:?}");
    assert!(r.body.contains("VLAN 7"), "{}", r.body);
    let r = call(&app, ADMIN, "GET", NETS, None).await;
    assert_eq!(r.json()["networks"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_extension_is_listed_xml_carries_its_namespace_and_v10_ignores_it() {
    let app = token_app();
    let r = call(&app, A, "GET", "/v1.1/extensions/provider", None).await;
    assert_eq!(r.code(), 200, "{r:?}");
    assert_eq!(r.json()["alias"], "provider");

    let body = r#"<network xmlns="http://openstack.org/quantum/api/v1.1" xmlns:provider="http://docs.openstack.org/ext/provider/api/v1.0" name="x"><provider:network_type>vlan</provider:network_type><provider:physical_network>physnet1</provider:physical_network><provider:segmentation_id>42</provider:segmentation_id></network>"#;
    let h = [
        ("content-type", "application/xml"),
        ("accept", "application/xml"),
        ("x-auth-token", ADMIN),
    ];
    let r = app.req("POST", NETS, Some(body), &h).await;
    assert_eq!(r.code(), 202, "{r:?}");
    let id = r
        .body
        .split("id=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let r = app.req("GET", &format!("{NETS}/{id}"), None, &h).await;
    assert!(
        r.body
            .contains(r#"xmlns:provider="http://docs.openstack.org/ext/provider/api/v1.0""#)
            && r.body
                .contains("<provider:segmentation_id>42</provider:segmentation_id>"),
        "{}",
        r.body
    );

    // v1.0 bodies are as they were: the attributes are ignored, never shown.
    let v10 = "/v1.0/tenants/a/networks";
    let body = json!({"network": {"name": "old", "provider:network_type": "local"}});
    let r = call(&app, ADMIN, "POST", v10, Some(&body.to_string())).await;
    assert_eq!(r.code(), 200, "{r:?}");
    let id = id_of(&r);
    let r = call(&app, ADMIN, "GET", &format!("{v10}/{id}"), None).await;
    assert_eq!(r.json()["network"], json!({"id": id, "name": "old"}));
    let r = call(&app, ADMIN, "GET", &format!("{NETS}/{id}"), None).await;
    assert_eq!(r.json()["network"]["provider:network_type"], "vlan");
}

#[tokio::test]
async fn noauth_trusts_the_caller_and_keeps_the_core_views() {
    let app = app();
    let r = app
        .send(
            "POST",
            "/v1.1/tenants/t/networks",
            &json!({"network": {"name": "f", "provider:network_type": "flat",
                "provider:physical_network": "physnet1"}})
            .to_string(),
        )
        .await;
    assert_eq!(r.code(), 202, "{r:?}");
    let id = id_of(&r);
    let r = app.get(&format!("/v1.1/tenants/t/networks/{id}")).await;
    assert_eq!(
        r.json()["network"],
        json!({"id": id, "name": "f", "op-status": "UP"})
    );
    // The Neutron face (noauth: admin) shows the same network's segment.
    let r = app.get(&format!("/v2.0/networks/{id}")).await;
    assert_eq!(r.json_full()["network"]["provider:network_type"], "flat");
}
