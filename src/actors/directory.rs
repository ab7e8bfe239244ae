//! The account directory: account id -> its actor, status and fixed facts.
//!
//! Owns the routing table every request goes through, so it must be cheap
//! to read and must not be one lock shared by every account: account ids
//! are sequential numbers, so the directory is a two-level array of
//! write-once cells (`OnceLock`), read without any lock. Status is an atomic
//! kept current by the account's own actor (the only writer of its status),
//! so that a payer's actor can see whether a payee is active without
//! asking the payee's actor (invariant 6: no actor awaits another).
//!
//! Must not hold balances: those live in the account actors only.

use hashbrown::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use actix::Addr;
use parking_lot::RwLock;

use super::account::AccountActor;
use crate::domain::account::AccountStatus;
use crate::domain::ids::{AccountId, ApplicationId};
use crate::domain::record::SettlementAccount;
use crate::limits;

const CHUNK_ACCOUNTS: u64 = 4096;

/// What never changes about an account once it is opened.
#[derive(Debug)]
pub struct AccountInfo {
    pub account_id: AccountId,
    pub application_id: ApplicationId,
    pub name: Box<str>,
    pub credential_no: Box<str>,
    pub bank: Box<str>,
    pub settlement_account: SettlementAccount,
    pub created_at_ms: i64,
}

pub struct AccountEntry {
    pub info: Arc<AccountInfo>,
    pub addr: Addr<AccountActor>,
    status: AtomicU8,
    /// Shared, so that each bank instruction naming it takes a reference
    /// rather than a copy.
    sub_account_no: OnceLock<Arc<str>>,
}

impl AccountEntry {
    pub fn status(&self) -> AccountStatus {
        AccountStatus::from_u8(self.status.load(Ordering::Acquire))
    }

    pub fn sub_account_no(&self) -> Option<&str> {
        self.sub_account_no.get().map(|s| &**s)
    }

    pub fn sub_account_no_shared(&self) -> Option<&Arc<str>> {
        self.sub_account_no.get()
    }
}

type Chunk = Box<[OnceLock<Arc<AccountEntry>>]>;

pub struct Directory {
    chunks: Box<[OnceLock<Chunk>]>,
    /// Highest account number registered.
    count: AtomicU64,
    /// Sub-account number -> account, for bank notifications (not a
    /// transfer's path).
    by_sub_account: RwLock<HashMap<Box<str>, AccountId>>,
}

impl Default for Directory {
    fn default() -> Self {
        Self::new()
    }
}

impl Directory {
    pub fn new() -> Self {
        let chunk_count = limits::ACCOUNTS_MAX.div_ceil(CHUNK_ACCOUNTS) as usize;
        let chunks = (0..chunk_count).map(|_| OnceLock::new()).collect();
        Self { chunks, count: AtomicU64::new(0), by_sub_account: RwLock::new(HashMap::new()) }
    }

    fn cell(&self, id: AccountId) -> Option<&OnceLock<Arc<AccountEntry>>> {
        let index = id.0.checked_sub(1)?;
        let chunk = self.chunks.get((index / CHUNK_ACCOUNTS) as usize)?;
        let chunk = chunk.get_or_init(|| (0..CHUNK_ACCOUNTS).map(|_| OnceLock::new()).collect());
        chunk.get((index % CHUNK_ACCOUNTS) as usize)
    }

    pub fn get(&self, id: AccountId) -> Option<&Arc<AccountEntry>> {
        if id.0 == 0 || id.0 > self.count.load(Ordering::Acquire) {
            return None;
        }
        self.cell(id)?.get()
    }

    /// Register a newly opened (or recovered) account. Ids are handed out
    /// in order by the registry, one writer.
    pub fn insert(
        &self,
        info: Arc<AccountInfo>,
        addr: Addr<AccountActor>,
        status: AccountStatus,
        sub_account_no: Option<Box<str>>,
    ) {
        let id = info.account_id;
        assert!(id.0 <= limits::ACCOUNTS_MAX, "account limit is checked before approval");
        let entry = Arc::new(AccountEntry {
            info,
            addr,
            status: AtomicU8::new(status.as_u8()),
            sub_account_no: OnceLock::new(),
        });
        let cell = self.cell(id).expect("account id within the directory");
        assert!(cell.set(entry).is_ok(), "account {id} registered twice");
        if let Some(sub) = sub_account_no {
            self.set_sub_account(id, sub);
        }
        self.count.fetch_max(id.0, Ordering::AcqRel);
    }

    /// Called by the account's own actor when its status changes.
    pub fn set_status(&self, id: AccountId, status: AccountStatus) {
        if let Some(entry) = self.get(id) {
            entry.status.store(status.as_u8(), Ordering::Release);
        }
    }

    pub fn set_sub_account(&self, id: AccountId, sub_account_no: Box<str>) {
        let Some(cell) = self.cell(id) else { return };
        let Some(entry) = cell.get() else { return };
        if entry.sub_account_no.set(Arc::from(&*sub_account_no)).is_ok() {
            self.by_sub_account.write().insert(sub_account_no, id);
        }
    }

    pub fn by_sub_account(&self, sub_account_no: &str) -> Option<&Arc<AccountEntry>> {
        let id = *self.by_sub_account.read().get(sub_account_no)?;
        self.get(id)
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    pub fn status(&self, id: AccountId) -> Option<AccountStatus> {
        self.get(id).map(|entry| entry.status())
    }
}
