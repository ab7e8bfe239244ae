//! `GET /v1/bank-sync/failures` (finance): bank instructions (forced
//! transfers, adjustments, returns) that the bank refused for good, oldest
//! first, for finance to follow up by hand. From the history read model
//! (durable `BankSynced` records only); the cursor is an lsn.

use crate::http::extract::lsn_page;
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

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/bank-sync/failures", get(failures))
}

async fn failures(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> ApiResult<Response> {
    state.auth.check(&headers, &[Role::Finance])?;
    let query = Query::parse(&uri, &["limit", "cursor"])?;
    let limit = query.limit()?;
    let after_lsn = query.cursor()?.unwrap_or(0);
    let durable = state.log.durable_lsn();
    let page = state
        .history
        .read_at(durable, |history| {
            let view = |(lsn, sync): &(u64, std::sync::Arc<crate::domain::record::BankSync>)| {
                json!({
                    "reference": sync.reference,
                    "kind": sync.kind.as_str(),
                    "bank": sync.bank,
                    "status": "failed",
                    "failure_reason": sync.outcome.as_ref().err(),
                    "lsn": lsn,
                    "at": crate::clock::format_ms(sync.at_ms),
                })
            };
            lsn_page(history.bank_sync_failures(), |(lsn, _)| *lsn, after_lsn, limit, view)
        })
        .await;
    Ok(json_response(StatusCode::OK, &page))
}
