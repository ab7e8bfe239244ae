//! Reading the server's counters out of `GET /metrics` (Prometheus text):
//! the WAL's, the requests', the history indexes' block reads and the bank
//! work waiting in the log.

use crate::client::{Conn, Endpoint};
use serde::Serialize;

pub const FSYNCS: &str = "fundledger_wal_fsyncs_total";
pub const RECORDS: &str = "fundledger_wal_records_total";
/// The fdatasync latency histogram's buckets, and the one the report reads:
/// fdatasyncs faster than 2,048 µs (issue 5's `single` p99 target is 2 ms,
/// and a request waits at least one fdatasync).
pub const FSYNC_LATENCY_BUCKET: &str = "fundledger_wal_fsync_latency_seconds_bucket";
pub const FSYNC_FAST_LE: &str = "0.002048";
/// The server's request time histogram, and its 2 ms bucket.
pub const REQUEST_SECONDS_COUNT: &str = "fundledger_http_request_seconds_count";
pub const REQUEST_SECONDS_BUCKET: &str = "fundledger_http_request_seconds_bucket";
pub const REQUEST_FAST_LE: &str = "0.002";
/// Data blocks the on-disk indexes read for lookups (for new client ids
/// and bank references: their filters' false positives).
pub const INDEX_BLOCK_READS: &str = "fundledger_index_block_reads_total";
/// Bank instructions waiting in the log for room in the outbox's queue
/// (the bank is behind the ledger): a gauge.
pub const BANK_DEFERRED: &str = "fundledger_bank_work_deferred";

/// The server's WAL and request counters at one moment; `None` where the
/// server does not export one.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerCounters {
    pub fsyncs: Option<f64>,
    pub records: Option<f64>,
    /// Fdatasyncs under [`FSYNC_FAST_LE`] seconds.
    pub fast_fsyncs: Option<f64>,
    /// Requests the server answered, and those it answered within
    /// [`REQUEST_FAST_LE`] seconds (its own time, from the request's first
    /// middleware to its response).
    pub requests: Option<f64>,
    pub fast_requests: Option<f64>,
    pub index_block_reads: Option<f64>,
    pub bank_deferred: Option<f64>,
}

/// The sum over every label set of one metric, or `None` if it is absent.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let value_part = if let Some(labels) = rest.strip_prefix('{') {
            match labels.split_once('}') {
                Some((_, after)) => after,
                None => continue,
            }
        } else if rest.starts_with(' ') || rest.starts_with('\t') {
            rest
        } else {
            continue; // a longer metric name sharing the prefix
        };
        let value = value_part.split_whitespace().next().and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// The sum over every label set of `name{..., le="<le>"}` (one bucket of a
/// histogram, over all its other labels), or `None` if there is none.
pub fn bucket_sum(text: &str, name: &str, le: &str) -> Option<f64> {
    let bound = format!("le=\"{le}\"}}");
    let mut found = None;
    for line in text.lines().map(str::trim) {
        let Some(labels) = line.strip_prefix(name).and_then(|rest| rest.strip_prefix('{')) else { continue };
        let Some((_, value)) = labels.split_once(bound.as_str()) else { continue };
        if let Some(value) = value.split_whitespace().next().and_then(|value| value.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += value;
        }
    }
    found
}

/// Reads the counters on a fresh connection (a kept one may have been
/// closed by the server while idle during the run).
pub async fn read_server_counters(endpoint: &Endpoint) -> ServerCounters {
    let mut conn = Conn::new(endpoint.clone());
    match conn.get("/metrics", None).await {
        Ok(answer) if answer.status.is_success() => {
            let text = String::from_utf8_lossy(&answer.body);
            ServerCounters {
                fsyncs: metric_sum(&text, FSYNCS),
                records: metric_sum(&text, RECORDS),
                fast_fsyncs: bucket_sum(&text, FSYNC_LATENCY_BUCKET, FSYNC_FAST_LE),
                requests: metric_sum(&text, REQUEST_SECONDS_COUNT),
                fast_requests: bucket_sum(&text, REQUEST_SECONDS_BUCKET, REQUEST_FAST_LE),
                index_block_reads: metric_sum(&text, INDEX_BLOCK_READS),
                bank_deferred: metric_sum(&text, BANK_DEFERRED),
            }
        }
        _ => ServerCounters::default(),
    }
}

/// What the WAL did during a measured interval.
#[derive(Clone, Debug, Serialize)]
pub struct WalReport {
    pub fsyncs: Option<u64>,
    pub records: Option<u64>,
    pub fsyncs_per_s: Option<f64>,
    /// Records per fsync: Δrecords / Δfsyncs.
    pub mean_group_size: Option<f64>,
    /// Fdatasyncs that took 2,048 µs or more (the server's latency histogram).
    pub slow_fsyncs: Option<u64>,
    /// Requests that took the server more than 2 ms (by its own clock; the
    /// rest of a slow request's time was spent outside its handlers).
    pub slow_server_requests: Option<u64>,
    /// Blocks the history indexes read for lookups during the interval.
    pub index_block_reads: Option<u64>,
    /// Bank instructions waiting in the log at its end (mirrored at the
    /// bank after the run: the ledger never waits for the bank).
    pub bank_deferred_at_end: Option<u64>,
}

pub fn wal_report(before: ServerCounters, after: ServerCounters, seconds: f64) -> WalReport {
    let delta = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b >= a => Some((b - a).round() as u64),
        _ => None,
    };
    let fsyncs = delta(before.fsyncs, after.fsyncs);
    let records = delta(before.records, after.records);
    let over = |all: Option<u64>, fast: Option<u64>| match (all, fast) {
        (Some(all), Some(fast)) if all >= fast => Some(all - fast),
        _ => None,
    };
    WalReport {
        slow_fsyncs: over(fsyncs, delta(before.fast_fsyncs, after.fast_fsyncs)),
        slow_server_requests: over(
            delta(before.requests, after.requests),
            delta(before.fast_requests, after.fast_requests),
        ),
        index_block_reads: delta(before.index_block_reads, after.index_block_reads),
        bank_deferred_at_end: after.bank_deferred.map(|deferred| deferred.round() as u64),
        fsyncs,
        records,
        fsyncs_per_s: fsyncs.filter(|_| seconds > 0.0).map(|f| f as f64 / seconds),
        mean_group_size: match (records, fsyncs) {
            (Some(r), Some(f)) if f > 0 => Some(r as f64 / f as f64),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_label_sets_and_ignores_prefixes() {
        let text = "# HELP fundledger_wal_fsyncs_total fsyncs\n\
                    # TYPE fundledger_wal_fsyncs_total counter\n\
                    fundledger_wal_fsyncs_total 10\n\
                    fundledger_wal_fsyncs_total_seconds 99\n\
                    fundledger_wal_records_total{segment=\"a\"} 30\n\
                    fundledger_wal_records_total{segment=\"b\"} 12\n";
        assert_eq!(metric_sum(text, FSYNCS), Some(10.0));
        assert_eq!(metric_sum(text, RECORDS), Some(42.0));
        assert_eq!(metric_sum(text, "missing_total"), None);
        let buckets = "fundledger_wal_fsync_latency_seconds_bucket{le=\"0.001024\"} 7\n\
                       fundledger_wal_fsync_latency_seconds_bucket{le=\"0.002048\"} 9\n";
        assert_eq!(bucket_sum(buckets, FSYNC_LATENCY_BUCKET, FSYNC_FAST_LE), Some(9.0));
        assert_eq!(bucket_sum(buckets, FSYNC_LATENCY_BUCKET, "0.004096"), None);
        let requests = "fundledger_http_request_seconds_bucket{route=\"/a\",method=\"POST\",le=\"0.002\"} 5\n\
                        fundledger_http_request_seconds_bucket{route=\"/a\",method=\"POST\",le=\"0.0002\"} 1\n\
                        fundledger_http_request_seconds_bucket{route=\"/b\",method=\"GET\",le=\"0.002\"} 2\n";
        assert_eq!(bucket_sum(requests, REQUEST_SECONDS_BUCKET, REQUEST_FAST_LE), Some(7.0));
        let before = ServerCounters {
            fsyncs: Some(10.0),
            records: Some(42.0),
            fast_fsyncs: Some(9.0),
            requests: Some(100.0),
            fast_requests: Some(99.0),
            index_block_reads: Some(1_000.0),
            bank_deferred: Some(5.0),
        };
        let after = ServerCounters {
            fsyncs: Some(20.0),
            records: Some(142.0),
            fast_fsyncs: Some(16.0),
            requests: Some(200.0),
            fast_requests: Some(195.0),
            index_block_reads: Some(1_250.0),
            bank_deferred: Some(70.0),
        };
        let report = wal_report(before, after, 2.0);
        assert_eq!(report.fsyncs, Some(10));
        assert_eq!(report.fsyncs_per_s, Some(5.0));
        assert_eq!(report.mean_group_size, Some(10.0));
        assert_eq!(report.slow_fsyncs, Some(3));
        assert_eq!(report.slow_server_requests, Some(4));
        assert_eq!(report.index_block_reads, Some(250));
        assert_eq!(report.bank_deferred_at_end, Some(70), "a gauge: its value at the end");
        assert_eq!(
            metric_sum("fundledger_bank_work_deferred_total 9\nfundledger_bank_work_deferred 3\n", BANK_DEFERRED),
            Some(3.0)
        );
        let missing = wal_report(ServerCounters::default(), after, 2.0);
        assert_eq!(missing.mean_group_size, None);
        assert_eq!(missing.slow_fsyncs, None);
    }
}
