//! What every console page shares: the document around a page's body, the navigation,
//! the stylesheet (embedded, served under a content-hashed path), the page policy, the
//! error page and times in the business's zone.

use super::session::Viewer;
use crate::AppState;
use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use maud::{DOCTYPE, Markup, html};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// The console's stylesheet, embedded in the binary.
pub const STYLE: &str = include_str!("style.css");

/// `/static/console-<hash>.css`: a new stylesheet gets a new path, so browsers may keep
/// one for a year.
pub static STYLE_PATH: LazyLock<String> = LazyLock::new(|| {
    let digest = Sha256::digest(STYLE);
    let hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("/static/console-{hash}.css")
});

/// Console pages load their own stylesheet and nothing else; no script runs, nothing
/// comes from another origin, forms post back here, no site may frame them.
const PAGE_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `GET /static/{file}`: the stylesheet, cached for a year under its hashed name.
pub async fn stylesheet(Path(file): Path<String>) -> Response {
    if format!("/static/{file}") != *STYLE_PATH {
        return PageError::NotFound("file").into_response();
    }
    let mut response = STYLE.into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}

/// A whole page: `title`, the navigation with `current` marked, and `body`.
pub fn page(viewer: &Viewer, title: &str, current: &str, body: Markup) -> Response {
    page_with(viewer, title, current, None, body)
}

/// [`page`] that reloads itself every `seconds`, without script (a meta refresh), for
/// work that runs in the background.
pub fn page_refreshing(
    viewer: &Viewer,
    title: &str,
    current: &str,
    seconds: u32,
    body: Markup,
) -> Response {
    page_with(viewer, title, current, Some(seconds), body)
}

fn page_with(
    viewer: &Viewer,
    title: &str,
    current: &str,
    refresh: Option<u32>,
    body: Markup,
) -> Response {
    let nav_item = |href: &str, label: &str, id: &str| {
        html! {
            a href=(href) id=(id) data-testid=(id)
                aria-current=[(label == current).then_some("page")] { (label) }
        }
    };
    document_with(
        title,
        refresh,
        html! {
            header.top {
                nav aria-label="Console" {
                    (nav_item("/today", "Today", "nav-today"))
                    (nav_item("/contacts", "Contacts", "nav-contacts"))
                    @if viewer.is_owner() {
                        (nav_item("/processes", "Processes", "nav-processes"))
                        (nav_item("/deliveries", "Deliveries", "nav-deliveries"))
                        (nav_item("/reports", "Reports", "nav-reports"))
                        (nav_item("/simulate", "Simulate", "nav-simulate"))
                        (nav_item("/import", "Import", "nav-import"))
                        (nav_item("/settings", "Settings", "nav-settings"))
                    }
                }
                form.logout method="post" action="/logout" {
                    (csrf_field(viewer))
                    span.who data-testid="who" { (viewer.user.email) " (" (viewer.user.role.as_str()) ")" }
                    button type="submit" id="logout" data-testid="logout" { "Log out" }
                }
            }
            main id="main" { (body) }
        },
    )
}

/// The HTML document around any body, logged in or not.
pub fn document(title: &str, body: Markup) -> Response {
    document_with(title, None, body)
}

fn document_with(title: &str, refresh: Option<u32>, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                @if let Some(seconds) = refresh { meta http-equiv="refresh" content=(seconds); }
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Tend" }
                link rel="stylesheet" href=(*STYLE_PATH);
            }
            body { (body) }
        }
    };
    html_response(StatusCode::OK, markup)
}

fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    // Pages show personal data: never kept by a shared cache or the back button.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The hidden CSRF field every form carries.
pub fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

/// A 303 to `to`: after a form, the browser loads the page with GET.
pub fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::try_from(to) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

/// What went wrong with a console request, shown as a short page.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No such thing.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Not allowed for this person, or a form without its CSRF token.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The form is wrong; says what.
    #[error("{0}")]
    BadRequest(String),
    /// An upload over its limit; says which and what to do.
    #[error("{0}")]
    TooLarge(String),
    /// An upload that is not the kind of file asked for; says which.
    #[error("{0}")]
    UnsupportedType(String),
    /// The request clashes with another one or with what changed meanwhile.
    #[error("{0}")]
    Conflict(String),
    /// Too many failed logins.
    #[error("too many failed logins; try again in {0} minutes")]
    TooManyAttempts(i64),
    /// Storage or the engine failed; logged, not shown.
    #[error("something went wrong on the server; it was logged")]
    Internal(String),
}

impl From<tend_store::StoreError> for PageError {
    fn from(err: tend_store::StoreError) -> Self {
        PageError::Internal(err.to_string())
    }
}

impl From<tend_engine::EngineError> for PageError {
    fn from(err: tend_engine::EngineError) -> Self {
        match crate::AppError::from(err) {
            crate::AppError::NotFound(what) => PageError::NotFound(what),
            crate::AppError::Internal(e) => PageError::Internal(e.to_string()),
            other => PageError::BadRequest(other.to_string()),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = match &self {
            PageError::NotFound(_) => StatusCode::NOT_FOUND,
            PageError::Forbidden(_) => StatusCode::FORBIDDEN,
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            PageError::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PageError::Conflict(_) => StatusCode::CONFLICT,
            PageError::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            PageError::Internal(detail) => {
                tracing::error!(error = %detail, "console request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let markup = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (status.as_u16()) " · Tend" }
                    link rel="stylesheet" href=(*STYLE_PATH);
                }
                body {
                    main id="main" {
                        h1 { (status.canonical_reason().unwrap_or("Error")) }
                        p.error data-testid="error" role="alert" { (self.to_string()) }
                        p { a href="/today" { "Back to Today" } }
                    }
                }
            }
        };
        html_response(status, markup)
    }
}

/// The business's zone, for showing times.
pub fn zone(state: &AppState) -> TimeZone {
    state.engine.as_ref().map_or(TimeZone::UTC, |e| {
        e.project().config.business.timezone.time_zone().clone()
    })
}

/// An instant as the business reads it: `Mon 07 Dec 14:30`.
pub fn when(at: Timestamp, tz: &TimeZone) -> String {
    at.to_zoned_datetime(tz.clone())
        .strftime("%a %d %b %H:%M")
        .to_string()
}

/// An optional instant, or a dash.
pub fn when_opt(at: Option<Timestamp>, tz: &TimeZone) -> String {
    at.map_or_else(|| "—".to_owned(), |at| when(at, tz))
}

/// A number with at most one decimal, without a trailing `.0`.
pub fn num(value: f64) -> String {
    if (value - value.round()).abs() < 0.05 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}
