//! Turning an HTTP request into checked input, in the order API.md fixes:
//! authentication (401), role (403), then the body's media type (415),
//! size (413) and syntax (400).
//!
//! Owns the bearer-token table, the body limit, the JSON field readers that
//! produce the API's exact 400 codes, and query-string parsing. Must not
//! decide anything about accounts or money beyond the syntax of a field.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Uri};
use axum::response::IntoResponse;
use bytes::BytesMut;
use http_body_util::BodyExt;
use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::{invalid_field, missing, ApiError, ApiResult, ErrorCode};
use super::json_scan;
use super::rate::RateLimit;
use crate::config::{Role, TokenConfig};
use crate::domain::ids::is_valid_client_id;
use crate::domain::money::Money;
use crate::limits;

/// Who is calling: the token's roles and the name recorded on changes.
#[derive(Clone, Debug)]
pub struct Caller {
    pub roles: Vec<Role>,
    /// The token's operator name, or its first role when it has none.
    pub operator: Arc<str>,
    pub has_operator_name: bool,
}

impl Caller {
    pub fn has_any(&self, allowed: &[Role]) -> bool {
        self.roles.iter().any(|role| *role == Role::Admin || allowed.contains(role))
    }
}

/// Tokens by the SHA-256 of their text. Looking up a digest reveals through
/// timing at most how much of a digest matched, which says nothing about
/// the token; the config may hold only digests (`token_sha256`).
pub struct Auth {
    tokens: HashMap<[u8; 32], Token>,
}

struct Token {
    caller: Caller,
    /// `rate_limit_per_s`; each token has its own bucket (no shared lock).
    rate: Option<RateLimit>,
}

impl Auth {
    pub fn new(tokens: &[TokenConfig]) -> Result<Self, String> {
        let mut map = HashMap::new();
        for token in tokens {
            let operator: Arc<str> = match &token.operator {
                Some(name) => name.as_str().into(),
                None => token.roles[0].as_str().into(),
            };
            let caller = Caller { roles: token.roles.clone(), operator, has_operator_name: token.operator.is_some() };
            let entry = Token { caller, rate: RateLimit::per_second(token.rate_limit_per_s) };
            if map.insert(token.digest()?, entry).is_some() {
                return Err("two [[tokens]] entries have the same token".into());
            }
        }
        Ok(Self { tokens: map })
    }

    /// 401 without a known bearer token, 403 without one of `allowed`, 429
    /// past the token's rate limit.
    pub fn check(&self, headers: &HeaderMap, allowed: &[Role]) -> ApiResult<Caller> {
        let unauthenticated =
            || ApiError::new(ErrorCode::Unauthenticated, "a valid `Authorization: Bearer <token>` is required");
        let value = headers.get(header::AUTHORIZATION).ok_or_else(unauthenticated)?;
        let text = value.to_str().map_err(|_| unauthenticated())?;
        let token = text.strip_prefix("Bearer ").ok_or_else(unauthenticated)?.trim();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let token = self.tokens.get(&digest).ok_or_else(unauthenticated)?;
        if !token.caller.has_any(allowed) {
            let roles: Vec<&str> = allowed.iter().map(|role| role.as_str()).collect();
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("this needs one of the roles {}", roles.join(", ")),
            ));
        }
        if let Some(rate) = &token.rate {
            rate.try_acquire().map_err(|_| {
                ApiError::new(
                    ErrorCode::RateLimited,
                    format!("this token is limited to {} requests per second; retry shortly", rate.per_second_value()),
                )
            })?;
        }
        Ok(token.caller.clone())
    }
}

/// Read a JSON body: 415 unless `application/json`, 413 past `limit_bytes`.
pub async fn json_body(headers: &HeaderMap, body: Body, limit_bytes: usize) -> ApiResult<Bytes> {
    if !is_json(headers) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as `Content-Type: application/json`",
        ));
    }
    read_body(headers, body, limit_bytes).await
}

pub fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let media_type = value.split(';').next().unwrap_or("").trim();
    media_type.eq_ignore_ascii_case("application/json")
}

/// What [`buffer_body`] enforces: one body's limit, and a budget of body
/// bytes held by every request at once (in KiB permits).
#[derive(Clone)]
pub struct BodyLimits {
    limit_bytes: usize,
    budget_kib: Arc<Semaphore>,
}

impl BodyLimits {
    pub fn new(limit_bytes: usize, budget_bytes: usize) -> Self {
        let budget_bytes = budget_bytes.max(limit_bytes);
        Self { limit_bytes, budget_kib: Arc::new(Semaphore::new(kib(budget_bytes))) }
    }
}

fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}

enum BodyRead {
    TooLarge,
    Unreadable,
    OverBudget,
}

/// Read every request body before the handler runs, up to the limit.
///
/// Why: a handler that refuses early (401, 403, 404, 405) would otherwise
/// leave the body unread, and the server would have to close a connection
/// its client keeps alive for the next request. A body past the limit is
/// not read further; the handler answers 413 in its turn (after
/// authentication, API.md's order). A body not received within
/// [`limits::BODY_READ_TIMEOUT_S`] gets `408 REQUEST_TIMEOUT` and the
/// connection is closed: a stalled client must not hold an in-flight
/// permit for ever. A body that would take the bytes held by all requests
/// past [`limits::BODY_BYTES_IN_FLIGHT_MAX`] gets `503 OVERLOADED`.
pub async fn buffer_body(
    axum::extract::State(limits): axum::extract::State<BodyLimits>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    buffered(&limits, request, next).await
}

/// [`buffer_body`]'s work, for a layer that does more around it (the API's
/// one layer, `http::api_gate`).
pub async fn buffered(
    limits: &BodyLimits,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // An uploaded reconciliation statement (up to limits.max_statement_bytes)
    // is parsed as it streams in; its handler bounds it (see
    // `http::reconciliations`).
    if request.method() == axum::http::Method::POST && request.uri().path() == super::reconciliations::STREAMED_PATH {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let timeout = std::time::Duration::from_secs(limits::BODY_READ_TIMEOUT_S);
    let (body, held) = match tokio::time::timeout(timeout, read_body_budgeted(&parts.headers, body, limits)).await {
        Ok(Ok((bytes, held))) => (Body::from(bytes), held),
        // A body that fails with the length-limit error when read.
        Ok(Err(BodyRead::TooLarge | BodyRead::Unreadable)) => {
            (Body::new(http_body_util::Limited::new(http_body_util::Full::new(Bytes::from_static(b" ")), 0)), None)
        }
        Ok(Err(BodyRead::OverBudget)) => {
            let error = ApiError::new(ErrorCode::Overloaded, "the server holds too many request bodies; retry shortly");
            return closing(error.into_response());
        }
        Err(_) => return body_timeout(),
    };
    let response = next.run(axum::extract::Request::from_parts(parts, body)).await;
    drop(held);
    response
}

/// Reads a body, taking budget permits as its bytes arrive.
async fn read_body_budgeted(
    headers: &HeaderMap,
    body: Body,
    limits: &BodyLimits,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), BodyRead> {
    let declared = declared_length(headers);
    if declared.is_some_and(|length| length > limits.limit_bytes as u64) {
        return Err(BodyRead::TooLarge);
    }
    let mut body = http_body_util::Limited::new(body, limits.limit_bytes);
    let mut held: Option<OwnedSemaphorePermit> = None;
    // A declared length (within the limit) sizes the buffer at once: the
    // body is read into one buffer, not one that doubles as it fills (a
    // batch of 8190 was copied some ten times over). The budget is still
    // taken as bytes arrive: a client that declares much and sends little
    // holds only what it sent (pages of the buffer not yet written are
    // not resident either).
    let mut bytes = BytesMut::with_capacity(declared.map_or(0, |length| length as usize));
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) if is_length_limit(&*error) => return Err(BodyRead::TooLarge),
            Err(_) => return Err(BodyRead::Unreadable),
        };
        let Ok(data) = frame.into_data() else { continue };
        take_budget(limits, &mut held, kib(bytes.len() + data.len()) - kib(bytes.len()))?;
        bytes.extend_from_slice(&data);
    }
    Ok((bytes.freeze(), held))
}

/// `kib` more permits of the bodies' budget, merged into `held`.
fn take_budget(limits: &BodyLimits, held: &mut Option<OwnedSemaphorePermit>, kib: usize) -> Result<(), BodyRead> {
    if kib == 0 {
        return Ok(());
    }
    let permits = u32::try_from(kib).map_err(|_| BodyRead::OverBudget)?;
    let permit = Arc::clone(&limits.budget_kib).try_acquire_many_owned(permits).map_err(|_| BodyRead::OverBudget)?;
    match held.as_mut() {
        Some(held) => held.merge(permit),
        None => *held = Some(permit),
    }
    Ok(())
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()).and_then(|text| text.parse::<u64>().ok())
}

fn closing(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    response
}

fn body_timeout() -> axum::response::Response {
    body_timeout_response(limits::BODY_READ_TIMEOUT_S)
}

/// `408 REQUEST_TIMEOUT` (a body that stalled), closing the connection.
pub fn body_timeout_response(seconds: u64) -> axum::response::Response {
    let body = serde_json::json!({"error": {
        "code": "REQUEST_TIMEOUT",
        "message": format!("the request body did not arrive within {seconds} s"),
    }});
    closing((axum::http::StatusCode::REQUEST_TIMEOUT, axum::Json(body)).into_response())
}

/// Read a body of any type up to `limit_bytes` (413 past it).
pub async fn read_body(headers: &HeaderMap, body: Body, limit_bytes: usize) -> ApiResult<Bytes> {
    let too_large = || {
        ApiError::new(ErrorCode::BodyTooLarge, format!("the body is over limits.max_body_bytes ({limit_bytes} bytes)"))
    };
    if declared_length(headers).is_some_and(|length| length > limit_bytes as u64) {
        return Err(too_large());
    }
    let limited = http_body_util::Limited::new(body, limit_bytes);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if is_length_limit(&*error) => Err(too_large()),
        Err(_) => Err(ApiError::new(ErrorCode::InvalidJson, "the body could not be read")),
    }
}

fn is_length_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        current = error.source();
    }
    false
}

/// Fields an object is expected to have at most, as a first capacity.
pub(super) const FIELDS_EXPECTED: usize = 8;

/// A JSON object's fields, values left raw (borrowed) until asked for, so
/// each field gets its own precise error.
pub struct JsonObject<'a> {
    /// Each key, and its value's JSON text (no surrounding whitespace).
    pub(super) fields: Vec<(Cow<'a, str>, &'a str)>,
}

struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(text.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Vec<(Cow<'de, str>, &'de str)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields: Vec<(Cow<'de, str>, &'de str)> = Vec::with_capacity(FIELDS_EXPECTED);
        while let Some(Key(key)) = map.next_key()? {
            let value: &'de RawValue = map.next_value()?;
            if fields.iter().any(|(seen, _)| *seen == key) {
                return Err(serde::de::Error::custom(format!("duplicate key `{key}`")));
            }
            fields.push((key, value.get()));
        }
        Ok(fields)
    }
}

impl<'a> JsonObject<'a> {
    /// Parse a whole body that must be one JSON object.
    pub fn parse_body(bytes: &'a [u8]) -> ApiResult<Self> {
        Self::parse(bytes)
            .map_err(|why| ApiError::new(ErrorCode::InvalidJson, format!("the body is not a JSON object: {why}")))
    }

    fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        let text = utf8(bytes)?;
        if let Some(object) = json_scan::object(text) {
            return Ok(object);
        }
        Self::parse_with_serde(text)
    }

    /// [`Self::parse`] for any JSON: what the fast scanner leaves.
    pub(super) fn parse_with_serde(text: &'a str) -> Result<Self, String> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let fields = (&mut deserializer).deserialize_map(ObjectVisitor).map_err(|error| error.to_string())?;
        deserializer.end().map_err(|error| error.to_string())?;
        Ok(Self { fields })
    }

    /// A field that must itself be an object.
    pub fn object(&self, name: &str) -> ApiResult<Option<JsonObject<'a>>> {
        let Some(raw) = self.raw(name) else { return Ok(None) };
        if !raw.starts_with('{') {
            return Err(invalid_field(name, "must be an object"));
        }
        Self::parse(raw.as_bytes()).map(Some).map_err(|why| invalid_field(name, &why))
    }

    /// 400 UNEXPECTED_FIELD naming the first field not in `known`.
    pub fn only(&self, known: &[&str]) -> ApiResult<()> {
        match self.fields.iter().find(|(key, _)| !known.contains(&&**key)) {
            Some((key, _)) => Err(unexpected_field(key)),
            None => Ok(()),
        }
    }

    /// [`Self::only`] `names`, and each of them, in one pass over the
    /// fields (a parser that reads every field of an item looks each one up
    /// once, not once per question about it).
    pub fn fields<'n, const N: usize>(&self, names: &[&'n str; N]) -> ApiResult<[Field<'n, 'a>; N]> {
        let mut raw: [Option<&'a str>; N] = [None; N];
        for (key, value) in &self.fields {
            let at = names.iter().position(|name| *name == key).ok_or_else(|| unexpected_field(key))?;
            raw[at] = Some(*value).filter(|value| *value != "null");
        }
        Ok(std::array::from_fn(|at| Field { name: names[at], raw: raw[at] }))
    }

    pub fn field<'n>(&self, name: &'n str) -> Field<'n, 'a> {
        Field { name, raw: self.raw(name) }
    }

    pub fn has(&self, name: &str) -> bool {
        self.raw(name).is_some()
    }

    /// The raw value; a JSON `null` counts as absent (API.md: a null
    /// required field is a missing one).
    pub fn raw(&self, name: &str) -> Option<&'a str> {
        self.fields.iter().find(|(key, _)| key == name).map(|(_, raw)| *raw).filter(|raw| *raw != "null")
    }

    pub fn string(&self, name: &str) -> ApiResult<Option<Cow<'a, str>>> {
        self.field(name).string()
    }

    pub fn required_string(&self, name: &str) -> ApiResult<Cow<'a, str>> {
        self.field(name).required_string()
    }

    /// Free text of at most `chars_max` Unicode characters.
    pub fn text(&self, name: &str, chars_max: usize) -> ApiResult<Option<Box<str>>> {
        self.field(name).text(chars_max)
    }

    pub fn required_text(&self, name: &str, chars_max: usize) -> ApiResult<Box<str>> {
        self.field(name).required_text(chars_max)
    }

    /// An amount: a string of the documented form (a JSON number, too,
    /// is INVALID_AMOUNT, API.md).
    pub fn amount(&self, name: &str) -> ApiResult<Option<Money>> {
        self.field(name).amount()
    }

    /// A client id (`id`, `order_id`, `hold_id`): INVALID_ID when the
    /// string has the wrong form.
    pub fn client_id(&self, name: &str) -> ApiResult<Option<Box<str>>> {
        self.field(name).client_id()
    }
}

fn unexpected_field(key: &str) -> ApiError {
    ApiError::new(ErrorCode::UnexpectedField, format!("field `{key}` is not expected here"))
}

/// One field of an object: its name (for the errors) and its raw JSON
/// value, `None` when absent or `null`. The readers give the API's exact
/// 400 codes.
#[derive(Clone, Copy)]
pub struct Field<'n, 'a> {
    name: &'n str,
    raw: Option<&'a str>,
}

impl<'n, 'a> Field<'n, 'a> {
    pub fn name(&self) -> &'n str {
        self.name
    }

    pub fn is_present(&self) -> bool {
        self.raw.is_some()
    }

    pub fn string(&self) -> ApiResult<Option<Cow<'a, str>>> {
        match self.raw {
            None => Ok(None),
            Some(raw) => raw_string(raw).map(Some).ok_or_else(|| invalid_field(self.name, "must be a string")),
        }
    }

    pub fn required_string(&self) -> ApiResult<Cow<'a, str>> {
        self.string()?.ok_or_else(|| missing(self.name))
    }

    /// Free text of at most `chars_max` Unicode characters.
    pub fn text(&self, chars_max: usize) -> ApiResult<Option<Box<str>>> {
        let Some(text) = self.string()? else { return Ok(None) };
        if text.chars().count() > chars_max {
            return Err(invalid_field(self.name, &format!("is longer than {chars_max} characters")));
        }
        Ok(Some(text.into()))
    }

    pub fn required_text(&self, chars_max: usize) -> ApiResult<Box<str>> {
        let text = self.text(chars_max)?.ok_or_else(|| missing(self.name))?;
        if text.trim().is_empty() {
            return Err(invalid_field(self.name, "must not be empty"));
        }
        Ok(text)
    }

    /// An amount: a string of the documented form (a JSON number, too,
    /// is INVALID_AMOUNT, API.md).
    pub fn amount(&self) -> ApiResult<Option<Money>> {
        let Some(raw) = self.raw else { return Ok(None) };
        let invalid = || {
            ApiError::new(
                ErrorCode::InvalidAmount,
                format!(
                    "field `{}` must be a string with a positive amount like \"100.50\" (at most 2 decimals)",
                    self.name
                ),
            )
        };
        let text = raw_string(raw).ok_or_else(invalid)?;
        Money::parse_amount(&text).map(Some).ok_or_else(invalid)
    }

    /// A client id (`id`, `order_id`, `hold_id`): INVALID_ID when the
    /// string has the wrong form.
    pub fn client_id(&self) -> ApiResult<Option<Box<str>>> {
        let Some(text) = self.string()? else { return Ok(None) };
        if !is_valid_client_id(&text) {
            return Err(ApiError::new(
                ErrorCode::InvalidId,
                format!("field `{}` must be 1 to 64 characters of A-Z a-z 0-9 _ - . :", self.name),
            ));
        }
        Ok(Some(text.into()))
    }
}

/// The body as text, checked once as a whole: serde_json reading a `&str`
/// then skips its check of each string (a batch's strings were checked one
/// by one, 3% of its instructions, docs/PERFORMANCE.md).
fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|error| format!("it is not UTF-8 (from byte {})", error.valid_up_to()))
}

/// A batch body, `{"<field>": [{..}, ..]}`, read in one pass: each item
/// is read as the array is ([`BatchBody::read_each`]), instead of
/// capturing the array raw, splitting it, then parsing each item (three
/// passes over the bytes; a third of the batch path's instructions,
/// docs/PERFORMANCE.md).
pub struct BatchBody<'a, T = Option<JsonObject<'a>>> {
    /// The first key of the body that is not `<field>`.
    pub unexpected: Option<Cow<'a, str>>,
    /// `None`: absent or `null`. `Some(None)`: not an array. Otherwise each
    /// item, `None` where it is not a JSON object (or repeats a key); or
    /// what [`BatchBody::read_each`] made of each.
    pub items: Option<Option<Vec<T>>>,
}

impl<'a, T> BatchBody<'a, T> {
    /// A batch body (INVALID_JSON when it is not one JSON object), each
    /// item read by `read` as it is scanned (`None` for an item that is not
    /// an object or repeats a key), so that the items' fields need not be
    /// kept.
    /// `read` must only read: it may see an item twice (the fast scanner
    /// gives up on a body that is not of the usual shape, and serde_json
    /// reads it again).
    pub fn read_each(
        bytes: &'a [u8],
        field: &'static str,
        mut read: impl FnMut(Option<&JsonObject<'a>>) -> T,
    ) -> ApiResult<Self> {
        let text = utf8(bytes).map_err(|why| not_an_object(&why))?;
        if let Some(items) = json_scan::batch(text, field, &mut read) {
            return Ok(BatchBody { unexpected: None, items: Some(Some(items)) });
        }
        let body = BatchBody::parse_with_serde(text, field).map_err(|error| not_an_object(&error))?;
        let items = body.items.map(|items| items.map(|items| items.iter().map(|item| read(item.as_ref())).collect()));
        Ok(BatchBody { unexpected: body.unexpected, items })
    }
}

fn not_an_object(why: &dyn fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::InvalidJson, format!("the body is not a JSON object: {why}"))
}

impl<'a> BatchBody<'a> {
    /// [`BatchBody::read_each`] for any JSON: what the fast scanner leaves.
    pub(super) fn parse_with_serde(text: &'a str, field: &'static str) -> Result<Self, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let body = (&mut deserializer).deserialize_map(BatchVisitor { field })?;
        deserializer.end()?;
        Ok(body)
    }
}

struct BatchVisitor {
    field: &'static str,
}

impl<'de> Visitor<'de> for BatchVisitor {
    type Value = BatchBody<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut body = BatchBody { unexpected: None, items: None };
        let mut seen: Vec<Cow<'de, str>> = Vec::with_capacity(2);
        while let Some(Key(key)) = map.next_key()? {
            if seen.contains(&key) {
                return Err(serde::de::Error::custom(format!("duplicate key `{key}`")));
            }
            if key == self.field {
                body.items = map.next_value::<Items<'de>>()?.0;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
                body.unexpected.get_or_insert_with(|| key.clone());
            }
            seen.push(key);
        }
        Ok(body)
    }
}

/// A visitor's answer to any scalar (boolean, number, string): one fixed
/// value, the scalar is not kept.
macro_rules! scalars_answer {
    ($value:ty, $answer:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<$value, E> {
            Ok($answer)
        }
        fn visit_i64<E>(self, _: i64) -> Result<$value, E> {
            Ok($answer)
        }
        fn visit_u64<E>(self, _: u64) -> Result<$value, E> {
            Ok($answer)
        }
        fn visit_f64<E>(self, _: f64) -> Result<$value, E> {
            Ok($answer)
        }
        fn visit_str<E>(self, _: &str) -> Result<$value, E> {
            Ok($answer)
        }
    };
}

/// The array of a batch: `None` for `null`, `Some(None)` for any other
/// non-array value.
struct Items<'a>(Option<Option<Vec<Option<JsonObject<'a>>>>>);

impl<'de> serde::Deserialize<'de> for Items<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemsVisitor;
        impl<'de> Visitor<'de> for ItemsVisitor {
            type Value = Items<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Items<'de>, A::Error> {
                // The body's size bound (limits) bounds the item count.
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(limits::BATCH_ITEMS_MAX));
                while let Some(Item(item)) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Items(Some(Some(items))))
            }
            fn visit_unit<E>(self) -> Result<Items<'de>, E> {
                Ok(Items(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Items<'de>, A::Error> {
                ignore_map(map).map(|_| Items(Some(None)))
            }
            scalars_answer!(Items<'de>, Items(Some(None)));
        }
        deserializer.deserialize_any(ItemsVisitor)
    }
}

/// One batch item: its fields when it is a JSON object without repeated
/// keys, `None` otherwise (the item's own error, not the batch's).
struct Item<'a>(Option<JsonObject<'a>>);

impl<'de> serde::Deserialize<'de> for Item<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = Item<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a batch item")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item<'de>, A::Error> {
                let mut fields: Vec<(Cow<'de, str>, &'de str)> = Vec::with_capacity(FIELDS_EXPECTED);
                let mut repeated = false;
                while let Some(Key(key)) = map.next_key()? {
                    let value: &'de RawValue = map.next_value()?;
                    repeated |= fields.iter().any(|(seen, _)| *seen == key);
                    fields.push((key, value.get()));
                }
                Ok(Item((!repeated).then_some(JsonObject { fields })))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Item<'de>, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Item(None))
            }
            fn visit_unit<E>(self) -> Result<Item<'de>, E> {
                Ok(Item(None))
            }
            scalars_answer!(Item<'de>, Item(None));
        }
        deserializer.deserialize_any(ItemVisitor)
    }
}

fn ignore_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
    Ok(())
}

/// The string a raw JSON value holds, borrowed when it has no escapes.
fn raw_string(text: &str) -> Option<Cow<'_, str>> {
    if !text.starts_with('"') {
        return None;
    }
    if !text.contains('\\') {
        return Some(Cow::Borrowed(&text[1..text.len() - 1]));
    }
    serde_json::from_str::<String>(text).ok().map(Cow::Owned)
}

/// Query parameters, refusing any not in `known` (400 INVALID_FIELD).
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(uri: &Uri, known: &[&str]) -> ApiResult<Self> {
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
        for (key, _) in &pairs {
            if !known.contains(&key.as_str()) {
                return Err(invalid_field(key, "is not a query parameter of this endpoint"));
            }
            if pairs.iter().filter(|(other, _)| other == key).count() > 1 {
                return Err(invalid_field(key, "is given more than once"));
            }
        }
        Ok(Self { pairs })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// `limit`: 1 to 1000, default 100.
    pub fn limit(&self) -> ApiResult<usize> {
        match self.get("limit") {
            None => Ok(limits::PAGE_ITEMS_DEFAULT),
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|limit| (1..=limits::PAGE_ITEMS_MAX).contains(limit))
                .ok_or_else(|| invalid_field("limit", "must be a whole number from 1 to 1000")),
        }
    }

    /// A cursor is the position after which the next page starts; this
    /// server's cursors are decimal numbers, opaque to clients.
    pub fn cursor(&self) -> ApiResult<Option<u64>> {
        match self.get("cursor") {
            None => Ok(None),
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
                .map(Some)
                .ok_or_else(|| invalid_field("cursor", "is not a cursor this server gave")),
        }
    }

    pub fn instant_ms(&self, name: &str) -> ApiResult<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => crate::clock::parse_instant_ms(text)
                .map(Some)
                .ok_or_else(|| invalid_field(name, "must be an RFC 3339 instant or a date like 2026-11-24")),
        }
    }
}

/// One page of a list kept in lsn order (`?limit`, `?cursor` = the last lsn
/// of the previous page): `{"items": [...], "next_cursor": "lsn" | null}`.
pub fn lsn_page<'a, T, V: serde::Serialize>(
    list: &'a [T],
    lsn: impl Fn(&T) -> u64,
    after_lsn: u64,
    limit: usize,
    view: impl Fn(&'a T) -> V,
) -> serde_json::Value {
    let start = list.partition_point(|item| lsn(item) <= after_lsn);
    let page = &list[start..list.len().min(start.saturating_add(limit))];
    let items: Vec<V> = page.iter().map(view).collect();
    let more = start + page.len() < list.len();
    let next_cursor = page.last().filter(|_| more).map(|item| lsn(item).to_string());
    serde_json::json!({"items": items, "next_cursor": next_cursor})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(limits: &BodyLimits, body: Body) -> Result<(Bytes, Option<OwnedSemaphorePermit>), BodyRead> {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(read_body_budgeted(&HeaderMap::new(), body, limits))
    }

    fn chunked(chunks: usize, chunk_bytes: usize) -> Body {
        let stream = futures::stream::iter(
            (0..chunks).map(move |_| Ok::<_, std::convert::Infallible>(Bytes::from(vec![b'x'; chunk_bytes]))),
        );
        Body::from_stream(stream)
    }

    /// Each item's field names, or `None` for an item that is not an object.
    type ItemKeys = Vec<Option<Vec<String>>>;

    fn batch_items(body: &str) -> Result<Option<Option<ItemKeys>>, ErrorCode> {
        let keys = |item: Option<&JsonObject>| {
            item.map(|object| object.fields.iter().map(|(key, _)| key.to_string()).collect::<Vec<_>>())
        };
        let parsed = BatchBody::read_each(body.as_bytes(), "transfers", keys).map_err(|error| error.code)?;
        if parsed.unexpected.is_some() {
            return Err(ErrorCode::UnexpectedField);
        }
        Ok(parsed.items)
    }

    #[test]
    fn a_batch_body_is_read_in_one_pass_with_the_same_answers() {
        let keys = |names: &[&str]| Some(names.iter().map(|name| name.to_string()).collect::<Vec<_>>());
        assert_eq!(
            batch_items(r#"{"transfers":[{"id":"a","amount":"1"},7,"x",null,[1,{"a":2}],{"id":1,"id":2},{}]}"#),
            Ok(Some(Some(vec![keys(&["id", "amount"]), None, None, None, None, None, keys(&[])])))
        );
        assert_eq!(batch_items(r#"{"transfers":null}"#), Ok(None));
        assert_eq!(batch_items(r#"{}"#), Ok(None));
        for not_an_array in [r#"{"transfers":{"a":[1]}}"#, r#"{"transfers":"x"}"#, r#"{"transfers":1.5}"#] {
            assert_eq!(batch_items(not_an_array), Ok(Some(None)), "{not_an_array}");
        }
        assert_eq!(batch_items(r#"{"transfers":[],"extra":{"x":1}}"#), Err(ErrorCode::UnexpectedField));
        for invalid in
            [r#"[]"#, r#"{"transfers":[{"a":1}]"#, r#"{"transfers":[],"transfers":[]}"#, r#"{"transfers":[]} x"#]
        {
            assert_eq!(batch_items(invalid), Err(ErrorCode::InvalidJson), "{invalid}");
        }
    }

    #[test]
    fn each_item_is_read_alike_by_either_reader() {
        let ids = |body: &str| -> Result<Option<Option<Vec<Option<String>>>>, ErrorCode> {
            let read = BatchBody::read_each(body.as_bytes(), "transfers", |item| {
                item.map(|object| object.string("id").ok().flatten().unwrap_or_default().into_owned())
            })
            .map_err(|error| error.code)?;
            Ok(read.items)
        };
        let expected = Ok(Some(Some(vec![Some("a".to_owned()), None, Some("c".to_owned())])));
        // The scanner's shape, and two bodies it leaves to serde_json (an
        // escape; a number) with the same items.
        assert_eq!(ids(r#"{"transfers":[{"id":"a"},{"id":"x","id":"y"},{"id":"c"}]}"#), expected);
        assert_eq!(ids(r#"{"transfers":[{"id":"\u0061"},{"id":"x","id":"y"},{"id":"c"}]}"#), expected);
        assert_eq!(ids(r#"{"transfers":[{"id":"a","n":1},7,{"id":"c"}]}"#), expected);
        assert_eq!(ids(r#"{"transfers":"x"}"#), Ok(Some(None)));
        assert_eq!(ids(r#"{"transfers":[{"id":"a"}"#), Err(ErrorCode::InvalidJson));
    }

    #[test]
    fn bodies_take_budget_as_they_arrive_and_give_it_back() {
        let limits = BodyLimits::new(8 * 1024, 10 * 1024);
        let (first, held_first) = read(&limits, chunked(8, 1000)).ok().unwrap();
        assert_eq!(first.len(), 8000);
        assert_eq!(limits.budget_kib.available_permits(), 10 - 8);
        // A second body of 8 KB does not fit while the first is held.
        assert!(matches!(read(&limits, chunked(8, 1000)), Err(BodyRead::OverBudget)));
        assert_eq!(limits.budget_kib.available_permits(), 2, "a refused body gives back what it took");
        drop(held_first);
        assert_eq!(limits.budget_kib.available_permits(), 10);
        let (_, held) = read(&limits, chunked(8, 1000)).ok().unwrap();
        assert!(held.is_some());
    }

    #[test]
    fn an_empty_body_takes_nothing_and_an_oversized_one_is_too_large() {
        let limits = BodyLimits::new(4096, 4096);
        let (bytes, held) = read(&limits, Body::empty()).ok().unwrap();
        assert!(bytes.is_empty() && held.is_none());
        assert!(matches!(read(&limits, chunked(5, 1000)), Err(BodyRead::TooLarge)));
        assert_eq!(limits.budget_kib.available_permits(), 4);
    }

    #[test]
    fn a_declared_length_sizes_the_buffer_but_the_budget_follows_the_bytes() {
        let limits = BodyLimits::new(8 * 1024, 10 * 1024);
        let declared = |length: usize| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_LENGTH, length.to_string().parse().unwrap());
            headers
        };
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (bytes, held) =
            runtime.block_on(read_body_budgeted(&declared(8000), chunked(8, 1000), &limits)).ok().unwrap();
        assert_eq!(bytes.len(), 8000);
        assert_eq!(limits.budget_kib.available_permits(), 10 - 8);
        // Declaring 8 KB and sending 2 holds 2 KB of budget, not 8.
        let (short, held_short) =
            runtime.block_on(read_body_budgeted(&declared(8000), chunked(2, 1000), &limits)).ok().unwrap();
        assert_eq!(short.len(), 2000);
        assert_eq!(limits.budget_kib.available_permits(), 0);
        drop((held, held_short));
        assert_eq!(limits.budget_kib.available_permits(), 10);
    }

    #[test]
    fn the_budget_is_never_below_one_body() {
        let limits = BodyLimits::new(64 * 1024, 1024);
        assert!(read(&limits, chunked(64, 1024)).is_ok());
    }
}
