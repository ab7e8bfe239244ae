//! `GET /v1/ledger/day?date=YYYY-MM-DD` (finance): one UTC day's money in,
//! money out and customer-to-customer transfers (sums and counts), from
//! the durable history ([`crate::finance::day`]). Not in API.md; the
//! console's dashboard reads it. Without `date`, today (UTC).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::error::{invalid_field, ApiResult};
use super::extract::Query;
use super::transfers::json_response;
use super::AppState;
use crate::config::Role;
use crate::domain::money::Money;
use crate::finance::day::day_figures;

const DAY_MS: i64 = 86_400_000;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/ledger/day", get(day))
}

async fn day(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> ApiResult<Response> {
    state.auth.check(&headers, &[Role::Finance])?;
    let query = Query::parse(&uri, &["date"])?;
    let from_ms = match query.get("date") {
        None => crate::clock::now_ms().div_euclid(DAY_MS) * DAY_MS,
        Some(text) => crate::clock::parse_instant_ms(text)
            .filter(|ms| text.len() == 10 && ms.rem_euclid(DAY_MS) == 0)
            .ok_or_else(|| invalid_field("date", "must be a date like 2026-11-24"))?,
    };
    let durable = state.log.durable_lsn();
    let figures = state.history.read_at(durable, |history| day_figures(history, from_ms)).await;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "date": &crate::clock::format_ms(from_ms)[..10],
            "lsn": durable,
            "money_in": Money::sum_to_decimal(figures.money_in_fen),
            "money_in_count": figures.money_in_count,
            "money_out": Money::sum_to_decimal(figures.money_out_fen),
            "money_out_count": figures.money_out_count,
            "transfers": Money::sum_to_decimal(figures.transfers_fen),
            "transfers_count": figures.transfers_count,
        }),
    ))
}
