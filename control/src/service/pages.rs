//! Paged lists of networks and ports (see [`crate::page`]).
//!
//! Rows are read in keyset batches, each under the store lock; the views
//! (which ask the forwarder whether ports forward) are made after the lock
//! is released, as everywhere else in [`Control`].

use super::{find_network, Control};
use crate::error::{ControlError, Result};
use crate::model::{NetworkView, Port, PortView};
use crate::page::{self, Page, PageRequest};

fn unknown_marker(marker: &str, what: &str) -> ControlError {
    ControlError::Invalid {
        reason: format!("Invalid marker '{marker}': no {what} with this id in the list"),
    }
}

impl Control {
    /// One page of a tenant's networks that pass `keep`, in creation order.
    /// The views carry their ports only `with_ports` (when `keep` looks at
    /// them): a page of networks then costs nothing per port.
    pub fn networks_page(
        &self,
        tenant_id: &str,
        req: &PageRequest,
        with_ports: bool,
        keep: &dyn Fn(&NetworkView) -> bool,
    ) -> Result<Page<NetworkView>> {
        let from = match &req.marker {
            None => None,
            Some(m) => Some(
                self.read(|tx| tx.network_seq(tenant_id, m))?
                    .ok_or_else(|| unknown_marker(m, "network"))?,
            ),
        };
        page::walk(
            from,
            req,
            |from, n| {
                self.read(|tx| {
                    tx.networks_page(tenant_id, from, req.reverse, n)?
                        .into_iter()
                        .map(|(seq, net)| {
                            let ports = if with_ports {
                                tx.ports(&net.id)?
                            } else {
                                Vec::new()
                            };
                            Ok((seq, (net, ports)))
                        })
                        .collect()
                })
            },
            |(net, ports)| self.network_view(net, ports),
            keep,
        )
    }

    /// One page of a network's ports that pass `keep`, in creation order.
    /// The network is looked up first (NetworkNotFound beats a bad marker).
    pub fn ports_page(
        &self,
        tenant_id: &str,
        net_id: &str,
        req: &PageRequest,
        keep: &dyn Fn(&PortView) -> bool,
    ) -> Result<Page<PortView>> {
        let from = self.read(|tx| {
            find_network(tx, tenant_id, net_id)?;
            match &req.marker {
                None => Ok(None),
                Some(m) => tx
                    .port_seq(net_id, m)?
                    .map(Some)
                    .ok_or_else(|| unknown_marker(m, "port")),
            }
        })?;
        page::walk(
            from,
            req,
            |from, n| {
                // A batch's statuses in one read.
                let rows = self.read(|tx| tx.ports_page(net_id, from, req.reverse, n))?;
                let (seqs, ports): (Vec<i64>, Vec<Port>) = rows.into_iter().unzip();
                Ok(seqs
                    .into_iter()
                    .zip(self.quantum_port_views(ports))
                    .collect())
            },
            |v| v,
            keep,
        )
    }
}
