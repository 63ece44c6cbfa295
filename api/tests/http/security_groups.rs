//! Neutron v2.0 security groups and rules: the default group, rule validation with Neutron's
//! types and messages, duplicates, groups in use, ports' groups, quotas.

use serde_json::{json, Value};

use crate::common::*;

async fn post(app: &App, path: &str, body: Value) -> Resp {
    app.send("POST", path, &body.to_string()).await
}

fn body(r: &Resp) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {r:?}"))
}

/// The error type and message of a Neutron fault.
fn fault(r: &Resp) -> (String, String) {
    let v = body(r);
    (
        v["NeutronError"]["type"].as_str().unwrap_or("").to_owned(),
        v["NeutronError"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
    )
}

async fn group(app: &App, name: &str) -> String {
    let r = post(
        app,
        "/v2.0/security-groups",
        json!({"security_group": {"name": name}}),
    )
    .await;
    assert_eq!(r.code(), 201, "{r:?}");
    body(&r)["security_group"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn rule(app: &App, group: &str, extra: Value) -> Resp {
    let mut r = json!({"security_group_id": group, "direction": "ingress"});
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    post(
        app,
        "/v2.0/security-group-rules",
        json!({ "security_group_rule": r }),
    )
    .await
}

#[tokio::test]
async fn every_project_gets_a_default_group_with_neutrons_rules() {
    let app = app();
    let r = app.get("/v2.0/security-groups").await;
    assert_eq!(r.code(), 200);
    let groups = body(&r)["security_groups"].as_array().unwrap().clone();
    assert_eq!(groups.len(), 1, "{groups:?}");
    let d = &groups[0];
    assert_eq!(d["name"], "default");
    assert_eq!(d["description"], "Default security group");
    assert_eq!(d["stateful"], true);
    let id = d["id"].as_str().unwrap();
    let mut rules: Vec<(String, String, Value)> = d["security_group_rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["belongs_to_default_sg"], true);
            assert_eq!(r["protocol"], Value::Null);
            (
                r["direction"].as_str().unwrap().to_owned(),
                r["ethertype"].as_str().unwrap().to_owned(),
                r["remote_group_id"].clone(),
            )
        })
        .collect();
    rules.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(
        rules,
        vec![
            ("egress".into(), "IPv4".into(), Value::Null),
            ("egress".into(), "IPv6".into(), Value::Null),
            ("ingress".into(), "IPv4".into(), json!(id)),
            ("ingress".into(), "IPv6".into(), json!(id)),
        ]
    );
    // Listed once, however often asked; not renamed, but described; not created twice.
    assert_eq!(
        body(&app.get("/v2.0/security-groups").await)["security_groups"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = app
        .send(
            "PUT",
            &format!("/v2.0/security-groups/{id}"),
            r#"{"security_group": {"name": "x"}}"#,
        )
        .await;
    assert_eq!(r.code(), 409);
    assert_eq!(
        fault(&r),
        (
            "SecurityGroupCannotUpdateDefault".into(),
            "Updating default security group not allowed.".into()
        )
    );
    let r = app
        .send(
            "PUT",
            &format!("/v2.0/security-groups/{id}"),
            r#"{"security_group": {"description": "mine"}}"#,
        )
        .await;
    assert_eq!(r.code(), 200);
    let r = post(
        &app,
        "/v2.0/security-groups",
        json!({"security_group": {"name": "default"}}),
    )
    .await;
    assert_eq!(r.code(), 409);
    assert_eq!(fault(&r).0, "SecurityGroupDefaultAlreadyExists");
    // A project (not admin) cannot delete its default group.
    let h = [("x-project-id", "pa")];
    let r = app.req("GET", "/v2.0/security-groups", None, &h).await;
    let pa_default = body(&r)["security_groups"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(pa_default, id);
    let r = app
        .req(
            "DELETE",
            &format!("/v2.0/security-groups/{pa_default}"),
            None,
            &h,
        )
        .await;
    assert_eq!(r.code(), 409);
    assert_eq!(fault(&r).0, "SecurityGroupCannotRemoveDefault");
    // Another project's group is not there for it.
    let r = app
        .req("GET", &format!("/v2.0/security-groups/{id}"), None, &h)
        .await;
    assert_eq!(r.code(), 404);
    assert_eq!(
        fault(&r),
        (
            "SecurityGroupNotFound".into(),
            format!("Security group {id} does not exist")
        )
    );
}

#[tokio::test]
async fn groups_are_created_updated_listed_and_deleted() {
    let app = app();
    let r = post(
        &app,
        "/v2.0/security-groups",
        json!({"security_group": {"name": "web", "description": "d", "stateful": false}}),
    )
    .await;
    assert_eq!(r.code(), 201, "{r:?}");
    let g = body(&r)["security_group"].clone();
    assert_eq!(
        (g["name"].as_str(), g["stateful"].as_bool()),
        (Some("web"), Some(false))
    );
    // A new group allows any egress.
    assert_eq!(g["security_group_rules"].as_array().unwrap().len(), 2);
    assert!(g["security_group_rules"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["direction"] == "egress"));
    let id = g["id"].as_str().unwrap();
    let r = app
        .send(
            "PUT",
            &format!("/v2.0/security-groups/{id}"),
            r#"{"security_group": {"name": "web2", "stateful": true}}"#,
        )
        .await;
    assert_eq!(r.code(), 200);
    assert_eq!(body(&r)["security_group"]["name"], "web2");
    let r = app
        .get("/v2.0/security-groups?name=web2&fields=id&fields=name")
        .await;
    assert_eq!(
        body(&r),
        json!({"security_groups": [{"id": id, "name": "web2"}]})
    );
    let r = app
        .get("/v2.0/security-groups?sort_key=name&sort_dir=desc&limit=1")
        .await;
    assert_eq!(body(&r)["security_groups"][0]["name"], "web2");
    // Bulk create, all or nothing.
    let r = post(
        &app,
        "/v2.0/security-groups",
        json!({"security_groups": [{"name": "a"}, {"name": "b"}]}),
    )
    .await;
    assert_eq!(r.code(), 201);
    assert_eq!(body(&r)["security_groups"].as_array().unwrap().len(), 2);
    let r = post(
        &app,
        "/v2.0/security-groups",
        json!({"security_group": {"name": "x", "bogus": 1}}),
    )
    .await;
    assert_eq!(
        fault(&r),
        (
            "HTTPBadRequest".into(),
            "Unrecognized attribute(s) 'bogus'".into()
        )
    );
    assert_eq!(
        app.delete(&format!("/v2.0/security-groups/{id}"))
            .await
            .code(),
        204
    );
    let r = app.delete(&format!("/v2.0/security-groups/{id}")).await;
    assert_eq!(r.code(), 404);
    assert_eq!(fault(&r).0, "SecurityGroupNotFound");
}

#[tokio::test]
async fn rules_are_checked_as_neutron_checks_them() {
    let app = app();
    let g = group(&app, "web").await;
    let r = rule(&app, &g, json!({"protocol": "tcp", "port_range_min": 80, "port_range_max": 80, "remote_ip_prefix": "198.18.0.5/16"})).await;
    assert_eq!(r.code(), 201, "{r:?}");
    let created = body(&r)["security_group_rule"].clone();
    assert_eq!(created["ethertype"], "IPv4");
    assert_eq!(created["normalized_cidr"], "198.18.0.0/16");
    assert_eq!(created["belongs_to_default_sg"], false);
    let first = created["id"].as_str().unwrap().to_owned();
    // A bare address is a host prefix, shown with its length; the same prefix written out is
    // then a duplicate.
    let r = rule(
        &app,
        &g,
        json!({"protocol": "udp", "remote_ip_prefix": "198.18.0.9"}),
    )
    .await;
    assert_eq!(r.code(), 201, "{r:?}");
    assert_eq!(
        body(&r)["security_group_rule"]["remote_ip_prefix"],
        "198.18.0.9/32"
    );
    let r = rule(
        &app,
        &g,
        json!({"protocol": "udp", "remote_ip_prefix": "198.18.0.9/32"}),
    )
    .await;
    assert_eq!(r.code(), 409, "{r:?}");
    // The same match again (the protocol by its number) is a duplicate.
    let r = rule(&app, &g, json!({"protocol": "6", "port_range_min": 80, "port_range_max": 80, "remote_ip_prefix": "198.18.0.5/16"})).await;
    assert_eq!(r.code(), 409);
    assert_eq!(
        fault(&r),
        (
            "SecurityGroupRuleExists".into(),
            format!("Security group rule already exists. Rule id is {first}.")
        )
    );
    let cases = [
        (
            json!({"protocol": "tcp", "port_range_min": 90, "port_range_max": 80}),
            "SecurityGroupInvalidPortRange",
        ),
        (
            json!({"protocol": "tcp", "port_range_min": 0, "port_range_max": 80}),
            "SecurityGroupInvalidPortValue",
        ),
        (
            json!({"port_range_min": 1, "port_range_max": 2}),
            "SecurityGroupProtocolRequiredWithPorts",
        ),
        (
            json!({"protocol": "gre", "port_range_min": 1}),
            "SecurityGroupInvalidProtocolForPort",
        ),
        (
            json!({"protocol": "icmp", "port_range_max": 0}),
            "SecurityGroupMissingIcmpType",
        ),
        (
            json!({"protocol": "icmp", "port_range_min": 256}),
            "SecurityGroupInvalidIcmpValue",
        ),
        (
            json!({"protocol": "foo"}),
            "SecurityGroupRuleInvalidProtocol",
        ),
        (
            json!({"ethertype": "IPv5"}),
            "SecurityGroupRuleInvalidEtherType",
        ),
        (
            json!({"ethertype": "IPv6", "remote_ip_prefix": "198.18.0.0/16"}),
            "SecurityGroupRuleParameterConflict",
        ),
        (json!({"remote_ip_prefix": "198.18.0.1/33"}), "InvalidCIDR"),
        // Neutron converts the prefix before its rule checks: the bad prefix wins.
        (
            json!({"protocol": "tcp", "port_range_min": 90, "port_range_max": 80,
                   "remote_ip_prefix": "nope", "remote_group_id": g}),
            "InvalidCIDR",
        ),
        // ... after the protocol's converter: a bad protocol wins over a bad prefix.
        (
            json!({"protocol": "foo", "remote_ip_prefix": "nope"}),
            "SecurityGroupRuleInvalidProtocol",
        ),
        (
            json!({"protocol": "ipv6-icmp"}),
            "SecurityGroupEthertypeConflictWithProtocol",
        ),
        (
            json!({"remote_ip_prefix": "198.18.0.0/16", "remote_group_id": g}),
            "SecurityGroupMultipleRemoteEntites",
        ),
        (json!({"direction": "sideways"}), "HTTPBadRequest"),
    ];
    for (extra, kind) in cases {
        let r = rule(&app, &g, extra.clone()).await;
        assert_eq!(r.code(), 400, "{extra}: {r:?}");
        assert_eq!(fault(&r).0, kind, "{extra}: {r:?}");
    }
    let r = rule(&app, "00000000-0000-0000-0000-000000000000", json!({})).await;
    assert_eq!(r.code(), 404);
    let r = rule(
        &app,
        &g,
        json!({"remote_group_id": "00000000-0000-0000-0000-000000000000"}),
    )
    .await;
    assert_eq!(fault(&r).0, "SecurityGroupNotFound");
    // ICMP type and code, any protocol, a remote group; then bulk.
    assert_eq!(
        rule(
            &app,
            &g,
            json!({"protocol": "icmp", "port_range_min": 8, "port_range_max": 0})
        )
        .await
        .code(),
        201
    );
    let r = rule(
        &app,
        &g,
        json!({"protocol": "any", "ethertype": "IPv6", "remote_group_id": g}),
    )
    .await;
    assert_eq!(r.code(), 201);
    assert_eq!(body(&r)["security_group_rule"]["protocol"], Value::Null);
    let r = post(&app, "/v2.0/security-group-rules", json!({"security_group_rules": [
        {"security_group_id": g, "direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22},
        {"security_group_id": g, "direction": "ingress", "protocol": "tcp", "port_range_min": 443, "port_range_max": 443},
    ]})).await;
    assert_eq!(r.code(), 201, "{r:?}");
    let r = app
        .get(&format!("/v2.0/security-group-rules?security_group_id={g}&protocol=tcp&fields=port_range_min&sort_key=port_range_min&sort_dir=asc"))
        .await;
    assert_eq!(
        body(&r),
        json!({"security_group_rules": [{"port_range_min": 22}, {"port_range_min": 80}, {"port_range_min": 443}]})
    );
    // A rule's description changes; a rule is deleted once.
    let r = app
        .send(
            "PUT",
            &format!("/v2.0/security-group-rules/{first}"),
            r#"{"security_group_rule": {"description": "web"}}"#,
        )
        .await;
    assert_eq!(body(&r)["security_group_rule"]["description"], "web");
    assert_eq!(
        app.delete(&format!("/v2.0/security-group-rules/{first}"))
            .await
            .code(),
        204
    );
    let r = app
        .delete(&format!("/v2.0/security-group-rules/{first}"))
        .await;
    assert_eq!(
        fault(&r),
        (
            "SecurityGroupRuleNotFound".into(),
            format!("Security group rule {first} does not exist")
        )
    );
    // Deleting a group takes the rules naming it as remote group with it.
    let other = group(&app, "other").await;
    assert_eq!(
        rule(&app, &other, json!({"remote_group_id": g}))
            .await
            .code(),
        201
    );
    assert_eq!(
        app.delete(&format!("/v2.0/security-groups/{g}"))
            .await
            .code(),
        204
    );
    let r = app.get(&format!("/v2.0/security-groups/{other}")).await;
    let left = body(&r)["security_group"]["security_group_rules"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(left, 2, "only its two egress rules are left");
}

#[tokio::test]
async fn ports_get_the_default_group_or_the_ones_asked_for() {
    let app = app();
    let r = post(&app, "/v2.0/networks", json!({"network": {"name": "n"}})).await;
    let net = body(&r)["network"]["id"].as_str().unwrap().to_owned();
    let web = group(&app, "web").await;
    let port = |extra: Value| {
        let mut p = json!({"network_id": net});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        post(&app, "/v2.0/ports", json!({ "port": p }))
    };
    let r = port(json!({})).await;
    assert_eq!(r.code(), 201);
    let p1 = body(&r)["port"].clone();
    let default = body(&app.get("/v2.0/security-groups?name=default").await)["security_groups"][0]
        ["id"]
        .clone();
    assert_eq!(p1["security_groups"], json!([default]));
    let r = port(json!({"security_groups": [web]})).await;
    let p2 = body(&r)["port"]["id"].as_str().unwrap().to_owned();
    assert_eq!(body(&r)["port"]["security_groups"], json!([web]));
    let r = port(json!({"port_security_enabled": false, "security_groups": [web]})).await;
    assert_eq!(r.code(), 400);
    assert_eq!(fault(&r).0, "PortSecurityAndIPRequiredForSecurityGroups");
    let r = port(json!({"port_security_enabled": false})).await;
    assert_eq!(body(&r)["port"]["security_groups"], json!([]));
    let r = port(json!({"security_groups": ["00000000-0000-0000-0000-000000000000"]})).await;
    assert_eq!(r.code(), 404);
    assert_eq!(fault(&r).0, "SecurityGroupNotFound");
    // A group twice is 400; stateful and stateless groups together 409.
    let r = port(json!({"security_groups": [web, web]})).await;
    assert_eq!(r.code(), 400, "{r:?}");
    let r = post(
        &app,
        "/v2.0/security-groups",
        json!({"security_group": {"name": "raw", "stateful": false}}),
    )
    .await;
    let raw = body(&r)["security_group"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = port(json!({"security_groups": [web, raw]})).await;
    assert_eq!(r.code(), 409, "{r:?}");
    assert_eq!(fault(&r).0, "SecurityGroupConflict");
    // Filter ports by group; a group in use cannot go; port security needs the groups gone.
    let r = app
        .get(&format!("/v2.0/ports?security_groups={web}&fields=id"))
        .await;
    assert_eq!(body(&r), json!({"ports": [{"id": p2}]}));
    let r = app.delete(&format!("/v2.0/security-groups/{web}")).await;
    assert_eq!(r.code(), 409);
    assert_eq!(
        fault(&r),
        (
            "SecurityGroupInUse".into(),
            format!("Security Group {web} in use.")
        )
    );
    let r = app
        .send(
            "PUT",
            &format!("/v2.0/security-groups/{web}"),
            r#"{"security_group": {"stateful": false}}"#,
        )
        .await;
    assert_eq!(
        fault(&r).0,
        "SecurityGroupInUse",
        "statefulness is fixed while ports use it"
    );
    let r = app
        .send(
            "PUT",
            &format!("/v2.0/ports/{p2}"),
            r#"{"port": {"port_security_enabled": false}}"#,
        )
        .await;
    assert_eq!(r.code(), 409);
    assert_eq!(fault(&r).0, "PortSecurityPortHasSecurityGroup");
    let r = app
        .send(
            "PUT",
            &format!("/v2.0/ports/{p2}"),
            r#"{"port": {"port_security_enabled": false, "security_groups": []}}"#,
        )
        .await;
    assert_eq!(r.code(), 200, "{r:?}");
    assert_eq!(
        app.delete(&format!("/v2.0/security-groups/{web}"))
            .await
            .code(),
        204
    );
}

#[tokio::test]
async fn groups_and_rules_have_neutrons_quotas() {
    let app = app();
    // The default group counts: nine more fit.
    for i in 0..9 {
        group(&app, &format!("g{i}")).await;
    }
    let r = post(
        &app,
        "/v2.0/security-groups",
        json!({"security_group": {"name": "one-too-many"}}),
    )
    .await;
    assert_eq!(r.code(), 409);
    assert_eq!(
        fault(&r),
        (
            "OverQuota".into(),
            "Quota exceeded for resources: ['security_group'].".into()
        )
    );
    let ext = body(&app.get("/v2.0/extensions").await);
    let aliases: Vec<&str> = ext["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["alias"].as_str())
        .collect();
    for a in [
        "security-group",
        "stateful-security-group",
        "port-security-groups-filtering",
    ] {
        assert!(aliases.contains(&a), "{a}");
    }
}
