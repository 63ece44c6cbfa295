//! Absolute limits (quotas) per tenant: how many networks, subnets, ports and
//! registered interfaces one tenant may hold.
//!
//! A quota is checked inside the write transaction that would exceed it
//! (count, then insert, under the store's write lock), so concurrent creates
//! cannot overshoot. A port counts against its own project (for Quantum
//! ports, the tenant of their network), as in Neutron.

/// The limits; `None` is unlimited. The default is Neutron's: 100 networks,
/// 100 subnets and 500 ports per project (interfaces, qswitch's own,
/// unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Networks per tenant.
    pub networks: Option<u64>,
    /// Subnets per tenant.
    pub subnets: Option<u64>,
    /// Ports per tenant.
    pub ports: Option<u64>,
    /// Registered interfaces per tenant.
    pub interfaces: Option<u64>,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            networks: Some(100),
            subnets: Some(100),
            ports: Some(500),
            interfaces: None,
        }
    }
}

impl Quotas {
    /// No limit on anything.
    pub fn unlimited() -> Self {
        Self {
            networks: None,
            subnets: None,
            ports: None,
            interfaces: None,
        }
    }
}

/// What a tenant holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Networks.
    pub networks: u64,
    /// Subnets.
    pub subnets: u64,
    /// Ports.
    pub ports: u64,
    /// Registered interfaces.
    pub interfaces: u64,
}

/// The kind of resource a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// Networks.
    Networks,
    /// Subnets.
    Subnets,
    /// Ports.
    Ports,
    /// Registered interfaces.
    Interfaces,
}

impl Resource {
    /// The plural name used in faults and in the limits document.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Networks => "networks",
            Self::Subnets => "subnets",
            Self::Ports => "ports",
            Self::Interfaces => "interfaces",
        }
    }
}

impl Quotas {
    /// The limit on one resource.
    pub fn limit(&self, r: Resource) -> Option<u64> {
        match r {
            Resource::Networks => self.networks,
            Resource::Subnets => self.subnets,
            Resource::Ports => self.ports,
            Resource::Interfaces => self.interfaces,
        }
    }
}

impl Usage {
    /// The count of one resource.
    pub fn of(&self, r: Resource) -> u64 {
        match r {
            Resource::Networks => self.networks,
            Resource::Subnets => self.subnets,
            Resource::Ports => self.ports,
            Resource::Interfaces => self.interfaces,
        }
    }
}
