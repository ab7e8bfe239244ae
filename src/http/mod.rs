//! The HTTP layer: one router per resource, merged here, with the state
//! they share, the fallbacks (404 / 405 in the error shape), request
//! metrics and the in-flight bound.
//!
//! Handlers parse, call one thing, and render. No balances here.

pub mod accounts;
pub mod applications;
pub mod bank_sync;
pub mod batch_binary;
pub mod day;
pub mod discrepancies;
pub mod error;
pub mod extract;
mod json_scan;
pub mod movement_json;
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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
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
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let (requests, seconds) = request_metrics(route, method, response.status());
    requests.increment(1);
    seconds.record(started.elapsed().as_secs_f64());
    response
}

/// The method as a label; any non-standard method is `OTHER`, so a client
/// cannot make new series (and cache entries) at will.
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::PATCH,
        Method::TRACE,
        Method::CONNECT,
    ];
    STANDARD.iter().find(|standard| *standard == method).map_or("OTHER", |standard| standard.as_str())
}

type RequestMetrics = (metrics::Counter, metrics::Histogram);

/// One route's handles, by method label and status.
type MetricsByStatus = HashMap<(&'static str, u16), RequestMetrics>;

thread_local! {
    /// Each worker thread's handles of the request series, by route, then
    /// method and status: building a labelled key (three strings, a hash,
    /// the registry's lock) per request cost more than the counting.
    /// Bounded by routes x methods x statuses.
    static REQUEST_METRICS: std::cell::RefCell<HashMap<Box<str>, MetricsByStatus>> =
        std::cell::RefCell::new(HashMap::new());
}

fn request_metrics(route: &str, method: &'static str, status: StatusCode) -> RequestMetrics {
    REQUEST_METRICS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if !cache.contains_key(route) {
            cache.insert(route.into(), HashMap::new());
        }
        let by_status = cache.get_mut(route).expect("inserted above");
        by_status
            .entry((method, status.as_u16()))
            .or_insert_with(|| {
                let labels = [
                    ("route", route.to_owned()),
                    ("method", method.to_owned()),
                    ("status", status.as_u16().to_string()),
                ];
                (
                    metrics::counter!("fundledger_http_requests_total", &labels),
                    metrics::histogram!("fundledger_http_request_seconds", &labels[..2]),
                )
            })
            .clone()
    })
}
