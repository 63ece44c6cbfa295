//! Ingress policing: a token bucket per port in bits and in packets (the QoS extension).
//!
//! # Design
//! Two buckets, refilled from the batch's timestamp (time is a parameter; the worker reads the
//! clock once per batch). A frame passes only if both buckets hold enough tokens; a frame that does
//! not pass takes nothing. Tokens are kept in fixed point (bits x 1 and packets x 1000) so the
//! arithmetic is integer-only and exact over long runs.

/// A port's rate limit. A rate of 0 means "no limit" on that dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicerConfig {
    /// Sustained bits per second (frame bytes x 8).
    pub bps: u64,
    /// Bucket depth in bits; 0 picks 10 ms worth of `bps` (at least one 1518-byte frame).
    pub burst_bits: u64,
    /// Sustained packets per second.
    pub pps: u64,
    /// Bucket depth in packets; 0 picks 10 ms worth of `pps` (at least 1).
    pub burst_packets: u64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens per second, in milli-units.
    rate: u64,
    depth: u64,
    tokens: u64,
}

impl Bucket {
    fn new(rate_per_sec: u64, depth_units: u64) -> Option<Bucket> {
        (rate_per_sec > 0).then(|| {
            let depth = depth_units.saturating_mul(1000);
            Bucket {
                rate: rate_per_sec.saturating_mul(1000),
                depth,
                tokens: depth,
            }
        })
    }

    fn refill(&mut self, elapsed_ns: u64) {
        let add = u128::from(self.rate) * u128::from(elapsed_ns) / 1_000_000_000;
        self.tokens = u64::try_from(u128::from(self.tokens) + add)
            .unwrap_or(u64::MAX)
            .min(self.depth);
    }
}

/// The policing state of one port.
#[derive(Debug, Clone)]
pub struct Policer {
    config: PolicerConfig,
    bits: Option<Bucket>,
    packets: Option<Bucket>,
    last_ns: u64,
}

impl Policer {
    /// A policer with full buckets at time `now_ns`.
    pub fn new(config: PolicerConfig, now_ns: u64) -> Policer {
        let burst_bits = if config.burst_bits > 0 {
            config.burst_bits
        } else {
            (config.bps / 100).max(1518 * 8)
        };
        let burst_packets = if config.burst_packets > 0 {
            config.burst_packets
        } else {
            (config.pps / 100).max(1)
        };
        Policer {
            config,
            bits: Bucket::new(config.bps, burst_bits),
            packets: Bucket::new(config.pps, burst_packets),
            last_ns: now_ns,
        }
    }

    /// The configuration this policer enforces.
    pub fn config(&self) -> PolicerConfig {
        self.config
    }

    /// Does a frame of `len` bytes arriving at `now_ns` conform? Conforming frames take tokens.
    #[inline]
    pub fn admit(&mut self, len: usize, now_ns: u64) -> bool {
        let elapsed = now_ns.saturating_sub(self.last_ns);
        if elapsed > 0 {
            self.last_ns = now_ns;
            if let Some(b) = &mut self.bits {
                b.refill(elapsed);
            }
            if let Some(b) = &mut self.packets {
                b.refill(elapsed);
            }
        }
        let need_bits = (len as u64) * 8 * 1000;
        // A frame larger than the whole bucket (a burst set below a frame's size) passes when
        // the bucket is full, taking all of it: such a limit still lets frames through, at its
        // rate, instead of none ever.
        let ok_bits = self
            .bits
            .is_none_or(|b| b.tokens >= need_bits || b.tokens >= b.depth);
        let ok_pkts = self.packets.is_none_or(|b| b.tokens >= 1000);
        if ok_bits && ok_pkts {
            if let Some(b) = &mut self.bits {
                b.tokens = b.tokens.saturating_sub(need_bits);
            }
            if let Some(b) = &mut self.packets {
                b.tokens -= 1000;
            }
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_rate_is_enforced_over_a_second() {
        let mut p = Policer::new(
            PolicerConfig {
                pps: 1000,
                burst_packets: 10,
                ..Default::default()
            },
            0,
        );
        // Offer 10 000 frames evenly over one second.
        let passed = (0..10_000u64).filter(|i| p.admit(64, i * 100_000)).count();
        assert!((1000..=1010).contains(&passed), "{passed}");
    }

    #[test]
    fn bit_rate_is_enforced_and_burst_passes_first() {
        let mut p = Policer::new(
            PolicerConfig {
                bps: 8_000_000,
                burst_bits: 8 * 10_000,
                ..Default::default()
            },
            0,
        );
        // The burst: 10 000 bytes pass at t=0.
        let burst = (0..100).filter(|_| p.admit(1000, 0)).count();
        assert_eq!(burst, 10);
        // Then 1 MB/s: 1000 frames of 1000 bytes over the next second.
        let passed = (1..=100_000u64)
            .filter(|i| p.admit(1000, i * 10_000))
            .count();
        assert!((995..=1005).contains(&passed), "{passed}");
    }

    #[test]
    fn zero_rates_mean_unlimited() {
        let mut p = Policer::new(PolicerConfig::default(), 0);
        assert!((0..10_000).all(|_| p.admit(1500, 0)));
    }

    #[test]
    fn a_bucket_smaller_than_a_frame_still_passes_frames_at_its_rate() {
        // 10 kbit of burst, 1514-byte frames (12 112 bits), 100 kbit/s.
        let mut p = Policer::new(
            PolicerConfig {
                bps: 100_000,
                burst_bits: 10_000,
                pps: 0,
                burst_packets: 0,
            },
            0,
        );
        // Over 10 s, a frame every millisecond offered: about 100 kbit/s passes.
        let passed = (0..10_000u64)
            .filter(|i| p.admit(1514, i * 1_000_000))
            .count();
        let bps = passed as f64 * 1514.0 * 8.0 / 10.0;
        assert!((80_000.0..=125_000.0).contains(&bps), "{bps}");
    }
}
