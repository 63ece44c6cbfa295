//! The native DHCPv6 responder: a VM port's DHCPv6 client is answered by the switch itself, from
//! the port's own configuration, as OVN answers it in its datapath (and Neutron's dnsmasq on a
//! `dhcpv6-stateful` or `dhcpv6-stateless` subnet). The request never floods.
//!
//! RFC 8415 server behaviour, reduced to one client per port:
//! - stateful (the port holds addresses on `dhcpv6-stateful` subnets): SOLICIT gets an
//!   ADVERTISE (a REPLY when the client asked for rapid commit), REQUEST, RENEW and REBIND get a
//!   REPLY: the first IA_NA asked for holds the port's addresses, any other gets NoAddrsAvail,
//!   and an address the client names that is not the port's comes back with lifetimes 0 (so the
//!   client drops it); a message with no IA_NA gets NoAddrsAvail; prefix delegation is not
//!   offered (an IA_PD beside an IA_NA, or in a REQUEST, gets NoPrefixAvail, in a RENEW or REBIND
//!   NoBinding, its prefixes with lifetimes 0); CONFIRM gets Success when every
//!   address it names is the port's, NotOnLink otherwise (and nothing when it names none);
//!   RELEASE and DECLINE get Success;
//! - stateless and stateful: INFORMATION-REQUEST gets the DNS servers; RENEW and REBIND from a
//!   port that no longer has stateful addresses get theirs back with lifetimes 0.
//!
//! Every reply carries the server's DUID (DUID-LL of [`crate::dhcp::SERVER_MAC`]) and the
//! client's, and the DNS servers; it goes to the client's link-local source from the server's
//! link-local address. A message naming another server, a SOLICIT to a port without addresses,
//! a message whose source is not a link-local address, and anything from a MAC other than the
//! port's get nothing.

use std::net::Ipv6Addr;

use crate::csum;
use crate::ra::link_local;
use crate::wire::{Mac, ETH_HEADER_LEN};

/// What the responder hands a port's client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dhcp6Config {
    /// The port's MAC: only its requests are answered.
    pub client_mac: Mac,
    /// The port's addresses on stateful subnets (none: information only).
    pub addresses: Vec<Ipv6Addr>,
    /// The subnets' IPv6 `dns_nameservers` (option 23).
    pub dns: Vec<Ipv6Addr>,
    /// Preferred and valid lifetime of the addresses, in seconds.
    pub lease_secs: u32,
    /// The replies' source MAC, and the server's DUID.
    pub server_mac: Mac,
}

const IPV6_HEADER: usize = 40;
const UDP_HEADER: usize = 8;
const UDP: u8 = 17;
const CLIENT_PORT: u16 = 546;
const SERVER_PORT: u16 = 547;
/// `ff02::1:2`, All_DHCP_Relay_Agents_and_Servers, and its MAC.
const ALL_SERVERS_MAC: [u8; 6] = [0x33, 0x33, 0, 1, 0, 2];

const SOLICIT: u8 = 1;
const ADVERTISE: u8 = 2;
const REQUEST: u8 = 3;
const CONFIRM: u8 = 4;
const RENEW: u8 = 5;
const REBIND: u8 = 6;
const REPLY: u8 = 7;
const RELEASE: u8 = 8;
const DECLINE: u8 = 9;
const INFORMATION_REQUEST: u8 = 11;

const OPT_CLIENTID: u16 = 1;
const OPT_SERVERID: u16 = 2;
const OPT_IA_NA: u16 = 3;
const OPT_IAADDR: u16 = 5;
const OPT_PREFERENCE: u16 = 7;
const OPT_STATUS_CODE: u16 = 13;
const OPT_RAPID_COMMIT: u16 = 14;
const OPT_DNS_SERVERS: u16 = 23;
const OPT_IA_PD: u16 = 25;
const OPT_IAPREFIX: u16 = 26;

const SUCCESS: u16 = 0;
const NO_ADDRS_AVAIL: u16 = 2;
const NO_BINDING: u16 = 3;
const NOT_ON_LINK: u16 = 4;
const NO_PREFIX_AVAIL: u16 = 6;

/// DNS servers beyond these are left out.
const MAX_DNS: usize = 3;
/// IA_NAs (and IA_PDs) of one message beyond these are left unanswered.
const MAX_IAS: usize = 4;

/// Where a client's DHCPv6 message starts in an untagged frame, if `frame` is IPv6/UDP from port
/// 546 to port 547 at `ff02::1:2` (behind hop-by-hop or destination options headers too).
pub fn client_message(frame: &[u8]) -> Option<usize> {
    if frame.len() < ETH_HEADER_LEN + IPV6_HEADER
        || frame[0..6] != ALL_SERVERS_MAC
        || frame[12..14] != [0x86, 0xdd]
        || frame[ETH_HEADER_LEN] >> 4 != 6
    {
        return None;
    }
    let (udp, next) = crate::csum::ipv6_upper(&frame[ETH_HEADER_LEN..])?;
    let udp = ETH_HEADER_LEN + udp;
    let at = udp + UDP_HEADER;
    let ports = frame.get(udp..udp + 4)?;
    (next == UDP
        && frame.len() >= at + 4
        && ports[0..2] == CLIENT_PORT.to_be_bytes()
        && ports[2..4] == SERVER_PORT.to_be_bytes())
    .then_some(at)
}

/// The options of a message, each as (code, value), in order; `None` if they overrun.
fn options(mut o: &[u8]) -> Option<Vec<(u16, &[u8])>> {
    let mut out = Vec::new();
    while !o.is_empty() {
        let head = o.get(..4)?;
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        out.push((code, o.get(4..4 + len)?));
        o = &o[4 + len..];
    }
    Some(out)
}

/// The server's DUID: DUID-LL (type 3), hardware type Ethernet, its MAC.
fn server_duid(mac: Mac) -> [u8; 10] {
    let mut d = [0, 3, 0, 1, 0, 0, 0, 0, 0, 0];
    d[4..].copy_from_slice(&mac.0);
    d
}

/// Builds the reply to the client message in `frame` (checked with [`client_message`], message
/// at `at`) into `out`; its length. `None` when the message gets no answer or there is no room.
pub fn respond(cfg: &Dhcp6Config, frame: &[u8], at: usize, out: &mut [u8]) -> Option<usize> {
    if frame[6..12] != cfg.client_mac.0 {
        return None;
    }
    // Clients send from their link-local address (RFC 8415 13.1); the reply goes back to it.
    let src: [u8; 16] = frame[ETH_HEADER_LEN + 8..ETH_HEADER_LEN + 24]
        .try_into()
        .ok()?;
    if src[0] != 0xfe || src[1] & 0xc0 != 0x80 {
        return None;
    }
    // The message ends where the UDP datagram does: bytes beyond it are no options.
    let udp = at.checked_sub(UDP_HEADER)?;
    let udp_len = usize::from(u16::from_be_bytes([frame[udp + 4], frame[udp + 5]]));
    let msg = frame.get(at..(udp + udp_len).max(at))?;
    let (&kind, rest) = msg.split_first()?;
    let xid = rest.get(..3)?;
    let opts = options(&rest[3..])?;
    let get = |code| opts.iter().find(|(c, _)| *c == code).map(|(_, v)| *v);
    let duid = server_duid(cfg.server_mac);
    let client_id = get(OPT_CLIENTID);
    match get(OPT_SERVERID) {
        // Addressed to another server.
        Some(s) if s != duid => return None,
        // RFC 8415 16: these must name the server; the others must not.
        None if matches!(kind, REQUEST | RENEW | RELEASE | DECLINE) => return None,
        Some(_) if matches!(kind, SOLICIT | CONFIRM | REBIND) => return None,
        _ => {}
    }
    let stateful = !cfg.addresses.is_empty();
    // The IA options of a kind (each at least its IAID, T1 and T2).
    let ias_of = |code| -> Vec<&[u8]> {
        opts.iter()
            .filter(|(c, v)| *c == code && v.len() >= 12)
            .map(|(_, v)| *v)
            .take(MAX_IAS)
            .collect()
    };
    let ias = ias_of(OPT_IA_NA);
    // Prefix delegation is not offered: each IA_PD is answered with no prefix.
    let pds = ias_of(OPT_IA_PD);
    let rapid = kind == SOLICIT && get(OPT_RAPID_COMMIT).is_some();
    let named: Vec<Ipv6Addr> = ias.iter().flat_map(|ia| ia_addresses(ia)).collect();
    let reply_kind = match kind {
        SOLICIT if stateful && client_id.is_some() => {
            if rapid {
                REPLY
            } else {
                ADVERTISE
            }
        }
        // RFC 8415 18.3.3: a CONFIRM naming no address gets no reply.
        CONFIRM if named.is_empty() => return None,
        REQUEST | CONFIRM | RELEASE | DECLINE if stateful && client_id.is_some() => REPLY,
        // A port that lost its stateful addresses: its client is told to drop them.
        RENEW | REBIND if client_id.is_some() => REPLY,
        INFORMATION_REQUEST if ias.is_empty() => REPLY,
        _ => return None,
    };

    let mut m: Vec<u8> = Vec::with_capacity(256);
    m.push(reply_kind);
    m.extend_from_slice(xid);
    put(&mut m, OPT_SERVERID, &duid);
    if let Some(c) = client_id {
        put(&mut m, OPT_CLIENTID, c);
    }
    match kind {
        SOLICIT | REQUEST | RENEW | REBIND => {
            if rapid {
                put(&mut m, OPT_RAPID_COMMIT, &[]);
            }
            if kind == SOLICIT {
                // The only server of the link: the client need not wait for others.
                put(&mut m, OPT_PREFERENCE, &[255]);
            }
            // RFC 8415 18.3.9: a server that would assign nothing advertises only NoAddrsAvail.
            let nothing = ias.is_empty() && (kind == SOLICIT || pds.is_empty());
            if nothing {
                status(&mut m, NO_ADDRS_AVAIL);
            }
            // The port's addresses go to one IA (an address belongs to one IA, RFC 8415 21.4).
            for (i, ia) in ias.iter().enumerate() {
                put(&mut m, OPT_IA_NA, &ia_na(cfg, ia, i == 0));
            }
            if !nothing {
                let why = if matches!(kind, RENEW | REBIND) {
                    NO_BINDING
                } else {
                    NO_PREFIX_AVAIL
                };
                for pd in &pds {
                    put(&mut m, OPT_IA_PD, &ia_pd(pd, why));
                }
            }
        }
        CONFIRM => {
            let ours = named.iter().all(|a| cfg.addresses.contains(a));
            status(&mut m, if ours { SUCCESS } else { NOT_ON_LINK });
        }
        RELEASE | DECLINE => status(&mut m, SUCCESS),
        _ => {}
    }
    let dns: Vec<u8> = cfg
        .dns
        .iter()
        .take(MAX_DNS)
        .flat_map(|d| d.octets())
        .collect();
    if !dns.is_empty() {
        put(&mut m, OPT_DNS_SERVERS, &dns);
    }

    // UDP, IPv6, Ethernet: to the client's source, from the server's link-local address.
    let src_ip = link_local(cfg.server_mac);
    let dst_ip = src;
    let udp_len = UDP_HEADER + m.len();
    let len = ETH_HEADER_LEN + IPV6_HEADER + udp_len;
    let f = out.get_mut(..len)?;
    f[0..6].copy_from_slice(&cfg.client_mac.0);
    f[6..12].copy_from_slice(&cfg.server_mac.0);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    let h = &mut f[ETH_HEADER_LEN..ETH_HEADER_LEN + IPV6_HEADER];
    h[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
    h[4..6].copy_from_slice(&u16::try_from(udp_len).ok()?.to_be_bytes());
    h[6] = UDP;
    h[7] = 64;
    h[8..24].copy_from_slice(&src_ip.octets());
    h[24..40].copy_from_slice(&dst_ip);
    let u = &mut f[ETH_HEADER_LEN + IPV6_HEADER..ETH_HEADER_LEN + IPV6_HEADER + UDP_HEADER];
    u[0..2].copy_from_slice(&SERVER_PORT.to_be_bytes());
    u[2..4].copy_from_slice(&CLIENT_PORT.to_be_bytes());
    u[4..6].copy_from_slice(&u16::try_from(udp_len).ok()?.to_be_bytes());
    u[6..8].fill(0);
    f[ETH_HEADER_LEN + IPV6_HEADER + UDP_HEADER..].copy_from_slice(&m);
    // The UDP checksum, mandatory over IPv6: the pseudo-header's sum, then completed.
    if !csum::make_partial(f) || csum::complete_partial(f) != csum::Checksum::Completed {
        return None;
    }
    Some(len)
}

/// Appends option `code` with `value`.
fn put(m: &mut Vec<u8>, code: u16, value: &[u8]) {
    m.extend_from_slice(&code.to_be_bytes());
    m.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
    m.extend_from_slice(value);
}

fn status(m: &mut Vec<u8>, code: u16) {
    put(m, OPT_STATUS_CODE, &code.to_be_bytes());
}

/// The addresses an IA_NA option (its value) names.
fn ia_addresses(ia: &[u8]) -> Vec<Ipv6Addr> {
    options(ia.get(12..).unwrap_or_default())
        .unwrap_or_default()
        .into_iter()
        .filter(|(c, v)| *c == OPT_IAADDR && v.len() >= 24)
        .filter_map(|(_, v)| <[u8; 16]>::try_from(&v[..16]).ok().map(Ipv6Addr::from))
        .collect()
}

/// The answer to an IA_NA (its value): the same IAID, renewal at half the lifetime and rebinding
/// at four fifths; in the IA that `holds` them the port's addresses (NoAddrsAvail in the others,
/// and when the port has none); the other addresses the client named, with lifetimes 0.
fn ia_na(cfg: &Dhcp6Config, asked: &[u8], holds: bool) -> Vec<u8> {
    let lease = cfg.lease_secs;
    let ours: &[Ipv6Addr] = if holds { &cfg.addresses } else { &[] };
    let mut v = Vec::with_capacity(12 + 28 * ours.len());
    v.extend_from_slice(&asked[..4]);
    v.extend_from_slice(&(lease / 2).to_be_bytes());
    v.extend_from_slice(&(lease / 5 * 4).to_be_bytes());
    let mut addr = |a: &Ipv6Addr, life: u32| {
        let mut o = a.octets().to_vec();
        o.extend_from_slice(&life.to_be_bytes());
        o.extend_from_slice(&life.to_be_bytes());
        put(&mut v, OPT_IAADDR, &o);
    };
    for a in ours {
        addr(a, lease);
    }
    for a in ia_addresses(asked) {
        if !ours.contains(&a) {
            addr(&a, 0);
        }
    }
    if ours.is_empty() {
        status(&mut v, NO_ADDRS_AVAIL);
    }
    v
}

/// The answer to an IA_PD (its value): the same IAID, no prefix of its own, the prefixes the
/// client named with lifetimes 0 (so that it stops using them), and the status `why`
/// (NoPrefixAvail, or NoBinding to a renewal or rebind).
fn ia_pd(asked: &[u8], why: u16) -> Vec<u8> {
    let mut v = asked[..4].to_vec();
    v.extend_from_slice(&[0; 8]);
    let named = options(asked.get(12..).unwrap_or_default()).unwrap_or_default();
    for (_, p) in named
        .iter()
        .filter(|(c, p)| *c == OPT_IAPREFIX && p.len() >= 25)
    {
        let mut o = vec![0; 8];
        o.extend_from_slice(&p[8..25]);
        put(&mut v, OPT_IAPREFIX, &o);
    }
    status(&mut v, why);
    v
}

#[cfg(test)]
mod tests;
