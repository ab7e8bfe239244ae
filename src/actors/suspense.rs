//! The suspense actor: bank credits that no customer could be credited with
//! automatically (name mismatch, unknown sub-account, the public adjustment
//! account), waiting for finance.
//!
//! Owns the suspense entries and their sequential ids (`S000001`). Must not
//! touch customer balances: finance assigns an entry through an adjustment
//! deposit, which goes through the account's actor.

use std::sync::Arc;

use actix::prelude::*;

use super::account::{ItemError, ItemOutcome};
use super::log::LedgerLog;
use crate::domain::ids::SuspenseId;
use crate::domain::record::{Notification, Record, SuspenseEntry, SuspenseReason};
use crate::gateway::idempotency::{Claim, Committed};

pub struct SuspenseActor {
    entries: Vec<Arc<SuspenseEntry>>,
    log: LedgerLog,
}

impl SuspenseActor {
    pub fn new(entries: Vec<Arc<SuspenseEntry>>, log: LedgerLog) -> Self {
        Self { entries, log }
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
        self.log.admit().map_err(ItemError::Log)?;
        let entry = Arc::new(SuspenseEntry {
            suspense_id: SuspenseId(self.entries.len() as u64 + 1),
            notification: message.notification,
            reason: message.reason,
            at_ms: crate::clock::now_ms(),
        });
        let lsn = self.log.append(vec![Record::SuspenseOpened(Arc::clone(&entry))]).map_err(ItemError::Log)?.start;
        self.entries.push(Arc::clone(&entry));
        let committed = Committed::Suspense { lsn, entry };
        message.claim.commit(committed.clone());
        Ok(committed)
    }
}
