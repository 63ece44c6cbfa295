//! The native DHCPv4 responder: a VM port's DHCPDISCOVER and DHCPREQUEST are answered by the
//! switch itself, from the port's own configuration (its fixed address on a DHCP-enabled
//! subnet), as OVN answers them in its datapath. The request never floods.
//!
//! RFC 2131 server behaviour, reduced to one client per port: DISCOVER gets an OFFER of the
//! port's address; REQUEST gets an ACK when it asks for that address (selecting state, init-
//! reboot, renewing or rebinding) and a NAK otherwise; INFORM (a client with an address, asking
//! for the rest) gets an ACK to its address without a lease (RFC 2131 4.3.5); a REQUEST naming
//! another server, a RELEASE, a DECLINE and anything from a MAC other than the port's get
//! nothing.
//!
//! Every reply echoes the client identifier (option 61) the client sent (RFC 6842), and carries
//! the subnet's broadcast address (option 28, not on a /31 or /32), as dnsmasq's do.
//!
//! The default route is the subnet's gateway; a subnet without one takes a host route to
//! 0.0.0.0/0 as its gateway, and one with a gateway leaves such a route out (as Neutron's DHCP
//! agent does), so a client never gets two default routes.

use std::net::Ipv4Addr;

use crate::csum;
use crate::wire::{Mac, ETH_HEADER_LEN};

/// What the responder hands a port's client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpConfig {
    /// The port's MAC: only its requests are answered.
    pub client_mac: Mac,
    /// The port's address.
    pub ip: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix_len: u8,
    /// The subnet's gateway (option 3, and the default route of option 121); without one, a
    /// host route to 0.0.0.0/0 takes its place.
    pub router: Option<Ipv4Addr>,
    /// `dns_nameservers` (option 6).
    pub dns: Vec<Ipv4Addr>,
    /// `host_routes`: destination, prefix length, next hop (option 121).
    pub routes: Vec<(Ipv4Addr, u8, Ipv4Addr)>,
    /// The network's MTU (option 26).
    pub mtu: u16,
    /// Lease time in seconds (option 51).
    pub lease_secs: u32,
    /// The server identifier (option 54) and the replies' source address: on the subnet.
    pub server_ip: Ipv4Addr,
    /// The replies' source MAC.
    pub server_mac: Mac,
}

impl DhcpConfig {
    /// Is the client message at `at` in `frame` (`client_message`) the port's client's own:
    /// its hardware address, not a guest's behind it (a bridge that rewrites source MACs
    /// forwards its guests' requests with their own `chaddr`, which go on as any frame)?
    pub fn asks(&self, frame: &[u8], at: usize) -> bool {
        frame.get(at + 28..at + 34) == Some(&self.client_mac.0[..])
    }
}

/// The replies' source MAC unless configured: locally administered, the same on every port.
pub const SERVER_MAC: Mac = Mac([0x02, 0x71, 0x73, 0x00, 0x00, 0x01]);

/// The lease time unless configured (Neutron's `dhcp_lease_duration`).
pub const DEFAULT_LEASE_SECS: u32 = 86_400;

const IPV4_HEADER: usize = 20;
const UDP_HEADER: usize = 8;
/// BOOTP's fixed part, up to the options' magic cookie.
const BOOTP_FIXED: usize = 236;
const MAGIC: [u8; 4] = [0x63, 0x82, 0x53, 0x63];
/// The smallest DHCP message clients must accept (BOOTP's 300 bytes).
const MIN_MESSAGE: usize = 300;
/// The largest reply this responder builds: a 576-byte IP datagram, which every client accepts
/// (RFC 2131 2), in an Ethernet frame. Options that would not fit are left out.
pub const MAX_REPLY: usize = ETH_HEADER_LEN + 576;

const DISCOVER: u8 = 1;
const OFFER: u8 = 2;
const REQUEST: u8 = 3;
const ACK: u8 = 5;
const NAK: u8 = 6;
const INFORM: u8 = 8;

/// Where a client's DHCP message starts in an untagged frame (the BOOTP header), if `frame` is
/// IPv4/UDP to port 67 from port 68.
pub fn client_message(frame: &[u8]) -> Option<usize> {
    if frame.len() < ETH_HEADER_LEN + IPV4_HEADER || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[ETH_HEADER_LEN..];
    if ip[0] >> 4 != 4 || ip[9] != 17 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    // A fragment is not a whole message.
    if ihl < IPV4_HEADER || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
        return None;
    }
    let udp = ip.get(ihl..ihl + UDP_HEADER)?;
    if udp[0..2] != [0, 68] || udp[2..4] != [0, 67] {
        return None;
    }
    Some(ETH_HEADER_LEN + ihl + UDP_HEADER)
}

/// The options of a message that matter here.
#[derive(Debug, Default)]
struct Options<'a> {
    kind: Option<u8>,
    requested: Option<Ipv4Addr>,
    server: Option<Ipv4Addr>,
    /// The client identifier (option 61), echoed in every reply (RFC 6842).
    client_id: Option<&'a [u8]>,
}

fn parse_options(mut o: &[u8]) -> Options<'_> {
    let mut out = Options::default();
    while let Some((&code, rest)) = o.split_first() {
        match code {
            0 => o = rest,
            255 => break,
            _ => {
                let Some((&len, rest)) = rest.split_first() else {
                    break;
                };
                let Some(value) = rest.get(..usize::from(len)) else {
                    break;
                };
                let addr = || <[u8; 4]>::try_from(value).ok().map(Ipv4Addr::from);
                match code {
                    53 => out.kind = value.first().copied(),
                    50 => out.requested = addr(),
                    54 => out.server = addr(),
                    61 => out.client_id = Some(value),
                    _ => {}
                }
                o = &rest[usize::from(len)..];
            }
        }
    }
    out
}

/// Builds the reply to the client message in `frame` (BOOTP header at `at`) into `out`, and
/// returns its length; `None` when the message gets no answer.
pub fn respond(cfg: &DhcpConfig, frame: &[u8], at: usize, out: &mut [u8]) -> Option<usize> {
    let msg = frame.get(at..)?;
    if msg.len() < BOOTP_FIXED + MAGIC.len()
        || msg[0] != 1
        || msg[1] != 1
        || msg[2] != 6
        || msg[BOOTP_FIXED..BOOTP_FIXED + 4] != MAGIC
    {
        return None;
    }
    let chaddr = &msg[28..34];
    if chaddr != cfg.client_mac.0 || frame[6..12] != cfg.client_mac.0 {
        return None;
    }
    let opts = parse_options(&msg[BOOTP_FIXED + 4..]);
    let ciaddr = Ipv4Addr::new(msg[12], msg[13], msg[14], msg[15]);
    let inform = opts.kind == Some(INFORM);
    let kind = match opts.kind? {
        // Answered at the address the client has, which it must give.
        INFORM if !ciaddr.is_unspecified() => ACK,
        DISCOVER => OFFER,
        REQUEST => {
            if opts.server.is_some_and(|s| s != cfg.server_ip) {
                // The client chose another server's offer.
                return None;
            }
            let asked = opts.requested.unwrap_or(ciaddr);
            if asked == cfg.ip {
                ACK
            } else {
                NAK
            }
        }
        _ => return None,
    };
    let broadcast_flag = msg[10] & 0x80 != 0;
    // RFC 2131 4.1: a NAK is broadcast; a client with an address gets it unicast; one without
    // gets a broadcast when it asked for one, else its new address (at its own MAC).
    let dst_ip = if kind == NAK {
        Ipv4Addr::BROADCAST
    } else if !ciaddr.is_unspecified() {
        ciaddr
    } else if broadcast_flag {
        Ipv4Addr::BROADCAST
    } else {
        cfg.ip
    };

    // The DHCP message.
    let dhcp_at = ETH_HEADER_LEN + IPV4_HEADER + UDP_HEADER;
    let room = out.len().checked_sub(dhcp_at)?.min(MAX_REPLY - dhcp_at);
    if room < MIN_MESSAGE {
        return None;
    }
    let m = &mut out[dhcp_at..dhcp_at + room];
    m.fill(0);
    m[0] = 2; // BOOTREPLY
    m[1] = 1;
    m[2] = 6;
    m[4..8].copy_from_slice(&msg[4..8]); // xid
    m[10..12].copy_from_slice(&msg[10..12]); // flags
    if kind == ACK {
        m[12..16].copy_from_slice(&msg[12..16]); // ciaddr
    }
    if kind != NAK && !inform {
        m[16..20].copy_from_slice(&cfg.ip.octets()); // yiaddr
    }
    m[24..28].copy_from_slice(&msg[24..28]); // giaddr
    m[28..44].copy_from_slice(&msg[28..44]); // chaddr
    m[BOOTP_FIXED..BOOTP_FIXED + 4].copy_from_slice(&MAGIC);
    let mut w = Writer {
        buf: m,
        at: BOOTP_FIXED + 4,
    };
    w.option(53, &[kind])?;
    w.option(54, &cfg.server_ip.octets())?;
    if let Some(id) = opts.client_id {
        w.option(61, id)?;
    }
    if kind != NAK {
        if !inform {
            w.option(51, &cfg.lease_secs.to_be_bytes())?;
            w.option(58, &(cfg.lease_secs / 2).to_be_bytes())?;
            w.option(59, &(cfg.lease_secs / 8 * 7).to_be_bytes())?;
        }
        // (A prefix over 32, which the configuration refuses, is taken as 32.)
        let mask = u32::MAX
            .checked_shl(32u32.saturating_sub(u32::from(cfg.prefix_len)))
            .unwrap_or(0);
        w.option(1, &mask.to_be_bytes())?;
        // The gateway, else a host route to 0.0.0.0/0 (Neutron's DHCP agent's rule).
        let gateway = cfg.router.or_else(|| {
            cfg.routes
                .iter()
                .find(|&&(_, len, _)| len == 0)
                .map(|&(_, _, via)| via)
        });
        if let Some(r) = gateway {
            w.option(3, &r.octets())?;
        }
        // The optional ones are left out when they do not fit (one byte stays for the end),
        // the MTU last of all (a VM that misses it sends frames the network drops).
        w.optional(26, &cfg.mtu.to_be_bytes());
        if !cfg.dns.is_empty() {
            let v: Vec<u8> = cfg.dns.iter().flat_map(|a| a.octets()).collect();
            w.optional(6, &v);
        }
        if !cfg.routes.is_empty() {
            // A client that takes option 121 ignores option 3 (RFC 3442): the default route
            // goes in it too, once.
            let mut v = Vec::new();
            let default = gateway.map(|r| (Ipv4Addr::UNSPECIFIED, 0, r));
            let others = cfg.routes.iter().copied().filter(|&(_, len, _)| len != 0);
            for (dst, len, via) in others.chain(default) {
                if len > 32 {
                    continue;
                }
                v.push(len);
                let significant = usize::from(len).div_ceil(8);
                v.extend_from_slice(&dst.octets()[..significant]);
                v.extend_from_slice(&via.octets());
            }
            w.optional(121, &v);
        }
        // (A /31 or /32 has no broadcast address.)
        if cfg.prefix_len < 31 {
            w.optional(28, &(cfg.ip.to_bits() | !mask).to_be_bytes());
        }
    }
    w.put(&[255])?;
    let dhcp_len = w.at.max(MIN_MESSAGE);
    if dhcp_len > room {
        return None;
    }

    // UDP, IPv4, Ethernet.
    let udp_len = UDP_HEADER + dhcp_len;
    let ip_len = IPV4_HEADER + udp_len;
    let eth = &mut out[..ETH_HEADER_LEN];
    eth[0..6].copy_from_slice(chaddr);
    eth[6..12].copy_from_slice(&cfg.server_mac.0);
    eth[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut out[ETH_HEADER_LEN..ETH_HEADER_LEN + IPV4_HEADER];
    ip.fill(0);
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&u16::try_from(ip_len).ok()?.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&cfg.server_ip.octets());
    ip[16..20].copy_from_slice(&dst_ip.octets());
    let sum = csum::header_checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp_at = ETH_HEADER_LEN + IPV4_HEADER;
    let udp = &mut out[udp_at..udp_at + UDP_HEADER];
    udp[0..2].copy_from_slice(&67u16.to_be_bytes());
    udp[2..4].copy_from_slice(&68u16.to_be_bytes());
    udp[4..6].copy_from_slice(&u16::try_from(udp_len).ok()?.to_be_bytes());
    udp[6..8].fill(0);
    // The UDP checksum: the pseudo-header's sum, then completed over the datagram (the
    // same code that finishes guests' partial checksums).
    let len = ETH_HEADER_LEN + ip_len;
    if !csum::make_partial(&mut out[..len])
        || csum::complete_partial(&mut out[..len]) != csum::Checksum::Completed
    {
        return None;
    }
    Some(ETH_HEADER_LEN + ip_len)
}

struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, b: &[u8]) -> Option<()> {
        self.buf
            .get_mut(self.at..self.at + b.len())?
            .copy_from_slice(b);
        self.at += b.len();
        Some(())
    }

    fn option(&mut self, code: u8, value: &[u8]) -> Option<()> {
        let len = u8::try_from(value.len()).ok()?;
        if self.at + 2 + value.len() > self.buf.len() {
            return None;
        }
        self.put(&[code, len])?;
        self.put(value)
    }

    /// An option the reply can do without: written only if it fits with room for the end.
    fn optional(&mut self, code: u8, value: &[u8]) {
        if self.at + 2 + value.len() < self.buf.len() {
            let _ = self.option(code, value);
        }
    }
}

#[cfg(test)]
mod tests;
