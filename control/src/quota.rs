//! Absolute limits (quotas) per tenant: how many networks, ports and
//! registered interfaces one tenant may hold.
//!
//! A quota is checked inside the write transaction that would exceed it
//! (count, then insert, under the store's write lock), so concurrent creates
//! cannot overshoot. Ports count against the tenant that owns their network.

/// The limits; `None` is unlimited (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quotas {
    /// Networks per tenant.
    pub networks: Option<u64>,
    /// Ports per tenant (over all of its networks).
    pub ports: Option<u64>,
    /// Registered interfaces per tenant.
    pub interfaces: Option<u64>,
}

/// What a tenant holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Networks.
    pub networks: u64,
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
            Resource::Ports => self.ports,
            Resource::Interfaces => self.interfaces,
        }
    }
}
