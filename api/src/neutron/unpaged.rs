//! What the resources with short lists (QoS policies and rules, agents) share: their `fields`,
//! filters and sort keys (applied in memory; the lists are not paged) and the shape of their
//! request and response bodies.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::error::NeutronError;
use super::{ok, R};

/// `fields=` and filters (`key=value`, repeated keys OR, keys AND) of a list or a show.
pub(super) struct Query {
    fields: Vec<String>,
    filters: Vec<(String, Vec<String>)>,
    /// Sort keys, ascending or not (pairs of `sort_key` and `sort_dir`).
    sort: Vec<(String, bool)>,
}

pub(super) fn query(uri: &axum::http::Uri, known: &[&str], list: bool) -> R<Query> {
    let mut q = Query {
        fields: Vec::new(),
        filters: Vec::new(),
        sort: Vec::new(),
    };
    let mut dirs = Vec::new();
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        let (k, v) = (k.into_owned(), v.into_owned());
        match k.as_str() {
            "fields" => q.fields.push(v),
            "sort_key" if known.contains(&v.as_str()) => q.sort.push((v, true)),
            "sort_key" => {
                return Err(NeutronError::bad_request(format!(
                    "['{v}'] is invalid attribute for sort_keys"
                )))
            }
            "sort_dir" => dirs.push(v != "desc"),
            // Lists are short: not paged (the keys are accepted and ignored).
            "limit" | "marker" | "page_reverse" => {}
            _ if !list => {}
            _ => match q.filters.iter_mut().find(|(name, _)| *name == k) {
                Some((_, values)) => values.push(v),
                None => q.filters.push((k, vec![v])),
            },
        }
    }
    for (key, asc) in q.sort.iter_mut().zip(dirs) {
        key.1 = asc;
    }
    let bad: Vec<String> = q
        .filters
        .iter()
        .filter(|(k, _)| !known.contains(&k.as_str()))
        .map(|(k, _)| format!("'{k}'"))
        .collect();
    if !bad.is_empty() {
        return Err(NeutronError::bad_request(format!(
            "[{}] is invalid attribute for filtering",
            bad.join(", ")
        )));
    }
    Ok(q)
}

impl Query {
    fn keep(&self, item: &Map<String, Value>) -> R<bool> {
        for (k, values) in &self.filters {
            let mut any = false;
            for v in values {
                any |= super::query::matches_one(item.get(k), v)?;
            }
            if !any {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub(super) fn project(&self, item: Map<String, Value>) -> Map<String, Value> {
        if self.fields.is_empty() {
            return item;
        }
        item.into_iter()
            .filter(|(k, _)| self.fields.iter().any(|f| f == k))
            .collect()
    }

    pub(super) fn answer(&self, key: &str, mut items: Vec<Map<String, Value>>) -> R<Response> {
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        items.sort_by(|a, b| {
            for (k, asc) in &self.sort {
                let o = text(a.get(k)).cmp(&text(b.get(k)));
                let o = if *asc { o } else { o.reverse() };
                if o.is_ne() {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if self.keep(&item)? {
                out.push(Value::Object(self.project(item)));
            }
        }
        Ok(ok(StatusCode::OK, json!({ key: out })))
    }
}

/// The one object of a body: `{"policy": {...}}`.
pub(super) fn object(body: Value, key: &str) -> R<Map<String, Value>> {
    match body {
        Value::Object(mut outer) => match outer.remove(key) {
            Some(Value::Object(m)) => Ok(m),
            _ => Err(NeutronError::bad_request(format!(
                "Unable to find '{key}' in request body"
            ))),
        },
        _ => Err(NeutronError::bad_request("Body contains invalid data")),
    }
}

/// Refuses attributes the resource does not have, or may not set.
pub(super) fn check_keys(body: &Map<String, Value>, allowed: &[&str]) -> R<()> {
    let unknown: Vec<&str> = body
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(NeutronError::bad_request(format!(
        "Unrecognized attribute(s) '{}'",
        unknown.join(", ")
    )))
}

/// An empty 204 answer.
pub(super) fn no_content() -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}
