//! Contacts (`GET /contacts?q=&stage=&after=`): search by email or name, filter by
//! stage, pages of [`PAGE_SIZE`] in id order behind a keyset cursor (the primary key,
//! or the `stage, id` index when a stage is chosen), so a page costs the same at any
//! depth.

use super::layout::{PageError, page, when_opt, zone};
use super::session::Viewer;
use crate::AppState;
use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use tend_core::StageName;
use tend_store::ContactQuery;

/// Contacts per page.
pub const PAGE_SIZE: u32 = 50;

/// Query of `GET /contacts`.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    q: Option<String>,
    stage: Option<String>,
    after: Option<String>,
}

/// `GET /contacts`.
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(params): Query<ListParams>,
) -> Result<Response, PageError> {
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let stages = &engine.project().config.stages.order;
    let q = params.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if q.is_some_and(|q| q.len() > 200) {
        return Err(PageError::BadRequest("q: at most 200 characters".into()));
    }
    let stage = match params.stage.as_deref().filter(|s| !s.is_empty()) {
        Some(name) => Some(
            stages
                .iter()
                .find(|s| s.as_str() == name)
                .cloned()
                .ok_or_else(|| PageError::BadRequest(format!("stage: `{name}` is not a stage")))?,
        ),
        None => None,
    };
    let cursor = params.after.clone().filter(|a| !a.is_empty());
    let contacts = state
        .store
        .list_contacts(&ContactQuery {
            stage: stage.clone(),
            q: q.map(str::to_owned),
            limit: PAGE_SIZE,
            cursor,
        })
        .await
        .map_err(|e| match e {
            tend_store::StoreError::InvalidCursor(c) => {
                PageError::BadRequest(format!("after: `{c}` is not a page position"))
            }
            other => other.into(),
        })?;
    let tz = zone(&state);
    let selected = |s: &StageName| stage.as_ref() == Some(s);
    let next_href = contacts.next_cursor.as_ref().map(|cursor| {
        let mut query = vec![("after", cursor.as_str())];
        if let Some(q) = q {
            query.push(("q", q));
        }
        if let Some(s) = &stage {
            query.push(("stage", s.as_str()));
        }
        format!(
            "/contacts?{}",
            serde_urlencoded::to_string(&query).unwrap_or_default()
        )
    });
    let body = html! {
        h1 { "Contacts" }
        form.search method="get" action="/contacts" role="search" data-testid="contact-search" {
            label for="q" { "Email or name" }
            input type="search" id="q" name="q" value=(q.unwrap_or(""))
                placeholder="starts of words: ann smi";
            label for="stage" { "Stage" }
            select id="stage" name="stage" {
                option value="" { "any" }
                @for s in stages {
                    option value=(s.as_str()) selected[selected(s)] { (s.as_str()) }
                }
            }
            button type="submit" id="search" { "Search" }
        }
        @if contacts.contacts.is_empty() {
            p.empty data-testid="contacts-empty" { "No contact matches." }
        } @else {
            table.contacts data-testid="contacts" {
                thead { tr { th { "Contact" } th { "Stage" } th { "Last touch" } } }
                tbody {
                    @for c in &contacts.contacts {
                        tr data-testid="contact-row" {
                            td { a href={ "/contacts/" (c.id.0) } {
                                (c.name.as_deref().unwrap_or("(no name)")) }
                                @if let Some(email) = &c.email { br; span.email { (email) } }
                                @if c.suppressed_at.is_some() { " " span.badge { "suppressed" } }
                            }
                            td { (c.stage.as_str()) }
                            td { (when_opt(c.last_touch_at, &tz)) }
                        }
                    }
                }
            }
        }
        @if let Some(href) = next_href {
            p { a href=(href) id="next-page" data-testid="next-page" { "Next page →" } }
        }
    };
    Ok(page(&viewer, "Contacts", "Contacts", body))
}
