//! The operations behind the API's extensions: live port statistics, a
//! network's MAC table, a port's tracked connections, and the tenant's usage against its quotas (the QoS
//! extension's are QoS policies': `service::qos`).

use super::{find_network, find_port, Control};
use crate::error::Result;
use crate::forward::{MacEntry, PortStatistics, TrackedConnection};
use crate::quota::{Quotas, Usage};

impl Control {
    /// A port's live counters; all zero while the data plane does not hold
    /// the port (nothing plugged, or its device is not open yet).
    pub fn port_stats(
        &self,
        tenant_id: &str,
        net_id: &str,
        port_id: &str,
    ) -> Result<PortStatistics> {
        self.read(|tx| find_port(tx, tenant_id, net_id, port_id))?;
        Ok(self.forwarder.port_stats(port_id).unwrap_or_default())
    }

    /// A network's MAC table as the data plane holds it (empty when the data
    /// plane has no entries for it).
    pub fn mac_table(&self, tenant_id: &str, net_id: &str) -> Result<Vec<MacEntry>> {
        self.read(|tx| find_network(tx, tenant_id, net_id))?;
        Ok(self.forwarder.mac_table(net_id).unwrap_or_default())
    }

    /// The connections a port's stateful security groups track in the data plane (empty when
    /// the data plane does not hold the port, or tracks nothing for it).
    pub fn connections(
        &self,
        tenant_id: &str,
        net_id: &str,
        port_id: &str,
    ) -> Result<Vec<TrackedConnection>> {
        self.read(|tx| find_port(tx, tenant_id, net_id, port_id))?;
        Ok(self.forwarder.connections(port_id).unwrap_or_default())
    }

    /// What a tenant holds, and its quotas.
    pub fn usage(&self, tenant_id: &str) -> Result<(Usage, Quotas)> {
        let usage = self.read(|tx| tx.tenant_usage(tenant_id))?;
        Ok((usage, self.options.quotas))
    }
}
