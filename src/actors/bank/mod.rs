//! Bank adaptors: one per configured bank, each speaking its bank's
//! protocol, all feeding the same account actors.
//!
//! What a bank adaptor must provide (a second bank implements these;
//! nothing in the ledger core changes):
//! - [`Sign`]: pre-sign (附属账户预签约) the account, then query its signing
//!   status (签约状态查询) until the bank answers, and send the account's
//!   actor a [`SignResult`] with the sub-account number or the reason.
//! - [`BankApi`]: the calls the outbox ([`super::outbox`]) makes, each
//!   idempotent at the bank by the ledger's reference (a withdrawal's or a
//!   movement's id): `payout` (出金), `instruct` (强制转账, 调帐, 退票), and
//!   `query` by reference, which resolves a call whose outcome is unknown
//!   (a timeout) before anything is sent again; `statement` for a UTC
//!   date, every line the bank booked that day (对账单), for
//!   reconciliation. Calls block (they are run
//!   on the blocking pool with a timeout); an error is either
//!   [`CallError::Transient`] (the bank did not act: retry) or
//!   [`CallError::Unknown`] (it may have acted: query first). Batch
//!   forms (`instruct_batch`, `query_batch`) default to one call each; a
//!   bank with a batch interface overrides them.
//!
//! Owns the map from bank code to its adaptor and secrets. Must not change
//! balances: adaptors send messages to account actors like anyone else.

mod book_json;
pub mod references;
pub mod sandbox;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use actix::prelude::*;

use super::account::SignResult;
use super::directory::{AccountInfo, AccountRef};
use crate::config::{BankConfig, BankKind};
use crate::domain::money::Money;
use crate::domain::record::{InstructionKind, StatementKind};

/// Sign one account at its bank; the answer goes to `account`.
pub struct Sign {
    pub info: Arc<AccountInfo>,
    pub account: AccountRef,
}

impl Message for Sign {
    type Result = ();
}

/// A payout to a customer's settlement account.
#[derive(Clone, Debug)]
pub struct PayoutRequest {
    /// The withdrawal's id: the bank books one payout per reference.
    pub reference: Box<str>,
    pub from_account_no: Box<str>,
    pub to_account_no: Box<str>,
    pub to_account_name: Box<str>,
    pub amount: Money,
}

/// An account number as a bank instruction carries it: inline up to 24
/// bytes (a sub-account number is 15), so an instruction copies its
/// accounts' numbers out of their directory entries. A shared `Arc<str>`
/// had each instruction write the number's count twice (the clone on the
/// outbox's thread, the drop on the bank call's), a line of each account
/// moving between cores (the drops alone 70 ns per transfer over a million
/// accounts), and the `Arc`'s allocation cost 30-odd bytes per account
/// (docs/PERFORMANCE.md, 2026-12-07, late night).
pub type AccountNo = compact_str::CompactString;

/// A bank instruction that mirrors a committed movement.
#[derive(Clone, Debug)]
pub struct InstructionRequest {
    pub reference: Box<str>,
    pub kind: InstructionKind,
    /// Copies, not references: see [`AccountNo`].
    pub from_account_no: AccountNo,
    pub to_account_no: AccountNo,
    pub amount: Money,
}

/// The bank's final answer to a call: `Ok(bank_serial)` when it booked
/// the money, `Err(reason)` when it refused for good.
pub type BankAnswer = Result<Box<str>, Box<str>>;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The bank did not act (busy, maintenance): send again later.
    #[error("transient bank error: {0}")]
    Transient(String),
    /// No answer in time: the bank may or may not have acted.
    #[error("bank outcome unknown: {0}")]
    Unknown(String),
}

/// One line of a bank's statement (API.md, Reconciliation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementLine {
    pub bank_serial: Box<str>,
    /// The ledger's id the line belongs to.
    pub reference: Box<str>,
    pub kind: StatementKind,
    pub account_no: Box<str>,
    pub counter_account_no: Box<str>,
    pub amount: Money,
    pub booked_at: Box<str>,
}

/// The calls the outbox (and reconciliation) make to one bank.
pub trait BankApi: Send + Sync + 'static {
    /// Every line the bank booked on the UTC day `date` (`YYYY-MM-DD`):
    /// instructions and payouts it carried out, credits it notified.
    fn statement(&self, date: &str) -> Result<Vec<StatementLine>, CallError>;
    fn payout(&self, request: &PayoutRequest) -> Result<BankAnswer, CallError>;
    fn instruct(&self, request: &InstructionRequest) -> Result<BankAnswer, CallError>;
    /// The final answer the bank gave for `reference`, or `None` if it never
    /// booked anything under it.
    fn query(&self, reference: &str) -> Result<Option<BankAnswer>, CallError>;

    /// Several instructions in one call (a bank with a batch interface
    /// books them under one sync); one answer per request, in order.
    fn instruct_batch(&self, requests: &[InstructionRequest]) -> Result<Vec<BankAnswer>, CallError> {
        requests.iter().map(|request| self.instruct(request)).collect()
    }

    /// [`BankApi::query`] for several references at once.
    fn query_batch(&self, references: &[Box<str>]) -> Result<Vec<Option<BankAnswer>>, CallError> {
        references.iter().map(|reference| self.query(reference)).collect()
    }
}

pub struct BankEntry {
    pub config: BankConfig,
    pub sign: Recipient<Sign>,
    pub api: Arc<dyn BankApi>,
    /// Set for `kind = "sandbox"` banks (test credits, statements).
    pub sandbox: Option<Arc<sandbox::SandboxBooks>>,
}

pub struct Banks {
    banks: HashMap<String, BankEntry>,
}

/// Each bank's books opened, before the adaptors start. The sandbox reads
/// every line it ever booked, which grows with its whole history, so it
/// reads them in the background and the ledger does not wait for it
/// ([`sandbox::SandboxBooks::open_in_background`]).
pub struct OpenedBooks {
    sandboxes: HashMap<String, Arc<sandbox::SandboxBooks>>,
}

impl OpenedBooks {
    /// Opens the books of every configured bank that keeps them (the
    /// sandbox, under `data_dir/sandbox/<code>/`). Plain file work: runs on
    /// any thread.
    pub fn open(configs: &[BankConfig], data_dir: &Path) -> Result<Self, String> {
        let mut sandboxes = HashMap::new();
        for config in configs {
            match config.kind {
                BankKind::Sandbox => {
                    let books = sandbox::SandboxBooks::open_in_background(config.clone(), data_dir)?;
                    sandboxes.insert(config.code.clone(), books);
                }
            }
        }
        Ok(Self { sandboxes })
    }
}

impl Banks {
    /// Start one adaptor per configured bank on the current arbiter, with
    /// the books [`OpenedBooks::open`] read.
    pub fn start(configs: &[BankConfig], mut books: OpenedBooks) -> Result<Self, String> {
        let mut banks = HashMap::new();
        for config in configs {
            let entry = match config.kind {
                BankKind::Sandbox => {
                    let books = books
                        .sandboxes
                        .remove(&config.code)
                        .ok_or_else(|| format!("the books of bank {} were not opened", config.code))?;
                    let sign = sandbox::SandboxBank::new(config.clone()).start().recipient();
                    let api: Arc<dyn BankApi> = Arc::clone(&books) as Arc<dyn BankApi>;
                    BankEntry { config: config.clone(), sign, api, sandbox: Some(books) }
                }
            };
            banks.insert(config.code.clone(), entry);
        }
        Ok(Self { banks })
    }

    pub fn get(&self, code: &str) -> Option<&BankEntry> {
        self.banks.get(code)
    }

    pub fn configs(&self) -> impl Iterator<Item = &BankConfig> {
        self.banks.values().map(|bank| &bank.config)
    }

    pub fn start_signing(&self, info: &Arc<AccountInfo>, account: AccountRef) {
        match self.banks.get(info.bank()) {
            Some(bank) => bank.sign.do_send(Sign { info: Arc::clone(info), account }),
            None => {
                tracing::error!(account = %info.account_id, bank = %info.bank(), "bank no longer configured; account stays signing");
                account.do_send(SignResult { outcome: Err("UNKNOWN_BANK".into()) });
            }
        }
    }
}
