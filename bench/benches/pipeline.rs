//! The forwarding pipeline without the kernel, in nanoseconds per frame.
//!
//! Cases:
//! - `decide/{1k,1m}`: `Pipeline::process` alone (parse, classify, learn, look up) on unicast
//!   frames between two ports of one network whose MAC table holds 1 000 or 1 000 000 entries;
//!   where the table is larger than the caches (1m), its lines are prefetched four frames ahead
//!   (`Pipeline::prefetch`), as the worker does.
//! - `worker/{1k,1m}`: one `Worker::poll` round per 64 frames over in-memory ports: the decision
//!   plus descriptor movement, UMEM ownership checks and counters (the AF_XDP worker's user-space
//!   work; the in-memory port's copy of the 64 bytes into the UMEM is included). Every measured
//!   frame is unicast (checked after the measurement). Their frames are of EtherType IPv4 with
//!   zeros for payload; `worker/1k-udp` sends the packet harness's own IPv4/UDP frames (64 B,
//!   256 flows), whose headers the worker also reads (its checksum and MSS checks).
//! - `decide/pair`, `worker/pair-udp`: as `decide/1k` and `worker/1k-udp`, but every frame is
//!   from one address to one other, as a VM's stream: the cases above change both addresses
//!   every frame, the worst case for the pipeline's memory of the MAC table's recent answers.
//! - `worker/16-to-1`: as the packet harness sends, 16 sources in turn to one destination, of
//!   the harness's own EtherType (not IP).
//! - `round/{1,4,16}`: one `Worker::round` (the clock's housekeeping check, then `poll`) as the
//!   worker's loop runs it, its clock read included, when the harness's UDP frames trickle in 1,
//!   4 or 16 a round (`worker/1k-udp`'s frames, 1 000 MACs): a round's fixed work (a look at
//!   each port's rings, the clock, the checks) over its few frames, what the live worker pays
//!   at 1.1 to 19 frames a round. Reported per round (the throughput in frames a second).
//! - `csum/{partial,complete}-{64,1518}`: `csum::complete_partial` on an IPv4/TCP frame whose
//!   checksum is partial (completed: one pass over the segment) or already complete (the headers
//!   are read and the frame left alone), for 64- and 1518-byte frames.
//!
//! - `sg/{established,refused}`: security groups on both ports (10 rules each, the default
//!   group's and eight TCP port rules that never match): `process` (the sender's egress rules)
//!   plus `admit` (the receiver's ingress rules) on IPv4/UDP frames of 1 024 flows. `established`:
//!   every flow's connection is tracked, two connection-table hits per frame; `refused`: no rule
//!   matches (the remote is not a member of the receiver's group), a miss and ten rules per frame.
//!
//! - `shortcut/{16k-quiet,16k-move}`: the XDP shortcut's checks of a worker's 16 384 entries
//!   (`Worker::round`, its ports idle): after an address none of them uses moved between two
//!   ports (the MAC table changed), and without a change. Needs root (BPF maps); skipped
//!   without it.
//!
//! - `sweep/1m/{part,sleep-share,pass}`: the MAC table's sweep over a table of a million live
//!   entries (2 097 152 slots, none expired), as long as a worker holds the table's writer lock
//!   for it (another worker's learning waits that long): 16 384 slots (`part`, the most an idle
//!   worker pays at once before it sleeps), the share of a 92 ms sleep (`sleep-share`, 241 172
//!   slots, what it paid at once after its usual 100 ms sleep before), a whole pass (`pass`, what
//!   it paid at once after a sleep or a pause of 800 ms or more).
//!
//! - `learn/full-new`: learning an address never seen before in a table full of live entries
//!   (65 536 slots, three quarters of them live; a spoofing VM's ever new source addresses):
//!   refused, each as one worker pays it. The switch's first refusal of each second sweeps 256
//!   slots under the writer lock, the others take no lock; the bench's clock stands still, in a
//!   second its setup already found full: it measures the refusal without the lock.
//!
//! Run: `cargo bench -p bench --bench pipeline`. `QSWITCH_BENCH_SMALL=1` leaves out the cases of
//! a million MACs (for `valgrind --tool=callgrind`, where their setup alone takes minutes).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::acl::{AddrSet, PortFilter, Remote, Rule};
use dataplane::config::{NetworkConfig, PortConfig, SlotMap, Snapshot, SwitchConfig};
use dataplane::csum::{self, Checksum};
use dataplane::fdb::{Learn, MacTable, PortRef};
use dataplane::pipeline::{Now, Pipeline, Verdict};
use dataplane::port::mem::{MemPort, MemSpec};
use dataplane::security::IpPrefix;
use dataplane::shortcut::Shortcut;
use dataplane::stats::LocalCounters;
use dataplane::wire::{build_frame, Mac};
use dataplane::worker::{Command, PortShared, Worker, WorkerConfig};

use bench::traffic::udp_flow_frame;

fn mac(side: u8, i: u32) -> Mac {
    let b = i.to_be_bytes();
    Mac([0x02, side, b[0], b[1], b[2], b[3]])
}

fn config(macs: u32) -> SwitchConfig {
    SwitchConfig {
        networks: vec![NetworkConfig {
            id: "n".into(),
            vlan: 10,
            mac_limit: macs + 16,
            physnet: Some(dataplane::DEFAULT_PHYSNET.into()),
        }],
        ports: vec![
            PortConfig::access("a", "da", "n"),
            PortConfig::access("b", "db", "n"),
        ],
        ..SwitchConfig::default()
    }
}

/// Frames from port a to port b, of one of three kinds.
#[derive(Clone, Copy)]
enum Kind {
    /// Sources are the `n/2` MACs behind a, destinations the `n/2` behind b, visited in a
    /// scrambled order so lookups miss the cache as a real table would; EtherType IPv4, the
    /// payload zeros (no IP header to read).
    Zeros,
    /// As `Zeros`, but IPv4/UDP frames of 64 bytes (256 flows).
    Udp,
    /// As the packet harness sends: the `n/2` sources in turn, all to the first MAC behind b,
    /// EtherType 0x88b5 (the harness's own), the payload zeros.
    ToOne,
}

fn frames(n: u32, count: usize, kind: Kind) -> Vec<Vec<u8>> {
    let half = (n / 2).max(1);
    (0..count as u32)
        .map(|i| {
            let j = i.wrapping_mul(2_654_435_761) % half;
            let (dst, src) = (mac(2, j), mac(1, i % half));
            match kind {
                Kind::Zeros => build_frame(dst, src, None, 0x0800, &[0; 50]),
                Kind::Udp => {
                    let ip = |h| std::net::Ipv4Addr::new(198, 18, 0, h);
                    udp_flow_frame((dst, ip(2)), (src, ip(1)), 49152 + (i % 256) as u16, 64)
                }
                Kind::ToOne => build_frame(mac(2, 0), src, None, 0x88b5, &[0; 50]),
            }
        })
        .collect()
}

fn setup(n: u32) -> (Pipeline, Snapshot, u16, u16) {
    let cfg = config(n);
    let (mut ns, mut ps) = (SlotMap::default(), SlotMap::default());
    let snap = Snapshot::compile(&cfg, 1, &mut ns, &mut ps);
    let mut pipe = Pipeline::new(300, 1 << 22);
    pipe.adopt(&snap, Now::default());
    let (a, b) = (ps.get("a").unwrap(), ps.get("b").unwrap());
    let half = (n / 2).max(1);
    for i in 0..half {
        pipe.process(&snap, b, &broadcast_from(mac(2, i)), Now::default());
        pipe.process(&snap, a, &broadcast_from(mac(1, i)), Now::default());
    }
    (pipe, snap, a, b)
}

/// Leaves out the cases of a million MACs where `QSWITCH_BENCH_SMALL` is set: their setup runs
/// even when a filter leaves them out, and takes minutes under valgrind (instruction counts).
fn sized<T>(cases: Vec<(&'static str, u32, T)>) -> Vec<(&'static str, u32, T)> {
    let small = std::env::var_os("QSWITCH_BENCH_SMALL").is_some();
    cases
        .into_iter()
        .filter(|&(_, n, _)| !small || n < 1_000_000)
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("decide");
    for (name, n, ()) in sized(vec![
        ("1k", 1_000u32, ()),
        ("1m", 1_000_000, ()),
        ("pair", 2, ()),
    ]) {
        let (mut pipe, snap, a, _) = setup(n);
        let fs = frames(n, 1 << 16, Kind::Zeros);
        let mut k = 0usize;
        // As the worker drives it: a table larger than the caches has its lines prefetched
        // four frames ahead.
        let ahead = if pipe.worth_prefetching() { 4 } else { 0 };
        g.throughput(Throughput::Elements(64));
        g.bench_function(BenchmarkId::from_parameter(name), |bn| {
            bn.iter(|| {
                for _ in 0..64 {
                    if ahead > 0 {
                        pipe.prefetch(&snap, a, &fs[(k + ahead) & 0xffff]);
                    }
                    let v = pipe.process(&snap, a, &fs[k & 0xffff], Now::default());
                    std::hint::black_box(v);
                    k += 1;
                }
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("worker");
    for (name, n, kind) in sized(vec![
        ("1k", 1_000u32, Kind::Zeros),
        ("1m", 1_000_000, Kind::Zeros),
        ("1k-udp", 1_000, Kind::Udp),
        ("pair-udp", 2, Kind::Udp),
        ("16-to-1", 32, Kind::ToOne),
    ]) {
        let (mut w, a, b) = forwarding(n, kind, None);
        let before = (w.counters(a), w.counters(b));
        g.throughput(Throughput::Elements(64));
        g.bench_function(BenchmarkId::from_parameter(name), |bn| {
            bn.iter(|| std::hint::black_box(w.poll(Now::default())))
        });
        w.poll(Now::default());
        check_unicast(&w, a, b, before);
    }
    g.finish();

    let mut g = c.benchmark_group("round");
    for per_round in [1usize, 4, 16] {
        let (mut w, a, b) = forwarding(1_000, Kind::Udp, Some(per_round));
        let before = (w.counters(a), w.counters(b));
        let epoch = std::time::Instant::now();
        let now = || Now::from_nanos(epoch.elapsed().as_nanos() as u64);
        g.throughput(Throughput::Elements(per_round as u64));
        g.bench_function(BenchmarkId::from_parameter(per_round), |bn| {
            bn.iter(|| std::hint::black_box(w.round(now())))
        });
        w.round(now());
        check_unicast(&w, a, b, before);
    }
    g.finish();

    let mut g = c.benchmark_group("csum");
    for size in [64usize, 1518] {
        // IPv4 (20) + TCP (20) + payload after the Ethernet header (14).
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
        ];
        ip[2..4].copy_from_slice(&((size - 14) as u16).to_be_bytes());
        let mut tcp = vec![0u8; 20];
        tcp[12] = 5 << 4;
        ip.extend(tcp);
        ip.extend((0..size - 54).map(|i| i as u8));
        let mut frame = build_frame(mac(2, 1), mac(1, 1), None, 0x0800, &ip);
        assert!(csum::make_partial(&mut frame));
        let partial = frame.clone();
        assert_eq!(csum::complete_partial(&mut frame), Checksum::Completed);
        let complete = frame.clone();
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("partial", size), |bn| {
            bn.iter(|| {
                frame[50..52].copy_from_slice(&partial[50..52]);
                std::hint::black_box(csum::complete_partial(&mut frame))
            })
        });
        frame.copy_from_slice(&complete);
        g.bench_function(BenchmarkId::new("complete", size), |bn| {
            bn.iter(|| std::hint::black_box(csum::complete_partial(&mut frame)))
        });
    }
    g.finish();
}

/// A worker over two in-memory ports `a` and `b` of one network sized for `n` addresses, with
/// the XDP shortcut's maps when given (each port then has an interface of its own, 1000 plus
/// its slot, and takes and receives entries); returns it, the network's slot and the ports' slots.
fn mem_worker(n: u32, shortcut: Option<Arc<Shortcut>>) -> (Worker<MemPort>, u16, u16, u16) {
    let cfg = config(n);
    let (mut ns, mut ps) = (SlotMap::default(), SlotMap::default());
    let snap = Arc::new(Snapshot::compile(&cfg, 1, &mut ns, &mut ps));
    let with_shortcut = shortcut.is_some();
    let mut w: Worker<MemPort> = Worker::new(WorkerConfig {
        frames: 8192,
        max_macs: 1 << 22,
        shortcut,
        ..WorkerConfig::default()
    })
    .unwrap();
    w.handle(Command::Snapshot(snap), Now::default());
    for id in ["a", "b"] {
        let slot = ps.get(id).unwrap();
        w.handle(
            Command::AddPort {
                slot,
                spec: MemSpec {
                    capture: false,
                    tx_size: 4096,
                    tx_checksum: false,
                    whole: false,
                    direct: false,
                    shortcut_ifindex: with_shortcut.then_some(1000 + u32::from(slot)),
                },
                shared: Arc::new(PortShared::default()),
            },
            Now::default(),
        );
    }
    let (a, b) = (ps.get("a").unwrap(), ps.get("b").unwrap());
    (w, ns.get("n").unwrap(), a, b)
}

/// A worker of two ports a and b of one network (`config(n)`) that has learned the `n/2`
/// addresses behind each, and whose port a receives `frames(n, _, kind)` over and over
/// (`per_round` at most a round, if given).
fn forwarding(n: u32, kind: Kind, per_round: Option<usize>) -> (Worker<MemPort>, u16, u16) {
    let (mut w, _, a, b) = mem_worker(n, None);
    let half = (n / 2).max(1);
    for (slot, side) in [(b, 2u8), (a, 1u8)] {
        feed(
            &mut w,
            slot,
            (0..half).map(|i| broadcast_from(mac(side, i))).collect(),
        );
    }
    let port = w.port_mut(a).unwrap();
    port.set_source(Arc::new(frames(n, 1 << 16, kind)));
    port.source_batch = per_round;
    (w, a, b)
}

/// After a case on [`forwarding`]'s worker and one more round (which sends what the last one
/// staged): every frame measured was unicast (the learning flooded, before `before`) and left
/// on b, none refused on either port. Nothing to check when a filter left the case out. (Its
/// addresses were learned at second 0: a case measured for longer than the aging time, 300 s,
/// floods.)
fn check_unicast(w: &Worker<MemPort>, a: u16, b: u16, before: (LocalCounters, LocalCounters)) {
    let (c, cb) = (w.counters(a), w.counters(b));
    if c.rx_packets == before.0.rx_packets {
        return;
    }
    assert!(
        c.floods == before.0.floods && c.drops.iter().all(|&d| d == 0),
        "the case measures unicast forwarding: {c:?}"
    );
    assert!(
        cb.drops.iter().all(|&d| d == 0)
            && cb.tx_packets - before.1.tx_packets == c.rx_packets - before.0.rx_packets,
        "every frame received on a leaves on b: {c:?} {cb:?}"
    );
}

/// A broadcast from `src`: the switch learns the address.
fn broadcast_from(src: Mac) -> Vec<u8> {
    build_frame(Mac::BROADCAST, src, None, 0x0800, &[0; 50])
}

/// Has port `slot` receive each of `frames` once (polling until it has: a round's work also
/// counts TX completions, so it is no measure of frames received), then nothing more.
fn feed(w: &mut Worker<MemPort>, slot: u16, frames: Vec<Vec<u8>>) {
    let until = w.counters(slot).rx_packets + frames.len() as u64;
    w.port_mut(slot).unwrap().set_source(Arc::new(frames));
    while w.counters(slot).rx_packets < until {
        w.poll(Now::default());
    }
    w.port_mut(slot).unwrap().set_source(Arc::new(Vec::new()));
}

/// Ten rules: the default group's four (egress anything, ingress from the group's members) and
/// eight ingress TCP port rules that UDP never matches, before them.
fn sg_filter() -> PortFilter {
    let rule = Rule::new;
    let members = Remote::Group(Arc::from("default"));
    let mut ingress: Vec<Rule> = (0..8)
        .map(|i| rule(false, Some(6), Some((1000 + i, 1000 + i)), Remote::Any))
        .collect();
    ingress.push(rule(false, None, None, members.clone()));
    ingress.push(rule(true, None, None, members));
    let egress = vec![
        rule(false, None, None, Remote::Any),
        rule(true, None, None, Remote::Any),
    ];
    PortFilter::new(ingress, egress)
}

/// UDP frames from a (198.18.0.1, its MAC) to b (198.18.0.2) over `flows` source ports.
fn sg_frames(flows: u16) -> Vec<Vec<u8>> {
    (0..flows)
        .map(|i| {
            let mut ip = vec![
                0x45, 0, 0, 50, 0, 1, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
            ];
            let mut udp = vec![0u8; 30];
            udp[0..2].copy_from_slice(&(10_000 + i).to_be_bytes());
            udp[2..4].copy_from_slice(&53u16.to_be_bytes());
            udp[4..6].copy_from_slice(&30u16.to_be_bytes());
            ip.extend(udp);
            build_frame(mac(2, 0), mac(1, 0), None, 0x0800, &ip)
        })
        .collect()
}

fn bench_security_groups(c: &mut Criterion) {
    let mut g = c.benchmark_group("sg");
    for (name, member) in [("established", true), ("refused", false)] {
        let mut cfg = config(16);
        let filter = Arc::new(sg_filter());
        for p in &mut cfg.ports {
            p.filter = Some(Arc::clone(&filter));
        }
        let members: Vec<IpPrefix> = ["198.18.0.2", "198.18.0.1"]
            .iter()
            .take(if member { 2 } else { 1 })
            .filter_map(|a| IpPrefix::parse(a))
            .collect();
        let sets = [(Arc::from("default"), Arc::new(AddrSet::new(members)))];
        cfg.address_sets = Arc::new(sets.into_iter().collect());
        let (mut ns, mut ps) = (SlotMap::default(), SlotMap::default());
        let snap = Snapshot::compile(&cfg, 1, &mut ns, &mut ps);
        let mut pipe = Pipeline::new(300, 1 << 16);
        pipe.adopt(&snap, Now::default());
        let (a, b) = (ps.get("a").unwrap(), ps.get("b").unwrap());
        // b's MAC learned, so frames from a are unicast to b.
        let learn = build_frame(Mac::BROADCAST, mac(2, 0), None, 0x0806, &[0; 28]);
        pipe.process(&snap, b, &learn, Now::default());
        let fs = sg_frames(1024);
        // One pass opens every connection (or finds none to open).
        for f in &fs {
            if let Verdict::Unicast { port, .. } = pipe.process(&snap, a, f, Now::default()) {
                pipe.admit(&snap, port, 64, Now::default());
            }
        }
        let mut k = 0usize;
        g.throughput(Throughput::Elements(64));
        g.bench_function(BenchmarkId::from_parameter(name), |bn| {
            bn.iter(|| {
                for _ in 0..64 {
                    let v = pipe.process(&snap, a, &fs[k & 1023], Now::default());
                    let sent = matches!(v, Verdict::Unicast { port, .. }
                        if pipe.admit(&snap, port, 64, Now::default()));
                    std::hint::black_box(sent);
                    k += 1;
                }
            })
        });
        let allowed = fs.iter().all(|f| {
            matches!(pipe.process(&snap, a, f, Now::default()), Verdict::Unicast { port, .. }
                if pipe.admit(&snap, port, 64, Now::default()))
        });
        assert_eq!(allowed, member, "the case measures what it says");
    }
    g.finish();
}

/// The XDP shortcut's checks of its entries, with 16 384 installed (frames from as many sources
/// on `a` to one destination on `b`): one worker's round after an address none of them uses
/// moved between the ports (`16k-move`; the MAC table's change count moved, so the worker
/// checks its entries), and a round without a change (`16k-quiet`).
fn bench_shortcut(c: &mut Criterion) {
    // Set up by the first case the filter runs: 16 384 installs would otherwise be paid (and
    // profiled) by every run of this binary, whatever it measures.
    let mut rig: Option<Option<ShortcutRig>> = None;
    let mut g = c.benchmark_group("shortcut");
    g.throughput(Throughput::Elements(1));
    g.bench_function("16k-quiet", |bn| {
        if let Some(r) = rig.get_or_insert_with(ShortcutRig::new) {
            bn.iter(|| std::hint::black_box(r.w.round(r.later)))
        }
    });
    let mut k = 0u32;
    g.bench_function("16k-move", |bn| {
        if let Some(r) = rig.get_or_insert_with(ShortcutRig::new) {
            bn.iter(|| {
                k += 1;
                let to = if k.is_multiple_of(2) { r.on_b } else { r.on_a };
                r.w.pipeline().fdb.learn(r.net, r.moving, to, r.later.secs);
                std::hint::black_box(r.w.round(r.later))
            })
        }
    });
    g.finish();
    if let Some(Some(mut r)) = rig {
        r.w.round(Now::from_nanos(400_000_000));
        assert_eq!(
            r.w.stats().read().shortcut_withdrawn,
            0,
            "no entry uses the address that moved"
        );
    }
}

/// The worker of `bench_shortcut` with its entries installed, and the address it moves.
struct ShortcutRig {
    w: Worker<MemPort>,
    net: u16,
    moving: Mac,
    /// The two ports' slots in the MAC table's entries (where `moving` is learned).
    on_a: PortRef,
    on_b: PortRef,
    later: Now,
}

impl ShortcutRig {
    /// None (said once) where the shortcut's BPF maps cannot be created.
    fn new() -> Option<ShortcutRig> {
        let sc = match Shortcut::new() {
            Ok(sc) => Arc::new(sc),
            Err(e) => {
                eprintln!("shortcut: skipped, its BPF maps cannot be created here ({e})");
                return None;
            }
        };
        const ENTRIES: u32 = 16_384;
        let (mut w, net, a, b) = mem_worker(2 * ENTRIES, Some(sc));
        let (dst, moving) = (mac(2, 0), mac(3, 0));
        feed(&mut w, b, vec![broadcast_from(dst), broadcast_from(moving)]);
        feed(
            &mut w,
            a,
            (0..ENTRIES).map(|i| broadcast_from(mac(1, i))).collect(),
        );
        let to_b = (0..ENTRIES)
            .map(|i| build_frame(dst, mac(1, i), None, 0x0800, &[0; 50]))
            .collect();
        feed(&mut w, a, to_b);
        // Installs follow each batch's sending: one more poll for the last batch, and a round at
        // 200 ms to publish the count.
        w.poll(Now::default());
        let later = Now::from_nanos(200_000_000);
        w.round(later);
        assert_eq!(
            w.stats().read().shortcut_entries,
            u64::from(ENTRIES),
            "the case measures {ENTRIES} entries"
        );
        let fdb = &w.pipeline().fdb;
        let at = |m| fdb.lookup(net, m, later.secs).unwrap();
        let (on_a, on_b) = (at(mac(1, 0)), at(moving));
        Some(ShortcutRig {
            w,
            net,
            moving,
            on_a,
            on_b,
            later,
        })
    }
}

/// The MAC table's sweep over a million live entries: see the module documentation.
fn bench_sweep(c: &mut Criterion) {
    if std::env::var_os("QSWITCH_BENCH_SMALL").is_some() {
        return;
    }
    let mut t = MacTable::new(300, 1 << 22);
    t.sync_network(0, 1, 1 << 21, 0);
    t.reserve_for(1_000_000, 1);
    let port = PortRef { slot: 1, gen: 1 };
    for i in 0..1_000_000 {
        t.learn(0, mac(1, i), port, 0);
    }
    let slots = t.capacity();
    assert_eq!(slots, 1 << 21);
    let mut g = c.benchmark_group("sweep");
    for (name, budget) in [
        ("part", 16_384),
        ("sleep-share", slots * 92 / 800),
        ("pass", slots),
    ] {
        g.throughput(Throughput::Elements(budget as u64));
        g.bench_function(BenchmarkId::new("1m", name), |bn| {
            bn.iter(|| std::hint::black_box(t.sweep(1, budget)))
        });
    }
    g.finish();
    assert_eq!(t.network_len(0), 1_000_000, "nothing expired");
}

/// Learning ever new addresses in a table full of live entries: see the module documentation.
fn bench_full_table(c: &mut Criterion) {
    let mut t = MacTable::new(300, 1 << 15);
    t.sync_network(0, 1, 1 << 20, 0);
    t.reserve(1 << 15);
    let port = PortRef { slot: 1, gen: 1 };
    let learned = (0..1 << 16)
        .filter(|&i| t.learn(0, mac(1, i), port, 0) == Learn::Learned)
        .count();
    assert_eq!(learned, t.capacity() / 4 * 3, "full");
    let mut g = c.benchmark_group("learn");
    g.throughput(Throughput::Elements(1));
    let mut next = 1u32 << 20;
    g.bench_function("full-new", |bn| {
        bn.iter(|| {
            next = next.wrapping_add(1);
            std::hint::black_box(t.learn_key(MacTable::key(0, mac(2, next)), 0, 1, port, 0))
        })
    });
    g.finish();
    assert_eq!(t.network_len(0), learned as u32, "nothing learned");
}

criterion_group!(
    benches,
    bench,
    bench_security_groups,
    bench_shortcut,
    bench_sweep,
    bench_full_table
);
criterion_main!(benches);
