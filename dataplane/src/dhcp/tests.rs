use super::*;

const CLIENT: Mac = Mac([0xfa, 0x16, 0x3e, 0, 0, 7]);

fn cfg() -> DhcpConfig {
    DhcpConfig {
        client_mac: CLIENT,
        ip: Ipv4Addr::new(198, 18, 0, 7),
        prefix_len: 24,
        router: Some(Ipv4Addr::new(198, 18, 0, 1)),
        dns: vec![Ipv4Addr::new(198, 18, 9, 9)],
        routes: vec![(
            Ipv4Addr::new(198, 19, 0, 0),
            16,
            Ipv4Addr::new(198, 18, 0, 254),
        )],
        mtu: 1450,
        lease_secs: 3600,
        server_ip: Ipv4Addr::new(198, 18, 0, 1),
        server_mac: SERVER_MAC,
    }
}

/// A client message from `mac`: type, then options (code, value).
fn message(mac: Mac, kind: u8, ciaddr: [u8; 4], opts: &[(u8, &[u8])]) -> Vec<u8> {
    let mut bootp = vec![0u8; BOOTP_FIXED];
    bootp[0] = 1;
    bootp[1] = 1;
    bootp[2] = 6;
    bootp[4..8].copy_from_slice(&[1, 2, 3, 4]);
    bootp[12..16].copy_from_slice(&ciaddr);
    bootp[28..34].copy_from_slice(&mac.0);
    bootp.extend_from_slice(&MAGIC);
    bootp.extend_from_slice(&[53, 1, kind]);
    for (code, v) in opts {
        bootp.push(*code);
        bootp.push(v.len() as u8);
        bootp.extend_from_slice(v);
    }
    bootp.push(255);
    let udp_len = 8 + bootp.len();
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255,
    ];
    ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0, 68, 0, 67]);
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&bootp);
    f
}

fn reply(req: &[u8]) -> Option<Vec<u8>> {
    let at = client_message(req)?;
    let mut out = vec![0u8; 2048];
    let n = respond(&cfg(), req, at, &mut out)?;
    out.truncate(n);
    Some(out)
}

/// The options of a reply: code -> value.
fn options(r: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut o = &r[42 + BOOTP_FIXED + 4..];
    let mut out = Vec::new();
    while let [code, rest @ ..] = o {
        match code {
            0 => o = rest,
            255 => break,
            _ => {
                let len = usize::from(rest[0]);
                out.push((*code, rest[1..1 + len].to_vec()));
                o = &rest[1 + len..];
            }
        }
    }
    out
}

fn option(r: &[u8], code: u8) -> Option<Vec<u8>> {
    options(r)
        .into_iter()
        .find(|(c, _)| *c == code)
        .map(|(_, v)| v)
}

#[test]
fn discover_gets_an_offer_of_the_ports_address_with_its_subnet() {
    let r = reply(&message(CLIENT, DISCOVER, [0; 4], &[])).unwrap();
    assert_eq!(&r[0..6], &CLIENT.0, "to the client's MAC");
    assert_eq!(&r[6..12], &SERVER_MAC.0);
    assert_eq!(csum::verify(&r), Some(true), "a valid UDP checksum");
    assert_eq!(
        csum::header_checksum(&r[14..34]),
        0,
        "a valid IP header checksum"
    );
    assert_eq!(
        &r[14 + 12..14 + 16],
        &[198, 18, 0, 1],
        "from the server address"
    );
    assert_eq!(
        &r[14 + 16..14 + 20],
        &[198, 18, 0, 7],
        "to the offered address"
    );
    let m = &r[42..];
    assert_eq!(m[0], 2);
    assert_eq!(&m[4..8], &[1, 2, 3, 4], "the client's xid");
    assert_eq!(&m[16..20], &[198, 18, 0, 7], "yiaddr");
    assert!(m.len() >= MIN_MESSAGE);
    assert_eq!(option(&r, 53), Some(vec![OFFER]));
    assert_eq!(option(&r, 54), Some(vec![198, 18, 0, 1]));
    assert_eq!(option(&r, 1), Some(vec![255, 255, 255, 0]));
    assert_eq!(option(&r, 3), Some(vec![198, 18, 0, 1]));
    assert_eq!(option(&r, 6), Some(vec![198, 18, 9, 9]));
    assert_eq!(option(&r, 26), Some(1450u16.to_be_bytes().to_vec()));
    assert_eq!(option(&r, 51), Some(3600u32.to_be_bytes().to_vec()));
    assert_eq!(option(&r, 28), Some(vec![198, 18, 0, 255]), "broadcast");
    assert_eq!(
        option(&r, 61),
        None,
        "no client identifier asked, none given"
    );
    // The host route, then the default route (RFC 3442 encoding).
    assert_eq!(
        option(&r, 121),
        Some(vec![16, 198, 19, 198, 18, 0, 254, 0, 198, 18, 0, 1])
    );
}

#[test]
fn requests_get_an_ack_for_the_ports_address_and_a_nak_otherwise() {
    let ip = [198, 18, 0, 7];
    let r = reply(&message(
        CLIENT,
        REQUEST,
        [0; 4],
        &[(50, &ip), (54, &[198, 18, 0, 1])],
    ))
    .unwrap();
    assert_eq!(option(&r, 53), Some(vec![ACK]));
    // Renewing: the address in ciaddr, the reply unicast to it.
    let r = reply(&message(CLIENT, REQUEST, ip, &[])).unwrap();
    assert_eq!(option(&r, 53), Some(vec![ACK]));
    assert_eq!(&r[14 + 16..14 + 20], &ip);
    let r = reply(&message(CLIENT, REQUEST, [0; 4], &[(50, &[198, 18, 0, 8])])).unwrap();
    assert_eq!(option(&r, 53), Some(vec![NAK]));
    assert_eq!(&r[14 + 16..14 + 20], &[255; 4], "a NAK is broadcast");
    assert_eq!(&r[42 + 16..42 + 20], &[0; 4], "and offers nothing");
    assert_eq!(option(&r, 51), None);
}

#[test]
fn nothing_answers_other_servers_macs_or_messages() {
    let ip = [198, 18, 0, 7];
    // The client took another server's offer.
    assert!(reply(&message(
        CLIENT,
        REQUEST,
        [0; 4],
        &[(50, &ip), (54, &[10, 0, 0, 1])]
    ))
    .is_none());
    // Another MAC than the port's.
    let other = Mac([0xfa, 0x16, 0x3e, 0, 0, 8]);
    assert!(reply(&message(other, DISCOVER, [0; 4], &[])).is_none());
    // Release, decline; an inform without the address it has.
    for (kind, ciaddr) in [(7, ip), (4, ip), (8, [0; 4])] {
        assert!(
            reply(&message(CLIENT, kind, ciaddr, &[])).is_none(),
            "{kind}"
        );
    }
    // Not DHCP: server to client, truncated, another protocol.
    let mut m = message(CLIENT, DISCOVER, [0; 4], &[]);
    m[34..38].copy_from_slice(&[0, 67, 0, 68]);
    assert!(client_message(&m).is_none());
    let m = message(CLIENT, DISCOVER, [0; 4], &[]);
    for cut in [20, 40, 42 + 100, 42 + BOOTP_FIXED + 2] {
        let at = client_message(&m[..cut]);
        let mut out = vec![0u8; 2048];
        assert!(
            at.is_none_or(|at| respond(&cfg(), &m[..cut], at, &mut out).is_none()),
            "{cut}"
        );
    }
}

#[test]
fn options_that_do_not_fit_are_left_out_not_the_lease() {
    let mut c = cfg();
    // 80 DNS servers: 320 bytes, more than one option and more than a 576-byte datagram holds.
    c.dns = (0..80).map(|i| Ipv4Addr::new(198, 18, 9, i)).collect();
    let req = message(CLIENT, DISCOVER, [0; 4], &[]);
    let at = client_message(&req).unwrap();
    let mut out = vec![0u8; 2048];
    let n = respond(&c, &req, at, &mut out).unwrap();
    assert!(n <= MAX_REPLY, "{n}");
    let r = &out[..n];
    assert_eq!(option(r, 53), Some(vec![OFFER]));
    assert_eq!(option(r, 6), None);
    assert_eq!(&r[42 + 16..42 + 20], &[198, 18, 0, 7]);
    // 63 DNS servers fit (252 bytes), and leave no room for the MTU after them: the MTU goes
    // first, and the host routes are left out instead.
    c.dns.truncate(63);
    let n = respond(&c, &req, at, &mut out).unwrap();
    let r = &out[..n];
    assert_eq!(option(r, 26), Some(1450u16.to_be_bytes().to_vec()));
    assert_eq!(option(r, 6).map(|v| v.len()), Some(252));
    assert_eq!(option(r, 121), None);
    // Too little room for any reply: none, and no panic.
    let mut small = vec![0u8; 200];
    assert!(respond(&cfg(), &req, at, &mut small).is_none());
}

/// DHCPINFORM (a client with an address asking for the rest, as Windows does for its proxy
/// settings): an ACK to its address, without a lease or an address offered (RFC 2131 4.3.5).
#[test]
fn inform_gets_an_ack_without_a_lease() {
    let ip = [198, 18, 0, 7];
    let r = reply(&message(CLIENT, INFORM, ip, &[])).unwrap();
    assert_eq!(option(&r, 53), Some(vec![ACK]));
    assert_eq!(&r[14 + 16..14 + 20], &ip, "to the client's address");
    assert_eq!(&r[42 + 12..42 + 16], &ip, "ciaddr");
    assert_eq!(&r[42 + 16..42 + 20], &[0; 4], "no yiaddr");
    for lease in [51, 58, 59] {
        assert_eq!(option(&r, lease), None, "{lease}");
    }
    assert_eq!(option(&r, 1), Some(vec![255, 255, 255, 0]));
    assert_eq!(option(&r, 3), Some(vec![198, 18, 0, 1]));
    assert_eq!(option(&r, 6), Some(vec![198, 18, 9, 9]));
    assert_eq!(csum::verify(&r), Some(true));
}

/// A host route to 0.0.0.0/0 is the default route of a subnet without a gateway, and left out
/// where the subnet has one (as Neutron's DHCP agent does): never two default routes.
#[test]
fn a_host_route_to_anywhere_is_the_gateway_only_where_there_is_none() {
    let anywhere = (Ipv4Addr::UNSPECIFIED, 0, Ipv4Addr::new(198, 18, 0, 254));
    let offer = |c: &DhcpConfig| {
        let req = message(CLIENT, DISCOVER, [0; 4], &[]);
        let at = client_message(&req).unwrap();
        let mut out = vec![0u8; 2048];
        let n = respond(c, &req, at, &mut out).unwrap();
        out.truncate(n);
        out
    };
    let mut c = cfg();
    c.routes.push(anywhere);
    let r = offer(&c);
    assert_eq!(option(&r, 3), Some(vec![198, 18, 0, 1]));
    assert_eq!(
        option(&r, 121),
        Some(vec![16, 198, 19, 198, 18, 0, 254, 0, 198, 18, 0, 1])
    );
    c.router = None;
    let r = offer(&c);
    assert_eq!(option(&r, 3), Some(vec![198, 18, 0, 254]));
    assert_eq!(
        option(&r, 121),
        Some(vec![16, 198, 19, 198, 18, 0, 254, 0, 198, 18, 0, 254])
    );
}

/// A request the port's MAC sends for another hardware address (a guest behind a bridge that
/// rewrites source MACs) is not the port's client's: the pipeline switches it as any frame.
#[test]
fn only_the_clients_own_hardware_address_asks() {
    let m = message(CLIENT, DISCOVER, [0; 4], &[]);
    let at = client_message(&m).unwrap();
    assert!(cfg().asks(&m, at));
    let mut behind = m.clone();
    behind[at + 28..at + 34].copy_from_slice(&[0xfa, 0x16, 0x3e, 0, 0, 9]);
    assert!(!cfg().asks(&behind, at));
    assert!(!cfg().asks(&m[..at + 30], at));
}

/// A client identifier (option 61) comes back in every reply, a NAK's too (RFC 6842: a client
/// may drop a reply whose identifier is not its own).
#[test]
fn the_client_identifier_is_echoed() {
    let id: &[u8] = &[0xff, 0, 0, 0, 7, 0, 2, 0, 0, 0xab, 0x11, 0x22, 0x33];
    let ip = [198, 18, 0, 7];
    for (kind, opts, answer) in [
        (DISCOVER, vec![(61, id)], OFFER),
        (REQUEST, vec![(61, id), (50, &ip[..])], ACK),
        (REQUEST, vec![(61, id), (50, &[198, 18, 0, 8][..])], NAK),
        (INFORM, vec![(61, id)], ACK),
    ] {
        let ciaddr = if kind == INFORM { ip } else { [0; 4] };
        let r = reply(&message(CLIENT, kind, ciaddr, &opts)).unwrap();
        assert_eq!(option(&r, 53), Some(vec![answer]));
        assert_eq!(option(&r, 61).as_deref(), Some(id), "{kind}");
        assert_eq!(csum::verify(&r), Some(true));
    }
}

/// The broadcast address (option 28) is the subnet's last address; a /31 or /32 has none.
#[test]
fn the_broadcast_address_is_given_where_the_subnet_has_one() {
    let req = message(CLIENT, DISCOVER, [0; 4], &[]);
    let at = client_message(&req).unwrap();
    for (len, want) in [
        (28, Some(vec![198, 18, 0, 15])),
        (16, Some(vec![198, 18, 255, 255])),
        (31, None),
        (32, None),
    ] {
        let mut c = cfg();
        c.prefix_len = len;
        let mut out = vec![0u8; 2048];
        let n = respond(&c, &req, at, &mut out).unwrap();
        assert_eq!(option(&out[..n], 28), want, "/{len}");
    }
}
