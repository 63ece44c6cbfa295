//! qswitch benchmarks; see `benches/` and docs/BENCHMARKS.md.
