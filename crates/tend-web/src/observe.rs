//! One span per request: method, the route that matched (never the raw path, which can
//! hold an unsubscribe token, nor the query, which can hold a calendar token), status,
//! latency and a request id, taken from `X-Request-Id` or made here, and returned.

use crate::AppState;
use crate::error::ErrorCode;
use crate::openapi::Documented;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;
use tracing::field::Empty;

/// The header a request id arrives in and is returned in.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The route label of requests no route matched: one label, whatever the path.
const OTHER_ROUTE: &str = "other";

/// Longest request id taken from a client; a longer one is replaced.
const MAX_REQUEST_ID: usize = 128;

/// The route template that served a response (`/api/contacts/{id}`), left on the
/// response by [`matched_route`] for [`request`].
#[derive(Debug, Clone)]
pub struct MatchedRoute(pub Arc<str>);

/// The outer layer: opens the request's span, times the request, records its status,
/// counts it and answers with its request id.
pub async fn request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| acceptable_request_id(id))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route = Empty,
        request_id = %request_id,
        status = Empty,
        latency_ms = Empty,
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    let latency = started.elapsed();
    let status = response.status().as_u16();
    let route = match response.extensions().get::<MatchedRoute>() {
        Some(MatchedRoute(route)) => Arc::clone(route),
        None => {
            // No route matched, so `matched_route` did not run.
            span.record("route", OTHER_ROUTE);
            Arc::from(OTHER_ROUTE)
        }
    };
    state.metrics.http_request(&route, status, latency);
    if status >= 400 && route.starts_with("/v1/") {
        let reason = response
            .extensions()
            .get::<ErrorCode>()
            .map_or("other", |code| code.0);
        state.metrics.ingest_rejected(reason);
    }
    span.record("status", status);
    // Microseconds are as fine as a request's timing means anything.
    span.record("latency_ms", latency.as_micros() as f64 / 1000.0);
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!("request failed");
        } else {
            tracing::info!("request");
        }
    });
    if let Ok(value) = HeaderValue::try_from(request_id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    response
}

/// The inner layer, on every route: names the matched route template on the span and
/// on the response, and holds the `/v1` and `/api` routes to the OpenAPI document.
///
/// A route under `/v1` or `/api` that the document does not describe is logged as an
/// error; in debug builds (every test) it answers 500 instead, so a route added without
/// its `#[utoipa::path]` fails the first test that calls it.
pub async fn matched_route(
    State(documented): State<Documented>,
    request: Request,
    next: Next,
) -> Response {
    let route: Arc<str> = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| Arc::from(p.as_str()))
        .unwrap_or_else(|| Arc::from(OTHER_ROUTE));
    tracing::Span::current().record("route", &*route);
    let method = request.method().clone();
    let mut response = next.run(request).await;
    if response.status() != StatusCode::METHOD_NOT_ALLOWED && !documented.covers(&method, &route) {
        tracing::error!(
            %method,
            route = &*route,
            "served a route /api/openapi.json does not describe: add #[utoipa::path] and \
             register it with utoipa_axum::routes!"
        );
        if cfg!(debug_assertions) {
            response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    }
    response.extensions_mut().insert(MatchedRoute(route));
    response
}

/// A client's id is kept when it is short and made of characters that cannot forge a
/// log line or carry an address: letters, digits and `-_.:`.
fn acceptable_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// 128 random bits as 32 hex digits.
fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clients_request_id_is_kept_only_when_it_is_plain() {
        assert!(acceptable_request_id("req-42_a.b:c"));
        assert!(!acceptable_request_id(""));
        assert!(!acceptable_request_id("ann@example.com"));
        assert!(!acceptable_request_id("a b"));
        assert!(!acceptable_request_id("line\nbreak"));
        assert!(!acceptable_request_id(&"x".repeat(MAX_REQUEST_ID + 1)));
        let made = new_request_id();
        assert_eq!(made.len(), 32);
        assert!(acceptable_request_id(&made));
    }

    /// A `/v1` route served without being in the document fails in a test build; a
    /// documented one and a console page pass.
    #[tokio::test]
    async fn an_undocumented_api_route_answers_500_in_tests() {
        use axum::body::Body;
        use axum::middleware::from_fn_with_state;
        use axum::routing::{get, post};
        use tower_service::Service;
        use utoipa::OpenApi;
        use utoipa_axum::{router::OpenApiRouter, routes};

        /// A documented operation.
        #[utoipa::path(get, path = "/api/documented", responses((status = 200)))]
        async fn documented() -> &'static str {
            "ok"
        }
        let (router, document) = OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
            .routes(routes!(documented))
            .split_for_parts();
        let app = router
            .route("/v1/mail/bounces", post(|| async { "ok" }))
            .route("/contacts", get(|| async { "ok" }))
            .route_layer(from_fn_with_state(
                Documented::new(&document),
                matched_route,
            ));
        let status = |method: &str, uri: &str| {
            let request = axum::http::Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap();
            let mut app = app.clone();
            async move { app.call(request).await.unwrap().status() }
        };
        assert_eq!(status("GET", "/api/documented").await, StatusCode::OK);
        assert_eq!(status("GET", "/contacts").await, StatusCode::OK);
        assert_eq!(
            status("POST", "/v1/mail/bounces").await,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status("POST", "/api/documented").await,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
