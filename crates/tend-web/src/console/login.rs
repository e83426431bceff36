//! `GET /login`, `POST /login` and `POST /logout`.
//!
//! The login form has no session yet, so its CSRF token is a random value in a
//! short-lived cookie that the form must repeat (a cross-site page can neither read
//! the cookie nor, with SameSite=Strict, have it sent).

use super::layout::{PageError, document, redirect};
use super::session::{
    self, LOGIN_CSRF_COOKIE, LOGIN_WINDOW_MINUTES, SESSION_COOKIE, current_session, end_session,
    random_hex, start_session, verify_password, with_cookie,
};
use crate::AppState;
use crate::body::read;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use maud::{Markup, html};
use std::net::SocketAddr;
use std::sync::LazyLock;

/// A real argon2id hash of nothing anyone types, checked when the account is unknown so
/// a login takes as long whether or not the address has an account.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| session::hash_password(&random_hex()).unwrap_or_default());

/// `GET /login`: the form; a logged-in browser goes to Today.
pub async fn form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if current_session(&state, &headers).await.is_some() {
        return redirect("/today");
    }
    login_page(&state, None, "")
}

fn login_page(state: &AppState, error: Option<&str>, email: &str) -> Response {
    let token = random_hex();
    let response = document("Log in", login_form(&token, error, email));
    let cookie = session::set_cookie(state, LOGIN_CSRF_COOKIE, &token, 3600);
    with_cookie(response, cookie)
}

fn login_form(token: &str, error: Option<&str>, email: &str) -> Markup {
    html! {
        main id="main" .narrow {
            h1 { "Tend" }
            form method="post" action="/login" id="login-form" data-testid="login-form" {
                input type="hidden" name="csrf" value=(token);
                @if let Some(error) = error {
                    p.error role="alert" data-testid="login-error" { (error) }
                }
                label for="email" { "Email" }
                input type="email" id="email" name="email" autocomplete="username"
                    required value=(email);
                label for="password" { "Password" }
                input type="password" id="password" name="password"
                    autocomplete="current-password" required;
                button type="submit" id="login" data-testid="login" { "Log in" }
            }
            p.hint { "No account yet? On the server, run " code { "tend user add EMAIL --role owner" } "." }
        }
    }
}

/// `POST /login` with `email`, `password` and `csrf`.
pub async fn submit(State(state): State<AppState>, request: Request) -> Response {
    match login(&state, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn login(state: &AppState, request: Request) -> Result<Response, PageError> {
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    let (parts, body) = request.into_parts();
    let bytes = read(
        &parts.headers,
        body,
        session::FORM_BYTES,
        state.limits.body_timeout,
    )
    .await
    .map_err(|e| PageError::BadRequest(e.to_string()))?;
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
        .map_err(|_| PageError::BadRequest("the form could not be read".into()))?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let expected = session::cookie(&parts.headers, LOGIN_CSRF_COOKIE);
    if !expected.is_some_and(|cookie| session::same(&cookie, field("csrf"))) {
        return Err(PageError::Forbidden(
            "the login form's CSRF token is missing or stale; reload the page",
        ));
    }
    let email = field("email").trim().to_lowercase();
    let password = field("password");
    let now = Timestamp::now();
    let Some(attempt) = session::claim_login_attempt(state, address, &email, now).await? else {
        return Err(PageError::TooManyAttempts(LOGIN_WINDOW_MINUTES));
    };
    let user = state.store.user_by_email(&email).await?;
    let hash = user
        .as_ref()
        .map_or(DUMMY_HASH.as_str(), |u| u.password_hash.as_str());
    let password = password.to_owned();
    let hash = hash.to_owned();
    // Argon2 takes tens of milliseconds of CPU: off the async workers.
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    match user {
        Some(user) if matches => {
            session::forget_login_attempt(state, &attempt).await?;
            let cookie = start_session(state, &user).await?;
            let response = with_cookie(redirect("/today"), cookie);
            Ok(with_cookie(
                response,
                session::set_cookie(state, LOGIN_CSRF_COOKIE, "", 0),
            ))
        }
        _ => {
            let mut response = login_page(state, Some("Wrong email or password."), &email);
            *response.status_mut() = axum::http::StatusCode::UNAUTHORIZED;
            Ok(response)
        }
    }
}

/// `POST /logout`: ends the session and clears its cookie.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(err) = end_session(&state, &headers).await {
        return err.into_response();
    }
    with_cookie(
        redirect("/login"),
        session::set_cookie(&state, SESSION_COOKIE, "", 0),
    )
}
