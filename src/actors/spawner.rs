//! Where account actors live: a fixed set of arbiters (one thread each),
//! actors spread over them round-robin.
//!
//! Owns the arbiters. Why a fixed set: an actor is pinned to its arbiter's
//! thread for life; a few threads, each running many actors, keep every
//! core busy without a thread per account.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;

use super::account::AccountActor;
use super::directory::Directory;
use super::log::LedgerLog;
use crate::domain::account::{AccountBook, AccountStatus};
use crate::domain::ids::AccountId;

pub struct Spawner {
    arbiters: Vec<ArbiterHandle>,
    next: AtomicUsize,
    log: LedgerLog,
    directory: Arc<Directory>,
}

impl Spawner {
    pub fn new(arbiters: Vec<ArbiterHandle>, log: LedgerLog, directory: Arc<Directory>) -> Self {
        assert!(!arbiters.is_empty(), "at least one arbiter for account actors");
        Self { arbiters, next: AtomicUsize::new(0), log, directory }
    }

    pub fn spawn_account(&self, id: AccountId, status: AccountStatus, book: AccountBook) -> Addr<AccountActor> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        let log = self.log.clone();
        let directory = Arc::clone(&self.directory);
        AccountActor::start_in_arbiter(&self.arbiters[index], move |_| {
            AccountActor::new(id, status, book, log, directory)
        })
    }
}
