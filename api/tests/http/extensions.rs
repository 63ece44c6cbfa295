//! The QoS, port statistics and MAC table extensions over a recording
//! forwarder: what reaches the data plane, what the forwarder reports, and
//! the faults of bad requests.

use control::{MacEntry, PortStatistics, QosLimit};
use serde_json::json;

use crate::common::*;

struct Plugged {
    app: App,
    net: String,
    port: String,
}

async fn plugged(v: &str) -> Plugged {
    let app = app();
    let net = app.network(v, "t", "n").await;
    let port = app.port(v, "t", &net, "ACTIVE").await;
    app.register(v, "t", "vif", "tap0").await;
    assert_eq!(app.plug(v, "t", &net, &port, "vif").await.code(), 204);
    Plugged { app, net, port }
}

#[tokio::test]
async fn qos_is_stored_and_reaches_the_data_plane_live() {
    for v in ["v1.0", "v1.1"] {
        let w = plugged(v).await;
        let uri = format!("/{v}/tenants/t/networks/{}/ports/{}/qos", w.net, w.port);
        assert_eq!(w.app.get(&uri).await.json(), json!({"qos": {}}));
        assert_eq!(w.app.fwd.last().ports[0].qos, None);
        let r = w
            .app
            .send(
                "PUT",
                &uri,
                r#"{"qos": {"rate_pps": 500, "burst_packets": 50}}"#,
            )
            .await;
        assert_eq!(r.code(), 200, "{r:?}");
        let want =
            json!({"qos": {"rate_bps": 0, "burst_bits": 0, "rate_pps": 500, "burst_packets": 50}});
        assert_eq!(r.json(), want);
        assert_eq!(w.app.get(&uri).await.json(), want);
        assert_eq!(
            w.app.fwd.last().ports[0].qos,
            Some(QosLimit {
                rate_pps: 500,
                burst_packets: 50,
                ..Default::default()
            })
        );
        // A change replaces the whole limit and is applied at once.
        let r = w
            .app
            .send_xml("PUT", &uri, r#"<qos rate_bps="1000000"/>"#)
            .await;
        assert_eq!(r.code(), 200, "{r:?}");
        assert!(r.body.contains("rate_bps=\"1000000\""), "{}", r.body);
        assert_eq!(w.app.fwd.last().ports[0].qos.unwrap().rate_bps, 1_000_000);
        assert_eq!(w.app.fwd.last().ports[0].qos.unwrap().rate_pps, 0);
        // The limit survives unplug and replug (it belongs to the port).
        let att = format!(
            "/{v}/tenants/t/networks/{}/ports/{}/attachment",
            w.net, w.port
        );
        assert_eq!(w.app.delete(&att).await.code(), 204);
        assert!(w.app.fwd.last().ports.is_empty());
        assert_eq!(w.app.plug(v, "t", &w.net, &w.port, "vif").await.code(), 204);
        assert_eq!(w.app.fwd.last().ports[0].qos.unwrap().rate_bps, 1_000_000);
        assert_eq!(w.app.delete(&uri).await.code(), 204);
        assert_eq!(w.app.fwd.last().ports[0].qos, None);
        assert_eq!(w.app.delete(&uri).await.code(), 204, "idempotent");
    }
}

#[tokio::test]
async fn bad_qos_bodies_are_400_and_unknown_ports_404() {
    let w = plugged("v1.1").await;
    let uri = format!("/v1.1/tenants/t/networks/{}/ports/{}/qos", w.net, w.port);
    for (body, detail) in [
        (
            r#"{"qos": {"rate_pps": -1}}"#,
            "rate_pps must be a non-negative integer",
        ),
        (
            r#"{"qos": {"rate_pps": 1.5}}"#,
            "rate_pps must be a non-negative integer",
        ),
        (
            r#"{"qos": {"rate_bps": "fast"}}"#,
            "rate_bps must be a non-negative integer",
        ),
        (
            r#"{"qos": {"rate_bps": true}}"#,
            "rate_bps must be a non-negative integer",
        ),
        (r#"{"qos": {"rate": 5}}"#, "Unknown QoS field 'rate'"),
        (r#"{"qos": {}}"#, "set rate_bps or rate_pps above 0"),
        (
            r#"{"qos": {"rate_pps": 0, "burst_packets": 9}}"#,
            "set rate_bps or rate_pps",
        ),
        (
            r#"{"qos": {"rate_bps": 1000000000001}}"#,
            "above the maximum",
        ),
        (
            r#"{"qos": {"rate_pps": 5, "burst_packets": 18446744073709551615}}"#,
            "above the maximum",
        ),
        (r#"{"limit": {}}"#, "Unable to find 'qos' in request body"),
    ] {
        let r = w.app.send("PUT", &uri, body).await;
        assert_eq!(r.code(), 400, "{body}: {r:?}");
        let d = r.json()["QuantumError"]["detail"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(d.contains(detail), "{body}: {d}");
    }
    assert_eq!(w.app.send("PUT", &uri, "{nope").await.code(), 400);
    assert_eq!(
        w.app.get(&uri).await.json(),
        json!({"qos": {}}),
        "nothing stored"
    );
    let other = format!("/v1.1/tenants/t/networks/{}/ports/nope/qos", w.net);
    let r = w.app.send("PUT", &other, r#"{"qos": {"rate": 1}}"#).await;
    assert_eq!(r.code(), 404, "not found beats a bad body");
    assert_eq!(r.json()["QuantumError"]["type"], "PortNotFound");
    let r = w.app.get("/v1.0/tenants/t/networks/nope/ports/p/qos").await;
    assert_eq!(r.code(), 420);
    let r = w.app.req("POST", &uri, None, &[]).await;
    assert_eq!(r.code(), 405);
}

#[tokio::test]
async fn port_stats_come_from_the_forwarder() {
    let w = plugged("v1.1").await;
    let uri = format!("/v1.1/tenants/t/networks/{}/ports/{}/stats", w.net, w.port);
    // Not held by the data plane: zeros.
    let r = w.app.get(&uri).await;
    assert_eq!(r.code(), 200);
    assert_eq!(r.json()["stats"]["rx_packets"], 0);
    assert_eq!(r.json()["stats"]["drops"], json!({}));
    w.app.fwd.stats.lock().unwrap().insert(
        w.port.clone(),
        PortStatistics {
            rx_packets: 10,
            rx_bytes: 600,
            tx_packets: 7,
            tx_bytes: 420,
            rx_errors: 1,
            tx_errors: 0,
            dropped: 3,
            floods: 2,
            csum_completed: 5,
            gso_segmented: 4,
            dhcp_replies: 6,
            drops: vec![("policed".into(), 2), ("truncated".into(), 1)],
            kernel: vec![("rx_ring_full".into(), 0)],
        },
    );
    let r = w.app.get(&uri).await;
    assert_eq!(
        r.json(),
        json!({"stats": {"rx_packets": 10, "rx_bytes": 600, "rx_errors": 1, "tx_packets": 7,
            "tx_bytes": 420, "tx_errors": 0, "dropped": 3, "floods": 2,
            "csum_completed": 5, "gso_segmented": 4, "dhcp_replies": 6, "drops": {"policed": 2, "truncated": 1}, "kernel": {"rx_ring_full": 0}}})
    );
    let r = w
        .app
        .get(&format!(
            "/v1.0/tenants/t/networks/{}/ports/{}/stats.xml",
            w.net, w.port
        ))
        .await;
    assert!(
        r.body.starts_with(
            "<stats xmlns=\"http://openstack.org/quantum/api/v1.0\" rx_packets=\"10\""
        ),
        "{}",
        r.body
    );
    let r = w
        .app
        .get(&format!(
            "/v1.1/tenants/t/networks/{}/ports/nope/stats",
            w.net
        ))
        .await;
    assert_eq!(r.code(), 404);
}

#[tokio::test]
async fn mac_table_lists_the_forwarders_entries_by_address() {
    let w = plugged("v1.1").await;
    let uri = format!("/v1.1/tenants/t/networks/{}/mac_table", w.net);
    assert_eq!(w.app.get(&uri).await.json(), json!({"macs": []}));
    w.app.fwd.macs.lock().unwrap().insert(
        w.net.clone(),
        vec![
            MacEntry {
                mac: "02:00:00:00:00:09".into(),
                port_id: w.port.clone(),
                age_secs: 4,
                is_static: false,
            },
            MacEntry {
                mac: "02:00:00:00:00:01".into(),
                port_id: w.port.clone(),
                age_secs: 0,
                is_static: true,
            },
        ],
    );
    let r = w.app.get(&uri).await;
    assert_eq!(
        r.json(),
        json!({"macs": [
            {"address": "02:00:00:00:00:01", "port_id": w.port, "age": 0, "static": true},
            {"address": "02:00:00:00:00:09", "port_id": w.port, "age": 4, "static": false},
        ]})
    );
    let r = w.app.get("/v1.1/tenants/t/networks/nope/mac_table").await;
    assert_eq!(r.code(), 404);
    assert_eq!(r.json()["QuantumError"]["type"], "NetworkNotFound");
}

#[tokio::test]
async fn openapi_covers_the_v11_production_features() {
    let app = app();
    let doc = app.get("/openapi.json").await.json_full();
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/{version}/tenants/{tenant_id}/limits",
        "/{version}/tenants/{tenant_id}/networks/{network_id}/mac_table",
        "/{version}/tenants/{tenant_id}/networks/{network_id}/ports/{port_id}/qos",
        "/{version}/tenants/{tenant_id}/networks/{network_id}/ports/{port_id}/stats",
        "/tenants/{path}",
    ] {
        assert!(paths.contains_key(p), "{p}");
    }
    let list = &paths["/{version}/tenants/{tenant_id}/networks"]["get"];
    let params: Vec<&str> = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(params.contains(&"limit") && params.contains(&"marker"));
    assert!(list["responses"]["429"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["token"]["name"],
        "X-Auth-Token"
    );
}
