//! `/unsubscribe/{token}`: a page with one button, and the RFC 8058 one-click POST that
//! mail clients send for `List-Unsubscribe-Post`. Both are public: the signed token is
//! the credential, and it names one contact only.

use crate::AppState;
use crate::error::AppError;
use crate::security::PAGE_STYLE;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use tend_engine::Unsubscribed;
use tend_engine::markdown::escape_html as escape;

/// `GET /unsubscribe/{token}`: asks before acting, since link scanners follow GETs.
pub async fn page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let Ok(engine) = state.engine() else {
        return not_found(&state);
    };
    if engine.signer().verify(&token).is_none() {
        return not_found(&state);
    }
    let business = escape(&engine.project().config.business.name);
    let token = escape(&token);
    Html(layout(
        &business,
        &format!(
            "<h1>Unsubscribe from {business}?</h1>\
             <p>You will not receive any more messages from {business}.</p>\
             <form method=\"post\" action=\"/unsubscribe/{token}\">\
             <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\">Unsubscribe</button></form>"
        ),
    ))
    .into_response()
}

/// `POST /unsubscribe/{token}`: suppresses the address the link was mailed to at once,
/// whatever the body (RFC 8058 clients send `List-Unsubscribe=One-Click`), and says
/// truthfully whether that changed anything.
pub async fn one_click(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let Ok(engine) = state.engine() else {
        return Ok(not_found(&state));
    };
    let Some(done) = engine.unsubscribe_token(&token).await? else {
        return Ok(not_found(&state));
    };
    let business = escape(&engine.project().config.business.name);
    let body = match done {
        Unsubscribed::Now => format!(
            "<h1>You are unsubscribed</h1>\
             <p>{business} will not send you anything again.</p>"
        ),
        Unsubscribed::Already => format!(
            "<h1>Nothing to do</h1>\
             <p>This address was already removed: {business} sends it nothing.</p>"
        ),
        Unsubscribed::NoLongerOnFile => format!(
            "<h1>This link no longer matches anyone</h1>\
             <p>The record it was sent for is gone, so nothing was changed. Use the \
             unsubscribe link of a recent email from {business}, or reply to it and ask \
             to be removed.</p>"
        ),
    };
    Ok(Html(layout(&business, &body)).into_response())
}

fn not_found(state: &AppState) -> Response {
    let business = state
        .engine()
        .map(|e| escape(&e.project().config.business.name))
        .unwrap_or_else(|_| "Tend".into());
    (
        StatusCode::NOT_FOUND,
        Html(layout(
            &business,
            "<h1>This link is not valid</h1>\
             <p>It may have been copied incompletely. Use the unsubscribe link of a \
             recent email, or reply to it and ask to be removed.</p>",
        )),
    )
        .into_response()
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{PAGE_STYLE}</style></head>\
         <body>{body}</body></html>"
    )
}
