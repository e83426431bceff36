//! Tend's HTTP surface: Segment-compatible ingest under `/v1`, the REST API under
//! `/api` (bearer tokens), `/healthz`, and the console at `/` (sessions; see [`console`]).

mod api;
mod auth;
mod body;
pub mod console;
mod error;
mod extract;
mod forecast;
pub mod mail_webhooks;
mod observe;
mod openapi;
mod pace;
mod reports;
mod security;
mod segment;
mod serve;
mod tasks;
mod unsubscribe;

pub use error::{AppError, ErrorBody};
pub use segment::validate_body as validate_segment_body;
pub use serve::{HttpLimits, serve};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn_with_state, map_response};
use axum::routing::get;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tend_core::StageName;
use tend_engine::{Engine, Metrics};
use tend_store::{IngestMessage, IngestOutcome, Store, StoreError};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

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
    /// The `tend.toml` the server was started from, when it was: the console shows
    /// process files and their diagnostics as they are on disk now.
    config_path: Option<Arc<std::path::PathBuf>>,
    /// The mail providers' event webhooks, when any provider is configured.
    mail_webhooks: Option<Arc<mail_webhooks::MailWebhooks>>,
    /// The console's simulation, one at a time; stopped when the server shuts down.
    simulations: Arc<console::Simulations>,
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
            config_path: None,
            mail_webhooks: None,
            simulations: Arc::default(),
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

    /// Shows the project files beside `config_path` (its `tend.toml`) in the console.
    pub fn with_config_path(mut self, config_path: std::path::PathBuf) -> Self {
        self.config_path = Some(Arc::new(config_path));
        self
    }

    /// Serves the webhooks of the mail providers whose keys `keys` holds
    /// (`POST /v1/mail/{provider}`); the others answer 404.
    pub fn with_mail_providers(mut self, keys: tend_engine::mail_providers::ProviderKeys) -> Self {
        self.mail_webhooks = Some(mail_webhooks::MailWebhooks::new(keys));
        self
    }

    /// The console's simulations, for a caller that waits on or stops them.
    pub fn simulations(&self) -> Arc<console::Simulations> {
        Arc::clone(&self.simulations)
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
/// the caller's token before a handler runs or a body is read; only `/healthz`, the
/// OpenAPI document and the signed unsubscribe links are public. The mail providers'
/// webhooks authenticate each the provider's way, inside their handlers.
///
/// The `/v1` and `/api` routes are registered with their OpenAPI operations
/// (`utoipa_axum::routes!`), so none can be served without appearing in
/// `/api/openapi.json`.
pub fn router(state: AppState) -> Router {
    let ingest = OpenApiRouter::new()
        .routes(routes!(segment::identify))
        .routes(routes!(segment::track))
        .routes(routes!(segment::page))
        .routes(routes!(segment::screen))
        .routes(routes!(segment::group))
        .routes(routes!(segment::alias))
        .routes(routes!(segment::batch))
        .route_layer(from_fn_with_state(state.clone(), auth::write_key));
    // Each provider's handler checks its own kind of credentials (see `mail_webhooks`).
    let mail = OpenApiRouter::new()
        .routes(routes!(mail_webhooks::postmark))
        .routes(routes!(mail_webhooks::mailgun))
        .routes(routes!(mail_webhooks::sendgrid));
    let api = OpenApiRouter::new()
        .routes(routes!(api::list_contacts))
        .routes(routes!(api::get_contact, api::erase_contact))
        .routes(routes!(api::list_processes))
        .routes(routes!(pace::pace))
        .routes(routes!(forecast::forecast))
        .routes(routes!(pace::set_capacity))
        .routes(routes!(reports::funnel))
        .routes(routes!(reports::touches_to_conversion))
        .routes(routes!(reports::pace))
        .routes(routes!(reports::neglect))
        .routes(routes!(tasks::agenda))
        .routes(routes!(tasks::complete))
        .routes(routes!(tasks::skip))
        .route_layer(from_fn_with_state(state.clone(), auth::admin_only));
    let (documented, mut document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(ingest)
        .merge(mail)
        .merge(api)
        .split_for_parts();
    openapi::complete(&mut document);
    let spec = openapi::Rendered::new(&document);
    let documented_operations = openapi::Documented::new(&document);
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
        .route("/healthz", get(api::healthz))
        .route(
            openapi::OPENAPI_PATH,
            get(move || async move { spec.response() }),
        );
    Router::new()
        .merge(documented)
        .merge(metrics)
        .merge(calendar)
        .merge(public)
        .merge(console::routes(state.clone()))
        .route_layer(from_fn_with_state(
            documented_operations,
            observe::matched_route,
        ))
        // Handlers read bodies through `body::Limited`, which sets each route's own limit;
        // this one bounds any extractor that does not.
        .layer(DefaultBodyLimit::max(body::COMMAND_BYTES))
        .layer(map_response(security::headers))
        .layer(from_fn_with_state(state.clone(), observe::request))
        .with_state(state)
}
