//! The control plane's [`Forwarder`] on top of the data plane's [`Switch`]: the file's static
//! configuration is applied once at startup, and every change set of the API's networks and ports
//! becomes a [`ConfigDelta`] of the switch (a full change set replaces the API's part whole). The
//! switch accepts or refuses each item on its own; a port's op-status is whether it forwards.

use std::sync::Arc;
use std::time::Duration;

use control::forward::{
    Change, Changes, DesiredFilter, DesiredGroup, DesiredNetwork, DesiredPort, DesiredSecurity,
    Forwarder, MacEntry, PortStatistics, TrackedConnection,
};
use control::QosLimit;
use dataplane::acl::{AddrSet, PortFilter, Remote, Rule};
use dataplane::policer::PolicerConfig;
use dataplane::security::{IpPrefix, PortSecurity};
use dataplane::{
    ConfigDelta, DropReason, Mac, NetworkConfig, PortConfig, PortStats, Switch, SwitchConfig,
};

/// How long a write that set ports waits for the switch to open them before answering.
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

    fn network_config(&self, n: &DesiredNetwork) -> NetworkConfig {
        NetworkConfig {
            id: n.id.clone(),
            vlan: n.vlan,
            mac_limit: self.mac_limit,
            physnet: n.physnet.clone(),
        }
    }
}

/// A change set as the switch's delta: removals by id, the rest as configurations.
fn delta(changes: &Changes, network: impl Fn(&DesiredNetwork) -> NetworkConfig) -> ConfigDelta {
    let mut d = ConfigDelta::default();
    for c in &changes.networks {
        match c {
            Change::Set(n) => d.networks.push(network(n)),
            Change::Removed(id) => d.removed_networks.push(id.clone()),
        }
    }
    for c in &changes.ports {
        match c {
            Change::Set(p) => d.ports.push(port_config(p)),
            Change::Removed(id) => d.removed_ports.push(id.clone()),
        }
    }
    for c in &changes.groups {
        match c {
            Change::Set(g) => d
                .address_sets
                .push((g.id.clone(), Arc::new(address_set(g)))),
            Change::Removed(id) => d.removed_address_sets.push(id.clone()),
        }
    }
    d
}

/// A security group's members' addresses as an address set (an address that does not parse,
/// which the API never stores, is left out).
fn address_set(g: &DesiredGroup) -> AddrSet {
    AddrSet::new(g.addresses.iter().filter_map(|a| IpPrefix::parse(a)))
}

/// A port's security group rules as the switch matches them. A rule whose prefix or ICMP type
/// does not parse (which the API never stores) is left out: it allows nothing.
fn port_filter(f: &DesiredFilter) -> PortFilter {
    let (mut ingress, mut egress) = (Vec::new(), Vec::new());
    for r in &f.rules {
        let remote = match (&r.remote_group, &r.remote_prefix) {
            (Some(g), _) => Remote::Group(Arc::from(g.as_str())),
            (None, Some(p)) => match IpPrefix::parse(p) {
                Some(p) => Remote::Prefix(p),
                None => continue,
            },
            (None, None) => Remote::Any,
        };
        let icmp = matches!((r.protocol, r.ipv6), (Some(1), false) | (Some(58), true));
        let (mut ports, mut icmp_type, mut icmp_code) = (None, None, None);
        if icmp {
            let byte = |v: Option<u16>| v.map(u8::try_from).transpose();
            match (byte(r.port_min), byte(r.port_max)) {
                (Ok(t), Ok(c)) => (icmp_type, icmp_code) = (t, c),
                _ => continue,
            }
        } else if r.protocol.is_some_and(dataplane::flow::has_ports) {
            ports = match (r.port_min, r.port_max) {
                (None, None) => None,
                (Some(lo), None) => Some((lo, lo)),
                (lo, Some(hi)) => Some((lo.unwrap_or(0), hi)),
            };
        }
        let rule = Rule {
            v6: r.ipv6,
            proto: r.protocol,
            ports,
            icmp_type,
            icmp_code,
            remote,
            stateful: r.stateful,
        };
        if r.ingress {
            ingress.push(rule);
        } else {
            egress.push(rule);
        }
    }
    PortFilter::new(ingress, egress)
}

/// The data plane's view of one desired port: an access port of its network, with its MAC as a
/// static entry and its anti-spoofing rules when port security is on.
fn port_config(p: &DesiredPort) -> PortConfig {
    let mut pc = PortConfig::access(&p.id, &p.device, &p.network_id);
    pc.admin_up = p.admin_up;
    pc.policer = p.qos.as_ref().map(policer);
    pc.policer_in = p.qos_ingress.as_ref().map(policer);
    if let Some(sec) = &p.security {
        if let Some(mac) = Mac::parse(&p.mac) {
            pc.static_macs.push(mac);
        }
        pc.security = Some(port_security(sec));
    }
    pc.dhcp = p
        .dhcp
        .as_ref()
        .and_then(|d| dhcp_config(d, &p.mac))
        .map(Arc::new);
    pc.dhcp6 = p.dhcp6.as_ref().and_then(|d| {
        Some(Arc::new(dataplane::dhcp6::Dhcp6Config {
            client_mac: Mac::parse(&p.mac)?,
            addresses: d.addresses.clone(),
            dns: d.dns.clone(),
            lease_secs: dataplane::dhcp::DEFAULT_LEASE_SECS,
            server_mac: dataplane::dhcp::SERVER_MAC,
        }))
    });
    pc.ra = p.ra.as_ref().and_then(|ra| {
        Some(Arc::new(dataplane::ra::RaConfig {
            client_mac: Mac::parse(&p.mac)?,
            prefixes: ra.prefixes.clone(),
            on_link: ra.on_link.clone(),
            managed: ra.managed,
            other: ra.other,
            mtu: ra.mtu,
            dns: ra.dns.clone(),
            router_mac: dataplane::dhcp::SERVER_MAC,
        }))
    });
    pc.filter = p.filter.as_ref().map(|f| Arc::new(port_filter(f)));
    // The switch answers ARP for the port's fixed IPv4 addresses (as OVN's ARP responder does),
    // where port security guarantees the answer: on, and no address pair (a pair may put the
    // port's address behind another MAC).
    let certain = p
        .security
        .as_ref()
        .is_some_and(|s| s.allowed_pairs.is_empty());
    if let Some(mac) = Mac::parse(&p.mac).filter(|_| certain) {
        pc.arp = p
            .fixed_ips
            .iter()
            .filter_map(|ip| match ip {
                std::net::IpAddr::V4(v4) => Some((mac, *v4)),
                std::net::IpAddr::V6(_) => None,
            })
            .collect();
    }
    pc
}

/// The DHCP responder's answers for a port (none when an address does not parse, which the API
/// never stores). The server identifier is the subnet's gateway, else its first address.
fn dhcp_config(d: &control::DesiredDhcp, mac: &str) -> Option<dataplane::dhcp::DhcpConfig> {
    use std::net::Ipv4Addr;
    let (net, len) = d.cidr.split_once('/')?;
    let net: Ipv4Addr = net.parse().ok()?;
    let prefix_len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    let router = d.gateway.as_deref().and_then(|g| g.parse().ok());
    let routes = d
        .routes
        .iter()
        .filter_map(|(dst, via)| {
            let (a, l) = dst.split_once('/')?;
            let l: u8 = l.parse().ok().filter(|l| *l <= 32)?;
            Some((a.parse().ok()?, l, via.parse().ok()?))
        })
        .collect();
    let ip: Ipv4Addr = d.ip.parse().ok()?;
    // The server's address on the subnet: its gateway, else its last usable address (pools
    // start at the first), never the client's own.
    let size = 1u32.checked_shl(32 - u32::from(prefix_len)).unwrap_or(0);
    let last = u32::from(net).wrapping_add(size.saturating_sub(2));
    let first = u32::from(net).wrapping_add(1);
    let server_ip = router
        .into_iter()
        .chain([Ipv4Addr::from(last), Ipv4Addr::from(first)])
        .find(|s| *s != ip)?;
    Some(dataplane::dhcp::DhcpConfig {
        client_mac: Mac::parse(mac)?,
        ip,
        prefix_len,
        router,
        dns: d.dns.iter().filter_map(|a| a.parse().ok()).collect(),
        routes,
        mtu: u16::try_from(d.mtu).unwrap_or(u16::MAX),
        lease_secs: dataplane::dhcp::DEFAULT_LEASE_SECS,
        server_ip,
        server_mac: dataplane::dhcp::SERVER_MAC,
    })
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
fn port_statistics(s: &PortStats, tx_stalled: bool) -> PortStatistics {
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
            + drops(DropReason::BadChecksum)
            + s.xdp.rx_invalid_descs,
        tx_errors: drops(DropReason::TxError) + s.xdp.tx_invalid_descs,
        dropped: c.total_drops(),
        floods: c.floods,
        csum_completed: c.csum_completed,
        gso_segmented: c.gso_segmented,
        gso_whole: c.gso_whole,
        coalesced: c.coalesced,
        dhcp_replies: c.dhcp_replies,
        arp_replies: c.arp_replies,
        ra_replies: c.ra_replies,
        xdp_forwarded: c.xdp_forwarded,
        tx_stalls: c.tx_stalls,
        tx_stalled_ms: c.tx_stalled_ns / 1_000_000,
        tx_stalled,
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
    fn apply(&self, changes: &Changes) {
        let d = delta(changes, |n| self.network_config(n));
        if changes.full {
            // The file's static part first: it keeps its VLANs and devices when the API's items
            // collide with them (those are refused and reported).
            let mut cfg = self.base.clone();
            cfg.networks.extend(d.networks);
            cfg.ports.extend(d.ports);
            cfg.address_sets = Arc::new(
                d.address_sets
                    .into_iter()
                    .map(|(id, set)| (Arc::from(id), set))
                    .collect(),
            );
            self.switch.sync(cfg);
        } else {
            self.switch.update(d);
        }
    }

    fn settle(&self, ports: &[String]) {
        self.switch.wait_ports_settled(ports, SETTLE);
    }

    fn prepare_devices(&self, devices: &[String]) {
        self.switch.prepare_devices(devices);
    }

    fn release_devices(&self, devices: &[String]) {
        self.switch.release_devices(devices);
    }

    fn keep_devices(&self, devices: &[String]) {
        self.switch.keep_devices(devices);
    }

    fn port_up(&self, port_id: &str) -> bool {
        self.switch.is_forwarding(port_id)
    }

    fn port_error(&self, port_id: &str) -> Option<String> {
        self.switch.refusal(port_id)
    }

    fn port_stats(&self, port_id: &str) -> Option<PortStatistics> {
        let s = self.switch.port_stats(port_id)?;
        Some(port_statistics(&s, self.switch.tx_stalled(port_id)))
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

    fn connections(&self, port_id: &str) -> Option<Vec<TrackedConnection>> {
        let conns = self.switch.connections(port_id)?;
        Some(
            conns
                .into_iter()
                .map(|c| TrackedConnection {
                    protocol: c.proto,
                    source: c.src,
                    destination: c.dst,
                    ports: c.ports,
                    icmp: c.icmp,
                    ingress: c.dir == dataplane::acl::Direction::Ingress,
                    state: c.state.to_owned(),
                    cut: c.cut,
                    idle_secs: c.idle_secs,
                    expires_secs: c.expires_secs,
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dhcp_server_address_is_on_the_subnet_and_never_the_clients() {
        let d = control::DesiredDhcp {
            ip: "198.18.0.1".into(),
            cidr: "198.18.0.0/24".into(),
            gateway: None,
            dns: vec!["198.18.0.53".into()],
            routes: vec![("198.19.0.0/16".into(), "198.18.0.254".into())],
            mtu: 1450,
        };
        let c = dhcp_config(&d, "fa:16:3e:00:00:01").unwrap();
        assert_eq!(
            c.server_ip.to_string(),
            "198.18.0.254",
            "the last usable address"
        );
        assert_eq!((c.prefix_len, c.mtu, c.routes.len()), (24, 1450, 1));
        let with_gw = control::DesiredDhcp {
            gateway: Some("198.18.0.1".into()),
            ip: "198.18.0.9".into(),
            ..d.clone()
        };
        assert_eq!(
            dhcp_config(&with_gw, "fa:16:3e:00:00:01")
                .unwrap()
                .server_ip
                .to_string(),
            "198.18.0.1"
        );
        let client_at_last = control::DesiredDhcp {
            ip: "198.18.0.254".into(),
            ..d
        };
        assert_eq!(
            dhcp_config(&client_at_last, "fa:16:3e:00:00:01")
                .unwrap()
                .server_ip
                .to_string(),
            "198.18.0.1"
        );
    }

    #[test]
    fn arp_answers_only_where_port_security_guarantees_them() {
        let v4: std::net::IpAddr = "198.18.0.2".parse().unwrap();
        let v6: std::net::IpAddr = "2001:db8::2".parse().unwrap();
        let secured = DesiredPort {
            id: "p".into(),
            network_id: "n".into(),
            device: "tapabc".into(),
            mac: "fa:16:3e:00:00:01".into(),
            fixed_ips: vec![v4, v6],
            security: Some(DesiredSecurity {
                mac: "fa:16:3e:00:00:01".into(),
                fixed_ips: vec![v4, v6],
                allowed_pairs: vec![],
            }),
            ..DesiredPort::default()
        };
        let mac = Mac([0xfa, 0x16, 0x3e, 0, 0, 1]);
        assert_eq!(
            port_config(&secured).arp,
            vec![(mac, "198.18.0.2".parse().unwrap())],
            "the IPv4 addresses only"
        );
        let open = DesiredPort {
            security: None,
            ..secured.clone()
        };
        assert!(port_config(&open).arp.is_empty(), "port security off");
        let mut paired = secured;
        if let Some(s) = paired.security.as_mut() {
            s.allowed_pairs = vec![("fa:16:3e:00:00:09".into(), "198.18.0.2".into())];
        }
        assert!(port_config(&paired).arp.is_empty(), "an address pair");
    }

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
    fn change_sets_become_switch_deltas() {
        let changes = Changes {
            revision: 3,
            full: false,
            networks: vec![
                Change::Set(DesiredNetwork {
                    id: "n".into(),
                    tenant_id: "t".into(),
                    vlan: 7,
                    physnet: Some("physnet1".into()),
                }),
                Change::Removed("old".into()),
            ],
            ports: vec![
                Change::Set(DesiredPort {
                    id: "p".into(),
                    network_id: "n".into(),
                    device: "tapp".into(),
                    admin_up: true,
                    ..DesiredPort::default()
                }),
                Change::Removed("q".into()),
            ],
            groups: vec![
                Change::Set(DesiredGroup {
                    id: "g".into(),
                    addresses: vec!["198.18.0.2".into(), "198.18.1.0/24".into()],
                }),
                Change::Removed("h".into()),
            ],
        };
        let d = delta(&changes, |n| NetworkConfig {
            id: n.id.clone(),
            vlan: n.vlan,
            mac_limit: 5,
            physnet: Some(dataplane::DEFAULT_PHYSNET.into()),
        });
        assert_eq!(d.networks[0].vlan, 7);
        assert_eq!(d.networks[0].mac_limit, 5);
        assert_eq!(d.removed_networks, ["old"]);
        assert_eq!(d.ports[0].device, "tapp");
        assert_eq!(d.removed_ports, ["q"]);
        assert_eq!(d.address_sets[0].0, "g");
        assert_eq!(d.address_sets[0].1.len(), 2);
        assert_eq!(d.removed_address_sets, ["h"]);
    }

    #[test]
    fn security_group_rules_map_ports_icmp_and_remotes() {
        use control::DesiredRule;
        let rule = |protocol, port_min, port_max, ipv6| DesiredRule {
            ingress: true,
            ipv6,
            protocol,
            port_min,
            port_max,
            remote_prefix: None,
            remote_group: None,
            stateful: true,
        };
        let f = DesiredFilter {
            rules: vec![
                rule(Some(6), Some(22), None, false),
                rule(Some(17), Some(1000), Some(2000), false),
                rule(Some(1), Some(8), None, false),
                rule(Some(58), Some(128), Some(0), true),
                rule(Some(47), Some(1), Some(2), false),
                DesiredRule {
                    ingress: false,
                    remote_group: Some("g".into()),
                    ..rule(None, None, None, false)
                },
                DesiredRule {
                    remote_prefix: Some("198.18.0.0/15".into()),
                    ..rule(None, None, None, false)
                },
                DesiredRule {
                    remote_prefix: Some("bad".into()),
                    ..rule(None, None, None, false)
                },
                rule(Some(1), Some(300), None, false),
            ],
        };
        let pf = port_filter(&f);
        let ingress = pf.rules(dataplane::acl::Direction::Ingress);
        let egress = pf.rules(dataplane::acl::Direction::Egress);
        assert_eq!(
            ingress.len(),
            6,
            "the unparsable prefix and ICMP type are left out"
        );
        assert_eq!(ingress[0].ports, Some((22, 22)));
        assert_eq!(ingress[1].ports, Some((1000, 2000)));
        assert_eq!(
            (ingress[2].icmp_type, ingress[2].icmp_code),
            (Some(8), None)
        );
        assert_eq!(
            (ingress[3].icmp_type, ingress[3].icmp_code),
            (Some(128), Some(0))
        );
        assert_eq!(ingress[4].ports, None, "GRE has no ports");
        assert!(matches!(ingress[5].remote, Remote::Prefix(_)));
        assert_eq!(egress[0].remote, Remote::Group(Arc::from("g")));
    }
}
