//! ATOM links (spec section 8): `self` and `bookmark` links on every v1.1
//! resource, and the `next`/`previous` links of a paged list.
//!
//! - `self` is the versioned URL (`http://host/v1.1/tenants/t/networks/n`).
//! - `bookmark` is version-independent (`http://host/tenants/t/networks/n`);
//!   the router answers any `/tenants/...` path with a permanent redirect to
//!   the current version, so a bookmark keeps resolving across versions.
//! - A list's `next`/`previous` links are its request's own URL (path,
//!   suffix and filters) with `limit`, `marker` and `page_reverse` set for
//!   that page.
//!
//! Hosts come from the request's `Host` header, as the versions document's
//! links do; a header that is not a plain host[:port] gives `localhost`.

use serde_json::{json, Value};

use crate::negotiate::Version;
use crate::page;

/// The version links point to from bookmarks.
pub(crate) const CURRENT: Version = Version::V11;

/// Builds the links of one request's resources.
#[derive(Debug, Clone)]
pub(crate) struct Links {
    /// `http://host`.
    origin: String,
    version: Version,
    /// The URL's tenant, percent-encoded.
    tenant: String,
}

/// `http://` plus the `Host` header when it is a plain host[:port].
pub(crate) fn origin(host: Option<&str>) -> String {
    let ok = |h: &str| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
    };
    match host {
        Some(h) if ok(h) => format!("http://{h}"),
        _ => "http://localhost".to_owned(),
    }
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters stay).
pub(crate) fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Links {
    pub(crate) fn new(origin: String, version: Version, tenant: &str) -> Self {
        Self {
            origin,
            version,
            tenant: segment(tenant),
        }
    }

    /// Links appear in v1.1 only: v1.0 bodies stay as they were.
    pub(crate) fn enabled(&self) -> bool {
        self.version == Version::V11
    }

    fn pair(&self, rest: &str) -> Value {
        let path = format!("tenants/{}/{rest}", self.tenant);
        json!([
            {"rel": "self", "href": format!("{}/{}/{path}", self.origin, self.version.as_str())},
            {"rel": "bookmark", "href": format!("{}/{path}", self.origin)},
        ])
    }

    /// A network's links.
    pub(crate) fn network(&self, net: &str) -> Value {
        self.pair(&format!("networks/{}", segment(net)))
    }

    /// A port's links.
    pub(crate) fn port(&self, net: &str, port: &str) -> Value {
        self.pair(&format!(
            "networks/{}/ports/{}",
            segment(net),
            segment(port)
        ))
    }

    /// A registered interface's links.
    pub(crate) fn interface(&self, id: &str) -> Value {
        self.pair(&format!("interfaces/{}", segment(id)))
    }
}

/// The `next` and `previous` links of a page, from the request's own path
/// (as the client sent it, suffix included) and query.
pub(crate) fn page_links(
    origin: &str,
    path: &str,
    query: Option<&str>,
    limit: usize,
    next: Option<&str>,
    previous: Option<&str>,
) -> Value {
    let kept: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| !page::KEYS.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let href = |marker: &str, reverse: bool| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &kept {
            q.append_pair(k, v);
        }
        q.append_pair("limit", &limit.to_string());
        q.append_pair("marker", marker);
        if reverse {
            q.append_pair("page_reverse", "True");
        }
        format!("{origin}{path}?{}", q.finish())
    };
    let mut links = Vec::new();
    if let Some(m) = next {
        links.push(json!({"rel": "next", "href": href(m, false)}));
    }
    if let Some(m) = previous {
        links.push(json!({"rel": "previous", "href": href(m, true)}));
    }
    Value::Array(links)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_links_are_versioned_and_permanent() {
        let l = Links::new(origin(Some("10.0.0.1:9696")), Version::V11, "t a");
        assert_eq!(
            l.port("n", "p"),
            json!([
                {"rel": "self", "href": "http://10.0.0.1:9696/v1.1/tenants/t%20a/networks/n/ports/p"},
                {"rel": "bookmark", "href": "http://10.0.0.1:9696/tenants/t%20a/networks/n/ports/p"},
            ])
        );
        assert_eq!(origin(Some("evil\"host")), "http://localhost");
    }

    #[test]
    fn page_links_keep_filters_and_replace_paging_keys() {
        let v = page_links(
            "http://h",
            "/v1.1/tenants/t/networks.json",
            Some("name=a%20b&limit=5&marker=x&page_reverse=true"),
            2,
            Some("n9"),
            Some("n1"),
        );
        assert_eq!(
            v,
            json!([
                {"rel": "next", "href": "http://h/v1.1/tenants/t/networks.json?name=a+b&limit=2&marker=n9"},
                {"rel": "previous", "href": "http://h/v1.1/tenants/t/networks.json?name=a+b&limit=2&marker=n1&page_reverse=True"},
            ])
        );
    }
}
