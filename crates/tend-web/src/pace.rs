//! The pacer made visible: `GET /api/pace`, `PUT /api/capacity` and `/metrics` in
//! Prometheus text format.

use crate::AppState;
use crate::body::{COMMAND_BYTES, Limited};
use crate::error::AppError;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write;
use tend_engine::CapacityView;
use tend_engine::PaceReport;

/// `GET /api/pace`: budgets, capacity, held-back touches by reason, the deficit.
#[utoipa::path(
    get,
    path = "/api/pace",
    tag = "pace",
    responses((status = 200, description = "What the pacer is doing now.", body = PaceReport)),
    security(("admin_token" = []))
)]
pub async fn pace(State(state): State<AppState>) -> Result<Json<PaceReport>, AppError> {
    Ok(Json(state.engine()?.pace().await?))
}

/// Body of `PUT /api/capacity`.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(
    dead_code,
    reason = "only its OpenAPI schema is used; the handler reads the body field by field"
)]
pub struct OpenWorkBody {
    /// The work items open now, 0 to 1,000,000,000.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    open_work: f64,
}

/// The answer of `PUT /api/capacity`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CapacityReply {
    /// Capacity after the change.
    capacity: CapacityView,
}

/// `PUT /api/capacity` with `{"open_work": N}`: the work items open now, for businesses
/// that do not send `[work]` events. Answers with the capacity after the change.
#[utoipa::path(
    put,
    path = "/api/capacity",
    tag = "pace",
    request_body(content = OpenWorkBody, content_type = "application/json"),
    responses((status = 200, description = "Capacity after the change.", body = CapacityReply)),
    security(("admin_token" = []))
)]
pub async fn set_capacity(
    State(state): State<AppState>,
    Limited(body): Limited<COMMAND_BYTES>,
) -> Result<Json<CapacityReply>, AppError> {
    let engine = state.engine()?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| AppError::Malformed(format!("body is not a JSON object: {e}")))?;
    let Some(object) = body.as_object() else {
        return Err(AppError::Malformed("body must be a JSON object".into()));
    };
    if let Some(key) = object.keys().find(|k| k.as_str() != "open_work") {
        return Err(AppError::invalid(
            key.clone(),
            "unknown field; expected `open_work`",
        ));
    }
    let open_work = match object.get("open_work") {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(-1.0),
        Some(_) => return Err(AppError::invalid("open_work", "must be a number")),
        None => {
            return Err(AppError::invalid(
                "open_work",
                "required: the number of work items open now",
            ));
        }
    };
    if !(open_work.is_finite() && (0.0..=1e9).contains(&open_work)) {
        return Err(AppError::invalid(
            "open_work",
            "must be a number from 0 to 1,000,000,000",
        ));
    }
    engine
        .store()
        .set_open_work(open_work, engine.clock().now())
        .await?;
    // Offers held for capacity may fit now.
    engine.wake();
    let report = engine.pace().await?;
    Ok(Json(CapacityReply {
        capacity: report.capacity,
    }))
}

/// `GET /metrics`, for metrics or admin tokens: the pace report as Prometheus gauges,
/// how long the most overdue touch has waited, and the counters of work done.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, AppError> {
    let engine = state.engine()?;
    let report = engine.pace().await?;
    let age =
        tend_engine::metrics::oldest_due_age(engine.store().as_ref(), engine.clock().now()).await?;
    let mut text = prometheus(&report);
    let _ = writeln!(
        text,
        "# HELP tend_oldest_due_touch_age_seconds How long the most overdue pending touch or \
         queued send has waited; grows when the engine or the dispatcher is stuck.\n\
         # TYPE tend_oldest_due_touch_age_seconds gauge\n\
         tend_oldest_due_touch_age_seconds {}",
        age.as_secs_f64()
    );
    state.metrics.render(&mut text);
    let cancelled = engine.store().touches_cancelled().await?;
    tend_engine::metrics::render_touches_cancelled(&mut text, &cancelled);
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

fn prometheus(report: &PaceReport) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let window = |b: &tend_core::pacer::BudgetStatus| {
        format!("{{resource=\"{}\",period=\"{}\"}}", b.resource, b.period)
    };
    let budgets = &report.budgets;
    gauge(
        "tend_budget_limit",
        "Limit of the current budget window.",
        &budgets
            .iter()
            .map(|b| (window(b), b.limit))
            .collect::<Vec<_>>(),
    );
    gauge(
        "tend_budget_accrued",
        "Part of the window's limit accrued so far.",
        &budgets
            .iter()
            .map(|b| (window(b), b.accrued))
            .collect::<Vec<_>>(),
    );
    gauge(
        "tend_budget_used",
        "Amount spent in the current window.",
        &budgets
            .iter()
            .map(|b| (window(b), b.used))
            .collect::<Vec<_>>(),
    );
    let c = &report.capacity;
    gauge(
        "tend_capacity_limit",
        "Most work open or expected at once (target utilization x per week x horizon).",
        &[(String::new(), c.limit)],
    );
    gauge(
        "tend_open_work",
        "Work items open now.",
        &[(String::new(), c.open_work)],
    );
    gauge(
        "tend_expected_work_in_flight",
        "Expected work from offers sent within the horizon.",
        &[(String::new(), c.expected_in_flight)],
    );
    gauge(
        "tend_capacity_headroom",
        "Room left for new offers.",
        &[(String::new(), c.headroom)],
    );
    gauge(
        "tend_touches_held",
        "Pending touches held back, by reason.",
        &report
            .held
            .iter()
            .map(|(reason, n)| (format!("{{reason=\"{reason}\"}}"), *n as f64))
            .collect::<Vec<_>>(),
    );
    gauge(
        "tend_enrolled",
        "Contacts enrolled in each process.",
        &report
            .enrolled
            .iter()
            .map(|(process, n)| (format!("{{process=\"{}\"}}", label(process)), *n as f64))
            .collect::<Vec<_>>(),
    );
    gauge(
        "tend_deficit_shortfall_per_day",
        "How much more of a resource per day the max_gap promise needs.",
        &report
            .deficit
            .report
            .resources
            .iter()
            .map(|r| {
                (
                    format!("{{resource=\"{}\"}}", r.resource),
                    r.shortfall_per_day,
                )
            })
            .collect::<Vec<_>>(),
    );
    let feedback = &report.mail_feedback;
    let _ = writeln!(
        out,
        "# HELP tend_mail_feedback_total Reports about sent mail received after the send, by kind.\n\
         # TYPE tend_mail_feedback_total counter"
    );
    for (kind, n) in [
        ("hard_bounce", feedback.hard_bounces),
        ("soft_bounce", feedback.soft_bounces),
        ("complaint", feedback.complaints),
        ("unsubscribe", feedback.unsubscribes),
    ] {
        let _ = writeln!(out, "tend_mail_feedback_total{{kind=\"{kind}\"}} {n}");
    }
    out
}

/// A label value with `\`, `"` and newlines escaped, as the text format requires.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
