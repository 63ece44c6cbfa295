//! The interface to the data plane.
//!
//! `control` never depends on the data plane: it derives a [`DesiredState`]
//! (every network with its VLAN, every port that has something to forward)
//! and hands it to a [`Forwarder`], which the binary implements on top of the
//! `dataplane` crate. The forwarder answers whether a port's interface is
//! open and forwarding, which drives the port's `op-status`.

use std::net::IpAddr;

use crate::qos::QosLimit;

/// A network as the data plane needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredNetwork {
    /// Network id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Segmentation id: the 802.1Q tag on its physical network's uplink (0: untagged, or
    /// local).
    pub vlan: u16,
    /// Its physical network (`None`: a local network, on no uplink).
    pub physnet: Option<String>,
}

/// A port's anti-spoofing rules (Neutron port security): it may send only
/// from its MAC, and for ARP/IPv4/IPv6 only from its fixed IPs, or from an
/// allowed address pair.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DesiredSecurity {
    /// The port's MAC, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The port's fixed IPs.
    pub fixed_ips: Vec<IpAddr>,
    /// Allowed address pairs: a MAC and an address or CIDR.
    pub allowed_pairs: Vec<(String, String)>,
}

/// A port as the data plane needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DesiredPort {
    /// Port id.
    pub id: String,
    /// The network whose VLAN the port is an access port of.
    pub network_id: String,
    /// The host device to open (from the interface registry).
    pub device: String,
    /// Admin state (of the port and its network): forward only when true.
    pub admin_up: bool,
    /// The port's MAC, `aa:bb:cc:dd:ee:ff` (installed as a static entry).
    pub mac: String,
    /// The port's fixed IPs, whatever its port security (the switch answers ARP for its IPv4
    /// ones).
    pub fixed_ips: Vec<IpAddr>,
    /// Anti-spoofing rules, when port security is on.
    pub security: Option<DesiredSecurity>,
    /// The rate limit of what the VM sends (the QoS extension's, else the egress rules of its
    /// QoS policy), if any.
    pub qos: Option<QosLimit>,
    /// The rate limit of what the VM receives (the ingress rules of its QoS policy), if any.
    pub qos_ingress: Option<QosLimit>,
    /// What the switch's DHCP responder answers the port's client, when the port has a fixed
    /// IPv4 address on a subnet with DHCP enabled.
    pub dhcp: Option<DesiredDhcp>,
    /// What the switch's DHCPv6 responder answers the port's client, when the port holds an
    /// address on a DHCP-enabled subnet whose `ipv6_address_mode` is `dhcpv6-stateful` or
    /// `dhcpv6-stateless`.
    pub dhcp6: Option<DesiredDhcp6>,
    /// What the switch advertises to the port's client when it solicits a router: the port's
    /// subnets with an `ipv6_ra_mode`, if any.
    pub ra: Option<DesiredRa>,
    /// The rules of the port's security groups, when port security is on (no groups: no rules,
    /// and only what Neutron always allows passes).
    pub filter: Option<DesiredFilter>,
}

/// A port's security group rules: the union of its groups' rules, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DesiredFilter {
    /// The rules, sorted, without duplicates.
    pub rules: Vec<DesiredRule>,
}

/// One security group rule as the data plane matches it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DesiredRule {
    /// Towards the VM (else from it).
    pub ingress: bool,
    /// IPv6 (else IPv4).
    pub ipv6: bool,
    /// IP protocol number; `None` for any (ICMP of an IPv6 rule is ICMPv6, 58).
    pub protocol: Option<u8>,
    /// `port_range_min`: the first destination port, or the ICMP type.
    pub port_min: Option<u16>,
    /// `port_range_max`: the last destination port, or the ICMP code.
    pub port_max: Option<u16>,
    /// `remote_ip_prefix`, normalized.
    pub remote_prefix: Option<String>,
    /// `remote_group_id`: the group whose members' addresses are the remote side.
    pub remote_group: Option<String>,
    /// The rule's group is stateful.
    pub stateful: bool,
}

/// A security group's members' addresses (fixed IPs and allowed address pairs), which rules
/// naming it as their remote group match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DesiredGroup {
    /// Group id.
    pub id: String,
    /// Addresses and prefixes, sorted, without duplicates.
    pub addresses: Vec<String>,
}

/// A port's DHCP answers: its address on a DHCP-enabled subnet and that subnet's settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DesiredDhcp {
    /// The port's IPv4 address.
    pub ip: String,
    /// The subnet's CIDR.
    pub cidr: String,
    /// The subnet's gateway.
    pub gateway: Option<String>,
    /// `dns_nameservers`.
    pub dns: Vec<String>,
    /// `host_routes`: destination CIDR and next hop.
    pub routes: Vec<(String, String)>,
    /// The network's MTU.
    pub mtu: u32,
}

/// A port's DHCPv6 answers: its addresses on `dhcpv6-stateful` subnets (none: only options),
/// and the DNS servers of its subnets whose addresses or options come from DHCPv6.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DesiredDhcp6 {
    /// The port's addresses on stateful subnets.
    pub addresses: Vec<std::net::Ipv6Addr>,
    /// Their subnets' IPv6 `dns_nameservers`.
    pub dns: Vec<std::net::Ipv6Addr>,
}

/// What the switch's router advertisements tell a port's VM.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DesiredRa {
    /// The /64 prefixes the VM forms its address from (`ipv6_ra_mode` `slaac` or
    /// `dhcpv6-stateless`).
    pub prefixes: Vec<std::net::Ipv6Addr>,
    /// The on-link prefixes whose addresses come from DHCPv6 (`dhcpv6-stateful`), with their
    /// lengths.
    pub on_link: Vec<(std::net::Ipv6Addr, u8)>,
    /// Addresses come from DHCPv6 (a `dhcpv6-stateful` subnet): the managed flag.
    pub managed: bool,
    /// Options come from DHCPv6 (either DHCPv6 mode): the other-configuration flag.
    pub other: bool,
    /// Their IPv6 `dns_nameservers`.
    pub dns: Vec<std::net::Ipv6Addr>,
    /// The network's MTU.
    pub mtu: u32,
}

/// The whole desired forwarding configuration.
///
/// The ports that appear: those whose attachment is plugged (with their
/// registered interface's device), and the others created through v2.0,
/// with the device `tap` + the first 11 characters of their id (the
/// Neutron/Nova convention), which the data plane opens when it appears.
/// Networks and ports are in creation order. Two ports may name the same
/// device (a plugged interface and a `tap` name); the data plane forwards
/// for the first and reports the other as refused.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DesiredState {
    /// Every network.
    pub networks: Vec<DesiredNetwork>,
    /// Every plugged port.
    pub ports: Vec<DesiredPort>,
    /// Every security group's members' addresses.
    pub groups: Vec<DesiredGroup>,
}

/// One item of a change set: set (added or changed) or removed, by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<T> {
    /// Added, or changed: the item as it is now.
    Set(T),
    /// Removed (or no longer forwarded): its id.
    Removed(String),
}

/// What changed in the desired state, as of a revision of the store.
///
/// A `full` change set is the whole state: whatever it does not name is
/// gone. It is sent at startup and on an explicit resync; every other change
/// set names only what changed since the previous one, and change sets arrive
/// in revision order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changes {
    /// The store revision this brings the data plane to.
    pub revision: u64,
    /// The whole state rather than a delta.
    pub full: bool,
    /// Networks set or removed.
    pub networks: Vec<Change<DesiredNetwork>>,
    /// Ports set or removed.
    pub ports: Vec<Change<DesiredPort>>,
    /// Security groups' member addresses set or removed.
    pub groups: Vec<Change<DesiredGroup>>,
}

impl Changes {
    /// True when it changes nothing (a full change set always counts).
    pub fn is_empty(&self) -> bool {
        !self.full && self.networks.is_empty() && self.ports.is_empty() && self.groups.is_empty()
    }
}

impl DesiredState {
    /// Applies a change set, keeping creation order: a new item goes last, a
    /// changed one keeps its place.
    pub fn apply(&mut self, changes: &Changes) {
        if changes.full {
            *self = DesiredState::default();
        }
        fn apply_one<T: Clone>(items: &mut Vec<T>, c: &Change<T>, id: impl Fn(&T) -> &str) {
            match c {
                Change::Set(v) => match items.iter_mut().find(|x| id(x) == id(v)) {
                    Some(x) => *x = v.clone(),
                    None => items.push(v.clone()),
                },
                Change::Removed(gone) => items.retain(|x| id(x) != gone),
            }
        }
        for c in &changes.networks {
            apply_one(&mut self.networks, c, |n| &n.id);
        }
        for c in &changes.ports {
            apply_one(&mut self.ports, c, |p| &p.id);
        }
        for c in &changes.groups {
            apply_one(&mut self.groups, c, |g| &g.id);
        }
    }
}

/// What the control plane drives.
pub trait Forwarder: Send + Sync + 'static {
    /// Called with every change of the desired state: once at startup with
    /// the whole state (`full`), then with each committed write's effect, in
    /// revision order. Writes that change nothing the data plane sees (names,
    /// descriptions, subnets) cause no call.
    ///
    /// Calls come from one thread, one at a time; several writes' changes
    /// may arrive as one set. It must not call back into [`crate::Control`];
    /// it should publish the new configuration and return.
    fn apply(&self, changes: &Changes);

    /// Waits (briefly) until these ports, just set, are in force (opened,
    /// when their device exists here). Called before a write that set them
    /// is answered, outside every lock.
    fn settle(&self, _ports: &[String]) {}

    /// These host devices are registered interfaces: ports are expected on
    /// them, so the data plane may prepare them ahead (attach its program)
    /// to make a plug fast. Called with the registrations a write made.
    fn prepare_devices(&self, _devices: &[String]) {}

    /// These devices are no longer registered interfaces.
    fn release_devices(&self, _devices: &[String]) {}

    /// Keeps exactly these devices prepared: those it kept and that are not named are released
    /// (a whole state replaces what the deltas said). By default, prepares them.
    fn keep_devices(&self, devices: &[String]) {
        self.prepare_devices(devices);
    }

    /// True while this port's interface is open and forwarding (drives the
    /// port's op-status: UP/DOWN).
    fn port_up(&self, port_id: &str) -> bool;

    /// Whether a data plane stands behind this forwarder (false for an API server without one:
    /// it then need not follow what other processes commit to a shared store).
    fn forwards(&self) -> bool {
        true
    }

    /// Why the data plane refuses to forward for this port (a conflict or a
    /// limit), if it does: the port's status is then ERROR.
    fn port_error(&self, _port_id: &str) -> Option<String> {
        None
    }

    /// Live counters of a port the data plane holds (the port statistics
    /// extension); `None` when it holds no such port.
    fn port_stats(&self, _port_id: &str) -> Option<PortStatistics> {
        None
    }

    /// The learned and static MAC entries of a network (the admin MAC table
    /// view); `None` when the data plane has no such network.
    fn mac_table(&self, _network_id: &str) -> Option<Vec<MacEntry>> {
        None
    }

    /// The connections a port's stateful security groups track (the admin connections view);
    /// `None` when the data plane holds no such port.
    fn connections(&self, _port_id: &str) -> Option<Vec<TrackedConnection>> {
        None
    }
}

/// Live counters of one port as the data plane reports them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortStatistics {
    /// Frames received from the port's device (sent by the VM).
    pub rx_packets: u64,
    /// Bytes received from the port's device.
    pub rx_bytes: u64,
    /// Frames sent to the port's device.
    pub tx_packets: u64,
    /// Bytes sent to the port's device.
    pub tx_bytes: u64,
    /// Received frames that were malformed (too short, too long, bad source).
    pub rx_errors: u64,
    /// Frames the kernel refused to transmit.
    pub tx_errors: u64,
    /// Frames dropped, whatever the reason.
    pub dropped: u64,
    /// Received frames that were flooded.
    pub floods: u64,
    /// Received frames whose partial TCP/UDP checksum (left by the VM for its NIC to finish)
    /// was finished, by the switch or by the egress port's kernel.
    pub csum_completed: u64,
    /// TCP super-frames (the VM's TSO frames, received whole) the switch split into segments.
    pub gso_segmented: u64,
    /// TCP super-frames from the port that left whole, with their segment size (through the
    /// egress port's packet socket).
    pub gso_whole: u64,
    /// TCP segments sent to the port merged into super-frames (consecutive segments of one
    /// flow, sent as one frame through the port's packet socket).
    pub coalesced: u64,
    /// DHCP replies the switch's responder sent to the port.
    pub dhcp_replies: u64,
    /// ARP replies the switch sent to the port for its network's known addresses.
    pub arp_replies: u64,
    /// Router advertisements the switch sent to the port, answering its solicitations.
    pub ra_replies: u64,
    /// Frames from the port that its XDP program forwarded itself, by the switch's shortcut
    /// (counted in `rx_packets` too).
    pub xdp_forwarded: u64,
    /// Times the port's transmit stalled: its device sent slower than it was sent to, or
    /// stopped, for long enough that frames beyond its TX ring's room were dropped (reason
    /// `tx_stalled`) until it had room again.
    pub tx_stalls: u64,
    /// Milliseconds its transmit spent stalled, the current stall's so far included: its
    /// rate is the share of the time the port was stalled (a status read now and then can
    /// miss stalls of a device that drains in bursts).
    pub tx_stalled_ms: u64,
    /// Whether its transmit is stalled now.
    pub tx_stalled: bool,
    /// Drops by reason (every reason, zeros included), in a stable order.
    pub drops: Vec<(String, u64)>,
    /// The kernel's socket statistics by name.
    pub kernel: Vec<(String, u64)>,
}

/// One entry of a network's MAC table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacEntry {
    /// The address, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The port it was learned on (or is statically bound to); empty when
    /// that port is gone.
    pub port_id: String,
    /// Seconds since a frame from it was last seen.
    pub age_secs: u32,
    /// Installed from configuration, never aged out.
    pub is_static: bool,
}

/// One connection a port's stateful security groups track, as the data plane holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedConnection {
    /// IP protocol number.
    pub protocol: u8,
    /// Source of the packet that opened it.
    pub source: std::net::IpAddr,
    /// Destination of the packet that opened it.
    pub destination: std::net::IpAddr,
    /// Its source and destination ports, for protocols with ports.
    pub ports: Option<(u16, u16)>,
    /// Its ICMP type, code and echo identifier (0 but for echo), for ICMP.
    pub icmp: Option<(u8, u8, u16)>,
    /// The opening packet went to the port's VM (else it came from it).
    pub ingress: bool,
    /// `new`, `replied`, `established`, `closing`, `closed` or `reset`.
    pub state: String,
    /// Not allowed by the rules as they are now: dropped both ways until it expires.
    pub cut: bool,
    /// Seconds since a packet of it passed.
    pub idle_secs: u32,
    /// Seconds until it expires without another packet.
    pub expires_secs: u32,
}

/// A forwarder that forwards nothing: ports are never up. For tests and
/// `--no-dataplane`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NullForwarder;

impl Forwarder for NullForwarder {
    fn apply(&self, _changes: &Changes) {}

    fn forwards(&self) -> bool {
        false
    }

    fn port_up(&self, _port_id: &str) -> bool {
        false
    }
}
