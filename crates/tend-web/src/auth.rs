//! Who is calling: Segment write keys (HTTP Basic user name) and REST bearer tokens.

use crate::AppState;
use crate::error::AppError;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine;
use tend_store::{ApiToken, TokenScope, tokens::hash_token};

/// Resolves the token a Segment client presents: the Basic-auth user name, as Segment's
/// libraries send it (`base64(writeKey + ":")`), or a Bearer token.
pub async fn write_key(state: &AppState, headers: &HeaderMap) -> Result<ApiToken, AppError> {
    let presented = match authorization(headers)? {
        Some(Credentials::Basic(user)) | Some(Credentials::Bearer(user)) => user,
        None => return Err(AppError::Unauthorized),
    };
    let token = lookup(state, &presented).await?;
    // An admin token is a superset of a write key; a calendar token reads one feed only.
    match token.scope {
        TokenScope::Write | TokenScope::Admin => Ok(token),
        TokenScope::Calendar | TokenScope::Metrics => Err(AppError::Forbidden),
    }
}

/// Resolves a REST bearer token and requires the admin scope.
pub async fn admin(state: &AppState, headers: &HeaderMap) -> Result<ApiToken, AppError> {
    let Some(Credentials::Bearer(presented)) = authorization(headers)? else {
        return Err(AppError::Unauthorized);
    };
    let token = lookup(state, &presented).await?;
    match token.scope {
        TokenScope::Admin => Ok(token),
        TokenScope::Write | TokenScope::Calendar | TokenScope::Metrics => Err(AppError::Forbidden),
    }
}

/// Resolves a scraper's bearer token: metrics and admin tokens may read `/metrics`.
pub async fn metrics(state: &AppState, headers: &HeaderMap) -> Result<ApiToken, AppError> {
    let Some(Credentials::Bearer(presented)) = authorization(headers)? else {
        return Err(AppError::Unauthorized);
    };
    let token = lookup(state, &presented).await?;
    match token.scope {
        TokenScope::Metrics | TokenScope::Admin => Ok(token),
        TokenScope::Write | TokenScope::Calendar => Err(AppError::Forbidden),
    }
}

/// Resolves the token a calendar app keeps in the feed's URL (`?token=`); calendar and
/// admin tokens may read the feed.
pub async fn calendar(state: &AppState, presented: Option<&str>) -> Result<ApiToken, AppError> {
    let token = lookup(state, presented.unwrap_or_default()).await?;
    match token.scope {
        TokenScope::Calendar | TokenScope::Admin => Ok(token),
        TokenScope::Write | TokenScope::Metrics => Err(AppError::Forbidden),
    }
}

enum Credentials {
    Basic(String),
    Bearer(String),
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

async fn lookup(state: &AppState, presented: &str) -> Result<ApiToken, AppError> {
    if presented.is_empty() {
        return Err(AppError::Unauthorized);
    }
    let hash = hash_token(presented);
    if let Some(token) = state.token_cache.read().await.get(&hash) {
        return Ok(token.clone());
    }
    let token = state
        .store
        .find_token(&hash)
        .await?
        .ok_or(AppError::Unauthorized)?;
    // Only known tokens are cached, so a token created while the server runs still works.
    state.token_cache.write().await.insert(hash, token.clone());
    Ok(token)
}
