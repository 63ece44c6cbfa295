//! The Neutron v2.0 view of the model: the attributes networks and ports
//! carry beyond Quantum's, subnets, fixed IPs and allowed address pairs,
//! and what a request may ask for.
//!
//! A v2.0 network *is* a Quantum network (same id, same VLAN) and a v2.0
//! port a Quantum port: the records here wrap [`Network`] and [`Port`] with
//! the extra columns. The operations are [`crate::Control`]'s `v2_*`
//! methods.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::ipam::{Cidr, Family, Prefix};
use crate::mac::Mac;
use crate::model::{Network, Port};

/// Who is asking: the project requests run as, and whether it sees and may
/// act on every project's resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The caller's project (tenant).
    pub tenant_id: String,
    /// An admin sees every project and may create for any.
    pub admin: bool,
}

impl Scope {
    /// May this caller see a resource of `tenant_id`?
    pub fn owns(&self, tenant_id: &str) -> bool {
        self.admin || self.tenant_id == tenant_id
    }
}

/// Default MTU of a network.
pub const DEFAULT_MTU: u32 = 1500;

/// A network's v2.0 attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAttrs {
    /// `admin_state_up`: when false, none of its ports forward.
    pub admin_state_up: bool,
    /// `shared`: visible to, and usable by, every project.
    pub shared: bool,
    /// `mtu`.
    pub mtu: u32,
    /// `description`.
    pub description: String,
    /// `port_security_enabled`: the default of its new ports.
    pub port_security_enabled: bool,
    /// `router:external` (stored and shown; set by admins only).
    pub router_external: bool,
    /// `qos_policy_id`: the QoS policy of its ports that have none of their own.
    pub qos_policy_id: Option<String>,
    /// `created_at`, ISO 8601 UTC.
    pub created_at: String,
    /// `updated_at`, ISO 8601 UTC.
    pub updated_at: String,
    /// `revision_number`: bumped by every change.
    pub revision_number: i64,
}

/// A network with its v2.0 attributes and subnet ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRecord {
    /// The Quantum network.
    pub network: Network,
    /// The v2.0 attributes.
    pub attrs: NetworkAttrs,
    /// Its subnets' ids, in creation order.
    pub subnets: Vec<String>,
}

/// An address a port holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedIp {
    /// The subnet the address belongs to.
    pub subnet_id: String,
    /// The address.
    pub ip_address: String,
}

/// An allowed address pair: the MAC and the address or CIDR a port may also
/// send from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPair {
    /// The MAC (the port's own when the request gave none).
    pub mac_address: String,
    /// An address or a CIDR.
    pub ip_address: String,
}

/// A port's v2.0 attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortAttrs {
    /// Owning project.
    pub tenant_id: String,
    /// `name`.
    pub name: String,
    /// `mac_address`, lowercase colon form, unique in its network.
    pub mac_address: String,
    /// `device_id`.
    pub device_id: String,
    /// `device_owner`.
    pub device_owner: String,
    /// `description`.
    pub description: String,
    /// `port_security_enabled`: anti-spoofing in the data plane.
    pub port_security_enabled: bool,
    /// `binding:host_id`.
    pub host_id: String,
    /// Bound to the device named `tap` + the first 11 characters of the id
    /// when no attachment is plugged.
    pub bind_tap: bool,
    /// `qos_policy_id`: its own QoS policy (else its network's applies).
    pub qos_policy_id: Option<String>,
    /// `qos_network_policy_id`: its network's QoS policy (read with the port; not stored).
    pub network_qos_policy_id: Option<String>,
    /// `created_at`.
    pub created_at: String,
    /// `updated_at`.
    pub updated_at: String,
    /// `revision_number`.
    pub revision_number: i64,
    /// `allowed_address_pairs`, in request order.
    pub allowed_address_pairs: Vec<AddressPair>,
    /// `fixed_ips`, in allocation order.
    pub fixed_ips: Vec<FixedIp>,
    /// `security_groups`, in the order they were given.
    pub security_groups: Vec<String>,
}

/// A port with its v2.0 attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRecord {
    /// The Quantum port (admin state, attachment).
    pub port: Port,
    /// The v2.0 attributes.
    pub attrs: PortAttrs,
}

impl PortRecord {
    /// The QoS policy that makes the port's limits: its own, else its network's, except on
    /// the network's own ports (`device_owner` `network:...`: DHCP, router interfaces), as in
    /// Neutron.
    pub fn effective_qos_policy(&self) -> Option<&str> {
        self.attrs.qos_policy_id.as_deref().or_else(|| {
            if self.attrs.device_owner.starts_with("network:") {
                None
            } else {
                self.attrs.network_qos_policy_id.as_deref()
            }
        })
    }
}

/// A port as answered: the record and whether the data plane forwards for
/// it (`status` ACTIVE, else DOWN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortStatusView {
    /// The stored port.
    pub record: PortRecord,
    /// Admin up and forwarding.
    pub active: bool,
    /// Why the data plane refuses to forward for the port (a conflict or a
    /// limit), if it does: its status is `ERROR`.
    pub error: Option<String>,
}

/// How many characters of a port id its `tap` device name carries.
pub const TAP_ID_CHARS: usize = 11;

/// The host device of the Neutron/Nova convention for a port id: `tap` and
/// the first 11 characters of the id.
pub fn tap_device(port_id: &str) -> String {
    let head: String = port_id.chars().take(TAP_ID_CHARS).collect();
    format!("tap{head}")
}

/// A subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// Server-made uuid4.
    pub id: String,
    /// The network it belongs to.
    pub network_id: String,
    /// Owning project.
    pub tenant_id: String,
    /// `name`.
    pub name: String,
    /// `description`.
    pub description: String,
    /// IPv4 or IPv6.
    pub family: Family,
    /// Normalised CIDR.
    pub cidr: String,
    /// `gateway_ip`, if any.
    pub gateway_ip: Option<String>,
    /// `enable_dhcp` (stored and returned).
    pub enable_dhcp: bool,
    /// Pools as (first, last).
    pub allocation_pools: Vec<(String, String)>,
    /// `dns_nameservers`.
    pub dns_nameservers: Vec<String>,
    /// `host_routes` as (destination, nexthop).
    pub host_routes: Vec<(String, String)>,
    /// `ipv6_ra_mode` (stored and returned).
    pub ipv6_ra_mode: Option<String>,
    /// `ipv6_address_mode` (stored and returned).
    pub ipv6_address_mode: Option<String>,
    /// `created_at`.
    pub created_at: String,
    /// `updated_at`.
    pub updated_at: String,
    /// `revision_number`.
    pub revision_number: i64,
}

/// A network to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    /// Owning project.
    pub tenant_id: String,
    /// `name`.
    pub name: String,
    /// `admin_state_up` (default true).
    pub admin_state_up: bool,
    /// `shared` (default false).
    pub shared: bool,
    /// `mtu` (default: the physical network's, 1500 unless configured).
    pub mtu: Option<u32>,
    /// `description`.
    pub description: String,
    /// `port_security_enabled` (default true).
    pub port_security_enabled: bool,
    /// `router:external` (default false).
    pub router_external: bool,
    /// `provider:*` (admins only); all absent: a tenant network.
    pub provider: ProviderSpec,
    /// `qos_policy_id` (default: the project's default policy, if any).
    pub qos_policy_id: Option<String>,
}

impl NetworkSpec {
    /// A tenant network of `tenant_id` with every attribute at its default.
    pub fn named(tenant_id: &str, name: &str) -> NetworkSpec {
        NetworkSpec {
            tenant_id: tenant_id.to_owned(),
            name: name.to_owned(),
            admin_state_up: true,
            shared: false,
            mtu: None,
            description: String::new(),
            port_security_enabled: true,
            router_external: false,
            provider: ProviderSpec::default(),
            qos_policy_id: None,
        }
    }
}

/// The provider attributes of a network to create, as given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProviderSpec {
    /// `provider:network_type`: `vlan`, `flat` or `local`.
    pub network_type: Option<String>,
    /// `provider:physical_network`.
    pub physical_network: Option<String>,
    /// `provider:segmentation_id`, unchecked.
    pub segmentation_id: Option<i64>,
}

impl ProviderSpec {
    /// No provider attribute given.
    pub fn is_empty(&self) -> bool {
        self.network_type.is_none()
            && self.physical_network.is_none()
            && self.segmentation_id.is_none()
    }
}

/// Changes to a network; `None` leaves a value as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkUpdate {
    /// `name`.
    pub name: Option<String>,
    /// `admin_state_up`.
    pub admin_state_up: Option<bool>,
    /// `shared`.
    pub shared: Option<bool>,
    /// `mtu`.
    pub mtu: Option<u32>,
    /// `description`.
    pub description: Option<String>,
    /// `port_security_enabled`.
    pub port_security_enabled: Option<bool>,
    /// `router:external`.
    pub router_external: Option<bool>,
    /// `qos_policy_id`: `Some(None)` removes the policy.
    pub qos_policy_id: Option<Option<String>>,
}

/// One entry of a port's requested `fixed_ips`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FixedIpRequest {
    /// A subnet of the port's network.
    pub subnet_id: Option<String>,
    /// A specific address.
    pub ip_address: Option<IpAddr>,
}

/// One requested allowed address pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRequest {
    /// An address or CIDR.
    pub ip_address: Prefix,
    /// The MAC; the port's own when absent.
    pub mac_address: Option<Mac>,
}

/// A port to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// Owning project.
    pub tenant_id: String,
    /// The network.
    pub network_id: String,
    /// `name`.
    pub name: String,
    /// `admin_state_up` (default true).
    pub admin_state_up: bool,
    /// A requested MAC.
    pub mac_address: Option<Mac>,
    /// Requested addresses; `None` allocates one per IP version.
    pub fixed_ips: Option<Vec<FixedIpRequest>>,
    /// `device_id`.
    pub device_id: String,
    /// `device_owner`.
    pub device_owner: String,
    /// `description`.
    pub description: String,
    /// `port_security_enabled`; `None` takes the network's.
    pub port_security_enabled: Option<bool>,
    /// `allowed_address_pairs`.
    pub allowed_address_pairs: Vec<PairRequest>,
    /// `binding:host_id`.
    pub host_id: String,
    /// `security_groups`; `None`: the project's default group (when port security is on).
    pub security_groups: Option<Vec<String>>,
    /// `qos_policy_id`.
    pub qos_policy_id: Option<String>,
    /// Bind the port to the device named after it (`tap` + the first 11 characters of its id),
    /// as Nova names a VM's device; off: only an attachment plugs it.
    pub bind_tap: bool,
}

impl PortSpec {
    /// A port with a fresh MAC and nothing else: no addresses, no port security (and so no
    /// security groups), bound to a device only by a plug. This is a Quantum port: that API
    /// has no IPAM and no firewall.
    pub fn bare(tenant_id: &str, network_id: &str, admin_state_up: bool) -> PortSpec {
        PortSpec {
            tenant_id: tenant_id.to_owned(),
            network_id: network_id.to_owned(),
            name: String::new(),
            admin_state_up,
            mac_address: None,
            fixed_ips: Some(Vec::new()),
            device_id: String::new(),
            device_owner: String::new(),
            description: String::new(),
            port_security_enabled: Some(false),
            allowed_address_pairs: Vec::new(),
            host_id: String::new(),
            security_groups: None,
            qos_policy_id: None,
            bind_tap: false,
        }
    }
}

/// Changes to a port; `None` leaves a value as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortUpdate {
    /// `name`.
    pub name: Option<String>,
    /// `admin_state_up`.
    pub admin_state_up: Option<bool>,
    /// `mac_address`.
    pub mac_address: Option<Mac>,
    /// `fixed_ips`: the whole new set.
    pub fixed_ips: Option<Vec<FixedIpRequest>>,
    /// `device_id`.
    pub device_id: Option<String>,
    /// `device_owner`.
    pub device_owner: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `port_security_enabled`.
    pub port_security_enabled: Option<bool>,
    /// `allowed_address_pairs`: the whole new set.
    pub allowed_address_pairs: Option<Vec<PairRequest>>,
    /// `security_groups`: replaces the port's groups.
    pub security_groups: Option<Vec<String>>,
    /// `binding:host_id`.
    pub host_id: Option<String>,
    /// `qos_policy_id`: `Some(None)` removes the port's own policy.
    pub qos_policy_id: Option<Option<String>>,
}

/// A subnet's requested gateway.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum GatewayRequest {
    /// Not given: the first host.
    #[default]
    Default,
    /// `null`: no gateway.
    Disabled,
    /// This address.
    Address(IpAddr),
}

/// A subnet to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetSpec {
    /// Owning project.
    pub tenant_id: String,
    /// The network.
    pub network_id: String,
    /// `name`.
    pub name: String,
    /// `description`.
    pub description: String,
    /// 4 or 6.
    pub family: Family,
    /// The CIDR (host bits zeroed).
    pub cidr: Cidr,
    /// `gateway_ip`.
    pub gateway_ip: GatewayRequest,
    /// Pools as given; `None`: the default.
    pub allocation_pools: Option<Vec<(String, String)>>,
    /// `enable_dhcp` (default true).
    pub enable_dhcp: bool,
    /// `dns_nameservers`.
    pub dns_nameservers: Vec<IpAddr>,
    /// `host_routes` as (destination, nexthop).
    pub host_routes: Vec<(Cidr, IpAddr)>,
    /// `ipv6_ra_mode`.
    pub ipv6_ra_mode: Option<String>,
    /// `ipv6_address_mode`.
    pub ipv6_address_mode: Option<String>,
}

/// Changes to a subnet; `None` leaves a value as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubnetUpdate {
    /// `name`.
    pub name: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `gateway_ip` (`Disabled` for null).
    pub gateway_ip: Option<GatewayRequest>,
    /// `allocation_pools`.
    pub allocation_pools: Option<Vec<(String, String)>>,
    /// `enable_dhcp`.
    pub enable_dhcp: Option<bool>,
    /// `dns_nameservers`.
    pub dns_nameservers: Option<Vec<IpAddr>>,
    /// `host_routes` as (destination, nexthop).
    pub host_routes: Option<Vec<(Cidr, IpAddr)>>,
}

/// Now as Neutron prints timestamps: `2026-11-25T14:25:02Z`.
pub fn now_iso8601() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    iso8601(secs)
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn iso8601(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        (rem % 3_600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_iso8601_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_795_616_702), "2026-11-25T14:25:02Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn tap_device_takes_eleven_characters_of_the_id() {
        assert_eq!(
            tap_device("6c05a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b"),
            "tap6c05a1b2-c3"
        );
    }
}
