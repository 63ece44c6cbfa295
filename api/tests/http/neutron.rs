//! Neutron v2.0: every route, status code and error type, in-process.

use serde_json::{json, Value};

use crate::common::{app, App, Resp};

const NONE_ID: &str = "11111111-1111-1111-1111-111111111111";

impl App {
    async fn post2(&self, path: &str, body: Value) -> Resp {
        self.send("POST", path, &body.to_string()).await
    }

    async fn put2(&self, path: &str, body: Value) -> Resp {
        self.send("PUT", path, &body.to_string()).await
    }

    async fn net2(&self, name: &str) -> String {
        let r = self
            .post2("/v2.0/networks", json!({"network": {"name": name}}))
            .await;
        assert_eq!(r.code(), 201, "{r:?}");
        r.full()["network"]["id"].as_str().unwrap().to_owned()
    }

    async fn subnet2(&self, net: &str, cidr: &str, extra: Value) -> Resp {
        let mut s = json!({"network_id": net, "cidr": cidr,
            "ip_version": if cidr.contains(':') { 6 } else { 4 }});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        self.post2("/v2.0/subnets", json!({ "subnet": s })).await
    }

    async fn port2(&self, body: Value) -> Resp {
        self.post2("/v2.0/ports", json!({ "port": body })).await
    }
}

/// The body exactly as sent (links included).
trait Full {
    fn full(&self) -> Value;
}

impl Full for Resp {
    fn full(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

fn error_type(r: &Resp) -> String {
    assert_eq!(r.content_type.as_deref(), Some("application/json"), "{r:?}");
    let e = &r.full()["NeutronError"];
    assert_eq!(e["detail"], "", "{r:?}");
    assert!(e["message"].is_string(), "{r:?}");
    e["type"].as_str().unwrap_or_default().to_owned()
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn root_lists_v2_first_and_keeps_quantum_versions() {
    let app = app();
    let r = app.get("/").await;
    assert_eq!(r.code(), 200);
    let v = r.full();
    let ids: Vec<&str> = v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["v2.0", "v1.0", "v1.1"]);
    assert_eq!(v["versions"][0]["status"], "CURRENT");
    assert_eq!(
        v["versions"][0]["links"][0],
        json!({"rel": "self", "href": "http://127.0.0.1:9696/v2.0/"})
    );
}

#[tokio::test]
async fn resources_document_with_and_without_slash() {
    let app = app();
    for path in ["/v2.0/", "/v2.0"] {
        let r = app.get(path).await;
        assert_eq!(r.code(), 200, "{path}");
        let v = r.full();
        let names: Vec<&str> = v["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["collection"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["networks", "subnets", "ports"]);
        assert_eq!(
            v["resources"][0]["links"][0]["href"],
            "http://127.0.0.1:9696/v2.0/networks"
        );
    }
}

#[tokio::test]
async fn extensions_list_show_and_unknown_alias() {
    let app = app();
    let r = app.get("/v2.0/extensions").await;
    assert_eq!(r.code(), 200);
    let aliases: Vec<String> = r.full()["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["alias"].as_str().unwrap().to_owned())
        .collect();
    for a in [
        "port-security",
        "allowed-address-pairs",
        "binding",
        "project-id",
    ] {
        assert!(aliases.iter().any(|x| x == a), "{a} in {aliases:?}");
    }
    // `agent` only where this process reports its host's agent (its data plane runs).
    assert!(!aliases.iter().any(|x| x == "agent"), "{aliases:?}");
    assert_eq!(app.get("/v2.0/extensions/agent").await.code(), 404);
    let with_agents = crate::common::app_with(
        control::ControlOptions::default(),
        api::ApiOptions {
            agents: true,
            ..Default::default()
        },
    );
    let r = with_agents.get("/v2.0/extensions/agent").await;
    assert_eq!(r.code(), 200);
    assert_eq!(r.full()["extension"]["alias"], "agent");
    let r = app.get("/v2.0/extensions/port-security").await;
    assert_eq!(r.code(), 200);
    assert_eq!(r.full()["extension"]["alias"], "port-security");
    let r = app
        .get("/v2.0/extensions/tag-ports-during-bulk-creation")
        .await;
    assert_eq!(r.code(), 404);
    assert_eq!(error_type(&r), "HTTPNotFound");
}

#[tokio::test]
async fn router_external_is_stored_shown_filtered_and_set_by_admins_only() {
    let app = app();
    let r = app
        .post2(
            "/v2.0/networks",
            json!({"network": {"name": "ext", "router:external": true}}),
        )
        .await;
    assert_eq!(r.code(), 201);
    let id = r.full()["network"]["id"].as_str().unwrap().to_owned();
    assert_eq!(r.full()["network"]["router:external"], true);
    app.post2("/v2.0/networks", json!({"network": {"name": "int"}}))
        .await;
    let r = app.get("/v2.0/networks?router:external=True").await;
    let names: Vec<String> = r.full()["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["ext"]);
    let r = app
        .req(
            "PUT",
            &format!("/v2.0/networks/{id}"),
            Some(r#"{"network": {"router:external": false}}"#),
            &[],
        )
        .await;
    assert_eq!(r.code(), 200);
    assert_eq!(r.full()["network"]["router:external"], false);
    // A project member may not set it; false on create is the default and passes.
    let member = [("content-type", "application/json"), ("x-project-id", "p")];
    for (method, uri, body) in [
        (
            "POST",
            "/v2.0/networks".to_owned(),
            r#"{"network": {"router:external": true}}"#,
        ),
        (
            "PUT",
            format!("/v2.0/networks/{id}"),
            r#"{"network": {"router:external": false}}"#,
        ),
    ] {
        let r = app.req(method, &uri, Some(body), &member).await;
        assert_eq!(r.code(), 403, "{method}");
        assert_eq!(error_type(&r), "PolicyNotAuthorized");
    }
    // Every project sees an external network; only its owner puts ports on it.
    let r = app
        .req(
            "PUT",
            &format!("/v2.0/networks/{id}"),
            Some(r#"{"network": {"router:external": true}}"#),
            &[],
        )
        .await;
    assert_eq!(r.code(), 200);
    let r = app
        .req("GET", &format!("/v2.0/networks/{id}"), None, &member)
        .await;
    assert_eq!(r.code(), 200);
    let r = app
        .req("GET", "/v2.0/networks?limit=10", None, &member)
        .await;
    assert!(r.full()["networks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["id"] == id.as_str()));
    let port = format!(r#"{{"port": {{"network_id": "{id}"}}}}"#);
    let r = app.req("POST", "/v2.0/ports", Some(&port), &member).await;
    assert_eq!(r.code(), 404);
    let r = app
        .req(
            "POST",
            "/v2.0/networks",
            Some(r#"{"network": {"router:external": false}}"#),
            &member,
        )
        .await;
    assert_eq!(r.code(), 201);
}

#[tokio::test]
async fn agents_report_themselves_and_only_admins_see_change_and_delete_them() {
    let app = app();
    let member = [
        ("content-type", "application/json"),
        ("x-project-id", "p1"),
        ("x-roles", "member"),
    ];
    // None has reported yet.
    let r = app.get("/v2.0/agents").await;
    assert_eq!(r.code(), 200);
    assert_eq!(r.full(), json!({"agents": []}));
    let r = app.get("/v2.0/agents/dhcp-1").await;
    assert_eq!(r.code(), 404);
    assert_eq!(error_type(&r), "AgentNotFound");

    app.control
        .report_agent("host-a", r#"{"ports": 2}"#, true)
        .unwrap();
    let r = app
        .get("/v2.0/agents?host=host-a&agent_type=qswitch+agent")
        .await;
    assert_eq!(r.code(), 200);
    let a = r.full()["agents"][0].clone();
    assert_eq!(a["binary"], "qswitch");
    assert_eq!(a["topic"], "N/A");
    assert_eq!(
        (a["alive"].clone(), a["admin_state_up"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(a["configurations"], json!({"ports": 2}));
    assert_eq!(a["description"], Value::Null);
    let beat = a["heartbeat_timestamp"].as_str().unwrap();
    assert!(beat.len() == 19 && beat.as_bytes()[10] == b' ', "{beat}");
    let id = a["id"].as_str().unwrap().to_owned();
    let one = format!("/v2.0/agents/{id}");
    let r = app.get(&format!("{one}?fields=host&fields=alive")).await;
    assert_eq!(
        r.full(),
        json!({"agent": {"host": "host-a", "alive": true}})
    );

    // A member lists none and finds none, changes none.
    let r = app.req("GET", "/v2.0/agents", None, &member).await;
    assert_eq!(r.full(), json!({"agents": []}));
    let r = app.req("GET", &one, None, &member).await;
    assert_eq!(r.code(), 404);
    assert_eq!(error_type(&r), "HTTPNotFound");
    let body = r#"{"agent": {"admin_state_up": false}}"#;
    let r = app.req("PUT", &one, Some(body), &member).await;
    assert_eq!(r.code(), 404);
    let r = app.req("DELETE", &one, None, &member).await;
    assert_eq!(r.code(), 404);

    // An admin takes it out of service and describes why; read-only attributes are refused.
    let r = app
        .send(
            "PUT",
            &one,
            r#"{"agent": {"admin_state_up": false, "description": "maintenance"}}"#,
        )
        .await;
    assert_eq!(r.code(), 200);
    assert_eq!(r.full()["agent"]["admin_state_up"], false);
    assert_eq!(r.full()["agent"]["description"], "maintenance");
    let r = app.send("PUT", &one, r#"{"agent": {"host": "b"}}"#).await;
    assert_eq!(r.code(), 400);
    assert!(
        r.body.contains("Cannot update read-only attribute host"),
        "{}",
        r.body
    );
    let r = app
        .send("PUT", &one, r#"{"agent": {"admin_state_up": "x"}}"#)
        .await;
    assert_eq!(r.code(), 400);
    let r = app
        .send(
            "PUT",
            "/v2.0/agents/nope",
            r#"{"agent": {"description": ""}}"#,
        )
        .await;
    assert_eq!(
        (r.code(), error_type(&r)),
        (404, "AgentNotFound".to_owned())
    );
    assert_eq!(app.delete("/v2.0/agents/nope").await.code(), 404);
    // Filters are Neutron's: an attribute it does not filter on is refused.
    let r = app.get("/v2.0/agents?configurations=x").await;
    assert_eq!(r.code(), 400);
    // Its next report keeps what the admin set, and its first report's times.
    let before = app.get(&one).await.full()["agent"].clone();
    app.control.report_agent("host-a", "{}", false).unwrap();
    let r = app.get(&one).await;
    assert_eq!(r.full()["agent"]["created_at"], before["created_at"]);
    assert_eq!(r.full()["agent"]["started_at"], before["started_at"]);
    assert_eq!(r.full()["agent"]["admin_state_up"], false);
    assert_eq!(r.full()["agent"]["description"], "maintenance");
    assert_eq!(r.full()["agent"]["configurations"], json!({}));

    // An agent whose last report is older than 75 s is dead.
    let now = control::agent::now_secs();
    app.control
        .report_agent_at("host-b", "{}", true, now - 80)
        .unwrap();
    let r = app.get("/v2.0/agents?alive=false").await;
    let dead = r.full()["agents"].as_array().unwrap().clone();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["host"], "host-b");
    let r = app.get("/v2.0/agents?alive=true&fields=host").await;
    assert_eq!(r.full(), json!({"agents": [{"host": "host-a"}]}));
    let dead_id = dead[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.delete(&format!("/v2.0/agents/{dead_id}")).await.code(),
        204
    );

    // Deleted, it is gone until it reports again, under a new id.
    let r = app.delete(&one).await;
    assert_eq!(r.code(), 204);
    assert_eq!(app.get(&one).await.code(), 404);
    app.control.report_agent("host-a", "{}", false).unwrap();
    let r = app.get("/v2.0/agents").await;
    let agents = r.full()["agents"].as_array().unwrap().clone();
    assert_eq!(agents.len(), 1);
    assert_ne!(agents[0]["id"], json!(id));
    assert_eq!(agents[0]["admin_state_up"], true);
}

#[tokio::test]
async fn network_create_show_update_list_delete_with_neutron_codes_and_keys() {
    let app = app();
    let r = app
        .post2("/v2.0/networks", json!({"network": {"name": "net-a"}}))
        .await;
    assert_eq!(r.code(), 201);
    let n = r.full()["network"].clone();
    for k in [
        "id",
        "name",
        "tenant_id",
        "project_id",
        "admin_state_up",
        "status",
        "shared",
        "mtu",
        "subnets",
        "port_security_enabled",
        "router:external",
        "description",
        "tags",
        "created_at",
        "updated_at",
        "revision_number",
        "provider:segmentation_id",
    ] {
        assert!(n.get(k).is_some(), "{k} missing in {n}");
    }
    assert_eq!(n["status"], "ACTIVE");
    assert_eq!(n["admin_state_up"], true);
    assert_eq!(n["tenant_id"], api::DEFAULT_TENANT);
    assert_eq!(n["project_id"], api::DEFAULT_TENANT);
    assert_eq!(n["subnets"], json!([]));
    assert_eq!(n["mtu"], 1500);
    let id = n["id"].as_str().unwrap();

    let r = app.get(&format!("/v2.0/networks/{id}")).await;
    assert_eq!(r.code(), 200);
    assert_eq!(r.full()["network"], n);

    let r = app
        .put2(
            &format!("/v2.0/networks/{id}"),
            json!({"network": {"name": "renamed", "admin_state_up": false, "mtu": 1400}}),
        )
        .await;
    assert_eq!(r.code(), 200);
    let u = r.full()["network"].clone();
    assert_eq!(u["name"], "renamed");
    assert_eq!(u["admin_state_up"], false);
    assert_eq!(u["mtu"], 1400);
    assert_eq!(u["revision_number"], 2);

    let r = app.get("/v2.0/networks").await;
    assert_eq!(r.code(), 200);
    assert_eq!(r.full()["networks"].as_array().unwrap().len(), 1);
    assert!(r.full().get("networks_links").is_none());

    let r = app.delete(&format!("/v2.0/networks/{id}")).await;
    assert_eq!(r.code(), 204);
    assert!(r.body.is_empty());
    let r = app.get(&format!("/v2.0/networks/{id}")).await;
    assert_eq!(r.code(), 404);
    assert_eq!(error_type(&r), "NetworkNotFound");
    assert_eq!(
        r.full()["NeutronError"]["message"],
        format!("Network {id} could not be found.")
    );
    let r = app.delete(&format!("/v2.0/networks/{id}")).await;
    assert_eq!(r.code(), 404);
}

#[tokio::test]
async fn v2_network_is_the_quantum_network() {
    let app = app();
    let id = app.net2("shared-model").await;
    let t = api::DEFAULT_TENANT;
    let r = app.get(&format!("/v1.1/tenants/{t}/networks/{id}")).await;
    assert_eq!(r.code(), 200, "{r:?}");
    assert_eq!(r.full()["network"]["name"], "shared-model");
    let qnet = app.network("v1.1", t, "from-quantum").await;
    let r = app.get(&format!("/v2.0/networks/{qnet}")).await;
    assert_eq!(r.code(), 200);
    assert_eq!(r.full()["network"]["name"], "from-quantum");
    let qport = app.port("v1.1", t, &qnet, "ACTIVE").await;
    let r = app.get(&format!("/v2.0/ports/{qport}")).await;
    assert_eq!(r.code(), 200);
    let p = r.full()["port"].clone();
    assert_eq!(p["network_id"], qnet.as_str());
    assert_eq!(p["admin_state_up"], true);
    assert!(p["mac_address"].as_str().unwrap().starts_with("fa:16:3e:"));
    // The same VLAN both ways.
    let seg = r.full()["port"]["network_id"].clone();
    assert_eq!(seg, qnet.as_str());
}

#[tokio::test]
async fn bulk_create_is_all_or_nothing() {
    let app = app();
    let r = app
        .post2(
            "/v2.0/networks",
            json!({"networks": [{"name": "b1"}, {"name": "b2"}]}),
        )
        .await;
    assert_eq!(r.code(), 201);
    assert_eq!(r.full()["networks"].as_array().unwrap().len(), 2);
    let net = r.full()["networks"][0]["id"].as_str().unwrap().to_owned();
    let r = app
        .post2(
            "/v2.0/ports",
            json!({"ports": [
                {"network_id": net, "mac_address": "fa:16:3e:00:00:07"},
                {"network_id": net, "mac_address": "fa:16:3e:00:00:07"}
            ]}),
        )
        .await;
    assert_eq!(r.code(), 409);
    assert_eq!(error_type(&r), "MacAddressInUse");
    let r = app.get("/v2.0/ports").await;
    assert_eq!(r.full()["ports"], json!([]));
    let r = app.post2("/v2.0/networks", json!({"networks": []})).await;
    assert_eq!(r.code(), 400);
}

#[tokio::test]
async fn bad_bodies_get_neutron_errors() {
    let app = app();
    let cases = [
        (
            json!({"network": {"name": "n", "foo": 1}}),
            "HTTPBadRequest",
        ),
        (json!({"network": {"status": "DOWN"}}), "HTTPBadRequest"),
        (
            json!({"network": {"name": "x".repeat(256)}}),
            "HTTPBadRequest",
        ),
        (
            json!({"network": {"description": "x".repeat(256)}}),
            "HTTPBadRequest",
        ),
        (
            json!({"network": {"admin_state_up": "maybe"}}),
            "InvalidInput",
        ),
        (
            json!({"network": {"router:external": "maybe"}}),
            "InvalidInput",
        ),
        (json!({}), "HTTPBadRequest"),
        (json!([1]), "HTTPBadRequest"),
    ];
    for (body, ty) in cases {
        let r = app.post2("/v2.0/networks", body.clone()).await;
        assert_eq!(r.code(), 400, "{body}: {r:?}");
        assert_eq!(error_type(&r), ty, "{body}");
    }
    let r = app
        .req(
            "POST",
            "/v2.0/networks",
            Some("not json"),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(r.code(), 400);
    assert_eq!(error_type(&r), "HTTPBadRequest");
    let r = app
        .post2(
            "/v2.0/networks",
            json!({"network": {"name": "x".repeat(256)}}),
        )
        .await;
    assert!(r.full()["NeutronError"]["message"]
        .as_str()
        .unwrap()
        .ends_with("exceeds maximum length of 255."));
    let id = app.net2("n").await;
    let r = app
        .put2(
            &format!("/v2.0/networks/{id}"),
            json!({"network": {"id": "x"}}),
        )
        .await;
    assert_eq!(r.code(), 400);
    assert_eq!(
        r.full()["NeutronError"]["message"],
        "Cannot update read-only attribute id"
    );
    let r = app
        .put2(
            &format!("/v2.0/networks/{NONE_ID}"),
            json!({"network": {"name": "x"}}),
        )
        .await;
    assert_eq!(r.code(), 404);
    assert_eq!(error_type(&r), "NetworkNotFound");
}

#[tokio::test]
async fn unknown_and_non_uuid_ids_are_404_and_unknown_routes_too() {
    let app = app();
    for (path, ty) in [
        ("/v2.0/networks/net-b", "NetworkNotFound"),
        (&format!("/v2.0/networks/{NONE_ID}"), "NetworkNotFound"),
        ("/v2.0/ports/p1", "PortNotFound"),
        ("/v2.0/subnets/s1", "SubnetNotFound"),
        ("/v2.0/routers", "HTTPNotFound"),
        ("/v2.0/a/b/c", "HTTPNotFound"),
    ] {
        let r = app.get(path).await;
        assert_eq!(r.code(), 404, "{path}");
        assert_eq!(error_type(&r), ty, "{path}");
    }
    let r = app.req("PATCH", "/v2.0/networks", None, &[]).await;
    assert_eq!(r.code(), 405);
    assert_eq!(error_type(&r), "HTTPMethodNotAllowed");
}

#[tokio::test]
async fn fields_filters_and_sorting() {
    let app = app();
    for (name, up) in [("c", true), ("a", false), ("b", true)] {
        let r = app
            .post2(
                "/v2.0/networks",
                json!({"network": {"name": name, "admin_state_up": up}}),
            )
            .await;
        assert_eq!(r.code(), 201);
    }
    let r = app.get("/v2.0/networks?fields=id&fields=name").await;
    for n in r.full()["networks"].as_array().unwrap() {
        assert_eq!(keys(n), ["id", "name"]);
    }
    let r = app.get("/v2.0/networks?fields=bogus").await;
    assert_eq!(r.full()["networks"], json!([{}, {}, {}]));
    let id = r.full()["networks"].as_array().unwrap().len();
    assert_eq!(id, 3);

    let names = |r: &Resp| -> Vec<String> {
        r.full()["networks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let r = app.get("/v2.0/networks?name=a&name=b&fields=name").await;
    assert_eq!(names(&r), ["a", "b"]);
    let r = app
        .get("/v2.0/networks?name=a&name=b&admin_state_up=True&fields=name")
        .await;
    assert_eq!(names(&r), ["b"]);
    let r = app.get("/v2.0/networks?foo=bar").await;
    assert_eq!(r.code(), 400);
    assert_eq!(
        r.full()["NeutronError"]["message"],
        "['foo'] is invalid attribute for filtering"
    );
    let r = app.get("/v2.0/networks?admin_state_up=maybe").await;
    assert_eq!(r.code(), 400);
    assert_eq!(error_type(&r), "InvalidInput");

    let r = app.get("/v2.0/networks?sort_key=name&sort_dir=asc").await;
    assert_eq!(names(&r), ["a", "b", "c"]);
    let r = app
        .get("/v2.0/networks?sort_key=admin_state_up&sort_dir=desc&sort_key=name&sort_dir=desc")
        .await;
    assert_eq!(names(&r), ["c", "b", "a"]);
    for (q, msg) in [
        (
            "sort_key=name",
            "The number of sort_keys and sort_dirs must be same",
        ),
        (
            "sort_key=foo&sort_dir=asc",
            "['foo'] is invalid attribute for sort_keys",
        ),
        (
            "sort_key=name&sort_dir=up",
            "['up'] is invalid value for sort_dirs, valid value is 'asc' and 'desc'",
        ),
    ] {
        let r = app.get(&format!("/v2.0/networks?{q}")).await;
        assert_eq!(r.code(), 400, "{q}");
        assert_eq!(r.full()["NeutronError"]["message"], msg, "{q}");
    }
    // `fields` on a show.
    let r = app.get("/v2.0/networks").await;
    let id = r.full()["networks"][0]["id"].as_str().unwrap().to_owned();
    let r = app
        .get(&format!("/v2.0/networks/{id}?fields=name&fields=status"))
        .await;
    assert_eq!(keys(&r.full()["network"]), ["name", "status"]);
}

#[tokio::test]
async fn pagination_follows_neutron_link_rules() {
    let app = app();
    let mut ids = Vec::new();
    for name in ["n1", "n2", "n3"] {
        ids.push(app.net2(name).await);
    }
    let base = "http://127.0.0.1:9696/v2.0/networks";
    let r = app.get("/v2.0/networks?limit=2").await;
    let v = r.full();
    assert_eq!(v["networks"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["networks_links"],
        json!([
            {"rel": "next", "href": format!("{base}?limit=2&marker={}", ids[1])},
            {"rel": "previous", "href": format!("{base}?limit=2&marker={}&page_reverse=True", ids[0])},
        ])
    );
    // A short last page going forward: previous only.
    let r = app
        .get(&format!("/v2.0/networks?limit=2&marker={}", ids[1]))
        .await;
    let v = r.full();
    assert_eq!(v["networks"][0]["id"], ids[2].as_str());
    assert_eq!(
        v["networks_links"],
        json!([{"rel": "previous", "href": format!("{base}?limit=2&marker={}&page_reverse=True", ids[2])}])
    );
    // A full last page still has a next link; the page after it is empty.
    let r = app
        .get(&format!("/v2.0/networks?limit=1&marker={}", ids[1]))
        .await;
    assert!(r.full()["networks_links"][0]["rel"] == "next");
    let r = app
        .get(&format!("/v2.0/networks?limit=1&marker={}", ids[2]))
        .await;
    assert_eq!(
        r.full(),
        json!({"networks": [], "networks_links": [
            {"rel": "previous", "href": format!("{base}?limit=1&page_reverse=True")}
        ]})
    );
    // Backwards from the last one.
    let r = app
        .get(&format!(
            "/v2.0/networks?limit=5&marker={}&page_reverse=True",
            ids[2]
        ))
        .await;
    let v = r.full();
    let got: Vec<&str> = v["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[0].as_str(), ids[1].as_str()]);
    assert_eq!(v["networks_links"].as_array().unwrap().len(), 1);
    assert_eq!(v["networks_links"][0]["rel"], "next");
    // Unknown marker: an empty page; limit=0: no paging.
    let r = app
        .get(&format!("/v2.0/networks?limit=1&marker={NONE_ID}"))
        .await;
    assert_eq!(r.full()["networks"], json!([]));
    let r = app.get("/v2.0/networks?limit=0").await;
    assert_eq!(r.full()["networks"].as_array().unwrap().len(), 3);
    assert!(r.full().get("networks_links").is_none());
    for bad in ["-1", "x"] {
        let r = app.get(&format!("/v2.0/networks?limit={bad}")).await;
        assert_eq!(r.code(), 400);
        assert_eq!(error_type(&r), "BadRequest");
        assert_eq!(
            r.full()["NeutronError"]["message"],
            format!("Bad limit request: Limit must be an integer 0 or greater and not '{bad}'.")
        );
    }
}

#[tokio::test]
async fn subnets_are_validated_normalised_and_refuse_overlaps() {
    let app = app();
    let net = app.net2("ipam").await;
    let r = app.subnet2(&net, "10.9.0.5/24", json!({})).await;
    assert_eq!(r.code(), 201, "{r:?}");
    let s = r.full()["subnet"].clone();
    assert_eq!(s["cidr"], "10.9.0.0/24");
    assert_eq!(s["gateway_ip"], "10.9.0.1");
    assert_eq!(
        s["allocation_pools"],
        json!([{"start": "10.9.0.2", "end": "10.9.0.254"}])
    );
    assert_eq!(s["enable_dhcp"], true);
    let r = app.get(&format!("/v2.0/networks/{net}")).await;
    assert_eq!(r.full()["network"]["subnets"], json!([s["id"]]));

    let cases = [
        ("10.9.0.0/25", json!({}), 400, "InvalidInput"),
        ("bogus", json!({}), 400, "InvalidInput"),
        (
            "10.15.0.0/24",
            json!({"ip_version": 6}),
            400,
            "InvalidInput",
        ),
        (
            "10.16.0.0/24",
            json!({"ip_version": 5}),
            400,
            "HTTPBadRequest",
        ),
        // SLAAC addresses are EUI-64: the prefix must be a /64, as in Neutron.
        (
            "2001:db8:17::/56",
            json!({"ip_version": 6, "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}),
            400,
            "InvalidInput",
        ),
        (
            "2001:db8:18::/80",
            json!({"ip_version": 6, "ipv6_address_mode": "dhcpv6-stateless"}),
            400,
            "InvalidInput",
        ),
        // IPv6 modes need DHCP on, as in Neutron.
        (
            "2001:db8:16::/64",
            json!({"ip_version": 6, "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac",
                "enable_dhcp": false}),
            400,
            "InvalidInput",
        ),
        (
            "10.11.0.0/24",
            json!({"allocation_pools": [{"start": "10.11.0.1", "end": "10.11.0.20"}]}),
            409,
            "GatewayConflictWithAllocationPools",
        ),
        (
            "10.12.0.0/24",
            json!({"allocation_pools": [{"start": "10.12.0.10", "end": "10.12.1.20"}]}),
            400,
            "OutOfBoundsAllocationPool",
        ),
        (
            "10.13.0.0/24",
            json!({"allocation_pools": [
                {"start": "10.13.0.10", "end": "10.13.0.20"},
                {"start": "10.13.0.15", "end": "10.13.0.30"}]}),
            409,
            "OverlappingAllocationPools",
        ),
        (
            "10.14.0.0/24",
            json!({"allocation_pools": [{"start": "10.14.0.20", "end": "10.14.0.10"}]}),
            400,
            "InvalidAllocationPool",
        ),
        (
            "10.17.0.0/24",
            json!({"gateway_ip": "x"}),
            400,
            "HTTPBadRequest",
        ),
        (
            "10.18.0.0/24",
            json!({"dns_nameservers": ["nope"]}),
            400,
            "HTTPBadRequest",
        ),
    ];
    for (cidr, extra, code, ty) in cases {
        let r = app.subnet2(&net, cidr, extra.clone()).await;
        assert_eq!(r.code(), code, "{cidr} {extra}: {r:?}");
        assert_eq!(error_type(&r), ty, "{cidr} {extra}");
    }
    // Values are checked before the network is looked up, as Neutron's API layer checks them:
    // a bad CIDR on a network that does not exist is 400, not 404.
    let nowhere = "0b1d7ad2-2d4e-4c3b-9d52-000000000000";
    let r = app.subnet2(nowhere, "bogus", json!({})).await;
    assert_eq!(
        (r.code(), error_type(&r)),
        (400, "InvalidInput".into()),
        "{r:?}"
    );
    let r = app.subnet2(nowhere, "10.21.0.0/24", json!({})).await;
    assert_eq!(r.code(), 404, "{r:?}");
    let r = app
        .post2(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net, "ip_version": 4}}),
        )
        .await;
    assert_eq!(
        (r.code(), error_type(&r)),
        (400, "HTTPBadRequest".into()),
        "{r:?}"
    );
    let r = app
        .subnet2(&net, "10.10.0.0/29", json!({"gateway_ip": null}))
        .await;
    assert_eq!(r.code(), 201);
    assert_eq!(r.full()["subnet"]["gateway_ip"], Value::Null);
    assert_eq!(
        r.full()["subnet"]["allocation_pools"],
        json!([{"start": "10.10.0.1", "end": "10.10.0.6"}])
    );
    let r = app
        .subnet2(
            &net,
            "10.20.0.0/24",
            json!({"dns_nameservers": ["198.18.0.53"], "enable_dhcp": false,
                   "host_routes": [{"destination": "10.0.0.0/8", "nexthop": "10.20.0.254"}]}),
        )
        .await;
    assert_eq!(r.code(), 201);
    let s2 = r.full()["subnet"].clone();
    assert_eq!(s2["dns_nameservers"], json!(["198.18.0.53"]));
    assert_eq!(s2["enable_dhcp"], false);
    assert_eq!(
        s2["host_routes"],
        json!([{"destination": "10.0.0.0/8", "nexthop": "10.20.0.254"}])
    );
    let r = app.subnet2(&net, "2001:db8::/64", json!({})).await;
    assert_eq!(r.code(), 201);
    assert_eq!(r.full()["subnet"]["gateway_ip"], "2001:db8::");
    assert_eq!(
        r.full()["subnet"]["allocation_pools"],
        json!([{"start": "2001:db8::1", "end": "2001:db8::ffff:ffff:ffff:ffff"}])
    );
    // Update and delete.
    let sid = s2["id"].as_str().unwrap();
    let r = app
        .put2(
            &format!("/v2.0/subnets/{sid}"),
            json!({"subnet": {"name": "renamed", "gateway_ip": "10.20.0.5"}}),
        )
        .await;
    assert_eq!(r.code(), 409, "{r:?}");
    assert_eq!(error_type(&r), "GatewayConflictWithAllocationPools");
    let r = app
        .put2(
            &format!("/v2.0/subnets/{sid}"),
            json!({"subnet": {"name": "renamed", "dns_nameservers": []}}),
        )
        .await;
    assert_eq!(r.code(), 200);
    assert_eq!(r.full()["subnet"]["name"], "renamed");
    let r = app.get("/v2.0/subnets?ip_version=6").await;
    assert_eq!(r.full()["subnets"].as_array().unwrap().len(), 1);
    // An integer attribute filtered by what is not an integer matches nothing, on either store
    // (PostgreSQL refused the comparison: a 503 before).
    for q in ["ip_version=six", "ip_version=6&ip_version=x"] {
        let r = app.get(&format!("/v2.0/subnets?{q}")).await;
        assert_eq!(r.code(), 200, "{q}: {r:?}");
        let n = r.full()["subnets"].as_array().unwrap().len();
        assert_eq!(n, usize::from(q.contains("=6")), "{q}");
    }
    assert_eq!(
        app.delete(&format!("/v2.0/subnets/{sid}")).await.code(),
        204
    );
    assert_eq!(
        app.delete(&format!("/v2.0/subnets/{sid}")).await.code(),
        404
    );
}

#[tokio::test]
async fn ports_get_macs_and_addresses_and_free_them() {
    let app = app();
    let net = app.net2("ports").await;
    let s4 = app.subnet2(&net, "198.18.0.0/24", json!({})).await.full()["subnet"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let s6 = app.subnet2(&net, "2001:db8::/64", json!({})).await.full()["subnet"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app.port2(json!({"network_id": net, "name": "p1"})).await;
    assert_eq!(r.code(), 201, "{r:?}");
    let p = r.full()["port"].clone();
    for k in [
        "id",
        "name",
        "network_id",
        "tenant_id",
        "project_id",
        "mac_address",
        "admin_state_up",
        "status",
        "device_id",
        "device_owner",
        "fixed_ips",
        "allowed_address_pairs",
        "extra_dhcp_opts",
        "security_groups",
        "description",
        "binding:vnic_type",
        "binding:host_id",
        "port_security_enabled",
        "tags",
        "created_at",
        "updated_at",
        "revision_number",
    ] {
        assert!(p.get(k).is_some(), "{k} missing in {p}");
    }
    assert_eq!(p["status"], "DOWN");
    assert_eq!(p["admin_state_up"], true);
    assert_eq!(p["port_security_enabled"], true);
    assert_eq!(p["device_id"], "");
    assert!(p["mac_address"].as_str().unwrap().starts_with("fa:16:3e:"));
    assert_eq!(
        p["fixed_ips"],
        json!([{"subnet_id": s4, "ip_address": "198.18.0.2"},
               {"subnet_id": s6, "ip_address": "2001:db8::1"}])
    );
    let pid = p["id"].as_str().unwrap().to_owned();
    let r = app.get(&format!("/v2.0/ports/{pid}")).await;
    assert_eq!(r.full()["port"], p);

    // A specific address; taken; outside the subnet; outside the network.
    let r = app
        .port2(json!({"network_id": net, "fixed_ips": [{"ip_address": "198.18.0.7"}]}))
        .await;
    assert_eq!(r.code(), 201);
    assert_eq!(
        r.full()["port"]["fixed_ips"],
        json!([{"subnet_id": s4, "ip_address": "198.18.0.7"}])
    );
    let p7 = r.full()["port"]["id"].as_str().unwrap().to_owned();
    let r = app
        .port2(json!({"network_id": net, "fixed_ips": [{"ip_address": "198.18.0.7"}]}))
        .await;
    assert_eq!(r.code(), 409);
    assert_eq!(error_type(&r), "IpAddressAlreadyAllocated");
    let r = app
        .port2(json!({"network_id": net, "fixed_ips": [{"subnet_id": s6, "ip_address": "198.18.0.8"}]}))
        .await;
    assert_eq!(r.code(), 400);
    assert_eq!(error_type(&r), "InvalidIpForSubnet");
    let r = app
        .port2(json!({"network_id": net, "fixed_ips": [{"ip_address": "198.19.0.7"}]}))
        .await;
    assert_eq!(r.code(), 400);
    assert_eq!(error_type(&r), "InvalidIpForNetwork");
    let r = app
        .port2(json!({"network_id": net, "fixed_ips": [{"subnet_id": "nope"}]}))
        .await;
    assert_eq!(r.code(), 400);
    assert_eq!(error_type(&r), "HTTPBadRequest");
    let r = app.port2(json!({"network_id": "nonexist"})).await;
    assert_eq!(r.code(), 400);
    let r = app.port2(json!({"network_id": NONE_ID})).await;
    assert_eq!(r.code(), 404);
    assert_eq!(error_type(&r), "NetworkNotFound");
    let r = app.port2(json!({"name": "x"})).await;
    assert_eq!(r.code(), 400);
    assert_eq!(
        r.full()["NeutronError"]["message"],
        "Failed to parse request. Required attribute 'network_id' not specified"
    );

    // Subnet in use; deleting the port frees its address for the next port.
    let r = app.delete(&format!("/v2.0/subnets/{s4}")).await;
    assert_eq!(r.code(), 409);
    assert_eq!(error_type(&r), "SubnetInUse");
    assert_eq!(app.delete(&format!("/v2.0/ports/{p7}")).await.code(), 204);
    let r = app
        .port2(json!({"network_id": net, "fixed_ips": [{"ip_address": "198.18.0.7"}]}))
        .await;
    assert_eq!(r.code(), 201);

    // Update: name, device, fixed_ips kept by subnet, admin state.
    let r = app
        .put2(
            &format!("/v2.0/ports/{pid}"),
            json!({"port": {"name": "p1-renamed", "device_owner": "compute:nova",
                   "device_id": "dev-1", "fixed_ips": [{"subnet_id": s4}]}}),
        )
        .await;
    assert_eq!(r.code(), 200, "{r:?}");
    let u = r.full()["port"].clone();
    assert_eq!(u["name"], "p1-renamed");
    assert_eq!(u["device_owner"], "compute:nova");
    assert_eq!(
        u["fixed_ips"],
        json!([{"subnet_id": s4, "ip_address": "198.18.0.2"}])
    );
    let r = app
        .put2(
            &format!("/v2.0/ports/{pid}"),
            json!({"port": {"network_id": net}}),
        )
        .await;
    assert_eq!(r.code(), 400);

    // Network in use.
    let r = app.delete(&format!("/v2.0/networks/{net}")).await;
    assert_eq!(r.code(), 409);
    assert_eq!(error_type(&r), "NetworkInUse");
    let r = app
        .get(&format!("/v2.0/ports?network_id={net}&fields=id"))
        .await;
    assert_eq!(r.full()["ports"].as_array().unwrap().len(), 2);
    let r = app
        .get("/v2.0/ports?fixed_ips=ip_address%3D198.18.0.7&fields=id")
        .await;
    assert_eq!(r.full()["ports"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn macs_are_unique_per_network_honoured_and_reusable() {
    let app = app();
    let n1 = app.net2("m1").await;
    let n2 = app.net2("m2").await;
    let mac = "fa:16:3e:00:00:01";
    let r = app
        .port2(json!({"network_id": n1, "mac_address": "FA-16-3E-00-00-01"}))
        .await;
    assert_eq!(r.code(), 201);
    assert_eq!(r.full()["port"]["mac_address"], mac);
    let first = r.full()["port"]["id"].as_str().unwrap().to_owned();
    let r = app
        .port2(json!({"network_id": n1, "mac_address": mac}))
        .await;
    assert_eq!(r.code(), 409);
    assert_eq!(error_type(&r), "MacAddressInUse");
    assert_eq!(
        r.full()["NeutronError"]["message"],
        format!("Unable to complete operation for network {n1}. The mac address {mac} is in use.")
    );
    let r = app
        .port2(json!({"network_id": n2, "mac_address": mac}))
        .await;
    assert_eq!(r.code(), 201);
    let r = app
        .port2(json!({"network_id": n1, "mac_address": "zz"}))
        .await;
    assert_eq!(r.code(), 400);
    assert_eq!(
        r.full()["NeutronError"]["message"],
        "Invalid input for mac_address. Reason: 'zz' is not a valid MAC address."
    );
    assert_eq!(
        app.delete(&format!("/v2.0/ports/{first}")).await.code(),
        204
    );
    let r = app
        .port2(json!({"network_id": n1, "mac_address": mac}))
        .await;
    assert_eq!(r.code(), 201);
}

#[tokio::test]
async fn exhausted_pools_fail_generation() {
    let app = app();
    let net = app.net2("small").await;
    // A /30: one usable address besides the gateway.
    assert_eq!(
        app.subnet2(&net, "198.18.9.0/30", json!({})).await.code(),
        201
    );
    assert_eq!(app.port2(json!({"network_id": net})).await.code(), 201);
    let r = app.port2(json!({"network_id": net})).await;
    assert_eq!(r.code(), 409);
    assert_eq!(error_type(&r), "IpAddressGenerationFailure");
}

#[tokio::test]
async fn port_security_and_address_pairs_reach_the_forwarder() {
    let app = app();
    let net = app.net2("sec").await;
    app.subnet2(&net, "198.18.4.0/24", json!({})).await;
    let r = app
        .port2(json!({"network_id": net, "port_security_enabled": false,
                      "allowed_address_pairs": [{"ip_address": "198.18.4.100"}]}))
        .await;
    assert_eq!(r.code(), 409);
    assert_eq!(error_type(&r), "AddressPairAndPortSecurityRequired");
    let r = app
        .port2(json!({"network_id": net, "allowed_address_pairs": [
            {"ip_address": "198.18.5.0/24", "mac_address": "fa:16:3e:11:11:11"},
            {"ip_address": "198.18.4.100"}]}))
        .await;
    assert_eq!(r.code(), 201, "{r:?}");
    let p = r.full()["port"].clone();
    let pid = p["id"].as_str().unwrap().to_owned();
    let mac = p["mac_address"].as_str().unwrap().to_owned();
    assert_eq!(
        p["allowed_address_pairs"],
        json!([{"mac_address": "fa:16:3e:11:11:11", "ip_address": "198.18.5.0/24"},
               {"mac_address": mac, "ip_address": "198.18.4.100"}])
    );
    let desired = app.fwd.last();
    let d = desired.ports.iter().find(|d| d.id == pid).unwrap();
    assert_eq!(d.device, format!("tap{}", &pid[..11]));
    assert_eq!(d.mac, mac);
    let sec = d.security.clone().unwrap();
    assert_eq!(
        sec.fixed_ips,
        vec!["198.18.4.2".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(sec.allowed_pairs.len(), 2);

    // Live update: port security off (pairs and groups cleared with it), then admin down.
    let r = app
        .put2(
            &format!("/v2.0/ports/{pid}"),
            json!({"port": {"port_security_enabled": false}}),
        )
        .await;
    assert_eq!(r.code(), 409);
    let r = app
        .put2(
            &format!("/v2.0/ports/{pid}"),
            json!({"port": {"port_security_enabled": false, "allowed_address_pairs": [],
                "security_groups": []}}),
        )
        .await;
    assert_eq!(r.code(), 200);
    let d = app
        .fwd
        .last()
        .ports
        .into_iter()
        .find(|d| d.id == pid)
        .unwrap();
    assert!(d.security.is_none());
    assert!(d.admin_up);
    app.put2(
        &format!("/v2.0/ports/{pid}"),
        json!({"port": {"admin_state_up": false}}),
    )
    .await;
    let d = app
        .fwd
        .last()
        .ports
        .into_iter()
        .find(|d| d.id == pid)
        .unwrap();
    assert!(!d.admin_up);
    // A network taken down takes its ports down.
    app.put2(
        &format!("/v2.0/ports/{pid}"),
        json!({"port": {"admin_state_up": true}}),
    )
    .await;
    app.put2(
        &format!("/v2.0/networks/{net}"),
        json!({"network": {"admin_state_up": false}}),
    )
    .await;
    let d = app
        .fwd
        .last()
        .ports
        .into_iter()
        .find(|d| d.id == pid)
        .unwrap();
    assert!(!d.admin_up);
    assert_eq!(app.delete(&format!("/v2.0/ports/{pid}")).await.code(), 204);
    assert!(app.fwd.last().ports.iter().all(|d| d.id != pid));
}

#[tokio::test]
async fn status_is_active_only_while_forwarding() {
    let app = app();
    let net = app.net2("st").await;
    let r = app.port2(json!({"network_id": net})).await;
    let pid = r.full()["port"]["id"].as_str().unwrap().to_owned();
    assert_eq!(r.full()["port"]["status"], "DOWN");
    app.port_up(&pid);
    let r = app.get(&format!("/v2.0/ports/{pid}")).await;
    assert_eq!(r.full()["port"]["status"], "ACTIVE");
    let r = app.get("/v2.0/ports?status=ACTIVE&fields=id").await;
    assert_eq!(r.full()["ports"], json!([{"id": pid}]));
    app.put2(
        &format!("/v2.0/ports/{pid}"),
        json!({"port": {"admin_state_up": false}}),
    )
    .await;
    let r = app.get(&format!("/v2.0/ports/{pid}")).await;
    assert_eq!(r.full()["port"]["status"], "DOWN");
}

#[tokio::test]
async fn project_headers_and_body_owner_scope_requests() {
    let app = app();
    let h = [("content-type", "application/json"), ("x-project-id", "p1")];
    let r = app
        .req(
            "POST",
            "/v2.0/networks",
            Some(r#"{"network": {"name": "mine"}}"#),
            &h,
        )
        .await;
    assert_eq!(r.code(), 201);
    assert_eq!(r.full()["network"]["project_id"], "p1");
    let mine = r.full()["network"]["id"].as_str().unwrap().to_owned();
    let r = app
        .req(
            "POST",
            "/v2.0/networks",
            Some(r#"{"network": {"name": "x", "project_id": "p2"}}"#),
            &h,
        )
        .await;
    assert_eq!(r.code(), 400);
    // The noauth admin names the owner in the body and sees everything.
    let r = app
        .post2(
            "/v2.0/networks",
            json!({"network": {"name": "theirs", "tenant_id": "p2"}}),
        )
        .await;
    assert_eq!(r.code(), 201);
    assert_eq!(r.full()["network"]["tenant_id"], "p2");
    let theirs = r.full()["network"]["id"].as_str().unwrap().to_owned();
    let r = app.get("/v2.0/networks?fields=name").await;
    assert_eq!(r.full()["networks"].as_array().unwrap().len(), 2);
    let r = app.get("/v2.0/networks?project_id=p2&fields=name").await;
    assert_eq!(r.full()["networks"], json!([{"name": "theirs"}]));
    // A project sees its own only.
    let r = app.req("GET", "/v2.0/networks", None, &h).await;
    assert_eq!(r.full()["networks"][0]["id"], mine.as_str());
    assert_eq!(r.full()["networks"].as_array().unwrap().len(), 1);
    let r = app
        .req("GET", &format!("/v2.0/networks/{theirs}"), None, &h)
        .await;
    assert_eq!(r.code(), 404);
    let r = app
        .req("DELETE", &format!("/v2.0/networks/{theirs}"), None, &h)
        .await;
    assert_eq!(r.code(), 404);
}

#[tokio::test]
async fn openapi_describes_the_v2_routes() {
    let app = app();
    let doc = app.get("/openapi.json").await.full();
    for path in [
        "/v2.0/",
        "/v2.0/extensions",
        "/v2.0/extensions/{alias}",
        "/v2.0/networks",
        "/v2.0/networks/{network_id}",
        "/v2.0/subnets",
        "/v2.0/subnets/{subnet_id}",
        "/v2.0/ports",
        "/v2.0/ports/{port_id}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["components"]["schemas"]["NeutronError"].is_object());
}

#[tokio::test]
// Field by field: the option structs grow with other features; `..Default::default()` would be a
// needless update while they have only these fields.
#[allow(clippy::field_reassign_with_default)]
async fn no_vlan_left_is_503_and_huge_bodies_are_413() {
    let mut copts = control::ControlOptions::default();
    copts.physnets[0].vlan_ranges = vec![(7, 7)];
    let mut aopts = api::ApiOptions::default();
    aopts.max_body_bytes = 256;
    let app = crate::common::app_with(copts, aopts);
    app.net2("only").await;
    let r = app
        .post2(
            "/v2.0/networks",
            json!({"network": {"name": "one-too-many"}}),
        )
        .await;
    assert_eq!(r.code(), 503);
    assert_eq!(error_type(&r), "NoNetworkAvailable");
    let r = app
        .post2(
            "/v2.0/networks",
            json!({"network": {"name": "x".repeat(1000)}}),
        )
        .await;
    assert_eq!(r.code(), 413);
    assert_eq!(error_type(&r), "HTTPRequestEntityTooLarge");
    let r = app.get("/v2.0/networks").await;
    assert_eq!(
        r.full()["networks"][0]["provider:segmentation_id"],
        json!(7)
    );
}

#[tokio::test]
async fn fixed_ips_entries_need_a_subnet_or_an_address_and_the_network_subnets() {
    let app = app();
    let bare = app.net2("no-subnets").await;
    let r = app
        .port2(json!({"network_id": bare, "fixed_ips": [{"ip_address": "198.18.7.1"}]}))
        .await;
    assert_eq!(r.code(), 400);
    assert_eq!(
        r.full()["NeutronError"]["message"],
        "Invalid input for operation: IP allocation requires subnets for network."
    );
    // Without fixed_ips, a network without subnets gives a port without addresses.
    let r = app.port2(json!({"network_id": bare})).await;
    assert_eq!(r.code(), 201);
    assert_eq!(r.full()["port"]["fixed_ips"], json!([]));
    let net = app.net2("with-subnet").await;
    app.subnet2(&net, "198.18.8.0/24", json!({})).await;
    for entry in [json!({}), json!({"foo": "bar"})] {
        let r = app
            .port2(json!({"network_id": net, "fixed_ips": [entry]}))
            .await;
        assert_eq!(r.code(), 400);
        assert_eq!(error_type(&r), "InvalidInput");
        assert_eq!(
            r.full()["NeutronError"]["message"],
            "Invalid input for operation: IP allocation requires subnet_id or ip_address."
        );
    }
    let r = app
        .port2(json!({"network_id": net, "fixed_ips": [{"ip_address": "nope"}]}))
        .await;
    assert_eq!(
        r.full()["NeutronError"]["message"],
        "Invalid input for fixed_ips. Reason: 'nope' is not a valid IP address."
    );
}

/// Asks each query of a `collection` list twice, as an admin and as project `pa`: as given
/// (the store path, where its filters allow) and with `force` added (a filter the store does not
/// answer, matching every item: the in-memory path). Both must answer the same, links included
/// (but for `force` itself); pa's unfiltered list has `pa_sees` items.
async fn same_in_store_and_memory(
    app: &App,
    collection: &str,
    queries: &[String],
    force: &str,
    pa_sees: usize,
) {
    let body = |r: Resp| -> Value { serde_json::from_str(&r.body).unwrap() };
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(links) = v[format!("{collection}_links")].as_array_mut() {
            for l in links {
                let href = l["href"]
                    .as_str()
                    .unwrap()
                    .replace(&format!("&{force}"), "");
                l["href"] = Value::String(href);
            }
        }
        v
    };
    for q in queries {
        for project in [None, Some("pa")] {
            let h: Vec<(&str, &str)> = project.map(|p| ("x-project-id", p)).into_iter().collect();
            let sep = if q.is_empty() { "" } else { "&" };
            let store = app
                .req("GET", &format!("/v2.0/{collection}?{q}"), None, &h)
                .await;
            let memory = app
                .req(
                    "GET",
                    &format!("/v2.0/{collection}?{q}{sep}{force}"),
                    None,
                    &h,
                )
                .await;
            assert_eq!(store.code(), 200, "{q}: {store:?}");
            assert_eq!(memory.code(), 200, "{q}: {memory:?}");
            let (s, m) = (body(store), body(memory));
            assert_eq!(strip(&s), strip(&m), "{q} as {project:?}");
            if q.is_empty() && project.is_some() {
                assert_eq!(s[collection].as_array().unwrap().len(), pa_sees, "{s}");
            }
        }
    }
}

/// Port lists page in the store when their filters allow it; a filter on a derived attribute
/// (`status`) takes the in-memory path. Both must give the same pages and links, whatever the
/// filters, markers, directions and limits.
#[tokio::test]
async fn port_lists_page_the_same_in_the_store_and_in_memory() {
    let app = app();
    let n1 = app.net2("a").await;
    let n2 = app.net2("b").await;
    let s1 = app.subnet2(&n1, "198.18.10.0/24", json!({})).await.full()["subnet"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ids = Vec::new();
    for i in 0..12 {
        let (net, owner) = if i % 3 == 0 {
            (&n2, "compute:x")
        } else {
            (&n1, "")
        };
        let body = json!({"network_id": net, "name": format!("p{}", i % 4),
            "device_id": format!("vm{}", i % 5), "device_owner": owner,
            "admin_state_up": i % 4 != 1, "tenant_id": if i % 2 == 0 { "pa" } else { "pb" }});
        let r = app.port2(body).await;
        assert_eq!(r.code(), 201, "{r:?}");
        ids.push(r.full()["port"]["id"].as_str().unwrap().to_owned());
    }
    let ip = {
        let r = app.get(&format!("/v2.0/ports/{}", ids[1])).await;
        r.full()["port"]["fixed_ips"][0]["ip_address"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let m = &ids[4];
    let queries = [
        String::new(),
        "limit=5".into(),
        format!("limit=5&marker={m}"),
        format!("limit=3&marker={m}&page_reverse=True"),
        "limit=4&page_reverse=True".into(),
        format!("network_id={n1}&limit=3"),
        format!("network_id={n1}&network_id={n2}&limit=7&marker={}", ids[2]),
        "device_id=vm1&device_id=vm2".into(),
        "device_owner=compute:x&limit=2".into(),
        "name=p0&admin_state_up=True".into(),
        "admin_state_up=false".into(),
        "tenant_id=pb&limit=2".into(),
        format!("project_id=pa&marker={m}"),
        format!("fixed_ips=ip_address={ip}"),
        format!("fixed_ips=subnet_id={s1}&limit=3"),
        format!("id={}&id={}", ids[0], ids[7]),
        // A marker outside the filtered list: an empty page.
        format!("network_id={n2}&marker={}", ids[1]),
        "limit=0".into(),
        "fields=id&fields=name&limit=3".into(),
    ];
    // pa's own six ports.
    same_in_store_and_memory(&app, "ports", &queries, "status=DOWN", 6).await;
}

/// Network lists page in the store when their filters allow it; a filter on an attribute the
/// store does not answer (`mtu`, here matching every network) takes the in-memory path. Both must
/// give the same pages and links, for an admin and for a project (its own and shared networks).
#[tokio::test]
async fn network_lists_page_the_same_in_the_store_and_in_memory() {
    let app = app();
    let mut ids = Vec::new();
    for i in 0..10 {
        let body = json!({"network": {"name": format!("n{}", i % 3),
            "tenant_id": if i % 2 == 0 { "pa" } else { "pb" },
            "shared": i % 4 == 3, "admin_state_up": i % 5 != 2,
            "description": if i % 3 == 0 { "x" } else { "" }}});
        let r = app.post2("/v2.0/networks", body).await;
        assert_eq!(r.code(), 201, "{r:?}");
        ids.push(r.full()["network"]["id"].as_str().unwrap().to_owned());
    }
    let subnet = app.subnet2(&ids[1], "198.18.20.0/24", json!({})).await;
    assert_eq!(subnet.code(), 201, "{subnet:?}");
    let m = &ids[4];
    let queries = [
        String::new(),
        "limit=4".into(),
        format!("limit=3&marker={m}"),
        format!("limit=2&marker={m}&page_reverse=True"),
        "limit=3&page_reverse=True".into(),
        "name=n1&limit=2".into(),
        "name=n0&name=n2".into(),
        "tenant_id=pb".into(),
        format!("project_id=pa&marker={m}"),
        "shared=True".into(),
        "shared=false&limit=3".into(),
        "admin_state_up=False".into(),
        "description=x".into(),
        format!("id={}&id={}", ids[0], ids[7]),
        // A marker outside the filtered list: an empty page.
        format!("tenant_id=pb&marker={}", ids[0]),
        "fields=id&fields=subnets&limit=3".into(),
    ];
    // pa's five networks and pb's two shared ones (3 and 7).
    same_in_store_and_memory(&app, "networks", &queries, "mtu=1500", 7).await;
}

/// Subnet lists too: the store path against the in-memory one (`enable_dhcp`, true for every
/// subnet here, is not a column filter), for an admin and for a project that sees its own
/// subnets and those of shared networks.
#[tokio::test]
async fn subnet_lists_page_the_same_in_the_store_and_in_memory() {
    let app = app();
    let mut nets = Vec::new();
    for (i, (tenant, shared)) in [("pa", false), ("pb", false), ("pb", true)]
        .iter()
        .enumerate()
    {
        let body =
            json!({"network": {"name": format!("n{i}"), "tenant_id": tenant, "shared": shared}});
        let r = app.post2("/v2.0/networks", body).await;
        assert_eq!(r.code(), 201, "{r:?}");
        nets.push(r.full()["network"]["id"].as_str().unwrap().to_owned());
    }
    let mut ids = Vec::new();
    for i in 0..9 {
        let net = &nets[i % 3];
        let tenant = if i % 3 == 0 { "pa" } else { "pb" };
        let (cidr, extra) = if i % 4 == 3 {
            (
                format!("2001:db8:{i}::/64"),
                json!({"name": "six", "tenant_id": tenant}),
            )
        } else {
            (
                format!("198.18.{i}.0/24"),
                json!({"name": format!("s{}", i % 2), "tenant_id": tenant}),
            )
        };
        let r = app.subnet2(net, &cidr, extra).await;
        assert_eq!(r.code(), 201, "{r:?}");
        ids.push(r.full()["subnet"]["id"].as_str().unwrap().to_owned());
    }
    let m = &ids[4];
    let queries = [
        String::new(),
        "limit=4".into(),
        format!("limit=3&marker={m}"),
        format!("limit=2&marker={m}&page_reverse=True"),
        format!("network_id={}", nets[1]),
        "name=s0&limit=2".into(),
        "ip_version=6".into(),
        "cidr=198.18.4.0/24".into(),
        "gateway_ip=198.18.5.1".into(),
        "tenant_id=pb&limit=3".into(),
        format!("project_id=pa&marker={}", ids[3]),
        format!("id={}&id={}", ids[0], ids[8]),
        format!("network_id={}&marker={}", nets[0], ids[1]),
        "fields=id&fields=cidr&limit=3".into(),
    ];
    // pa's three subnets (network 0) and the three of the shared network 2.
    same_in_store_and_memory(&app, "subnets", &queries, "enable_dhcp=True", 6).await;
}

#[tokio::test]
async fn quantum_made_resources_have_real_timestamps_in_v2() {
    let app = app();
    let net = app.network("v1.1", "t", "n").await;
    let port = app.port("v1.1", "t", &net, "ACTIVE").await;
    let stamp = |v: &Value| {
        let s = v.as_str().unwrap().to_owned();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z'), "{s}");
        s
    };
    let n = app.get(&format!("/v2.0/networks/{net}")).await.full();
    stamp(&n["network"]["created_at"]);
    let p = app.get(&format!("/v2.0/ports/{port}")).await.full();
    let created = stamp(&p["port"]["created_at"]);
    assert!(stamp(&p["port"]["updated_at"]) >= created);
}

/// MTU as Neutron: at most the physical network's (1500), any non-negative value below it; a
/// subnet needs 68 (IPv4) or 1280 (IPv6), also when the MTU is lowered later.
#[tokio::test]
async fn network_mtus_follow_neutrons_rules() {
    let app = app();
    let create = |mtu: Value| {
        app.post2(
            "/v2.0/networks",
            json!({"network": {"name": "m", "mtu": mtu}}),
        )
    };
    let r = create(json!(1501)).await;
    assert_eq!(r.code(), 400);
    assert_eq!(
        r.full()["NeutronError"]["message"],
        "Invalid input for operation: Requested MTU is too big, maximum is 1500."
    );
    let r = create(json!("abc")).await;
    assert_eq!(r.code(), 400);
    assert_eq!(
        r.full()["NeutronError"]["message"],
        "Invalid input for operation: 'abc' is not an integer."
    );
    let r = create(json!(-1)).await;
    assert_eq!(r.code(), 400);
    assert_eq!(
        r.full()["NeutronError"]["message"],
        "Invalid input for mtu. Reason: '-1' should be non-negative."
    );
    assert_eq!(app.net2("default").await.len(), 36);
    let r = app.get("/v2.0/networks?name=default").await;
    assert_eq!(r.full()["networks"][0]["mtu"], 1500);
    // A tiny MTU is a valid network, but no subnet fits it.
    let r = create(json!(60)).await;
    assert_eq!(r.code(), 201, "{r:?}");
    let tiny = r.full()["network"]["id"].as_str().unwrap().to_owned();
    let r = app.subnet2(&tiny, "198.18.0.0/24", json!({})).await;
    assert_eq!(r.code(), 409, "{r:?}");
    assert_eq!(r.full()["NeutronError"]["type"], "NetworkMTUSubnetConflict");
    assert_eq!(
        r.full()["NeutronError"]["message"],
        format!("MTU of {tiny} is not valid, subnet requires a minimum of 68")
    );
    // IPv6 needs 1280; lowering the MTU under what a subnet needs is refused.
    let r = create(json!(1000)).await;
    let small = r.full()["network"]["id"].as_str().unwrap().to_owned();
    let r = app.subnet2(&small, "2001:db8::/64", json!({})).await;
    assert_eq!(r.code(), 409, "{r:?}");
    assert!(r.body.contains("a minimum of 1280"), "{r:?}");
    assert_eq!(
        app.subnet2(&small, "198.18.1.0/24", json!({})).await.code(),
        201
    );
    let url = format!("/v2.0/networks/{small}");
    let bodies: Vec<String> = [50, 1400, 1600]
        .iter()
        .map(|m| json!({"network": {"mtu": m}}).to_string())
        .collect();
    let put = |i: usize| app.send("PUT", &url, &bodies[i]);
    let r = put(0).await;
    assert_eq!(r.code(), 409, "{r:?}");
    assert!(r.body.contains("a minimum of 68"), "{r:?}");
    let r = put(1).await;
    assert_eq!(r.code(), 200, "{r:?}");
    assert_eq!(r.full()["network"]["mtu"], 1400);
    assert_eq!(put(2).await.code(), 400);
}
