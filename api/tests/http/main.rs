//! HTTP-level tests: the router called in-process with `oneshot`, on a
//! temporary SQLite file with a recording forwarder.

mod common;
mod faults;
mod filters;
mod interfaces;
mod isolation;
mod neutron;
mod robustness;
mod routes;
