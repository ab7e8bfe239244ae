//! The suspense actor: bank credits that no customer could be credited with
//! automatically (name mismatch, unknown sub-account, the public adjustment
//! account), waiting for finance.
//!
//! Owns the suspense entries, their sequential ids (`S000001`) and their
//! remaining amounts ([`SuspenseBook`], pure rules in
//! [`crate::domain::suspense`]). Finance assigns an entry to a customer by
//! an adjustment deposit ([`Adjust`]): this actor judges it against the
//! entry, appends ONE record holding both sides (the entry's new remaining
//! and the customer's credit), and only then tells the account's actor to
//! apply the credit with `do_send` ([`CreditAdjustment`]), exactly as a
//! payer's actor credits a payee (the account learns of the money after
//! its record has an lsn; nobody awaits an account actor). A return
//! ([`ReturnSuspense`], 退票) sends the remaining back to the payer.
//!
//! Must not touch customer balances itself.

use std::sync::Arc;

use actix::prelude::*;

use super::account::{CreditAdjustment, ItemError, ItemOutcome};
use super::directory::Directory;
use super::log::{LedgerLog, LogError};
use crate::domain::account::AccountStatus;
use crate::domain::ids::{AccountId, SuspenseId};
use crate::domain::money::Money;
use crate::domain::record::{Adjustment, Notification, Record, SuspenseEntry, SuspenseReason, SuspenseReturn};
use crate::domain::suspense::{SuspenseBook, SuspenseRefusal, SuspenseState};
use crate::gateway::idempotency::{Claim, Committed};

pub struct SuspenseActor {
    book: SuspenseBook,
    log: LedgerLog,
    directory: Arc<Directory>,
    /// Set when an append failed after memory changed (see the account
    /// actor): from then on this actor answers nothing.
    poisoned: bool,
}

impl SuspenseActor {
    pub fn new(book: SuspenseBook, log: LedgerLog, directory: Arc<Directory>) -> Self {
        Self { book, log, directory, poisoned: false }
    }

    fn admit(&self) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Unavailable);
        }
        self.log.admit()
    }

    fn append(&mut self, record: Record) -> Result<u64, LogError> {
        self.book.apply(&record);
        match self.log.append(vec![record]) {
            Ok(lsns) => Ok(lsns.start),
            Err(error) => {
                tracing::error!(%error, "suspense: append failed after a change in memory; stops answering");
                self.poisoned = true;
                Err(error)
            }
        }
    }
}

impl Actor for SuspenseActor {
    type Context = Context<Self>;
}

pub struct OpenSuspense {
    pub notification: Notification,
    pub reason: SuspenseReason,
    pub claim: Claim,
}

impl Message for OpenSuspense {
    type Result = ItemOutcome;
}

impl Handler<OpenSuspense> for SuspenseActor {
    type Result = ItemOutcome;

    fn handle(&mut self, message: OpenSuspense, _: &mut Self::Context) -> ItemOutcome {
        self.admit().map_err(ItemError::Log)?;
        let entry = Arc::new(SuspenseEntry {
            suspense_id: self.book.next_id(),
            notification: message.notification,
            reason: message.reason,
            at_ms: crate::clock::now_ms(),
        });
        let lsn = self.append(Record::SuspenseOpened(Arc::clone(&entry))).map_err(ItemError::Log)?;
        let committed = Committed::Suspense { lsn, entry };
        message.claim.commit(committed.clone());
        Ok(committed)
    }
}

/// One entry as it stands now (in memory: may be ahead of the disk; the
/// gateway uses it only to answer 404 early).
pub struct GetSuspense(pub SuspenseId);

impl Message for GetSuspense {
    type Result = Option<SuspenseState>;
}

impl Handler<GetSuspense> for SuspenseActor {
    type Result = Option<SuspenseState>;

    fn handle(&mut self, message: GetSuspense, _: &mut Self::Context) -> Self::Result {
        self.book.get(message.0).cloned()
    }
}

#[derive(Debug)]
pub enum SuspenseError {
    Refused(SuspenseRefusal),
    AccountNotActive,
    Log(LogError),
}

pub type SuspenseOutcome = Result<Committed, SuspenseError>;

/// An adjustment deposit (调帐入款) out of an entry into an account.
pub struct Adjust {
    pub id: Box<str>,
    pub suspense_id: SuspenseId,
    pub account_id: AccountId,
    pub amount: Money,
    pub memo: Option<Box<str>>,
    pub operator: Box<str>,
    pub claim: Claim,
}

impl Message for Adjust {
    type Result = SuspenseOutcome;
}

impl Handler<Adjust> for SuspenseActor {
    type Result = SuspenseOutcome;

    fn handle(&mut self, message: Adjust, _: &mut Self::Context) -> SuspenseOutcome {
        self.admit().map_err(SuspenseError::Log)?;
        let remaining =
            self.book.judge_adjustment(message.suspense_id, message.amount).map_err(SuspenseError::Refused)?;
        let account = self.directory.get(message.account_id).ok_or(SuspenseError::AccountNotActive)?;
        if account.status() != AccountStatus::Active {
            return Err(SuspenseError::AccountNotActive);
        }
        let adjustment = Arc::new(Adjustment {
            id: message.id,
            suspense_id: message.suspense_id,
            account_id: message.account_id,
            amount: message.amount,
            memo: message.memo,
            suspense_remaining: remaining,
            at_ms: crate::clock::now_ms(),
            operator: message.operator,
        });
        let lsn = self.append(Record::AdjustmentDeposit(Arc::clone(&adjustment))).map_err(SuspenseError::Log)?;
        self.directory.do_send(account, CreditAdjustment { lsn, adjustment: Arc::clone(&adjustment) });
        let committed = Committed::Adjustment { lsn, adjustment };
        message.claim.commit(committed.clone());
        Ok(committed)
    }
}

/// A return (退票) of an entry's remaining to the payer.
pub struct ReturnSuspense {
    pub id: Box<str>,
    pub suspense_id: SuspenseId,
    pub memo: Option<Box<str>>,
    pub operator: Box<str>,
    pub claim: Claim,
}

impl Message for ReturnSuspense {
    type Result = SuspenseOutcome;
}

impl Handler<ReturnSuspense> for SuspenseActor {
    type Result = SuspenseOutcome;

    fn handle(&mut self, message: ReturnSuspense, _: &mut Self::Context) -> SuspenseOutcome {
        self.admit().map_err(SuspenseError::Log)?;
        let amount = self.book.judge_return(message.suspense_id).map_err(SuspenseError::Refused)?;
        let suspense_return = Arc::new(SuspenseReturn {
            id: message.id,
            suspense_id: message.suspense_id,
            amount,
            memo: message.memo,
            at_ms: crate::clock::now_ms(),
            operator: message.operator,
        });
        let lsn = self.append(Record::SuspenseReturned(Arc::clone(&suspense_return))).map_err(SuspenseError::Log)?;
        let committed = Committed::SuspenseReturn { lsn, suspense_return };
        message.claim.commit(committed.clone());
        Ok(committed)
    }
}
