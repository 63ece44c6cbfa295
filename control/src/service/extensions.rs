//! The operations behind the API's extensions: QoS limits on ports, live
//! port statistics, a network's MAC table, and the tenant's usage against
//! its quotas.

use super::{find_network, find_port, Control};
use crate::error::Result;
use crate::forward::{MacEntry, PortStatistics};
use crate::qos::QosLimit;
use crate::quota::{Quotas, Usage};

impl Control {
    /// A port's QoS limit, if it has one.
    pub fn port_qos(
        &self,
        tenant_id: &str,
        net_id: &str,
        port_id: &str,
    ) -> Result<Option<QosLimit>> {
        self.read(|tx| {
            find_port(tx, tenant_id, net_id, port_id)?;
            tx.port_qos(port_id)
        })
    }

    /// Sets a port's QoS limit; the data plane enforces it from the next
    /// frame on.
    pub fn set_port_qos(
        &self,
        tenant_id: &str,
        net_id: &str,
        port_id: &str,
        qos: &QosLimit,
    ) -> Result<()> {
        self.write(|tx| {
            find_port(tx, tenant_id, net_id, port_id)?;
            qos.validate()?;
            tx.set_port_qos(port_id, Some(qos))
        })
    }

    /// Removes a port's QoS limit (a no-op when it has none).
    pub fn clear_port_qos(&self, tenant_id: &str, net_id: &str, port_id: &str) -> Result<()> {
        self.write(|tx| {
            find_port(tx, tenant_id, net_id, port_id)?;
            tx.set_port_qos(port_id, None)
        })
    }

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

    /// What a tenant holds, and its quotas.
    pub fn usage(&self, tenant_id: &str) -> Result<(Usage, Quotas)> {
        let usage = self.read(|tx| tx.tenant_usage(tenant_id))?;
        Ok((usage, self.options.quotas))
    }
}
