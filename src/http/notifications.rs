//! `POST /v1/banks/{bank}/notifications`: the bank side's credit
//! notifications, authenticated by HMAC-SHA256 of the raw body under the
//! bank's `notify_secret` (`X-Signature`, lowercase hex), not by a token.
//!
//! With `notify_max_age_s` set, `X-Timestamp` (unix seconds) is required,
//! must be within that many seconds of now, and is signed with the body:
//! HMAC of `<X-Timestamp>.<raw body>`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::error::{invalid_field, ApiError, ApiResult, ErrorCode};
use super::extract::JsonObject;
use super::transfers::json_response;
use super::AppState;
use crate::config::BankConfig;
use crate::domain::record::Notification;
use crate::gateway::idempotency::Committed;
use crate::limits::TEXT_CHARS_MAX;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/banks/{bank}/notifications", post(receive))
}

fn unauthenticated(why: &'static str) -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, why)
}

/// Check `X-Signature` (and `X-Timestamp` when configured), in constant time.
pub fn verify_signature(bank: &BankConfig, headers: &HeaderMap, body: &[u8]) -> ApiResult<()> {
    let signature = headers
        .get("x-signature")
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| unauthenticated("X-Signature is required"))?;
    let signature = hex::decode(signature.trim()).map_err(|_| unauthenticated("X-Signature must be lowercase hex"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(bank.notify_secret.as_bytes()).expect("HMAC takes any key length");
    if bank.notify_max_age_s > 0 {
        // Signed as sent (API.md: `<X-Timestamp>.<raw body>`), read as
        // unix seconds.
        let (text, timestamp) = headers
            .get("x-timestamp")
            .and_then(|value| value.to_str().ok())
            .and_then(|text| Some((text, text.parse::<i64>().ok()?)))
            .ok_or_else(|| unauthenticated("X-Timestamp (unix seconds) is required"))?;
        let age_s = (crate::clock::now_ms() / 1000).abs_diff(timestamp);
        if age_s > bank.notify_max_age_s {
            return Err(unauthenticated("X-Timestamp is too old or in the future"));
        }
        mac.update(text.as_bytes());
        mac.update(b".");
    }
    mac.update(body);
    mac.verify_slice(&signature).map_err(|_| unauthenticated("X-Signature does not match the body"))
}

fn parse_notification(bank: &str, object: &JsonObject) -> ApiResult<Notification> {
    object.only(&[
        "notification_id",
        "kind",
        "bank_serial",
        "to_account_no",
        "amount",
        "payer_name",
        "payer_account_no",
        "booked_at",
    ])?;
    let kind = object.required_string("kind")?;
    if kind != "credit" {
        return Err(invalid_field("kind", "must be \"credit\""));
    }
    let notification_id =
        object.client_id("notification_id")?.ok_or_else(|| super::error::missing("notification_id"))?;
    let bank_serial = object.client_id("bank_serial")?.ok_or_else(|| super::error::missing("bank_serial"))?;
    let amount = object.amount("amount")?.ok_or_else(|| super::error::missing("amount"))?;
    let booked_at = object.required_text("booked_at", 64)?;
    if crate::clock::parse_instant_ms(&booked_at).is_none() {
        return Err(invalid_field("booked_at", "must be an RFC 3339 instant"));
    }
    Ok(Notification {
        bank: bank.into(),
        notification_id,
        bank_serial,
        to_account_no: object.required_text("to_account_no", TEXT_CHARS_MAX)?,
        amount,
        payer_name: object.required_text("payer_name", TEXT_CHARS_MAX)?,
        payer_account_no: object.required_text("payer_account_no", TEXT_CHARS_MAX)?,
        booked_at,
    })
}

async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let bank =
        state.banks.get(&code).ok_or_else(|| ApiError::new(ErrorCode::UnknownBank, format!("no bank {code}")))?;
    let config = bank.config.clone();
    let bytes = super::extract::read_body(&headers, body, state.max_body_bytes).await?;
    verify_signature(&config, &headers, &bytes)?;
    if !super::extract::is_json(&headers) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as `Content-Type: application/json`",
        ));
    }
    let notification = parse_notification(&code, &JsonObject::parse_body(&bytes)?)?;
    let committed = state.desk.receive(&config, notification).await?;
    state.log.wait_durable(committed.lsn()).await?;
    let view = match &committed {
        Committed::Deposit { lsn, deposit } => {
            json!({"result": "credited", "account_id": deposit.account_id, "lsn": lsn})
        }
        Committed::Suspense { lsn, entry } => {
            json!({"result": "suspense", "suspense_id": entry.suspense_id, "reason": entry.reason.as_str(), "lsn": lsn})
        }
        _ => unreachable!("the notification id space holds bank credits only"),
    };
    Ok(json_response(StatusCode::OK, &view))
}
