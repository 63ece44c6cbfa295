//! Response bodies of the core resources, per version (spec section 1's
//! table), and their XML metadata.

use control::{Interface, NetworkView, PortView};
use serde_json::{json, Map, Value};

use crate::negotiate::Version;
use crate::xml::Attrs;

/// v1.0 controller metadata: these fields are XML attributes.
const ATTRS_V10: Attrs<'static> = &[
    ("network", &["id", "name"]),
    ("port", &["id", "state"]),
    ("attachment", &["id"]),
];

/// v1.1 adds `op-status`.
const ATTRS_V11: Attrs<'static> = &[
    ("network", &["id", "name", "op-status"]),
    ("port", &["id", "state", "op-status"]),
    ("attachment", &["id"]),
];

/// The interface registry's metadata.
pub(crate) const ATTRS_INTERFACES: Attrs<'static> = &[("interface", &["id", "device"])];

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

/// A network's show view: `{"id", "name"[, "op-status"]}`.
pub(crate) fn network(v: Version, n: &NetworkView) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), n.network.id.clone().into());
    m.insert("name".into(), n.network.name.clone().into());
    if v == Version::V11 {
        m.insert("op-status".into(), n.op_status.as_str().into());
    }
    m
}

/// A network's detail view: the show view plus its ports with attachments.
pub(crate) fn network_detail(v: Version, n: &NetworkView) -> Value {
    let mut m = network(v, n);
    let ports: Vec<Value> = n.ports.iter().map(|p| port_detail(v, p)).collect();
    m.insert("ports".into(), ports.into());
    Value::Object(m)
}

/// A port's show view: `{"id", "state"[, "op-status"]}`.
pub(crate) fn port(v: Version, p: &PortView) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), p.port.id.clone().into());
    m.insert("state".into(), p.port.state.as_str().into());
    if v == Version::V11 {
        m.insert("op-status".into(), p.op_status.as_str().into());
    }
    m
}

/// A port's detail view: the show view plus `"attachment": {"id"}` when
/// plugged.
pub(crate) fn port_detail(v: Version, p: &PortView) -> Value {
    let mut m = port(v, p);
    if let Some(att) = &p.port.attachment {
        m.insert("attachment".into(), brief(att));
    }
    Value::Object(m)
}

/// A registered interface: `{"id", "device"}`.
pub(crate) fn interface(i: &Interface) -> Value {
    json!({ "id": i.id, "device": i.device })
}
