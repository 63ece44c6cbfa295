//! Rate limits (429 + Retry-After, per tenant and verb class, recovery)
//! and quotas (over-quota faults, the limits document).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

/// A rate-limited app on a clock the test advances.
fn limited() -> (App, Arc<AtomicU64>) {
    let base = Instant::now();
    let ms = Arc::new(AtomicU64::new(0));
    let m = ms.clone();
    let app = app_with(
        control::ControlOptions::default(),
        api::ApiOptions {
            rate_limits: api::RateLimits {
                read: Some(api::Rate {
                    per_minute: 600,
                    burst: 4,
                }),
                write: Some(api::Rate {
                    per_minute: 60,
                    burst: 2,
                }),
            },
            clock: api::Clock::from_fn(move || {
                base + Duration::from_millis(m.load(Ordering::Relaxed))
            }),
            ..Default::default()
        },
    );
    (app, ms)
}

async fn create(app: &App, v: &str, tenant: &str) -> Resp {
    app.send(
        "POST",
        &format!("/{v}/tenants/{tenant}/networks"),
        r#"{"network": {"name": "n"}}"#,
    )
    .await
}

#[tokio::test]
async fn writes_over_the_rate_are_429_with_retry_after_and_recover() {
    let (app, clock) = limited();
    assert_eq!(create(&app, "v1.1", "a").await.code(), 202);
    assert_eq!(create(&app, "v1.1", "a").await.code(), 202);
    let r = create(&app, "v1.1", "a").await;
    assert_eq!(r.code(), 429, "{r:?}");
    assert_eq!(r.retry_after.as_deref(), Some("1"));
    assert_eq!(r.json()["QuantumError"]["type"], "OverLimit");
    let detail = r.json()["QuantumError"]["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.contains("60 write requests per minute"), "{detail}");
    // v1.0 shares the tenant's bucket and answers its own fault body.
    let r = create(&app, "v1.0", "a").await;
    assert_eq!(r.code(), 429);
    assert_eq!(r.json()["overLimit"]["code"], 429);
    // Refused requests changed nothing.
    assert_eq!(app.control.usage("a").unwrap().0.networks, 2);
    // Reads are another class; another tenant has its own buckets.
    assert_eq!(app.get("/v1.1/tenants/a/networks").await.code(), 200);
    assert_eq!(create(&app, "v1.1", "b").await.code(), 202);
    // One second later one more write passes, then the bucket is empty again.
    clock.store(1_000, Ordering::Relaxed);
    assert_eq!(create(&app, "v1.1", "a").await.code(), 202);
    assert_eq!(create(&app, "v1.1", "a").await.code(), 429);
    // After a quiet minute the whole burst is back.
    clock.store(61_000, Ordering::Relaxed);
    assert_eq!(create(&app, "v1.1", "a").await.code(), 202);
    assert_eq!(create(&app, "v1.1", "a").await.code(), 202);
}

#[tokio::test]
async fn one_tenants_flood_does_not_touch_another_tenant() {
    let (app, _clock) = limited();
    let mut refused = 0;
    for _ in 0..200 {
        let r = app.get("/v1.1/tenants/flood/networks").await;
        if r.code() == 429 {
            refused += 1;
        }
    }
    assert_eq!(refused, 196, "burst of 4, then every request refused");
    for _ in 0..4 {
        assert_eq!(app.get("/v1.1/tenants/quiet/networks").await.code(), 200);
    }
}

#[tokio::test]
async fn limits_document_shows_rates_remaining_and_quotas() {
    let base = Instant::now();
    let app = app_with(
        control::ControlOptions {
            quotas: control::Quotas {
                networks: Some(2),
                subnets: Some(7),
                ports: None,
                interfaces: Some(5),
            },
            ..Default::default()
        },
        api::ApiOptions {
            rate_limits: api::RateLimits {
                read: Some(api::Rate {
                    per_minute: 120,
                    burst: 10,
                }),
                write: None,
            },
            clock: api::Clock::from_fn(move || base),
            ..Default::default()
        },
    );
    app.network("v1.1", "t", "n").await;
    let r = app.get("/v1.1/tenants/t/limits").await;
    assert_eq!(r.code(), 200, "{r:?}");
    assert_eq!(
        r.json(),
        json!({"limits": {
            "rate": [{"class": "read", "verbs": ["GET", "HEAD"], "value": 120, "unit": "MINUTE",
                      "burst": 10, "remaining": 9}],
            "absolute": {"maxNetworks": 2, "maxSubnets": 7, "maxPorts": -1, "maxInterfaces": 5,
                         "totalNetworksUsed": 1, "totalSubnetsUsed": 0, "totalPortsUsed": 0,
                         "totalInterfacesUsed": 0}
        }})
    );
    // A v1.1 addition only.
    assert_eq!(app.get("/v1.0/tenants/t/limits").await.code(), 404);
}

#[tokio::test]
async fn quotas_refuse_the_resource_over_the_limit_with_a_clear_fault() {
    let app = app_with(
        control::ControlOptions {
            quotas: control::Quotas {
                networks: Some(2),
                subnets: None,
                ports: Some(3),
                interfaces: Some(1),
            },
            ..Default::default()
        },
        api::ApiOptions::default(),
    );
    let n1 = app.network("v1.1", "t", "a").await;
    let n2 = app.network("v1.1", "t", "b").await;
    let r = create(&app, "v1.1", "t").await;
    assert_eq!(r.code(), 409, "{r:?}");
    assert_eq!(r.json()["QuantumError"]["type"], "OverQuota");
    assert_eq!(
        r.json()["QuantumError"]["detail"],
        "Quota exceeded for networks: the tenant holds 2 of its limit of 2"
    );
    let r = create(&app, "v1.0", "t").await;
    assert_eq!(r.code(), 413);
    assert_eq!(r.json()["overLimit"]["code"], 413);
    // Another tenant has its own count.
    app.network("v1.1", "u", "c").await;
    // Ports count over all of the tenant's networks.
    app.port("v1.1", "t", &n1, "DOWN").await;
    app.port("v1.1", "t", &n2, "DOWN").await;
    let p3 = app.port("v1.1", "t", &n2, "DOWN").await;
    let r = app
        .send("POST", &format!("/v1.1/tenants/t/networks/{n1}/ports"), "")
        .await;
    assert_eq!(r.code(), 409);
    assert!(r.json()["QuantumError"]["detail"]
        .as_str()
        .unwrap()
        .contains("ports"));
    // Freeing one makes room again.
    let r = app
        .delete(&format!("/v1.1/tenants/t/networks/{n2}/ports/{p3}"))
        .await;
    assert_eq!(r.code(), 204);
    app.port("v1.1", "t", &n1, "DOWN").await;
    // Interfaces: re-registering an existing one is not a new one.
    app.register("v1.1", "t", "vif-1", "tap1").await;
    app.register("v1.1", "t", "vif-1", "tap2").await;
    let r = app
        .send(
            "PUT",
            "/v1.1/tenants/t/interfaces/vif-2",
            r#"{"interface": {"device": "tap3"}}"#,
        )
        .await;
    assert_eq!(r.code(), 409);
    let doc = app.get("/v1.1/tenants/t/limits").await.json();
    assert_eq!(doc["limits"]["absolute"]["totalNetworksUsed"], 2);
    assert_eq!(doc["limits"]["absolute"]["totalPortsUsed"], 3);
    assert_eq!(doc["limits"]["absolute"]["totalInterfacesUsed"], 1);
    assert_eq!(doc["limits"]["rate"], json!([]));
}

#[tokio::test]
async fn quotas_hold_for_neutron_v2_creates_too() {
    let app = app_with(
        control::ControlOptions {
            quotas: control::Quotas {
                networks: Some(1),
                subnets: Some(1),
                ports: Some(1),
                interfaces: None,
            },
            ..Default::default()
        },
        api::ApiOptions::default(),
    );
    let h = [("content-type", "application/json"), ("x-project-id", "p")];
    let r = app
        .req(
            "POST",
            "/v2.0/networks",
            Some(r#"{"network": {"name": "a"}}"#),
            &h,
        )
        .await;
    assert_eq!(r.code(), 201, "{r:?}");
    let net = r.json()["network"]["id"].as_str().unwrap().to_owned();
    let r = app
        .req(
            "POST",
            "/v2.0/networks",
            Some(r#"{"network": {"name": "b"}}"#),
            &h,
        )
        .await;
    assert_eq!(r.code(), 409, "{r:?}");
    assert_eq!(r.json()["NeutronError"]["type"], "OverQuota");
    let port = format!(r#"{{"port": {{"network_id": "{net}"}}}}"#);
    assert_eq!(
        app.req("POST", "/v2.0/ports", Some(&port), &h).await.code(),
        201
    );
    let r = app.req("POST", "/v2.0/ports", Some(&port), &h).await;
    assert_eq!(r.code(), 409, "{r:?}");
    let subnet = |cidr: &str| {
        format!(r#"{{"subnet": {{"network_id": "{net}", "ip_version": 4, "cidr": "{cidr}"}}}}"#)
    };
    let r = app
        .req("POST", "/v2.0/subnets", Some(&subnet("198.18.1.0/24")), &h)
        .await;
    assert_eq!(r.code(), 201, "{r:?}");
    let r = app
        .req("POST", "/v2.0/subnets", Some(&subnet("198.18.2.0/24")), &h)
        .await;
    assert_eq!(r.code(), 409, "{r:?}");
    assert_eq!(
        r.json()["NeutronError"]["message"],
        "Quota exceeded for resources: ['subnet']."
    );
    // The same count is seen from Quantum.
    let doc = app.get("/v1.1/tenants/p/limits").await.json();
    assert_eq!(doc["limits"]["absolute"]["totalNetworksUsed"], 1);
    assert_eq!(doc["limits"]["absolute"]["totalPortsUsed"], 1);
}

#[tokio::test]
async fn neutron_v2_is_rate_limited_per_project_with_its_own_fault_body() {
    let (app, clock) = limited();
    let post = |project: &'static str| {
        let app = &app;
        async move {
            app.req(
                "POST",
                "/v2.0/networks",
                Some(r#"{"network": {"name": "n"}}"#),
                &[
                    ("content-type", "application/json"),
                    ("x-project-id", project),
                ],
            )
            .await
        }
    };
    assert_eq!(post("p").await.code(), 201);
    assert_eq!(post("p").await.code(), 201);
    let r = post("p").await;
    assert_eq!(r.code(), 429, "{r:?}");
    assert_eq!(r.retry_after.as_deref(), Some("1"));
    assert_eq!(r.json()["NeutronError"]["type"], "OverLimit");
    assert_eq!(post("q").await.code(), 201, "another project");
    clock.store(1_000, Ordering::Relaxed);
    assert_eq!(post("p").await.code(), 201);
}

#[tokio::test]
async fn default_quotas_are_neutrons() {
    let app = app();
    let doc = app.get("/v1.1/tenants/t/limits").await.json();
    let abs = &doc["limits"]["absolute"];
    assert_eq!(abs["maxNetworks"], 100);
    assert_eq!(abs["maxSubnets"], 100);
    assert_eq!(abs["maxPorts"], 500);
    assert_eq!(abs["maxInterfaces"], -1);
}
