//! The QoS extension's model: a port's ingress rate limit.
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
