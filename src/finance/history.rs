//! History: journals (流水), holds' movements and orders' movements, built
//! from the log in lsn order, off the acknowledgement path.
//!
//! Owns the folding of records into journal entries. The after-balances of
//! each entry are computed here by folding deltas in lsn order, not copied
//! from the actors: a credit reaches a payee's actor after its record got
//! its lsn, so actors see credits later than the log orders them; in lsn
//! order credits only move earlier, so the folded balances never go
//! negative, and the last one is exactly the actor's balance (asserted).
//!
//! Fed by [`crate::actors::log::LedgerLog`] (possibly out of order across
//! actors; reordered here) and by recovery (in order). It applies only
//! records that are durable, so a read that waits until the index has
//! caught up with the durable lsn shows only durable state.
//!
//! Also folds the finance read models that live beside the journals, all
//! in one [`FinanceState`]: [`crate::finance::reconciliation`] (each
//! bank's days, reconciliation runs and discrepancies) and
//! [`crate::finance::trial_balance`].
//!
//! Must not change balances: it is a read model.
//!
//! Memory: only what reading needs to go on (each account's journal
//! balance, withdrawals in flight, suspense, the finance state, each day's
//! figures) and the index entries of the newest `history.memory_records`
//! records ([`Recent`]). Older history is on disk: the records in the
//! log's segments, found through [`super::archive`]; the reads below take
//! the in-memory part and the archive's published runs in one critical
//! section (so every entry is seen once), then read the disk without any
//! lock.

use std::collections::BTreeMap;

use hashbrown::HashMap;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::actors::log::{Appended, FeedBacklog};
use crate::actors::outbox::{
    instruction_for, instruction_reference, BankWork, Deferred, InstructionQueue, OutboxSender,
};
use crate::domain::account::Balance;
use crate::domain::by_account::ByAccount;
use crate::domain::ids::{AccountId, ApplicationId};
use crate::domain::money::Money;
use crate::domain::record::{
    Adjustment, BankSync, Deposit, Movement, PayoutOutcome, Record, TransferType, Withdrawal, WithdrawalFinished,
};
use crate::domain::suspense::SuspenseBook;
use crate::finance::archive::{Archive, ArchiveError, ArchiveRuns, JournalIndexEntry, PrefetchStep, Recent, Tag};
use crate::finance::day::DayFigures;
use crate::finance::reconciliation::{bank_day_key, BankDays, LedgerLine, ReconciliationBook};
use crate::finance::state::FinanceState;
use crate::finance::trial_balance::{TrialBalance, TrialBalanceView};
use crate::gateway::idempotency::{Committed, IdArchive, IdIndex};
use fundledger_index::Direction;

/// A journal entry's kind. The discriminants are stored in the archive
/// ([`super::archive`]): never renumber them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum JournalKind {
    Deposit,
    AdjustmentDeposit,
    TransferOut,
    TransferIn,
    Freeze,
    Unfreeze,
    UnfreezePayOut,
    UnfreezePayIn,
    PayFreezeOut,
    PayFreezeIn,
    WithdrawalHold,
    WithdrawalSettled,
    WithdrawalReleased,
}

impl JournalKind {
    pub const ALL: [JournalKind; 13] = [
        Self::Deposit,
        Self::AdjustmentDeposit,
        Self::TransferOut,
        Self::TransferIn,
        Self::Freeze,
        Self::Unfreeze,
        Self::UnfreezePayOut,
        Self::UnfreezePayIn,
        Self::PayFreezeOut,
        Self::PayFreezeIn,
        Self::WithdrawalHold,
        Self::WithdrawalSettled,
        Self::WithdrawalReleased,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deposit => "deposit",
            Self::AdjustmentDeposit => "adjustment_deposit",
            Self::TransferOut => "transfer_out",
            Self::TransferIn => "transfer_in",
            Self::Freeze => "freeze",
            Self::Unfreeze => "unfreeze",
            Self::UnfreezePayOut => "unfreeze_pay_out",
            Self::UnfreezePayIn => "unfreeze_pay_in",
            Self::PayFreezeOut => "pay_freeze_out",
            Self::PayFreezeIn => "pay_freeze_in",
            Self::WithdrawalHold => "withdrawal_hold",
            Self::WithdrawalSettled => "withdrawal_settled",
            Self::WithdrawalReleased => "withdrawal_released",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// The kind stored as `code` (`kind as u8`).
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| *kind as u8 == code)
    }
}

/// What made a journal entry.
#[derive(Clone, Debug)]
pub enum Source {
    Movement(Arc<Movement>),
    Deposit(Arc<Deposit>),
    Withdrawal(Arc<Withdrawal>),
    WithdrawalFinished(Arc<WithdrawalFinished>),
    Adjustment(Arc<Adjustment>),
}

impl Source {
    /// The source of a journal entry made by `record`, if it makes one.
    fn of(record: &Record) -> Option<Source> {
        Some(match record {
            Record::Movement(movement) => Source::Movement(Arc::clone(movement)),
            Record::Deposit(deposit) => Source::Deposit(Arc::clone(deposit)),
            Record::WithdrawalRequested(withdrawal) => Source::Withdrawal(Arc::clone(withdrawal)),
            Record::WithdrawalFinished(finished) => Source::WithdrawalFinished(Arc::clone(finished)),
            Record::AdjustmentDeposit(adjustment) => Source::Adjustment(Arc::clone(adjustment)),
            _ => return None,
        })
    }
}

#[derive(Clone, Debug)]
pub struct JournalEntry {
    pub lsn: u64,
    pub at_ms: i64,
    pub kind: JournalKind,
    pub source: Source,
    pub available_delta: Money,
    pub frozen_delta: Money,
    pub after: Balance,
}

impl JournalEntry {
    fn new(entry: &JournalIndexEntry, source: Source) -> Self {
        Self {
            lsn: entry.lsn,
            at_ms: entry.at_ms,
            kind: entry.kind,
            source,
            available_delta: entry.available_delta,
            frozen_delta: entry.frozen_delta,
            after: entry.after,
        }
    }

    pub fn transfer_id(&self) -> &str {
        match &self.source {
            Source::Movement(movement) => &movement.id,
            Source::Deposit(deposit) => &deposit.notification.notification_id,
            Source::Withdrawal(withdrawal) => &withdrawal.id,
            Source::WithdrawalFinished(finished) => &finished.id,
            Source::Adjustment(adjustment) => &adjustment.id,
        }
    }

    pub fn order_id(&self) -> Option<&str> {
        match &self.source {
            Source::Movement(movement) => movement.order_id.as_deref(),
            _ => None,
        }
    }

    pub fn hold_id(&self) -> Option<&str> {
        match &self.source {
            Source::Movement(movement) => movement.hold_id.as_deref(),
            _ => None,
        }
    }

    /// The other account of a two-account movement.
    pub fn counterparty(&self, own: AccountId) -> Option<AccountId> {
        match &self.source {
            Source::Movement(movement) => {
                if movement.payer == own {
                    movement.payee
                } else {
                    Some(movement.payer)
                }
            }
            _ => None,
        }
    }
}

/// A withdrawal's life, for `GET /v1/withdrawals/{id}`.
#[derive(Clone, Debug)]
pub struct WithdrawalHistory {
    pub lsn: u64,
    pub withdrawal: Arc<Withdrawal>,
    pub finished: Option<Arc<WithdrawalFinished>>,
}

/// A hold's life: what opened it, what it has left, who touched it.
#[derive(Clone, Debug)]
pub struct HoldHistory {
    pub account_id: AccountId,
    pub amount: Money,
    pub remaining: Money,
    pub movements: Vec<Box<str>>,
}

/// The read model's memory: what the rules of reading need (each account's
/// journal balance, withdrawals in flight, suspense, the finance state,
/// each day's figures) and the index entries of the newest records, not
/// yet written to the archive ([`Recent`]). Everything older is read from
/// disk ([`super::archive`]).
#[derive(Default)]
pub struct HistoryState {
    /// Each account's journal balance ([`ByAccount`]: over a million
    /// accounts a hash map here was the indexer's and the checkpointer's
    /// largest cost).
    balances: ByAccount<Balance>,
    withdrawals_in_flight: HashMap<Box<str>, WithdrawalHistory>,
    suspense: SuspenseBook,
    /// Instructions the bank refused for good, in lsn order.
    bank_sync_failures: Vec<(u64, Arc<BankSync>)>,
    /// Each bank's days, reconciliation runs and discrepancies, and the
    /// double-entry books of the trial balance.
    finance: FinanceState,
    /// Each UTC day's figures, by day number (`ms / 86,400,000`).
    days: BTreeMap<i64, DayFigures>,
    /// Index entries of records not in the archive yet.
    recent: Recent,
    /// Entries being written to the archive: still read from here until
    /// the archive publishes their runs.
    flushing: Arc<Recent>,
    /// Records at or below this lsn are already in the archive: recovery
    /// folds them for the balances but does not index them again.
    indexed_through: u64,
    applied_lsn: u64,
    /// A reused buffer for lookup keys built while folding.
    scratch: String,
}

impl HistoryState {
    /// An empty read model whose records up to `indexed_through` are in
    /// the archive already.
    pub fn indexed_through(indexed_through: u64) -> Self {
        Self { indexed_through, ..Self::default() }
    }

    pub fn applied_lsn(&self) -> u64 {
        self.applied_lsn
    }

    /// The read model a state checkpoint restores, before its entity
    /// records are folded again ([`Self::apply_entity`]) and its figures
    /// are set ([`Self::restored`]): the bank codes in the order they were
    /// met.
    pub fn restoring(indexed_through: u64, banks: Vec<Box<str>>) -> Self {
        let mut state = Self::indexed_through(indexed_through);
        state.finance.bank_days = BankDays::with_banks(banks);
        state
    }

    /// The registry's bank places of a state checkpoint whose registry is
    /// not folded again (see [`BankDays::restore_places`]), right after
    /// [`Self::restoring`].
    pub fn restore_places(
        &mut self,
        accounts: Vec<u32>,
        applications: Vec<(ApplicationId, u32)>,
    ) -> Result<(), String> {
        self.finance.bank_days.restore_places(accounts, applications)
    }

    /// Fold an entity record of a state checkpoint into the parts that
    /// keep entities (suspense entries, each one's bank, reconciliations),
    /// not into the balances and figures, which the checkpoint holds.
    pub fn apply_entity(&mut self, lsn: u64, record: &Record) {
        self.suspense.apply(record);
        self.finance.bank_days.apply(lsn, record);
        self.finance.reconciliations.apply(lsn, record);
    }

    /// The rest of a state checkpoint at `lsn`: each account's balance
    /// (the books', which the journals sum to), withdrawals in flight, the
    /// trial balance's books, the day figures and the bank's refusals.
    pub fn restored(
        &mut self,
        lsn: u64,
        balances: impl IntoIterator<Item = (AccountId, Balance)>,
        withdrawals_in_flight: impl IntoIterator<Item = (u64, Arc<Withdrawal>)>,
        books: TrialBalance,
        days: impl IntoIterator<Item = (i64, DayFigures)>,
        bank_sync_failures: Vec<(u64, Arc<BankSync>)>,
    ) {
        assert_eq!(self.applied_lsn, 0, "a checkpoint is restored into an empty read model");
        self.balances = ByAccount::default();
        for (account, balance) in balances {
            *self.balances.get_mut(account) = balance;
        }
        self.withdrawals_in_flight = withdrawals_in_flight
            .into_iter()
            .map(|(lsn, withdrawal)| (withdrawal.id.clone(), WithdrawalHistory { lsn, withdrawal, finished: None }))
            .collect();
        self.finance.books = books;
        self.days = days.into_iter().collect();
        self.bank_sync_failures = bank_sync_failures;
        self.applied_lsn = lsn;
    }

    /// Each UTC day's figures, by day number.
    pub fn days(&self) -> &BTreeMap<i64, DayFigures> {
        &self.days
    }

    /// Start loading what [`HistoryState::apply`] will read and write for
    /// a movement's accounts (a hint, see [`crate::prefetch`]), in steps a
    /// while apart: [`PrefetchStep::Place`] first (balances, banks, journal
    /// places), then [`PrefetchStep::List`] (the journal lists the places
    /// point to), then [`PrefetchStep::Tail`] (where each list's next entry
    /// goes). Each of these is a cache miss the indexer otherwise waits for
    /// in turn (over 10,000 accounts too, for the lists' entries).
    pub fn prefetch(&self, record: &Record, step: PrefetchStep) {
        let Record::Movement(movement) = record else { return };
        if step == PrefetchStep::Place {
            // A movement is placed at its payer's bank.
            self.finance.bank_days.prefetch_account(movement.payer);
        }
        for account in [Some(movement.payer), movement.payee].into_iter().flatten() {
            if step == PrefetchStep::Place {
                self.balances.prefetch(account);
            }
            self.recent.prefetch_journal(account, step);
        }
    }

    /// Fold one durable record, in lsn order.
    pub fn apply(&mut self, lsn: u64, record: &Record) {
        assert!(lsn > self.applied_lsn, "history applies records in lsn order");
        self.applied_lsn = lsn;
        let index = lsn > self.indexed_through;
        if index {
            self.recent.note_lsn(lsn);
        }
        match record {
            Record::Movement(movement) => self.apply_movement(lsn, movement, index),
            Record::Deposit(deposit) => {
                let amount = deposit.notification.amount;
                self.post(deposit.account_id, lsn, deposit.at_ms, JournalKind::Deposit, amount, Money::ZERO, index);
                if index {
                    self.recent.name(Tag::Notification, &notification_key(&deposit.notification), lsn);
                    self.recent.name(Tag::DepositNotificationId, &deposit.notification.notification_id, lsn);
                }
            }
            Record::SuspenseOpened(entry) if index => {
                self.recent.name(Tag::Notification, &notification_key(&entry.notification), lsn);
            }
            Record::WithdrawalRequested(withdrawal) => {
                let amount = withdrawal.amount;
                let at = withdrawal.created_at_ms;
                let kind = JournalKind::WithdrawalHold;
                self.post(withdrawal.account_id, lsn, at, kind, Money(-amount.0), amount, index);
                let history = WithdrawalHistory { lsn, withdrawal: Arc::clone(withdrawal), finished: None };
                self.withdrawals_in_flight.insert(withdrawal.id.clone(), history);
                if index {
                    self.recent.name(Tag::ClientId, &withdrawal.id, lsn);
                    self.recent.name(Tag::Withdrawal, &withdrawal.id, lsn);
                }
            }
            Record::WithdrawalFinished(finished) => {
                let in_flight = self.withdrawals_in_flight.remove(&finished.id);
                assert!(in_flight.is_some(), "withdrawal {} finished but not in flight", finished.id);
                let amount = finished.amount;
                let (kind, available_delta) = match finished.outcome {
                    PayoutOutcome::Succeeded { .. } => (JournalKind::WithdrawalSettled, Money::ZERO),
                    PayoutOutcome::Failed { .. } => (JournalKind::WithdrawalReleased, amount),
                };
                let at = finished.finished_at_ms;
                self.post(finished.account_id, lsn, at, kind, available_delta, Money(-amount.0), index);
                if index {
                    self.recent.name(Tag::Withdrawal, &finished.id, lsn);
                }
            }
            Record::AdjustmentDeposit(adjustment) => {
                let (account, at, amount) = (adjustment.account_id, adjustment.at_ms, adjustment.amount);
                self.post(account, lsn, at, JournalKind::AdjustmentDeposit, amount, Money::ZERO, index);
                if index {
                    self.recent.name(Tag::ClientId, &adjustment.id, lsn);
                }
            }
            Record::SuspenseReturned(returned) if index => {
                self.recent.name(Tag::ClientId, &returned.id, lsn);
            }
            Record::BankSynced(sync) => {
                if sync.outcome.is_err() {
                    self.bank_sync_failures.push((lsn, Arc::clone(sync)));
                }
                if index {
                    if sync.lsn > 0 {
                        self.recent.answer(sync.lsn, lsn);
                    } else {
                        // Schema 1: the answer names only a reference.
                        self.recent.name(Tag::Reference, &sync.reference, lsn);
                    }
                }
            }
            _ => {}
        }
        self.suspense.apply(record);
        self.finance.apply(lsn, record);
        if index {
            if let Some(placed) = self.finance.bank_days.place(record) {
                use std::fmt::Write as _;
                self.scratch.clear();
                let _ = write!(self.scratch, "{}\u{1f}{}", placed.bank, placed.day);
                debug_assert_eq!(self.scratch, crate::finance::reconciliation::bank_day_key(placed.bank, placed.day));
                self.recent.name(Tag::BankDay, &self.scratch, lsn);
            }
        }
    }

    fn apply_movement(&mut self, lsn: u64, movement: &Arc<Movement>, index: bool) {
        let amount = movement.amount;
        let negative = Money(-amount.0);
        let at = movement.committed_at_ms;
        let payer = movement.payer;
        use JournalKind as K;
        match movement.kind {
            TransferType::Transfer => {
                self.post(payer, lsn, at, K::TransferOut, negative, Money::ZERO, index);
                self.post(payee(movement), lsn, at, K::TransferIn, amount, Money::ZERO, index);
            }
            TransferType::Freeze => self.post(payer, lsn, at, K::Freeze, negative, amount, index),
            TransferType::Unfreeze => self.post(payer, lsn, at, K::Unfreeze, amount, negative, index),
            TransferType::UnfreezePay => {
                self.post(payer, lsn, at, K::UnfreezePayOut, Money::ZERO, negative, index);
                self.post(payee(movement), lsn, at, K::UnfreezePayIn, amount, Money::ZERO, index);
            }
            TransferType::PayFreeze => {
                self.post(payer, lsn, at, K::PayFreezeOut, negative, Money::ZERO, index);
                self.post(payee(movement), lsn, at, K::PayFreezeIn, Money::ZERO, amount, index);
            }
        }
        if index {
            self.recent.name(Tag::ClientId, &movement.id, lsn);
            if let (Some(hold_id), Some(_)) = (&movement.hold_id, movement.hold_account) {
                self.recent.name(Tag::Hold, hold_id, lsn);
            }
            if let Some(order_id) = &movement.order_id {
                self.recent.name(Tag::Order, order_id, lsn);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn post(
        &mut self,
        account: AccountId,
        lsn: u64,
        at_ms: i64,
        kind: JournalKind,
        available_delta: Money,
        frozen_delta: Money,
        index: bool,
    ) {
        let balance = self.balances.get_mut(account);
        balance.available = Money(balance.available.0 + available_delta.0);
        balance.frozen = Money(balance.frozen.0 + frozen_delta.0);
        assert!(
            !balance.available.is_negative() && !balance.frozen.is_negative(),
            "{account}: journal balance negative at lsn {lsn}: the log is out of causal order"
        );
        let after = *balance;
        self.days.entry(at_ms.div_euclid(DAY_MS)).or_default().add(kind, available_delta, frozen_delta);
        if index {
            self.recent.post(account, JournalIndexEntry { lsn, at_ms, kind, available_delta, frozen_delta, after });
        }
    }

    pub fn balance(&self, account: AccountId) -> Balance {
        self.balances.get(account)
    }

    /// Withdrawals still waiting for the bank's answer, oldest (lowest lsn)
    /// first.
    pub fn withdrawals_in_flight(&self) -> Vec<&WithdrawalHistory> {
        let mut waiting: Vec<&WithdrawalHistory> = self.withdrawals_in_flight.values().collect();
        waiting.sort_unstable_by_key(|shown| shown.lsn);
        waiting
    }

    pub fn suspense(&self) -> &SuspenseBook {
        &self.suspense
    }

    pub fn bank_sync_failures(&self) -> &[(u64, Arc<BankSync>)] {
        &self.bank_sync_failures
    }

    pub fn finance(&self) -> &FinanceState {
        &self.finance
    }

    pub fn bank_days(&self) -> &BankDays {
        &self.finance.bank_days
    }

    pub fn reconciliations(&self) -> &ReconciliationBook {
        &self.finance.reconciliations
    }

    /// The figures of the UTC day that starts at `from_ms`.
    pub fn day(&self, from_ms: i64) -> DayFigures {
        self.days.get(&from_ms.div_euclid(DAY_MS)).copied().unwrap_or_default()
    }

    /// The trial balance at the applied lsn, checked against the sum of
    /// every account's journal balance.
    pub fn trial_balance(&self) -> TrialBalanceView {
        let (available, frozen) = self.balances.values().fold((0i128, 0i128), |(available, frozen), balance| {
            (available + i128::from(balance.available.0), frozen + i128::from(balance.frozen.0))
        });
        self.finance.books.view(self.applied_lsn, available, frozen)
    }

    /// Index entries in memory: the newest records not yet in the archive.
    pub fn recent(&self) -> &Recent {
        &self.recent
    }

    /// `account`'s journal entries in memory with `lo <= lsn <= hi`, oldest
    /// first (the archive holds every older one).
    fn recent_journal(&self, account: AccountId, lo: u64, hi: u64) -> Vec<JournalIndexEntry> {
        let mut entries = Vec::new();
        for part in [&*self.flushing, &self.recent] {
            let all = part.journal(account);
            let start = all.partition_point(|entry| entry.lsn < lo);
            entries.extend(all[start..].iter().take_while(|entry| entry.lsn <= hi));
        }
        entries
    }

    /// Lsns in memory of the bank's answers to the record at `answered`.
    fn recent_answers_to(&self, answered: u64) -> Vec<u64> {
        let mut lsns = self.flushing.answers_to(answered).to_vec();
        lsns.extend_from_slice(self.recent.answers_to(answered));
        lsns
    }

    /// Lsns in memory named `key` under `tag`, oldest first.
    fn recent_named(&self, tag: Tag, key: &str) -> Vec<u64> {
        let mut lsns = self.flushing.named(tag, key).to_vec();
        lsns.extend_from_slice(self.recent.named(tag, key));
        lsns
    }
}

const DAY_MS: i64 = 86_400_000;

fn notification_key(notification: &crate::domain::record::Notification) -> String {
    crate::recovery::notification_key(notification)
}

/// How many records ahead the indexer loads the places (balances, banks,
/// journal places), then the journal lists of their accounts, then where
/// each list's next entry goes.
const PREFETCH_PLACES_AHEAD: usize = 8;
const PREFETCH_LISTS_AHEAD: usize = 4;
const PREFETCH_TAILS_AHEAD: usize = 2;

fn payee(movement: &Movement) -> AccountId {
    movement.payee.expect("two-account movements have a payee")
}

/// The shared read model and how far it has caught up.
pub struct History {
    state: RwLock<HistoryState>,
    applied: watch::Sender<u64>,
    /// Where durable records that the bank must act on go, and the places
    /// of its instruction queue (set once the outbox runs).
    outbox: std::sync::OnceLock<(OutboxSender, Arc<InstructionQueue>)>,
    /// Instructions that wait in the log for room in the queue (only the
    /// indexer takes this lock, and `set_outbox` once).
    deferred: Mutex<Deferred>,
    /// Where history older than [`HistoryState::recent`] lives; `None` in
    /// tests that keep everything in memory.
    archive: Option<Arc<Archive>>,
    /// The gateway's id indexes: their entries for records the archive
    /// holds are dropped after each write.
    id_indexes: std::sync::OnceLock<[Arc<IdIndex>; 2]>,
    /// `history.memory_records`: records indexed in memory before a write.
    memory_records: u64,
}

/// One journal read's snapshot: entries in memory and the archive's runs.
struct JournalSnapshot {
    recent: Vec<JournalIndexEntry>,
    runs: Option<ArchiveRuns>,
}

impl History {
    pub fn new(state: HistoryState, archive: Option<Arc<Archive>>, memory_records: u64) -> Arc<Self> {
        let applied = watch::Sender::new(state.applied_lsn);
        Arc::new(Self {
            state: RwLock::new(state),
            applied,
            outbox: std::sync::OnceLock::new(),
            deferred: Mutex::new(Deferred::default()),
            archive,
            id_indexes: std::sync::OnceLock::new(),
            memory_records: memory_records.max(1),
        })
    }

    /// Connect the outbox: from now on every durable record the bank must
    /// act on is handed to it, in lsn order, after the instructions start-up
    /// found `pending` (the lsns of their records, all at or below
    /// `resumed_through`), which are read back from the log as the queue
    /// has room.
    pub fn set_outbox(
        &self,
        outbox: OutboxSender,
        queue: Arc<InstructionQueue>,
        pending: roaring::RoaringTreemap,
        resumed_through: u64,
    ) {
        self.deferred.lock().resume(pending, resumed_through);
        let _ = self.outbox.set((outbox, queue));
    }

    /// Connect the gateway's id indexes (client ids, notifications): they
    /// keep recent ids in memory and ask the archive for older ones.
    pub fn set_id_indexes(&self, ids: Arc<IdIndex>, notifications: Arc<IdIndex>) {
        if let Some(archive) = &self.archive {
            ids.set_archive(Arc::new(ArchivedIds { archive: Arc::clone(archive), tag: Tag::ClientId }));
            notifications.set_archive(Arc::new(ArchivedIds { archive: Arc::clone(archive), tag: Tag::Notification }));
        }
        let _ = self.id_indexes.set([ids, notifications]);
    }

    /// The bank work the durable record at `lsn` asks for (`state` already
    /// holds it). An instruction that finds no place in the queue, or
    /// others deferred before it, is deferred (see `actors::outbox`).
    fn bank_work(&self, state: &HistoryState, deferred: &mut Deferred, lsn: u64, record: &Record) -> Option<BankWork> {
        if let Record::WithdrawalRequested(withdrawal) = record {
            return Some(BankWork::Payout { withdrawal: Arc::clone(withdrawal), resumed: false });
        }
        instruction_reference(record, &state.suspense)?;
        let queued = deferred.is_empty() && self.outbox.get().is_some_and(|(_, queue)| queue.reserve());
        if !queued {
            deferred.defer(lsn);
            return None;
        }
        instruction_for(lsn, record, &state.suspense, false).map(BankWork::Instruction)
    }

    fn to_outbox(&self, work: BankWork) {
        match self.outbox.get() {
            // A send error means the actor system stopped: shutting down.
            Some((outbox, _)) => {
                let _ = outbox.send(work);
            }
            None => tracing::error!(?work, "bank work before the outbox runs; it is sent after a restart"),
        }
    }

    /// Hand deferred instructions to the outbox while its queue has room,
    /// oldest first, read back from the log in runs: at most
    /// [`crate::limits::BANK_REFILL_RECORDS_MAX`] per call. A record that
    /// cannot be read or decoded is logged and left to the next start-up
    /// (it is still pending in the log), so that it cannot stall the rest.
    fn refill(&self, wal: &fundledger_wal::Wal) {
        let Some((outbox, queue)) = self.outbox.get() else {
            return;
        };
        let mut deferred = self.deferred.lock();
        let room = queue.room().min(crate::limits::BANK_REFILL_RECORDS_MAX);
        if room == 0 || deferred.is_empty() {
            deferred.report();
            return;
        }
        let (runs, lsns) = deferred.next_runs(room);
        let mut records = Vec::with_capacity(lsns.len());
        for (first, last) in runs {
            let read = wal.read_run(first, last, |lsn, payload| {
                if deferred.contains(lsn) {
                    match crate::codec::decode(payload) {
                        Ok(record) => records.push((lsn, record)),
                        Err(error) => {
                            tracing::error!(lsn, %error, "a deferred bank instruction's record does not decode")
                        }
                    }
                }
                std::ops::ControlFlow::Continue(())
            });
            if let Err(error) = read {
                tracing::error!(first, last, %error, "deferred bank instructions cannot be read; the next start-up tries again");
            }
        }
        let state = self.state.read();
        let mut stopped_at = None;
        for (lsn, record) in records {
            let resumed = deferred.is_resumed(lsn);
            match instruction_for(lsn, &record, &state.suspense, resumed) {
                Some(work) if queue.reserve() => {
                    let _ = outbox.send(BankWork::Instruction(work));
                }
                // Only this thread takes places, so the room is still
                // there; should it not be, the rest waits.
                Some(_) => {
                    stopped_at = Some(lsn);
                    break;
                }
                None => tracing::error!(lsn, "a deferred record asks for no bank instruction"),
            }
        }
        drop(state);
        // Everything before a stop was handed over, or cannot be read (and
        // is left to the next start-up).
        deferred.sent(lsns.into_iter().filter(|lsn| stopped_at.is_none_or(|stop| *lsn < stop)));
        deferred.report();
    }

    /// Wait until every record up to `lsn` is indexed, then read.
    pub async fn read_at<T>(&self, lsn: u64, read: impl FnOnce(&HistoryState) -> T) -> T {
        let mut receiver = self.applied.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = receiver.wait_for(|applied| *applied >= lsn).await;
        read(&self.state.read())
    }

    pub fn applied_lsn(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Entries in memory and the archive's runs, in one critical section:
    /// every entry is in exactly one of the two.
    async fn journal_snapshot(&self, account: AccountId, lo: u64, hi: u64) -> JournalSnapshot {
        self.read_at(hi, |state| JournalSnapshot {
            recent: state.recent_journal(account, lo, hi),
            runs: self.archive.as_ref().map(|archive| archive.runs()),
        })
        .await
    }

    /// The record at `lsn` (from the log's segments).
    fn record(&self, lsn: u64) -> Result<Record, ArchiveError> {
        match &self.archive {
            Some(archive) => archive.record(lsn),
            None => Err(ArchiveError::Format("no archive: history is in memory only".into())),
        }
    }

    fn entry(&self, index: &JournalIndexEntry) -> Result<JournalEntry, ArchiveError> {
        let record = self.record(index.lsn)?;
        let source = Source::of(&record).ok_or_else(|| {
            ArchiveError::Format(format!("the journal entry at lsn {} names a record without one", index.lsn))
        })?;
        Ok(JournalEntry::new(index, source))
    }

    /// `account`'s journal entries with `after < lsn <= upto` that `keep`
    /// admits, oldest first: at most `limit` of them, and whether more
    /// follow. Entries whose records retention removed are left out.
    pub async fn journal_page(
        self: &Arc<Self>,
        account: AccountId,
        after: u64,
        upto: u64,
        limit: usize,
        keep: impl Fn(&JournalIndexEntry) -> bool + Send + 'static,
    ) -> Result<(Vec<JournalEntry>, bool), ArchiveError> {
        let lo = after.saturating_add(1);
        let snapshot = self.journal_snapshot(account, lo, upto).await;
        let history = Arc::clone(self);
        blocking(move || {
            let mut entries = Vec::new();
            let from_runs: Box<dyn Iterator<Item = Result<JournalIndexEntry, ArchiveError>>> = match &snapshot.runs {
                Some(runs) if lo <= upto => Box::new(runs.journal(account, lo, upto, Direction::Forward)?),
                _ => Box::new(std::iter::empty()),
            };
            let all = from_runs.chain(snapshot.recent.iter().copied().map(Ok));
            for index in all {
                let index = index?;
                if !keep(&index) {
                    continue;
                }
                if entries.len() == limit {
                    return Ok((entries, true));
                }
                match history.entry(&index) {
                    Ok(entry) => entries.push(entry),
                    Err(error) if error.is_removed() => {}
                    Err(error) => return Err(error),
                }
            }
            Ok((entries, false))
        })
        .await
    }

    /// `account`'s newest journal entry at or below `at_lsn`: its numbers
    /// (no record read).
    pub async fn last_entry(
        self: &Arc<Self>,
        account: AccountId,
        at_lsn: u64,
        durable: u64,
    ) -> Result<Option<JournalIndexEntry>, ArchiveError> {
        let snapshot = self.journal_snapshot(account, 0, at_lsn.min(durable)).await;
        if let Some(last) = snapshot.recent.last() {
            return Ok(Some(*last));
        }
        let Some(runs) = snapshot.runs else { return Ok(None) };
        blocking(move || runs.journal(account, 0, at_lsn, Direction::Reverse)?.next().transpose()).await
    }

    /// `account`'s journal entry made at `lsn`, if any.
    pub async fn entry_at(
        self: &Arc<Self>,
        account: AccountId,
        lsn: u64,
    ) -> Result<Option<JournalEntry>, ArchiveError> {
        let (entries, _) = self.journal_page(account, lsn.saturating_sub(1), lsn, 1, |_| true).await?;
        Ok(entries.into_iter().next())
    }

    /// Every record named `key` under `tag` up to `upto` that `matches`
    /// admits (hashes may collide), oldest first. Records retention
    /// removed are left out.
    async fn named(
        self: &Arc<Self>,
        tag: Tag,
        key: &str,
        upto: u64,
        matches: impl Fn(&Record) -> bool + Send + 'static,
    ) -> Result<Vec<(u64, Record)>, ArchiveError> {
        let (recent, runs) = self
            .read_at(upto, |state| (state.recent_named(tag, key), self.archive.as_ref().map(|archive| archive.runs())))
            .await;
        let history = Arc::clone(self);
        let key = key.to_owned();
        blocking(move || {
            let mut lsns = match &runs {
                Some(runs) => runs.named(tag, &key)?,
                None => Vec::new(),
            };
            lsns.extend(recent);
            history.records_matching(lsns, upto, matches)
        })
        .await
    }

    /// The records at `lsns` (oldest first, none above `upto`) that
    /// `matches` accepts; a record removed by retention is skipped.
    fn records_matching(
        &self,
        lsns: Vec<u64>,
        upto: u64,
        matches: impl Fn(&Record) -> bool,
    ) -> Result<Vec<(u64, Record)>, ArchiveError> {
        let mut found = Vec::new();
        for lsn in lsns.into_iter().filter(|&lsn| lsn <= upto) {
            match self.record(lsn) {
                Ok(record) if matches(&record) => found.push((lsn, record)),
                Ok(_) => {}
                Err(error) if error.is_removed() => {}
                Err(error) => return Err(error),
            }
        }
        Ok(found)
    }

    /// A hold's life, from the movements that name it.
    pub async fn hold(self: &Arc<Self>, hold_id: &str, upto: u64) -> Result<Option<HoldHistory>, ArchiveError> {
        let wanted: Box<str> = hold_id.into();
        let found = self
            .named(Tag::Hold, hold_id, upto, move |record| {
                matches!(record, Record::Movement(movement) if movement.hold_id.as_deref() == Some(&*wanted)
                    && movement.hold_account.is_some())
            })
            .await?;
        let movements: Vec<&Arc<Movement>> = found
            .iter()
            .filter_map(|(_, record)| match record {
                Record::Movement(movement) => Some(movement),
                _ => None,
            })
            .collect();
        let (Some(first), Some(last)) = (movements.first(), movements.last()) else { return Ok(None) };
        let Some(account_id) = first.hold_account else { return Ok(None) };
        Ok(Some(HoldHistory {
            account_id,
            amount: first.hold_amount,
            remaining: last.hold_remaining,
            movements: movements.iter().map(|movement| movement.id.clone()).collect(),
        }))
    }

    /// An order's movements, oldest first.
    pub async fn order(self: &Arc<Self>, order_id: &str, upto: u64) -> Result<Vec<(u64, Arc<Movement>)>, ArchiveError> {
        let wanted: Box<str> = order_id.into();
        let found = self
            .named(Tag::Order, order_id, upto, move |record| {
                matches!(record, Record::Movement(movement) if movement.order_id.as_deref() == Some(&*wanted))
            })
            .await?;
        Ok(found
            .into_iter()
            .filter_map(|(lsn, record)| match record {
                Record::Movement(movement) => Some((lsn, movement)),
                _ => None,
            })
            .collect())
    }

    /// A withdrawal's life: in memory while in flight, else from its records.
    pub async fn withdrawal(self: &Arc<Self>, id: &str, upto: u64) -> Result<Option<WithdrawalHistory>, ArchiveError> {
        let in_flight = self.read_at(upto, |state| state.withdrawals_in_flight.get(id).cloned()).await;
        if in_flight.is_some() {
            return Ok(in_flight);
        }
        let wanted: Box<str> = id.into();
        let found = self
            .named(Tag::Withdrawal, id, upto, move |record| match record {
                Record::WithdrawalRequested(withdrawal) => withdrawal.id == wanted,
                Record::WithdrawalFinished(finished) => finished.id == wanted,
                _ => false,
            })
            .await?;
        let mut shown: Option<WithdrawalHistory> = None;
        for (lsn, record) in found {
            match record {
                Record::WithdrawalRequested(withdrawal) => {
                    shown = Some(WithdrawalHistory { lsn, withdrawal, finished: None })
                }
                Record::WithdrawalFinished(finished) => {
                    if let Some(shown) = &mut shown {
                        shown.finished = Some(finished);
                    }
                }
                _ => {}
            }
        }
        Ok(shown)
    }

    /// The bank's latest answer to the instruction with this reference,
    /// which mirrors the record at `answered`: found by that lsn (schema-2
    /// answers); when none is, by reference (an answer of schema 1, or
    /// indexed before the answers table).
    pub async fn bank_sync(
        self: &Arc<Self>,
        reference: &str,
        answered: u64,
        upto: u64,
    ) -> Result<Option<Arc<BankSync>>, ArchiveError> {
        let wanted: Box<str> = reference.into();
        let is_answer = move |record: &Record| matches!(record, Record::BankSynced(sync) if sync.reference == wanted);
        let (recent, runs) = self
            .read_at(upto, |state| {
                (state.recent_answers_to(answered), self.archive.as_ref().map(|archive| archive.runs()))
            })
            .await;
        let history = Arc::clone(self);
        let matches = is_answer.clone();
        let mut found = blocking(move || {
            let mut lsns = match &runs {
                Some(runs) => runs.answers_to(answered)?,
                None => Vec::new(),
            };
            lsns.extend(recent);
            history.records_matching(lsns, upto, matches)
        })
        .await?;
        if found.is_empty() {
            found = self.named(Tag::Reference, reference, upto, is_answer).await?;
        }
        // The latest answer wins (one asked again after a restart).
        Ok(found.into_iter().rev().find_map(|(_, record)| match record {
            Record::BankSynced(sync) => Some(sync),
            _ => None,
        }))
    }

    /// The ledger's lines of `bank`'s `day`, in lsn order, as of `upto`.
    pub async fn bank_day_lines(
        self: &Arc<Self>,
        bank: &str,
        day: i64,
        upto: u64,
    ) -> Result<Vec<LedgerLine>, ArchiveError> {
        let found = self.named(Tag::BankDay, &bank_day_key(bank, day), upto, |_| true).await?;
        let lines = self
            .read_at(upto, |state| {
                let bank_days = &state.finance.bank_days;
                found.iter().filter_map(|(lsn, record)| bank_days.line(*lsn, record, bank, day)).collect()
            })
            .await;
        Ok(lines)
    }

    /// The deposit credited by `notification_id` (the first, if another
    /// bank reused the id).
    pub async fn deposit(
        self: &Arc<Self>,
        notification_id: &str,
        upto: u64,
    ) -> Result<Option<(u64, Arc<Deposit>)>, ArchiveError> {
        let wanted: Box<str> = notification_id.into();
        let found = self
            .named(Tag::DepositNotificationId, notification_id, upto, move |record| {
                matches!(record, Record::Deposit(deposit) if deposit.notification.notification_id == wanted)
            })
            .await?;
        Ok(found.into_iter().find_map(|(lsn, record)| match record {
            Record::Deposit(deposit) => Some((lsn, deposit)),
            _ => None,
        }))
    }

    /// The indexer: reorder what appenders send, wait until it is durable,
    /// fold it; hand full batches of index entries to the archive's
    /// writer. Runs on its own thread until the feed closes or the log
    /// fails.
    pub fn run_indexer(self: Arc<Self>, feed: Receiver<Appended>, backlog: FeedBacklog, wal: fundledger_wal::Wal) {
        let writer = match &self.archive {
            Some(archive) => {
                archive.set_wal(wal.clone());
                archive.report_metrics();
                metrics::counter!("fundledger_history_archive_write_errors_total").increment(0);
                match ArchiveWriter::spawn(Arc::clone(&self), Arc::clone(archive)) {
                    Ok(writer) => Some(writer),
                    Err(error) => {
                        tracing::error!(%error, "history indexer stops: cannot start the archive writer");
                        return;
                    }
                }
            }
            None => None,
        };
        let mut waiting = InOrder::default();
        let mut next = self.applied_lsn() + 1;
        let gather = std::time::Duration::from_micros(crate::limits::HISTORY_GATHER_US);
        // Idle: block until an appender sends. Busy: let appends gather for
        // a moment before each pass, so that one wake-up of this thread, and
        // of the outbox and the bank after it, serves all of them (at
        // `single` rates a pass per append cost more in thread switches
        // than in indexing; docs/PERFORMANCE.md).
        loop {
            // Idle: look for room for deferred instructions now and then
            // (start-up's come with `set_outbox`, while this thread waits).
            let poll_ms = if self.deferred.lock().is_empty() {
                crate::limits::BANK_REFILL_IDLE_POLL_MS
            } else {
                crate::limits::BANK_REFILL_POLL_MS
            };
            let first = match feed.recv_timeout(std::time::Duration::from_millis(poll_ms)) {
                Ok(first) => first,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    self.refill(&wal);
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            };
            waiting.push(first);
            loop {
                std::thread::sleep(gather);
                for appended in feed.try_iter().take(crate::limits::HISTORY_GATHER_BATCHES_MAX) {
                    waiting.push(appended);
                }
                let ready = waiting.take_ready(next);
                if ready.is_empty() {
                    break;
                }
                if !self.index_ready(ready, &mut next, &backlog, &wal, writer.as_ref()) {
                    return;
                }
            }
        }
    }

    /// Index `ready` (appends in order from `next` on, without a gap) once
    /// it is durable. False when the log failed (the indexer stops).
    ///
    /// One pass waits once for the last of them to be durable, indexes
    /// them under one lock, and then publishes the new indexed lsn, the
    /// gauge and the bank work once: a batch over many accounts is
    /// thousands of small appends (one per payer), and each of those steps
    /// per append cost more than indexing its records
    /// (docs/PERFORMANCE.md).
    fn index_ready(
        &self,
        ready: Vec<Appended>,
        next: &mut u64,
        feed_backlog: &FeedBacklog,
        wal: &fundledger_wal::Wal,
        writer: Option<&ArchiveWriter>,
    ) -> bool {
        let first_lsn = *next;
        let end = ready.iter().fold(first_lsn, |lsn, appended| {
            assert_eq!(appended.first_lsn, lsn, "ready appends follow each other");
            lsn + appended.records.len() as u64
        });
        if end == first_lsn {
            return true;
        }
        let last = end - 1;
        if wal.wait_durable_blocking(last).is_err() {
            tracing::error!(lsn = last, "history indexer stops: the log failed");
            return false;
        }
        // Most records ask the bank for one instruction: room for them all,
        // not a list that doubles its way up through a pass.
        let mut work = Vec::with_capacity((end - first_lsn) as usize);
        let mut flush = false;
        let mut state = self.state.write();
        let mut deferred = self.deferred.lock();
        let mut lsn = first_lsn;
        // Records a few places ahead are loaded meanwhile: a batch's
        // appends are one per payer, so look across appends.
        let mut places_ahead = ready.iter().flat_map(|appended| &appended.records).skip(PREFETCH_PLACES_AHEAD);
        let mut lists_ahead = ready.iter().flat_map(|appended| &appended.records).skip(PREFETCH_LISTS_AHEAD);
        let mut tails_ahead = ready.iter().flat_map(|appended| &appended.records).skip(PREFETCH_TAILS_AHEAD);
        for appended in &ready {
            for record in &appended.records {
                if let Some(ahead) = places_ahead.next() {
                    state.prefetch(ahead, PrefetchStep::Place);
                }
                if let Some(ahead) = lists_ahead.next() {
                    state.prefetch(ahead, PrefetchStep::List);
                }
                if let Some(ahead) = tails_ahead.next() {
                    state.prefetch(ahead, PrefetchStep::Tail);
                }
                state.apply(lsn, record);
                work.extend(self.bank_work(&state, &mut deferred, lsn, record));
                lsn += 1;
            }
            // Checked per append, as the appends came: a flush starts as
            // soon as there is a run's worth and the writer is free.
            if writer.is_some() && state.recent.records() >= self.memory_records && state.flushing.records() == 0 {
                state.flushing = Arc::new(state.recent.take());
                flush = true;
            }
        }
        debug_assert_eq!(lsn, end, "every ready record was indexed");
        drop(deferred);
        let backlog = state.recent.records();
        let in_memory = backlog + state.flushing.records();
        drop(state);
        metrics::gauge!("fundledger_history_memory_records").set(in_memory as f64);
        self.applied.send_replace(last);
        feed_backlog.indexed((end - first_lsn) as usize);
        for work in work {
            self.to_outbox(work);
        }
        if let Some(writer) = writer {
            if flush {
                writer.wake();
            } else if backlog >= 2 * self.memory_records {
                // The writer is behind (a slow disk; merges run apart):
                // wait for it rather than let memory grow.
                writer.wait_idle();
            }
        }
        *next = end;
        drop(ready);
        self.refill(wal);
        true
    }

    /// The writer's step: write what is flushing, publish it, forget it.
    /// Returns whether more is ready to write (the indexer filled another
    /// batch meanwhile: it is moved to flushing here, since the indexer
    /// only hands over when flushing is empty).
    fn write_flushing(&self, archive: &Archive) -> Result<bool, ArchiveError> {
        let flushing = {
            let state = self.state.read();
            if state.flushing.records() == 0 {
                return Ok(false);
            }
            Arc::clone(&state.flushing)
        };
        let written = archive.write(&flushing)?;
        let watermark = flushing.last_lsn;
        let more = {
            let mut state = self.state.write();
            written.publish();
            state.flushing = Arc::default();
            let more = state.recent.records() >= self.memory_records;
            if more {
                state.flushing = Arc::new(state.recent.take());
            }
            more
        };
        if let Some(indexes) = self.id_indexes.get() {
            for index in indexes {
                index.forget_through(watermark);
            }
        }
        Ok(more)
    }
}

/// Runs `work` on tokio's blocking pool (reads of runs and segments are
/// file I/O), or inline outside a runtime (tests).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ArchiveError> + Send + 'static,
) -> Result<T, ArchiveError> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle
            .spawn_blocking(work)
            .await
            .map_err(|error| ArchiveError::Format(format!("a history read stopped: {error}")))?,
        Err(_) => work(),
    }
}

/// Appends as the feed brings them: nearly in lsn order (appenders take
/// their lsns under the log's lock but send afterwards, so two threads'
/// sends can cross), put back in order for the indexer.
#[derive(Default)]
struct InOrder {
    appended: Vec<Appended>,
}

impl InOrder {
    fn push(&mut self, appended: Appended) {
        self.appended.push(appended);
    }

    /// The appends that continue from `next` without a gap, in order; the
    /// others stay until the ones before them come. A stable sort finds
    /// the sorted runs these nearly sorted appends come in, so a pass costs
    /// about one comparison per append (a B-tree keyed by lsn cost a
    /// search per append, 2% of a batch).
    fn take_ready(&mut self, next: u64) -> Vec<Appended> {
        self.appended.sort_by_key(|appended| appended.first_lsn);
        let mut end = next;
        let ready = self
            .appended
            .iter()
            .take_while(|appended| {
                let follows = appended.first_lsn == end;
                end += appended.records.len() as u64;
                follows
            })
            .count();
        debug_assert!(
            self.appended.get(ready).is_none_or(|appended| appended.first_lsn > next),
            "an append at or below the indexed lsn"
        );
        self.appended.drain(..ready).collect()
    }
}

/// The archive's writer: writes what the indexer hands over, off the
/// indexer's thread, and has another thread merge the runs.
struct ArchiveWriter {
    signal: Arc<(parking_lot::Mutex<WriterState>, parking_lot::Condvar)>,
}

#[derive(Default)]
struct WriterState {
    wanted: bool,
    busy: bool,
}

impl ArchiveWriter {
    /// Two threads: `history-archive` writes each flush's runs, and
    /// `history-merge` merges them. A merge of large runs takes seconds
    /// (hundreds of MB rewritten after tens of millions of transfers);
    /// on the flush's thread it held the next flush back, memory filled,
    /// the indexer waited for it and appends stalled behind the indexer
    /// (docs/PERFORMANCE.md). Runs written while a merge runs sit above
    /// its output ([`fundledger_index::RunSet::full_tier_by`]).
    fn spawn(history: Arc<History>, archive: Arc<Archive>) -> std::io::Result<ArchiveWriter> {
        let merges = Arc::new(Signal::default());
        {
            let (archive, merges) = (Arc::clone(&archive), Arc::clone(&merges));
            std::thread::Builder::new().name("history-merge".into()).spawn(move || loop {
                merges.wait();
                if let Err(error) = (|| {
                    while archive.merge_step()? {}
                    Ok::<(), ArchiveError>(())
                })() {
                    // The runs stay as they are (reads go on) and the
                    // merge is tried again after the next flush.
                    tracing::error!(%error, "the history archive could not merge runs; retrying after the next flush");
                    metrics::counter!("fundledger_history_archive_write_errors_total").increment(1);
                }
                archive.report_metrics();
            })?;
        }
        let signal: Arc<(parking_lot::Mutex<WriterState>, parking_lot::Condvar)> = Arc::default();
        let shared = Arc::clone(&signal);
        std::thread::Builder::new().name("history-archive".into()).spawn(move || {
            // Not background (crate::threads): the indexer waits for it
            // when it falls behind, and appenders for the indexer.
            let (lock, condvar) = &*shared;
            loop {
                {
                    let mut state = lock.lock();
                    while !state.wanted {
                        condvar.wait(&mut state);
                    }
                    state.wanted = false;
                    state.busy = true;
                }
                let written = (|| {
                    while history.write_flushing(&archive)? {}
                    Ok::<(), ArchiveError>(())
                })();
                match written {
                    Ok(()) => merges.wake(),
                    Err(error) => {
                        // The entries stay in memory and are written with the
                        // next batch; reads go on from memory.
                        tracing::error!(%error, "the history archive could not be written; retrying with the next batch");
                        metrics::counter!("fundledger_history_archive_write_errors_total").increment(1);
                    }
                }
                archive.report_metrics();
                let mut state = lock.lock();
                state.busy = false;
                condvar.notify_all();
            }
        })?;
        Ok(ArchiveWriter { signal })
    }

    fn wake(&self) {
        let (lock, condvar) = &*self.signal;
        lock.lock().wanted = true;
        condvar.notify_all();
    }

    fn wait_idle(&self) {
        let (lock, condvar) = &*self.signal;
        let mut state = lock.lock();
        while state.busy || state.wanted {
            condvar.wait(&mut state);
        }
    }
}

/// A flag one thread sets and another waits for (the merge thread's work).
#[derive(Default)]
struct Signal {
    wanted: parking_lot::Mutex<bool>,
    condvar: parking_lot::Condvar,
}

impl Signal {
    fn wake(&self) {
        *self.wanted.lock() = true;
        self.condvar.notify_one();
    }

    /// Returns once woken since the last return.
    fn wait(&self) {
        let mut wanted = self.wanted.lock();
        while !*wanted {
            self.condvar.wait(&mut wanted);
        }
        *wanted = false;
    }
}

/// The archive as the gateway's id indexes see it: committed ids older
/// than what they keep in memory.
struct ArchivedIds {
    archive: Arc<Archive>,
    tag: Tag,
}

impl IdArchive for ArchivedIds {
    fn find(&self, key: &str) -> Result<Option<Committed>, String> {
        let lsns = self.archive.with_runs(|runs| runs.named(self.tag, key)).map_err(|error| error.to_string())?;
        for lsn in lsns {
            let record = match self.archive.record(lsn) {
                Ok(record) => record,
                // The 64-bit hash matched and the record is gone: taken as
                // this id (a retry cannot be answered, only refused).
                Err(error) if error.is_removed() => return Ok(Some(Committed::Forgotten { lsn })),
                Err(error) => return Err(error.to_string()),
            };
            if let Some((found, committed)) = crate::recovery::committed_of(lsn, &record) {
                if found == key {
                    return Ok(Some(committed));
                }
            }
        }
        Ok(None)
    }

    fn prefetch(&self, key: &str) {
        self.archive.with_runs(|runs| runs.prefetch_named(self.tag, key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::record::InstructionKind;

    fn synced(reference: &str, outcome: Result<&str, &str>) -> Record {
        Record::BankSynced(Arc::new(BankSync {
            reference: reference.into(),
            bank: "SIMBANK".into(),
            kind: InstructionKind::ForcedTransfer,
            outcome: outcome.map(Into::into).map_err(Into::into),
            at_ms: 0,
            lsn: 0,
        }))
    }

    /// Appends whose sends crossed come out in lsn order, and only as far
    /// as there is no gap; the rest waits for the append that fills it.
    #[test]
    fn appends_are_indexed_in_order_and_not_past_a_gap() {
        let append = |first_lsn: u64, count: usize| Appended {
            first_lsn,
            records: (0..count).map(|n| synced(&format!("t-{first_lsn}-{n}"), Ok("SB1"))).collect(),
        };
        let firsts = |ready: &[Appended]| ready.iter().map(|a| a.first_lsn).collect::<Vec<_>>();
        let mut waiting = InOrder::default();
        for (first, count) in [(3, 2), (1, 2), (8, 1), (5, 1)] {
            waiting.push(append(first, count));
        }
        assert_eq!(firsts(&waiting.take_ready(1)), [1, 3, 5], "lsn 6-7 are missing: 8 waits");
        assert!(waiting.take_ready(6).is_empty(), "still missing");
        waiting.push(append(6, 2));
        assert_eq!(firsts(&waiting.take_ready(6)), [6, 8]);
        assert!(waiting.take_ready(9).is_empty());
    }

    #[test]
    fn bank_answers_are_named_by_reference_and_failures_kept() {
        let mut history = HistoryState::default();
        history.apply(1, &synced("t-1", Err("REFUSED")));
        history.apply(2, &synced("t-2", Ok("SB000000000001")));
        history.apply(3, &synced("t-1", Ok("SB000000000002")));
        assert_eq!(history.recent_named(Tag::Reference, "t-1"), vec![1, 3]);
        assert_eq!(history.recent_named(Tag::Reference, "t-2"), vec![2]);
        assert!(history.recent_named(Tag::Reference, "t-3").is_empty());
        let failures: Vec<u64> = history.bank_sync_failures().iter().map(|(lsn, _)| *lsn).collect();
        assert_eq!(failures, vec![1]);
    }

    #[test]
    fn a_schema_2_answer_is_found_by_the_lsn_it_answers_not_by_reference() {
        let mut history = HistoryState::default();
        let answer = |answered: u64| {
            let Record::BankSynced(sync) = synced("t-1", Ok("SB1")) else { unreachable!() };
            Record::BankSynced(Arc::new(BankSync { lsn: answered, ..(*sync).clone() }))
        };
        history.apply(5, &answer(2));
        history.apply(6, &answer(2));
        history.apply(7, &answer(4));
        assert_eq!(history.recent_answers_to(2), vec![5, 6]);
        assert_eq!(history.recent_answers_to(4), vec![7]);
        assert!(history.recent_answers_to(3).is_empty());
        assert!(history.recent_named(Tag::Reference, "t-1").is_empty(), "no filter entry by reference");
        let keys = &history.recent().answers;
        assert_eq!(keys.len(), 3);
        assert!(history.recent().lookup.is_empty());
    }

    #[test]
    fn records_the_archive_holds_fold_into_balances_without_index_entries() {
        let mut history = HistoryState::indexed_through(2);
        for lsn in 1..=3 {
            history.apply(lsn, &synced(&format!("t-{lsn}"), Ok("SB1")));
        }
        assert_eq!(history.recent().records(), 1);
        assert!(history.recent_named(Tag::Reference, "t-2").is_empty());
        assert_eq!(history.recent_named(Tag::Reference, "t-3"), vec![3]);
    }
}
