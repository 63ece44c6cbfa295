//! dataplane crate of qswitch; see docs/ARCHITECTURE.md.
