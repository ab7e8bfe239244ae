//! `history`: issue 5, target 7. Memory grows with accounts and open holds,
//! not with history: after 100,000,000 transfers the server's RSS is within
//! 2x of its RSS after 1,000,000, while old history still answers (from
//! disk).
//!
//! Onboards and funds `--accounts` accounts, writes `--baseline-transfers`
//! in batches, lets the server settle and reads its RSS; writes the rest in
//! chunks of `--sample-every` (one RSS sample and progress line each),
//! settles and reads the RSS again. Then the very first transfer written
//! must still answer: `GET /v1/transfers/{id}`, an idempotent retry of the
//! same body (same `lsn`), and its entry in the payer's journal, paged from
//! the start.
//!
//! Every chunk is written under its own run tag (`{run}c{chunk}`, and
//! `{run}c{chunk}r` for a last batch shorter than `--batch-size`), because
//! the runner numbers jobs from 0 on every call: ids never repeat.

use crate::bench::ServerArgs;
use crate::client::{Bearer, Conn, Endpoint};
use crate::metrics::metric_sum;
use crate::runner::{self, RunSpec};
use crate::server::{Server, Tokens};
use crate::setup::{onboard_many, send_retrying};
use crate::util::{cores, cpu_model, dir_bytes, free_bytes, load_average, query_escape, run_tag, thousands};
use crate::workload::{Scenario, Workload, BATCH_SIZE_MAX};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use hyper::Method;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Data each transfer leaves on disk, roughly: WAL ~150 bytes, history
/// index ~160, the sandbox bank's books ~240 (for the free-space warning).
const DATA_BYTES_PER_TRANSFER: u64 = 550;
/// Deposit into each account: far more than the run can spend
/// (100,000,000 transfers of 0.01 over 10,000 accounts is 100.00 each).
const FUND_CENTS: i64 = 1_000_000 * 100;
/// Connections used to onboard the accounts.
const SETUP_CONNECTIONS: usize = 64;
/// Journal paging while looking for the old transfer's entry.
const JOURNAL_PAGE_LIMIT: u32 = 1000;
const JOURNAL_PAGES_MAX: u32 = 1000;
/// The scale target 7 is stated at.
const TARGET_TRANSFERS: u64 = 100_000_000;
const TARGET_BASELINE: u64 = 1_000_000;
const TARGET_RATIO: f64 = 2.0;
const MIB: f64 = 1048576.0;

#[derive(Args, Clone, Debug)]
pub struct HistoryArgs {
    /// Transfers to write in all.
    #[arg(long, default_value_t = 100_000_000)]
    pub transfers: u64,
    /// The server's RSS is read (after --settle-s) once this many are written.
    #[arg(long, default_value_t = 1_000_000)]
    pub baseline_transfers: u64,
    /// Accounts to move money between.
    #[arg(long, default_value_t = 10_000)]
    pub accounts: u64,
    /// Transfers per POST /v1/transfers/batch.
    #[arg(long, default_value_t = 8190)]
    pub batch_size: usize,
    /// Concurrent connections while writing (closed loop).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// One RSS sample and progress line per this many transfers (chunks end
    /// at its multiples, and at the baseline).
    #[arg(long, default_value_t = 10_000_000)]
    pub sample_every: u64,
    /// Seconds to wait after the baseline and after the end before reading
    /// the RSS, so that background indexing (and the bank side) catch up.
    #[arg(long, default_value_t = 10)]
    pub settle_s: u64,
    /// Before each settle, wait up to this many seconds for the bank side to
    /// catch up (no instruction enqueued and unanswered, none waiting in the
    /// log), so that the baseline and the end are read in the same state: a
    /// bank far behind keeps its full queue, and the work of reading it
    /// back from the log, in memory. 0: do not wait.
    #[arg(long, default_value_t = 0)]
    pub bank_drain_s: u64,
    /// wal.checkpoint_every_records of the spawned server.
    #[arg(long, default_value_t = 1_000_000)]
    pub checkpoint_every_records: u64,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// The server after one chunk (RSS read at once, not settled).
#[derive(Clone, Debug, Serialize)]
struct Sample {
    /// Transfers accepted so far.
    transfers: u64,
    /// Seconds since the first transfer was sent.
    seconds: f64,
    chunk_transfers: u64,
    chunk_seconds: f64,
    chunk_transfers_per_s: f64,
    rss_bytes: Option<u64>,
    data_bytes: u64,
    #[serde(flatten)]
    gauges: Gauges,
    /// Errors so far (every kind, `not_sent` included).
    errors: u64,
}

/// One check of old history: what was asked, how long it took.
#[derive(Clone, Debug, Serialize)]
struct Check {
    name: &'static str,
    ms: f64,
    detail: String,
}

#[derive(Serialize)]
struct HistoryReport {
    transfers_planned: u64,
    transfers_written: u64,
    write_seconds: f64,
    transfers_per_s: f64,
    /// From the first transfer to the end sample, settling included.
    wall_seconds: f64,
    errors: BTreeMap<String, u64>,
    errors_total: u64,
    baseline_transfers: u64,
    rss_bytes_baseline: Option<u64>,
    rss_bytes_end: Option<u64>,
    rss_ratio_end_to_baseline: Option<f64>,
    /// Seconds waited for the bank side before settling (`--bank-drain-s`),
    /// at the baseline and at the end, and whether it caught up each time.
    bank_drain_s: u64,
    bank_drain_baseline: Option<Drain>,
    bank_drain_end: Option<Drain>,
    /// The highest RSS read at a sample (right after its chunk, without
    /// settling: it includes work in flight, and a checkpoint being
    /// folded), and after how many transfers.
    rss_bytes_sample_max: Option<(u64, u64)>,
    target_ratio_max: f64,
    target_met: Option<bool>,
    /// Whether the run was at target 7's scale (100 M after 1 M).
    at_target_scale: bool,
    samples: Vec<Sample>,
    data_bytes_end: u64,
    data_bytes_per_transfer: Option<f64>,
    gauges_baseline: Gauges,
    gauges_end: Gauges,
    old_transfer_id: String,
    old_transfer_lsn: Option<u64>,
    checks: Vec<Check>,
    /// Why a check failed (the run fails with it).
    check_error: Option<String>,
    server_exit_clean: Option<bool>,
    accounts: u64,
    batch_size: usize,
    connections: usize,
    settle_s: u64,
    checkpoint_every_records: u64,
    history_memory_records: Option<u64>,
    cpu_model: String,
    cores: usize,
    generator_threads: usize,
    load_average_before: Option<f64>,
    command: String,
}

fn validate(args: &HistoryArgs) -> Result<()> {
    if args.baseline_transfers == 0 {
        bail!("--baseline-transfers must be at least 1");
    }
    if args.transfers < args.baseline_transfers {
        bail!("--transfers ({}) must be at least --baseline-transfers ({})", args.transfers, args.baseline_transfers);
    }
    if args.accounts < 2 {
        bail!("--accounts must be at least 2 for transfers");
    }
    if args.batch_size == 0 || args.batch_size > BATCH_SIZE_MAX {
        bail!("--batch-size must be 1 to {BATCH_SIZE_MAX}");
    }
    if args.sample_every == 0 {
        bail!("--sample-every must be at least 1");
    }
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    Ok(())
}

/// Where the chunks end (cumulative transfer counts, increasing, the last
/// one `transfers`): at `baseline`, at every multiple of `every`, and at
/// the end. Needs `1 <= baseline <= transfers` and `every >= 1`.
fn chunk_ends(transfers: u64, baseline: u64, every: u64) -> Vec<u64> {
    let mut ends = Vec::new();
    let mut at = 0;
    while at < transfers {
        let next_multiple = (at / every).saturating_add(1).saturating_mul(every);
        let mut end = next_multiple.min(transfers);
        if at < baseline {
            end = end.min(baseline);
        }
        ends.push(end);
        at = end;
    }
    ends
}

/// A run tag's worth of one chunk: `jobs` batches of `batch` transfers.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Part {
    tag: String,
    batch: usize,
    jobs: u64,
}

/// A chunk of `size` transfers as whole batches under `{run}c{chunk_no}`,
/// then the rest as one shorter batch under `{run}c{chunk_no}r`.
fn chunk_parts(run: &str, chunk_no: usize, size: u64, batch_size: usize) -> Vec<Part> {
    let batch = batch_size as u64;
    let mut parts = Vec::new();
    if size / batch > 0 {
        parts.push(Part { tag: format!("{run}c{chunk_no}"), batch: batch_size, jobs: size / batch });
    }
    if size % batch > 0 {
        parts.push(Part { tag: format!("{run}c{chunk_no}r"), batch: (size % batch) as usize, jobs: 1 });
    }
    parts
}

/// What one chunk did.
#[derive(Default)]
struct ChunkResult {
    accepted: u64,
    errors: BTreeMap<String, u64>,
    elapsed: Duration,
}

impl ChunkResult {
    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The first transfer written: its id, its body, its payer.
struct OldTransfer {
    id: String,
    body: String,
    payer: String,
}

impl OldTransfer {
    fn of(workload: &Workload) -> Result<Self> {
        let body = workload.transfer_body(0);
        let value: Value = serde_json::from_str(&body).context("the workload's transfer body")?;
        let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
        let id = text("id").context("transfer body without id")?;
        let payer = text("payer").context("transfer body without payer")?;
        Ok(Self { id, body, payer })
    }
}

struct Writer {
    endpoint: Endpoint,
    tokens: Tokens,
    accounts: Arc<[Box<str>]>,
    run: String,
    batch_size: usize,
    connections: usize,
    chunks: usize,
}

impl Writer {
    /// Writes chunk `chunk_no` (from 1) of `size` transfers; the first
    /// part's workload comes back too (its transfer 0 is the old id when
    /// this is the first chunk).
    async fn chunk(&self, chunk_no: usize, size: u64) -> Result<(ChunkResult, Option<Arc<Workload>>)> {
        let mut result = ChunkResult::default();
        let mut first = None;
        for part in chunk_parts(&self.run, chunk_no, size, self.batch_size) {
            let workload =
                Arc::new(Workload::new(Scenario::Batch, self.accounts.clone(), &part.tag, part.batch, "0.01"));
            first.get_or_insert_with(|| workload.clone());
            let run = runner::run(RunSpec {
                label: format!("history {chunk_no}/{}", self.chunks),
                endpoint: self.endpoint.clone(),
                tokens: self.tokens.clone(),
                workload,
                connections: self.connections,
                rate: None,
                duration: None,
                jobs_max: part.jobs,
                run_tag: part.tag.clone(),
            })
            .await?;
            result.accepted += run.accepted;
            result.elapsed += run.elapsed;
            for (key, n) in run.errors {
                *result.errors.entry(key).or_insert(0) += n;
            }
            if run.not_sent > 0 {
                *result.errors.entry("not sent (runner deadline)".to_string()).or_insert(0) += run.not_sent;
            }
        }
        Ok((result, first))
    }
}

/// Bank instructions enqueued and not yet answered, from `/metrics`.
/// What the server's `/metrics` says about where memory may go with
/// history: the bank side's backlog, and what the on-disk indexes keep in
/// memory (Bloom filters, sparse indexes).
#[derive(Clone, Copy, Debug, Default, Serialize)]
struct Gauges {
    /// Bank instructions enqueued and not yet answered.
    bank_backlog: Option<u64>,
    /// Instructions past the outbox's bound, waiting in the log now
    /// (`fundledger_bank_work_deferred`).
    bank_deferred: Option<u64>,
    /// `fundledger_history_archive_memory_bytes`.
    history_index_bytes: Option<u64>,
    /// `fundledger_sandbox_reference_memory_bytes`, every sandbox bank.
    sandbox_index_bytes: Option<u64>,
}

async fn gauges(endpoint: &Endpoint) -> Gauges {
    let mut conn = Conn::new(endpoint.clone());
    let Ok(answer) = conn.get("/metrics", None).await else { return Gauges::default() };
    if !answer.status.is_success() {
        return Gauges::default();
    }
    let text = String::from_utf8_lossy(&answer.body);
    let read = |name: &str| metric_sum(&text, name).map(|value| value.max(0.0) as u64);
    let backlog = match (read("fundledger_bank_work_enqueued_total"), read("fundledger_bank_work_answered_total")) {
        (Some(enqueued), Some(answered)) => Some(enqueued.saturating_sub(answered)),
        _ => None,
    };
    Gauges {
        bank_backlog: backlog,
        bank_deferred: read("fundledger_bank_work_deferred"),
        history_index_bytes: read("fundledger_history_archive_memory_bytes"),
        sandbox_index_bytes: read("fundledger_sandbox_reference_memory_bytes"),
    }
}

/// The column names of [`sample_row`].
fn sample_header() -> String {
    format!(
        "{:>15} {:>9} {:>10} {:>10} {:>11} {:>13} {:>13} {:>10} {:>10} {:>9}",
        "transfers",
        "seconds",
        "chunk /s",
        "RSS MiB",
        "data MiB",
        "bank backlog",
        "deferred",
        "index MiB",
        "sandbox",
        "errors"
    )
}

/// One sample as a table row: the progress line and the report's table.
fn sample_row(sample: &Sample) -> String {
    let mib_column =
        |bytes: Option<u64>| bytes.map(|b| format!("{:.1}", b as f64 / MIB)).unwrap_or_else(|| "n/a".into());
    format!(
        "{:>15} {:>9.1} {:>10} {:>10} {:>11.1} {:>13} {:>13} {:>10} {:>10} {:>9}",
        thousands(sample.transfers),
        sample.seconds,
        thousands(sample.chunk_transfers_per_s as u64),
        mib_column(sample.rss_bytes),
        sample.data_bytes as f64 / MIB,
        count(sample.gauges.bank_backlog),
        count(sample.gauges.bank_deferred),
        mib_column(sample.gauges.history_index_bytes),
        mib_column(sample.gauges.sandbox_index_bytes),
        thousands(sample.errors)
    )
}

fn count(value: Option<u64>) -> String {
    value.map(thousands).unwrap_or_else(|| "n/a".to_string())
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map(|b| format!("{:.1} MiB", b as f64 / MIB)).unwrap_or_else(|| "n/a".to_string())
}

fn error_text(errors: &BTreeMap<String, u64>) -> String {
    if errors.is_empty() {
        return "none".to_string();
    }
    errors.iter().map(|(key, n)| format!("{key}: {}", thousands(*n))).collect::<Vec<_>>().join(", ")
}

/// How long the bank side took to catch up (`--bank-drain-s`).
#[derive(Clone, Copy, Debug, Serialize)]
struct Drain {
    seconds: f64,
    caught_up: bool,
}

/// Waits up to `limit_s` seconds until the bank side has nothing enqueued
/// and unanswered and nothing waiting in the log (polled once a second).
async fn drain_bank(endpoint: &Endpoint, limit_s: u64, what: &str) -> Option<Drain> {
    if limit_s == 0 {
        return None;
    }
    eprintln!("history: waiting up to {limit_s} s for the bank side to catch up {what}");
    let started = Instant::now();
    loop {
        let now = gauges(endpoint).await;
        let caught_up = now.bank_backlog == Some(0) && now.bank_deferred.unwrap_or(0) == 0;
        let seconds = started.elapsed().as_secs_f64();
        if caught_up || seconds >= limit_s as f64 {
            eprintln!(
                "history: bank side {} after {seconds:.0} s (backlog {}, waiting in the log {})",
                if caught_up { "caught up" } else { "NOT caught up" },
                count(now.bank_backlog),
                count(now.bank_deferred)
            );
            return Some(Drain { seconds, caught_up });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn settle(seconds: u64, what: &str) {
    if seconds > 0 {
        eprintln!("history: settling {seconds} s {what}");
        tokio::time::sleep(Duration::from_secs(seconds)).await;
    }
}

pub async fn history(args: HistoryArgs, threads: usize) -> Result<()> {
    validate(&args)?;
    let launch = args.server.launch();
    let work = args.server.work_dir(args.checkpoint_every_records)?;
    let needed = args.transfers.saturating_mul(DATA_BYTES_PER_TRANSFER);
    if let Some(free) = free_bytes(&work.data_dir()) {
        if free < needed {
            eprintln!(
                "warning: {} transfers need about {:.1} GiB of data ({DATA_BYTES_PER_TRANSFER} bytes each) and {} \
                 has {:.1} GiB free (--work-parent DIR puts the data elsewhere)",
                thousands(args.transfers),
                needed as f64 / (MIB * 1024.0),
                work.data_dir().display(),
                free as f64 / (MIB * 1024.0)
            );
        }
    }
    let tokens = Tokens::dev()?;
    let run = run_tag();
    let mut server = Server::start(&launch, &work).await?;
    eprintln!("fundledger pid {} on {} (data in {})", server.pid, server.endpoint.addr, work.data_dir().display());
    let accounts = onboard_many(&server.endpoint, &tokens, &run, args.accounts, SETUP_CONNECTIONS, FUND_CENTS).await?;
    let ids: Arc<[Box<str>]> = accounts.into_iter().map(|a| a.id).collect();

    let ends = chunk_ends(args.transfers, args.baseline_transfers, args.sample_every);
    let writer = Writer {
        endpoint: server.endpoint.clone(),
        tokens: tokens.clone(),
        accounts: ids,
        run: run.clone(),
        batch_size: args.batch_size,
        connections: args.connections,
        chunks: ends.len(),
    };
    let load_average_before = load_average();
    let started = Instant::now();
    let mut old = None;
    let (mut written, mut write_seconds) = (0u64, 0f64);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut samples = Vec::with_capacity(ends.len());
    let (mut rss_baseline, mut baseline_written) = (None, 0);
    let mut gauges_baseline = Gauges::default();
    let mut bank_drain_baseline = None;
    let mut planned_so_far = 0;
    for (i, &end) in ends.iter().enumerate() {
        let chunk_no = i + 1;
        let size = end - planned_so_far;
        planned_so_far = end;
        let (chunk, first) = writer.chunk(chunk_no, size).await?;
        if old.is_none() {
            let workload = first.context("the first chunk wrote nothing")?;
            old = Some(OldTransfer::of(&workload)?);
        }
        server.check_alive().with_context(|| format!("after chunk {chunk_no} ({} transfers)", thousands(end)))?;
        written += chunk.accepted;
        write_seconds += chunk.elapsed.as_secs_f64();
        for (key, n) in &chunk.errors {
            *errors.entry(key.clone()).or_insert(0) += n;
        }
        let sample = Sample {
            transfers: written,
            seconds: started.elapsed().as_secs_f64(),
            chunk_transfers: chunk.accepted,
            chunk_seconds: chunk.elapsed.as_secs_f64(),
            chunk_transfers_per_s: chunk.accepted as f64 / chunk.elapsed.as_secs_f64().max(1e-9),
            rss_bytes: server.rss_bytes(),
            data_bytes: dir_bytes(&work.data_dir()),
            gauges: gauges(&server.endpoint).await,
            errors: errors.values().sum(),
        };
        eprintln!("history: chunk {chunk_no}/{}", ends.len());
        eprintln!("{}", sample_header());
        eprintln!(
            "{} (this chunk's errors: {})",
            sample_row(&sample),
            if chunk.error_count() == 0 { "none".to_string() } else { error_text(&chunk.errors) },
        );
        samples.push(sample);
        if end == args.baseline_transfers {
            bank_drain_baseline = drain_bank(&server.endpoint, args.bank_drain_s, "after the baseline").await;
            settle(args.settle_s, "after the baseline").await;
            rss_baseline = server.rss_bytes();
            gauges_baseline = gauges(&server.endpoint).await;
            baseline_written = written;
            eprintln!("history: baseline {} transfers, server RSS {}", thousands(written), mib(rss_baseline));
        }
    }
    let bank_drain_end = drain_bank(&server.endpoint, args.bank_drain_s, "after the last chunk").await;
    settle(args.settle_s, "after the last chunk").await;
    server.check_alive().context("after settling")?;
    let rss_end = server.rss_bytes();
    let wall_seconds = started.elapsed().as_secs_f64();
    let data_bytes_end = dir_bytes(&work.data_dir());
    let gauges_end = gauges(&server.endpoint).await;
    eprintln!("history: end {} transfers, server RSS {}", thousands(written), mib(rss_end));

    let old = old.context("no chunk was written")?;
    let mut checks = Vec::new();
    let mut old_lsn = None;
    let checked = check_old_history(&server.endpoint, &tokens, &old, &mut checks, &mut old_lsn).await;
    let server_exit_clean = match server.terminate(Duration::from_secs(300)).await {
        Ok(status) => Some(status.success()),
        Err(err) => {
            eprintln!("note: {err:#}");
            None
        }
    };

    let ratio = match (rss_baseline, rss_end) {
        (Some(a), Some(b)) if a > 0 => Some(b as f64 / a as f64),
        _ => None,
    };
    let report = HistoryReport {
        transfers_planned: args.transfers,
        transfers_written: written,
        write_seconds,
        transfers_per_s: written as f64 / write_seconds.max(1e-9),
        wall_seconds,
        errors_total: errors.values().sum(),
        errors,
        baseline_transfers: baseline_written,
        rss_bytes_baseline: rss_baseline,
        rss_bytes_end: rss_end,
        rss_ratio_end_to_baseline: ratio,
        bank_drain_s: args.bank_drain_s,
        bank_drain_baseline,
        bank_drain_end,
        rss_bytes_sample_max: samples
            .iter()
            .filter_map(|sample| sample.rss_bytes.map(|rss| (rss, sample.transfers)))
            .max_by_key(|&(rss, _)| rss),
        target_ratio_max: TARGET_RATIO,
        target_met: ratio.map(|r| r <= TARGET_RATIO),
        at_target_scale: args.transfers >= TARGET_TRANSFERS && args.baseline_transfers == TARGET_BASELINE,
        samples,
        data_bytes_end,
        data_bytes_per_transfer: (written > 0).then(|| data_bytes_end as f64 / written as f64),
        gauges_baseline,
        gauges_end,
        old_transfer_id: old.id.clone(),
        old_transfer_lsn: old_lsn,
        checks,
        check_error: checked.as_ref().err().map(|err| format!("{err:#}")),
        server_exit_clean,
        accounts: args.accounts,
        batch_size: args.batch_size,
        connections: args.connections,
        settle_s: args.settle_s,
        checkpoint_every_records: args.checkpoint_every_records,
        history_memory_records: args.server.history_memory_records,
        cpu_model: cpu_model(),
        cores: cores(),
        generator_threads: threads,
        load_average_before,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    print_report(&report, &old);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("write {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    checked.context("old history does not answer")
}

fn print_report(report: &HistoryReport, old: &OldTransfer) {
    println!(
        "wrote {} of {} transfers in {:.1} s ({} /s; {:.1} s with settling), {} accounts, batches of {}, errors {}",
        thousands(report.transfers_written),
        thousands(report.transfers_planned),
        report.write_seconds,
        thousands(report.transfers_per_s as u64),
        report.wall_seconds,
        thousands(report.accounts),
        report.batch_size,
        error_text(&report.errors)
    );
    println!(
        "server RSS after {} transfers: {}; after {}: {} (each after {} s of settling); end / baseline = {}",
        thousands(report.baseline_transfers),
        mib(report.rss_bytes_baseline),
        thousands(report.transfers_written),
        mib(report.rss_bytes_end),
        report.settle_s,
        report.rss_ratio_end_to_baseline.map(|r| format!("{r:.2}")).unwrap_or_else(|| "n/a".to_string())
    );
    for (when, drain) in [("baseline", report.bank_drain_baseline), ("end", report.bank_drain_end)] {
        if let Some(drain) = drain {
            println!(
                "before settling at the {when}, the bank side {} in {:.0} s (--bank-drain-s {})",
                if drain.caught_up { "caught up" } else { "had NOT caught up" },
                drain.seconds,
                report.bank_drain_s
            );
        }
    }
    if let Some((rss, transfers)) = report.rss_bytes_sample_max {
        println!(
            "highest RSS at a sample (right after a chunk, not settled): {} after {} transfers",
            mib(Some(rss)),
            thousands(transfers)
        );
    }
    let verdict = match report.target_met {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not measured (no RSS)",
    };
    println!(
        "target 7 (RSS at the end within {TARGET_RATIO}x of RSS after the baseline): {verdict}{}",
        if report.at_target_scale {
            String::new()
        } else {
            format!(
                " at this scale (the target is {} transfers after a baseline of {})",
                thousands(TARGET_TRANSFERS),
                thousands(TARGET_BASELINE)
            )
        }
    );
    for (when, gauges) in [("baseline", &report.gauges_baseline), ("end", &report.gauges_end)] {
        println!(
            "in memory at the {when}: history index {}, sandbox bank's reference index {}; \
             bank instructions waiting in the log {}",
            mib(gauges.history_index_bytes),
            mib(gauges.sandbox_index_bytes),
            count(gauges.bank_deferred)
        );
    }
    println!("{}", sample_header());
    for sample in &report.samples {
        println!("{}", sample_row(sample));
    }
    println!(
        "data at the end: {:.1} MiB ({} bytes per transfer written); bank backlog at the end {}",
        report.data_bytes_end as f64 / MIB,
        report.data_bytes_per_transfer.map(|b| format!("{b:.0}")).unwrap_or_else(|| "n/a".to_string()),
        count(report.gauges_end.bank_backlog)
    );
    println!(
        "old transfer {} (payer {}, lsn {}):",
        old.id,
        old.payer,
        report.old_transfer_lsn.map(thousands).unwrap_or_else(|| "?".to_string())
    );
    for check in &report.checks {
        println!("  {:<24} {:>9.1} ms  {}", check.name, check.ms, check.detail);
    }
    if let Some(err) = &report.check_error {
        println!("  FAILED: {err}");
    }
    println!(
        "server stopped{}",
        match report.server_exit_clean {
            Some(true) => " with exit 0",
            Some(false) => ", NOT a clean exit",
            None => " (did not exit within 300 s of SIGTERM; killed)",
        }
    );
    println!(
        "({} CPUs, {}; generator threads {}; load average before {})",
        report.cores,
        report.cpu_model,
        report.generator_threads,
        report.load_average_before.map(|l| format!("{l:.2}")).unwrap_or_else(|| "n/a".to_string())
    );
    println!("command: {}", report.command);
}

fn ms_since(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

/// The old transfer still answers: by id, to an idempotent retry, and in
/// its payer's journal. Each check is pushed to `checks` as it passes.
/// `GET path`, which must answer 200 with JSON; the JSON and the
/// milliseconds it took.
async fn get_ok(conn: &mut Conn, path: &str, auth: Option<&Bearer>) -> Result<(Value, f64)> {
    let started = Instant::now();
    let answer = send_retrying(conn, Method::GET, path, auth, None, None, true).await?;
    let ms = ms_since(started);
    if answer.status.as_u16() != 200 {
        bail!("GET {path} answered {}: {}", answer.status, answer.body_text());
    }
    Ok((answer.json()?, ms))
}

async fn check_old_history(
    endpoint: &Endpoint,
    tokens: &Tokens,
    old: &OldTransfer,
    checks: &mut Vec<Check>,
    old_lsn: &mut Option<u64>,
) -> Result<()> {
    let auth = Some(&tokens.platform);
    let mut conn = Conn::new(endpoint.clone());

    // a. GET /v1/transfers/{id}.
    let path = format!("/v1/transfers/{}", old.id);
    let (value, ms) = get_ok(&mut conn, &path, auth).await?;
    if value.get("id").and_then(Value::as_str) != Some(old.id.as_str()) {
        bail!("GET {path} answered another id: {value}");
    }
    let lsn = value.get("lsn").and_then(Value::as_u64).with_context(|| format!("GET {path} without lsn: {value}"))?;
    *old_lsn = Some(lsn);
    checks.push(Check { name: "get_transfer", ms, detail: format!("GET {path}: 200, lsn {lsn}") });

    // b. The same body again: the original answer, same lsn.
    let started = Instant::now();
    let body = Some(Bytes::from(old.body.clone()));
    let answer = send_retrying(&mut conn, Method::POST, "/v1/transfers", auth, None, body, true).await?;
    let ms = ms_since(started);
    let status = answer.status.as_u16();
    if !matches!(status, 200 | 201) {
        bail!("retry of {} (POST /v1/transfers) answered {}: {}", old.id, answer.status, answer.body_text());
    }
    let value = answer.json()?;
    let retry_lsn = value.get("lsn").and_then(Value::as_u64);
    if retry_lsn != Some(lsn) || value.get("id").and_then(Value::as_str) != Some(old.id.as_str()) {
        bail!("retry of {} answered lsn {retry_lsn:?}, not {lsn}: {value}", old.id);
    }
    checks.push(Check { name: "idempotent_retry", ms, detail: format!("POST /v1/transfers: {status}, same lsn") });

    // c. The payer's journal: its first entries, then paged to the old entry.
    let journal = format!("/v1/accounts/{}/journal", old.payer);
    let path = format!("{journal}?limit=5");
    let (value, ms) = get_ok(&mut conn, &path, auth).await?;
    let items = value.get("items").and_then(Value::as_array).with_context(|| format!("GET {path}: no items"))?;
    if items.is_empty() {
        bail!("GET {path}: no entries");
    }
    let first_kind = items[0].get("kind").and_then(Value::as_str).unwrap_or("?");
    if first_kind != "deposit" {
        bail!("GET {path}: the oldest entry is a {first_kind:?}, not the funding deposit: {}", items[0]);
    }
    checks.push(Check {
        name: "journal_first_page",
        ms,
        detail: format!("GET {path}: 200, {} entries, oldest the deposit", items.len()),
    });

    let started = Instant::now();
    let mut cursor: Option<String> = None;
    let mut read = 0u64;
    for page in 1..=JOURNAL_PAGES_MAX {
        let path = match &cursor {
            Some(c) => format!("{journal}?limit={JOURNAL_PAGE_LIMIT}&cursor={}", query_escape(c)),
            None => format!("{journal}?limit={JOURNAL_PAGE_LIMIT}"),
        };
        let (value, _) = get_ok(&mut conn, &path, auth).await?;
        let items = value.get("items").and_then(Value::as_array).with_context(|| format!("GET {path}: no items"))?;
        for item in items {
            read += 1;
            let entry_lsn = item.get("lsn").and_then(Value::as_u64).unwrap_or(0);
            if item.get("transfer_id").and_then(Value::as_str) == Some(old.id.as_str()) {
                let kind = item.get("kind").and_then(Value::as_str).unwrap_or("?");
                if entry_lsn != lsn || kind != "transfer_out" {
                    bail!(
                        "the journal of {} has {} as {kind:?} at lsn {entry_lsn}, not transfer_out at {lsn}: {item}",
                        old.payer,
                        old.id
                    );
                }
                checks.push(Check {
                    name: "journal_paged_to_entry",
                    ms: ms_since(started),
                    detail: format!(
                        "transfer_out at lsn {lsn} on page {page} (pages of {JOURNAL_PAGE_LIMIT}; {read} entries read)"
                    ),
                });
                return Ok(());
            }
            if entry_lsn > lsn {
                bail!("the journal of {} passed lsn {lsn} (at {entry_lsn}) without an entry for {}", old.payer, old.id);
            }
        }
        match value.get("next_cursor").and_then(Value::as_str) {
            Some(next) => cursor = Some(next.to_string()),
            None => bail!("the journal of {} ended ({read} entries) without an entry for {}", old.payer, old.id),
        }
    }
    bail!("no entry for {} in the first {JOURNAL_PAGES_MAX} pages of the journal of {}", old.id, old.payer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_end_at_the_baseline_and_at_multiples() {
        assert_eq!(chunk_ends(300_000, 100_000, 100_000), [100_000, 200_000, 300_000]);
        let ends = chunk_ends(100_000_000, 1_000_000, 10_000_000);
        assert_eq!(ends.len(), 11);
        assert_eq!(ends[..3], [1_000_000, 10_000_000, 20_000_000]);
        assert_eq!(ends.last(), Some(&100_000_000));
        // The baseline split by --sample-every, and a short last chunk.
        assert_eq!(chunk_ends(25, 7, 3), [3, 6, 7, 9, 12, 15, 18, 21, 24, 25]);
        assert_eq!(chunk_ends(5, 5, 10), [5]);
        assert_eq!(chunk_ends(1, 1, 1), [1]);
        assert_eq!(chunk_ends(10, 1, u64::MAX), [1, 10]);
        for (transfers, baseline, every) in [(1000, 1, 7), (1000, 999, 1000), (1001, 1000, 1000), (97, 13, 5)] {
            let ends = chunk_ends(transfers, baseline, every);
            assert!(ends.contains(&baseline), "{transfers} {baseline} {every}");
            assert_eq!(ends.last(), Some(&transfers));
            let mut at = 0;
            for &end in &ends {
                assert!(end > at && end - at <= every, "{ends:?}");
                assert!(end % every == 0 || end == baseline || end == transfers, "{ends:?}");
                at = end;
            }
        }
    }

    #[test]
    fn chunk_parts_cover_the_chunk_under_distinct_tags() {
        let parts = chunk_parts("r", 3, 20_000, 8190);
        assert_eq!(
            parts,
            [
                Part { tag: "rc3".to_string(), batch: 8190, jobs: 2 },
                Part { tag: "rc3r".to_string(), batch: 3620, jobs: 1 }
            ]
        );
        assert_eq!(chunk_parts("r", 1, 16_380, 8190), [Part { tag: "rc1".to_string(), batch: 8190, jobs: 2 }]);
        assert_eq!(chunk_parts("r", 1, 5, 8190), [Part { tag: "rc1r".to_string(), batch: 5, jobs: 1 }]);
        for (size, batch) in [(1, 1), (100_000, 8190), (8191, 8190), (7, 3)] {
            let sum: u64 = chunk_parts("r", 1, size, batch).iter().map(|p| p.batch as u64 * p.jobs).sum();
            assert_eq!(sum, size);
        }
    }
}
