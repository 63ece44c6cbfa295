//! The interface registry extension, authenticated plugging, and what the
//! forwarder is told.

use control::{DesiredNetwork, DesiredPort, DesiredState};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn registry_put_get_list_delete_in_both_versions() {
    let app = app();
    for v in ["v1.0", "v1.1"] {
        let uri = format!("/{v}/tenants/t/interfaces/vif-{v}");
        let r = app
            .send("PUT", &uri, r#"{"interface": {"device": "tap0"}}"#)
            .await;
        assert_eq!(r.code(), 200, "{r:?}");
        assert_eq!(
            r.json(),
            json!({"interface": {"id": format!("vif-{v}"), "device": "tap0"}})
        );
        // Changing the device is the same call.
        let r = app
            .send("PUT", &uri, r#"{"interface": {"device": "tap1"}}"#)
            .await;
        assert_eq!(r.code(), 200);
        assert_eq!(app.get(&uri).await.json()["interface"]["device"], "tap1");
        assert_eq!(
            app.get(&format!("/{v}/tenants/t/interfaces")).await.json(),
            json!({"interfaces": [{"id": format!("vif-{v}"), "device": "tap1"}]})
        );
        let r = app.get(&format!("/{v}/tenants/t/interfaces.xml")).await;
        let ns = if v == "v1.0" { XMLNS_10 } else { XMLNS_11 };
        assert_eq!(
            xml_without_links(&r.body),
            format!("<interfaces xmlns=\"{ns}\"><interface id=\"vif-{v}\" device=\"tap1\"/></interfaces>")
        );
        assert_eq!(app.delete(&uri).await.code(), 204);
        assert_eq!(app.get(&uri).await.code(), 404);
    }
}

#[tokio::test]
async fn an_interface_is_registered_on_a_host_in_json_and_xml() {
    let app = app();
    let uri = "/v1.1/tenants/t/interfaces/vif";
    let r = app
        .send(
            "PUT",
            uri,
            r#"{"interface": {"device": "tap0", "host": "h1"}}"#,
        )
        .await;
    assert_eq!(r.code(), 200, "{r:?}");
    assert_eq!(
        r.json(),
        json!({"interface": {"id": "vif", "device": "tap0", "host": "h1"}})
    );
    // The same device name on another host is another interface; on the same host, a conflict.
    let r = app
        .send_xml(
            "PUT",
            "/v1.1/tenants/t/interfaces/vif-2.xml",
            r#"<interface device="tap0" host="h2"/>"#,
        )
        .await;
    assert_eq!(r.code(), 200, "{r:?}");
    assert_eq!(
        xml_without_links(&r.body),
        format!("<interface xmlns=\"{XMLNS_11}\" id=\"vif-2\" device=\"tap0\" host=\"h2\"/>")
    );
    for body in [
        r#"{"interface": {"device": "tap0", "host": "h1"}}"#,
        r#"{"interface": {"device": "tap0"}}"#,
    ] {
        let r = app
            .send("PUT", "/v1.1/tenants/t/interfaces/vif-3", body)
            .await;
        assert_eq!(r.code(), 409, "{body}: {r:?}");
        assert_eq!(r.json()["QuantumError"]["type"], "InterfaceConflict");
    }
    for body in [
        r#"{"interface": {"device": "tap0", "host": 7}}"#,
        r#"{"interface": {"device": "tap0", "host": "two words"}}"#,
    ] {
        let r = app
            .send("PUT", "/v1.1/tenants/t/interfaces/vif-3", body)
            .await;
        assert_eq!(r.code(), 400, "{body}: {r:?}");
    }
    // Registered again without a host: on any host.
    let r = app
        .send("PUT", uri, r#"{"interface": {"device": "tap1"}}"#)
        .await;
    assert_eq!(
        r.json(),
        json!({"interface": {"id": "vif", "device": "tap1"}})
    );
}

#[tokio::test]
async fn registry_refuses_bad_devices_and_missing_bodies() {
    let app = app();
    let uri = "/v1.1/tenants/t/interfaces/vif";
    for body in [
        r#"{"interface": {"device": "has space"}}"#,
        r#"{"interface": {"device": "much-too-long-device-name"}}"#,
        r#"{"interface": {"device": "a/b"}}"#,
        r#"{"interface": {"device": 7}}"#,
        r#"{"interface": {}}"#,
        r#"{"iface": {"device": "tap0"}}"#,
    ] {
        let r = app.send("PUT", uri, body).await;
        assert_eq!(r.code(), 400, "{body}: {r:?}");
        assert_eq!(r.json()["QuantumError"]["type"], "QuantumServiceFault");
    }
    let r = app.req("PUT", uri, None, &[]).await;
    assert_eq!(r.code(), 400);
    assert!(app.control.interfaces("t").unwrap().is_empty());
    // One device, one interface.
    app.register("v1.1", "t", "vif", "tap0").await;
    let r = app
        .send(
            "PUT",
            "/v1.1/tenants/t/interfaces/vif-2",
            r#"{"interface": {"device": "tap0"}}"#,
        )
        .await;
    assert_eq!(r.code(), 409);
    assert_eq!(r.json()["QuantumError"]["type"], "InterfaceConflict");
}

#[tokio::test]
async fn plugging_an_unregistered_interface_is_refused_and_changes_nothing() {
    let app = app();
    let net = app.network("v1.1", "t", "n").await;
    let port = app.port("v1.1", "t", &net, "ACTIVE").await;
    let before = app.fwd.count();
    let r = app.plug("v1.1", "t", &net, &port, "vif-unknown").await;
    assert_eq!(r.code(), 404);
    assert_eq!(
        r.json(),
        json!({"QuantumError": {
            "type": "InterfaceNotRegistered",
            "message": "The interface is not registered to this tenant.",
            "detail": "Interface vif-unknown is not registered to this tenant; register it with PUT /interfaces/vif-unknown before plugging it"
        }})
    );
    let r = app.plug("v1.0", "t", &net, &port, "vif-unknown").await;
    assert_eq!(r.code(), 404);
    assert_eq!(r.json()["interfaceNotRegistered"]["code"], 404);
    assert_eq!(app.fwd.count(), before);
    let r = app
        .get(&format!(
            "/v1.1/tenants/t/networks/{net}/ports/{port}/attachment"
        ))
        .await;
    assert_eq!(r.json(), json!({"attachment": {}}));
}

#[tokio::test]
async fn plugging_another_tenants_interface_is_refused_and_changes_nothing() {
    let app = app();
    app.register("v1.1", "other", "vif-other", "tap9").await;
    let net = app.network("v1.1", "t", "n").await;
    let port = app.port("v1.1", "t", &net, "ACTIVE").await;
    let before = app.fwd.count();
    let r = app.plug("v1.1", "t", &net, &port, "vif-other").await;
    assert_eq!(r.code(), 404);
    assert_eq!(r.json()["QuantumError"]["type"], "InterfaceNotRegistered");
    assert_eq!(app.fwd.count(), before);
    assert_eq!(app.control.attachment("t", &net, &port).unwrap(), None);
    assert!(app.fwd.last().ports.is_empty());
}

#[tokio::test]
async fn plugged_interface_cannot_be_unregistered() {
    let app = app();
    let net = app.network("v1.1", "t", "n").await;
    let port = app.port("v1.1", "t", &net, "ACTIVE").await;
    app.register("v1.1", "t", "vif", "tap0").await;
    app.plug("v1.1", "t", &net, &port, "vif").await;
    let r = app.delete("/v1.1/tenants/t/interfaces/vif").await;
    assert_eq!(r.code(), 409);
    assert_eq!(r.json()["QuantumError"]["type"], "InterfaceInUse");
}

#[tokio::test]
async fn forwarder_gets_the_desired_state_after_plug_down_unplug_and_delete() {
    let app = app();
    let net = app.network("v1.1", "t", "n").await;
    let port = app.port("v1.1", "t", &net, "ACTIVE").await;
    app.register("v1.1", "t", "vif", "tap0").await;
    let network = DesiredNetwork {
        id: net.clone(),
        tenant_id: "t".into(),
        vlan: 1,
        physnet: Some("physnet1".into()),
    };
    assert_eq!(
        app.fwd.last(),
        DesiredState {
            networks: vec![network.clone()],
            ports: vec![],
            groups: vec![],
        }
    );

    assert_eq!(app.plug("v1.1", "t", &net, &port, "vif").await.code(), 204);
    let desired = DesiredPort {
        id: port.clone(),
        network_id: net.clone(),
        device: "tap0".into(),
        admin_up: true,
        mac: app.fwd.last().ports[0].mac.clone(),
        fixed_ips: vec![],
        security: None,
        qos: None,
        qos_ingress: None,
        dhcp: None,
        dhcp6: None,
        ra: None,
        filter: None,
    };
    assert_eq!(
        app.fwd.last(),
        DesiredState {
            networks: vec![network.clone()],
            ports: vec![desired.clone()],
            groups: vec![],
        }
    );

    let uri = format!("/v1.1/tenants/t/networks/{net}/ports/{port}");
    assert_eq!(
        app.send("PUT", &uri, r#"{"port": {"state": "DOWN"}}"#)
            .await
            .code(),
        204
    );
    assert_eq!(
        app.fwd.last().ports,
        vec![DesiredPort {
            admin_up: false,
            ..desired.clone()
        }]
    );

    assert_eq!(app.delete(&format!("{uri}/attachment")).await.code(), 204);
    assert_eq!(
        app.fwd.last(),
        DesiredState {
            networks: vec![network],
            ports: vec![],
            groups: vec![],
        }
    );

    assert_eq!(app.delete(&uri).await.code(), 204);
    assert_eq!(
        app.delete(&format!("/v1.1/tenants/t/networks/{net}"))
            .await
            .code(),
        204
    );
    assert_eq!(app.fwd.last(), DesiredState::default());
}

#[tokio::test]
async fn port_op_status_follows_the_forwarder() {
    let app = app();
    let net = app.network("v1.1", "t", "n").await;
    let port = app.port("v1.1", "t", &net, "ACTIVE").await;
    app.register("v1.1", "t", "vif", "tap0").await;
    app.plug("v1.1", "t", &net, &port, "vif").await;
    let uri = format!("/v1.1/tenants/t/networks/{net}/ports/{port}");
    assert_eq!(app.get(&uri).await.json()["port"]["op-status"], "DOWN");
    app.port_up(&port);
    assert_eq!(app.get(&uri).await.json()["port"]["op-status"], "UP");
    assert_eq!(
        app.get(&format!("/v1.1/tenants/t/networks/{net}/ports/detail"))
            .await
            .json()["ports"][0]["op-status"],
        "UP"
    );
    app.send("PUT", &uri, r#"{"port": {"state": "DOWN"}}"#)
        .await;
    assert_eq!(app.get(&uri).await.json()["port"]["op-status"], "DOWN");
}

#[tokio::test]
async fn each_network_gets_its_own_vlan() {
    let app = app();
    let a = app.network("v1.1", "a", "n").await;
    let b = app.network("v1.1", "b", "n").await;
    let vlans: Vec<(String, u16)> = app
        .fwd
        .last()
        .networks
        .into_iter()
        .map(|n| (n.id, n.vlan))
        .collect();
    assert_eq!(vlans, vec![(a, 1), (b, 2)]);
}
