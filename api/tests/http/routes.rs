//! Every core route, in both versions and both formats.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn versions_document_lists_every_version_with_self_links() {
    let app = app();
    let r = app.get("/").await;
    assert_eq!(r.code(), 200);
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        r.json_full(),
        json!({"versions": [
            {"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": "http://127.0.0.1:9696/v2.0/"}]},
            {"id": "v1.0", "status": "CURRENT", "links": [{"rel": "self", "href": "http://127.0.0.1:9696/v1.0"}]},
            {"id": "v1.1", "status": "PROPOSED", "links": [{"rel": "self", "href": "http://127.0.0.1:9696/v1.1"}]}
        ]})
    );
    let r = app
        .req("GET", "/", None, &[("accept", "application/xml")])
        .await;
    assert_eq!(r.content_type.as_deref(), Some("application/xml"));
    assert_eq!(
        r.body,
        "<versions><version id=\"v2.0\" status=\"CURRENT\"><links><link rel=\"self\" href=\"http://127.0.0.1:9696/v2.0/\"/></links></version>\
         <version id=\"v1.0\" status=\"CURRENT\"><links><link rel=\"self\" href=\"http://127.0.0.1:9696/v1.0\"/></links></version>\
         <version id=\"v1.1\" status=\"PROPOSED\"><links><link rel=\"self\" href=\"http://127.0.0.1:9696/v1.1\"/></links></version></versions>"
    );
}

#[tokio::test]
async fn create_answers_200_in_v10_and_202_in_v11() {
    let app = app();
    for (v, code) in [("v1.0", 200), ("v1.1", 202)] {
        let r = app
            .send(
                "POST",
                &format!("/{v}/tenants/t/networks"),
                r#"{"network": {"name": "n"}}"#,
            )
            .await;
        assert_eq!(r.code(), code, "{v}");
        let id = r.json()["network"]["id"].as_str().unwrap().to_owned();
        assert_eq!(id.len(), 36, "uuid4: {id}");
        let r = app
            .send(
                "POST",
                &format!("/{v}/tenants/t/networks/{id}/ports"),
                r#"{"port": {"state": "ACTIVE"}}"#,
            )
            .await;
        assert_eq!(r.code(), code, "{v}");
        assert!(r.json()["port"]["id"].is_string());
    }
}

#[tokio::test]
async fn network_views_differ_by_version() {
    let app = app();
    let id = app.network("v1.1", "t", "net1").await;
    let r = app.get("/v1.0/tenants/t/networks").await;
    assert_eq!(r.json(), json!({"networks": [{"id": id}]}));
    let r = app.get("/v1.0/tenants/t/networks/detail").await;
    assert_eq!(r.json(), json!({"networks": [{"id": id, "name": "net1"}]}));
    let r = app.get("/v1.1/tenants/t/networks/detail").await;
    assert_eq!(
        r.json(),
        json!({"networks": [{"id": id, "name": "net1", "op-status": "UP"}]})
    );
    let r = app.get(&format!("/v1.0/tenants/t/networks/{id}")).await;
    assert_eq!(r.json(), json!({"network": {"id": id, "name": "net1"}}));
    let r = app.get(&format!("/v1.1/tenants/t/networks/{id}")).await;
    assert_eq!(
        r.json(),
        json!({"network": {"id": id, "name": "net1", "op-status": "UP"}})
    );
}

#[tokio::test]
async fn network_detail_shows_ports_with_attachment_only_when_plugged() {
    let app = app();
    let net = app.network("v1.1", "t", "n").await;
    let p1 = app.port("v1.1", "t", &net, "ACTIVE").await;
    let p2 = app.port("v1.1", "t", &net, "DOWN").await;
    app.register("v1.1", "t", "vif-1", "tap1").await;
    assert_eq!(app.plug("v1.1", "t", &net, &p1, "vif-1").await.code(), 204);
    let r = app
        .get(&format!("/v1.1/tenants/t/networks/{net}/detail"))
        .await;
    assert_eq!(
        r.json(),
        json!({"network": {"id": net, "name": "n", "op-status": "UP", "ports": [
            {"id": p1, "state": "ACTIVE", "op-status": "DOWN", "attachment": {"id": "vif-1"}},
            {"id": p2, "state": "DOWN", "op-status": "DOWN"}
        ]}})
    );
    let r = app
        .get(&format!("/v1.0/tenants/t/networks/{net}/detail"))
        .await;
    assert_eq!(
        r.json(),
        json!({"network": {"id": net, "name": "n", "ports": [
            {"id": p1, "state": "ACTIVE", "attachment": {"id": "vif-1"}},
            {"id": p2, "state": "DOWN"}
        ]}})
    );
    let r = app
        .get(&format!("/v1.1/tenants/t/networks/{net}/detail.xml"))
        .await;
    assert_eq!(
        xml_without_links(&r.body),
        format!(
            "<network xmlns=\"{XMLNS_11}\" id=\"{net}\" name=\"n\" op-status=\"UP\"><ports>\
             <port id=\"{p1}\" state=\"ACTIVE\" op-status=\"DOWN\"><attachment id=\"vif-1\"/></port>\
             <port id=\"{p2}\" state=\"DOWN\" op-status=\"DOWN\"/></ports></network>"
        )
    );
}

#[tokio::test]
async fn rename_and_delete_network_answer_204() {
    let app = app();
    for v in ["v1.0", "v1.1"] {
        let id = app.network(v, "t", "old").await;
        let uri = format!("/{v}/tenants/t/networks/{id}");
        let r = app
            .send("PUT", &uri, r#"{"network": {"name": "new"}}"#)
            .await;
        assert_eq!(r.code(), 204);
        assert_eq!(r.body, "");
        assert_eq!(app.get(&uri).await.json()["network"]["name"], "new");
        assert_eq!(app.delete(&uri).await.code(), 204);
        assert_eq!(
            app.get(&uri).await.code(),
            if v == "v1.0" { 420 } else { 404 }
        );
    }
}

#[tokio::test]
async fn port_routes_in_both_versions() {
    let app = app();
    let net = app.network("v1.1", "t", "n").await;
    let base = |v: &str| format!("/{v}/tenants/t/networks/{net}/ports");
    // Empty body: state defaults to DOWN.
    let r = app.req("POST", &base("v1.1"), None, &[]).await;
    assert_eq!(r.code(), 202);
    let p = r.json()["port"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get(&base("v1.0")).await.json(),
        json!({"ports": [{"id": p}]})
    );
    assert_eq!(
        app.get(&format!("{}/detail", base("v1.0"))).await.json(),
        json!({"ports": [{"id": p, "state": "DOWN"}]})
    );
    assert_eq!(
        app.get(&format!("{}/detail", base("v1.1"))).await.json(),
        json!({"ports": [{"id": p, "state": "DOWN", "op-status": "DOWN"}]})
    );
    let uri = |v: &str| format!("{}/{p}", base(v));
    assert_eq!(
        app.get(&uri("v1.0")).await.json(),
        json!({"port": {"id": p, "state": "DOWN"}})
    );
    let r = app
        .send("PUT", &uri("v1.1"), r#"{"port": {"state": "ACTIVE"}}"#)
        .await;
    assert_eq!(r.code(), 204);
    assert_eq!(
        app.get(&uri("v1.1")).await.json(),
        json!({"port": {"id": p, "state": "ACTIVE", "op-status": "DOWN"}})
    );
    // A missing state on update means DOWN (the original's quirk).
    let r = app.send("PUT", &uri("v1.0"), r#"{"port": {}}"#).await;
    assert_eq!(r.code(), 204);
    assert_eq!(app.get(&uri("v1.0")).await.json()["port"]["state"], "DOWN");
    assert_eq!(
        app.get(&format!("{}/detail", uri("v1.1"))).await.json(),
        json!({"port": {"id": p, "state": "DOWN", "op-status": "DOWN"}})
    );
    assert_eq!(app.delete(&uri("v1.0")).await.code(), 204);
    assert_eq!(app.get(&uri("v1.0")).await.code(), 430);
}

#[tokio::test]
async fn attachment_routes_show_plug_and_unplug() {
    let app = app();
    let net = app.network("v1.1", "t", "n").await;
    let p = app.port("v1.1", "t", &net, "ACTIVE").await;
    app.register("v1.1", "t", "vif-1", "tap1").await;
    for v in ["v1.0", "v1.1"] {
        let uri = format!("/{v}/tenants/t/networks/{net}/ports/{p}/attachment");
        assert_eq!(app.get(&uri).await.json(), json!({"attachment": {}}));
        assert_eq!(app.plug(v, "t", &net, &p, "vif-1").await.code(), 204);
        assert_eq!(
            app.get(&uri).await.json(),
            json!({"attachment": {"id": "vif-1"}})
        );
        assert_eq!(
            app.get(&format!("/{v}/tenants/t/networks/{net}/ports/{p}/detail"))
                .await
                .json()["port"]["attachment"],
            json!({"id": "vif-1"})
        );
        assert_eq!(app.delete(&uri).await.code(), 204);
        // Unplugging an empty port is a no-op.
        assert_eq!(app.delete(&uri).await.code(), 204);
        assert_eq!(app.get(&uri).await.json(), json!({"attachment": {}}));
    }
}

#[tokio::test]
async fn xml_requests_and_responses_in_both_versions() {
    let app = app();
    for (v, ns) in [("v1.0", XMLNS_10), ("v1.1", XMLNS_11)] {
        let r = app
            .send_xml(
                "POST",
                &format!("/{v}/tenants/t/networks"),
                r#"<network name="x&amp;y"/>"#,
            )
            .await;
        assert!(r.status.is_success(), "{r:?}");
        assert_eq!(r.content_type.as_deref(), Some("application/xml"));
        let id = r.body.split('"').nth(3).unwrap().to_owned();
        // v1.1 elements carry their ATOM links as child elements.
        let end = |name: &str, path: &str| {
            if v == "v1.1" {
                format!(
                    "><links><link rel=\"self\" href=\"http://127.0.0.1:9696/v1.1/tenants/t/{path}\"/>\
                     <link rel=\"bookmark\" href=\"http://127.0.0.1:9696/tenants/t/{path}\"/></links></{name}>"
                )
            } else {
                "/>".to_owned()
            }
        };
        let net_end = end("network", &format!("networks/{id}"));
        assert_eq!(
            r.body,
            format!("<network xmlns=\"{ns}\" id=\"{id}\"{net_end}")
        );

        let r = app.get(&format!("/{v}/tenants/t/networks/{id}.xml")).await;
        let op = if v == "v1.1" { " op-status=\"UP\"" } else { "" };
        assert_eq!(
            r.body,
            format!("<network xmlns=\"{ns}\" id=\"{id}\" name=\"x&amp;y\"{op}{net_end}")
        );

        let r = app
            .send_xml(
                "PUT",
                &format!("/{v}/tenants/t/networks/{id}"),
                "<network><name>renamed</name></network>",
            )
            .await;
        assert_eq!(r.code(), 204, "{r:?}");

        let r = app
            .send_xml(
                "POST",
                &format!("/{v}/tenants/t/networks/{id}/ports"),
                r#"<port state="ACTIVE"/>"#,
            )
            .await;
        assert!(r.status.is_success(), "{r:?}");
        let port = r.body.split('"').nth(3).unwrap().to_owned();
        let port_end = end("port", &format!("networks/{id}/ports/{port}"));
        assert_eq!(
            r.body,
            format!("<port xmlns=\"{ns}\" id=\"{port}\"{port_end}")
        );

        let r = app
            .get(&format!("/{v}/tenants/t/networks/{id}/ports/{port}.xml"))
            .await;
        let pop = if v == "v1.1" {
            " op-status=\"DOWN\""
        } else {
            ""
        };
        assert_eq!(
            r.body,
            format!("<port xmlns=\"{ns}\" id=\"{port}\" state=\"ACTIVE\"{pop}{port_end}")
        );

        let r = app.get(&format!("/{v}/tenants/t/networks.xml")).await;
        assert!(
            r.body
                .starts_with(&format!("<networks xmlns=\"{ns}\"><network id=")),
            "{}",
            r.body
        );

        let r = app
            .get(&format!("/{v}/tenants/t/networks/{id}/ports.xml"))
            .await;
        assert_eq!(
            r.body,
            format!("<ports xmlns=\"{ns}\"><port id=\"{port}\"{port_end}</ports>")
        );

        let vif = format!("vif-{v}");
        let r = app
            .send_xml(
                "PUT",
                &format!("/{v}/tenants/t/interfaces/{vif}"),
                "<interface device=\"tap-x\"/>",
            )
            .await;
        let _ = r;
        let r = app
            .send_xml(
                "PUT",
                &format!("/{v}/tenants/t/interfaces/{vif}"),
                &format!("<interface device=\"tap{}\"/>", &v[3..]),
            )
            .await;
        assert_eq!(r.code(), 200, "{r:?}");
        assert_eq!(
            xml_without_links(&r.body),
            format!(
                "<interface xmlns=\"{ns}\" id=\"{vif}\" device=\"tap{}\"/>",
                &v[3..]
            )
        );

        // Both XML forms of an attachment are accepted.
        let att = format!("/{v}/tenants/t/networks/{id}/ports/{port}/attachment");
        let r = app
            .send_xml(
                "PUT",
                &att,
                &format!("<attachment><id>{vif}</id></attachment>"),
            )
            .await;
        assert_eq!(r.code(), 204, "{r:?}");
        let r = app.get(&format!("{att}.xml")).await;
        assert_eq!(
            r.body,
            format!("<attachment xmlns=\"{ns}\"><id>{vif}</id></attachment>")
        );
        assert_eq!(app.delete(&att).await.code(), 204);
        assert_eq!(
            app.get(&format!("{att}.xml")).await.body,
            format!("<attachment xmlns=\"{ns}\"/>")
        );
        let r = app
            .send_xml("PUT", &att, &format!("<attachment id=\"{vif}\"/>"))
            .await;
        assert_eq!(r.code(), 204, "{r:?}");
        assert_eq!(app.delete(&att).await.code(), 204);
    }
}

#[tokio::test]
async fn format_suffix_beats_accept_and_content_type_beats_accept() {
    let app = app();
    app.network("v1.1", "t", "n").await;
    let r = app
        .req(
            "GET",
            "/v1.1/tenants/t/networks.json",
            None,
            &[("accept", "application/xml")],
        )
        .await;
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    let r = app
        .req(
            "GET",
            "/v1.1/tenants/t/networks",
            None,
            &[("accept", "application/xml")],
        )
        .await;
    assert_eq!(r.content_type.as_deref(), Some("application/xml"));
    let r = app
        .req(
            "GET",
            "/v1.1/tenants/t/networks",
            None,
            &[
                ("accept", "application/json"),
                ("content-type", "application/xml"),
            ],
        )
        .await;
    assert_eq!(r.content_type.as_deref(), Some("application/xml"));
    let r = app
        .req(
            "GET",
            "/v1.1/tenants/t/networks",
            None,
            &[("accept", "text/html")],
        )
        .await;
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
}

#[tokio::test]
async fn json_response_with_xml_request_body_via_suffix() {
    let app = app();
    let r = app
        .req(
            "POST",
            "/v1.1/tenants/t/networks.json",
            Some(r#"<network name="n"/>"#),
            &[("content-type", "application/xml")],
        )
        .await;
    assert_eq!(r.code(), 202, "{r:?}");
    assert!(r.json()["network"]["id"].is_string());
}

#[tokio::test]
async fn extensions_list_the_interface_registry() {
    let app = app();
    for (v, ns) in [("v1.0", XMLNS_10), ("v1.1", XMLNS_11)] {
        let r = app.get(&format!("/{v}/extensions")).await;
        assert_eq!(r.code(), 200);
        let exts = r.json()["extensions"].as_array().unwrap().clone();
        let aliases: Vec<&str> = exts.iter().map(|d| d["alias"].as_str().unwrap()).collect();
        let mut want = vec!["interfaces", "qos", "portstats", "mactable", "connections"];
        if v == "v1.1" {
            want.push("provider");
        }
        assert_eq!(aliases, want);
        for d in &exts {
            for key in ["name", "alias", "description", "namespace", "updated"] {
                assert!(d[key].is_string(), "{key}");
            }
            assert_eq!(d["links"], json!([]));
            let r = app
                .get(&format!("/{v}/extensions/{}", d["alias"].as_str().unwrap()))
                .await;
            assert_eq!(r.json(), *d, "bare descriptor");
        }
        let d = &exts[0];
        let r = app.get(&format!("/{v}/extensions/interfaces")).await;
        assert_eq!(r.json(), *d, "bare descriptor");
        let r = app.get(&format!("/{v}/extensions/interfaces.xml")).await;
        assert!(
            r.body.starts_with(&format!(
                "<extension xmlns=\"{ns}\"><name>Interface Registry</name>"
            )),
            "{}",
            r.body
        );
        assert!(r.body.contains("<alias>interfaces</alias>"));
        assert!(r.body.contains("<links/>"));
        let r = app.get(&format!("/{v}/extensions.xml")).await;
        assert!(
            r.body
                .starts_with(&format!("<extensions xmlns=\"{ns}\"><extension><name>")),
            "{}",
            r.body
        );
    }
}

#[tokio::test]
async fn openapi_document_is_served() {
    let app = app();
    let r = app.get("/openapi.json").await;
    assert_eq!(r.code(), 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let t = "/{version}/tenants/{tenant_id}";
    for path in [
        format!("{t}/networks"),
        format!("{t}/networks/detail"),
        format!("{t}/networks/{{network_id}}"),
        format!("{t}/networks/{{network_id}}/detail"),
        format!("{t}/networks/{{network_id}}/ports"),
        format!("{t}/networks/{{network_id}}/ports/detail"),
        format!("{t}/networks/{{network_id}}/ports/{{port_id}}"),
        format!("{t}/networks/{{network_id}}/ports/{{port_id}}/detail"),
        format!("{t}/networks/{{network_id}}/ports/{{port_id}}/attachment"),
        format!("{t}/interfaces"),
        format!("{t}/interfaces/{{interface_id}}"),
        "/{version}/extensions".to_owned(),
        "/{version}/extensions/{alias}".to_owned(),
        "/".to_owned(),
    ] {
        assert!(
            doc["paths"][&path].is_object(),
            "{path} missing from openapi.json"
        );
    }
}

#[tokio::test]
async fn data_survives_reopening_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let id = {
        let c = std::sync::Arc::new(
            control::Control::open(&path, std::sync::Arc::new(control::NullForwarder)).unwrap(),
        );
        let app = api::router(c, api::ApiOptions::default());
        let req = axum::http::Request::post("/v1.1/tenants/t/networks")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(r#"{"network": {"name": "kept"}}"#))
            .unwrap();
        let resp = tower::ServiceExt::oneshot(app, req).await.unwrap();
        assert_eq!(resp.status(), 202);
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["network"]["id"].as_str().unwrap().to_owned()
    };
    let c = control::Control::open(&path, std::sync::Arc::new(control::NullForwarder)).unwrap();
    assert_eq!(c.network("t", &id).unwrap().network.name, "kept");
}

/// Every `oneOf` of the OpenAPI document has alternatives that exclude each other (each requires
/// its own key, and the v1.0 fault's free-form key excludes the others), so that a response
/// matches exactly one of them, as schema-checking tools demand.
#[tokio::test]
async fn openapi_alternatives_exclude_each_other() {
    let app = app();
    let doc = app.get("/openapi.json").await.json();
    let resolve = |v: &serde_json::Value| -> serde_json::Value {
        match v["$ref"].as_str() {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap();
                doc["components"]["schemas"][name].clone()
            }
            None => v.clone(),
        }
    };
    fn one_ofs(v: &serde_json::Value, out: &mut Vec<Vec<serde_json::Value>>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(alts) = m.get("oneOf").and_then(|a| a.as_array()) {
                    out.push(alts.clone());
                }
                m.values().for_each(|x| one_ofs(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| one_ofs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    one_ofs(&doc, &mut all);
    assert!(!all.is_empty());
    for alts in all {
        let mut keys = std::collections::HashSet::new();
        for a in alts.iter().map(resolve) {
            match a["required"].as_array() {
                Some(req) => {
                    assert_eq!(req.len(), 1, "{a}");
                    assert!(keys.insert(req[0].as_str().unwrap().to_owned()), "{a}");
                }
                None => {
                    // The free-form one: a single key that none of the others use.
                    assert_eq!(a["maxProperties"], 1, "{a}");
                    assert!(a["not"]["anyOf"].is_array(), "{a}");
                }
            }
        }
    }
}

#[tokio::test]
async fn an_empty_tenant_in_a_path_is_not_found() {
    let app = app();
    for v in ["v1.0", "v1.1"] {
        let r = app.get(&format!("/{v}/tenants//networks")).await;
        assert_eq!(r.code(), 404, "{v}: {r:?}");
        let r = app
            .send(
                "POST",
                &format!("/{v}/tenants//networks"),
                r#"{"network": {"name": "n"}}"#,
            )
            .await;
        assert_eq!(r.code(), 404, "{v}: {r:?}");
    }
}

#[tokio::test]
async fn header_lines_over_8_kib_are_431() {
    let app = app();
    let long = "x".repeat(8 * 1024);
    let r = app
        .req(
            "GET",
            "/v1.1/tenants/t/networks",
            None,
            &[("x-long", &long)],
        )
        .await;
    assert_eq!(r.code(), 431, "{r:?}");
    let r = app
        .req("GET", "/v2.0/networks", None, &[("x-long", &long)])
        .await;
    assert_eq!(r.code(), 431, "{r:?}");
    let fine = "x".repeat(7 * 1024);
    let r = app
        .req(
            "GET",
            "/v1.1/tenants/t/networks",
            None,
            &[("x-long", &fine)],
        )
        .await;
    assert_eq!(r.code(), 200, "{r:?}");
}
