//! The per-request context of a versioned call, the success reply, and body
//! reading.
//!
//! Handlers take a [`Ctx`] (version, negotiated format, path parameters,
//! query) and optionally the raw body; they return `Result<Reply, ApiError>`
//! which [`Ctx::finish`] renders in the request's version and format. Every
//! extractor a handler uses is infallible except `Ctx` itself, whose
//! rejection is already a rendered fault, so no axum default error body can
//! reach a client.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, OriginalUri, RawPathParams};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use control::Control;
use serde_json::{Map, Value};

use crate::auth::{self, Principal};
use crate::fault::{ApiError, Fault};
use crate::limit::RateLimiter;
use crate::links::{self, Links};
use crate::negotiate::{self, Format, Suffix, Version};
use crate::xml;

/// State shared by the routes of one API version.
#[derive(Debug, Clone)]
pub(crate) struct VersionState {
    pub(crate) control: Arc<Control>,
    pub(crate) version: Version,
    pub(crate) max_body: usize,
    /// The server's maximum page size (v1.1 lists).
    pub(crate) max_page: usize,
    /// The rate limiter, for the limits document.
    pub(crate) limiter: Arc<RateLimiter>,
}

/// A versioned request's context.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) control: Arc<Control>,
    pub(crate) version: Version,
    pub(crate) format: Format,
    params: Vec<(String, String)>,
    pub(crate) query: Option<String>,
    content_type: Option<String>,
    content_length: Option<u64>,
    max_body: usize,
    /// `http://host` of the request, for links.
    pub(crate) origin: String,
    /// The path as the client sent it (suffix included), for page links.
    pub(crate) path: String,
    pub(crate) max_page: usize,
    pub(crate) limiter: Arc<RateLimiter>,
    /// The authenticated caller (token mode).
    pub(crate) principal: Option<Principal>,
}

impl FromRequestParts<VersionState> for Ctx {
    type Rejection = Fault;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &VersionState,
    ) -> Result<Self, Self::Rejection> {
        let format =
            negotiate::negotiate(parts.extensions.get::<Suffix>().copied(), &parts.headers);
        let fault = |error| Fault {
            error,
            version: Some(state.version),
            format,
        };
        let params: Vec<(String, String)> =
            match RawPathParams::from_request_parts(parts, state).await {
                Ok(raw) => raw
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                Err(_) => {
                    return Err(fault(ApiError::BadRequest(
                        "Path parameters must be valid UTF-8".to_owned(),
                    )))
                }
            };
        // `/tenants//networks`: no tenant is named, so there is nothing there.
        if params.iter().any(|(k, v)| k == "tenant_id" && v.is_empty()) {
            return Err(fault(ApiError::NotFound(format!(
                "No resource at {}",
                parts.uri.path()
            ))));
        }
        let principal = parts.extensions.get::<Principal>().cloned();
        if let Some(p) = &principal {
            let route = parts
                .extensions
                .get::<MatchedPath>()
                .map(MatchedPath::as_str)
                .unwrap_or("");
            auth::authorize(p, &parts.method, route, &params).map_err(fault)?;
        }
        let path = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.path().to_owned(), |u| u.path().to_owned());
        Ok(Self {
            origin: links::origin(parts.headers.get(HOST).and_then(|h| h.to_str().ok())),
            path,
            max_page: state.max_page,
            limiter: state.limiter.clone(),
            principal,
            control: state.control.clone(),
            version: state.version,
            format,
            params,
            query: parts.uri.query().map(str::to_owned),
            content_type: parts
                .headers
                .get(CONTENT_TYPE)
                .map(|v| v.to_str().map(negotiate::media_type).unwrap_or_default()),
            content_length: parts
                .headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()),
            max_body: state.max_body,
        })
    }
}

impl Ctx {
    /// Whether the caller may do what only admins may: an admin token, or anyone in noauth
    /// mode (which trusts every caller, as it does for the MAC table).
    pub(crate) fn admin_rights(&self) -> bool {
        self.principal
            .as_ref()
            .is_none_or(|p| p.has(crate::auth::Role::Admin))
    }

    /// Whether the caller authenticated as an admin: only then do views carry admin-only
    /// attributes (noauth mode keeps the core bodies exactly as the versions define them).
    pub(crate) fn admin_token(&self) -> bool {
        self.principal
            .as_ref()
            .is_some_and(|p| p.has(crate::auth::Role::Admin))
    }

    /// A path parameter by name (empty if the route has none by that name).
    pub(crate) fn param(&self, name: &str) -> String {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// The tenant id of the URL.
    pub(crate) fn tenant(&self) -> String {
        self.param("tenant_id")
    }

    /// The URL's tenant as a scope of the shared operations: Quantum acts on one tenant's own
    /// resources, whoever calls.
    pub(crate) fn scope(&self) -> control::neutron::Scope {
        control::neutron::Scope {
            tenant_id: self.tenant(),
            admin: false,
        }
    }

    /// The link builder of this request's tenant.
    pub(crate) fn links(&self) -> Links {
        Links::new(self.origin.clone(), self.version, &self.tenant())
    }

    /// Runs a control-plane call on a blocking thread (it may wait on the
    /// store's fsync).
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Control) -> control::Result<T> + Send + 'static,
    {
        let control = self.control.clone();
        match tokio::task::spawn_blocking(move || f(&control)).await {
            Ok(result) => result.map_err(ApiError::Control),
            Err(e) => {
                tracing::error!(error = %e, "control call panicked or was cancelled");
                Err(ApiError::Internal)
            }
        }
    }

    /// Runs a point read that only reads the store (an index seek or two on a pooled WAL
    /// reader, which never waits for a writer) on the runtime's own thread: it takes less time
    /// than the hop to a blocking thread would. Anything that reads a collection, asks the
    /// switch (a port's status takes its lock) or writes goes through [`Ctx::run`]. A panic is a
    /// 500, as on a blocking thread.
    pub(crate) fn read_point<T>(
        &self,
        f: impl FnOnce(&Control) -> control::Result<T>,
    ) -> Result<T, ApiError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&self.control)))
            .unwrap_or_else(|_| {
                tracing::error!("a show panicked");
                Err(control::ControlError::Store {
                    detail: "a show panicked".into(),
                })
            })
            .map_err(ApiError::Control)
    }

    /// Renders a handler's result.
    pub(crate) fn finish(&self, result: Result<Reply, ApiError>) -> Response {
        match result {
            Ok(reply) => reply.render(Some(self.version), self.format),
            Err(error) => error.render(Some(self.version), self.format),
        }
    }

    /// Reads and parses the request body: `None` when it is empty.
    pub(crate) async fn body(&self, body: Body) -> Result<Option<Value>, ApiError> {
        if self
            .content_length
            .is_some_and(|n| n > self.max_body as u64)
        {
            return Err(ApiError::TooLarge(self.max_body));
        }
        let bytes = read_limited(body, self.max_body).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let format = match self.content_type.as_deref() {
            None => self.format,
            Some("application/json") => Format::Json,
            Some("application/xml") => Format::Xml,
            Some(_) => return Err(ApiError::UnsupportedContentType),
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| ApiError::MalformedBody)?;
        match format {
            Format::Json => serde_json::from_str(text).map_err(|_| ApiError::MalformedBody),
            Format::Xml => xml::from_xml(text).map_err(|_| ApiError::MalformedBody),
        }
        .map(Some)
    }
}

async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let inner = e.into_inner();
        if inner.is::<http_body_util::LengthLimitError>() {
            ApiError::TooLarge(limit)
        } else {
            ApiError::MalformedBody
        }
    })
}

/// The resource object of a request body (`{"network": {...}}` ->
/// `{...}`), per `_prepare_request_body`. An absent body is `{}` when
/// `optional`, else a generic 400.
pub(crate) fn resource(
    body: Option<Value>,
    key: &'static str,
    optional: bool,
) -> Result<Map<String, Value>, ApiError> {
    let Some(body) = body else {
        return if optional {
            Ok(Map::new())
        } else {
            Err(ApiError::MissingBody)
        };
    };
    let Value::Object(mut outer) = body else {
        return Err(ApiError::MissingResource(key));
    };
    match outer.remove(key) {
        None => Err(ApiError::MissingResource(key)),
        Some(Value::Object(m)) => Ok(m),
        // `<port/>` in XML, or `{"port": null}`: a resource with no fields.
        Some(Value::Null) => Ok(Map::new()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Map::new()),
        Some(_) => Err(ApiError::BadRequest(format!(
            "Failed to parse request. '{key}' must be an object"
        ))),
    }
}

/// An optional string parameter: absent, `null` and `""` are `None` (the
/// original replaces falsy values by the default); other types are refused.
pub(crate) fn opt_str(
    res: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, ApiError> {
    match res.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::BadRequest(format!(
            "Failed to parse request. Parameter: {name} must be a string"
        ))),
    }
}

/// A required string parameter.
pub(crate) fn req_str(res: &Map<String, Value>, name: &'static str) -> Result<String, ApiError> {
    opt_str(res, name)?.ok_or(ApiError::MissingParam(name))
}

/// A success reply: a status and an optional body with its XML metadata.
#[derive(Debug)]
pub(crate) struct Reply {
    status: StatusCode,
    body: Option<Value>,
    attrs: xml::Attrs<'static>,
    namespaced: bool,
    bare: bool,
}

impl Reply {
    /// A body answered with `status`; XML attributes per `attrs`.
    pub(crate) fn body(status: StatusCode, body: Value, attrs: xml::Attrs<'static>) -> Self {
        Self {
            status,
            body: Some(body),
            attrs,
            namespaced: true,
            bare: false,
        }
    }

    /// 200 with a body.
    pub(crate) fn ok(body: Value, attrs: xml::Attrs<'static>) -> Self {
        Self::body(StatusCode::OK, body, attrs)
    }

    /// 204 with no body.
    pub(crate) fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            body: None,
            attrs: &[],
            namespaced: false,
            bare: false,
        }
    }

    /// Without an `xmlns` on the XML root (the versions document).
    pub(crate) fn without_namespace(mut self) -> Self {
        self.namespaced = false;
        self
    }

    /// In JSON, the value inside the one-key body without its key (the
    /// extension descriptor); XML keeps the key as the root element.
    pub(crate) fn bare(mut self) -> Self {
        self.bare = true;
        self
    }

    pub(crate) fn render(self, version: Option<Version>, format: Format) -> Response {
        let Some(body) = self.body else {
            return self.status.into_response();
        };
        let text = match format {
            Format::Json if self.bare => body
                .as_object()
                .and_then(|m| m.values().next())
                .unwrap_or(&body)
                .to_string(),
            Format::Json => body.to_string(),
            Format::Xml => {
                let ns = if self.namespaced {
                    version.map(Version::xmlns)
                } else {
                    None
                };
                xml::to_xml(&body, self.attrs, ns)
            }
        };
        let mut resp = (self.status, text).into_response();
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(format.mime()));
        resp
    }
}
