//! Who is using the console: session cookies, the guard in front of every page, the
//! CSRF check of every form, passwords and the login rate limit.
//!
//! The guard runs before a handler or a body is read: without a live session a page
//! redirects to the login form. A POST's body (a form, at most [`FORM_BYTES`]; or the
//! Import page's multipart upload, at most [`import::UPLOAD_BYTES`] of file) is then
//! read and must carry the session's CSRF token as `csrf`, or the request is refused
//! with 403; the parsed fields reach the handler as [`FormFields`].

use super::import;
use super::layout::{PageError, redirect};
use crate::AppState;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use tend_store::{Role, Session, User, tokens};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "tend_session";
/// The cookie holding the login form's CSRF token (there is no session yet).
pub const LOGIN_CSRF_COOKIE: &str = "tend_login_csrf";
/// How long a session lasts after login.
pub const SESSION_HOURS: i64 = 12;
/// Largest console form body.
pub const FORM_BYTES: usize = 64 * 1024;

/// The person behind a request, put there by [`require_session`].
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Who.
    pub user: User,
    /// The token every form of this session carries.
    pub csrf: String,
}

impl Viewer {
    /// Whether they may see everything.
    pub fn is_owner(&self) -> bool {
        self.user.role == Role::Owner
    }

    /// Refuses staff: owner-only pages and actions.
    pub fn require_owner(&self) -> Result<(), PageError> {
        if self.is_owner() {
            Ok(())
        } else {
            Err(PageError::Forbidden("only an owner may open this"))
        }
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, PageError> {
        parts
            .extensions
            .get::<Viewer>()
            .cloned()
            .ok_or(PageError::Forbidden("no session"))
    }
}

/// A POST's form fields, checked for the CSRF token.
#[derive(Debug, Clone, Default)]
pub struct FormFields(pub Vec<(String, String)>);

impl FormFields {
    /// The first value of a field, trimmed; `None` if absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }
}

impl FromRequestParts<AppState> for FormFields {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, PageError> {
        Ok(parts
            .extensions
            .get::<FormFields>()
            .cloned()
            .unwrap_or_default())
    }
}

/// The guard of every console page and action (see the module doc).
pub async fn require_session(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(session) = current_session(&state, request.headers()).await else {
        return redirect("/login");
    };
    let (mut parts, body) = request.into_parts();
    if parts.method == Method::POST {
        let fields = if import::is_upload(&parts) {
            if import::announced_too_large(&parts.headers) {
                return import::refuse_too_large(&state, body).await;
            }
            match import::read_upload(&state, &parts.headers, body).await {
                Ok((fields, file)) => {
                    parts.extensions.insert(file);
                    fields
                }
                Err(err) => return err.into_response(),
            }
        } else {
            let bytes = match crate::body::read(
                &parts.headers,
                body,
                FORM_BYTES,
                state.limits.body_timeout,
            )
            .await
            {
                Ok(bytes) => bytes,
                Err(err) => return PageError::BadRequest(err.to_string()).into_response(),
            };
            let Ok(fields) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes) else {
                return PageError::BadRequest("the form could not be read".into()).into_response();
            };
            FormFields(fields)
        };
        if !fields
            .get("csrf")
            .is_some_and(|sent| same(sent, &session.csrf))
        {
            return PageError::Forbidden(
                "the form's CSRF token is missing or stale; reload the page",
            )
            .into_response();
        }
        parts.extensions.insert(fields);
    }
    parts.extensions.insert(Viewer {
        user: session.user,
        csrf: session.csrf,
    });
    next.run(Request::from_parts(parts, axum::body::Body::empty()))
        .await
}

/// The live session named by the request's cookie, if any.
pub async fn current_session(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let token = cookie(headers, SESSION_COOKIE)?;
    let store = state.store.as_ref();
    match store
        .session(&tokens::hash_token(&token), Timestamp::now())
        .await
    {
        Ok(session) => session,
        Err(err) => {
            tracing::error!(error = %err, "reading a console session failed");
            None
        }
    }
}

/// A cookie's value from the request headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/`, Secure when the console
/// is reached over https; `max_age` 0 deletes it.
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if secure(state) { "; Secure" } else { "" };
    HeaderValue::try_from(format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie values are hex or ASCII names")
}

fn secure(state: &AppState) -> bool {
    state
        .engine
        .as_ref()
        .is_some_and(|e| e.project().config.public_url.starts_with("https://"))
}

/// Starts a session for `user`: stores it and returns the cookie to set.
pub async fn start_session(state: &AppState, user: &User) -> Result<HeaderValue, PageError> {
    let token = tokens::generate_token();
    let now = Timestamp::now();
    let expires = now
        .saturating_add(SignedDuration::from_hours(SESSION_HOURS))
        .unwrap_or(now);
    state
        .store
        .create_session(
            user.id,
            &tokens::hash_token(&token),
            &random_hex(),
            now,
            expires,
        )
        .await?;
    Ok(set_cookie(
        state,
        SESSION_COOKIE,
        &token,
        SESSION_HOURS * 3600,
    ))
}

/// Ends the request's session, if any.
pub async fn end_session(state: &AppState, headers: &HeaderMap) -> Result<(), PageError> {
    if let Some(token) = cookie(headers, SESSION_COOKIE) {
        state
            .store
            .delete_session(&tokens::hash_token(&token))
            .await?;
    }
    Ok(())
}

/// Sets a cookie on a response.
pub fn with_cookie(mut response: Response, cookie: HeaderValue) -> Response {
    response.headers_mut().append(SET_COOKIE, cookie);
    response
}

/// 32 random bytes as hex: CSRF tokens.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two secrets in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The argon2id PHC string of a password, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches a stored PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// The window failed logins are counted over.
pub const LOGIN_WINDOW_MINUTES: i64 = 15;
/// Failed logins allowed per account in the window.
pub const LOGIN_FAILURES_PER_ACCOUNT: u32 = 5;
/// Failed logins allowed per client address in the window.
pub const LOGIN_FAILURES_PER_ADDRESS: u32 = 20;

/// Claims a login attempt for `account` from `address` against the limits, counted in
/// the database so every node of the business shares them: `None` when either limit is
/// reached (the login is refused without checking the password), otherwise the
/// attempt's id, which counts as a failure until [`forget_login_attempt`] withdraws it.
pub async fn claim_login_attempt(
    state: &AppState,
    address: Option<IpAddr>,
    account: &str,
    now: Timestamp,
) -> Result<Option<String>, PageError> {
    let attempt = random_hex();
    let account = account_key(account);
    let address = address_key(address);
    let since = now
        .checked_sub(SignedDuration::from_mins(LOGIN_WINDOW_MINUTES))
        .unwrap_or(now);
    let claimed = state
        .store
        .claim_login_attempt(
            &attempt,
            &[
                (&account, LOGIN_FAILURES_PER_ACCOUNT),
                (&address, LOGIN_FAILURES_PER_ADDRESS),
            ],
            since,
            now,
        )
        .await?;
    Ok(claimed.then_some(attempt))
}

/// Withdraws a login attempt whose password was right: only failures count.
pub async fn forget_login_attempt(state: &AppState, attempt: &str) -> Result<(), PageError> {
    Ok(state.store.forget_login_attempt(attempt).await?)
}

fn account_key(account: &str) -> String {
    format!("account:{}", account.to_lowercase())
}

fn address_key(address: Option<IpAddr>) -> String {
    address.map_or_else(|| "address:unknown".to_owned(), |a| format!("address:{a}"))
}
