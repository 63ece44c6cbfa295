//! Security groups in the switch: the rules of a port's groups, the address sets remote groups
//! expand to, and the per-frame decision with connection tracking.
//!
//! # Design
//! Directions are the VM's, as Neutron names them: *egress* is what a VM sends (checked when the
//! frame enters the switch from its port), *ingress* what it receives (checked for each port a
//! frame is about to be sent to, once per copy of a flood). A frame passes when:
//! 1. it is one of the exchanges Neutron always allows ([`fixed`]): ARP, the VM's own DHCP
//!    client traffic and the replies to it, IPv6 neighbour discovery and MLD; and never a DHCP
//!    server answer or a router advertisement sent by a VM. Other EtherTypes and malformed IP
//!    headers are refused;
//! 2. or it belongs to a tracked connection of the port (either direction) that the port's rules
//!    still allow, or is an ICMP error about one (`RELATED`), or a later fragment of a datagram
//!    whose first fragment passed;
//! 3. or a rule of that direction matches it: ethertype, protocol, destination port range (or
//!    ICMP type and code), and the remote side (the source for ingress, the destination for
//!    egress) in the rule's prefix or in its remote group's address set. A rule of a stateful
//!    group then records the connection ([`ConnTable`]) so that its replies pass without a rule.
//!
//! A rule change or a remote group's membership change moves the switch's *policy epoch*; a
//! connection met under an older epoch is checked again against the rules for the packet that
//! opened it, and one no longer allowed is cut: its packets are dropped both ways until it
//! ages out, as Neutron's OVS firewall marks such connections, so that a reply cannot reopen it
//! from the other side.
//!
//! No function in this module panics on any input.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::conntrack::{ConnTable, Probe, Start};
use crate::flow::{has_ports, Flow, Fragment, L3};
use crate::security::IpPrefix;
use crate::stats::DropReason;
use crate::wire::ipproto::{ICMPV6, UDP};

/// A direction, as the VM sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Towards the VM (the frame leaves the switch on the VM's port).
    Ingress,
    /// From the VM (the frame enters the switch on the VM's port).
    Egress,
}

impl Direction {
    /// The drop reason of a frame refused in this direction.
    pub fn refused(self) -> DropReason {
        match self {
            Direction::Ingress => DropReason::SgIngress,
            Direction::Egress => DropReason::SgEgress,
        }
    }
}

/// The other side of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// Anyone.
    Any,
    /// Addresses in a prefix.
    Prefix(IpPrefix),
    /// The addresses of a security group's member ports (an address set, by group id).
    Group(Arc<str>),
}

/// One security group rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// IP protocol; `None` for any.
    pub proto: Option<u8>,
    /// Destination ports (inclusive), for protocols with ports; `None` for any.
    pub ports: Option<(u16, u16)>,
    /// ICMP type, for ICMP rules; `None` for any.
    pub icmp_type: Option<u8>,
    /// ICMP code, for ICMP rules with a type; `None` for any.
    pub icmp_code: Option<u8>,
    /// The remote side.
    pub remote: Remote,
    /// From a stateful group: the connections it allows are tracked.
    pub stateful: bool,
}

impl Rule {
    /// A stateful rule of no ICMP type: `proto` (any when `None`) to the destination `ports`
    /// (any when `None`), from or to `remote`.
    pub fn new(v6: bool, proto: Option<u8>, ports: Option<(u16, u16)>, remote: Remote) -> Rule {
        Rule {
            v6,
            proto,
            ports,
            icmp_type: None,
            icmp_code: None,
            remote,
            stateful: true,
        }
    }

    /// Does the rule match `flow` in direction `dir`? `ports_known` is false for a later
    /// fragment, which no rule with a port range or an ICMP type matches.
    pub fn matches(&self, flow: &Flow, dir: Direction, sets: &AddrSets, ports_known: bool) -> bool {
        let t = &flow.tuple;
        if self.v6 != t.v6 || self.proto.is_some_and(|p| p != t.proto) {
            return false;
        }
        if let Some((lo, hi)) = self.ports {
            if !ports_known || !has_ports(t.proto) || t.dport < lo || t.dport > hi {
                return false;
            }
        }
        if let Some(ty) = self.icmp_type {
            if !ports_known || !flow.is_icmp() || flow.icmp_type != ty {
                return false;
            }
            if self.icmp_code.is_some_and(|c| c != flow.icmp_code) {
                return false;
            }
        }
        let remote = match dir {
            Direction::Ingress => &t.src,
            Direction::Egress => &t.dst,
        };
        match &self.remote {
            Remote::Any => true,
            Remote::Prefix(p) => prefix_contains(p, t.v6, remote),
            Remote::Group(g) => sets.get(g).is_some_and(|s| s.contains(t.v6, remote)),
        }
    }
}

/// The rules of a port's groups, by direction, rules of stateful groups first (a packet that
/// both kinds allow is tracked, as it would be were the stateless rule absent).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortFilter {
    ingress: Vec<Rule>,
    egress: Vec<Rule>,
    stateful: bool,
}

impl PortFilter {
    /// A port's rules for what its VM receives (`ingress`) and sends (`egress`).
    pub fn new(mut ingress: Vec<Rule>, mut egress: Vec<Rule>) -> Self {
        ingress.sort_by_key(|r| !r.stateful);
        egress.sort_by_key(|r| !r.stateful);
        let stateful = ingress.iter().chain(&egress).any(|r| r.stateful);
        PortFilter {
            ingress,
            egress,
            stateful,
        }
    }

    /// The rules of one direction.
    #[inline]
    pub fn rules(&self, dir: Direction) -> &[Rule] {
        match dir {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }

    /// Does any rule track connections?
    #[inline]
    pub fn stateful(&self) -> bool {
        self.stateful
    }

    /// The first rule of `dir` matching `flow`.
    #[inline]
    pub fn matching(
        &self,
        flow: &Flow,
        dir: Direction,
        sets: &AddrSets,
        ports_known: bool,
    ) -> Option<&Rule> {
        self.rules(dir)
            .iter()
            .find(|r| r.matches(flow, dir, sets, ports_known))
    }
}

/// The addresses of a remote group: its member ports' fixed IPs and allowed address pairs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddrSet {
    v4: Vec<u32>,
    v6: Vec<u128>,
    /// Prefixes shorter than a host (address pairs given as CIDRs).
    nets: Vec<IpPrefix>,
}

impl AddrSet {
    /// A set of addresses and prefixes.
    pub fn new(members: impl IntoIterator<Item = IpPrefix>) -> Self {
        let mut s = AddrSet::default();
        for p in members {
            match p.addr {
                IpAddr::V4(a) if p.len == 32 => s.v4.push(u32::from(a)),
                IpAddr::V6(a) if p.len == 128 => s.v6.push(u128::from(a)),
                _ => s.nets.push(p),
            }
        }
        s.v4.sort_unstable();
        s.v4.dedup();
        s.v6.sort_unstable();
        s.v6.dedup();
        s
    }

    /// Number of addresses and prefixes.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len() + self.nets.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Does the set hold `addr` (IPv4 in its first four bytes when `!v6`)?
    pub fn contains(&self, v6: bool, addr: &[u8; 16]) -> bool {
        let found = if v6 {
            self.v6.binary_search(&u128::from_be_bytes(*addr)).is_ok()
        } else {
            let a = u32::from_be_bytes([addr[0], addr[1], addr[2], addr[3]]);
            self.v4.binary_search(&a).is_ok()
        };
        found || self.nets.iter().any(|p| prefix_contains(p, v6, addr))
    }
}

/// Address sets by group id.
pub type AddrSets = HashMap<Arc<str>, Arc<AddrSet>>;

fn prefix_contains(p: &IpPrefix, v6: bool, addr: &[u8; 16]) -> bool {
    p.contains(crate::flow::ip_of(v6, addr))
}

/// What Neutron decides for a packet before any rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixed {
    /// Always allowed.
    Allow,
    /// Never allowed.
    Deny,
    /// Up to the rules.
    Rules,
}

const DHCP_SERVER: u16 = 67;
const DHCP_CLIENT: u16 = 68;
const DHCP6_CLIENT: u16 = 546;
const DHCP6_SERVER: u16 = 547;
/// ICMPv6 types a VM may always send: MLD query, report and done (130-132), router
/// solicitation (133), neighbour solicitation and advertisement (135, 136), MLDv2 report (143).
const ICMPV6_EGRESS: &[u8] = &[130, 131, 132, 133, 135, 136, 143];
/// ICMPv6 types a VM may always receive: as above with router advertisements (134), without
/// solicitations of routers.
const ICMPV6_INGRESS: &[u8] = &[130, 131, 132, 134, 135, 136, 143];

/// The exchanges Neutron's firewall allows or refuses whatever the rules say: the VM's DHCP
/// client traffic and its answers, neighbour discovery and MLD; never a DHCP server answer or a
/// router advertisement from a VM.
pub fn fixed(dir: Direction, flow: &Flow) -> Fixed {
    let t = &flow.tuple;
    if t.proto == UDP && flow.fragment != Fragment::Later {
        let (client, server) = if t.v6 {
            (DHCP6_CLIENT, DHCP6_SERVER)
        } else {
            (DHCP_CLIENT, DHCP_SERVER)
        };
        match dir {
            Direction::Egress if t.sport == client && t.dport == server => return Fixed::Allow,
            Direction::Egress if t.sport == server && t.dport == client => return Fixed::Deny,
            Direction::Ingress if t.sport == server && t.dport == client => return Fixed::Allow,
            _ => {}
        }
    }
    if t.v6 && t.proto == ICMPV6 && flow.fragment != Fragment::Later {
        let allowed = match dir {
            Direction::Egress => ICMPV6_EGRESS,
            Direction::Ingress => ICMPV6_INGRESS,
        };
        if allowed.contains(&flow.icmp_type) {
            return Fixed::Allow;
        }
        if dir == Direction::Egress && flow.icmp_type == 134 {
            return Fixed::Deny;
        }
    }
    Fixed::Rules
}

/// A port as the firewall needs it.
#[derive(Debug, Clone, Copy)]
pub struct Zone<'a> {
    /// The port's slot: its connections' zone.
    pub slot: u16,
    /// The slot's generation: a new port in the slot starts with no connections.
    pub gen: u32,
    /// Its groups' rules.
    pub filter: &'a PortFilter,
}

/// The policy a frame is checked against: the address sets and the epoch of the rules.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// Address sets of remote groups.
    pub sets: &'a AddrSets,
    /// Moves whenever a rule or an address set changes.
    pub epoch: u64,
}

/// Checks a frame of port `zone` in direction `dir`; `Err` gives the reason to count. `probe`
/// keeps the frame's connection once looked up (`None` for a new frame), so that its check in
/// another zone neither builds nor hashes the key again.
pub fn check(
    conns: &mut ConnTable,
    zone: Zone<'_>,
    dir: Direction,
    l3: &L3,
    probe: &mut Option<Probe>,
    policy: Policy<'_>,
    now: u32,
) -> Result<(), DropReason> {
    let flow = match l3 {
        L3::Arp => return Ok(()),
        L3::Ip(f) => f,
        L3::Other(_) | L3::Malformed => return Err(dir.refused()),
    };
    match fixed(dir, flow) {
        Fixed::Allow => return Ok(()),
        Fixed::Deny => return Err(dir.refused()),
        Fixed::Rules => {}
    }
    let filter = zone.filter;
    let revalidate = |orig: &Flow, d: Direction| still_allowed(filter, policy.sets, orig, d);
    if flow.fragment == Fragment::Later {
        if conns.fragment_passed(zone.slot, zone.gen, flow, now) {
            return Ok(());
        }
        return match filter.matching(flow, dir, policy.sets, false) {
            Some(_) => Ok(()),
            None => Err(dir.refused()),
        };
    }
    // An ICMP error about a tracked connection passes with it (`RELATED`), when it is sent to
    // the quoted packet's sender (as Linux's connection tracking checks); else the rules decide.
    let quote = flow.quoted.as_ref().filter(|q| q.src == flow.tuple.dst);
    if tracked(flow, quote) && (conns.tracks(zone.slot) || filter.stateful()) {
        let tuple = quote.unwrap_or(&flow.tuple);
        let at = probe
            .get_or_insert_with(|| conns.probe(tuple))
            .in_zone(zone.slot);
        let update = quote.is_none().then_some(flow);
        match conns.established(&at, zone.gen, policy.epoch, update, now, revalidate) {
            Some(true) => return pass_fragment(conns, zone, flow, now),
            // A connection the rules cut: only a stateless rule lets its packets pass now.
            Some(false) => {
                return match filter.matching(flow, dir, policy.sets, true) {
                    Some(r) if !r.stateful => pass_fragment(conns, zone, flow, now),
                    _ => Err(dir.refused()),
                };
            }
            None => {}
        }
    }
    let Some(rule) = filter.matching(flow, dir, policy.sets, true) else {
        return Err(dir.refused());
    };
    if rule.stateful && starts_connection(flow) {
        let start = Start {
            dir,
            epoch: policy.epoch,
        };
        // A packet that starts a connection quotes none: the frame's probe is of its own tuple.
        let at = probe
            .get_or_insert_with(|| conns.probe(&flow.tuple))
            .in_zone(zone.slot);
        conns.open(&at, zone.gen, flow, start, now)?;
    }
    pass_fragment(conns, zone, flow, now)
}

/// Do a port's rules still let a tracked connection be: does a stateful rule of the direction
/// it was opened in match the packet that opened it? (A connection met under an older policy
/// epoch is cut when not.)
pub fn still_allowed(filter: &PortFilter, sets: &AddrSets, opening: &Flow, dir: Direction) -> bool {
    filter
        .matching(opening, dir, sets, true)
        .is_some_and(|r| r.stateful)
}

/// A first fragment that passes lets its datagram's later fragments pass.
#[inline]
fn pass_fragment(
    conns: &mut ConnTable,
    zone: Zone<'_>,
    flow: &Flow,
    now: u32,
) -> Result<(), DropReason> {
    if flow.fragment == Fragment::First {
        conns.fragment_seen(zone.slot, zone.gen, flow, now);
    }
    Ok(())
}

/// Does this packet belong to connections at all? Of ICMP, only a query or its reply (an echo,
/// a timestamp, information or address mask request, an ICMPv6 node information query: those
/// Linux's connection tracking pairs by identifier, [`crate::flow::icmp_query`]), or an error
/// about a connection (`quote`). Other messages would have a key without ports, one for every
/// such message between two addresses; the rules decide those.
#[inline]
fn tracked(flow: &Flow, quote: Option<&crate::flow::Tuple>) -> bool {
    !flow.is_icmp() || flow.is_query() || quote.is_some()
}

/// Can this packet open a connection? Of ICMP, only a query (a reply or an error only belongs to
/// one, other messages to none); not a TCP reset.
#[inline]
fn starts_connection(flow: &Flow) -> bool {
    if flow.is_icmp() {
        return flow.quoted.is_none() && flow.is_query_request();
    }
    !(flow.tuple.proto == crate::wire::ipproto::TCP && flow.tcp_flags & crate::flow::tcp::RST != 0)
}

#[cfg(test)]
mod tests;
