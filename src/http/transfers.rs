//! `POST /v1/transfers`, `POST /v1/transfers/batch`, `GET /v1/transfers/{id}`,
//! `GET /v1/holds/{id}`, `GET /v1/orders/{id}/transfers`.
//!
//! Parses and renders; the judging happens in the account actors through
//! [`crate::gateway::transfers`].

use crate::http::extract::lsn_page;
use std::io::Write;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;

use super::batch_binary;
use super::error::{invalid_field, missing, ApiError, ApiResult, ErrorCode};
use super::extract::{is_json, json_body, read_body, BatchBody, Field, JsonObject, Query};
use super::movement_json::write_movement;
use super::AppState;
use crate::config::Role;
use crate::domain::account::TransferRequest;
use crate::domain::ids::AccountId;
use crate::domain::money::Money;
use crate::domain::record::{Movement, TransferType};
use crate::gateway::idempotency::Committed;
use crate::limits;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/transfers", post(create))
        .route("/v1/transfers/batch", post(create_batch))
        .route("/v1/transfers/{id}", get(show))
        .route("/v1/holds/{hold_id}", get(show_hold))
        .route("/v1/orders/{order_id}/transfers", get(list_order))
}

const TRANSFER_FIELDS: [&str; 8] = ["id", "type", "payer", "payee", "hold_id", "amount", "order_id", "memo"];

/// Parse one transfer object (a request body or a batch item).
pub fn parse_transfer(object: &JsonObject) -> ApiResult<TransferRequest> {
    let [id, kind, payer, payee, hold_id, amount, order_id, memo] = object.fields(&TRANSFER_FIELDS)?;
    let type_text = kind.required_string()?;
    let kind = TransferType::parse(&type_text).ok_or_else(invalid_type)?;
    let present = [payer, payee, hold_id, amount];
    let has = |name: &str| present.iter().any(|field| field.name() == name && field.is_present());
    let required = type_fields(kind, has)?;
    let id = id.client_id()?.ok_or_else(|| missing("id"))?;
    for field in required {
        if !has(field) {
            return Err(missing(field));
        }
    }
    Ok(TransferRequest {
        id,
        kind,
        payer: account_value(payer)?,
        payee: account_value(payee)?,
        hold_id: hold_id.client_id()?,
        amount: amount.amount()?,
        order_id: order_id.client_id()?,
        memo: memo.text(limits::MEMO_CHARS_MAX)?,
    })
}

/// `400 INVALID_TYPE`: a `type` that is none of the five.
pub fn invalid_type() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidType,
        "field `type` must be one of transfer, freeze, unfreeze, unfreeze_pay, pay_freeze",
    )
}

/// The fields a transfer of `kind` needs, after refusing an account or
/// hold field it does not take (`has` says which fields the item carries).
/// The JSON and the binary batch parsers share it, so both judge alike.
pub fn type_fields(kind: TransferType, has: impl Fn(&str) -> bool) -> ApiResult<&'static [&'static str]> {
    let (required, allowed): (&'static [&'static str], &[&str]) = match kind {
        TransferType::Transfer | TransferType::PayFreeze => {
            (&["payer", "payee", "amount"], &["payer", "payee", "amount"])
        }
        TransferType::Freeze => (&["payer", "amount"], &["payer", "amount"]),
        TransferType::Unfreeze => (&["hold_id"], &["hold_id", "amount"]),
        TransferType::UnfreezePay => (&["hold_id", "payee"], &["hold_id", "payee", "amount"]),
    };
    for field in ["payer", "payee", "hold_id"] {
        if has(field) && !allowed.contains(&field) {
            return Err(ApiError::new(
                ErrorCode::UnexpectedField,
                format!("field `{field}` is not taken by type {}", kind.as_str()),
            ));
        }
    }
    Ok(required)
}

/// An account id field: malformed is 400; well-formed but not canonical
/// (`F0000001`) names no account, so it becomes account 0, which never
/// exists, and is answered 404 after the other syntax checks.
pub fn account_field(object: &JsonObject, name: &str) -> ApiResult<Option<AccountId>> {
    account_value(object.field(name))
}

fn account_value(field: Field) -> ApiResult<Option<AccountId>> {
    let Some(text) = field.string()? else { return Ok(None) };
    match AccountId::from_field(&text) {
        Some(id) => Ok(Some(id)),
        None => Err(invalid_field(field.name(), "must be an account id like F000001")),
    }
}

async fn create(State(state): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let caller = state.auth.check(&headers, &[Role::Platform])?;
    let bytes = json_body(&headers, body, state.max_body_bytes).await?;
    let request = parse_transfer(&JsonObject::parse_body(&bytes)?)?;
    let mut outcomes = state.transfers.submit(vec![Ok(request)], &caller.operator).await;
    let committed = outcomes.pop().expect("one answer per item")?;
    state.log.wait_durable(committed.lsn()).await?;
    metrics::counter!("fundledger_transfers_committed_total").increment(1);
    let mut body = Vec::with_capacity(MOVEMENT_JSON_BYTES);
    let (lsn, movement) = committed_movement(&committed);
    write_movement(&mut body, lsn, movement);
    Ok((StatusCode::CREATED, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Room for a typical movement answer, so writing it does not reallocate.
const MOVEMENT_JSON_BYTES: usize = 400;

async fn create_batch(State(state): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let caller = state.auth.check(&headers, &[Role::Platform])?;
    // The body's media type picks its parser; both give the same requests.
    let requests = if is_json(&headers) {
        json_batch(&read_body(&headers, body, state.max_body_bytes).await?)?
    } else if batch_binary::is_binary_batch(&headers) {
        batch_binary::decode(&read_body(&headers, body, state.max_body_bytes).await?)?
    } else {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("send the batch as `Content-Type: application/json` or `{}`", batch_binary::MEDIA_TYPE),
        ));
    };
    let outcomes = state.transfers.submit(requests, &caller.operator).await;
    let highest = outcomes.iter().filter_map(|o| o.as_ref().ok()).map(Committed::lsn).max().unwrap_or(0);
    state.log.wait_durable(highest).await?;
    let committed = outcomes.iter().filter(|o| o.is_ok()).count();
    metrics::counter!("fundledger_transfers_committed_total").increment(committed as u64);
    Ok(batch_response(&outcomes))
}

/// A JSON batch body's items, each checked by [`parse_transfer`].
fn json_batch(bytes: &[u8]) -> ApiResult<Vec<ApiResult<TransferRequest>>> {
    let body = BatchBody::read_each(bytes, "transfers", |item| {
        parse_transfer(item.ok_or_else(|| ApiError::new(ErrorCode::InvalidJson, "a batch item must be a JSON object"))?)
    })?;
    if let Some(key) = body.unexpected {
        return Err(ApiError::new(ErrorCode::UnexpectedField, format!("field `{key}` is not expected here")));
    }
    let batch_error = |why: &str| ApiError::new(ErrorCode::InvalidBatch, format!("`transfers` {why}"));
    let items = body
        .items
        .ok_or_else(|| batch_error("is required: an array of 1 to 8190 transfers"))?
        .ok_or_else(|| batch_error("must be an array"))?;
    if items.is_empty() || items.len() > limits::BATCH_ITEMS_MAX {
        return Err(batch_error(&format!("must hold 1 to {} transfers, not {}", limits::BATCH_ITEMS_MAX, items.len())));
    }
    Ok(items)
}

/// The batch answer, written straight into one buffer.
fn batch_response(outcomes: &[ApiResult<Committed>]) -> Response {
    let mut out = Vec::with_capacity(outcomes.len() * (MOVEMENT_JSON_BYTES + 24) + 16);
    out.extend_from_slice(b"{\"results\":[");
    for (index, outcome) in outcomes.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        let written = match outcome {
            Ok(committed) => {
                out.extend_from_slice(b"{\"status\":201,\"body\":");
                let (lsn, movement) = committed_movement(committed);
                write_movement(&mut out, lsn, movement);
                Ok(())
            }
            Err(error) => {
                let _ = write!(out, "{{\"status\":{},\"body\":", error.status().as_u16());
                serde_json::to_writer(&mut out, &error.body())
            }
        };
        written.expect("writing JSON into memory cannot fail");
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

pub fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_vec(value).expect("views serialize");
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[derive(Serialize)]
pub struct HoldView {
    pub hold_id: Box<str>,
    pub account_id: AccountId,
    pub amount: Money,
    pub remaining: Money,
    pub status: &'static str,
}

#[derive(Serialize)]
pub struct MovementView<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'static str,
    lsn: u64,
    committed_at: crate::clock::Rfc3339,
    payer: AccountId,
    payee: Option<AccountId>,
    amount: Money,
    order_id: Option<&'a str>,
    memo: Option<&'a str>,
    hold: Option<HoldView>,
    receipt_no: ReceiptNo,
}

/// `R` and the lsn in 12 digits: the receipt number of a movement.
#[derive(Clone, Copy)]
pub struct ReceiptNo(pub u64);

impl std::fmt::Display for ReceiptNo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "R{:012}", self.0)
    }
}

impl Serialize for ReceiptNo {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

pub fn movement_view(lsn: u64, movement: &Movement) -> MovementView<'_> {
    let hold = match (&movement.hold_id, movement.hold_account) {
        (Some(hold_id), Some(account_id)) => Some(HoldView {
            hold_id: hold_id.clone(),
            account_id,
            amount: movement.hold_amount,
            remaining: movement.hold_remaining,
            status: if movement.hold_remaining.0 > 0 { "open" } else { "closed" },
        }),
        _ => None,
    };
    MovementView {
        id: &movement.id,
        kind: movement.kind.as_str(),
        status: "committed",
        lsn,
        committed_at: crate::clock::Rfc3339(movement.committed_at_ms),
        payer: movement.payer,
        payee: movement.payee.filter(|_| movement.kind.has_payee()),
        amount: movement.amount,
        order_id: movement.order_id.as_deref(),
        memo: movement.memo.as_deref(),
        hold,
        receipt_no: ReceiptNo(lsn),
    }
}

pub fn receipt_no(lsn: u64) -> String {
    ReceiptNo(lsn).to_string()
}

fn committed_movement(committed: &Committed) -> (u64, &Movement) {
    match committed {
        Committed::Movement { lsn, movement } => (*lsn, movement),
        _ => unreachable!("the transfer id space holds movements only"),
    }
}

#[derive(Serialize)]
struct BankSyncView {
    status: &'static str,
    bank_serial: Option<String>,
    failure_reason: Option<String>,
}

#[derive(Serialize)]
struct TransferRecordView<'a> {
    #[serde(flatten)]
    movement: MovementView<'a>,
    bank_sync: BankSyncView,
}

/// Where the bank's mirror of a movement stands: `pending` until the
/// outbox records the bank's answer (a `BankSynced` record, durable).
async fn bank_sync_view(state: &AppState, reference: &str, lsn: u64) -> ApiResult<BankSyncView> {
    let durable = state.log.durable_lsn();
    let sync = state.history.bank_sync(reference, lsn, durable).await?;
    Ok(match sync.as_ref().map(|sync| &sync.outcome) {
        None => BankSyncView { status: "pending", bank_serial: None, failure_reason: None },
        Some(Ok(serial)) => {
            BankSyncView { status: "confirmed", bank_serial: Some(serial.to_string()), failure_reason: None }
        }
        Some(Err(reason)) => {
            BankSyncView { status: "failed", bank_serial: None, failure_reason: Some(reason.to_string()) }
        }
    })
}

async fn show(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    state.auth.check(&headers, &[Role::Platform, Role::Finance])?;
    let not_found = || ApiError::new(ErrorCode::TransferNotFound, format!("no transfer {id}"));
    let committed =
        state.transfers.ids.get(&id).await.map(Committed::readable).transpose()?.flatten().ok_or_else(not_found)?;
    let Committed::Movement { lsn, movement } = &committed else { return Err(not_found()) };
    state.log.wait_durable(*lsn).await?;
    let view = TransferRecordView {
        movement: movement_view(*lsn, movement),
        bank_sync: bank_sync_view(&state, &id, *lsn).await?,
    };
    Ok(json_response(StatusCode::OK, &view))
}

#[derive(Serialize)]
struct HoldRecordView {
    #[serde(flatten)]
    hold: HoldView,
    movements: Vec<Box<str>>,
}

async fn show_hold(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(hold_id): Path<String>,
) -> ApiResult<Response> {
    state.auth.check(&headers, &[Role::Platform, Role::Finance])?;
    let durable = state.log.durable_lsn();
    let view = state
        .history
        .hold(&hold_id, durable)
        .await?
        .map(|hold| HoldRecordView {
            hold: HoldView {
                hold_id: hold_id.as_str().into(),
                account_id: hold.account_id,
                amount: hold.amount,
                remaining: hold.remaining,
                status: if hold.remaining.0 > 0 { "open" } else { "closed" },
            },
            movements: hold.movements,
        })
        .ok_or_else(|| ApiError::new(ErrorCode::HoldNotFound, format!("no hold {hold_id}")))?;
    Ok(json_response(StatusCode::OK, &view))
}

async fn list_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(order_id): Path<String>,
) -> ApiResult<Response> {
    state.auth.check(&headers, &[Role::Platform, Role::Finance])?;
    if !crate::domain::ids::is_valid_client_id(&order_id) {
        return Err(ApiError::new(ErrorCode::InvalidId, "an order_id is 1 to 64 characters of A-Z a-z 0-9 _ - . :"));
    }
    let query = Query::parse(&uri, &["limit", "cursor"])?;
    let limit = query.limit()?;
    let after_lsn = query.cursor()?.unwrap_or(0);
    let durable = state.log.durable_lsn();
    let movements = state.history.order(&order_id, durable).await?;
    let page = lsn_page(&movements, |(lsn, _)| *lsn, after_lsn, limit, |(lsn, movement)| movement_view(*lsn, movement));
    let body = serde_json::to_vec(&page).expect("views serialize");
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}
