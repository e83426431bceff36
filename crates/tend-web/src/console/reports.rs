//! Reports (`GET /reports`, owners only): the funnel, touches to conversion, the pace
//! per day against the email budget and work opened against capacity, each chart with
//! its numbers beside it. The same engine functions answer `/api/reports/*`.

use super::layout::{PageError, num, page};
use super::session::Viewer;
use crate::AppState;
use axum::extract::State;
use axum::response::Response;
use jiff::SignedDuration;
use maud::{PreEscaped, html};
use tend_charts::{BarChart, Limit, LineChart, Series, bar_chart, line_chart};
use tend_engine::reports;

/// Days the funnel and pace reports cover.
const DAYS: u32 = 30;

/// `GET /reports`.
pub async fn show(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    viewer.require_owner()?;
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let store = engine.store().as_ref();
    let project = engine.project();
    let now = engine.clock().now();
    let from = now
        .saturating_sub(SignedDuration::from_hours(24 * i64::from(DAYS)))
        .unwrap_or(now);
    let funnel = reports::funnel(store, project, from, now).await?;
    let stage = reports::default_conversion_stage(project);
    let conversion = reports::touches_to_conversion(store, &stage).await?;
    let pace = reports::pace_history(store, project, now, DAYS).await?;

    let stage_labels: Vec<String> = funnel.stages.iter().map(|s| s.stage.clone()).collect();
    let funnel_chart = bar_chart(&BarChart {
        unit: "contacts",
        title: "Contacts per stage now",
        x_caption: "stage",
        labels: stage_labels,
        series: vec![Series::new(
            "contacts",
            "#2f6fb0",
            None,
            funnel.stages.iter().map(|s| s.contacts as f64).collect(),
        )],
    });
    let conversion_chart = bar_chart(&BarChart {
        unit: "contacts",
        title: "Touches before converting",
        x_caption: "touches before converting →",
        labels: conversion
            .histogram
            .iter()
            .map(|b| b.touches.clone())
            .collect(),
        series: vec![Series::new(
            "contacts",
            "#2e8b57",
            None,
            conversion
                .histogram
                .iter()
                .map(|b| b.contacts as f64)
                .collect(),
        )],
    });
    let dates: Vec<&str> = pace.days.iter().map(|d| d.date.as_str()).collect();
    let email_budget = pace.days.iter().find_map(|d| d.email_budget);
    let budget_label = email_budget.map(|b| format!("email budget ({})", num(b)));
    let pace_chart = line_chart(&LineChart {
        unit: "touches",
        title: "Touches per day",
        dates: dates.clone(),
        series: vec![
            Series::new(
                "emails",
                "#2f6fb0",
                None,
                pace.days.iter().map(|d| d.emails as f64).collect(),
            ),
            Series::new(
                "webhooks",
                "#7a5cb8",
                Some("6 3"),
                pace.days.iter().map(|d| d.webhooks as f64).collect(),
            ),
            Series::new(
                "tasks",
                "#2e8b57",
                Some("2 2"),
                pace.days.iter().map(|d| d.tasks as f64).collect(),
            ),
        ],
        limit: email_budget
            .zip(budget_label.as_deref())
            .map(|(value, label)| Limit { value, label }),
    });
    let capacity = pace.days.last().map_or(0.0, |d| d.capacity);
    let capacity_label = format!("capacity per day ({})", num(capacity));
    let work_chart = line_chart(&LineChart {
        unit: "work items",
        title: "Work opened per day",
        dates,
        series: vec![
            Series::new(
                "opened",
                "#b3261e",
                None,
                pace.days.iter().map(|d| d.work_opened as f64).collect(),
            ),
            Series::new(
                "closed",
                "#2e8b57",
                Some("6 3"),
                pace.days.iter().map(|d| d.work_closed as f64).collect(),
            ),
        ],
        limit: Some(Limit {
            value: capacity,
            label: &capacity_label,
        }),
    });

    let body = html! {
        h1 { "Reports" }
        section aria-labelledby="funnel-h" data-testid="report-funnel" {
            h2 id="funnel-h" { "Funnel" }
            div.chart { (PreEscaped(funnel_chart)) }
            table {
                thead { tr { th { "Stage" } th { "Contacts now" } } }
                tbody { @for s in &funnel.stages { tr { td { (s.stage) } td { (s.contacts) } } } }
            }
            h3 { "Moves in the last " (DAYS) " days" }
            @if funnel.moves.is_empty() { p.empty { "None." } }
            ul { @for m in &funnel.moves {
                li { (m.from.as_deref().unwrap_or("new")) " → " (m.to) ": " (m.count) }
            } }
        }
        section aria-labelledby="conversion-h" data-testid="report-conversion" {
            h2 id="conversion-h" { "Touches to " (conversion.stage) }
            p { (conversion.conversions) " conversions; median "
                (conversion.median.map_or_else(|| "—".to_owned(), |m| m.to_string())) " touches." }
            div.chart { (PreEscaped(conversion_chart)) }
            table {
                thead { tr { th { "Touches" } th { "Contacts" } } }
                tbody { @for b in &conversion.histogram { tr { td { (b.touches) } td { (b.contacts) } } } }
            }
        }
        section aria-labelledby="pace-h" data-testid="report-pace" {
            h2 id="pace-h" { "Pace per day" }
            div.chart { (PreEscaped(pace_chart)) }
            h2 { "Work against capacity" }
            div.chart { (PreEscaped(work_chart)) }
            table {
                thead { tr { th { "Day" } th { "Emails" } th { "Webhooks" } th { "Tasks" } th { "Work opened" } th { "Closed" } } }
                tbody { @for d in pace.days.iter().rev() {
                    tr { td { (d.date) } td { (d.emails) } td { (d.webhooks) } td { (d.tasks) }
                         td { (d.work_opened) } td { (d.work_closed) } }
                } }
            }
        }
    };
    Ok(page(&viewer, "Reports", "Reports", body))
}
