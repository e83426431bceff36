//! `/unsubscribe/{token}`: a page with one button, and the RFC 8058 one-click POST that
//! mail clients send for `List-Unsubscribe-Post`. Both are public: the signed token is
//! the credential, and it names one contact only.

use crate::AppState;
use crate::error::AppError;
use crate::security::PAGE_STYLE;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use tend_core::ContactId;
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

/// `POST /unsubscribe/{token}`: suppresses the contact at once, whatever the body
/// (RFC 8058 clients send `List-Unsubscribe=One-Click`).
pub async fn one_click(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let Ok(engine) = state.engine() else {
        return Ok(not_found(&state));
    };
    let Some(contact) = engine.signer().verify(&token) else {
        return Ok(not_found(&state));
    };
    // An erased contact is already suppressed by its hashed address; say so all the same.
    engine.unsubscribe(ContactId(contact)).await?;
    let business = escape(&engine.project().config.business.name);
    Ok(Html(layout(
        &business,
        &format!(
            "<h1>You are unsubscribed</h1>\
             <p>{business} will not send you anything again.</p>"
        ),
    ))
    .into_response())
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
