//! Onboarding and funding accounts the way a platform and a bank would:
//! application (platform) -> approval (risk) -> wait for `active` -> a signed
//! credit notification from the sandbox bank.

use crate::client::{Answer, Bearer, Conn, Endpoint};
use crate::server::{Tokens, BANK, NOTIFY_SECRET};
use crate::util::{format_cents, rfc3339_now, thousands};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use hyper::header::{HeaderName, HeaderValue};
use hyper::Method;
use serde_json::json;
use sha2::Sha256;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many times a request refused with 429/503 (or a transport error on an
/// idempotent request) is tried before setup gives up.
const ATTEMPTS_MAX: u32 = 100;
/// How long an approved account may stay `signing`.
const SIGNING_TIMEOUT: Duration = Duration::from_secs(120);

/// One onboarded account.
#[derive(Clone, Debug)]
pub struct Account {
    pub id: Box<str>,
    pub name: Box<str>,
    pub sub_account_no: Box<str>,
    /// The settlement (payer) account number used for its deposits.
    pub payer_account_no: Box<str>,
}

/// The application body for customer number `n` of run `run`.
pub fn application_body(run: &str, n: u64) -> (String, Bytes) {
    let name = format!("LT Trader {run} {n}");
    let body = json!({
        "name": name,
        "credential_no": format!("91310000LT{run}{n:010}"),
        "bank": BANK,
        "settlement_account": {
            "bank_name": "Loadtest Bank",
            "account_no": settlement_account_no(n),
            "account_name": name,
        },
    });
    (name, Bytes::from(body.to_string()))
}

fn settlement_account_no(n: u64) -> String {
    format!("6222{n:012}")
}

/// A signed credit notification: body and `X-Signature` header.
pub fn credit_notification(
    notification_id: &str,
    to: &Account,
    amount_cents: i64,
) -> Result<(Bytes, (HeaderName, HeaderValue))> {
    let body = json!({
        "notification_id": notification_id,
        "kind": "credit",
        "bank_serial": format!("B{notification_id}"),
        "to_account_no": &*to.sub_account_no,
        "amount": format_cents(amount_cents),
        "payer_name": &*to.name,
        "payer_account_no": &*to.payer_account_no,
        "booked_at": rfc3339_now(),
    })
    .to_string();
    let signature = sign(NOTIFY_SECRET.as_bytes(), body.as_bytes())?;
    Ok((Bytes::from(body), (HeaderName::from_static("x-signature"), HeaderValue::from_str(&signature)?)))
}

/// Lowercase hex HMAC-SHA256 of the raw body.
pub fn sign(secret: &[u8], body: &[u8]) -> Result<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).context("HMAC key")?;
    mac.update(body);
    Ok(hex::encode(mac.finalize().into_bytes()))
}

pub fn notifications_path() -> String {
    format!("/v1/banks/{BANK}/notifications")
}

/// Sends a request, backing off on 429/503 (`Retry-After`, capped short) and
/// retrying transport errors when `idempotent`. Returns the first other answer.
pub async fn send_retrying(
    conn: &mut Conn,
    method: Method,
    path: &str,
    auth: Option<&Bearer>,
    header: Option<(HeaderName, HeaderValue)>,
    body: Option<Bytes>,
    idempotent: bool,
) -> Result<Answer> {
    let mut last_error = String::new();
    for attempt in 0..ATTEMPTS_MAX {
        match conn.send(method.clone(), path, auth, header.clone(), body.clone()).await {
            Ok(answer) if matches!(answer.status.as_u16(), 429 | 503) => {
                last_error = answer.error_key();
                let wait = answer.retry_after.unwrap_or(Duration::from_millis(20)).min(Duration::from_millis(500));
                tokio::time::sleep(wait).await;
            }
            Ok(answer) => return Ok(answer),
            Err(err) if idempotent => {
                last_error = format!("{err:#}");
                tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt.min(50)))).await;
            }
            Err(err) => return Err(err.context(format!("{method} {path}"))),
        }
    }
    bail!("{method} {path}: gave up after {ATTEMPTS_MAX} attempts, last: {last_error}")
}

fn expect(answer: &Answer, status: u16, what: &str) -> Result<serde_json::Value> {
    if answer.status.as_u16() != status {
        bail!("{what}: expected {status}, got {}: {}", answer.status, answer.body_text());
    }
    answer.json()
}

fn field(value: &serde_json::Value, name: &str, what: &str) -> Result<String> {
    value
        .get(name)
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .with_context(|| format!("{what}: answer has no string {name:?}: {value}"))
}

/// POST /v1/applications; returns (application id, customer name).
pub async fn apply(conn: &mut Conn, tokens: &Tokens, run: &str, n: u64) -> Result<(String, String)> {
    let (name, body) = application_body(run, n);
    let answer =
        send_retrying(conn, Method::POST, "/v1/applications", Some(&tokens.platform), None, Some(body), false).await?;
    let value = expect(&answer, 201, "POST /v1/applications")?;
    Ok((field(&value, "application_id", "application")?, name))
}

/// POST /v1/applications/{id}/approve; returns the new account id.
pub async fn approve(conn: &mut Conn, tokens: &Tokens, application_id: &str) -> Result<String> {
    let path = format!("/v1/applications/{application_id}/approve");
    let answer =
        send_retrying(conn, Method::POST, &path, Some(&tokens.risk), None, Some(Bytes::from_static(b"{}")), false)
            .await?;
    let value = expect(&answer, 200, &format!("POST {path}"))?;
    field(&value, "account_id", "approval")
}

/// Polls GET /v1/accounts/{id} until `active`; returns its sub-account number.
pub async fn wait_active(conn: &mut Conn, tokens: &Tokens, account_id: &str) -> Result<String> {
    let path = format!("/v1/accounts/{account_id}");
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        let answer = send_retrying(conn, Method::GET, &path, Some(&tokens.platform), None, None, true).await?;
        let value = expect(&answer, 200, &format!("GET {path}"))?;
        match value.get("status").and_then(|s| s.as_str()) {
            Some("active") => return field(&value, "sub_account_no", "account"),
            Some("signing") => {}
            other => {
                bail!("account {account_id} is {other:?}, expected signing then active: {value}")
            }
        }
        if started.elapsed() > SIGNING_TIMEOUT {
            bail!("account {account_id} still signing after {SIGNING_TIMEOUT:?}");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Sends a signed credit notification; returns the answer (200 expected).
pub async fn deposit(conn: &mut Conn, notification_id: &str, to: &Account, amount_cents: i64) -> Result<Answer> {
    let (body, signature) = credit_notification(notification_id, to, amount_cents)?;
    send_retrying(conn, Method::POST, &notifications_path(), None, Some(signature), Some(body), true).await
}

/// Checks that a deposit answer says `credited`; returns its `lsn`.
pub fn credited_lsn(answer: &Answer, account: &Account) -> Result<u64> {
    let value = expect(answer, 200, "bank notification")?;
    if value.get("result").and_then(|r| r.as_str()) != Some("credited") {
        bail!("deposit to {} was not credited: {value}", account.id);
    }
    value.get("lsn").and_then(|l| l.as_u64()).with_context(|| format!("deposit answer without lsn: {value}"))
}

/// Onboards one customer completely and funds it with `fund_cents` (none if 0).
pub async fn onboard_one(conn: &mut Conn, tokens: &Tokens, run: &str, n: u64, fund_cents: i64) -> Result<Account> {
    let (application_id, name) = apply(conn, tokens, run, n).await?;
    let account_id = approve(conn, tokens, &application_id).await?;
    let sub_account_no = wait_active(conn, tokens, &account_id).await?;
    let account = Account {
        id: account_id.into(),
        name: name.into(),
        sub_account_no: sub_account_no.into(),
        payer_account_no: settlement_account_no(n).into(),
    };
    if fund_cents > 0 {
        let answer = deposit(conn, &format!("N-LT-{run}-{n}"), &account, fund_cents).await?;
        credited_lsn(&answer, &account)?;
    }
    Ok(account)
}

/// Onboards `count` accounts over `connections` concurrent connections,
/// printing progress every second. Accounts come back in onboarding order.
pub async fn onboard_many(
    endpoint: &Endpoint,
    tokens: &Tokens,
    run: &str,
    count: u64,
    connections: usize,
    fund_cents: i64,
) -> Result<Vec<Account>> {
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last = 0;
            loop {
                tick.tick().await;
                let now = done.load(Ordering::Relaxed);
                eprintln!(
                    "setup {:>5.0}s  {}/{} accounts onboarded and funded  {}/s",
                    started.elapsed().as_secs_f64(),
                    thousands(now),
                    thousands(count),
                    thousands(now - last)
                );
                last = now;
            }
        })
    };
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1).min(count.max(1) as usize) {
        let (next, done, failed) = (next.clone(), done.clone(), failed.clone());
        let endpoint = endpoint.clone();
        let tokens = tokens.clone();
        let run = run.to_string();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(endpoint);
            let mut mine = Vec::new();
            loop {
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                match onboard_one(&mut conn, &tokens, &run, n + 1, fund_cents).await {
                    Ok(account) => mine.push((n, account)),
                    Err(err) => {
                        failed.store(true, Ordering::Relaxed);
                        return Err(err.context(format!("onboarding customer {}", n + 1)));
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(mine)
        }));
    }
    let mut all = Vec::with_capacity(count as usize);
    let mut first_error = None;
    for task in tasks {
        match task.await.context("onboarding task panicked")? {
            Ok(mine) => all.extend(mine),
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    progress.abort();
    if let Some(err) = first_error {
        return Err(err);
    }
    all.sort_by_key(|(n, _)| *n);
    eprintln!(
        "setup done: {} accounts in {:.1}s ({:.0}/s)",
        thousands(all.len() as u64),
        started.elapsed().as_secs_f64(),
        all.len() as f64 / started.elapsed().as_secs_f64().max(1e-9)
    );
    Ok(all.into_iter().map(|(_, account)| account).collect())
}
