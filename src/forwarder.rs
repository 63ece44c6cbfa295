//! The control plane's [`Forwarder`] on top of the data plane's [`Switch`]: every committed
//! change becomes a new switch configuration (the file's static part plus the API's networks and
//! plugged ports), and a port's op-status is whether the switch forwards for it.

use std::sync::Arc;
use std::time::Duration;

use control::forward::{DesiredState, Forwarder};
use dataplane::{NetworkConfig, PortConfig, Switch, SwitchConfig};

/// How long a plug waits for the switch to open the new port before answering.
const SETTLE: Duration = Duration::from_millis(250);

pub(crate) struct SwitchForwarder {
    switch: Arc<Switch>,
    base: SwitchConfig,
    mac_limit: u32,
}

impl SwitchForwarder {
    pub(crate) fn new(switch: Arc<Switch>, base: SwitchConfig, mac_limit: u32) -> Self {
        SwitchForwarder {
            switch,
            base,
            mac_limit,
        }
    }

    /// The switch configuration for a desired state.
    pub(crate) fn config_for(&self, state: &DesiredState) -> SwitchConfig {
        let mut cfg = self.base.clone();
        for n in &state.networks {
            cfg.networks.push(NetworkConfig {
                id: n.id.clone(),
                vlan: n.vlan,
                mac_limit: self.mac_limit,
            });
        }
        for p in &state.ports {
            let mut pc = PortConfig::access(&p.id, &p.device, &p.network_id);
            pc.admin_up = p.admin_up;
            cfg.ports.push(pc);
        }
        cfg
    }
}

impl Forwarder for SwitchForwarder {
    fn apply(&self, state: &DesiredState) {
        let cfg = self.config_for(state);
        match self.switch.apply(cfg) {
            Ok(()) => {
                self.switch.wait_settled(SETTLE);
            }
            Err(e) => tracing::error!("the data plane refused the configuration: {e}"),
        }
    }

    fn port_up(&self, port_id: &str) -> bool {
        self.switch
            .port_status(port_id)
            .is_some_and(|s| s.is_forwarding())
    }
}
