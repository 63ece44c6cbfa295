//! Every fault of spec section 2 with its exact code and body, per version
//! and format; bad input of every kind.

use serde_json::{json, Value};

use crate::common::*;

/// Asserts the v1.0 and v1.1 bodies of one fault.
fn assert_v10(r: &Resp, code: u16, title: &str, message: &str, detail: &str) {
    assert_eq!(r.code(), code, "{r:?}");
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({ title: {"code": code, "message": message, "detail": detail} })
    );
}

fn assert_v11(r: &Resp, code: u16, kind: &str, message: &str, detail: &str) {
    assert_eq!(r.code(), code, "{r:?}");
    assert_eq!(
        r.json(),
        json!({"QuantumError": {"type": kind, "message": message, "detail": detail}})
    );
}

const NET_MSG: &str = "Unable to find a network with the specified identifier.";
const PORT_MSG: &str = "Unable to find a port with the specified identifier.";
const BAD: &str =
    "The server could not comply with the request since it is either malformed or otherwise incorrect.";

#[tokio::test]
async fn network_not_found_is_420_in_v10_and_404_in_v11() {
    let app = app();
    let uri = |v: &str| format!("/{v}/tenants/t/networks/nope");
    let detail = "Network nope could not be found";
    assert_v10(
        &app.get(&uri("v1.0")).await,
        420,
        "networkNotFound",
        NET_MSG,
        detail,
    );
    assert_v11(
        &app.get(&uri("v1.1")).await,
        404,
        "NetworkNotFound",
        NET_MSG,
        detail,
    );
    // Every network-scoped method maps it.
    for v in ["v1.0", "v1.1"] {
        let want = if v == "v1.0" { 420 } else { 404 };
        let u = uri(v);
        for r in [
            app.get(&format!("{u}/detail")).await,
            app.send("PUT", &u, r#"{"network": {"name": "x"}}"#).await,
            app.delete(&u).await,
            app.get(&format!("{u}/ports")).await,
            app.get(&format!("{u}/ports/detail")).await,
            app.req("POST", &format!("{u}/ports"), None, &[]).await,
            app.get(&format!("{u}/ports/p")).await,
            app.get(&format!("{u}/ports/p/detail")).await,
            app.send(
                "PUT",
                &format!("{u}/ports/p"),
                r#"{"port": {"state": "ACTIVE"}}"#,
            )
            .await,
            app.delete(&format!("{u}/ports/p")).await,
            app.get(&format!("{u}/ports/p/attachment")).await,
            app.send(
                "PUT",
                &format!("{u}/ports/p/attachment"),
                r#"{"attachment": {"id": "x"}}"#,
            )
            .await,
            app.delete(&format!("{u}/ports/p/attachment")).await,
        ] {
            assert_eq!(r.code(), want, "{v}: {r:?}");
        }
    }
}

#[tokio::test]
async fn xml_faults_follow_the_spec_shapes() {
    let app = app();
    let r = app.get("/v1.0/tenants/t/networks/nope.xml").await;
    assert_eq!(r.code(), 420);
    assert_eq!(r.content_type.as_deref(), Some("application/xml"));
    assert_eq!(
        r.body,
        format!(
            "<networkNotFound xmlns=\"{XMLNS_10}\" code=\"420\"><message>{NET_MSG}</message>\
             <detail>Network nope could not be found</detail></networkNotFound>"
        )
    );
    let r = app.get("/v1.1/tenants/t/networks/nope.xml").await;
    assert_eq!(r.code(), 404);
    assert_eq!(
        r.body,
        format!(
            "<QuantumError xmlns=\"{XMLNS_11}\"><type>NetworkNotFound</type><message>{NET_MSG}</message>\
             <detail>Network nope could not be found</detail></QuantumError>"
        )
    );
}

#[tokio::test]
async fn port_not_found_is_430_in_v10_and_404_in_v11() {
    let app = app();
    let net = app.network("v1.1", "t", "n").await;
    let detail = format!("Port nope could not be found on network {net}");
    let uri = |v: &str| format!("/{v}/tenants/t/networks/{net}/ports/nope");
    assert_v10(
        &app.get(&uri("v1.0")).await,
        430,
        "portNotFound",
        PORT_MSG,
        &detail,
    );
    assert_v11(
        &app.get(&uri("v1.1")).await,
        404,
        "PortNotFound",
        PORT_MSG,
        &detail,
    );
    for v in ["v1.0", "v1.1"] {
        let want = if v == "v1.0" { 430 } else { 404 };
        let u = uri(v);
        for r in [
            app.get(&format!("{u}/detail")).await,
            app.send("PUT", &u, r#"{"port": {"state": "ACTIVE"}}"#)
                .await,
            app.delete(&u).await,
            app.get(&format!("{u}/attachment")).await,
            app.send(
                "PUT",
                &format!("{u}/attachment"),
                r#"{"attachment": {"id": "x"}}"#,
            )
            .await,
            app.delete(&format!("{u}/attachment")).await,
        ] {
            assert_eq!(r.code(), want, "{v}: {r:?}");
        }
    }
}

#[tokio::test]
async fn network_in_use_is_421_in_v10_and_409_in_v11() {
    let app = app();
    let net = app.network("v1.1", "t", "n").await;
    let p = app.port("v1.1", "t", &net, "ACTIVE").await;
    app.register("v1.1", "t", "vif", "tap0").await;
    app.plug("v1.1", "t", &net, &p, "vif").await;
    let msg = "Unable to remove the network: attachments still plugged.";
    let detail = format!(
        "Unable to complete operation on network {net}. There is one or more attachments plugged into its ports."
    );
    let r = app.delete(&format!("/v1.0/tenants/t/networks/{net}")).await;
    assert_v10(&r, 421, "networkInUse", msg, &detail);
    let r = app.delete(&format!("/v1.1/tenants/t/networks/{net}")).await;
    assert_v11(&r, 409, "NetworkInUse", msg, &detail);
    // Nothing was deleted.
    assert_eq!(
        app.get(&format!("/v1.1/tenants/t/networks/{net}/ports/{p}"))
            .await
            .code(),
        200
    );
}

#[tokio::test]
async fn state_invalid_is_431_in_v10_and_400_in_v11() {
    let app = app();
    let net = app.network("v1.1", "t", "n").await;
    let msg = "Unable to update port state with specified value.";
    let r = app
        .send(
            "POST",
            &format!("/v1.0/tenants/t/networks/{net}/ports"),
            r#"{"port": {"state": "up"}}"#,
        )
        .await;
    assert_v10(
        &r,
        431,
        "requestedStateInvalid",
        msg,
        "Unsupported port state: up",
    );
    let r = app
        .send(
            "POST",
            &format!("/v1.1/tenants/t/networks/{net}/ports"),
            r#"{"port": {"state": "active"}}"#,
        )
        .await;
    assert_v11(
        &r,
        400,
        "RequestedStateInvalid",
        msg,
        "Unsupported port state: active",
    );
    let p = app.port("v1.1", "t", &net, "ACTIVE").await;
    let r = app
        .send(
            "PUT",
            &format!("/v1.1/tenants/t/networks/{net}/ports/{p}"),
            r#"{"port": {"state": 1}}"#,
        )
        .await;
    assert_v11(
        &r,
        400,
        "RequestedStateInvalid",
        msg,
        "Unsupported port state: 1",
    );
    // Unchanged, and no port was created by the failed POSTs.
    let r = app
        .get(&format!("/v1.1/tenants/t/networks/{net}/ports/detail"))
        .await;
    assert_eq!(
        r.json()["ports"],
        json!([{"id": p, "state": "ACTIVE", "op-status": "DOWN"}])
    );
}

#[tokio::test]
async fn port_in_use_and_already_attached_have_their_codes() {
    let app = app();
    let net = app.network("v1.1", "t", "n").await;
    let p1 = app.port("v1.1", "t", &net, "ACTIVE").await;
    let p2 = app.port("v1.1", "t", &net, "ACTIVE").await;
    app.register("v1.1", "t", "vif-1", "tap1").await;
    app.register("v1.1", "t", "vif-2", "tap2").await;
    assert_eq!(app.plug("v1.1", "t", &net, &p1, "vif-1").await.code(), 204);

    let in_use_msg = "A resource is currently attached to the logical port";
    let in_use = format!(
        "Unable to complete operation on port {p1} for network {net}. The attachment 'vif-1is plugged into the logical port."
    );
    let r = app
        .delete(&format!("/v1.0/tenants/t/networks/{net}/ports/{p1}"))
        .await;
    assert_v10(&r, 432, "portInUse", in_use_msg, &in_use);
    let r = app
        .delete(&format!("/v1.1/tenants/t/networks/{net}/ports/{p1}"))
        .await;
    assert_v11(&r, 409, "PortInUse", in_use_msg, &in_use);
    let r = app.plug("v1.0", "t", &net, &p1, "vif-2").await;
    assert_v10(&r, 432, "portInUse", in_use_msg, &in_use);

    let att_msg = "The resource is already attached to another port";
    let att = format!(
        "Unable to plug the attachment vif-1 into port {p2} for network {net}. The attachment is already plugged into port {p1}"
    );
    let r = app.plug("v1.0", "t", &net, &p2, "vif-1").await;
    assert_v10(&r, 440, "alreadyAttached", att_msg, &att);
    let r = app.plug("v1.1", "t", &net, &p2, "vif-1").await;
    assert_v11(&r, 409, "AlreadyAttached", att_msg, &att);
    // Nothing changed.
    let r = app
        .get(&format!(
            "/v1.1/tenants/t/networks/{net}/ports/{p2}/attachment"
        ))
        .await;
    assert_eq!(r.json(), json!({"attachment": {}}));
}

#[tokio::test]
async fn missing_resource_key_and_parameter_are_400_with_the_original_details() {
    let app = app();
    let r = app
        .send(
            "POST",
            "/v1.0/tenants/t/networks",
            r#"{"net": {"name": "x"}}"#,
        )
        .await;
    assert_v10(
        &r,
        400,
        "Bad Request",
        BAD,
        "Unable to find 'network' in request body",
    );
    let r = app
        .send("POST", "/v1.1/tenants/t/networks", r#"{"network": {}}"#)
        .await;
    assert_v11(
        &r,
        400,
        "QuantumServiceFault",
        BAD,
        "Failed to parse request. Parameter: name not specified",
    );
    let net = app.network("v1.1", "t", "n").await;
    let p = app.port("v1.1", "t", &net, "DOWN").await;
    let r = app
        .send(
            "PUT",
            &format!("/v1.1/tenants/t/networks/{net}/ports/{p}/attachment"),
            r#"{"attachment": {}}"#,
        )
        .await;
    assert_v11(
        &r,
        400,
        "QuantumServiceFault",
        BAD,
        "Failed to parse request. Parameter: id not specified",
    );
    let r = app
        .send_xml("POST", "/v1.0/tenants/t/networks", "<port/>")
        .await;
    assert_eq!(r.code(), 400);
    assert!(
        r.body
            .starts_with(&format!("<badRequest xmlns=\"{XMLNS_10}\" code=\"400\">")),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn malformed_bodies_get_the_generic_error_body() {
    let app = app();
    for v in ["v1.0", "v1.1"] {
        let uri = format!("/{v}/tenants/t/networks");
        for body in ["{", "not json", r#"{"network": {"name": "x"}"#, "\u{0}"] {
            let r = app.send("POST", &uri, body).await;
            assert_eq!(r.code(), 400, "{body}");
            assert_eq!(
                r.json(),
                json!({"Error": {"code": 400, "message": "Malformed request body"}})
            );
        }
        let r = app.send_xml("POST", &uri, "<network name='x'>").await;
        assert_eq!(r.code(), 400);
        assert_eq!(
            r.body,
            format!("<Error xmlns=\"{}\" code=\"400\"><message>Malformed request body</message></Error>",
                if v == "v1.0" { XMLNS_10 } else { XMLNS_11 })
        );
        let r = app
            .req(
                "POST",
                &uri,
                Some("name=x"),
                &[("content-type", "application/x-www-form-urlencoded")],
            )
            .await;
        assert_eq!(
            r.json(),
            json!({"Error": {"code": 400, "message": "Unsupported Content-Type"}})
        );
        let r = app.req("POST", &uri, None, &[]).await;
        assert_eq!(r.json(), json!({"Error": {"code": 400, "message": BAD}}));
    }
    assert!(app.control.list_networks("t").unwrap().is_empty());
}

#[tokio::test]
async fn wrong_types_are_400_and_change_nothing() {
    let app = app();
    let cases = [
        r#"{"network": {"name": 5}}"#,
        r#"{"network": {"name": ["a"]}}"#,
        r#"{"network": "x"}"#,
        r#"{"network": [1]}"#,
        r#"[1, 2]"#,
        r#""network""#,
    ];
    for body in cases {
        let r = app.send("POST", "/v1.1/tenants/t/networks", body).await;
        assert_eq!(r.code(), 400, "{body}: {r:?}");
        assert_eq!(
            r.json()["QuantumError"]["type"],
            "QuantumServiceFault",
            "{body}"
        );
        let r = app.send("POST", "/v1.0/tenants/t/networks", body).await;
        assert_eq!(r.code(), 400, "{body}: {r:?}");
        assert!(r.json()["Bad Request"]["detail"].is_string(), "{body}");
    }
    let r = app
        .send(
            "POST",
            "/v1.1/tenants/t/networks",
            &format!(r#"{{"network": {{"name": "{}"}}}}"#, "n".repeat(256)),
        )
        .await;
    assert_eq!(r.code(), 400);
    assert!(app.control.list_networks("t").unwrap().is_empty());
}

#[tokio::test]
async fn unknown_routes_get_the_version_fault_body() {
    let app = app();
    let r = app.get("/v1.1/tenants/t/nothing").await;
    assert_eq!(r.code(), 404);
    let j = r.json();
    assert_eq!(j["QuantumError"]["type"], "QuantumServiceFault");
    assert_eq!(
        j["QuantumError"]["message"],
        "The resource could not be found."
    );
    let r = app
        .get("/v1.0/tenants/t/networks/n/ports/p/attachment/extra")
        .await;
    assert_eq!(r.code(), 404);
    assert_eq!(r.json()["Not Found"]["code"], 404);
    let r = app.get("/v1.0").await;
    assert_eq!(r.code(), 404);
    let r = app.get("/v9.9/networks").await;
    assert_eq!(r.code(), 404);
    assert_eq!(
        r.json(),
        json!({"Error": {"code": 404, "message": "The resource could not be found."}})
    );
    let r = app
        .req("GET", "/v9", None, &[("accept", "application/xml")])
        .await;
    assert_eq!(
        r.body,
        "<Error code=\"404\"><message>The resource could not be found.</message></Error>"
    );
}

#[tokio::test]
async fn wrong_methods_are_405_with_the_version_fault_body() {
    let app = app();
    let r = app
        .req("PATCH", "/v1.1/tenants/t/networks", None, &[])
        .await;
    assert_eq!(r.code(), 405, "{r:?}");
    assert_eq!(r.json()["QuantumError"]["type"], "QuantumServiceFault");
    assert_eq!(
        r.json()["QuantumError"]["detail"],
        "The method PATCH is not allowed for this resource."
    );
    assert_eq!(r.allow.as_deref(), Some("GET,HEAD,POST"));
    let r = app
        .req("POST", "/v1.0/tenants/t/networks/n/ports/p", None, &[])
        .await;
    assert_eq!(r.code(), 405);
    assert_eq!(r.json()["Method Not Allowed"]["code"], 405);
    // The extension collection answers 404 to anything but GET.
    for (m, u) in [
        ("POST", "/v1.1/extensions"),
        ("DELETE", "/v1.1/extensions/interfaces"),
    ] {
        let r = app.req(m, u, None, &[]).await;
        assert_eq!(r.code(), 404, "{m} {u}");
        assert_eq!(r.json()["QuantumError"]["type"], "QuantumServiceFault");
    }
    let r = app.get("/v1.1/extensions/nope").await;
    assert_eq!(r.code(), 404);
    assert_eq!(
        r.json()["QuantumError"]["detail"],
        "Extension with alias nope does not exist"
    );
}

#[tokio::test]
async fn huge_bodies_are_413_with_a_fault_body() {
    let app = app_with(
        control::ControlOptions::default(),
        api::ApiOptions {
            max_body_bytes: 1024,
            ..Default::default()
        },
    );
    let big = format!(r#"{{"network": {{"name": "{}"}}}}"#, "x".repeat(2048));
    let r = app.send("POST", "/v1.1/tenants/t/networks", &big).await;
    assert_eq!(r.code(), 413);
    assert_eq!(r.json()["QuantumError"]["type"], "QuantumServiceFault");
    assert_eq!(
        r.json()["QuantumError"]["message"],
        "The body of your request was too large for this server."
    );
    let r = app.send("POST", "/v1.0/tenants/t/networks", &big).await;
    assert_eq!(r.code(), 413);
    assert_eq!(r.json()["Request Entity Too Large"]["code"], 413);
    assert!(app.control.list_networks("t").unwrap().is_empty());
}

#[tokio::test]
async fn default_body_cap_is_one_mebibyte() {
    let app = app();
    let big = format!(r#"{{"network": {{"name": "{}"}}}}"#, "x".repeat(1 << 20));
    let r = app.send("POST", "/v1.1/tenants/t/networks", &big).await;
    assert_eq!(r.code(), 413);
}

#[tokio::test]
async fn exhausted_vlans_are_a_clear_fault() {
    let app = app_with(
        control::ControlOptions {
            physnets: vec![control::Physnet {
                name: "physnet1".into(),
                vlan_ranges: vec![(10, 10)],
            }],
            ..Default::default()
        },
        api::ApiOptions::default(),
    );
    app.network("v1.1", "t", "only").await;
    let r = app
        .send(
            "POST",
            "/v1.1/tenants/t/networks",
            r#"{"network": {"name": "more"}}"#,
        )
        .await;
    assert_eq!(r.code(), 503);
    let j: Value = r.json();
    assert_eq!(j["QuantumError"]["type"], "NoFreeVlan");
    assert_eq!(
        j["QuantumError"]["detail"],
        "No free segmentation id: all VLAN ids 10..10 are in use by networks"
    );
    let r = app
        .send(
            "POST",
            "/v1.0/tenants/t/networks",
            r#"{"network": {"name": "more"}}"#,
        )
        .await;
    assert_eq!(r.code(), 470);
    assert_eq!(r.json()["serviceUnavailable"]["code"], 470);
    assert_eq!(app.control.list_networks("t").unwrap().len(), 1);
}

#[tokio::test]
async fn invalid_ids_in_paths_are_not_found() {
    let app = app();
    for id in ["..", "%20", "a%2Fb", "x%00y", &"z".repeat(2000)] {
        let r = app.get(&format!("/v1.1/tenants/t/networks/{id}")).await;
        assert_eq!(r.code(), 404, "{id}: {r:?}");
        assert_eq!(r.json()["QuantumError"]["type"], "NetworkNotFound");
    }
    let r = app.get("/v1.1/tenants/t/networks/%FF").await;
    assert_eq!(r.code(), 400, "{r:?}");
    assert_eq!(r.json()["QuantumError"]["type"], "QuantumServiceFault");
    // A tenant id the model refuses cannot create anything.
    let long = "t".repeat(300);
    let r = app
        .send(
            "POST",
            &format!("/v1.1/tenants/{long}/networks"),
            r#"{"network": {"name": "n"}}"#,
        )
        .await;
    assert_eq!(r.code(), 400);
}

/// A store that fails every transaction once `fail` is set.
#[derive(Debug)]
struct Flaky {
    inner: control::store::sqlite::SqliteStore,
    fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Flaky {
    fn check(&self) -> control::Result<()> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(control::ControlError::Store {
                detail: "disk I/O error in /var/lib/secret.db".into(),
            });
        }
        Ok(())
    }
}

type Body<'a> = &'a mut dyn FnMut(&dyn control::store::Tx) -> control::Result<()>;

impl control::store::Store for Flaky {
    fn read(&self, f: Body<'_>) -> control::Result<()> {
        self.check()?;
        self.inner.read(f)
    }

    fn write(
        &self,
        f: &mut dyn FnMut(
            &dyn control::store::Tx,
        ) -> control::Result<Option<control::store::AfterCommit>>,
    ) -> control::Result<()> {
        self.check()?;
        self.inner.write(f)
    }
}

#[tokio::test]
async fn store_failures_are_500_without_internal_detail() {
    let fail = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let store = Flaky {
        inner: control::store::sqlite::SqliteStore::open_in_memory().unwrap(),
        fail: fail.clone(),
    };
    let c = control::Control::with_store(
        Box::new(store),
        std::sync::Arc::new(control::NullForwarder),
        control::ControlOptions::default(),
    )
    .unwrap();
    let router = api::router(std::sync::Arc::new(c), api::ApiOptions::default());
    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    for (v, key) in [("v1.0", "Internal Server Error"), ("v1.1", "QuantumError")] {
        let req = axum::http::Request::get(format!("/{v}/tenants/t/networks"))
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = tower::ServiceExt::oneshot(router.clone(), req)
            .await
            .unwrap();
        assert_eq!(resp.status(), 500);
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        let text = body.to_string();
        assert!(!text.contains("secret"), "{text}");
        assert_eq!(
            body[key]["message"],
            "The server has either erred or is incapable of performing the requested operation."
        );
        assert_eq!(body[key]["detail"], "");
    }
}

#[tokio::test]
async fn request_parsing_comes_before_lookups_and_state_after() {
    let app = app();
    // Missing parameters are judged first, even on a missing network.
    let r = app
        .send("PUT", "/v1.1/tenants/t/networks/nope", r#"{"network": {}}"#)
        .await;
    assert_eq!(r.code(), 400);
    let r = app
        .send(
            "PUT",
            "/v1.1/tenants/t/networks/nope/ports/p/attachment",
            r#"{"attachment": {}}"#,
        )
        .await;
    assert_eq!(r.code(), 400);
    // A bad state is judged after the lookups.
    let r = app
        .send(
            "POST",
            "/v1.0/tenants/t/networks/nope/ports",
            r#"{"port": {"state": "bad"}}"#,
        )
        .await;
    assert_eq!(r.code(), 420);
    let net = app.network("v1.1", "t", "n").await;
    let r = app
        .send(
            "PUT",
            &format!("/v1.0/tenants/t/networks/{net}/ports/nope"),
            r#"{"port": {"state": "bad"}}"#,
        )
        .await;
    assert_eq!(r.code(), 430);
    // An empty name is a name, on create and on rename.
    let r = app
        .send(
            "PUT",
            &format!("/v1.1/tenants/t/networks/{net}"),
            r#"{"network": {"name": ""}}"#,
        )
        .await;
    assert_eq!(r.code(), 204);
}
