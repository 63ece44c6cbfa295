//! Authentication and authorization (spec section 8, "Auth").
//!
//! # Design
//!
//! Two modes. [`Auth::NoAuth`] (development, loopback only unless the
//! operator insists) lets every request act on every tenant, as the original
//! did without keystone. [`Auth::Token`] requires an `X-Auth-Token` header on
//! every versioned call; the token's SHA-256 digest is looked up in a
//! [`Tokens`] table (loaded from a file that holds only digests), which
//! gives the caller's tenant and roles. A missing or unknown token is 401
//! with the version's fault body.
//!
//! The [`authenticate`] middleware resolves the token and leaves the
//! [`Principal`] in the request's extensions; the request context extractor
//! then applies [`authorize`] to the matched route, so every handler is
//! covered by the same rules:
//!
//! - a `member` sees and changes only its own tenant: any path of another
//!   tenant answers as if nothing were there (NetworkNotFound,
//!   InterfaceNotFound, or 404), for every method;
//! - a `hypervisor` also registers, reads and removes interfaces of any
//!   tenant (it registers each VM's device under the VM's tenant); only
//!   hypervisors and admins register or remove interfaces (403 otherwise);
//! - an `admin` reads and changes every tenant, and alone reads a network's
//!   MAC table.
//!
//! In token mode the Neutron v2.0 routes are behind [`authenticate_v2`],
//! which sets the project and roles headers those routes read from the
//! token, as keystonemiddleware does in front of Neutron.
//!
//! A token is hashed (SHA-256, the `sha2` crate) and its digest compared with
//! every stored digest in constant time (`subtle`), all of them every time:
//! how long a lookup takes depends only on how many tokens there are, never
//! on how close a guess came.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::fault::ApiError;
use crate::negotiate::{self, Suffix, Version};

/// The header that carries the token (keystone's).
pub const TOKEN_HEADER: &str = "x-auth-token";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every tenant, every call.
    Admin,
    /// Its own tenant's resources.
    Member,
    /// Registers interfaces for any tenant.
    Hypervisor,
    /// A member who also manages its own project's shared resources (Neutron's project
    /// `manager`: QoS policies and their rules).
    Manager,
}

/// The caller behind a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's own tenant.
    pub tenant: String,
    /// Its roles.
    pub roles: Vec<Role>,
}

impl Principal {
    /// Has this role.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// The token table: SHA-256 digest -> principal.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_digest: Vec<([u8; 32], Principal)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    sha256: String,
    tenant: String,
    roles: Vec<Role>,
}

/// The SHA-256 digest of a token as the tokens file stores it (64 lower-case
/// hex digits).
pub fn token_digest(token: &str) -> String {
    digest(token).iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a tokens file: TOML (`[[token]]` tables) or, when it starts
    /// with `{`, JSON (`{"token": [...]}`); each entry has `sha256`,
    /// `tenant` and `roles`.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the text of a tokens file (see [`Tokens::load`]).
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: TokensFile = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| e.to_string())?
        } else {
            toml::from_str(text).map_err(|e| e.to_string())?
        };
        let mut t = Self::new();
        for e in file.token {
            t.insert_digest(
                &e.sha256,
                Principal {
                    tenant: e.tenant,
                    roles: e.roles,
                },
            )?;
        }
        Ok(t)
    }

    /// Adds a token by its digest.
    pub fn insert_digest(&mut self, sha256_hex: &str, p: Principal) -> Result<(), String> {
        let hex = sha256_hex.as_bytes();
        let mut d = [0u8; 32];
        let parsed = hex.len() == 64
            && hex.iter().all(u8::is_ascii_hexdigit)
            && d.iter_mut().zip(hex.chunks_exact(2)).all(|(b, pair)| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|s| u8::from_str_radix(s, 16).ok())
                    .map(|v| *b = v)
                    .is_some()
            });
        if !parsed {
            return Err(format!(
                "token digest {sha256_hex:?} is not 64 hex digits (SHA-256)"
            ));
        }
        control::model::validate_tenant_id(&p.tenant).map_err(|e| e.to_string())?;
        if p.roles.is_empty() {
            return Err(format!("the token of tenant {} has no role", p.tenant));
        }
        if self.by_digest.iter().any(|(known, _)| *known == d) {
            return Err(format!("token digest {sha256_hex} is listed twice"));
        }
        self.by_digest.push((d, p));
        Ok(())
    }

    /// Adds a token in clear (hashed here); for tests and tools.
    pub fn insert_token(&mut self, token: &str, p: Principal) -> Result<(), String> {
        self.insert_digest(&token_digest(token), p)
    }

    /// The principal of a token.
    pub fn resolve(&self, token: &str) -> Option<&Principal> {
        use subtle::ConstantTimeEq;
        let d = digest(token);
        let mut found: Option<&Principal> = None;
        for (known, p) in &self.by_digest {
            // Every entry is compared in full; only the choice below depends on the outcome.
            if bool::from(known.ct_eq(&d)) {
                found = Some(p);
            }
        }
        found
    }

    /// How many tokens the table holds.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// No token at all.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

/// The authentication mode.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// No token needed; every request may act on every tenant.
    #[default]
    NoAuth,
    /// `X-Auth-Token` required and looked up in the table.
    Token(Arc<Tokens>),
}

/// State of the [`authenticate`] middleware of one version.
#[derive(Debug, Clone)]
pub(crate) struct AuthState {
    pub(crate) auth: Auth,
    pub(crate) version: Version,
}

/// Resolves `X-Auth-Token` into a [`Principal`] (token mode) or answers 401.
pub(crate) async fn authenticate(
    State(st): State<AuthState>,
    mut req: Request,
    next: Next,
) -> Response {
    let Auth::Token(tokens) = &st.auth else {
        return next.run(req).await;
    };
    let token = req
        .headers()
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let error = match token {
        None | Some("") => ApiError::Unauthorized("This call needs an X-Auth-Token header"),
        Some(t) => match tokens.resolve(t) {
            Some(p) => {
                let p = p.clone();
                req.extensions_mut().insert(p);
                return next.run(req).await;
            }
            None => ApiError::Unauthorized("The X-Auth-Token is not valid"),
        },
    };
    let format = negotiate::negotiate(req.extensions().get::<Suffix>().copied(), req.headers());
    error.render(Some(st.version), format)
}

/// The Neutron v2.0 side of token mode, as keystonemiddleware's `auth_token`
/// filter does it in front of Neutron: a valid `X-Auth-Token` is required
/// (401 with keystone's error body otherwise), and the identity headers the
/// v2.0 routes read (`X-Project-Id`, `X-Tenant-Id`, `X-Roles`) are replaced by
/// the token's, so a client cannot claim another project or the admin role.
pub(crate) async fn authenticate_v2(
    State(auth): State<Auth>,
    mut req: Request,
    next: Next,
) -> Response {
    let Auth::Token(tokens) = &auth else {
        return next.run(req).await;
    };
    let principal = req
        .headers()
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|t| tokens.resolve(t.trim()))
        .cloned();
    let Some(p) = principal else {
        let body = serde_json::json!({"error": {
            "code": 401,
            "title": "Unauthorized",
            "message": "The request you have made requires authentication.",
        }});
        let mut resp = (
            axum::http::StatusCode::UNAUTHORIZED,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        resp.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("X-Auth-Token realm=\"qswitch\""),
        );
        return resp;
    };
    let headers = req.headers_mut();
    for name in ["x-project-id", "x-tenant-id", "x-roles"] {
        headers.remove(name);
    }
    let roles: Vec<&str> = p
        .roles
        .iter()
        .map(|r| match r {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Hypervisor => "hypervisor",
            Role::Manager => "manager",
        })
        .collect();
    // Tenant ids are validated when the tokens file is read (no control
    // characters), so they are valid header values; refuse otherwise.
    match (
        axum::http::HeaderValue::try_from(p.tenant.as_str()),
        axum::http::HeaderValue::try_from(roles.join(",")),
    ) {
        (Ok(project), Ok(roles)) => {
            headers.insert("x-project-id", project);
            headers.insert("x-roles", roles);
        }
        _ => return axum::http::StatusCode::FORBIDDEN.into_response(),
    }
    req.extensions_mut().insert(p);
    next.run(req).await
}

/// Whether `p` may call `method` on the route matched as `route`, with the
/// URL's path parameters.
pub(crate) fn authorize(
    p: &Principal,
    method: &Method,
    route: &str,
    params: &[(String, String)],
) -> Result<(), ApiError> {
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let admin = p.has(Role::Admin);
    let interfaces = route.contains("/interfaces");
    if let Some(tenant) = param("tenant_id") {
        let visible = admin || tenant == p.tenant || (interfaces && p.has(Role::Hypervisor));
        if !visible {
            return Err(invisible(params, route));
        }
    }
    let reading = method == Method::GET || method == Method::HEAD;
    if interfaces && !reading && !admin && !p.has(Role::Hypervisor) {
        return Err(ApiError::Forbidden(
            "Only the hypervisor side (role hypervisor) or an admin registers and removes \
             interfaces",
        ));
    }
    if route.ends_with("/mac_table") && !admin {
        return Err(ApiError::Forbidden("The MAC table is for admins only"));
    }
    if route.ends_with("/connections") && !admin {
        return Err(ApiError::Forbidden(
            "Tracked connections are for admins only",
        ));
    }
    Ok(())
}

/// The fault of a path of a tenant the caller may not see: what the lookup
/// would answer if that tenant held nothing.
fn invisible(params: &[(String, String)], route: &str) -> ApiError {
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if let Some(net_id) = param("network_id") {
        return ApiError::Control(control::ControlError::NetworkNotFound { net_id });
    }
    if let Some(interface_id) = param("interface_id") {
        return ApiError::Control(control::ControlError::InterfaceNotFound { interface_id });
    }
    ApiError::NotFound(format!("No resource at {route}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(t: &str) -> Principal {
        Principal {
            tenant: t.into(),
            roles: vec![Role::Member],
        }
    }

    fn params(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn digests_are_sha256_and_resolve_only_their_token() {
        // FIPS 180-4's "abc" example.
        assert_eq!(
            token_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut t = Tokens::new();
        t.insert_token("secret-a", member("a")).unwrap();
        t.insert_digest(&token_digest("secret-b").to_uppercase(), member("b"))
            .unwrap();
        assert_eq!(t.resolve("secret-a").unwrap().tenant, "a");
        assert_eq!(t.resolve("secret-b").unwrap().tenant, "b");
        assert!(t.resolve("secret-c").is_none());
        assert!(t.insert_token("secret-a", member("c")).is_err());
        assert!(t.insert_digest("zz", member("c")).is_err());
        assert!(t.insert_digest(&"g".repeat(64), member("c")).is_err());
        assert!(t.insert_digest(&"+f".repeat(32), member("c")).is_err());
    }

    #[test]
    fn tokens_file_in_toml_and_json() {
        let d = token_digest("s3cret");
        let toml = format!(
            "[[token]]\nsha256 = \"{d}\"\ntenant = \"a\"\nroles = [\"member\", \"hypervisor\"]\n"
        );
        let t = Tokens::parse(&toml).unwrap();
        assert_eq!(t.resolve("s3cret").unwrap().tenant, "a");
        assert!(t.resolve("S3cret").is_none());
        let json =
            format!(r#"{{"token": [{{"sha256": "{d}", "tenant": "b", "roles": ["admin"]}}]}}"#);
        let t = Tokens::parse(&json).unwrap();
        assert!(t.resolve("s3cret").unwrap().has(Role::Admin));
    }

    #[test]
    fn bad_tokens_files_are_refused() {
        let d = token_digest("x");
        for bad in [
            "[[token]]\nsha256 = \"abc\"\ntenant = \"a\"\nroles = [\"member\"]".to_owned(),
            format!("[[token]]\nsha256 = \"{d}\"\ntenant = \"a\"\nroles = [\"root\"]"),
            format!("[[token]]\nsha256 = \"{d}\"\ntenant = \"a\"\nroles = []"),
            format!("[[token]]\nsha256 = \"{d}\"\ntenant = \"\"\nroles = [\"member\"]"),
            format!(
                "[[token]]\nsha256 = \"{d}\"\ntenant = \"a\"\nroles = [\"member\"]\n\
                 [[token]]\nsha256 = \"{d}\"\ntenant = \"b\"\nroles = [\"member\"]"
            ),
            format!("[[token]]\nsha256 = \"{d}\"\ntenant = \"a\"\nroles = [\"member\"]\nx = 1"),
        ] {
            assert!(Tokens::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn members_see_only_their_tenant() {
        let p = member("a");
        let route = "/v1.1/tenants/{tenant_id}/networks/{network_id}";
        assert!(authorize(&p, &Method::GET, route, &params(&[("tenant_id", "a")])).is_ok());
        let e = authorize(
            &p,
            &Method::DELETE,
            route,
            &params(&[("tenant_id", "b"), ("network_id", "n")]),
        )
        .unwrap_err();
        assert!(matches!(
            e,
            ApiError::Control(control::ControlError::NetworkNotFound { .. })
        ));
    }

    #[test]
    fn only_hypervisors_and_admins_register_interfaces() {
        let route = "/v1.1/tenants/{tenant_id}/interfaces/{interface_id}";
        let own = params(&[("tenant_id", "a"), ("interface_id", "i")]);
        let other = params(&[("tenant_id", "b"), ("interface_id", "i")]);
        let m = member("a");
        assert!(authorize(&m, &Method::GET, route, &own).is_ok());
        assert!(matches!(
            authorize(&m, &Method::PUT, route, &own),
            Err(ApiError::Forbidden(_))
        ));
        let h = Principal {
            tenant: "svc".into(),
            roles: vec![Role::Hypervisor],
        };
        assert!(authorize(&h, &Method::PUT, route, &other).is_ok());
        // The hypervisor role opens interfaces only, not networks.
        let net = params(&[("tenant_id", "b"), ("network_id", "n")]);
        assert!(authorize(
            &h,
            &Method::GET,
            "/v1.1/tenants/{tenant_id}/networks/{network_id}",
            &net
        )
        .is_err());
    }
}
