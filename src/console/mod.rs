//! The finance console (issue #8): server-rendered HTML at `/console/` for
//! finance and risk staff, working without JavaScript.
//!
//! - [`session`]: sign-in with a bearer token, kept server-side behind an
//!   HttpOnly, SameSite=Strict cookie (`Secure` over https);
//! - [`csrf`]: the per-session token of every form, and the Origin check;
//! - [`client`]: every page and action is the equivalent `/v1/...` request,
//!   sent in-process with the session's token, so the API's own role checks
//!   refuse what a role may not do;
//! - [`pages`]: the handlers and their askama templates
//!   (`templates/console/`), one per page;
//! - [`statement`]: an uploaded statement CSV as the API's JSON lines;
//! - [`view`]: what templates read.
//!
//! Owns the `/console` routes only (never `/v1`: the OpenAPI test wants
//! every `/v1` route described). Must not touch actors, the log or read
//! models: it knows the ledger only through the API, and through
//! [`crate::http::extract::Auth`] to check a token at sign-in.

pub mod client;
pub mod csrf;
pub mod pages;
pub mod session;
pub mod statement;
pub mod view;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use self::client::ApiClient;
use self::session::Sessions;
use crate::http::extract::{buffer_body, BodyLimits};
use crate::http::AppState;
use crate::limits;

/// What the console's handlers share.
pub struct Console {
    pub api: ApiClient,
    pub sessions: Sessions,
    pub ledger: AppState,
    /// The configured banks' codes, offered by the reconciliation forms.
    pub banks: Vec<String>,
}

pub type ConsoleState = Arc<Console>;

/// The console's routes; `api` is the API router it calls in-process.
pub fn router(api: Router, ledger: AppState) -> Router {
    let banks = ledger.banks.configs().map(|bank| bank.code.to_string()).collect();
    let state = Arc::new(Console { api: ApiClient::new(api), sessions: Sessions::default(), ledger, banks });
    Router::new()
        .route("/console", get(|| async { pages::see_other("/console/") }))
        .route("/console/", get(pages::dashboard))
        .route("/console/style.css", get(style))
        .route("/console/console.js", get(script))
        .route("/console/login", get(pages::login_form).post(pages::login))
        .route("/console/logout", post(pages::logout))
        .route("/console/applications", get(pages::applications))
        .route("/console/applications/{id}/approve", post(pages::approve_application))
        .route("/console/applications/{id}/reject", post(pages::reject_application))
        .route("/console/accounts", get(pages::accounts))
        .route("/console/accounts/{id}", get(pages::account))
        .route("/console/accounts/{id}/journal.csv", get(pages::journal_csv))
        .route("/console/records", get(pages::record))
        .route("/console/receipts/{kind}/{id}", get(pages::receipt))
        .route("/console/suspense", get(pages::suspense))
        .route("/console/suspense/{id}/assign", post(pages::assign_suspense))
        .route("/console/reconciliations", get(pages::reconciliations).post(pages::run_reconciliation))
        .route("/console/reconciliations/upload", post(pages::upload_statement))
        .route("/console/reconciliations/{id}", get(pages::reconciliation))
        .route("/console/discrepancies", get(pages::discrepancies))
        .route("/console/discrepancies/{id}/resolve", post(pages::propose_resolution))
        .route("/console/discrepancies/{id}/approve", post(pages::approve_resolution))
        .route("/console/bank", get(pages::bank))
        .route("/console/{*rest}", get(pages::not_found))
        .layer(DefaultBodyLimit::max(limits::CONSOLE_UPLOAD_BYTES_MAX))
        .layer(middleware::from_fn_with_state(
            BodyLimits::new(limits::CONSOLE_UPLOAD_BYTES_MAX, limits::CONSOLE_BODY_BYTES_IN_FLIGHT_MAX),
            buffer_body,
        ))
        .layer(middleware::map_response(security_headers))
        .with_state(state)
}

/// No page may be framed, cached, or run a script or style from elsewhere.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self' 'unsafe-inline'; script-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

const STYLE: &str = include_str!("../../templates/console/style.css");
const SCRIPT: &str = include_str!("../../templates/console/console.js");

async fn style() -> Response {
    static_asset("text/css; charset=utf-8", STYLE)
}

async fn script() -> Response {
    static_asset("text/javascript; charset=utf-8", SCRIPT)
}

fn static_asset(content_type: &'static str, text: &'static str) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=3600")], text)
        .into_response()
}
