//! qswitch benchmarks: the pipeline alone (`benches/pipeline.rs`, criterion), the packet
//! harness `qswitch-bench` (RFC 2544 throughput and latency on veth, qswitch side by side with the
//! Linux bridge and with no device), the API load driver `qswitch-apibench`, and
//! `e2e/forward.py` (the first trafgen-based forwarding measurement); `qswitch-bench goodput`
//! measures TCP goodput between two VMs with iperf3. Results and the commands that produced them are in `docs/BENCHMARKS.md`.
//!
//! Environment knobs of `qswitch-bench`: `QSB_XDP_MODE` (`auto`, `native`, `generic`) sets the
//! qswitch DUT's XDP mode, `QSB_UMEM_FRAMES` and `QSB_MAX_FILL` its `umem_frames` and `max_fill`
//! (default: the daemon's own), `QSB_MAX_QUEUE_US` its `max_queue_us`, `QSB_IDLE_SPIN_US` its
//! `idle_spin_us` (where it polls adaptively: `goodput`), `QSB_WORKERS` its worker
//! count (default: one in the packet tests, the daemon's own in `goodput`); `QSB_SINK_RT=0` runs
//! the sink without real-time priority, `QSB_SINK_CPU` pins it to another CPU (default 0, the
//! generator's; `any` lets the scheduler place it); `QSB_DEBUG` prints per-trial details and the
//! DUT's per-port counters.
//!
//! Ctrl-C (or SIGTERM) during a run stops every process the harness started and deletes its
//! namespaces before exiting (`interrupt`).

pub mod agent;
pub mod apiscale;
pub mod goodput;
pub mod http;
pub mod interrupt;
pub mod progress;
pub mod report;
pub mod rfc2889;
pub mod scaleout;
pub mod scenario;
pub mod search;
pub mod stalls;
pub mod topo;
pub mod traffic;

/// The qswitch binary beside this one (`--qswitch` overrides it).
pub fn default_qswitch() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("qswitch")))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "qswitch".into())
}

/// Is `QSB_DEBUG` set (print per-trial details)?
pub fn debug() -> bool {
    std::env::var_os("QSB_DEBUG").is_some()
}

/// Where reports go unless `--out` says otherwise.
pub const DEFAULT_OUT: &str = "target/qswitch-bench";

/// The report folder `--out` names (or the default), made absolute: the harness hands paths in
/// it to daemons that run in other directories (Open vSwitch's database server takes its socket
/// path from it), where a relative path would point elsewhere.
pub fn out_dir(given: Option<&str>) -> std::path::PathBuf {
    let p = std::path::PathBuf::from(given.unwrap_or(DEFAULT_OUT));
    std::path::absolute(&p).unwrap_or(p)
}

fn out_path(v: &str) -> Result<std::path::PathBuf, String> {
    Ok(out_dir(Some(v)))
}

/// The options every measuring command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Where the JSON reports and SVG plots go
    #[arg(long, env = "QSB_OUT", default_value = DEFAULT_OUT, value_parser = out_path)]
    pub out: std::path::PathBuf,
    /// The qswitch binary to measure (default: the one beside this binary)
    #[arg(long, env = "QSB_QSWITCH", default_value_t = default_qswitch())]
    pub qswitch: String,
}

/// Parses a `--trial` value: a positive number of seconds.
pub fn trial_secs(v: &str) -> Result<f64, String> {
    v.parse()
        .ok()
        .filter(|t: &f64| *t > 0.0 && t.is_finite())
        .ok_or_else(|| format!("{v:?}: expected a positive number of seconds"))
}

/// Parses a `--loads` value, `LIGHT,HEAVY`: two percentages of a no-loss rate (1 to 100), the
/// lighter first.
pub fn loads(v: &str) -> Result<[u32; 2], String> {
    let pct = |s: &str| {
        s.trim()
            .parse::<u32>()
            .ok()
            .filter(|p| (1..=100).contains(p))
    };
    match v.split(',').map(pct).collect::<Vec<_>>()[..] {
        [Some(light), Some(heavy)] if light < heavy => Ok([light, heavy]),
        _ => Err(format!(
            "{v:?}: expected LIGHT,HEAVY, two percentages (1 to 100) with LIGHT < HEAVY, e.g. 5,20"
        )),
    }
}

/// Parses a device under test by name (`none`, `bridge`, `qswitch`, `ovs-afxdp`, …: every one
/// of [`topo::Dut::ALL`]).
pub fn dut(v: &str) -> Result<topo::Dut, String> {
    topo::Dut::parse(v).ok_or_else(|| {
        let known: Vec<&str> = topo::Dut::ALL.iter().map(|d| d.name()).collect();
        format!("unknown DUT {v} (known: {})", known.join(", "))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_trial_lasts_a_positive_number_of_seconds() {
        assert_eq!(super::trial_secs("0.5"), Ok(0.5));
        for bad in ["0", "-1", "abc", "inf", "NaN", ""] {
            let e = super::trial_secs(bad).unwrap_err();
            assert!(e.contains("positive number of seconds"), "{bad}: {e}");
        }
    }

    #[test]
    fn loads_are_two_percentages_the_lighter_first() {
        assert_eq!(super::loads("50,90"), Ok([50, 90]));
        assert_eq!(super::loads("5, 20"), Ok([5, 20]));
        for bad in [
            "90,50", "50,50", "50", "5,20,90", "0,50", "50,101", "a,b", "",
        ] {
            let e = super::loads(bad).unwrap_err();
            assert!(e.contains("expected LIGHT,HEAVY"), "{bad}: {e}");
        }
    }
}
