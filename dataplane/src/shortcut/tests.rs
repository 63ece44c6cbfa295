//! The shortcut program, run by the kernel on frames (`BPF_PROG_TEST_RUN`): which frames an
//! entry takes, and what it counts. Needs the rights to load BPF programs (root).

use super::*;

const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;
/// The loopback interface: the program runs "on" it (test runs need a real interface).
const LO: u32 = 1;

const A: Mac = Mac([0x02, 0, 0, 0, 0, 0x0a]);
const B: Mac = Mac([0x02, 0, 0, 0, 0, 0x0b]);

fn eth(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f.resize(f.len().max(60), 0);
    f
}

/// An IPv4 packet of protocol `proto` with layer 4 bytes `l4` (padded to 20).
fn ipv4(proto: u8, l4: &[u8], frag: u16) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0, 0];
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2]);
    p.extend_from_slice(l4);
    p.resize(p.len().max(40), 0);
    p
}

/// As [`ipv4`], with 4 bytes of options (a header of 24 bytes).
fn ipv4_options(proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = ipv4(proto, &[], 0);
    p.truncate(20);
    p[0] = 0x46;
    p.extend_from_slice(&[1, 1, 1, 0]); // NOP, NOP, NOP, end
    p.extend_from_slice(l4);
    p.resize(p.len().max(44), 0);
    p
}

fn ipv6(next: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0, 0, 20, next, 64];
    p.extend_from_slice(&[0xfd; 32]);
    p.extend_from_slice(l4);
    p.resize(p.len().max(60), 0);
    p
}

fn udp(sport: u16, dport: u16) -> Vec<u8> {
    let mut u = sport.to_be_bytes().to_vec();
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&[0, 20, 0, 0]);
    u
}

fn tcp(flags: u8) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[12] = 0x50;
    t[13] = flags;
    t
}

struct Rig {
    sc: Shortcut,
    prog: OwnedFd,
    _xsks: OwnedFd,
}

/// The maps and the program, or None where they cannot be made (not root).
fn rig() -> Option<Rig> {
    let sc = for_tests()?;
    let xsks = bpf::create_xskmap(1).expect("xskmap");
    let prog = sc
        .load_program(&xsks)
        .expect("the verifier takes the program");
    Some(Rig {
        sc,
        prog,
        _xsks: xsks,
    })
}

const ROUTE: Route = Route {
    egress: 1,
    max_frame: 1514,
    ingress_slot: 3,
    egress_slot: 5,
};

impl Rig {
    fn run(&self, frame: &[u8]) -> u32 {
        bpf::test_run(&self.prog, frame, LO).expect("test run")
    }
}

#[test]
fn an_entry_takes_plain_unicast_and_counts_it() {
    let Some(r) = rig() else {
        return;
    };
    let key = Key {
        ingress: LO,
        dst: B,
        src: A,
    };
    let frame = eth(B, A, 0x0800, &ipv4(17, &udp(5000, 5001), 0));
    assert_eq!(
        r.run(&frame),
        XDP_PASS,
        "no entry: to the socket (none here)"
    );
    r.sc.install(&key, &ROUTE).unwrap();
    assert_eq!(r.run(&frame), XDP_REDIRECT);
    assert_eq!(r.run(&frame), XDP_REDIRECT);
    assert_eq!(r.sc.hits(&key).unwrap(), Some(2));
    let len = frame.len() as u64;
    assert_eq!(
        r.sc.counts(3),
        Counts {
            rx_packets: 2,
            rx_bytes: 2 * len,
            ..Counts::default()
        }
    );
    assert_eq!(
        r.sc.counts(5),
        Counts {
            tx_packets: 2,
            tx_bytes: 2 * len,
            ..Counts::default()
        }
    );
    // Another source, the reverse direction: no entry.
    assert_eq!(
        r.run(&eth(B, B, 0x0800, &ipv4(17, &udp(1, 2), 0))),
        XDP_PASS
    );
    assert_eq!(
        r.run(&eth(A, B, 0x0800, &ipv4(17, &udp(1, 2), 0))),
        XDP_PASS
    );
    assert!(r.sc.withdraw(&key).unwrap());
    assert_eq!(r.run(&frame), XDP_PASS);
    assert_eq!(r.sc.hits(&key).unwrap(), None);
    assert!(!r.sc.withdraw(&key).unwrap());
}

#[test]
fn frames_the_switch_must_see_go_to_it() {
    let Some(r) = rig() else {
        return;
    };
    for (dst, src) in [
        (B, A),
        (Mac::BROADCAST, A),
        (Mac([0x01, 0, 0x5e, 0, 0, 1]), A),
    ] {
        r.sc.install(
            &Key {
                ingress: LO,
                dst,
                src,
            },
            &ROUTE,
        )
        .unwrap();
    }
    let v4 = |proto, l4: &[u8]| eth(B, A, 0x0800, &ipv4(proto, l4, 0));
    let v6 = |next, l4: &[u8]| eth(B, A, 0x86dd, &ipv6(next, l4));
    let taken: Vec<(&str, Vec<u8>)> = vec![
        ("UDP", v4(17, &udp(40000, 4789))),
        ("ICMP echo", v4(1, &[8, 0, 0, 0, 0, 1, 0, 1])),
        ("another protocol (SCTP)", v4(132, &[0; 12])),
        ("IPv6 UDP", v6(17, &udp(40000, 53))),
        ("an EtherType of its own", eth(B, A, 0x88b5, &[0; 46])),
        (
            "at the largest",
            eth(B, A, 0x0800, &ipv4(17, &[0; 1480], 0)),
        ),
        (
            "UDP behind IPv4 options",
            eth(B, A, 0x0800, &ipv4_options(17, &udp(4000, 4001))),
        ),
    ];
    for (what, f) in &taken {
        assert_eq!(r.run(f), XDP_REDIRECT, "{what} takes the shortcut");
        assert!(may_carry(f), "{what}: the worker offers it an entry");
    }
    let mut too_long = ipv4(17, &[0; 1480], 0);
    too_long.push(0);
    let mut bad_ihl = ipv4(17, &udp(1, 2), 0);
    bad_ihl[0] = 0x44;
    let mut not_v4 = ipv4(17, &udp(1, 2), 0);
    not_v4[0] = 0x65;
    let mut long_header = ipv4(17, &udp(1, 2), 0);
    long_header[0] = 0x4f;
    long_header.truncate(40);
    let slow: Vec<(&str, Vec<u8>)> = vec![
        (
            "broadcast",
            eth(Mac::BROADCAST, A, 0x0800, &ipv4(17, &udp(1, 2), 0)),
        ),
        (
            "multicast",
            eth(
                Mac([0x01, 0, 0x5e, 0, 0, 1]),
                A,
                0x0800,
                &ipv4(17, &udp(1, 2), 0),
            ),
        ),
        ("ARP", eth(B, A, 0x0806, &[0; 28])),
        ("RARP", eth(B, A, 0x8035, &[0; 28])),
        ("802.1Q", eth(B, A, 0x8100, &[0; 46])),
        ("802.1ad", eth(B, A, 0x88a8, &[0; 46])),
        ("a 0x9100 tag", eth(B, A, 0x9100, &[0; 46])),
        ("a 0x9200 tag", eth(B, A, 0x9200, &[0; 46])),
        (
            "TCP SYN behind IPv4 options",
            eth(B, A, 0x0800, &ipv4_options(6, &tcp(0x02))),
        ),
        (
            "DHCP behind IPv4 options",
            eth(B, A, 0x0800, &ipv4_options(17, &udp(68, 67))),
        ),
        (
            "ICMP unreachable behind IPv4 options",
            eth(B, A, 0x0800, &ipv4_options(1, &[3, 4, 0, 0, 0, 0, 5, 0x78])),
        ),
        ("802.3 length", eth(B, A, 0x0040, &[0; 46])),
        ("TCP SYN", v4(6, &tcp(0x02))),
        ("TCP ACK", v4(6, &tcp(0x10))),
        ("TCP FIN", v4(6, &tcp(0x11))),
        ("IPv6 TCP ACK", v6(6, &tcp(0x10))),
        (
            "TCP ACK behind IPv4 options",
            eth(B, A, 0x0800, &ipv4_options(6, &tcp(0x10))),
        ),
        ("TCP SYN-ACK", v4(6, &tcp(0x12))),
        ("DHCP to a server", v4(17, &udp(68, 67))),
        ("DHCP to a client", v4(17, &udp(67, 68))),
        ("ICMP unreachable", v4(1, &[3, 4, 0, 0, 0, 0, 5, 0x78])),
        (
            "a first fragment",
            eth(B, A, 0x0800, &ipv4(17, &udp(1, 2), 0x2000)),
        ),
        (
            "a later fragment",
            eth(B, A, 0x0800, &ipv4(17, &udp(1, 2), 0x0010)),
        ),
        ("a header length below 20", eth(B, A, 0x0800, &bad_ihl)),
        ("not version 4", eth(B, A, 0x0800, &not_v4)),
        (
            "a header longer than the frame",
            eth(B, A, 0x0800, &long_header),
        ),
        ("above the largest", eth(B, A, 0x0800, &too_long)),
        ("IPv6 TCP SYN", v6(6, &tcp(0x02))),
        ("DHCPv6", v6(17, &udp(546, 547))),
        ("ICMPv6", v6(58, &[135, 0, 0, 0])),
        (
            "an IPv6 extension header",
            v6(0, &[17, 0, 0, 0, 0, 0, 0, 0]),
        ),
        ("short IPv6", eth(B, A, 0x86dd, &ipv6(17, &udp(1, 2))[..45])),
    ];
    for (what, f) in &slow {
        assert_eq!(r.run(f), XDP_PASS, "{what} goes to the switch");
        // What the worker tells apart from three fields, it offers no entry.
        let never = ["TCP", "ARP", "802.", "tag", "cast", "ICMPv6", "extension"];
        if never.iter().any(|n| what.contains(n)) {
            assert!(!may_carry(f), "{what}: no entry offered");
        }
    }
}

#[test]
fn counters_of_a_port_are_its_slots() {
    let Some(r) = rig() else {
        return;
    };
    assert_eq!(r.sc.counts(0), Counts::default());
    assert_eq!(
        r.sc.counts(u16::MAX),
        Counts::default(),
        "out of range reads zero"
    );
    let key = Key {
        ingress: LO,
        dst: B,
        src: A,
    };
    let beyond = Route {
        ingress_slot: MAX_SLOTS as u16,
        ..ROUTE
    };
    r.sc.install(&key, &beyond).unwrap();
    let frame = eth(B, A, 0x0800, &ipv4(17, &udp(1, 2), 0));
    assert_eq!(
        r.run(&frame),
        XDP_REDIRECT,
        "a slot past the array forwards uncounted"
    );
    assert_eq!(
        r.sc.counts(5).tx_packets,
        0,
        "the program stops counting at the miss"
    );
    let before = r.sc.counts(5);
    r.sc.install(&key, &ROUTE).unwrap();
    assert_eq!(r.run(&frame), XDP_REDIRECT);
    assert_eq!(r.sc.counts(5).since(&before).tx_packets, 1);
}

#[test]
fn ports_and_epochs() {
    let Some(sc) = for_tests() else {
        return;
    };
    let e = sc.epoch();
    assert_eq!(sc.ifindex(7), None);
    sc.set_port(7, 42);
    assert_eq!(sc.ifindex(7), Some(42));
    assert!(sc.epoch() > e);
    sc.set_port(7, 0);
    assert_eq!(sc.ifindex(7), None);
    assert_eq!(
        sc.set_port(u16::MAX, 3),
        Registration::default(),
        "no such slot"
    );
    assert_eq!(sc.ifindex(u16::MAX), None);
    // A port handed from one worker to the other on its interface, the new owner opening it
    // first: the old owner's clear leaves the new registration.
    let old = sc.set_port(9, 42);
    let new = sc.set_port(9, 42);
    sc.clear_port(9, old);
    assert_eq!(
        sc.ifindex(9),
        Some(42),
        "the new owner's registration stays"
    );
    sc.clear_port(9, new);
    assert_eq!(sc.ifindex(9), None);
}
