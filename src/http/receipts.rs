//! `GET /v1/transfers/{id}/receipt`, `GET /v1/deposits/{notification_id}/receipt`,
//! `GET /v1/withdrawals/{id}/receipt`, `GET /v1/adjustments/{id}/receipt`
//! (JSON, or `?format=html` for a printable page) and
//! `POST /v1/receipts/verify`.
//!
//! A receipt exists once money has moved: a withdrawal that is still
//! processing or that failed answers `409 RECEIPT_NOT_AVAILABLE`.
//!
//! Parses and renders; the receipt itself is built and signed in
//! [`crate::finance::receipts`].

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use super::error::{invalid_field, missing, ApiError, ApiResult, ErrorCode};
use super::extract::{json_body, Query};
use super::transfers::json_response;
use super::AppState;
use crate::config::Role;
use crate::domain::record::PayoutOutcome;
use crate::finance::receipts::{
    adjustment_receipt, deposit_receipt, movement_receipt, render_html, withdrawal_receipt, Party, Receipt,
};
use crate::gateway::idempotency::Committed;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/transfers/{id}/receipt", get(transfer_receipt))
        .route("/v1/deposits/{notification_id}/receipt", get(deposit_receipt_handler))
        .route("/v1/withdrawals/{id}/receipt", get(withdrawal_receipt_handler))
        .route("/v1/adjustments/{id}/receipt", get(adjustment_receipt_handler))
        .route("/v1/receipts/verify", post(verify))
}

const READERS: [Role; 2] = [Role::Platform, Role::Finance];

enum Format {
    Json,
    Html,
}

fn format(uri: &Uri) -> ApiResult<Format> {
    let query = Query::parse(uri, &["format"])?;
    match query.get("format") {
        None | Some("json") => Ok(Format::Json),
        Some("html") => Ok(Format::Html),
        Some(_) => Err(invalid_field("format", "must be json or html")),
    }
}

/// Who may read receipts, and in which format: every receipt's first step.
fn reader(state: &AppState, headers: &HeaderMap, uri: &Uri) -> ApiResult<Format> {
    state.auth.check(headers, &READERS)?;
    format(uri)
}

/// What client id `id` committed, once it is durable (a receipt shows only
/// durable money), or `not_found`.
async fn durable_committed(state: &AppState, id: &str, not_found: impl Fn() -> ApiError) -> ApiResult<Committed> {
    let committed =
        state.transfers.ids.get(id).await.map(Committed::readable).transpose()?.flatten().ok_or_else(&not_found)?;
    state.log.wait_durable(committed.lsn()).await?;
    Ok(committed)
}

fn render(receipt: &Receipt, format: Format) -> Response {
    match format {
        Format::Json => json_response(StatusCode::OK, receipt),
        Format::Html => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], render_html(receipt)).into_response(),
    }
}

async fn transfer_receipt(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let format = reader(&state, &headers, &uri)?;
    let not_found = || ApiError::new(ErrorCode::TransferNotFound, format!("no transfer {id}"));
    let committed = durable_committed(&state, &id, not_found).await?;
    let Committed::Movement { lsn, movement } = &committed else { return Err(not_found()) };
    let receipt = movement_receipt(&state.receipts.key, &state.directory, *lsn, movement);
    Ok(render(&receipt, format))
}

async fn deposit_receipt_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(notification_id): Path<String>,
) -> ApiResult<Response> {
    let format = reader(&state, &headers, &uri)?;
    let durable = state.log.durable_lsn();
    let found = state.history.deposit(&notification_id, durable).await?;
    let (lsn, deposit) = found.ok_or_else(|| {
        ApiError::new(
            ErrorCode::ReceiptNotFound,
            format!("no deposit credited by notification {notification_id} (unknown, or it went to suspense)"),
        )
    })?;
    let receipt = deposit_receipt(&state.receipts.key, &state.directory, lsn, &deposit);
    Ok(render(&receipt, format))
}

async fn withdrawal_receipt_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let format = reader(&state, &headers, &uri)?;
    let not_found = || ApiError::new(ErrorCode::WithdrawalNotFound, format!("no withdrawal {id}"));
    let committed = durable_committed(&state, &id, not_found).await?;
    let Committed::Withdrawal { lsn, .. } = &committed else { return Err(not_found()) };
    let durable = state.log.durable_lsn().max(*lsn);
    let shown = state.history.withdrawal(&id, durable).await?.ok_or_else(not_found)?;
    let not_available =
        |why: &str| ApiError::new(ErrorCode::ReceiptNotAvailable, format!("withdrawal {id} {why}: no money has moved"));
    let finished = shown.finished.as_ref().ok_or_else(|| not_available("is still processing"))?;
    if !matches!(finished.outcome, PayoutOutcome::Succeeded { .. }) {
        return Err(not_available("failed"));
    }
    let receipt = withdrawal_receipt(
        &state.receipts.key,
        &state.directory,
        shown.lsn,
        &shown.withdrawal,
        finished.finished_at_ms,
    );
    Ok(render(&receipt, format))
}

async fn adjustment_receipt_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let format = reader(&state, &headers, &uri)?;
    let not_found = || ApiError::new(ErrorCode::NotFound, format!("no adjustment {id}"));
    let committed = durable_committed(&state, &id, not_found).await?;
    let Committed::Adjustment { lsn, adjustment } = &committed else { return Err(not_found()) };
    let remitted = state
        .history
        .read_at(*lsn, |history| {
            history.suspense().get(adjustment.suspense_id).map(|entry| entry.entry.notification.clone())
        })
        .await
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "an adjustment out of a suspense entry the history lacks"))?;
    let receipt = adjustment_receipt(&state.receipts.key, &state.directory, *lsn, adjustment, &remitted);
    Ok(render(&receipt, format))
}

async fn verify(State(state): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    state.auth.check(&headers, &READERS)?;
    let bytes = json_body(&headers, body, state.max_body_bytes).await?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|error| ApiError::new(ErrorCode::InvalidJson, format!("the body is not JSON: {error}")))?;
    let Value::Object(object) = value else {
        return Err(ApiError::new(ErrorCode::InvalidJson, "the body must be a receipt, a JSON object"));
    };
    let receipt = parse_receipt(&object)?;
    let valid = state.receipts.key.verify(&receipt);
    Ok(json_response(StatusCode::OK, &json!({"valid": valid})))
}

const RECEIPT_FIELDS: [&str; 10] = [
    "receipt_no",
    "transfer_id",
    "type",
    "payer",
    "payee",
    "amount",
    "amount_in_words",
    "order_id",
    "committed_at",
    "verification_code",
];

const PARTY_FIELDS: [&str; 3] = ["account_id", "name", "sub_account_no"];

/// A receipt body, syntax only: the fields a receipt has, of the JSON types
/// it has (400 otherwise). Whether the values are true is the code's job.
fn parse_receipt(object: &Map<String, Value>) -> ApiResult<Receipt> {
    only(object, &RECEIPT_FIELDS, "")?;
    let payer = match object.get("payer") {
        None | Some(Value::Null) => return Err(missing("payer")),
        Some(Value::Object(party)) => parse_party(party, "payer")?,
        Some(_) => return Err(invalid_field("payer", "must be an object")),
    };
    let payee = match object.get("payee") {
        None | Some(Value::Null) => None,
        Some(Value::Object(party)) => Some(parse_party(party, "payee")?),
        Some(_) => return Err(invalid_field("payee", "must be an object or null")),
    };
    Ok(Receipt {
        receipt_no: required(object, "receipt_no", "")?,
        transfer_id: required(object, "transfer_id", "")?,
        kind: required(object, "type", "")?,
        payer,
        payee,
        amount: required(object, "amount", "")?,
        amount_in_words: required(object, "amount_in_words", "")?,
        order_id: nullable(object, "order_id", "")?,
        committed_at: required(object, "committed_at", "")?,
        verification_code: required(object, "verification_code", "")?,
    })
}

fn parse_party(object: &Map<String, Value>, prefix: &str) -> ApiResult<Party> {
    let prefix = format!("{prefix}.");
    only(object, &PARTY_FIELDS, &prefix)?;
    Ok(Party {
        account_id: nullable(object, "account_id", &prefix)?,
        name: required(object, "name", &prefix)?,
        sub_account_no: nullable(object, "sub_account_no", &prefix)?,
    })
}

fn only(object: &Map<String, Value>, known: &[&str], prefix: &str) -> ApiResult<()> {
    match object.keys().find(|key| !known.contains(&key.as_str())) {
        Some(key) => {
            Err(ApiError::new(ErrorCode::UnexpectedField, format!("field `{prefix}{key}` is not expected here")))
        }
        None => Ok(()),
    }
}

fn required(object: &Map<String, Value>, name: &str, prefix: &str) -> ApiResult<String> {
    nullable(object, name, prefix)?.ok_or_else(|| missing(&format!("{prefix}{name}")))
}

fn nullable(object: &Map<String, Value>, name: &str, prefix: &str) -> ApiResult<Option<String>> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(invalid_field(&format!("{prefix}{name}"), "must be a string")),
    }
}
