//! Tend's HTTP surface: Segment-compatible ingest under `/v1`, the REST API under
//! `/api` (bearer tokens), `/healthz`, and the console at `/` (sessions; see [`console`]).

mod api;
mod auth;
mod body;
pub mod console;
mod error;
mod forecast;
mod observe;
mod pace;
mod reports;
mod security;
mod segment;
mod serve;
mod tasks;
mod unsubscribe;

pub use error::AppError;
pub use segment::validate_body as validate_segment_body;
pub use serve::{HttpLimits, serve};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state, map_response};
use axum::routing::{get, post, put};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tend_core::StageName;
use tend_engine::{Engine, Metrics};
use tend_store::{IngestMessage, IngestOutcome, Store, StoreError};

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
    /// Token id → when its last use was last written (Unix ms), so uses are written at
    /// most once a minute per token.
    token_uses: Arc<Mutex<HashMap<i64, i64>>>,
    /// Timeouts and connection bounds.
    limits: HttpLimits,
    /// The engine, when one runs: tasks, unsubscribe links, enrollments.
    engine: Option<Arc<Engine>>,
    /// What `/metrics` counts; the engine's own when one runs.
    metrics: Arc<Metrics>,
    /// The live database the forecast copies, when it is a SQLite file.
    forecast: Option<Arc<forecast::ForecastSource>>,
    /// Failed console logins per address and account.
    login_limiter: Arc<console::LoginLimiter>,
}

impl AppState {
    /// Builds the state from the store and the loaded configuration.
    pub fn new(store: Arc<dyn Store>, rules: IngestRules, processes: serde_json::Value) -> Self {
        AppState {
            store,
            rules: Arc::new(rules),
            processes: Arc::new(processes),
            token_uses: Arc::default(),
            limits: HttpLimits::default(),
            engine: None,
            metrics: Arc::default(),
            forecast: None,
            login_limiter: Arc::default(),
        }
    }

    /// Replaces the default timeouts and connection bounds.
    pub fn with_limits(mut self, limits: HttpLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Adds the engine: ingest wakes it, and its routes (tasks, the agenda feed,
    /// unsubscribe) are served.
    pub fn with_engine(mut self, engine: Arc<Engine>) -> Self {
        self.metrics = Arc::clone(engine.metrics());
        self.engine = Some(engine);
        self
    }

    /// Serves `GET /api/forecast` from copies of the SQLite file `database`.
    pub fn with_forecast(mut self, database: std::path::PathBuf) -> Self {
        self.forecast = Some(Arc::new(forecast::ForecastSource::new(database)));
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
        self.metrics.ingested(outcome.accepted, outcome.duplicates);
        if let Some(engine) = &self.engine {
            // A new lead's first touch should not wait for the next tick.
            engine.wake();
        }
        Ok(outcome)
    }
}

/// Every route Tend serves. Each group of routes is wrapped in its guard, which checks
/// the caller's token before a handler runs or a body is read; only `/healthz` and the
/// signed unsubscribe links are public.
pub fn router(state: AppState) -> Router {
    let ingest = Router::new()
        .route("/v1/identify", post(segment::identify))
        .route("/v1/track", post(segment::track))
        .route("/v1/page", post(segment::page))
        .route("/v1/screen", post(segment::screen))
        .route("/v1/group", post(segment::group))
        .route("/v1/alias", post(segment::alias))
        .route("/v1/batch", post(segment::batch))
        .route_layer(from_fn_with_state(state.clone(), auth::write_key));
    let api = Router::new()
        .route("/api/contacts", get(api::list_contacts))
        .route(
            "/api/contacts/{id}",
            get(api::get_contact).delete(api::erase_contact),
        )
        .route("/api/processes", get(api::list_processes))
        .route("/api/pace", get(pace::pace))
        .route("/api/forecast", get(forecast::forecast))
        .route("/api/capacity", put(pace::set_capacity))
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
        .route_layer(from_fn_with_state(state.clone(), auth::admin_only));
    let metrics = Router::new()
        .route("/metrics", get(pace::metrics))
        .route_layer(from_fn_with_state(state.clone(), auth::metrics_only));
    let calendar = Router::new()
        .route("/agenda.ics", get(tasks::calendar_feed))
        .route_layer(from_fn_with_state(state.clone(), auth::calendar_only));
    let public = Router::new()
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe::page).post(unsubscribe::one_click),
        )
        .route("/healthz", get(api::healthz));
    Router::new()
        .merge(ingest)
        .merge(api)
        .merge(metrics)
        .merge(calendar)
        .merge(public)
        .merge(console::routes(state.clone()))
        .route_layer(from_fn(observe::matched_route))
        // Handlers read bodies through `body::Limited`, which sets each route's own limit;
        // this one bounds any extractor that does not.
        .layer(DefaultBodyLimit::max(body::COMMAND_BYTES))
        .layer(map_response(security::headers))
        .layer(from_fn_with_state(state.clone(), observe::request))
        .with_state(state)
}
