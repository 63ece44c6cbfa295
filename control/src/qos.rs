//! QoS: Neutron QoS policies (rules per direction, on ports and networks) make a port's two
//! limits; the Quantum extension's per-port limit of what the VM sends is a policy of the port's
//! own (see `service::qos`).
//!
//! A limit has a bit rate and a packet rate, each with a burst (the token
//! bucket's depth); a rate of 0 leaves that dimension unlimited and a burst
//! of 0 picks 100 ms worth of the rate. The data plane
//! enforces it on frames the port's VM sends (the port's ingress), and a
//! change takes effect on the next frame.

use crate::error::{ControlError, Result};

/// Highest accepted bit rate: 1 Tbit/s.
pub const MAX_RATE_BPS: u64 = 1_000_000_000_000;
/// Highest accepted packet rate: 1 G packets/s.
pub const MAX_RATE_PPS: u64 = 1_000_000_000;
/// Deepest accepted bit burst: 1 Tbit.
pub const MAX_BURST_BITS: u64 = 1_000_000_000_000;
/// Deepest accepted packet burst: 1 G packets.
pub const MAX_BURST_PACKETS: u64 = 1_000_000_000;

/// A port's rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QosLimit {
    /// Sustained bits per second (frame bytes x 8); 0 = unlimited.
    pub rate_bps: u64,
    /// Bucket depth in bits; 0 = 100 ms of `rate_bps` (at least one frame).
    pub burst_bits: u64,
    /// Sustained packets per second; 0 = unlimited.
    pub rate_pps: u64,
    /// Bucket depth in packets; 0 = 100 ms of `rate_pps` (at least 1).
    pub burst_packets: u64,
}

impl QosLimit {
    /// Checks the bounds; at least one rate must be set (clearing a limit
    /// is a delete, not a limit of nothing).
    pub fn validate(&self) -> Result<()> {
        let check = |name: &str, v: u64, max: u64| {
            if v > max {
                Err(ControlError::Invalid {
                    reason: format!("Invalid QoS: {name} {v} is above the maximum {max}"),
                })
            } else {
                Ok(())
            }
        };
        check("rate_bps", self.rate_bps, MAX_RATE_BPS)?;
        check("burst_bits", self.burst_bits, MAX_BURST_BITS)?;
        check("rate_pps", self.rate_pps, MAX_RATE_PPS)?;
        check("burst_packets", self.burst_packets, MAX_BURST_PACKETS)?;
        if self.rate_bps == 0 && self.rate_pps == 0 {
            return Err(ControlError::Invalid {
                reason: "Invalid QoS: set rate_bps or rate_pps above 0 \
                         (DELETE the qos resource to remove the limit)"
                    .to_owned(),
            });
        }
        Ok(())
    }
}

/// The kind of a Neutron QoS rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosRuleType {
    /// `bandwidth_limit`: `max_kbps`, `max_burst_kbps`.
    BandwidthLimit,
    /// `packet_rate_limit`: `max_kpps`, `max_burst_kpps`.
    PacketRateLimit,
}

impl QosRuleType {
    /// Every type, as `/v2.0/qos/rule-types` lists them.
    pub const ALL: [QosRuleType; 2] = [QosRuleType::BandwidthLimit, QosRuleType::PacketRateLimit];

    /// The type's name (`bandwidth_limit`).
    pub fn as_str(self) -> &'static str {
        match self {
            QosRuleType::BandwidthLimit => "bandwidth_limit",
            QosRuleType::PacketRateLimit => "packet_rate_limit",
        }
    }

    /// The type named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The names of its rate and burst attributes.
    pub fn keys(self) -> (&'static str, &'static str) {
        match self {
            QosRuleType::BandwidthLimit => ("max_kbps", "max_burst_kbps"),
            QosRuleType::PacketRateLimit => ("max_kpps", "max_burst_kpps"),
        }
    }
}

/// Which way a rule limits, as Neutron names it from the VM's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum QosDirection {
    /// What the VM sends (the switch polices it as it arrives).
    #[default]
    Egress,
    /// What the VM receives (the switch polices it before sending it to the VM).
    Ingress,
}

impl QosDirection {
    /// The name (`egress`).
    pub fn as_str(self) -> &'static str {
        match self {
            QosDirection::Egress => "egress",
            QosDirection::Ingress => "ingress",
        }
    }

    /// The direction named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "egress" => Some(QosDirection::Egress),
            "ingress" => Some(QosDirection::Ingress),
            _ => None,
        }
    }
}

/// A QoS policy (its rules are kept apart).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QosPolicy {
    /// Server-made uuid4.
    pub id: String,
    /// Owning project.
    pub tenant_id: String,
    /// `name`.
    pub name: String,
    /// `description`.
    pub description: String,
    /// Usable by every project.
    pub shared: bool,
    /// The project's default: new networks of the project without a policy get it.
    pub is_default: bool,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Bumped by every change.
    pub revision_number: i64,
    /// The port whose Quantum v1.1 limit it holds, when the Quantum qos extension made it.
    pub port_id: Option<String>,
}

/// Neutron's units (kbit/s, kbit, kpackets/s, kpackets) in the stored ones (bit/s, bits,
/// packets/s, packets).
pub const NEUTRON_UNIT: u64 = 1000;

/// A rule of a QoS policy: at most one per type and direction in a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QosRule {
    /// Server-made uuid4.
    pub id: String,
    /// Its policy.
    pub policy_id: String,
    /// Bandwidth or packet rate.
    pub rule_type: QosRuleType,
    /// Egress or ingress.
    pub direction: QosDirection,
    /// Bits per second, or packets per second.
    pub rate: u64,
    /// Bits, or packets (0: the switch's default burst).
    pub burst: u64,
}

impl QosRule {
    /// The rate in Neutron's units (`max_kbps`, `max_kpps`), rounded up: a rate the Quantum
    /// extension set below 1000 still shows as a limit.
    pub fn neutron_rate(&self) -> u64 {
        self.rate.div_ceil(NEUTRON_UNIT)
    }

    /// The burst in Neutron's units (`max_burst_kbps`, `max_burst_kpps`), rounded up.
    pub fn neutron_burst(&self) -> u64 {
        self.burst.div_ceil(NEUTRON_UNIT)
    }
}

/// The limits a port's policy rules make: (what the VM sends, what it receives); `None` where
/// no rule applies.
pub fn policy_limits(rules: &[QosRule]) -> (Option<QosLimit>, Option<QosLimit>) {
    let limit = |dir: QosDirection| {
        let mut l = QosLimit::default();
        for r in rules.iter().filter(|r| r.direction == dir) {
            match r.rule_type {
                QosRuleType::BandwidthLimit => {
                    l.rate_bps = r.rate;
                    l.burst_bits = r.burst;
                }
                QosRuleType::PacketRateLimit => {
                    l.rate_pps = r.rate;
                    l.burst_packets = r.burst;
                }
            }
        }
        (l.rate_bps > 0 || l.rate_pps > 0).then_some(l)
    };
    (limit(QosDirection::Egress), limit(QosDirection::Ingress))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_needs_a_rate_within_bounds() {
        let ok = QosLimit {
            rate_pps: 1000,
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
        assert!(QosLimit::default().validate().is_err());
        let too_fast = QosLimit {
            rate_bps: MAX_RATE_BPS + 1,
            ..Default::default()
        };
        assert!(too_fast.validate().is_err());
        let deep = QosLimit {
            rate_bps: 1,
            burst_packets: MAX_BURST_PACKETS + 1,
            ..Default::default()
        };
        assert!(deep.validate().is_err());
    }
}
