//! Reports on a live instance (`GET /api/reports/*`, `tend report`): the funnel,
//! touches to conversion, pace per day against budget and capacity, and the contacts
//! closest to or past their `max_gap` promise. Read-only: no engine needs to run.

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use std::collections::BTreeMap;
use tend_core::StageName;
use tend_core::check::Project;
use tend_core::pacer::{Channel, Period, Resource};
use tend_store::{NeglectRow, Store, StoreError};

/// Contacts per stage and the moves between stages in a period.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FunnelReport {
    /// Start of the period.
    pub from: Timestamp,
    /// End of the period (exclusive).
    pub to: Timestamp,
    /// Every configured stage in order, with the contacts in it now.
    pub stages: Vec<StageCount>,
    /// Stage changes in the period, most frequent first.
    pub moves: Vec<StageMove>,
}

/// One stage's head count.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StageCount {
    /// The stage.
    pub stage: String,
    /// Contacts in it now.
    pub contacts: u64,
}

/// How many contacts moved from one stage to another.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StageMove {
    /// The stage left; `None` for contacts first seen in the period.
    pub from: Option<String>,
    /// The stage entered.
    pub to: String,
    /// How many moves.
    pub count: u64,
}

/// How many touches it took before contacts converted.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversionReport {
    /// The stage counted as a conversion.
    pub stage: String,
    /// Contacts who reached it.
    pub conversions: u64,
    /// Median touches before conversion.
    pub median: Option<u64>,
    /// 90th percentile.
    pub p90: Option<u64>,
    /// `touches → contacts`, one bucket per count up to 30, then `31+`.
    pub histogram: Vec<Bucket>,
}

/// One histogram bucket.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Bucket {
    /// `0`…`30` or `31+`.
    pub touches: String,
    /// Contacts in the bucket.
    pub contacts: u64,
}

/// One business day of pacing.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PaceDay {
    /// The day, in the business's time zone.
    pub date: String,
    /// Emails admitted.
    pub emails: u64,
    /// Webhooks admitted.
    pub webhooks: u64,
    /// Tasks planned.
    pub tasks: u64,
    /// The daily email budget, if one is set.
    pub email_budget: Option<f64>,
    /// Work items opened.
    pub work_opened: u64,
    /// Work items closed.
    pub work_closed: u64,
    /// Capacity per day (`per_week / 7`).
    pub capacity: f64,
}

/// Per day, touches against budget and work against capacity.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PaceHistory {
    /// Oldest first.
    pub days: Vec<PaceDay>,
}

/// One contact's standing against its promise.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NeglectEntry {
    /// The process key.
    pub process: String,
    /// Negative when the deadline has passed.
    pub hours_left: f64,
    /// The rest of the row.
    #[serde(flatten)]
    pub row: NeglectRow,
}

/// The contacts closest to or past their process's `max_gap`.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NeglectReport {
    /// When it was computed.
    pub at: Timestamp,
    /// How many listed contacts are past their deadline.
    pub past_deadline: u64,
    /// Earliest deadline first.
    pub contacts: Vec<NeglectEntry>,
}

/// The funnel over `[from, to)`.
pub async fn funnel(
    store: &dyn Store,
    project: &Project,
    from: Timestamp,
    to: Timestamp,
) -> Result<FunnelReport, StoreError> {
    let counts = store.funnel(from, to).await?;
    let now: BTreeMap<String, u64> = counts.stages.into_iter().collect();
    let stages = project
        .config
        .stages
        .order
        .iter()
        .map(|s| StageCount {
            stage: s.as_str().to_owned(),
            contacts: now.get(s.as_str()).copied().unwrap_or(0),
        })
        .collect();
    let mut moves: Vec<StageMove> = counts
        .moves
        .into_iter()
        .map(|(from, to, count)| StageMove { from, to, count })
        .collect();
    moves.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.to.cmp(&b.to)));
    Ok(FunnelReport {
        from,
        to,
        stages,
        moves,
    })
}

/// The stage counted as a conversion unless asked otherwise: `customer` when configured,
/// else the stage after the second (prospect → lead → *customer*), else the last.
pub fn default_conversion_stage(project: &Project) -> StageName {
    let order = &project.config.stages.order;
    order
        .iter()
        .find(|s| s.as_str() == "customer")
        .or_else(|| order.get(2))
        .or_else(|| order.last())
        .cloned()
        .unwrap_or_else(|| StageName::new("customer"))
}

/// Touches before each contact's first arrival in `stage`.
pub async fn touches_to_conversion(
    store: &dyn Store,
    stage: &StageName,
) -> Result<ConversionReport, StoreError> {
    // `(touches, contacts)` by touches: the sorted list of every contact's count,
    // run-length encoded.
    let counts = store.conversion_histogram(stage).await?;
    let conversions: u64 = counts.iter().map(|(_, contacts)| contacts).sum();
    let pick = |q: f64| -> Option<u64> {
        if conversions == 0 {
            return None;
        }
        let i = (((conversions as f64 - 1.0) * q).round() as u64).min(conversions - 1);
        let mut seen = 0;
        counts.iter().find_map(|(touches, contacts)| {
            seen += contacts;
            (i < seen).then_some(*touches)
        })
    };
    let mut buckets: BTreeMap<u64, u64> = BTreeMap::new();
    for (touches, contacts) in &counts {
        *buckets.entry((*touches).min(31)).or_default() += contacts;
    }
    let histogram = buckets
        .into_iter()
        .map(|(n, contacts)| Bucket {
            touches: if n == 31 { "31+".into() } else { n.to_string() },
            contacts,
        })
        .collect();
    Ok(ConversionReport {
        stage: stage.as_str().to_owned(),
        conversions,
        median: pick(0.5),
        p90: pick(0.9),
        histogram,
    })
}

/// The last `days` business days (today included) of touches and work.
pub async fn pace_history(
    store: &dyn Store,
    project: &Project,
    now: Timestamp,
    days: u32,
) -> Result<PaceHistory, StoreError> {
    let config = &project.config;
    let tz = config.business.timezone.time_zone();
    let today = now.to_zoned_datetime(tz.clone()).date();
    let first = today
        .checked_sub(jiff::Span::new().days(i64::from(days.max(1)) - 1))
        .unwrap_or(today);
    let since = first
        .to_zoned_datetime(tz.clone())
        .map(|z| z.timestamp())
        .unwrap_or(
            now.saturating_sub(SignedDuration::from_hours(24))
                .unwrap_or(now),
        );
    let email_budget = config
        .pacer_policy()
        .ok()
        .and_then(|p| p.budgets.get(Resource::Emails).get(Period::Day));
    let mut by_day: BTreeMap<Date, PaceDay> = BTreeMap::new();
    let mut date = first;
    while date <= today {
        by_day.insert(
            date,
            PaceDay {
                date: date.to_string(),
                emails: 0,
                webhooks: 0,
                tasks: 0,
                email_budget,
                work_opened: 0,
                work_closed: 0,
                capacity: config.capacity.per_week / 7.0,
            },
        );
        match date.tomorrow() {
            Ok(next) => date = next,
            Err(_) => break,
        }
    }
    let day_of = |at: Timestamp| at.to_zoned_datetime(tz.clone()).date();
    for (at, channel) in store.admitted_since(since).await? {
        if let Some(day) = by_day.get_mut(&day_of(at)) {
            match channel {
                Channel::Email => day.emails += 1,
                Channel::Webhook => day.webhooks += 1,
                Channel::Task => day.tasks += 1,
            }
        }
    }
    for (at, delta) in store.work_log_since(since).await? {
        if let Some(day) = by_day.get_mut(&day_of(at)) {
            if delta > 0.0 {
                day.work_opened += delta as u64;
            } else {
                day.work_closed += (-delta) as u64;
            }
        }
    }
    Ok(PaceHistory {
        days: by_day.into_values().collect(),
    })
}

/// The `limit` contacts whose `max_gap` deadline comes first.
pub async fn neglect(
    store: &dyn Store,
    project: &Project,
    now: Timestamp,
    limit: u32,
) -> Result<NeglectReport, StoreError> {
    let stored = store.stored_processes().await?;
    let mut gaps = Vec::new();
    let mut keys = BTreeMap::new();
    for s in &stored {
        if let Some(process) = project.process(&s.key) {
            gaps.push((s.id, process.max_gap.as_millis()));
            keys.insert(s.id, s.key.clone());
        }
    }
    let rows = store.neglect(&gaps, None, limit).await?;
    let contacts: Vec<NeglectEntry> = rows
        .into_iter()
        .map(|row| NeglectEntry {
            process: keys.get(&row.process_id).cloned().unwrap_or_default(),
            hours_left: (row.deadline.as_millisecond() - now.as_millisecond()) as f64 / 3_600_000.0,
            row,
        })
        .collect();
    Ok(NeglectReport {
        at: now,
        past_deadline: contacts.iter().filter(|c| c.hours_left < 0.0).count() as u64,
        contacts,
    })
}
