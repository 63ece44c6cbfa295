//! Fuzzes parse + classify + learn + forward through the worker with in-memory ports: the first
//! byte of each record picks the ingress port, the next two the frame length, then the bytes.
//! Properties: no panic, and frame accounting holds after every round (that every frame is
//! forwarded or counted as exactly one drop is the property test in `dataplane/src/pipeline`).
//!
//! Run: `fuzz/run.sh pipeline 60` (stable toolchain, libFuzzer coverage instrumentation), or
//! `cargo fuzz run pipeline fuzz/corpus/pipeline` with cargo-fuzz on nightly.
#![no_main]

use std::sync::Arc;

use dataplane::config::{NetworkConfig, PortConfig, SlotMap, Snapshot, SwitchConfig};
use dataplane::pipeline::Now;
use dataplane::port::mem::{MemPort, MemSpec};
use dataplane::worker::{Command, PortShared, Worker, WorkerConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let net = |id: &str, vlan| NetworkConfig { id: id.into(), vlan, mac_limit: 16 };
    let cfg = SwitchConfig {
        networks: vec![net("a", 10), net("b", 20)],
        ports: vec![
            PortConfig::access("a1", "d1", "a"),
            PortConfig::access("a2", "d2", "a"),
            PortConfig::access("b1", "d3", "b"),
            PortConfig::trunk("up", "d4"),
        ],
    };
    let (mut ns, mut ps) = (SlotMap::default(), SlotMap::default());
    let snap = Arc::new(Snapshot::compile(&cfg, 1, &mut ns, &mut ps));
    let mut w: Worker<MemPort> =
        Worker::new(WorkerConfig { frames: 256, ..WorkerConfig::default() }).unwrap();
    w.handle(Command::Snapshot(snap), Now::default());
    for slot in 0..4u16 {
        w.handle(
            Command::AddPort {
                slot,
                spec: MemSpec { capture: false, tx_size: 32 },
                shared: Arc::new(PortShared::default()),
            },
            Now::default(),
        );
    }
    let mut rest = data;
    while rest.len() >= 3 {
        let port = u16::from(rest[0] % 4);
        let len = (usize::from(rest[1]) << 8 | usize::from(rest[2])).min(rest.len() - 3);
        let frame = rest[3..3 + len].to_vec();
        rest = &rest[3 + len..];
        w.port_mut(port).unwrap().inbox.push_back(frame);
        w.poll(Now::default());
        let a = w.accounting();
        assert_eq!(a.free + a.user + a.in_kernel(), a.total);
        assert_eq!(a.user, 0);
    }
    for _ in 0..8 {
        w.poll(Now::default());
    }
});
