//! qswitch benchmarks: the pipeline alone (`benches/pipeline.rs`, criterion), end-to-end
//! forwarding on veth (`e2e/forward.py`), and the API load driver (`qswitch-apibench`).
//! Results and the commands that produced them are in `docs/BENCHMARKS.md`.

pub mod http;
