//! The console's only way into the ledger: the JSON API, called in-process.
//!
//! Each console page or action builds the `/v1/...` request a client
//! would send, with the session's bearer token, and runs it through the
//! API router (its middleware included: body limits, the in-flight bound,
//! every role check). So the console shows and does exactly what the
//! token may, and a wrong role's action is refused by the same code that
//! refuses it over HTTP. Owns the call and the reading of the answer; must
//! not reach into actors, the log or read models.

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::limits;

/// A refusal (or failure) of the API, shown to staff as it came.
#[derive(Clone, Debug)]
pub struct Failure {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl Failure {
    pub fn console(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self { status, code: code.to_owned(), message: message.into() }
    }
}

#[derive(Clone)]
pub struct ApiClient {
    api: Router,
}

impl ApiClient {
    pub fn new(api: Router) -> Self {
        Self { api }
    }

    /// Sends one request and returns the raw answer (for CSV and receipt
    /// pages, passed through).
    pub async fn raw(&self, token: &str, method: Method, path: &str, body: Option<&Value>) -> Response {
        let mut request = Request::builder().method(method).uri(path);
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
            request = request.header(header::AUTHORIZATION, value);
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(json).unwrap_or_default())
            }
            None => Body::empty(),
        };
        let request = match request.body(body) {
            Ok(request) => request,
            Err(_) => return failure_response(StatusCode::BAD_REQUEST),
        };
        match self.api.clone().oneshot(request).await {
            Ok(response) => response,
            Err(infallible) => match infallible {},
        }
    }

    /// Sends one request and reads its JSON answer: `Ok` for 2xx, the
    /// API's error otherwise.
    pub async fn call(&self, token: &str, method: Method, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let response = self.raw(token, method, path, body).await;
        let status = response.status().as_u16();
        let bytes = match http_body_util::Limited::new(response.into_body(), limits::CONSOLE_API_ANSWER_BYTES_MAX)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return Err(Failure::console(status, "ANSWER_TOO_LARGE", "the answer is too large to show")),
        };
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(json);
        }
        let error = &json["error"];
        Err(Failure {
            status,
            code: error["code"].as_str().unwrap_or("ERROR").to_owned(),
            message: error["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned()),
        })
    }

    pub async fn get(&self, token: &str, path: &str) -> Result<Value, Failure> {
        self.call(token, Method::GET, path, None).await
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value) -> Result<Value, Failure> {
        self.call(token, Method::POST, path, Some(body)).await
    }
}

fn failure_response(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

/// Percent-encodes one path segment or query value.
pub fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
