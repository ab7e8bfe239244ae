//! The notification desk: a verified bank credit becomes a deposit on a
//! customer's available balance, or a suspense entry for finance.
//!
//! Owns the decision of where a credit goes (API.md, Money in): the public
//! adjustment account and anything not matching a customer by sub-account
//! and exact name go to suspense. Idempotent by the bank's serial: the same
//! serial again gets the original answer, applied once, through the same
//! claim mechanism as client ids (a separate id space, keyed by bank and
//! serial).

use std::sync::Arc;

use actix::Addr;

use super::idempotency::{Committed, IdIndex};
use crate::actors::account::ApplyDeposit;
use crate::actors::directory::Directory;
use crate::actors::suspense::{OpenSuspense, SuspenseActor};
use crate::config::BankConfig;
use crate::domain::account::AccountStatus;
use crate::domain::record::{Deposit, Notification, SuspenseReason};
use crate::http::error::ApiResult;
use crate::recovery::notification_key;

pub struct Desk {
    pub directory: Arc<Directory>,
    pub notifications: Arc<IdIndex>,
    pub suspense: Addr<SuspenseActor>,
}

impl Desk {
    pub async fn receive(&self, bank: &BankConfig, notification: Notification) -> ApiResult<Committed> {
        let claim = match self.notifications.claim(&notification_key(&notification)).await {
            Ok(claim) => claim,
            Err(original) => return original.available(),
        };
        let account = self.directory.by_sub_account(&notification.to_account_no);
        let reason = if *notification.to_account_no == *bank.public_adjustment_account {
            Some(SuspenseReason::AdjustmentAccount)
        } else {
            match account {
                None => Some(SuspenseReason::UnknownAccount),
                Some(entry)
                    if *entry.info.name() != *notification.payer_name || entry.status() != AccountStatus::Active =>
                {
                    Some(SuspenseReason::NameMismatch)
                }
                Some(_) => None,
            }
        };
        let outcome = match (reason, account) {
            (None, Some(entry)) => {
                let deposit =
                    Deposit { notification, account_id: entry.info.account_id, at_ms: crate::clock::now_ms() };
                self.directory.send(entry, ApplyDeposit { deposit, claim }).await?
            }
            (reason, _) => {
                let reason = reason.unwrap_or(SuspenseReason::UnknownAccount);
                self.suspense.send(OpenSuspense { notification, reason, claim }).await?
            }
        };
        Ok(outcome?)
    }
}
