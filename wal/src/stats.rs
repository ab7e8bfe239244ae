//! Counters of the writer thread, readable at any time without a lock.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Buckets of the records-per-group histogram: bucket `i` counts groups of
/// `2^i ..= 2^(i+1) - 1` records.
pub const GROUP_RECORDS_BUCKETS: usize = 32;

/// Buckets of the fsync latency histogram: bucket `i` counts fdatasyncs that
/// took `2^i ..= 2^(i+1) - 1` µs (bucket 0 also those under 1 µs, the last
/// one everything from `2^(FSYNC_LATENCY_BUCKETS - 1)` µs, about 8 s, on).
pub const FSYNC_LATENCY_BUCKETS: usize = 24;

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
    fsync_latency_us: [AtomicU64; FSYNC_LATENCY_BUCKETS],
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
    /// Entry `i`: fdatasyncs of `2^i ..= 2^(i+1) - 1` µs ([`FSYNC_LATENCY_BUCKETS`]).
    pub fsync_latency_histogram: [u64; FSYNC_LATENCY_BUCKETS],
}

impl WalStats {
    pub(crate) fn record_fsync(&self, latency: Duration) {
        let latency_ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.fsyncs.fetch_add(1, Relaxed);
        self.fsync_latency_ns_sum.fetch_add(latency_ns, Relaxed);
        self.fsync_latency_ns_max.fetch_max(latency_ns, Relaxed);
        self.fsync_latency_us[log2_bucket(latency_ns / 1_000, FSYNC_LATENCY_BUCKETS)].fetch_add(1, Relaxed);
    }

    pub(crate) fn record_group(&self, records: u64, bytes: u64) {
        assert!(records > 0, "a group holds at least one record");
        self.groups.fetch_add(1, Relaxed);
        self.records_written.fetch_add(records, Relaxed);
        self.bytes_written.fetch_add(bytes, Relaxed);
        self.group_records[log2_bucket(records, GROUP_RECORDS_BUCKETS)].fetch_add(1, Relaxed);
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
            fsync_latency_histogram: std::array::from_fn(|bucket| self.fsync_latency_us[bucket].load(Relaxed)),
        }
    }
}

/// The bucket of `value` in a histogram of `buckets` powers of two: `i`
/// for `2^i ..= 2^(i+1) - 1`, 0 for 0 too, the last for anything beyond.
fn log2_bucket(value: u64, buckets: usize) -> usize {
    (63usize.saturating_sub(value.leading_zeros() as usize)).min(buckets - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsyncs_fall_in_their_power_of_two_of_microseconds() {
        let stats = WalStats::default();
        for us in [0u64, 1, 2, 3, 150, 2_047, 2_048, 5_000, u64::MAX / 1_000] {
            stats.record_fsync(Duration::from_nanos(us.saturating_mul(1_000)));
        }
        let histogram = stats.snapshot().fsync_latency_histogram;
        assert_eq!(histogram[0], 2, "0 and 1 µs");
        assert_eq!(histogram[1], 2, "2 and 3 µs");
        assert_eq!(histogram[7], 1, "150 µs");
        assert_eq!(histogram[10], 1, "2,047 µs");
        assert_eq!(histogram[11], 1, "2,048 µs");
        assert_eq!(histogram[12], 1, "5 ms");
        assert_eq!(histogram[FSYNC_LATENCY_BUCKETS - 1], 1, "the longest");
        assert_eq!(histogram.iter().sum::<u64>(), stats.snapshot().fsyncs);
    }
}
