//! API versions, formats and content negotiation (`wsgi.Request.best_match_content_type`).
//!
//! Order: a URI suffix `.json`/`.xml` wins; then a `Content-Type` of
//! `application/json` or `application/xml`; then the `Accept` header matched
//! against those two (JSON first on ties); the default is JSON.

use axum::extract::Request;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::uri::{PathAndQuery, Uri};
use axum::http::HeaderMap;

/// A Quantum API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// v1.0: 200 on create, 4xx Quantum codes, no op-status.
    V10,
    /// v1.1: 202 on create, standard codes with `QuantumError`, op-status.
    V11,
}

impl Version {
    /// The XML namespace of the version (Essex).
    pub(crate) fn xmlns(self) -> &'static str {
        match self {
            Self::V10 => "http://openstack.org/quantum/api/v1.0",
            Self::V11 => "http://openstack.org/quantum/api/v1.1",
        }
    }

    /// The path segment, `v1.0` or `v1.1`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::V10 => "v1.0",
            Self::V11 => "v1.1",
        }
    }
}

/// A body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `application/json`.
    Json,
    /// `application/xml`.
    Xml,
}

impl Format {
    pub(crate) fn mime(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Xml => "application/xml",
        }
    }

    fn from_mime(media_type: &str) -> Option<Self> {
        match media_type {
            "application/json" => Some(Self::Json),
            "application/xml" => Some(Self::Xml),
            _ => None,
        }
    }
}

/// The format suffix a request's path carried, recorded by [`strip_suffix`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Suffix(pub(crate) Format);

/// Removes a `.json`/`.xml` suffix from the last path segment of requests
/// under `/v1.0/` and `/v1.1/` and records it as a [`Suffix`] extension, so
/// that routes match with and without it.
pub(crate) fn strip_suffix(mut req: Request) -> Request {
    let path = req.uri().path();
    if !(path.starts_with("/v1.0/") || path.starts_with("/v1.1/")) {
        return req;
    }
    let found = [(".json", Format::Json), (".xml", Format::Xml)]
        .into_iter()
        .find_map(|(ext, f)| path.strip_suffix(ext).map(|rest| (rest.to_owned(), f)));
    let Some((rest, format)) = found else {
        return req;
    };
    if rest.ends_with('/') {
        return req;
    }
    let new = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest,
    };
    let mut parts = req.uri().clone().into_parts();
    let Ok(pq) = PathAndQuery::try_from(new) else {
        return req;
    };
    parts.path_and_query = Some(pq);
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
        req.extensions_mut().insert(Suffix(format));
    }
    req
}

/// The media type of a header value, without parameters, lower-cased.
pub(crate) fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The `Content-Type` format, if the header names JSON or XML.
pub(crate) fn content_type_format(headers: &HeaderMap) -> Option<Format> {
    let ct = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    Format::from_mime(&media_type(ct))
}

/// The response format for a request.
pub(crate) fn negotiate(suffix: Option<Suffix>, headers: &HeaderMap) -> Format {
    if let Some(Suffix(f)) = suffix {
        return f;
    }
    if let Some(f) = content_type_format(headers) {
        return f;
    }
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(best_accept)
        .unwrap_or(Format::Json)
}

/// Matches an `Accept` header against JSON and XML (in that order of
/// preference on equal quality). `None` when neither is acceptable.
fn best_accept(accept: &str) -> Option<Format> {
    let quality = |offer: &str| -> f32 {
        let (otype, _) = offer.split_once('/').unwrap_or((offer, ""));
        // (specificity, q) of the most specific matching range.
        let mut best: Option<(u8, f32)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let mt = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|v| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let spec = if mt == offer {
                3
            } else if mt == format!("{otype}/*") {
                2
            } else if mt == "*/*" {
                1
            } else {
                continue;
            };
            if best.is_none_or(|(s, _)| spec > s) {
                best = Some((spec, q));
            }
        }
        best.map_or(0.0, |(_, q)| q)
    };
    let json = quality(Format::Json.mime());
    let xml = quality(Format::Xml.mime());
    if json <= 0.0 && xml <= 0.0 {
        None
    } else if xml > json {
        Some(Format::Xml)
    } else {
        Some(Format::Json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn suffix_beats_content_type_beats_accept() {
        let h = headers(&[
            ("content-type", "application/xml; charset=utf-8"),
            ("accept", "application/json"),
        ]);
        assert_eq!(negotiate(Some(Suffix(Format::Json)), &h), Format::Json);
        assert_eq!(negotiate(None, &h), Format::Xml);
        let h = headers(&[
            ("content-type", "text/plain"),
            ("accept", "application/xml"),
        ]);
        assert_eq!(negotiate(None, &h), Format::Xml);
    }

    #[test]
    fn accept_matching_prefers_json_on_ties_and_defaults_to_json() {
        let f = |a: &str| negotiate(None, &headers(&[("accept", a)]));
        assert_eq!(f("*/*"), Format::Json);
        assert_eq!(f("application/*"), Format::Json);
        assert_eq!(
            f("application/xml;q=0.9, application/json;q=0.5"),
            Format::Xml
        );
        assert_eq!(f("text/html"), Format::Json);
        assert_eq!(f("application/json;q=0, application/xml"), Format::Xml);
        assert_eq!(negotiate(None, &HeaderMap::new()), Format::Json);
    }

    #[test]
    fn suffix_is_stripped_only_under_versions() {
        let strip = |uri: &str| {
            let req = Request::builder()
                .uri(uri)
                .body(axum::body::Body::empty())
                .unwrap();
            let req = strip_suffix(req);
            (
                req.uri().to_string(),
                req.extensions().get::<Suffix>().copied(),
            )
        };
        assert_eq!(
            strip("/v1.1/tenants/t/networks.xml?name=a"),
            (
                "/v1.1/tenants/t/networks?name=a".to_owned(),
                Some(Suffix(Format::Xml))
            )
        );
        assert_eq!(
            strip("/v1.0/tenants/t/networks/n/detail.json"),
            (
                "/v1.0/tenants/t/networks/n/detail".to_owned(),
                Some(Suffix(Format::Json))
            )
        );
        assert_eq!(strip("/openapi.json"), ("/openapi.json".to_owned(), None));
        assert_eq!(strip("/v1.1/.json"), ("/v1.1/.json".to_owned(), None));
    }
}
