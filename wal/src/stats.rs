//! Counters of the writer thread, readable at any time without a lock.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Buckets of the records-per-group histogram: bucket `i` counts groups of
/// `2^i ..= 2^(i+1) - 1` records.
pub const GROUP_RECORDS_BUCKETS: usize = 32;

#[derive(Debug, Default)]
pub struct WalStats {
    /// fdatasync calls on log data (segment creation not included).
    pub fsyncs: AtomicU64,
    pub records_written: AtomicU64,
    pub bytes_written: AtomicU64,
    /// Group commits: one swap of the pending buffer, written and fsynced.
    pub groups: AtomicU64,
    pub fsync_latency_ns_sum: AtomicU64,
    pub fsync_latency_ns_max: AtomicU64,
    group_records: [AtomicU64; GROUP_RECORDS_BUCKETS],
}

/// A plain copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub fsyncs: u64,
    pub records_written: u64,
    pub bytes_written: u64,
    pub groups: u64,
    pub fsync_latency_ns_sum: u64,
    pub fsync_latency_ns_max: u64,
    pub group_records_histogram: [u64; GROUP_RECORDS_BUCKETS],
}

impl WalStats {
    pub(crate) fn record_fsync(&self, latency: Duration) {
        let latency_ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.fsyncs.fetch_add(1, Relaxed);
        self.fsync_latency_ns_sum.fetch_add(latency_ns, Relaxed);
        self.fsync_latency_ns_max.fetch_max(latency_ns, Relaxed);
    }

    pub(crate) fn record_group(&self, records: u64, bytes: u64) {
        assert!(records > 0, "a group holds at least one record");
        self.groups.fetch_add(1, Relaxed);
        self.records_written.fetch_add(records, Relaxed);
        self.bytes_written.fetch_add(bytes, Relaxed);
        let bucket = (63 - records.leading_zeros() as usize).min(GROUP_RECORDS_BUCKETS - 1);
        self.group_records[bucket].fetch_add(1, Relaxed);
    }

    /// Groups by size: entry `i` counts groups of `2^i ..= 2^(i+1) - 1` records.
    pub fn group_records_histogram(&self) -> [u64; GROUP_RECORDS_BUCKETS] {
        std::array::from_fn(|bucket| self.group_records[bucket].load(Relaxed))
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            fsyncs: self.fsyncs.load(Relaxed),
            records_written: self.records_written.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            groups: self.groups.load(Relaxed),
            fsync_latency_ns_sum: self.fsync_latency_ns_sum.load(Relaxed),
            fsync_latency_ns_max: self.fsync_latency_ns_max.load(Relaxed),
            group_records_histogram: self.group_records_histogram(),
        }
    }
}
