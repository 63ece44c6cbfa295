//! Ingress policing: a token bucket per port in bits and in packets (the QoS extension).
//!
//! # Design
//! Two buckets, refilled from the batch's timestamp (time is a parameter; the worker reads the
//! clock once per batch). A frame passes only if both buckets hold enough tokens; a frame that does
//! not pass takes nothing. Tokens are kept in fixed point (bits x 1 and packets x 1000) so the
//! arithmetic is integer-only and exact over long runs: what a refill leaves short of a whole
//! token is carried to the next, so frames admitted microseconds apart still refill a slow
//! bucket at its rate.
//!
//! A frame larger than the whole bucket (a burst set below a frame's size) passes when the
//! bucket is full and leaves it owing the rest, paid back by the refill before another passes:
//! such a limit still lets frames through, at its rate (trTCM's and the kernel's `tc police`
//! would drop them for good; an operator's burst below the MTU is a mistake, not a wish to cut
//! large frames).

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
    /// Below 0 while a frame larger than the bucket is being paid for.
    tokens: i128,
    /// Milli-units times nanoseconds a refill left short of a whole milli-unit (below 10^9).
    carry: u64,
}

impl Bucket {
    fn new(rate_per_sec: u64, depth_units: u64) -> Option<Bucket> {
        (rate_per_sec > 0).then(|| {
            let depth = depth_units.saturating_mul(1000);
            Bucket {
                rate: rate_per_sec.saturating_mul(1000),
                depth,
                tokens: i128::from(depth),
                carry: 0,
            }
        })
    }

    fn refill(&mut self, elapsed_ns: u64) {
        let depth = i128::from(self.depth);
        if self.tokens >= depth {
            return;
        }
        let total = u128::from(self.rate) * u128::from(elapsed_ns) + u128::from(self.carry);
        let whole = total / 1_000_000_000;
        self.tokens = self
            .tokens
            .saturating_add(i128::try_from(whole).unwrap_or(i128::MAX));
        if self.tokens >= depth {
            // Full: nothing is owed to a bucket that cannot hold it.
            self.tokens = depth;
            self.carry = 0;
        } else {
            // (One division: the remainder from the quotient.)
            self.carry = (total - whole * 1_000_000_000) as u64;
        }
    }

    /// Whether `need` tokens may be taken: the bucket holds them, or is full (a frame larger
    /// than the bucket).
    fn conforms(&self, need: i128) -> bool {
        self.tokens >= need || self.tokens >= i128::from(self.depth)
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
        self.admit_run(len, 1, now_ns)
    }

    /// [`Policer::admit`] for a frame that is `packets` TCP segments merged, `len` bytes in all
    /// (a run another worker handed over whole): it takes a packet token per segment.
    #[inline]
    pub fn admit_run(&mut self, len: usize, packets: u32, now_ns: u64) -> bool {
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
        let need_bits = i128::try_from(len).unwrap_or(i128::MAX / 8000) * 8 * 1000;
        let need_pkts = i128::from(packets.max(1)) * 1000;
        let ok_bits = self.bits.is_none_or(|b| b.conforms(need_bits));
        let ok_pkts = self.packets.is_none_or(|b| b.conforms(need_pkts));
        if ok_bits && ok_pkts {
            if let Some(b) = &mut self.bits {
                b.tokens -= need_bits;
            }
            if let Some(b) = &mut self.packets {
                b.tokens -= need_pkts;
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

    /// A policer of `pps` packets a second and a burst of `burst` packets, full at time 0.
    fn packets(pps: u64, burst: u64) -> Policer {
        let c = PolicerConfig {
            pps,
            burst_packets: burst,
            ..Default::default()
        };
        Policer::new(c, 0)
    }

    /// A policer of `bps` bits a second and a burst of `burst` bits, full at time 0.
    fn bits(bps: u64, burst: u64) -> Policer {
        let c = PolicerConfig {
            bps,
            burst_bits: burst,
            ..Default::default()
        };
        Policer::new(c, 0)
    }

    #[test]
    fn packet_rate_is_enforced_over_a_second() {
        let mut p = packets(1000, 10);
        // Offer 10 000 frames evenly over one second.
        let passed = (0..10_000u64).filter(|i| p.admit(64, i * 100_000)).count();
        assert!((1000..=1010).contains(&passed), "{passed}");
    }

    #[test]
    fn bit_rate_is_enforced_and_burst_passes_first() {
        let mut p = bits(8_000_000, 8 * 10_000);
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
        let mut p = bits(100_000, 10_000);
        // Over 10 s, a frame every millisecond offered: 99 kbit/s passes (a frame every 122 ms,
        // the first offered once the debt is paid), not a frame each time the bucket is full
        // again (every 100 ms, 121 kbit/s).
        let passed = (0..10_000u64)
            .filter(|i| p.admit(1514, i * 1_000_000))
            .count();
        assert_eq!(passed, 82);
        // Jumbo frames through a bucket of 1 000 bits at 1 Mbit/s: about 28 in 2 s (72 112 bits
        // each), not one every millisecond.
        let mut p = bits(1_000_000, 1000);
        let passed = (0..20_000u64)
            .filter(|i| p.admit(9014, i * 100_000))
            .count();
        assert_eq!(passed, 28);
    }

    #[test]
    fn a_slow_bucket_refills_at_its_rate_however_often_frames_come() {
        // 100 packets a second, a burst of 10, frames offered every 3 µs for 2 s: each refill
        // is a third of a milli-packet, which a refill rounding down would lose every time.
        let mut p = packets(100, 10);
        let passed = (0..666_667u64).filter(|i| p.admit(64, i * 3_000)).count();
        assert_eq!(
            passed,
            10 + 199,
            "the 200th refilled at 2 s, after the last offer"
        );
        // Bits alike: 999 bit/s, 64-byte frames every µs for 5 s (0.999 milli-bits a refill).
        let mut p = bits(999, 512);
        let passed = (0..5_000_000u64).filter(|i| p.admit(64, i * 1_000)).count();
        assert_eq!(passed, 1 + 9);
    }

    #[test]
    fn a_merged_run_takes_a_packet_token_per_segment() {
        let mut p = packets(1000, 10);
        assert!(p.admit_run(5000, 4, 0));
        assert!(p.admit_run(5000, 4, 0));
        assert!(!p.admit_run(5000, 4, 0), "2 tokens left");
        assert!(p.admit(64, 0));
        assert!(p.admit(64, 0));
        assert!(!p.admit(64, 0));
    }
}
