//! `recovery`: write N transfers in batches, stop the server (SIGTERM, or
//! kill -9 with `--signal kill`), restart it on the same data directory and
//! time spawn -> first `/readyz` 200.

use crate::bench::ServerArgs;
use crate::client::Conn;
use crate::runner::{self, RunSpec};
use crate::server::{Server, Tokens};
use crate::setup::onboard_many;
use crate::util::{cores, cpu_model, dir_bytes, load_average, run_tag, thousands};
use crate::workload::{Scenario, Workload, BATCH_SIZE_MAX};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StopSignal {
    /// SIGTERM: the server stops cleanly (it may write a checkpoint).
    Term,
    /// kill -9: recovery must replay the log.
    Kill,
}

#[derive(Args, Clone, Debug)]
pub struct RecoveryArgs {
    /// Transfers to write before the restart.
    #[arg(long, default_value_t = 1_000_000)]
    pub transfers: u64,
    #[arg(long, default_value_t = 8190)]
    pub batch_size: usize,
    /// Accounts to move money between.
    #[arg(long, default_value_t = 1000)]
    pub accounts: u64,
    /// Concurrent connections while writing.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    #[arg(long, value_enum, default_value = "term")]
    pub signal: StopSignal,
    /// wal.checkpoint_every_records; the default is above any run here so
    /// the whole log is replayed (lower it to measure checkpoint + tail).
    #[arg(long, default_value_t = 1_000_000_000)]
    pub checkpoint_every_records: u64,
    /// Seconds to wait after writing, before the stop, so that the
    /// checkpointer (and the bank's confirmations) can catch up.
    #[arg(long, default_value_t = 0)]
    pub settle_s: u64,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Serialize)]
struct RecoveryReport {
    transfers_written: u64,
    write_seconds: f64,
    write_transfers_per_s: f64,
    signal: StopSignal,
    clean_exit: Option<bool>,
    lsn_before_stop: u64,
    lsn_after_restart: u64,
    data_bytes: u64,
    spawn_to_ready_s: f64,
    /// Records in the log at restart (its lsn): what was replayed when no
    /// checkpoint covers part of it, an upper bound otherwise.
    records: u64,
    records_per_s: f64,
    /// What start-up said: the checkpoint it loaded and the records it
    /// replayed after it (None from a server that does not say).
    recovered_from: Option<crate::server::RecoveredFrom>,
    rss_bytes_after_recovery: Option<u64>,
    cpu_model: String,
    cores: usize,
    /// 1-minute load average just before the restart.
    load_average_before_restart: Option<f64>,
    command: String,
}

async fn readyz_lsn(conn: &mut Conn) -> Result<u64> {
    let answer = conn.get("/readyz", None).await?;
    let value: Value = answer.json()?;
    value.get("lsn").and_then(Value::as_u64).context("/readyz without lsn")
}

pub async fn recovery(args: RecoveryArgs, threads: usize) -> Result<()> {
    if args.transfers == 0 || args.accounts < 2 || args.batch_size == 0 || args.batch_size > BATCH_SIZE_MAX {
        bail!("need --transfers >= 1, --accounts >= 2, --batch-size 1..={BATCH_SIZE_MAX}");
    }
    let launch = args.server.launch();
    let work = args.server.work_dir(args.checkpoint_every_records)?;
    let tokens = Tokens::dev()?;
    let run = run_tag();
    let server = Server::start(&launch, &work).await?;
    eprintln!("fundledger pid {} on {}", server.pid, server.endpoint.addr);
    let accounts = onboard_many(&server.endpoint, &tokens, &run, args.accounts, 64, 1_000_000 * 100).await?;
    let ids: Arc<[Box<str>]> = accounts.into_iter().map(|a| a.id).collect();
    let workload = Arc::new(Workload::new(Scenario::Batch, ids, &run, args.batch_size, "0.01"));
    let result = runner::run(RunSpec {
        label: "recovery: writing".to_string(),
        endpoint: server.endpoint.clone(),
        tokens: tokens.clone(),
        workload: workload.clone(),
        connections: args.connections,
        rate: None,
        duration: None,
        jobs_max: args.transfers.div_ceil(workload.transfers_per_job()),
        run_tag: run.clone(),
    })
    .await?;
    if !result.errors.is_empty() {
        eprintln!("note: errors while writing: {:?}", result.errors);
    }
    if args.settle_s > 0 {
        eprintln!("settling for {} s", args.settle_s);
        tokio::time::sleep(Duration::from_secs(args.settle_s)).await;
    }
    let mut conn = Conn::new(server.endpoint.clone());
    let lsn_before = readyz_lsn(&mut conn).await?;
    drop(conn);
    let clean_exit = match args.signal {
        StopSignal::Term => Some(server.terminate(Duration::from_secs(300)).await?.success()),
        StopSignal::Kill => {
            server.kill9().await?;
            None
        }
    };
    let data_bytes = dir_bytes(&work.data_dir());
    eprintln!("stopped at lsn {lsn_before} ({:.1} MiB of data); restarting", data_bytes as f64 / 1048576.0);
    let load_average_before_restart = load_average();
    let server = Server::start(&launch, &work).await?;
    let seconds = server.spawn_to_ready.as_secs_f64();
    let recovered_from = server.recovered_from().await;
    let report = RecoveryReport {
        transfers_written: result.accepted,
        write_seconds: result.elapsed.as_secs_f64(),
        write_transfers_per_s: result.accepted as f64 / result.elapsed.as_secs_f64().max(1e-9),
        signal: args.signal,
        clean_exit,
        lsn_before_stop: lsn_before,
        lsn_after_restart: server.ready_lsn,
        data_bytes,
        spawn_to_ready_s: seconds,
        records: server.ready_lsn,
        records_per_s: server.ready_lsn as f64 / seconds.max(1e-9),
        recovered_from,
        rss_bytes_after_recovery: server.rss_bytes(),
        cpu_model: cpu_model(),
        cores: cores(),
        load_average_before_restart,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    let _ = server.terminate(Duration::from_secs(60)).await;
    println!(
        "wrote {} transfers in {:.1}s ({} /s), {:.1} MiB of data",
        thousands(report.transfers_written),
        report.write_seconds,
        thousands(report.write_transfers_per_s as u64),
        data_bytes as f64 / 1048576.0
    );
    println!(
        "stopped with {:?}{}; restart: spawn -> /readyz 200 in {:.3}s, {} records ({} records/s replayed at most)",
        args.signal,
        match clean_exit {
            Some(true) => ", exit 0",
            Some(false) => ", NOT a clean exit",
            None => "",
        },
        seconds,
        thousands(report.records),
        thousands(report.records_per_s as u64)
    );
    match recovered_from {
        Some(from) => println!(
            "start-up loaded checkpoint lsn {} and replayed {} records after it",
            thousands(from.checkpoint_lsn),
            thousands(from.records_replayed)
        ),
        None => println!("start-up did not say which checkpoint it loaded"),
    }
    println!(
        "({} CPUs, {}; generator threads {threads}; load average before the restart {})",
        report.cores,
        report.cpu_model,
        load_average_before_restart.map(|l| format!("{l:.2}")).unwrap_or_else(|| "n/a".to_string())
    );
    if report.lsn_after_restart < lsn_before {
        bail!("the restarted server is at lsn {} but was at {lsn_before} before the stop", report.lsn_after_restart);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
    }
    Ok(())
}
