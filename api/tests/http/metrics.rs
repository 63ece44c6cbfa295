//! `/metrics`: requests by route template, refusals by tenant class (tenant ids only when asked
//! for), the store's series, and admin-only access in token mode.

use std::sync::Arc;

use crate::common::*;

/// The value of the sample `name{labels}` in a text exposition (exact label text).
fn sample(page: &str, name: &str, labels: &str) -> Option<f64> {
    let key = if labels.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{labels}}}")
    };
    page.lines()
        .find_map(|l| l.strip_prefix(&key)?.strip_prefix(' ')?.parse().ok())
}

/// A rate-limited app (reads: burst of 2), in token mode when `tokens` are given.
fn limited(tenant_labels: bool, tokens: Option<api::Tokens>) -> App {
    let mut opts = api::ApiOptions {
        rate_limits: api::RateLimits {
            read: Some(api::Rate {
                per_minute: 60,
                burst: 2,
            }),
            write: None,
        },
        auth: tokens.map_or(api::Auth::NoAuth, |t| api::Auth::Token(Arc::new(t))),
        ..Default::default()
    };
    let app = app_with(control::ControlOptions::default(), opts.clone());
    opts.metrics = Some(api::Metrics::new(
        app.control.clone(),
        api::MetricsOptions { tenant_labels },
        Vec::new(),
    ));
    App {
        router: api::router(app.control.clone(), opts),
        ..app
    }
}

fn member_and_admin() -> api::Tokens {
    let mut tokens = api::Tokens::new();
    let p = |tenant: &str, role| api::Principal {
        tenant: tenant.into(),
        roles: vec![role],
    };
    tokens
        .insert_token("tok-admin", p("ops", api::Role::Admin))
        .unwrap();
    tokens
        .insert_token("tok-a", p("a", api::Role::Member))
        .unwrap();
    tokens
}

#[tokio::test]
async fn requests_are_counted_by_route_template_method_and_status() {
    let app = app();
    for t in ["a", "b", "c"] {
        assert_eq!(
            app.get(&format!("/v1.1/tenants/{t}/networks")).await.code(),
            200
        );
    }
    assert_eq!(app.get("/v1.0/tenants/a/networks/nope").await.code(), 420);
    assert_eq!(app.get("/no/such/path").await.code(), 404);
    let r = app.get("/metrics").await;
    assert_eq!(r.code(), 200);
    assert_eq!(
        r.content_type.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let page = &r.body;
    let requests = |route: &str, status: u16| {
        sample(
            page,
            "qswitch_api_requests_total",
            &format!("route=\"{route}\",method=\"GET\",status=\"{status}\""),
        )
    };
    // One series for the three tenants: the template, never the raw path.
    assert_eq!(
        requests("/v1.1/tenants/{tenant_id}/networks", 200),
        Some(3.0)
    );
    assert_eq!(
        requests("/v1.0/tenants/{tenant_id}/networks/{network_id}", 420),
        Some(1.0)
    );
    assert_eq!(requests("unmatched", 404), Some(1.0));
    assert!(!page.contains("tenants/a/"), "no raw path in a label");
    assert_eq!(
        sample(
            page,
            "qswitch_api_request_duration_seconds_count",
            "route=\"/v1.1/tenants/{tenant_id}/networks\",method=\"GET\""
        ),
        Some(3.0)
    );
    assert!(sample(
        page,
        "qswitch_store_transaction_duration_seconds_count",
        "kind=\"read\""
    )
    .is_some_and(|n| n >= 4.0));
    assert!(sample(page, "qswitch_store_revision", "").is_some());
    assert!(sample(page, "qswitch_dataplane_applied_revision", "").is_some());
}

#[tokio::test]
async fn refusals_are_counted_by_tenant_class_and_by_tenant_only_when_configured() {
    let refused = |page: &str, labels: &str| sample(page, "qswitch_api_rate_limited_total", labels);
    for tenant_labels in [false, true] {
        // Token mode: the token's class, and its tenant when configured.
        let app = limited(tenant_labels, Some(member_and_admin()));
        for _ in 0..5 {
            let h = [("x-auth-token", "tok-a")];
            app.req("GET", "/v1.1/tenants/a/networks", None, &h).await;
        }
        let h = [("x-auth-token", "tok-admin")];
        let page = app.req("GET", "/metrics", None, &h).await.body;
        let tenant = if tenant_labels { "a" } else { "" };
        assert_eq!(
            refused(
                &page,
                &format!("tenant_class=\"member\",tenant=\"{tenant}\"")
            ),
            Some(3.0),
            "burst of 2, then refused: {page}"
        );
        // noauth: the class only, whatever tenant the caller names.
        let app = limited(tenant_labels, None);
        for i in 0..5 {
            app.get(&format!("/v1.1/tenants/flood{}/networks", i / 3))
                .await;
        }
        let page = app.get("/metrics").await.body;
        assert_eq!(
            refused(&page, "tenant_class=\"noauth\",tenant=\"\""),
            Some(1.0),
            "{page}"
        );
    }
}

#[tokio::test]
async fn metrics_need_an_admin_token_in_token_mode() {
    let app = app_with(
        control::ControlOptions::default(),
        api::ApiOptions {
            auth: api::Auth::Token(Arc::new(member_and_admin())),
            ..Default::default()
        },
    );
    assert_eq!(app.get("/metrics").await.code(), 401);
    let r = app
        .req("GET", "/metrics", None, &[("x-auth-token", "tok-a")])
        .await;
    assert_eq!(r.code(), 403);
    let r = app
        .req("GET", "/metrics", None, &[("x-auth-token", "tok-admin")])
        .await;
    assert_eq!(r.code(), 200);
    assert!(r.body.contains("qswitch_api_requests_total"), "{}", r.body);
    // The callers' classes: the member's refused scrape is not a rate or quota refusal.
    assert!(!r.body.contains("qswitch_api_rate_limited_total{"));
}

#[tokio::test]
async fn v2_quota_refusals_count_and_v2_routes_name_their_collection() {
    let app = app_with(
        control::ControlOptions {
            quotas: control::Quotas {
                networks: Some(1),
                ..control::Quotas::default()
            },
            ..Default::default()
        },
        api::ApiOptions::default(),
    );
    let create = || app.send("POST", "/v2.0/networks", r#"{"network": {"name": "n"}}"#);
    assert_eq!(create().await.code(), 201);
    assert_eq!(create().await.code(), 409);
    assert_eq!(app.get("/v2.0/ports").await.code(), 200);
    let page = app.get("/metrics").await.body;
    assert_eq!(
        sample(
            &page,
            "qswitch_api_over_quota_total",
            "tenant_class=\"noauth\",tenant=\"\""
        ),
        Some(1.0),
        "{page}"
    );
    let requests = |route: &str, method: &str, status: u16| {
        sample(
            &page,
            "qswitch_api_requests_total",
            &format!("route=\"{route}\",method=\"{method}\",status=\"{status}\""),
        )
    };
    assert_eq!(requests("/v2.0/networks", "POST", 409), Some(1.0));
    assert_eq!(requests("/v2.0/ports", "GET", 200), Some(1.0));
}

#[tokio::test]
async fn the_metrics_listener_serves_without_a_token_and_nothing_else() {
    use tower::ServiceExt;
    let app = app();
    let metrics = api::Metrics::new(
        app.control.clone(),
        api::MetricsOptions::default(),
        Vec::new(),
    );
    let get = |uri: &str| {
        axum::http::Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let r = api::metrics_router(metrics.clone())
        .oneshot(get("/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = api::metrics_router(metrics)
        .oneshot(get("/v1.1/tenants/a/networks"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_server_without_a_data_plane_exports_no_applied_revision() {
    let dir = tempfile::tempdir().unwrap();
    let control = Arc::new(open_control(
        dir.path(),
        Arc::new(control::NullForwarder),
        control::ControlOptions::default(),
    ));
    let app = App {
        router: api::router(control.clone(), api::ApiOptions::default()),
        control,
        fwd: Arc::new(Recorder::default()),
        _dir: dir,
    };
    let page = app.get("/metrics").await.body;
    assert!(sample(&page, "qswitch_store_revision", "").is_some());
    assert!(sample(&page, "qswitch_dataplane_applied_revision", "").is_none());
}
