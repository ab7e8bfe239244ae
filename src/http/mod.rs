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
    let gate = ApiGate {
        in_flight: Arc::new(Semaphore::new(in_flight_max)),
        body: extract::BodyLimits::new(state.max_body_bytes, crate::limits::BODY_BYTES_IN_FLIGHT_MAX),
        measured: true,
    };
    let api_routes = Router::new()
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
        .method_not_allowed_fallback(method_not_allowed);
    let api =
        api_routes.clone().layer(middleware::from_fn_with_state(gate.clone(), api_gate)).with_state(Arc::clone(&state));
    let service = service::router(metrics);
    // The console calls the API in-process (crate::console::client), so it
    // sees, does and is refused exactly what its session's token is: through
    // the same bounds, but not counted as the API's own requests.
    let unmeasured = ApiGate { measured: false, ..gate };
    let in_process =
        api_routes.layer(middleware::from_fn_with_state(unmeasured, api_gate)).with_state(Arc::clone(&state));
    let console = crate::console::router(in_process.merge(service.clone()), state);
    api.merge(service.layer(middleware::from_fn(record_metrics)))
        .merge(console.layer(middleware::from_fn(record_metrics)))
}

/// What every API request passes through, in one layer: its metrics, the
/// in-flight bound and the body's buffering. One `from_fn` layer each, they
/// cloned the route and boxed a future three times per request
/// (docs/PERFORMANCE.md).
#[derive(Clone)]
struct ApiGate {
    in_flight: Arc<Semaphore>,
    body: extract::BodyLimits,
    /// Counted in the request metrics (not for the console's in-process
    /// calls, which are counted as the console's request).
    measured: bool,
}

async fn api_gate(State(gate): State<ApiGate>, request: Request, next: Next) -> Response {
    let measuring = gate.measured.then(|| Measuring::start(&request));
    let response = bound_in_flight(&gate, request, next).await;
    if let Some(measuring) = measuring {
        measuring.record(response.status());
    }
    response
}

/// Past the in-flight bound, answer 503 at once instead of queueing.
async fn bound_in_flight(gate: &ApiGate, request: Request, next: Next) -> Response {
    match gate.in_flight.try_acquire() {
        Ok(_permit) => extract::buffered(&gate.body, request, next).await,
        Err(_) => ApiError::new(ErrorCode::Overloaded, "too many requests in flight; retry shortly").into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such resource")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, "this resource does not take that method")
}

async fn record_metrics(request: Request, next: Next) -> Response {
    let measuring = Measuring::start(&request);
    let response = next.run(request).await;
    measuring.record(response.status());
    response
}

/// One request's route, method and start, until its status is known.
struct Measuring {
    route: Option<MatchedPath>,
    method: &'static str,
    started: Instant,
}

impl Measuring {
    fn start(request: &Request) -> Self {
        let route = request.extensions().get::<MatchedPath>().cloned();
        Self { route, method: method_label(request.method()), started: Instant::now() }
    }

    fn record(self, status: StatusCode) {
        let route = self.route.as_ref().map_or("unmatched", MatchedPath::as_str);
        let (requests, seconds) = request_metrics(route, self.method, status);
        requests.increment(1);
        seconds.record(self.started.elapsed().as_secs_f64());
    }
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
