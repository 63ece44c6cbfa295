//! The interface to the data plane.
//!
//! `control` never depends on the data plane: it derives a [`DesiredState`]
//! (every network with its VLAN, every port that has something to forward)
//! and hands it to a [`Forwarder`], which the binary implements on top of the
//! `dataplane` crate. The forwarder answers whether a port's interface is
//! open and forwarding, which drives the port's `op-status`.

use std::net::IpAddr;

/// A network as the data plane needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredNetwork {
    /// Network id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Segmentation id: the 802.1Q tag on the uplink trunk.
    pub vlan: u16,
}

/// A port's anti-spoofing rules (Neutron port security): it may send only
/// from its MAC, and for ARP/IPv4/IPv6 only from its fixed IPs, or from an
/// allowed address pair.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DesiredSecurity {
    /// The port's MAC, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The port's fixed IPs.
    pub fixed_ips: Vec<IpAddr>,
    /// Allowed address pairs: a MAC and an address or CIDR.
    pub allowed_pairs: Vec<(String, String)>,
}

/// A port as the data plane needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DesiredPort {
    /// Port id.
    pub id: String,
    /// The network whose VLAN the port is an access port of.
    pub network_id: String,
    /// The host device to open (from the interface registry).
    pub device: String,
    /// Admin state (of the port and its network): forward only when true.
    pub admin_up: bool,
    /// The port's MAC, `aa:bb:cc:dd:ee:ff` (installed as a static entry).
    pub mac: String,
    /// Anti-spoofing rules, when port security is on.
    pub security: Option<DesiredSecurity>,
}

/// The whole desired forwarding configuration.
///
/// The ports that appear: those whose attachment is plugged (with their
/// registered interface's device), and the others created through v2.0,
/// with the device `tap` + the first 11 characters of their id (the
/// Neutron/Nova convention), which the data plane opens when it appears.
/// Networks and ports are in creation order; no two ports share a device.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DesiredState {
    /// Every network.
    pub networks: Vec<DesiredNetwork>,
    /// Every plugged port.
    pub ports: Vec<DesiredPort>,
}

/// What the control plane drives.
pub trait Forwarder: Send + Sync + 'static {
    /// Called after every committed change (and once at startup) with the
    /// whole desired state.
    ///
    /// Calls are serialized and arrive in commit order. It is called while
    /// the control plane holds its store lock, so it must not call back into
    /// [`crate::Control`]; it should publish the new configuration and return.
    fn apply(&self, state: &DesiredState);

    /// True while this port's interface is open and forwarding (drives the
    /// port's op-status: UP/DOWN).
    fn port_up(&self, port_id: &str) -> bool;
}

/// A forwarder that forwards nothing: ports are never up. For tests and
/// `--no-dataplane`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NullForwarder;

impl Forwarder for NullForwarder {
    fn apply(&self, _state: &DesiredState) {}

    fn port_up(&self, _port_id: &str) -> bool {
        false
    }
}
