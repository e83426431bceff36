//! Deliveries (`GET /deliveries?status=`, owners only): recent sends, retries,
//! permanent failures and bounces, newest first, each linking to its contact.

use super::layout::{PageError, page, when, zone};
use super::session::Viewer;
use crate::AppState;
use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

/// Deliveries listed at most.
const SHOWN: u32 = 200;
/// The filters, as `status=` values.
const STATUSES: &[&str] = &["sent", "retrying", "failed", "bounced"];

/// Query of `GET /deliveries`.
#[derive(Debug, Deserialize)]
pub struct Params {
    status: Option<String>,
}

/// `GET /deliveries`.
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(params): Query<Params>,
) -> Result<Response, PageError> {
    viewer.require_owner()?;
    let status = params.status.as_deref().filter(|s| !s.is_empty());
    if let Some(status) = status
        && !STATUSES.contains(&status)
    {
        return Err(PageError::BadRequest(format!(
            "status: `{status}` is not one of sent, retrying, failed, bounced"
        )));
    }
    let tz = zone(&state);
    let rows = state.store.deliveries(status, None, SHOWN).await?;
    let body = html! {
        h1 { "Deliveries" }
        nav.filters aria-label="Filter deliveries" {
            a href="/deliveries" aria-current=[status.is_none().then_some("page")] data-testid="filter-all" { "all" }
            @for s in STATUSES {
                " · "
                a href={ "/deliveries?status=" (s) } aria-current=[(status == Some(*s)).then_some("page")]
                    data-testid={ "filter-" (s) } { (s) }
            }
        }
        @if rows.is_empty() {
            p.empty data-testid="deliveries-empty" { "Nothing yet." }
        } @else {
            table data-testid="deliveries" {
                thead { tr { th { "When" } th { "Contact" } th { "What" } th { "Status" } th { "Detail" } } }
                tbody {
                    @for d in &rows {
                        tr data-testid="delivery-row" {
                            td { (when(d.at, &tz)) }
                            td { a href={ "/contacts/" (d.contact_id.0) } {
                                (d.contact_email.as_deref().unwrap_or("(no address)")) } }
                            td { (d.channel) " · " (d.process) " step " (d.step + 1) }
                            td data-testid="delivery-status" { (d.status) }
                            td { @if d.attempts > 1 { (d.attempts) " attempts " }
                                 (d.last_error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, "Deliveries", "Deliveries", body))
}
