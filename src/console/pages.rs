//! The console's pages and actions, one handler each, with their templates
//! (`templates/console/`).
//!
//! A page handler takes the session ([`SignedIn`]), asks the API for what
//! it shows and renders it, API refusals included (code and message). An
//! action handler takes a checked form ([`Posted`]: the session, the
//! origin and the CSRF token), sends the API request,
//! keeps its outcome as the next page's message and redirects (POST,
//! redirect, GET). Buttons appear only for the roles that can use them;
//! the API refuses the rest anyway. Must not hold state beyond a request.

// Handlers return early with a finished page; boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::client::{encode, Failure};
use super::csrf;
use super::session::{self, Flash, Session};
use super::statement;
use super::view::{Frame, J};
use super::ConsoleState;
use crate::config::Role;
use crate::finance::history::JournalKind;
use crate::limits;

/// Journal kinds, for the journal filter (API.md, Journal): the ledger's
/// own list, so a new kind shows up here too.
fn journal_kinds() -> [&'static str; JournalKind::ALL.len()] {
    JournalKind::ALL.map(JournalKind::as_str)
}

/// Entries on one journal page of the console.
const JOURNAL_PAGE_ITEMS: usize = 50;
/// Items on one page of the console's queues.
const QUEUE_PAGE_ITEMS: usize = 100;
/// Fields one console form may have.
const FORM_FIELDS_MAX: usize = 32;

type Params = Query<HashMap<String, String>>;

// ---------------------------------------------------------------------------
// plumbing

pub fn see_other(to: &str) -> Response {
    let location = HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/console/"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(error) => {
            tracing::error!(%error, "a console template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "console/refused.html")]
struct Refused {
    status: u16,
    why: String,
}

fn refused(status: StatusCode, why: &str) -> Response {
    render(status, &Refused { status: status.as_u16(), why: why.to_owned() })
}

fn signed_in(console: &ConsoleState, headers: &HeaderMap) -> Result<Session, Response> {
    console.sessions.get(headers).ok_or_else(|| see_other("/console/login"))
}

/// A page's session; without one, the browser goes to the sign-in page.
///
/// Handlers take it after their `Path` and `Query`, so those refuse a
/// request first, as when each handler checked the session itself.
pub struct SignedIn(pub Session);

impl FromRequestParts<ConsoleState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &ConsoleState) -> Result<Self, Response> {
        signed_in(console, &parts.headers).map(SignedIn)
    }
}

/// A urlencoded form's fields (the last of a repeated name wins).
pub struct Form(HashMap<String, String>);

impl Form {
    fn parse(bytes: &[u8]) -> Result<Self, Response> {
        let mut fields = HashMap::new();
        for (key, value) in form_urlencoded::parse(bytes) {
            if fields.len() >= FORM_FIELDS_MAX {
                return Err(refused(StatusCode::BAD_REQUEST, "the form has too many fields"));
            }
            fields.insert(key.into_owned(), value.into_owned());
        }
        Ok(Self(fields))
    }

    fn get(&self, name: &str) -> &str {
        self.0.get(name).map(|value| value.trim()).unwrap_or("")
    }

    fn optional(&self, name: &str) -> Option<&str> {
        Some(self.get(name)).filter(|value| !value.is_empty())
    }
}

/// A signed-in POST, checked: a session, a body of form size, the same
/// origin, and the session's CSRF token in the form (in that order, after
/// the body is read within the router's limits).
pub struct Posted {
    pub session: Session,
    pub form: Form,
}

impl FromRequest<ConsoleState> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, console: &ConsoleState) -> Result<Self, Response> {
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, console).await.map_err(IntoResponse::into_response)?;
        let session = signed_in(console, &headers)?;
        let form = same_origin_form(&headers, &body)?;
        if !csrf::tokens_match(form.get("csrf"), &session.csrf) {
            return Err(refused(StatusCode::FORBIDDEN, "the form's CSRF token is missing or wrong; reload the page"));
        }
        Ok(Self { session, form })
    }
}

/// A body's form, once it is of form size and from the same origin.
fn same_origin_form(headers: &HeaderMap, body: &Bytes) -> Result<Form, Response> {
    if body.len() > limits::CONSOLE_FORM_BYTES_MAX {
        return Err(refused(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large"));
    }
    if !csrf::same_origin(headers) {
        return Err(refused(StatusCode::FORBIDDEN, "a form from another site is refused"));
    }
    Form::parse(body)
}

/// Keeps an action's outcome for the next page and sends the browser there.
fn finish(console: &ConsoleState, session: &Session, outcome: Result<String, Failure>, back: &str) -> Response {
    let flash = match outcome {
        Ok(text) => Flash { ok: true, text },
        Err(failure) => Flash { ok: false, text: failure.to_string() },
    };
    console.sessions.set_flash(session, flash);
    see_other(back)
}

/// A query string of the non-empty pairs, `?a=1&b=2`, or empty.
fn query_string(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| format!("{key}={}", encode(value)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> &'a str {
    params.get(name).map(|value| value.trim()).unwrap_or("")
}

/// A fresh client id for an action the form will send once (a resubmitted
/// form reuses it, so the API's idempotency makes it happen once).
fn client_id(prefix: &str) -> String {
    format!("{prefix}-{}", &session::random_hex()[..16])
}

fn today() -> String {
    crate::clock::format_ms(chrono::Utc::now().timestamp_millis())[..10].to_owned()
}

/// A queue's page from the `cursor` parameter on
/// (`GET /v1/{resource}?status=…`): the refusal, or the items and the next
/// cursor.
async fn queue_page(
    console: &ConsoleState,
    session: &Session,
    resource: &str,
    status: &str,
    params: &HashMap<String, String>,
) -> (Option<Failure>, Vec<J>, String) {
    let query = query_string(&[
        ("status", status),
        ("limit", &QUEUE_PAGE_ITEMS.to_string()),
        ("cursor", param(params, "cursor")),
    ]);
    match console.api.get(&session.token, &format!("/v1/{resource}{query}")).await {
        Ok(page) => (None, J(page.clone()).list("items"), J(page).s("next_cursor")),
        Err(failure) => (Some(failure), Vec::new(), String::new()),
    }
}

// ---------------------------------------------------------------------------
// sign-in

#[derive(Template)]
#[template(path = "console/login.html")]
struct Login {
    csrf: String,
    error: Option<String>,
}

pub async fn login_form(State(console): State<ConsoleState>, headers: HeaderMap) -> Response {
    if console.sessions.get(&headers).is_some() {
        return see_other("/console/");
    }
    login_page(&headers, StatusCode::OK, None)
}

/// The sign-in page, with a fresh double-submit token in its form and in a
/// cookie (no session exists yet to hold one).
fn login_page(headers: &HeaderMap, status: StatusCode, error: Option<String>) -> Response {
    let token = session::random_hex();
    let cookie = session::set_cookie(session::LOGIN_COOKIE, &token, session::is_https(headers), false);
    let mut response = render(status, &Login { csrf: token, error });
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

pub async fn login(State(console): State<ConsoleState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = match same_origin_form(&headers, &body) {
        Ok(form) => form,
        Err(response) => return response,
    };
    let expected = session::cookie(&headers, session::LOGIN_COOKIE).unwrap_or("");
    if !csrf::tokens_match(form.get("csrf"), expected) {
        return login_page(&headers, StatusCode::FORBIDDEN, Some("The sign-in form expired; please try again.".into()));
    }
    let token = form.get("token");
    let mut bearer = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
        bearer.insert(header::AUTHORIZATION, value);
    }
    let caller = match console.ledger.auth.check(&bearer, &[Role::Finance, Role::Risk]) {
        Ok(caller) => caller,
        Err(error) => {
            let status = error.status();
            return login_page(
                &headers,
                status,
                Some(format!("{} {}: {}", status.as_u16(), error.code.as_str(), error.message)),
            );
        }
    };
    let id = console.sessions.create(token, &caller.operator, caller.roles.clone());
    tracing::info!(operator = %caller.operator, "console sign-in");
    let secure = session::is_https(&headers);
    let mut response = see_other("/console/");
    for cookie in [
        session::set_cookie(session::SESSION_COOKIE, &id, secure, false),
        session::set_cookie(session::LOGIN_COOKIE, "", secure, true),
    ] {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

pub async fn logout(
    State(console): State<ConsoleState>,
    headers: HeaderMap,
    Posted { session, .. }: Posted,
) -> Response {
    console.sessions.remove(&session);
    let mut response = see_other("/console/login");
    let cookie = session::set_cookie(session::SESSION_COOKIE, "", session::is_https(&headers), true);
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[derive(Template)]
#[template(path = "console/not_found.html")]
struct NotFound {
    frame: Frame,
}

pub async fn not_found(SignedIn(session): SignedIn) -> Response {
    render(StatusCode::NOT_FOUND, &NotFound { frame: Frame::new(&session, "") })
}

// ---------------------------------------------------------------------------
// dashboard

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct Dashboard {
    frame: Frame,
    trial_balance: Option<Result<J, Failure>>,
    /// Today's money in, money out and transfers (`GET /v1/ledger/day`).
    today: Option<Result<J, Failure>>,
    today_date: String,
    /// (label, count or refusal, link)
    queues: Vec<(&'static str, Result<String, Failure>, &'static str)>,
    metrics: Vec<(&'static str, String)>,
}

async fn queue_count(console: &ConsoleState, token: &str, path: &str) -> Result<String, Failure> {
    let page = console.api.get(token, path).await?;
    let count = page["items"].as_array().map(Vec::len).unwrap_or(0);
    Ok(if page["next_cursor"].is_null() { count.to_string() } else { format!("{count}+") })
}

pub async fn dashboard(State(console): State<ConsoleState>, SignedIn(session): SignedIn) -> Response {
    let token = &session.token;
    let mut queues = Vec::new();
    let mut trial_balance = None;
    let mut today_figures = None;
    let today_date = today();
    if session.has(Role::Risk) {
        let count = queue_count(&console, token, "/v1/applications?status=pending_review&limit=1000").await;
        queues.push(("开户申请 Applications waiting for review", count, "/console/applications"));
    }
    if session.has(Role::Finance) {
        trial_balance = Some(console.api.get(token, "/v1/ledger/trial-balance").await.map(J));
        today_figures = Some(console.api.get(token, &format!("/v1/ledger/day?date={today_date}")).await.map(J));
        let suspense = queue_count(&console, token, "/v1/suspense?status=open&limit=1000").await;
        queues.push(("待调帐 Open suspense entries", suspense, "/console/suspense"));
        let open = queue_count(&console, token, "/v1/discrepancies?status=open&limit=1000").await;
        queues.push(("对账差异 Discrepancies to resolve", open, "/console/discrepancies"));
        let proposed = queue_count(&console, token, "/v1/discrepancies?status=proposed&limit=1000").await;
        queues.push(("待复核 Resolutions to approve", proposed, "/console/discrepancies"));
        let failures = queue_count(&console, token, "/v1/bank-sync/failures?limit=1000").await;
        queues.push(("银行同步失败 Bank sync failures", failures, "/console/bank"));
        let in_flight = queue_count(&console, token, "/v1/withdrawals?status=processing&limit=1000").await;
        queues.push(("出金在途 Withdrawals in flight", in_flight, "/console/bank"));
    }
    let metrics = metrics(&console, token).await;
    let frame = Frame::new(&session, "dashboard");
    render(StatusCode::OK, &Dashboard { frame, trial_balance, today: today_figures, today_date, queues, metrics })
}

/// A few of `/metrics`' figures: the log and the requests.
async fn metrics(console: &ConsoleState, token: &str) -> Vec<(&'static str, String)> {
    let response = console.api.raw(token, Method::GET, "/metrics", None).await;
    let Ok(collected) = http_body_util::BodyExt::collect(http_body_util::Limited::new(
        response.into_body(),
        limits::CONSOLE_API_ANSWER_BYTES_MAX,
    ))
    .await
    else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&collected.to_bytes()).into_owned();
    let sum = |name: &str| metric_sum(&text, name, "");
    let whole = |value: Option<f64>| value.map(|value| format!("{value:.0}")).unwrap_or_else(|| "—".into());
    vec![
        ("WAL durable lsn", whole(sum("fundledger_wal_durable_lsn"))),
        ("WAL records", whole(sum("fundledger_wal_records_total"))),
        ("WAL fsyncs", whole(sum("fundledger_wal_fsyncs_total"))),
        ("WAL records per group (mean)", whole(sum("fundledger_wal_group_records_mean"))),
        (
            "WAL fsync mean (ms)",
            sum("fundledger_wal_fsync_seconds_mean")
                .map(|s| format!("{:.2}", s * 1000.0))
                .unwrap_or_else(|| "—".into()),
        ),
        ("HTTP requests", whole(sum("fundledger_http_requests_total"))),
        (
            "HTTP 5xx answers",
            whole(Some(metric_sum(&text, "fundledger_http_requests_total", "status=\"5").unwrap_or(0.0))),
        ),
    ]
}

/// The sum of a metric's samples whose labels contain `label_part`.
fn metric_sum(text: &str, name: &str, label_part: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else { continue };
        if !(rest.starts_with(' ') || rest.starts_with('{')) || !rest.contains(label_part) {
            continue;
        }
        if let Some(value) = rest.rsplit(' ').next().and_then(|value| value.parse::<f64>().ok()) {
            found = Some(found.unwrap_or(0.0) + value);
        }
    }
    found
}

// ---------------------------------------------------------------------------
// applications (risk)

#[derive(Template)]
#[template(path = "console/applications.html")]
struct Applications {
    frame: Frame,
    failure: Option<Failure>,
    items: Vec<J>,
    next_cursor: String,
}

pub async fn applications(
    State(console): State<ConsoleState>,
    Query(params): Params,
    SignedIn(session): SignedIn,
) -> Response {
    let (failure, items, next_cursor) = queue_page(&console, &session, "applications", "pending_review", &params).await;
    let page = Applications { frame: Frame::new(&session, "applications"), failure, items, next_cursor };
    render(StatusCode::OK, &page)
}

pub async fn approve_application(
    State(console): State<ConsoleState>,
    Path(id): Path<String>,
    posted: Posted,
) -> Response {
    decide(&console, &id, posted, true).await
}

pub async fn reject_application(
    State(console): State<ConsoleState>,
    Path(id): Path<String>,
    posted: Posted,
) -> Response {
    decide(&console, &id, posted, false).await
}

async fn decide(console: &ConsoleState, id: &str, Posted { session, form }: Posted, approve: bool) -> Response {
    let (verb, request) = if approve {
        ("approve", form.optional("note").map(|note| json!({"note": note})).unwrap_or_else(|| json!({})))
    } else {
        ("reject", json!({"reason": form.get("reason")}))
    };
    let path = format!("/v1/applications/{}/{verb}", encode(id));
    let outcome = console.api.post(&session.token, &path, &request).await.map(|decided| {
        let decided = J(decided);
        match decided.s("account_id").as_str() {
            "" => format!("{} {}", decided.s("application_id"), decided.s("status")),
            account => format!(
                "{} {}: account {account} opened (签约中 signing)",
                decided.s("application_id"),
                decided.s("status")
            ),
        }
    });
    finish(console, &session, outcome, "/console/applications")
}

// ---------------------------------------------------------------------------
// accounts

#[derive(Template)]
#[template(path = "console/accounts.html")]
struct Accounts {
    frame: Frame,
    q: String,
    failure: Option<Failure>,
    items: Vec<J>,
    note: String,
}

pub async fn accounts(
    State(console): State<ConsoleState>,
    Query(params): Params,
    SignedIn(session): SignedIn,
) -> Response {
    let q = param(&params, "q").to_owned();
    let (failure, items, note) = match search(&console, &session.token, &q).await {
        Ok((items, note)) => (None, items, note),
        Err(failure) => (Some(failure), Vec::new(), String::new()),
    };
    render(StatusCode::OK, &Accounts { frame: Frame::new(&session, "accounts"), q, failure, items, note })
}

/// Accounts whose id is `q`, whose sub-account number is `q`, or whose
/// name contains `q` (case-insensitively); the first 50 without `q`. By
/// name or number it reads `GET /v1/accounts` page by page, up to
/// [`limits::CONSOLE_SEARCH_ACCOUNTS_MAX`] accounts, and says when it
/// stopped there.
async fn search(console: &ConsoleState, token: &str, q: &str) -> Result<(Vec<J>, String), Failure> {
    if q.is_empty() {
        let page = console.api.get(token, "/v1/accounts?limit=50").await?;
        return Ok((J(page).list("items"), "the first 50 accounts; search to narrow".into()));
    }
    if crate::domain::ids::AccountId::parse(q).is_some() {
        return match console.api.get(token, &format!("/v1/accounts/{}", encode(q))).await {
            Ok(account) => Ok((vec![J(account)], String::new())),
            Err(failure) if failure.code == "ACCOUNT_NOT_FOUND" => Ok((Vec::new(), String::new())),
            Err(failure) => Err(failure),
        };
    }
    let needle = q.to_lowercase();
    let mut found = Vec::new();
    let mut cursor = String::new();
    let mut read = 0usize;
    loop {
        let page = console
            .api
            .get(token, &format!("/v1/accounts{}", query_string(&[("limit", "1000"), ("cursor", &cursor)])))
            .await?;
        let page = J(page);
        for account in page.list("items") {
            read += 1;
            if account.s("sub_account_no") == q || account.s("name").to_lowercase().contains(&needle) {
                found.push(account);
            }
        }
        cursor = page.s("next_cursor");
        if cursor.is_empty() {
            return Ok((found, String::new()));
        }
        if read >= limits::CONSOLE_SEARCH_ACCOUNTS_MAX {
            return Ok((
                found,
                format!("searched the first {read} accounts only; search by account id to reach the rest"),
            ));
        }
    }
}

#[derive(Template)]
#[template(path = "console/account.html")]
struct Account {
    frame: Frame,
    id: String,
    account: Result<J, Failure>,
    holds: Vec<J>,
    holds_note: String,
    journal: Result<J, Failure>,
    kinds: [&'static str; JournalKind::ALL.len()],
    from: String,
    to: String,
    kind: String,
    filters: String,
    next_link: String,
}

pub async fn account(
    State(console): State<ConsoleState>,
    Path(id): Path<String>,
    Query(params): Params,
    SignedIn(session): SignedIn,
) -> Response {
    let token = &session.token;
    let account = console.api.get(token, &format!("/v1/accounts/{}", encode(&id))).await.map(J);
    let (from, to, kind) = (param(&params, "from"), param(&params, "to"), param(&params, "kind"));
    let filters = query_string(&[("from", from), ("to", to), ("kind", kind)]);
    let page_items = JOURNAL_PAGE_ITEMS.to_string();
    let query = query_string(&[
        ("from", from),
        ("to", to),
        ("kind", kind),
        ("limit", &page_items),
        ("cursor", param(&params, "cursor")),
    ]);
    let journal = console.api.get(token, &format!("/v1/accounts/{}/journal{query}", encode(&id))).await.map(J);
    let next_link = match &journal {
        Ok(page) if page.has("next_cursor") => {
            query_string(&[("from", from), ("to", to), ("kind", kind), ("cursor", &page.s("next_cursor"))])
        }
        _ => String::new(),
    };
    let (holds, holds_note) = if account.is_ok() { open_holds(&console, token, &id).await } else { Default::default() };
    let page = Account {
        frame: Frame::new(&session, "accounts"),
        id,
        account,
        holds,
        holds_note,
        journal,
        kinds: journal_kinds(),
        from: from.to_owned(),
        to: to.to_owned(),
        kind: kind.to_owned(),
        filters,
        next_link,
    };
    render(StatusCode::OK, &page)
}

/// The account's open holds: the holds its freeze and pay-freeze entries
/// opened (the latest [`limits::CONSOLE_HOLDS_SHOWN_MAX`]), as
/// `GET /v1/holds/{id}` shows them now, the open ones.
async fn open_holds(console: &ConsoleState, token: &str, id: &str) -> (Vec<J>, String) {
    let mut hold_ids: Vec<String> = Vec::new();
    let mut note = String::new();
    for kind in ["freeze", "pay_freeze_in"] {
        let path = format!("/v1/accounts/{}/journal?kind={kind}&limit=1000", encode(id));
        match console.api.get(token, &path).await {
            Ok(page) => {
                let page = J(page);
                if page.has("next_cursor") {
                    note = "more than 1000 holds were opened on this account; the latest are shown".into();
                }
                hold_ids.extend(page.list("items").iter().map(|entry| entry.s("hold_id")).filter(|id| !id.is_empty()));
            }
            Err(failure) => return (Vec::new(), failure.to_string()),
        }
    }
    hold_ids.sort();
    hold_ids.dedup();
    let skip = hold_ids.len().saturating_sub(limits::CONSOLE_HOLDS_SHOWN_MAX);
    let mut holds = Vec::new();
    for hold_id in &hold_ids[skip..] {
        if let Ok(hold) = console.api.get(token, &format!("/v1/holds/{}", encode(hold_id))).await {
            let hold = J(hold);
            if hold.is("status", "open") {
                holds.push(hold);
            }
        }
    }
    (holds, note)
}

/// The journal as CSV, passed through from `GET /v1/accounts/{id}/journal.csv`
/// with the same filters.
pub async fn journal_csv(
    State(console): State<ConsoleState>,
    Path(id): Path<String>,
    Query(params): Params,
    SignedIn(session): SignedIn,
) -> Response {
    let filters = query_string(&[
        ("from", param(&params, "from")),
        ("to", param(&params, "to")),
        ("kind", param(&params, "kind")),
    ]);
    let path = format!("/v1/accounts/{}/journal.csv{filters}", encode(&id));
    let response = console.api.raw(&session.token, Method::GET, &path, None).await;
    if response.status().is_success() {
        return response;
    }
    let failure = console.api.get(&session.token, &path).await.err();
    let failure = failure.unwrap_or_else(|| Failure::console(500, "CSV", "the journal could not be exported"));
    finish(&console, &session, Err(failure), &format!("/console/accounts/{}", encode(&id)))
}

// ---------------------------------------------------------------------------
// one transfer, withdrawal, deposit or adjustment, and its receipt

#[derive(Template)]
#[template(path = "console/record.html")]
struct Record {
    frame: Frame,
    kind: String,
    id: String,
    record: Option<Result<J, Failure>>,
    receipt_link: String,
}

/// The API path of a record kind's resource and its receipt.
fn record_paths(kind: &str, id: &str) -> Option<(String, String)> {
    let id = encode(id);
    let (record, receipt) = match kind {
        "transfer" => (format!("/v1/transfers/{id}"), format!("transfers/{id}")),
        "withdrawal" => (format!("/v1/withdrawals/{id}"), format!("withdrawals/{id}")),
        "deposit" => (format!("/v1/deposits/{id}/receipt"), format!("deposits/{id}")),
        "adjustment" => (format!("/v1/adjustments/{id}/receipt"), format!("adjustments/{id}")),
        _ => return None,
    };
    Some((record, format!("/console/receipts/{receipt}")))
}

pub async fn record(
    State(console): State<ConsoleState>,
    Query(params): Params,
    SignedIn(session): SignedIn,
) -> Response {
    let kind = param(&params, "kind").to_owned();
    let id = param(&params, "id").to_owned();
    let (record, receipt_link) = match record_paths(&kind, &id).filter(|_| !id.is_empty()) {
        None => (None, String::new()),
        Some((path, receipt)) => {
            let mut record = console.api.get(&session.token, &path).await.map(J);
            if kind == "deposit" && record.as_ref().is_err_and(|failure| failure.code == "RECEIPT_NOT_FOUND") {
                // No money moved to a customer: the notification went to suspense.
                if let Some(entry) = suspense_of_notification(&console, &session.token, &id).await {
                    record = Ok(entry);
                }
            }
            // A receipt exists once money moved: not for a processing or failed withdrawal.
            let has_receipt = match &record {
                Ok(shown) => match kind.as_str() {
                    "withdrawal" => shown.is("status", "succeeded"),
                    "deposit" => !shown.has("suspense_id"),
                    _ => true,
                },
                Err(_) => false,
            };
            (Some(record), if has_receipt { receipt } else { String::new() })
        }
    };
    render(StatusCode::OK, &Record { frame: Frame::new(&session, "records"), kind, id, record, receipt_link })
}

/// The suspense entry a notification went to, read through
/// `GET /v1/suspense` (every status, 1000 a page, at most
/// [`limits::CONSOLE_SEARCH_ACCOUNTS_MAX`] entries).
async fn suspense_of_notification(console: &ConsoleState, token: &str, notification_id: &str) -> Option<J> {
    let mut cursor = String::new();
    let mut read = 0usize;
    while read < limits::CONSOLE_SEARCH_ACCOUNTS_MAX {
        let path = format!("/v1/suspense{}", query_string(&[("limit", "1000"), ("cursor", &cursor)]));
        let page = J(console.api.get(token, &path).await.ok()?);
        let items = page.list("items");
        read += items.len();
        if let Some(entry) = items.into_iter().find(|entry| entry.s("notification_id") == notification_id) {
            return Some(entry);
        }
        cursor = page.s("next_cursor");
        if cursor.is_empty() {
            return None;
        }
    }
    None
}

#[derive(Template)]
#[template(path = "console/receipt.html")]
struct Receipt {
    frame: Frame,
    receipt: Result<J, Failure>,
}

pub async fn receipt(
    State(console): State<ConsoleState>,
    Path((kind, id)): Path<(String, String)>,
    SignedIn(session): SignedIn,
) -> Response {
    if !matches!(kind.as_str(), "transfers" | "withdrawals" | "deposits" | "adjustments") {
        return render(StatusCode::NOT_FOUND, &NotFound { frame: Frame::new(&session, "") });
    }
    let receipt = console.api.get(&session.token, &format!("/v1/{kind}/{}/receipt", encode(&id))).await.map(J);
    render(StatusCode::OK, &Receipt { frame: Frame::new(&session, "records"), receipt })
}

// ---------------------------------------------------------------------------
// suspense and adjustment deposits (调帐入款)

#[derive(Template)]
#[template(path = "console/suspense.html")]
struct Suspense {
    frame: Frame,
    failure: Option<Failure>,
    items: Vec<J>,
    next_cursor: String,
    /// One fresh adjustment id per entry, in the same order.
    adjustment_ids: Vec<String>,
}

pub async fn suspense(
    State(console): State<ConsoleState>,
    Query(params): Params,
    SignedIn(session): SignedIn,
) -> Response {
    let (failure, items, next_cursor) = queue_page(&console, &session, "suspense", "open", &params).await;
    let adjustment_ids = items.iter().map(|_| client_id("ADJ")).collect();
    let page = Suspense { frame: Frame::new(&session, "suspense"), failure, items, next_cursor, adjustment_ids };
    render(StatusCode::OK, &page)
}

pub async fn assign_suspense(
    State(console): State<ConsoleState>,
    Path(suspense_id): Path<String>,
    Posted { session, form }: Posted,
) -> Response {
    let mut request = json!({
        "id": form.get("id"),
        "suspense_id": suspense_id,
        "account_id": form.get("account_id"),
        "amount": form.get("amount"),
    });
    if let Some(memo) = form.optional("memo") {
        request["memo"] = json!(memo);
    }
    let outcome = console.api.post(&session.token, "/v1/adjustments", &request).await.map(|done| {
        let done = J(done);
        format!(
            "调帐入款 {}: {} from {} to {} by {}; {} left in suspense",
            done.s("id"),
            done.s("amount"),
            done.s("suspense_id"),
            done.s("account_id"),
            done.s("operator"),
            done.s("remaining")
        )
    });
    finish(&console, &session, outcome, "/console/suspense")
}

// ---------------------------------------------------------------------------
// reconciliation (对账) and discrepancies

#[derive(Template)]
#[template(path = "console/reconciliations.html")]
struct Reconciliations {
    frame: Frame,
    banks: Vec<String>,
    today: String,
    columns: String,
}

pub async fn reconciliations(
    State(console): State<ConsoleState>,
    Query(params): Params,
    SignedIn(session): SignedIn,
) -> Response {
    let id = param(&params, "id");
    if !id.is_empty() {
        return see_other(&format!("/console/reconciliations/{}", encode(id)));
    }
    let page = Reconciliations {
        frame: Frame::new(&session, "reconciliations"),
        banks: console.banks.clone(),
        today: today(),
        columns: statement::COLUMNS.join(","),
    };
    render(StatusCode::OK, &page)
}

async fn reconcile(console: &ConsoleState, session: &Session, request: Value) -> Response {
    match console.api.post(&session.token, "/v1/reconciliations", &request).await {
        Ok(done) => {
            let id = J(done).s("reconciliation_id");
            finish(
                console,
                session,
                Ok(format!("对账 {id} done")),
                &format!("/console/reconciliations/{}", encode(&id)),
            )
        }
        Err(failure) => finish(console, session, Err(failure), "/console/reconciliations"),
    }
}

pub async fn run_reconciliation(State(console): State<ConsoleState>, Posted { session, form }: Posted) -> Response {
    let request = json!({"bank": form.get("bank"), "date": form.get("date")});
    reconcile(&console, &session, request).await
}

/// The statement upload (multipart: `csrf`, `bank`, `date`, `statement`
/// file), checked like every form, then sent as `statement` JSON lines.
pub async fn upload_statement(
    State(console): State<ConsoleState>,
    SignedIn(session): SignedIn,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    if !csrf::same_origin(&headers) {
        return refused(StatusCode::FORBIDDEN, "a form from another site is refused");
    }
    let Ok(mut multipart) = multipart else {
        return refused(StatusCode::BAD_REQUEST, "send the statement as a multipart form");
    };
    let mut fields: HashMap<String, Bytes> = HashMap::new();
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or("").to_owned();
                if fields.len() >= FORM_FIELDS_MAX {
                    return refused(StatusCode::BAD_REQUEST, "the form has too many fields");
                }
                match field.bytes().await {
                    Ok(bytes) => fields.insert(name, bytes),
                    Err(_) => return refused(StatusCode::BAD_REQUEST, "the upload could not be read"),
                };
            }
            Ok(None) => break,
            Err(_) => return refused(StatusCode::BAD_REQUEST, "the upload could not be read"),
        }
    }
    let text =
        |name: &str| fields.get(name).map(|bytes| String::from_utf8_lossy(bytes).trim().to_owned()).unwrap_or_default();
    if !csrf::tokens_match(&text("csrf"), &session.csrf) {
        return refused(StatusCode::FORBIDDEN, "the form's CSRF token is missing or wrong; reload the page");
    }
    let lines = match statement::parse(fields.get("statement").map(|bytes| &bytes[..]).unwrap_or(b"")) {
        Ok(lines) => lines,
        Err(why) => {
            let failure = Failure::console(400, "INVALID_STATEMENT", format!("the statement file: {why}"));
            return finish(&console, &session, Err(failure), "/console/reconciliations");
        }
    };
    let request = json!({"bank": text("bank"), "date": text("date"), "statement": lines});
    reconcile(&console, &session, request).await
}

#[derive(Template)]
#[template(path = "console/reconciliation.html")]
struct Reconciliation {
    frame: Frame,
    id: String,
    reconciliation: Result<J, Failure>,
}

pub async fn reconciliation(
    State(console): State<ConsoleState>,
    Path(id): Path<String>,
    SignedIn(session): SignedIn,
) -> Response {
    let reconciliation = console.api.get(&session.token, &format!("/v1/reconciliations/{}", encode(&id))).await.map(J);
    render(StatusCode::OK, &Reconciliation { frame: Frame::new(&session, "reconciliations"), id, reconciliation })
}

#[derive(Template)]
#[template(path = "console/discrepancies.html")]
struct Discrepancies {
    frame: Frame,
    /// Waiting for a proposal (maker).
    open: Result<J, Failure>,
    /// Proposed, waiting for another operator's approval (checker).
    proposed: Result<J, Failure>,
}

pub async fn discrepancies(State(console): State<ConsoleState>, SignedIn(session): SignedIn) -> Response {
    let limit = QUEUE_PAGE_ITEMS;
    let token = &session.token;
    let open = console.api.get(token, &format!("/v1/discrepancies?status=open&limit={limit}")).await.map(J);
    let proposed = console.api.get(token, &format!("/v1/discrepancies?status=proposed&limit={limit}")).await.map(J);
    render(StatusCode::OK, &Discrepancies { frame: Frame::new(&session, "discrepancies"), open, proposed })
}

pub async fn propose_resolution(
    State(console): State<ConsoleState>,
    Path(id): Path<String>,
    Posted { session, form }: Posted,
) -> Response {
    let path = format!("/v1/discrepancies/{}/resolve", encode(&id));
    let outcome = console
        .api
        .post(&session.token, &path, &json!({"note": form.get("note")}))
        .await
        .map(|_| format!("{id}: resolution proposed by {}; another operator must approve it", session.operator));
    finish(&console, &session, outcome, "/console/discrepancies")
}

pub async fn approve_resolution(
    State(console): State<ConsoleState>,
    Path(id): Path<String>,
    Posted { session, form }: Posted,
) -> Response {
    let path = format!("/v1/discrepancies/{}/approve", encode(&id));
    let request = form.optional("note").map(|note| json!({"note": note})).unwrap_or_else(|| json!({}));
    let outcome = console
        .api
        .post(&session.token, &path, &request)
        .await
        .map(|_| format!("{id}: resolution approved by {}", session.operator));
    finish(&console, &session, outcome, "/console/discrepancies")
}

// ---------------------------------------------------------------------------
// the bank side: sync failures and withdrawals in flight

#[derive(Template)]
#[template(path = "console/bank.html")]
struct Bank {
    frame: Frame,
    failures: Result<J, Failure>,
    in_flight: Result<J, Failure>,
}

pub async fn bank(State(console): State<ConsoleState>, SignedIn(session): SignedIn) -> Response {
    let limit = QUEUE_PAGE_ITEMS;
    let failures = console.api.get(&session.token, &format!("/v1/bank-sync/failures?limit={limit}")).await.map(J);
    let in_flight =
        console.api.get(&session.token, &format!("/v1/withdrawals?status=processing&limit={limit}")).await.map(J);
    render(StatusCode::OK, &Bank { frame: Frame::new(&session, "bank"), failures, in_flight })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sums_pick_the_named_samples() {
        let text = "# TYPE x counter\nfundledger_http_requests_total{route=\"a\",status=\"200\"} 3\n\
                    fundledger_http_requests_total{route=\"b\",status=\"503\"} 2\nfundledger_wal_fsyncs_total 7\n\
                    fundledger_wal_fsyncs_total_other 100\n";
        assert_eq!(metric_sum(text, "fundledger_http_requests_total", ""), Some(5.0));
        assert_eq!(metric_sum(text, "fundledger_http_requests_total", "status=\"5"), Some(2.0));
        assert_eq!(metric_sum(text, "fundledger_wal_fsyncs_total", ""), Some(7.0));
        assert_eq!(metric_sum(text, "missing", ""), None);
    }

    #[test]
    fn query_strings_skip_empty_values_and_encode() {
        assert_eq!(query_string(&[("a", ""), ("b", "")]), "");
        assert_eq!(query_string(&[("q", "a&b"), ("x", "")]), "?q=a%26b");
    }
}
