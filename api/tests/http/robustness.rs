//! Garbage in, a fault out: no combination of route, method and body gets
//! a 500 or a body that is not a well-formed answer in the asked format.

use crate::common::*;

const BODIES: &[Option<&str>] = &[
    None,
    Some(""),
    Some("{"),
    Some("null"),
    Some("[]"),
    Some("{}"),
    Some(r#"{"network": null}"#),
    Some(r#"{"network": {"name": {"nested": true}}}"#),
    Some(r#"{"port": {"state": null}}"#),
    Some(r#"{"port": {"state": ["ACTIVE"]}}"#),
    Some(r#"{"attachment": {"id": 12}}"#),
    Some(r#"{"attachment": {"id": "vif with space"}}"#),
    Some(r#"{"interface": {"device": ""}}"#),
    Some("<network/>"),
    Some("\u{feff}{}"),
    Some("\u{1}\u{2}"),
];

#[tokio::test]
async fn no_request_gets_a_server_error() {
    let app = app();
    let net = app.network("v1.1", "t", "n").await;
    let port = app.port("v1.1", "t", &net, "DOWN").await;
    let paths = [
        "/".to_owned(),
        "/v1.1/tenants/t/networks".to_owned(),
        "/v1.0/tenants/t/networks/detail".to_owned(),
        format!("/v1.1/tenants/t/networks/{net}"),
        format!("/v1.0/tenants/t/networks/{net}/detail"),
        format!("/v1.1/tenants/t/networks/{net}/ports"),
        format!("/v1.1/tenants/t/networks/{net}/ports/{port}"),
        format!("/v1.0/tenants/t/networks/{net}/ports/{port}/attachment"),
        "/v1.1/tenants/t/interfaces/vif".to_owned(),
        "/v1.0/extensions".to_owned(),
        "/v1.1/tenants/t/networks/%00/ports/%ZZ".to_owned(),
    ];
    for path in &paths {
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            for body in BODIES {
                for ct in ["application/json", "application/xml", "text/plain"] {
                    let headers = [("content-type", ct)];
                    let r = app.req(method, path, *body, &headers).await;
                    assert!(r.code() < 500, "{method} {path} {body:?} {ct}: {r:?}");
                    if r.code() == 204 || method == "HEAD" {
                        continue;
                    }
                    match r.content_type.as_deref() {
                        Some("application/json") => {
                            let _ = r.json();
                        }
                        Some("application/xml") => {
                            assert!(r.body.starts_with('<') && r.body.ends_with('>'), "{r:?}");
                        }
                        other => panic!("{method} {path}: content type {other:?}"),
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn deeply_nested_bodies_are_malformed_not_a_crash() {
    let app = app();
    let depth = 100_000;
    let json = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let r = app.send("POST", "/v1.1/tenants/t/networks", &json).await;
    assert_eq!(r.code(), 400);
    assert_eq!(r.json()["Error"]["message"], "Malformed request body");
    let xml = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
    let r = app.send_xml("POST", "/v1.1/tenants/t/networks", &xml).await;
    assert_eq!(r.code(), 400);
    let xml = format!(
        "<network>{}{}</network>",
        "<a>".repeat(20),
        "</a>".repeat(20)
    );
    let r = app.send_xml("POST", "/v1.1/tenants/t/networks", &xml).await;
    assert_eq!(r.code(), 400);
}
