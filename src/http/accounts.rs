//! `GET /v1/accounts/{id}`, `GET /v1/accounts`, `GET /v1/accounts/{id}/journal`.
//!
//! Balances come from the account's actor (then wait until its `last_lsn`
//! is durable); journals from the history index (once it has caught up
//! with everything durable). No balance is kept here.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::error::{invalid_field, ApiError, ApiResult, ErrorCode};
use super::extract::Query;
use super::transfers::json_response;
use super::AppState;
use crate::actors::account::Snapshot;
use crate::actors::directory::AccountEntry;
use crate::config::Role;
use crate::domain::account::AccountStatus;
use crate::domain::ids::AccountId;
use crate::finance::history::{JournalEntry, JournalKind};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/accounts", get(list))
        .route("/v1/accounts/{id}", get(show))
        .route("/v1/accounts/{id}/journal", get(journal))
}

fn not_found(text: &str) -> ApiError {
    ApiError::new(ErrorCode::AccountNotFound, format!("no account {text}"))
}

fn entry<'a>(state: &'a AppState, text: &str) -> ApiResult<&'a std::sync::Arc<AccountEntry>> {
    let id = AccountId::parse(text).ok_or_else(|| not_found(text))?;
    state.directory.get(id).ok_or_else(|| not_found(text))
}

/// The account as API.md shows it, durable.
async fn account_view(state: &AppState, entry: &AccountEntry) -> ApiResult<serde_json::Value> {
    let snapshot = entry.addr.send(Snapshot).await??;
    state.log.wait_durable(snapshot.durable_lsn_needed).await?;
    let info = &entry.info;
    let balance = snapshot.book;
    Ok(json!({
        "account_id": info.account_id,
        "name": info.name,
        "status": snapshot.status.as_str(),
        "bank": info.bank,
        "sub_account_no": entry.sub_account_no(),
        "balance": {"total": balance.total(), "available": balance.available, "frozen": balance.frozen},
        "created_at": crate::clock::format_ms(info.created_at_ms),
        "last_lsn": (snapshot.last_lsn > 0).then_some(snapshot.last_lsn),
    }))
}

async fn show(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    state.auth.check(&headers, &[Role::Platform, Role::Finance])?;
    let entry = entry(&state, &id)?;
    Ok(json_response(StatusCode::OK, &account_view(&state, entry).await?))
}

async fn list(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> ApiResult<Response> {
    state.auth.check(&headers, &[Role::Platform, Role::Finance, Role::Risk])?;
    let query = Query::parse(&uri, &["status", "limit", "cursor"])?;
    let status = match query.get("status") {
        None => None,
        Some(text) => Some(
            AccountStatus::parse(text)
                .ok_or_else(|| invalid_field("status", "must be signing, active or sign_failed"))?,
        ),
    };
    let limit = query.limit()?;
    let after = query.cursor()?.unwrap_or(0);
    let count = state.directory.count();
    let mut items = Vec::with_capacity(limit);
    let mut next = after.saturating_add(1);
    while next <= count && items.len() < limit {
        let entry = state.directory.get(AccountId(next)).expect("accounts up to count exist");
        if status.is_none_or(|status| entry.status() == status) {
            items.push(account_view(&state, entry).await?);
        }
        next += 1;
    }
    let more = (next..=count).any(|n| {
        let entry = state.directory.get(AccountId(n)).expect("accounts up to count exist");
        status.is_none_or(|status| entry.status() == status)
    });
    let next_cursor = more.then(|| (next - 1).to_string());
    Ok(json_response(StatusCode::OK, &json!({"items": items, "next_cursor": next_cursor})))
}

fn entry_view(own: AccountId, entry: &JournalEntry) -> serde_json::Value {
    json!({
        "lsn": entry.lsn,
        "at": crate::clock::format_ms(entry.at_ms),
        "kind": entry.kind.as_str(),
        "transfer_id": entry.transfer_id(),
        "order_id": entry.order_id(),
        "hold_id": entry.hold_id(),
        "counterparty": entry.counterparty(own),
        "available_delta": entry.available_delta,
        "frozen_delta": entry.frozen_delta,
        "available_after": entry.after.available,
        "frozen_after": entry.after.frozen,
        "total_after": entry.after.total(),
    })
}

async fn journal(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    state.auth.check(&headers, &[Role::Platform, Role::Finance])?;
    let query = Query::parse(&uri, &["from", "to", "kind", "after_lsn", "limit", "cursor"])?;
    let from_ms = query.instant_ms("from")?;
    let to_ms = query.instant_ms("to")?;
    let kind = match query.get("kind") {
        None => None,
        Some(text) => Some(JournalKind::parse(text).ok_or_else(|| invalid_field("kind", "is not a journal kind"))?),
    };
    let after_lsn = match query.get("after_lsn") {
        None => 0,
        Some(text) => text.parse::<u64>().map_err(|_| invalid_field("after_lsn", "must be a whole number"))?,
    };
    let limit = query.limit()?;
    let start_after = after_lsn.max(query.cursor()?.unwrap_or(0));
    let own = entry(&state, &id)?.info.account_id;
    let durable = state.log.durable_lsn();
    let page = state
        .history
        .read_at(durable, |history| {
            let entries = history.journal(own);
            let start = entries.partition_point(|entry| entry.lsn <= start_after);
            let mut matching = entries[start..].iter().filter(|entry| {
                kind.is_none_or(|kind| entry.kind == kind)
                    && from_ms.is_none_or(|from| entry.at_ms >= from)
                    && to_ms.is_none_or(|to| entry.at_ms < to)
            });
            let items: Vec<serde_json::Value> =
                matching.by_ref().take(limit).map(|entry| entry_view(own, entry)).collect();
            let last_lsn = items.last().and_then(|item| item["lsn"].as_u64());
            let more = matching.next().is_some();
            json!({"items": items, "next_cursor": if more { last_lsn.map(|lsn| lsn.to_string()) } else { None }})
        })
        .await;
    Ok(json_response(StatusCode::OK, &page))
}
