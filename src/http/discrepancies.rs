//! `GET /v1/discrepancies`, `GET /v1/discrepancies/{id}`,
//! `POST /v1/discrepancies/{id}/resolve` and `.../approve` (finance): the
//! differences reconciliation found, worked through by two people.
//!
//! One finance operator proposes a resolution (a note, or an adjustment
//! deposit made the usual way, by its id, with an optional note); another
//! approves it. Both need a token with an `operator` name (403 FORBIDDEN
//! without one); the proposer approving is `422 SAME_OPERATOR`; a request
//! against the wrong status is `409 INVALID_STATE`, except that the same
//! operator repeating what they already did gets the current state.
//!
//! Reads come from the history (durable records only); changes go to the
//! finance actor. Never touches balances.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::error::{invalid_field, missing, ApiError, ApiResult, ErrorCode};
use super::extract::{json_body, Caller, JsonObject, Query};
use super::transfers::json_response;
use super::AppState;
use crate::actors::finance::{Approve, Propose};
use crate::config::Role;
use crate::domain::ids::{DiscrepancyId, ReconciliationId};
use crate::domain::record::Resolution;
use crate::finance::reconciliation::{DiscrepancyState, DiscrepancyStatus, ReconciliationBook};
use crate::limits;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/discrepancies", get(list))
        .route("/v1/discrepancies/{id}", get(show))
        .route("/v1/discrepancies/{id}/resolve", post(propose))
        .route("/v1/discrepancies/{id}/approve", post(approve))
}

pub fn discrepancy_view(book: &ReconciliationBook, state: &DiscrepancyState) -> Value {
    let run = book.run(state.reconciliation_id).map(|run| &run.record);
    let proposal = state.proposal.as_deref();
    let resolution = state.resolution.as_deref();
    json!({
        "discrepancy_id": state.discrepancy_id,
        "reconciliation_id": state.reconciliation_id,
        "bank": run.map(|run| &run.bank),
        "date": run.map(|run| &run.date),
        "kind": state.line.kind.as_str(),
        "reference": state.line.reference,
        "ledger_amount": state.line.ledger_amount,
        "bank_amount": state.line.bank_amount,
        "status": state.status().as_str(),
        "note": proposal.and_then(|proposal| proposal.resolution.note.as_deref()),
        "adjustment_id": proposal.and_then(|proposal| proposal.resolution.adjustment_id.as_deref()),
        "proposed_by": proposal.map(|proposal| &proposal.operator),
        "proposed_at": proposal.map(|proposal| crate::clock::Rfc3339(proposal.at_ms)),
        "approved_by": resolution.map(|resolved| &resolved.operator),
        "approval_note": resolution.and_then(|resolved| resolved.note.as_deref()),
        "resolved_at": resolution.map(|resolved| crate::clock::Rfc3339(resolved.at_ms)),
    })
}

async fn list(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> ApiResult<Response> {
    state.auth.check(&headers, &[Role::Finance])?;
    let query = Query::parse(&uri, &["status", "reconciliation_id", "limit", "cursor"])?;
    let status = match query.get("status") {
        None => None,
        Some(text) => Some(
            DiscrepancyStatus::parse(text)
                .ok_or_else(|| invalid_field("status", "must be open, proposed or resolved"))?,
        ),
    };
    let reconciliation = match query.get("reconciliation_id") {
        None => None,
        Some(text) => Some(
            ReconciliationId::parse(text)
                .ok_or_else(|| invalid_field("reconciliation_id", "must be a reconciliation id like REC000001"))?,
        ),
    };
    let limit = query.limit()?;
    let after = usize::try_from(query.cursor()?.unwrap_or(0)).unwrap_or(usize::MAX);
    let durable = state.log.durable_lsn();
    let page = state
        .history
        .read_at(durable, |history| {
            let book = history.reconciliations();
            let all = book.discrepancies();
            let mut matching = all[after.min(all.len())..].iter().filter(|state| {
                status.is_none_or(|status| state.status() == status)
                    && reconciliation.is_none_or(|id| state.reconciliation_id == id)
            });
            let chosen: Vec<&DiscrepancyState> = matching.by_ref().take(limit).collect();
            let more = matching.next().is_some();
            let next = chosen.last().filter(|_| more).map(|state| state.discrepancy_id.0.to_string());
            let items: Vec<Value> = chosen.into_iter().map(|state| discrepancy_view(book, state)).collect();
            json!({"items": items, "next_cursor": next})
        })
        .await;
    Ok(json_response(StatusCode::OK, &page))
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::DiscrepancyNotFound, format!("no discrepancy {id}"))
}

/// The discrepancy's current view (durable state), or 404.
async fn current(state: &AppState, id: DiscrepancyId, lsn: u64) -> ApiResult<Value> {
    state
        .history
        .read_at(lsn, |history| {
            let book = history.reconciliations();
            book.discrepancy(id).map(|discrepancy| discrepancy_view(book, discrepancy))
        })
        .await
        .ok_or_else(|| not_found(&id.to_string()))
}

async fn show(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    state.auth.check(&headers, &[Role::Finance])?;
    let discrepancy_id = DiscrepancyId::parse(&id).ok_or_else(|| not_found(&id))?;
    let view = current(&state, discrepancy_id, state.log.durable_lsn()).await?;
    Ok(json_response(StatusCode::OK, &view))
}

/// Finance role, and a person's name to record: maker-checker needs to
/// know who is who.
fn operator(state: &AppState, headers: &HeaderMap) -> ApiResult<Caller> {
    let caller = state.auth.check(headers, &[Role::Finance])?;
    if !caller.has_operator_name {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "proposing and approving need a token with an operator name (maker-checker)",
        ));
    }
    Ok(caller)
}

async fn propose(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let caller = operator(&state, &headers)?;
    let bytes = json_body(&headers, body, state.max_body_bytes).await?;
    let object = JsonObject::parse_body(&bytes)?;
    object.only(&["note", "adjustment_id"])?;
    let note = object.text("note", limits::MEMO_CHARS_MAX)?;
    let adjustment_id = object.client_id("adjustment_id")?;
    if note.is_none() && adjustment_id.is_none() {
        return Err(missing("note"));
    }
    let discrepancy_id = DiscrepancyId::parse(&id).ok_or_else(|| not_found(&id))?;
    let durable = state.log.durable_lsn();
    current(&state, discrepancy_id, durable).await?;
    if let Some(adjustment) = &adjustment_id {
        let known = state.history.read_at(durable, |history| history.bank_days().has_adjustment(adjustment)).await;
        if !known {
            return Err(ApiError::new(ErrorCode::AdjustmentNotFound, format!("no adjustment deposit {adjustment}")));
        }
    }
    let message = Propose {
        discrepancy_id,
        resolution: Resolution { note, adjustment_id },
        operator: caller.operator.as_ref().into(),
    };
    answer(&state, discrepancy_id, state.finance.send(message).await?.map_err(ApiError::from)?).await
}

async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let caller = operator(&state, &headers)?;
    let bytes = json_body(&headers, body, state.max_body_bytes).await?;
    let object = JsonObject::parse_body(&bytes)?;
    object.only(&["note"])?;
    let note = object.text("note", limits::MEMO_CHARS_MAX)?;
    let discrepancy_id = DiscrepancyId::parse(&id).ok_or_else(|| not_found(&id))?;
    let message = Approve { discrepancy_id, note, operator: caller.operator.as_ref().into() };
    answer(&state, discrepancy_id, state.finance.send(message).await?.map_err(ApiError::from)?).await
}

/// 200 with the discrepancy once the change (if any) is durable.
async fn answer(state: &AppState, id: DiscrepancyId, lsn: Option<u64>) -> ApiResult<Response> {
    let lsn = match lsn {
        Some(lsn) => {
            state.log.wait_durable(lsn).await?;
            lsn
        }
        None => state.log.durable_lsn(),
    };
    Ok(json_response(StatusCode::OK, &current(state, id, lsn).await?))
}
