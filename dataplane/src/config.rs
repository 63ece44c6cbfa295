//! The switch's desired configuration, as the control plane (or a TOML file) states it, and the
//! immutable forwarding snapshot compiled from it for the workers.
//!
//! # Design
//! [`SwitchConfig`] speaks in names: network ids, port ids, device names. The control side keeps
//! stable small integer *slots* for them ([`SlotMap`]), each with a generation that changes when a
//! slot is reused, and compiles a [`Snapshot`] indexed by slot. Workers adopt a new snapshot between
//! batches (read-copy-update): the snapshot is never mutated once published.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::acl::{AddrSets, PortFilter};
use crate::policer::PolicerConfig;
use crate::security::{IpPrefix, PortSecurity};
use crate::wire::Mac;

/// Largest VLAN id a network may use (4095 is reserved).
pub const MAX_VLAN: u16 = 4094;
/// Default MTU of a port: the largest IP packet it carries, as on Linux interfaces.
pub const DEFAULT_MTU: u32 = 1500;
/// The physical network of the `[uplink]` section, and of networks that name none.
pub const DEFAULT_PHYSNET: &str = "physnet1";

/// One L2 network (a Quantum network): its own MAC table, its own segment on its physical
/// network's uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Stable id (the control plane's network UUID, or a name in the TOML file).
    pub id: String,
    /// Segmentation id: the 802.1Q VLAN id this network's frames carry on its physical
    /// network's uplink; 0 for a flat network (untagged on the uplink) and a local one.
    pub vlan: u16,
    /// Learning limit of the network's MAC table.
    pub mac_limit: u32,
    /// The physical network whose uplink carries it; `None` for a local network, which reaches
    /// no uplink.
    pub physnet: Option<String>,
}

impl NetworkConfig {
    /// A VLAN network of the default physical network.
    pub fn vlan(id: &str, vlan: u16, mac_limit: u32) -> Self {
        NetworkConfig {
            id: id.to_owned(),
            vlan,
            mac_limit,
            physnet: Some(DEFAULT_PHYSNET.to_owned()),
        }
    }
}

/// What a port is to the switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortRole {
    /// A VM attachment: untagged frames of one network.
    Access {
        /// The network's id.
        network: String,
    },
    /// The uplink of a physical network: carries that physical network's networks, each tagged
    /// with its VLAN id (a flat one untagged).
    Trunk {
        /// The physical network.
        physnet: String,
    },
}

/// One port: an interface the switch opens with AF_XDP.
#[derive(Debug, Clone, PartialEq)]
pub struct PortConfig {
    /// Stable id (the control plane's port UUID, or a name in the TOML file).
    pub id: String,
    /// Host interface name, e.g. `tap1234` or a veth end.
    pub device: String,
    /// Access or trunk.
    pub role: PortRole,
    /// Administrative state: a DOWN port neither receives nor sends.
    pub admin_up: bool,
    /// MAC addresses known to live behind this port, installed as static entries.
    pub static_macs: Vec<Mac>,
    /// Rate limit of what the port's VM sends (the port's ingress), if any.
    pub policer: Option<PolicerConfig>,
    /// Rate limit of what the port's VM receives (the port's egress), if any.
    pub policer_in: Option<PolicerConfig>,
    /// Anti-spoofing rules, if enabled.
    pub security: Option<PortSecurity>,
    /// MTU; frames longer than `mtu + 14` (+4 with a tag) are dropped. `None`: the default.
    pub mtu: Option<u32>,
    /// The native DHCP responder's answers for this port's client, when its subnet has DHCP.
    pub dhcp: Option<std::sync::Arc<crate::dhcp::DhcpConfig>>,
    /// The native DHCPv6 responder's answers for this port's client, when its subnets give
    /// addresses or options by DHCPv6.
    pub dhcp6: Option<std::sync::Arc<crate::dhcp6::Dhcp6Config>>,
    /// The router advertisements the switch answers this port's solicitations with, when its
    /// network has SLAAC subnets.
    pub ra: Option<std::sync::Arc<crate::ra::RaConfig>>,
    /// Security group rules, when port security is on (no rules: only what Neutron always
    /// allows passes).
    pub filter: Option<Arc<PortFilter>>,
    /// The worker that serves the port (the switch chooses by load when `None`).
    pub worker: Option<u16>,
    /// The port's MAC and IPv4 addresses, for which the switch answers ARP requests from the
    /// other ports of its network (none: requests for them are switched as any broadcast).
    pub arp: Vec<(Mac, Ipv4Addr)>,
}

impl PortConfig {
    /// An admin-up access port of `network` on `device`, with no extras.
    pub fn access(id: &str, device: &str, network: &str) -> Self {
        PortConfig {
            id: id.to_owned(),
            device: device.to_owned(),
            role: PortRole::Access {
                network: network.to_owned(),
            },
            admin_up: true,
            static_macs: Vec::new(),
            policer: None,
            policer_in: None,
            security: None,
            mtu: None,
            dhcp: None,
            dhcp6: None,
            ra: None,
            filter: None,
            worker: None,
            arp: Vec::new(),
        }
    }

    /// An admin-up trunk port on `device`, the uplink of the default physical network.
    pub fn trunk(id: &str, device: &str) -> Self {
        PortConfig::uplink(id, device, DEFAULT_PHYSNET)
    }

    /// An admin-up trunk port on `device`, the uplink of physical network `physnet`.
    pub fn uplink(id: &str, device: &str, physnet: &str) -> Self {
        PortConfig {
            role: PortRole::Trunk {
                physnet: physnet.to_owned(),
            },
            ..PortConfig::access(id, device, "")
        }
    }
}

/// The whole desired configuration of a switch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SwitchConfig {
    /// Networks.
    pub networks: Vec<NetworkConfig>,
    /// Ports.
    pub ports: Vec<PortConfig>,
    /// Address sets of the remote groups the ports' rules name, by group id.
    pub address_sets: Arc<AddrSets>,
    /// Moves whenever a rule or an address set changes: tracked connections are checked
    /// again against the rules when they meet a new epoch.
    pub policy_epoch: u64,
}

/// Why a configuration was refused. Nothing of a refused configuration is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// Two networks or two ports share an id.
    DuplicateId(String),
    /// Two networks share a VLAN id (or the untagged segment, 0) of one physical network.
    DuplicateVlan(u16),
    /// A VLAN id outside 1..=4094 (or not 0 on a local network).
    InvalidVlan(u16),
    /// Two uplinks for one physical network.
    DuplicateUplink(String),
    /// A port names a network that does not exist.
    UnknownNetwork {
        /// The port.
        port: String,
        /// The network it names.
        network: String,
    },
    /// Two ports use the same device.
    DuplicateDevice(String),
    /// More networks or ports than slots (65 535).
    TooMany,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfigError::DuplicateId(id) => write!(f, "duplicate id {id:?}"),
            ConfigError::DuplicateVlan(v) => write!(f, "VLAN {v} is used by two networks"),
            ConfigError::InvalidVlan(v) => write!(f, "VLAN {v} is outside 1..=4094"),
            ConfigError::DuplicateUplink(p) => {
                write!(f, "physical network {p:?} has two uplinks")
            }
            ConfigError::UnknownNetwork { port, network } => {
                write!(f, "port {port:?} names unknown network {network:?}")
            }
            ConfigError::DuplicateDevice(d) => write!(f, "device {d:?} is used by two ports"),
            ConfigError::TooMany => write!(f, "too many networks or ports"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl SwitchConfig {
    /// Checks the configuration's consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut ids = HashMap::new();
        let mut vlans = HashMap::new();
        for n in &self.networks {
            if ids.insert(n.id.as_str(), ()).is_some() {
                return Err(ConfigError::DuplicateId(n.id.clone()));
            }
            if n.vlan > MAX_VLAN || (n.physnet.is_none() && n.vlan != 0) {
                return Err(ConfigError::InvalidVlan(n.vlan));
            }
            if let Some(p) = &n.physnet {
                if vlans.insert((p.as_str(), n.vlan), ()).is_some() {
                    return Err(ConfigError::DuplicateVlan(n.vlan));
                }
            }
        }
        let mut uplinks = HashMap::new();
        let mut port_ids = HashMap::new();
        let mut devices = HashMap::new();
        for p in &self.ports {
            if port_ids.insert(p.id.as_str(), ()).is_some() {
                return Err(ConfigError::DuplicateId(p.id.clone()));
            }
            if devices.insert(p.device.as_str(), ()).is_some() {
                return Err(ConfigError::DuplicateDevice(p.device.clone()));
            }
            match &p.role {
                PortRole::Access { network } => {
                    if !ids.contains_key(network.as_str()) {
                        return Err(ConfigError::UnknownNetwork {
                            port: p.id.clone(),
                            network: network.clone(),
                        });
                    }
                }
                PortRole::Trunk { physnet } => {
                    if uplinks.insert(physnet.as_str(), ()).is_some() {
                        return Err(ConfigError::DuplicateUplink(physnet.clone()));
                    }
                }
            }
        }
        if self.networks.len() >= usize::from(NONE) || self.ports.len() >= usize::from(NONE) {
            return Err(ConfigError::TooMany);
        }
        Ok(())
    }
}

/// The "no slot" marker in slot-indexed tables.
pub const NONE: u16 = u16::MAX;

/// Stable slots for string ids: a slot keeps its number while its id exists, and a reused slot
/// gets a new generation.
#[derive(Debug, Default)]
pub struct SlotMap {
    by_id: HashMap<String, u16>,
    gens: Vec<u32>,
    free: Vec<u16>,
}

impl SlotMap {
    /// The slot of `id`, allocating one if needed. Returns `(slot, generation)`; `None` when
    /// every slot below [`NONE`] is taken (65 535: [`NONE`] means no slot).
    pub fn get_or_insert(&mut self, id: &str) -> Option<(u16, u32)> {
        if let Some(&s) = self.by_id.get(id) {
            return Some((s, self.gens[usize::from(s)]));
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                let next = u16::try_from(self.gens.len()).ok().filter(|&s| s != NONE)?;
                self.gens.push(0);
                next
            }
        };
        let g = &mut self.gens[usize::from(slot)];
        *g = g.wrapping_add(1);
        self.by_id.insert(id.to_owned(), slot);
        Some((slot, *g))
    }

    /// The slot of `id`, if it has one.
    pub fn get(&self, id: &str) -> Option<u16> {
        self.by_id.get(id).copied()
    }

    /// Frees every slot whose id is not in `keep`.
    pub fn retain(&mut self, keep: &dyn Fn(&str) -> bool) {
        let free = &mut self.free;
        self.by_id.retain(|id, s| {
            let kept = keep(id);
            if !kept {
                free.push(*s);
            }
            kept
        });
    }

    /// Frees the slot of `id`, if it has one.
    pub fn remove(&mut self, id: &str) {
        if let Some(s) = self.by_id.remove(id) {
            self.free.push(s);
        }
    }

    /// Number of slots in use.
    pub fn live(&self) -> usize {
        self.by_id.len()
    }

    /// Number of slots ever allocated (the length of slot-indexed tables).
    pub fn len(&self) -> usize {
        self.gens.len()
    }

    /// True when no slot was ever allocated.
    pub fn is_empty(&self) -> bool {
        self.gens.is_empty()
    }
}

/// How a port takes part in forwarding, as the workers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Access port of the network in this slot.
    Access(u16),
    /// Uplink of the physical network with this index (in [`Snapshot::physnets`]).
    Trunk(u16),
}

/// A port in the snapshot.
#[derive(Debug, Clone)]
pub struct PortView {
    /// The port's id.
    pub id: String,
    /// Slot generation.
    pub gen: u32,
    /// Access or trunk.
    pub role: Role,
    /// Administrative state.
    pub admin_up: bool,
    /// Largest frame accepted, header included, without a VLAN tag.
    pub max_frame: u32,
    /// Static MAC entries.
    pub static_macs: Vec<Mac>,
    /// Policer of what the VM sends.
    pub policer: Option<PolicerConfig>,
    /// Policer of what the VM receives.
    pub policer_in: Option<PolicerConfig>,
    /// Anti-spoofing rules.
    pub security: Option<PortSecurity>,
    /// The DHCP responder's answers for the port's client.
    pub dhcp: Option<std::sync::Arc<crate::dhcp::DhcpConfig>>,
    /// The DHCPv6 responder's answers for the port's client.
    pub dhcp6: Option<std::sync::Arc<crate::dhcp6::Dhcp6Config>>,
    /// The router advertisement for the port's client.
    pub ra: Option<std::sync::Arc<crate::ra::RaConfig>>,
    /// Security group rules.
    pub filter: Option<Arc<PortFilter>>,
    /// The worker that owns the port (its sockets, its counters, its connection-table zone).
    pub worker: u16,
}

/// A network in the snapshot.
#[derive(Debug, Clone)]
pub struct NetView {
    /// The network's id.
    pub id: String,
    /// Slot generation (a change flushes the MAC table in O(1)).
    pub gen: u32,
    /// VLAN id on its physical network's uplink; 0: untagged there (flat), or local.
    pub vlan: u16,
    /// Index of its physical network in [`Snapshot::physnets`]; [`NONE`] for a local network.
    pub physnet: u16,
    /// Admin-up uplinks of its physical network (at most one): where floods go besides the
    /// members.
    pub uplinks: Vec<u16>,
    /// Learning limit.
    pub mac_limit: u32,
    /// Admin-up access ports of this network: where floods go, besides the uplinks.
    pub members: Vec<u16>,
    /// Does a port of this network have security group rules? Only then are its frames read to
    /// layer 4 (a frame reaches ports of its own network only).
    pub filtering: bool,
    /// The addresses the switch answers ARP for, sorted by address: (IPv4, MAC, the port that
    /// holds it). An address two ports claim is left out (the owners answer for themselves).
    pub arp: Vec<(Ipv4Addr, Mac, u16)>,
}

impl NetView {
    /// Whether `port` carries this network (in slot `net`): one of its access ports, or the
    /// uplink of its physical network. A unicast frame of the network leaves by no other port,
    /// whatever the MAC table says: an entry may name a port of another segment (learned by a
    /// worker still on a snapshot from before the network moved, or its slot was reused).
    pub fn carries(&self, net: u16, port: &PortView) -> bool {
        match port.role {
            Role::Access(n) => n == net,
            Role::Trunk(physnet) => physnet == self.physnet && physnet != NONE,
        }
    }

    /// The MAC and port of `ip`, if the switch answers ARP for it.
    pub fn arp_owner(&self, ip: Ipv4Addr) -> Option<(Mac, u16)> {
        let i = self.arp.binary_search_by_key(&ip, |e| e.0).ok()?;
        Some((self.arp[i].1, self.arp[i].2))
    }
}

/// The immutable forwarding configuration the workers run with.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Increases with every publication.
    pub version: u64,
    /// Ports by slot.
    pub ports: Vec<Option<PortView>>,
    /// Networks by slot.
    pub nets: Vec<Option<NetView>>,
    /// The physical networks named by networks or uplinks, by index.
    pub physnets: Vec<String>,
    /// Per physical network: the network slot of each VLAN id (index 0: the flat network, of
    /// untagged frames), [`NONE`] where no network owns it.
    pub vlan_to_net: Vec<Box<[u16]>>,
    /// Address sets of remote groups.
    pub address_sets: Arc<AddrSets>,
    /// The policy epoch (see [`SwitchConfig::policy_epoch`]).
    pub policy_epoch: u64,
}

impl Snapshot {
    /// The MAC entries the snapshot's networks may learn together: the sum of their limits, which
    /// the MAC table is sized for (at most half full; the table's own cap applies).
    pub fn mac_entries(&self) -> usize {
        self.nets
            .iter()
            .flatten()
            .map(|n| n.mac_limit as usize)
            .sum()
    }

    /// Compiles `cfg` (which must be valid) using and updating the slot maps.
    pub fn compile(
        cfg: &SwitchConfig,
        version: u64,
        net_slots: &mut SlotMap,
        port_slots: &mut SlotMap,
    ) -> Snapshot {
        let nets: std::collections::HashSet<&str> =
            cfg.networks.iter().map(|n| n.id.as_str()).collect();
        let ports: std::collections::HashSet<&str> =
            cfg.ports.iter().map(|p| p.id.as_str()).collect();
        net_slots.retain(&|id| nets.contains(id));
        port_slots.retain(&|id| ports.contains(id));
        let mut snap = Snapshot {
            version,
            address_sets: Arc::clone(&cfg.address_sets),
            policy_epoch: cfg.policy_epoch,
            ..Snapshot::default()
        };
        let mut unslotted = (0usize, 0usize);
        for n in &cfg.networks {
            let Some((slot, gen)) = net_slots.get_or_insert(&n.id) else {
                unslotted.0 += 1;
                continue;
            };
            let i = usize::from(slot);
            if snap.nets.len() <= i {
                snap.nets.resize(i + 1, None);
            }
            let physnet = n.physnet.as_deref().map_or(NONE, |p| snap.physnet(p));
            snap.nets[i] = Some(NetView {
                id: n.id.clone(),
                gen,
                vlan: n.vlan,
                physnet,
                uplinks: Vec::new(),
                mac_limit: n.mac_limit,
                members: Vec::new(),
                filtering: false,
                arp: Vec::new(),
            });
            if let Some(v) = snap
                .vlan_to_net
                .get_mut(usize::from(physnet))
                .and_then(|t| t.get_mut(usize::from(n.vlan)))
            {
                *v = slot;
            }
        }
        let mut uplinks: Vec<(u16, u16)> = Vec::new();
        // Per network: the allowed address pairs of its ports, and the port each belongs to.
        let mut pairs: Vec<(u16, u16, IpPrefix)> = Vec::new();
        for p in &cfg.ports {
            let Some((slot, gen)) = port_slots.get_or_insert(&p.id) else {
                unslotted.1 += 1;
                continue;
            };
            let role = match &p.role {
                PortRole::Trunk { physnet } => Role::Trunk(snap.physnet(physnet)),
                PortRole::Access { network } => {
                    Role::Access(net_slots.get(network).unwrap_or(NONE))
                }
            };
            match role {
                Role::Trunk(physnet) if p.admin_up => uplinks.push((physnet, slot)),
                Role::Access(net) if p.admin_up => {
                    if let Some(Some(n)) = snap.nets.get_mut(usize::from(net)) {
                        n.members.push(slot);
                        n.arp.extend(p.arp.iter().map(|&(mac, ip)| (ip, mac, slot)));
                    }
                    if let Some(sec) = &p.security {
                        let prefixes = sec.allowed_pairs.iter().filter_map(|(_, pre)| *pre);
                        pairs.extend(prefixes.map(|pre| (net, slot, pre)));
                    }
                }
                _ => {}
            }
            let i = usize::from(slot);
            if snap.ports.len() <= i {
                snap.ports.resize(i + 1, None);
            }
            let mtu = p.mtu.unwrap_or(DEFAULT_MTU);
            snap.ports[i] = Some(PortView {
                id: p.id.clone(),
                gen,
                role,
                admin_up: p.admin_up,
                max_frame: mtu + crate::wire::ETH_HEADER_LEN as u32,
                static_macs: p.static_macs.clone(),
                policer: p.policer,
                policer_in: p.policer_in,
                security: p.security.clone(),
                dhcp: p.dhcp.clone(),
                dhcp6: p.dhcp6.clone(),
                ra: p.ra.clone(),
                filter: p.filter.clone(),
                worker: p.worker.unwrap_or(0),
            });
            if let (Role::Access(net), Some(_)) = (role, &p.filter) {
                if let Some(Some(n)) = snap.nets.get_mut(usize::from(net)) {
                    n.filtering = true;
                }
            }
        }
        if unslotted != (0, 0) {
            tracing::warn!(
                "{} networks and {} ports beyond the {NONE} slots of each the switch holds are not \
                 forwarded",
                unslotted.0,
                unslotted.1
            );
        }
        uplinks.sort_unstable();
        for n in snap.nets.iter_mut().flatten() {
            n.members.sort_unstable();
            // An address another port may also use (an allowed address pair covering it, as
            // for a VRRP address) can move: its holder answers, not the switch.
            let net = net_slots.get(&n.id).unwrap_or(NONE);
            n.arp.retain(|&(ip, _, owner)| {
                !pairs.iter().any(|&(pn, ps, pre)| {
                    pn == net && ps != owner && pre.contains(std::net::IpAddr::V4(ip))
                })
            });
            n.arp.sort_unstable_by_key(|e| e.0);
            // An address claimed twice is nobody's to answer for.
            let mut i = 0;
            while i < n.arp.len() {
                let j = i + n.arp[i..].iter().take_while(|e| e.0 == n.arp[i].0).count();
                if j - i > 1 {
                    n.arp.drain(i..j);
                } else {
                    i = j;
                }
            }
            n.uplinks = uplinks
                .iter()
                .filter(|(p, _)| *p == n.physnet)
                .map(|&(_, slot)| slot)
                .collect();
        }
        snap
    }

    /// The index of physical network `name`, added if new.
    fn physnet(&mut self, name: &str) -> u16 {
        if let Some(i) = self.physnets.iter().position(|p| p == name) {
            return i as u16;
        }
        self.physnets.push(name.to_owned());
        self.vlan_to_net.push(vec![NONE; 4096].into_boxed_slice());
        (self.physnets.len() - 1) as u16
    }

    /// The network of a frame with VLAN id `vid` (0: untagged) on the uplink of physical network
    /// `physnet`, if a network owns that segment.
    #[inline]
    pub fn uplink_net(&self, physnet: u16, vid: u16) -> Option<u16> {
        let net = *self
            .vlan_to_net
            .get(usize::from(physnet))?
            .get(usize::from(vid))?;
        (net != NONE).then_some(net)
    }

    /// The port in `slot`, if any.
    #[inline]
    pub fn port(&self, slot: u16) -> Option<&PortView> {
        self.ports.get(usize::from(slot)).and_then(Option::as_ref)
    }

    /// The network in `slot`, if any.
    #[inline]
    pub fn net(&self, slot: u16) -> Option<&NetView> {
        self.nets.get(usize::from(slot)).and_then(Option::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(id: &str, vlan: u16) -> NetworkConfig {
        NetworkConfig::vlan(id, vlan, 10)
    }

    #[test]
    fn validation_catches_inconsistencies() {
        let mut c = SwitchConfig {
            networks: vec![net("a", 10), net("b", 10)],
            ports: vec![],
            ..SwitchConfig::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::DuplicateVlan(10)));
        c.networks[1].vlan = 4095;
        assert_eq!(c.validate(), Err(ConfigError::InvalidVlan(4095)));
        c.networks[1].vlan = 11;
        c.ports.push(PortConfig::access("p", "qsx", "zz"));
        assert!(matches!(
            c.validate(),
            Err(ConfigError::UnknownNetwork { .. })
        ));
        c.ports[0] = PortConfig::access("p", "qsx", "a");
        c.ports.push(PortConfig::access("q", "qsx", "b"));
        assert_eq!(
            c.validate(),
            Err(ConfigError::DuplicateDevice("qsx".into()))
        );
    }

    #[test]
    fn slots_are_stable_and_reuse_bumps_the_generation() {
        let mut m = SlotMap::default();
        let (a, ga) = m.get_or_insert("a").unwrap();
        let (b, _) = m.get_or_insert("b").unwrap();
        assert_eq!(m.get_or_insert("a"), Some((a, ga)));
        m.retain(&|id| id != "a");
        let (c, gc) = m.get_or_insert("c").unwrap();
        assert_eq!(c, a);
        assert_ne!(gc, ga);
        assert_eq!(m.get("b"), Some(b));
    }

    #[test]
    fn compile_lists_admin_up_members_and_trunks() {
        let mut down = PortConfig::access("p2", "d2", "a");
        down.admin_up = false;
        let cfg = SwitchConfig {
            networks: vec![net("a", 10), net("b", 20)],
            ports: vec![
                PortConfig::access("p1", "d1", "a"),
                down,
                PortConfig::access("p3", "d3", "b"),
                PortConfig::trunk("up", "d4"),
            ],
            ..SwitchConfig::default()
        };
        let (mut ns, mut ps) = (SlotMap::default(), SlotMap::default());
        let s = Snapshot::compile(&cfg, 1, &mut ns, &mut ps);
        let a = ns.get("a").unwrap();
        assert_eq!(s.net(a).unwrap().members, vec![ps.get("p1").unwrap()]);
        assert_eq!(s.uplink_net(0, 20), ns.get("b"));
        assert_eq!(s.uplink_net(0, 30), None);
        assert_eq!(s.net(a).unwrap().uplinks, vec![ps.get("up").unwrap()]);
    }
}
