//! fundledger-loadtest: load, recovery and crash-drill harness.
//!
//! Commands:
//! - `bench`: onboard and fund accounts, run one scenario (single, batch,
//!   hot, mixed, onboarding) closed-loop or open-loop, report throughput,
//!   latency percentiles, errors by code, server RSS and WAL group commit.
//! - `echo`: a bare hyper server that parses the same JSON, for a ceiling.
//! - `crash-drill`: kill -9 under load, restart, check that nothing
//!   acknowledged was lost and that money is conserved.
//! - `recovery`: time a restart over a log of N transfers.
//! - `history`: write N transfers (default 100,000,000), compare the
//!   server's RSS with its RSS after the first 1,000,000, and check that the
//!   oldest transfer still answers (by id, to a retry, in the journal).
//! - `reconcile`: upload a statement of N lines (default 1,000,000) to
//!   `POST /v1/reconciliations`, report its time and the server's RSS.
//!
//! The generator runs on the same machine as the server and competes with it
//! for CPU: it is kept lean (one connection per worker, no pool, bodies
//! built by `write!` into reused buffers, one tokio thread by default), and
//! every report states the CPU seconds both sides used.

mod bench;
mod binary;
mod client;
mod drill;
mod echo;
mod history;
mod metrics;
mod reconcile;
mod recovery;
mod report;
mod runner;
mod server;
mod setup;
mod util;
mod workload;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "fundledger-loadtest", about = "Load, recovery and crash-drill harness for fundledger")]
struct Cli {
    /// Tokio worker threads of the generator (it shares the machine with the server).
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Benchmark one scenario against fundledger (spawned, or --url).
    Bench(bench::BenchArgs),
    /// Run the echo server: parses transfer JSON, answers same-shaped bodies, no ledger.
    Echo(EchoArgs),
    /// kill -9 under load, restart, verify nothing acknowledged was lost.
    CrashDrill(drill::DrillArgs),
    /// Time a restart over a log of N transfers.
    Recovery(recovery::RecoveryArgs),
    /// Write N transfers, compare server RSS at the end with RSS after a baseline, check old ids still answer.
    History(history::HistoryArgs),
    /// Upload a statement of N lines for reconciliation; time it, sample server RSS.
    Reconcile(reconcile::ReconcileArgs),
    /// Print the configuration `bench` gives a server it spawns (for scripts
    /// that start the server themselves; `serve --listen` overrides its port).
    ServerConfig(ServerConfigArgs),
}

#[derive(clap::Args, Debug)]
struct ServerConfigArgs {
    /// The server's data directory.
    #[arg(long)]
    data_dir: std::path::PathBuf,
    /// wal.checkpoint_every_records, as `bench --checkpoint-every-records`.
    #[arg(long, default_value_t = 1_000_000)]
    checkpoint_every_records: u64,
}

#[derive(clap::Args, Debug)]
struct EchoArgs {
    /// Address to listen on (loopback).
    #[arg(long, default_value = "127.0.0.1:8099")]
    listen: std::net::SocketAddr,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    seconds: Option<u64>,
}

fn main() {
    let cli = Cli::parse();
    let threads = cli.threads.max(1);
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("start the tokio runtime")
        .and_then(|runtime| runtime.block_on(run(cli.command, threads)));
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

async fn run(command: Command, threads: usize) -> Result<()> {
    match command {
        Command::Bench(args) => bench::bench(args, threads).await,
        Command::CrashDrill(args) => drill::crash_drill(args).await,
        Command::Recovery(args) => recovery::recovery(args, threads).await,
        Command::History(args) => history::history(args, threads).await,
        Command::Reconcile(args) => reconcile::reconcile(args).await,
        Command::ServerConfig(args) => {
            let options = server::ConfigOptions {
                checkpoint_every_records: args.checkpoint_every_records,
                history_memory_records: None,
            };
            print!("{}", server::config_toml(&args.data_dir, &options));
            Ok(())
        }
        Command::Echo(args) => {
            if !args.listen.ip().is_loopback() {
                anyhow::bail!("the echo server listens on loopback only");
            }
            let listener =
                tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("bind {}", args.listen))?;
            eprintln!("echo listening on {}", listener.local_addr()?);
            let serve = echo::serve(listener);
            match args.seconds {
                Some(s) => {
                    tokio::select! {
                        r = serve => r,
                        _ = tokio::time::sleep(std::time::Duration::from_secs(s)) => Ok(()),
                    }
                }
                None => tokio::select! {
                    r = serve => r,
                    _ = tokio::signal::ctrl_c() => Ok(()),
                },
            }
        }
    }
}
