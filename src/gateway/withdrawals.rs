//! The path of a withdrawal (出金) and of finance's suspense requests
//! through the gateway: existence checks (404), the client id (409, shared
//! with transfers and adjustments), then the owning actor judges (422).
//!
//! A withdrawal goes to its account's actor, which freezes the amount and
//! appends `WithdrawalRequested`; the payout itself is the outbox's job once
//! that record is durable ([`crate::actors::outbox`]). Adjustments and
//! returns go to the suspense actor. The id's claim travels inside the
//! message and is committed by the actor (see [`super::idempotency`]).
//!
//! Must not hold balances or wait for an in-flight id while holding a claim.

use std::sync::Arc;

use actix::Addr;

use super::idempotency::{Committed, IdIndex};
use super::transfers::id_reused;
use crate::actors::account::RequestWithdrawal;
use crate::actors::directory::Directory;
use crate::actors::suspense::{Adjust, GetSuspense, ReturnSuspense, SuspenseActor};
use crate::domain::ids::{AccountId, SuspenseId};
use crate::domain::money::Money;
use crate::domain::record::Withdrawal;
use crate::http::error::{ApiError, ApiResult, ErrorCode};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WithdrawalRequest {
    pub id: Box<str>,
    pub account_id: AccountId,
    pub amount: Money,
    pub memo: Option<Box<str>>,
}

impl WithdrawalRequest {
    fn matches(&self, withdrawal: &Withdrawal) -> bool {
        self.account_id == withdrawal.account_id && self.amount == withdrawal.amount && self.memo == withdrawal.memo
    }
}

fn account_not_found(id: AccountId) -> ApiError {
    ApiError::new(ErrorCode::AccountNotFound, format!("no account {id}"))
}

pub async fn submit_withdrawal(
    directory: &Arc<Directory>,
    ids: &Arc<IdIndex>,
    request: WithdrawalRequest,
    operator: &str,
) -> ApiResult<Committed> {
    let entry = directory.get(request.account_id).ok_or_else(|| account_not_found(request.account_id))?;
    let claim = match ids.claim(&request.id).await {
        Ok(claim) => claim,
        Err(committed) => {
            let committed = committed.available()?;
            return match &committed {
                Committed::Withdrawal { withdrawal, .. } if request.matches(withdrawal) => Ok(committed),
                _ => Err(id_reused(&request.id)),
            };
        }
    };
    let withdrawal = Withdrawal {
        id: request.id,
        account_id: request.account_id,
        amount: request.amount,
        memo: request.memo,
        bank: entry.info.bank().into(),
        settlement_account: entry.info.settlement_account().clone(),
        created_at_ms: crate::clock::now_ms(),
        operator: operator.into(),
    };
    Ok(directory.send(entry, RequestWithdrawal { withdrawal, claim }).await??)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdjustmentRequest {
    pub id: Box<str>,
    pub suspense_id: SuspenseId,
    pub account_id: AccountId,
    pub amount: Money,
    pub memo: Option<Box<str>>,
}

pub fn suspense_not_found(id: SuspenseId) -> ApiError {
    ApiError::new(ErrorCode::SuspenseNotFound, format!("no suspense entry {id}"))
}

pub async fn submit_adjustment(
    directory: &Directory,
    ids: &Arc<IdIndex>,
    suspense: &Addr<SuspenseActor>,
    request: AdjustmentRequest,
    operator: &str,
) -> ApiResult<Committed> {
    directory.get(request.account_id).ok_or_else(|| account_not_found(request.account_id))?;
    suspense.send(GetSuspense(request.suspense_id)).await?.ok_or_else(|| suspense_not_found(request.suspense_id))?;
    let claim = match ids.claim(&request.id).await {
        Ok(claim) => claim,
        Err(committed) => {
            let committed = committed.available()?;
            return match &committed {
                Committed::Adjustment { adjustment, .. }
                    if adjustment.suspense_id == request.suspense_id
                        && adjustment.account_id == request.account_id
                        && adjustment.amount == request.amount
                        && adjustment.memo == request.memo =>
                {
                    Ok(committed)
                }
                _ => Err(id_reused(&request.id)),
            };
        }
    };
    let message = Adjust {
        id: request.id,
        suspense_id: request.suspense_id,
        account_id: request.account_id,
        amount: request.amount,
        memo: request.memo,
        operator: operator.into(),
        claim,
    };
    Ok(suspense.send(message).await??)
}

pub async fn submit_return(
    ids: &Arc<IdIndex>,
    suspense: &Addr<SuspenseActor>,
    id: Box<str>,
    suspense_id: SuspenseId,
    memo: Option<Box<str>>,
    operator: &str,
) -> ApiResult<Committed> {
    suspense.send(GetSuspense(suspense_id)).await?.ok_or_else(|| suspense_not_found(suspense_id))?;
    let claim = match ids.claim(&id).await {
        Ok(claim) => claim,
        Err(committed) => {
            let committed = committed.available()?;
            return match &committed {
                Committed::SuspenseReturn { suspense_return, .. }
                    if suspense_return.suspense_id == suspense_id && suspense_return.memo == memo =>
                {
                    Ok(committed)
                }
                _ => Err(id_reused(&id)),
            };
        }
    };
    Ok(suspense.send(ReturnSuspense { id, suspense_id, memo, operator: operator.into(), claim }).await??)
}
