//! What the control plane measures about itself for the operator's `/metrics`: how long store
//! transactions take, and where the revision log stands.
//!
//! The families are shared handles (cloning one shares its series), so the API's registry
//! registers the same ones the control plane records into.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// The kind of a store transaction.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TxLabels {
    /// `read` or `write`.
    pub kind: &'static str,
}

/// A histogram constructor (a plain function, so the family stays `Clone` and `Debug`).
pub type HistogramFn = fn() -> Histogram;

/// Latency buckets from 100 µs to about 3.3 s, doubling.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// The control plane's own measurements.
#[derive(Debug)]
pub struct StoreMetrics {
    /// Seconds per store transaction, by kind (a write's time includes its commit, not the
    /// wait for the data plane).
    pub transactions: Family<TxLabels, Histogram, HistogramFn>,
    revision: AtomicU64,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        Self {
            transactions: Family::new_with_constructor(latency_histogram),
            revision: AtomicU64::new(0),
        }
    }
}

impl StoreMetrics {
    /// Records one transaction.
    pub(crate) fn observe(&self, kind: &'static str, since: std::time::Instant) {
        self.transactions
            .get_or_create(&TxLabels { kind })
            .observe(since.elapsed().as_secs_f64());
    }

    /// Records the revision a write committed.
    pub(crate) fn committed(&self, revision: u64) {
        self.revision.fetch_max(revision, Relaxed);
    }

    /// The last revision committed through this process.
    pub fn revision(&self) -> u64 {
        self.revision.load(Relaxed)
    }
}
