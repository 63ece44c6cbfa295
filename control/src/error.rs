//! The errors of the control plane: one enum, each message written once.
//!
//! The `Display` text of each variant is the fault's `detail` string; the
//! Quantum variants reproduce the original `quantum.common.exceptions`
//! templates word for word (including their typos), because clients match on
//! them. The HTTP mapping lives in the `api` crate.

use std::fmt;

/// Everything a control-plane operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlError {
    /// The network does not exist or belongs to another tenant.
    NetworkNotFound {
        /// The network id asked for.
        net_id: String,
    },
    /// The network still has ports with attachments plugged.
    NetworkInUse {
        /// The network id.
        net_id: String,
    },
    /// The port does not exist on that network.
    PortNotFound {
        /// The network id the port was looked up in.
        net_id: String,
        /// The port id asked for.
        port_id: String,
    },
    /// A port state other than exactly `ACTIVE` or `DOWN`.
    StateInvalid {
        /// The state asked for, as received.
        state: String,
    },
    /// The port has an attachment plugged.
    PortInUse {
        /// The network id.
        net_id: String,
        /// The port id.
        port_id: String,
        /// The attachment plugged into the port.
        att_id: String,
    },
    /// The attachment is already plugged into a port.
    AlreadyAttached {
        /// The network id of the port being plugged.
        net_id: String,
        /// The port being plugged.
        port_id: String,
        /// The attachment (interface id).
        att_id: String,
        /// The port the attachment is plugged into.
        att_port_id: String,
    },
    /// The interface is not registered to this tenant (registry lookups).
    InterfaceNotFound {
        /// The interface id asked for.
        interface_id: String,
    },
    /// Plugging an interface that is not registered to this tenant.
    InterfaceNotRegistered {
        /// The interface id asked for.
        interface_id: String,
    },
    /// Unregistering an interface that is still plugged into a port.
    InterfaceInUse {
        /// The interface id.
        interface_id: String,
        /// The port it is plugged into.
        port_id: String,
    },
    /// Registering an interface id or a device that is already registered
    /// elsewhere.
    InterfaceConflict {
        /// Why the registration conflicts.
        reason: String,
    },
    /// Every segmentation id (VLAN) of the configured range is in use.
    NoFreeVlan {
        /// Lowest VLAN id of the range.
        min: u16,
        /// Highest VLAN id of the range.
        max: u16,
    },
    /// No such subnet (or not visible to the caller).
    SubnetNotFound {
        /// The subnet id asked for.
        subnet_id: String,
    },
    /// Deleting a network that still has ports (Neutron's rule: any port).
    NetworkHasPorts {
        /// The network id.
        net_id: String,
        /// The ports still on it.
        port_ids: Vec<String>,
    },
    /// A MAC already used by another port of the network.
    MacAddressInUse {
        /// The network id.
        net_id: String,
        /// The MAC asked for.
        mac: String,
    },
    /// An address already held by another port.
    IpAddressAlreadyAllocated {
        /// The address.
        ip: String,
        /// The subnet it belongs to.
        subnet_id: String,
    },
    /// No free address is left in the pools of the network's subnets.
    IpAddressGenerationFailure {
        /// The network id.
        net_id: String,
    },
    /// An address outside the subnet asked for.
    InvalidIpForSubnet {
        /// The address.
        ip: String,
    },
    /// An address inside none of the network's subnets.
    InvalidIpForNetwork {
        /// The address.
        ip: String,
    },
    /// Deleting a subnet from which ports still hold addresses.
    SubnetInUse {
        /// The subnet id.
        subnet_id: String,
    },
    /// Allowed address pairs on a port whose port security is off.
    AddressPairAndPortSecurityRequired,
    /// The gateway lies inside an allocation pool.
    GatewayConflictWithAllocationPools {
        /// The pool, `first-last`.
        pool: String,
        /// The gateway address.
        ip: String,
    },
    /// Two allocation pools share addresses.
    OverlappingAllocationPools {
        /// The first pool, `first-last`.
        pool_1: String,
        /// The second pool, `first-last`.
        pool_2: String,
        /// The subnet's CIDR.
        cidr: String,
    },
    /// A pool whose bounds are not addresses of the subnet's version or are
    /// reversed.
    InvalidAllocationPool {
        /// The pool as given.
        pool: String,
    },
    /// A pool reaching outside the subnet's CIDR.
    OutOfBoundsAllocationPool {
        /// The pool, `first-last`.
        pool: String,
        /// The subnet's CIDR.
        cidr: String,
    },
    /// A value that breaks a Neutron rule on an operation as a whole
    /// (Neutron's `InvalidInput`).
    InvalidInput {
        /// What is wrong, for the client.
        reason: String,
    },
    /// One more resource would exceed the tenant's quota.
    OverQuota {
        /// `networks`, `ports` or `interfaces`.
        resource: &'static str,
        /// The tenant's limit.
        limit: u64,
        /// What the tenant holds.
        used: u64,
    },
    /// A value that breaks a model rule (too long, bad characters, ...).
    Invalid {
        /// What is wrong, for the client.
        reason: String,
    },
    /// A write broke a uniqueness or reference the store enforces (another
    /// writer got there first): the client may retry. The detail is for the
    /// operator's log.
    Conflict {
        /// The store's own message.
        detail: String,
    },
    /// The store failed; the detail is for the operator's log, never for an
    /// API client.
    Store {
        /// The store's own message.
        detail: String,
    },
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NetworkNotFound { net_id } => write!(f, "Network {net_id} could not be found"),
            Self::NetworkInUse { net_id } => write!(
                f,
                "Unable to complete operation on network {net_id}. \
                 There is one or more attachments plugged into its ports."
            ),
            Self::PortNotFound { net_id, port_id } => {
                write!(f, "Port {port_id} could not be found on network {net_id}")
            }
            Self::StateInvalid { state } => write!(f, "Unsupported port state: {state}"),
            // The missing space after the quote is the original's.
            Self::PortInUse {
                net_id,
                port_id,
                att_id,
            } => write!(
                f,
                "Unable to complete operation on port {port_id} for network {net_id}. \
                 The attachment '{att_id}is plugged into the logical port."
            ),
            Self::AlreadyAttached {
                net_id,
                port_id,
                att_id,
                att_port_id,
            } => write!(
                f,
                "Unable to plug the attachment {att_id} into port {port_id} for network \
                 {net_id}. The attachment is already plugged into port {att_port_id}"
            ),
            Self::InterfaceNotFound { interface_id } => {
                write!(f, "Interface {interface_id} could not be found")
            }
            Self::InterfaceNotRegistered { interface_id } => write!(
                f,
                "Interface {interface_id} is not registered to this tenant; \
                 register it with PUT /interfaces/{interface_id} before plugging it"
            ),
            Self::InterfaceInUse {
                interface_id,
                port_id,
            } => write!(
                f,
                "Interface {interface_id} is plugged into port {port_id}; unplug it first"
            ),
            Self::InterfaceConflict { reason } => f.write_str(reason),
            Self::NoFreeVlan { min, max } => write!(
                f,
                "No free segmentation id: all VLAN ids {min}..{max} are in use by networks"
            ),
            Self::SubnetNotFound { subnet_id } => {
                write!(f, "Subnet {subnet_id} could not be found.")
            }
            Self::NetworkHasPorts { net_id, port_ids } => write!(
                f,
                "Unable to complete operation on network {net_id}. There are one or more \
                 ports still in use on the network, id for these ports is: {}.",
                port_ids.join(",")
            ),
            Self::MacAddressInUse { net_id, mac } => write!(
                f,
                "Unable to complete operation for network {net_id}. \
                 The mac address {mac} is in use."
            ),
            Self::IpAddressAlreadyAllocated { ip, subnet_id } => {
                write!(f, "IP address {ip} already allocated in subnet {subnet_id}")
            }
            Self::IpAddressGenerationFailure { net_id } => {
                write!(f, "No more IP addresses available on network {net_id}.")
            }
            Self::InvalidIpForSubnet { ip } => {
                write!(
                    f,
                    "IP address {ip} is not a valid IP for the specified subnet."
                )
            }
            Self::InvalidIpForNetwork { ip } => write!(
                f,
                "IP address {ip} is not a valid IP for any of the subnets on the \
                 specified network."
            ),
            Self::SubnetInUse { subnet_id } => write!(
                f,
                "Unable to complete operation on subnet {subnet_id}: One or more ports \
                 have an IP allocation from this subnet."
            ),
            Self::AddressPairAndPortSecurityRequired => f.write_str(
                "Port Security must be enabled in order to have allowed address pairs on a port.",
            ),
            Self::GatewayConflictWithAllocationPools { pool, ip } => {
                write!(f, "Gateway ip {ip} conflicts with allocation pool {pool}.")
            }
            Self::OverlappingAllocationPools {
                pool_1,
                pool_2,
                cidr,
            } => write!(
                f,
                "Found overlapping allocation pools: {pool_1} {pool_2} for subnet {cidr}."
            ),
            Self::InvalidAllocationPool { pool } => {
                write!(f, "The allocation pool {pool} is not valid.")
            }
            Self::OutOfBoundsAllocationPool { pool, cidr } => write!(
                f,
                "The allocation pool {pool} spans beyond the subnet cidr {cidr}."
            ),
            Self::InvalidInput { reason } => {
                write!(f, "Invalid input for operation: {reason}")
            }
            Self::OverQuota {
                resource,
                limit,
                used,
            } => write!(
                f,
                "Quota exceeded for {resource}: the tenant holds {used} of its limit of {limit}"
            ),
            Self::Invalid { reason } => f.write_str(reason),
            Self::Conflict { .. } => {
                f.write_str("The request conflicts with a concurrent change; retry it")
            }
            // For logs and startup errors; the API never shows it to clients.
            Self::Store { detail } => write!(f, "store error: {detail}"),
        }
    }
}

impl std::error::Error for ControlError {}

/// The result type of the control plane.
pub type Result<T, E = ControlError> = std::result::Result<T, E>;
