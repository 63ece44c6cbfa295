use super::*;
use crate::dhcp::SERVER_MAC;

const CLIENT: Mac = Mac([0xfa, 0x16, 0x3e, 0, 0, 7]);
const CLIENT_DUID: &[u8] = &[0, 3, 0, 1, 0xfa, 0x16, 0x3e, 0, 0, 7];
const IAID: [u8; 4] = [0, 0, 0, 9];

fn addr(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn stateful() -> Dhcp6Config {
    Dhcp6Config {
        client_mac: CLIENT,
        addresses: vec![addr("2001:db8:5::10")],
        dns: vec![addr("2001:db8::53")],
        lease_secs: 3600,
        server_mac: SERVER_MAC,
    }
}

fn stateless() -> Dhcp6Config {
    Dhcp6Config {
        addresses: Vec::new(),
        ..stateful()
    }
}

fn opt(code: u16, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    put(&mut v, code, value);
    v
}

/// An IA_NA asking for the addresses `addrs`.
fn ia(addrs: &[Ipv6Addr]) -> Vec<u8> {
    let mut v = IAID.to_vec();
    v.extend_from_slice(&[0; 8]);
    for a in addrs {
        let mut o = a.octets().to_vec();
        o.extend_from_slice(&[0; 8]);
        v.extend(opt(OPT_IAADDR, &o));
    }
    opt(OPT_IA_NA, &v)
}

/// A client message from `mac`'s link-local address to `ff02::1:2`.
fn message(mac: Mac, kind: u8, opts: &[Vec<u8>]) -> Vec<u8> {
    let mut m = vec![kind, 0xab, 0xcd, 0xef];
    for o in opts {
        m.extend_from_slice(o);
    }
    let mut f = ALL_SERVERS_MAC.to_vec();
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&u16::try_from(UDP_HEADER + m.len()).unwrap().to_be_bytes());
    f.extend_from_slice(&[UDP, 1]);
    f.extend_from_slice(&link_local(mac).octets());
    f.extend_from_slice(&addr("ff02::1:2").octets());
    f.extend_from_slice(&CLIENT_PORT.to_be_bytes());
    f.extend_from_slice(&SERVER_PORT.to_be_bytes());
    f.extend_from_slice(&u16::try_from(UDP_HEADER + m.len()).unwrap().to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&m);
    f
}

/// A message's options, each as (code, value).
type Opts = Vec<(u16, Vec<u8>)>;

/// An IA_NA's IAID, T1, T2 and its (address, preferred, valid) entries.
type Lease = ([u8; 4], u32, u32, Vec<(Ipv6Addr, u32, u32)>);

/// The answer to `frame`, checked as a frame: (message type, options).
fn answer(cfg: &Dhcp6Config, frame: &[u8]) -> Option<(u8, Opts)> {
    let at = client_message(frame)?;
    let mut out = [0u8; 1024];
    let n = respond(cfg, frame, at, &mut out)?;
    let f = &out[..n];
    assert_eq!(f[0..6], CLIENT.0, "to the client's MAC");
    assert_eq!(f[6..12], SERVER_MAC.0);
    let ip = &f[ETH_HEADER_LEN..];
    assert_eq!(ip[6], UDP);
    assert_eq!(ip[8..24], link_local(SERVER_MAC).octets());
    assert_eq!(
        ip[24..40],
        link_local(CLIENT).octets(),
        "to its link-local source"
    );
    assert_eq!(
        usize::from(u16::from_be_bytes([ip[4], ip[5]])),
        n - ETH_HEADER_LEN - 40
    );
    let udp = &ip[IPV6_HEADER..];
    assert_eq!(udp[0..4], [2, 35, 2, 34], "547 to 546");
    assert_eq!(csum::verify(f), Some(true), "a valid UDP checksum");
    let m = &udp[UDP_HEADER..];
    assert_eq!(m[1..4], [0xab, 0xcd, 0xef], "the transaction id");
    let opts = options(&m[4..])
        .unwrap()
        .into_iter()
        .map(|(c, v)| (c, v.to_vec()))
        .collect();
    Some((m[0], opts))
}

fn find(opts: &[(u16, Vec<u8>)], code: u16) -> Option<&[u8]> {
    opts.iter()
        .find(|(c, _)| *c == code)
        .map(|(_, v)| v.as_slice())
}

/// The IA_NA in `opts`.
fn leases(opts: &[(u16, Vec<u8>)]) -> Lease {
    let ia = find(opts, OPT_IA_NA).expect("an IA_NA");
    let word = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap());
    let addrs = options(&ia[12..])
        .unwrap()
        .into_iter()
        .filter(|(c, _)| *c == OPT_IAADDR)
        .map(|(_, v)| {
            let a: [u8; 16] = v[..16].try_into().unwrap();
            (Ipv6Addr::from(a), word(&v[16..20]), word(&v[20..24]))
        })
        .collect();
    (
        ia[..4].try_into().unwrap(),
        word(&ia[4..8]),
        word(&ia[8..12]),
        addrs,
    )
}

#[test]
fn a_solicit_is_advertised_the_ports_address_dns_and_the_servers_duid() {
    let f = message(CLIENT, SOLICIT, &[opt(OPT_CLIENTID, CLIENT_DUID), ia(&[])]);
    let (kind, opts) = answer(&stateful(), &f).unwrap();
    assert_eq!(kind, ADVERTISE);
    assert_eq!(find(&opts, OPT_CLIENTID), Some(CLIENT_DUID));
    assert_eq!(
        find(&opts, OPT_SERVERID),
        Some(&server_duid(SERVER_MAC)[..])
    );
    assert_eq!(find(&opts, OPT_PREFERENCE), Some(&[255u8][..]));
    assert_eq!(
        find(&opts, OPT_DNS_SERVERS),
        Some(&addr("2001:db8::53").octets()[..])
    );
    let (iaid, t1, t2, addrs) = leases(&opts);
    assert_eq!((iaid, t1, t2), (IAID, 1800, 2880));
    assert_eq!(addrs, [(addr("2001:db8:5::10"), 3600, 3600)]);
}

#[test]
fn rapid_commit_gets_the_reply_at_once() {
    let f = message(
        CLIENT,
        SOLICIT,
        &[
            opt(OPT_CLIENTID, CLIENT_DUID),
            opt(OPT_RAPID_COMMIT, &[]),
            ia(&[]),
        ],
    );
    let (kind, opts) = answer(&stateful(), &f).unwrap();
    assert_eq!(kind, REPLY);
    assert!(find(&opts, OPT_RAPID_COMMIT).is_some());
    assert_eq!(leases(&opts).3[0].0, addr("2001:db8:5::10"));
}

#[test]
fn requests_renewals_and_rebinds_are_replied_and_other_servers_ignored() {
    let ours = opt(OPT_SERVERID, &server_duid(SERVER_MAC));
    let theirs = opt(OPT_SERVERID, &[0, 3, 0, 1, 2, 0, 0, 0, 0, 9]);
    let client = opt(OPT_CLIENTID, CLIENT_DUID);
    let want = ia(&[addr("2001:db8:5::10")]);
    for kind in [REQUEST, RENEW] {
        let f = message(CLIENT, kind, &[client.clone(), ours.clone(), want.clone()]);
        let (k, opts) = answer(&stateful(), &f).unwrap();
        assert_eq!(k, REPLY);
        assert_eq!(leases(&opts).3, [(addr("2001:db8:5::10"), 3600, 3600)]);
        // Another server's, or no server named: not ours to answer.
        let f = message(
            CLIENT,
            kind,
            &[client.clone(), theirs.clone(), want.clone()],
        );
        assert!(answer(&stateful(), &f).is_none());
        let f = message(CLIENT, kind, &[client.clone(), want.clone()]);
        assert!(answer(&stateful(), &f).is_none());
    }
    // A rebind names no server; one that does is refused.
    let f = message(CLIENT, REBIND, &[client.clone(), want.clone()]);
    assert_eq!(answer(&stateful(), &f).unwrap().0, REPLY);
    let f = message(CLIENT, REBIND, &[client.clone(), ours.clone(), want]);
    assert!(answer(&stateful(), &f).is_none());
    // Without a client id there is nobody to lease to.
    let f = message(CLIENT, SOLICIT, &[ia(&[])]);
    assert!(answer(&stateful(), &f).is_none());
}

#[test]
fn an_address_that_is_not_the_ports_is_returned_with_lifetimes_zero() {
    let f = message(
        CLIENT,
        RENEW,
        &[
            opt(OPT_CLIENTID, CLIENT_DUID),
            opt(OPT_SERVERID, &server_duid(SERVER_MAC)),
            ia(&[addr("2001:db8:9::1")]),
        ],
    );
    let (_, opts) = answer(&stateful(), &f).unwrap();
    assert_eq!(
        leases(&opts).3,
        [
            (addr("2001:db8:5::10"), 3600, 3600),
            (addr("2001:db8:9::1"), 0, 0)
        ]
    );
}

#[test]
fn confirm_release_and_decline_get_their_status() {
    let client = opt(OPT_CLIENTID, CLIENT_DUID);
    let ours = opt(OPT_SERVERID, &server_duid(SERVER_MAC));
    let code = |opts: &[(u16, Vec<u8>)]| {
        let s = find(opts, OPT_STATUS_CODE).unwrap();
        u16::from_be_bytes([s[0], s[1]])
    };
    let f = message(
        CLIENT,
        CONFIRM,
        &[client.clone(), ia(&[addr("2001:db8:5::10")])],
    );
    assert_eq!(code(&answer(&stateful(), &f).unwrap().1), SUCCESS);
    let f = message(
        CLIENT,
        CONFIRM,
        &[client.clone(), ia(&[addr("2001:db8:6::10")])],
    );
    assert_eq!(code(&answer(&stateful(), &f).unwrap().1), NOT_ON_LINK);
    for kind in [RELEASE, DECLINE] {
        let f = message(CLIENT, kind, &[client.clone(), ours.clone(), ia(&[])]);
        let (k, opts) = answer(&stateful(), &f).unwrap();
        assert_eq!((k, code(&opts)), (REPLY, SUCCESS));
        assert!(find(&opts, OPT_IA_NA).is_none());
    }
}

#[test]
fn information_requests_get_dns_and_stateless_ports_nothing_else() {
    let f = message(
        CLIENT,
        INFORMATION_REQUEST,
        &[opt(OPT_CLIENTID, CLIENT_DUID)],
    );
    for cfg in [stateless(), stateful()] {
        let (kind, opts) = answer(&cfg, &f).unwrap();
        assert_eq!(kind, REPLY);
        assert_eq!(
            find(&opts, OPT_DNS_SERVERS),
            Some(&addr("2001:db8::53").octets()[..])
        );
        assert!(find(&opts, OPT_IA_NA).is_none());
    }
    // No client id is allowed in an information request.
    let bare = message(CLIENT, INFORMATION_REQUEST, &[]);
    assert_eq!(answer(&stateless(), &bare).unwrap().0, REPLY);
    // A port without addresses answers no solicit: its client forms its own (SLAAC).
    let f = message(CLIENT, SOLICIT, &[opt(OPT_CLIENTID, CLIENT_DUID), ia(&[])]);
    assert!(answer(&stateless(), &f).is_none());
}

#[test]
fn a_message_behind_options_headers_is_answered_as_one_without() {
    let solicit = message(CLIENT, SOLICIT, &[opt(OPT_CLIENTID, &[1, 2]), ia(&[])]);
    let plain = answer(&stateful(), &solicit).expect("answered");
    for kind in [0, 60] {
        let f = crate::ra::tests::with_extension(&solicit, kind);
        assert_eq!(
            client_message(&f),
            Some(client_message(&solicit).unwrap() + 8)
        );
        assert_eq!(
            answer(&stateful(), &f),
            Some(plain.clone()),
            "behind {kind}"
        );
    }
    // Behind a fragment header: no whole message to answer.
    let f = crate::ra::tests::with_extension(&solicit, 44);
    assert_eq!(client_message(&f), None);
}

#[test]
fn only_the_ports_client_and_well_formed_messages_are_answered() {
    let other = Mac([0xfa, 0x16, 0x3e, 0, 0, 8]);
    let f = message(other, INFORMATION_REQUEST, &[]);
    let at = client_message(&f).unwrap();
    assert!(respond(&stateless(), &f, at, &mut [0u8; 1024]).is_none());
    // Not to the servers' group, not from port 546, not UDP: not a client message.
    let mut f = message(CLIENT, INFORMATION_REQUEST, &[]);
    f[5] = 3;
    assert!(client_message(&f).is_none());
    let mut f = message(CLIENT, INFORMATION_REQUEST, &[]);
    f[ETH_HEADER_LEN + IPV6_HEADER + 1] = 0x23;
    assert!(client_message(&f).is_none());
    let mut f = message(CLIENT, INFORMATION_REQUEST, &[]);
    f[ETH_HEADER_LEN + 6] = 6;
    assert!(client_message(&f).is_none());
    // Options that overrun the message, and a truncated header.
    let mut f = message(
        CLIENT,
        INFORMATION_REQUEST,
        &[opt(OPT_CLIENTID, CLIENT_DUID)],
    );
    f.truncate(f.len() - 2);
    assert!(answer(&stateless(), &f).is_none());
    let f = message(CLIENT, INFORMATION_REQUEST, &[]);
    assert!(client_message(&f[..f.len() - 2]).is_none());
    // No room: nothing written.
    let f = message(CLIENT, INFORMATION_REQUEST, &[]);
    let at = client_message(&f).unwrap();
    assert!(respond(&stateless(), &f, at, &mut [0u8; 64]).is_none());
}

#[test]
fn messages_without_a_usable_ia_get_no_addresses_avail() {
    let client = opt(OPT_CLIENTID, CLIENT_DUID);
    let code = |v: &[u8]| u16::from_be_bytes([v[0], v[1]]);
    // No IA_NA at all: NoAddrsAvail for the message.
    let f = message(CLIENT, SOLICIT, std::slice::from_ref(&client));
    let (_, opts) = answer(&stateful(), &f).unwrap();
    assert_eq!(code(find(&opts, OPT_STATUS_CODE).unwrap()), NO_ADDRS_AVAIL);
    // Two IA_NAs: the addresses go to the first; the second has none.
    let mut second = ia(&[]);
    second[7] = 10;
    let f = message(CLIENT, SOLICIT, &[client.clone(), ia(&[]), second]);
    let (_, opts) = answer(&stateful(), &f).unwrap();
    let ias: Vec<&Vec<u8>> = opts
        .iter()
        .filter(|(c, _)| *c == OPT_IA_NA)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(ias.len(), 2);
    assert_eq!(leases(&opts).3.len(), 1, "the first holds the address");
    let inner = options(&ias[1][12..]).unwrap();
    assert!(inner.iter().all(|(c, _)| *c != OPT_IAADDR));
    let st = inner.iter().find(|(c, _)| *c == OPT_STATUS_CODE).unwrap().1;
    assert_eq!(code(st), NO_ADDRS_AVAIL);
    // A port whose stateful address is gone: a renewal gets it back with lifetimes 0.
    let f = message(
        CLIENT,
        RENEW,
        &[
            client.clone(),
            opt(OPT_SERVERID, &server_duid(SERVER_MAC)),
            ia(&[addr("2001:db8:5::10")]),
        ],
    );
    let (kind, opts) = answer(&stateless(), &f).unwrap();
    assert_eq!(kind, REPLY);
    assert_eq!(leases(&opts).3, [(addr("2001:db8:5::10"), 0, 0)]);
    // A confirm naming no address gets no reply (RFC 8415 18.3.3).
    let f = message(CLIENT, CONFIRM, &[client, ia(&[])]);
    assert!(answer(&stateful(), &f).is_none());
}

/// An IA_PD with IAID 11 naming `prefixes` (length 56).
fn ia_pd_asking(prefixes: &[Ipv6Addr]) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 11];
    v.extend_from_slice(&[0; 8]);
    for p in prefixes {
        let mut o = vec![0, 0, 0x0e, 0x10, 0, 0, 0x1c, 0x20, 56];
        o.extend_from_slice(&p.octets());
        v.extend(opt(OPT_IAPREFIX, &o));
    }
    opt(OPT_IA_PD, &v)
}

/// An IA_PD's IAID, its (prefix, length, preferred, valid) entries and its status code.
type Delegation = ([u8; 4], Vec<(Ipv6Addr, u8, u32, u32)>, u16);

/// The IA_PD in `opts`.
fn delegation(opts: &[(u16, Vec<u8>)]) -> Delegation {
    let pd = find(opts, OPT_IA_PD).expect("an IA_PD");
    let word = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap());
    let inner = options(&pd[12..]).unwrap();
    let prefixes = inner
        .iter()
        .filter(|(c, _)| *c == OPT_IAPREFIX)
        .map(|(_, v)| {
            let a: [u8; 16] = v[9..25].try_into().unwrap();
            (Ipv6Addr::from(a), v[8], word(&v[..4]), word(&v[4..8]))
        })
        .collect();
    let st = inner.iter().find(|(c, _)| *c == OPT_STATUS_CODE).unwrap().1;
    (
        pd[..4].try_into().unwrap(),
        prefixes,
        u16::from_be_bytes([st[0], st[1]]),
    )
}

#[test]
fn prefix_delegation_is_refused_in_the_ia_pd_as_rfc_8415_asks() {
    let client = opt(OPT_CLIENTID, CLIENT_DUID);
    let server = opt(OPT_SERVERID, &server_duid(SERVER_MAC));
    let code = |v: &[u8]| u16::from_be_bytes([v[0], v[1]]);
    // Beside an IA_NA: the address in the IA_NA, NoPrefixAvail in the IA_PD.
    let f = message(
        CLIENT,
        SOLICIT,
        &[client.clone(), ia(&[]), ia_pd_asking(&[])],
    );
    let (kind, opts) = answer(&stateful(), &f).unwrap();
    assert_eq!(kind, ADVERTISE);
    assert_eq!(leases(&opts).3.len(), 1);
    assert_eq!(delegation(&opts), ([0, 0, 0, 11], vec![], NO_PREFIX_AVAIL));
    assert!(
        find(&opts, OPT_STATUS_CODE).is_none(),
        "no status for the message"
    );
    // Only an IA_PD in a SOLICIT: nothing would be assigned, so only NoAddrsAvail.
    let f = message(CLIENT, SOLICIT, &[client.clone(), ia_pd_asking(&[])]);
    let (_, opts) = answer(&stateful(), &f).unwrap();
    assert_eq!(code(find(&opts, OPT_STATUS_CODE).unwrap()), NO_ADDRS_AVAIL);
    assert!(find(&opts, OPT_IA_PD).is_none());
    // A REQUEST for a prefix: its IA_PD with NoPrefixAvail.
    let f = message(
        CLIENT,
        REQUEST,
        &[client.clone(), server.clone(), ia_pd_asking(&[])],
    );
    let (kind, opts) = answer(&stateful(), &f).unwrap();
    assert_eq!(kind, REPLY);
    assert_eq!(delegation(&opts).2, NO_PREFIX_AVAIL);
    assert!(find(&opts, OPT_STATUS_CODE).is_none());
    // A renewal of a prefix: NoBinding, and the prefix back with lifetimes 0.
    let p = addr("2001:db8:100::");
    let f = message(
        CLIENT,
        RENEW,
        &[client.clone(), server, ia(&[]), ia_pd_asking(&[p])],
    );
    let (_, opts) = answer(&stateful(), &f).unwrap();
    assert_eq!(
        delegation(&opts),
        ([0, 0, 0, 11], vec![(p, 56, 0, 0)], NO_BINDING)
    );
    let f = message(CLIENT, REBIND, &[client, ia(&[]), ia_pd_asking(&[p])]);
    let (_, opts) = answer(&stateful(), &f).unwrap();
    assert_eq!(delegation(&opts).2, NO_BINDING);
}

#[test]
fn only_link_local_sources_are_answered_and_the_message_ends_with_its_datagram() {
    let mut f = message(CLIENT, INFORMATION_REQUEST, &[]);
    // From `::` (which port security lets through for duplicate address detection).
    f[ETH_HEADER_LEN + 8..ETH_HEADER_LEN + 24].fill(0);
    let at = client_message(&f).unwrap();
    assert!(respond(&stateless(), &f, at, &mut [0u8; 1024]).is_none());
    // Padding after the UDP datagram (a short frame padded on the wire) is not an option.
    let mut f = message(
        CLIENT,
        INFORMATION_REQUEST,
        &[opt(OPT_CLIENTID, CLIENT_DUID)],
    );
    f.extend_from_slice(&[0; 7]);
    assert_eq!(answer(&stateless(), &f).unwrap().0, REPLY);
}
