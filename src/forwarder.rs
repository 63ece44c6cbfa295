//! The control plane's [`Forwarder`] on top of the data plane's [`Switch`]: every committed
//! change becomes a new switch configuration (the file's static part plus the API's networks and
//! plugged ports), and a port's op-status is whether the switch forwards for it.

use std::sync::Arc;
use std::time::Duration;

use control::forward::{DesiredPort, DesiredSecurity, DesiredState, Forwarder};
use dataplane::security::{IpPrefix, PortSecurity};
use dataplane::{Mac, NetworkConfig, PortConfig, Switch, SwitchConfig};

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
            // The file's static ports keep their devices; the switch refuses a configuration
            // that gives one device to two ports.
            if cfg.ports.iter().any(|b| b.device == p.device) {
                tracing::warn!(port = %p.id, device = %p.device, "device taken by a static port; not bound");
                continue;
            }
            cfg.ports.push(port_config(p));
        }
        cfg
    }
}

/// The data plane's view of one desired port: an access port of its network, with its MAC as a
/// static entry and its anti-spoofing rules when port security is on.
fn port_config(p: &DesiredPort) -> PortConfig {
    let mut pc = PortConfig::access(&p.id, &p.device, &p.network_id);
    pc.admin_up = p.admin_up;
    if let Some(sec) = &p.security {
        if let Some(mac) = Mac::parse(&p.mac) {
            pc.static_macs.push(mac);
        }
        pc.security = Some(port_security(sec));
    }
    pc
}

/// Anti-spoofing rules: an unparsable MAC or address (which the API never stores) allows
/// nothing rather than everything.
fn port_security(sec: &DesiredSecurity) -> PortSecurity {
    PortSecurity {
        mac: Mac::parse(&sec.mac).unwrap_or(Mac::BROADCAST),
        fixed_ips: sec.fixed_ips.clone(),
        allowed_pairs: sec
            .allowed_pairs
            .iter()
            .filter_map(|(mac, ip)| Some((Mac::parse(mac)?, Some(IpPrefix::parse(ip)?))))
            .collect(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_security_maps_macs_addresses_and_pairs() {
        let p = DesiredPort {
            id: "p".into(),
            network_id: "n".into(),
            device: "tapabc".into(),
            admin_up: true,
            mac: "fa:16:3e:00:00:01".into(),
            security: Some(DesiredSecurity {
                mac: "fa:16:3e:00:00:01".into(),
                fixed_ips: vec!["198.18.0.2".parse().unwrap()],
                allowed_pairs: vec![
                    ("fa:16:3e:00:00:02".into(), "198.18.1.0/24".into()),
                    ("bad".into(), "198.18.2.1".into()),
                ],
            }),
        };
        let pc = port_config(&p);
        let sec = pc.security.unwrap();
        assert_eq!(sec.mac, Mac([0xfa, 0x16, 0x3e, 0, 0, 1]));
        assert_eq!(
            sec.fixed_ips,
            vec!["198.18.0.2".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(sec.allowed_pairs.len(), 1);
        assert_eq!(pc.static_macs, vec![Mac([0xfa, 0x16, 0x3e, 0, 0, 1])]);
        let open = port_config(&DesiredPort {
            security: None,
            ..p
        });
        assert!(open.security.is_none() && open.static_macs.is_empty());
    }
}
