//! Where account actors live: a fixed set of arbiters (one thread each),
//! actors activated on them round-robin.
//!
//! Owns the arbiters. Why a fixed set: an actor is pinned to its arbiter's
//! thread for life; a few threads, each running many actors, keep every
//! core busy without a thread per account. An account's actor lives only
//! while it has work (see [`super::directory`], Virtual account actors):
//! the directory calls [`Spawner::activate`] under the account's slot lock,
//! so this must not block and must not touch any other account.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::account::AccountActor;
use super::directory::{Directory, IdleAccount};
use super::log::LedgerLog;
use crate::domain::account::AccountStatus;
use crate::domain::ids::AccountId;
use crate::limits;

pub struct Spawner {
    arbiters: Vec<ArbiterHandle>,
    next: AtomicUsize,
    log: LedgerLog,
    /// How long an actor stays live with nothing to do
    /// ([`limits::ACCOUNT_IDLE_PASSIVATE_MS`]; shorter in tests).
    idle_period: Duration,
}

impl Spawner {
    pub fn new(arbiters: Vec<ArbiterHandle>, log: LedgerLog) -> Self {
        Self::with_idle_period(arbiters, log, Duration::from_millis(limits::ACCOUNT_IDLE_PASSIVATE_MS))
    }

    pub fn with_idle_period(arbiters: Vec<ArbiterHandle>, log: LedgerLog, idle_period: Duration) -> Self {
        assert!(!arbiters.is_empty(), "at least one arbiter for account actors");
        assert!(!idle_period.is_zero(), "an idle check period");
        Self { arbiters, next: AtomicUsize::new(0), log, idle_period }
    }

    /// The log account books are appended to, for messages applied in place.
    pub fn log(&self) -> &LedgerLog {
        &self.log
    }

    /// Start an actor that owns `idle` (the account's book) from now on.
    /// Its address takes messages at once; they wait in its mailbox until
    /// the arbiter has started it. `poisoned`: the book is ahead of the log
    /// (an append failed in place), so the actor answers nothing and never
    /// passivates.
    pub fn activate(
        &self,
        id: AccountId,
        status: AccountStatus,
        idle: IdleAccount,
        directory: Arc<Directory>,
        poisoned: bool,
    ) -> Addr<AccountActor> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        let log = self.log.clone();
        let idle_period = self.idle_period;
        AccountActor::start_in_arbiter(&self.arbiters[index], move |_| {
            AccountActor::new(id, status, idle, log, directory, idle_period, poisoned)
        })
    }
}
