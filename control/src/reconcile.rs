//! The reconciler: turns the stored model into the data plane's desired
//! state.
//!
//! # Design
//!
//! The whole [`DesiredState`] is derived from the store after each committed
//! change and once at startup, and handed to the [`crate::Forwarder`] in
//! commit order. Handing over the whole state (rather than deltas) makes the
//! forwarder idempotent and self-healing: a restart, a missed call or a
//! failed device open is repaired by the next call, and startup is the same
//! code path as any change. The cost is one scan of networks and plugged
//! ports per write, which is small next to the fsync of the commit.

use crate::error::Result;
use crate::forward::{DesiredNetwork, DesiredPort, DesiredState};
use crate::model::PortState;
use crate::store::Tx;

/// Derives the desired forwarding state from the store.
pub(crate) fn desired_state(tx: &dyn Tx) -> Result<DesiredState> {
    let networks = tx
        .all_networks()?
        .into_iter()
        .map(|n| DesiredNetwork {
            id: n.id,
            tenant_id: n.tenant_id,
            vlan: n.vlan,
        })
        .collect();
    let ports = tx
        .plugged_ports()?
        .into_iter()
        .map(|(p, device)| DesiredPort {
            admin_up: p.state == PortState::Active,
            id: p.id,
            network_id: p.network_id,
            device,
        })
        .collect();
    Ok(DesiredState { networks, ports })
}
