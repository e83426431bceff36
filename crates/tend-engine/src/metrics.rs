//! Counters and histograms of the work Tend does, written in Prometheus's text format
//! by `/metrics` beside the pace gauges.
//!
//! Hand-written rather than a metrics crate: a dozen families with small, fixed label
//! sets need no more than a mutex-guarded map each, this keeps `/metrics` in one text
//! format (0.0.4, as the gauges already were) and adds nothing to the build. Every
//! update is one short critical section, far below the cost of the request, decision
//! or send it counts.

use jiff::Timestamp;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;
use tend_store::{DecisionRecord, DispatchResult, Store, StoreError};

/// Upper bounds of the latency histograms' buckets, in seconds: a millisecond to ten
/// seconds, roughly ×2.5 apart.
const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Every metric Tend counts, shared by the engine and the HTTP layer.
pub struct Metrics {
    events_ingested: Family<u64>,
    events_duplicate: Family<u64>,
    ingest_rejected: Family<u64>,
    touches_decided: Family<u64>,
    deliveries: Family<u64>,
    http_requests: Family<u64>,
    http_seconds: Family<Histogram>,
    tick_seconds: Family<Histogram>,
    dispatch_seconds: Family<Histogram>,
    mail_webhook_events: Family<u64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            events_ingested: Family::new(
                "tend_events_ingested_total",
                "Segment messages written.",
                &[],
            ),
            events_duplicate: Family::new(
                "tend_events_duplicate_total",
                "Segment messages skipped because their messageId was already stored.",
                &[],
            ),
            ingest_rejected: Family::new(
                "tend_ingest_rejected_total",
                "Ingest requests refused whole (nothing written), by reason.",
                &["reason"],
            ),
            touches_decided: Family::new(
                "tend_touches_decided_total",
                "Pacer decisions on due touches, by decision and reason.",
                &["decision", "reason"],
            ),
            deliveries: Family::new(
                "tend_deliveries_total",
                "Send attempts by channel and outcome (sent, retried, failed, bounced).",
                &["channel", "outcome"],
            ),
            http_requests: Family::new(
                "tend_http_requests_total",
                "HTTP requests by matched route and status.",
                &["route", "status"],
            ),
            http_seconds: Family::new(
                "tend_http_request_duration_seconds",
                "Time from a request's headers to its response, by matched route.",
                &["route"],
            ),
            tick_seconds: Family::new(
                "tend_engine_tick_duration_seconds",
                "One engine pass: reading signals, enrolling and deciding what is due.",
                &[],
            ),
            dispatch_seconds: Family::new(
                "tend_dispatch_duration_seconds",
                "One send, from claim to result, by channel.",
                &["channel"],
            ),
            mail_webhook_events: Family::new(
                "tend_mail_webhook_events_total",
                "Events from mail providers' webhooks, by provider and outcome (recorded, duplicate, ignored).",
                &["provider", "outcome"],
            ),
        }
    }
}

impl Metrics {
    /// Counts one ingest request's written and duplicate messages.
    pub fn ingested(&self, accepted: usize, duplicates: usize) {
        self.events_ingested.add(&[], accepted as u64);
        self.events_duplicate.add(&[], duplicates as u64);
    }

    /// Counts an ingest request refused for `reason` (the error body's `code`).
    pub fn ingest_rejected(&self, reason: &str) {
        self.ingest_rejected.add(&[reason], 1);
    }

    /// Counts the decisions of one pass as they were recorded.
    pub fn decided(&self, records: &[DecisionRecord]) {
        let mut counts: BTreeMap<(&str, String), u64> = BTreeMap::new();
        for record in records {
            let key = match record {
                DecisionRecord::Queue { .. } | DecisionRecord::OpenTask { .. } => {
                    ("send", "none".to_owned())
                }
                DecisionRecord::Defer { reason, .. } => ("defer", reason.to_string()),
                DecisionRecord::Skip { reason, .. } => ("skip", reason.to_string()),
                // Both happen only to an offer held back by capacity.
                DecisionRecord::Substitute { .. } => ("substitute", "capacity".to_owned()),
                DecisionRecord::Replace { .. } => ("replace", "capacity".to_owned()),
            };
            *counts.entry(key).or_default() += 1;
        }
        for ((decision, reason), count) in counts {
            self.touches_decided.add(&[decision, &reason], count);
        }
    }

    /// Counts one send's outcome and how long it took.
    pub fn delivered(&self, channel: &str, outcome: &str, took: Duration) {
        self.deliveries.add(&[channel, outcome], 1);
        self.dispatch_seconds.observe(&[channel], took);
    }

    /// Counts one engine pass.
    pub fn ticked(&self, took: Duration) {
        self.tick_seconds.observe(&[], took);
    }

    /// Counts one HTTP request.
    pub fn http_request(&self, route: &str, status: u16, took: Duration) {
        self.http_requests.add(&[route, &status.to_string()], 1);
        self.http_seconds.observe(&[route], took);
    }

    /// Counts `n` events a mail provider's webhook reported, by what became of them.
    pub fn mail_webhook_events(&self, provider: &str, outcome: &str, n: usize) {
        if n > 0 {
            self.mail_webhook_events.add(&[provider, outcome], n as u64);
        }
    }

    /// Every family in Prometheus's text format.
    pub fn render(&self, out: &mut String) {
        self.events_ingested.render(out);
        self.events_duplicate.render(out);
        self.ingest_rejected.render(out);
        self.touches_decided.render(out);
        self.deliveries.render(out);
        self.http_requests.render(out);
        self.http_seconds.render(out);
        self.tick_seconds.render(out);
        self.dispatch_seconds.render(out);
        self.mail_webhook_events.render(out);
    }
}

/// Writes `tend_touches_cancelled_total` from the database's counts by cause (see
/// [`Store::touches_cancelled`]). Unlike the families above, which count what this
/// process did since it started, these come from the database: cancelling happens in
/// many places (the engine, the API, the console, the CLI, the mailbox reader), and on
/// PostgreSQL every node reports the same business-wide total.
pub fn render_touches_cancelled(out: &mut String, by_cause: &[(String, u64)]) {
    let name = "tend_touches_cancelled_total";
    let _ = writeln!(
        out,
        "# HELP {name} Planned touches cancelled, by cause (exited, unsubscribed, bounced, \
         complained, suppressed, merged, steps_removed, erased); from the database, the same \
         on every node."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for (cause, n) in by_cause {
        let _ = writeln!(out, "{name}{{reason=\"{}\"}} {n}", escape(cause));
    }
}

/// The `outcome` label of a send's result.
pub fn outcome(result: &DispatchResult) -> &'static str {
    match result {
        DispatchResult::Delivered { .. } => "sent",
        DispatchResult::Retry { .. } => "retried",
        DispatchResult::Failed { .. } => "failed",
        DispatchResult::Bounced { .. } => "bounced",
    }
}

/// How long the most overdue touch has waited: the earlier of the next pending touch's
/// due time and the next queued send's, if past. It grows without bound when the engine
/// or the dispatcher is stuck; a working engine keeps it near its tick.
pub async fn oldest_due_age(store: &dyn Store, now: Timestamp) -> Result<Duration, StoreError> {
    let due = store.next_due_at().await?;
    let dispatch = store.next_dispatch_at().await?;
    let oldest = match (due, dispatch) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(oldest
        .map(|at| now.duration_since(at))
        .and_then(|age| Duration::try_from(age).ok())
        .unwrap_or_default())
}

/// One metric's samples by label values.
struct Family<T> {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    samples: Mutex<BTreeMap<Vec<String>, T>>,
}

impl<T: Sample> Family<T> {
    fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Family {
            name,
            help,
            labels,
            samples: Mutex::new(BTreeMap::new()),
        }
    }

    fn with(&self, values: &[&str], update: impl FnOnce(&mut T)) {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        // Looked up by borrowed values first: the common case allocates nothing.
        if let Some((_, sample)) = samples
            .iter_mut()
            .find(|(key, _)| key.iter().map(String::as_str).eq(values.iter().copied()))
        {
            update(sample);
            return;
        }
        let mut sample = T::default();
        update(&mut sample);
        samples.insert(values.iter().map(|v| (*v).to_owned()).collect(), sample);
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, T::KIND);
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.is_empty() && self.labels.is_empty() {
            // A counter with no labels exists from the start, at zero.
            T::default().render(out, self.name, "");
        }
        for (values, sample) in samples.iter() {
            let labels = self
                .labels
                .iter()
                .zip(values)
                .map(|(name, value)| format!("{name}=\"{}\"", escape(value)))
                .collect::<Vec<_>>()
                .join(",");
            sample.render(out, self.name, &labels);
        }
    }
}

impl Family<u64> {
    fn add(&self, values: &[&str], by: u64) {
        if by > 0 {
            self.with(values, |count| *count += by);
        }
    }
}

impl Family<Histogram> {
    fn observe(&self, values: &[&str], took: Duration) {
        self.with(values, |histogram| histogram.observe(took.as_secs_f64()));
    }
}

/// What a family holds per label set.
trait Sample: Default {
    const KIND: &'static str;
    fn render(&self, out: &mut String, name: &str, labels: &str);
}

impl Sample for u64 {
    const KIND: &'static str = "counter";

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {self}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {self}");
        }
    }
}

/// Counts per bucket (not cumulative; summed when written), the sum and the count.
#[derive(Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&le| seconds <= le) {
            self.buckets[i] += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }
}

impl Sample for Histogram {
    const KIND: &'static str = "histogram";

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (le, count) in LATENCY_BUCKETS.iter().zip(self.buckets) {
            cumulative += count;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = |labels: &str| {
            if labels.is_empty() {
                String::new()
            } else {
                format!("{{{labels}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), self.count);
    }
}

/// A label value as the text format quotes it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_are_written_in_the_text_format() {
        let metrics = Metrics::default();
        metrics.ingested(3, 1);
        metrics.ingested(2, 0);
        metrics.http_request("/v1/batch", 200, Duration::from_millis(3));
        metrics.http_request("/v1/batch", 200, Duration::from_millis(30));
        metrics.http_request("/v1/batch", 400, Duration::from_millis(1));
        metrics.ingest_rejected("in\"valid");
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(out.contains("tend_events_ingested_total 5\n"), "{out}");
        assert!(out.contains("tend_events_duplicate_total 1\n"), "{out}");
        assert!(
            out.contains("tend_http_requests_total{route=\"/v1/batch\",status=\"200\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains(
                "tend_http_request_duration_seconds_bucket{route=\"/v1/batch\",le=\"0.005\"} 2\n"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "tend_http_request_duration_seconds_bucket{route=\"/v1/batch\",le=\"+Inf\"} 3\n"
            ),
            "{out}"
        );
        assert!(
            out.contains("tend_ingest_rejected_total{reason=\"in\\\"valid\"} 1\n"),
            "{out}"
        );
        // A histogram without labels that saw nothing is written at zero.
        assert!(
            out.contains("tend_engine_tick_duration_seconds_count 0\n"),
            "{out}"
        );
    }
}
