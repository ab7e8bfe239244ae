//! `GET /v1/suspense`, `POST /v1/adjustments` (调帐入款),
//! `POST /v1/suspense/{id}/return` (退票): finance's side of money that no
//! customer could be credited with automatically.
//!
//! Lists come from the history read model (durable records only); changes
//! go through [`crate::gateway::withdrawals`] to the suspense actor.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::error::{invalid_field, missing, ApiError, ApiResult};
use super::extract::{json_body, JsonObject, Query};
use super::transfers::{account_field, json_response};
use super::AppState;
use crate::config::Role;
use crate::domain::ids::SuspenseId;
use crate::domain::suspense::{SuspenseState, SuspenseStatus};
use crate::gateway::idempotency::Committed;
use crate::gateway::withdrawals::{submit_adjustment, submit_return, suspense_not_found, AdjustmentRequest};
use crate::limits;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/suspense", get(list))
        .route("/v1/suspense/{id}/return", post(return_entry))
        .route("/v1/adjustments", post(adjust))
}

fn entry_view(
    state: &SuspenseState,
    status: SuspenseStatus,
    remaining: crate::domain::money::Money,
) -> serde_json::Value {
    let entry = &state.entry;
    let notification = &entry.notification;
    json!({
        "suspense_id": entry.suspense_id,
        "bank": notification.bank,
        "bank_serial": notification.bank_serial,
        "notification_id": notification.notification_id,
        "amount": notification.amount,
        "remaining": remaining,
        "payer_name": notification.payer_name,
        "payer_account_no": notification.payer_account_no,
        "reason": entry.reason.as_str(),
        "status": status.as_str(),
        "booked_at": notification.booked_at,
    })
}

async fn list(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> ApiResult<Response> {
    state.auth.check(&headers, &[Role::Finance])?;
    let query = Query::parse(&uri, &["status", "limit", "cursor"])?;
    let status = match query.get("status") {
        None => None,
        Some(text) => Some(
            SuspenseStatus::parse(text).ok_or_else(|| invalid_field("status", "must be open, assigned or returned"))?,
        ),
    };
    let limit = query.limit()?;
    let after = query.cursor()?.unwrap_or(0);
    let durable = state.log.durable_lsn();
    let page = state
        .history
        .read_at(durable, |history| {
            let entries = history.suspense().entries();
            let start = usize::try_from(after).unwrap_or(usize::MAX).min(entries.len());
            let mut matching =
                entries[start..].iter().filter(|entry| status.is_none_or(|status| entry.status() == status));
            let items: Vec<serde_json::Value> =
                matching.by_ref().take(limit).map(|entry| entry_view(entry, entry.status(), entry.remaining)).collect();
            let last = items.last().and_then(|item| item["suspense_id"].as_str().and_then(SuspenseId::parse));
            let more = matching.next().is_some();
            json!({"items": items, "next_cursor": if more { last.map(|id| id.0.to_string()) } else { None }})
        })
        .await;
    Ok(json_response(StatusCode::OK, &page))
}

/// A suspense id field or path segment: malformed is 400; well-formed but
/// unknown (or not canonical) is 404 later.
fn suspense_id(text: &str, field: &str) -> ApiResult<SuspenseId> {
    SuspenseId::from_field(text).ok_or_else(|| invalid_field(field, "must be a suspense id like S000001"))
}

async fn adjust(State(state): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let caller = state.auth.check(&headers, &[Role::Finance])?;
    let bytes = json_body(&headers, body, state.max_body_bytes).await?;
    let object = JsonObject::parse_body(&bytes)?;
    object.only(&["id", "suspense_id", "account_id", "amount", "memo"])?;
    let id = object.client_id("id")?.ok_or_else(|| missing("id"))?;
    let suspense_text = object.required_string("suspense_id")?;
    let suspense_id = suspense_id(&suspense_text, "suspense_id")?;
    let account_id = account_field(&object, "account_id")?.ok_or_else(|| missing("account_id"))?;
    let amount = object.amount("amount")?.ok_or_else(|| missing("amount"))?;
    let memo = object.text("memo", limits::MEMO_CHARS_MAX)?;
    let request = AdjustmentRequest { id, suspense_id, account_id, amount, memo };
    let suspense = &state.desk.suspense;
    let committed =
        submit_adjustment(&state.directory, &state.transfers.ids, suspense, request, &caller.operator).await?;
    let Committed::Adjustment { lsn, adjustment } = &committed else { unreachable!("an adjustment commits one") };
    state.log.wait_durable(*lsn).await?;
    let balance =
        state.history.entry_at(adjustment.account_id, *lsn).await?.map(|entry| entry.after).ok_or_else(|| {
            ApiError::new(super::error::ErrorCode::Internal, "an adjustment without its journal entry")
        })?;
    let view = json!({
        "id": adjustment.id,
        "suspense_id": adjustment.suspense_id,
        "account_id": adjustment.account_id,
        "amount": adjustment.amount,
        "remaining": adjustment.suspense_remaining,
        "balance": {"total": balance.total(), "available": balance.available, "frozen": balance.frozen},
        "lsn": lsn,
        "operator": adjustment.operator,
    });
    Ok(json_response(StatusCode::CREATED, &view))
}

async fn return_entry(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id_text): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let caller = state.auth.check(&headers, &[Role::Finance])?;
    let bytes = json_body(&headers, body, state.max_body_bytes).await?;
    let object = JsonObject::parse_body(&bytes)?;
    object.only(&["id", "memo"])?;
    let id = object.client_id("id")?.ok_or_else(|| missing("id"))?;
    let memo = object.text("memo", limits::MEMO_CHARS_MAX)?;
    let suspense_id = SuspenseId::parse(&id_text).ok_or_else(|| {
        ApiError::new(super::error::ErrorCode::SuspenseNotFound, format!("no suspense entry {id_text}"))
    })?;
    let suspense = &state.desk.suspense;
    let committed = submit_return(&state.transfers.ids, suspense, id, suspense_id, memo, &caller.operator).await?;
    let Committed::SuspenseReturn { lsn, suspense_return } = &committed else { unreachable!("a return commits one") };
    state.log.wait_durable(*lsn).await?;
    let entry = state
        .history
        .read_at(*lsn, |history| history.suspense().get(suspense_return.suspense_id).cloned())
        .await
        .ok_or_else(|| suspense_not_found(suspense_return.suspense_id))?;
    let mut view = entry_view(&entry, SuspenseStatus::Returned, crate::domain::money::Money::ZERO);
    view["lsn"] = json!(lsn);
    Ok(json_response(StatusCode::OK, &view))
}
