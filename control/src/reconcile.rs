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

use std::collections::{HashMap, HashSet};

use crate::error::Result;
use crate::forward::{DesiredNetwork, DesiredPort, DesiredSecurity, DesiredState};
use crate::model::PortState;
use crate::neutron::{tap_device, PortRecord};
use crate::store::Tx;

/// Derives the desired forwarding state from the store.
///
/// A plugged attachment's device wins over the `tap` convention; a device
/// already taken by an earlier port is not given to a later one.
pub(crate) fn desired_state(tx: &dyn Tx, authorize_tap: bool) -> Result<DesiredState> {
    let records = tx.network_records(None)?;
    let net_up: HashMap<String, bool> = records
        .iter()
        .map(|r| (r.network.id.clone(), r.attrs.admin_state_up))
        .collect();
    let net_tenant: HashMap<String, String> = records
        .iter()
        .map(|r| (r.network.id.clone(), r.network.tenant_id.clone()))
        .collect();
    let networks = records
        .into_iter()
        .map(|r| DesiredNetwork {
            id: r.network.id,
            tenant_id: r.network.tenant_id,
            vlan: r.network.vlan,
        })
        .collect();
    let plugged: HashMap<String, String> = tx
        .plugged_ports()?
        .into_iter()
        .map(|(p, device)| (p.id, device))
        .collect();
    let mut taken: HashSet<String> = plugged.values().cloned().collect();
    let mut ports = Vec::new();
    for r in tx.port_records(None)? {
        let device = match plugged.get(&r.port.id) {
            Some(d) => d.clone(),
            None if r.attrs.bind_tap => {
                let d = tap_device(&r.port.id);
                if authorize_tap {
                    // Only a device the hypervisor side registered for the port's tenant.
                    let tenant = net_tenant.get(&r.port.network_id);
                    let registered = tx.interface_by_device(&d)?;
                    if registered.is_none_or(|i| Some(&i.tenant_id) != tenant) {
                        continue;
                    }
                }
                if !taken.insert(d.clone()) {
                    tracing::warn!(port = %r.port.id, device = %d, "device already in use; port not bound");
                    continue;
                }
                d
            }
            None => continue,
        };
        let admin_up = r.port.state == PortState::Active
            && net_up.get(&r.port.network_id).copied().unwrap_or(true);
        ports.push(desired_port(r, device, admin_up));
    }
    let mut qos: HashMap<String, _> = tx.all_port_qos()?.into_iter().collect();
    for p in &mut ports {
        p.qos = qos.remove(&p.id);
    }
    Ok(DesiredState { networks, ports })
}

fn desired_port(r: PortRecord, device: String, admin_up: bool) -> DesiredPort {
    let security = r.attrs.port_security_enabled.then(|| DesiredSecurity {
        mac: r.attrs.mac_address.clone(),
        fixed_ips: r
            .attrs
            .fixed_ips
            .iter()
            .filter_map(|f| f.ip_address.parse().ok())
            .collect(),
        allowed_pairs: r
            .attrs
            .allowed_address_pairs
            .iter()
            .map(|p| (p.mac_address.clone(), p.ip_address.clone()))
            .collect(),
    });
    DesiredPort {
        id: r.port.id,
        network_id: r.port.network_id,
        device,
        admin_up,
        mac: r.attrs.mac_address,
        security,
        qos: None,
    }
}
