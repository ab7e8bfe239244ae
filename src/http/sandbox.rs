//! `POST /v1/sandbox/{bank}/credits` (admin): the sandbox bank books an
//! incoming remittance and delivers its signed credit notification, the
//! way a real bank would.
//!
//! Delivery goes through the same handler a real bank reaches over HTTP
//! (`POST /v1/banks/{bank}/notifications`, signature check included), not
//! around it. It is retried with backoff until the ledger answers 200; the
//! sandbox then books the credit as delivered, and credits booked but not
//! delivered (a crash in between) are delivered again at start-up
//! ([`redeliver`]); the ledger dedupes them by bank serial.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use tower::ServiceExt;

use super::error::{missing, ApiError, ApiResult, ErrorCode};
use super::extract::{json_body, JsonObject};
use super::transfers::json_response;
use super::AppState;
use crate::actors::bank::sandbox::BookLine;
use crate::actors::bank::CallError;
use crate::config::{BankConfig, Role};
use crate::limits::{self, TEXT_CHARS_MAX};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/sandbox/{bank}/credits", post(credit))
}

/// Attempts to deliver one notification before giving up until the next
/// start-up (the credit stays booked as undelivered).
const DELIVERY_ATTEMPTS_MAX: u32 = 20;

async fn credit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    state.auth.check(&headers, &[Role::Admin])?;
    let bytes = json_body(&headers, body, state.max_body_bytes).await?;
    let object = JsonObject::parse_body(&bytes)?;
    object.only(&["to_account_no", "amount", "payer_name", "payer_account_no"])?;
    let to_account_no = object.required_text("to_account_no", TEXT_CHARS_MAX)?;
    let amount = object.amount("amount")?.ok_or_else(|| missing("amount"))?;
    let payer_name = object.required_text("payer_name", TEXT_CHARS_MAX)?;
    let payer_account_no = object.required_text("payer_account_no", TEXT_CHARS_MAX)?;
    let unknown = || ApiError::new(ErrorCode::UnknownBank, format!("no sandbox bank {code}"));
    let bank = state.banks.get(&code).ok_or_else(unknown)?;
    let books = bank.sandbox.clone().ok_or_else(unknown)?;
    let config = bank.config.clone();
    let waiting = tokio::time::Instant::now();
    while books.is_loading() && waiting.elapsed() < Duration::from_millis(limits::SANDBOX_BOOKS_WAIT_MS) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let line =
        tokio::task::spawn_blocking(move || books.book_credit(&to_account_no, amount, &payer_name, &payer_account_no))
            .await
            .map_err(|error| ApiError::new(ErrorCode::Internal, error.to_string()))?
            .map_err(|error| match error {
                CallError::Transient(why) => ApiError::new(ErrorCode::BankUnavailable, why),
                CallError::Unknown(why) => {
                    ApiError::new(ErrorCode::Internal, format!("the sandbox cannot book: {why}"))
                }
            })?;
    let answer = json!({"notification_id": line.reference, "bank_serial": line.bank_serial});
    tokio::spawn(deliver(state, config, line));
    Ok(json_response(StatusCode::ACCEPTED, &answer))
}

/// Deliver every credit the sandbox banks booked but the ledger has not
/// yet accepted (a crash between booking and delivery).
/// Runs once the books are read (they load in the background).
pub fn redeliver(state: &AppState) {
    for config in state.banks.configs() {
        let Some(books) = state.banks.get(&config.code).and_then(|bank| bank.sandbox.clone()) else { continue };
        let (state, config) = (std::sync::Arc::clone(state), config.clone());
        tokio::spawn(async move {
            while books.is_loading() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            match books.undelivered_credits() {
                Ok(lines) => {
                    for line in lines {
                        tokio::spawn(deliver(std::sync::Arc::clone(&state), config.clone(), line));
                    }
                }
                Err(error) => tracing::error!(bank = %config.code, %error, "sandbox: credits cannot be redelivered"),
            }
        });
    }
}

/// The notification a real bank would send for this credit, signed.
fn signed_request(config: &BankConfig, line: &BookLine) -> Request<Body> {
    let body = serde_json::to_vec(&json!({
        "notification_id": line.reference,
        "kind": "credit",
        "bank_serial": line.bank_serial,
        "to_account_no": line.account_no,
        "amount": line.amount,
        "payer_name": line.payer_name,
        "payer_account_no": line.counter_account_no,
        "booked_at": line.booked_at,
    }))
    .expect("notifications serialize");
    let mut mac = Hmac::<Sha256>::new_from_slice(config.notify_secret.as_bytes()).expect("HMAC takes any key length");
    let mut builder =
        Request::post(format!("/v1/banks/{}/notifications", config.code)).header("content-type", "application/json");
    if config.notify_max_age_s > 0 {
        let timestamp = (crate::clock::now_ms() / 1000).to_string();
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        builder = builder.header("x-timestamp", timestamp);
    }
    mac.update(&body);
    let signature = hex::encode(mac.finalize().into_bytes());
    builder.header("x-signature", signature).body(Body::from(body)).expect("a valid request")
}

async fn deliver(state: AppState, config: BankConfig, line: BookLine) {
    let mut backoff = Duration::from_millis(20);
    for _ in 0..DELIVERY_ATTEMPTS_MAX {
        let request = signed_request(&config, &line);
        let response = super::notifications::router().with_state(std::sync::Arc::clone(&state)).oneshot(request).await;
        match response.map(|response| response.status()) {
            Ok(StatusCode::OK) => {
                let Some(books) = state.banks.get(&config.code).and_then(|bank| bank.sandbox.clone()) else { return };
                let reference = line.reference.clone();
                match tokio::task::spawn_blocking(move || books.mark_delivered(&reference)).await {
                    Ok(Ok(())) => {}
                    other => tracing::error!(?other, "sandbox: cannot book a delivery; it is sent again at start-up"),
                }
                return;
            }
            Ok(status) if status.is_client_error() => {
                tracing::error!(%status, notification = %line.reference, "sandbox: the ledger refused a credit notification");
                return;
            }
            status => tracing::warn!(?status, notification = %line.reference, "sandbox: delivery failed; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
