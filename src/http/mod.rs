//! The HTTP layer: one router per resource, merged here, with the state
//! they share, the fallbacks (404 / 405 in the error shape), request
//! metrics and the in-flight bound.
//!
//! Handlers parse, call one thing, and render. No balances here.

pub mod accounts;
pub mod applications;
pub mod bank_sync;
pub mod day;
pub mod discrepancies;
pub mod error;
pub mod extract;
pub mod notifications;
pub mod openapi;
pub mod rate;
pub mod receipts;
pub mod reconciliations;
pub mod sandbox;
pub mod serve;
pub mod service;
pub mod suspense;
pub mod transfers;
pub mod trial_balance;
pub mod withdrawals;

use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::Semaphore;

use self::error::{ApiError, ErrorCode};
use self::extract::Auth;
use crate::actors::bank::Banks;
use crate::actors::directory::Directory;
use crate::actors::finance::FinanceActor;
use crate::actors::log::LedgerLog;
use crate::actors::registry::RegistryActor;
use crate::finance::history::History;
use crate::gateway::notifications::Desk;
use crate::gateway::transfers::Transfers;

/// Everything the handlers share, built once recovery is done.
pub struct Ledger {
    pub auth: Auth,
    pub max_body_bytes: usize,
    pub directory: Arc<Directory>,
    pub transfers: Transfers,
    pub desk: Desk,
    pub registry: Addr<RegistryActor>,
    pub banks: Arc<Banks>,
    pub log: LedgerLog,
    pub history: Arc<History>,
    pub receipts: crate::finance::receipts::Receipts,
    pub finance: Addr<FinanceActor>,
    /// `limits.max_statement_bytes`: an uploaded statement's bound.
    pub max_statement_bytes: u64,
    /// Reconciliations computed at once (`limits::RECONCILIATIONS_IN_FLIGHT_MAX`).
    pub reconciling: Arc<Semaphore>,
}

pub type AppState = Arc<Ledger>;

pub fn router(state: AppState, metrics: service::MetricsHandle, in_flight_max: usize) -> Router {
    let in_flight = Arc::new(Semaphore::new(in_flight_max));
    let api = Router::new()
        .merge(applications::router())
        .merge(accounts::router())
        .merge(transfers::router())
        .merge(notifications::router())
        .merge(receipts::router())
        .merge(openapi::router())
        .merge(withdrawals::router())
        .merge(suspense::router())
        .merge(sandbox::router())
        .merge(bank_sync::router())
        .merge(day::router())
        .merge(reconciliations::router())
        .merge(discrepancies::router())
        .merge(trial_balance::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            extract::BodyLimits::new(state.max_body_bytes, crate::limits::BODY_BYTES_IN_FLIGHT_MAX),
            extract::buffer_body,
        ))
        .layer(middleware::from_fn_with_state(in_flight, bound_in_flight))
        .with_state(Arc::clone(&state));
    let service = service::router(metrics);
    // The console calls the API in-process (crate::console::client), so it
    // sees, does and is refused exactly what its session's token is.
    let console = crate::console::router(api.clone().merge(service.clone()), state);
    api.merge(service).merge(console).layer(middleware::from_fn(record_metrics))
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such resource")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, "this resource does not take that method")
}

/// Past the in-flight bound, answer 503 at once instead of queueing.
async fn bound_in_flight(State(in_flight): State<Arc<Semaphore>>, request: Request, next: Next) -> Response {
    match in_flight.try_acquire() {
        Ok(_permit) => next.run(request).await,
        Err(_) => ApiError::new(ErrorCode::Overloaded, "too many requests in flight; retry shortly").into_response(),
    }
}

async fn record_metrics(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("route", route), ("method", method), ("status", status)];
    metrics::counter!("fundledger_http_requests_total", &labels).increment(1);
    metrics::histogram!("fundledger_http_request_seconds", &labels[..2]).record(started.elapsed().as_secs_f64());
    response
}
