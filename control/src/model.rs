//! The model: networks, ports, attachments and registered host interfaces,
//! with the rules that values must follow.
//!
//! Rows as stored carry only admin facts; the operational status of a port is
//! derived when it is read (see [`crate::Control`]), from the data plane's
//! answer, so it never goes stale in the store.

use std::fmt;

use crate::error::{ControlError, Result};

/// Longest accepted tenant id, network name, interface id (bytes).
pub const MAX_ID_LEN: usize = 255;
/// Longest Linux interface name (`IFNAMSIZ - 1`).
pub const MAX_DEVICE_LEN: usize = 15;

/// The admin state of a port (`"ACTIVE"` or `"DOWN"`, case-sensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PortState {
    /// The port forwards once plugged.
    Active,
    /// The port is administratively down (the default).
    #[default]
    Down,
}

impl PortState {
    /// Parses exactly `ACTIVE` or `DOWN`; anything else is `StateInvalid`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "ACTIVE" => Ok(Self::Active),
            "DOWN" => Ok(Self::Down),
            other => Err(ControlError::StateInvalid {
                state: other.to_owned(),
            }),
        }
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Down => "DOWN",
        }
    }
}

impl fmt::Display for PortState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operational status of a network or a port (`op-status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpStatus {
    /// Forwarding.
    Up,
    /// Not forwarding.
    Down,
    /// Being set up.
    Provisioning,
    /// Not known.
    Unknown,
}

impl OpStatus {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "UP",
            Self::Down => "DOWN",
            Self::Provisioning => "PROVISIONING",
            Self::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for OpStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a network meets the outside: Neutron's provider network types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkType {
    /// A VLAN of a physical network (tenant networks, and provider networks an admin maps).
    #[default]
    Vlan,
    /// The untagged segment of a physical network.
    Flat,
    /// No physical network: its ports reach each other only.
    Local,
}

impl NetworkType {
    /// The name the API shows (`provider:network_type`) and the store keeps.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkType::Vlan => "vlan",
            NetworkType::Flat => "flat",
            NetworkType::Local => "local",
        }
    }

    /// The type named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "vlan" => Some(NetworkType::Vlan),
            "flat" => Some(NetworkType::Flat),
            "local" => Some(NetworkType::Local),
            _ => None,
        }
    }
}

/// A network as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// Server-made uuid4.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Free-form name; duplicates are allowed.
    pub name: String,
    /// Segmentation id: the VLAN on its physical network, unique there among live networks;
    /// 0 for a flat or a local network.
    pub vlan: u16,
    /// Vlan, flat or local.
    pub network_type: NetworkType,
    /// Its physical network (`None` for a local network).
    pub physnet: Option<String>,
}

impl Network {
    /// `provider:segmentation_id` as Neutron shows it: the VLAN of a VLAN network, none for a
    /// flat or a local one.
    pub fn segmentation_id(&self) -> Option<u16> {
        (self.network_type == NetworkType::Vlan).then_some(self.vlan)
    }
}

/// A port as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Server-made uuid4.
    pub id: String,
    /// The network it belongs to.
    pub network_id: String,
    /// Admin state.
    pub state: PortState,
    /// The plugged interface id (the attachment), if any.
    pub attachment: Option<String>,
}

/// A host interface registered by the hypervisor side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// The interface id (what tenants plug as attachment id).
    pub id: String,
    /// Owning tenant: the only one allowed to plug it.
    pub tenant_id: String,
    /// The host device the data plane opens (e.g. `tap0`, `veth-vm1`).
    pub device: String,
    /// The host (hypervisor) the device is on: only that host's data plane opens it, and a
    /// port it is plugged into is bound there. Empty: any host with a device of that name (one
    /// host).
    pub host: String,
}

/// A port as answered: the stored port plus its derived operational status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortView {
    /// The stored port.
    pub port: Port,
    /// `UP` only when admin `ACTIVE`, plugged, and the data plane forwards.
    pub op_status: OpStatus,
}

/// A network as answered, with its ports (in creation order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkView {
    /// The stored network.
    pub network: Network,
    /// Its operational status.
    pub op_status: OpStatus,
    /// Its ports with their status.
    pub ports: Vec<PortView>,
}

/// The operational status of a port given its admin facts and whether the
/// data plane reports its interface open and forwarding.
pub fn port_op_status(port: &Port, forwarding: bool) -> OpStatus {
    if port.state == PortState::Active && port.attachment.is_some() && forwarding {
        OpStatus::Up
    } else {
        OpStatus::Down
    }
}

/// The operational status of a network. A network exists in the data plane
/// as soon as it is created (its VLAN is configured), so it is `UP`, as the
/// original Open vSwitch plugin reports.
pub fn network_op_status(_network: &Network) -> OpStatus {
    OpStatus::Up
}

fn has_control_chars(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// A tenant id: 1..=255 bytes, no control characters.
pub fn validate_tenant_id(tenant_id: &str) -> Result<()> {
    validate_token("tenant id", tenant_id)
}

/// An interface (attachment) id: 1..=255 bytes, no control characters, no
/// whitespace, no `/`.
pub fn validate_interface_id(interface_id: &str) -> Result<()> {
    validate_token("interface id", interface_id)?;
    if interface_id.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(invalid(format!(
            "Invalid interface id '{interface_id}': whitespace and '/' are not allowed"
        )));
    }
    Ok(())
}

fn validate_token(what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(invalid(format!("Invalid {what}: it is empty")));
    }
    if value.len() > MAX_ID_LEN {
        return Err(invalid(format!(
            "Invalid {what}: longer than {MAX_ID_LEN} bytes"
        )));
    }
    if has_control_chars(value) {
        return Err(invalid(format!(
            "Invalid {what}: control characters are not allowed"
        )));
    }
    Ok(())
}

/// A network name: up to 255 bytes, no control characters (it may be empty
/// and need not be unique).
pub fn validate_network_name(name: &str) -> Result<()> {
    if name.len() > MAX_ID_LEN {
        return Err(invalid(format!(
            "Invalid network name: longer than {MAX_ID_LEN} bytes"
        )));
    }
    if has_control_chars(name) {
        return Err(invalid(
            "Invalid network name: control characters are not allowed".to_owned(),
        ));
    }
    Ok(())
}

/// A host device name as Linux accepts it: 1..=15 bytes, not `.` or `..`, no
/// `/`, `:`, whitespace or control characters.
pub fn validate_device(device: &str) -> Result<()> {
    let ok = !device.is_empty()
        && device.len() <= MAX_DEVICE_LEN
        && device != "."
        && device != ".."
        && !device
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "Invalid device name '{}': a host interface name has 1 to {MAX_DEVICE_LEN} \
             bytes without '/', ':' or whitespace",
            device.escape_debug()
        )))
    }
}

/// The longest host name (Neutron's `binding:host_id` column).
pub const MAX_HOST_LEN: usize = 255;

/// A host name as interfaces and ports are bound to: up to [`MAX_HOST_LEN`] bytes, without
/// whitespace or control characters (empty: no host).
pub fn validate_host(host: &str) -> Result<()> {
    if host.len() <= MAX_HOST_LEN && !host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(())
    } else {
        Err(invalid(format!(
            "Invalid host '{}': a host name has at most {MAX_HOST_LEN} bytes without whitespace",
            host.escape_debug()
        )))
    }
}

fn invalid(reason: String) -> ControlError {
    ControlError::Invalid { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(state: PortState, attachment: Option<&str>) -> Port {
        Port {
            id: "p".into(),
            network_id: "n".into(),
            state,
            attachment: attachment.map(str::to_owned),
        }
    }

    #[test]
    fn port_state_parses_only_exact_upper_case_values() {
        assert_eq!(PortState::parse("ACTIVE"), Ok(PortState::Active));
        assert_eq!(PortState::parse("DOWN"), Ok(PortState::Down));
        for bad in ["active", "Down", "", "UP", " ACTIVE"] {
            assert_eq!(
                PortState::parse(bad),
                Err(ControlError::StateInvalid {
                    state: bad.to_owned()
                })
            );
        }
    }

    #[test]
    fn port_is_up_only_when_active_plugged_and_forwarding() {
        assert_eq!(
            port_op_status(&port(PortState::Active, Some("vif")), true),
            OpStatus::Up
        );
        assert_eq!(
            port_op_status(&port(PortState::Down, Some("vif")), true),
            OpStatus::Down
        );
        assert_eq!(
            port_op_status(&port(PortState::Active, None), true),
            OpStatus::Down
        );
        assert_eq!(
            port_op_status(&port(PortState::Active, Some("vif")), false),
            OpStatus::Down
        );
    }

    #[test]
    fn device_names_follow_linux_rules() {
        for good in ["tap0", "veth-vm1", "eth0.100", "a", "123456789012345"] {
            assert!(validate_device(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "a:b",
            "1234567890123456",
            "x\n",
        ] {
            assert!(validate_device(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_and_names_are_bounded_and_printable() {
        assert!(validate_tenant_id("tenant-a").is_ok());
        assert!(validate_tenant_id("").is_err());
        assert!(validate_tenant_id(&"t".repeat(256)).is_err());
        assert!(validate_interface_id("vif-1").is_ok());
        assert!(validate_interface_id("vif 1").is_err());
        assert!(validate_interface_id("vif\u{1}").is_err());
        assert!(validate_network_name("").is_ok());
        assert!(validate_network_name("net one").is_ok());
        assert!(validate_network_name("bad\u{7}").is_err());
        assert!(validate_network_name(&"n".repeat(256)).is_err());
    }

    #[test]
    fn faults_keep_the_original_detail_templates() {
        let e = ControlError::PortInUse {
            net_id: "n".into(),
            port_id: "p".into(),
            att_id: "a".into(),
        };
        assert_eq!(
            e.to_string(),
            "Unable to complete operation on port p for network n. \
             The attachment 'ais plugged into the logical port."
        );
        let e = ControlError::NetworkNotFound { net_id: "x".into() };
        assert_eq!(e.to_string(), "Network x could not be found");
    }
}
