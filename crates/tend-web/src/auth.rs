//! Who is calling: Segment write keys (HTTP Basic user name, a Bearer token or `writeKey`
//! in the body) and REST bearer tokens.
//!
//! Every route group is wrapped in one of the guards below by [`crate::router`], so a
//! handler cannot forget to check, and the check runs before its body is read.

use crate::AppState;
use crate::error::AppError;
use axum::extract::{Query, Request, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use jiff::Timestamp;
use tend_store::{ApiToken, TokenScope, tokens::hash_token};

/// How often a token's last use is written back: a busy write key costs one write a
/// minute, not one per request.
const LAST_USED_PRECISION_MS: i64 = 60_000;

/// The token a guard let through, for handlers that need to know who called.
#[derive(Debug, Clone)]
pub struct Caller(pub ApiToken);

/// Guard of the REST API under `/api`: admin tokens only.
pub async fn admin_only(State(state): State<AppState>, request: Request, next: Next) -> Response {
    guard(&state, request, next, |headers| {
        bearer(headers).map(|t| (t, &[TokenScope::Admin][..]))
    })
    .await
}

/// Guard of `/metrics`: metrics or admin tokens.
pub async fn metrics_only(State(state): State<AppState>, request: Request, next: Next) -> Response {
    guard(&state, request, next, |headers| {
        bearer(headers).map(|t| (t, &[TokenScope::Metrics, TokenScope::Admin][..]))
    })
    .await
}

/// Guard of `/agenda.ics`: a calendar token in the URL (calendar apps cannot send
/// headers), or a calendar or admin token as a Bearer header. An admin token in a URL is
/// refused: URLs end up in logs, histories and Referer headers.
pub async fn calendar_only(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    #[derive(serde::Deserialize)]
    struct FeedQuery {
        token: Option<String>,
    }
    let in_query = Query::<FeedQuery>::try_from_uri(request.uri())
        .ok()
        .and_then(|Query(query)| query.token);
    guard(&state, request, next, move |headers| match in_query {
        Some(token) => Ok((token, &[TokenScope::Calendar][..])),
        None => bearer(headers).map(|t| (t, &[TokenScope::Calendar, TokenScope::Admin][..])),
    })
    .await
}

/// Guard of Segment ingest under `/v1`: a write key in the Authorization header is
/// checked here, before the body is read. A request without one may still carry
/// `writeKey` in its JSON body, as Segment's clients allow; the ingest extractor then
/// resolves it from a body read under the route's size and time limits, and refuses the
/// request if it has none.
pub async fn write_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match authorization(request.headers()) {
        Ok(None) => next.run(request).await,
        Ok(Some(Credentials::Basic(key) | Credentials::Bearer(key))) => {
            match ingest_token(&state, &key).await {
                Ok(token) => {
                    request.extensions_mut().insert(Caller(token));
                    next.run(request).await
                }
                Err(err) => err.into_response(),
            }
        }
        Err(err) => err.into_response(),
    }
}

/// Resolves a write key presented in a body (`writeKey`): write and admin tokens may
/// send events.
pub async fn ingest_token(state: &AppState, presented: &str) -> Result<ApiToken, AppError> {
    // An admin token is a superset of a write key; a calendar token reads one feed only.
    lookup(state, presented, &[TokenScope::Write, TokenScope::Admin]).await
}

async fn guard(
    state: &AppState,
    mut request: Request,
    next: Next,
    presented: impl FnOnce(&HeaderMap) -> Result<(String, &'static [TokenScope]), AppError>,
) -> Response {
    let checked = match presented(request.headers()) {
        Ok((token, scopes)) => lookup(state, &token, scopes).await,
        Err(err) => Err(err),
    };
    match checked {
        Ok(token) => {
            request.extensions_mut().insert(Caller(token));
            next.run(request).await
        }
        Err(err) => err.into_response(),
    }
}

enum Credentials {
    Basic(String),
    Bearer(String),
}

fn bearer(headers: &HeaderMap) -> Result<String, AppError> {
    match authorization(headers)? {
        Some(Credentials::Bearer(token)) => Ok(token),
        Some(Credentials::Basic(_)) | None => Err(AppError::Unauthorized),
    }
}

fn authorization(headers: &HeaderMap) -> Result<Option<Credentials>, AppError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| AppError::Unauthorized)?;
    let (scheme, rest) = value.split_once(' ').ok_or(AppError::Unauthorized)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| AppError::Unauthorized)?;
        let decoded = String::from_utf8(decoded).map_err(|_| AppError::Unauthorized)?;
        let user = decoded.split_once(':').map_or(decoded.as_str(), |(u, _)| u);
        Ok(Some(Credentials::Basic(user.to_owned())))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Some(Credentials::Bearer(rest.to_owned())))
    } else {
        Err(AppError::Unauthorized)
    }
}

/// Looks the token up in the store on every request: one indexed read, so a token
/// revoked by `tend token revoke` (another process) stops working at once, which no
/// cache in this process could promise.
async fn lookup(
    state: &AppState,
    presented: &str,
    scopes: &[TokenScope],
) -> Result<ApiToken, AppError> {
    if presented.is_empty() {
        return Err(AppError::Unauthorized);
    }
    let token = state
        .store
        .find_token(&hash_token(presented))
        .await?
        .ok_or(AppError::Unauthorized)?;
    if !scopes.contains(&token.scope) {
        return Err(AppError::Forbidden);
    }
    note_use(state, &token).await;
    Ok(token)
}

/// Records when a token was last used, at most once a minute per token: one small write
/// a minute for a busy write key, instead of one per request.
async fn note_use(state: &AppState, token: &ApiToken) {
    let now = Timestamp::now().as_millisecond();
    let stored = token.last_used_at.map_or(i64::MIN, |t| t.as_millisecond());
    if now.saturating_sub(stored) < LAST_USED_PRECISION_MS {
        return;
    }
    {
        let mut written = state
            .token_uses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Another request is already writing this minute's use.
        if written
            .get(&token.id)
            .is_some_and(|at| now - at < LAST_USED_PRECISION_MS)
        {
            return;
        }
        written.insert(token.id, now);
    }
    let at = Timestamp::from_millisecond(now).unwrap_or_else(|_| Timestamp::now());
    if let Err(err) = state.store.record_token_use(token.id, at).await {
        // Bookkeeping only: the request goes on.
        tracing::warn!(token = token.id, error = %err, "could not record a token's last use");
    }
}
