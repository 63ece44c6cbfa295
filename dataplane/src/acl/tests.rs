//! Rules, address sets and the per-frame check with connection tracking, on crafted frames.

use super::*;
use crate::flow::build::*;
use crate::flow::{parse, tcp};
use crate::wire::ipproto::{ICMP, ICMPV6, TCP};
use crate::wire::{build_frame, ETHERTYPE_IPV4};

/// Refused by the ingress or the egress rules.
const NO_IN: Result<(), DropReason> = Err(DropReason::SgIngress);
const NO_OUT: Result<(), DropReason> = Err(DropReason::SgEgress);
const VM4: [u8; 4] = [198, 18, 0, 10];
const PEER4: [u8; 4] = [198, 18, 0, 20];
const OTHER4: [u8; 4] = [198, 19, 0, 1];

fn rule(v6: bool, proto: Option<u8>, ports: Option<(u16, u16)>, remote: Remote) -> Rule {
    Rule::new(v6, proto, ports, remote)
}

/// Neutron's default group for a port: egress anything, ingress from the group's members.
fn default_group() -> PortFilter {
    let members = Remote::Group(Arc::from("default"));
    PortFilter::new(
        vec![
            rule(false, None, None, members.clone()),
            rule(true, None, None, members),
        ],
        vec![
            rule(false, None, None, Remote::Any),
            rule(true, None, None, Remote::Any),
        ],
    )
}

fn sets(members: &[[u8; 4]]) -> AddrSets {
    let set = AddrSet::new(members.iter().map(|a| IpPrefix::host(IpAddr::from(*a))));
    AddrSets::from([(Arc::from("default"), Arc::new(set))])
}

struct Rig {
    conns: ConnTable,
    filter: PortFilter,
    sets: AddrSets,
    epoch: u64,
    now: u32,
}

impl Rig {
    fn new(filter: PortFilter) -> Rig {
        Rig {
            conns: ConnTable::default(),
            filter,
            sets: AddrSets::default(),
            epoch: 1,
            now: 100,
        }
    }

    fn check(&mut self, dir: Direction, frame: &[u8]) -> Result<(), DropReason> {
        let zone = Zone {
            slot: 3,
            gen: 7,
            filter: &self.filter,
        };
        let policy = Policy {
            sets: &self.sets,
            epoch: self.epoch,
        };
        check(
            &mut self.conns,
            zone,
            dir,
            &parse(frame),
            &mut None,
            policy,
            self.now,
        )
    }

    /// From the VM to the peer.
    fn outbound(&mut self, proto: u8, l4: &[u8]) -> Result<(), DropReason> {
        self.check(Direction::Egress, &v4(VM4, PEER4, proto, l4))
    }

    /// From `from` to the VM.
    fn inbound(&mut self, from: [u8; 4], proto: u8, l4: &[u8]) -> Result<(), DropReason> {
        self.check(Direction::Ingress, &v4(from, VM4, proto, l4))
    }
}

#[test]
fn with_no_rules_only_what_neutron_always_allows_passes() {
    let mut r = Rig::new(PortFilter::default());
    assert_eq!(r.outbound(TCP, &tcp(40000, 80, tcp::SYN)), NO_OUT);
    assert_eq!(r.inbound(PEER4, UDP, &udp(1, 2)), NO_IN);
    // ARP, the VM's DHCP client and the answers to it.
    let arp = build_frame(PEER, VM, None, crate::wire::ETHERTYPE_ARP, &[0; 28]);
    assert_eq!(r.check(Direction::Egress, &arp), Ok(()));
    assert_eq!(r.check(Direction::Ingress, &arp), Ok(()));
    let discover = v4([0; 4], [255; 4], UDP, &udp(68, 67));
    assert_eq!(r.check(Direction::Egress, &discover), Ok(()));
    assert_eq!(r.inbound(PEER4, UDP, &udp(67, 68)), Ok(()));
    // Neighbour discovery both ways; a router advertisement only towards the VM.
    let ns = v6(a6(1), a6(2), ICMPV6, &icmp(135, 0, 0));
    assert_eq!(r.check(Direction::Egress, &ns), Ok(()));
    assert_eq!(r.check(Direction::Ingress, &ns), Ok(()));
    let ra = v6(a6(1), a6(2), ICMPV6, &icmp(134, 0, 0));
    assert_eq!(r.check(Direction::Ingress, &ra), Ok(()));
    // Other EtherTypes are refused.
    let lldp = build_frame(PEER, VM, None, 0x88cc, &[0; 40]);
    assert_eq!(r.check(Direction::Ingress, &lldp), NO_IN);
}

#[test]
fn a_vm_never_answers_dhcp_nor_advertises_a_router_whatever_its_rules() {
    let mut r = Rig::new(default_group());
    assert_eq!(r.outbound(UDP, &udp(67, 68)), NO_OUT);
    let ra = v6(a6(1), a6(2), ICMPV6, &icmp(134, 0, 0));
    assert_eq!(r.check(Direction::Egress, &ra), NO_OUT);
    assert_eq!(r.outbound(UDP, &udp(5000, 53)), Ok(()));
}

#[test]
fn replies_of_a_stateful_connection_pass_without_a_rule() {
    let mut r = Rig::new(default_group());
    // Nobody outside the group may open a connection to the VM.
    assert_eq!(r.inbound(PEER4, TCP, &tcp(50000, 22, tcp::SYN)), NO_IN);
    // The VM opens one: its answers come back.
    assert_eq!(r.outbound(TCP, &tcp(40000, 80, tcp::SYN)), Ok(()));
    assert_eq!(
        r.inbound(PEER4, TCP, &tcp(80, 40000, tcp::SYN | tcp::ACK)),
        Ok(())
    );
    assert_eq!(r.inbound(PEER4, TCP, &tcp(80, 40000, tcp::ACK)), Ok(()));
    // Another port of the peer is another connection.
    assert_eq!(r.inbound(PEER4, TCP, &tcp(81, 40000, tcp::ACK)), NO_IN);
    // UDP and ICMP echo alike.
    assert_eq!(r.outbound(UDP, &udp(5000, 53)), Ok(()));
    assert_eq!(r.inbound(PEER4, UDP, &udp(53, 5000)), Ok(()));
    assert_eq!(r.outbound(ICMP, &icmp(8, 0, 9)), Ok(()));
    assert_eq!(r.inbound(PEER4, ICMP, &icmp(0, 0, 9)), Ok(()));
    assert_eq!(r.inbound(PEER4, ICMP, &icmp(0, 0, 10)), NO_IN);
    assert_eq!(r.inbound(PEER4, ICMP, &icmp(8, 0, 11)), NO_IN);
    assert_eq!(r.conns.zone_len(3, 7), 3);
}

#[test]
fn an_icmp_error_about_a_tracked_connection_passes_with_it() {
    let mut r = Rig::new(default_group());
    assert_eq!(r.outbound(UDP, &udp(5000, 53)), Ok(()));
    let about = ipv4_packet(VM4, PEER4, UDP, &udp(5000, 53), 0, 3);
    let mut err = vec![3, 3, 0, 0, 0, 0, 0, 0];
    err.extend_from_slice(&about[..28]);
    assert_eq!(r.inbound(OTHER4, ICMP, &err), Ok(()));
    // About another connection: refused.
    let about = ipv4_packet(VM4, PEER4, UDP, &udp(5001, 53), 0, 3);
    let mut err = vec![3, 3, 0, 0, 0, 0, 0, 0];
    err.extend_from_slice(&about[..28]);
    assert_eq!(r.inbound(OTHER4, ICMP, &err), NO_IN);
}

#[test]
fn remote_groups_match_their_members_addresses_only() {
    let mut r = Rig::new(default_group());
    r.sets = sets(&[PEER4]);
    assert_eq!(r.inbound(PEER4, TCP, &tcp(50000, 22, tcp::SYN)), Ok(()));
    assert_eq!(r.inbound(OTHER4, TCP, &tcp(50000, 22, tcp::SYN)), NO_IN);
    // Membership follows at once (the switch moves the epoch with it).
    r.sets = sets(&[PEER4, OTHER4]);
    r.epoch += 1;
    assert_eq!(r.inbound(OTHER4, TCP, &tcp(50000, 22, tcp::SYN)), Ok(()));
    // A member that leaves loses the connections it opened.
    r.sets = sets(&[OTHER4]);
    r.epoch += 1;
    assert_eq!(r.inbound(PEER4, TCP, &tcp(50000, 22, tcp::ACK)), NO_IN);
    assert_eq!(r.outbound(TCP, &tcp(22, 50000, tcp::ACK)), NO_OUT);
}

#[test]
fn port_ranges_icmp_types_and_prefixes() {
    let ssh = rule(false, Some(TCP), Some((22, 22)), Remote::Any);
    let web = rule(
        false,
        Some(TCP),
        Some((8000, 8080)),
        Remote::Prefix(IpPrefix::parse("198.18.0.0/24").unwrap()),
    );
    let ping = Rule {
        icmp_type: Some(8),
        icmp_code: Some(0),
        ..rule(false, Some(ICMP), None, Remote::Any)
    };
    let mut r = Rig::new(PortFilter::new(vec![ssh, web, ping], vec![]));
    assert_eq!(r.inbound(OTHER4, TCP, &tcp(1, 22, tcp::SYN)), Ok(()));
    assert_eq!(r.inbound(OTHER4, TCP, &tcp(1, 23, tcp::SYN)), NO_IN);
    assert_eq!(r.inbound(PEER4, TCP, &tcp(1, 8080, tcp::SYN)), Ok(()));
    assert_eq!(r.inbound(PEER4, TCP, &tcp(1, 8081, tcp::SYN)), NO_IN);
    assert_eq!(r.inbound(OTHER4, TCP, &tcp(1, 8000, tcp::SYN)), NO_IN);
    assert_eq!(r.inbound(OTHER4, UDP, &udp(1, 22)), NO_IN);
    assert_eq!(r.inbound(OTHER4, ICMP, &icmp(8, 0, 1)), Ok(()));
    assert_eq!(r.inbound(OTHER4, ICMP, &icmp(8, 1, 2)), NO_IN);
    assert_eq!(r.inbound(OTHER4, ICMP, &icmp(13, 0, 1)), NO_IN);
    // The replies go out although no egress rule allows anything.
    assert_eq!(r.outbound(TCP, &tcp(22, 1, tcp::SYN | tcp::ACK)), NO_OUT);
    assert_eq!(
        r.check(
            Direction::Egress,
            &v4(VM4, OTHER4, TCP, &tcp(22, 1, tcp::SYN | tcp::ACK))
        ),
        Ok(())
    );
    assert_eq!(
        r.check(Direction::Egress, &v4(VM4, OTHER4, ICMP, &icmp(0, 0, 1))),
        Ok(())
    );
    // IPv6 rules do not match IPv4 packets.
    let mut r = Rig::new(PortFilter::new(
        vec![rule(true, None, None, Remote::Any)],
        vec![],
    ));
    assert_eq!(r.inbound(PEER4, UDP, &udp(1, 2)), NO_IN);
    assert_eq!(
        r.check(Direction::Ingress, &v6(a6(1), a6(2), UDP, &udp(1, 2))),
        Ok(())
    );
}

#[test]
fn removing_a_rule_cuts_the_connections_it_allowed_both_ways() {
    let ssh = rule(false, Some(TCP), Some((22, 22)), Remote::Any);
    let mut r = Rig::new(PortFilter::new(
        vec![ssh.clone()],
        vec![rule(false, None, None, Remote::Any)],
    ));
    assert_eq!(r.inbound(PEER4, TCP, &tcp(50000, 22, tcp::SYN)), Ok(()));
    assert_eq!(
        r.outbound(TCP, &tcp(22, 50000, tcp::SYN | tcp::ACK)),
        Ok(())
    );
    // A connection the VM opened stays: its rule is still there.
    assert_eq!(r.outbound(UDP, &udp(5000, 53)), Ok(()));
    let egress = vec![rule(false, None, None, Remote::Any)];
    r.filter = PortFilter::new(vec![], egress.clone());
    r.epoch += 1;
    assert_eq!(r.inbound(PEER4, TCP, &tcp(50000, 22, tcp::ACK)), NO_IN);
    // The VM's side cannot reopen it either, though its egress rules allow anything.
    assert_eq!(r.outbound(TCP, &tcp(22, 50000, tcp::ACK)), NO_OUT);
    assert_eq!(r.inbound(PEER4, UDP, &udp(53, 5000)), Ok(()));
    // Put back, it passes again.
    r.filter = PortFilter::new(vec![ssh], egress);
    r.epoch += 1;
    assert_eq!(r.inbound(PEER4, TCP, &tcp(50000, 22, tcp::ACK)), Ok(()));
}

#[test]
fn stateless_rules_track_nothing() {
    let mut any = rule(false, None, None, Remote::Any);
    any.stateful = false;
    let mut r = Rig::new(PortFilter::new(vec![], vec![any]));
    assert_eq!(r.outbound(TCP, &tcp(40000, 80, tcp::SYN)), Ok(()));
    assert_eq!(
        r.inbound(PEER4, TCP, &tcp(80, 40000, tcp::SYN | tcp::ACK)),
        NO_IN
    );
    assert!(r.conns.is_empty());
}

#[test]
fn later_fragments_follow_their_first() {
    let mut r = Rig::new(PortFilter::new(
        vec![rule(false, Some(UDP), Some((53, 53)), Remote::Any)],
        vec![],
    ));
    let frame = |l4: &[u8], frag: u16, id: u16| {
        build_frame(
            PEER,
            VM,
            None,
            ETHERTYPE_IPV4,
            &ipv4_packet(PEER4, VM4, UDP, l4, frag, id),
        )
    };
    // The rest of a datagram whose first fragment was refused is refused.
    assert_eq!(
        r.check(Direction::Ingress, &frame(&udp(1, 54), 0x2000, 5)),
        NO_IN
    );
    assert_eq!(r.check(Direction::Ingress, &frame(&[0; 8], 185, 5)), NO_IN);
    // That of an allowed one passes.
    assert_eq!(
        r.check(Direction::Ingress, &frame(&udp(1, 53), 0x2000, 6)),
        Ok(())
    );
    assert_eq!(r.check(Direction::Ingress, &frame(&[0; 8], 185, 6)), Ok(()));
    r.now += 60;
    assert_eq!(r.check(Direction::Ingress, &frame(&[0; 8], 370, 6)), NO_IN);
}

#[test]
fn a_port_filling_its_share_drops_only_its_own_new_connections() {
    let filter = default_group();
    let mut conns = ConnTable::new(4);
    let sets = AddrSets::default();
    let policy = Policy {
        sets: &sets,
        epoch: 1,
    };
    let mut out = |slot: u16, sport: u16| {
        let zone = Zone {
            slot,
            gen: 1,
            filter: &filter,
        };
        let f = v4(VM4, PEER4, UDP, &udp(sport, 53));
        check(
            &mut conns,
            zone,
            Direction::Egress,
            &parse(&f),
            &mut None,
            policy,
            10,
        )
    };
    for p in 0..4 {
        assert_eq!(out(1, 1000 + p), Ok(()));
    }
    assert_eq!(out(1, 2000), Err(DropReason::ConntrackFull));
    // Its established connections go on; another port opens its own.
    assert_eq!(out(1, 1000), Ok(()));
    assert_eq!(out(2, 2000), Ok(()));
}

#[test]
fn a_stateful_rule_decides_before_a_stateless_one_matching_the_same_packet() {
    let mut loose = rule(false, None, None, Remote::Any);
    loose.stateful = false;
    let tracked = rule(false, Some(UDP), None, Remote::Any);
    let mut r = Rig::new(PortFilter::new(vec![], vec![loose, tracked]));
    assert!(r.filter.stateful());
    assert_eq!(r.outbound(UDP, &udp(5000, 53)), Ok(()));
    assert_eq!(
        r.inbound(PEER4, UDP, &udp(53, 5000)),
        Ok(()),
        "tracked: the reply passes"
    );
}

/// An ICMP error passes with the connection it quotes only when it goes to the quoted packet's
/// sender: a VM cannot carry messages past its rules by quoting a connection it has.
#[test]
fn an_icmp_error_is_related_only_on_its_way_to_the_quoted_sender() {
    let ssh = rule(false, Some(TCP), Some((22, 22)), Remote::Any);
    let mut r = Rig::new(PortFilter::new(vec![ssh], vec![]));
    assert_eq!(r.inbound(PEER4, TCP, &tcp(50000, 22, tcp::SYN)), Ok(()));
    let about = ipv4_packet(PEER4, VM4, TCP, &tcp(50000, 22, tcp::ACK), 0, 3);
    let mut err = vec![3, 3, 0, 0, 0, 0, 0, 0];
    err.extend_from_slice(&about[..40]);
    assert_eq!(
        r.check(Direction::Egress, &v4(VM4, PEER4, ICMP, &err)),
        Ok(())
    );
    assert_eq!(
        r.check(Direction::Egress, &v4(VM4, OTHER4, ICMP, &err)),
        NO_OUT
    );
}

/// ICMP queries are tracked as Linux's connection tracking pairs them: a timestamp, information
/// or address mask request, or an ICMPv6 node information query, lets its own reply in (by
/// identifier and kind), and nothing else; other ICMP messages belong to no connection (a
/// router advertisement does not pass for a request the VM sent).
#[test]
fn icmp_queries_let_their_own_replies_in_and_other_icmp_is_left_to_the_rules() {
    let mut r = Rig::new(default_group());
    for (request, reply) in [(13, 14), (15, 16), (17, 18)] {
        assert_eq!(r.outbound(ICMP, &icmp(request, 0, 7)), Ok(()));
        assert_eq!(r.inbound(PEER4, ICMP, &icmp(reply, 0, 8)), NO_IN, "{reply}");
        assert_eq!(
            r.inbound(PEER4, ICMP, &icmp(reply, 0, 7)),
            Ok(()),
            "{reply}"
        );
        // The peer's own query is no part of the VM's.
        assert_eq!(r.inbound(PEER4, ICMP, &icmp(request, 0, 7)), NO_IN);
    }
    assert_eq!(r.conns.zone_len(3, 7), 3);
    // Of another kind, the same identifier is another connection.
    assert_eq!(r.inbound(PEER4, ICMP, &icmp(0, 0, 7)), NO_IN);
    assert_eq!(r.inbound(PEER4, ICMP, &icmp(9, 0, 0)), NO_IN);
    assert_eq!(r.inbound(PEER4, ICMP, &icmp(9, 0, 7)), NO_IN);
    assert_eq!(r.outbound(ICMP, &icmp(9, 0, 0)), Ok(()));
    assert_eq!(r.conns.zone_len(3, 7), 3);
    // An echo is tracked as before.
    assert_eq!(r.outbound(ICMP, &icmp(8, 0, 7)), Ok(()));
    assert_eq!(r.inbound(PEER4, ICMP, &icmp(0, 0, 7)), Ok(()));
    assert_eq!(r.inbound(PEER4, ICMP, &icmp(14, 0, 7)), Ok(()));
    assert_eq!(r.conns.zone_len(3, 7), 4);
    // ICMPv6: a node information query and its reply, not an echo reply.
    let (vm, peer) = (a6(1), a6(2));
    let out6 = |l4: &[u8]| v6(vm, peer, ICMPV6, l4);
    let in6 = |l4: &[u8]| v6(peer, vm, ICMPV6, l4);
    assert_eq!(r.check(Direction::Egress, &out6(&icmp(139, 0, 5))), Ok(()));
    assert_eq!(r.check(Direction::Ingress, &in6(&icmp(129, 0, 5))), NO_IN);
    assert_eq!(r.check(Direction::Ingress, &in6(&icmp(140, 0, 5))), Ok(()));
}

/// A connection a rule change cut is not refused where a stateless rule now lets its packets
/// pass (it stays cut for stateful ones).
#[test]
fn a_cut_connection_passes_by_a_stateless_rule() {
    let ssh = rule(false, Some(TCP), Some((22, 22)), Remote::Any);
    let mut r = Rig::new(PortFilter::new(vec![ssh.clone()], vec![]));
    assert_eq!(r.inbound(PEER4, TCP, &tcp(50000, 22, tcp::SYN)), Ok(()));
    let mut loose = ssh;
    loose.stateful = false;
    r.filter = PortFilter::new(vec![loose], vec![]);
    r.epoch += 1;
    assert_eq!(r.inbound(PEER4, TCP, &tcp(50000, 22, tcp::ACK)), Ok(()));
    assert_eq!(r.inbound(PEER4, TCP, &tcp(50000, 22, tcp::ACK)), Ok(()));
    assert_eq!(r.outbound(TCP, &tcp(22, 50000, tcp::ACK)), NO_OUT);
}

/// An IPv6 datagram whose fragment header is followed by a destination options header: its
/// later fragments (whose protocol reads as the options header) follow its first.
#[test]
fn ipv6_later_fragments_follow_their_first_behind_options() {
    let dns = rule(true, Some(UDP), Some((53, 53)), Remote::Any);
    let mut r = Rig::new(PortFilter::new(vec![dns], vec![]));
    let frame = |ext: &[u8], l4: &[u8]| {
        let p = ipv6_packet(a6(1), a6(2), 44, ext, l4);
        build_frame(PEER, VM, None, crate::wire::ETHERTYPE_IPV6, &p)
    };
    // Fragment header (offset 0, M, id 9), then destination options, then UDP to 53.
    let mut first = vec![60, 0, 0, 1, 0, 0, 0, 9];
    first.extend_from_slice(&[UDP, 0, 1, 4, 0, 0, 0, 0]);
    assert_eq!(
        r.check(Direction::Ingress, &frame(&first, &udp(1, 53))),
        Ok(())
    );
    let later = [60, 0, 0x05, 0xa8, 0, 0, 0, 9]; // offset 181, no M
    assert_eq!(r.check(Direction::Ingress, &frame(&later, &[0; 8])), Ok(()));
    let other = [60, 0, 0x05, 0xa8, 0, 0, 0, 10];
    assert_eq!(r.check(Direction::Ingress, &frame(&other, &[0; 8])), NO_IN);
}

/// A port at its share may still start a connection anew in place of its own closed one (a SYN
/// after a reset on the same addresses and ports): the table holds no more than before.
#[test]
fn a_full_zone_reopens_a_closed_connection_in_its_place() {
    let mut r = Rig::new(default_group());
    r.conns = ConnTable::new(1);
    assert_eq!(r.outbound(TCP, &tcp(40000, 80, tcp::SYN)), Ok(()));
    assert_eq!(r.inbound(PEER4, TCP, &tcp(80, 40000, tcp::RST)), Ok(()));
    assert_eq!(
        r.outbound(TCP, &tcp(40001, 80, tcp::SYN)),
        Err(DropReason::ConntrackFull)
    );
    assert_eq!(r.outbound(TCP, &tcp(40000, 80, tcp::SYN)), Ok(()));
    assert_eq!(r.conns.zone_len(3, 7), 1);
    assert_eq!(
        r.inbound(PEER4, TCP, &tcp(80, 40000, tcp::SYN | tcp::ACK)),
        Ok(())
    );
}
