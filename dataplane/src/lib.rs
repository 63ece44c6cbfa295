//! The qswitch data plane: an L2 switch in user space on AF_XDP.
//!
//! Frames arrive on *ports* (interfaces opened with AF_XDP sockets, or in-memory ports in tests),
//! are classified to a *network* by their ingress port (access ports: one network, untagged) or
//! by their 802.1Q tag (the uplink trunk), learned and looked up in the network's MAC table, and
//! forwarded to one port or flooded to the network's other ports. Networks are isolated: a frame
//! of one network never reaches a port of another, and a VM cannot send tagged frames.
//!
//! Layout (one concept a module; see `docs/ARCHITECTURE.md` for the whole picture):
//! - [`wire`]: checked views of Ethernet and 802.1Q headers; tag push/pop.
//! - [`csum`]: completing the partial TCP/UDP checksums of guests with checksum offload.
//! - [`gso`]: segmenting the TCP super-frames of guests with TSO that reach the switch whole;
//!   [`mss`]: the segment sizes remote hosts take (MSS options, ICMP too-big), for segmentation.
//! - [`fdb`]: the MAC tables (learning, aging, limits, static entries, O(1) flush).
//! - [`pipeline`]: the per-frame decision (classify, police, anti-spoof, filter, learn, look up).
//! - [`acl`], [`conntrack`], [`flow`]: security groups (rules, remote-group address sets, the
//!   per-frame check), the connection table of stateful groups, and the layer 3/4 view of a
//!   frame they match on.
//! - [`config`]: the desired configuration and the immutable snapshot the workers run with.
//! - [`port`]: the port interface, the frame pool and the in-memory backend.
//! - [`worker`]: the poll-mode loop that moves frames between ports.
//! - [`switch`]: the control-side handle: applies configurations, opens ports, reports status.
//! - `sys`: the only module with `unsafe`: AF_XDP sockets and rings, UMEM, bpf() syscalls, the
//!   idle worker's eventfd and `poll(2)`.
//! - [`policer`], [`security`], [`stats`]: QoS token buckets, anti-spoofing, counters.
//!
//! Everything above `sys` is safe Rust, never panics on frame bytes, and neither allocates nor
//! locks per packet.

pub mod acl;
pub mod coalesce;
pub mod config;
pub mod conntrack;
pub mod csum;
pub mod dhcp;
pub mod dhcp6;
pub mod fdb;
pub mod flow;
pub mod gso;
pub mod mss;
pub mod pipeline;
pub mod policer;
pub mod port;
pub mod ra;
pub mod security;
pub mod shortcut;
pub mod stats;
pub mod switch;
pub mod sys;
pub mod wire;
pub mod worker;

pub use config::{ConfigError, NetworkConfig, PortConfig, PortRole, SwitchConfig, DEFAULT_PHYSNET};
pub use port::afxdp::{BindMode, XdpMode};
pub use port::PortMode;
pub use stats::{DropReason, PortStats, WorkerReading};
pub use switch::{
    ConfigDelta, MacTableEntry, NetworkObservation, Observation, PortObservation, PortState,
    PortStatus, Switch, SwitchOptions,
};
pub use wire::Mac;
pub use worker::{LinkState, PollMode, WorkerConfig};
