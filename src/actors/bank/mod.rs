//! Bank adaptors: one actor per configured bank, each speaking its bank's
//! protocol, all feeding the same account actors.
//!
//! What a bank adaptor must provide (a second bank implements these
//! messages; nothing in the ledger core changes):
//! - [`Sign`]: pre-sign (附属账户预签约) the account, then query its signing
//!   status (签约状态查询) until the bank answers, and send the account's
//!   actor a [`SignResult`] with the sub-account number or the reason.
//!
//! Owns the map from bank code to its adaptor and secrets. Must not change
//! balances: adaptors send messages to account actors like anyone else.

pub mod sandbox;

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use super::account::{AccountActor, SignResult};
use super::directory::AccountInfo;
use crate::config::{BankConfig, BankKind};

/// Sign one account at its bank; the answer goes to `account`.
pub struct Sign {
    pub info: Arc<AccountInfo>,
    pub account: Addr<AccountActor>,
}

impl Message for Sign {
    type Result = ();
}

pub struct BankEntry {
    pub config: BankConfig,
    pub sign: Recipient<Sign>,
}

pub struct Banks {
    banks: HashMap<String, BankEntry>,
}

impl Banks {
    /// Start one adaptor per configured bank on the current arbiter.
    pub fn start(configs: &[BankConfig]) -> Self {
        let banks = configs
            .iter()
            .map(|config| {
                let sign = match config.kind {
                    BankKind::Sandbox => sandbox::SandboxBank::new(config.clone()).start().recipient(),
                };
                (config.code.clone(), BankEntry { config: config.clone(), sign })
            })
            .collect();
        Self { banks }
    }

    pub fn get(&self, code: &str) -> Option<&BankEntry> {
        self.banks.get(code)
    }

    pub fn start_signing(&self, info: &Arc<AccountInfo>, account: Addr<AccountActor>) {
        match self.banks.get(&*info.bank) {
            Some(bank) => bank.sign.do_send(Sign { info: Arc::clone(info), account }),
            None => {
                tracing::error!(account = %info.account_id, bank = %info.bank, "bank no longer configured; account stays signing");
                account.do_send(SignResult { outcome: Err("UNKNOWN_BANK".into()) });
            }
        }
    }
}
