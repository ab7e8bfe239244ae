//! A bare hyper 1 server that parses transfer bodies like fundledger does
//! (serde_json, unknown fields refused) and answers same-shaped bodies, with
//! no ledger and no disk: the ceiling that HTTP + JSON alone put on this
//! machine. It also answers just enough of onboarding (applications,
//! approvals, accounts, bank notifications, /readyz, /metrics) for the
//! harness to be exercised end to end without the real server.

use crate::server::NOTIFY_SECRET;
use crate::setup::sign;
use crate::util::{format_cents, parse_cents, rfc3339_now};
use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;

const BODY_BYTES_MAX: usize = 16 * 1024 * 1024;
const BATCH_ITEMS_MAX: usize = crate::workload::BATCH_SIZE_MAX;

#[derive(Default)]
struct State {
    lsn: AtomicU64,
    applications: AtomicU64,
    requests: AtomicU64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferIn<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    payer: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    payee: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    hold_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    amount: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    order_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    memo: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct HoldOut<'a> {
    hold_id: &'a str,
    account_id: &'a str,
    amount: &'a str,
    remaining: &'a str,
    status: &'static str,
}

#[derive(Serialize)]
struct TransferOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    status: &'static str,
    lsn: u64,
    committed_at: &'a str,
    payer: &'a str,
    payee: Option<&'a str>,
    amount: &'a str,
    order_id: Option<&'a str>,
    memo: Option<&'a str>,
    hold: Option<HoldOut<'a>>,
    receipt_no: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchIn<'a> {
    #[serde(borrow)]
    transfers: Vec<&'a RawValue>,
}

#[derive(Serialize)]
struct BatchItemOut<T: Serialize> {
    status: u16,
    body: T,
}

/// Judges one transfer the way a ledger would judge its syntax; answers a
/// fundledger-shaped 201 body, or an error (status, code, message).
fn judge(state: &State, raw: &[u8], committed_at: &str) -> std::result::Result<Vec<u8>, (u16, &'static str, String)> {
    let t: TransferIn = serde_json::from_slice(raw).map_err(|e| (400, "INVALID_FIELD", e.to_string()))?;
    let needs_payer = matches!(&*t.kind, "transfer" | "freeze" | "pay_freeze");
    let needs_hold = matches!(&*t.kind, "unfreeze" | "unfreeze_pay");
    let needs_payee = matches!(&*t.kind, "transfer" | "pay_freeze" | "unfreeze_pay");
    if !needs_payer && !needs_hold {
        return Err((400, "INVALID_TYPE", format!("unknown type {:?}", t.kind)));
    }
    if t.id.is_empty()
        || (needs_payer && t.payer.is_none())
        || (needs_hold && t.hold_id.is_none())
        || (needs_payee && t.payee.is_none())
    {
        return Err((400, "MISSING_FIELD", "a required field is missing".to_string()));
    }
    let amount = match &t.amount {
        Some(text) => format_cents(parse_cents(text).map_err(|e| (400, "INVALID_AMOUNT", e.to_string()))?),
        None if needs_hold => "0.01".to_string(),
        None => return Err((400, "MISSING_FIELD", "amount is missing".to_string())),
    };
    let lsn = state.lsn.fetch_add(1, Ordering::Relaxed) + 1;
    let payer = t.payer.as_deref().unwrap_or("F000000");
    let hold = match &*t.kind {
        "freeze" | "pay_freeze" => Some(HoldOut {
            hold_id: &t.id,
            account_id: if t.kind == "freeze" { payer } else { t.payee.as_deref().unwrap_or(payer) },
            amount: &amount,
            remaining: &amount,
            status: "open",
        }),
        "unfreeze" | "unfreeze_pay" => Some(HoldOut {
            hold_id: t.hold_id.as_deref().unwrap_or(""),
            account_id: payer,
            amount: &amount,
            remaining: "0.00",
            status: "closed",
        }),
        _ => None,
    };
    let out = TransferOut {
        id: &t.id,
        kind: &t.kind,
        status: "committed",
        lsn,
        committed_at,
        payer,
        payee: t.payee.as_deref(),
        amount: &amount,
        order_id: t.order_id.as_deref(),
        memo: t.memo.as_deref(),
        hold,
        receipt_no: format!("R{lsn:012}"),
    };
    serde_json::to_vec(&out).map_err(|e| (500, "INTERNAL", e.to_string()))
}

fn json_response(status: u16, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error_body(code: &str, message: &str) -> Vec<u8> {
    serde_json::json!({"error": {"code": code, "message": message}}).to_string().into_bytes()
}

fn error_response(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(status, error_body(code, message))
}

async fn handle(state: Arc<State>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let signature = request.headers().get("x-signature").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = match Limited::new(request.into_body(), BODY_BYTES_MAX).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(error_response(413, "BODY_TOO_LARGE", "body too large")),
    };
    Ok(route(&state, &method, &path, signature.as_deref(), &body))
}

fn route(state: &State, method: &Method, path: &str, signature: Option<&str>, body: &[u8]) -> Response<Full<Bytes>> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::POST, ["v1", "transfers"]) => match judge(state, body, &rfc3339_now()) {
            Ok(out) => json_response(201, out),
            Err((status, code, message)) => error_response(status, code, &message),
        },
        (&Method::POST, ["v1", "transfers", "batch"]) => batch(state, body),
        (&Method::GET, ["readyz"]) => json_response(
            200,
            format!(r#"{{"status":"ready","lsn":{}}}"#, state.lsn.load(Ordering::Relaxed)).into_bytes(),
        ),
        (&Method::GET, ["healthz"]) => json_response(200, br#"{"status":"ok"}"#.to_vec()),
        (&Method::GET, ["metrics"]) => {
            let text = format!(
                "# echo server: no WAL, so no fundledger_wal_* counters\necho_requests_total {}\n",
                state.requests.load(Ordering::Relaxed)
            );
            let mut response = Response::new(Full::new(Bytes::from(text)));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
            response
        }
        (&Method::POST, ["v1", "applications"]) => {
            let n = state.applications.fetch_add(1, Ordering::Relaxed) + 1;
            json_response(201, format!(r#"{{"application_id":"A{n:06}","status":"pending_review"}}"#).into_bytes())
        }
        (&Method::POST, ["v1", "applications", id, "approve"]) => match id.strip_prefix('A') {
            Some(n) => json_response(
                200,
                format!(r#"{{"application_id":"{id}","status":"approved","account_id":"F{n}"}}"#).into_bytes(),
            ),
            None => error_response(404, "APPLICATION_NOT_FOUND", "unknown application"),
        },
        (&Method::GET, ["v1", "accounts", id]) => match id.strip_prefix('F').and_then(|n| n.parse::<u64>().ok()) {
            Some(n) => json_response(
                200,
                format!(
                    r#"{{"account_id":"{id}","status":"active","bank":"SIMBANK","sub_account_no":"3109401{n:08}","balance":{{"total":"0.00","available":"0.00","frozen":"0.00"}}}}"#
                )
                .into_bytes(),
            ),
            None => error_response(404, "ACCOUNT_NOT_FOUND", "unknown account"),
        },
        (&Method::POST, ["v1", "banks", _, "notifications"]) => {
            let expected = sign(NOTIFY_SECRET.as_bytes(), body).unwrap_or_default();
            if signature != Some(expected.as_str()) {
                return error_response(401, "UNAUTHENTICATED", "bad X-Signature");
            }
            let lsn = state.lsn.fetch_add(1, Ordering::Relaxed) + 1;
            json_response(200, format!(r#"{{"result":"credited","account_id":"F000000","lsn":{lsn}}}"#).into_bytes())
        }
        _ => error_response(404, "NOT_FOUND", "the echo server does not know this path"),
    }
}

fn batch(state: &State, body: &[u8]) -> Response<Full<Bytes>> {
    let parsed: BatchIn = match serde_json::from_slice(body) {
        Ok(parsed) => parsed,
        Err(e) => return error_response(400, "INVALID_JSON", &e.to_string()),
    };
    if parsed.transfers.is_empty() || parsed.transfers.len() > BATCH_ITEMS_MAX {
        return error_response(400, "INVALID_BATCH", "a batch holds 1 to 8190 transfers");
    }
    let committed_at = rfc3339_now();
    let mut out = Vec::with_capacity(parsed.transfers.len() * 400 + 16);
    out.extend_from_slice(b"{\"results\":[");
    for (i, raw) in parsed.transfers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match judge(state, raw.get().as_bytes(), &committed_at) {
            Ok(transfer) => {
                out.extend_from_slice(b"{\"status\":201,\"body\":");
                out.extend_from_slice(&transfer);
                out.push(b'}');
            }
            Err((status, code, message)) => {
                let item =
                    BatchItemOut { status, body: serde_json::json!({"error": {"code": code, "message": message}}) };
                out.extend_from_slice(&serde_json::to_vec(&item).unwrap_or_default());
            }
        }
    }
    out.extend_from_slice(b"]}");
    json_response(200, out)
}

/// Serves until the listener fails (or the task is dropped).
pub async fn serve(listener: TcpListener) -> Result<()> {
    let state = Arc::new(State::default());
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(state.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// Starts an echo server on its own runtime and threads (so it does not
/// share the generator's), on 127.0.0.1 with a free port.
pub fn spawn_in_thread(threads: usize) -> Result<SocketAddr> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("echo")
        .enable_all()
        .build()?;
    // Bound here with std (this may be called from inside another runtime,
    // where block_on is not allowed), handed to tokio in the echo thread.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new().name("echo-main".to_string()).spawn(move || {
        let result = runtime.block_on(async move { serve(TcpListener::from_std(listener)?).await });
        if let Err(err) = result {
            eprintln!("echo server stopped: {err:#}");
        }
    })?;
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Conn, Endpoint};
    use crate::runner::tally_batch;

    #[tokio::test]
    async fn answers_a_batch_with_one_result_per_item() -> Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(serve(listener));
        let mut conn = Conn::new(Endpoint::new(addr)?);
        let mut items = Vec::new();
        for i in 0..100 {
            items.push(format!(
                r#"{{"id":"t-{i}","type":"transfer","payer":"F000001","payee":"F000002","amount":"1.5"}}"#
            ));
        }
        items.push(
            r#"{"id":"bad","type":"transfer","payer":"F000001","payee":"F000002","amount":"1.5","x":1}"#.to_string(),
        );
        let body = format!(r#"{{"transfers":[{}]}}"#, items.join(","));
        let answer = conn.post("/v1/transfers/batch", None, Bytes::from(body)).await?;
        assert_eq!(answer.status.as_u16(), 200);
        let (accepted, errors) = tally_batch(&answer.body, 101);
        assert_eq!(accepted, 100);
        assert_eq!(errors.get("item 400 INVALID_FIELD"), Some(&1));
        let value = answer.json()?;
        assert_eq!(value["results"][0]["body"]["amount"], "1.50");
        assert_eq!(value["results"][0]["body"]["hold"], serde_json::Value::Null);

        let single = conn
            .post(
                "/v1/transfers",
                None,
                Bytes::from_static(br#"{"id":"s","type":"freeze","payer":"F000001","amount":"2"}"#),
            )
            .await?;
        assert_eq!(single.status.as_u16(), 201);
        assert_eq!(single.json()?["hold"]["remaining"], "2.00");
        server.abort();
        Ok(())
    }
}
