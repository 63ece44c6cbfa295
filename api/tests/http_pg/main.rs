//! The HTTP-level tests of `tests/http`, on a fresh PostgreSQL database each (a private server
//! started by the test process itself): the same requests, the same answers as on SQLite.

#[path = "../http/auth.rs"]
mod auth;
#[path = "../http/common.rs"]
mod common;
#[path = "../http/extensions.rs"]
mod extensions;
#[path = "../http/faults.rs"]
mod faults;
#[path = "../http/filters.rs"]
mod filters;
#[path = "../http/interfaces.rs"]
mod interfaces;
#[path = "../http/isolation.rs"]
mod isolation;
#[path = "../http/limits.rs"]
mod limits;
#[path = "../http/metrics.rs"]
mod metrics;
#[path = "../http/neutron.rs"]
mod neutron;
#[path = "../http/paging.rs"]
mod paging;
#[path = "../http/provider.rs"]
mod provider;
#[path = "../http/qos.rs"]
mod qos;
#[path = "../http/robustness.rs"]
mod robustness;
#[path = "../http/routes.rs"]
mod routes;
#[path = "../http/security_groups.rs"]
mod security_groups;

/// The store these tests run on.
pub(crate) const STORE: common::Backend = common::Backend::Postgres;
