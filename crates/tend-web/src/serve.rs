//! The HTTP/1 server loop: hyper's connection builder rather than `axum::serve`, for
//! what axum cannot set: a deadline on request headers (which also closes idle
//! keep-alive connections), a cap on open connections, and a bounded shutdown.

use crate::{AppState, router};
use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower_service::Service;

/// A connection's read buffer; hyper's default of about 400 KB would let every open
/// connection hold that much for nothing.
const CONNECTION_BUFFER_BYTES: usize = 64 * 1024;
/// A request's start line and headers; a Segment call's take a few hundred bytes.
/// Larger heads get a 431.
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// How long and how many: the bounds every connection lives within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// How long a connection may take to send a request's complete headers, counted
    /// from when it opened or its previous response ended; so it is also how long an
    /// idle keep-alive connection stays open.
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive once its handler starts reading it.
    pub body_timeout: Duration,
    /// Connections open at once; further clients wait in the listen queue.
    pub max_connections: usize,
    /// After a shutdown signal, how long requests in progress may take to finish before
    /// the connections still open are dropped.
    pub shutdown_grace: Duration,
}

impl Default for HttpLimits {
    /// `[http]`'s defaults: 512 connections stay well under the usual 1,024 open
    /// files, leaving room for the database, SMTP and webhook connections.
    fn default() -> Self {
        HttpLimits::from_http(&tend_core::config::Http::default())
    }
}

impl HttpLimits {
    /// The limits `[http]` in `tend.toml` sets.
    pub fn from_config(config: &tend_core::config::Config) -> Self {
        HttpLimits::from_http(&config.http)
    }

    fn from_http(http: &tend_core::config::Http) -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(http.header_timeout.as_secs()),
            body_timeout: Duration::from_secs(http.body_timeout.as_secs()),
            max_connections: http.max_connections as usize,
            shutdown_grace: Duration::from_secs(http.shutdown_grace.as_secs()),
        }
    }
}

/// Serves until `shutdown` resolves, then lets requests in progress finish for up to
/// [`HttpLimits::shutdown_grace`] and drops the connections still open.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.limits;
    // A console simulation stops with the server rather than outliving it.
    let simulations = state.simulations();
    let shutdown = async move {
        shutdown.await;
        simulations.shutdown();
    };
    let app = router(state);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stopping, stop_seen) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => {
                permit.expect("the connection semaphore is never closed")
            }
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => (stream, peer),
                Err(err) => {
                    // Out of file descriptors or a connection reset before accept: wait a
                    // little instead of spinning, and keep serving the connections open.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let mut stop_seen = stop_seen.clone();
        connections.spawn(async move {
            let _permit = permit;
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(CONNECTION_BUFFER_BYTES)
                .max_header_size(MAX_HEADER_BYTES)
                .serve_connection(TokioIo::new(stream), RouterService(app, peer));
            tokio::pin!(connection);
            let stop = async move {
                let _ = stop_seen.wait_for(|stop| *stop).await;
            };
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stop => {
                    // Finishes the request in progress, if any, then closes.
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "shutdown: dropping connections still open after the grace period"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// The router as a hyper service for one connection; each request carries the peer's
/// address (the console's login rate limit counts failures per address).
#[derive(Clone)]
struct RouterService(Router, std::net::SocketAddr);

impl hyper::service::Service<hyper::Request<Incoming>> for RouterService {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = <Router as Service<axum::extract::Request>>::Future;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        // A router is always ready, so `poll_ready` has nothing to wait for.
        let mut request = request.map(Body::new);
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(self.1));
        self.0.clone().call(request)
    }
}
