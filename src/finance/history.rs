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
//! Memory: entries stay in memory for now (DESIGN.md wants them served from
//! the log segments through an on-disk index; see the load test issue).

use std::collections::BTreeMap;

use hashbrown::HashMap;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::watch;

use crate::actors::log::Appended;
use crate::actors::outbox::{instruction_for, BankWork, OutboxSender};
use crate::domain::account::Balance;
use crate::domain::ids::AccountId;
use crate::domain::money::Money;
use crate::domain::record::{
    Adjustment, BankSync, Deposit, Movement, PayoutOutcome, Record, TransferType, Withdrawal, WithdrawalFinished,
};
use crate::domain::suspense::SuspenseBook;
use crate::finance::reconciliation::{BankDays, ReconciliationBook};
use crate::finance::state::FinanceState;
use crate::finance::trial_balance::TrialBalanceView;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
}

/// What made a journal entry.
#[derive(Clone, Debug)]
pub enum Source {
    Movement(Arc<Movement>),
    Deposit(Arc<Deposit>),
    Withdrawal(Arc<Withdrawal>),
    Adjustment(Arc<Adjustment>),
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
    pub fn transfer_id(&self) -> &str {
        match &self.source {
            Source::Movement(movement) => &movement.id,
            Source::Deposit(deposit) => &deposit.notification.notification_id,
            Source::Withdrawal(withdrawal) => &withdrawal.id,
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

#[derive(Default)]
pub struct HistoryState {
    journals: HashMap<AccountId, Vec<JournalEntry>>,
    balances: HashMap<AccountId, Balance>,
    holds: HashMap<Box<str>, HoldHistory>,
    orders: HashMap<Box<str>, Vec<(u64, Arc<Movement>)>>,
    withdrawals: HashMap<Box<str>, WithdrawalHistory>,
    suspense: SuspenseBook,
    /// The bank's final answer to each instruction, by reference.
    bank_sync: hashbrown::HashSet<ByReference>,
    /// Instructions the bank refused for good, in lsn order.
    bank_sync_failures: Vec<(u64, Arc<BankSync>)>,
    /// Each bank's days, reconciliation runs and discrepancies, and the
    /// double-entry books of the trial balance.
    finance: FinanceState,
    applied_lsn: u64,
}

impl HistoryState {
    pub fn applied_lsn(&self) -> u64 {
        self.applied_lsn
    }

    /// Fold one durable record, in lsn order.
    pub fn apply(&mut self, lsn: u64, record: &Record) {
        assert!(lsn > self.applied_lsn, "history applies records in lsn order");
        self.applied_lsn = lsn;
        match record {
            Record::Movement(movement) => self.apply_movement(lsn, movement),
            Record::Deposit(deposit) => {
                let source = Source::Deposit(Arc::clone(deposit));
                let amount = deposit.notification.amount;
                self.post(deposit.account_id, lsn, deposit.at_ms, JournalKind::Deposit, source, amount, Money::ZERO);
            }
            Record::WithdrawalRequested(withdrawal) => {
                let source = Source::Withdrawal(Arc::clone(withdrawal));
                let amount = withdrawal.amount;
                let at = withdrawal.created_at_ms;
                let kind = JournalKind::WithdrawalHold;
                self.post(withdrawal.account_id, lsn, at, kind, source, Money(-amount.0), amount);
                let history = WithdrawalHistory { lsn, withdrawal: Arc::clone(withdrawal), finished: None };
                self.withdrawals.insert(withdrawal.id.clone(), history);
            }
            Record::WithdrawalFinished(finished) => {
                let history = self.withdrawals.get_mut(&finished.id).expect("a finished withdrawal was requested");
                assert!(history.finished.is_none(), "withdrawal {} finished twice", finished.id);
                history.finished = Some(Arc::clone(finished));
                let source = Source::Withdrawal(Arc::clone(&history.withdrawal));
                let amount = finished.amount;
                let (kind, available_delta) = match finished.outcome {
                    PayoutOutcome::Succeeded { .. } => (JournalKind::WithdrawalSettled, Money::ZERO),
                    PayoutOutcome::Failed { .. } => (JournalKind::WithdrawalReleased, amount),
                };
                let at = finished.finished_at_ms;
                self.post(finished.account_id, lsn, at, kind, source, available_delta, Money(-amount.0));
            }
            Record::AdjustmentDeposit(adjustment) => {
                let source = Source::Adjustment(Arc::clone(adjustment));
                let (account, at, amount) = (adjustment.account_id, adjustment.at_ms, adjustment.amount);
                self.post(account, lsn, at, JournalKind::AdjustmentDeposit, source, amount, Money::ZERO);
            }
            Record::BankSynced(sync) => {
                if sync.outcome.is_err() {
                    self.bank_sync_failures.push((lsn, Arc::clone(sync)));
                }
                // The latest answer wins (one asked again after a restart).
                self.bank_sync.replace(ByReference(Arc::clone(sync)));
            }
            _ => {}
        }
        self.suspense.apply(record);
        self.finance.apply(lsn, record);
    }

    fn apply_movement(&mut self, lsn: u64, movement: &Arc<Movement>) {
        let amount = movement.amount;
        let negative = Money(-amount.0);
        let at = movement.committed_at_ms;
        let source = || Source::Movement(Arc::clone(movement));
        let payer = movement.payer;
        use JournalKind as K;
        match movement.kind {
            TransferType::Transfer => {
                self.post(payer, lsn, at, K::TransferOut, source(), negative, Money::ZERO);
                self.post(payee(movement), lsn, at, K::TransferIn, source(), amount, Money::ZERO);
            }
            TransferType::Freeze => self.post(payer, lsn, at, K::Freeze, source(), negative, amount),
            TransferType::Unfreeze => self.post(payer, lsn, at, K::Unfreeze, source(), amount, negative),
            TransferType::UnfreezePay => {
                self.post(payer, lsn, at, K::UnfreezePayOut, source(), Money::ZERO, negative);
                self.post(payee(movement), lsn, at, K::UnfreezePayIn, source(), amount, Money::ZERO);
            }
            TransferType::PayFreeze => {
                self.post(payer, lsn, at, K::PayFreezeOut, source(), negative, Money::ZERO);
                self.post(payee(movement), lsn, at, K::PayFreezeIn, source(), Money::ZERO, amount);
            }
        }
        self.track_hold(movement);
        if let Some(order_id) = &movement.order_id {
            self.orders.entry(order_id.clone()).or_default().push((lsn, Arc::clone(movement)));
        }
    }

    fn track_hold(&mut self, movement: &Movement) {
        let (Some(hold_id), Some(account_id)) = (&movement.hold_id, movement.hold_account) else {
            return;
        };
        let hold = self.holds.entry(hold_id.clone()).or_insert_with(|| HoldHistory {
            account_id,
            amount: movement.hold_amount,
            remaining: movement.hold_amount,
            movements: Vec::new(),
        });
        hold.remaining = movement.hold_remaining;
        hold.movements.push(movement.id.clone());
    }

    #[allow(clippy::too_many_arguments)]
    fn post(
        &mut self,
        account: AccountId,
        lsn: u64,
        at_ms: i64,
        kind: JournalKind,
        source: Source,
        available_delta: Money,
        frozen_delta: Money,
    ) {
        let balance = self.balances.entry(account).or_default();
        balance.available = Money(balance.available.0 + available_delta.0);
        balance.frozen = Money(balance.frozen.0 + frozen_delta.0);
        assert!(
            !balance.available.is_negative() && !balance.frozen.is_negative(),
            "{account}: journal balance negative at lsn {lsn}: the log is out of causal order"
        );
        let after = *balance;
        self.journals.entry(account).or_default().push(JournalEntry {
            lsn,
            at_ms,
            kind,
            source,
            available_delta,
            frozen_delta,
            after,
        });
    }

    pub fn journal(&self, account: AccountId) -> &[JournalEntry] {
        self.journals.get(&account).map_or(&[], Vec::as_slice)
    }

    /// Every account's journal, in no particular order of accounts.
    pub fn journals(&self) -> impl Iterator<Item = &[JournalEntry]> {
        self.journals.values().map(Vec::as_slice)
    }

    pub fn balance(&self, account: AccountId) -> Balance {
        self.balances.get(&account).copied().unwrap_or_default()
    }

    pub fn hold(&self, hold_id: &str) -> Option<&HoldHistory> {
        self.holds.get(hold_id)
    }

    pub fn order(&self, order_id: &str) -> &[(u64, Arc<Movement>)] {
        self.orders.get(order_id).map_or(&[], Vec::as_slice)
    }

    pub fn withdrawal(&self, id: &str) -> Option<&WithdrawalHistory> {
        self.withdrawals.get(id)
    }

    /// Withdrawals still waiting for the bank's answer, oldest (lowest lsn)
    /// first.
    pub fn withdrawals_in_flight(&self) -> Vec<&WithdrawalHistory> {
        let mut waiting: Vec<&WithdrawalHistory> =
            self.withdrawals.values().filter(|shown| shown.finished.is_none()).collect();
        waiting.sort_unstable_by_key(|shown| shown.lsn);
        waiting
    }

    pub fn suspense(&self) -> &SuspenseBook {
        &self.suspense
    }

    /// The bank's answer to the instruction with this reference, if any.
    pub fn bank_sync(&self, reference: &str) -> Option<&Arc<BankSync>> {
        self.bank_sync.get(reference).map(|found| &found.0)
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

    /// The trial balance at the applied lsn, checked against the sum of
    /// every account's journal balance.
    pub fn trial_balance(&self) -> TrialBalanceView {
        let (available, frozen) = self.balances.values().fold((0i128, 0i128), |(available, frozen), balance| {
            (available + i128::from(balance.available.0), frozen + i128::from(balance.frozen.0))
        });
        self.finance.books.view(self.applied_lsn, available, frozen)
    }

    /// The journal entry of `account` made at `lsn`, if any.
    pub fn entry_at(&self, account: AccountId, lsn: u64) -> Option<&JournalEntry> {
        let entries = self.journal(account);
        let index = entries.partition_point(|entry| entry.lsn < lsn);
        entries.get(index).filter(|entry| entry.lsn == lsn)
    }
}

/// A bank answer, found in a set by its reference: the answer's own
/// reference is the key, so folding one allocates no copy of it.
#[derive(Debug)]
struct ByReference(Arc<BankSync>);

impl std::borrow::Borrow<str> for ByReference {
    fn borrow(&self) -> &str {
        &self.0.reference
    }
}

impl std::hash::Hash for ByReference {
    /// As the `str` it borrows as (what `Borrow` requires).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (*self.0.reference).hash(state);
    }
}

impl PartialEq for ByReference {
    fn eq(&self, other: &Self) -> bool {
        self.0.reference == other.0.reference
    }
}

impl Eq for ByReference {}

fn payee(movement: &Movement) -> AccountId {
    movement.payee.expect("two-account movements have a payee")
}

/// The shared read model and how far it has caught up.
pub struct History {
    state: RwLock<HistoryState>,
    applied: watch::Sender<u64>,
    /// Where durable records that the bank must act on go (set once the
    /// outbox runs; before that nothing is appended).
    outbox: std::sync::OnceLock<OutboxSender>,
}

impl History {
    pub fn new(state: HistoryState) -> Arc<Self> {
        let applied = watch::Sender::new(state.applied_lsn);
        Arc::new(Self { state: RwLock::new(state), applied, outbox: std::sync::OnceLock::new() })
    }

    /// Connect the outbox: from now on every durable record the bank must
    /// act on is handed to it, in lsn order.
    pub fn set_outbox(&self, outbox: OutboxSender) {
        let _ = self.outbox.set(outbox);
    }

    /// The bank work a durable record asks for (`state` already holds it).
    fn bank_work(state: &HistoryState, record: &Record) -> Option<BankWork> {
        match record {
            Record::WithdrawalRequested(withdrawal) => {
                Some(BankWork::Payout { withdrawal: Arc::clone(withdrawal), resumed: false })
            }
            // Past the outbox's bound the instruction waits in the log for
            // the next start-up (see `actors::outbox`).
            _ => instruction_for(record, &state.suspense, false)
                .filter(|_| crate::actors::outbox::reserve_instruction())
                .map(BankWork::Instruction),
        }
    }

    fn to_outbox(&self, work: BankWork) {
        match self.outbox.get() {
            // A send error means the actor system stopped: shutting down.
            Some(outbox) => {
                let _ = outbox.send(work);
            }
            None => tracing::error!(?work, "bank work before the outbox runs; it is sent after a restart"),
        }
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

    /// The indexer: reorder what appenders send, wait until it is durable,
    /// fold it. Runs on its own thread until the feed closes or the log
    /// fails.
    pub fn run_indexer(self: Arc<Self>, feed: Receiver<Appended>, wal: fundledger_wal::Wal) {
        let mut waiting: BTreeMap<u64, Vec<Record>> = BTreeMap::new();
        let mut next = self.applied_lsn() + 1;
        while let Ok(appended) = feed.recv() {
            waiting.insert(appended.first_lsn, appended.records);
            while let Some(records) = waiting.remove(&next) {
                let last = next + records.len() as u64 - 1;
                if wal.wait_durable_blocking(last).is_err() {
                    tracing::error!(lsn = last, "history indexer stops: the log failed");
                    return;
                }
                let mut state = self.state.write();
                let mut work = Vec::new();
                for (offset, record) in records.iter().enumerate() {
                    state.apply(next + offset as u64, record);
                    work.extend(Self::bank_work(&state, record));
                }
                drop(state);
                self.applied.send_replace(last);
                for work in work {
                    self.to_outbox(work);
                }
                next = last + 1;
            }
        }
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
        }))
    }

    #[test]
    fn the_latest_bank_answer_of_a_reference_is_shown() {
        let mut history = HistoryState::default();
        history.apply(1, &synced("t-1", Err("REFUSED")));
        history.apply(2, &synced("t-2", Ok("SB000000000001")));
        history.apply(3, &synced("t-1", Ok("SB000000000002")));
        let outcome = |reference: &str| history.bank_sync(reference).map(|sync| sync.outcome.clone());
        assert_eq!(outcome("t-1"), Some(Ok("SB000000000002".into())));
        assert_eq!(outcome("t-2"), Some(Ok("SB000000000001".into())));
        assert_eq!(outcome("t-3"), None);
        let failures: Vec<u64> = history.bank_sync_failures().iter().map(|(lsn, _)| *lsn).collect();
        assert_eq!(failures, vec![1]);
    }
}
