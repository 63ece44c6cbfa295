//! The control plane's [`Forwarder`] on top of the data plane's [`Switch`]: every committed
//! change becomes a new switch configuration (the file's static part plus the API's networks and
//! plugged ports), and a port's op-status is whether the switch forwards for it.

use std::sync::Arc;
use std::time::Duration;

use control::forward::{
    DesiredPort, DesiredSecurity, DesiredState, Forwarder, MacEntry, PortStatistics,
};
use control::QosLimit;
use dataplane::policer::PolicerConfig;
use dataplane::security::{IpPrefix, PortSecurity};
use dataplane::{DropReason, Mac, NetworkConfig, PortConfig, PortStats, Switch, SwitchConfig};

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
        merge(&self.base, self.mac_limit, state)
    }
}

/// The file's static configuration plus the API's networks and ports. What would collide with a
/// static network (VLAN, id) or port (device) is left out and logged, so that one bad entry does
/// not make the switch refuse the whole configuration.
fn merge(base: &SwitchConfig, mac_limit: u32, state: &DesiredState) -> SwitchConfig {
    let mut cfg = base.clone();
    let mut skipped = std::collections::HashSet::new();
    for n in &state.networks {
        if cfg
            .networks
            .iter()
            .any(|b| b.vlan == n.vlan || b.id == n.id)
        {
            tracing::warn!(network = %n.id, vlan = n.vlan, "VLAN taken by a static network; not forwarded");
            skipped.insert(n.id.as_str());
            continue;
        }
        cfg.networks.push(NetworkConfig {
            id: n.id.clone(),
            vlan: n.vlan,
            mac_limit,
        });
    }
    for p in &state.ports {
        if skipped.contains(p.network_id.as_str()) {
            continue;
        }
        // The file's static ports keep their devices.
        if cfg.ports.iter().any(|b| b.device == p.device) {
            tracing::warn!(port = %p.id, device = %p.device, "device taken by a static port; not bound");
            continue;
        }
        cfg.ports.push(port_config(p));
    }
    cfg
}

/// The data plane's view of one desired port: an access port of its network, with its MAC as a
/// static entry and its anti-spoofing rules when port security is on.
fn port_config(p: &DesiredPort) -> PortConfig {
    let mut pc = PortConfig::access(&p.id, &p.device, &p.network_id);
    pc.admin_up = p.admin_up;
    pc.policer = p.qos.as_ref().map(policer);
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

/// How much of a rate an unspecified burst holds: 100 ms. The worker stamps a whole batch with
/// one time, so when it is kept off the CPU for a while, frames that arrived over that while meet
/// the bucket at once; a bucket shallower than such a gap (the data plane's own 10 ms default)
/// then delivers less than the rate. 100 ms rides out scheduling gaps on a busy host.
const DEFAULT_BURST_DIVISOR: u64 = 10;

/// The QoS extension's limit as the data plane's token bucket. A rate of 0 is no limit on that
/// dimension; a burst of 0 is [`DEFAULT_BURST_DIVISOR`]'s share of the rate (at least one
/// full-size frame, or one packet).
fn policer(q: &QosLimit) -> PolicerConfig {
    let or_default = |burst: u64, rate: u64, floor: u64| {
        if burst > 0 {
            burst
        } else {
            (rate / DEFAULT_BURST_DIVISOR).max(floor)
        }
    };
    PolicerConfig {
        bps: q.rate_bps,
        burst_bits: or_default(q.burst_bits, q.rate_bps, 1518 * 8),
        pps: q.rate_pps,
        burst_packets: or_default(q.burst_packets, q.rate_pps, 1),
    }
}

/// The port statistics extension's view of a port's counters: the original `portstats` six
/// (errors are malformed frames received and transmits the kernel refused), every drop reason,
/// and the kernel's socket statistics.
fn port_statistics(s: &PortStats) -> PortStatistics {
    let c = &s.counters;
    let drops = |r: DropReason| c.drops[r as usize];
    PortStatistics {
        rx_packets: c.rx_packets,
        rx_bytes: c.rx_bytes,
        tx_packets: c.tx_packets,
        tx_bytes: c.tx_bytes,
        rx_errors: drops(DropReason::Truncated)
            + drops(DropReason::Oversize)
            + drops(DropReason::InvalidSource)
            + s.xdp.rx_invalid_descs,
        tx_errors: drops(DropReason::TxError) + s.xdp.tx_invalid_descs,
        dropped: c.total_drops(),
        floods: c.floods,
        csum_completed: c.csum_completed,
        gso_segmented: c.gso_segmented,
        drops: DropReason::ALL
            .iter()
            .map(|r| (r.name().to_owned(), drops(*r)))
            .collect(),
        kernel: [
            ("rx_dropped", s.xdp.rx_dropped),
            ("rx_invalid_descs", s.xdp.rx_invalid_descs),
            ("tx_invalid_descs", s.xdp.tx_invalid_descs),
            ("rx_ring_full", s.xdp.rx_ring_full),
            ("rx_fill_ring_empty_descs", s.xdp.rx_fill_ring_empty_descs),
            ("tx_ring_empty_descs", s.xdp.tx_ring_empty_descs),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
    }
}

impl Forwarder for SwitchForwarder {
    fn apply(&self, state: &DesiredState) {
        let cfg = self.config_for(state);
        if let Err(e) = self.switch.apply(cfg) {
            tracing::error!("the data plane refused the configuration: {e}");
        }
    }

    fn settle(&self) {
        self.switch.wait_settled(SETTLE);
    }

    fn port_up(&self, port_id: &str) -> bool {
        self.switch
            .port_status(port_id)
            .is_some_and(|s| s.is_forwarding())
    }

    fn port_stats(&self, port_id: &str) -> Option<PortStatistics> {
        self.switch.port_stats(port_id).map(|s| port_statistics(&s))
    }

    fn mac_table(&self, network_id: &str) -> Option<Vec<MacEntry>> {
        let entries = self.switch.mac_table(network_id)?;
        Some(
            entries
                .into_iter()
                .map(|e| MacEntry {
                    mac: e.mac.to_string(),
                    port_id: e.port,
                    age_secs: e.age_secs,
                    is_static: e.is_static,
                })
                .collect(),
        )
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
            ..DesiredPort::default()
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

    #[test]
    fn api_entries_colliding_with_the_file_are_left_out() {
        use control::forward::DesiredNetwork;
        let base = SwitchConfig {
            networks: vec![NetworkConfig {
                id: "static".into(),
                vlan: 1,
                mac_limit: 10,
            }],
            ports: vec![PortConfig::trunk("uplink", "eth9")],
        };
        let net = |id: &str, vlan| DesiredNetwork {
            id: id.into(),
            tenant_id: "t".into(),
            vlan,
        };
        let port = |id: &str, net: &str, dev: &str| DesiredPort {
            id: id.into(),
            network_id: net.into(),
            device: dev.into(),
            admin_up: true,
            ..DesiredPort::default()
        };
        let state = DesiredState {
            networks: vec![net("a", 1), net("b", 2)],
            ports: vec![
                port("pa", "a", "tapa"),
                port("pb", "b", "tapb"),
                port("pc", "b", "eth9"),
            ],
        };
        let cfg = merge(&base, 8192, &state);
        assert!(cfg.validate().is_ok());
        let ids: Vec<&str> = cfg.networks.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["static", "b"]);
        let ports: Vec<&str> = cfg.ports.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ports, ["uplink", "pb"]);
    }
}
