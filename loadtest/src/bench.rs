//! `bench`: set up accounts, run one scenario, report throughput, latency,
//! errors, server memory and WAL group commit.

use crate::client::{Conn, Endpoint};
use crate::metrics::{read_server_counters, wal_report};
use crate::report::{BenchReport, CpuReport, Percentiles, ServerReport, SetupReport};
use crate::runner::{self, RunSpec};
use crate::server::{ConfigOptions, Launch, Server, Tokens, WorkDir};
use crate::setup::{credited_lsn, deposit, onboard_many};
use crate::util::{cores, cpu_model, load_average, own_cpu_seconds, parse_cents, process_cpu_seconds, run_tag};
use crate::workload::{BodyFormat, Scenario, Workload, BATCH_SIZE_MAX, CHAIN_ITEMS};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the harness starts the real server (shared by every command).
#[derive(Args, Clone, Debug)]
pub struct ServerArgs {
    /// The fundledger binary (default: target/release/fundledger of this workspace).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Where the temporary work directory (config, data, server.log) goes.
    #[arg(long)]
    pub work_parent: Option<PathBuf>,
    /// Keep the work directory afterwards (its path is printed).
    #[arg(long)]
    pub keep_data: bool,
    /// RUST_LOG for the server; its log goes to server.log in the work directory.
    #[arg(long, default_value = "warn")]
    pub server_log: String,
    /// Seconds to wait for the server's first /readyz 200.
    #[arg(long, default_value_t = 600)]
    pub ready_timeout_s: u64,
    /// history.memory_records of a spawned server (default: the server's):
    /// records indexed in memory before the history archive takes them.
    #[arg(long)]
    pub history_memory_records: Option<u64>,
}

impl ServerArgs {
    pub fn launch(&self) -> Launch {
        Launch {
            bin: self.server_bin.clone().unwrap_or_else(crate::server::default_server_bin),
            rust_log: self.server_log.clone(),
            ready_timeout: Duration::from_secs(self.ready_timeout_s),
        }
    }

    pub fn work_dir(&self, checkpoint_every_records: u64) -> Result<WorkDir> {
        let options = ConfigOptions { checkpoint_every_records, history_memory_records: self.history_memory_records };
        WorkDir::create(self.work_parent.as_deref(), self.keep_data, &options)
    }
}

#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "batch")]
    pub scenario: Scenario,
    /// Accounts to create and fund before the run.
    #[arg(long, default_value_t = 10_000)]
    pub accounts: u64,
    /// Seconds to run (default 10 when neither --duration nor --count is given).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Transfers to send (customers for `onboarding`) instead of a duration.
    #[arg(long)]
    pub count: Option<u64>,
    /// Open loop: jobs per second (a job is one request, or for `mixed` with
    /// --batch-size below 6 a chain of 6 requests); latency is measured from
    /// each job's intended send time. Without it: closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Concurrent keep-alive connections of the load.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Transfers per POST /v1/transfers/batch (batch, hot, mixed).
    #[arg(long, default_value_t = 8190)]
    pub batch_size: usize,
    /// How batches are sent (batch, hot, mixed): `json`, or `binary`
    /// (`application/vnd.fundledger.transfers+binary`, docs/API-notes.md).
    #[arg(long, value_enum, default_value = "json")]
    pub body: BodyFormat,
    /// Amount of each `transfer` (single, batch, hot).
    #[arg(long, default_value = "0.01")]
    pub amount: String,
    /// Deposit into each account during setup.
    #[arg(long, default_value = "1000000.00")]
    pub fund: String,
    /// Concurrent connections used to onboard accounts.
    #[arg(long, default_value_t = 256)]
    pub setup_connections: usize,
    /// Use an already running server (loopback only) instead of spawning one.
    #[arg(long)]
    pub url: Option<String>,
    /// With --url: the server's pid, to report its RSS.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Skip onboarding: accounts F000001..F<accounts> are assumed to exist and be funded.
    #[arg(long)]
    pub skip_setup: bool,
    /// Also run the same scenario against an in-process echo server and print the ratio.
    #[arg(long)]
    pub compare_echo: bool,
    /// Worker threads of the echo server for --compare-echo (one leaves the
    /// other core to the generator on a 2-core machine).
    #[arg(long, default_value_t = 1)]
    pub echo_threads: usize,
    /// wal.checkpoint_every_records in the config of a spawned server.
    #[arg(long, default_value_t = 1_000_000)]
    pub checkpoint_every_records: u64,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
}

enum Target {
    Spawn,
    Url(Endpoint),
    Echo(SocketAddr),
}

pub async fn bench(args: BenchArgs, threads: usize) -> Result<()> {
    validate(&args)?;
    if args.compare_echo {
        if args.url.is_some() {
            bail!("--compare-echo spawns fundledger itself; drop --url");
        }
        let addr = crate::echo::spawn_in_thread(args.echo_threads)?;
        eprintln!("echo server on {addr} ({} threads)", args.echo_threads);
        let echo = run_target(&args, Target::Echo(addr), threads).await?;
        let real = run_target(&args, Target::Spawn, threads).await?;
        echo.print();
        real.print();
        let ratio = if echo.accepted_per_s > 0.0 { real.accepted_per_s / echo.accepted_per_s } else { 0.0 };
        println!();
        println!(
            "fundledger / echo = {:.3} ({:.0} vs {:.0} accepted/s, p50 {:.3} vs {:.3} ms)",
            ratio, real.accepted_per_s, echo.accepted_per_s, real.latency_ms.p50, echo.latency_ms.p50
        );
        if let Some(path) = &args.json {
            let value = serde_json::json!({"echo": echo, "fundledger": real, "ratio": ratio});
            write_json(path, &value)?;
        }
        return Ok(());
    }
    let target = match &args.url {
        Some(url) => Target::Url(Endpoint::parse_url(url)?),
        None => Target::Spawn,
    };
    let report = run_target(&args, target, threads).await?;
    report.print();
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(())
}

fn write_json<T: serde::Serialize>(path: &std::path::Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("write {}", path.display()))?;
    eprintln!("report written to {}", path.display());
    Ok(())
}

fn validate(args: &BenchArgs) -> Result<()> {
    if args.scenario != Scenario::Onboarding && args.accounts < 2 {
        bail!("--accounts must be at least 2 for transfers");
    }
    if args.batch_size == 0 || args.batch_size > BATCH_SIZE_MAX {
        bail!("--batch-size must be 1 to {BATCH_SIZE_MAX}");
    }
    if args.body == BodyFormat::Binary {
        let batched = matches!(args.scenario, Scenario::Batch | Scenario::Hot)
            || (args.scenario == Scenario::Mixed && args.batch_size >= CHAIN_ITEMS);
        if !batched {
            bail!("--body binary is for batches: --scenario batch, hot, or mixed with --batch-size 6 or more");
        }
        if args.compare_echo {
            bail!("the echo server reads JSON only; drop --compare-echo or --body binary");
        }
    }
    if args.connections == 0 || args.setup_connections == 0 {
        bail!("--connections and --setup-connections must be at least 1");
    }
    if let Some(rate) = args.rate {
        if !(rate > 0.0 && rate.is_finite()) {
            bail!("--rate must be a positive number of requests per second");
        }
    }
    if let Some(d) = args.duration {
        if !(d > 0.0 && d <= 86_400.0) {
            bail!("--duration must be 0 to 86400 seconds");
        }
    }
    parse_cents(&args.amount).context("--amount")?;
    parse_cents(&args.fund).context("--fund")?;
    Ok(())
}

async fn run_target(args: &BenchArgs, target: Target, threads: usize) -> Result<BenchReport> {
    let tokens = Tokens::dev()?;
    let run = run_tag();
    let launch = args.server.launch();
    let mut work = None;
    let (endpoint, server, label) = match target {
        Target::Spawn => {
            let dir = args.server.work_dir(args.checkpoint_every_records)?;
            let server = Server::start(&launch, &dir).await?;
            eprintln!(
                "fundledger pid {} on {} (data in {}), ready in {:.2}s",
                server.pid,
                server.endpoint.addr,
                dir.data_dir().display(),
                server.spawn_to_ready.as_secs_f64()
            );
            let endpoint = server.endpoint.clone();
            work = Some(dir);
            (endpoint, Some(server), "fundledger".to_string())
        }
        Target::Url(endpoint) => {
            let label = format!("fundledger at {}", endpoint.addr);
            (endpoint, None, label)
        }
        Target::Echo(addr) => (Endpoint::new(addr)?, None, "echo".to_string()),
    };
    let is_echo = label == "echo";
    let pid = server.as_ref().map(|s| s.pid).or(args.server_pid);
    let rss = || pid.and_then(crate::util::rss_bytes);
    let rss_ready = rss();

    // Setup: accounts to move money between.
    let mut setup_report = None;
    let accounts: Arc<[Box<str>]> = if args.scenario == Scenario::Onboarding {
        Arc::from(Vec::new())
    } else if args.skip_setup || is_echo {
        (1..=args.accounts).map(|i| format!("F{i:06}").into_boxed_str()).collect()
    } else {
        let started = Instant::now();
        let fund = parse_cents(&args.fund)?;
        let onboarded = onboard_many(&endpoint, &tokens, &run, args.accounts, args.setup_connections, fund).await?;
        if args.scenario == Scenario::Hot {
            // The hot payer pays every transfer: give it far more than a run can spend.
            let mut conn = Conn::new(endpoint.clone());
            let answer = deposit(&mut conn, &format!("N-LT-{run}-hot"), &onboarded[0], 100_000_000_000 * 100).await?;
            credited_lsn(&answer, &onboarded[0])?;
        }
        let seconds = started.elapsed().as_secs_f64();
        setup_report = Some(SetupReport {
            accounts: args.accounts,
            seconds,
            accounts_per_s: args.accounts as f64 / seconds.max(1e-9),
        });
        onboarded.into_iter().map(|a| a.id).collect()
    };
    let rss_after_setup = rss();

    let workload =
        Arc::new(Workload::new(args.scenario, accounts, &run, args.batch_size, &args.amount).with_body(args.body));
    let per_job = workload.transfers_per_job();
    let duration = match (args.duration, args.count) {
        (Some(d), _) => Some(Duration::from_secs_f64(d)),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    let mut jobs_max = args.count.map(|c| c.div_ceil(per_job)).unwrap_or(u64::MAX);
    if let (Some(rate), Some(d)) = (args.rate, duration) {
        jobs_max = jobs_max.min((rate * d.as_secs_f64()).ceil() as u64);
    }

    let load_average_before = load_average();
    let wal_before = read_server_counters(&endpoint).await;
    let cpu_before = (own_cpu_seconds(), pid.and_then(process_cpu_seconds));
    let result = runner::run(RunSpec {
        label: label.clone(),
        endpoint: endpoint.clone(),
        tokens: tokens.clone(),
        workload: workload.clone(),
        connections: args.connections,
        rate: args.rate,
        duration,
        jobs_max,
        run_tag: run.clone(),
    })
    .await?;
    let cpu_after = (own_cpu_seconds(), pid.and_then(process_cpu_seconds));
    let wal_after = read_server_counters(&endpoint).await;
    let rss_end = rss();
    let seconds = result.elapsed.as_secs_f64().max(1e-9);

    let server_report = pid.map(|pid| ServerReport {
        pid,
        rss_bytes_ready: rss_ready,
        rss_bytes_after_setup: rss_after_setup,
        rss_bytes_end: rss_end,
        bytes_per_account: match (rss_ready, rss_after_setup) {
            (Some(a), Some(b)) if setup_report.is_some() && args.accounts > 0 => {
                Some(b.saturating_sub(a) as f64 / args.accounts as f64)
            }
            _ => None,
        },
    });
    let report = BenchReport {
        target: label,
        scenario: args.scenario,
        loop_mode: if args.rate.is_some() { "open" } else { "closed" },
        rate_per_s: args.rate,
        connections: args.connections,
        transfers_per_request: if workload.is_batched() { per_job } else { 1 },
        accounts: if args.scenario == Scenario::Onboarding { 0 } else { args.accounts },
        seconds,
        requests: result.requests,
        requests_per_s: result.requests as f64 / seconds,
        accepted: result.accepted,
        accepted_per_s: result.accepted as f64 / seconds,
        latency_of: if workload.is_batched() { "batch" } else { "request" },
        latency_ms: Percentiles::from_histogram_us(&result.hist),
        errors: result.errors,
        not_sent: result.not_sent,
        setup: setup_report,
        server: server_report,
        wal: if is_echo { None } else { Some(wal_report(wal_before, wal_after, seconds)) },
        cpu: CpuReport {
            generator_s: cpu_after.0 - cpu_before.0,
            server_s: match (cpu_before.1, cpu_after.1) {
                (Some(a), Some(b)) => Some(b - a),
                _ => None,
            },
        },
        cpu_model: cpu_model(),
        cores: cores(),
        load_average_before,
        generator_threads: threads,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    if let Some(server) = server {
        match server.terminate(Duration::from_secs(60)).await {
            Ok(status) if status.success() => {}
            Ok(status) => eprintln!("note: server exited with {status} after SIGTERM"),
            Err(err) => eprintln!("note: {err:#}"),
        }
    }
    drop(work);
    Ok(report)
}
