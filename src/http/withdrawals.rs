//! `POST /v1/withdrawals`, `GET /v1/withdrawals/{id}` (出金).
//!
//! `GET /v1/withdrawals?status=processing` (finance) lists the withdrawals
//! in flight, oldest first (API.md has no list; the console's bank page
//! reads it). Only `processing` is listed: finished ones are in journals.
//!
//! The POST answers `202` once the hold (`withdrawal_hold`) is durable; a
//! retry with the same id and fields gets that original `processing` body.
//! The GET shows the current state from the history read model, which
//! holds only durable records.

use crate::http::extract::lsn_page;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::error::{invalid_field, missing, ApiError, ApiResult, ErrorCode};
use super::extract::{json_body, JsonObject, Query};
use super::transfers::{account_field, json_response};
use super::AppState;
use crate::config::Role;
use crate::domain::record::{PayoutOutcome, Withdrawal, WithdrawalFinished};
use crate::gateway::idempotency::Committed;
use crate::gateway::withdrawals::{submit_withdrawal, WithdrawalRequest};
use crate::limits;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/withdrawals", post(create).get(list)).route("/v1/withdrawals/{id}", get(show))
}

fn parse(object: &JsonObject) -> ApiResult<WithdrawalRequest> {
    object.only(&["id", "account_id", "amount", "memo"])?;
    let id = object.client_id("id")?.ok_or_else(|| missing("id"))?;
    let account_id = account_field(object, "account_id")?.ok_or_else(|| missing("account_id"))?;
    let amount = object.amount("amount")?.ok_or_else(|| missing("amount"))?;
    let memo = object.text("memo", limits::MEMO_CHARS_MAX)?;
    Ok(WithdrawalRequest { id, account_id, amount, memo })
}

/// A withdrawal as API.md shows it; `finished` is its end, if it has one.
pub fn withdrawal_view(lsn: u64, withdrawal: &Withdrawal, finished: Option<&WithdrawalFinished>) -> serde_json::Value {
    let settlement = &withdrawal.settlement_account;
    let (status, bank_serial, failure_reason) = match finished.map(|finished| &finished.outcome) {
        None => ("processing", None, None),
        Some(PayoutOutcome::Succeeded { bank_serial }) => ("succeeded", Some(bank_serial), None),
        Some(PayoutOutcome::Failed { reason }) => ("failed", None, Some(reason)),
    };
    json!({
        "id": withdrawal.id,
        "account_id": withdrawal.account_id,
        "amount": withdrawal.amount,
        "status": status,
        "settlement_account": {
            "bank_name": settlement.bank_name,
            "account_no": settlement.account_no,
            "account_name": &*settlement.account_name,
        },
        "lsn": lsn,
        "created_at": crate::clock::format_ms(withdrawal.created_at_ms),
        "finished_at": finished.map(|finished| crate::clock::format_ms(finished.finished_at_ms)),
        "failure_reason": failure_reason,
        "bank_serial": bank_serial,
    })
}

async fn create(State(state): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let caller = state.auth.check(&headers, &[Role::Platform])?;
    let bytes = json_body(&headers, body, state.max_body_bytes).await?;
    let request = parse(&JsonObject::parse_body(&bytes)?)?;
    let committed = submit_withdrawal(&state.directory, &state.transfers.ids, request, &caller.operator).await?;
    let Committed::Withdrawal { lsn, withdrawal } = &committed else {
        unreachable!("a withdrawal commits a withdrawal")
    };
    state.log.wait_durable(*lsn).await?;
    metrics::counter!("fundledger_withdrawals_accepted_total").increment(1);
    Ok(json_response(StatusCode::ACCEPTED, &withdrawal_view(*lsn, withdrawal, None)))
}

async fn show(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    state.auth.check(&headers, &[Role::Platform, Role::Finance])?;
    let not_found = || ApiError::new(ErrorCode::WithdrawalNotFound, format!("no withdrawal {id}"));
    let committed =
        state.transfers.ids.get(&id).await.map(Committed::readable).transpose()?.flatten().ok_or_else(not_found)?;
    let Committed::Withdrawal { lsn, .. } = &committed else { return Err(not_found()) };
    state.log.wait_durable(*lsn).await?;
    let durable = state.log.durable_lsn().max(*lsn);
    let view = state
        .history
        .withdrawal(&id, durable)
        .await?
        .map(|shown| withdrawal_view(shown.lsn, &shown.withdrawal, shown.finished.as_deref()))
        .ok_or_else(not_found)?;
    Ok(json_response(StatusCode::OK, &view))
}

/// `GET /v1/withdrawals?status=processing&limit=&cursor=`: the cursor is
/// the last withdrawal's lsn.
async fn list(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> ApiResult<Response> {
    state.auth.check(&headers, &[Role::Finance])?;
    let query = Query::parse(&uri, &["status", "limit", "cursor"])?;
    if query.get("status") != Some("processing") {
        return Err(invalid_field("status", "is required and must be processing"));
    }
    let limit = query.limit()?;
    let after_lsn = query.cursor()?.unwrap_or(0);
    let durable = state.log.durable_lsn();
    let page = state
        .history
        .read_at(durable, |history| {
            let waiting = history.withdrawals_in_flight();
            lsn_page(
                &waiting,
                |shown| shown.lsn,
                after_lsn,
                limit,
                |shown| withdrawal_view(shown.lsn, &shown.withdrawal, None),
            )
        })
        .await;
    Ok(json_response(StatusCode::OK, &page))
}
