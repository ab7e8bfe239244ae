//! `POST /v1/applications`, `.../approve`, `.../reject`, `GET /v1/applications/{id}`
//! (scenario 1, opening), and `GET /v1/applications?status=` (the review
//! queue, which API.md does not list; the console's risk page reads it).
//! Parses and renders; the registry actor decides.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::error::{invalid_field, missing, ApiError, ApiResult, ErrorCode};
use super::extract::{json_body, JsonObject, Query};
use super::transfers::json_response;
use super::AppState;
use crate::actors::registry::{CreateApplication, Decide, GetApplication, ListApplications};
use crate::config::Role;
use crate::domain::ids::ApplicationId;
use crate::domain::record::SettlementAccount;
use crate::domain::registry::{ApplicationState, ApplicationStatus};
use crate::limits::TEXT_CHARS_MAX;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/applications", post(create).get(list))
        .route("/v1/applications/{id}", get(show))
        .route("/v1/applications/{id}/approve", post(approve))
        .route("/v1/applications/{id}/reject", post(reject))
}

pub fn application_view(state: &ApplicationState) -> serde_json::Value {
    let application = &state.application;
    let settlement = &application.settlement_account;
    let decision = state.decision.as_ref();
    let text = decision.and_then(|decision| decision.text.as_deref());
    json!({
        "application_id": application.application_id,
        "status": state.status().as_str(),
        "name": &*application.name,
        "credential_no": application.credential_no,
        "bank": application.bank,
        "settlement_account": {
            "bank_name": settlement.bank_name,
            "account_no": settlement.account_no,
            "account_name": &*settlement.account_name,
        },
        "account_id": decision.and_then(|decision| decision.account_id),
        "note": if state.status() == ApplicationStatus::Approved { text } else { None },
        "reason": if state.status() == ApplicationStatus::Rejected { text } else { None },
        "created_at": crate::clock::format_ms(application.created_at_ms),
        "decided_at": decision.map(|decision| crate::clock::format_ms(decision.decided_at_ms)),
    })
}

async fn create(State(state): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let caller = state.auth.check(&headers, &[Role::Platform])?;
    let bytes = json_body(&headers, body, state.max_body_bytes).await?;
    let object = JsonObject::parse_body(&bytes)?;
    object.only(&["name", "credential_no", "bank", "settlement_account"])?;
    let name = object.required_text("name", TEXT_CHARS_MAX)?;
    let credential_no = object.required_text("credential_no", TEXT_CHARS_MAX)?;
    let bank = object.required_text("bank", TEXT_CHARS_MAX)?;
    let settlement = object.object("settlement_account")?.ok_or_else(|| missing("settlement_account"))?;
    settlement.only(&["bank_name", "account_no", "account_name"])?;
    let settlement_account = SettlementAccount {
        bank_name: settlement.required_text("bank_name", TEXT_CHARS_MAX)?,
        account_no: settlement.required_text("account_no", TEXT_CHARS_MAX)?,
        account_name: settlement.required_text("account_name", TEXT_CHARS_MAX)?.into(),
    };
    let request = CreateApplication {
        name: name.into(),
        credential_no,
        bank,
        settlement_account,
        operator: Arc::clone(&caller.operator),
    };
    let (lsn, created) = state.registry.send(request).await??;
    state.log.wait_durable(lsn).await?;
    Ok(json_response(StatusCode::CREATED, &application_view(&created)))
}

fn not_found(text: &str) -> ApiError {
    ApiError::new(ErrorCode::ApplicationNotFound, format!("no application {text}"))
}

fn application_id(text: &str) -> ApiResult<ApplicationId> {
    ApplicationId::parse(text).ok_or_else(|| not_found(text))
}

async fn show(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    state.auth.check(&headers, &[Role::Platform, Role::Risk])?;
    let application_id = application_id(&id)?;
    let shown = state.registry.send(GetApplication(application_id)).await?.ok_or_else(|| not_found(&id))?;
    state.log.wait_durable(state.log.wal().last_lsn()).await?;
    Ok(json_response(StatusCode::OK, &application_view(&shown)))
}

/// `GET /v1/applications?status=&limit=&cursor=` (platform, risk): applications
/// in id order, `status` optional (`pending_review`, `approved`,
/// `rejected`); the cursor is the last application's number.
async fn list(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> ApiResult<Response> {
    state.auth.check(&headers, &[Role::Platform, Role::Risk])?;
    let query = Query::parse(&uri, &["status", "limit", "cursor"])?;
    let status = match query.get("status") {
        None => None,
        Some(text) => Some(
            ApplicationStatus::parse(text)
                .ok_or_else(|| invalid_field("status", "must be pending_review, approved or rejected"))?,
        ),
    };
    let limit = query.limit()?;
    let after = query.cursor()?.unwrap_or(0);
    let page = state.registry.send(ListApplications { status, after, limit }).await?;
    state.log.wait_durable(state.log.wal().last_lsn()).await?;
    let next_cursor =
        page.more.then(|| page.items.last().map(|last| last.application.application_id.0.to_string())).flatten();
    let items: Vec<serde_json::Value> = page.items.iter().map(application_view).collect();
    Ok(json_response(StatusCode::OK, &json!({"items": items, "next_cursor": next_cursor})))
}

/// The decision body: optional for approve (`{}` or `{"note"}`, an empty
/// body counts as `{}`), `{"reason"}` required for reject.
async fn decide(state: AppState, headers: HeaderMap, body: Body, id: String, approve: bool) -> ApiResult<Response> {
    let caller = state.auth.check(&headers, &[Role::Risk])?;
    let bytes = super::extract::read_body(&headers, body, state.max_body_bytes).await?;
    let field = if approve { "note" } else { "reason" };
    let text = if bytes.is_empty() && approve {
        None
    } else {
        if !super::extract::is_json(&headers) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as `Content-Type: application/json`",
            ));
        }
        let object = JsonObject::parse_body(&bytes)?;
        object.only(&[field])?;
        let text = object.text(field, TEXT_CHARS_MAX)?;
        if !approve && text.as_deref().is_none_or(|t| t.trim().is_empty()) {
            return Err(missing("reason"));
        }
        text
    };
    let application_id = application_id(&id)?;
    let request = Decide { application_id, approve, text, operator: Arc::clone(&caller.operator) };
    let (lsn, decided) = state.registry.send(request).await??;
    state.log.wait_durable(lsn).await?;
    Ok(json_response(StatusCode::OK, &application_view(&decided)))
}

async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    decide(state, headers, body, id, true).await
}

async fn reject(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    decide(state, headers, body, id, false).await
}
