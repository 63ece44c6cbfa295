//! Neutron's error body, `{"NeutronError": {"type", "message", "detail"}}`
//! with `Content-Type: application/json`, and the one mapping of control
//! errors onto Neutron's exception types and status codes
//! (`neutron_lib.exceptions`: NotFound 404, InUse and Conflict 409,
//! BadRequest and InvalidInput 400).

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use control::ControlError;
use serde_json::json;

/// A failed v2.0 request: status, Neutron exception type and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NeutronError {
    pub(crate) status: StatusCode,
    pub(crate) kind: &'static str,
    pub(crate) message: String,
}

impl NeutronError {
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    /// 400 `HTTPBadRequest`: malformed bodies, attribute validation.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "HTTPBadRequest", message)
    }

    /// 400 `BadRequest` (Neutron's own class, e.g. a bad `limit`).
    pub(crate) fn bad_request_class(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 400 `InvalidInput`: `Invalid input for operation: <reason>`.
    pub(crate) fn invalid_input(reason: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            format!("Invalid input for operation: {reason}"),
        )
    }

    /// 400 for one attribute: `Invalid input for <attr>. Reason: <reason>`.
    pub(crate) fn invalid_attr(attr: &str, reason: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("Invalid input for {attr}. Reason: {reason}"))
    }

    /// 404 `HTTPNotFound`: no such route.
    /// 403 `PolicyNotAuthorized`: an attribute only admins may set (Neutron's policy message).
    pub(crate) fn policy(rule: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "PolicyNotAuthorized",
            format!("{rule} is disallowed by policy"),
        )
    }

    pub(crate) fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "HTTPNotFound",
            "The resource could not be found.",
        )
    }

    /// 405 `HTTPMethodNotAllowed`.
    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "HTTPMethodNotAllowed",
            "The server could not comply with the request since it is either malformed or \
             otherwise incorrect.",
        )
    }

    /// 413 for a body over the configured cap.
    pub(crate) fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "HTTPRequestEntityTooLarge",
            format!("Request is too large: bodies are limited to {limit} bytes."),
        )
    }

    /// 431 for a header line over the limit.
    pub(crate) fn header_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "HTTPRequestHeaderFieldsTooLarge",
            format!("Request header lines are limited to {limit} bytes."),
        )
    }

    /// 500, never detailed.
    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "HTTPInternalServerError",
            "Request Failed: internal server error while processing your request.",
        )
    }
}

impl From<ControlError> for NeutronError {
    fn from(e: ControlError) -> Self {
        use ControlError as E;
        use StatusCode as S;
        let msg = e.to_string();
        match e {
            E::NetworkNotFound { net_id } => Self::new(
                S::NOT_FOUND,
                "NetworkNotFound",
                format!("Network {net_id} could not be found."),
            ),
            E::PortNotFound { port_id, .. } => Self::new(
                S::NOT_FOUND,
                "PortNotFound",
                format!("Port {port_id} could not be found."),
            ),
            E::SubnetNotFound { .. } => Self::new(S::NOT_FOUND, "SubnetNotFound", msg),
            E::NetworkHasPorts { .. } => Self::new(S::CONFLICT, "NetworkInUse", msg),
            E::NetworkInUse { net_id } => Self::new(
                S::CONFLICT,
                "NetworkInUse",
                format!(
                    "Unable to complete operation on network {net_id}. There are one or more \
                     ports still in use on the network."
                ),
            ),
            E::MacAddressInUse { .. } => Self::new(S::CONFLICT, "MacAddressInUse", msg),
            E::IpAddressAlreadyAllocated { .. } => {
                Self::new(S::CONFLICT, "IpAddressAlreadyAllocated", msg)
            }
            E::IpAddressGenerationFailure { .. } => {
                Self::new(S::CONFLICT, "IpAddressGenerationFailure", msg)
            }
            E::InvalidIpForSubnet { .. } => Self::new(S::BAD_REQUEST, "InvalidIpForSubnet", msg),
            E::InvalidIpForNetwork { .. } => Self::new(S::BAD_REQUEST, "InvalidIpForNetwork", msg),
            E::SubnetInUse { .. } => Self::new(S::CONFLICT, "SubnetInUse", msg),
            E::AddressPairAndPortSecurityRequired => {
                Self::new(S::CONFLICT, "AddressPairAndPortSecurityRequired", msg)
            }
            E::GatewayConflictWithAllocationPools { .. } => {
                Self::new(S::CONFLICT, "GatewayConflictWithAllocationPools", msg)
            }
            E::OverlappingAllocationPools { .. } => {
                Self::new(S::CONFLICT, "OverlappingAllocationPools", msg)
            }
            E::InvalidAllocationPool { .. } => {
                Self::new(S::BAD_REQUEST, "InvalidAllocationPool", msg)
            }
            E::OutOfBoundsAllocationPool { .. } => {
                Self::new(S::BAD_REQUEST, "OutOfBoundsAllocationPool", msg)
            }
            E::InvalidInput { .. } => Self::new(S::BAD_REQUEST, "InvalidInput", msg),
            E::Invalid { .. } | E::StateInvalid { .. } => Self::bad_request(msg),
            E::NoFreeVlan { .. } => Self::new(
                S::SERVICE_UNAVAILABLE,
                "NoNetworkAvailable",
                "Unable to create the network. No tenant network is available for allocation.",
            ),
            E::PortInUse { .. } | E::AlreadyAttached { .. } => {
                Self::new(S::CONFLICT, "PortInUse", msg)
            }
            E::InterfaceNotFound { .. } | E::InterfaceNotRegistered { .. } => {
                Self::new(S::NOT_FOUND, "HTTPNotFound", msg)
            }
            E::InterfaceInUse { .. } | E::InterfaceConflict { .. } => {
                Self::new(S::CONFLICT, "Conflict", msg)
            }
            E::OverQuota { resource, .. } => Self::new(
                S::CONFLICT,
                "OverQuota",
                // Neutron names the resource in the singular: ['port'].
                format!(
                    "Quota exceeded for resources: ['{}'].",
                    resource.strip_suffix('s').unwrap_or(resource)
                ),
            ),
            E::Conflict { .. } => Self::new(S::CONFLICT, "Conflict", msg),
            E::SecurityGroupNotFound { .. } => {
                Self::new(S::NOT_FOUND, "SecurityGroupNotFound", msg)
            }
            E::SecurityGroupRuleNotFound { .. } => {
                Self::new(S::NOT_FOUND, "SecurityGroupRuleNotFound", msg)
            }
            E::SecurityGroupInvalid { kind, .. } => Self::new(S::BAD_REQUEST, kind, msg),
            E::SecurityGroupConflict { kind, .. } => Self::new(S::CONFLICT, kind, msg),
            E::SegmentInUse { kind, .. } => Self::new(S::CONFLICT, kind, msg),
            E::QosConflict { kind, .. } => Self::new(S::CONFLICT, kind, msg),
            E::AgentNotFound { .. } => Self::new(S::NOT_FOUND, "AgentNotFound", msg),
            E::QosPolicyNotFound { .. } => Self::new(S::NOT_FOUND, "QosPolicyNotFound", msg),
            E::QosRuleNotFound { .. } => Self::new(S::NOT_FOUND, "QosRuleNotFound", msg),
            E::NetworkMtuSubnetConflict { .. } => {
                Self::new(S::CONFLICT, "NetworkMTUSubnetConflict", msg)
            }
            E::Store { detail } => {
                tracing::error!(%detail, "store failure");
                Self::internal()
            }
            E::Unavailable { detail } => {
                tracing::warn!(%detail, "store unavailable");
                Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The server is currently unavailable. Please try again at a later time.",
                )
            }
        }
    }
}

impl IntoResponse for NeutronError {
    fn into_response(self) -> Response {
        let body = json!({"NeutronError": {
            "type": self.kind,
            "message": self.message,
            "detail": "",
        }});
        let mut resp = (self.status, body.to_string()).into_response();
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.kind == "OverQuota" {
            return crate::metrics::Refusal::Quota.mark(resp);
        }
        resp
    }
}
