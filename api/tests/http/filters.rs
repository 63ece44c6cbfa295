//! The list filters of spec section 3.

use serde_json::{json, Value};

use crate::common::*;

fn ids(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

struct Fixture {
    app: App,
    plugged: String,
    empty: String,
    other: String,
    p_active: String,
    p_down: String,
}

/// `plugged` has an ACTIVE port with vif-1 (forwarding) and a DOWN port;
/// `empty` has no ports; `other` has one DOWN unplugged port.
async fn fixture() -> Fixture {
    let app = app();
    let plugged = app.network("v1.1", "t", "web").await;
    let empty = app.network("v1.1", "t", "db").await;
    let other = app.network("v1.1", "t", "web").await;
    let p_active = app.port("v1.1", "t", &plugged, "ACTIVE").await;
    let p_down = app.port("v1.1", "t", &plugged, "DOWN").await;
    app.port("v1.1", "t", &other, "DOWN").await;
    app.register("v1.1", "t", "vif-1", "tap1").await;
    app.plug("v1.1", "t", &plugged, &p_active, "vif-1").await;
    app.port_up(&p_active);
    Fixture {
        app,
        plugged,
        empty,
        other,
        p_active,
        p_down,
    }
}

#[tokio::test]
async fn network_filters_match_exactly_and_combine_with_and() {
    let f = fixture().await;
    let q = |query: &str| {
        let app = &f.app;
        let query = query.to_owned();
        async move {
            ids(
                &app.get(&format!("/v1.1/tenants/t/networks?{query}"))
                    .await
                    .json(),
                "networks",
            )
        }
    };
    assert_eq!(
        q("name=web").await,
        vec![f.plugged.clone(), f.other.clone()]
    );
    assert_eq!(q("name=WEB").await, Vec::<String>::new());
    assert_eq!(q("op-status=UP").await.len(), 3);
    assert_eq!(q("port-op-status=UP").await, vec![f.plugged.clone()]);
    assert_eq!(
        q("port-state=DOWN").await,
        vec![f.plugged.clone(), f.other.clone()]
    );
    assert_eq!(q("has-attachment=true").await, vec![f.plugged.clone()]);
    assert_eq!(q("has-attachment=True").await, vec![f.plugged.clone()]);
    assert_eq!(
        q("has-attachment=false").await,
        vec![f.empty.clone(), f.other.clone()]
    );
    assert_eq!(q("attachment=vif-1").await, vec![f.plugged.clone()]);
    assert_eq!(
        q(&format!("port={}", f.p_down)).await,
        vec![f.plugged.clone()]
    );
    assert_eq!(
        q("name=web&has-attachment=false").await,
        vec![f.other.clone()]
    );
    assert_eq!(q("name=db&port-state=DOWN").await, Vec::<String>::new());
    // The last of repeated values wins.
    assert_eq!(q("name=web&name=db").await, vec![f.empty.clone()]);
}

#[tokio::test]
async fn filters_apply_to_detail_lists_too() {
    let f = fixture().await;
    let r = f.app.get("/v1.1/tenants/t/networks/detail?name=db").await;
    assert_eq!(
        r.json(),
        json!({"networks": [{"id": f.empty, "name": "db", "op-status": "UP"}]})
    );
    let r = f
        .app
        .get(&format!(
            "/v1.1/tenants/t/networks/{}/ports/detail?state=ACTIVE",
            f.plugged
        ))
        .await;
    assert_eq!(
        r.json(),
        json!({"ports": [{"id": f.p_active, "state": "ACTIVE", "op-status": "UP"}]})
    );
}

#[tokio::test]
async fn port_filters_match_state_op_status_and_attachment() {
    let f = fixture().await;
    let q = |query: &str| {
        let app = &f.app;
        let uri = format!("/v1.1/tenants/t/networks/{}/ports?{query}", f.plugged);
        async move { ids(&app.get(&uri).await.json(), "ports") }
    };
    assert_eq!(q("state=ACTIVE").await, vec![f.p_active.clone()]);
    assert_eq!(q("state=DOWN").await, vec![f.p_down.clone()]);
    assert_eq!(q("op-status=UP").await, vec![f.p_active.clone()]);
    assert_eq!(q("op-status=DOWN").await, vec![f.p_down.clone()]);
    assert_eq!(q("has-attachment=true").await, vec![f.p_active.clone()]);
    assert_eq!(q("has-attachment=no").await, vec![f.p_down.clone()]);
    assert_eq!(q("attachment=vif-1").await, vec![f.p_active.clone()]);
    assert_eq!(q("attachment=vif-1&state=DOWN").await, Vec::<String>::new());
}

#[tokio::test]
async fn unknown_filter_is_400_in_v11() {
    let f = fixture().await;
    let r = f.app.get("/v1.1/tenants/t/networks?colour=red").await;
    assert_eq!(r.code(), 400);
    assert_eq!(r.json()["QuantumError"]["type"], "QuantumServiceFault");
    assert_eq!(
        r.json()["QuantumError"]["detail"],
        "Unknown filter 'colour' on networks; valid filters are: name, op-status, port-op-status, port-state, has-attachment, attachment, port"
    );
    let r = f
        .app
        .get(&format!(
            "/v1.1/tenants/t/networks/{}/ports?name=x",
            f.plugged
        ))
        .await;
    assert_eq!(r.code(), 400);
}

#[tokio::test]
async fn v10_keeps_the_original_filter_quirks() {
    let f = fixture().await;
    // Filters work in v1.0 too.
    let r = f.app.get("/v1.0/tenants/t/networks?name=db").await;
    assert_eq!(ids(&r.json(), "networks"), vec![f.empty.clone()]);
    // Only unknown keys: nothing matches.
    let r = f.app.get("/v1.0/tenants/t/networks?colour=red").await;
    assert_eq!(r.code(), 200);
    assert_eq!(r.json(), json!({"networks": []}));
    // Unknown keys next to known ones are ignored.
    let r = f
        .app
        .get("/v1.0/tenants/t/networks?colour=red&name=db")
        .await;
    assert_eq!(ids(&r.json(), "networks"), vec![f.empty.clone()]);
    let r = f
        .app
        .get(&format!("/v1.0/tenants/t/networks/{}/ports?x=y", f.plugged))
        .await;
    assert_eq!(r.json(), json!({"ports": []}));
}

#[tokio::test]
async fn filters_on_a_missing_network_give_network_not_found() {
    let f = fixture().await;
    let r = f
        .app
        .get("/v1.1/tenants/t/networks/nope/ports?bogus=1")
        .await;
    assert_eq!(r.code(), 404);
    assert_eq!(r.json()["QuantumError"]["type"], "NetworkNotFound");
}
