//! `GET /v1/accounts/{id}`, `GET /v1/accounts`, `GET /v1/accounts/{id}/journal`,
//! `GET /v1/accounts/{id}/journal.csv`, `GET /v1/accounts/{id}/balance?at_lsn=N`.
//!
//! Balances come from the account's actor (then wait until its `last_lsn`
//! is durable); journals and past balances from the history index (once it
//! has caught up with everything durable). No balance is kept here.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
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
use crate::finance::archive::JournalIndexEntry;
use crate::finance::history::{JournalEntry, JournalKind};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/accounts", get(list))
        .route("/v1/accounts/{id}", get(show))
        .route("/v1/accounts/{id}/journal", get(journal))
        .route("/v1/accounts/{id}/journal.csv", get(journal_csv))
        .route("/v1/accounts/{id}/balance", get(balance_at))
}

fn not_found(text: &str) -> ApiError {
    ApiError::new(ErrorCode::AccountNotFound, format!("no account {text}"))
}

fn entry(state: &AppState, text: &str) -> ApiResult<&'static AccountEntry> {
    let id = AccountId::parse(text).ok_or_else(|| not_found(text))?;
    state.directory.get(id).ok_or_else(|| not_found(text))
}

/// The account as API.md shows it, durable.
async fn account_view(state: &AppState, entry: &'static AccountEntry) -> ApiResult<serde_json::Value> {
    let snapshot = state.directory.send(entry, Snapshot).await??;
    state.log.wait_durable(snapshot.durable_lsn_needed).await?;
    let info = &entry.info;
    let balance = snapshot.book;
    Ok(json!({
        "account_id": info.account_id,
        "name": info.name(),
        "status": snapshot.status.as_str(),
        "bank": info.bank(),
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
    let filter = JournalFilter::parse(&query)?;
    let limit = query.limit()?;
    let start_after = filter.after_lsn.max(query.cursor()?.unwrap_or(0));
    let own = entry(&state, &id)?.info.account_id;
    let durable = state.log.durable_lsn();
    let (entries, more) =
        state.history.journal_page(own, start_after, durable, limit, move |entry| filter.matches(entry)).await?;
    let items: Vec<serde_json::Value> = entries.iter().map(|entry| entry_view(own, entry)).collect();
    let last_lsn = entries.last().map(|entry| entry.lsn);
    let page = json!({"items": items, "next_cursor": if more { last_lsn.map(|lsn| lsn.to_string()) } else { None }});
    Ok(json_response(StatusCode::OK, &page))
}

/// The journal's filters (API.md, Journal): `from` inclusive, `to`
/// exclusive, `kind`, and `after_lsn`.
#[derive(Clone, Copy)]
struct JournalFilter {
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    kind: Option<JournalKind>,
    after_lsn: u64,
}

impl JournalFilter {
    fn parse(query: &Query) -> ApiResult<Self> {
        let kind = match query.get("kind") {
            None => None,
            Some(text) => Some(JournalKind::parse(text).ok_or_else(|| invalid_field("kind", "is not a journal kind"))?),
        };
        Ok(Self {
            from_ms: query.instant_ms("from")?,
            to_ms: query.instant_ms("to")?,
            kind,
            after_lsn: whole_number(query, "after_lsn")?.unwrap_or(0),
        })
    }

    fn matches(&self, entry: &JournalIndexEntry) -> bool {
        self.kind.is_none_or(|kind| entry.kind == kind)
            && self.from_ms.is_none_or(|from| entry.at_ms >= from)
            && self.to_ms.is_none_or(|to| entry.at_ms < to)
    }
}

fn whole_number(query: &Query, name: &str) -> ApiResult<Option<u64>> {
    match query.get(name) {
        None => Ok(None),
        Some(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            text.parse::<u64>().map(Some).map_err(|_| invalid_field(name, "is too large"))
        }
        Some(_) => Err(invalid_field(name, "must be a whole number")),
    }
}

/// `GET /v1/accounts/{id}/balance?at_lsn=N`: the balance as of lsn `N`
/// (every journal entry up to and including it), from the journal alone.
/// Without `at_lsn`, as of the latest durable lsn. An `at_lsn` beyond the
/// latest durable lsn has not happened yet: 400.
async fn balance_at(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    state.auth.check(&headers, &[Role::Platform, Role::Finance])?;
    let query = Query::parse(&uri, &["at_lsn"])?;
    let durable = state.log.durable_lsn();
    let at_lsn = match whole_number(&query, "at_lsn")? {
        None => durable,
        Some(lsn) if lsn <= durable => lsn,
        Some(_) => return Err(invalid_field("at_lsn", &format!("is beyond the ledger's latest lsn ({durable})"))),
    };
    let own = entry(&state, &id)?.info.account_id;
    let (balance, last_lsn) = match state.history.last_entry(own, at_lsn, durable).await? {
        Some(entry) => (entry.after, Some(entry.lsn)),
        None => (Default::default(), None),
    };
    let balance: crate::domain::account::Balance = balance;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "account_id": own,
            "at_lsn": at_lsn,
            "balance": {"total": balance.total(), "available": balance.available, "frozen": balance.frozen},
            "last_lsn": last_lsn,
        }),
    ))
}

/// Journal entries the CSV export reads per chunk: bounds the memory of a
/// long journal's export.
const CSV_ENTRIES_PER_CHUNK: usize = 4096;

const CSV_HEADER: &str = "lsn,at,kind,transfer_id,order_id,hold_id,counterparty,available_delta,frozen_delta,\
                          available_after,frozen_after,total_after\r\n";

/// `GET /v1/accounts/{id}/journal.csv`: the whole journal (with the
/// journal's filters `from`, `to`, `kind`, `after_lsn`; no pagination) as
/// RFC 4180 CSV with a header row, CRLF line ends, UTF-8. It is a
/// snapshot at the durable lsn of the request, streamed in chunks.
async fn journal_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    state.auth.check(&headers, &[Role::Platform, Role::Finance])?;
    let query = Query::parse(&uri, &["from", "to", "kind", "after_lsn"])?;
    let filter = JournalFilter::parse(&query)?;
    let own = entry(&state, &id)?.info.account_id;
    let durable = state.log.durable_lsn();
    let first = futures::stream::once(async { Ok::<_, std::io::Error>(bytes::Bytes::from(CSV_HEADER)) });
    let rows = futures::stream::unfold(Some(filter.after_lsn), move |after| {
        let state = state.clone();
        async move {
            let after = after?;
            let page = state
                .history
                .journal_page(own, after, durable, CSV_ENTRIES_PER_CHUNK, move |entry| filter.matches(entry))
                .await;
            // The status line is sent: a read failure can only cut the
            // body short (the client sees a truncated download).
            let (entries, more) = match page {
                Ok(page) => page,
                Err(error) => {
                    tracing::error!(%error, "journal export stopped: the history cannot be read");
                    return Some((Err(std::io::Error::other(error.to_string())), None));
                }
            };
            let mut out = String::new();
            for entry in &entries {
                csv_row(&mut out, own, entry);
            }
            let next = if more { entries.last().map(|entry| entry.lsn) } else { None };
            Some((Ok(bytes::Bytes::from(out)), next))
        }
    });
    use futures::StreamExt as _;
    let body = axum::body::Body::from_stream(first.chain(rows));
    let disposition = format!("attachment; filename=\"{own}-journal.csv\"");
    Ok((
        StatusCode::OK,
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

fn csv_row(out: &mut String, own: AccountId, entry: &JournalEntry) {
    use std::fmt::Write as _;
    let text = |value: Option<&str>| value.map(csv_text).unwrap_or_default();
    let counterparty = entry.counterparty(own).map(|account| account.to_string());
    let _ = write!(
        out,
        "{},{},{},{},{},{},{},{},{},{},{},{}\r\n",
        entry.lsn,
        crate::clock::format_ms(entry.at_ms),
        entry.kind.as_str(),
        text(Some(entry.transfer_id())),
        text(entry.order_id()),
        text(entry.hold_id()),
        counterparty.unwrap_or_default(),
        entry.available_delta,
        entry.frozen_delta,
        entry.after.available,
        entry.after.frozen,
        entry.after.total(),
    );
}

/// A text cell: quoted when it holds a separator or quote (RFC 4180), and
/// prefixed with `'` when a spreadsheet would read it as a formula (an id
/// may start with `-`). Amount cells are numbers and stay as they are.
fn csv_text(value: &str) -> String {
    let guarded =
        if value.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{value}") } else { value.to_owned() };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}
