//! `crash-drill`: kill -9 the server under load of every movement type,
//! restart it on the same data directory, and check from outside that
//!
//! - every acknowledged (2xx) movement is there, with the `lsn` it was
//!   acknowledged with, both in `GET /v1/transfers/{id}` and in the journal;
//! - every movement left unanswered by the kill is wholly present (every
//!   journal entry it makes) or wholly absent, and stays so afterwards;
//! - every refused (4xx) movement is absent;
//! - each account's journal sums to its balance, entry by entry
//!   (`*_after` fields), `total = available + frozen`, nothing negative;
//! - money is conserved: the accounts' totals add up to the deposits that
//!   were acknowledged or found present;
//! - a retry of an acknowledged request after the restart gets the
//!   original answer (idempotency across restarts).
//!
//! One data directory lives through all iterations, so later iterations
//! also recover logs that were themselves recovered and checkpointed.

mod checks;
mod load;

use checks::{verify, LedgerView};
use load::{load_worker, Shared};

use crate::bench::ServerArgs;
use crate::client::{Conn, Endpoint};
use crate::server::{Server, Tokens, WorkDir};
use crate::setup::{credited_lsn, deposit, onboard_one, send_retrying, Account};
use crate::util::{format_cents, parse_cents, run_tag, thousands};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Money each drill account starts with.
const OPENING_CENTS: i64 = 10_000 * 100;
/// A transfer amount no drill account ever holds.
const REFUSED_CENTS: i64 = 1_000_000_000 * 100;
/// Violations printed before the list is cut short.
const VIOLATIONS_SHOWN: usize = 40;
/// Acknowledged requests re-sent after each restart to check idempotency.
const RETRIES_PER_CHECK: usize = 25;
/// Movements verified before whose records are fetched again after each restart.
const OLDER_SAMPLE: usize = 2000;

#[derive(Args, Clone, Debug)]
pub struct DrillArgs {
    /// How many times to kill -9 and restart.
    #[arg(long, default_value_t = 10)]
    pub iterations: u32,
    /// Longest load phase of one iteration; the kill comes at a random
    /// moment between a quarter of it and all of it.
    #[arg(long, default_value_t = 5.0)]
    pub seconds_per_iteration: f64,
    /// Accounts onboarded in the first iteration.
    #[arg(long, default_value_t = 8)]
    pub accounts: u64,
    /// Concurrent connections of the load (and of the checks).
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// wal.checkpoint_every_records (small, so that checkpoints happen mid-drill).
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_every_records: u64,
    /// Random seed (default: from the clock); printed so a failure can be re-run.
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Deposit,
    Transfer,
    Freeze,
    Unfreeze,
    UnfreezePay,
    PayFreeze,
}

/// What a movement does, in account indexes and cents.
#[derive(Clone, Debug)]
struct Movement {
    kind: Kind,
    /// The payer, the hold's account (unfreeze, unfreeze_pay) or the
    /// credited account (deposit).
    account: usize,
    counterparty: Option<usize>,
    cents: i64,
}

impl Movement {
    /// The journal entries it must make: (account, kind, available_delta, frozen_delta).
    fn entries(&self) -> Vec<(usize, &'static str, i64, i64)> {
        let (a, c) = (self.account, self.cents);
        let b = self.counterparty.unwrap_or(usize::MAX);
        match self.kind {
            Kind::Deposit => vec![(a, "deposit", c, 0)],
            Kind::Transfer => vec![(a, "transfer_out", -c, 0), (b, "transfer_in", c, 0)],
            Kind::Freeze => vec![(a, "freeze", -c, c)],
            Kind::Unfreeze => vec![(a, "unfreeze", c, -c)],
            Kind::UnfreezePay => vec![(a, "unfreeze_pay_out", 0, -c), (b, "unfreeze_pay_in", c, 0)],
            Kind::PayFreeze => vec![(a, "pay_freeze_out", -c, 0), (b, "pay_freeze_in", 0, c)],
        }
    }
}

#[derive(Clone, Debug)]
enum Outcome {
    /// Sent, no answer yet.
    InFlight,
    /// 2xx: the `lsn` and body it was answered with.
    Acked { lsn: u64, body: Value },
    /// 4xx: must never be applied.
    Refused(String),
    /// No answer (the kill) or a 5xx: either wholly present or wholly absent.
    Unanswered(String),
    /// Was unanswered; found wholly present after a restart at this `lsn`.
    Present { lsn: u64 },
    /// Was unanswered; found absent after a restart.
    Absent,
}

#[derive(Clone, Debug)]
struct Op {
    id: String,
    movement: Movement,
    /// The request, re-sent after a restart to check idempotency.
    request: Option<(&'static str, Bytes)>,
    outcome: Outcome,
    /// Verified after a restart once already: its request and answer body
    /// were dropped then (memory stays bounded over long drills), and later
    /// checks read it back only through the journals and a sample of GETs.
    checked: bool,
}

pub async fn crash_drill(args: DrillArgs) -> Result<()> {
    if args.iterations == 0 || args.accounts < 2 {
        bail!("--iterations must be at least 1 and --accounts at least 2");
    }
    if !(args.seconds_per_iteration > 0.0 && args.seconds_per_iteration <= 3600.0) {
        bail!("--seconds-per-iteration must be 0 to 3600");
    }
    let seed = args.seed.unwrap_or_else(|| u64::from_str_radix(&run_tag(), 16).unwrap_or(1));
    eprintln!("crash-drill seed {seed} (re-run with --seed {seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let launch = args.server.launch();
    let mut work = args.server.work_dir(args.checkpoint_every_records)?;
    let result = drill_iterations(&args, &launch, &work, &mut rng).await;
    if result.is_err() {
        work.persist();
    }
    result
}

async fn drill_iterations(
    args: &DrillArgs,
    launch: &crate::server::Launch,
    work: &WorkDir,
    rng: &mut StdRng,
) -> Result<()> {
    let tokens = Tokens::dev()?;
    let run = run_tag();
    let mut ops: Vec<Op> = Vec::new();
    let mut accounts: Vec<Account> = Vec::new();
    let mut view = LedgerView::default();

    for iteration in 1..=args.iterations {
        let mut server = Server::start(launch, work).await?;
        eprintln!(
            "iteration {iteration}: server pid {} ready in {:.2}s at lsn {}",
            server.pid,
            server.spawn_to_ready.as_secs_f64(),
            server.ready_lsn
        );
        if iteration == 1 {
            accounts = open_accounts(&server.endpoint, &tokens, &run, args.accounts, &mut ops).await?;
        } else {
            let stats = verify(&server.endpoint, &tokens, &accounts, &mut ops, &mut view, args.connections, rng)
                .await
                .with_context(|| {
                    format!("after the kill of iteration {}; work directory {}", iteration - 1, work.path().display())
                })?;
            stats.print(iteration - 1);
        }
        let load_s = args.seconds_per_iteration * rng.gen_range(0.25..=1.0);
        let shared = Arc::new(Shared {
            endpoint: server.endpoint.clone(),
            tokens: tokens.clone(),
            accounts: Arc::new(accounts.clone()),
            ops: Mutex::new(Vec::new()),
            killed: AtomicBool::new(false),
            run: format!("{run}-{iteration}"),
        });
        let mut workers = Vec::new();
        for w in 0..args.connections.max(1) {
            workers.push(tokio::spawn(load_worker(shared.clone(), w, rng.gen())));
        }
        tokio::time::sleep(Duration::from_secs_f64(load_s)).await;
        server.check_alive().context("the server died under load before the planned kill")?;
        shared.killed.store(true, Ordering::SeqCst);
        server.kill9().await?;
        for worker in workers {
            // Workers end by themselves once they see the kill; bound the wait.
            match tokio::time::timeout(Duration::from_secs(90), worker).await {
                Ok(joined) => joined.context("load worker panicked")?,
                Err(_) => bail!("a load worker did not stop within 90 s of the kill"),
            }
        }
        let new_ops = std::mem::take(&mut *shared.ops.lock().unwrap_or_else(|p| p.into_inner()));
        let acked = new_ops.iter().filter(|o| matches!(o.outcome, Outcome::Acked { .. })).count();
        eprintln!(
            "iteration {iteration}: kill -9 after {load_s:.2}s of load: {} movements sent, {} acknowledged",
            thousands(new_ops.len() as u64),
            thousands(acked as u64)
        );
        ops.extend(new_ops.into_iter().map(|mut op| {
            if matches!(op.outcome, Outcome::InFlight) {
                op.outcome = Outcome::Unanswered("no answer before kill -9".to_string());
            }
            op
        }));
    }
    let server = Server::start(launch, work).await?;
    let stats = verify(&server.endpoint, &tokens, &accounts, &mut ops, &mut view, args.connections, rng)
        .await
        .with_context(|| format!("after the last kill; work directory {}", work.path().display()))?;
    stats.print(args.iterations);
    match server.terminate(Duration::from_secs(60)).await {
        Ok(status) if status.success() => {}
        Ok(status) => eprintln!("note: server exited with {status} after SIGTERM"),
        Err(err) => eprintln!("note: {err:#}"),
    }
    println!(
        "checked {} acknowledged movements ({} unanswered: {} present, {} absent; {} refused) over {} restarts",
        thousands(stats.acked as u64),
        thousands((stats.present + stats.absent) as u64),
        thousands(stats.present as u64),
        thousands(stats.absent as u64),
        thousands(stats.refused as u64),
        args.iterations
    );
    println!("{} iterations, 0 lost", args.iterations);
    Ok(())
}

/// Onboards the drill's accounts and funds each with a recorded deposit.
async fn open_accounts(
    endpoint: &Endpoint,
    tokens: &Tokens,
    run: &str,
    count: u64,
    ops: &mut Vec<Op>,
) -> Result<Vec<Account>> {
    let mut conn = Conn::new(endpoint.clone());
    let mut accounts = Vec::new();
    for n in 1..=count {
        let account = onboard_one(&mut conn, tokens, run, n, 0).await?;
        let id = format!("N-CD-{run}-open-{n}");
        let answer = deposit(&mut conn, &id, &account, OPENING_CENTS).await?;
        let lsn = credited_lsn(&answer, &account)?;
        ops.push(Op {
            id,
            movement: Movement {
                kind: Kind::Deposit,
                account: accounts.len(),
                counterparty: None,
                cents: OPENING_CENTS,
            },
            request: None,
            outcome: Outcome::Acked { lsn, body: answer.json()? },
            checked: false,
        });
        accounts.push(account);
    }
    eprintln!("opened {} accounts with {} each", accounts.len(), format_cents(OPENING_CENTS));
    Ok(accounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transfer_type_moves_exactly_its_amount() {
        for kind in [Kind::Transfer, Kind::Freeze, Kind::Unfreeze, Kind::UnfreezePay, Kind::PayFreeze] {
            let counterparty = matches!(kind, Kind::Transfer | Kind::UnfreezePay | Kind::PayFreeze).then_some(1);
            let m = Movement { kind, account: 0, counterparty, cents: 250 };
            let entries = m.entries();
            let total: i64 = entries.iter().map(|(_, _, a, f)| a + f).sum();
            assert_eq!(total, 0, "{kind:?} creates or destroys money");
            assert!(entries.iter().all(|(account, ..)| *account <= 1), "{kind:?}");
        }
        let deposit = Movement { kind: Kind::Deposit, account: 3, counterparty: None, cents: 250 };
        assert_eq!(deposit.entries(), vec![(3, "deposit", 250, 0)]);
    }
}
