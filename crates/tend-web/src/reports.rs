//! `GET /api/reports/*`: the funnel, touches to conversion, pace per day, neglect.

use crate::AppState;
use crate::error::AppError;
use crate::extract::Query;
use axum::Json;
use axum::extract::State;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::Deserialize;
use tend_engine::reports::{self, ConversionReport, FunnelReport, NeglectReport, PaceHistory};
use utoipa::IntoParams;

/// Query of `GET /api/reports/funnel`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FunnelParams {
    /// First day, `YYYY-MM-DD` in the business's time zone (default: 29 days before `to`).
    #[param(value_type = Option<String>, format = Date)]
    from: Option<String>,
    /// Last day, included (default: today).
    #[param(value_type = Option<String>, format = Date)]
    to: Option<String>,
}

/// `GET /api/reports/funnel?from=YYYY-MM-DD&to=YYYY-MM-DD` (default: the last 30 days).
#[utoipa::path(
    get,
    path = "/api/reports/funnel",
    tag = "reports",
    params(FunnelParams),
    responses((status = 200, description = "Contacts per stage and the moves between them.", body = FunnelReport)),
    security(("admin_token" = []))
)]
pub async fn funnel(
    State(state): State<AppState>,
    Query(params): Query<FunnelParams>,
) -> Result<Json<FunnelReport>, AppError> {
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
    Ok(Json(report))
}

/// Query of `GET /api/reports/touches-to-conversion`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversionParams {
    /// The stage counted as a conversion (default: the stage after `lead`, or the last).
    stage: Option<String>,
}

/// `GET /api/reports/touches-to-conversion?stage=customer`.
#[utoipa::path(
    get,
    path = "/api/reports/touches-to-conversion",
    tag = "reports",
    params(ConversionParams),
    responses((status = 200, description = "Touches before contacts reached the stage.", body = ConversionReport)),
    security(("admin_token" = []))
)]
pub async fn touches_to_conversion(
    State(state): State<AppState>,
    Query(params): Query<ConversionParams>,
) -> Result<Json<ConversionReport>, AppError> {
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
    Ok(Json(report))
}

/// Query of `GET /api/reports/pace`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaceParams {
    /// Days back from today, 1 to 366 (default 30).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 366)]
    days: Option<String>,
}

/// `GET /api/reports/pace?days=30`: per day, touches against budget and work opened
/// against capacity.
#[utoipa::path(
    get,
    path = "/api/reports/pace",
    operation_id = "pace_history",
    tag = "reports",
    params(PaceParams),
    responses((status = 200, description = "Per day, touches against budget and work against capacity.", body = PaceHistory)),
    security(("admin_token" = []))
)]
pub async fn pace(
    State(state): State<AppState>,
    Query(params): Query<PaceParams>,
) -> Result<Json<PaceHistory>, AppError> {
    let engine = state.engine()?;
    let days = number_param(params.days.as_deref(), "days", 30, 366)?;
    let report = reports::pace_history(
        engine.store().as_ref(),
        engine.project(),
        engine.clock().now(),
        days,
    )
    .await?;
    Ok(Json(report))
}

/// Query of `GET /api/reports/neglect`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NeglectParams {
    /// Contacts listed, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

/// `GET /api/reports/neglect?limit=50`: the contacts closest to or past `max_gap`.
#[utoipa::path(
    get,
    path = "/api/reports/neglect",
    tag = "reports",
    params(NeglectParams),
    responses((status = 200, description = "The contacts closest to or past their max_gap.", body = NeglectReport)),
    security(("admin_token" = []))
)]
pub async fn neglect(
    State(state): State<AppState>,
    Query(params): Query<NeglectParams>,
) -> Result<Json<NeglectReport>, AppError> {
    let engine = state.engine()?;
    let limit = number_param(params.limit.as_deref(), "limit", 50, 500)?;
    let report = reports::neglect(
        engine.store().as_ref(),
        engine.project(),
        engine.clock().now(),
        limit,
    )
    .await?;
    Ok(Json(report))
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
