//! The account actor: one per customer account, the only owner of that
//! account's balances and open holds, serializing every message that
//! touches them.
//!
//! A request whose money leaves this account (the payer, or the hold's
//! account for `unfreeze*`) arrives as [`ApplyTransfers`]: the actor judges
//! each item with the pure rules of [`crate::domain::account`], applies its
//! own side in memory, appends one record per item to the log (lsns are
//! assigned at that moment: enqueue order is log order), and only then
//! tells each payee's actor to apply its side with `do_send` ([`Credit`]).
//!
//! Money out and in by hand: a withdrawal ([`RequestWithdrawal`]) is
//! judged and frozen here (`withdrawal_hold`) and its payout's answer comes
//! back as [`FinishWithdrawal`] (settled or released, once); an adjustment
//! deposit arrives already in the log ([`CreditAdjustment`], written by the
//! suspense actor) and is applied like a payee's credit.
//!
//! Why this keeps the invariants (DESIGN.md):
//! - Causality (4): a payee learns of a credit only after its record has an
//!   lsn, so anything the payee does with that money is appended later and
//!   gets a higher lsn; a crash that loses the credit loses the spend too.
//! - Deadlock freedom (6): no account actor ever awaits another actor. The
//!   payee's status comes from the lock-free directory, credits are
//!   fire-and-forget, and the answer waits for durability outside the actor
//!   (the gateway awaits the fsync, not the actor), so A->B and B->A at the
//!   same moment are just two independent messages.
//! - Idempotency (5): each item carries its id's [`Claim`]; the actor
//!   commits it after the append and the credits, or drops it on refusal.
//!
//! Must not: wait for the disk, call another actor and wait, or read the
//! clock more than once per message.

use hashbrown::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use super::directory::Directory;
use super::log::{LedgerLog, LogError};
use crate::domain::account::{AccountBook, AccountStatus, Context as RuleContext, Refusal, TransferRequest};
use crate::domain::ids::AccountId;
use crate::domain::record::{Adjustment, Deposit, Movement, PayoutOutcome, Record, Withdrawal, WithdrawalFinished};
use crate::gateway::idempotency::{Claim, Committed};
use crate::limits;

pub struct AccountActor {
    id: AccountId,
    status: AccountStatus,
    book: AccountBook,
    log: LedgerLog,
    directory: Arc<Directory>,
    /// The lsn of the latest status change (not a journal entry, so not
    /// `last_lsn`, but a read must wait for it to be durable too).
    status_lsn: u64,
    /// Set when an append failed after memory changed: from then on this
    /// actor's memory may be ahead of the log, so it answers nothing.
    poisoned: bool,
}

impl AccountActor {
    pub fn new(
        id: AccountId,
        status: AccountStatus,
        book: AccountBook,
        log: LedgerLog,
        directory: Arc<Directory>,
    ) -> Self {
        Self { id, status, book, log, directory, status_lsn: 0, poisoned: false }
    }

    fn admit(&self) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Unavailable);
        }
        self.log.admit()
    }

    fn payee_active(&self, request: &TransferRequest) -> bool {
        match request.payee {
            Some(payee) if request.kind.has_payee() => self.directory.status(payee) == Some(AccountStatus::Active),
            _ => true,
        }
    }

    /// Append records that memory already reflects; a failure poisons.
    fn append(&mut self, records: Vec<Record>) -> Result<std::ops::Range<u64>, LogError> {
        match self.log.append(records) {
            Ok(lsns) => {
                self.book.last_lsn = self.book.last_lsn.max(lsns.end - 1);
                Ok(lsns)
            }
            Err(error) => {
                tracing::error!(account = %self.id, %error, "append failed after a change in memory; account stops answering");
                self.poisoned = true;
                Err(error)
            }
        }
    }
}

impl Actor for AccountActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(limits::ACCOUNT_MAILBOX_MAX);
    }
}

/// One transfer item for this account, with the claim on its client id.
pub struct TransferItem {
    pub request: TransferRequest,
    pub claim: Claim,
    pub operator: Arc<str>,
}

#[derive(Debug)]
pub enum ItemError {
    Refused(Refusal),
    Log(LogError),
}

pub type ItemOutcome = Result<Committed, ItemError>;

/// Items whose money leaves this account, applied in the given order.
pub struct ApplyTransfers {
    pub items: Vec<TransferItem>,
}

impl Message for ApplyTransfers {
    type Result = Vec<ItemOutcome>;
}

impl Handler<ApplyTransfers> for AccountActor {
    type Result = MessageResult<ApplyTransfers>;

    fn handle(&mut self, message: ApplyTransfers, _: &mut Self::Context) -> Self::Result {
        let count = message.items.len();
        if let Err(error) = self.admit() {
            return MessageResult((0..count).map(|_| Err(ItemError::Log(error))).collect());
        }
        let now_ms = crate::clock::now_ms();
        let mut outcomes: Vec<Result<Arc<Movement>, Refusal>> = Vec::with_capacity(count);
        let mut records = Vec::with_capacity(count);
        let mut claims = Vec::with_capacity(count);
        for item in message.items {
            let context = RuleContext {
                own: self.id,
                own_active: self.status == AccountStatus::Active,
                payee_active: self.payee_active(&item.request),
                now_ms,
                operator: &item.operator,
            };
            match self.book.judge(&item.request, &context) {
                Ok(movement) => {
                    self.book.apply_debit_side(&movement, 0);
                    let movement = Arc::new(movement);
                    records.push(Record::Movement(Arc::clone(&movement)));
                    outcomes.push(Ok(movement));
                    claims.push(Some(item.claim));
                }
                Err(refusal) => {
                    outcomes.push(Err(refusal));
                    claims.push(None); // dropped here: the id is released
                }
            }
        }
        if records.is_empty() {
            return MessageResult(
                outcomes.into_iter().map(|o| Err(ItemError::Refused(o.expect_err("all refused")))).collect(),
            );
        }
        let lsns = match self.append(records) {
            Ok(lsns) => lsns,
            Err(error) => {
                return MessageResult(
                    outcomes
                        .into_iter()
                        .map(|outcome| Err(outcome.map_or_else(ItemError::Refused, |_| ItemError::Log(error))))
                        .collect(),
                )
            }
        };
        let mut next_lsn = lsns.start;
        let mut committed: Vec<ItemOutcome> = Vec::with_capacity(count);
        let mut credits: HashMap<AccountId, Vec<(u64, Arc<Movement>)>> = HashMap::new();
        for outcome in outcomes {
            committed.push(match outcome {
                Ok(movement) => {
                    let lsn = next_lsn;
                    next_lsn += 1;
                    if let Some(payee) = movement.payee.filter(|_| movement.kind.has_payee()) {
                        credits.entry(payee).or_default().push((lsn, Arc::clone(&movement)));
                    }
                    Ok(Committed::Movement { lsn, movement })
                }
                Err(refusal) => Err(ItemError::Refused(refusal)),
            });
        }
        assert_eq!(next_lsn, lsns.end, "every appended record was handed an lsn");
        // Credits go out before the claims commit: whoever finds the id
        // committed (an unfreeze of a pay_freeze hold, say) reaches the
        // payee's mailbox after the credit that opens the hold.
        for (payee, entries) in credits {
            let entry = self.directory.get(payee).expect("payees are checked to exist before they are judged");
            entry.addr.do_send(Credit { entries });
        }
        for (claim, outcome) in claims.into_iter().zip(&committed) {
            if let (Some(claim), Ok(done)) = (claim, outcome) {
                claim.commit(done.clone());
            }
        }
        MessageResult(committed)
    }
}

/// The payee's side of committed movements (already in the log).
pub struct Credit {
    pub entries: Vec<(u64, Arc<Movement>)>,
}

impl Message for Credit {
    type Result = ();
}

impl Handler<Credit> for AccountActor {
    type Result = ();

    fn handle(&mut self, credit: Credit, _: &mut Self::Context) {
        for (lsn, movement) in &credit.entries {
            self.book.apply_credit_side(movement, *lsn);
        }
    }
}

/// A bank credit for this account, decided by the notification desk,
/// with the claim on its bank serial.
pub struct ApplyDeposit {
    pub deposit: Deposit,
    pub claim: Claim,
}

impl Message for ApplyDeposit {
    type Result = ItemOutcome;
}

impl Handler<ApplyDeposit> for AccountActor {
    type Result = ItemOutcome;

    fn handle(&mut self, message: ApplyDeposit, _: &mut Self::Context) -> Self::Result {
        self.admit().map_err(ItemError::Log)?;
        let amount = message.deposit.notification.amount;
        if !self.book.can_credit(amount) {
            return Err(ItemError::Refused(Refusal::BalanceOverflow));
        }
        self.book.apply_deposit(self.id, amount, 0);
        let deposit = Arc::new(message.deposit);
        let lsn = self.append(vec![Record::Deposit(Arc::clone(&deposit))]).map_err(ItemError::Log)?.start;
        let committed = Committed::Deposit { lsn, deposit };
        message.claim.commit(committed.clone());
        Ok(committed)
    }
}

/// A withdrawal from this account, with the claim on its client id. The
/// payout is not sent from here: the outbox sends it once the record is
/// durable (it follows the log, see [`super::outbox`]).
pub struct RequestWithdrawal {
    pub withdrawal: Withdrawal,
    pub claim: Claim,
}

impl Message for RequestWithdrawal {
    type Result = ItemOutcome;
}

impl Handler<RequestWithdrawal> for AccountActor {
    type Result = ItemOutcome;

    fn handle(&mut self, message: RequestWithdrawal, _: &mut Self::Context) -> Self::Result {
        self.admit().map_err(ItemError::Log)?;
        let withdrawal = Arc::new(message.withdrawal);
        assert_eq!(withdrawal.account_id, self.id, "withdrawals are routed to their account");
        self.book
            .judge_withdrawal(withdrawal.amount, self.status == AccountStatus::Active)
            .map_err(ItemError::Refused)?;
        self.book.apply_withdrawal_hold(self.id, &withdrawal.id, withdrawal.amount, 0);
        let lsn =
            self.append(vec![Record::WithdrawalRequested(Arc::clone(&withdrawal))]).map_err(ItemError::Log)?.start;
        let committed = Committed::Withdrawal { lsn, withdrawal };
        message.claim.commit(committed.clone());
        Ok(committed)
    }
}

/// The bank's final answer to a withdrawal's payout. Sent by the outbox,
/// possibly more than once (after a restart, say): only a withdrawal still
/// processing here is finished, once.
pub struct FinishWithdrawal {
    pub id: Box<str>,
    pub amount: crate::domain::money::Money,
    pub outcome: PayoutOutcome,
}

impl Message for FinishWithdrawal {
    type Result = ();
}

/// How long a finish waits before it is tried again when the log turns it
/// away (overloaded or low on disk): the money stays frozen meanwhile.
const FINISH_RETRY_MS: u64 = 500;

impl Handler<FinishWithdrawal> for AccountActor {
    type Result = ();

    fn handle(&mut self, message: FinishWithdrawal, ctx: &mut Self::Context) {
        if !self.book.is_processing(&message.id) {
            return;
        }
        if self.poisoned {
            return;
        }
        if let Err(error) = self.log.admit() {
            tracing::warn!(account = %self.id, withdrawal = %message.id, %error, "cannot record a payout's answer yet; retrying");
            ctx.notify_later(message, std::time::Duration::from_millis(FINISH_RETRY_MS));
            return;
        }
        let succeeded = matches!(message.outcome, PayoutOutcome::Succeeded { .. });
        let finished = Arc::new(WithdrawalFinished {
            id: message.id,
            account_id: self.id,
            amount: message.amount,
            outcome: message.outcome,
            finished_at_ms: crate::clock::now_ms(),
        });
        assert_eq!(
            self.book.withdrawals.get(&finished.id),
            Some(&finished.amount),
            "a payout's amount is the withdrawal's"
        );
        self.book.apply_withdrawal_finished(self.id, &finished.id, succeeded, 0);
        let _ = self.append(vec![Record::WithdrawalFinished(finished)]);
    }
}

/// An adjustment deposit for this account, already in the log (the
/// suspense actor wrote it); like [`Credit`], applied without judging.
pub struct CreditAdjustment {
    pub lsn: u64,
    pub adjustment: Arc<Adjustment>,
}

impl Message for CreditAdjustment {
    type Result = ();
}

impl Handler<CreditAdjustment> for AccountActor {
    type Result = ();

    fn handle(&mut self, message: CreditAdjustment, _: &mut Self::Context) {
        self.book.apply_deposit(self.id, message.adjustment.amount, message.lsn);
    }
}

/// The bank's answer to this account's signing.
pub struct SignResult {
    pub outcome: Result<Box<str>, Box<str>>,
}

impl Message for SignResult {
    type Result = ();
}

impl Handler<SignResult> for AccountActor {
    type Result = ();

    fn handle(&mut self, message: SignResult, _: &mut Self::Context) {
        if self.status != AccountStatus::Signing || self.admit().is_err() {
            return;
        }
        let at_ms = crate::clock::now_ms();
        let (record, status) = match message.outcome {
            Ok(sub_account_no) => {
                (Record::AccountSigned { account_id: self.id, sub_account_no, at_ms }, AccountStatus::Active)
            }
            Err(reason) => {
                (Record::AccountSignFailed { account_id: self.id, reason, at_ms }, AccountStatus::SignFailed)
            }
        };
        let sub_account_no = match &record {
            Record::AccountSigned { sub_account_no, .. } => Some(sub_account_no.clone()),
            _ => None,
        };
        if let Ok(lsns) = self.log.append(vec![record]) {
            self.status_lsn = lsns.start;
            if let Some(sub_account_no) = sub_account_no {
                self.directory.set_sub_account(self.id, sub_account_no);
            }
            self.status = status;
            self.directory.set_status(self.id, status);
        }
    }
}

/// What a read of the account shows (after its `last_lsn` is durable).
#[derive(Clone, Debug)]
pub struct AccountSnapshot {
    pub status: AccountStatus,
    pub book: crate::domain::account::Balance,
    pub last_lsn: u64,
    /// What a read must wait for: every change this snapshot shows.
    pub durable_lsn_needed: u64,
}

pub struct Snapshot;

impl Message for Snapshot {
    type Result = Result<AccountSnapshot, LogError>;
}

impl Handler<Snapshot> for AccountActor {
    type Result = Result<AccountSnapshot, LogError>;

    fn handle(&mut self, _: Snapshot, _: &mut Self::Context) -> Self::Result {
        if self.poisoned {
            return Err(LogError::Unavailable);
        }
        Ok(AccountSnapshot {
            status: self.status,
            book: self.book.balance,
            last_lsn: self.book.last_lsn,
            durable_lsn_needed: self.book.last_lsn.max(self.status_lsn),
        })
    }
}
