//! HTTP-level tests: the router called in-process with `oneshot`, on a
//! temporary SQLite file with a recording forwarder.

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
