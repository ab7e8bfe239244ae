//! Start-up and shut-down, in dependency order: bind (so `/readyz` can say
//! `recovering`), recover the log, start the actix system with its actors,
//! start the history indexer, then serve the API; on SIGTERM/SIGINT stop
//! taking requests, answer those in flight, sync the log, exit.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, OnceLock};

use axum::Router;
use fundledger_wal::{RealFs, RecoveryPolicy, Wal, WalConfig, WalFs};

use crate::actors::bank::{Banks, OpenedBooks};
use crate::actors::directory::{AccountRef, Directory};
use crate::actors::finance::FinanceActor;
use crate::actors::log::LedgerLog;
use crate::actors::outbox;
use crate::actors::registry::RegistryActor;
use crate::actors::spawner::Spawner;
use crate::actors::suspense::SuspenseActor;
use crate::config::Config;
use crate::finance::archive::Archive;
use crate::finance::history::History;
use crate::gateway::notifications::Desk;
use crate::gateway::transfers::Transfers;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::Auth;
use crate::http::service::MetricsHandle;
use crate::http::{self, Ledger};
use crate::limits;
use crate::recovery::Recovered;

/// Records the history feed holds before appenders wait for the indexer.
const HISTORY_FEED_BATCHES_MAX: usize = 65_536;

/// Arbiters (threads) that run account actors.
const ACCOUNT_ARBITERS: usize = 2;

pub struct RunOptions {
    pub truncate_corrupt_log: bool,
}

pub fn run(config: Config, options: RunOptions) -> Result<(), String> {
    // The request path's scheduling (crate::threads): this thread's is
    // inherited by the WAL writer and the actix threads started from it.
    crate::threads::serve_requests();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(crate::threads::serve_requests)
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))?;
    runtime.block_on(serve(config, options))
}

async fn serve(config: Config, options: RunOptions) -> Result<(), String> {
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        // Request times as buckets, not a summary: how many took longer
        // than a bound over any interval is a difference of two scrapes
        // (`bench` reports those over 2 ms), which a summary's decaying
        // quantiles cannot give.
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("fundledger_http_request_seconds".into()),
            crate::limits::HTTP_REQUEST_SECONDS_BUCKETS,
        )
        .map_err(|error| format!("cannot set the request time buckets: {error}"))?
        .install_recorder()
        .map_err(|error| format!("cannot install the metrics recorder: {error}"))?;
    let addr = config.listen_addr()?;
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|error| format!("cannot listen on {addr}: {error}"))?;
    let bound: SocketAddr = listener.local_addr().map_err(|error| error.to_string())?;
    println!("fundledger listening on {bound}");
    let wal_cell: Arc<OnceLock<Wal>> = Arc::new(OnceLock::new());
    let ledger_router: Arc<OnceLock<Router>> = Arc::new(OnceLock::new());
    let metrics = MetricsHandle { prometheus, wal: Arc::clone(&wal_cell) };
    // Until the ledger has recovered, health, readiness and metrics answer
    // and everything else is 503; then every request goes straight to the
    // ledger's router (one routing pass, not two).
    let early = http::service::router(metrics.clone())
        .fallback(|| async { ApiError::new(ErrorCode::Overloaded, "the ledger is recovering its log; retry shortly") });
    let app = http::serve::Routers { early, ledger: Arc::clone(&ledger_router) };
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(http::serve::serve(listener, app, shutdown_rx));

    let started = start_ledger(&config, &options).await?;
    // The router first: `/readyz` says ready once the log is set, and a
    // request right after must not find the ledger still recovering.
    let _ = ledger_router.set(http::router(Arc::clone(&started.ledger), metrics, limits::IN_FLIGHT_REQUESTS_MAX));
    let _ = wal_cell.set(started.log.wal().clone());
    tracing::info!(%bound, lsn = started.log.durable_lsn(), "ready");

    wait_for_signal().await;
    tracing::info!("stopping: no new requests, answering those in flight");
    let _ = shutdown_tx.send(true);
    if let Err(error) = server.await {
        tracing::error!(%error, "server task failed");
    }
    let synced = started.log.wal().shutdown();
    started.system.stop();
    synced.map_err(|_| "the log could not be synced at shutdown; restart recovers what is on disk".to_string())
}

struct Started {
    ledger: Arc<Ledger>,
    log: LedgerLog,
    system: actix::System,
}

async fn start_ledger(config: &Config, options: &RunOptions) -> Result<Started, String> {
    let wal_config = config.wal_config();
    let policy = if options.truncate_corrupt_log {
        RecoveryPolicy::TruncateCorrupt
    } else {
        RecoveryPolicy::TolerateTailCorruption
    };
    let fs = wal_fs();
    let recover_fs = Arc::clone(&fs);
    if options.truncate_corrupt_log {
        // A cut log reuses lsns the archive may name: index it all again.
        Archive::reset(&config.data_dir).map_err(|error| format!("cannot reset the history archive: {error}"))?;
    }
    let archive =
        Archive::open(&config.data_dir).map_err(|error| format!("cannot open the history archive: {error}"))?;
    let indexed_through = archive.watermark();
    // The banks' books: their folders and files are opened here (off the
    // runtime: it syncs directories) while the log replays; the sandbox
    // then reads its whole history on a thread of its own, and start-up
    // does not wait for it (`SandboxBooks::open_in_background`).
    let (books_configs, books_dir) = (config.banks.clone(), config.data_dir.clone());
    let books = tokio::task::spawn_blocking(move || OpenedBooks::open(&books_configs, &books_dir));
    let (wal, recovered, checkpoint_lsn) =
        tokio::task::spawn_blocking(move || recover(recover_fs, wal_config, policy, indexed_through))
            .await
            .map_err(|error| format!("recovery failed: {error}"))??;
    if indexed_through > recovered.last_lsn {
        return Err(format!(
            "the history archive ({}) indexes records up to lsn {indexed_through} but the log ends at lsn {}: \
             it belongs to another log; move it away to rebuild it from this log",
            archive.dir().display(),
            recovered.last_lsn
        ));
    }
    let books = books.await.map_err(|error| format!("opening the banks' books failed: {error}"))??;
    let settings = crate::checkpointer::Settings {
        dir: config.wal_dir(),
        every_records: config.wal.checkpoint_every_records,
        every_s: config.wal.checkpoint_every_s,
        retention_days: config.wal.retention_days,
    };
    let archive_watermark: crate::checkpointer::ArchiveWatermark = {
        let archive = Arc::clone(&archive);
        Arc::new(move || archive.watermark())
    };
    crate::checkpointer::Checkpointer::new(fs, wal.clone(), settings, archive_watermark, checkpoint_lsn)
        .spawn()
        .map_err(|error| format!("cannot start the checkpointer: {error}"))?;
    let (feed_tx, feed_rx) = sync_channel(HISTORY_FEED_BATCHES_MAX);
    let log = LedgerLog::new(wal.clone(), feed_tx);
    let directory = Arc::new(Directory::new());
    let auth = Auth::new(&config.tokens)?;
    let ids = Arc::clone(&recovered.ids);
    let notifications = Arc::clone(&recovered.notifications);
    let recovered_through = recovered.last_lsn;
    let bank_queue_instructions = config.limits.bank_queue_instructions;
    let Recovered {
        applications,
        accounts,
        books: account_books,
        suspense,
        history,
        withdrawals_pending,
        instructions_pending,
        ..
    } = recovered;
    // Start-up folds the registry (Recovered::load_checkpoint): an entry
    // for every book.
    if accounts.len() != account_books.len() {
        return Err(format!("recovered {} accounts with {} books", accounts.len(), account_books.len()));
    }
    // The finance actor judges with its own copy of the reconciliation book.
    let reconciliation_book = history.reconciliations().clone();
    let history = History::new(history, Some(archive), config.history.memory_records);
    history.set_id_indexes(Arc::clone(&ids), Arc::clone(&notifications));
    {
        let history = Arc::clone(&history);
        let wal = wal.clone();
        let backlog = log.feed_backlog();
        std::thread::Builder::new()
            .name("history-indexer".into())
            .spawn(move || history.run_indexer(feed_rx, backlog, wal))
            .map_err(|error| error.to_string())?;
    }

    let (actors_tx, actors_rx) = tokio::sync::oneshot::channel();
    let banks_config = config.banks.clone();
    let system_history = Arc::clone(&history);
    let system_log = log.clone();
    let system_directory = Arc::clone(&directory);
    std::thread::Builder::new()
        .name("actix-system".into())
        .spawn(move || {
            let system = actix::System::new();
            system.block_on(async move {
                let arbiters: Vec<_> = (0..ACCOUNT_ARBITERS).map(|_| actix::Arbiter::new().handle()).collect();
                system_directory.set_spawner(Spawner::new(arbiters, system_log.clone()));
                let banks = match Banks::start(&banks_config, books) {
                    Ok(banks) => Arc::new(banks),
                    Err(error) => {
                        tracing::error!(%error, "cannot start the bank adaptors");
                        drop(actors_tx);
                        return;
                    }
                };
                // Recovered accounts start idle: an actor is activated for
                // each with its first message (actors::directory).
                for (account, book) in accounts.into_iter().zip(account_books) {
                    let id = account.info.account_id;
                    system_directory.insert(Arc::clone(&account.info), account.status, account.sub_account_no, book);
                    if account.status == crate::domain::account::AccountStatus::Signing {
                        // A crash while signing: ask the bank again.
                        let entry = system_directory.get(id).expect("just inserted");
                        let account_ref = AccountRef { directory: Arc::clone(&system_directory), entry };
                        banks.start_signing(&account.info, account_ref);
                    }
                }
                let registry = actix::Actor::start(RegistryActor::new(
                    applications,
                    system_log.clone(),
                    Arc::clone(&system_directory),
                    Arc::clone(&banks),
                ));
                let suspense = actix::Actor::start(SuspenseActor::new(
                    suspense,
                    system_log.clone(),
                    Arc::clone(&system_directory),
                ));
                // Bank work follows the durable log; what the log left
                // pending is asked about again, oldest first.
                let queue = outbox::InstructionQueue::new(bank_queue_instructions);
                let outbox = outbox::start(
                    Arc::clone(&banks),
                    Arc::clone(&system_directory),
                    system_log.clone(),
                    Arc::clone(&queue),
                );
                let mut payouts: Vec<_> = withdrawals_pending.into_values().collect();
                payouts.sort_by_key(|(lsn, _)| *lsn);
                for (_, withdrawal) in payouts {
                    let _ = outbox.send(outbox::BankWork::Payout { withdrawal, resumed: true });
                }
                // Instructions are read back from the log as the queue has
                // room, before any new one.
                system_history.set_outbox(outbox, queue, instructions_pending.into_lsns(), recovered_through);
                let finance = actix::Actor::start(FinanceActor::new(reconciliation_book, system_log.clone()));
                let _ = actors_tx.send((registry, suspense, finance, banks, actix::System::current()));
            });
            if let Err(error) = system.run() {
                tracing::error!(%error, "actix system stopped with an error");
            }
        })
        .map_err(|error| error.to_string())?;
    let (registry, suspense, finance, banks, system) =
        actors_rx.await.map_err(|_| "the actor system did not start".to_string())?;
    let ledger = Arc::new(Ledger {
        auth,
        max_body_bytes: config.limits.max_body_bytes,
        directory: Arc::clone(&directory),
        transfers: Transfers { directory: Arc::clone(&directory), ids },
        desk: Desk { directory, notifications, suspense },
        registry,
        banks,
        log: log.clone(),
        history,
        receipts: crate::finance::receipts::Receipts::new(&config.receipts.key),
        finance,
        max_statement_bytes: config.limits.max_statement_bytes,
        reconciling: Arc::new(tokio::sync::Semaphore::new(limits::RECONCILIATIONS_IN_FLIGHT_MAX)),
    });
    // Credits the sandbox booked but had not delivered before a restart.
    http::sandbox::redeliver(&ledger);
    Ok(Started { ledger, log, system })
}

/// Load the newest valid checkpoint (a corrupt newer one falls back to the
/// one before, none at all means lsn 1), replay the log after it, check the
/// state. Runs on a blocking thread. Returns the checkpoint's lsn (0: none).
fn recover(
    fs: Arc<dyn WalFs>,
    wal_config: WalConfig,
    policy: RecoveryPolicy,
    indexed_through: u64,
) -> Result<(Wal, Recovered, u64), String> {
    let started = std::time::Instant::now();
    let loaded = fundledger_wal::load_accepted_checkpoint(
        &*fs,
        &wal_config.dir,
        limits::CHECKPOINT_BYTES_MAX,
        |lsn, payload| {
            let mut recovered = Recovered::with_archive(indexed_through);
            recovered.load_checkpoint(lsn, &payload)?;
            Ok(recovered)
        },
    )
    .map_err(|error| format!("cannot read checkpoints: {error}"))?;
    let (checkpoint_lsn, mut recovered) = loaded.unwrap_or_else(|| (0, Recovered::with_archive(indexed_through)));
    let checkpoint_ms = started.elapsed().as_millis() as u64;
    let dir = wal_config.dir.clone();
    let (wal, report) = Wal::open_with_fs(Arc::clone(&fs), wal_config, policy, checkpoint_lsn + 1, |lsn, payload| {
        recovered.apply_payload(lsn, payload).map_err(|error| format!("lsn {lsn}: {error}"))
    })
    .map_err(|error| format!("cannot recover the log: {error}"))?;
    assert_eq!(recovered.last_lsn + 1, report.next_lsn, "recovery folded every record the log holds");
    if report.dropped_by_truncation.is_some() {
        // The operator cut the log: a checkpoint past the cut (one that was
        // skipped as unusable) describes records that are gone, and new
        // records will reuse their lsns. The one used and older ones stay.
        let at_or_below: Vec<u64> = fundledger_wal::checkpoint::list_checkpoints(&*fs, &dir)
            .map_err(|error| format!("cannot list checkpoints: {error}"))?
            .into_iter()
            .map(|(lsn, _)| lsn)
            .filter(|&lsn| lsn <= checkpoint_lsn)
            .collect();
        fundledger_wal::prune_checkpoints(&*fs, &dir, &at_or_below)
            .map_err(|error| format!("cannot remove checkpoints past the truncation: {error}"))?;
    }
    recovered.check();
    tracing::info!(
        checkpoint_lsn,
        checkpoint_ms,
        records_replayed = report.records_replayed,
        accounts = recovered.accounts.len(),
        ms = started.elapsed().as_millis() as u64,
        "recovered"
    );
    // One line on stdout too, for operators and the load test's report; a
    // closed stdout is no reason to stop.
    let _ = writeln!(
        std::io::stdout(),
        "fundledger recovered: checkpoint lsn {checkpoint_lsn}, {} records replayed after it, lsn {}",
        report.records_replayed,
        recovered.last_lsn
    );
    Ok((wal, recovered, checkpoint_lsn))
}

/// The log's file system: the real one. Debug builds (what `cargo test`
/// runs) also honour a test hook that makes the running server's log fail;
/// release builds do not contain it, so no environment can arm it in
/// production.
fn wal_fs() -> Arc<dyn WalFs> {
    #[cfg(debug_assertions)]
    if let Some(faults) = fault_hook::from_env() {
        tracing::warn!(?faults, "TEST HOOK: wal fault injection armed (debug build)");
        return Arc::new(fundledger_wal::FaultFs::new(Arc::new(RealFs), faults));
    }
    Arc::new(RealFs)
}

/// `FUNDLEDGER_FAULT_FSYNC_WHEN=<file>`: once `<file>` exists, every fsync
/// of the log fails. `FUNDLEDGER_FAULT_WRITE_WHEN=<file>`: once it exists,
/// a log write stops halfway and fails. `FUNDLEDGER_FAULT_FREE_BYTES_FILE=<file>`:
/// while it holds a number, that is the free disk space the log sees.
/// Files, not counts, so a test decides the moment from outside.
#[cfg(debug_assertions)]
mod fault_hook {
    use std::path::PathBuf;
    use std::sync::Arc;

    use fundledger_wal::Faults;

    pub fn from_env() -> Option<Faults> {
        let path = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty()).map(PathBuf::from);
        let when_exists = |file: PathBuf| -> fundledger_wal::fs::fault::FaultSwitch { Arc::new(move || file.exists()) };
        let faults = Faults {
            fsync_fails: path("FUNDLEDGER_FAULT_FSYNC_WHEN").map(when_exists),
            write_fails: path("FUNDLEDGER_FAULT_WRITE_WHEN").map(when_exists),
            free_bytes: path("FUNDLEDGER_FAULT_FREE_BYTES_FILE").map(|file| {
                let read: fundledger_wal::fs::fault::FreeBytesOverride =
                    Arc::new(move || std::fs::read_to_string(&file).ok()?.trim().parse().ok());
                read
            }),
        };
        let armed = faults.fsync_fails.is_some() || faults.write_fails.is_some() || faults.free_bytes.is_some();
        armed.then_some(faults)
    }
}

async fn wait_for_signal() {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM; stopping only on SIGINT");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
