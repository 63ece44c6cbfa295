//! The Neutron v2.0 operations of [`Control`]: networks, ports and subnets
//! seen as Neutron sees them, on the same rows as Quantum's.
//!
//! Visibility follows Neutron's policy for a project and for an admin: a
//! caller sees its own project's resources (every project's when admin) and
//! the shared networks (with their subnets); it changes and deletes only
//! what it owns. What is not visible is `NotFound`, never `Forbidden`.
//!
//! Bulk creates are one transaction: either every item is created or none.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use super::security::port_groups;
use super::{check_quota, new_id, Control};
use crate::agent::ReportedStatus;
use crate::error::{ControlError, Result};
use crate::ipam::{self, Cidr, Family, Pool};
use crate::mac;
use crate::model::{self, Network, NetworkType, Port, PortState};
use crate::neutron::{
    now_iso8601, AddressPair, FixedIp, FixedIpRequest, GatewayRequest, NetworkAttrs, NetworkRecord,
    NetworkSpec, NetworkUpdate, PairRequest, PortAttrs, PortRecord, PortSpec, PortStatusView,
    PortUpdate, ProviderSpec, Scope, Subnet, SubnetSpec, SubnetUpdate,
};
use crate::quota::Resource;
use crate::store::{NetworkQuery, PortQuery, SubnetQuery, Tx};

impl Control {
    // ---- networks -------------------------------------------------------

    /// The networks the caller sees, in creation order.
    pub fn v2_networks(&self, scope: &Scope) -> Result<Vec<NetworkRecord>> {
        let all = self.read(|tx| tx.network_records(None))?;
        Ok(all.into_iter().filter(|n| net_visible(scope, n)).collect())
    }

    /// A network MTU above the physical network's is refused (Neutron's message).
    fn check_mtu(&self, mtu: Option<u32>) -> Result<()> {
        match mtu {
            Some(m) if m > self.options.physnet_mtu => Err(ControlError::InvalidInput {
                reason: format!(
                    "Requested MTU is too big, maximum is {}.",
                    self.options.physnet_mtu
                ),
            }),
            _ => Ok(()),
        }
    }

    /// One page of the networks the caller sees, filtered and paged in the store, in creation
    /// order.
    pub fn v2_networks_page(
        &self,
        scope: &Scope,
        mut q: NetworkQuery,
    ) -> Result<Vec<NetworkRecord>> {
        q.visible_to = (!scope.admin).then(|| scope.tenant_id.clone());
        self.read(|tx| tx.network_page(&q))
    }

    /// One network the caller sees.
    pub fn v2_network(&self, scope: &Scope, net_id: &str) -> Result<NetworkRecord> {
        self.read(|tx| visible_network(tx, scope, net_id))
    }

    /// Creates networks (one transaction for all): each a tenant network (the lowest free VLAN
    /// of the physical networks' ranges) or, with provider attributes, the segment they name
    /// (callers check that the caller is an admin). Both API versions create through here.
    pub fn create_networks(
        &self,
        scope: &Scope,
        specs: Vec<NetworkSpec>,
    ) -> Result<Vec<NetworkRecord>> {
        for s in &specs {
            model::validate_tenant_id(&s.tenant_id)?;
            model::validate_network_name(&s.name)?;
            self.check_mtu(s.mtu)?;
        }
        self.write(|tx| {
            let now = now_iso8601();
            let mut ids = Vec::with_capacity(specs.len());
            for s in specs {
                check_quota(tx, &self.options.quotas, &s.tenant_id, Resource::Networks)?;
                let (network_type, physnet, vlan) = self.segment(tx, &s.provider)?;
                let n = Network {
                    id: new_id(),
                    tenant_id: s.tenant_id,
                    name: s.name,
                    vlan,
                    network_type,
                    physnet,
                };
                tx.insert_network(&n)?;
                let attrs = NetworkAttrs {
                    admin_state_up: s.admin_state_up,
                    shared: s.shared,
                    mtu: s.mtu.unwrap_or(self.options.physnet_mtu),
                    description: s.description,
                    port_security_enabled: s.port_security_enabled,
                    router_external: s.router_external,
                    // The project's default policy unless one is given.
                    qos_policy_id: match &s.qos_policy_id {
                        Some(id) => Some(usable_qos_policy(tx, scope, id)?),
                        None => tx.default_qos_policy(&n.tenant_id)?,
                    },
                    created_at: now.clone(),
                    updated_at: now.clone(),
                    revision_number: 1,
                };
                tx.save_network_attrs(&n.id, &n.name, &attrs)?;
                ids.push(n.id);
            }
            ids.iter().map(|id| network_record(tx, id)).collect()
        })
    }

    /// The segment of a network to create: a tenant VLAN when no provider attribute is given,
    /// else the one the provider attributes name, checked as Neutron's ML2 type drivers check
    /// them (the same messages), and free.
    pub(crate) fn segment(
        &self,
        tx: &dyn Tx,
        p: &ProviderSpec,
    ) -> Result<(NetworkType, Option<String>, u16)> {
        let invalid = |reason: String| ControlError::InvalidInput { reason };
        if p.is_empty() {
            let (physnet, vlan) = self.tenant_segment(tx)?;
            return Ok((NetworkType::Vlan, Some(physnet), vlan));
        }
        let Some(name) = &p.network_type else {
            return Err(invalid("network_type required.".into()));
        };
        let ty = NetworkType::parse(name)
            .ok_or_else(|| invalid(format!("network_type value '{name}' not supported.")))?;
        let known = |physnet: &str| self.options.physnets.iter().find(|k| k.name == physnet);
        let physnet = p.physical_network.as_deref();
        let (physnet, vlan) = match ty {
            NetworkType::Local => {
                // As ML2's drivers, an empty value is no value.
                if physnet.is_some_and(|p| !p.is_empty()) {
                    return Err(invalid(
                        "physical_network prohibited for local provider network.".into(),
                    ));
                }
                if p.segmentation_id.is_some_and(|id| id != 0) {
                    return Err(invalid(
                        "segmentation_id prohibited for local provider network.".into(),
                    ));
                }
                return Ok((NetworkType::Local, None, 0));
            }
            NetworkType::Flat => {
                let Some(physnet) = physnet.filter(|p| !p.is_empty()) else {
                    return Err(invalid(
                        "physical_network required for flat provider network.".into(),
                    ));
                };
                if known(physnet).is_none() {
                    return Err(invalid(format!(
                        "physical_network '{physnet}' unknown for flat provider network."
                    )));
                }
                if p.segmentation_id.is_some_and(|id| id != 0) {
                    return Err(invalid(
                        "segmentation_id prohibited for flat provider network.".into(),
                    ));
                }
                (physnet.to_owned(), 0)
            }
            NetworkType::Vlan => match (physnet, p.segmentation_id) {
                (None, Some(_)) => {
                    return Err(invalid(
                        "segmentation_id requires physical_network for VLAN provider network."
                            .into(),
                    ))
                }
                (None, None) => self.tenant_segment(tx)?,
                (Some(physnet), seg) => {
                    let Some(known) = known(physnet) else {
                        return Err(invalid(format!(
                            "physical_network '{physnet}' unknown for VLAN provider network."
                        )));
                    };
                    match seg {
                        Some(id) => match u16::try_from(id) {
                            Ok(v) if (1..=4094).contains(&v) => (physnet.to_owned(), v),
                            _ => {
                                return Err(invalid(
                                    "segmentation_id out of range (1 through 4094).".into(),
                                ))
                            }
                        },
                        None if known.vlan_ranges.is_empty() => {
                            return Err(invalid(format!(
                                "Physical network {physnet} requires segmentation_id to be \
                                 specified when creating a provider network."
                            )))
                        }
                        None => {
                            let free = known.vlan_ranges.iter().find_map(|&(min, max)| {
                                tx.free_vlan(physnet, min, max).transpose()
                            });
                            let vlan = free.transpose()?.ok_or(ControlError::NoFreeVlan {
                                min: known.vlan_ranges.iter().map(|r| r.0).min().unwrap_or(0),
                                max: known.vlan_ranges.iter().map(|r| r.1).max().unwrap_or(0),
                            })?;
                            (physnet.to_owned(), vlan)
                        }
                    }
                }
            },
        };
        if tx.segment_holder(&physnet, vlan)?.is_some() {
            return Err(if ty == NetworkType::Flat {
                ControlError::SegmentInUse {
                    kind: "FlatNetworkInUse",
                    message: format!(
                        "Unable to create the flat network. Physical network {physnet} is in use."
                    ),
                }
            } else {
                ControlError::SegmentInUse {
                    kind: "VlanIdInUse",
                    message: format!(
                        "Unable to create the network. The VLAN {vlan} on physical network \
                         {physnet} is in use."
                    ),
                }
            });
        }
        Ok((ty, Some(physnet), vlan))
    }

    /// Changes a network the caller owns.
    pub fn v2_update_network(
        &self,
        scope: &Scope,
        net_id: &str,
        upd: NetworkUpdate,
    ) -> Result<NetworkRecord> {
        if let Some(name) = &upd.name {
            model::validate_network_name(name)?;
        }
        self.check_mtu(upd.mtu)?;
        self.write(|tx| {
            let mut n = owned_network(tx, scope, net_id)?;
            if let Some(mtu) = upd.mtu {
                for s in tx.subnets(None, Some(net_id))? {
                    subnet_fits_mtu(net_id, mtu, s.family)?;
                }
            }
            let a = &mut n.attrs;
            let name = upd.name.unwrap_or(n.network.name);
            set(&mut a.admin_state_up, upd.admin_state_up);
            set(&mut a.shared, upd.shared);
            set(&mut a.mtu, upd.mtu);
            set(&mut a.description, upd.description);
            set(&mut a.port_security_enabled, upd.port_security_enabled);
            set(&mut a.router_external, upd.router_external);
            if let Some(policy) = &upd.qos_policy_id {
                a.qos_policy_id = match policy {
                    Some(id) => Some(usable_qos_policy(tx, scope, id)?),
                    None => None,
                };
            }
            a.updated_at = now_iso8601();
            a.revision_number += 1;
            tx.save_network_attrs(net_id, &name, a)?;
            network_record(tx, net_id)
        })
    }

    /// Deletes a network the caller owns, with its subnets; refused while
    /// any port is on it (Neutron's `NetworkInUse`).
    pub fn v2_delete_network(&self, scope: &Scope, net_id: &str) -> Result<()> {
        self.write(|tx| {
            owned_network(tx, scope, net_id)?;
            let ports = tx.ports(net_id)?;
            if !ports.is_empty() {
                return Err(ControlError::NetworkHasPorts {
                    net_id: net_id.to_owned(),
                    port_ids: ports.into_iter().map(|p| p.id).collect(),
                });
            }
            tx.delete_network(net_id)
        })
    }

    // ---- ports ----------------------------------------------------------

    fn port_status(&self, record: PortRecord, net_up: bool) -> PortStatusView {
        self.port_status_with(record, net_up, None)
    }

    /// As [`Control::port_status`], with the reports of a list read at once (shared stores).
    fn port_status_with(
        &self,
        record: PortRecord,
        net_up: bool,
        known: Option<&HashMap<String, ReportedStatus>>,
    ) -> PortStatusView {
        let (forwarding, error) = self.forwarding(&record.port.id, known);
        let active = net_up && record.port.state == PortState::Active && forwarding;
        PortStatusView {
            record,
            active,
            error,
        }
    }

    fn port_views(&self, records: Vec<(PortRecord, bool)>) -> Vec<PortStatusView> {
        let ids: Vec<String> = records.iter().map(|(r, _)| r.port.id.clone()).collect();
        let known = self.reported(&ids);
        records
            .into_iter()
            .map(|(r, up)| self.port_status_with(r, up, known.as_ref()))
            .collect()
    }

    /// The ports the caller sees, in creation order, with their status.
    pub fn v2_ports(&self, scope: &Scope) -> Result<Vec<PortStatusView>> {
        let records = self.read(|tx| {
            let nets = tx.network_records(None)?;
            let up = |id: &str| {
                nets.iter()
                    .find(|n| n.network.id == id)
                    .is_none_or(|n| n.attrs.admin_state_up)
            };
            Ok(tx
                .port_records(None)?
                .into_iter()
                .filter(|p| scope.owns(&p.attrs.tenant_id))
                .map(|p| {
                    let u = up(&p.port.network_id);
                    (p, u)
                })
                .collect::<Vec<_>>())
        })?;
        Ok(self.port_views(records))
    }

    /// One page of the ports the caller sees, filtered and paged in the
    /// store (index range reads: the cost of a page does not grow with the
    /// number of ports), in creation order, with their status.
    pub fn v2_ports_page(&self, scope: &Scope, mut q: PortQuery) -> Result<Vec<PortStatusView>> {
        q.tenant = (!scope.admin).then(|| scope.tenant_id.clone());
        let records = self.read(|tx| {
            let ports = tx.port_page(&q)?;
            let mut up: HashMap<String, bool> = HashMap::new();
            let mut out = Vec::with_capacity(ports.len());
            for p in ports {
                let net = &p.port.network_id;
                let u = match up.get(net) {
                    Some(u) => *u,
                    None => {
                        let u = tx
                            .network_records(Some(net))?
                            .first()
                            .is_none_or(|n| n.attrs.admin_state_up);
                        up.insert(net.clone(), u);
                        u
                    }
                };
                out.push((p, u));
            }
            Ok(out)
        })?;
        Ok(self.port_views(records))
    }

    /// One port the caller sees.
    pub fn v2_port(&self, scope: &Scope, port_id: &str) -> Result<PortStatusView> {
        let (r, up) = self.read(|tx| {
            let r = visible_port(tx, scope, port_id)?;
            let up = network_record(tx, &r.port.network_id)?.attrs.admin_state_up;
            Ok((r, up))
        })?;
        Ok(self.port_status(r, up))
    }

    /// Creates ports (one transaction for all). Each gets a MAC (the one
    /// asked for, if free in its network), addresses from its network's
    /// subnets (or those asked for) and, when port security is on, its
    /// anti-spoofing rules and security groups. Both API versions create through here; a
    /// Quantum port is a [`PortSpec::bare`] one.
    pub fn create_ports(&self, scope: &Scope, specs: Vec<PortSpec>) -> Result<Vec<PortStatusView>> {
        for s in &specs {
            model::validate_tenant_id(&s.tenant_id)?;
        }
        let records = self.write(|tx| {
            let now = now_iso8601();
            let mut out = Vec::with_capacity(specs.len());
            for s in specs {
                let net = network_if(tx, scope, &s.network_id, net_usable)?;
                // A port counts against its own project, as in Neutron.
                check_quota(tx, &self.options.quotas, &s.tenant_id, Resource::Ports)?;
                let net_id = net.network.id.clone();
                let port_security = s
                    .port_security_enabled
                    .unwrap_or(net.attrs.port_security_enabled);
                if !port_security && !s.allowed_address_pairs.is_empty() {
                    return Err(ControlError::AddressPairAndPortSecurityRequired);
                }
                let mac_address = match s.mac_address.map(|m| m.to_string()) {
                    Some(m) => {
                        if tx.mac_in_use(&net_id, &m, None)? {
                            return Err(ControlError::MacAddressInUse { net_id, mac: m });
                        }
                        m
                    }
                    None => fresh_mac(tx, &net_id)?,
                };
                let id = new_id();
                let security_groups =
                    port_groups(tx, &s.tenant_id, port_security, s.security_groups)?;
                let fixed_ips =
                    allocate(tx, &net_id, &id, &mac_address, &[], s.fixed_ips.as_deref())?;
                let port = Port {
                    id: id.clone(),
                    network_id: net_id,
                    state: if s.admin_state_up {
                        PortState::Active
                    } else {
                        PortState::Down
                    },
                    attachment: None,
                };
                tx.insert_port(&port)?;
                let attrs = PortAttrs {
                    tenant_id: s.tenant_id,
                    name: s.name,
                    allowed_address_pairs: pairs(&s.allowed_address_pairs, &mac_address),
                    mac_address,
                    device_id: s.device_id,
                    device_owner: s.device_owner,
                    description: s.description,
                    port_security_enabled: port_security,
                    host_id: s.host_id,
                    qos_policy_id: match &s.qos_policy_id {
                        Some(id) => Some(usable_qos_policy(tx, scope, id)?),
                        None => None,
                    },
                    network_qos_policy_id: net.attrs.qos_policy_id.clone(),
                    bind_tap: s.bind_tap,
                    created_at: now.clone(),
                    updated_at: now.clone(),
                    revision_number: 1,
                    fixed_ips,
                    security_groups,
                };
                tx.save_port_attrs(&id, &attrs)?;
                out.push((PortRecord { port, attrs }, net.attrs.admin_state_up));
            }
            Ok(out)
        })?;
        Ok(self.port_views(records))
    }

    /// Changes a port the caller owns. `fixed_ips` and
    /// `allowed_address_pairs`, when given, replace the whole set; addresses
    /// kept stay held, the others are freed.
    pub fn v2_update_port(
        &self,
        scope: &Scope,
        port_id: &str,
        upd: PortUpdate,
    ) -> Result<PortStatusView> {
        let (r, up) = self.write(|tx| {
            let mut r = visible_port(tx, scope, port_id)?;
            let net = network_record(tx, &r.port.network_id)?;
            let net_id = net.network.id.clone();
            let a = &mut r.attrs;
            if let Some(m) = upd.mac_address.map(|m| m.to_string()) {
                if m != a.mac_address && tx.mac_in_use(&net_id, &m, Some(port_id))? {
                    return Err(ControlError::MacAddressInUse { net_id, mac: m });
                }
                // Pairs that took the old MAC by default keep naming the port.
                for p in &mut a.allowed_address_pairs {
                    if p.mac_address == a.mac_address {
                        p.mac_address.clone_from(&m);
                    }
                }
                a.mac_address = m;
            }
            set(&mut a.port_security_enabled, upd.port_security_enabled);
            if let Some(p) = &upd.allowed_address_pairs {
                a.allowed_address_pairs = pairs(p, &a.mac_address);
            }
            if !a.port_security_enabled && !a.allowed_address_pairs.is_empty() {
                return Err(ControlError::AddressPairAndPortSecurityRequired);
            }
            match upd.security_groups {
                Some(groups) => {
                    a.security_groups =
                        port_groups(tx, &a.tenant_id, a.port_security_enabled, Some(groups))?;
                }
                None if !a.port_security_enabled && !a.security_groups.is_empty() => {
                    return Err(ControlError::SecurityGroupConflict {
                        kind: "PortSecurityPortHasSecurityGroup",
                        message: "Port has security group associated. Cannot disable port \
                                  security or IP address until security group is removed."
                            .into(),
                    });
                }
                None => {}
            }
            if let Some(req) = &upd.fixed_ips {
                a.fixed_ips = allocate(
                    tx,
                    &net_id,
                    port_id,
                    &a.mac_address,
                    &a.fixed_ips,
                    Some(req),
                )?;
            }
            set(&mut a.name, upd.name);
            set(&mut a.device_id, upd.device_id);
            set(&mut a.device_owner, upd.device_owner);
            set(&mut a.description, upd.description);
            set(&mut a.host_id, upd.host_id);
            if let Some(policy) = &upd.qos_policy_id {
                a.qos_policy_id = match policy {
                    Some(id) => Some(usable_qos_policy(tx, scope, id)?),
                    None => None,
                };
            }
            a.updated_at = now_iso8601();
            a.revision_number += 1;
            if let Some(up) = upd.admin_state_up {
                r.port.state = if up {
                    PortState::Active
                } else {
                    PortState::Down
                };
                tx.set_port_state(port_id, r.port.state)?;
            }
            tx.save_port_attrs(port_id, &r.attrs)?;
            Ok((r, net.attrs.admin_state_up))
        })?;
        Ok(self.port_status(r, up))
    }

    /// Deletes a port the caller owns, plugged or not; its addresses are
    /// freed.
    pub fn v2_delete_port(&self, scope: &Scope, port_id: &str) -> Result<()> {
        self.write(|tx| {
            visible_port(tx, scope, port_id)?;
            tx.delete_port(port_id)
        })
    }

    // ---- subnets --------------------------------------------------------

    /// One page of the subnets the caller sees, filtered and paged in the store, in creation
    /// order.
    pub fn subnets_page(&self, scope: &Scope, mut q: SubnetQuery) -> Result<Vec<Subnet>> {
        q.visible_to = (!scope.admin).then(|| scope.tenant_id.clone());
        self.read(|tx| tx.subnet_page(&q))
    }

    /// The subnets the caller sees (its own and those of shared networks).
    pub fn subnets(&self, scope: &Scope) -> Result<Vec<Subnet>> {
        self.read(|tx| {
            let shared: HashSet<String> = tx
                .network_records(None)?
                .into_iter()
                .filter(|n| n.attrs.shared)
                .map(|n| n.network.id)
                .collect();
            Ok(tx
                .subnets(None, None)?
                .into_iter()
                .filter(|s| scope.owns(&s.tenant_id) || shared.contains(&s.network_id))
                .collect())
        })
    }

    /// One subnet the caller sees.
    pub fn subnet(&self, scope: &Scope, subnet_id: &str) -> Result<Subnet> {
        self.read(|tx| visible_subnet(tx, scope, subnet_id))
    }

    /// Creates subnets (one transaction for all).
    pub fn create_subnets(&self, scope: &Scope, specs: Vec<SubnetSpec>) -> Result<Vec<Subnet>> {
        for s in &specs {
            model::validate_tenant_id(&s.tenant_id)?;
        }
        self.write(|tx| {
            let now = now_iso8601();
            let mut out = Vec::with_capacity(specs.len());
            for s in specs {
                let net = owned_network(tx, scope, &s.network_id)?;
                check_quota(tx, &self.options.quotas, &s.tenant_id, Resource::Subnets)?;
                let net_id = net.network.id;
                subnet_fits_mtu(&net_id, net.attrs.mtu, s.family)?;
                let cidr = s.cidr;
                if cidr.family != s.family {
                    return Err(invalid_input(format!(
                        "cidr '{}' does not match the ip_version '{}'.",
                        s.cidr,
                        s.family.version()
                    )));
                }
                // Neutron's `_validate_eui64_applicable`: SLAAC addresses are EUI-64, so a /64.
                let eui64 =
                    |m: &Option<String>| matches!(m.as_deref(), Some("slaac" | "dhcpv6-stateless"));
                if (eui64(&s.ipv6_address_mode) || eui64(&s.ipv6_ra_mode)) && cidr.len != 64 {
                    return Err(invalid_input(format!(
                        "Invalid CIDR {cidr} for IPv6 address mode. OpenStack uses the EUI-64 \
                         address format, which requires the prefix to be /64"
                    )));
                }
                for other in tx.subnets(None, Some(&net_id))? {
                    if Cidr::parse(&other.cidr).is_some_and(|o| o.overlaps(&cidr)) {
                        return Err(invalid_input(format!(
                            "Requested subnet with cidr: {cidr} for network: {net_id} \
                             overlaps with another subnet."
                        )));
                    }
                }
                let gateway = match &s.gateway_ip {
                    GatewayRequest::Default => cidr.default_gateway(),
                    GatewayRequest::Disabled => None,
                    GatewayRequest::Address(g) => Some(gateway_of(&cidr, *g)?),
                };
                let pools = match &s.allocation_pools {
                    Some(p) => ipam::validate_pools(&cidr, gateway, p)?,
                    None => cidr.default_pools(gateway),
                };
                let subnet = Subnet {
                    id: new_id(),
                    network_id: net_id,
                    tenant_id: s.tenant_id,
                    name: s.name,
                    description: s.description,
                    family: cidr.family,
                    cidr: cidr.to_string(),
                    gateway_ip: gateway.map(|g| ipam::from_u128(cidr.family, g).to_string()),
                    enable_dhcp: s.enable_dhcp,
                    allocation_pools: stored_pools(cidr.family, &pools),
                    dns_nameservers: nameservers(&s.dns_nameservers),
                    host_routes: routes(&s.host_routes),
                    ipv6_ra_mode: s.ipv6_ra_mode,
                    ipv6_address_mode: s.ipv6_address_mode,
                    created_at: now.clone(),
                    updated_at: now.clone(),
                    revision_number: 0,
                };
                tx.insert_subnet(&subnet)?;
                if auto_address(&subnet) {
                    add_auto_addresses(tx, &subnet, &now)?;
                }
                out.push(subnet);
            }
            Ok(out)
        })
    }

    /// Changes a subnet the caller owns; a new gateway or new pools are
    /// checked against each other as on create.
    pub fn update_subnet(
        &self,
        scope: &Scope,
        subnet_id: &str,
        upd: SubnetUpdate,
    ) -> Result<Subnet> {
        self.write(|tx| {
            let mut s = visible_subnet(tx, scope, subnet_id)?;
            if !scope.owns(&s.tenant_id) {
                return Err(ControlError::SubnetNotFound {
                    subnet_id: subnet_id.to_owned(),
                });
            }
            let cidr = Cidr::parse(&s.cidr).ok_or_else(|| ControlError::Store {
                detail: format!("stored subnet {subnet_id} has a bad CIDR"),
            })?;
            let gateway = match &upd.gateway_ip {
                None => s
                    .gateway_ip
                    .as_deref()
                    .map(|g| {
                        let ip = ipam::parse_ip(g).ok_or_else(|| ControlError::Store {
                            detail: format!("stored subnet {subnet_id} has a bad gateway {g}"),
                        })?;
                        gateway_of(&cidr, ip)
                    })
                    .transpose()?,
                Some(GatewayRequest::Disabled) => None,
                Some(GatewayRequest::Default) => cidr.default_gateway(),
                Some(GatewayRequest::Address(g)) => Some(gateway_of(&cidr, *g)?),
            };
            let pools = upd.allocation_pools.as_ref().unwrap_or(&s.allocation_pools);
            let pools = ipam::validate_pools(&cidr, gateway, pools)?;
            s.gateway_ip = gateway.map(|g| ipam::from_u128(cidr.family, g).to_string());
            s.allocation_pools = stored_pools(cidr.family, &pools);
            set(&mut s.name, upd.name);
            set(&mut s.description, upd.description);
            set(&mut s.enable_dhcp, upd.enable_dhcp);
            set(
                &mut s.dns_nameservers,
                upd.dns_nameservers.as_deref().map(nameservers),
            );
            set(&mut s.host_routes, upd.host_routes.as_deref().map(routes));
            s.updated_at = now_iso8601();
            s.revision_number += 1;
            tx.update_subnet(&s)?;
            Ok(s)
        })
    }

    /// Deletes a subnet the caller owns; refused while a port holds an
    /// address from it.
    pub fn delete_subnet(&self, scope: &Scope, subnet_id: &str) -> Result<()> {
        self.write(|tx| {
            let s = visible_subnet(tx, scope, subnet_id)?;
            if !scope.owns(&s.tenant_id) {
                return Err(ControlError::SubnetNotFound {
                    subnet_id: subnet_id.to_owned(),
                });
            }
            let held = tx.subnet_allocations(subnet_id)?;
            if auto_address(&s) {
                // As Neutron: a SLAAC subnet goes with its ports' addresses in it.
                for port_id in held.iter().map(|(_, p)| p).collect::<BTreeSet<_>>() {
                    if let Some(mut r) = tx.port_records(Some(port_id))?.pop() {
                        r.attrs.fixed_ips.retain(|f| f.subnet_id != subnet_id);
                        tx.save_port_attrs(port_id, &r.attrs)?;
                    }
                }
            } else if !held.is_empty() {
                return Err(ControlError::SubnetInUse {
                    subnet_id: subnet_id.to_owned(),
                });
            }
            tx.delete_subnet(subnet_id)
        })
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn invalid_input(reason: String) -> ControlError {
    ControlError::InvalidInput { reason }
}

/// A subnet needs its network's MTU to be at least 68 (IPv4's minimum), and 1280 for IPv6.
fn subnet_fits_mtu(net_id: &str, mtu: u32, family: Family) -> Result<()> {
    let min = match family {
        _ if mtu < 68 => 68,
        Family::V6 if mtu < 1280 => 1280,
        _ => return Ok(()),
    };
    Err(ControlError::NetworkMtuSubnetConflict {
        net_id: net_id.to_owned(),
        min,
    })
}

/// Who sees a network: its owner, and everyone when it is shared or external (as Neutron's
/// `get_network` policy).
fn net_visible(scope: &Scope, n: &NetworkRecord) -> bool {
    net_usable(scope, n) || n.attrs.router_external
}

/// Who may put ports on a network: its owner, and everyone when it is shared.
fn net_usable(scope: &Scope, n: &NetworkRecord) -> bool {
    scope.owns(&n.network.tenant_id) || n.attrs.shared
}

fn network_record(tx: &dyn Tx, net_id: &str) -> Result<NetworkRecord> {
    tx.network_records(Some(net_id))?
        .pop()
        .ok_or_else(|| ControlError::NetworkNotFound {
            net_id: net_id.to_owned(),
        })
}

/// A QoS policy the caller may put on its network or port: one it sees (its own or a shared
/// one); its id.
fn usable_qos_policy(tx: &dyn Tx, scope: &Scope, id: &str) -> Result<String> {
    super::qos::visible_policy(tx, scope, id).map(|p| p.id)
}

fn visible_network(tx: &dyn Tx, scope: &Scope, net_id: &str) -> Result<NetworkRecord> {
    network_if(tx, scope, net_id, net_visible)
}

/// The network, if `allowed` lets the caller at it (else 404, as Neutron hides it).
fn network_if(
    tx: &dyn Tx,
    scope: &Scope,
    net_id: &str,
    allowed: fn(&Scope, &NetworkRecord) -> bool,
) -> Result<NetworkRecord> {
    let n = network_record(tx, net_id)?;
    if allowed(scope, &n) {
        Ok(n)
    } else {
        Err(ControlError::NetworkNotFound {
            net_id: net_id.to_owned(),
        })
    }
}

fn owned_network(tx: &dyn Tx, scope: &Scope, net_id: &str) -> Result<NetworkRecord> {
    let n = network_record(tx, net_id)?;
    if scope.owns(&n.network.tenant_id) {
        Ok(n)
    } else {
        Err(ControlError::NetworkNotFound {
            net_id: net_id.to_owned(),
        })
    }
}

fn visible_port(tx: &dyn Tx, scope: &Scope, port_id: &str) -> Result<PortRecord> {
    tx.port_records(Some(port_id))?
        .pop()
        .filter(|p| scope.owns(&p.attrs.tenant_id))
        .ok_or_else(|| ControlError::PortNotFound {
            net_id: String::new(),
            port_id: port_id.to_owned(),
        })
}

fn visible_subnet(tx: &dyn Tx, scope: &Scope, subnet_id: &str) -> Result<Subnet> {
    let not_found = || ControlError::SubnetNotFound {
        subnet_id: subnet_id.to_owned(),
    };
    let s = tx
        .subnets(Some(subnet_id), None)?
        .pop()
        .ok_or_else(not_found)?;
    if scope.owns(&s.tenant_id) {
        return Ok(s);
    }
    match tx.network_records(Some(&s.network_id))?.pop() {
        Some(n) if n.attrs.shared => Ok(s),
        _ => Err(not_found()),
    }
}

/// A MAC in the base prefix that no port of the network uses.
pub(super) fn fresh_mac(tx: &dyn Tx, net_id: &str) -> Result<String> {
    for _ in 0..mac::MAC_TRIES {
        let m = mac::random();
        if !tx.mac_in_use(net_id, &m, None)? {
            return Ok(m);
        }
    }
    Err(ControlError::InvalidInput {
        reason: format!("Unable to generate a unique mac address on network {net_id}."),
    })
}

fn pairs(req: &[PairRequest], own_mac: &str) -> Vec<AddressPair> {
    req.iter()
        .map(|p| AddressPair {
            mac_address: p
                .mac_address
                .map_or_else(|| own_mac.to_owned(), |m| m.to_string()),
            ip_address: p.ip_address.to_string(),
        })
        .collect()
}

fn stored_pools(family: Family, pools: &[Pool]) -> Vec<(String, String)> {
    pools
        .iter()
        .map(|p| {
            (
                ipam::from_u128(family, p.first).to_string(),
                ipam::from_u128(family, p.last).to_string(),
            )
        })
        .collect()
}

fn gateway_of(cidr: &Cidr, g: IpAddr) -> Result<u128> {
    if Family::of(g) == cidr.family {
        return Ok(ipam::to_u128(g));
    }
    Err(invalid_input(format!(
        "gateway_ip '{g}' does not match the ip_version '{}'.",
        cidr.family.version()
    )))
}

/// `dns_nameservers` as stored and shown.
fn nameservers(ips: &[IpAddr]) -> Vec<String> {
    ips.iter().map(IpAddr::to_string).collect()
}

/// `host_routes` as stored and shown: (destination, nexthop).
fn routes(routes: &[(Cidr, IpAddr)]) -> Vec<(String, String)> {
    routes
        .iter()
        .map(|(dest, hop)| (dest.to_string(), hop.to_string()))
        .collect()
}

/// The pools of a stored subnet.
fn pools_of(s: &Subnet) -> Vec<Pool> {
    s.allocation_pools
        .iter()
        .filter_map(|(a, b)| Pool::parse_stored(&format!("{a}-{b}")))
        .collect()
}

/// Addresses of a subnet held by ports other than `port_id`.
/// A port's EUI-64 address in a SLAAC subnet; another port of the network with the same MAC
/// cannot exist, so the address is free but for a pair or a hand-made conflict.
fn slaac_ip(tx: &dyn Tx, s: &Subnet, port_id: &str, mac: &str) -> Result<FixedIp> {
    let cidr = Cidr::parse(&s.cidr).ok_or_else(|| ControlError::Store {
        detail: format!("stored subnet {} has a bad CIDR", s.id),
    })?;
    let n = ipam::eui64(&cidr, mac).ok_or_else(|| ControlError::Store {
        detail: format!("port {port_id} has a bad MAC {mac}"),
    })?;
    let ip = ipam::from_u128(Family::V6, n).to_string();
    if held_by_others(tx, &s.id, port_id)?.contains(&n) {
        return Err(ControlError::IpAddressAlreadyAllocated {
            ip,
            subnet_id: s.id.clone(),
        });
    }
    Ok(FixedIp {
        subnet_id: s.id.clone(),
        ip_address: ip,
    })
}

fn held_by_others(tx: &dyn Tx, subnet_id: &str, port_id: &str) -> Result<BTreeSet<u128>> {
    Ok(tx
        .subnet_allocations(subnet_id)?
        .into_iter()
        .filter(|(_, p)| p != port_id)
        .filter_map(|(ip, _)| ipam::parse_ip(&ip).map(ipam::to_u128))
        .collect())
}

/// The device owners of router interfaces, whose addresses Neutron never picks for them.
const ROUTER_INTERFACE_OWNERS: &[&str] = &[
    "network:router_interface",
    "network:router_interface_distributed",
    "network:ha_router_replicated_interface",
    "network:router_centralized_snat",
];

/// A new SLAAC subnet gives every port already on its network its EUI-64 address in it, as
/// Neutron does (`add_auto_addrs_on_network_ports`), router interfaces excepted; each port so
/// changed is updated (revision, timestamp), which hands the data plane its new address.
fn add_auto_addresses(tx: &dyn Tx, subnet: &Subnet, now: &str) -> Result<()> {
    for port in tx.ports(&subnet.network_id)? {
        let Some(mut r) = tx.port_records(Some(&port.id))?.pop() else {
            continue;
        };
        let a = &mut r.attrs;
        if ROUTER_INTERFACE_OWNERS.contains(&a.device_owner.as_str())
            || a.fixed_ips.iter().any(|f| f.subnet_id == subnet.id)
        {
            continue;
        }
        match slaac_ip(tx, subnet, &port.id, &a.mac_address) {
            Ok(ip) => a.fixed_ips.push(ip),
            // Held by another port's hand-made address: this port goes without, as in Neutron.
            Err(ControlError::IpAddressAlreadyAllocated { .. }) => continue,
            Err(e) => return Err(e),
        }
        a.updated_at = now.to_owned();
        a.revision_number += 1;
        tx.save_port_attrs(&port.id, a)?;
    }
    Ok(())
}

/// Does the subnet give addresses by SLAAC (`ipv6_address_mode` `slaac` or `dhcpv6-stateless`)?
/// Its ports then hold the EUI-64 address of their MAC, as Neutron computes it.
fn auto_address(s: &Subnet) -> bool {
    matches!(
        s.ipv6_address_mode.as_deref(),
        Some("slaac" | "dhcpv6-stateless")
    )
}

/// The fixed IPs of a port: with no request, one address from the first
/// IPv4 subnet with room, one from the first IPv6 subnet with room that
/// assigns addresses, and the EUI-64 address in every SLAAC subnet;
/// otherwise each requested entry (a subnet, an address, or both), keeping
/// an address the port already holds in a subnet asked for by id alone.
fn allocate(
    tx: &dyn Tx,
    net_id: &str,
    port_id: &str,
    mac: &str,
    current: &[FixedIp],
    req: Option<&[FixedIpRequest]>,
) -> Result<Vec<FixedIp>> {
    let subnets = tx.subnets(None, Some(net_id))?;
    let exhausted = || ControlError::IpAddressGenerationFailure {
        net_id: net_id.to_owned(),
    };
    let mut out: Vec<FixedIp> = Vec::new();
    let Some(req) = req else {
        for family in [Family::V4, Family::V6] {
            let mut any = false;
            let mut got = false;
            for s in subnets.iter().filter(|s| s.family == family) {
                if auto_address(s) {
                    out.push(slaac_ip(tx, s, port_id, mac)?);
                    continue;
                }
                if got {
                    continue;
                }
                any = true;
                let held = held_by_others(tx, &s.id, port_id)?;
                if let Some(ip) = ipam::first_free(&pools_of(s), &held) {
                    out.push(FixedIp {
                        subnet_id: s.id.clone(),
                        ip_address: ipam::from_u128(family, ip).to_string(),
                    });
                    got = true;
                }
            }
            if any && !got {
                return Err(exhausted());
            }
        }
        return Ok(out);
    };
    if subnets.is_empty() && !req.is_empty() {
        return Err(invalid_input(
            "IP allocation requires subnets for network.".to_owned(),
        ));
    }
    let mut chosen: HashSet<(String, u128)> = HashSet::new();
    for r in req {
        let subnet = match (&r.subnet_id, &r.ip_address) {
            (Some(id), _) => subnets.iter().find(|s| &s.id == id).ok_or_else(|| {
                invalid_input(format!(
                    "Failed to create port on network {net_id}, because fixed_ips included \
                     invalid subnet {id}."
                ))
            })?,
            (None, Some(ip)) => subnets
                .iter()
                .find(|s| Cidr::parse(&s.cidr).is_some_and(|c| c.contains_ip(*ip)))
                .ok_or_else(|| ControlError::InvalidIpForNetwork { ip: ip.to_string() })?,
            (None, None) => {
                return Err(invalid_input(
                    "IP allocation requires subnet_id or ip_address.".to_owned(),
                ))
            }
        };
        if auto_address(subnet) {
            if let Some(ip) = &r.ip_address {
                return Err(invalid_input(format!(
                    "IPv6 address {ip} cannot be directly assigned to a port on subnet {} with {} \
                     address mode",
                    subnet.id,
                    subnet.ipv6_address_mode.as_deref().unwrap_or_default()
                )));
            }
            let f = slaac_ip(tx, subnet, port_id, mac)?;
            if let Some(n) = ipam::parse_ip(&f.ip_address).map(ipam::to_u128) {
                chosen.insert((subnet.id.clone(), n));
            }
            out.push(f);
            continue;
        }
        let cidr = Cidr::parse(&subnet.cidr).ok_or_else(|| ControlError::Store {
            detail: format!("stored subnet {} has a bad CIDR", subnet.id),
        })?;
        let mut held = held_by_others(tx, &subnet.id, port_id)?;
        let ip = match r.ip_address {
            Some(addr) => {
                if !cidr.contains_ip(addr) {
                    return Err(ControlError::InvalidIpForSubnet {
                        ip: addr.to_string(),
                    });
                }
                let n = ipam::to_u128(addr);
                if held.contains(&n) || chosen.contains(&(subnet.id.clone(), n)) {
                    return Err(ControlError::IpAddressAlreadyAllocated {
                        ip: addr.to_string(),
                        subnet_id: subnet.id.clone(),
                    });
                }
                n
            }
            None => {
                let kept = current
                    .iter()
                    .filter(|f| f.subnet_id == subnet.id)
                    .filter_map(|f| ipam::parse_ip(&f.ip_address).map(ipam::to_u128))
                    .find(|n| !chosen.contains(&(subnet.id.clone(), *n)));
                match kept {
                    Some(n) => n,
                    None => {
                        held.extend(
                            chosen
                                .iter()
                                .filter(|(s, _)| *s == subnet.id)
                                .map(|(_, n)| *n),
                        );
                        ipam::first_free(&pools_of(subnet), &held).ok_or_else(exhausted)?
                    }
                }
            }
        };
        chosen.insert((subnet.id.clone(), ip));
        out.push(FixedIp {
            subnet_id: subnet.id.clone(),
            ip_address: ipam::from_u128(cidr.family, ip).to_string(),
        });
    }
    Ok(out)
}
