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

fn limited(tenant_labels: bool) -> App {
    let mut opts = api::ApiOptions {
        rate_limits: api::RateLimits {
            read: Some(api::Rate {
                per_minute: 60,
                burst: 2,
            }),
            write: None,
        },
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
    for tenant_labels in [false, true] {
        let app = limited(tenant_labels);
        for _ in 0..5 {
            app.get("/v1.1/tenants/flood/networks").await;
        }
        let page = app.get("/metrics").await.body;
        let tenant = if tenant_labels { "flood" } else { "" };
        assert_eq!(
            sample(
                &page,
                "qswitch_api_rate_limited_total",
                &format!("tenant_class=\"noauth\",tenant=\"{tenant}\"")
            ),
            Some(3.0),
            "burst of 2, then refused: {page}"
        );
    }
}

#[tokio::test]
async fn metrics_need_an_admin_token_in_token_mode() {
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
    let app = app_with(
        control::ControlOptions::default(),
        api::ApiOptions {
            auth: api::Auth::Token(Arc::new(tokens)),
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
