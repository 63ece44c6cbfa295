//! Response bodies of the core resources, per version (spec section 1's
//! table), and their XML metadata.

use control::{Interface, NetworkView, PortView};
use serde_json::{json, Map, Value};

use crate::links::Links;
use crate::negotiate::Version;
use crate::xml::Attrs;

/// v1.0 controller metadata: these fields are XML attributes.
const ATTRS_V10: Attrs<'static> = &[
    ("network", &["id", "name"]),
    ("port", &["id", "state"]),
    ("attachment", &["id"]),
];

/// v1.1 adds `op-status` and the ATOM links.
const ATTRS_V11: Attrs<'static> = &[
    ("network", &["id", "name", "op-status"]),
    ("port", &["id", "state", "op-status"]),
    ("attachment", &["id"]),
    ("link", &["rel", "href"]),
    ("networks_link", &["rel", "href"]),
    ("ports_link", &["rel", "href"]),
];

/// The interface registry's metadata.
pub(crate) const ATTRS_INTERFACES: Attrs<'static> = &[
    ("interface", &["id", "device", "host"]),
    ("link", &["rel", "href"]),
];

/// The XML metadata of networks and ports.
pub(crate) fn core_attrs(v: Version) -> Attrs<'static> {
    match v {
        Version::V10 => ATTRS_V10,
        Version::V11 => ATTRS_V11,
    }
}

/// `{"id"}`.
pub(crate) fn brief(id: &str) -> Value {
    json!({ "id": id })
}

/// A network's brief view: `{"id"[, "links"]}`.
pub(crate) fn network_brief(l: &Links, id: &str) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), id.into());
    if l.enabled() {
        m.insert("links".into(), l.network(id));
    }
    Value::Object(m)
}

/// A port's brief view: `{"id"[, "links"]}`.
pub(crate) fn port_brief(l: &Links, net: &str, id: &str) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), id.into());
    if l.enabled() {
        m.insert("links".into(), l.port(net, id));
    }
    Value::Object(m)
}

/// A network's show view: `{"id", "name"[, "op-status", "links"]}`; in v1.1 an admin also
/// sees the `provider` extension's attributes.
pub(crate) fn network(v: Version, l: &Links, n: &NetworkView, admin: bool) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), n.network.id.clone().into());
    m.insert("name".into(), n.network.name.clone().into());
    if v == Version::V11 {
        m.insert("op-status".into(), n.op_status.as_str().into());
        if admin {
            m.extend(crate::neutron::views::provider(&n.network));
        }
    }
    if l.enabled() {
        m.insert("links".into(), l.network(&n.network.id));
    }
    m
}

/// A network's detail view: the show view plus its ports with attachments.
pub(crate) fn network_detail(v: Version, l: &Links, n: &NetworkView, admin: bool) -> Value {
    let mut m = network(v, l, n, admin);
    let ports: Vec<Value> = n.ports.iter().map(|p| port_detail(v, l, p)).collect();
    m.insert("ports".into(), ports.into());
    Value::Object(m)
}

/// A port's show view: `{"id", "state"[, "op-status", "links"]}`.
pub(crate) fn port(v: Version, l: &Links, p: &PortView) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), p.port.id.clone().into());
    m.insert("state".into(), p.port.state.as_str().into());
    if v == Version::V11 {
        m.insert("op-status".into(), p.op_status.as_str().into());
    }
    if l.enabled() {
        m.insert("links".into(), l.port(&p.port.network_id, &p.port.id));
    }
    m
}

/// A port's detail view: the show view plus `"attachment": {"id"}` when
/// plugged.
pub(crate) fn port_detail(v: Version, l: &Links, p: &PortView) -> Value {
    let mut m = port(v, l, p);
    if let Some(att) = &p.port.attachment {
        m.insert("attachment".into(), brief(att));
    }
    Value::Object(m)
}

/// A registered interface: `{"id", "device"[, "host"][, "links"]}` (`host` once it is on one).
pub(crate) fn interface(l: &Links, i: &Interface) -> Value {
    let mut v = json!({ "id": i.id, "device": i.device });
    if !i.host.is_empty() {
        v["host"] = json!(i.host);
    }
    if l.enabled() {
        v["links"] = l.interface(&i.id);
    }
    v
}
