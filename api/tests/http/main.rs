//! HTTP-level tests: the router called in-process with `oneshot`, on a
//! temporary SQLite file.

mod common;
mod routes;
