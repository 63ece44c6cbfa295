//! Test harness: the router on a temporary SQLite file or a fresh PostgreSQL database (as the
//! test binary's `STORE` says), called in-process.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use control::{
    Changes, Control, ControlOptions, DesiredState, Forwarder, MacEntry, PortStatistics,
    TrackedConnection,
};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// Records every applied state; reports the ports in `up` as forwarding, and the counters, MAC
/// tables and tracked connections the test put in `stats`, `macs` and `conns`.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pub(crate) applied: Mutex<Vec<DesiredState>>,
    pub(crate) up: Mutex<HashSet<String>>,
    pub(crate) stats: Mutex<HashMap<String, PortStatistics>>,
    pub(crate) macs: Mutex<HashMap<String, Vec<MacEntry>>>,
    pub(crate) conns: Mutex<HashMap<String, Vec<TrackedConnection>>>,
}

impl Forwarder for Recorder {
    fn apply(&self, changes: &Changes) {
        let mut applied = self.applied.lock().unwrap();
        let mut state = applied.last().cloned().unwrap_or_default();
        state.apply(changes);
        applied.push(state);
    }
    fn port_up(&self, port_id: &str) -> bool {
        self.up.lock().unwrap().contains(port_id)
    }
    fn port_stats(&self, port_id: &str) -> Option<PortStatistics> {
        self.stats.lock().unwrap().get(port_id).cloned()
    }
    fn mac_table(&self, network_id: &str) -> Option<Vec<MacEntry>> {
        self.macs.lock().unwrap().get(network_id).cloned()
    }
    fn connections(&self, port_id: &str) -> Option<Vec<TrackedConnection>> {
        self.conns.lock().unwrap().get(port_id).cloned()
    }
}

impl Recorder {
    pub(crate) fn last(&self) -> DesiredState {
        self.applied.lock().unwrap().last().cloned().unwrap()
    }
    pub(crate) fn count(&self) -> usize {
        self.applied.lock().unwrap().len()
    }
}

#[derive(Debug)]
pub(crate) struct App {
    pub(crate) router: Router,
    pub(crate) control: Arc<Control>,
    pub(crate) fwd: Arc<Recorder>,
    pub(crate) _dir: tempfile::TempDir,
}

#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: StatusCode,
    pub(crate) content_type: Option<String>,
    pub(crate) allow: Option<String>,
    pub(crate) location: Option<String>,
    pub(crate) retry_after: Option<String>,
    pub(crate) body: String,
}

/// Removes the v1.1 ATOM links (`links`, `<collection>_links`) everywhere in
/// a body, so that assertions on resource fields need not spell them out;
/// the links have their own tests.
fn without_links(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                // A resource's links are the ones with a bookmark; the
                // versions document's and extension descriptors' stay.
                .filter(|(k, v)| {
                    let atom = v
                        .as_array()
                        .is_some_and(|a| a.iter().any(|l| l["rel"] == "bookmark"));
                    !(k.ends_with("_links") || (k == "links" && atom))
                })
                .map(|(k, v)| (k, without_links(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_links).collect()),
        other => other,
    }
}

/// An XML body without its ATOM `<links>` elements, elements left empty by
/// their removal written as empty-element tags (as they were before v1.1
/// carried links).
pub(crate) fn xml_without_links(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some(i) = rest.find("<links>") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find("</links>").expect("unclosed <links>");
        rest = &rest[i + end + "</links>".len()..];
    }
    out.push_str(rest);
    for name in ["network", "port", "interface"] {
        out = out.replace(&format!("\"></{name}>"), "\"/>");
    }
    out
}

impl Resp {
    /// The JSON body without its ATOM links (see [`Resp::json_full`]).
    pub(crate) fn json(&self) -> Value {
        without_links(self.json_full())
    }

    /// The JSON body as sent.
    pub(crate) fn json_full(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
    pub(crate) fn code(&self) -> u16 {
        self.status.as_u16()
    }
}

pub(crate) fn app() -> App {
    app_with(ControlOptions::default(), api::ApiOptions::default())
}

/// The store the tests of a binary run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // each test binary uses one
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// The private PostgreSQL server of this test process (durability is not under test here).
fn postgres() -> &'static control::testing::PrivatePostgres {
    static SERVER: std::sync::OnceLock<control::testing::PrivatePostgres> =
        std::sync::OnceLock::new();
    SERVER.get_or_init(|| {
        control::testing::PrivatePostgres::start(&["fsync=off", "full_page_writes=off"])
            .unwrap_or_else(|e| panic!("{e}"))
    })
}

/// A control plane on a new store of the binary's backend.
pub(crate) fn open_control(
    dir: &std::path::Path,
    fwd: Arc<dyn Forwarder>,
    copts: ControlOptions,
) -> Control {
    match crate::STORE {
        Backend::Sqlite => Control::open_with(dir.join("q.db"), fwd, copts).unwrap(),
        Backend::Postgres => {
            let name = format!("qs_{}", uuid::Uuid::new_v4().simple());
            let url = postgres().create_database(&name, None).unwrap();
            let store = control::store::postgres::PgStore::open(&url).unwrap();
            Control::with_store(Box::new(store), fwd, copts).unwrap()
        }
    }
}

pub(crate) fn app_with(copts: ControlOptions, aopts: api::ApiOptions) -> App {
    let dir = tempfile::tempdir().unwrap();
    let fwd = Arc::new(Recorder::default());
    let control = Arc::new(open_control(dir.path(), fwd.clone(), copts));
    let router = api::router(control.clone(), aopts);
    App {
        router,
        control,
        fwd,
        _dir: dir,
    }
}

impl App {
    /// The data plane forwards for this port: the recording forwarder says so, and on a shared
    /// store (PostgreSQL) a host reports it, as agents do.
    pub(crate) fn port_up(&self, port_id: &str) {
        let mut up = self.fwd.up.lock().unwrap();
        up.insert(port_id.to_owned());
        if crate::STORE == Backend::Postgres {
            let reports: Vec<control::agent::PortReport> = up
                .iter()
                .map(|id| control::agent::PortReport {
                    port_id: id.clone(),
                    status: "ACTIVE",
                    reason: None,
                })
                .collect();
            let rev = self.control.store_revision().unwrap();
            let report = control::agent::HostReport {
                revision: rev,
                changed: &reports,
                gone: &[],
                full: true,
            };
            self.control
                .report_host("test-host", "{}", true, &report)
                .unwrap();
        }
    }

    pub(crate) async fn req(
        &self,
        method: &str,
        uri: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "127.0.0.1:9696");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b
            .body(body.map_or_else(Body::empty, |s| Body::from(s.to_owned())))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let content_type = header("content-type");
        let allow = header("allow");
        let location = header("location");
        let retry_after = header("retry-after");
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            content_type,
            allow,
            location,
            retry_after,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    pub(crate) async fn get(&self, uri: &str) -> Resp {
        self.req("GET", uri, None, &[]).await
    }

    pub(crate) async fn delete(&self, uri: &str) -> Resp {
        self.req("DELETE", uri, None, &[]).await
    }

    /// A JSON body.
    pub(crate) async fn send(&self, method: &str, uri: &str, body: &str) -> Resp {
        self.req(
            method,
            uri,
            Some(body),
            &[("content-type", "application/json")],
        )
        .await
    }

    /// An XML body, XML answer.
    pub(crate) async fn send_xml(&self, method: &str, uri: &str, body: &str) -> Resp {
        self.req(
            method,
            uri,
            Some(body),
            &[("content-type", "application/xml")],
        )
        .await
    }

    /// Creates a network through the API and returns its id.
    pub(crate) async fn network(&self, v: &str, tenant: &str, name: &str) -> String {
        let r = self
            .send(
                "POST",
                &format!("/{v}/tenants/{tenant}/networks"),
                &format!(r#"{{"network": {{"name": "{name}"}}}}"#),
            )
            .await;
        assert!(r.status.is_success(), "{r:?}");
        r.json()["network"]["id"].as_str().unwrap().to_owned()
    }

    /// Creates a port through the API and returns its id.
    pub(crate) async fn port(&self, v: &str, tenant: &str, net: &str, state: &str) -> String {
        let r = self
            .send(
                "POST",
                &format!("/{v}/tenants/{tenant}/networks/{net}/ports"),
                &format!(r#"{{"port": {{"state": "{state}"}}}}"#),
            )
            .await;
        assert!(r.status.is_success(), "{r:?}");
        r.json()["port"]["id"].as_str().unwrap().to_owned()
    }

    /// Registers an interface through the API.
    pub(crate) async fn register(&self, v: &str, tenant: &str, id: &str, device: &str) {
        let r = self
            .send(
                "PUT",
                &format!("/{v}/tenants/{tenant}/interfaces/{id}"),
                &format!(r#"{{"interface": {{"device": "{device}"}}}}"#),
            )
            .await;
        assert_eq!(r.code(), 200, "{r:?}");
    }

    /// Plugs an attachment through the API.
    pub(crate) async fn plug(
        &self,
        v: &str,
        tenant: &str,
        net: &str,
        port: &str,
        att: &str,
    ) -> Resp {
        self.send(
            "PUT",
            &format!("/{v}/tenants/{tenant}/networks/{net}/ports/{port}/attachment"),
            &format!(r#"{{"attachment": {{"id": "{att}"}}}}"#),
        )
        .await
    }
}

pub(crate) const XMLNS_10: &str = "http://openstack.org/quantum/api/v1.0";
pub(crate) const XMLNS_11: &str = "http://openstack.org/quantum/api/v1.1";
