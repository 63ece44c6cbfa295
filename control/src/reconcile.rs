//! The reconciler: turns the stored model into the data plane's desired
//! state, whole or item by item.
//!
//! # Design
//!
//! At startup (and on an explicit resync) the whole [`DesiredState`] is
//! derived from the store. After that, each committed write re-derives only
//! what it touched, as the store's revision log names it ([`Touched`]), inside
//! the write's own transaction: a port's record, its network, its plugged
//! interface and its QoS limit are a handful of index lookups, so a write
//! costs what it changes however large the store grows. The applier in
//! [`crate::Control`] compares the result with what the data plane already
//! has, so a write that changes nothing the data plane sees (a rename) never
//! reaches it.

use std::collections::{BTreeSet, HashMap};

use crate::error::Result;
use crate::forward::{
    DesiredDhcp, DesiredDhcp6, DesiredFilter, DesiredGroup, DesiredNetwork, DesiredPort, DesiredRa,
    DesiredRule, DesiredSecurity, DesiredState,
};
use crate::model::{Interface, PortState};
use crate::neutron::{tap_device, PortRecord, TAP_ID_CHARS};
use crate::qos::QosRule;
use crate::security::SgRule;
use crate::store::{Touched, Tx};

/// What a process's data plane takes from the store.
#[derive(Debug, Clone, Default)]
pub(crate) struct Derive {
    /// A `tap` device binds a v2.0 port only once registered for the port's tenant.
    pub(crate) authorize_tap: bool,
    /// The host this data plane runs on: a port bound to another host (`binding:host_id`) is
    /// not forwarded here. `None`: every port (one host).
    pub(crate) host: Option<String>,
}

impl Derive {
    /// Whether this data plane forwards for `r`, plugged into `plugged`: unbound ports and ports
    /// bound to its host, by `binding:host_id` or else by the host of the interface plugged in.
    fn takes(&self, r: &PortRecord, plugged: Option<&Interface>) -> bool {
        self.on_host(bound_host(r, plugged))
    }

    /// Whether `r` is bound to this data plane's host by name (not merely unbound): its host's
    /// report is what a write on it waits for.
    fn bound_here(&self, r: &PortRecord, plugged: Option<&Interface>) -> bool {
        let bound = bound_host(r, plugged);
        !bound.is_empty() && self.host.as_deref().is_none_or(|h| h == bound)
    }

    /// Whether `host` (empty: any) is this data plane's.
    pub(crate) fn on_host(&self, host: &str) -> bool {
        match &self.host {
            Some(h) => host.is_empty() || host == h,
            None => true,
        }
    }
}

/// The host a port is bound to: its `binding:host_id`, or else the host of the interface plugged
/// into it; empty for none.
fn bound_host<'a>(r: &'a PortRecord, plugged: Option<&'a Interface>) -> &'a str {
    match (r.attrs.host_id.as_str(), plugged) {
        ("", Some(i)) => i.host.as_str(),
        (h, _) => h,
    }
}

/// The desired form of the touched items: `None` where an item is gone or
/// has nothing to forward.
#[derive(Debug, Default)]
pub(crate) struct Delta {
    pub(crate) networks: Vec<(String, Option<DesiredNetwork>)>,
    pub(crate) ports: Vec<(String, Option<DesiredPort>)>,
    pub(crate) groups: Vec<(String, Option<DesiredGroup>)>,
    /// Host devices registered (`true`: on this host or on any, to keep prepared so that a port
    /// opens on them at once) or no longer registered here (`false`).
    pub(crate) devices: Vec<(String, bool)>,
    /// Whether it touched a port this data plane forwards for, or one bound to its host whose
    /// device is not there yet: a write on such a port waits for this host's report.
    pub(crate) takes_port: bool,
}

/// Derives the whole desired forwarding state from the store.
pub(crate) fn desired_state(tx: &dyn Tx, derive: &Derive) -> Result<DesiredState> {
    let records = tx.network_records(None)?;
    let nets: HashMap<String, (bool, String)> = records
        .iter()
        .map(|r| {
            let info = (r.attrs.admin_state_up, r.network.tenant_id.clone());
            (r.network.id.clone(), info)
        })
        .collect();
    let mut policy_rules: HashMap<String, Vec<QosRule>> = HashMap::new();
    for rule in tx.qos_rules(None)? {
        policy_rules
            .entry(rule.policy_id.clone())
            .or_default()
            .push(rule);
    }
    let networks = records
        .into_iter()
        .map(|r| DesiredNetwork {
            id: r.network.id,
            tenant_id: r.network.tenant_id,
            vlan: r.network.vlan,
            physnet: r.network.physnet,
        })
        .collect();
    let plugged: HashMap<String, Interface> = tx
        .plugged_ports()?
        .into_iter()
        .map(|(p, iface)| (p.id, iface))
        .collect();
    let mut rules = GroupRules::new(tx);
    let mut ports = Vec::new();
    for r in tx.port_records(None)? {
        let (up, tenant) = nets
            .get(&r.port.network_id)
            .map_or((true, None), |(u, t)| (*u, Some(t.as_str())));
        let device = plugged.get(&r.port.id).cloned();
        let policy = r.effective_qos_policy().map(str::to_owned);
        if let Some(mut p) = port_for(tx, r, device, up, tenant, derive, &mut rules)? {
            let none = Vec::new();
            let policy = policy.and_then(|id| policy_rules.get(&id)).unwrap_or(&none);
            apply_policy(&mut p, policy);
            ports.push(p);
        }
    }
    let mut groups = Vec::new();
    for g in tx.security_groups(None)? {
        groups.extend(desired_group(tx, &g.id)?);
    }
    Ok(DesiredState {
        networks,
        ports,
        groups,
    })
}

/// The devices registered on this data plane's host (or on none), to keep prepared.
pub(crate) fn devices_here(tx: &dyn Tx, derive: &Derive) -> Result<Vec<String>> {
    Ok(tx
        .all_interfaces()?
        .into_iter()
        .filter(|i| derive.on_host(&i.host))
        .map(|i| i.device)
        .collect())
}

/// The ids a write's touches stand for: what it touched directly, and the ports behind a
/// network's ports, an interface, a registered `tap` device or a security group.
#[derive(Default)]
struct Touches {
    nets: BTreeSet<String>,
    ports: BTreeSet<String>,
    groups: BTreeSet<String>,
    devices: BTreeSet<String>,
}

fn expand(tx: &dyn Tx, touched: &[Touched], derive: &Derive) -> Result<Touches> {
    let mut out = Touches::default();
    for t in touched {
        match t {
            Touched::Network(id) => {
                out.nets.insert(id.clone());
            }
            Touched::NetworkPorts(id) => {
                out.ports.extend(tx.ports(id)?.into_iter().map(|p| p.id));
            }
            Touched::Port(id) => {
                out.ports.insert(id.clone());
            }
            Touched::Interface(id) => {
                if let Some(p) = tx.port_by_attachment(id)? {
                    out.ports.insert(p.id);
                }
            }
            Touched::Device(device) => {
                // A registered `tap` device authorizes (or no longer does) the port it names.
                if let Some(prefix) = device.strip_prefix("tap") {
                    if derive.authorize_tap && prefix.len() == TAP_ID_CHARS {
                        out.ports.extend(tx.port_ids_with_prefix(prefix)?);
                    }
                }
                out.devices.insert(device.clone());
            }
            Touched::SecurityGroup(id) => {
                out.ports.extend(tx.security_group_ports(id)?);
            }
            Touched::GroupMembers(id) => {
                out.groups.insert(id.clone());
            }
        }
    }
    Ok(out)
}

/// The ports a write touched (some may be gone), without deriving their desired form: what an
/// API server with no data plane needs to wait for their hosts' reports.
pub(crate) fn touched_ports(
    tx: &dyn Tx,
    touched: &[Touched],
    derive: &Derive,
) -> Result<Vec<String>> {
    Ok(expand(tx, touched, derive)?.ports.into_iter().collect())
}

/// Derives the desired form of what a write touched.
pub(crate) fn delta(tx: &dyn Tx, touched: &[Touched], derive: &Derive) -> Result<Delta> {
    let Touches {
        nets,
        ports,
        groups,
        devices,
    } = expand(tx, touched, derive)?;
    let mut out = Delta::default();
    for id in nets {
        let n = tx
            .network_records(Some(&id))?
            .pop()
            .map(|r| DesiredNetwork {
                id: r.network.id,
                tenant_id: r.network.tenant_id,
                vlan: r.network.vlan,
                physnet: r.network.physnet,
            });
        out.networks.push((id, n));
    }
    let mut rules = GroupRules::new(tx);
    for id in ports {
        let (p, taken) = desired_port(tx, &id, derive, &mut rules)?;
        out.takes_port |= taken;
        out.ports.push((id, p));
    }
    for id in groups {
        let g = desired_group(tx, &id)?;
        out.groups.push((id, g));
    }
    for device in devices {
        let here = tx
            .interfaces_by_device(&device)?
            .iter()
            .any(|i| derive.on_host(&i.host));
        out.devices.push((device, here));
    }
    Ok(out)
}

/// A security group's address set; `None` when the group is gone.
fn desired_group(tx: &dyn Tx, id: &str) -> Result<Option<DesiredGroup>> {
    if tx.security_groups(Some(id))?.is_empty() {
        return Ok(None);
    }
    let mut addresses = tx.security_group_addresses(id)?;
    addresses.sort_unstable();
    addresses.dedup();
    Ok(Some(DesiredGroup {
        id: id.to_owned(),
        addresses,
    }))
}

/// The data plane's rules of security groups, read once per group per derivation.
struct GroupRules<'a> {
    tx: &'a dyn Tx,
    cache: HashMap<String, Vec<DesiredRule>>,
}

impl<'a> GroupRules<'a> {
    fn new(tx: &'a dyn Tx) -> Self {
        GroupRules {
            tx,
            cache: HashMap::new(),
        }
    }

    /// The rules of a port's groups, when port security is on.
    fn filter_of(&mut self, r: &PortRecord) -> Result<Option<DesiredFilter>> {
        if !r.attrs.port_security_enabled {
            return Ok(None);
        }
        let mut rules = Vec::new();
        for g in &r.attrs.security_groups {
            if !self.cache.contains_key(g) {
                let stateful = self
                    .tx
                    .security_groups(Some(g))?
                    .first()
                    .is_none_or(|g| g.stateful);
                let of_group = self.tx.sg_rules(Some(g), None)?;
                let desired = of_group.iter().map(|r| desired_rule(r, stateful)).collect();
                self.cache.insert(g.clone(), desired);
            }
            rules.extend(self.cache.get(g).into_iter().flatten().cloned());
        }
        rules.sort_unstable();
        rules.dedup();
        Ok(Some(DesiredFilter { rules }))
    }
}

/// A stored rule as the data plane matches it: protocols by number (ICMP of an IPv6 rule is
/// ICMPv6), the prefix normalized.
fn desired_rule(r: &SgRule, stateful: bool) -> DesiredRule {
    let ipv6 = r.ethertype == "IPv6";
    let protocol = match r.protocol_number() {
        Some(1) if ipv6 => Some(58),
        // `0` (`ip`, `hopopt`) is any protocol to Neutron's firewalls.
        Some(0) => None,
        p => p,
    };
    let port = |p: Option<u32>| p.and_then(|p| u16::try_from(p).ok());
    DesiredRule {
        ingress: r.direction == "ingress",
        ipv6,
        protocol,
        port_min: port(r.port_range_min),
        port_max: port(r.port_range_max),
        remote_prefix: r.normalized_cidr(),
        remote_group: r.remote_group_id.clone(),
        stateful,
    }
}

/// One port's desired form, from a few index lookups.
/// A port's desired form (`None` where it is gone or has nothing to forward here), and whether
/// this data plane forwards for it or it is bound to this host, with a device or not (see
/// [`Delta::takes_port`]).
fn desired_port(
    tx: &dyn Tx,
    port_id: &str,
    derive: &Derive,
    rules: &mut GroupRules<'_>,
) -> Result<(Option<DesiredPort>, bool)> {
    let Some(r) = tx.port_records(Some(port_id))?.pop() else {
        return Ok((None, false));
    };
    let net = tx.network_records(Some(&r.port.network_id))?.pop();
    let (up, tenant) = net.as_ref().map_or((true, None), |n| {
        (n.attrs.admin_state_up, Some(n.network.tenant_id.as_str()))
    });
    let device = match &r.port.attachment {
        Some(iface) => tx.interface(iface)?,
        None => None,
    };
    let policy = r.effective_qos_policy().map(str::to_owned);
    let bound_here = derive.bound_here(&r, device.as_ref());
    let Some(mut p) = port_for(tx, r, device, up, tenant, derive, rules)? else {
        return Ok((None, bound_here));
    };
    let policy = match policy {
        Some(id) => tx.qos_rules(Some(&id))?,
        None => Vec::new(),
    };
    apply_policy(&mut p, &policy);
    Ok((Some(p), true))
}

/// Sets a port's limits from its QoS policy's rules.
fn apply_policy(p: &mut DesiredPort, rules: &[QosRule]) {
    (p.qos, p.qos_ingress) = crate::qos::policy_limits(rules);
}

/// A port record as the data plane needs it, given its plugged device and its network's admin
/// state and tenant; `None` when it has no device to forward on, or is bound to another host.
/// A plugged attachment's device wins over the `tap` convention.
fn port_for(
    tx: &dyn Tx,
    r: PortRecord,
    plugged: Option<Interface>,
    net_up: bool,
    net_tenant: Option<&str>,
    derive: &Derive,
    rules: &mut GroupRules<'_>,
) -> Result<Option<DesiredPort>> {
    if !derive.takes(&r, plugged.as_ref()) {
        return Ok(None);
    }
    let device = match plugged {
        Some(i) => i.device,
        None if r.attrs.bind_tap => {
            let d = tap_device(&r.port.id);
            if derive.authorize_tap {
                // Only a device the hypervisor side registered for the port's tenant, on this
                // host (or on any).
                let registered = tx
                    .interfaces_by_device(&d)?
                    .into_iter()
                    .any(|i| derive.on_host(&i.host) && Some(i.tenant_id.as_str()) == net_tenant);
                if !registered {
                    return Ok(None);
                }
            }
            d
        }
        None => return Ok(None),
    };
    let admin_up = r.port.state == PortState::Active && net_up;
    let dhcp = dhcp_of(tx, &r)?;
    let dhcp6 = dhcp6_of(tx, &r)?;
    let ra = ra_of(tx, &r)?;
    let filter = rules.filter_of(&r)?;
    let mut p = desired_port_of(r, device, admin_up);
    p.dhcp = dhcp;
    p.dhcp6 = dhcp6;
    p.ra = ra;
    p.filter = filter;
    Ok(Some(p))
}

/// The DHCP answers of a port: its first fixed IPv4 address on a subnet with DHCP enabled.
fn dhcp_of(tx: &dyn Tx, r: &PortRecord) -> Result<Option<DesiredDhcp>> {
    for f in &r.attrs.fixed_ips {
        if !f
            .ip_address
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_ipv4())
        {
            continue;
        }
        let Some(s) = tx.subnets(Some(&f.subnet_id), None)?.pop() else {
            continue;
        };
        if !s.enable_dhcp {
            continue;
        }
        let mtu = tx
            .network_records(Some(&r.port.network_id))?
            .pop()
            .map_or(crate::neutron::DEFAULT_MTU, |n| n.attrs.mtu);
        return Ok(Some(DesiredDhcp {
            ip: f.ip_address.clone(),
            cidr: s.cidr,
            gateway: s.gateway_ip,
            dns: s.dns_nameservers,
            routes: s.host_routes,
            mtu,
        }));
    }
    Ok(None)
}

/// The router advertisement of a port, from its subnets whose `ipv6_ra_mode` is set (and DHCP
/// on, as Neutron requires for any IPv6 mode): a `slaac` or `dhcpv6-stateless` /64 where the
/// port holds the EUI-64 address of its MAC (so that the address the VM forms is the one it
/// holds: any other would be dropped by its port security), a `dhcpv6-stateful` prefix of any
/// length on-link only, with the managed flag. Either DHCPv6 mode sets the other-configuration
/// flag.
fn ra_of(tx: &dyn Tx, r: &PortRecord) -> Result<Option<DesiredRa>> {
    use crate::ipam::{self, Cidr, Family};
    let mut ra = DesiredRa::default();
    for f in &r.attrs.fixed_ips {
        let Some(s) = tx.subnets(Some(&f.subnet_id), None)?.pop() else {
            continue;
        };
        let (Some(mode), true) = (s.ipv6_ra_mode.as_deref(), s.enable_dhcp) else {
            continue;
        };
        let Some(cidr) = Cidr::parse(&s.cidr).filter(|c| c.family == Family::V6) else {
            continue;
        };
        let prefix = std::net::Ipv6Addr::from(cidr.network);
        if ra.prefixes.contains(&prefix) || ra.on_link.iter().any(|(p, _)| *p == prefix) {
            continue;
        }
        match mode {
            "slaac" | "dhcpv6-stateless" => {
                if cidr.len != 64 {
                    continue;
                }
                let held = ipam::parse_ip(&f.ip_address).map(ipam::to_u128);
                if held.is_none() || held != ipam::eui64(&cidr, &r.attrs.mac_address) {
                    continue;
                }
                ra.prefixes.push(prefix);
                ra.other |= mode == "dhcpv6-stateless";
            }
            "dhcpv6-stateful" => {
                ra.on_link.push((prefix, cidr.len));
                ra.managed = true;
                ra.other = true;
            }
            _ => continue,
        }
        add_dns(&mut ra.dns, &s);
    }
    if ra.prefixes.is_empty() && ra.on_link.is_empty() {
        return Ok(None);
    }
    ra.mtu = tx
        .network_records(Some(&r.port.network_id))?
        .pop()
        .map_or(crate::neutron::DEFAULT_MTU, |n| n.attrs.mtu);
    Ok(Some(ra))
}

/// The DHCPv6 answers of a port: its addresses on DHCP-enabled subnets whose
/// `ipv6_address_mode` is `dhcpv6-stateful`, and the DNS servers of those and of its
/// `dhcpv6-stateless` ones (whose addresses the VM forms itself).
fn dhcp6_of(tx: &dyn Tx, r: &PortRecord) -> Result<Option<DesiredDhcp6>> {
    let mut out: Option<DesiredDhcp6> = None;
    for f in &r.attrs.fixed_ips {
        let Some(s) = tx.subnets(Some(&f.subnet_id), None)?.pop() else {
            continue;
        };
        let stateful = match (s.ipv6_address_mode.as_deref(), s.enable_dhcp) {
            (Some("dhcpv6-stateful"), true) => true,
            (Some("dhcpv6-stateless"), true) => false,
            _ => continue,
        };
        let d = out.get_or_insert_with(DesiredDhcp6::default);
        if stateful {
            if let Ok(std::net::IpAddr::V6(a)) = f.ip_address.parse() {
                d.addresses.push(a);
            }
        }
        add_dns(&mut d.dns, &s);
    }
    Ok(out)
}

/// Adds a subnet's IPv6 DNS servers to `dns`, each once.
fn add_dns(dns: &mut Vec<std::net::Ipv6Addr>, s: &crate::neutron::Subnet) {
    for d in s.dns_nameservers.iter().filter_map(|d| d.parse().ok()) {
        if !dns.contains(&d) {
            dns.push(d);
        }
    }
}

fn desired_port_of(r: PortRecord, device: String, admin_up: bool) -> DesiredPort {
    let fixed_ips: Vec<std::net::IpAddr> = r
        .attrs
        .fixed_ips
        .iter()
        .filter_map(|f| f.ip_address.parse().ok())
        .collect();
    let security = r.attrs.port_security_enabled.then(|| DesiredSecurity {
        mac: r.attrs.mac_address.clone(),
        fixed_ips: fixed_ips.clone(),
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
        fixed_ips,
        security,
        qos: None,
        qos_ingress: None,
        dhcp: None,
        dhcp6: None,
        ra: None,
        filter: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(ethertype: &str, protocol: Option<&str>) -> SgRule {
        SgRule {
            id: "r".into(),
            security_group_id: "g".into(),
            tenant_id: "t".into(),
            direction: "ingress".into(),
            ethertype: ethertype.into(),
            protocol: protocol.map(str::to_owned),
            port_range_min: Some(8),
            port_range_max: None,
            remote_ip_prefix: Some("198.18.0.5/15".into()),
            remote_group_id: None,
            description: String::new(),
            created_at: String::new(),
            updated_at: String::new(),
            revision_number: 0,
            in_default_group: false,
        }
    }

    #[test]
    fn rules_reach_the_switch_with_neutrons_protocol_meanings() {
        let r = desired_rule(&rule("IPv6", Some("icmp")), true);
        assert_eq!((r.protocol, r.ipv6, r.ingress), (Some(58), true, true));
        assert_eq!(r.port_min, Some(8));
        assert_eq!(r.remote_prefix.as_deref(), Some("198.18.0.0/15"));
        assert_eq!(
            desired_rule(&rule("IPv4", Some("icmp")), true).protocol,
            Some(1)
        );
        for any in ["0", "ip", "hopopt"] {
            assert_eq!(
                desired_rule(&rule("IPv4", Some(any)), true).protocol,
                None,
                "{any}"
            );
        }
        assert_eq!(
            desired_rule(&rule("IPv4", Some("any")), false).protocol,
            None
        );
        assert_eq!(
            desired_rule(&rule("IPv4", Some("tcp")), false).protocol,
            Some(6)
        );
    }
}
