//! How long the machine itself stops a CPU: a loop on each CPU that only reads the clock, the
//! way rt-tests' `oslat` measures operating-system latency. Any gap between two reads is time
//! the CPU ran something else (an interrupt, a kernel thread) or, in a virtual machine, time the
//! hypervisor did not run the virtual CPU at all, which no tool inside the guest sees otherwise:
//! the scheduler records no switch, and steal time is not always reported.
//!
//! A frame that crosses two CPUs (the sender's and a poll-mode switch's) waits out every such
//! pause of the second; a device that forwards in the sender's own system call (the bridge) is
//! paused only together with the sender, before the frame's send time is stamped. The harness
//! runs the probe before its latency trials and prints it beside them, so that a latency tail
//! of the machine's own size can be told from the device's.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Gaps below this are the loop's own noise (a timer tick, a cache miss): not counted.
pub const MIN_GAP: Duration = Duration::from_micros(100);

/// What the probe saw on one CPU.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CpuStalls {
    pub cpu: usize,
    /// How long the loop ran, in seconds.
    pub secs: f64,
    /// Gaps longer than [`MIN_GAP`].
    pub over_100us: u64,
    /// Gaps longer than a millisecond.
    pub over_1ms: u64,
    /// The longest gap, in µs.
    pub longest_us: f64,
    /// The share of the time lost in gaps longer than [`MIN_GAP`].
    pub lost: f64,
}

impl CpuStalls {
    /// Folds in one gap between two clock reads.
    fn gap(&mut self, gap: Duration) {
        if gap <= MIN_GAP {
            return;
        }
        self.over_100us += 1;
        self.over_1ms += u64::from(gap > Duration::from_millis(1));
        let us = gap.as_secs_f64() * 1e6;
        self.longest_us = self.longest_us.max(us);
        self.lost += us / 1e6;
    }
}

/// Reads the clock in a loop on the calling thread for `secs` and counts the gaps.
pub fn spin(cpu: usize, secs: Duration) -> CpuStalls {
    spin_with(cpu, secs, || ())
}

/// [`spin`], calling `between` between two reads of the clock (tests pause there).
fn spin_with(cpu: usize, secs: Duration, mut between: impl FnMut()) -> CpuStalls {
    let mut s = CpuStalls {
        cpu,
        ..CpuStalls::default()
    };
    let start = Instant::now();
    let mut prev = start;
    loop {
        between();
        let now = Instant::now();
        s.gap(now - prev);
        prev = now;
        if now - start >= secs {
            break;
        }
    }
    s.secs = (prev - start).as_secs_f64();
    if s.secs > 0.0 {
        s.lost /= s.secs;
    }
    s
}

/// Runs [`spin`] on every CPU `cpus` names at once, each thread pinned to its CPU (a CPU it
/// cannot be pinned to is left out).
pub fn probe(cpus: &[usize], secs: Duration) -> Vec<CpuStalls> {
    let threads: Vec<_> = cpus
        .iter()
        .map(|&cpu| {
            std::thread::spawn(move || {
                dataplane::sys::pin_current_thread(cpu)
                    .ok()
                    .map(|()| spin(cpu, secs))
            })
        })
        .collect();
    threads
        .into_iter()
        .filter_map(|t| t.join().ok().flatten())
        .collect()
}

/// One line per CPU, for the report.
pub fn describe(stalls: &[CpuStalls]) -> String {
    stalls
        .iter()
        .map(|s| {
            format!(
                "CPU {}: {} pauses over 100 µs, {} over 1 ms, the longest {:.0} µs ({:.2} % of {:.1} s)",
                s.cpu,
                s.over_100us,
                s.over_1ms,
                s.longest_us,
                s.lost * 100.0,
                s.secs
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_counted_above_the_threshold_only() {
        let mut s = CpuStalls::default();
        s.gap(Duration::from_micros(40));
        s.gap(MIN_GAP);
        assert_eq!(s.over_100us, 0);
        s.gap(Duration::from_micros(300));
        s.gap(Duration::from_micros(3_200));
        assert_eq!((s.over_100us, s.over_1ms), (2, 1));
        assert!((s.longest_us - 3_200.0).abs() < 1e-6);
        assert!((s.lost - 0.0035).abs() < 1e-9);
    }

    #[test]
    fn a_pause_between_two_reads_is_seen() {
        let mut calls = 0;
        let s = spin_with(3, Duration::from_millis(20), || {
            calls += 1;
            if calls == 1000 {
                std::thread::sleep(Duration::from_millis(3));
            }
        });
        assert_eq!(s.cpu, 3);
        assert!(s.secs >= 0.02);
        assert!(s.over_1ms >= 1, "{s:?}");
        assert!(s.longest_us >= 3_000.0, "{s:?}");
    }
}
