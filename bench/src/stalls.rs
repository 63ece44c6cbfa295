//! How long the machine itself stops a CPU: a loop on each CPU that only reads the clock, the
//! way rt-tests' `oslat` measures operating-system latency. A gap between two reads is time the
//! CPU spent elsewhere, whatever the cause: an interrupt, another task, or, in a virtual machine,
//! the hypervisor not running the virtual CPU at all, which nothing inside the guest records
//! otherwise (no task switch, and steal time not always reported).
//!
//! A frame that crosses two CPUs (the sender's and a poll-mode switch's) waits out every such
//! pause of the second. A device that forwards in the sender's own system call (the bridge)
//! meets a pause only while that call runs, and then delays no more than that call's frames.
//! The harness probes before each device's measurements, with none of its own processes running,
//! so that a latency tail of the machine's own size can be told from the device's.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Gaps up to this are the loop's own noise (a timer tick, a cache miss): not counted. So the
/// probe does not see the short stops (about 1 250 a second of 8 µs or more, mostly 9 to 17)
/// that `oslat` finds on the 2 vCPU VMs of docs/BENCHMARKS.md, "Latency at light load".
pub const MIN_GAP: Duration = Duration::from_micros(100);

/// What the probe saw on one CPU.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CpuStalls {
    pub cpu: usize,
    /// How long the loop ran, in seconds (0 when it could not run there).
    pub secs: f64,
    /// Gaps longer than [`MIN_GAP`].
    pub over_100us: u64,
    /// Gaps longer than a millisecond.
    pub over_1ms: u64,
    /// The longest gap, in µs.
    pub longest_us: f64,
    /// The share of `secs` lost in gaps longer than [`MIN_GAP`].
    pub lost: f64,
    /// Why the CPU was not probed (the thread could not be pinned to it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CpuStalls {
    /// Counts one gap between two reads of the clock, adding it to `lost` if it is longer than
    /// [`MIN_GAP`].
    fn record(&mut self, gap: Duration, lost: &mut Duration) {
        if gap <= MIN_GAP {
            return;
        }
        self.over_100us += 1;
        self.over_1ms += u64::from(gap > Duration::from_millis(1));
        self.longest_us = self.longest_us.max(gap.as_secs_f64() * 1e6);
        *lost += gap;
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
    let mut lost = Duration::ZERO;
    let start = Instant::now();
    let mut prev = start;
    loop {
        between();
        let now = Instant::now();
        s.record(now - prev, &mut lost);
        prev = now;
        if now - start >= secs {
            break;
        }
    }
    s.secs = (prev - start).as_secs_f64();
    if s.secs > 0.0 {
        s.lost = lost.as_secs_f64() / s.secs;
    }
    s
}

/// Runs [`spin`] on each of `cpus` at once, each thread pinned to its CPU. A CPU the thread
/// cannot be pinned to is reported with its error, not left out.
pub fn probe(cpus: &[usize], secs: Duration) -> Vec<CpuStalls> {
    let threads: Vec<_> = cpus
        .iter()
        .map(|&cpu| {
            let t = std::thread::spawn(move || match dataplane::sys::pin_current_thread(cpu) {
                Ok(()) => spin(cpu, secs),
                Err(e) => CpuStalls {
                    cpu,
                    error: Some(format!("cannot pin a thread to it: {e}")),
                    ..CpuStalls::default()
                },
            });
            (cpu, t)
        })
        .collect();
    threads
        .into_iter()
        .map(|(cpu, t)| {
            t.join().unwrap_or_else(|_| CpuStalls {
                cpu,
                error: Some("the probe's thread panicked".into()),
                ..CpuStalls::default()
            })
        })
        .collect()
}

/// One line per CPU, for the report.
pub fn describe(s: &CpuStalls) -> String {
    match &s.error {
        Some(e) => format!("CPU {}: not measured ({e})", s.cpu),
        None => format!(
            "CPU {}: {} gaps over 100 µs, {} over 1 ms, the longest {:.0} µs; {:.2} % of {:.1} s lost",
            s.cpu,
            s.over_100us,
            s.over_1ms,
            s.longest_us,
            s.lost * 100.0,
            s.secs
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_counted_above_the_threshold_only() {
        let (mut s, mut lost) = (CpuStalls::default(), Duration::ZERO);
        s.record(Duration::from_micros(40), &mut lost);
        s.record(MIN_GAP, &mut lost);
        assert_eq!((s.over_100us, lost), (0, Duration::ZERO));
        s.record(Duration::from_micros(300), &mut lost);
        s.record(Duration::from_millis(1), &mut lost);
        s.record(Duration::from_micros(3_200), &mut lost);
        assert_eq!((s.over_100us, s.over_1ms), (3, 1));
        assert!((s.longest_us - 3_200.0).abs() < 1e-6);
        assert_eq!(lost, Duration::from_micros(4_500));
    }

    #[test]
    fn an_unpinnable_cpu_is_reported_not_dropped() {
        let got = probe(&[usize::MAX], Duration::from_millis(1));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].cpu, usize::MAX);
        assert!(got[0].error.is_some(), "{got:?}");
        assert!(describe(&got[0]).contains("not measured"));
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
        // The share lost holds at least that pause, over the whole loop.
        assert!(
            s.lost >= s.longest_us / 1e6 / s.secs && s.lost < 1.0,
            "{s:?}"
        );
        assert!(describe(&s).contains("% of 0."), "{}", describe(&s));
    }
}
