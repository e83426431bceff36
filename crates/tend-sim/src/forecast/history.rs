//! How many contacts the coming weeks will bring, estimated from the last weeks'
//! history: for each process, how often what enrolls into it happened (entering its
//! stage, or its event being tracked) in each of those weeks; the median week is the
//! rate, so a one-off import or campaign is not taken for a trend.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use tend_core::Enroll;
use tend_core::check::Project;
use tend_store::{Signal, SignalCursor, StageEnrollment, Store, StoreError};

/// Signals read at once while counting.
const READ_BATCH: u32 = 10_000;

/// The arrivals expected into one process.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArrivalRate {
    /// The process's id (its file stem).
    pub process: String,
    /// What enrolls into it: `stage lead` or `event Inquiry Received`.
    pub trigger: String,
    /// How many times that happened in the history window.
    pub observed: u64,
    /// How many times in each week of the window, the most recent first.
    pub weekly: Vec<u64>,
    /// The rate assumed for the forecast: the median of `weekly`.
    pub per_week: f64,
}

/// Counts, for each process of `project`, what enrolled into it in each of the
/// `weeks` weeks before `now`, and takes the median week as its rate.
pub(crate) async fn arrival_rates(
    store: &dyn Store,
    project: &Project,
    now: Timestamp,
    weeks: u32,
) -> Result<Vec<ArrivalRate>, StoreError> {
    let week_ms = 7 * 86_400_000;
    let since = now
        .saturating_sub(SignedDuration::from_millis(week_ms * i64::from(weeks)))
        .unwrap_or(now);
    let events: Vec<String> = project
        .processes
        .iter()
        .filter_map(|p| match &p.enroll {
            Enroll::Event(name) => Some(name.clone()),
            Enroll::Stage(_) => None,
        })
        .collect();
    let mut observed = vec![vec![0u64; weeks as usize]; project.processes.len()];
    let mut cursor = SignalCursor::default();
    loop {
        let batch = store.read_signals(cursor, &events, READ_BATCH).await?;
        if batch.signals.is_empty() || batch.next == cursor {
            break;
        }
        cursor = batch.next;
        for signal in &batch.signals {
            let at = match signal {
                Signal::StageEntered { at, .. } | Signal::Event { at, .. } => *at,
            };
            if at < since || at >= now {
                continue;
            }
            let week = (now.duration_since(at).as_millis() / i128::from(week_ms)) as usize;
            for (counts, process) in observed.iter_mut().zip(&project.processes) {
                let enrolls = match (&process.enroll, signal) {
                    (Enroll::Stage(stage), Signal::StageEntered { to, enrollment, .. }) => {
                        stage == to && *enrollment != StageEnrollment::No
                    }
                    (Enroll::Event(event), Signal::Event { name, .. }) => event == name,
                    _ => false,
                };
                if let Some(count) = counts.get_mut(week) {
                    *count += u64::from(enrolls);
                }
            }
        }
    }
    Ok(project
        .processes
        .iter()
        .zip(observed)
        .map(|(process, observed)| ArrivalRate {
            process: process.id.clone(),
            trigger: match &process.enroll {
                Enroll::Stage(stage) => format!("stage {stage}"),
                Enroll::Event(event) => format!("event {event}"),
            },
            observed: observed.iter().sum(),
            per_week: median(&observed),
            weekly: observed,
        })
        .collect())
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(values: &[u64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2] as f64,
        n => (sorted[n / 2 - 1] + sorted[n / 2]) as f64 / 2.0,
    }
}

/// The instants at which `rate` arrivals per week fall in `[from, to)`, evenly spaced,
/// the first half an interval after `from`: the expectation, not a random draw, so the
/// same state always gives the same forecast.
pub(crate) fn arrival_times(rate: &ArrivalRate, from: Timestamp, to: Timestamp) -> Vec<Timestamp> {
    if rate.per_week <= 0.0 {
        return Vec::new();
    }
    let interval_ms = 7.0 * 86_400_000.0 / rate.per_week;
    let span_ms = to.duration_since(from).as_millis() as f64;
    let mut times = Vec::new();
    let mut offset = interval_ms / 2.0;
    while offset < span_ms {
        if let Ok(at) = from.checked_add(SignedDuration::from_millis(offset as i64)) {
            times.push(at);
        }
        offset += interval_ms;
    }
    times
}
