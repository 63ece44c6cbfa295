//! The QoS, port statistics and MAC table extensions over a recording
//! forwarder: what reaches the data plane, what the forwarder reports, and
//! the faults of bad requests.

use control::{MacEntry, PortStatistics, QosLimit, TrackedConnection};
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
            gso_whole: 11,
            coalesced: 12,
            dhcp_replies: 6,
            arp_replies: 8,
            ra_replies: 9,
            xdp_forwarded: 10,
            tx_stalls: 13,
            tx_stalled_ms: 14,
            tx_stalled: true,
            drops: vec![("policed".into(), 2), ("truncated".into(), 1)],
            kernel: vec![("rx_ring_full".into(), 0)],
        },
    );
    let r = w.app.get(&uri).await;
    assert_eq!(
        r.json(),
        json!({"stats": {"rx_packets": 10, "rx_bytes": 600, "rx_errors": 1, "tx_packets": 7,
            "tx_bytes": 420, "tx_errors": 0, "dropped": 3, "floods": 2,
            "csum_completed": 5, "gso_segmented": 4, "gso_whole": 11, "coalesced": 12,
            "dhcp_replies": 6, "arp_replies": 8, "ra_replies": 9, "xdp_forwarded": 10,
            "tx_stalls": 13, "tx_stalled_ms": 14, "tx_stalled": true,
            "drops": {"policed": 2, "truncated": 1}, "kernel": {"rx_ring_full": 0}}})
    );
    // The API's description names every field, no more.
    let doc = w.app.get("/openapi.json").await.json_full();
    let described: std::collections::BTreeSet<&String> = doc["components"]["schemas"]["PortStats"]
        ["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    let body = r.json();
    let sent: std::collections::BTreeSet<&String> =
        body["stats"].as_object().unwrap().keys().collect();
    assert_eq!(described, sent);
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
    assert!(
        r.body
            .contains(" tx_stalls=\"13\" tx_stalled_ms=\"14\" tx_stalled=\"True\""),
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
async fn connections_show_the_forwarders_tracked_connections_of_the_port() {
    let w = plugged("v1.1").await;
    let uri = format!(
        "/v1.1/tenants/t/networks/{}/ports/{}/connections",
        w.net, w.port
    );
    assert_eq!(w.app.get(&uri).await.json(), json!({"connections": []}));
    let conn = |protocol, source: &str, destination: &str, icmp: Option<(u8, u8, u16)>| {
        TrackedConnection {
            protocol,
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
            ports: (protocol == 6).then_some((40000, 443)),
            icmp,
            ingress: icmp.is_some(),
            state: "established".into(),
            cut: icmp.is_some(),
            idle_secs: 2,
            expires_secs: 86_398,
        }
    };
    w.app.fwd.conns.lock().unwrap().insert(
        w.port.clone(),
        vec![
            conn(6, "198.18.0.1", "198.18.0.2", None),
            conn(58, "2001:db8::2", "2001:db8::1", Some((128, 0, 40000))),
            conn(47, "198.18.0.1", "198.18.0.9", None),
        ],
    );
    let r = w.app.get(&uri).await;
    assert_eq!(
        r.json(),
        json!({"connections": [
            {"protocol": "tcp", "ethertype": "IPv4", "direction": "egress",
             "source": "198.18.0.1", "source_port": 40000,
             "destination": "198.18.0.2", "destination_port": 443,
             "state": "established", "cut": false, "idle": 2, "expires": 86398},
            {"protocol": "ipv6-icmp", "ethertype": "IPv6", "direction": "ingress",
             "source": "2001:db8::2", "destination": "2001:db8::1",
             "icmp_type": 128, "icmp_code": 0, "icmp_id": 40000,
             "state": "established", "cut": true, "idle": 2, "expires": 86398},
            {"protocol": "gre", "ethertype": "IPv4", "direction": "egress",
             "source": "198.18.0.1", "destination": "198.18.0.9",
             "state": "established", "cut": false, "idle": 2, "expires": 86398},
        ]})
    );
    // XML: one element per connection, its fields as attributes.
    let r = w
        .app
        .get(&uri.replace("/connections", "/connections.xml"))
        .await;
    assert_eq!(r.code(), 200, "{r:?}");
    assert!(
        r.body.contains(r#"protocol="tcp""#) && r.body.contains(r#"icmp_type="128""#),
        "{}",
        r.body
    );
    let r = w
        .app
        .get(&format!(
            "/v1.1/tenants/t/networks/{}/ports/nope/connections",
            w.net
        ))
        .await;
    assert_eq!(r.code(), 404);
    assert_eq!(r.json()["QuantumError"]["type"], "PortNotFound");
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
        "/{version}/tenants/{tenant_id}/networks/{network_id}/ports/{port_id}/connections",
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

#[tokio::test]
async fn the_quantum_qos_extension_is_a_view_of_the_ports_qos_policy() {
    let w = plugged("v1.1").await;
    let app = &w.app;
    let uri = format!("/v1.1/tenants/t/networks/{}/ports/{}/qos", w.net, w.port);
    let v2_port = format!("/v2.0/ports/{}", w.port);
    let policy_of = |r: Resp| r.json_full()["port"]["qos_policy_id"].clone();
    let limit = r#"{"qos": {"rate_bps": 1500, "rate_pps": 500, "burst_packets": 50}}"#;
    assert_eq!(app.send("PUT", &uri, limit).await.code(), 200);

    // Neutron sees a policy of the port's own, in its units (rounded up).
    let own = policy_of(app.get(&v2_port).await);
    let own = own.as_str().expect("the port has a policy").to_owned();
    let r = app.get(&format!("/v2.0/qos/policies/{own}")).await;
    let p = r.json_full()["policy"].clone();
    assert_eq!(
        (p["name"].clone(), p["project_id"].clone()),
        (json!(format!("port-{}", w.port)), json!("t"))
    );
    let mut rules: Vec<(String, u64)> = p["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let rate = r.get("max_kbps").or(r.get("max_kpps")).unwrap();
            (
                r["type"].as_str().unwrap().to_owned(),
                rate.as_u64().unwrap(),
            )
        })
        .collect();
    rules.sort();
    assert_eq!(
        rules,
        [
            ("bandwidth_limit".to_owned(), 2),
            ("packet_rate_limit".to_owned(), 1)
        ]
    );
    // The data plane has the exact values.
    let q = app.fwd.last().ports[0].qos.unwrap();
    assert_eq!((q.rate_bps, q.rate_pps, q.burst_packets), (1500, 500, 50));

    // A Neutron policy on the network: what the port takes once its own limit is removed.
    let r = app
        .send(
            "POST",
            "/v2.0/qos/policies",
            &json!({"policy": {"name": "net", "project_id": "t"}}).to_string(),
        )
        .await;
    let net_policy = r.json_full()["policy"]["id"].as_str().unwrap().to_owned();
    for (kind, rule) in [
        ("packet_rate_limit", json!({"max_kpps": 2})),
        (
            "bandwidth_limit",
            json!({"max_kbps": 300, "direction": "ingress"}),
        ),
    ] {
        let r = app
            .send(
                "POST",
                &format!("/v2.0/qos/policies/{net_policy}/{kind}_rules"),
                &json!({ format!("{kind}_rule"): rule }).to_string(),
            )
            .await;
        assert_eq!(r.code(), 201, "{r:?}");
    }
    let body = json!({"network": {"qos_policy_id": net_policy}}).to_string();
    let r = app
        .send("PUT", &format!("/v2.0/networks/{}", w.net), &body)
        .await;
    assert_eq!(r.code(), 200, "{r:?}");
    // The port's own policy still wins, and Neutron cannot delete it while it is set.
    assert_eq!(app.fwd.last().ports[0].qos.unwrap().rate_pps, 500);
    let r = app.delete(&format!("/v2.0/qos/policies/{own}")).await;
    assert_eq!(r.code(), 409, "{r:?}");

    assert_eq!(app.delete(&uri).await.code(), 204);
    assert_eq!(policy_of(app.get(&v2_port).await), json!(null));
    let r = app.get(&format!("/v2.0/qos/policies/{own}")).await;
    assert_eq!(r.code(), 404, "the port's own policy went with its limit");
    assert_eq!(
        app.get(&uri).await.json(),
        json!({"qos": {"rate_bps": 0, "burst_bits": 0, "rate_pps": 2000, "burst_packets": 0}}),
        "the network's policy shows through"
    );
    let last = app.fwd.last();
    assert_eq!(last.ports[0].qos.unwrap().rate_pps, 2000);
    assert_eq!(last.ports[0].qos_ingress.unwrap().rate_bps, 300_000);

    // A new limit keeps what the port receives limited (the network policy's ingress rule).
    let r = app
        .send("PUT", &uri, r#"{"qos": {"rate_bps": 1000000}}"#)
        .await;
    assert_eq!(r.code(), 200);
    let own = policy_of(app.get(&v2_port).await);
    let r = app
        .get(&format!("/v2.0/qos/policies/{}", own.as_str().unwrap()))
        .await;
    let rules = r.json_full()["policy"]["rules"].clone();
    assert_eq!(rules.as_array().unwrap().len(), 2, "{rules}");
    let last = app.fwd.last();
    assert_eq!(last.ports[0].qos.unwrap().rate_bps, 1_000_000);
    assert_eq!(last.ports[0].qos.unwrap().rate_pps, 0);
    assert_eq!(last.ports[0].qos_ingress.unwrap().rate_bps, 300_000);

    // A policy set through Neutron takes the place of the port's own; the extension shows it
    // and its DELETE leaves it; a new limit takes over again, with that policy's ingress rules.
    let body = json!({"port": {"qos_policy_id": net_policy}}).to_string();
    assert_eq!(app.send("PUT", &v2_port, &body).await.code(), 200);
    assert_eq!(app.get(&uri).await.json()["qos"]["rate_pps"], 2000);
    assert_eq!(app.delete(&uri).await.code(), 204);
    assert_eq!(policy_of(app.get(&v2_port).await), json!(net_policy));
    let r = app
        .send(
            "PUT",
            &uri,
            r#"{"qos": {"rate_pps": 700, "burst_bits": 9}}"#,
        )
        .await;
    assert_eq!(
        r.json(),
        json!({"qos": {"rate_bps": 0, "burst_bits": 0, "rate_pps": 700, "burst_packets": 0}}),
        "the answer is the limit in force"
    );
    let own = policy_of(app.get(&v2_port).await);
    assert_ne!(own, json!(net_policy));
    let last = app.fwd.last();
    assert_eq!(last.ports[0].qos.unwrap().rate_pps, 700);
    assert_eq!(last.ports[0].qos_ingress.unwrap().rate_bps, 300_000);

    // Deleting the port deletes its policy.
    app.delete(&format!("{}/attachment", uri.trim_end_matches("/qos")))
        .await;
    let r = app.delete(uri.trim_end_matches("/qos")).await;
    assert_eq!(r.code(), 204, "{r:?}");
    let r = app
        .get(&format!("/v2.0/qos/policies/{}", own.as_str().unwrap()))
        .await;
    assert_eq!(r.code(), 404);
}
