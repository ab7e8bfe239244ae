//! `GET /v1/ledger/trial-balance` (finance): the double-entry check over
//! the whole ledger at one lsn (API.md), from the history's books
//! ([`crate::finance::trial_balance`]). Read only.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::error::ApiResult;
use super::extract::Query;
use super::transfers::json_response;
use super::AppState;
use crate::config::Role;
use crate::domain::money::Money;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/ledger/trial-balance", get(trial_balance))
}

async fn trial_balance(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> ApiResult<Response> {
    state.auth.check(&headers, &[Role::Finance])?;
    Query::parse(&uri, &[])?;
    let durable = state.log.durable_lsn();
    let view = state.history.read_at(durable, |history| history.trial_balance()).await;
    if !view.balanced {
        tracing::error!(?view, "the trial balance does not balance");
    }
    let body = json!({
        "lsn": view.lsn,
        "customer_available": Money::sum_to_decimal(view.customer_available),
        "customer_frozen": Money::sum_to_decimal(view.customer_frozen),
        "customer_total": Money::sum_to_decimal(view.customer_total),
        "suspense_open": Money::sum_to_decimal(view.suspense_open),
        "bank_custody": Money::sum_to_decimal(view.bank_custody),
        "withdrawals_in_flight": Money::sum_to_decimal(view.withdrawals_in_flight),
        "balanced": view.balanced,
    });
    Ok(json_response(StatusCode::OK, &body))
}
