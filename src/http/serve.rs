//! The HTTP/1.1 server loop: accept, serve each connection with hyper's
//! connection builder, stop gracefully.
//!
//! Why not `axum::serve`: it gives no handle on the connection limits, and a
//! ledger must bound what one slow or hostile client can hold. Every bound
//! here comes from [`crate::limits`]:
//!
//! - a client gets [`limits::HEADER_READ_TIMEOUT_S`] to send a request's
//!   headers (slowloris). hyper restarts that timer whenever it waits for the
//!   next request on a kept-alive connection, so the same bound is the
//!   keep-alive idle timeout;
//! - headers over [`limits::HEADER_BYTES_MAX`] bytes or
//!   [`limits::HEADERS_COUNT_MAX`] fields get `431` and the connection closes;
//! - on shutdown, no new connection is accepted, idle connections close,
//!   requests in flight are answered, and connections still busy after
//!   [`limits::SHUTDOWN_DRAIN_S`] are dropped so the process always exits.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::limits;

/// The connection settings every accepted connection is served with.
pub fn connection_builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits::HEADER_READ_TIMEOUT_S))
        .max_header_size(limits::HEADER_BYTES_MAX)
        .max_headers(limits::HEADERS_COUNT_MAX)
        .keep_alive(true);
    builder
}

/// Serves `app` on `listener` until `shutdown` turns true, then drains.
/// Where requests go: `early` until `ledger` is set (once recovery is
/// done), then `ledger`.
#[derive(Clone)]
pub struct Routers {
    pub early: Router,
    pub ledger: Arc<OnceLock<Router>>,
}

impl Routers {
    fn current(&self) -> &Router {
        self.ledger.get().unwrap_or(&self.early)
    }
}

pub async fn serve(listener: TcpListener, app: Routers, mut shutdown: watch::Receiver<bool>) {
    let builder = connection_builder();
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut shutdown) => break,
        };
        // Reap finished connections so the set stays as large as the live ones.
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                accept_error(error).await;
                continue;
            }
        };
        // Answers are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            app.current().clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let mut shutdown = shutdown.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => log_connection_end(result),
                _ = stopped(&mut shutdown) => {
                    connection.as_mut().graceful_shutdown();
                    log_connection_end(connection.await);
                }
            }
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(Duration::from_secs(limits::SHUTDOWN_DRAIN_S), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            seconds = limits::SHUTDOWN_DRAIN_S,
            "connections still busy after the drain time; dropping them"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

/// Resolves once shutdown starts (the guard `wait_for` returns is not
/// `Send`, so it is dropped in here).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

fn log_connection_end(result: Result<(), hyper::Error>) {
    if let Err(error) = result {
        // Timeouts, oversized headers, resets: the client's doing, not ours.
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// Out of file descriptors and the like: wait instead of spinning. Errors
/// of one connection (reset before accept) need no wait.
async fn accept_error(error: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(error.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted) {
        return;
    }
    tracing::error!(%error, "accept failed; retrying shortly");
    tokio::time::sleep(Duration::from_millis(limits::ACCEPT_ERROR_BACKOFF_MS)).await;
}
