//! `GET /api/reports/*`: the funnel, touches to conversion, pace per day, neglect.

use crate::AppState;
use crate::error::AppError;
use axum::Json;
use axum::extract::{Query, State};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::Deserialize;
use serde_json::{Value, json};
use tend_engine::reports;

/// Query of `GET /api/reports/funnel`.
#[derive(Deserialize)]
pub struct FunnelParams {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/reports/funnel?from=YYYY-MM-DD&to=YYYY-MM-DD` (default: the last 30 days).
pub async fn funnel(
    State(state): State<AppState>,
    Query(params): Query<FunnelParams>,
) -> Result<Json<Value>, AppError> {
    let engine = state.engine()?;
    let project = engine.project();
    let tz = project.config.business.timezone.time_zone();
    let now = engine.clock().now();
    let today = now.to_zoned_datetime(tz.clone()).date();
    let to = match date_param(params.to.as_deref(), "to")? {
        Some(d) => d,
        None => today,
    };
    let from = match date_param(params.from.as_deref(), "from")? {
        Some(d) => d,
        None => to
            .checked_sub(jiff::Span::new().days(29))
            .map_err(|_| AppError::invalid("to", "is out of range"))?,
    };
    if from > to {
        return Err(AppError::invalid("from", "must not be after `to`"));
    }
    let start = start_of(from, &tz, "from")?;
    let end = start_of(
        to.tomorrow()
            .map_err(|_| AppError::invalid("to", "is out of range"))?,
        &tz,
        "to",
    )?;
    let report = reports::funnel(engine.store().as_ref(), project, start, end).await?;
    Ok(Json(json!(report)))
}

/// Query of `GET /api/reports/touches-to-conversion`.
#[derive(Deserialize)]
pub struct ConversionParams {
    stage: Option<String>,
}

/// `GET /api/reports/touches-to-conversion?stage=customer`.
pub async fn touches_to_conversion(
    State(state): State<AppState>,
    Query(params): Query<ConversionParams>,
) -> Result<Json<Value>, AppError> {
    let engine = state.engine()?;
    let project = engine.project();
    let stage = match params.stage.as_deref().filter(|s| !s.is_empty()) {
        Some(name) => project
            .config
            .stage(name)
            .cloned()
            .ok_or_else(|| AppError::invalid("stage", format!("`{name}` is not a stage")))?,
        None => reports::default_conversion_stage(project),
    };
    let report = reports::touches_to_conversion(engine.store().as_ref(), &stage).await?;
    Ok(Json(json!(report)))
}

/// Query of `GET /api/reports/pace`.
#[derive(Deserialize)]
pub struct PaceParams {
    days: Option<String>,
}

/// `GET /api/reports/pace?days=30`: per day, touches against budget and work opened
/// against capacity.
pub async fn pace(
    State(state): State<AppState>,
    Query(params): Query<PaceParams>,
) -> Result<Json<Value>, AppError> {
    let engine = state.engine()?;
    let days = number_param(params.days.as_deref(), "days", 30, 366)?;
    let report = reports::pace_history(
        engine.store().as_ref(),
        engine.project(),
        engine.clock().now(),
        days,
    )
    .await?;
    Ok(Json(json!(report)))
}

/// Query of `GET /api/reports/neglect`.
#[derive(Deserialize)]
pub struct NeglectParams {
    limit: Option<String>,
}

/// `GET /api/reports/neglect?limit=50`: the contacts closest to or past `max_gap`.
pub async fn neglect(
    State(state): State<AppState>,
    Query(params): Query<NeglectParams>,
) -> Result<Json<Value>, AppError> {
    let engine = state.engine()?;
    let limit = number_param(params.limit.as_deref(), "limit", 50, 500)?;
    let report = reports::neglect(
        engine.store().as_ref(),
        engine.project(),
        engine.clock().now(),
        limit,
    )
    .await?;
    Ok(Json(json!(report)))
}

fn date_param(text: Option<&str>, field: &str) -> Result<Option<Date>, AppError> {
    match text.filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => t
            .parse::<Date>()
            .map(Some)
            .map_err(|_| AppError::invalid(field, "must be a date as YYYY-MM-DD")),
    }
}

fn start_of(date: Date, tz: &jiff::tz::TimeZone, field: &str) -> Result<Timestamp, AppError> {
    date.to_zoned_datetime(tz.clone())
        .map(|z| z.timestamp())
        .map_err(|_| AppError::invalid(field, "is out of range"))
}

fn number_param(text: Option<&str>, field: &str, default: u32, max: u32) -> Result<u32, AppError> {
    match text.filter(|t| !t.is_empty()) {
        None => Ok(default),
        Some(t) => match t.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(AppError::invalid(
                field,
                format!("must be an integer from 1 to {max}"),
            )),
        },
    }
}
