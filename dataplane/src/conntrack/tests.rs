//! The table on its own: keys from either side, timeouts, the sweeper, zones and generations.

use super::*;
use crate::flow::build::*;
use crate::flow::{parse, L3};
use crate::wire::ipproto::{ICMP, UDP};

const A: [u8; 4] = [198, 18, 0, 1];
const B: [u8; 4] = [198, 18, 0, 2];

fn flow(frame: &[u8]) -> Flow {
    match parse(frame) {
        L3::Ip(f) => f,
        other => panic!("{other:?}"),
    }
}

const START: Start = Start {
    dir: Direction::Egress,
    epoch: 1,
};

/// Opens `f`'s connection in zone `zone`, as the firewall does.
fn open(
    t: &mut ConnTable,
    zone: u16,
    gen: u32,
    f: &Flow,
    start: Start,
    now: u32,
) -> Result<(), DropReason> {
    let at = t.probe(&f.tuple).in_zone(zone);
    t.open(&at, gen, f, start, now)
}

fn live(t: &mut ConnTable, f: &Flow, gen: u32, now: u32) -> Option<bool> {
    t.established(
        &t.probe(&f.tuple).in_zone(1),
        gen,
        1,
        Some(f),
        now,
        |_, _| true,
    )
}

#[test]
fn one_key_from_either_side() {
    let there = flow(&v4(A, B, TCP, &tcp(1000, 80, tcp::SYN)));
    let back = flow(&v4(B, A, TCP, &tcp(80, 1000, tcp::ACK)));
    assert_eq!(Key::of(1, &there.tuple), Key::of(1, &back.tuple));
    assert_ne!(Key::of(1, &there.tuple), Key::of(2, &there.tuple));
    let mut t = ConnTable::default();
    open(&mut t, 1, 1, &there, START, 10).unwrap();
    assert_eq!(live(&mut t, &back, 1, 11), Some(true));
    assert_eq!(t.len(), 1);
}

#[test]
fn a_probe_finds_its_connection_in_each_zone_also_after_the_table_grew() {
    let mut t = ConnTable::default();
    let flows: Vec<Flow> = (0..3000u16)
        .map(|i| flow(&v4(A, B, UDP, &udp(1024 + i, 53))))
        .collect();
    // Zone 2 holds only every other connection; the table grows well past its first size.
    for (i, f) in flows.iter().enumerate() {
        open(&mut t, 1, 1, f, START, 0).unwrap();
        if i % 2 == 0 {
            open(&mut t, 2, 1, f, START, 0).unwrap();
        }
    }
    assert_eq!(t.len(), 4500);
    for (i, f) in flows.iter().enumerate() {
        let probe = t.probe(&f.tuple);
        // What a probe gives is what the table hashed the key to.
        let at = probe.in_zone(2);
        assert_eq!(at.hash, hash_of(&t.seed, &Key::of(2, &f.tuple)));
        assert_eq!(
            t.established(&probe.in_zone(1), 1, 1, None, 1, |_, _| true),
            Some(true)
        );
        let in_two = t.established(&at, 1, 1, None, 1, |_, _| true);
        assert_eq!(in_two, (i % 2 == 0).then_some(true), "flow {i}");
    }
}

#[test]
fn timeouts_follow_what_was_seen_and_the_sweeper_removes_the_dead() {
    let mut t = ConnTable::default();
    let syn = flow(&v4(A, B, TCP, &tcp(1000, 80, tcp::SYN)));
    let synack = flow(&v4(B, A, TCP, &tcp(80, 1000, tcp::SYN | tcp::ACK)));
    let ack = flow(&v4(A, B, TCP, &tcp(1000, 80, tcp::ACK)));
    let udp_out = flow(&v4(A, B, UDP, &udp(5000, 53)));
    open(&mut t, 1, 1, &syn, START, 0).unwrap();
    open(&mut t, 1, 1, &udp_out, START, 0).unwrap();
    // Unanswered UDP goes after 30 s; the TCP connection, established, stays.
    assert_eq!(live(&mut t, &synack, 1, 20), Some(true));
    assert_eq!(live(&mut t, &ack, 1, 20), Some(true));
    t.sweep(60, 16);
    assert_eq!(t.len(), 1);
    assert_eq!(t.zone_len(1, 1), 1);
    assert_eq!(live(&mut t, &ack, 1, 3600), Some(true));
    // A reset ends it 10 s later.
    let rst = flow(&v4(B, A, TCP, &tcp(80, 1000, tcp::RST)));
    assert_eq!(live(&mut t, &rst, 1, 3601), Some(true));
    t.sweep(3620, 16);
    assert!(t.is_empty());
    assert_eq!(t.zone_len(1, 1), 0);
}

#[test]
fn a_new_port_in_the_slot_starts_with_no_connections() {
    let mut t = ConnTable::new(2);
    let f = flow(&v4(A, B, UDP, &udp(1, 2)));
    let g = flow(&v4(A, B, UDP, &udp(3, 4)));
    open(&mut t, 1, 1, &f, START, 0).unwrap();
    open(&mut t, 1, 1, &g, START, 0).unwrap();
    assert_eq!(
        open(&mut t, 1, 1, &flow(&v4(A, B, UDP, &udp(5, 6))), START, 0),
        Err(DropReason::ConntrackFull)
    );
    // Generation 2 of slot 1: the old entries are dead, the share is whole again.
    assert_eq!(live(&mut t, &f, 2, 1), None);
    open(&mut t, 1, 2, &g, START, 1).unwrap();
    open(&mut t, 1, 2, &flow(&v4(A, B, UDP, &udp(5, 6))), START, 1).unwrap();
    t.sweep(2, 16);
    assert_eq!(t.len(), 2);
    assert_eq!(t.zone_len(1, 2), 2);
}

#[test]
fn a_connection_met_under_a_new_epoch_is_checked_again() {
    let mut t = ConnTable::default();
    let f = flow(&v4(A, B, UDP, &udp(1, 2)));
    open(&mut t, 1, 1, &f, START, 0).unwrap();
    let key = t.probe(&f.tuple).in_zone(1);
    let mut asked = None;
    let r = t.established(&key, 1, 2, Some(&f), 1, |opening, dir| {
        asked = Some((opening.tuple, dir));
        false
    });
    assert_eq!(r, Some(false));
    assert_eq!(asked, Some((f.tuple, Direction::Egress)));
    // Cut until the next epoch, without asking again.
    assert_eq!(
        t.established(&key, 1, 2, Some(&f), 1, |_, _| true),
        Some(false)
    );
    assert_eq!(
        t.established(&key, 1, 3, Some(&f), 1, |_, _| true),
        Some(true)
    );
}

#[test]
fn an_answer_alone_does_not_make_a_tcp_connection_last_a_day() {
    let mut t = ConnTable::default();
    let syn = flow(&v4(A, B, TCP, &tcp(1000, 80, tcp::SYN)));
    let synack = flow(&v4(B, A, TCP, &tcp(80, 1000, tcp::SYN | tcp::ACK)));
    let ack = flow(&v4(A, B, TCP, &tcp(1000, 80, tcp::ACK)));
    open(&mut t, 1, 1, &syn, START, 0).unwrap();
    assert_eq!(live(&mut t, &synack, 1, 1), Some(true));
    // Answered, never acknowledged: gone after a minute.
    t.sweep(100, 16);
    assert!(t.is_empty());
    open(&mut t, 1, 1, &syn, START, 200).unwrap();
    assert_eq!(live(&mut t, &synack, 1, 200), Some(true));
    assert_eq!(live(&mut t, &ack, 1, 200), Some(true));
    t.sweep(200 + 3600, 16);
    assert_eq!(t.len(), 1, "established");
}

#[test]
fn the_answering_side_cannot_start_traffic_on_an_old_entry() {
    let mut t = ConnTable::default();
    let request = flow(&v4(A, B, ICMP, &icmp(8, 0, 7)));
    let reply = flow(&v4(B, A, ICMP, &icmp(0, 0, 7)));
    let reverse_request = flow(&v4(B, A, ICMP, &icmp(8, 0, 7)));
    open(&mut t, 1, 1, &request, START, 0).unwrap();
    assert_eq!(live(&mut t, &reply, 1, 1), Some(true));
    assert_eq!(live(&mut t, &reverse_request, 1, 1), None, "a new exchange");
    // A SYN on a closed TCP connection is a new connection, from either side.
    let syn = flow(&v4(A, B, TCP, &tcp(1000, 80, tcp::SYN)));
    let rst = flow(&v4(B, A, TCP, &tcp(80, 1000, tcp::RST)));
    let back = flow(&v4(B, A, TCP, &tcp(80, 1000, tcp::SYN)));
    open(&mut t, 1, 1, &syn, START, 0).unwrap();
    assert_eq!(live(&mut t, &rst, 1, 1), Some(true));
    assert_eq!(live(&mut t, &back, 1, 2), None);
    assert_eq!(live(&mut t, &syn, 1, 2), None);
}

#[test]
fn a_removed_port_s_connections_go_when_the_snapshot_says_so() {
    let mut t = ConnTable::default();
    let f = flow(&v4(A, B, UDP, &udp(1, 2)));
    open(&mut t, 1, 1, &f, START, 0).unwrap();
    t.sync_zone(1, Some(1));
    assert_eq!(t.zone_len(1, 1), 1, "same port: kept");
    t.sync_zone(1, None);
    assert!(!t.tracks(1));
    t.sweep(1, 16);
    assert!(t.is_empty());
}

#[test]
fn a_port_remembers_a_bounded_number_of_fragmented_datagrams() {
    use crate::flow::build::ipv4_packet;
    use crate::wire::{build_frame, ETHERTYPE_IPV4};
    let mut t = ConnTable::default();
    let first = |id: u16| {
        let p = ipv4_packet(A, B, UDP, &udp(1, 2), 0x2000, id);
        flow(&build_frame(PEER, VM, None, ETHERTYPE_IPV4, &p))
    };
    for id in 0..300 {
        t.fragment_seen(1, 1, &first(id), 0);
        t.fragment_seen(2, 1, &first(id), 0);
    }
    // Past its share, a port's oldest datagrams made room for the newest.
    for zone in [1, 2] {
        assert!(t.fragment_passed(zone, 1, &first(299), 0));
        assert!(t.fragment_passed(zone, 1, &first(44), 0));
        assert!(
            !t.fragment_passed(zone, 1, &first(43), 0),
            "the oldest went"
        );
        assert!(!t.fragment_passed(zone, 1, &first(0), 0));
    }
    assert_eq!(t.fragments.len(), 512);
    // One seen again is remembered longer, as the newest (not twice): the next new one
    // displaces the next oldest.
    t.fragment_seen(1, 1, &first(44), 3);
    t.fragment_seen(1, 1, &first(300), 3);
    assert!(t.fragment_passed(1, 1, &first(44), 3));
    assert!(!t.fragment_passed(1, 1, &first(45), 3));
    assert!(t.fragment_passed(1, 1, &first(300), 3));
    // Another port in the slot starts with none.
    t.sync_zone(2, Some(2));
    assert!(!t.fragment_passed(2, 1, &first(299), 0));
    assert_eq!(t.fragments.len(), 256);
    // Expired datagrams are swept.
    t.sweep(6, 1);
    assert!(t.fragment_passed(1, 1, &first(300), 6));
    assert!(t.fragment_passed(1, 1, &first(44), 6));
    assert_eq!(t.fragments.len(), 2);
    assert_eq!(t.frag_order[1].len(), 2);
    t.sweep(9, 1);
    assert!(t.fragments.is_empty());
    t.fragment_seen(1, 1, &first(299), 10);
    assert!(t.fragment_passed(1, 1, &first(299), 10));
}

#[test]
fn a_zones_connections_read_as_their_opening_packets_with_state_and_time_left() {
    let mut t = ConnTable::default();
    // Zone 1 (generation 1): a TCP connection its VM opened to B, answered and acknowledged; a
    // ping from B to the VM; an unanswered UDP datagram over IPv6. Zone 2 holds one of its own,
    // and zone 1's earlier generation one that must not show.
    let syn = flow(&v4(A, B, TCP, &tcp(1000, 80, tcp::SYN)));
    let synack = flow(&v4(B, A, TCP, &tcp(80, 1000, tcp::SYN | tcp::ACK)));
    let ack = flow(&v4(A, B, TCP, &tcp(1000, 80, tcp::ACK)));
    let ping = flow(&v4(B, A, ICMP, &icmp(8, 0, 7)));
    let dns6 = flow(&v6(a6(1), a6(2), UDP, &udp(5000, 53)));
    open(&mut t, 1, 0, &flow(&v4(A, B, UDP, &udp(9, 9))), START, 0).unwrap();
    open(&mut t, 1, 1, &syn, START, 10).unwrap();
    assert_eq!(live(&mut t, &synack, 1, 11), Some(true));
    assert_eq!(live(&mut t, &ack, 1, 12), Some(true));
    let inbound = Start {
        dir: Direction::Ingress,
        epoch: 1,
    };
    open(&mut t, 1, 1, &ping, inbound, 13).unwrap();
    open(&mut t, 1, 1, &dns6, START, 14).unwrap();
    open(&mut t, 2, 1, &flow(&v4(A, B, UDP, &udp(1, 2))), START, 14).unwrap();

    let all = |_: &Flow, _: Direction| true;
    let got = t.connections(1, 1, 1, 20, all);
    let ip = |a: [u8; 4]| std::net::IpAddr::from(a);
    assert_eq!(
        got,
        [
            Connection {
                proto: TCP,
                src: ip(A),
                dst: ip(B),
                ports: Some((1000, 80)),
                icmp: None,
                dir: Direction::Egress,
                state: "established",
                cut: false,
                idle_secs: 8,
                expires_secs: 86_400 - 8,
            },
            Connection {
                proto: ICMP,
                src: ip(B),
                dst: ip(A),
                ports: None,
                icmp: Some((8, 0, 7)),
                dir: Direction::Ingress,
                state: "new",
                cut: false,
                idle_secs: 7,
                expires_secs: 30 - 7,
            },
            Connection {
                proto: UDP,
                src: std::net::IpAddr::from(a6(1)),
                dst: std::net::IpAddr::from(a6(2)),
                ports: Some((5000, 53)),
                icmp: None,
                dir: Direction::Egress,
                state: "new",
                cut: false,
                idle_secs: 6,
                expires_secs: 30 - 6,
            },
        ]
    );
    // Under a newer policy epoch a connection reads as the rules now say, before its next
    // packet: cut when they no longer allow its opening packet in its direction.
    let only_egress = |_: &Flow, dir: Direction| dir == Direction::Egress;
    let cut: Vec<bool> = t
        .connections(1, 1, 2, 20, only_egress)
        .iter()
        .map(|c| c.cut)
        .collect();
    assert_eq!(cut, [false, true, false]);
    // What expired is gone from the list before the sweeper gets to it; a reset is shown so.
    assert_eq!(t.connections(1, 1, 1, 45, all).len(), 1);
    let rst = flow(&v4(B, A, TCP, &tcp(80, 1000, tcp::RST)));
    assert_eq!(live(&mut t, &rst, 1, 46), Some(true));
    let after = t.connections(1, 1, 1, 47, all);
    assert_eq!((after[0].state, after[0].expires_secs), ("reset", 9));
    assert!(t.connections(3, 1, 1, 47, all).is_empty());
}

#[test]
fn no_timeout_is_shorter_than_the_one_expiry_skips_below() {
    for proto in 0..=255u8 {
        for state in 0..=255u8 {
            assert!(timeout(proto, state) >= MIN_TIMEOUT, "{proto} {state}");
        }
    }
}

#[test]
fn only_an_established_open_connection_is_published_and_it_goes_with_its_entry() {
    let mut t = ConnTable::default();
    let table = Arc::new(Published::default());
    table.set_epoch(1);
    t.share(1, Some((1, Arc::clone(&table))));
    let syn = flow(&v4(A, B, TCP, &tcp(1000, 80, tcp::SYN)));
    let synack = flow(&v4(B, A, TCP, &tcp(80, 1000, tcp::SYN | tcp::ACK)));
    let ack = flow(&v4(A, B, TCP, &tcp(1000, 80, tcp::ACK)));
    let key = Key::of(1, &ack.tuple);
    let publish = |t: &ConnTable, gen, epoch, now| {
        t.publish(&t.probe(&ack.tuple).in_zone(1), gen, epoch, now);
        table.admits(&key, now)
    };
    let establish = |t: &mut ConnTable, now| {
        open(t, 1, 1, &syn, START, now).unwrap();
        assert!(!publish(t, 1, 1, now), "a SYN alone");
        assert_eq!(live(t, &synack, 1, now), Some(true));
        assert!(!publish(t, 1, 1, now), "answered, not acknowledged");
        assert_eq!(live(t, &ack, 1, now), Some(true));
    };
    establish(&mut t, 1);
    assert!(!publish(&t, 2, 1, 1), "another generation of the port");
    table.set_epoch(2);
    assert!(!publish(&t, 1, 2, 1), "allowed under another epoch");
    table.set_epoch(1);
    assert!(publish(&t, 1, 1, 1), "established");
    // Until its timeout could run out; kept alive by the port's packets, published again.
    assert!(table.admits(&key, 86_400) && !table.admits(&key, 86_401));
    assert_eq!(live(&mut t, &ack, 1, 50_000), Some(true));
    assert!(publish(&t, 1, 1, 86_401));
    // A UDP exchange, answered, is never published.
    let query = flow(&v4(A, B, UDP, &udp(5000, 53)));
    open(&mut t, 1, 1, &query, START, 1).unwrap();
    t.publish(&t.probe(&query.tuple).in_zone(1), 1, 1, 1);
    assert!(!table.admits(&Key::of(1, &query.tuple), 1));

    // The entry goes (a day without a packet): so does what was published.
    t.publish(&t.probe(&ack.tuple).in_zone(1), 1, 1, 50_000);
    t.sweep(50_000 + 86_401, 16);
    assert!(t.is_empty());
    assert!(!table.admits(&key, 50_000));

    // A FIN or a reset, either way, takes it out; a closing connection is not published.
    for end in [
        flow(&v4(B, A, TCP, &tcp(80, 1000, tcp::RST))),
        flow(&v4(A, B, TCP, &tcp(1000, 80, tcp::FIN | tcp::ACK))),
    ] {
        establish(&mut t, 200_000);
        assert!(publish(&t, 1, 1, 200_000));
        assert_eq!(live(&mut t, &end, 1, 200_000), Some(true));
        assert!(!table.admits(&key, 200_000), "{end:?}");
        assert!(!publish(&t, 1, 1, 200_000));
        t.sweep(300_000, 16);
    }

    // A new port in the slot: the old port's connections are taken out of its table as they go.
    establish(&mut t, 400_000);
    assert!(publish(&t, 1, 1, 400_000));
    t.sync_zone(1, Some(2));
    t.sweep(400_000, 16);
    assert!(t.is_empty());
    assert!(!table.admits(&key, 400_000));
    // And one replaced by a new opening goes too.
    t.share(1, Some((2, Arc::clone(&table))));
    open(&mut t, 1, 2, &syn, START, 400_001).unwrap();
    for f in [&synack, &ack] {
        assert_eq!(
            t.established(
                &t.probe(&f.tuple).in_zone(1),
                2,
                1,
                Some(f),
                400_001,
                |_, _| true
            ),
            Some(true)
        );
    }
    t.publish(&t.probe(&ack.tuple).in_zone(1), 2, 1, 400_001);
    assert!(table.admits(&key, 400_001));
    open(&mut t, 1, 2, &syn, START, 400_002).unwrap();
    assert!(!table.admits(&key, 400_002), "replaced");
}
