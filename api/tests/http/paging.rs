//! Pagination and ATOM links of the v1.1 lists (spec section 8): walks
//! forward and backward over lists that grow between calls, links that
//! resolve, filters before paging, bad limits and markers.

use serde_json::{json, Value};

use crate::common::*;

/// The path and query of a link (the router is called in-process).
fn local(href: &str) -> String {
    href.strip_prefix("http://127.0.0.1:9696")
        .unwrap_or_else(|| panic!("link on another host: {href}"))
        .to_owned()
}

fn link(body: &Value, key: &str, rel: &str) -> Option<String> {
    body[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {body}"))
        .iter()
        .find(|l| l["rel"] == rel)
        .map(|l| local(l["href"].as_str().unwrap()))
}

fn ids(body: &Value, key: &str) -> Vec<String> {
    body[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn forward_walk_over_a_growing_list_loses_and_repeats_nothing() {
    let app = app();
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(app.network("v1.1", "t", &format!("n{i}")).await);
    }
    let mut seen = Vec::new();
    let mut next = Some("/v1.1/tenants/t/networks?limit=3".to_owned());
    let mut pages = 0;
    while let Some(uri) = next {
        let r = app.get(&uri).await;
        assert_eq!(r.code(), 200, "{r:?}");
        let body = r.json_full();
        let page = ids(&body, "networks");
        assert!(page.len() <= 3);
        seen.extend(page);
        next = link(&body, "networks_links", "next");
        // The list grows between the calls of the walk.
        if next.is_some() && pages < 3 {
            created.push(app.network("v1.1", "t", &format!("late{pages}")).await);
        }
        pages += 1;
    }
    assert_eq!(seen, created, "every network once, in creation order");
}

#[tokio::test]
async fn backward_walk_from_the_end_with_appends_and_links_that_resolve() {
    let app = app();
    let net = app.network("v1.1", "t", "n").await;
    let mut ports = Vec::new();
    for _ in 0..8 {
        ports.push(app.port("v1.1", "t", &net, "DOWN").await);
    }
    let base = format!("/v1.1/tenants/t/networks/{net}/ports");
    // The last page first: page_reverse without a marker.
    let r = app
        .get(&format!("{base}/detail?limit=3&page_reverse=true"))
        .await;
    assert_eq!(r.code(), 200, "{r:?}");
    let body = r.json_full();
    assert_eq!(ids(&body, "ports"), ports[5..].to_vec());
    assert!(link(&body, "ports_links", "next").is_none());
    let mut back = ids(&body, "ports");
    let mut prev = link(&body, "ports_links", "previous");
    while let Some(uri) = prev {
        assert!(uri.starts_with(&format!("{base}/detail?")), "{uri}");
        // Appends after the walk started land after it: not in the walk.
        app.port("v1.1", "t", &net, "DOWN").await;
        let body = app.get(&uri).await.json_full();
        let mut page = ids(&body, "ports");
        page.extend(back);
        back = page;
        prev = link(&body, "ports_links", "previous");
    }
    assert_eq!(back, ports);

    // Every port's links resolve: self directly, bookmark by redirect.
    let body = app.get(&format!("{base}?limit=2")).await.json_full();
    let first = &body["ports"][0];
    let links = first["links"].as_array().unwrap();
    assert_eq!(links[0]["rel"], "self");
    assert_eq!(links[1]["rel"], "bookmark");
    let this = local(links[0]["href"].as_str().unwrap());
    assert_eq!(this, format!("{base}/{}", ports[0]));
    let r = app.get(&this).await;
    assert_eq!(r.json()["port"]["id"], ports[0].as_str());
    let bookmark = local(links[1]["href"].as_str().unwrap());
    assert_eq!(
        bookmark,
        format!("/tenants/t/networks/{net}/ports/{}", ports[0])
    );
    let r = app.get(&bookmark).await;
    assert_eq!(r.code(), 301);
    assert_eq!(r.location.as_deref(), Some(this.as_str()));
    assert_eq!(app.get(&this).await.code(), 200);
}

#[tokio::test]
async fn every_v11_resource_carries_self_and_bookmark_links_and_v10_none() {
    let app = app();
    let net = app.network("v1.1", "t", "n").await;
    let port = app.port("v1.1", "t", &net, "ACTIVE").await;
    app.register("v1.1", "t", "vif", "tap0").await;
    let want_net = json!([
        {"rel": "self", "href": format!("http://127.0.0.1:9696/v1.1/tenants/t/networks/{net}")},
        {"rel": "bookmark", "href": format!("http://127.0.0.1:9696/tenants/t/networks/{net}")},
    ]);
    for uri in [
        format!("/v1.1/tenants/t/networks/{net}"),
        format!("/v1.1/tenants/t/networks/{net}/detail"),
    ] {
        assert_eq!(
            app.get(&uri).await.json_full()["network"]["links"],
            want_net,
            "{uri}"
        );
    }
    for uri in [
        "/v1.1/tenants/t/networks",
        "/v1.1/tenants/t/networks/detail",
    ] {
        assert_eq!(
            app.get(uri).await.json_full()["networks"][0]["links"],
            want_net
        );
    }
    let r = app
        .send(
            "POST",
            "/v1.1/tenants/t/networks",
            r#"{"network": {"name": "x"}}"#,
        )
        .await;
    assert_eq!(r.json_full()["network"]["links"][0]["rel"], "self");
    let p = format!("/v1.1/tenants/t/networks/{net}/ports/{port}");
    for uri in [p.clone(), format!("{p}/detail")] {
        let links = &app.get(&uri).await.json_full()["port"]["links"];
        assert_eq!(local(links[0]["href"].as_str().unwrap()), p);
    }
    let detail = app
        .get(&format!("/v1.1/tenants/t/networks/{net}/detail"))
        .await
        .json_full();
    assert_eq!(
        local(
            detail["network"]["ports"][0]["links"][0]["href"]
                .as_str()
                .unwrap()
        ),
        p
    );
    let i = app.get("/v1.1/tenants/t/interfaces/vif").await.json_full();
    assert_eq!(
        i["interface"]["links"][1]["href"],
        "http://127.0.0.1:9696/tenants/t/interfaces/vif"
    );
    // v1.0 bodies are as they always were.
    let r = app.get(&format!("/v1.0/tenants/t/networks/{net}")).await;
    assert_eq!(r.json_full(), json!({"network": {"id": net, "name": "n"}}));
    let r = app.get("/v1.0/tenants/t/networks?limit=1").await;
    assert_eq!(
        r.json_full()["networks"].as_array().unwrap().len(),
        0,
        "v1.0: unknown filter key"
    );
    let r = app
        .get(&format!("/v1.0/tenants/t/networks/{net}/ports"))
        .await;
    assert_eq!(r.json_full(), json!({"ports": [{"id": port}]}));
}

#[tokio::test]
async fn bookmarks_redirect_any_method_and_keep_suffix_and_query() {
    let app = app();
    let net = app.network("v1.1", "t", "n").await;
    let r = app.get(&format!("/tenants/t/networks/{net}.xml?x=1")).await;
    assert_eq!(r.code(), 301);
    assert_eq!(
        r.location.as_deref(),
        Some(format!("/v1.1/tenants/t/networks/{net}.xml?x=1").as_str())
    );
    let r = app.delete(&format!("/tenants/t/networks/{net}")).await;
    assert_eq!(r.code(), 308, "other methods keep their method");
    let r = app
        .get(&format!("/v1.1/tenants/t/networks/{net}.xml"))
        .await;
    assert!(r.body.contains("rel=\"bookmark\""), "{}", r.body);
}

#[tokio::test]
async fn filters_apply_before_paging_and_links_keep_them() {
    let app = app();
    let net = app.network("v1.1", "t", "n").await;
    let mut active = Vec::new();
    for i in 0..9 {
        let state = if i % 3 == 0 { "ACTIVE" } else { "DOWN" };
        let p = app.port("v1.1", "t", &net, state).await;
        if state == "ACTIVE" {
            active.push(p);
        }
    }
    let base = format!("/v1.1/tenants/t/networks/{net}/ports");
    let body = app
        .get(&format!("{base}?state=ACTIVE&limit=2"))
        .await
        .json_full();
    assert_eq!(ids(&body, "ports"), active[..2].to_vec());
    let next = link(&body, "ports_links", "next").unwrap();
    assert!(next.contains("state=ACTIVE"), "{next}");
    let body = app.get(&next).await.json_full();
    assert_eq!(ids(&body, "ports"), active[2..].to_vec());
    assert!(link(&body, "ports_links", "next").is_none());
    assert!(link(&body, "ports_links", "previous").is_some());
    // Network lists too.
    app.network("v1.1", "t", "other").await;
    let body = app
        .get("/v1.1/tenants/t/networks?name=other&limit=1")
        .await
        .json_full();
    assert_eq!(body["networks"].as_array().unwrap().len(), 1);
    assert_eq!(body["networks_links"], json!([]));
}

#[tokio::test]
async fn bad_limits_and_unknown_markers_are_400() {
    let app = app();
    let net = app.network("v1.1", "t", "n").await;
    let other = app.network("v1.1", "t", "m").await;
    let port = app.port("v1.1", "t", &other, "DOWN").await;
    for q in [
        "limit=0",
        "limit=-2",
        "limit=x",
        "limit=",
        "marker=",
        "page_reverse=sideways",
    ] {
        for uri in [
            format!("/v1.1/tenants/t/networks?{q}"),
            format!("/v1.1/tenants/t/networks/{net}/ports/detail?{q}"),
        ] {
            let r = app.get(&uri).await;
            assert_eq!(r.code(), 400, "{uri}: {r:?}");
            assert_eq!(r.json()["QuantumError"]["type"], "QuantumServiceFault");
        }
    }
    let r = app.get("/v1.1/tenants/t/networks?marker=nope").await;
    assert_eq!(r.code(), 400);
    assert!(r.json()["QuantumError"]["detail"]
        .as_str()
        .unwrap()
        .contains("nope"));
    // A port of another network is not a marker of this list.
    let r = app
        .get(&format!(
            "/v1.1/tenants/t/networks/{net}/ports?marker={port}"
        ))
        .await;
    assert_eq!(r.code(), 400);
    // Another tenant's network id is not a marker either.
    let r = app
        .get(&format!("/v1.1/tenants/u/networks?marker={net}"))
        .await;
    assert_eq!(r.code(), 400);
    // The network is looked up before the query is judged.
    let r = app.get("/v1.1/tenants/t/networks/nope/ports?limit=0").await;
    assert_eq!(r.code(), 404);
}

#[tokio::test]
async fn the_server_maximum_page_size_applies_without_a_limit() {
    let app = app_with(
        control::ControlOptions::default(),
        api::ApiOptions {
            max_page_size: 2,
            ..Default::default()
        },
    );
    for i in 0..5 {
        app.network("v1.1", "t", &format!("n{i}")).await;
    }
    let body = app.get("/v1.1/tenants/t/networks").await.json_full();
    assert_eq!(body["networks"].as_array().unwrap().len(), 2);
    let next = link(&body, "networks_links", "next").unwrap();
    assert!(next.contains("limit=2"), "{next}");
    let body = app
        .get("/v1.1/tenants/t/networks?limit=100")
        .await
        .json_full();
    assert_eq!(body["networks"].as_array().unwrap().len(), 2, "capped");
    // v1.0 lists are not paged.
    let body = app.get("/v1.0/tenants/t/networks").await.json_full();
    assert_eq!(body["networks"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn xml_lists_carry_their_page_links() {
    let app = app();
    for i in 0..3 {
        app.network("v1.1", "t", &format!("n{i}")).await;
    }
    let r = app.get("/v1.1/tenants/t/networks.xml?limit=1").await;
    assert!(
        r.body.contains("<networks_links><networks_link rel=\"next\" href=\"http://127.0.0.1:9696/v1.1/tenants/t/networks.xml?limit=1&amp;marker="),
        "{}",
        r.body
    );
    assert!(
        r.body.ends_with("</networks_links></networks>"),
        "{}",
        r.body
    );
}
