//! Settings (`GET /settings`, owners only): API tokens (create, list with last use,
//! revoke), the people who log in, the open work, and the configuration as loaded with
//! its secrets masked.

use super::layout::{PageError, csrf_field, num, page, redirect, when, when_opt, zone};
use super::session::{FormFields, Viewer};
use crate::AppState;
use axum::extract::State;
use axum::response::Response;
use maud::html;
use tend_store::{StoreError, TokenScope, tokens};

/// `GET /settings`.
pub async fn show(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    viewer.require_owner()?;
    render(&state, &viewer, None).await
}

async fn render(
    state: &AppState,
    viewer: &Viewer,
    created: Option<(String, String)>,
) -> Result<Response, PageError> {
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let tz = zone(state);
    let tokens = state.store.list_tokens().await?;
    let users = state.store.list_users().await?;
    let pace = engine.pace().await?;
    let mut config = engine.project().config.clone();
    config.database_url = mask_url(&config.database_url);
    // Secrets print as `Secret(…)` in the configuration's Debug form.
    let loaded = format!("{config:#?}");
    let body = html! {
        h1 { "Settings" }
        section aria-labelledby="tokens-h" data-testid="tokens" {
            h2 id="tokens-h" { "API tokens" }
            @if let Some((name, token)) = &created {
                div.notice role="status" data-testid="token-created" {
                    p { "Token " strong { (name) } " created. It is shown only now; copy it:" }
                    pre data-testid="new-token" { (token) }
                }
            }
            table {
                thead { tr { th { "Name" } th { "Scope" } th { "Created" } th { "Last used" } th { "" } } }
                tbody {
                    @for t in &tokens {
                        tr data-testid="token-row" {
                            td { (t.name) } td { (t.scope.as_str()) } td { (when(t.created_at, &tz)) }
                            td { (when_opt(t.last_used_at, &tz)) }
                            td {
                                form.inline method="post" action="/settings/tokens/revoke" {
                                    (csrf_field(viewer))
                                    input type="hidden" name="name" value=(t.name);
                                    button.secondary type="submit" data-testid={ "revoke-" (t.name) }
                                        aria-label={ "Revoke " (t.name) } { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
            form method="post" action="/settings/tokens" data-testid="token-form" {
                (csrf_field(viewer))
                label for="token-name" { "Name" }
                input id="token-name" name="name" required maxlength="100";
                label for="token-scope" { "Scope" }
                select id="token-scope" name="scope" {
                    option value="write" { "write (Segment ingest)" }
                    option value="admin" { "admin (the REST API)" }
                    option value="calendar" { "calendar (the agenda feed)" }
                    option value="metrics" { "metrics (/metrics)" }
                }
                button type="submit" id="create-token" data-testid="create-token" { "Create token" }
            }
        }
        section aria-labelledby="people-h" data-testid="people" {
            h2 id="people-h" { "People" }
            ul { @for u in &users { li data-testid="person" { (u.email) " · " (u.role.as_str()) " · added " (when(u.created_at, &tz)) } } }
            p.hint { "Add a person or reset a password on the server: " code { "tend user add EMAIL --role owner|staff" } }
        }
        section aria-labelledby="capacity-h" data-testid="capacity-settings" {
            h2 id="capacity-h" { "Capacity" }
            p { (num(pace.capacity.per_week)) " work items per week at " (num(pace.capacity.target_utilization * 100.0)) "% over " (pace.capacity.horizon) " (from tend.toml)." }
            form method="post" action="/settings/capacity" {
                (csrf_field(viewer))
                label for="open-work" { "Work items open now" }
                input type="number" id="open-work" name="open_work" min="0" step="any" required value=(num(pace.capacity.open_work));
                button type="submit" id="set-open-work" data-testid="set-open-work" { "Set open work" }
            }
        }
        section aria-labelledby="config-h" {
            h2 id="config-h" { "Configuration as loaded" }
            pre.config data-testid="config" { (loaded) }
        }
    };
    Ok(page(viewer, "Settings", "Settings", body))
}

/// A database URL without its password.
fn mask_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:••••{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// `POST /settings/tokens` with `name` and `scope`: shows the new token once.
pub async fn create_token(
    State(state): State<AppState>,
    viewer: Viewer,
    form: FormFields,
) -> Result<Response, PageError> {
    viewer.require_owner()?;
    let name = form
        .get("name")
        .ok_or_else(|| PageError::BadRequest("name: required".into()))?;
    if name.len() > 100 {
        return Err(PageError::BadRequest("name: at most 100 characters".into()));
    }
    let scope = form
        .get("scope")
        .and_then(TokenScope::parse)
        .ok_or_else(|| {
            PageError::BadRequest("scope: one of write, admin, calendar, metrics".into())
        })?;
    let token = tokens::generate_token();
    match state
        .store
        .create_token(
            name,
            scope,
            &tokens::hash_token(&token),
            jiff::Timestamp::now(),
        )
        .await
    {
        Ok(_) => {}
        Err(StoreError::Conflict(message)) => return Err(PageError::BadRequest(message)),
        Err(err) => return Err(err.into()),
    }
    render(&state, &viewer, Some((name.to_owned(), token))).await
}

/// `POST /settings/tokens/revoke` with `name`.
pub async fn revoke_token(
    State(state): State<AppState>,
    viewer: Viewer,
    form: FormFields,
) -> Result<Response, PageError> {
    viewer.require_owner()?;
    let name = form
        .get("name")
        .ok_or_else(|| PageError::BadRequest("name: required".into()))?;
    if !state.store.revoke_token(name).await? {
        return Err(PageError::NotFound("token"));
    }
    Ok(redirect("/settings"))
}

/// `POST /settings/capacity` with `open_work`.
pub async fn set_capacity(
    State(state): State<AppState>,
    viewer: Viewer,
    form: FormFields,
) -> Result<Response, PageError> {
    viewer.require_owner()?;
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let open_work: f64 = form
        .get("open_work")
        .and_then(|v| v.parse().ok())
        .filter(|v: &f64| v.is_finite() && (0.0..=1e9).contains(v))
        .ok_or_else(|| {
            PageError::BadRequest("open_work: a number from 0 to 1,000,000,000".into())
        })?;
    engine
        .store()
        .set_open_work(open_work, engine.clock().now())
        .await?;
    engine.wake();
    Ok(redirect("/settings"))
}
