//! The control plane of qswitch: the Quantum model, its rules, its store and
//! the reconciler that drives the data plane.
//!
//! See `docs/ARCHITECTURE.md` for where this sits. In short:
//!
//! - [`model`]: tenants' networks (each with a VLAN segmentation id), ports
//!   (admin state `ACTIVE`/`DOWN`), attachments (an interface id plugged into
//!   at most one port) and host interfaces registered to a tenant by the
//!   hypervisor side, plus the rules their values follow.
//! - [`store`]: the [`store::Store`] trait with all SQL behind it, and its
//!   SQLite implementation (WAL, `synchronous=FULL`, versioned migrations in
//!   `migrations/`).
//! - [`Control`]: every Quantum operation, scoped by tenant (another tenant's
//!   network is `NetworkNotFound`), each write one committed transaction
//!   before it returns.
//! - [`forward`]: the boundary to the data plane. At startup the reconciler
//!   derives the whole [`DesiredState`] from the store; after that each
//!   committed write re-derives only what it touched (the store's revision
//!   log says what) and the applier hands the [`Forwarder`] just the
//!   [`Changes`], in revision order. The forwarder answers whether a port
//!   forwards, which is the port's `op-status`.
//! - [`filter`]: the list filters of Quantum v1.1; [`page`]: keyset
//!   pagination of the lists; [`quota`]: absolute limits per tenant;
//!   [`qos`]: the QoS extension's per-port rate limits. Port statistics and
//!   a network's MAC table come live from the [`Forwarder`].
//! - [`neutron`]: the Neutron v2.0 view of the same model (network and port
//!   attributes, subnets, fixed IPs, allowed address pairs) whose operations
//!   are [`Control`]'s `v2_*` methods; [`ipam`] allocates addresses and
//!   [`mac`] MACs. A port created through v2.0 is bound to the host device
//!   `tap` + the first 11 characters of its id unless an attachment is
//!   plugged, and carries its anti-spoofing rules to the data plane.
//!
//! Errors are one enum, [`ControlError`], whose `Display` is the fault detail
//! a client sees; the HTTP mapping lives in the `api` crate.
//!
//! ```
//! use std::sync::Arc;
//! use control::neutron::{NetworkSpec, PortSpec, Scope};
//! use control::{Control, ControlOptions, NullForwarder};
//!
//! let control = Control::in_memory(Arc::new(NullForwarder), ControlOptions::default())?;
//! let me = Scope { tenant_id: "tenant-a".into(), admin: false };
//! let net = control.create_networks(&me, vec![NetworkSpec::named("tenant-a", "net1")])?;
//! let net_id = &net[0].network.id;
//! control.register_interface("tenant-a", "vif-1", "tap0")?;
//! let port = control.create_ports(&me, vec![PortSpec::bare("tenant-a", net_id, true)])?;
//! control.plug("tenant-a", net_id, &port[0].record.port.id, "vif-1")?;
//! assert_eq!(control.desired_state()?.ports[0].device, "tap0");
//! # Ok::<(), control::ControlError>(())
//! ```

#![forbid(unsafe_code)]

pub mod agent;
pub mod error;
pub mod filter;
pub mod forward;
pub mod ipam;
pub mod mac;
pub mod metrics;
pub mod model;
pub mod neutron;
pub mod page;
pub mod qos;
pub mod quota;
mod reconcile;
pub mod security;
mod service;
pub mod store;
pub mod testing;

pub use error::{ControlError, Result};
pub use filter::{NetworkFilter, PortFilter};
pub use forward::{
    Change, Changes, DesiredDhcp, DesiredDhcp6, DesiredFilter, DesiredGroup, DesiredNetwork,
    DesiredPort, DesiredRa, DesiredRule, DesiredSecurity, DesiredState, Forwarder, NullForwarder,
};
pub use forward::{MacEntry, PortStatistics, TrackedConnection};
pub use model::{
    Interface, Network, NetworkType, NetworkView, OpStatus, Port, PortState, PortView,
};
pub use page::{Page, PageRequest};
pub use qos::QosLimit;
pub use quota::{Quotas, Usage};
pub use service::qos::{PolicyView, QosPolicySpec, QosPolicyUpdate, QosRuleSpec};
pub use service::{Control, ControlOptions, Physnet, Registered};
