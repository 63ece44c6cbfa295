//! The errors of the control plane: one enum, each message written once.
//!
//! The `Display` text of each variant is the fault's `detail` string; the
//! Quantum variants reproduce the original `quantum.common.exceptions`
//! templates word for word (including their typos), because clients match on
//! them. The HTTP mapping lives in the `api` crate.

/// Everything a control-plane operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The network does not exist or belongs to another tenant.
    #[error("Network {net_id} could not be found")]
    NetworkNotFound {
        /// The network id asked for.
        net_id: String,
    },
    /// The network still has ports with attachments plugged.
    #[error(
        "Unable to complete operation on network {net_id}. \
         There is one or more attachments plugged into its ports."
    )]
    NetworkInUse {
        /// The network id.
        net_id: String,
    },
    /// The port does not exist on that network.
    #[error("Port {port_id} could not be found on network {net_id}")]
    PortNotFound {
        /// The network id the port was looked up in.
        net_id: String,
        /// The port id asked for.
        port_id: String,
    },
    /// A port state other than exactly `ACTIVE` or `DOWN`.
    #[error("Unsupported port state: {state}")]
    StateInvalid {
        /// The state asked for, as received.
        state: String,
    },
    /// The port has an attachment plugged.
    #[error(
        "Unable to complete operation on port {port_id} for network {net_id}. \
         The attachment '{att_id}is plugged into the logical port."
    )]
    PortInUse {
        /// The network id.
        net_id: String,
        /// The port id.
        port_id: String,
        /// The attachment plugged into the port.
        att_id: String,
    },
    /// The attachment is already plugged into a port.
    #[error(
        "Unable to plug the attachment {att_id} into port {port_id} for network \
         {net_id}. The attachment is already plugged into port {att_port_id}"
    )]
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
    #[error("Interface {interface_id} could not be found")]
    InterfaceNotFound {
        /// The interface id asked for.
        interface_id: String,
    },
    /// Plugging an interface that is not registered to this tenant.
    #[error(
        "Interface {interface_id} is not registered to this tenant; \
         register it with PUT /interfaces/{interface_id} before plugging it"
    )]
    InterfaceNotRegistered {
        /// The interface id asked for.
        interface_id: String,
    },
    /// Unregistering an interface that is still plugged into a port.
    #[error("Interface {interface_id} is plugged into port {port_id}; unplug it first")]
    InterfaceInUse {
        /// The interface id.
        interface_id: String,
        /// The port it is plugged into.
        port_id: String,
    },
    /// Registering an interface id or a device that is already registered
    /// elsewhere.
    #[error("{reason}")]
    InterfaceConflict {
        /// Why the registration conflicts.
        reason: String,
    },
    /// Every segmentation id (VLAN) of the configured range is in use.
    #[error("No free segmentation id: all VLAN ids {min}..{max} are in use by networks")]
    NoFreeVlan {
        /// Lowest VLAN id of the range.
        min: u16,
        /// Highest VLAN id of the range.
        max: u16,
    },
    /// No such subnet (or not visible to the caller).
    #[error("Subnet {subnet_id} could not be found.")]
    SubnetNotFound {
        /// The subnet id asked for.
        subnet_id: String,
    },
    /// Deleting a network that still has ports (Neutron's rule: any port).
    #[error("Unable to complete operation on network {net_id}. There are one or more \
         ports still in use on the network, id for these ports is: {}.", .port_ids.join(","))]
    NetworkHasPorts {
        /// The network id.
        net_id: String,
        /// The ports still on it.
        port_ids: Vec<String>,
    },
    /// A MAC already used by another port of the network.
    #[error(
        "Unable to complete operation for network {net_id}. \
         The mac address {mac} is in use."
    )]
    MacAddressInUse {
        /// The network id.
        net_id: String,
        /// The MAC asked for.
        mac: String,
    },
    /// An address already held by another port.
    #[error("IP address {ip} already allocated in subnet {subnet_id}")]
    IpAddressAlreadyAllocated {
        /// The address.
        ip: String,
        /// The subnet it belongs to.
        subnet_id: String,
    },
    /// No free address is left in the pools of the network's subnets.
    #[error("No more IP addresses available on network {net_id}.")]
    IpAddressGenerationFailure {
        /// The network id.
        net_id: String,
    },
    /// An address outside the subnet asked for.
    #[error("IP address {ip} is not a valid IP for the specified subnet.")]
    InvalidIpForSubnet {
        /// The address.
        ip: String,
    },
    /// An address inside none of the network's subnets.
    #[error(
        "IP address {ip} is not a valid IP for any of the subnets on the \
         specified network."
    )]
    InvalidIpForNetwork {
        /// The address.
        ip: String,
    },
    /// Deleting a subnet from which ports still hold addresses.
    #[error(
        "Unable to complete operation on subnet {subnet_id}: One or more ports \
         have an IP allocation from this subnet."
    )]
    SubnetInUse {
        /// The subnet id.
        subnet_id: String,
    },
    /// Allowed address pairs on a port whose port security is off.
    #[error("Port Security must be enabled in order to have allowed address pairs on a port.")]
    AddressPairAndPortSecurityRequired,
    /// The gateway lies inside an allocation pool.
    #[error("Gateway ip {ip} conflicts with allocation pool {pool}.")]
    GatewayConflictWithAllocationPools {
        /// The pool, `first-last`.
        pool: String,
        /// The gateway address.
        ip: String,
    },
    /// Two allocation pools share addresses.
    #[error("Found overlapping allocation pools: {pool_1} {pool_2} for subnet {cidr}.")]
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
    #[error("The allocation pool {pool} is not valid.")]
    InvalidAllocationPool {
        /// The pool as given.
        pool: String,
    },
    /// A pool reaching outside the subnet's CIDR.
    #[error("The allocation pool {pool} spans beyond the subnet cidr {cidr}.")]
    OutOfBoundsAllocationPool {
        /// The pool, `first-last`.
        pool: String,
        /// The subnet's CIDR.
        cidr: String,
    },
    /// A value that breaks a Neutron rule on an operation as a whole
    /// (Neutron's `InvalidInput`).
    #[error("Invalid input for operation: {reason}")]
    InvalidInput {
        /// What is wrong, for the client.
        reason: String,
    },
    /// One more resource would exceed the tenant's quota.
    #[error("Quota exceeded for {resource}: the tenant holds {used} of its limit of {limit}")]
    OverQuota {
        /// `networks`, `ports` or `interfaces`.
        resource: &'static str,
        /// The tenant's limit.
        limit: u64,
        /// What the tenant holds.
        used: u64,
    },
    /// No such security group (or not visible to the caller).
    #[error("Security group {id} does not exist")]
    SecurityGroupNotFound {
        /// The id asked for.
        id: String,
    },
    /// No such security group rule.
    #[error("Security group rule {id} does not exist")]
    SecurityGroupRuleNotFound {
        /// The id asked for.
        id: String,
    },
    /// A security group rule or group request Neutron refuses as invalid (400), with Neutron's
    /// type (`SecurityGroupInvalidPortRange`, ...) and message.
    #[error("{message}")]
    SecurityGroupInvalid {
        /// Neutron's error type.
        kind: &'static str,
        /// Neutron's message.
        message: String,
    },
    /// A security group request that conflicts with the state (409): a duplicate rule, a group
    /// in use, the default group.
    #[error("{message}")]
    SecurityGroupConflict {
        /// Neutron's error type.
        kind: &'static str,
        /// Neutron's message.
        message: String,
    },
    /// A network MTU too small for one of its subnets (68 for IPv4, 1280 for IPv6).
    #[error("MTU of {net_id} is not valid, subnet requires a minimum of {min}")]
    NetworkMtuSubnetConflict {
        /// The network id.
        net_id: String,
        /// The smallest MTU its subnets allow.
        min: u32,
    },
    /// A provider network's segment (a VLAN or the untagged segment of a physical network)
    /// is held by another network (409), with Neutron's type (`VlanIdInUse`,
    /// `FlatNetworkInUse`) and message.
    #[error("{message}")]
    SegmentInUse {
        /// Neutron's error type.
        kind: &'static str,
        /// Neutron's message.
        message: String,
    },
    /// No such agent (or not visible to the caller).
    #[error("Agent {id} could not be found.")]
    AgentNotFound {
        /// The id asked for.
        id: String,
    },
    /// No such QoS policy (or not visible to the caller).
    #[error("QoS policy {id} could not be found.")]
    QosPolicyNotFound {
        /// The id asked for.
        id: String,
    },
    /// No such rule in the policy.
    #[error("QoS rule {rule_id} for policy {policy_id} could not be found.")]
    QosRuleNotFound {
        /// The rule asked for.
        rule_id: String,
        /// Its policy.
        policy_id: String,
    },
    /// A QoS request that conflicts with the state (409): a policy in use, a second default
    /// policy, a second rule of a type and direction; with Neutron's type and message.
    #[error("{message}")]
    QosConflict {
        /// Neutron's error type.
        kind: &'static str,
        /// Neutron's message.
        message: String,
    },
    /// A value that breaks a model rule (too long, bad characters, ...).
    #[error("{reason}")]
    Invalid {
        /// What is wrong, for the client.
        reason: String,
    },
    /// A write broke a uniqueness or reference the store enforces (another
    /// writer got there first): the client may retry. The detail is for the
    /// operator's log.
    #[error("The request conflicts with a concurrent change; retry it")]
    Conflict {
        /// The store's own message.
        detail: String,
    },
    /// The store cannot be reached (its database server is down, restarting or refusing
    /// connections): nothing was written, and the client may retry. The detail is for the
    /// operator's log.
    #[error("The network service is unavailable: its database cannot be reached; retry later")]
    Unavailable {
        /// The store's own message.
        detail: String,
    },
    /// The store failed; the detail is for the operator's log, never for an
    /// API client.
    #[error("store error: {detail}")]
    Store {
        /// The store's own message.
        detail: String,
    },
}

/// The result type of the control plane.
pub type Result<T, E = ControlError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::ControlError as E;

    #[test]
    fn messages_are_derived_with_their_fields() {
        // The Quantum templates themselves are pinned in `model`'s tests.
        let e = E::NetworkHasPorts {
            net_id: "n".into(),
            port_ids: vec!["p1".into(), "p2".into()],
        };
        assert!(
            e.to_string().ends_with("id for these ports is: p1,p2."),
            "{e}"
        );
        assert_eq!(
            E::Store {
                detail: "disk".into()
            }
            .to_string(),
            "store error: disk"
        );
    }
}
