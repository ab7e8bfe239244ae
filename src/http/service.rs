//! `/healthz`, `/readyz`, `/metrics`: for operators and load balancers, no
//! token. `/readyz` is 503 while recovering and once the log failed or the
//! disk is below its floor.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use fundledger_wal::{Health, Wal};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

/// What the service endpoints read: the metrics recorder and, once
/// recovery is done, the log.
#[derive(Clone)]
pub struct MetricsHandle {
    pub prometheus: PrometheusHandle,
    pub wal: Arc<OnceLock<Wal>>,
}

pub fn router(handle: MetricsHandle) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(handle)
}

async fn readyz(State(handle): State<MetricsHandle>) -> Response {
    let Some(wal) = handle.wal.get() else {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "recovering"}))).into_response();
    };
    match wal.health() {
        Health::Healthy => Json(json!({"status": "ready", "lsn": wal.durable_lsn()})).into_response(),
        Health::DiskLow => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "disk_low"}))).into_response(),
        Health::Failed(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "log_unavailable"}))).into_response()
        }
    }
}

/// The WAL's fdatasync latencies as a Prometheus histogram's cumulative
/// buckets, `fundledger_wal_fsync_latency_seconds_bucket{le}`, with bounds
/// at powers of two of microseconds (`le="0.002048"`: faster than 2,048 µs).
fn export_fsync_latency(histogram: &[u64; fundledger_wal::stats::FSYNC_LATENCY_BUCKETS]) {
    let mut cumulative = 0;
    for (bucket, count) in histogram.iter().enumerate() {
        cumulative += count;
        let le = if bucket + 1 == histogram.len() {
            "+Inf".to_string()
        } else {
            format!("{}", (1u64 << (bucket + 1)) as f64 / 1e6)
        };
        metrics::counter!("fundledger_wal_fsync_latency_seconds_bucket", "le" => le).absolute(cumulative);
    }
    metrics::counter!("fundledger_wal_fsync_latency_seconds_count").absolute(cumulative);
}

async fn metrics(State(handle): State<MetricsHandle>) -> Response {
    if let Some(wal) = handle.wal.get() {
        let stats = wal.stats().snapshot();
        metrics::counter!("fundledger_wal_fsyncs_total").absolute(stats.fsyncs);
        metrics::counter!("fundledger_wal_records_total").absolute(stats.records_written);
        metrics::counter!("fundledger_wal_bytes_total").absolute(stats.bytes_written);
        metrics::counter!("fundledger_wal_groups_total").absolute(stats.groups);
        metrics::gauge!("fundledger_wal_fsync_seconds_max").set(stats.fsync_latency_ns_max as f64 / 1e9);
        let mean_ns = stats.fsync_latency_ns_sum.checked_div(stats.fsyncs).unwrap_or(0);
        metrics::gauge!("fundledger_wal_fsync_seconds_mean").set(mean_ns as f64 / 1e9);
        export_fsync_latency(&stats.fsync_latency_histogram);
        let mean_group = stats.records_written.checked_div(stats.groups).unwrap_or(0);
        metrics::gauge!("fundledger_wal_group_records_mean").set(mean_group as f64);
        metrics::gauge!("fundledger_wal_durable_lsn").set(wal.durable_lsn() as f64);
    }
    // The on-disk indexes' largest runs check some lookups against their
    // filters' lines on disk: how often, and how often those lines no
    // longer matched memory (a file changed under the server).
    let (filter_reads, filter_mismatches) = fundledger_index::filter_disk_reads();
    metrics::counter!("fundledger_index_filter_disk_reads_total").absolute(filter_reads);
    metrics::counter!("fundledger_index_filter_disk_mismatches_total").absolute(filter_mismatches);
    // Blocks the same indexes read to answer lookups and pages (merges not
    // counted): for new client ids and bank references, filters' false
    // positives.
    metrics::counter!("fundledger_index_block_reads_total").absolute(fundledger_index::range_block_reads());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.prometheus.render()).into_response()
}
