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

struct Shared {
    endpoint: Endpoint,
    tokens: Tokens,
    accounts: Arc<Vec<Account>>,
    ops: Mutex<Vec<Op>>,
    killed: AtomicBool,
    run: String,
}

impl Shared {
    fn register(&self, ops: Vec<Op>) -> usize {
        let mut all = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        let first = all.len();
        all.extend(ops);
        first
    }

    fn settle(&self, index: usize, outcome: Outcome) {
        let mut all = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(op) = all.get_mut(index) {
            op.outcome = outcome;
        }
    }
}

/// Classifies a non-2xx (or missing) answer of a movement.
fn failed_outcome(status: Option<u16>, key: String) -> Outcome {
    match status {
        Some(s) if (400..500).contains(&s) => Outcome::Refused(key),
        _ => Outcome::Unanswered(key),
    }
}

fn ack_lsn(body: &Value) -> Option<u64> {
    body.get("lsn").and_then(Value::as_u64)
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
            let stats = verify(&server.endpoint, &tokens, &accounts, &mut ops, args.connections, rng)
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
    let stats = verify(&server.endpoint, &tokens, &accounts, &mut ops, args.connections, rng)
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

/// One worker of the load: random movements of every kind until the kill.
async fn load_worker(shared: Arc<Shared>, worker: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut conn = Conn::new(shared.endpoint.clone());
    let mut counter = 0u64;
    let n = shared.accounts.len();
    // Bounded even if the kill never came: at most an hour of load.
    let deadline = Instant::now() + Duration::from_secs(3600);
    while !shared.killed.load(Ordering::SeqCst) && Instant::now() < deadline {
        counter += 1;
        let id = format!("cd-{}-{worker}-{counter}", shared.run);
        let a = rng.gen_range(0..n);
        let b = (a + rng.gen_range(1..n)) % n;
        let alive = match rng.gen_range(0..100) {
            0..=9 => deposit_op(&shared, &mut conn, &id, a, rng.gen_range(1..=10_000)).await,
            10..=34 => {
                let m = Movement {
                    kind: Kind::Transfer,
                    account: a,
                    counterparty: Some(b),
                    cents: rng.gen_range(1..=5_000),
                };
                single(&shared, &mut conn, &id, m, None).await.is_some()
            }
            35..=54 => freeze_chain(&shared, &mut conn, &id, a, b, &mut rng).await,
            55..=74 => pay_freeze_chain(&shared, &mut conn, &id, a, b, &mut rng).await,
            75..=77 => {
                // More than any balance: refused (422), so it must never show up.
                let m = Movement { kind: Kind::Transfer, account: a, counterparty: Some(b), cents: REFUSED_CENTS };
                single(&shared, &mut conn, &id, m, None).await;
                true
            }
            _ => batch_op(&shared, &mut conn, &id, &mut rng).await,
        };
        if !alive && !shared.killed.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn transfer_body(id: &str, m: &Movement, hold_id: Option<&str>, accounts: &[Account], explicit_amount: bool) -> Value {
    let account = |i: usize| Value::from(&*accounts[i].id);
    let mut body = json!({"id": id});
    let kind = match m.kind {
        Kind::Transfer => "transfer",
        Kind::Freeze => "freeze",
        Kind::Unfreeze => "unfreeze",
        Kind::UnfreezePay => "unfreeze_pay",
        Kind::PayFreeze => "pay_freeze",
        Kind::Deposit => "deposit",
    };
    body["type"] = Value::from(kind);
    match m.kind {
        Kind::Unfreeze | Kind::UnfreezePay => {
            body["hold_id"] = Value::from(hold_id.unwrap_or_default());
        }
        _ => body["payer"] = account(m.account),
    }
    if let Some(b) = m.counterparty {
        body["payee"] = account(b);
    }
    if explicit_amount {
        body["amount"] = Value::from(format_cents(m.cents));
    }
    if m.kind == Kind::Transfer {
        body["order_id"] = Value::from(format!("o-{id}"));
    }
    body
}

/// Sends one movement as a single POST /v1/transfers; returns its ack body.
async fn single(shared: &Shared, conn: &mut Conn, id: &str, m: Movement, hold_id: Option<&str>) -> Option<Value> {
    single_with(shared, conn, id, m, hold_id, true).await
}

async fn single_with(
    shared: &Shared,
    conn: &mut Conn,
    id: &str,
    m: Movement,
    hold_id: Option<&str>,
    explicit_amount: bool,
) -> Option<Value> {
    let body = Bytes::from(transfer_body(id, &m, hold_id, &shared.accounts, explicit_amount).to_string());
    let index = shared.register(vec![Op {
        id: id.to_string(),
        movement: m,
        request: Some(("/v1/transfers", body.clone())),
        outcome: Outcome::InFlight,
        checked: false,
    }]);
    match conn.post("/v1/transfers", Some(&shared.tokens.platform), body).await {
        Ok(answer) if answer.status.as_u16() == 201 => match answer.json() {
            Ok(value) => {
                let lsn = ack_lsn(&value).unwrap_or(0);
                shared.settle(index, Outcome::Acked { lsn, body: value.clone() });
                Some(value)
            }
            Err(err) => {
                shared.settle(index, Outcome::Unanswered(format!("201 not JSON: {err:#}")));
                None
            }
        },
        Ok(answer) => {
            shared.settle(index, failed_outcome(Some(answer.status.as_u16()), answer.error_key()));
            None
        }
        Err(err) => {
            shared.settle(index, Outcome::Unanswered(format!("{err:#}")));
            None
        }
    }
}

async fn deposit_op(shared: &Shared, conn: &mut Conn, id: &str, account: usize, cents: i64) -> bool {
    let notification_id = format!("N{id}");
    let index = shared.register(vec![Op {
        id: notification_id.clone(),
        movement: Movement { kind: Kind::Deposit, account, counterparty: None, cents },
        request: None,
        outcome: Outcome::InFlight,
        checked: false,
    }]);
    let target = &shared.accounts[account];
    let result = match crate::setup::credit_notification(&notification_id, target, cents) {
        Ok((body, signature)) => {
            conn.send(hyper::Method::POST, &crate::setup::notifications_path(), None, Some(signature), Some(body)).await
        }
        Err(err) => Err(err),
    };
    match result {
        Ok(answer) if answer.status.as_u16() == 200 => {
            let outcome = match (answer.json(), credited_lsn(&answer, target)) {
                (Ok(body), Ok(lsn)) => Outcome::Acked { lsn, body },
                (_, Err(err)) => Outcome::Refused(format!("200 but not credited: {err:#}")),
                (Err(err), _) => Outcome::Unanswered(format!("{err:#}")),
            };
            let ok = matches!(outcome, Outcome::Acked { .. });
            shared.settle(index, outcome);
            ok
        }
        Ok(answer) => {
            shared.settle(index, failed_outcome(Some(answer.status.as_u16()), answer.error_key()));
            false
        }
        Err(err) => {
            shared.settle(index, Outcome::Unanswered(format!("{err:#}")));
            false
        }
    }
}

/// freeze x on A, unfreeze part of it, unfreeze_pay the rest (default amount) to B.
async fn freeze_chain(shared: &Shared, conn: &mut Conn, id: &str, a: usize, b: usize, rng: &mut StdRng) -> bool {
    let x = rng.gen_range(3..=3_000);
    let y = rng.gen_range(1..x);
    let freeze = Movement { kind: Kind::Freeze, account: a, counterparty: None, cents: x };
    if single(shared, conn, id, freeze, None).await.is_none() {
        return false;
    }
    let unfreeze = Movement { kind: Kind::Unfreeze, account: a, counterparty: None, cents: y };
    if single(shared, conn, &format!("{id}-u"), unfreeze, Some(id)).await.is_none() {
        return false;
    }
    let pay = Movement { kind: Kind::UnfreezePay, account: a, counterparty: Some(b), cents: x - y };
    single_with(shared, conn, &format!("{id}-p"), pay, Some(id), false).await.is_some()
}

/// pay_freeze x from A to B, then either unfreeze it on B or refund it to A.
async fn pay_freeze_chain(shared: &Shared, conn: &mut Conn, id: &str, a: usize, b: usize, rng: &mut StdRng) -> bool {
    let x = rng.gen_range(1..=3_000);
    let open = Movement { kind: Kind::PayFreeze, account: a, counterparty: Some(b), cents: x };
    if single(shared, conn, id, open, None).await.is_none() {
        return false;
    }
    let close = if rng.gen_bool(0.5) {
        Movement { kind: Kind::Unfreeze, account: b, counterparty: None, cents: x }
    } else {
        Movement { kind: Kind::UnfreezePay, account: b, counterparty: Some(a), cents: x }
    };
    single(shared, conn, &format!("{id}-c"), close, Some(id)).await.is_some()
}

/// A batch of up to 20 six-item chains touching every type.
async fn batch_op(shared: &Shared, conn: &mut Conn, id: &str, rng: &mut StdRng) -> bool {
    let n = shared.accounts.len();
    let chains = rng.gen_range(1..=20);
    let mut ops = Vec::new();
    let mut items = Vec::new();
    for c in 0..chains {
        let a = rng.gen_range(0..n);
        let b = (a + rng.gen_range(1..n)) % n;
        let x = rng.gen_range(3..=2_000);
        let y = rng.gen_range(1..x);
        let z = rng.gen_range(1..=2_000);
        let hold_f = format!("{id}-{c}-f");
        let hold_z = format!("{id}-{c}-z");
        let chain: [(String, Movement, Option<&str>); 6] = [
            (hold_f.clone(), Movement { kind: Kind::Freeze, account: a, counterparty: None, cents: x }, None),
            (
                format!("{id}-{c}-u"),
                Movement { kind: Kind::Unfreeze, account: a, counterparty: None, cents: y },
                Some(&hold_f),
            ),
            (
                format!("{id}-{c}-p"),
                Movement { kind: Kind::UnfreezePay, account: a, counterparty: Some(b), cents: x - y },
                Some(&hold_f),
            ),
            (hold_z.clone(), Movement { kind: Kind::PayFreeze, account: a, counterparty: Some(b), cents: z }, None),
            (
                format!("{id}-{c}-r"),
                Movement { kind: Kind::UnfreezePay, account: b, counterparty: Some(a), cents: z },
                Some(&hold_z),
            ),
            (
                format!("{id}-{c}-t"),
                Movement { kind: Kind::Transfer, account: a, counterparty: Some(b), cents: rng.gen_range(1..=2_000) },
                None,
            ),
        ];
        for (item_id, m, hold) in chain {
            // The unfreeze_pay of the freeze hold takes the default amount (the rest).
            let explicit = !item_id.ends_with("-p");
            items.push(transfer_body(&item_id, &m, hold, &shared.accounts, explicit));
            ops.push(Op { id: item_id, movement: m, request: None, outcome: Outcome::InFlight, checked: false });
        }
    }
    for (op, item) in ops.iter_mut().zip(&items) {
        op.request = Some(("/v1/transfers/batch", Bytes::from(json!({"transfers": [item]}).to_string())));
    }
    let count = ops.len();
    let first = shared.register(ops);
    let body = Bytes::from(json!({"transfers": items}).to_string());
    match conn.post("/v1/transfers/batch", Some(&shared.tokens.platform), body).await {
        Ok(answer) if answer.status.as_u16() == 200 => {
            let results = answer
                .json()
                .ok()
                .and_then(|v| v.get("results").and_then(Value::as_array).cloned())
                .unwrap_or_default();
            if results.len() != count {
                for i in 0..count {
                    shared.settle(
                        first + i,
                        Outcome::Unanswered(format!("batch answered {} results for {count} items", results.len())),
                    );
                }
                return false;
            }
            for (i, result) in results.into_iter().enumerate() {
                let status = result.get("status").and_then(Value::as_u64).unwrap_or(0) as u16;
                let body = result.get("body").cloned().unwrap_or(Value::Null);
                let outcome = if status == 201 {
                    Outcome::Acked { lsn: ack_lsn(&body).unwrap_or(0), body }
                } else {
                    failed_outcome(Some(status), crate::client::error_key(status, body.to_string().as_bytes()))
                };
                shared.settle(first + i, outcome);
            }
            true
        }
        Ok(answer) => {
            let outcome = failed_outcome(Some(answer.status.as_u16()), answer.error_key());
            for i in 0..count {
                shared.settle(first + i, outcome.clone());
            }
            false
        }
        Err(err) => {
            for i in 0..count {
                shared.settle(first + i, Outcome::Unanswered(format!("{err:#}")));
            }
            false
        }
    }
}

#[derive(Default)]
struct VerifyStats {
    acked: usize,
    present: usize,
    absent: usize,
    refused: usize,
    journal_entries: usize,
    customer_total_cents: i64,
    seconds: f64,
}

impl VerifyStats {
    fn print(&self, after_iteration: u32) {
        eprintln!(
            "iteration {after_iteration} verified in {:.2}s: {} acknowledged all present, {} unanswered present, {} absent, {} refused absent; {} journal entries; total {} conserved",
            self.seconds,
            thousands(self.acked as u64),
            thousands(self.present as u64),
            thousands(self.absent as u64),
            thousands(self.refused as u64),
            thousands(self.journal_entries as u64),
            format_cents(self.customer_total_cents)
        );
    }
}

struct JournalEntry {
    account: usize,
    kind: String,
    available_delta: i64,
    frozen_delta: i64,
    lsn: u64,
}

fn cents_field(value: &Value, name: &str) -> Result<i64> {
    let text =
        value.get(name).and_then(Value::as_str).with_context(|| format!("no string field {name:?} in {value}"))?;
    parse_cents(text)
}

/// Percent-encodes a query value (cursors are opaque).
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Checks everything after a restart; turns unanswered movements into
/// present or absent. Fails with every violation found.
async fn verify(
    endpoint: &Endpoint,
    tokens: &Tokens,
    accounts: &[Account],
    ops: &mut [Op],
    connections: usize,
    rng: &mut StdRng,
) -> Result<VerifyStats> {
    let started = Instant::now();
    let mut conn = Conn::new(endpoint.clone());
    let mut violations: Vec<String> = Vec::new();
    let mut stats = VerifyStats::default();

    // 1. Balances and journals.
    let ready = conn.get("/readyz", None).await?.json()?;
    let ready_lsn = ready.get("lsn").and_then(Value::as_u64).unwrap_or(0);
    let mut journal: HashMap<String, Vec<JournalEntry>> = HashMap::new();
    let mut customer_total = 0i64;
    for (index, account) in accounts.iter().enumerate() {
        let path = format!("/v1/accounts/{}", account.id);
        let value = read_json(&mut conn, &path, tokens).await?;
        let balance = value.get("balance").cloned().unwrap_or(Value::Null);
        let (total, available, frozen) =
            (cents_field(&balance, "total")?, cents_field(&balance, "available")?, cents_field(&balance, "frozen")?);
        customer_total += total;
        if total != available + frozen || available < 0 || frozen < 0 {
            violations.push(format!("{}: balance {balance} breaks total = available + frozen >= 0", account.id));
        }
        let (mut sum_available, mut sum_frozen, mut last_lsn) = (0i64, 0i64, 0u64);
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            pages += 1;
            if pages > 100_000 {
                bail!("journal of {} does not end after 100,000 pages", account.id);
            }
            let mut path = format!("/v1/accounts/{}/journal?limit=1000", account.id);
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={}", query_escape(c)));
            }
            let page = read_json(&mut conn, &path, tokens).await?;
            let items = page.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
            for entry in &items {
                let lsn = entry.get("lsn").and_then(Value::as_u64).unwrap_or(0);
                let available_delta = cents_field(entry, "available_delta")?;
                let frozen_delta = cents_field(entry, "frozen_delta")?;
                sum_available += available_delta;
                sum_frozen += frozen_delta;
                if lsn <= last_lsn {
                    violations.push(format!("{}: journal lsn {lsn} after {last_lsn}: not increasing", account.id));
                }
                last_lsn = lsn;
                let after = (
                    cents_field(entry, "available_after")?,
                    cents_field(entry, "frozen_after")?,
                    cents_field(entry, "total_after")?,
                );
                if after != (sum_available, sum_frozen, sum_available + sum_frozen) {
                    violations.push(format!(
                        "{}: journal entry at lsn {lsn} says after = {after:?}, the deltas so far sum to ({sum_available}, {sum_frozen})",
                        account.id
                    ));
                }
                let transfer_id = entry.get("transfer_id").and_then(Value::as_str).unwrap_or("").to_string();
                journal.entry(transfer_id).or_default().push(JournalEntry {
                    account: index,
                    kind: entry.get("kind").and_then(Value::as_str).unwrap_or("").to_string(),
                    available_delta,
                    frozen_delta,
                    lsn,
                });
                stats.journal_entries += 1;
            }
            cursor = page.get("next_cursor").and_then(Value::as_str).map(str::to_string);
            if cursor.is_none() {
                break;
            }
            if items.is_empty() {
                bail!("journal of {}: an empty page with a next_cursor", account.id);
            }
        }
        if (sum_available, sum_frozen) != (available, frozen) {
            violations.push(format!(
                "{}: journal sums to available {} frozen {}, balance says {} / {}",
                account.id,
                format_cents(sum_available),
                format_cents(sum_frozen),
                format_cents(available),
                format_cents(frozen)
            ));
        }
    }

    // 2. The transfer records, fetched concurrently.
    let records = fetch_transfers(endpoint, tokens, ops, connections, rng).await?;

    // 3. Every movement against what the ledger shows.
    let mut deposits_in = 0i64;
    let mut max_acked_lsn = 0u64;
    for (i, op) in ops.iter_mut().enumerate() {
        let found = journal.remove(&op.id).unwrap_or_default();
        let record = records.get(&i);
        let expected = op.movement.entries();
        let matches_whole = |entries: &[JournalEntry], lsn: Option<u64>| -> bool {
            let mut want: Vec<(usize, &str, i64, i64)> = expected.clone();
            let mut got: Vec<(usize, &str, i64, i64)> =
                entries.iter().map(|e| (e.account, e.kind.as_str(), e.available_delta, e.frozen_delta)).collect();
            want.sort();
            got.sort();
            want == got && entries.iter().all(|e| Some(e.lsn) == lsn.or(Some(entries[0].lsn)))
        };
        let is_transfer = op.movement.kind != Kind::Deposit;
        match op.outcome.clone() {
            Outcome::Acked { lsn, .. } | Outcome::Present { lsn } => {
                max_acked_lsn = max_acked_lsn.max(lsn);
                if !matches_whole(&found, Some(lsn)) {
                    violations.push(format!(
                        "LOST or altered: acknowledged {} {:?} (lsn {lsn}): journal shows {}",
                        op.id,
                        op.movement,
                        describe(&found, accounts)
                    ));
                }
                if is_transfer {
                    match record {
                        Some(Some(record)) => {
                            if record.get("lsn").and_then(Value::as_u64) != Some(lsn) {
                                violations.push(format!("{}: acknowledged with lsn {lsn}, GET shows {record}", op.id));
                            }
                            if let Some(ack) = body_of(&op.outcome) {
                                for field in
                                    ["id", "type", "payer", "payee", "amount", "order_id", "receipt_no", "committed_at"]
                                {
                                    if ack.get(field) != record.get(field) {
                                        violations.push(format!(
                                            "{}: field {field} was {} in the acknowledgement, GET shows {}",
                                            op.id,
                                            ack.get(field).unwrap_or(&Value::Null),
                                            record.get(field).unwrap_or(&Value::Null)
                                        ));
                                    }
                                }
                            }
                        }
                        Some(None) => {
                            violations.push(format!("LOST: acknowledged {} (lsn {lsn}) is 404 after restart", op.id))
                        }
                        None => {}
                    }
                }
                if op.movement.kind == Kind::Deposit {
                    deposits_in += op.movement.cents;
                }
                match op.outcome {
                    Outcome::Acked { .. } => stats.acked += 1,
                    _ => stats.present += 1,
                }
            }
            Outcome::Unanswered(reason) => {
                let record_present = matches!(record, Some(Some(_)));
                if found.is_empty() && !record_present {
                    op.outcome = Outcome::Absent;
                    stats.absent += 1;
                } else if matches_whole(&found, None) && (record_present || !is_transfer) {
                    let lsn = found[0].lsn;
                    if let Some(Some(record)) = record {
                        if record.get("lsn").and_then(Value::as_u64) != Some(lsn) {
                            violations.push(format!("{}: journal lsn {lsn}, GET shows {record}", op.id));
                        }
                    }
                    op.outcome = Outcome::Present { lsn };
                    if op.movement.kind == Kind::Deposit {
                        deposits_in += op.movement.cents;
                    }
                    stats.present += 1;
                } else {
                    violations.push(format!(
                        "PARTIAL: unanswered ({reason}) {} {:?}: journal shows {}, GET record present: {record_present}",
                        op.id,
                        op.movement,
                        describe(&found, accounts)
                    ));
                }
            }
            Outcome::InFlight => bail!("{} still in flight at verification", op.id),
            Outcome::Absent | Outcome::Refused(_) => {
                if !found.is_empty() || matches!(record, Some(Some(_))) {
                    violations.push(format!(
                        "APPLIED but {}: {} {:?}: journal shows {}",
                        match &op.outcome {
                            Outcome::Refused(key) => format!("refused with {key}"),
                            _ => "found absent after an earlier restart".to_string(),
                        },
                        op.id,
                        op.movement,
                        describe(&found, accounts)
                    ));
                }
                match op.outcome {
                    Outcome::Refused(_) => stats.refused += 1,
                    _ => stats.absent += 1,
                }
            }
        }
    }
    for (id, entries) in &journal {
        violations
            .push(format!("journal entries for {id:?} that the drill never sent: {}", describe(entries, accounts)));
    }
    if ready_lsn < max_acked_lsn {
        violations.push(format!("/readyz lsn {ready_lsn} is below the highest acknowledged lsn {max_acked_lsn}"));
    }

    // 4. Conservation.
    if customer_total != deposits_in {
        violations.push(format!(
            "money not conserved: accounts hold {} in total, deposits acknowledged or present add up to {}",
            format_cents(customer_total),
            format_cents(deposits_in)
        ));
    }
    stats.customer_total_cents = customer_total;
    trial_balance(&mut conn, tokens, customer_total, &mut violations).await;

    // 5. Idempotency across the restart.
    retry_acknowledged(&mut conn, tokens, ops, rng, &mut violations).await;

    if !violations.is_empty() {
        let shown: Vec<&String> = violations.iter().take(VIOLATIONS_SHOWN).collect();
        let more = violations.len().saturating_sub(VIOLATIONS_SHOWN);
        bail!(
            "{} violation(s):\n  {}{}",
            violations.len(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  "),
            if more > 0 { format!("\n  ... and {more} more") } else { String::new() }
        );
    }
    for op in ops.iter_mut() {
        op.checked = true;
        op.request = None;
        if let Outcome::Acked { body, .. } = &mut op.outcome {
            *body = Value::Null;
        }
    }
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// GET that must answer 200 (after 429/503 with their Retry-After: a
/// server may still be opening its ledger right after /readyz).
async fn read_json(conn: &mut Conn, path: &str, tokens: &Tokens) -> Result<Value> {
    let answer = send_retrying(conn, hyper::Method::GET, path, Some(&tokens.platform), None, None, true).await?;
    if answer.status.as_u16() != 200 {
        bail!("GET {path}: {} {}", answer.status, answer.body_text());
    }
    answer.json()
}

fn body_of(outcome: &Outcome) -> Option<&Value> {
    match outcome {
        Outcome::Acked { body, .. } if !body.is_null() => Some(body),
        _ => None,
    }
}

fn describe(entries: &[JournalEntry], accounts: &[Account]) -> String {
    if entries.is_empty() {
        return "no entries".to_string();
    }
    entries
        .iter()
        .map(|e| {
            format!(
                "{} {} {}/{} at lsn {}",
                accounts.get(e.account).map(|a| &*a.id).unwrap_or("?"),
                e.kind,
                format_cents(e.available_delta),
                format_cents(e.frozen_delta),
                e.lsn
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// GET /v1/transfers/{id} for every transfer-kind movement not checked
/// before and a sample of those that were, over several connections:
/// index -> Some(record) or None for 404.
async fn fetch_transfers(
    endpoint: &Endpoint,
    tokens: &Tokens,
    ops: &[Op],
    connections: usize,
    rng: &mut StdRng,
) -> Result<HashMap<usize, Option<Value>>> {
    let older = ops.iter().filter(|op| op.checked).count().max(1);
    let keep_older = (OLDER_SAMPLE as f64 / older as f64).min(1.0);
    let wanted: Vec<(usize, String)> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| op.movement.kind != Kind::Deposit)
        .filter(|(_, op)| !op.checked || rng.gen_bool(keep_older))
        .map(|(i, op)| (i, op.id.clone()))
        .collect();
    let wanted = Arc::new(wanted);
    let tasks = connections.clamp(1, 64);
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (wanted, endpoint, auth) = (wanted.clone(), endpoint.clone(), tokens.platform.clone());
        handles.push(tokio::spawn(async move {
            let mut conn = Conn::new(endpoint);
            let mut out = Vec::new();
            for (i, id) in wanted.iter().skip(t).step_by(tasks) {
                let path = format!("/v1/transfers/{id}");
                let answer = send_retrying(&mut conn, hyper::Method::GET, &path, Some(&auth), None, None, true).await?;
                match answer.status.as_u16() {
                    200 => out.push((*i, Some(answer.json()?))),
                    404 => out.push((*i, None)),
                    _ => bail!("GET {path}: {} {}", answer.status, answer.body_text()),
                }
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut records = HashMap::new();
    for handle in handles {
        records.extend(handle.await??);
    }
    Ok(records)
}

/// The ledger's own double-entry check must agree (skipped if not served).
async fn trial_balance(conn: &mut Conn, tokens: &Tokens, customer_total: i64, violations: &mut Vec<String>) {
    let Ok(answer) = conn.get("/v1/ledger/trial-balance", Some(&tokens.finance)).await else {
        return;
    };
    if answer.status.as_u16() != 200 {
        return;
    }
    let Ok(value) = answer.json() else { return };
    if value.get("balanced") != Some(&Value::Bool(true)) {
        violations.push(format!("trial balance not balanced: {value}"));
    }
    if let Ok(total) = cents_field(&value, "customer_total") {
        if total != customer_total {
            violations.push(format!(
                "trial balance customer_total {} != sum of account totals {}",
                format_cents(total),
                format_cents(customer_total)
            ));
        }
    }
}

/// Re-sends some acknowledged requests: each must get its original answer.
async fn retry_acknowledged(
    conn: &mut Conn,
    tokens: &Tokens,
    ops: &[Op],
    rng: &mut StdRng,
    violations: &mut Vec<String>,
) {
    let candidates: Vec<&Op> = ops
        .iter()
        .filter(|op| !op.checked && op.request.is_some() && matches!(op.outcome, Outcome::Acked { .. }))
        .collect();
    if candidates.is_empty() {
        return;
    }
    for _ in 0..RETRIES_PER_CHECK.min(candidates.len()) {
        let op = candidates[rng.gen_range(0..candidates.len())];
        let (Some((path, body)), Some(original)) = (&op.request, body_of(&op.outcome)) else {
            continue;
        };
        let answer = match send_retrying(
            conn,
            hyper::Method::POST,
            path,
            Some(&tokens.platform),
            None,
            Some(body.clone()),
            true,
        )
        .await
        {
            Ok(answer) => answer,
            Err(err) => {
                violations.push(format!("retry of {}: {err:#}", op.id));
                continue;
            }
        };
        let (status, got) = if path.ends_with("/batch") {
            let value = answer.json().unwrap_or(Value::Null);
            let first = value.pointer("/results/0").cloned().unwrap_or(Value::Null);
            (
                first.get("status").and_then(Value::as_u64).unwrap_or(0),
                first.get("body").cloned().unwrap_or(Value::Null),
            )
        } else {
            (u64::from(answer.status.as_u16()), answer.json().unwrap_or(Value::Null))
        };
        if status != 201 || &got != original {
            violations.push(format!(
                "idempotency: retry of acknowledged {} after restart answered {status} {got}, originally {original}",
                op.id
            ));
        }
    }
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

    #[test]
    fn cursors_are_escaped() {
        assert_eq!(query_escape("abc-1_2.3~"), "abc-1_2.3~");
        assert_eq!(query_escape("a b/c=d+e"), "a%20b%2Fc%3Dd%2Be");
    }
}
