//! The data plane's series of `/metrics`, read at every scrape from the copies the worker
//! publishes ([`dataplane::Switch::observe`]): nothing here touches the packet path, and a
//! deleted port's series are gone from the next scrape.

use std::fmt;
use std::sync::Arc;

use dataplane::stats::{LocalCounters, XdpStats};
use dataplane::{DropReason, Observation, PortObservation, PortState, Switch, WorkerReading};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// The data plane's collector.
#[derive(Debug)]
pub(crate) struct DataplaneCollector(pub(crate) Arc<Switch>);

/// A port counter: name, help, and how to read it.
type PortCounter = (&'static str, &'static str, fn(&LocalCounters) -> u64);

const PORT_COUNTERS: [PortCounter; 18] = [
    (
        "qswitch_port_rx_packets",
        "Frames received from the port",
        |c| c.rx_packets,
    ),
    (
        "qswitch_port_rx_bytes",
        "Bytes received from the port",
        |c| c.rx_bytes,
    ),
    ("qswitch_port_tx_packets", "Frames sent to the port", |c| {
        c.tx_packets
    }),
    ("qswitch_port_tx_bytes", "Bytes sent to the port", |c| {
        c.tx_bytes
    }),
    (
        "qswitch_port_floods",
        "Frames received on the port that were flooded",
        |c| c.floods,
    ),
    (
        "qswitch_port_learn_limit_hits",
        "Source addresses not learned because the network was at its MAC limit",
        |c| c.learn_limit,
    ),
    (
        "qswitch_port_mac_moves",
        "Source addresses that moved to this port from another",
        |c| c.mac_moves,
    ),
    (
        "qswitch_port_learn_deferred",
        "Frames whose source address was learned only after a growth of the MAC table",
        |c| c.learn_deferred,
    ),
    (
        "qswitch_port_backpressure",
        "Times the worker stopped reading the port because an egress transmit ring was full",
        |c| c.backpressure,
    ),
    (
        "qswitch_port_checksums_completed",
        "Frames from the port whose TCP/UDP checksum the sender left partial, finished by the switch or by the egress port's kernel",
        |c| c.csum_completed,
    ),
    (
        "qswitch_port_segmented",
        "TCP super-frames from the port the switch split into MTU-sized segments",
        |c| c.gso_segmented,
    ),
    (
        "qswitch_port_sent_whole",
        "TCP super-frames from the port that left whole, with their segment size, through the egress port's packet socket",
        |c| c.gso_whole,
    ),
    (
        "qswitch_port_coalesced",
        "TCP segments sent to the port merged into super-frames (consecutive segments of one flow, sent as one frame through the port's packet socket)",
        |c| c.coalesced,
    ),
    (
        "qswitch_port_dhcp_replies",
        "DHCP replies the switch's responder sent to the port",
        |c| c.dhcp_replies,
    ),
    (
        "qswitch_port_arp_replies",
        "ARP replies the switch sent to the port for its network's known addresses",
        |c| c.arp_replies,
    ),
    (
        "qswitch_port_ra_replies",
        "Router advertisements the switch sent to the port, answering its solicitations",
        |c| c.ra_replies,
    ),
    (
        "qswitch_port_xdp_forwarded",
        "Frames from the port that its XDP program forwarded itself, by the switch's shortcut (counted in the port's received frames too)",
        |c| c.xdp_forwarded,
    ),
    (
        "qswitch_port_tx_stalls",
        "Times the port's transmit stalled: its TX ring short of room for the stall time, frames beyond its room dropped (reason tx_stalled) until it had room again",
        |c| c.tx_stalls,
    ),
];

/// The kernel's XDP socket statistics of a port.
type XdpCounter = (&'static str, &'static str, fn(&XdpStats) -> u64);

const XDP_COUNTERS: [XdpCounter; 6] = [
    (
        "qswitch_port_xdp_rx_dropped",
        "Kernel: received frames dropped before the switch saw them (no whole free buffer)",
        |x| x.rx_dropped,
    ),
    (
        "qswitch_port_xdp_rx_invalid_descs",
        "Kernel: invalid descriptors on receive",
        |x| x.rx_invalid_descs,
    ),
    (
        "qswitch_port_xdp_tx_invalid_descs",
        "Kernel: invalid descriptors on transmit",
        |x| x.tx_invalid_descs,
    ),
    (
        "qswitch_port_xdp_rx_ring_full",
        "Kernel: frames dropped because the receive ring was full",
        |x| x.rx_ring_full,
    ),
    (
        "qswitch_port_xdp_rx_fill_ring_empty",
        "Kernel: times the fill ring was empty when a frame arrived",
        |x| x.rx_fill_ring_empty_descs,
    ),
    (
        "qswitch_port_xdp_tx_ring_empty",
        "Kernel: times the transmit ring was empty when polled",
        |x| x.tx_ring_empty_descs,
    ),
];

/// A worker's series: name, help, type and how to read it.
type WorkerSeries = (
    &'static str,
    &'static str,
    MetricType,
    fn(&WorkerReading) -> f64,
);

const WORKER_SERIES: [WorkerSeries; 17] = [
    (
        "qswitch_worker_rounds",
        "Poll rounds the worker ran",
        MetricType::Counter,
        |w| w.rounds as f64,
    ),
    (
        "qswitch_worker_busy_seconds",
        "Time the worker spent in rounds that found work",
        MetricType::Counter,
        |w| w.busy_seconds,
    ),
    (
        "qswitch_worker_busy_ratio",
        "Share of the last complete 10 s window the worker spent in rounds that found work (a worker that keeps up is busy most of the time: see qswitch_worker_behind_ratio)",
        MetricType::Gauge,
        |w| w.busy_ratio,
    ),
    (
        "qswitch_worker_behind_seconds",
        "Time the worker spent in rounds that left frames waiting (a receive gave all the round asked of it, or there was no room to take any: the worker near its capacity, or held back by a full TX ring or a busy peer)",
        MetricType::Counter,
        |w| w.behind_seconds,
    ),
    (
        "qswitch_worker_behind_ratio",
        "Share of the last complete 10 s window the worker spent in rounds that left frames waiting (near its capacity, or held back by a full TX ring or a busy peer)",
        MetricType::Gauge,
        |w| w.behind_ratio,
    ),
    (
        "qswitch_worker_round_gap_max_seconds",
        "Longest gap between two rounds while forwarding, in the last complete 10 s window",
        MetricType::Gauge,
        |w| w.max_gap_seconds,
    ),
    (
        "qswitch_worker_round_gaps_over_1ms",
        "Gaps of more than a millisecond between two rounds while forwarding",
        MetricType::Counter,
        |w| w.gaps_over_1ms as f64,
    ),
    (
        "qswitch_worker_fill_frames",
        "The deepest a busy receive queue's fill ring is kept: the frames the kernel receives into while the worker is held off its core (beyond them it drops, counted in qswitch_port_xdp_rx_fill_ring_empty_total); 0 while the worker has no port",
        MetricType::Gauge,
        |w| w.fill_frames as f64,
    ),
    (
        "qswitch_worker_frame_cost_seconds",
        "The worker's cost of a frame while frames wait (rounds that left frames on a receive ring or held them back), measured within the last 10 s, else over every round that found work (0 until measured): a busy queue's fill ring holds no more than the worker handles in max_queue_us at this cost, nor fewer than 256 frames unless the UMEM's share per queue or max_fill is smaller",
        MetricType::Gauge,
        |w| w.frame_cost_seconds,
    ),
    (
        "qswitch_worker_rx_frames",
        "Frames the worker received, all ports",
        MetricType::Counter,
        |w| w.rx_frames as f64,
    ),
    (
        "qswitch_worker_crossed_out_frames",
        "Frames (one per flood, not per copy) the worker handed to another worker for its ports",
        MetricType::Counter,
        |w| w.crossed_out as f64,
    ),
    (
        "qswitch_worker_crossed_in_frames",
        "Frames the worker took from other workers for its ports",
        MetricType::Counter,
        |w| w.crossed_in as f64,
    ),
    (
        "qswitch_worker_crossed_lost_frames",
        "Frames taken from other workers whose port or network had left its slot (or not yet reached this worker), or whose port is not open on this worker: dropped (a merged run of TCP segments taken whole counts once per segment)",
        MetricType::Counter,
        |w| w.crossed_lost as f64,
    ),
    (
        "qswitch_conntrack_entries",
        "Connections the worker's security groups track, all ports",
        MetricType::Gauge,
        |w| w.conntrack_entries as f64,
    ),
    (
        "qswitch_worker_xdp_shortcut_entries",
        "XDP shortcut entries the worker holds installed (known unicast forwarded inside the ports' XDP programs)",
        MetricType::Gauge,
        |w| w.shortcut_entries as f64,
    ),
    (
        "qswitch_worker_xdp_shortcut_installed",
        "XDP shortcut entries the worker installed",
        MetricType::Counter,
        |w| w.shortcut_installed as f64,
    ),
    (
        "qswitch_worker_xdp_shortcut_withdrawn",
        "XDP shortcut entries the worker withdrew because the MAC table or the ports changed",
        MetricType::Counter,
        |w| w.shortcut_withdrawn as f64,
    ),
];

fn port_labels(p: &PortObservation) -> [(&'static str, &str); 3] {
    [
        ("port", p.id.as_str()),
        ("device", p.device.as_str()),
        ("network", p.network.as_deref().unwrap_or("")),
    ]
}

/// Writes one family: a descriptor, then one sample per label set.
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl Iterator<Item = (L, M)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, metric) in rows {
        metric.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge(v: u64) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
}

impl Collector for DataplaneCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let Observation {
            ports,
            networks,
            workers,
        } = self.0.observe();
        for (name, help, read) in PORT_COUNTERS {
            let rows = ports
                .iter()
                .map(|p| (port_labels(p), ConstCounter::new(read(&p.stats.counters))));
            family(&mut enc, name, help, MetricType::Counter, rows)?;
        }
        let drops = ports.iter().flat_map(|p| {
            let [a, b, c] = port_labels(p);
            DropReason::ALL.iter().map(move |r| {
                (
                    [a, b, c, ("reason", r.name())],
                    ConstCounter::new(p.stats.counters.drops[*r as usize]),
                )
            })
        });
        family(
            &mut enc,
            "qswitch_port_drops",
            "Frames dropped, by port and reason (docs/OPERATIONS.md lists the reasons)",
            MetricType::Counter,
            drops,
        )?;
        for (name, help, read) in XDP_COUNTERS {
            let rows = ports
                .iter()
                .map(|p| (port_labels(p), ConstCounter::new(read(&p.stats.xdp))));
            family(&mut enc, name, help, MetricType::Counter, rows)?;
        }
        let states = ports.iter().flat_map(|p| {
            let [a, b, c] = port_labels(p);
            PortState::ALL.iter().map(move |s| {
                (
                    [a, b, c, ("state", s.name())],
                    gauge(u64::from(p.state == *s)),
                )
            })
        });
        family(
            &mut enc,
            "qswitch_port_state",
            "1 for the port's current state (up: forwarding; down: no device or not open yet; admin_down; error: refused or failed)",
            MetricType::Gauge,
            states,
        )?;
        let stalled = ports
            .iter()
            .map(|p| (port_labels(p), gauge(u64::from(p.tx_stalled))));
        family(
            &mut enc,
            "qswitch_port_tx_stalled",
            "1 while the port's transmit is stalled (frames beyond its TX ring's room dropped, reason tx_stalled), else 0",
            MetricType::Gauge,
            stalled,
        )?;
        let stalled_time = ports.iter().map(|p| {
            let ns = p.stats.counters.tx_stalled_ns;
            (port_labels(p), ConstCounter::new(ns as f64 / 1e9))
        });
        family(
            &mut enc,
            "qswitch_port_tx_stalled_seconds",
            "Time the port's transmit spent stalled, the current stall's so far included (its rate: the share of the time the port was stalled)",
            MetricType::Counter,
            stalled_time,
        )?;
        let vlan: Vec<String> = networks.iter().map(|n| n.vlan.to_string()).collect();
        let net_labels = |i: usize| {
            [
                ("network", networks[i].id.as_str()),
                ("vlan", vlan[i].as_str()),
                ("physnet", networks[i].physnet.as_deref().unwrap_or("")),
            ]
        };
        family(
            &mut enc,
            "qswitch_network_mac_entries",
            "Live entries of the network's MAC table (at most 100 ms old)",
            MetricType::Gauge,
            (0..networks.len()).map(|i| (net_labels(i), gauge(u64::from(networks[i].mac_entries)))),
        )?;
        family(
            &mut enc,
            "qswitch_network_mac_limit",
            "Learning limit of the network's MAC table",
            MetricType::Gauge,
            (0..networks.len()).map(|i| (net_labels(i), gauge(u64::from(networks[i].mac_limit)))),
        )?;
        let index: Vec<String> = (0..workers.len()).map(|i| i.to_string()).collect();
        for (name, help, kind, read) in WORKER_SERIES {
            let rows =
                (0..workers.len()).map(|i| ([("worker", index[i].as_str())], read(&workers[i])));
            match kind {
                MetricType::Counter => family(
                    &mut enc,
                    name,
                    help,
                    kind,
                    rows.map(|(l, v)| (l, ConstCounter::new(v))),
                )?,
                _ => family(
                    &mut enc,
                    name,
                    help,
                    kind,
                    rows.map(|(l, v)| (l, ConstGauge::new(v))),
                )?,
            }
        }
        Ok(())
    }
}
