//! The harness's traffic generator and sink, on AF_XDP sockets (the data plane's own ports).
//!
//! # Design
//! The generator writes its frames once into UMEM chunks and then only moves descriptors: each
//! batch takes free chunks, stamps a sequence number and a timestamp into them, and puts them on
//! the TX ring; completions return the chunks. Sending is paced per batch against the requested
//! rate (0 = as fast as possible). A full TX ring is not an error: the generator waits, and its
//! report says how many frames it really offered.
//!
//! Frames: Ethernet to the sink's MAC from one of `flows` source MACs, EtherType 0x88b5, then
//! `QSB1`, a 64-bit sequence number and a 64-bit send time (`CLOCK_MONOTONIC` ns), padded to the
//! frame size (without FCS: a "64-byte frame" is 60 bytes here). Where the switch filters by
//! security groups, frames are IPv4/UDP from the generator's port's own MAC and address to the
//! sink's, one of `flows` source ports each; their payload is `QSBT`, the send time and the low 48
//! bits of the sequence number (a 60-byte frame has room for no more).
//!
//! The sink counts frames carrying the marker, sequence gaps and one-way latency (both ends on
//! one machine, one clock). Its interface's XDP program stamps each frame's arrival time into
//! the frame's metadata (`bpf_ktime_get_ns`, the clock the generator stamps with), so a frame's
//! latency ends when it reached the sink's interface, not when the sink's thread got to it: the
//! sink can sleep between reads (0.5 ms when its ring is empty, fewer wake-ups to take a CPU
//! from the generator or the DUT) without its sleep counting as the DUT's latency. Where the
//! kernel allows XDP programs no metadata, the program writes the stamp over the frame's
//! Ethernet addresses instead (the sink reads none). Where the kernel gave no stamp, the time
//! of the read stands in, and the sink sleeps 50 µs.

use std::io;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dataplane::port::afxdp::{AfXdpPort, AfXdpSpec, XdpMode};
use dataplane::port::{PortIo, Umem, XdpDesc};
use dataplane::sys::bpf::{self, Stamp, ARRIVAL_HEADER_LEN, ARRIVAL_MAGIC, ARRIVAL_META_LEN};
use dataplane::sys::monotonic_ns;
use dataplane::wire::Mac;

/// The payload marker.
pub const MAGIC: &[u8; 4] = b"QSB1";
/// The EtherType of generated frames.
pub const ETHERTYPE: u16 = 0x88b5;
const HEADROOM: u64 = 256;
const BATCH: usize = 64;

/// Nanoseconds since the Unix epoch (one clock for every process of the run).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Opens an AF_XDP port on `device` (its program stamping arrival times as `stamp` says, attached
/// natively: the generator's and the sink's way of measuring stays what it was when the
/// switch's `auto` also meant native on a veth), waiting (up to 2 s) for a queue that a socket
/// closed just before is still releasing.
fn open_port(device: &str, umem: &mut Umem, stamp: Stamp) -> io::Result<AfXdpPort> {
    let start = Instant::now();
    let spec = AfXdpSpec {
        stamp_arrival: stamp,
        xdp_mode: XdpMode::Native,
        ..AfXdpSpec::new(device)
    };
    loop {
        match AfXdpPort::open(&spec, 0, &umem.region()) {
            Err(e)
                if e.kind() == io::ErrorKind::ResourceBusy
                    && start.elapsed() < Duration::from_secs(2) =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(mut port) => {
                // Into the device's map, with a first few chunks to receive into.
                port.start(umem, 64)?;
                return Ok(port);
            }
            r => return r,
        }
    }
}

/// Where this kernel lets a sink's program stamp arrival times ([`Sink::open`]), found by
/// loading each program over a scratch map (no interface is touched): in metadata, else over
/// the Ethernet addresses, else nowhere; with why not in metadata, if not (the verifier's last
/// word, and the second program's after it if that was refused too).
pub fn stamp_for_this_kernel() -> (Stamp, Option<String>) {
    let load = |stamp| {
        let map = bpf::create_xskmap(1)?;
        bpf::load_redirect_program(&map, stamp).map(drop)
    };
    let Err(e) = load(Stamp::Metadata) else {
        return (Stamp::Metadata, None);
    };
    let why = verifier_says(&e);
    match load(Stamp::Header) {
        Ok(()) => (Stamp::Header, Some(why)),
        Err(e) => (Stamp::Off, Some(format!("{why}; {}", verifier_says(&e)))),
    }
}

/// The gist of a failure to load or attach an XDP program: the verifier's last word where its
/// log is in the error (its final lines are a summary), else the error's first line.
fn verifier_says(e: &io::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("processed "));
    let first = text.lines().next().unwrap_or_default();
    match last {
        Some(l) if l != first => l.to_string(),
        _ => first.to_string(),
    }
}

/// The source MAC of flow `i`.
pub fn flow_mac(i: u32) -> Mac {
    let b = i.to_be_bytes();
    Mac([0x02, 0xbe, b[0], b[1], b[2], b[3]])
}

/// Builds a generated frame of RFC 2544 size `size` (which counts the 4-byte FCS the NIC would
/// add: a "64-byte frame" is 60 bytes here); sequence and time are stamped when sent.
pub fn frame(dst: Mac, src: Mac, size: usize) -> Vec<u8> {
    let size = size.saturating_sub(4);
    let mut f = Vec::with_capacity(size.max(60));
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ETHERTYPE.to_be_bytes());
    f.extend_from_slice(MAGIC);
    f.resize(size.max(60), 0);
    f
}

/// An IPv4/UDP frame of RFC 2544 size `size` from `src` to `dst` (MAC and address), UDP port
/// 49152 to 49152, whose payload starts with the marker: what a port with anti-spoofing rules may
/// send. Sinks count it; the generator stamps it when it sends it as a template.
pub fn udp_frame(
    dst: (Mac, std::net::Ipv4Addr),
    src: (Mac, std::net::Ipv4Addr),
    size: usize,
) -> Vec<u8> {
    udp_flow_frame(dst, src, 49152, size)
}

/// [`udp_frame`] from UDP source port `sport`.
pub fn udp_flow_frame(
    dst: (Mac, std::net::Ipv4Addr),
    src: (Mac, std::net::Ipv4Addr),
    sport: u16,
    size: usize,
) -> Vec<u8> {
    let len = size.saturating_sub(4).max(60);
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst.0 .0);
    f.extend_from_slice(&src.0 .0);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (len - 14) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.1.octets());
    ip[16..20].copy_from_slice(&dst.1.octets());
    let sum: u32 = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    let folded = (sum & 0xffff) + (sum >> 16);
    let csum = !((folded & 0xffff) + (folded >> 16)) as u16;
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    f.extend_from_slice(&ip);
    // To port 49152, no checksum.
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&[0xc0, 0]);
    f.extend_from_slice(&(ip_len - 20).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(MAGIC);
    f.resize(len, 0);
    f
}

/// The marker of an IPv4/UDP frame the generator stamped.
const MAGIC_STAMPED_UDP: &[u8; 4] = b"QSBT";
/// Where the marker of an IPv4/UDP frame sits.
const UDP_MARK: usize = 42;

/// What a frame carries: the marker (it is counted), and where its send time is, if stamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// The marker, no send time (an IPv4/UDP frame sent as it was built).
    Counted,
    /// The marker and the send time at this offset.
    Stamped(usize),
}

/// Does `b` carry the marker: right after the Ethernet header (generated frames, which carry a
/// sequence number and a timestamp) or as an IPv4/UDP payload (stamped when the generator sent
/// it from its templates)?
fn marked(b: &[u8]) -> Option<Mark> {
    if b.len() >= 34 && &b[14..18] == MAGIC {
        return Some(Mark::Stamped(26));
    }
    if b.len() < UDP_MARK + 12 || b[12..14] != [0x08, 0x00] {
        return None;
    }
    match &b[UDP_MARK..UDP_MARK + 4] {
        m if m == MAGIC => Some(Mark::Counted),
        m if m == MAGIC_STAMPED_UDP => Some(Mark::Stamped(UDP_MARK + 4)),
        _ => None,
    }
}

/// Stamps `buf`, a copy of a template, with sequence number `seq` and send time `now`.
fn stamp(buf: &mut [u8], seq: u64, now: u64) {
    if buf.len() >= 34 && &buf[14..18] == MAGIC {
        buf[18..26].copy_from_slice(&seq.to_be_bytes());
        buf[26..34].copy_from_slice(&now.to_be_bytes());
    } else if buf.len() >= UDP_MARK + 18 && marked(buf) == Some(Mark::Counted) {
        let at = UDP_MARK + 4;
        buf[UDP_MARK..at].copy_from_slice(MAGIC_STAMPED_UDP);
        buf[at..at + 8].copy_from_slice(&now.to_be_bytes());
        buf[at + 8..at + 14].copy_from_slice(&seq.to_be_bytes()[2..]);
    }
}

/// What a sending run did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sent {
    /// Frames put on the wire.
    pub frames: u64,
    /// Time from the first to the last send.
    pub elapsed: Duration,
}

/// An AF_XDP generator on one interface.
#[derive(Debug)]
pub struct Generator {
    umem: Umem,
    port: AfXdpPort,
    seq: u64,
}

impl Generator {
    /// Opens the generator's socket on `device`.
    pub fn open(device: &str) -> io::Result<Generator> {
        let mut umem = Umem::new(8192, 2048)?;
        let port = open_port(device, &mut umem, Stamp::Off)?;
        Ok(Generator { umem, port, seq: 0 })
    }

    /// Sends one frame as given (announcing a MAC to the switch, for example).
    pub fn send_one(&mut self, bytes: &[u8]) -> io::Result<()> {
        let chunk = self
            .umem
            .alloc()
            .ok_or_else(|| io::Error::other("no frame"))?;
        let addr = chunk + HEADROOM;
        if let Some(buf) = self.umem.frame(addr, bytes.len() as u32) {
            buf.copy_from_slice(bytes);
        }
        let d = XdpDesc {
            addr,
            len: bytes.len() as u32,
            options: 0,
        };
        if self.port.send(&mut self.umem, &[d]) == 0 {
            self.umem.release(addr);
        }
        self.port.flush()?;
        std::thread::sleep(Duration::from_millis(5));
        self.port.reclaim(&mut self.umem);
        Ok(())
    }

    /// Sends frames of `size` bytes to `dst` from `flows` source MACs at `pps` (0 = flat out)
    /// for `secs` seconds.
    pub fn send(
        &mut self,
        dst: Mac,
        flows: u32,
        size: usize,
        pps: f64,
        secs: f64,
    ) -> io::Result<Sent> {
        let templates: Vec<Vec<u8>> = (0..flows.max(1))
            .map(|i| frame(dst, flow_mac(i), size))
            .collect();
        self.send_frames(&templates, pps, secs, u64::MAX)
    }

    /// Sends IPv4/UDP frames of `size` bytes from the generator's port (its MAC and address,
    /// `flows` source ports) to the sink's at `pps` (0 = flat out) for `secs` seconds or until
    /// `max` frames have gone: what a port filtered by security groups may send.
    pub fn send_udp(
        &mut self,
        flows: u32,
        size: usize,
        pps: f64,
        secs: f64,
        max: u64,
    ) -> io::Result<Sent> {
        use crate::topo::{GEN_IP, GEN_MAC, SINK_IP, SINK_MAC};
        let templates: Vec<Vec<u8>> = (0..flows.clamp(1, 16_384))
            .map(|i| {
                udp_flow_frame(
                    (SINK_MAC, SINK_IP),
                    (GEN_MAC, GEN_IP),
                    49152 + i as u16,
                    size,
                )
            })
            .collect();
        self.send_frames(&templates, pps, secs, max)
    }

    /// Sends `templates` round robin (stamped with sequence and time) at `pps` (0 = flat out)
    /// for `secs` seconds or until `max` frames have gone.
    pub fn send_frames(
        &mut self,
        templates: &[Vec<u8>],
        pps: f64,
        secs: f64,
        max: u64,
    ) -> io::Result<Sent> {
        if templates.is_empty() {
            return Ok(Sent::default());
        }
        let start = Instant::now();
        let end = start + Duration::from_secs_f64(secs);
        let mut sent = 0u64;
        let mut descs = Vec::with_capacity(BATCH);
        loop {
            let now = Instant::now();
            if now >= end || sent >= max {
                break;
            }
            if pps > 0.0 {
                let due = start + Duration::from_secs_f64(sent as f64 / pps);
                if now < due {
                    std::hint::spin_loop();
                    continue;
                }
            }
            self.port.reclaim(&mut self.umem);
            let room = (self.port.tx_room() as usize).min(BATCH);
            let want = if pps > 0.0 {
                let due_total = ((now - start).as_secs_f64() * pps) as u64 + 1;
                (due_total.saturating_sub(sent) as usize).clamp(1, room.max(1))
            } else {
                room
            };
            descs.clear();
            let want = want.min(usize::try_from(max - sent).unwrap_or(usize::MAX));
            for _ in 0..want.min(room) {
                let Some(chunk) = self.umem.alloc() else {
                    break;
                };
                let addr = chunk + HEADROOM;
                let t = &templates[(self.seq % templates.len() as u64) as usize];
                if let Some(buf) = self.umem.frame(addr, t.len() as u32) {
                    buf.copy_from_slice(t);
                    stamp(buf, self.seq, monotonic_ns());
                }
                self.seq += 1;
                descs.push(XdpDesc {
                    addr,
                    len: t.len() as u32,
                    options: 0,
                });
            }
            if descs.is_empty() {
                continue;
            }
            let n = self.port.send(&mut self.umem, &descs);
            for d in &descs[n..] {
                self.umem.release(d.addr);
            }
            self.port.flush()?;
            sent += n as u64;
        }
        let elapsed = start.elapsed();
        // Let the last completions come back.
        let settle = Instant::now();
        while settle.elapsed() < Duration::from_millis(20) {
            self.port.reclaim(&mut self.umem);
        }
        Ok(Sent {
            frames: sent,
            elapsed,
        })
    }
}

/// What a sink saw.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Frames with the marker.
    pub frames: u64,
    /// Of those, frames whose latency ends at the arrival time the sink's program stamped (the
    /// others' at the time the sink read them).
    pub stamped: u64,
    /// Latencies in ns, one per frame (sampled: every frame up to a million).
    pub latencies: Vec<u64>,
}

/// An AF_XDP sink on one interface.
#[derive(Debug)]
pub struct Sink {
    umem: Umem,
    port: AfXdpPort,
    /// The last frame read carried its arrival time.
    stamped: bool,
    /// Where its program stamps arrival times ([`Sink::open`]).
    stamp: Stamp,
    /// Why it does not stamp them in metadata, if it does not: the verifier's last word.
    no_metadata: Option<String>,
}

impl Sink {
    /// Opens the sink's socket on `device`, its program stamping each frame's arrival where this
    /// kernel lets it ([`stamp_for_this_kernel`]): in the frame's metadata; where the kernel
    /// refuses that program (some kernels allow XDP programs no metadata), over the frame's
    /// Ethernet addresses; where it refuses that one too, without stamps, said on stderr once by
    /// each sink: latency is then taken when the sink reads a frame.
    pub fn open(device: &str) -> io::Result<Sink> {
        let (stamp, no_metadata) = stamp_for_this_kernel();
        if stamp == Stamp::Off {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                eprintln!(
                    "qswitch-bench: sink on {device}: no arrival stamps ({}); latency is taken \
                     when the sink reads a frame",
                    no_metadata.as_deref().unwrap_or_default()
                );
            });
        }
        let mut sink = Sink::open_with(device, stamp)?;
        sink.no_metadata = no_metadata;
        Ok(sink)
    }

    /// [`Sink::open`] with its program stamping as `stamp` says, not as this kernel would take
    /// (for tests; it fails where the kernel refuses that program).
    pub fn open_with(device: &str, stamp: Stamp) -> io::Result<Sink> {
        let mut umem = Umem::new(16384, 2048)?;
        let port = open_port(device, &mut umem, stamp)?;
        Ok(Sink {
            umem,
            port,
            stamped: false,
            stamp,
            no_metadata: None,
        })
    }

    /// Where its program stamps each frame's arrival time ([`Stamp::Off`]: nowhere, the kernel
    /// refused both ways).
    pub fn stamp(&self) -> Stamp {
        self.stamp
    }

    /// Why its program does not stamp arrival times in metadata (the verifier's last word), if
    /// it does not.
    pub fn why_no_metadata(&self) -> Option<&str> {
        self.no_metadata.as_deref()
    }

    /// The arrival time the sink's program stamped on the frame at `d`, if any (cleared: the
    /// chunk's next frame may carry none).
    fn arrival(&mut self, d: &XdpDesc) -> Option<u64> {
        match self.stamp {
            Stamp::Metadata => self.umem.meta(d.addr, ARRIVAL_META_LEN).and_then(arrival),
            Stamp::Header => self
                .umem
                .frame(d.addr, d.len)
                .and_then(|b| b.get_mut(..ARRIVAL_HEADER_LEN))
                .and_then(arrival),
            Stamp::Off => None,
        }
    }

    /// Drops whatever is queued (at most the UMEM's worth: a sender that is already sending
    /// does not keep it here).
    fn drain(&mut self, descs: &mut [XdpDesc]) {
        let mut dropped = 0;
        while dropped < self.umem.frames() {
            self.port.refill(&mut self.umem, 4096);
            let n = self.port.recv(&mut self.umem, descs);
            for d in &descs[..n] {
                self.discard(d.addr);
            }
            if n == 0 {
                break;
            }
            dropped += n;
        }
    }

    /// Returns a frame's chunk to the pool, its arrival stamp cleared: the chunk's next frame may
    /// come without one.
    fn discard(&mut self, addr: u64) {
        if let Some(m) = self.umem.meta(addr, ARRIVAL_META_LEN) {
            m.fill(0);
        }
        self.umem.release(addr);
    }

    /// Drops whatever is queued, then waits up to `timeout` for the next marked frame and returns
    /// the time the sink read it (ns since the Unix epoch: the clock of the API calls it is
    /// compared with).
    pub fn first(&mut self, timeout: Duration) -> Option<u64> {
        let mut descs = vec![XdpDesc::default(); BATCH];
        self.drain(&mut descs);
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            self.port.refill(&mut self.umem, 4096);
            let n = self.port.recv(&mut self.umem, &mut descs);
            let t = now_ns();
            let mut hit = false;
            for d in &descs[..n] {
                hit |= self
                    .umem
                    .frame(d.addr, d.len)
                    .is_some_and(|b| marked(b).is_some());
                self.discard(d.addr);
            }
            if hit {
                return Some(t);
            }
            std::hint::spin_loop();
        }
        None
    }

    /// Receives what a trial sends: drops whatever is queued from before, then reads for at
    /// least `min` and at most `max`, ending early once a marked frame has arrived and `quiet`
    /// has passed since the later of the last one and `min` (the traffic has drained). Returns
    /// what arrived.
    pub fn receive(&mut self, min: Duration, max: Duration, quiet: Duration) -> Seen {
        let mut seen = Seen::default();
        let mut descs = vec![XdpDesc::default(); BATCH];
        self.drain(&mut descs);
        let start = Instant::now();
        let (until_min, until_max) = (start + min, start + max);
        let mut last: Option<Instant> = None;
        loop {
            let at = Instant::now();
            let drained = last.is_some_and(|l| at >= l.max(until_min) + quiet);
            if at >= until_max || drained {
                break;
            }
            self.port.refill(&mut self.umem, 4096);
            let n = self.port.recv(&mut self.umem, &mut descs);
            if n == 0 {
                // With arrival stamps the sleep costs no accuracy, and a shorter one only takes
                // the CPU from whatever it preempts (it runs real time) more often.
                std::thread::sleep(Duration::from_micros(if self.stamped { 500 } else { 50 }));
                continue;
            }
            let read_at = monotonic_ns();
            for d in &descs[..n] {
                let arrived = self.arrival(d);
                self.stamped = arrived.is_some();
                let t = arrived.unwrap_or(read_at);
                if let Some(b) = self.umem.frame(d.addr, d.len) {
                    let mark = marked(b);
                    if mark.is_some() {
                        seen.frames += 1;
                        seen.stamped += u64::from(arrived.is_some());
                        last = Some(at);
                    }
                    if let Some(Mark::Stamped(at)) = mark {
                        if seen.latencies.len() < 1_000_000 {
                            let mut ts = [0u8; 8];
                            ts.copy_from_slice(&b[at..at + 8]);
                            seen.latencies
                                .push(t.saturating_sub(u64::from_be_bytes(ts)));
                        }
                    }
                }
                self.umem.release(d.addr);
            }
        }
        seen
    }
}

/// The arrival time the sink's program wrote into a frame's metadata `m` (or over its Ethernet
/// addresses), which it then clears (the chunk comes back for another frame, which may carry
/// none).
fn arrival(m: &mut [u8]) -> Option<u64> {
    let magic = u32::from_ne_bytes(m.get(8..12)?.try_into().ok()?);
    let t = u64::from_ne_bytes(m.get(..8)?.try_into().ok()?);
    m.fill(0);
    (magic == ARRIVAL_MAGIC).then_some(t)
}

/// The quantiles a latency CDF is reported at: every percent, then the tail.
pub fn cdf_quantiles() -> Vec<f64> {
    let mut q: Vec<f64> = (0..100).map(|i| f64::from(i) / 100.0).collect();
    q.extend([0.995, 0.999, 0.9999, 1.0]);
    q
}

/// The latency CDF of sorted values: the value at each of `cdf_quantiles()`.
pub fn cdf(sorted: &[u64]) -> Vec<u64> {
    cdf_quantiles()
        .into_iter()
        .map(|q| percentile(sorted, q))
        .collect()
}

/// The `p`-th percentile (0..=1) of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_marker_and_pad_to_size() {
        let f = frame(Mac::BROADCAST, flow_mac(7), 64);
        assert_eq!(f.len(), 60);
        assert_eq!(frame(Mac::BROADCAST, flow_mac(7), 1518).len(), 1514);
        assert_eq!(&f[14..18], MAGIC);
        assert_eq!(frame(Mac::BROADCAST, flow_mac(0), 10).len(), 60);
    }

    #[test]
    fn udp_frames_are_valid_ipv4_and_marked() {
        let a = (flow_mac(1), std::net::Ipv4Addr::new(198, 18, 0, 3));
        let b = (flow_mac(2), std::net::Ipv4Addr::new(198, 18, 0, 4));
        let f = udp_frame(b, a, 64);
        assert_eq!(f.len(), 60);
        assert_eq!(marked(&f), Some(Mark::Counted));
        assert_eq!(
            marked(&frame(Mac::BROADCAST, flow_mac(1), 64)),
            Some(Mark::Stamped(26))
        );
        // The header checksum sums to 0xffff.
        let sum: u32 = f[14..34]
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        assert_eq!((sum & 0xffff) + (sum >> 16), 0xffff);
        assert_eq!(&f[26..30], &[198, 18, 0, 3]);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 46);
        assert_eq!(
            &udp_flow_frame(b, a, 50_000, 64)[34..38],
            &[0xc3, 0x50, 0xc0, 0]
        );
    }

    #[test]
    fn stamps_land_where_the_sink_reads_them_and_leave_the_headers_alone() {
        let a = (flow_mac(1), std::net::Ipv4Addr::new(198, 18, 0, 3));
        let b = (flow_mac(2), std::net::Ipv4Addr::new(198, 18, 0, 4));
        for template in [
            frame(b.0, a.0, 64),
            udp_frame(b, a, 64),
            udp_frame(b, a, 1518),
        ] {
            let mut f = template.clone();
            stamp(&mut f, 0x0102_0304_0506_0708, 0x1122_3344_5566_7788);
            let Some(Mark::Stamped(at)) = marked(&f) else {
                panic!("not stamped: {f:02x?}");
            };
            assert_eq!(f[at..at + 8], 0x1122_3344_5566_7788u64.to_be_bytes());
            assert_eq!(f.len(), template.len());
            // Headers up to the marker unchanged.
            let mark = if at == 26 { 14 } else { UDP_MARK };
            assert_eq!(f[..mark], template[..mark]);
        }
        // A frame too short for a stamp is sent as it is.
        let mut short = udp_frame(b, a, 64);
        short.truncate(50);
        let before = short.clone();
        stamp(&mut short, 1, 2);
        assert_eq!(short, before);
    }

    #[test]
    fn a_refused_program_is_summed_up_by_the_verifiers_last_word() {
        let log = "XDP program: Invalid argument (os error 22); verifier: 0: R1=ctx() R10=fp0\n\
                   5: (85) call bpf_xdp_adjust_meta#54\n\
                   program of this type cannot use helper bpf_xdp_adjust_meta#54\n\
                   processed 6 insns (limit 1000000) max_states_per_insn 0\n";
        let e = io::Error::new(io::ErrorKind::InvalidInput, log);
        assert_eq!(
            verifier_says(&e),
            "program of this type cannot use helper bpf_xdp_adjust_meta#54"
        );
        let e = io::Error::new(io::ErrorKind::NotFound, "no interface qsx0");
        assert_eq!(verifier_says(&e), "no interface qsx0");
    }

    #[test]
    fn an_arrival_stamp_is_read_once_and_only_with_its_magic() {
        let mut m = [0u8; ARRIVAL_META_LEN];
        m[..8].copy_from_slice(&123_456_789u64.to_ne_bytes());
        m[8..12].copy_from_slice(&ARRIVAL_MAGIC.to_ne_bytes());
        assert_eq!(arrival(&mut m), Some(123_456_789));
        // Cleared: the chunk's next frame, stamped or not, is not taken for this one.
        assert_eq!(m, [0; ARRIVAL_META_LEN]);
        assert_eq!(arrival(&mut m), None);
        m[..8].copy_from_slice(&5u64.to_ne_bytes());
        assert_eq!(arrival(&mut m), None);
    }

    #[test]
    fn percentiles_pick_ranks() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 51);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&[], 0.5), 0);
        let c = cdf(&v);
        assert_eq!(c.len(), cdf_quantiles().len());
        assert_eq!((c[0], c[50], *c.last().unwrap()), (1, 51, 100));
        assert!(c.windows(2).all(|w| w[0] <= w[1]));
    }
}
