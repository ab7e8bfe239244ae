//! The account actor: one per customer account while it has work (a
//! virtual actor, see Lifetime below), the only owner of that account's
//! balances and open holds while it lives, serializing every message that
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
//! Lifetime (issue 5, target 5): the actor is virtual. A transfer request
//! for an idle account is not even given one: the sender runs the same
//! judging and applying code ([`Owner`]) in place under the account's slot
//! lock ([`Directory::send_transfers`]). Other messages, or any message
//! while the actor is live, go to the actor. It is started by
//! the directory when a message arrives for an idle account (activation,
//! with the book the directory kept) and, after
//! [`limits::ACCOUNT_IDLE_PASSIVATE_MS`] with no message handled, hands
//! its book back to the directory and stops (passivation) if no message is
//! on its way to it. Every message comes through [`Directory::send`] /
//! [`Directory::do_send`] wrapped in [`Leased`], whose ticket keeps the
//! actor from passivating until the message is handled; the protocol and
//! why it keeps each account's messages serialized are in
//! [`super::directory`]. A poisoned actor, or one with a payout answer to
//! retry, never passivates.
//!
//! Must not: wait for the disk, call another actor and wait, read the
//! clock more than once per message, hold a book after passivating, or be
//! sent a message other than through the directory.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use smallvec::SmallVec;

use super::directory::{Directory, IdleAccount, Ticket};
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
    /// Whether a message was handled since the last idle check.
    busy: bool,
    /// Payout answers waiting to be retried (timers of this actor's own).
    retries: u32,
    /// Set once the book went back to the directory; nothing may be
    /// handled after it.
    passivated: bool,
    /// How often it checks whether it is idle.
    idle_period: Duration,
}

impl AccountActor {
    pub fn new(
        id: AccountId,
        status: AccountStatus,
        idle: IdleAccount,
        log: LedgerLog,
        directory: Arc<Directory>,
        idle_period: Duration,
        poisoned: bool,
    ) -> Self {
        Self {
            id,
            status,
            book: idle.book,
            log,
            directory,
            status_lsn: idle.status_lsn,
            poisoned,
            busy: true,
            retries: 0,
            passivated: false,
            idle_period,
        }
    }

    /// Every message, before it is handled.
    fn arrived(&mut self) {
        assert!(!self.passivated, "{}: a message reached an account actor after it passivated", self.id);
        self.busy = true;
    }

    /// The idle check: passivate if nothing was handled since the last one
    /// and nothing is on its way (see [`super::directory`]).
    fn idle_check(&mut self, ctx: &mut Context<Self>) {
        if std::mem::take(&mut self.busy) || self.poisoned || self.retries > 0 || self.passivated {
            return;
        }
        let Some(entry) = self.directory.get(self.id) else {
            unreachable!("{}: an account actor's account is in the directory", self.id)
        };
        let book = &mut self.book;
        let status_lsn = self.status_lsn;
        if entry.passivate(&ctx.address(), || IdleAccount { book: std::mem::take(book), status_lsn }) {
            self.passivated = true;
            self.directory.passivated();
            ctx.stop();
        }
    }

    fn admit(&self) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Unavailable);
        }
        self.log.admit()
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
        // An actor activated just before shutdown is started by actix's
        // last poll while its arbiter's runtime is being dropped: no timer
        // can be made then (tokio panics), and none is needed.
        if tokio::runtime::Handle::try_current().is_ok() {
            ctx.run_interval(self.idle_period, Self::idle_check);
        }
    }
}

/// A message an account actor handles; sent only through the directory,
/// wrapped in [`Leased`].
pub trait AccountMessage: Send + 'static {
    type Output: Send + 'static;

    fn handle(self, actor: &mut AccountActor, ctx: &mut Context<AccountActor>) -> Self::Output;

    /// For a message sent without waiting ([`Directory::do_send`]) whose
    /// whole effect is on the book, with nothing to judge, log or answer (a
    /// credit already in the log): apply it to an idle account's book in
    /// place, under the slot's lock, instead of activating an actor for
    /// it. `Err` gives it back: it needs an actor (the default).
    fn apply_idle(self, id: AccountId, idle: &mut IdleAccount) -> Result<(), Self>
    where
        Self: Sized,
    {
        let _ = (id, idle);
        Err(self)
    }
}

/// A message on its way to a live account actor, counted in its account's
/// `pending` until the ticket drops (with the message, after its handler).
pub struct Leased<M> {
    pub(super) message: M,
    pub(super) ticket: Ticket,
}

impl<M: AccountMessage> Message for Leased<M> {
    type Result = M::Output;
}

impl<M: AccountMessage> Handler<Leased<M>> for AccountActor {
    type Result = MessageResult<Leased<M>>;

    fn handle(&mut self, leased: Leased<M>, ctx: &mut Self::Context) -> Self::Result {
        self.arrived();
        let Leased { message, ticket } = leased;
        let output = message.handle(self, ctx);
        drop(ticket);
        MessageResult(output)
    }
}

/// One transfer item for this account, with the claim on its client id.
pub struct TransferItem {
    pub request: TransferRequest,
    pub claim: Claim,
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
    /// Who submitted them (one request's items share it).
    pub operator: Arc<str>,
}

impl AccountMessage for ApplyTransfers {
    type Output = Vec<ItemOutcome>;

    fn handle(self, actor: &mut AccountActor, _: &mut Context<AccountActor>) -> Self::Output {
        actor.apply_transfers(self)
    }
}

impl AccountActor {
    fn apply_transfers(&mut self, message: ApplyTransfers) -> Vec<ItemOutcome> {
        if self.poisoned {
            return message.items.iter().map(|_| Err(ItemError::Log(LogError::Unavailable))).collect();
        }
        let owner = Owner { id: self.id, status: self.status, book: &mut self.book, log: &self.log };
        let applied = owner.apply_transfers(message, &self.directory);
        if applied.log_failed {
            tracing::error!(account = %self.id, "append failed after a change in memory; account stops answering");
            self.poisoned = true;
        }
        let (answers, credits_in_place) = applied.finish(&self.directory);
        self.directory.count_applied_idle(credits_in_place);
        answers
    }
}

/// What judging and applying a message needs of its account, whoever owns
/// the book at that moment: its live actor, or, for an idle account, the
/// sender in place under the account's slot lock
/// ([`Directory::send_transfers`]). Either way exactly one owner, so the
/// account's messages stay serialized.
pub(super) struct Owner<'a> {
    pub id: AccountId,
    pub status: AccountStatus,
    pub book: &'a mut AccountBook,
    pub log: &'a LedgerLog,
}

/// [`ApplyTransfers`] judged, applied to the payer's book and appended;
/// the payees' credits and the id claims are still to go out
/// ([`Applied::finish`]), which the in-place path does after it released
/// the payer's slot lock (a sender never holds two slot locks).
pub(super) struct Applied {
    committed: Vec<ItemOutcome>,
    /// (payee, lsn, movement) in lsn order; grouped by payee in `finish`.
    credits: SmallVec<[(AccountId, u64, Arc<Movement>); GROUP_INLINE]>,
    claims: SmallVec<[Option<Claim>; GROUP_INLINE]>,
    /// The append failed after the book changed: the book is ahead of the
    /// log, its owner must answer nothing from now on.
    pub log_failed: bool,
}

/// Items one message carries without an allocation of their own in the
/// lists built while it is applied: a batch over many accounts gives each
/// payer one or two items (8,190 over 10,000 accounts: 1.5 on average),
/// and each list was an allocation per payer.
const GROUP_INLINE: usize = 2;

impl Owner<'_> {
    /// Judge each item in order, apply the payer's side, append one record
    /// per accepted item (lsns assigned now: enqueue order is log order).
    pub(super) fn apply_transfers(self, message: ApplyTransfers, directory: &Directory) -> Applied {
        let count = message.items.len();
        let refused_all = |error: LogError| Applied {
            committed: (0..count).map(|_| Err(ItemError::Log(error))).collect(),
            credits: SmallVec::new(),
            claims: SmallVec::new(),
            log_failed: false,
        };
        if let Err(error) = self.log.admit() {
            return refused_all(error);
        }
        let now_ms = crate::clock::now_ms();
        let mut outcomes: SmallVec<[Result<Arc<Movement>, Refusal>; GROUP_INLINE]> = SmallVec::with_capacity(count);
        let mut records = Vec::with_capacity(count);
        let mut claims = SmallVec::with_capacity(count);
        for item in message.items {
            let payee_active = match item.request.payee {
                Some(payee) if item.request.kind.has_payee() => directory.status(payee) == Some(AccountStatus::Active),
                _ => true,
            };
            let context = RuleContext {
                own: self.id,
                own_active: self.status == AccountStatus::Active,
                payee_active,
                now_ms,
                operator: &message.operator,
            };
            match self.book.judge(item.request, &context) {
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
        let mut applied = Applied {
            committed: Vec::with_capacity(count),
            credits: SmallVec::with_capacity(count),
            claims,
            log_failed: false,
        };
        if records.is_empty() {
            applied.committed =
                outcomes.into_iter().map(|o| Err(ItemError::Refused(o.expect_err("all refused")))).collect();
            return applied;
        }
        let lsns = match self.log.append(records) {
            Ok(lsns) => {
                self.book.last_lsn = self.book.last_lsn.max(lsns.end - 1);
                lsns
            }
            Err(error) => {
                applied.log_failed = true;
                applied.committed = outcomes
                    .into_iter()
                    .map(|outcome| Err(outcome.map_or_else(ItemError::Refused, |_| ItemError::Log(error))))
                    .collect();
                return applied;
            }
        };
        let mut next_lsn = lsns.start;
        for outcome in outcomes {
            applied.committed.push(match outcome {
                Ok(movement) => {
                    let lsn = next_lsn;
                    next_lsn += 1;
                    if let Some(payee) = movement.payee.filter(|_| movement.kind.has_payee()) {
                        applied.credits.push((payee, lsn, Arc::clone(&movement)));
                    }
                    Ok(Committed::Movement { lsn, movement })
                }
                Err(refusal) => Err(ItemError::Refused(refusal)),
            });
        }
        assert_eq!(next_lsn, lsns.end, "every appended record was handed an lsn");
        applied
    }
}

impl Applied {
    /// Send the credits, then commit the claims; the answers. Called with
    /// no slot lock held. Credits go out before the claims commit: whoever
    /// finds the id committed (an unfreeze of a pay_freeze hold, say)
    /// reaches the payee after the credit that opens the hold.
    /// Also how many credits were applied in place (for
    /// [`Directory::applied_idle_count`]).
    pub(super) fn finish(mut self, directory: &Arc<Directory>) -> (Vec<ItemOutcome>, u64) {
        // One credit per payee, its entries in lsn order (a stable sort).
        self.credits.sort_by_key(|(payee, ..)| *payee);
        let mut in_place = 0;
        let mut credits = self.credits.into_iter().peekable();
        while let Some((payee, lsn, movement)) = credits.next() {
            let mut entries = CreditEntries::new();
            entries.push((lsn, movement));
            while let Some((_, lsn, movement)) = credits.next_if(|(next, ..)| *next == payee) {
                entries.push((lsn, movement));
            }
            let entry = directory.get(payee).expect("payees are checked to exist before they are judged");
            in_place += u64::from(directory.deliver(payee, entry, Credit { entries }));
        }
        for (claim, outcome) in self.claims.into_iter().zip(&self.committed) {
            if let (Some(claim), Ok(done)) = (claim, outcome) {
                claim.commit(done.clone());
            }
        }
        (self.committed, in_place)
    }
}

/// The payee's side of committed movements (already in the log).
pub struct Credit {
    pub entries: CreditEntries,
}

/// A credit's (lsn, movement) entries: in a batch nearly always one per
/// payee, kept without an allocation of its own.
pub type CreditEntries = SmallVec<[(u64, Arc<Movement>); 1]>;

impl AccountMessage for Credit {
    type Output = ();

    fn handle(self, actor: &mut AccountActor, _: &mut Context<AccountActor>) {
        for (lsn, movement) in &self.entries {
            actor.book.apply_credit_side(movement, *lsn);
        }
    }

    fn apply_idle(self, _: AccountId, idle: &mut IdleAccount) -> Result<(), Self> {
        for (lsn, movement) in &self.entries {
            idle.book.apply_credit_side(movement, *lsn);
        }
        Ok(())
    }
}

/// A bank credit for this account, decided by the notification desk,
/// with the claim on its bank serial.
pub struct ApplyDeposit {
    pub deposit: Deposit,
    pub claim: Claim,
}

impl AccountMessage for ApplyDeposit {
    type Output = ItemOutcome;

    fn handle(self, actor: &mut AccountActor, _: &mut Context<AccountActor>) -> ItemOutcome {
        actor.apply_deposit(self)
    }
}

impl AccountActor {
    fn apply_deposit(&mut self, message: ApplyDeposit) -> ItemOutcome {
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

impl AccountMessage for RequestWithdrawal {
    type Output = ItemOutcome;

    fn handle(self, actor: &mut AccountActor, _: &mut Context<AccountActor>) -> ItemOutcome {
        actor.request_withdrawal(self)
    }
}

impl AccountActor {
    fn request_withdrawal(&mut self, message: RequestWithdrawal) -> ItemOutcome {
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

impl AccountMessage for FinishWithdrawal {
    type Output = ();

    fn handle(self, actor: &mut AccountActor, ctx: &mut Context<AccountActor>) {
        actor.finish_withdrawal(self, ctx);
    }
}

/// A [`FinishWithdrawal`] the actor sends itself later (its own timer, so
/// not through the directory: `retries` keeps the actor live meanwhile).
struct RetryFinish(FinishWithdrawal);

impl Message for RetryFinish {
    type Result = ();
}

impl Handler<RetryFinish> for AccountActor {
    type Result = ();

    fn handle(&mut self, retry: RetryFinish, ctx: &mut Self::Context) {
        self.arrived();
        assert!(self.retries > 0, "{}: a retry was counted", self.id);
        self.retries -= 1;
        self.finish_withdrawal(retry.0, ctx);
    }
}

/// How long a finish waits before it is tried again when the log turns it
/// away (overloaded or low on disk): the money stays frozen meanwhile.
const FINISH_RETRY_MS: u64 = 500;

impl AccountActor {
    fn finish_withdrawal(&mut self, message: FinishWithdrawal, ctx: &mut Context<Self>) {
        if !self.book.is_processing(&message.id) {
            return;
        }
        if self.poisoned {
            return;
        }
        if let Err(error) = self.log.admit() {
            tracing::warn!(account = %self.id, withdrawal = %message.id, %error, "cannot record a payout's answer yet; retrying");
            self.retries += 1;
            ctx.notify_later(RetryFinish(message), Duration::from_millis(FINISH_RETRY_MS));
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
        assert_eq!(self.book.withdrawal(&finished.id), Some(finished.amount), "a payout's amount is the withdrawal's");
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

impl AccountMessage for CreditAdjustment {
    type Output = ();

    fn handle(self, actor: &mut AccountActor, _: &mut Context<AccountActor>) {
        actor.book.apply_deposit(actor.id, self.adjustment.amount, self.lsn);
    }

    fn apply_idle(self, id: AccountId, idle: &mut IdleAccount) -> Result<(), Self> {
        idle.book.apply_deposit(id, self.adjustment.amount, self.lsn);
        Ok(())
    }
}

/// The bank's answer to this account's signing.
pub struct SignResult {
    pub outcome: Result<Box<str>, Box<str>>,
}

impl AccountMessage for SignResult {
    type Output = ();

    fn handle(self, actor: &mut AccountActor, _: &mut Context<AccountActor>) {
        actor.sign_result(self);
    }
}

impl AccountActor {
    fn sign_result(&mut self, message: SignResult) {
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

impl AccountMessage for Snapshot {
    type Output = Result<AccountSnapshot, LogError>;

    fn handle(self, actor: &mut AccountActor, _: &mut Context<AccountActor>) -> Self::Output {
        if actor.poisoned {
            return Err(LogError::Unavailable);
        }
        Ok(AccountSnapshot {
            status: actor.status,
            book: actor.book.balance,
            last_lsn: actor.book.last_lsn,
            durable_lsn_needed: actor.book.last_lsn.max(actor.status_lsn),
        })
    }
}

#[cfg(test)]
mod tests {
    //! Activation and passivation with a real actor system, a real log in
    //! a temporary directory and idle periods of milliseconds.

    use std::sync::mpsc::sync_channel;
    use std::time::{Duration, Instant};

    use fundledger_wal::{RecoveryPolicy, Wal, WalConfig};

    use super::*;
    use crate::actors::directory::test_info;
    use crate::actors::spawner::Spawner;
    use crate::domain::money::Money;
    use crate::domain::record::TransferType;
    use crate::gateway::idempotency::IdIndex;

    const FUND: i64 = 1_000_000;

    /// A directory whose actors passivate after `idle_ms`, on two arbiters,
    /// with `accounts` active accounts funded with [`FUND`] fen each.
    fn directory(dir: &std::path::Path, idle_ms: u64, accounts: u64) -> Arc<Directory> {
        let (wal, _) =
            Wal::open(WalConfig::new(dir.join("wal")), RecoveryPolicy::default(), 1, |_, _| Ok::<(), String>(()))
                .expect("a fresh log opens");
        let (feed, history) = sync_channel(1024);
        let log = LedgerLog::new(wal, feed);
        // Stands in for the history indexer: folds nothing, but says so.
        let backlog = log.feed_backlog();
        std::thread::spawn(move || {
            while let Ok(appended) = history.recv() {
                backlog.indexed(appended.records.len());
            }
        });
        let arbiters = (0..2).map(|_| Arbiter::new().handle()).collect();
        let directory = Arc::new(Directory::new());
        directory.set_spawner(Spawner::with_idle_period(arbiters, log, Duration::from_millis(idle_ms)));
        for n in 1..=accounts {
            let id = AccountId(n);
            let mut book = AccountBook::default();
            book.apply_deposit(id, Money(FUND), 0);
            directory.insert(test_info(n), AccountStatus::Active, None, book);
        }
        directory
    }

    async fn snapshot(directory: &Arc<Directory>, id: u64) -> AccountSnapshot {
        let entry = directory.get(AccountId(id)).expect("account exists");
        directory.send(entry, Snapshot).await.expect("delivered").expect("not poisoned")
    }

    async fn wait_all_passivated(directory: &Directory) {
        let started = Instant::now();
        while directory.live_count() > 0 {
            assert!(started.elapsed() < Duration::from_secs(10), "actors still live: {}", directory.live_count());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn request(
        id: String,
        kind: TransferType,
        payer: u64,
        payee: u64,
        hold: Option<&str>,
        fen: i64,
    ) -> TransferRequest {
        TransferRequest {
            id: id.into(),
            kind,
            payer: (payer > 0).then_some(AccountId(payer)),
            payee: (payee > 0).then_some(AccountId(payee)),
            hold_id: hold.map(Into::into),
            amount: Some(Money(fen)),
            order_id: None,
            memo: None,
        }
    }

    /// How a test hands a transfer to its owning account.
    #[derive(Clone, Copy)]
    enum Path {
        /// As the gateway does: in place if the account is idle
        /// ([`Directory::send_transfers`]).
        Gateway,
        /// Always through the account's actor, activating it if idle.
        Actor,
    }

    /// Sends one item to `route` (its owning account) and returns its outcome.
    async fn apply(
        directory: &Arc<Directory>,
        ids: &Arc<IdIndex>,
        route: u64,
        request: TransferRequest,
        path: Path,
    ) -> ItemOutcome {
        let claim = ids.claim(&request.id).await.unwrap_or_else(|_| panic!("fresh id {}", request.id));
        let message = ApplyTransfers { items: vec![TransferItem { request, claim }], operator: Arc::from("test") };
        let entry = directory.get(AccountId(route)).expect("account exists");
        let mut outcomes = match path {
            Path::Gateway => directory.send_transfers(AccountId(route), entry, message).answers().await,
            Path::Actor => directory.send(entry, message).await,
        }
        .expect("delivered");
        assert_eq!(outcomes.len(), 1);
        outcomes.remove(0)
    }

    #[test]
    fn an_idle_account_is_activated_by_a_message_and_passivated_after_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        actix::System::new().block_on(async {
            let directory = directory(dir.path(), 20, 2);
            let entry = directory.get(AccountId(1)).expect("account 1");
            assert!(!entry.is_live(), "accounts start idle");
            assert_eq!(directory.live_count(), 0);

            let first = snapshot(&directory, 1).await;
            assert_eq!(first.book.available, Money(FUND));
            assert!(entry.is_live(), "a message activates the account");
            assert_eq!((directory.live_count(), directory.activation_count()), (1, 1));

            wait_all_passivated(&directory).await;
            assert!(!entry.is_live());

            // The passivated book is the one the next actor starts with.
            let ids = Arc::new(IdIndex::new());
            let transfer = request("t1".into(), TransferType::Transfer, 1, 2, None, 250);
            let outcome = apply(&directory, &ids, 1, transfer, Path::Actor).await;
            assert!(outcome.is_ok(), "{outcome:?}");
            assert_eq!(snapshot(&directory, 1).await.book.available, Money(FUND - 250));
            assert_eq!(snapshot(&directory, 2).await.book.available, Money(FUND + 250));
            assert!(directory.activation_count() >= 3, "account 1 twice, account 2 once");
            assert_eq!(directory.applied_idle_count(), 1, "the credit to idle account 2 needed no actor");
            wait_all_passivated(&directory).await;
            assert_eq!(snapshot(&directory, 2).await.book.available, Money(FUND + 250), "after passivating again");
        });
    }

    /// The gateway's path: a transfer whose payer is idle is judged and
    /// applied by the sender in place, its credit too, with no actor
    /// started; the answer carries an lsn like an actor's; a `pay_freeze`
    /// and the `unfreeze` of its hold right after it both work in place;
    /// a live payer still gets the message in its mailbox.
    #[test]
    fn transfers_between_idle_accounts_need_no_actor() {
        let dir = tempfile::tempdir().expect("temp dir");
        actix::System::new().block_on(async {
            let directory = directory(dir.path(), 20, 2);
            let ids = Arc::new(IdIndex::new());
            let transfer = request("t1".into(), TransferType::Transfer, 1, 2, None, 250);
            let first = apply(&directory, &ids, 1, transfer, Path::Gateway).await;
            let Ok(Committed::Movement { lsn: first_lsn, .. }) = first else { panic!("committed: {first:?}") };
            let pay_freeze = request("pf1".into(), TransferType::PayFreeze, 1, 2, None, 40);
            let frozen = apply(&directory, &ids, 1, pay_freeze, Path::Gateway).await;
            let Ok(Committed::Movement { lsn: frozen_lsn, .. }) = frozen else { panic!("committed: {frozen:?}") };
            assert!(frozen_lsn > first_lsn, "lsns follow the order the payer applied them");
            let unfreeze = request("uf1".into(), TransferType::Unfreeze, 0, 0, Some("pf1"), 40);
            let released = apply(&directory, &ids, 2, unfreeze, Path::Gateway).await;
            assert!(released.is_ok(), "the hold the in-place credit opened: {released:?}");
            assert_eq!(directory.activation_count(), 0, "no actor was started");
            assert_eq!(directory.applied_idle_count(), 5, "three transfers and two credits in place");

            // A live payer (activated by a snapshot) takes it in its mailbox.
            assert_eq!(snapshot(&directory, 1).await.book.available, Money(FUND - 290));
            let again = request("t2".into(), TransferType::Transfer, 1, 2, None, 10);
            assert!(apply(&directory, &ids, 1, again, Path::Gateway).await.is_ok());
            assert_eq!(directory.applied_idle_count(), 6, "only the credit to idle account 2 was in place");
            let payee = snapshot(&directory, 2).await.book;
            assert_eq!((payee.available, payee.frozen), (Money(FUND + 300), Money(0)));
            wait_all_passivated(&directory).await;
        });
    }

    /// A message on its way (counted, not yet in the mailbox: a send that
    /// found the mailbox full waits like this) keeps the actor live through
    /// any number of idle checks; it is handled by that same actor, and
    /// only then may the actor passivate.
    #[test]
    fn a_message_on_its_way_keeps_the_actor_live() {
        let dir = tempfile::tempdir().expect("temp dir");
        actix::System::new().block_on(async {
            let directory = directory(dir.path(), 5, 1);
            let entry = directory.get(AccountId(1)).expect("account 1");
            let (addr, leased) = directory.lease(entry, Snapshot);
            assert!(entry.is_live());
            tokio::time::sleep(Duration::from_millis(60)).await;
            assert!(entry.is_live(), "twelve idle checks with a message on its way: still live");
            let seen = addr.send(leased).await.expect("the same actor is there to take it");
            assert_eq!(seen.expect("not poisoned").book.available, Money(FUND));
            wait_all_passivated(&directory).await;
            assert_eq!(directory.activation_count(), 1);
        });
    }

    /// Many concurrent senders on a few accounts whose actors passivate
    /// after 1 ms, so activations and passivations race with messages all
    /// the time: every committed movement is applied exactly once on both
    /// sides (balances agree with the answers, the sum is conserved), and
    /// an `unfreeze` sent right after its `pay_freeze` committed always
    /// finds the hold the credit opened (credits are not overtaken).
    #[test]
    fn messages_stay_serialized_across_activation_and_passivation() {
        const ACCOUNTS: u64 = 6;
        const WORKERS: u64 = 8;
        const ROUNDS: u64 = 150;
        let dir = tempfile::tempdir().expect("temp dir");
        actix::System::new().block_on(async {
            let directory = directory(dir.path(), 1, ACCOUNTS);
            let ids = Arc::new(IdIndex::new());
            let workers = (0..WORKERS).map(|worker| {
                let (directory, ids) = (Arc::clone(&directory), Arc::clone(&ids));
                actix::spawn(async move {
                    let mut net = vec![0i64; ACCOUNTS as usize + 1];
                    for round in 0..ROUNDS {
                        let payer = (worker + round) % ACCOUNTS + 1;
                        let payee = (worker * 7 + round * 3 + 1) % ACCOUNTS + 1;
                        if payer == payee {
                            continue;
                        }
                        let fen = (round % 5 + 1) as i64;
                        let id = format!("t-{worker}-{round}");
                        let transfer = request(id, TransferType::Transfer, payer, payee, None, fen);
                        // Half through actors, half in place where idle,
                        // so both paths race on the same accounts.
                        let path = if (worker + round) % 2 == 0 { Path::Actor } else { Path::Gateway };
                        if apply(&directory, &ids, payer, transfer, path).await.is_ok() {
                            net[payer as usize] -= fen;
                            net[payee as usize] += fen;
                        }
                        let hold = format!("pf-{worker}-{round}");
                        let pay_freeze = request(hold.clone(), TransferType::PayFreeze, payer, payee, None, fen);
                        let frozen = apply(&directory, &ids, payer, pay_freeze, path).await;
                        assert!(frozen.is_ok(), "{frozen:?}");
                        net[payer as usize] -= fen;
                        // The hold lives on the payee; release it there at once.
                        let release = format!("uf-{worker}-{round}");
                        let unfreeze = request(release, TransferType::Unfreeze, 0, 0, Some(&hold), fen);
                        let released = apply(&directory, &ids, payee, unfreeze, Path::Gateway).await;
                        assert!(released.is_ok(), "unfreeze right after its pay_freeze: {released:?}");
                        net[payee as usize] += fen;
                        if round % 16 == 0 {
                            tokio::time::sleep(Duration::from_millis(3)).await;
                        }
                    }
                    net
                })
            });
            let mut net = vec![0i64; ACCOUNTS as usize + 1];
            for worker in futures::future::join_all(workers).await {
                for (sum, delta) in net.iter_mut().zip(worker.expect("worker finished")) {
                    *sum += delta;
                }
            }
            wait_all_passivated(&directory).await;
            let (activations, in_place) = (directory.activation_count(), directory.applied_idle_count());
            assert!(activations > ACCOUNTS * 2, "actors passivated and came back during the run: {activations}");
            assert!(in_place > 0, "some messages found their account idle");
            let mut total = 0;
            for id in 1..=ACCOUNTS {
                let seen = snapshot(&directory, id).await;
                assert_eq!(seen.book.frozen, Money(0), "F{id}: every hold was released");
                assert_eq!(seen.book.available, Money(FUND + net[id as usize]), "F{id}");
                total += seen.book.available.0;
            }
            assert_eq!(total, FUND * ACCOUNTS as i64, "money is conserved");
        });
    }
}
