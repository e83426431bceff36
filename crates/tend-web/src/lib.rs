//! Tend's HTTP surface: Segment-compatible ingest under `/v1`, the REST API under
//! `/api` (bearer tokens), and `/healthz`.

mod api;
mod auth;
mod error;
mod pace;
mod reports;
mod segment;
mod tasks;
mod unsubscribe;

pub use error::AppError;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use tend_core::StageName;
use tend_engine::Engine;
use tend_store::{ApiToken, IngestMessage, IngestOutcome, Store, StoreError};
use tokio::net::TcpListener;
use tokio::sync::RwLock;

/// The parts of the business's configuration that ingest applies to every message.
#[derive(Debug, Clone)]
pub struct IngestRules {
    /// The stage a contact gets when first seen.
    pub new_contact_stage: StageName,
    /// `[stages.on_event]`: event name → stage entered.
    pub on_event: HashMap<String, StageName>,
}

impl IngestRules {
    /// The stage an event moves its contact to, if the config maps it.
    pub fn stage_for_event(&self, event: &str) -> Option<&StageName> {
        self.on_event.get(event)
    }
}

/// Shared state behind every handler.
#[derive(Clone)]
pub struct AppState {
    store: Arc<dyn Store>,
    rules: Arc<IngestRules>,
    /// `GET /api/processes` answers with this, serialized once at start.
    processes: Arc<serde_json::Value>,
    /// Hash → token for tokens already seen; there is no revocation yet, so a cached
    /// token cannot go stale.
    token_cache: Arc<RwLock<HashMap<String, ApiToken>>>,
    /// The engine, when one runs: tasks, unsubscribe links, enrollments.
    engine: Option<Arc<Engine>>,
}

impl AppState {
    /// Builds the state from the store and the loaded configuration.
    pub fn new(store: Arc<dyn Store>, rules: IngestRules, processes: serde_json::Value) -> Self {
        AppState {
            store,
            rules: Arc::new(rules),
            processes: Arc::new(processes),
            token_cache: Arc::default(),
            engine: None,
        }
    }

    /// Adds the engine: ingest wakes it, and its routes (tasks, the agenda feed,
    /// unsubscribe) are served.
    pub fn with_engine(mut self, engine: Arc<Engine>) -> Self {
        self.engine = Some(engine);
        self
    }

    fn engine(&self) -> Result<&Arc<Engine>, AppError> {
        self.engine.as_ref().ok_or(AppError::NotFound("engine"))
    }

    async fn ingest(&self, messages: &[IngestMessage]) -> Result<IngestOutcome, StoreError> {
        if messages.is_empty() {
            return Ok(IngestOutcome::default());
        }
        let outcome = self
            .store
            .ingest(messages, &self.rules.new_contact_stage)
            .await?;
        if let Some(engine) = &self.engine {
            // A new lead's first touch should not wait for the next tick.
            engine.wake();
        }
        Ok(outcome)
    }
}

/// Every route Tend serves.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/identify", post(segment::identify))
        .route("/v1/track", post(segment::track))
        .route("/v1/batch", post(segment::batch))
        .route("/api/contacts", get(api::list_contacts))
        .route(
            "/api/contacts/{id}",
            get(api::get_contact).delete(api::erase_contact),
        )
        .route("/api/processes", get(api::list_processes))
        .route("/api/pace", get(pace::pace))
        .route("/api/capacity", axum::routing::put(pace::set_capacity))
        .route("/metrics", get(pace::metrics))
        .route("/api/reports/funnel", get(reports::funnel))
        .route(
            "/api/reports/touches-to-conversion",
            get(reports::touches_to_conversion),
        )
        .route("/api/reports/pace", get(reports::pace))
        .route("/api/reports/neglect", get(reports::neglect))
        .route("/api/tasks", get(tasks::agenda))
        .route("/api/tasks/{id}/complete", post(tasks::complete))
        .route("/api/tasks/{id}/skip", post(tasks::skip))
        .route("/agenda.ics", get(tasks::calendar_feed))
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe::page).post(unsubscribe::one_click),
        )
        .route("/healthz", get(api::healthz))
        // Ingest reads its bodies itself, to answer over-limit requests with a JSON 413.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
