//! The outbox: bank work derived from the durable log, sent at least once,
//! idempotent at the bank by the ledger's reference.
//!
//! Fed by the history indexer ([`crate::finance::history`]), which sees
//! every record once it is durable and in lsn order, so nothing reaches the
//! bank before the ledger's own record of it is on disk (a crash can never
//! leave a payout the log does not know of). At start-up, recovery hands
//! over what the log left pending (withdrawals still processing,
//! instructions without a `BankSynced` record), and the outbox asks the
//! bank about each before sending anything again.
//!
//! Two kinds of work:
//! - Payouts (withdrawals), one by one: the final answer goes to the
//!   account's actor as a [`FinishWithdrawal`] (it ignores a second answer
//!   for a withdrawal already finished).
//! - Instructions that mirror committed movements (强制转账 for each of the
//!   five transfer types, 调帐 for adjustment deposits, 退票 for suspense
//!   returns), batched per bank (up to [`INSTRUCTION_BATCH_MAX`] in one
//!   call, calls at most every [`INSTRUCTION_CALL_INTERVAL`] unless a
//!   batch is full): the bank's answers are appended to the log as `BankSynced`
//!   records (one append per batch), which is what `bank_sync` shows.
//!
//! Every call has a timeout; a transient error is retried with capped
//! exponential backoff; an unknown outcome (a timeout) is resolved by a
//! status query by reference before any resend. Calls run on the blocking
//! pool, at most [`BANK_CALLS_IN_FLIGHT_MAX`] at once; the queue never
//! blocks a transfer (the indexer only enqueues).
//!
//! Bounded: at most `limits.bank_queue_instructions` instructions wait in
//! memory ([`InstructionQueue`]). Past that (the bank is slower than the
//! ledger for long), new ones are deferred ([`Deferred`]): only the lsns of
//! their records are kept (a compressed bitmap, about a bit each), and as
//! places free up the history indexer reads those records back from the
//! log (in runs, [`fundledger_wal::Wal::read_run`]) and hands their
//! instructions over, oldest first. While any are deferred, new ones queue
//! behind them, so each bank still gets its instructions in lsn order.
//! Their `bank_sync` shows `pending` meanwhile. The ledger never slows down
//! for the bank. Payouts are never deferred (each holds money frozen; there
//! are as many as withdrawals in processing). What the log left pending at
//! start-up is deferred the same way, marked resumed (asked about first).
//!
//! Metrics: `fundledger_bank_work_enqueued_total` and
//! `fundledger_bank_work_answered_total` (by `kind`, `payout` or
//! `instruction`); their difference is the work waiting for the bank in
//! memory. `fundledger_bank_work_deferred_total` counts deferrals, and
//! `fundledger_bank_work_deferred` is how many wait in the log now.
//!
//! Must not change balances: it sends messages to account actors and
//! appends only `BankSynced` facts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use roaring::RoaringTreemap;
use tokio::sync::{mpsc, Semaphore};

use super::account::FinishWithdrawal;
use super::bank::{AccountNo, BankAnswer, BankApi, Banks, CallError, InstructionRequest, PayoutRequest};
use super::directory::Directory;
use super::log::LedgerLog;
use crate::domain::ids::AccountId;
use crate::domain::money::Money;
use crate::domain::record::{BankSync, InstructionKind, PayoutOutcome, Record, Withdrawal};
use crate::domain::suspense::SuspenseBook;

/// Bank calls running at once, over every bank.
pub const BANK_CALLS_IN_FLIGHT_MAX: usize = 64;

/// How long one bank call may take before its outcome counts as unknown.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

const BACKOFF_FIRST: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Instructions sent to one bank in one call.
pub const INSTRUCTION_BATCH_MAX: usize = 4096;

/// Calls to one bank start at most this often, unless a batch is full:
/// instructions that come in a steady trickle (single transfers, a few
/// per millisecond) wait up to this long and go together instead of in a
/// call each. Each call is a round trip to the bank (the sandbox's: a
/// blocking-pool wake-up, a write and an fsync of its books) and an append
/// of its answers to the log; at 10,000 single transfers a second they
/// came in thousands of calls of a few instructions, each fsync beside
/// the log's own. The mirror at the bank runs this much later at most.
pub const INSTRUCTION_CALL_INTERVAL: Duration = Duration::from_millis(5);

/// Places for instructions waiting in memory for their bank, over every
/// bank (`limits.bank_queue_instructions`; about 150 bytes each). The
/// history indexer takes one per instruction it hands over; the batchers
/// give them back once the bank answered (or the instruction is dropped).
#[derive(Debug)]
pub struct InstructionQueue {
    queued: AtomicUsize,
    max: usize,
}

impl InstructionQueue {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { queued: AtomicUsize::new(0), max })
    }

    /// Take a place; `false` when the queue is full.
    pub fn reserve(&self) -> bool {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Places free now (only the indexer takes them, so they stay free
    /// until it does).
    pub fn room(&self) -> usize {
        self.max.saturating_sub(self.queued.load(Ordering::Acquire))
    }

    fn release(&self, count: usize) {
        let before = self.queued.fetch_sub(count, Ordering::AcqRel);
        debug_assert!(before >= count, "released {count} of {before} places taken");
    }
}

/// Deferred instructions: the lsns of the durable records that ask for
/// them, waiting in the log for room in the [`InstructionQueue`]. Owned by
/// the history indexer, which reads them back ([`Deferred::next_runs`]).
#[derive(Debug)]
pub struct Deferred {
    lsns: RoaringTreemap,
    /// Records up to here were folded at start-up: their instructions may
    /// have reached the bank before a crash, so they are asked about first.
    resumed_through: u64,
    /// `fundledger_bank_work_deferred_total`, looked up once: a deferral
    /// happens per instruction while the bank is behind.
    deferrals: metrics::Counter,
}

impl Default for Deferred {
    fn default() -> Self {
        Self {
            lsns: RoaringTreemap::new(),
            resumed_through: 0,
            deferrals: metrics::counter!("fundledger_bank_work_deferred_total"),
        }
    }
}

/// Lsns at most this far apart are read as one run: the records between
/// are read and skipped, cheaper than finding the next one anew.
const RUN_GAP_MAX: u64 = 64;

impl Deferred {
    /// What start-up found pending (the records up to `resumed_through`).
    pub fn resume(&mut self, pending: RoaringTreemap, resumed_through: u64) {
        self.lsns |= pending;
        self.resumed_through = resumed_through;
        self.report();
    }

    pub fn defer(&mut self, lsn: u64) {
        self.lsns.insert(lsn);
        self.deferrals.increment(1);
    }

    pub fn is_empty(&self) -> bool {
        self.lsns.is_empty()
    }

    pub fn is_resumed(&self, lsn: u64) -> bool {
        lsn <= self.resumed_through
    }

    /// The oldest `count` lsns (at most), as runs `(first, last)` to read,
    /// and the lsns themselves, oldest first. They stay deferred until
    /// [`Self::sent`].
    pub fn next_runs(&self, count: usize) -> (Vec<(u64, u64)>, Vec<u64>) {
        let lsns: Vec<u64> = self.lsns.iter().take(count).collect();
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for &lsn in &lsns {
            match runs.last_mut() {
                Some((_, last)) if lsn - *last <= RUN_GAP_MAX => *last = lsn,
                _ => runs.push((lsn, lsn)),
            }
        }
        (runs, lsns)
    }

    pub fn contains(&self, lsn: u64) -> bool {
        self.lsns.contains(lsn)
    }

    /// These lsns left the log for the queue (or cannot be sent at all).
    pub fn sent(&mut self, lsns: impl IntoIterator<Item = u64>) {
        for lsn in lsns {
            self.lsns.remove(lsn);
        }
    }

    pub fn len(&self) -> u64 {
        self.lsns.len()
    }

    /// Sets `fundledger_bank_work_deferred`.
    pub fn report(&self) {
        metrics::gauge!("fundledger_bank_work_deferred").set(self.len() as f64);
    }
}

/// One piece of bank work.
#[derive(Clone, Debug)]
pub enum BankWork {
    /// Pay a withdrawal out. `resumed`: recovered from the log after a
    /// restart, so its outcome is unknown: query before sending.
    Payout {
        withdrawal: Arc<Withdrawal>,
        resumed: bool,
    },
    Instruction(InstructionWork),
}

/// One side of an instruction, resolved to an account number when sent.
#[derive(Clone, Debug)]
pub enum Party {
    /// A customer's sub-account at its bank.
    Account(AccountId),
    /// The bank's public adjustment account (公共调帐户).
    PublicAdjustment,
    AccountNo(Box<str>),
}

#[derive(Clone, Debug)]
pub struct InstructionWork {
    /// The lsn of the record that asks for it, named in the bank's answer.
    pub lsn: u64,
    pub reference: Box<str>,
    pub kind: InstructionKind,
    /// The bank; `None` for movements: the bank of the `from` account.
    pub bank: Option<Box<str>>,
    pub from: Party,
    pub to: Party,
    pub amount: Money,
    /// Recovered after a restart: ask the bank before sending.
    pub resumed: bool,
}

/// The reference of the instruction a durable record asks the bank for,
/// if any: what [`instruction_for`] would build, without building it.
pub fn instruction_reference<'a>(record: &'a Record, suspense: &SuspenseBook) -> Option<&'a str> {
    match record {
        Record::Movement(movement) => Some(&movement.id),
        Record::AdjustmentDeposit(adjustment) => suspense.get(adjustment.suspense_id).map(|_| &*adjustment.id),
        Record::SuspenseReturned(returned) => suspense.get(returned.suspense_id).map(|_| &*returned.id),
        _ => None,
    }
}

/// The instruction the durable record at `lsn` asks the bank for, if any.
/// `suspense` must already include `record` (a return names its entry).
pub fn instruction_for(lsn: u64, record: &Record, suspense: &SuspenseBook, resumed: bool) -> Option<InstructionWork> {
    Some(match record {
        Record::Movement(movement) => {
            let payee = movement.payee.filter(|_| movement.kind.has_payee()).unwrap_or(movement.payer);
            InstructionWork {
                lsn,
                reference: movement.id.clone(),
                kind: InstructionKind::ForcedTransfer,
                bank: None,
                from: Party::Account(movement.payer),
                to: Party::Account(payee),
                amount: movement.amount,
                resumed,
            }
        }
        Record::AdjustmentDeposit(adjustment) => {
            let entry = &suspense.get(adjustment.suspense_id)?.entry;
            InstructionWork {
                lsn,
                reference: adjustment.id.clone(),
                kind: InstructionKind::Adjustment,
                bank: Some(entry.notification.bank.clone()),
                from: Party::PublicAdjustment,
                to: Party::Account(adjustment.account_id),
                amount: adjustment.amount,
                resumed,
            }
        }
        Record::SuspenseReturned(returned) => {
            let notification = &suspense.get(returned.suspense_id)?.entry.notification;
            InstructionWork {
                lsn,
                reference: returned.id.clone(),
                kind: InstructionKind::Return,
                bank: Some(notification.bank.clone()),
                from: Party::AccountNo(notification.to_account_no.clone()),
                to: Party::AccountNo(notification.payer_account_no.clone()),
                amount: returned.amount,
                resumed,
            }
        }
        _ => return None,
    })
}

pub type OutboxSender = mpsc::UnboundedSender<BankWork>;

/// Start the outbox on the current (actix) runtime.
pub fn start(
    banks: Arc<Banks>,
    directory: Arc<Directory>,
    log: LedgerLog,
    queue: Arc<InstructionQueue>,
) -> OutboxSender {
    let (sender, mut receiver) = mpsc::unbounded_channel::<BankWork>();
    // Every series exists from start-up, at zero, so a dashboard (and a
    // scrape right after a restart with nothing left to send) sees them.
    metrics::counter!("fundledger_bank_work_deferred_total").increment(0);
    metrics::gauge!("fundledger_bank_work_deferred").set(0.0);
    for kind in ["payout", "instruction"] {
        metrics::counter!("fundledger_bank_work_enqueued_total", "kind" => kind).increment(0);
        metrics::counter!("fundledger_bank_work_answered_total", "kind" => kind).increment(0);
    }
    let in_flight = Arc::new(Semaphore::new(BANK_CALLS_IN_FLIGHT_MAX));
    let mut router = Router { batchers: Vec::new(), by_bank_index: Vec::new(), sole: None, queue: Arc::clone(&queue) };
    for config in banks.configs() {
        let (batch_sender, batch_receiver) = mpsc::unbounded_channel::<InstructionWork>();
        let context = Batcher {
            code: config.code.as_str().into(),
            banks: Arc::clone(&banks),
            directory: Arc::clone(&directory),
            log: log.clone(),
            in_flight: Arc::clone(&in_flight),
            queue: Arc::clone(&queue),
            answered: metrics::counter!("fundledger_bank_work_answered_total", "kind" => "instruction"),
        };
        actix::spawn(context.run(batch_receiver));
        router.batchers.push((config.code.as_str().into(), batch_sender));
    }
    // The handles, looked up once: a labelled lookup per item cost more
    // than the routing (callgrind, docs/PERFORMANCE.md).
    let enqueued_payouts = metrics::counter!("fundledger_bank_work_enqueued_total", "kind" => "payout");
    let enqueued_instructions = metrics::counter!("fundledger_bank_work_enqueued_total", "kind" => "instruction");
    actix::spawn(async move {
        let mut burst = Vec::with_capacity(INSTRUCTION_BATCH_MAX);
        // Whatever arrived meanwhile is routed in one go and counted once.
        while receiver.recv_many(&mut burst, INSTRUCTION_BATCH_MAX).await > 0 {
            let mut payouts = 0;
            let mut instructions = 0;
            router.begin_burst(&directory);
            for work in burst.drain(..) {
                match work {
                    BankWork::Instruction(instruction) => {
                        instructions += 1;
                        router.route(&directory, instruction);
                    }
                    payout => {
                        payouts += 1;
                        let banks = Arc::clone(&banks);
                        let directory = Arc::clone(&directory);
                        let in_flight = Arc::clone(&in_flight);
                        actix::spawn(async move { run(payout, &banks, &directory, &in_flight).await });
                    }
                }
            }
            enqueued_payouts.increment(payouts);
            enqueued_instructions.increment(instructions);
        }
    });
    sender
}

/// Finds each instruction's bank batcher.
struct Router {
    /// Few banks: a linear search by code finds a batcher without hashing
    /// or allocating a key per instruction.
    batchers: Vec<(Box<str>, mpsc::UnboundedSender<InstructionWork>)>,
    /// Batcher (position in `batchers`) by [`Directory::bank_codes`] index,
    /// `None` for a code with no bank configured; refreshed when an account
    /// names an index past its end.
    by_bank_index: Vec<Option<usize>>,
    /// `Some(batcher)` while the directory knows a single bank code (one
    /// partner bank, the usual deployment): every account's instruction
    /// goes to that code's batcher, and routing reads no account's entry
    /// (a cache miss per instruction over a million accounts, 95 ns per
    /// transfer in a profile; docs/PERFORMANCE.md). Set by
    /// [`Router::begin_burst`].
    sole: Option<Option<usize>>,
    queue: Arc<InstructionQueue>,
}

impl Router {
    /// Before routing a burst: whether one bank code is all the directory
    /// knows. Codes are only added, each before any account that names it
    /// exists, so an instruction routed after this (whose account existed
    /// when its record was written) names that code.
    fn begin_burst(&mut self, directory: &Directory) {
        self.sole = (directory.bank_code_count() == 1).then(|| self.by_index(directory, 0));
    }

    /// Hand an instruction to its bank's batcher: the bank named in it, or
    /// else that of its `from` account.
    fn route(&mut self, directory: &Directory, instruction: InstructionWork) {
        let batcher = match (&instruction.bank, &instruction.from) {
            (Some(bank), _) => self.by_code(bank),
            (None, Party::Account(_)) if self.sole.is_some() => self.sole.flatten(),
            (None, Party::Account(id)) => self.by_account(directory, *id),
            (None, _) => None,
        };
        match batcher {
            Some(batcher) => {
                let _ = self.batchers[batcher].1.send(instruction);
            }
            None => {
                self.queue.release(1);
                tracing::error!(reference = %instruction.reference, "no bank for an instruction");
            }
        }
    }

    fn by_code(&self, code: &str) -> Option<usize> {
        self.batchers.iter().position(|(known, _)| **known == *code)
    }

    /// The batcher of the account's bank, from the byte its directory entry
    /// keeps (a million accounts' application strings are cache misses).
    fn by_account(&mut self, directory: &Directory, id: AccountId) -> Option<usize> {
        let entry = directory.get(id)?;
        let index = entry.bank_index();
        if index == super::directory::BANK_UNINDEXED {
            return self.by_code(entry.info.bank());
        }
        self.by_index(directory, usize::from(index))
    }

    /// The batcher of the bank code at `index` in [`Directory::bank_codes`].
    fn by_index(&mut self, directory: &Directory, index: usize) -> Option<usize> {
        if index >= self.by_bank_index.len() {
            self.by_bank_index = directory.bank_codes().iter().map(|code| self.by_code(code)).collect();
        }
        self.by_bank_index.get(index).copied().flatten()
    }
}

/// How many instructions ahead a batch loads its parties' directory
/// entries (which hold their banks and sub-account numbers).
const PREFETCH_AHEAD: usize = 8;

/// Sends one bank's instructions in batches, one batch at a time, and
/// records the answers.
struct Batcher {
    code: Box<str>,
    banks: Arc<Banks>,
    directory: Arc<Directory>,
    log: LedgerLog,
    in_flight: Arc<Semaphore>,
    queue: Arc<InstructionQueue>,
    answered: metrics::Counter,
}

/// How often recording the bank's answers is tried while the log turns
/// appends away (overloaded): unrecorded answers are asked again after a
/// restart.
const RECORD_ATTEMPTS_MAX: u32 = 50;

impl Batcher {
    async fn run(self, mut receiver: mpsc::UnboundedReceiver<InstructionWork>) {
        let mut batch = Vec::with_capacity(INSTRUCTION_BATCH_MAX);
        let mut last_call = None;
        while next_batch(&mut receiver, &mut batch, &mut last_call, INSTRUCTION_CALL_INTERVAL).await > 0 {
            // A full-sized buffer for the next batch: one taken empty would
            // grow (and copy) its way up to the batch size each time.
            let work = std::mem::replace(&mut batch, Vec::with_capacity(INSTRUCTION_BATCH_MAX));
            self.send(work).await;
        }
    }

    fn account_no(&self, party: &Party) -> AccountNo {
        match party {
            Party::Account(id) => {
                self.directory.get(*id).and_then(|entry| entry.sub_account_no_copy()).unwrap_or_default()
            }
            Party::PublicAdjustment => self
                .banks
                .get(&self.code)
                .map(|bank| bank.config.public_adjustment_account.as_str())
                .unwrap_or("")
                .into(),
            Party::AccountNo(number) => AccountNo::from(&**number),
        }
    }

    async fn send(&self, work: Vec<InstructionWork>) {
        let Some(bank) = self.banks.get(&self.code) else {
            self.queue.release(work.len());
            return;
        };
        let count = work.len();
        let query_first = work.iter().any(|item| item.resumed);
        let lsns: Vec<u64> = work.iter().map(|item| item.lsn).collect();
        // The references move into the requests and from there into the
        // records: no copy per instruction.
        // Over many accounts each party's entry (which holds its number) is
        // a miss: those of the instructions a few places ahead are loaded
        // meanwhile.
        let mut requests: Vec<InstructionRequest> = Vec::with_capacity(count);
        let mut work = work.into_iter();
        loop {
            if let Some(item) = work.as_slice().get(PREFETCH_AHEAD) {
                for party in [&item.from, &item.to] {
                    if let Party::Account(id) = party {
                        self.directory.prefetch_entry(*id);
                    }
                }
            }
            let Some(item) = work.next() else { break };
            requests.push(InstructionRequest {
                from_account_no: self.account_no(&item.from),
                to_account_no: self.account_no(&item.to),
                reference: item.reference,
                kind: item.kind,
                amount: item.amount,
            });
        }
        let (requests, answers) = batch_until_final(&bank.api, &self.in_flight, requests, query_first).await;
        self.answered.increment(count as u64);
        self.queue.release(count);
        let at_ms = crate::clock::now_ms();
        let records: Vec<Record> = requests
            .into_iter()
            .zip(answers)
            .zip(lsns)
            .map(|((request, outcome), lsn)| {
                Record::BankSynced(Arc::new(BankSync {
                    reference: request.reference,
                    bank: self.code.clone(),
                    kind: request.kind,
                    outcome,
                    at_ms,
                    lsn,
                }))
            })
            .collect();
        for _ in 0..RECORD_ATTEMPTS_MAX {
            match self.log.admit() {
                Ok(()) => {
                    if let Err(error) = self.log.append(records) {
                        tracing::error!(%error, "cannot record the bank's answers; they are asked again after a restart");
                    }
                    return;
                }
                Err(super::log::LogError::Unavailable) => return,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        tracing::error!("the log stayed busy; the bank's answers are asked again after a restart");
    }
}

/// Waits for work and takes what has come, up to [`INSTRUCTION_BATCH_MAX`]:
/// a batch that is not full is held until `interval` after the last call
/// started, taking what comes meanwhile. Returns how many it took (0: the
/// channel is closed and empty).
async fn next_batch<T>(
    receiver: &mut mpsc::UnboundedReceiver<T>,
    batch: &mut Vec<T>,
    last_call: &mut Option<tokio::time::Instant>,
    interval: Duration,
) -> usize {
    if receiver.recv_many(batch, INSTRUCTION_BATCH_MAX).await == 0 {
        return 0;
    }
    if let Some(due) = last_call.map(|at| at + interval) {
        if batch.len() < INSTRUCTION_BATCH_MAX && due > tokio::time::Instant::now() {
            tokio::time::sleep_until(due).await;
            while batch.len() < INSTRUCTION_BATCH_MAX {
                match receiver.try_recv() {
                    Ok(work) => batch.push(work),
                    Err(_) => break,
                }
            }
        }
    }
    *last_call = Some(tokio::time::Instant::now());
    batch.len()
}

/// [`until_final`] for a batch of instructions: one answer per request,
/// and the requests back (shared with the blocking call, not copied,
/// unless a call outlived its timeout).
async fn batch_until_final(
    api: &Arc<dyn BankApi>,
    in_flight: &Semaphore,
    requests: Vec<InstructionRequest>,
    query_first: bool,
) -> (Vec<InstructionRequest>, Vec<BankAnswer>) {
    let requests = Arc::new(requests);
    let mut answers: Vec<Option<BankAnswer>> = vec![None; requests.len()];
    let mut must_query = query_first;
    let mut backoff = BACKOFF_FIRST;
    loop {
        let open: Vec<usize> = (0..requests.len()).filter(|&index| answers[index].is_none()).collect();
        if open.is_empty() {
            let answers = answers.into_iter().map(|answer| answer.expect("every request answered")).collect();
            let requests = Arc::try_unwrap(requests).unwrap_or_else(|shared| (*shared).clone());
            return (requests, answers);
        }
        let error = if must_query {
            let references: Vec<Box<str>> = open.iter().map(|&index| requests[index].reference.clone()).collect();
            match call(api, in_flight, move |api| api.query_batch(&references)).await {
                Ok(found) => {
                    for (&index, answer) in open.iter().zip(found) {
                        answers[index] = answer;
                    }
                    must_query = false;
                    continue;
                }
                Err(error) => error,
            }
        } else {
            let sent = if open.len() == requests.len() {
                call(api, in_flight, {
                    let all = Arc::clone(&requests);
                    move |api| api.instruct_batch(&all)
                })
                .await
            } else {
                let pending: Vec<InstructionRequest> = open.iter().map(|&index| requests[index].clone()).collect();
                call(api, in_flight, move |api| api.instruct_batch(&pending)).await
            };
            match sent {
                Ok(got) => {
                    for (&index, answer) in open.iter().zip(got) {
                        answers[index] = Some(answer);
                    }
                    continue;
                }
                Err(error) => error,
            }
        };
        match error {
            CallError::Transient(why) => tracing::debug!(%why, "bank batch failed; retrying"),
            CallError::Unknown(why) => {
                tracing::debug!(%why, "bank batch outcome unknown; querying");
                must_query = true;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn run(work: BankWork, banks: &Banks, directory: &Arc<Directory>, in_flight: &Semaphore) {
    match work {
        BankWork::Payout { withdrawal, resumed } => {
            let Some(bank) = banks.get(&withdrawal.bank) else {
                tracing::error!(withdrawal = %withdrawal.id, bank = %withdrawal.bank, "bank no longer configured; withdrawal stays processing");
                return;
            };
            let Some(account) = directory.get(withdrawal.account_id) else {
                tracing::error!(withdrawal = %withdrawal.id, "withdrawal of an unknown account");
                return;
            };
            let request = PayoutRequest {
                reference: withdrawal.id.clone(),
                from_account_no: account.sub_account_no().unwrap_or_default().into(),
                to_account_no: withdrawal.settlement_account.account_no.clone(),
                to_account_name: (*withdrawal.settlement_account.account_name).into(),
                amount: withdrawal.amount,
            };
            let api = Arc::clone(&bank.api);
            let reference = request.reference.clone();
            let answer = until_final(&api, in_flight, resumed, &reference, move |api| api.payout(&request)).await;
            let outcome = match answer {
                Ok(bank_serial) => PayoutOutcome::Succeeded { bank_serial },
                Err(reason) => PayoutOutcome::Failed { reason },
            };
            tracing::info!(withdrawal = %withdrawal.id, ?outcome, "payout answered");
            metrics::counter!("fundledger_bank_work_answered_total", "kind" => "payout").increment(1);
            if let Some(books) = &bank.sandbox {
                books.crash_if_armed(super::bank::sandbox::CrashPoint::AfterAnswer);
            }
            directory
                .do_send(account, FinishWithdrawal { id: withdrawal.id.clone(), amount: withdrawal.amount, outcome });
        }
        BankWork::Instruction(_) => unreachable!("instructions go to their bank's batcher"),
    }
}

/// Call until the bank gives a final answer: retry transient errors with
/// backoff, and after an unknown outcome ask before sending again.
async fn until_final<F>(
    api: &Arc<dyn BankApi>,
    in_flight: &Semaphore,
    query_first: bool,
    reference: &str,
    send: F,
) -> BankAnswer
where
    F: Fn(&dyn BankApi) -> Result<BankAnswer, CallError> + Send + Sync + Clone + 'static,
{
    let mut must_query = query_first;
    let mut backoff = BACKOFF_FIRST;
    loop {
        let result = if must_query {
            let reference: Box<str> = reference.into();
            match call(api, in_flight, move |api| api.query(&reference)).await {
                Ok(Some(answer)) => return answer,
                Ok(None) => {
                    must_query = false;
                    continue;
                }
                Err(error) => Err(error),
            }
        } else {
            call(api, in_flight, send.clone()).await
        };
        match result {
            Ok(answer) => return answer,
            Err(CallError::Transient(why)) => tracing::debug!(%reference, %why, "bank call failed; retrying"),
            Err(CallError::Unknown(why)) => {
                tracing::debug!(%reference, %why, "bank outcome unknown; querying");
                must_query = true;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One blocking bank call with a timeout; a timeout is an unknown outcome.
async fn call<T: Send + 'static>(
    api: &Arc<dyn BankApi>,
    in_flight: &Semaphore,
    f: impl FnOnce(&dyn BankApi) -> Result<T, CallError> + Send + 'static,
) -> Result<T, CallError> {
    let _permit = in_flight.acquire().await.expect("the semaphore is never closed");
    let api = Arc::clone(api);
    // A bank call is background work: the sandbox bank's books run on
    // this machine's cores (docs/PERFORMANCE.md), a real bank's answer is
    // waited for; neither may delay a request.
    let blocking = move || {
        crate::threads::run_in_background();
        f(&*api)
    };
    match tokio::time::timeout(CALL_TIMEOUT, tokio::task::spawn_blocking(blocking)).await {
        Ok(Ok(result)) => result,
        Ok(Err(join_error)) => Err(CallError::Unknown(format!("bank call panicked: {join_error}"))),
        Err(_) => Err(CallError::Unknown("bank call timed out".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instruction(reference: &str, from: u64) -> InstructionWork {
        InstructionWork {
            lsn: from,
            reference: reference.into(),
            kind: InstructionKind::ForcedTransfer,
            bank: None,
            from: Party::Account(AccountId(from)),
            to: Party::Account(AccountId(from)),
            amount: Money(1),
            resumed: false,
        }
    }

    type Received = mpsc::UnboundedReceiver<InstructionWork>;

    /// A router with batchers for OTHER and SIMBANK (in that order), what
    /// each receives, and a queue of 10 places.
    fn test_router() -> (Router, Received, Received, Arc<InstructionQueue>) {
        let (sim, sim_rx) = mpsc::unbounded_channel();
        let (other, other_rx) = mpsc::unbounded_channel();
        let queue = InstructionQueue::new(10);
        let router = Router {
            batchers: vec![("OTHER".into(), other), ("SIMBANK".into(), sim)],
            by_bank_index: Vec::new(),
            sole: None,
            queue: Arc::clone(&queue),
        };
        (router, sim_rx, other_rx, queue)
    }

    /// A movement goes to the batcher of its payer's bank, found through
    /// the directory's bank index (refreshed as new codes appear); an
    /// account whose bank is not configured, or an unknown one, gets none.
    #[test]
    fn instructions_go_to_their_payers_bank() {
        use crate::actors::directory::test_info_at;
        use crate::domain::account::{AccountBook, AccountStatus};
        let directory = Directory::new();
        let (mut router, mut sim_rx, mut other_rx, queue) = test_router();
        for (n, bank) in [(1, "SIMBANK"), (2, "GONE"), (3, "OTHER")] {
            directory.insert(test_info_at(n, bank), AccountStatus::Active, None, AccountBook::default());
            assert!(queue.reserve());
            router.begin_burst(&directory);
            router.route(&directory, instruction(&format!("m{n}"), n));
        }
        assert!(queue.reserve());
        router.begin_burst(&directory);
        router.route(&directory, instruction("unknown", 9));
        assert_eq!(sim_rx.try_recv().map(|work| work.reference).ok().as_deref(), Some("m1"));
        assert_eq!(other_rx.try_recv().map(|work| work.reference).ok().as_deref(), Some("m3"));
        assert!(sim_rx.try_recv().is_err() && other_rx.try_recv().is_err(), "nothing else was routed");
        assert_eq!(queue.room(), 8, "the two routed hold places; the router released the others");
    }

    /// While the directory knows one bank code, every account's movement
    /// goes to that code's batcher without its entry being read (none when
    /// that bank is not configured); once a second code appears, each goes
    /// by its own account's bank again.
    #[test]
    fn with_one_bank_code_every_movement_goes_to_its_batcher() {
        use crate::actors::directory::test_info_at;
        use crate::domain::account::{AccountBook, AccountStatus};
        let (mut router, mut sim_rx, mut other_rx, queue) = test_router();
        let routed = |router: &mut Router, directory: &Directory, reference: &str, from: u64| {
            assert!(queue.reserve());
            router.begin_burst(directory);
            router.route(directory, instruction(reference, from));
        };
        let gone = Directory::new();
        gone.insert(test_info_at(1, "GONE"), AccountStatus::Active, None, AccountBook::default());
        routed(&mut router, &gone, "gone", 1);
        assert_eq!(router.sole, Some(None), "one code, no bank configured for it");
        assert!(sim_rx.try_recv().is_err() && other_rx.try_recv().is_err(), "a code with no bank gets nothing");
        assert_eq!(queue.room(), 10, "its place was released");

        let directory = Directory::new();
        for n in [1, 2] {
            directory.insert(test_info_at(n, "SIMBANK"), AccountStatus::Active, None, AccountBook::default());
        }
        router.by_bank_index.clear();
        routed(&mut router, &directory, "m1", 1);
        routed(&mut router, &directory, "m2", 2);
        assert_eq!(router.sole, Some(Some(1)), "SIMBANK's batcher, for every account");
        directory.insert(test_info_at(3, "OTHER"), AccountStatus::Active, None, AccountBook::default());
        routed(&mut router, &directory, "m3", 3);
        routed(&mut router, &directory, "m1 again", 1);
        assert_eq!(router.sole, None, "two codes: by each account's entry");
        let references = |rx: &mut Received| {
            std::iter::from_fn(|| rx.try_recv().ok()).map(|work| work.reference).collect::<Vec<_>>()
        };
        assert_eq!(references(&mut sim_rx), ["m1".into(), "m2".into(), "m1 again".into()] as [Box<str>; 3]);
        assert_eq!(references(&mut other_rx), ["m3".into()] as [Box<str>; 1]);
    }

    /// A trickle waits for the interval after the last call and goes as
    /// one batch; the first batch, and a full one, go at once.
    #[tokio::test]
    async fn calls_to_a_bank_are_paced_unless_the_batch_is_full() {
        use tokio::time::Instant;
        let interval = Duration::from_millis(200);
        let (sender, mut receiver) = mpsc::unbounded_channel::<usize>();
        let mut last_call = None;
        let mut batch = Vec::new();
        sender.send(0).unwrap();
        assert_eq!(next_batch(&mut receiver, &mut batch, &mut last_call, interval).await, 1);
        let first_call = last_call.expect("a call was noted");
        batch.clear();
        sender.send(1).unwrap();
        let late = sender.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            late.send(2).unwrap();
        });
        assert_eq!(next_batch(&mut receiver, &mut batch, &mut last_call, interval).await, 2);
        assert_eq!(batch, vec![1, 2], "what came while it waited went along, in order");
        assert!(Instant::now() >= first_call + interval, "not before the interval was up");
        batch.clear();
        for item in 0..INSTRUCTION_BATCH_MAX {
            sender.send(item).unwrap();
        }
        let started = Instant::now();
        let long = Duration::from_secs(60);
        assert_eq!(next_batch(&mut receiver, &mut batch, &mut last_call, long).await, INSTRUCTION_BATCH_MAX);
        assert!(started.elapsed() < long / 2, "a full batch is not held");
        batch.clear();
        drop(sender);
        assert_eq!(next_batch(&mut receiver, &mut batch, &mut last_call, interval).await, 0, "closed and empty");
    }

    #[test]
    fn the_instruction_queue_is_bounded() {
        let queue = InstructionQueue::new(1000);
        let mut taken = 0;
        while queue.reserve() {
            taken += 1;
            assert!(taken <= 1000, "the bound holds");
        }
        assert_eq!((taken, queue.room()), (1000, 0));
        assert!(!queue.reserve(), "still full");
        queue.release(taken);
        assert_eq!(queue.room(), 1000);
        assert!(queue.reserve(), "a released place can be taken again");
    }

    #[test]
    fn deferred_lsns_come_back_oldest_first_in_runs() {
        let mut deferred = Deferred::default();
        deferred.resume([3, 5].into_iter().collect(), 5);
        for lsn in [6, 70, 71, 200, 1_000_000] {
            deferred.defer(lsn);
        }
        let (runs, lsns) = deferred.next_runs(6);
        assert_eq!(lsns, vec![3, 5, 6, 70, 71, 200]);
        assert_eq!(runs, vec![(3, 71), (200, 200)], "gaps of at most RUN_GAP_MAX join a run");
        assert!(deferred.is_resumed(5) && !deferred.is_resumed(6));
        deferred.sent([3, 5, 6]);
        assert_eq!(deferred.next_runs(10).1, vec![70, 71, 200, 1_000_000]);
        assert_eq!(deferred.len(), 4);
    }
}
