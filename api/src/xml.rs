//! XML bodies, as the original `wsgi.XMLDictSerializer` and
//! `XMLDeserializer` made and read them.
//!
//! Serializing: the root key is the root element (with `xmlns` when the body
//! is namespaced); scalar fields named in the metadata for an element become
//! attributes, other keys child elements; a list's items are named by the
//! list's name minus its trailing `s`. No XML declaration.
//!
//! Parsing: the root element's attributes and child elements both become
//! fields, so `<network name="x"/>` and `<network><name>x</name></network>`
//! read the same. Namespaces are ignored; a DTD is refused.

use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::Event;
use quick_xml::{Reader, XmlVersion};
use serde_json::{Map, Value};

/// The namespaces of extension attributes, by the prefix their names carry.
const EXT_NAMESPACES: [(&str, &str); 1] = [(
    "provider",
    "http://docs.openstack.org/ext/provider/api/v1.0",
)];

/// Per element name, the fields written as attributes.
pub(crate) type Attrs<'a> = &'a [(&'a str, &'a [&'a str])];

/// Serializes a JSON object as XML: its first key is the root element; any
/// further key (a paged list's `<collection>_links`) becomes a child
/// element at the end of the root, left out when it is an empty list.
pub(crate) fn to_xml(value: &Value, attrs: Attrs<'_>, xmlns: Option<&str>) -> String {
    let mut out = String::new();
    let Some(map) = value.as_object() else {
        return out;
    };
    let mut keys = map.iter();
    let Some((root, data)) = keys.next() else {
        return out;
    };
    node(&mut out, root, data, attrs, xmlns);
    // Extension attributes (`provider:network_type`) are elements of the extension's
    // namespace, declared on the root.
    for (prefix, ns) in EXT_NAMESPACES {
        if out.contains(&format!("<{prefix}:")) {
            let decl = format!(" xmlns:{prefix}=\"{ns}\"");
            out.insert_str(1 + root.len(), &decl);
        }
    }
    let mut extra = String::new();
    for (k, v) in keys {
        if v.as_array().is_some_and(Vec::is_empty) {
            continue;
        }
        node(&mut extra, k, v, attrs, None);
    }
    if !extra.is_empty() {
        let close = format!("</{root}>");
        if let Some(body) = out.strip_suffix(&close) {
            out = format!("{body}{extra}{close}");
        } else if let Some(body) = out.strip_suffix("/>") {
            out = format!("{body}>{extra}{close}");
        }
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Null => "None".to_owned(),
        other => other.to_string(),
    }
}

fn open(out: &mut String, name: &str, xmlns: Option<&str>) {
    out.push('<');
    out.push_str(name);
    if let Some(ns) = xmlns {
        out.push_str(" xmlns=\"");
        out.push_str(&escape(ns));
        out.push('"');
    }
}

fn node(out: &mut String, name: &str, data: &Value, attrs: Attrs<'_>, xmlns: Option<&str>) {
    open(out, name, xmlns);
    match data {
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("/>");
                return;
            }
            out.push('>');
            let singular = name.strip_suffix('s').unwrap_or("item");
            for item in items {
                node(out, singular, item, attrs, None);
            }
        }
        Value::Object(map) => {
            let mine = attrs
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(&[][..], |(_, a)| *a);
            let mut children = Vec::new();
            for (k, v) in map {
                if mine.contains(&k.as_str()) && !v.is_object() && !v.is_array() {
                    out.push(' ');
                    out.push_str(k);
                    out.push_str("=\"");
                    out.push_str(&escape(scalar(v)));
                    out.push('"');
                } else {
                    children.push((k, v));
                }
            }
            if children.is_empty() {
                out.push_str("/>");
                return;
            }
            out.push('>');
            for (k, v) in children {
                node(out, k, v, attrs, None);
            }
        }
        other => {
            out.push('>');
            out.push_str(&escape(scalar(other)));
        }
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// Deepest element nesting accepted in a request (Quantum bodies use 2).
const MAX_DEPTH: usize = 16;

/// Why an XML body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed;

struct Elem {
    name: String,
    fields: Map<String, Value>,
    text: String,
    has_children: bool,
}

impl Elem {
    fn into_value(self) -> Value {
        if self.fields.is_empty() && !self.has_children {
            Value::String(self.text)
        } else {
            Value::Object(self.fields)
        }
    }
}

/// The namespace prefixes a body declares (`xmlns:p="uri"`), in one scope for the whole body:
/// request bodies are two levels deep and declare their namespaces on the root.
type Prefixes = Vec<(String, String)>;

/// A name without its namespace prefix, unless the prefix is bound to an extension's
/// namespace: then it is named with the extension's own prefix (`provider:network_type`),
/// whatever prefix the body chose for it.
fn local(name: &str, prefixes: &Prefixes) -> String {
    let Some((prefix, rest)) = name.split_once(':') else {
        return name.to_owned();
    };
    let uri = prefixes.iter().find(|(p, _)| p == prefix).map(|(_, u)| u);
    match EXT_NAMESPACES
        .iter()
        .find(|(_, ns)| Some(*ns) == uri.map(String::as_str))
    {
        Some((ext, _)) => format!("{ext}:{rest}"),
        None => rest.to_owned(),
    }
}

fn start(
    e: &quick_xml::events::BytesStart<'_>,
    prefixes: &mut Prefixes,
) -> Result<Elem, Malformed> {
    let mut attrs = Vec::new();
    for attr in e.attributes() {
        let attr = attr.map_err(|_| Malformed)?;
        let key = attr.key.as_ref();
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|_| Malformed)?;
        if let Some(prefix) = key.strip_prefix("xmlns:") {
            prefixes.push((prefix.to_owned(), value.into_owned()));
        } else if key != "xmlns" {
            attrs.push((key.to_owned(), value.into_owned()));
        }
    }
    let fields = attrs
        .into_iter()
        .map(|(k, v)| (local(&k, prefixes), Value::String(v)))
        .collect();
    Ok(Elem {
        name: local(e.name().as_ref(), prefixes),
        fields,
        text: String::new(),
        has_children: false,
    })
}

/// Parses an XML request body into `{root: {field: value, ...}}`.
pub(crate) fn from_xml(body: &str) -> Result<Value, Malformed> {
    let mut reader = Reader::from_str(body);
    let mut stack: Vec<Elem> = Vec::new();
    let mut root: Option<Value> = None;
    let mut prefixes = Prefixes::new();
    let finish = |stack: &mut Vec<Elem>, root: &mut Option<Value>, elem: Elem| {
        let name = elem.name.clone();
        let value = elem.into_value();
        match stack.last_mut() {
            Some(parent) => {
                parent.has_children = true;
                parent.fields.insert(name, value);
                Ok(())
            }
            None if root.is_none() => {
                let mut m = Map::new();
                m.insert(name, value);
                *root = Some(Value::Object(m));
                Ok(())
            }
            None => Err(Malformed),
        }
    };
    loop {
        match reader.read_event().map_err(|_| Malformed)? {
            Event::Start(e) => {
                if root.is_some() {
                    return Err(Malformed);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(Malformed);
                }
                stack.push(start(&e, &mut prefixes)?);
            }
            Event::Empty(e) => {
                let elem = start(&e, &mut prefixes)?;
                finish(&mut stack, &mut root, elem)?;
            }
            Event::End(_) => {
                let elem = stack.pop().ok_or(Malformed)?;
                finish(&mut stack, &mut root, elem)?;
            }
            Event::Text(t) => {
                let text = t.xml10_content();
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err(Malformed),
                }
            }
            Event::CData(t) => {
                let top = stack.last_mut().ok_or(Malformed)?;
                top.text.push_str(&t.xml10_content());
            }
            Event::GeneralRef(r) => {
                let top = stack.last_mut().ok_or(Malformed)?;
                if r.is_char_ref() {
                    let c = r
                        .resolve_char_ref()
                        .map_err(|_| Malformed)?
                        .ok_or(Malformed)?;
                    top.text.push(c);
                } else {
                    let name = r.xml10_content();
                    top.text
                        .push_str(resolve_predefined_entity(&name).ok_or(Malformed)?);
                }
            }
            Event::DocType(_) => return Err(Malformed),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(Malformed);
    }
    root.ok_or(Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const META: Attrs<'static> = &[
        ("network", &["id", "name", "op-status"]),
        ("port", &["id", "state", "op-status"]),
        ("attachment", &["id"]),
    ];

    #[test]
    fn lists_and_attributes_follow_the_metadata() {
        let v = json!({"networks": [{"id": "a"}, {"id": "b&"}]});
        assert_eq!(
            to_xml(&v, META, Some("ns")),
            r#"<networks xmlns="ns"><network id="a"/><network id="b&amp;"/></networks>"#
        );
        let v = json!({"network": {"id": "n", "name": "x", "op-status": "UP",
            "ports": [{"id": "p", "state": "ACTIVE", "op-status": "UP", "attachment": {"id": "vif"}}]}});
        assert_eq!(
            to_xml(&v, META, Some("ns")),
            r#"<network xmlns="ns" id="n" name="x" op-status="UP"><ports><port id="p" state="ACTIVE" op-status="UP"><attachment id="vif"/></port></ports></network>"#
        );
        assert_eq!(to_xml(&json!({"networks": []}), META, None), "<networks/>");
    }

    #[test]
    fn fields_without_metadata_become_child_elements() {
        let v = json!({"attachment": {"id": "vif-1"}});
        assert_eq!(
            to_xml(&v, &[], Some("ns")),
            r#"<attachment xmlns="ns"><id>vif-1</id></attachment>"#
        );
        assert_eq!(
            to_xml(&json!({"attachment": {}}), &[], None),
            "<attachment/>"
        );
    }

    #[test]
    fn request_fields_are_read_from_attributes_and_children() {
        let want = json!({"network": {"name": "x<y"}});
        assert_eq!(from_xml(r#"<network name="x&lt;y"/>"#), Ok(want.clone()));
        assert_eq!(
            from_xml(
                r#"<?xml version="1.0"?><network xmlns="http://openstack.org/quantum/api/v1.1"><name>x&lt;y</name></network>"#
            ),
            Ok(want)
        );
        assert_eq!(
            from_xml("<attachment><id>&#118;if</id></attachment>"),
            Ok(json!({"attachment": {"id": "vif"}}))
        );
        assert_eq!(from_xml("<port/>"), Ok(json!({"port": ""})));
    }

    #[test]
    fn extension_attributes_keep_their_prefix_and_namespace() {
        let v = json!({"network": {"id": "n", "provider:network_type": "flat"}});
        assert_eq!(
            to_xml(&v, &[("network", &["id"])], Some("ns")),
            r#"<network xmlns:provider="http://docs.openstack.org/ext/provider/api/v1.0" xmlns="ns" id="n"><provider:network_type>flat</provider:network_type></network>"#
        );
        // The namespace decides, not the prefix the body chose.
        let body = r#"<network xmlns:p="http://docs.openstack.org/ext/provider/api/v1.0" xmlns:provider="other" name="x"><p:segmentation_id>7</p:segmentation_id><provider:network_type>flat</provider:network_type><q:other>1</q:other></network>"#;
        assert_eq!(
            from_xml(body).unwrap(),
            json!({"network": {"name": "x", "provider:segmentation_id": "7", "network_type": "flat", "other": "1"}})
        );
    }

    #[test]
    fn malformed_xml_is_refused() {
        for bad in [
            "",
            "<network>",
            "<network></port>",
            "<a/><b/>",
            "text",
            "<a>&custom;</a>",
            r#"<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>"#,
            &"<a>".repeat(100_000),
        ] {
            assert_eq!(from_xml(bad), Err(Malformed), "{bad}");
        }
    }
}
