//! bench crate of qswitch; see docs/ARCHITECTURE.md.
