//! The owner's console: server-rendered pages for the owner and the team, behind a
//! login. URLs, form fields and test ids are listed in `README.md` beside this file.
//!
//! Every page and action is behind [`session::require_session`] (a live session, and
//! on a POST the session's CSRF token); owner-only ones also check the role. Pages are
//! HTML from compile-time-checked `maud` templates, styled by one embedded stylesheet,
//! with charts as inline SVG from `tend-charts`; no script, nothing from another origin.

mod contact;
mod contacts;
mod deliveries;
mod import;
mod layout;
mod login;
mod multipart;
mod next_days;
mod processes;
mod reports;
pub mod session;
mod settings;
mod simulate;
mod today;

use crate::AppState;
use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::response::Response;
use axum::routing::{get, post};
use session::Viewer;

pub use session::hash_password;
pub use simulate::{RunStatus, Simulations};

/// The console's routes.
pub fn routes(state: AppState) -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(root))
        .route("/today", get(today::today))
        .route("/held/{reason}", get(today::held))
        .route("/tasks/{id}/complete", post(today::complete))
        .route("/tasks/{id}/skip", post(today::skip))
        .route("/contacts", get(contacts::list))
        .route("/contacts/{id}", get(contact::show))
        .route("/contacts/{id}/stage", post(contact::set_stage))
        .route(
            "/contacts/{id}/enrollments/{enrollment}/pause",
            post(contact::pause),
        )
        .route(
            "/contacts/{id}/enrollments/{enrollment}/resume",
            post(contact::resume),
        )
        .route("/contacts/{id}/unsubscribe", post(contact::unsubscribe))
        .route("/contacts/{id}/erase", post(contact::erase))
        .route("/processes", get(processes::list))
        .route("/processes/{id}", get(processes::show))
        .route("/deliveries", get(deliveries::show))
        .route("/reports", get(reports::show))
        .route("/simulate", get(simulate::form).post(simulate::start))
        .route("/simulate/runs/{id}", get(simulate::show))
        .route("/simulate/runs/{id}/cancel", post(simulate::cancel))
        .route(import::UPLOAD_PATH, get(import::form).post(import::upload))
        .route("/import/{id}", get(import::show))
        .route("/import/{id}/rejected.txt", get(import::rejected))
        .route("/import/{id}/confirm", post(import::confirm))
        .route("/settings", get(settings::show))
        .route("/settings/tokens", post(settings::create_token))
        .route("/settings/tokens/revoke", post(settings::revoke_token))
        .route("/settings/capacity", post(settings::set_capacity))
        .route("/logout", post(login::logout))
        .route_layer(from_fn_with_state(state, session::require_session));
    Router::new()
        .merge(pages)
        .route("/login", get(login::form).post(login::submit))
        .route("/static/{file}", get(layout::stylesheet))
}

/// `GET /`: Today for a logged-in person (the guard sends others to the login form).
async fn root(_viewer: Viewer) -> Response {
    layout::redirect("/today")
}
