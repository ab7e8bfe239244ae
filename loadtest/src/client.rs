//! A lean HTTP/1.1 client: one keep-alive connection per worker
//! (`hyper::client::conn::http1`), no pool, no locks, so the generator costs
//! the server as little CPU as possible on a shared machine.

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST, RETRY_AFTER};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

/// Upper bound of one request, answer included: a full batch on a loaded
/// server takes well under this; anything longer is counted as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the server is. Only loopback addresses are accepted: load from this
/// harness never leaves the machine.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    host: HeaderValue,
}

impl Endpoint {
    pub fn new(addr: SocketAddr) -> Result<Self> {
        if !addr.ip().is_loopback() {
            bail!("refusing to send load to {addr}: only loopback addresses (127.0.0.0/8, ::1) are allowed");
        }
        let host = HeaderValue::from_str(&addr.to_string())?;
        Ok(Self { addr, host })
    }

    /// `http://127.0.0.1:8080`, `127.0.0.1:8080` or `localhost:8080`.
    pub fn parse_url(url: &str) -> Result<Self> {
        let rest = url.strip_prefix("http://").unwrap_or(url);
        if rest.starts_with("https://") {
            bail!("https is not supported by the harness: {url}");
        }
        let authority = rest.split('/').next().unwrap_or(rest);
        let authority = match authority.strip_prefix("localhost:") {
            Some(port) => format!("127.0.0.1:{port}"),
            None => authority.to_string(),
        };
        let addr: SocketAddr =
            authority.parse().with_context(|| format!("--url {url:?}: expected http://127.0.0.1:PORT"))?;
        Self::new(addr)
    }
}

/// A bearer token, pre-rendered as a header value.
#[derive(Clone, Debug)]
pub struct Bearer(pub HeaderValue);

impl Bearer {
    pub fn new(token: &str) -> Result<Self> {
        Ok(Self(HeaderValue::from_str(&format!("Bearer {token}"))?))
    }
}

/// What came back: status, raw body, and `Retry-After` when the server shed load.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
    pub retry_after: Option<Duration>,
}

impl Answer {
    /// `"422 INSUFFICIENT_FUNDS"`: the status and `error.code` of the body.
    pub fn error_key(&self) -> String {
        error_key(self.status.as_u16(), &self.body)
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "answer {} is not JSON: {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            )
        })
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(500)]).into_owned()
    }
}

/// `"<status> <error.code>"` from an error body, `"<status>"` when it has none.
pub fn error_key(status: u16, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody<'a> {
        #[serde(borrow)]
        error: ErrorCode<'a>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorCode<'a> {
        #[serde(borrow)]
        code: std::borrow::Cow<'a, str>,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => format!("{status} {}", parsed.error.code),
        Err(_) => format!("{status}"),
    }
}

/// One keep-alive connection; reconnects lazily after any transport error.
pub struct Conn {
    endpoint: Endpoint,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub fn new(endpoint: Endpoint) -> Self {
        Self { endpoint, sender: None }
    }

    async fn connect(&mut self) -> Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_some_and(|s| s.is_closed()) {
            self.sender = None;
        }
        if self.sender.is_none() {
            let stream = TcpStream::connect(self.endpoint.addr)
                .await
                .with_context(|| format!("connect {}", self.endpoint.addr))?;
            stream.set_nodelay(true)?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                // The connection ends when the sender is dropped or the peer
                // closes; its error (if any) surfaces on the next request.
                let _ = connection.await;
            });
            self.sender = Some(sender);
        }
        self.sender.as_mut().ok_or_else(|| anyhow!("no connection"))
    }

    /// Sends one request. A transport error or timeout drops the connection
    /// (the next call reconnects) and is returned as an error.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        auth: Option<&Bearer>,
        extra_header: Option<(HeaderName, HeaderValue)>,
        body: Option<Bytes>,
    ) -> Result<Answer> {
        let result =
            tokio::time::timeout(REQUEST_TIMEOUT, self.send_inner(method, path, auth, extra_header, body)).await;
        match result {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(err)) => {
                self.sender = None;
                Err(err)
            }
            Err(_) => {
                self.sender = None;
                bail!("timeout after {}s", REQUEST_TIMEOUT.as_secs())
            }
        }
    }

    async fn send_inner(
        &mut self,
        method: Method,
        path: &str,
        auth: Option<&Bearer>,
        extra_header: Option<(HeaderName, HeaderValue)>,
        body: Option<Bytes>,
    ) -> Result<Answer> {
        let host = self.endpoint.host.clone();
        let mut builder = Request::builder().method(method).uri(path).header(HOST, host);
        if let Some(bearer) = auth {
            builder = builder.header(AUTHORIZATION, bearer.0.clone());
        }
        // A body is JSON unless the caller's own header says otherwise.
        let typed = extra_header.as_ref().is_some_and(|(name, _)| name == CONTENT_TYPE);
        if let Some((name, value)) = extra_header {
            builder = builder.header(name, value);
        }
        let request = match body {
            Some(bytes) if typed => builder.body(Full::new(bytes))?,
            Some(bytes) => {
                builder.header(CONTENT_TYPE, HeaderValue::from_static("application/json")).body(Full::new(bytes))?
            }
            None => builder.body(Full::new(Bytes::new()))?,
        };
        let sender = self.connect().await?;
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Answer { status, body, retry_after })
    }

    pub async fn get(&mut self, path: &str, auth: Option<&Bearer>) -> Result<Answer> {
        self.send(Method::GET, path, auth, None, None).await
    }

    pub async fn post(&mut self, path: &str, auth: Option<&Bearer>, body: Bytes) -> Result<Answer> {
        self.send(Method::POST, path, auth, None, Some(body)).await
    }

    /// POST with a body of another media type than JSON.
    pub async fn post_typed(
        &mut self,
        path: &str,
        auth: Option<&Bearer>,
        content_type: &'static str,
        body: Bytes,
    ) -> Result<Answer> {
        let header = (CONTENT_TYPE, HeaderValue::from_static(content_type));
        self.send(Method::POST, path, auth, Some(header), Some(body)).await
    }
}

/// A short, stable name for a transport error, used as an error-table key.
pub fn transport_key(err: &anyhow::Error) -> String {
    let text = format!("{err:#}");
    let kind = if text.contains("timeout") {
        "timeout"
    } else if text.contains("Connection refused") || text.contains("connect") {
        "connect"
    } else if text.contains("reset") || text.contains("closed") || text.contains("incomplete") {
        "connection closed"
    } else {
        "other"
    };
    format!("transport {kind}")
}
