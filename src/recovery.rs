//! Recovery: replay the log into the state the actors had, and check it.
//!
//! Owns the fold from records to the whole ledger state at start-up. It
//! calls the same pure rules the actors call ([`AccountBook`]'s
//! `apply_*`), never judging a business rule again (the log stores
//! results). Every account's invariants are asserted as each record is
//! applied, and at the end the history's folded balances must equal the
//! books exactly.
//!
//! The same fold loads a checkpoint (whose payload is the records up to
//! its lsn, [`crate::codec::checkpoint`]); `fundledger wal verify` folds
//! checkpoints offline without the read models
//! ([`Recovered::without_read_models`]).
//!
//! Must not talk to actors: it runs before any exist.

use hashbrown::HashMap;
use std::sync::Arc;

use crate::actors::directory::AccountInfo;
use crate::actors::outbox::{instruction_for, InstructionWork};
use crate::actors::registry::account_info;
use crate::domain::account::{AccountBook, AccountStatus};
use crate::domain::ids::AccountId;
use crate::domain::record::{Notification, PayoutOutcome, Record, Withdrawal};
use crate::domain::registry::Applications;
use crate::domain::suspense::SuspenseBook;
use crate::finance::history::HistoryState;
use crate::gateway::idempotency::{Committed, IdIndex};

pub struct RecoveredAccount {
    pub info: Arc<AccountInfo>,
    pub status: AccountStatus,
    pub sub_account_no: Option<Box<str>>,
    pub book: AccountBook,
}

pub struct Recovered {
    pub applications: Applications,
    pub accounts: Vec<RecoveredAccount>,
    pub ids: Arc<IdIndex>,
    pub notifications: Arc<IdIndex>,
    pub suspense: SuspenseBook,
    /// Withdrawals still processing at the end of the log, by id, with the
    /// lsn of their hold: the outbox asks the bank about each (their
    /// payouts may or may not have been made before the crash).
    pub withdrawals_pending: HashMap<Box<str>, (u64, Arc<Withdrawal>)>,
    /// Bank instructions (forced transfers, adjustments, returns) without
    /// the bank's answer in the log, by reference, with their lsn.
    pub instructions_pending: HashMap<Box<str>, (u64, InstructionWork)>,
    pub history: HistoryState,
    pub last_lsn: u64,
    /// Whether the read models (id and notification indexes, history) are
    /// built ([`Recovered::without_read_models`] skips them).
    read_models: bool,
    /// Records at or below this lsn are in the history archive: their ids
    /// are found there, not kept in memory.
    indexed_through: u64,
}

/// The key of a bank notification in the notification index: one bank's
/// serial numbers are unique only at that bank.
pub fn notification_key(notification: &Notification) -> String {
    format!("{}\u{1f}{}", notification.bank, notification.bank_serial)
}

/// The id a record commits and what a retry of it is answered with: the
/// client id (movements, withdrawals, adjustments, returns) or the
/// notification key (deposits, suspense entries).
pub fn committed_of(lsn: u64, record: &Record) -> Option<(std::borrow::Cow<'_, str>, Committed)> {
    use std::borrow::Cow;
    Some(match record {
        Record::Movement(movement) => {
            (Cow::Borrowed(&*movement.id), Committed::Movement { lsn, movement: Arc::clone(movement) })
        }
        Record::Deposit(deposit) => (
            Cow::Owned(notification_key(&deposit.notification)),
            Committed::Deposit { lsn, deposit: Arc::clone(deposit) },
        ),
        Record::SuspenseOpened(entry) => {
            (Cow::Owned(notification_key(&entry.notification)), Committed::Suspense { lsn, entry: Arc::clone(entry) })
        }
        Record::WithdrawalRequested(withdrawal) => {
            (Cow::Borrowed(&*withdrawal.id), Committed::Withdrawal { lsn, withdrawal: Arc::clone(withdrawal) })
        }
        Record::AdjustmentDeposit(adjustment) => {
            (Cow::Borrowed(&*adjustment.id), Committed::Adjustment { lsn, adjustment: Arc::clone(adjustment) })
        }
        Record::SuspenseReturned(returned) => {
            (Cow::Borrowed(&*returned.id), Committed::SuspenseReturn { lsn, suspense_return: Arc::clone(returned) })
        }
        _ => return None,
    })
}

impl Default for Recovered {
    fn default() -> Self {
        Self::new()
    }
}

impl Recovered {
    pub fn new() -> Self {
        Self {
            applications: Applications::default(),
            accounts: Vec::new(),
            ids: Arc::new(IdIndex::new()),
            notifications: Arc::new(IdIndex::new()),
            suspense: SuspenseBook::default(),
            withdrawals_pending: HashMap::new(),
            instructions_pending: HashMap::new(),
            history: HistoryState::default(),
            last_lsn: 0,
            read_models: true,
            indexed_through: 0,
        }
    }

    /// The fold of a server whose history archive holds the records up to
    /// `indexed_through`.
    pub fn with_archive(indexed_through: u64) -> Self {
        Self { history: HistoryState::indexed_through(indexed_through), indexed_through, ..Self::new() }
    }

    /// Everything but the read models: the fold that checks a checkpoint
    /// offline.
    pub fn without_read_models() -> Self {
        Self { read_models: false, ..Self::new() }
    }

    /// Fold the records of checkpoint `lsn` (its payload as the wal crate
    /// read and checked it). On `Err` the state is half-built: discard it.
    pub fn load_checkpoint(&mut self, lsn: u64, payload: &[u8]) -> Result<(), String> {
        if self.last_lsn != 0 || self.history.applied_lsn() != 0 {
            return Err("a checkpoint is loaded into an empty state".into());
        }
        let meta = crate::codec::checkpoint::decode(payload, |lsn, record| self.apply(lsn, &record))
            .map_err(|error| error.to_string())?;
        if meta.last_lsn != lsn || self.last_lsn != lsn {
            return Err(format!("checkpoint named lsn {lsn} holds records up to lsn {}", meta.last_lsn));
        }
        Ok(())
    }

    fn account(&mut self, id: AccountId, lsn: u64) -> Result<&mut RecoveredAccount, String> {
        let index = usize::try_from(id.0).ok().and_then(|n| n.checked_sub(1));
        index
            .and_then(|index| self.accounts.get_mut(index))
            .ok_or_else(|| format!("lsn {lsn}: record names account {id}, which no earlier record opened"))
    }

    /// Apply one record, in lsn order.
    pub fn apply(&mut self, lsn: u64, record: &Record) -> Result<(), String> {
        if lsn != self.last_lsn + 1 {
            return Err(format!("lsn {lsn} follows {}: the log has a gap", self.last_lsn));
        }
        self.last_lsn = lsn;
        match record {
            Record::ApplicationCreated(_) | Record::ApplicationRejected(_) => self.applications.apply(record),
            Record::ApplicationApproved(decision) => {
                let application = self
                    .applications
                    .get(decision.application_id)
                    .map(|state| Arc::clone(&state.application))
                    .ok_or_else(|| format!("lsn {lsn}: approval of unknown application {}", decision.application_id))?;
                let account_id = decision.account_id.ok_or_else(|| format!("lsn {lsn}: approval without account"))?;
                if account_id.0 != self.accounts.len() as u64 + 1 {
                    return Err(format!("lsn {lsn}: account {account_id} opened out of order"));
                }
                self.applications.apply(record);
                self.accounts.push(RecoveredAccount {
                    info: Arc::new(account_info(account_id, &application, decision.decided_at_ms)),
                    status: AccountStatus::Signing,
                    sub_account_no: None,
                    book: AccountBook::default(),
                });
            }
            Record::AccountSigned { account_id, sub_account_no, .. } => {
                let account = self.account(*account_id, lsn)?;
                account.status = AccountStatus::Active;
                account.sub_account_no = Some(sub_account_no.clone());
            }
            Record::AccountSignFailed { account_id, .. } => {
                self.account(*account_id, lsn)?.status = AccountStatus::SignFailed
            }
            Record::Movement(movement) => {
                if let Some(hold_id) = movement.hold_id.as_deref().filter(|_| movement.kind.uses_hold()) {
                    let payer = self.account(movement.payer, lsn)?;
                    if !payer.book.holds.contains_key(hold_id) {
                        return Err(format!(
                            "lsn {lsn}: movement {} uses hold {hold_id}, not open on {}",
                            movement.id, movement.payer
                        ));
                    }
                }
                if let Some(payee) = movement.payee.filter(|_| movement.kind.has_payee()) {
                    self.account(payee, lsn)?;
                }
                self.account(movement.payer, lsn)?.book.apply_debit_side(movement, lsn);
                if let Some(payee) = movement.payee.filter(|_| movement.kind.has_payee()) {
                    self.account(payee, lsn)?.book.apply_credit_side(movement, lsn);
                }
            }
            Record::Deposit(deposit) => {
                let account = self.account(deposit.account_id, lsn)?;
                account.book.apply_deposit(deposit.account_id, deposit.notification.amount, lsn);
            }
            Record::SuspenseOpened(entry) => {
                if entry.suspense_id != self.suspense.next_id() {
                    return Err(format!("lsn {lsn}: suspense entry {} opened out of order", entry.suspense_id));
                }
                self.suspense.apply(record);
            }
            Record::WithdrawalRequested(withdrawal) => {
                let account = self.account(withdrawal.account_id, lsn)?;
                account.book.apply_withdrawal_hold(withdrawal.account_id, &withdrawal.id, withdrawal.amount, lsn);
                self.withdrawals_pending.insert(withdrawal.id.clone(), (lsn, Arc::clone(withdrawal)));
            }
            Record::WithdrawalFinished(finished) => {
                let account = self.account(finished.account_id, lsn)?;
                if account.book.withdrawals.get(&finished.id) != Some(&finished.amount) {
                    return Err(format!("lsn {lsn}: withdrawal {} finished but not processing", finished.id));
                }
                let succeeded = matches!(finished.outcome, PayoutOutcome::Succeeded { .. });
                account.book.apply_withdrawal_finished(finished.account_id, &finished.id, succeeded, lsn);
                self.withdrawals_pending.remove(&finished.id);
            }
            Record::AdjustmentDeposit(adjustment) => {
                let state = self.suspense.get(adjustment.suspense_id);
                if state.is_none_or(|state| state.remaining < adjustment.amount || state.returned) {
                    return Err(format!("lsn {lsn}: adjustment {} exceeds its suspense entry", adjustment.id));
                }
                self.suspense.apply(record);
                let account = self.account(adjustment.account_id, lsn)?;
                account.book.apply_deposit(adjustment.account_id, adjustment.amount, lsn);
            }
            Record::SuspenseReturned(returned) => {
                if self.suspense.judge_return(returned.suspense_id) != Ok(returned.amount) {
                    return Err(format!("lsn {lsn}: return {} of an entry that is not open", returned.id));
                }
                self.suspense.apply(record);
            }
            Record::BankSynced(sync) => {
                self.instructions_pending.remove(&sync.reference);
            }
            // Finance's records: only the history's read models fold them.
            Record::ReconciliationRecorded(_) | Record::DiscrepancyProposed(_) | Record::DiscrepancyResolved(_) => {}
        }
        if let Some(work) = instruction_for(record, &self.suspense, true) {
            self.instructions_pending.insert(work.reference.clone(), (lsn, work));
        }
        if self.read_models {
            self.index(lsn, record);
        }
        Ok(())
    }

    /// The read models of one applied record: the client-id index, the
    /// bank-notification index (ids of records the archive holds are found
    /// there instead) and the history.
    fn index(&mut self, lsn: u64, record: &Record) {
        if lsn > self.indexed_through {
            if let Some((key, committed)) = committed_of(lsn, record) {
                let index = if matches!(committed, Committed::Deposit { .. } | Committed::Suspense { .. }) {
                    &self.notifications
                } else {
                    &self.ids
                };
                index.insert_recovered(key.into(), committed);
            }
        }
        self.history.apply(lsn, record);
    }

    /// The end-of-replay check: every book's invariants, and the journal's
    /// folded balances equal to the books (journals sum to balances).
    pub fn check(&self) {
        for account in &self.accounts {
            let id = account.info.account_id;
            account.book.assert_invariants(id);
            if self.read_models {
                assert_eq!(self.history.balance(id), account.book.balance, "{id}: journal does not sum to the balance");
            }
        }
    }
}
