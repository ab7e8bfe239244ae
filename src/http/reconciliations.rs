//! `POST /v1/reconciliations` and `GET /v1/reconciliations/{id}` (finance):
//! reconcile one bank's UTC day against the ledger (对账).
//!
//! The body `{"bank", "date", "statement"?}` is parsed as a stream: the
//! buffering middleware lets this one route through unread
//! ([`crate::http::extract::buffer_body`]), a task forwards the body's
//! chunks (each within [`limits::STATEMENT_CHUNK_TIMEOUT_S`], all within
//! `limits.max_statement_bytes`) to a blocking parser, and each statement
//! line is matched as soon as it is parsed
//! ([`crate::finance::reconciliation::Matcher`]). Memory is the day's
//! ledger lines plus the first discrepancies, whatever the upload's size.
//! Because lines are matched as they arrive, `bank` and `date` must come
//! before `statement` in the body (as they do in key order); without a
//! statement the bank's adaptor fetches the day's statement.
//!
//! The result is recorded by the finance actor ([`crate::actors::finance`])
//! and answered once durable, read back from the history. Never touches
//! balances.

use std::cell::{Cell, RefCell};
use std::io::Read;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;
use serde::de::{DeserializeSeed, Deserializer as _, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::error::{invalid_field, missing, ApiError, ApiResult, ErrorCode};
use super::extract::{is_json, JsonObject};
use super::transfers::json_response;
use super::AppState;
use crate::actors::bank::CallError;
use crate::actors::finance::RecordReconciliation;
use crate::config::Role;
use crate::domain::ids::is_valid_client_id;
use crate::domain::ids::ReconciliationId;
use crate::domain::record::{DiscrepancyLine, ReconciliationSummary, StatementKind};
use crate::finance::reconciliation::{parse_date, BankLine, Matcher, ReconciliationBook, Run};
use crate::limits;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/reconciliations", post(create)).route("/v1/reconciliations/{id}", get(show))
}

/// The one path the body-buffering middleware must let through unread.
pub const STREAMED_PATH: &str = "/v1/reconciliations";

/// Fields a statement line may have (API.md); `reference`, `kind` and
/// `amount` are required.
const LINE_FIELDS: [&str; 7] =
    ["bank_serial", "reference", "kind", "account_no", "counter_account_no", "amount", "booked_at"];

fn summary_view(summary: &ReconciliationSummary) -> Value {
    json!({
        "bank_lines": summary.bank_lines,
        "ledger_lines": summary.ledger_lines,
        "matched": summary.matched,
        "missing_in_ledger": summary.missing_in_ledger,
        "missing_in_bank": summary.missing_in_bank,
        "amount_mismatch": summary.amount_mismatch,
    })
}

pub fn reconciliation_view(book: &ReconciliationBook, run: &Run) -> Value {
    let record = &run.record;
    let discrepancies: Vec<Value> = book
        .discrepancies_of(record)
        .iter()
        .map(|state| {
            json!({
                "discrepancy_id": state.discrepancy_id,
                "kind": state.line.kind.as_str(),
                "reference": state.line.reference,
                "ledger_amount": state.line.ledger_amount,
                "bank_amount": state.line.bank_amount,
                "status": state.status().as_str(),
            })
        })
        .collect();
    json!({
        "reconciliation_id": record.reconciliation_id,
        "bank": record.bank,
        "date": record.date,
        "source": if record.uploaded { "uploaded" } else { "bank" },
        "summary": summary_view(&record.summary),
        "discrepancies": discrepancies,
        "discrepancies_truncated": (record.discrepancies.len() as u64) < record.summary.discrepancies(),
        "created_at": crate::clock::Rfc3339(record.at_ms),
        "operator": record.operator,
        "lsn": run.lsn,
    })
}

async fn show(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    state.auth.check(&headers, &[Role::Finance])?;
    let not_found = || ApiError::new(ErrorCode::ReconciliationNotFound, format!("no reconciliation {id}"));
    let reconciliation_id = ReconciliationId::parse(&id).ok_or_else(not_found)?;
    let durable = state.log.durable_lsn();
    let view = state
        .history
        .read_at(durable, |history| {
            let book = history.reconciliations();
            book.run(reconciliation_id).map(|run| reconciliation_view(book, run))
        })
        .await
        .ok_or_else(not_found)?;
    Ok(json_response(StatusCode::OK, &view))
}

/// Why the body stream stopped before its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StreamError {
    TooLarge,
    Timeout,
    Unreadable,
}

/// Answers that end the exchange before the body was read to its end
/// close the connection: its unread rest cannot be skipped cheaply.
async fn create(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match reconcile(state, headers, body).await {
        Ok(response) => response,
        Err(Refused::Api(error)) => closing(error.into_response()),
        Err(Refused::Timeout) => closing(super::extract::body_timeout_response(limits::STATEMENT_CHUNK_TIMEOUT_S)),
    }
}

fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

enum Refused {
    Api(ApiError),
    Timeout,
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        Refused::Api(error)
    }
}

/// What the request asked, and the matching of its uploaded lines.
struct Parsed {
    bank: String,
    date: String,
    day: i64,
    /// Matched uploaded lines; `None` when no statement was uploaded.
    matched: Option<(ReconciliationSummary, Vec<DiscrepancyLine>)>,
}

async fn reconcile(state: AppState, headers: HeaderMap, body: Body) -> Result<Response, Refused> {
    let caller = state.auth.check(&headers, &[Role::Finance])?;
    if !is_json(&headers) {
        return Err(ApiError::new(ErrorCode::UnsupportedMediaType, "the body must be application/json").into());
    }
    let limit_bytes = state.max_statement_bytes;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit_bytes) {
        return Err(too_large(limit_bytes).into());
    }
    let _permit = Arc::clone(&state.reconciling)
        .acquire_owned()
        .await
        .map_err(|_| ApiError::new(ErrorCode::Overloaded, "the server is shutting down"))?;
    let (chunks, receiver) = mpsc::channel(limits::STATEMENT_CHUNKS_BUFFERED);
    tokio::spawn(forward_body(body, chunks, limit_bytes));
    let history = Arc::clone(&state.history);
    let durable = state.log.durable_lsn();
    let banks = Arc::clone(&state.banks);
    let runtime = tokio::runtime::Handle::current();
    let prepare = move |bank: &str, day: i64| -> ApiResult<Option<Matcher>> {
        if banks.get(bank).is_none() {
            return Ok(None);
        }
        let lines = runtime.block_on(history.bank_day_lines(bank, day, durable))?;
        Ok(Some(Matcher::new(lines, limits::RECONCILIATION_DISCREPANCIES_MAX)))
    };
    let parsed = tokio::task::spawn_blocking(move || parse_request(receiver, prepare))
        .await
        .map_err(|error| ApiError::new(ErrorCode::Internal, format!("the statement parser failed: {error}")))??;
    let uploaded = parsed.matched.is_some();
    let (summary, discrepancies) = match parsed.matched {
        Some(matched) => matched,
        None => fetch_and_match(&state, &parsed.bank, &parsed.date, parsed.day, durable).await?,
    };
    let message = RecordReconciliation {
        bank: parsed.bank.into(),
        date: parsed.date.into(),
        uploaded,
        summary,
        discrepancies,
        operator: caller.operator.as_ref().into(),
    };
    let (id, lsn) = state.finance.send(message).await.map_err(ApiError::from)?.map_err(ApiError::from)?;
    state.log.wait_durable(lsn).await.map_err(ApiError::from)?;
    let view = state
        .history
        .read_at(lsn, |history| {
            let book = history.reconciliations();
            book.run(id).map(|run| reconciliation_view(book, run))
        })
        .await
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "a recorded reconciliation is not in the history"))?;
    Ok(json_response(StatusCode::CREATED, &view))
}

fn too_large(limit_bytes: u64) -> ApiError {
    ApiError::new(ErrorCode::BodyTooLarge, format!("the body is over limits.max_statement_bytes ({limit_bytes} bytes)"))
}

/// Without an upload: the bank's own statement, through its adaptor.
async fn fetch_and_match(
    state: &AppState,
    bank: &str,
    date: &str,
    day: i64,
    durable: u64,
) -> ApiResult<(ReconciliationSummary, Vec<DiscrepancyLine>)> {
    let api = state.banks.get(bank).map(|entry| Arc::clone(&entry.api)).ok_or_else(|| unknown_bank(bank))?;
    let mut attempt = 0;
    let statement = loop {
        attempt += 1;
        let (api, date) = (Arc::clone(&api), date.to_owned());
        let result = tokio::task::spawn_blocking(move || api.statement(&date))
            .await
            .map_err(|error| ApiError::new(ErrorCode::Internal, format!("the statement fetch failed: {error}")))?;
        match result {
            Ok(statement) => break statement,
            Err(CallError::Transient(why) | CallError::Unknown(why)) => {
                if attempt >= limits::STATEMENT_FETCH_ATTEMPTS_MAX {
                    return Err(ApiError::new(
                        ErrorCode::BankUnavailable,
                        format!("the bank did not give its statement: {why}"),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
        }
    };
    let lines = state.history.bank_day_lines(bank, day, durable).await?;
    let mut matcher = Matcher::new(lines, limits::RECONCILIATION_DISCREPANCIES_MAX);
    for line in &statement {
        matcher.bank_line(&BankLine { reference: line.reference.clone(), kind: line.kind, amount: line.amount });
    }
    Ok(matcher.finish())
}

fn unknown_bank(bank: &str) -> ApiError {
    ApiError::new(ErrorCode::UnknownBankRule, format!("bank {bank} is not configured"))
}

/// Forward the body's chunks to the parser, within the size limit and the
/// per-chunk timeout. Stops when the parser is gone.
async fn forward_body(body: Body, chunks: mpsc::Sender<Result<Bytes, StreamError>>, limit_bytes: u64) {
    let mut body = body;
    let mut received: u64 = 0;
    let timeout = Duration::from_secs(limits::STATEMENT_CHUNK_TIMEOUT_S);
    loop {
        let frame = match tokio::time::timeout(timeout, body.frame()).await {
            Err(_) => Err(StreamError::Timeout),
            Ok(None) => return,
            Ok(Some(Err(_))) => Err(StreamError::Unreadable),
            Ok(Some(Ok(frame))) => Ok(frame),
        };
        let chunk = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => {
                    received += data.len() as u64;
                    if received > limit_bytes {
                        Err(StreamError::TooLarge)
                    } else {
                        Ok(data)
                    }
                }
                Err(_) => continue,
            },
            Err(error) => Err(error),
        };
        let stop = chunk.is_err();
        if chunks.send(chunk).await.is_err() || stop {
            return;
        }
    }
}

/// The body's bytes as `Read`, for the blocking parser.
struct ChannelReader {
    chunks: mpsc::Receiver<Result<Bytes, StreamError>>,
    current: Bytes,
    failed: Rc<Cell<Option<StreamError>>>,
}

impl Read for ChannelReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(error)) => {
                    self.failed.set(Some(error));
                    return Err(std::io::Error::other("the body stream stopped"));
                }
            }
        }
        let count = buffer.len().min(self.current.len());
        buffer[..count].copy_from_slice(&self.current.split_to(count));
        Ok(count)
    }
}

/// Parse `{"bank", "date", "statement"?}` from the stream, matching each
/// statement line as it comes. `prepare(bank, day)` gives the matcher of
/// that bank's day, or `None` for an unknown bank.
fn parse_request(
    chunks: mpsc::Receiver<Result<Bytes, StreamError>>,
    prepare: impl FnMut(&str, i64) -> ApiResult<Option<Matcher>>,
) -> Result<Parsed, Refused> {
    let failed = Rc::new(Cell::new(None));
    let reader = ChannelReader { chunks, current: Bytes::new(), failed: Rc::clone(&failed) };
    let reader = std::io::BufReader::with_capacity(64 * 1024, reader);
    parse_from(reader, prepare, &failed)
}

fn parse_from(
    reader: impl Read,
    prepare: impl FnMut(&str, i64) -> ApiResult<Option<Matcher>>,
    failed: &Cell<Option<StreamError>>,
) -> Result<Parsed, Refused> {
    let context = RefCell::new(Context { prepare: Box::new(prepare), error: None });
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let result = (&mut deserializer).deserialize_any(RequestVisitor { context: &context });
    let result = result.and_then(|parsed| deserializer.end().map(|()| parsed));
    let refused = |error: serde_json::Error| -> Refused {
        match failed.get() {
            Some(StreamError::TooLarge) => return Refused::Api(too_large_unknown()),
            Some(StreamError::Timeout) => return Refused::Timeout,
            Some(StreamError::Unreadable) => {
                return Refused::Api(ApiError::new(ErrorCode::InvalidJson, "the body could not be read"))
            }
            None => {}
        }
        match context.borrow_mut().error.take() {
            Some(error) => Refused::Api(error),
            None => Refused::Api(ApiError::new(ErrorCode::InvalidJson, format!("the body is not valid JSON: {error}"))),
        }
    };
    let parsed = result.map_err(refused)?;
    parsed.finish().map_err(Refused::Api)
}

/// The limit is named by the handler's message; the parser only knows
/// the stream stopped for size.
fn too_large_unknown() -> ApiError {
    ApiError::new(ErrorCode::BodyTooLarge, "the body is over limits.max_statement_bytes")
}

/// Gives the matcher of a bank's day, or `None` for an unknown bank.
type Prepare<'p> = Box<dyn FnMut(&str, i64) -> ApiResult<Option<Matcher>> + 'p>;

struct Context<'p> {
    prepare: Prepare<'p>,
    /// The API error that made the parser stop (serde carries only text).
    error: Option<ApiError>,
}

/// What the parser has seen so far.
#[derive(Default)]
struct Partial {
    bank: Option<String>,
    date: Option<String>,
    day: Option<i64>,
    statement: Option<Matcher>,
    bank_unknown: bool,
}

impl Partial {
    /// Check `bank` and `date` (400s first, then the unknown bank).
    fn checked_header(&mut self) -> ApiResult<(String, i64)> {
        let bank = self.bank.clone().ok_or_else(|| missing("bank"))?;
        let date = self.date.as_deref().ok_or_else(|| missing("date"))?;
        let day = parse_date(date).ok_or_else(|| invalid_field("date", "must be a date like 2026-11-24"))?;
        self.day = Some(day);
        Ok((bank, day))
    }

    fn finish(mut self) -> ApiResult<Parsed> {
        let (bank, day) = self.checked_header()?;
        if self.bank_unknown {
            return Err(unknown_bank(&bank));
        }
        let date = self.date.unwrap_or_default();
        let matched = self.statement.map(Matcher::finish);
        Ok(Parsed { bank, date, day, matched })
    }
}

fn fail<E: serde::de::Error>(context: &RefCell<Context>, error: ApiError) -> E {
    context.borrow_mut().error = Some(error);
    E::custom("refused")
}

struct RequestVisitor<'c, 'p> {
    context: &'c RefCell<Context<'p>>,
}

impl<'de> Visitor<'de> for RequestVisitor<'_, '_> {
    type Value = Partial;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Partial, A::Error> {
        let mut partial = Partial::default();
        let mut seen: Vec<String> = Vec::with_capacity(3);
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                let error = ApiError::new(ErrorCode::InvalidJson, format!("duplicate key `{key}`"));
                return Err(fail(self.context, error));
            }
            seen.push(key.clone());
            match key.as_str() {
                "bank" | "date" => {
                    let value: Value = map.next_value()?;
                    let text = match value {
                        Value::Null => None,
                        Value::String(text) => Some(text),
                        _ => return Err(fail(self.context, invalid_field(&key, "must be a string"))),
                    };
                    if key == "bank" {
                        partial.bank = text;
                    } else {
                        partial.date = text;
                    }
                }
                "statement" => {
                    let (bank, day) = partial.checked_header().map_err(|error| {
                        let error = match error.code {
                            ErrorCode::MissingField => {
                                invalid_field("statement", "must come after `bank` and `date` in the body")
                            }
                            _ => error,
                        };
                        fail::<A::Error>(self.context, error)
                    })?;
                    let prepared = (self.context.borrow_mut().prepare)(&bank, day);
                    let matcher = prepared.map_err(|error| fail::<A::Error>(self.context, error))?;
                    partial.bank_unknown = matcher.is_none();
                    let matcher = matcher.unwrap_or_else(|| Matcher::new(Vec::new(), 0));
                    partial.statement = map.next_value_seed(StatementSeed { context: self.context, matcher })?;
                }
                other => {
                    let error =
                        ApiError::new(ErrorCode::UnexpectedField, format!("field `{other}` is not expected here"));
                    return Err(fail(self.context, error));
                }
            }
        }
        Ok(partial)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Partial, A::Error> {
        Err(fail(self.context, ApiError::new(ErrorCode::InvalidJson, "the body is not a JSON object")))
    }
}

/// The `statement` value: null (no upload) or an array of lines.
struct StatementSeed<'c, 'p> {
    context: &'c RefCell<Context<'p>>,
    matcher: Matcher,
}

impl<'de> DeserializeSeed<'de> for StatementSeed<'_, '_> {
    type Value = Option<Matcher>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StatementSeed<'_, '_> {
    type Value = Option<Matcher>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of statement lines")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut index: u64 = 0;
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            let line = statement_line(raw.get(), index).map_err(|error| fail::<A::Error>(self.context, error))?;
            self.matcher.bank_line(&line);
            index += 1;
        }
        Ok(Some(self.matcher))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(fail(self.context, invalid_field("statement", "must be an array of statement lines")))
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Err(fail(self.context, invalid_field("statement", "must be an array of statement lines")))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(fail(self.context, invalid_field("statement", "must be an array of statement lines")))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(fail(self.context, invalid_field("statement", "must be an array of statement lines")))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(fail(self.context, invalid_field("statement", "must be an array of statement lines")))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(fail(self.context, invalid_field("statement", "must be an array of statement lines")))
    }
}

/// One uploaded line: the API's exact 400s, naming `statement[i].field`.
fn statement_line(raw: &str, index: u64) -> ApiResult<BankLine> {
    let at = |field: &str| format!("statement[{index}].{field}");
    if !raw.starts_with('{') {
        return Err(invalid_field(&format!("statement[{index}]"), "must be an object"));
    }
    let object = JsonObject::parse_body(raw.as_bytes()).map_err(|error| prefixed(error, index))?;
    object.only(&LINE_FIELDS).map_err(|error| prefixed(error, index))?;
    let reference = object.string("reference").map_err(|error| prefixed(error, index))?;
    let reference = reference.ok_or_else(|| missing(&at("reference")))?;
    if !is_valid_client_id(&reference) {
        return Err(ApiError::new(
            ErrorCode::InvalidId,
            format!("field `{}` must be 1 to 64 characters of A-Z a-z 0-9 _ - . :", at("reference")),
        ));
    }
    let kind = object.string("kind").map_err(|error| prefixed(error, index))?.ok_or_else(|| missing(&at("kind")))?;
    let kind = StatementKind::parse(&kind)
        .ok_or_else(|| invalid_field(&at("kind"), "must be credit, adjustment, return, forced_transfer or payout"))?;
    let amount = object.amount("amount").map_err(|error| prefixed(error, index))?;
    let amount = amount.ok_or_else(|| missing(&at("amount")))?;
    for field in ["bank_serial", "account_no", "counter_account_no", "booked_at"] {
        object.text(field, limits::TEXT_CHARS_MAX).map_err(|error| prefixed(error, index))?;
    }
    Ok(BankLine { reference: reference.as_ref().into(), kind, amount })
}

/// The same error, its message naming the line.
fn prefixed(error: ApiError, index: u64) -> ApiError {
    ApiError::new(error.code, format!("statement[{index}]: {}", error.message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Money;
    use crate::finance::reconciliation::LedgerLine;

    fn parse(body: &str, known_bank: bool) -> Result<Parsed, ApiError> {
        let failed = Cell::new(None);
        let day = vec![LedgerLine {
            lsn: 1,
            reference: "t-1".into(),
            kind: StatementKind::ForcedTransfer,
            amount: Money(100),
        }];
        let prepare = move |_: &str, _: i64| Ok(known_bank.then(|| Matcher::new(day.clone(), 10)));
        match parse_from(body.as_bytes(), prepare, &failed) {
            Ok(parsed) => Ok(parsed),
            Err(Refused::Api(error)) => Err(error),
            Err(Refused::Timeout) => panic!("no timeout from a slice"),
        }
    }

    fn code(body: &str) -> &'static str {
        parse(body, true).err().map(|error| error.code.as_str()).unwrap_or("OK")
    }

    #[test]
    fn lines_are_matched_as_they_stream() {
        let body = r#"{"bank":"B","date":"2026-11-24","statement":[
            {"reference":"t-1","kind":"forced_transfer","amount":"1.00","bank_serial":"S1","account_no":"1","counter_account_no":"2","booked_at":"x"},
            {"reference":"x-2","kind":"credit","amount":"2"}]}"#;
        let parsed = parse(body, true).unwrap();
        let (summary, discrepancies) = parsed.matched.unwrap();
        assert_eq!((summary.bank_lines, summary.matched, summary.missing_in_ledger), (2, 1, 1));
        assert_eq!(&*discrepancies[0].reference, "x-2");
        let parsed = parse(r#"{"bank":"B","date":"2026-11-24"}"#, true).unwrap();
        assert!(parsed.matched.is_none());
        assert!(parse(r#"{"bank":"B","date":"2026-11-24","statement":null}"#, true).unwrap().matched.is_none());
    }

    #[test]
    fn bad_bodies_get_the_exact_codes() {
        let line = |fields: &str| format!(r#"{{"bank":"B","date":"2026-11-24","statement":[{fields}]}}"#);
        for (body, want) in [
            ("[]".to_string(), "INVALID_JSON"),
            ("{".to_string(), "INVALID_JSON"),
            (r#"{"bank":"B","bank":"C","date":"2026-11-24"}"#.to_string(), "INVALID_JSON"),
            (r#"{"date":"2026-11-24"}"#.to_string(), "MISSING_FIELD"),
            (r#"{"bank":"B"}"#.to_string(), "MISSING_FIELD"),
            (r#"{"bank":1,"date":"2026-11-24"}"#.to_string(), "INVALID_FIELD"),
            (r#"{"bank":"B","date":"24/11/2026"}"#.to_string(), "INVALID_FIELD"),
            (r#"{"bank":"B","date":"2026-11-24","colour":1}"#.to_string(), "UNEXPECTED_FIELD"),
            (r#"{"statement":[],"bank":"B","date":"2026-11-24"}"#.to_string(), "INVALID_FIELD"),
            (r#"{"bank":"B","date":"2026-11-24","statement":{}}"#.to_string(), "INVALID_FIELD"),
            (r#"{"bank":"B","date":"2026-11-24","statement":"x"}"#.to_string(), "INVALID_FIELD"),
            (line("1"), "INVALID_FIELD"),
            (line(r#"{"kind":"credit","amount":"1"}"#), "MISSING_FIELD"),
            (line(r#"{"reference":"a b","kind":"credit","amount":"1"}"#), "INVALID_ID"),
            (line(r#"{"reference":"a","kind":"gift","amount":"1"}"#), "INVALID_FIELD"),
            (line(r#"{"reference":"a","kind":"credit","amount":1}"#), "INVALID_AMOUNT"),
            (line(r#"{"reference":"a","kind":"credit","amount":"0"}"#), "INVALID_AMOUNT"),
            (line(r#"{"reference":"a","kind":"credit"}"#), "MISSING_FIELD"),
            (line(r#"{"reference":"a","kind":"credit","amount":"1","x":1}"#), "UNEXPECTED_FIELD"),
            (line(r#"{"reference":"a","kind":"credit","amount":"1","booked_at":5}"#), "INVALID_FIELD"),
        ] {
            assert_eq!(code(&body), want, "{body}");
        }
        let unknown = parse(r#"{"bank":"X","date":"2026-11-24","statement":[]}"#, false).err().unwrap();
        assert_eq!(unknown.code.as_str(), "UNKNOWN_BANK");
        let syntax_first =
            parse(r#"{"bank":"X","date":"2026-11-24","statement":[{"reference":"a"}]}"#, false).err().unwrap();
        assert_eq!(syntax_first.code.as_str(), "MISSING_FIELD", "400 before 422");
    }
}
