//! Rate limiting (spec section 8): a tower middleware that answers 429 with
//! `Retry-After` and the version's fault body when a tenant sends more
//! requests of a verb class than its configured rate.
//!
//! # Design
//!
//! One token bucket per (tenant, verb class): `read` is GET and HEAD,
//! `write` is POST, PUT, PATCH and DELETE. A bucket holds up to `burst`
//! requests and refills at `per_minute / 60` per second. A request that
//! finds its bucket empty is refused at once, never queued, so a tenant's
//! flood costs other tenants nothing but the refusals' CPU. The tenant is
//! the token's (token mode) or the URL's (no-auth mode); calls without a
//! tenant (`/extensions`) share one anonymous bucket per class.
//!
//! Time is a parameter: the limiter reads a [`Clock`], which tests replace.
//!
//! # Limitations
//!
//! - The table of buckets is bounded ([`MAX_BUCKETS`]). When it is full,
//!   buckets that have refilled completely are dropped (a full bucket is the
//!   same as a new one, so this forgets nothing); if every bucket is still
//!   in use, new tenants are refused until some refill.
//! - Limits are per daemon: several API servers in front of one database
//!   each enforce the full rate.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::auth::Principal;
use crate::fault::ApiError;
use crate::negotiate::{self, Suffix, Version};

/// Most (tenant, class) buckets tracked at once.
pub const MAX_BUCKETS: usize = 65_536;

/// A source of the current time.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> Instant + Send + Sync>);

impl Clock {
    /// The monotonic system clock.
    pub fn system() -> Self {
        Self(Arc::new(Instant::now))
    }

    /// A clock that answers `f()` (for tests: a clock they advance).
    pub fn from_fn(f: impl Fn() -> Instant + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    fn now(&self) -> Instant {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// A verb class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// GET, HEAD (and anything that changes nothing).
    Read,
    /// POST, PUT, PATCH, DELETE.
    Write,
}

impl Class {
    /// The class of a method.
    pub fn of(method: &Method) -> Self {
        if [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(method) {
            Self::Write
        } else {
            Self::Read
        }
    }

    /// `read` or `write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }

    /// The methods of the class.
    pub fn verbs(self) -> &'static [&'static str] {
        match self {
            Self::Read => &["GET", "HEAD"],
            Self::Write => &["POST", "PUT", "PATCH", "DELETE"],
        }
    }
}

/// One class's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Sustained requests per minute (at least 1).
    pub per_minute: u32,
    /// Requests allowed back to back (at least 1).
    pub burst: u32,
}

/// The limits per class; `None` is unlimited (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimits {
    /// GET and HEAD.
    pub read: Option<Rate>,
    /// POST, PUT, PATCH and DELETE.
    pub write: Option<Rate>,
}

impl RateLimits {
    /// The limit of a class.
    pub fn of(&self, c: Class) -> Option<Rate> {
        match c {
            Class::Read => self.read,
            Class::Write => self.write,
        }
    }

    /// True when nothing is limited.
    pub fn is_unlimited(&self) -> bool {
        self.read.is_none() && self.write.is_none()
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, rate: Rate, now: Instant) {
        let per_sec = f64::from(rate.per_minute.max(1)) / 60.0;
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * per_sec).min(f64::from(rate.burst.max(1)));
        self.at = now;
    }

    fn full(&self, rate: Rate) -> bool {
        self.tokens >= f64::from(rate.burst.max(1))
    }
}

/// The per-tenant, per-class buckets.
#[derive(Debug)]
pub struct RateLimiter {
    limits: RateLimits,
    clock: Clock,
    buckets: Mutex<HashMap<(String, Class), Bucket>>,
}

/// A refusal: how long until one more request of the class would pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Refused {
    /// Time until the bucket holds a request again.
    pub retry_after: Duration,
    /// The limit that refused.
    pub rate: Rate,
}

impl RateLimiter {
    /// A limiter with the given limits and clock.
    pub fn new(limits: RateLimits, clock: Clock) -> Self {
        Self {
            limits,
            clock,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The configured limits.
    pub fn limits(&self) -> RateLimits {
        self.limits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Class), Bucket>> {
        // A bucket update cannot panic halfway; a poisoned table is usable.
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one request of `class` from `tenant`'s bucket, or says how long
    /// to wait.
    pub fn check(&self, tenant: &str, class: Class) -> Result<(), Refused> {
        let Some(rate) = self.limits.of(class) else {
            return Ok(());
        };
        let now = self.clock.now();
        let mut map = self.lock();
        let key = (tenant.to_owned(), class);
        if !map.contains_key(&key) && map.len() >= MAX_BUCKETS {
            let limits = self.limits;
            map.retain(|(_, c), b| match limits.of(*c) {
                Some(r) => {
                    b.refill(r, now);
                    !b.full(r)
                }
                None => false,
            });
            if map.len() >= MAX_BUCKETS {
                return Err(Refused {
                    retry_after: Duration::from_secs(1),
                    rate,
                });
            }
        }
        let b = map.entry(key).or_insert(Bucket {
            tokens: f64::from(rate.burst.max(1)),
            at: now,
        });
        b.refill(rate, now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let per_sec = f64::from(rate.per_minute.max(1)) / 60.0;
            Err(Refused {
                retry_after: Duration::from_secs_f64((1.0 - b.tokens) / per_sec),
                rate,
            })
        }
    }

    /// Requests of `class` that `tenant` may send right now (`None`:
    /// unlimited).
    pub fn remaining(&self, tenant: &str, class: Class) -> Option<u32> {
        let rate = self.limits.of(class)?;
        let now = self.clock.now();
        let mut map = self.lock();
        let tokens = match map.get_mut(&(tenant.to_owned(), class)) {
            Some(b) => {
                b.refill(rate, now);
                b.tokens
            }
            None => f64::from(rate.burst.max(1)),
        };
        // Whole requests only; tokens never exceed the burst (a u32).
        Some(tokens.floor().clamp(0.0, f64::from(u32::MAX)) as u32)
    }
}

/// The tenant a request is charged to: the token's, else the URL's
/// (`.../tenants/{tenant_id}/...`), else v2.0's `X-Project-Id` (no-auth
/// mode), else the anonymous bucket `""`.
pub(crate) fn tenant_of(req: &Request) -> String {
    if let Some(p) = req.extensions().get::<Principal>() {
        return p.tenant.clone();
    }
    let mut segs = req.uri().path().split('/');
    while let Some(s) = segs.next() {
        if s == "tenants" {
            let t = segs.next().unwrap_or("");
            return percent_decode(t);
        }
    }
    ["x-project-id", "x-tenant-id"]
        .iter()
        .find_map(|h| req.headers().get(*h)?.to_str().ok())
        .map(|t| t.trim().to_owned())
        .unwrap_or_default()
}

/// Whose fault body a refusal carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// Quantum v1.0 or v1.1.
    Quantum(Version),
    /// Neutron v2.0.
    Neutron,
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("t={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The tower layer of one API version.
#[derive(Debug, Clone)]
pub(crate) struct RateLimitLayer {
    pub(crate) limiter: Arc<RateLimiter>,
    pub(crate) flavor: Flavor,
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            limiter: self.limiter.clone(),
            flavor: self.flavor,
        }
    }
}

/// The service of [`RateLimitLayer`].
#[derive(Debug, Clone)]
pub(crate) struct RateLimitService<S> {
    inner: S,
    limiter: Arc<RateLimiter>,
    flavor: Flavor,
}

impl<S> Service<Request> for RateLimitService<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let class = Class::of(req.method());
        let tenant = tenant_of(&req);
        match self.limiter.check(&tenant, class) {
            Ok(()) => Box::pin(self.inner.call(req)),
            Err(refused) => {
                let secs = refused.retry_after.as_secs_f64().ceil().max(1.0);
                // At most the time to refill one request: a minute.
                let retry_after = if secs > 60.0 { 60 } else { secs as u64 };
                let detail = format!(
                    "Rate limit of {} {} requests per minute (burst {}) exceeded for \
                     tenant '{}'; retry after {retry_after} s",
                    refused.rate.per_minute,
                    class.as_str(),
                    refused.rate.burst,
                    tenant
                );
                let resp = match self.flavor {
                    Flavor::Quantum(version) => {
                        let format = negotiate::negotiate(
                            req.extensions().get::<Suffix>().copied(),
                            req.headers(),
                        );
                        ApiError::RateLimited {
                            retry_after,
                            detail,
                        }
                        .render(Some(version), format)
                    }
                    Flavor::Neutron => {
                        let body = serde_json::json!({"NeutronError": {
                            "type": "OverLimit",
                            "message": detail,
                            "detail": "",
                        }});
                        let mut resp = (
                            axum::http::StatusCode::TOO_MANY_REQUESTS,
                            [(axum::http::header::CONTENT_TYPE, "application/json")],
                            body.to_string(),
                        )
                            .into_response();
                        resp.headers_mut().insert(
                            axum::http::header::RETRY_AFTER,
                            axum::http::HeaderValue::from(retry_after),
                        );
                        resp
                    }
                };
                let resp = crate::metrics::Refusal::RateLimit.mark(resp);
                Box::pin(async move { Ok(resp) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn manual() -> (Clock, Arc<AtomicU64>) {
        let base = Instant::now();
        let ms = Arc::new(AtomicU64::new(0));
        let m = ms.clone();
        (
            Clock::from_fn(move || base + Duration::from_millis(m.load(Ordering::Relaxed))),
            ms,
        )
    }

    fn limiter(clock: Clock) -> RateLimiter {
        RateLimiter::new(
            RateLimits {
                read: Some(Rate {
                    per_minute: 60,
                    burst: 3,
                }),
                write: None,
            },
            clock,
        )
    }

    #[test]
    fn burst_then_refusal_then_recovery() {
        let (clock, ms) = manual();
        let l = limiter(clock);
        for _ in 0..3 {
            assert!(l.check("a", Class::Read).is_ok());
        }
        let r = l.check("a", Class::Read).unwrap_err();
        assert!((r.retry_after.as_secs_f64() - 1.0).abs() < 1e-6);
        ms.store(1000, Ordering::Relaxed);
        assert!(l.check("a", Class::Read).is_ok());
        assert!(l.check("a", Class::Read).is_err());
        assert_eq!(l.remaining("a", Class::Read), Some(0));
        ms.store(60_000, Ordering::Relaxed);
        assert_eq!(l.remaining("a", Class::Read), Some(3));
    }

    #[test]
    fn tenants_and_classes_have_their_own_buckets() {
        let (clock, _) = manual();
        let l = limiter(clock);
        for _ in 0..3 {
            l.check("a", Class::Read).unwrap();
        }
        assert!(l.check("a", Class::Read).is_err());
        assert!(l.check("b", Class::Read).is_ok());
        // Writes are unlimited here.
        for _ in 0..100 {
            assert!(l.check("a", Class::Write).is_ok());
        }
    }

    #[test]
    fn the_bucket_table_is_bounded_and_forgets_only_full_buckets() {
        let (clock, ms) = manual();
        let l = limiter(clock);
        for i in 0..MAX_BUCKETS {
            l.check(&i.to_string(), Class::Read).unwrap();
        }
        // Every bucket is in use: a new tenant waits.
        assert!(l.check("new", Class::Read).is_err());
        // Once they have refilled they are forgotten and room is made.
        ms.store(10_000, Ordering::Relaxed);
        assert!(l.check("new", Class::Read).is_ok());
        assert_eq!(l.lock().len(), 1);
    }
}
