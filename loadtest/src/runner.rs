//! The load loop: `connections` workers, each with one keep-alive
//! connection, pulling job numbers from one atomic counter.
//!
//! Closed loop: a worker sends its next request as soon as the previous one
//! is answered. Open loop (`rate`): job `j` is due at `start + j / rate`; a
//! pacer thread releases each job at that time and a free worker sends it,
//! and its latency is measured from that intended time, not from when it
//! was actually sent. A server that stalls therefore shows its stall in
//! every request that should have been sent meanwhile (no coordinated
//! omission), as in wrk2.
//!
//! The pacer is a thread of its own, not a tokio timer: tokio's timer wheel
//! fires at the next whole millisecond, which added 0.5-1 ms to every
//! open-loop latency (an echo server with no work measured p50 1.2 ms);
//! `std::thread::sleep` wakes within the kernel's timer slack (50 µs).

use crate::client::{error_key, transport_key, Bearer, Conn, Endpoint};
use crate::server::Tokens;
use crate::setup::application_body;
use crate::util::thousands;
use crate::workload::{Request, Scenario, Workload};
use bytes::Bytes;
use hdrhistogram::Histogram;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Latencies above this (in µs) are clamped: one hour.
const LATENCY_US_MAX: u64 = 3_600_000_000;
/// How long a 429/503 makes a worker pause at most.
const BACKOFF_MAX: Duration = Duration::from_millis(100);
/// Open loop: jobs released by the pacer and not yet taken by a worker.
/// When the workers fall this far behind the pacer waits; the jobs it
/// releases late are still timed from when they were due.
const PACED_JOBS_QUEUED_MAX: usize = 4096;

pub struct RunSpec {
    pub label: String,
    pub endpoint: Endpoint,
    pub tokens: Tokens,
    pub workload: Arc<Workload>,
    pub connections: usize,
    /// Open loop at this many jobs (requests, or chains) per second.
    pub rate: Option<f64>,
    pub duration: Option<Duration>,
    /// Jobs to run at most.
    pub jobs_max: u64,
    /// Added to customer numbers in the onboarding scenario.
    pub run_tag: String,
}

/// Counters the progress line reads while the run goes on.
#[derive(Default)]
struct Live {
    requests: AtomicU64,
    accepted: AtomicU64,
    errors: AtomicU64,
    latency_us_sum: AtomicU64,
    /// The slowest request since the last progress line.
    latency_us_max: AtomicU64,
    /// Requests slower than [`SLOW_US`] since the last progress line.
    slow: AtomicU64,
}

/// What the progress line counts as slow: issue 5's `single` p99 target.
const SLOW_US: u64 = 2_000;

pub struct RunResult {
    pub hist: Histogram<u64>,
    pub errors: BTreeMap<String, u64>,
    pub requests: u64,
    pub accepted: u64,
    pub not_sent: u64,
    pub elapsed: Duration,
}

struct WorkerResult {
    hist: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    requests: u64,
    accepted: u64,
    not_sent: u64,
    finished: Instant,
}

fn new_histogram() -> Histogram<u64> {
    // 3 significant figures, 1 µs to one hour: fixed size, never reallocates.
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds")
}

/// Runs the load and returns what the workers saw.
pub async fn run(spec: RunSpec) -> anyhow::Result<RunResult> {
    let spec = Arc::new(spec);
    let live = Arc::new(Live::default());
    let start = Instant::now() + Duration::from_millis(20);
    // The progress lines count seconds from here; the wall clock lets them
    // be lined up with the server's log.
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        eprintln!("{} starts at unix time {:.3}", spec.label, now.as_secs_f64() + 0.020);
    }
    // A run stops by itself: closed loop at the duration, open loop when its
    // last request is due; late stragglers are abandoned after a grace period.
    let grace = Duration::from_secs(30);
    let hard_deadline = start + spec.duration.unwrap_or(Duration::from_secs(3600)) + grace;

    let jobs = match spec.rate {
        Some(rate) => Jobs::Paced(Arc::new(tokio::sync::Mutex::new(spawn_pacer(rate, start, spec.jobs_max)?))),
        None => Jobs::Counted(Arc::new(AtomicU64::new(0))),
    };
    let progress = tokio::spawn(progress_loop(spec.clone(), live.clone(), start));
    let mut tasks = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections.max(1) {
        tasks.push(tokio::spawn(worker(spec.clone(), live.clone(), jobs.clone(), start, hard_deadline)));
    }
    let mut hist = new_histogram();
    let mut errors = BTreeMap::new();
    let (mut requests, mut accepted, mut not_sent) = (0, 0, 0);
    let mut finished = start;
    for task in tasks {
        let result = task.await?;
        hist.add(&result.hist)?;
        for (key, count) in result.errors {
            *errors.entry(key).or_insert(0) += count;
        }
        requests += result.requests;
        accepted += result.accepted;
        not_sent += result.not_sent;
        finished = finished.max(result.finished);
    }
    progress.abort();
    Ok(RunResult { hist, errors, requests, accepted, not_sent, elapsed: finished.saturating_duration_since(start) })
}

async fn progress_loop(spec: Arc<RunSpec>, live: Arc<Live>, start: Instant) {
    tokio::time::sleep_until((start + Duration::from_secs(1)).into()).await;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let (mut last_requests, mut last_accepted, mut last_latency) = (0, 0, 0);
    loop {
        tick.tick().await;
        let requests = live.requests.load(Ordering::Relaxed);
        let accepted = live.accepted.load(Ordering::Relaxed);
        let latency = live.latency_us_sum.load(Ordering::Relaxed);
        let errors = live.errors.load(Ordering::Relaxed);
        let max_ms = live.latency_us_max.swap(0, Ordering::Relaxed) as f64 / 1000.0;
        let slow = live.slow.swap(0, Ordering::Relaxed);
        let delta_requests = requests - last_requests;
        let mean_ms =
            if delta_requests > 0 { (latency - last_latency) as f64 / delta_requests as f64 / 1000.0 } else { 0.0 };
        eprintln!(
            "{} {:>4.0}s  {:>9} req/s  {:>11} accepted/s  mean {:>8.2} ms  max {:>8.2} ms  over {} ms {:>7}  errors {}",
            spec.label,
            start.elapsed().as_secs_f64(),
            thousands(delta_requests),
            thousands(accepted - last_accepted),
            mean_ms,
            max_ms,
            SLOW_US / 1000,
            thousands(slow),
            thousands(errors),
        );
        (last_requests, last_accepted, last_latency) = (requests, accepted, latency);
    }
}

/// Where workers take their next job number from.
#[derive(Clone)]
enum Jobs {
    /// Closed loop: the next number, at once.
    Counted(Arc<AtomicU64>),
    /// Open loop: each number when it is due (from [`spawn_pacer`]).
    Paced(Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<u64>>>),
}

impl Jobs {
    /// The next job, or `None` when there are no more.
    async fn next(&self) -> Option<u64> {
        match self {
            Jobs::Counted(next) => Some(next.fetch_add(1, Ordering::Relaxed)),
            Jobs::Paced(released) => released.lock().await.recv().await,
        }
    }
}

/// Releases job `j` at `start + j / rate`, from a thread of its own (see the
/// module comment), until `jobs_max` or until every worker is gone.
fn spawn_pacer(rate: f64, start: Instant, jobs_max: u64) -> anyhow::Result<tokio::sync::mpsc::Receiver<u64>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(PACED_JOBS_QUEUED_MAX);
    std::thread::Builder::new().name("pacer".into()).spawn(move || {
        for job in 0..jobs_max {
            let due = start + Duration::from_secs_f64(job as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if sender.blocking_send(job).is_err() {
                return;
            }
        }
    })?;
    Ok(receiver)
}

async fn worker(
    spec: Arc<RunSpec>,
    live: Arc<Live>,
    jobs: Jobs,
    start: Instant,
    hard_deadline: Instant,
) -> WorkerResult {
    let mut conn = Conn::new(spec.endpoint.clone());
    let mut out = WorkerResult {
        hist: new_histogram(),
        errors: BTreeMap::new(),
        requests: 0,
        accepted: 0,
        not_sent: 0,
        finished: start,
    };
    let mut requests: Vec<Request> = Vec::new();
    let mut buffer = String::new();
    tokio::time::sleep_until(start.into()).await;
    loop {
        let Some(job) = jobs.next().await else { break };
        if job >= spec.jobs_max {
            break;
        }
        let intended = match spec.rate {
            // Released by the pacer at (or, when the workers lag, after) this time.
            Some(rate) => start + Duration::from_secs_f64(job as f64 / rate),
            None => Instant::now(),
        };
        if spec.rate.is_none() {
            if let Some(duration) = spec.duration {
                if intended >= start + duration {
                    break;
                }
            }
        }
        if Instant::now() >= hard_deadline {
            out.not_sent += 1;
            continue;
        }
        if spec.workload.scenario == Scenario::Onboarding {
            onboarding_job(&spec, &live, &mut conn, &mut out, job, intended).await;
        } else {
            spec.workload.build(job, &mut requests, &mut buffer);
            let mut first = true;
            for request in requests.drain(..) {
                // Open loop: the first request of a job is timed from when it
                // was due; later requests of a chain from when they are sent.
                let since = if first && spec.rate.is_some() { intended } else { Instant::now() };
                first = false;
                let ok = send_transfers(&spec.tokens.platform, &live, &mut conn, &mut out, request, since).await;
                if !ok {
                    break; // a chain stops at its first failure
                }
            }
        }
        out.finished = Instant::now();
    }
    out
}

fn record(live: &Live, out: &mut WorkerResult, since: Instant) {
    let us = since.elapsed().as_micros().min(u128::from(LATENCY_US_MAX)) as u64;
    out.hist.saturating_record(us.max(1));
    out.requests += 1;
    live.requests.fetch_add(1, Ordering::Relaxed);
    live.latency_us_sum.fetch_add(us, Ordering::Relaxed);
    live.latency_us_max.fetch_max(us, Ordering::Relaxed);
    if us > SLOW_US {
        live.slow.fetch_add(1, Ordering::Relaxed);
    }
}

fn count_error(live: &Live, out: &mut WorkerResult, key: String, n: u64) {
    *out.errors.entry(key).or_insert(0) += n;
    live.errors.fetch_add(n, Ordering::Relaxed);
}

fn accept(live: &Live, out: &mut WorkerResult, n: u64) {
    out.accepted += n;
    live.accepted.fetch_add(n, Ordering::Relaxed);
}

/// Sends one transfer request, records it; true when it was accepted whole.
async fn send_transfers(
    auth: &Bearer,
    live: &Live,
    conn: &mut Conn,
    out: &mut WorkerResult,
    request: Request,
    since: Instant,
) -> bool {
    let result = conn.post_typed(request.path, Some(auth), request.content_type, request.body).await;
    record(live, out, since);
    let answer = match result {
        Ok(answer) => answer,
        Err(err) => {
            count_error(live, out, transport_key(&err), 1);
            return false;
        }
    };
    let status = answer.status.as_u16();
    match (request.batch, status) {
        (false, 201) => {
            accept(live, out, 1);
            true
        }
        (true, 200) => {
            let (accepted, item_errors) = tally_batch(&answer.body, request.transfers);
            accept(live, out, accepted);
            let whole = item_errors.is_empty();
            for (key, n) in item_errors {
                count_error(live, out, key, n);
            }
            whole
        }
        _ => {
            count_error(live, out, answer.error_key(), 1);
            if matches!(status, 429 | 503) {
                let pause = answer.retry_after.unwrap_or(BACKOFF_MAX).min(BACKOFF_MAX);
                tokio::time::sleep(pause).await;
            }
            false
        }
    }
}

/// Counts `status: 201` results of a batch answer and the error codes of the rest.
pub fn tally_batch(body: &[u8], expected: u32) -> (u64, BTreeMap<String, u64>) {
    #[derive(Deserialize)]
    struct BatchAnswer<'a> {
        #[serde(borrow)]
        results: Vec<Item<'a>>,
    }
    #[derive(Deserialize)]
    struct Item<'a> {
        status: u16,
        #[serde(borrow)]
        body: &'a RawValue,
    }
    let mut errors = BTreeMap::new();
    let parsed: BatchAnswer = match serde_json::from_slice(body) {
        Ok(parsed) => parsed,
        Err(_) => {
            errors.insert("200 batch answer not understood".to_string(), 1);
            return (0, errors);
        }
    };
    if parsed.results.len() != expected as usize {
        errors.insert(format!("200 batch answer with {} results for {expected} items", parsed.results.len()), 1);
    }
    let mut accepted = 0;
    for item in parsed.results {
        if item.status == 201 {
            accepted += 1;
        } else {
            let key = format!("item {}", error_key(item.status, item.body.get().as_bytes()));
            *errors.entry(key).or_insert(0) += 1;
        }
    }
    (accepted, errors)
}

/// One application and its approval, each timed as its own request.
async fn onboarding_job(
    spec: &RunSpec,
    live: &Live,
    conn: &mut Conn,
    out: &mut WorkerResult,
    job: u64,
    intended: Instant,
) {
    let (_, body) = application_body(&spec.run_tag, job + 1);
    let since = if spec.rate.is_some() { intended } else { Instant::now() };
    let result = conn.post("/v1/applications", Some(&spec.tokens.platform), body).await;
    record(live, out, since);
    let application_id = match result {
        Ok(answer) if answer.status.as_u16() == 201 => {
            answer.json().ok().and_then(|v| v.get("application_id").and_then(|a| a.as_str()).map(str::to_string))
        }
        Ok(answer) => {
            count_error(live, out, answer.error_key(), 1);
            return;
        }
        Err(err) => {
            count_error(live, out, transport_key(&err), 1);
            return;
        }
    };
    let Some(application_id) = application_id else {
        count_error(live, out, "201 without application_id".to_string(), 1);
        return;
    };
    let path = format!("/v1/applications/{application_id}/approve");
    let since = Instant::now();
    let result = conn.post(&path, Some(&spec.tokens.risk), Bytes::from_static(b"{}")).await;
    record(live, out, since);
    match result {
        Ok(answer) if answer.status.as_u16() == 200 => accept(live, out, 1),
        Ok(answer) => count_error(live, out, answer.error_key(), 1),
        Err(err) => count_error(live, out, transport_key(&err), 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_batch_results() {
        let body = br#"{"results":[{"status":201,"body":{"id":"a"}},{"status":422,"body":{"error":{"code":"INSUFFICIENT_FUNDS","message":"x"}}},{"status":201,"body":{}}]}"#;
        let (accepted, errors) = tally_batch(body, 3);
        assert_eq!(accepted, 2);
        assert_eq!(errors.get("item 422 INSUFFICIENT_FUNDS"), Some(&1));
        assert_eq!(errors.len(), 1);
        let (_, errors) = tally_batch(body, 4);
        assert_eq!(errors.len(), 2);
    }
}

#[cfg(test)]
mod run_tests {
    use super::*;
    use crate::workload::Workload;

    /// Where the echo server listens, its task, and the accounts to load.
    type Echo = (std::net::SocketAddr, tokio::task::JoinHandle<anyhow::Result<()>>, Arc<[Box<str>]>);

    /// An in-process echo server, and ten account numbers to load it with.
    async fn echo_with_accounts() -> anyhow::Result<Echo> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(crate::echo::serve(listener));
        let accounts = (1..=10).map(|i| format!("F{i:06}").into_boxed_str()).collect();
        Ok((addr, server, accounts))
    }

    /// The whole load loop against an in-process echo server: every batch
    /// item of every request comes back accepted, and the count is exact.
    #[tokio::test]
    async fn closed_loop_against_echo_counts_every_transfer() -> anyhow::Result<()> {
        let (addr, server, accounts) = echo_with_accounts().await?;
        for (scenario, batch_size, jobs) in
            [(Scenario::Single, 1, 50), (Scenario::Mixed, 60, 7), (Scenario::Hot, 100, 5)]
        {
            let workload = Arc::new(Workload::new(scenario, accounts.clone(), "test", batch_size, "0.01"));
            let result = run(RunSpec {
                label: "test".to_string(),
                endpoint: Endpoint::new(addr)?,
                tokens: Tokens::dev()?,
                workload: workload.clone(),
                connections: 3,
                rate: None,
                duration: None,
                jobs_max: jobs,
                run_tag: "test".to_string(),
            })
            .await?;
            assert!(result.errors.is_empty(), "{scenario:?}: {:?}", result.errors);
            assert_eq!(result.accepted, jobs * workload.transfers_per_job(), "{scenario:?}");
            assert_eq!(result.hist.len(), result.requests);
        }
        server.abort();
        Ok(())
    }

    /// Open loop: the pacer releases every job, no sooner than it is due, and
    /// each is sent and answered once.
    #[tokio::test]
    async fn open_loop_sends_every_job_at_its_time() -> anyhow::Result<()> {
        let (addr, server, accounts) = echo_with_accounts().await?;
        let workload = Arc::new(Workload::new(Scenario::Single, accounts, "test", 1, "0.01"));
        let (rate, jobs) = (400.0, 100);
        let result = run(RunSpec {
            label: "test".to_string(),
            endpoint: Endpoint::new(addr)?,
            tokens: Tokens::dev()?,
            workload,
            connections: 4,
            rate: Some(rate),
            duration: Some(Duration::from_secs_f64(jobs as f64 / rate)),
            jobs_max: jobs,
            run_tag: "test".to_string(),
        })
        .await?;
        assert!(result.errors.is_empty(), "{:?}", result.errors);
        assert_eq!((result.requests, result.accepted, result.not_sent), (jobs, jobs, 0));
        // The last job is due (jobs - 1) / rate after the start: sent all at
        // once, the run would end far sooner.
        let last_due = Duration::from_secs_f64((jobs - 1) as f64 / rate);
        assert!(result.elapsed >= last_due, "{:?} < {last_due:?}: jobs were sent before they were due", result.elapsed);
        server.abort();
        Ok(())
    }
}
