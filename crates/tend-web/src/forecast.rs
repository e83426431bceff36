//! `GET /api/forecast?weeks=12&history=4`: the live business run forward on a copy of
//! its database (see `tend_sim::forecast`); one at a time, as each takes seconds.

use crate::AppState;
use crate::error::AppError;
use crate::extract::Query;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use std::path::PathBuf;
use tend_sim::forecast::{Forecast, ForecastError, ForecastOptions, forecast_file};
use tokio::sync::Semaphore;

/// Where the forecast copies the live business from.
pub(crate) struct ForecastSource {
    /// The live SQLite file.
    database: PathBuf,
    /// One forecast at a time: a second request meanwhile gets a 409.
    running: Semaphore,
}

impl ForecastSource {
    pub(crate) fn new(database: PathBuf) -> Self {
        ForecastSource {
            database,
            running: Semaphore::new(1),
        }
    }
}

/// Query of `GET /api/forecast`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForecastParams {
    /// Weeks to forecast, 1 to 52 (default 12).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 52)]
    weeks: Option<String>,
    /// Weeks of history the arrivals are estimated from, 1 to 52 (default 4).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 52)]
    history: Option<String>,
}

fn weeks_param(value: Option<&str>, field: &str, default: u32) -> Result<u32, AppError> {
    match value {
        None | Some("") => Ok(default),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|w| (1..=52).contains(w))
            .ok_or_else(|| {
                AppError::invalid(field, "must be a whole number of weeks from 1 to 52")
            }),
    }
}

/// `GET /api/forecast?weeks=12&history=4` (admin token): touches per day against each
/// budget, work per week against capacity, leads passing `max_gap` and when, and what
/// would keep every promise.
#[utoipa::path(
    get,
    path = "/api/forecast",
    tag = "forecast",
    params(ForecastParams),
    responses(
        (status = 200, description = "The forecast; nothing is sent.", body = Forecast),
        (status = 404, description = "The database is not a SQLite file.", body = crate::error::ErrorBody),
        (status = 409, description = "A forecast is already running.", body = crate::error::ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub async fn forecast(
    State(state): State<AppState>,
    Query(params): Query<ForecastParams>,
) -> Result<Json<Forecast>, AppError> {
    let defaults = ForecastOptions::default();
    let options = ForecastOptions {
        weeks: weeks_param(params.weeks.as_deref(), "weeks", defaults.weeks)?,
        history_weeks: weeks_param(params.history.as_deref(), "history", defaults.history_weeks)?,
    };
    let engine = state.engine()?;
    let source = state.forecast.as_ref().ok_or(AppError::NotFound(
        "forecast (it needs a sqlite:// database)",
    ))?;
    let _running = source.running.try_acquire().map_err(|_| {
        AppError::Conflict("a forecast is already running; try again when it ends".into())
    })?;
    let now = engine.clock().now();
    let forecast = forecast_file(&source.database, engine.project(), now, options)
        .await
        .map_err(|e| match e {
            ForecastError::Store(e) => AppError::Internal(e),
            other => AppError::Failed(other.to_string()),
        })?;
    Ok(Json(forecast))
}
