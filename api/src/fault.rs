//! Faults: the one error type of the HTTP boundary and its mapping to
//! status codes and bodies, per version and format (spec section 2).
//!
//! Three body shapes exist:
//! - Quantum faults and HTTP errors raised in handlers go through the
//!   version's fault function: v1.0 `{<title>: {code, message, detail}}`
//!   (status = code), v1.1 `{"QuantumError": {type, message, detail}}`.
//! - Body deserialization errors use the generic `{"Error": {code, message}}`.
//! - Outside a version (`/` and unknown top-level paths) only the generic
//!   body exists.

use axum::http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use control::ControlError;
use serde_json::{json, Value};

use crate::negotiate::{Format, Version};
use crate::xml;

/// Explanations of the HTTP errors (webob's wording).
const BAD_REQUEST: &str =
    "The server could not comply with the request since it is either malformed or otherwise incorrect.";
const NOT_FOUND: &str = "The resource could not be found.";
const METHOD_NOT_ALLOWED: &str = "The method is not allowed for this resource.";
const CONFLICT: &str = "There was a conflict when trying to complete your request.";
const TOO_LARGE: &str = "The body of your request was too large for this server.";
const HEADER_TOO_LARGE: &str = "A header line of your request was too large for this server.";
const SERVER_ERROR: &str =
    "The server has either erred or is incapable of performing the requested operation.";

/// Everything a request can fail with.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// A rule or lookup of the control plane.
    Control(ControlError),
    /// The body lacks the resource key (`network`, `port`, ...).
    MissingResource(&'static str),
    /// A required parameter is absent.
    MissingParam(&'static str),
    /// A value of the wrong type or shape, or an unknown filter.
    BadRequest(String),
    /// A body that is not valid JSON or XML.
    MalformedBody,
    /// A body with a `Content-Type` other than JSON or XML.
    UnsupportedContentType,
    /// A POST or PUT that needs a body and has none.
    MissingBody,
    /// No such route or extension.
    NotFound(String),
    /// The route exists, not for this method.
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The methods the route accepts, if known.
        allow: Option<HeaderValue>,
    },
    /// The body is over the configured limit.
    TooLarge(usize),
    /// A request header line is over the limit (bytes).
    HeaderTooLarge(usize),
    /// No token, or one that is not known (token mode).
    Unauthorized(&'static str),
    /// The token's roles do not allow the call.
    Forbidden(&'static str),
    /// The tenant sent more requests of this verb class than its rate.
    RateLimited {
        /// Whole seconds until one more request would pass.
        retry_after: u64,
        /// Which limit, for the client.
        detail: String,
    },
    /// Something broke on our side; never detailed to the client.
    Internal,
}

/// A fault rendered through the version's fault function.
struct Versioned {
    v10_code: u16,
    v10_title: &'static str,
    v11_status: u16,
    v11_type: &'static str,
    message: &'static str,
    detail: String,
}

/// An HTTP error (no Quantum type): same code in both versions,
/// `QuantumServiceFault` in v1.1.
fn http(code: u16, title: &'static str, message: &'static str, detail: String) -> Versioned {
    Versioned {
        v10_code: code,
        v10_title: title,
        v11_status: code,
        v11_type: "QuantumServiceFault",
        message,
        detail,
    }
}

fn quantum(
    v10: (u16, &'static str),
    v11: (u16, &'static str),
    message: &'static str,
    detail: String,
) -> Versioned {
    Versioned {
        v10_code: v10.0,
        v10_title: v10.1,
        v11_status: v11.0,
        v11_type: v11.1,
        message,
        detail,
    }
}

enum Shape {
    Versioned(Versioned),
    Generic { code: u16, message: &'static str },
}

fn control_fault(e: &ControlError) -> Shape {
    let detail = e.to_string();
    use ControlError as E;
    Shape::Versioned(match e {
        E::NetworkNotFound { .. } => quantum(
            (420, "networkNotFound"),
            (404, "NetworkNotFound"),
            "Unable to find a network with the specified identifier.",
            detail,
        ),
        E::NetworkInUse { .. } => quantum(
            (421, "networkInUse"),
            (409, "NetworkInUse"),
            "Unable to remove the network: attachments still plugged.",
            detail,
        ),
        E::PortNotFound { .. } => quantum(
            (430, "portNotFound"),
            (404, "PortNotFound"),
            "Unable to find a port with the specified identifier.",
            detail,
        ),
        E::StateInvalid { .. } => quantum(
            (431, "requestedStateInvalid"),
            (400, "RequestedStateInvalid"),
            "Unable to update port state with specified value.",
            detail,
        ),
        E::PortInUse { .. } => quantum(
            (432, "portInUse"),
            (409, "PortInUse"),
            "A resource is currently attached to the logical port",
            detail,
        ),
        E::AlreadyAttached { .. } => quantum(
            (440, "alreadyAttached"),
            (409, "AlreadyAttached"),
            "The resource is already attached to another port",
            detail,
        ),
        E::InterfaceNotFound { .. } => quantum(
            (404, "interfaceNotFound"),
            (404, "InterfaceNotFound"),
            "Unable to find an interface with the specified identifier.",
            detail,
        ),
        E::InterfaceNotRegistered { .. } => quantum(
            (404, "interfaceNotRegistered"),
            (404, "InterfaceNotRegistered"),
            "The interface is not registered to this tenant.",
            detail,
        ),
        E::InterfaceInUse { .. } => quantum(
            (409, "interfaceInUse"),
            (409, "InterfaceInUse"),
            "The interface is plugged into a port.",
            detail,
        ),
        E::InterfaceConflict { .. } => quantum(
            (409, "interfaceConflict"),
            (409, "InterfaceConflict"),
            "The interface id or device is already registered.",
            detail,
        ),
        E::NoFreeVlan { .. } => quantum(
            (470, "serviceUnavailable"),
            (503, "NoFreeVlan"),
            "No segmentation id is left for a new network.",
            detail,
        ),
        E::OverQuota { .. } => quantum(
            (413, "overLimit"),
            (409, "OverQuota"),
            "Quota exceeded: the tenant holds as many of these resources as it may.",
            detail,
        ),
        E::Invalid { .. } => http(400, "Bad Request", BAD_REQUEST, detail),
        E::Store { .. } => http(500, "Internal Server Error", SERVER_ERROR, String::new()),
        E::Unavailable { .. } => quantum(
            (503, "serviceUnavailable"),
            (503, "ServiceUnavailable"),
            "The service is unavailable: its database cannot be reached. Retry later.",
            String::new(),
        ),
        // The Neutron v2.0 rules; Quantum routes meet them only through the
        // shared model (e.g. a network's subnets), as plain HTTP errors.
        E::SubnetNotFound { .. } => http(404, "Not Found", NOT_FOUND, detail),
        E::InvalidIpForSubnet { .. }
        | E::InvalidIpForNetwork { .. }
        | E::InvalidAllocationPool { .. }
        | E::OutOfBoundsAllocationPool { .. }
        | E::InvalidInput { .. } => http(400, "Bad Request", BAD_REQUEST, detail),
        _ => http(409, "Conflict", CONFLICT, detail),
    })
}

impl ApiError {
    fn shape(&self) -> Shape {
        match self {
            Self::Control(e) => control_fault(e),
            Self::MissingResource(res) => Shape::Versioned(http(
                400,
                "Bad Request",
                BAD_REQUEST,
                format!("Unable to find '{res}' in request body"),
            )),
            Self::MissingParam(name) => Shape::Versioned(http(
                400,
                "Bad Request",
                BAD_REQUEST,
                format!("Failed to parse request. Parameter: {name} not specified"),
            )),
            Self::BadRequest(detail) => {
                Shape::Versioned(http(400, "Bad Request", BAD_REQUEST, detail.clone()))
            }
            Self::MalformedBody => Shape::Generic {
                code: 400,
                message: "Malformed request body",
            },
            Self::UnsupportedContentType => Shape::Generic {
                code: 400,
                message: "Unsupported Content-Type",
            },
            Self::MissingBody => Shape::Generic {
                code: 400,
                message: BAD_REQUEST,
            },
            Self::NotFound(detail) => {
                Shape::Versioned(http(404, "Not Found", NOT_FOUND, detail.clone()))
            }
            Self::MethodNotAllowed { method, .. } => Shape::Versioned(http(
                405,
                "Method Not Allowed",
                METHOD_NOT_ALLOWED,
                format!("The method {method} is not allowed for this resource."),
            )),
            Self::TooLarge(limit) => Shape::Versioned(http(
                413,
                "Request Entity Too Large",
                TOO_LARGE,
                format!("Request bodies are limited to {limit} bytes"),
            )),
            Self::HeaderTooLarge(limit) => Shape::Versioned(http(
                431,
                "Request Header Fields Too Large",
                HEADER_TOO_LARGE,
                format!("Request header lines are limited to {limit} bytes"),
            )),
            Self::Unauthorized(detail) => Shape::Versioned(quantum(
                (401, "unauthorized"),
                (401, "Unauthorized"),
                "This server could not verify that you are authorized to access the document \
                 you requested.",
                (*detail).to_owned(),
            )),
            Self::Forbidden(detail) => Shape::Versioned(quantum(
                (403, "forbidden"),
                (403, "Forbidden"),
                "Access was denied to this resource.",
                (*detail).to_owned(),
            )),
            Self::RateLimited { detail, .. } => Shape::Versioned(quantum(
                (429, "overLimit"),
                (429, "OverLimit"),
                "Too many requests: the rate limit of this tenant was reached.",
                detail.clone(),
            )),
            Self::Internal => Shape::Versioned(http(
                500,
                "Internal Server Error",
                SERVER_ERROR,
                String::new(),
            )),
        }
    }

    /// Renders the fault for a version (`None` outside the versioned APIs)
    /// and a format.
    pub(crate) fn render(&self, version: Option<Version>, format: Format) -> Response {
        match self {
            Self::Control(ControlError::Store { detail }) => {
                tracing::error!(%detail, "store failure");
            }
            Self::Control(ControlError::Unavailable { detail }) => {
                tracing::warn!(%detail, "store unavailable");
            }
            _ => {}
        }
        let (status, body): (u16, Value) = match (self.shape(), version) {
            (Shape::Versioned(f), Some(Version::V10)) => (
                f.v10_code,
                json!({ f.v10_title: {"code": f.v10_code, "message": f.message, "detail": f.detail} }),
            ),
            (Shape::Versioned(f), Some(Version::V11)) => (
                f.v11_status,
                json!({"QuantumError": {"type": f.v11_type, "message": f.message, "detail": f.detail}}),
            ),
            (Shape::Versioned(f), None) => (
                f.v11_status,
                json!({"Error": {"code": f.v11_status, "message": f.message}}),
            ),
            (Shape::Generic { code, message }, _) => {
                (code, json!({"Error": {"code": code, "message": message}}))
            }
        };
        // Quantum v1.0 codes 420..=471 are not registered HTTP codes but are
        // valid three-digit status codes.
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let text = match format {
            Format::Json => body.to_string(),
            Format::Xml => xml_fault(&body, version),
        };
        let mut resp = (status, text).into_response();
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(format.mime()));
        match self {
            Self::MethodNotAllowed {
                allow: Some(allow), ..
            } => {
                resp.headers_mut().insert(ALLOW, allow.clone());
            }
            Self::Unauthorized(_) => {
                resp.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("X-Auth-Token realm=\"qswitch\""),
                );
            }
            Self::RateLimited { retry_after, .. } => {
                resp.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            Self::Control(ControlError::OverQuota { .. }) => {
                return crate::metrics::Refusal::Quota.mark(resp);
            }
            _ => {}
        }
        resp
    }
}

/// The XML form of a fault body: `code` is an attribute of the root (v1.0
/// and the generic body); a v1.0 title with spaces (`Bad Request`) becomes a
/// valid element name (`badRequest`).
fn xml_fault(body: &Value, version: Option<Version>) -> String {
    let Some((title, inner)) = body.as_object().and_then(|m| m.iter().next()) else {
        return String::new();
    };
    let name = element_name(title);
    let mut renamed = serde_json::Map::new();
    renamed.insert(name.clone(), inner.clone());
    let attrs = [(name.as_str(), &["code"][..])];
    xml::to_xml(&Value::Object(renamed), &attrs, version.map(Version::xmlns))
}

fn element_name(title: &str) -> String {
    if !title.contains(char::is_whitespace) {
        return title.to_owned();
    }
    let compact: String = title.split_whitespace().collect();
    let mut chars = compact.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => "fault".to_owned(),
    }
}

/// A fault bound to the version and format of its request.
#[derive(Debug)]
pub(crate) struct Fault {
    pub(crate) error: ApiError,
    pub(crate) version: Option<Version>,
    pub(crate) format: Format,
}

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        self.error.render(self.version, self.format)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(resp: Response) -> String {
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn v10_xml_fault_has_code_attribute_and_namespace() {
        let e = ApiError::Control(ControlError::NetworkNotFound {
            net_id: "n1".into(),
        });
        let resp = e.render(Some(Version::V10), Format::Xml);
        assert_eq!(resp.status().as_u16(), 420);
        assert_eq!(
            body_of(resp).await,
            "<networkNotFound xmlns=\"http://openstack.org/quantum/api/v1.0\" code=\"420\">\
             <message>Unable to find a network with the specified identifier.</message>\
             <detail>Network n1 could not be found</detail></networkNotFound>"
        );
    }

    #[tokio::test]
    async fn v10_bad_request_xml_root_is_a_valid_name() {
        let resp = ApiError::MissingParam("name").render(Some(Version::V10), Format::Xml);
        let body = body_of(resp).await;
        assert!(
            body.starts_with(
                "<badRequest xmlns=\"http://openstack.org/quantum/api/v1.0\" code=\"400\">"
            ),
            "{body}"
        );
    }

    #[tokio::test]
    async fn v11_xml_fault_has_three_child_elements() {
        let resp = ApiError::Control(ControlError::StateInvalid { state: "x".into() })
            .render(Some(Version::V11), Format::Xml);
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            body_of(resp).await,
            "<QuantumError xmlns=\"http://openstack.org/quantum/api/v1.1\">\
             <type>RequestedStateInvalid</type>\
             <message>Unable to update port state with specified value.</message>\
             <detail>Unsupported port state: x</detail></QuantumError>"
        );
    }

    #[tokio::test]
    async fn internal_errors_do_not_leak_details() {
        let e = ApiError::Control(ControlError::Store {
            detail: "disk I/O error at /secret".into(),
        });
        let resp = e.render(Some(Version::V11), Format::Json);
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body_of(resp).await.contains("secret"));
    }
}
