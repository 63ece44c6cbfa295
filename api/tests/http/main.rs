//! HTTP-level tests: the router called in-process with `oneshot`, on a
//! temporary SQLite file with a recording forwarder. `tests/http_pg` runs the same tests on
//! PostgreSQL.

mod auth;
mod common;
mod extensions;
mod faults;
mod filters;
mod interfaces;
mod isolation;
mod limits;
mod metrics;
mod neutron;
mod paging;
mod provider;
mod qos;
mod robustness;
mod routes;
mod security_groups;

/// The store these tests run on.
pub(crate) const STORE: common::Backend = common::Backend::Sqlite;
