//! `tend.toml`, typed: the business, its capacity, budgets, limits, stages and channels
//! (DESIGN.md §5, "Config v1").
//!
//! Defaults when a key or table is absent:
//!
//! | key | default |
//! |---|---|
//! | `database_url` | `sqlite://tend.db` (resolved beside `tend.toml` by the binary) |
//! | `public_url` | `http://127.0.0.1:7070` (where unsubscribe links point) |
//! | `[business] name` | required |
//! | `[business] timezone` | `UTC` |
//! | `[business] hours` | `Mon-Fri 09:00-17:00` |
//! | `[business] holidays` | none: dates (`"2026-12-25"`) closed all day |
//! | `[capacity] per_week` | `10` work items |
//! | `[capacity] target_utilization` | `0.85` |
//! | `[capacity] horizon` | `2w` |
//! | `[capacity] offer_probability` | `0.2`: prior chance that an offer creates work |
//! | `[capacity] response_delay` | none: offers in flight fade evenly over the horizon; set (e.g. `3d`), the prior mean time from an offer to its answer, from which each step's delays are learned and its unanswered offers fade |
//! | `[capacity] max_wait` | none: only the share of capacity over the horizon bounds offers; set (e.g. `10d`), offers are also held while new work would wait longer than this for the team |
//! | `[budget]` | no limits |
//! | `[budget] <resource>.reserve` | a twentieth of the resource's smallest limit: what first touches may spend ahead of the accrual |
//! | `[costs]` | every channel costs 0 |
//! | `[limits] per_contact_per_week` | `3` |
//! | `[limits] min_gap` | `1d` |
//! | `[limits] quiet_hours` | `21:00-08:00` (`"none"`: no quiet hours) |
//! | `[limits] channels` | `["email"]`: the channels the two limits above count and hold |
//! | `[stages] order` | `prospect, lead, customer, loyal, lapsed` |
//! | `[stages.on_event]` | no event moves a stage |
//! | `[work] opened` / `closed` | `Job Opened` / `Job Completed` |
//! | `[channels.email] from` | none (required by `tend check` once a process sends email) |
//! | `[channels.email] smtp_url` | none: email is written to `outbox/` as `.eml` files |
//! | `[channels.email] bounce_address` | none: the envelope sender is the `from` address; set (`bounces@example.com`), each email's is `bounces+<signed touch token>@example.com` |
//! | `[channels.email] dkim_selector` / `dkim_key_file` | none: mail leaves unsigned (your relay may sign it); both set, each email is DKIM-signed with the PEM key in the file |
//! | `[channels.email] dkim_domain` | the `from` address's domain |
//! | `[channels.email] inbound_ca_file` | none: the inbound server's certificate must chain to the public (Mozilla) roots; set, to the certificates in this PEM file only |
//! | `[channels.email.providers.*]` | none: no provider's event webhook is accepted; `postmark` (`user`, `password_env`/`_file`), `mailgun` (`signing_key_env`/`_file`), `sendgrid` (`public_key`) each enable `POST /v1/mail/<provider>` |
//! | `[channels.webhook] secret` | none: webhooks are sent unsigned |
//! | `[tasks.outcomes]` | none: a task's outcome is recorded but records no event |
//! | `[dispatch] workers` | `8` sends in flight at once |
//! | `[dispatch] retry_after` / `retry_max` | `30s` doubling up to `1h` after a temporary failure |
//! | `[dispatch] lease` | `2m`: how long a send may take before another try takes it over |
//! | `[http] listen` | `127.0.0.1:7070`: where `tend serve` listens unless `--listen` says |
//! | `[http] header_timeout` | `10s`: to send a request's headers; also the keep-alive idle time |
//! | `[http] body_timeout` | `30s`: to send a request's body |
//! | `[http] max_connections` | `512` open at once |
//! | `[http] shutdown_grace` | `10s` for requests in progress after SIGTERM |

mod email;
mod http;
mod listen;
mod pacing;
mod providers;
pub use email::{Channels, ConfigFile, Dkim, EmailChannel, MAX_BOUNCE_LOCAL_PART, WebhookChannel};
pub use http::Http;
pub use listen::{
    DEFAULT_LISTEN, ListenAddress, ListenAddressError, PublicUrlWarning, is_loopback,
    public_url_warnings,
};
pub use pacing::{BudgetLimits, Capacity, Limits, default_reserve};
use pacing::{read_budget, read_capacity, read_costs, read_limits};
pub use providers::{
    MailProviders, MailgunWebhook, PostmarkWebhook, SecretRef, SecretSource, SendgridWebhook,
};

use crate::check::{Diagnostic, Fields, Report, parse_toml};
use crate::domain::{Email, StageName, TimeZoneName};
use crate::duration::Duration;
use crate::hours::WeeklyHours;
use crate::pacer::{ChannelCosts, PacerError, PacerPolicy, Period, Resource};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use toml::de::{DeTable, DeValue};

/// The database used when `database_url` is absent.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://tend.db";

/// Where links in emails point when `public_url` is absent: `tend serve`'s default address.
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:7070";

/// The budget resources Tend meters; `[budget]` keys must be one of these.
pub const BUDGET_RESOURCES: &[&str] = &["emails", "webhooks", "staff_minutes", "money"];

/// The channels a touch can use; `[costs]` keys must be one of these.
pub const CHANNELS: &[&str] = &[
    crate::pacer::Channel::Email.as_str(),
    crate::pacer::Channel::Webhook.as_str(),
    crate::pacer::Channel::Task.as_str(),
];

/// The stage order used when `[stages] order` is absent.
pub const DEFAULT_STAGES: &[&str] = &["prospect", "lead", "customer", "loyal", "lapsed"];

/// A whole `tend.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `sqlite://…` or `postgres://…`; a relative SQLite path is relative to `tend.toml`.
    pub database_url: String,
    /// The server's address as recipients reach it, without a trailing slash; unsubscribe
    /// links and the calendar feed are built on it.
    pub public_url: String,
    /// `[business]`.
    pub business: Business,
    /// `[capacity]`.
    pub capacity: Capacity,
    /// `[budget]`: resource name (one of [`BUDGET_RESOURCES`]) → limits.
    pub budget: BTreeMap<String, BudgetLimits>,
    /// `[costs]`: channel name (one of [`CHANNELS`]) → money per touch.
    pub costs: BTreeMap<String, f64>,
    /// `[limits]`.
    pub limits: Limits,
    /// `[stages]`.
    pub stages: Stages,
    /// `[work]`.
    pub work: Work,
    /// `[channels]`.
    pub channels: Channels,
    /// `[tasks]`.
    pub tasks: Tasks,
    /// `[dispatch]`.
    pub dispatch: Dispatch,
    /// `[http]`.
    pub http: Http,
}

/// `[dispatch]`: how admitted touches are sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatch {
    /// Sends in flight at once.
    pub workers: u32,
    /// The first wait after a temporary failure (SMTP 4xx, timeouts, HTTP 5xx); it
    /// doubles with every further attempt.
    pub retry_after: Duration,
    /// The longest wait between two attempts; a send is retried until it succeeds or
    /// fails for good, never dropped.
    pub retry_max: Duration,
    /// How long one send may take before the touch is taken over by another attempt.
    pub lease: Duration,
}

impl Default for Dispatch {
    fn default() -> Self {
        Dispatch {
            workers: 8,
            retry_after: Duration::from_secs(30),
            retry_max: Duration::from_secs(3_600),
            lease: Duration::from_secs(120),
        }
    }
}

/// `[tasks]`: what the outcome of a completed task means.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tasks {
    /// `[tasks.outcomes]`: outcome → event recorded for the contact when a task is
    /// completed with it, e.g. `replied = "Replied"`; the event can move the contact's
    /// stage or end its process.
    pub outcomes: BTreeMap<String, String>,
}

/// `[business]`: who is sending, where, and when the team works.
#[derive(Debug, Clone, PartialEq)]
pub struct Business {
    /// Shown in templates as `business.name`.
    pub name: String,
    /// The business's own zone, for hours and budgets.
    pub timezone: TimeZoneName,
    /// When tasks are planned and budgets accrue, holidays included (closed).
    pub hours: WeeklyHours,
}

/// `[stages]`: the ordered relationship stages and the events that move contacts.
#[derive(Debug, Clone, PartialEq)]
pub struct Stages {
    /// In order; the first is where new contacts start.
    pub order: Vec<StageName>,
    /// Event name → the stage a contact moves to when it happens.
    pub on_event: BTreeMap<String, StageName>,
}

impl Default for Stages {
    fn default() -> Self {
        Stages {
            order: DEFAULT_STAGES.iter().map(|s| StageName::new(*s)).collect(),
            on_event: BTreeMap::new(),
        }
    }
}

/// `[work]`: the events that open and close work items, for capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    /// Event name that opens a work item.
    pub opened: String,
    /// Event name that closes one.
    pub closed: String,
}

impl Default for Work {
    fn default() -> Self {
        Work {
            opened: "Job Opened".into(),
            closed: "Job Completed".into(),
        }
    }
}

/// A string that must not reach logs: `Debug` prints a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// An address with an optional display name: `Studio Rossi <hello@example.com>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The display name, if any.
    pub name: Option<String>,
    /// The address.
    pub email: Email,
}

impl Mailbox {
    /// Parses `Name <address>` or a bare address.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = || format!("`{text}` is not an address; expected `Name <address@example.com>`");
        if let Some(open) = text.find('<') {
            let rest = text[open + 1..].strip_suffix('>').ok_or_else(bad)?;
            let email = Email::parse(rest).map_err(|e| e.to_string())?;
            let name = text[..open].trim().trim_matches('"').trim();
            Ok(Mailbox {
                name: (!name.is_empty()).then(|| name.to_owned()),
                email,
            })
        } else {
            let email = Email::parse(text).map_err(|e| e.to_string())?;
            Ok(Mailbox { name: None, email })
        }
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            // Quoting keeps names with commas or dots one display name in the header.
            Some(name) if name.contains(|c: char| !(c.is_alphanumeric() || c == ' ')) => {
                write!(f, "\"{}\" <{}>", name.replace('"', ""), self.email)
            }
            Some(name) => write!(f, "{name} <{}>", self.email),
            None => write!(f, "{}", self.email),
        }
    }
}

impl Config {
    /// Parses and validates one `tend.toml` on its own.
    pub fn parse(path: &str, text: &str) -> Result<Config, Vec<Diagnostic>> {
        let mut report = Report::from_parts(path, text);
        let parts = parse_toml(&mut report).map(|doc| read(&mut report, doc.get_ref()));
        match parts.and_then(|p| p.config) {
            Some(config) if report.is_clean() => Ok(config),
            _ => Err(report.finish()),
        }
    }

    /// The stage new contacts start in.
    pub fn first_stage(&self) -> &StageName {
        self.stages
            .order
            .first()
            .expect("validation guarantees at least one stage")
    }

    /// The configured stage with this name, if it is one.
    pub fn stage(&self, name: &str) -> Option<&StageName> {
        self.stages.order.iter().find(|s| s.as_str() == name)
    }

    /// The position of a stage in `[stages] order`.
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        self.stages.order.iter().position(|s| s.as_str() == name)
    }

    /// The stage an event moves a contact to, per `[stages.on_event]`.
    pub fn stage_for_event(&self, event: &str) -> Option<&StageName> {
        self.stages.on_event.get(event)
    }

    /// The limits for one budget resource, if any are set.
    pub fn budget(&self, resource: &str) -> Option<&BudgetLimits> {
        self.budget.get(resource)
    }

    /// Money per touch on a channel; 0 when not configured.
    pub fn cost(&self, channel: &str) -> f64 {
        self.costs.get(channel).copied().unwrap_or(0.0)
    }

    /// The pacer's rules as this config sets them.
    pub fn pacer_policy(&self) -> Result<PacerPolicy, PacerError> {
        let mut policy = PacerPolicy::new(&self.business.timezone, self.business.hours.clone());
        policy.quiet_hours = self.limits.quiet_hours;
        for resource in Resource::ALL {
            if let Some(limits) = self.budget(&resource.to_string()) {
                let target = policy.budgets.get_mut(resource);
                target.set(Period::Day, limits.per_day);
                target.set(Period::Week, limits.per_week);
                target.set(Period::Month, limits.per_month);
                let reserve = limits
                    .reserve
                    .unwrap_or_else(|| default_reserve(limits, resource.is_countable()));
                policy.first_touch_reserve.set(resource, reserve);
            }
        }
        policy.costs = ChannelCosts {
            email: self.cost("email"),
            webhook: self.cost("webhook"),
            task: self.cost("task"),
        };
        policy.per_contact_per_week = Some(self.limits.per_contact_per_week);
        policy.min_gap = self.limits.min_gap;
        policy.limited_channels = crate::pacer::ChannelSet::of(&self.limits.channels);
        // The engine looks at held offers again as soon as work closes; the recheck
        // only catches capacity freed by offers whose expected work faded meanwhile.
        policy.capacity_recheck = CAPACITY_RECHECK;
        policy.validate()?;
        Ok(policy)
    }
}

/// What reading `tend.toml` yields: the config when valid, and the stage order even
/// when something else is wrong, so processes can still be checked against it.
pub(crate) struct ConfigParts {
    pub(crate) config: Option<Config>,
    pub(crate) stages: Option<Vec<StageName>>,
}

/// How long an offer held back by capacity waits before the pacer looks at it again,
/// unless work closes first.
const CAPACITY_RECHECK: Duration = Duration::from_secs(6 * 3_600);

const TOP_KEYS: &[&str] = &[
    "database_url",
    "public_url",
    "business",
    "capacity",
    "budget",
    "costs",
    "limits",
    "stages",
    "work",
    "channels",
    "tasks",
    "dispatch",
    "http",
];

/// Walks a parsed `tend.toml`, reporting every problem.
pub(crate) fn read(report: &mut Report<'_>, doc: &DeTable<'_>) -> ConfigParts {
    let errors_before = report.error_count();
    let top = Fields::new(report, doc, 0, "tend.toml", TOP_KEYS);

    let database_url = read_database_url(report, &top);
    let public_url = read_public_url(report, &top);
    let business = read_business(report, &top);
    let capacity = read_capacity(report, &top);
    let budget = read_budget(report, &top);
    let costs = read_costs(report, &top);
    let limits = read_limits(report, &top);
    let stages = read_stages(report, &top);
    let work = read_work(report, &top);
    let channels = email::read_channels(report, &top);
    let tasks = read_tasks(report, &top);
    let dispatch = read_dispatch(report, &top);
    let (http, listen_at) = http::read_http(report, &top);

    let stage_order = stages.as_ref().map(|s| s.order.clone());
    let config = match (database_url, public_url, business, stages) {
        (Some(database_url), Some(public_url), Some(business), Some(stages))
            if report.error_count() == errors_before =>
        {
            Some(Config {
                database_url,
                public_url,
                business,
                capacity,
                budget,
                costs,
                limits,
                stages,
                work,
                channels,
                tasks,
                dispatch,
                http,
            })
        }
        _ => None,
    };
    if let Some(config) = &config {
        listen::warn_about_public_url(report, &top, listen_at, config);
    }
    ConfigParts {
        config,
        stages: stage_order,
    }
}

fn read_database_url(report: &mut Report<'_>, top: &Fields<'_, '_>) -> Option<String> {
    let Some(url) = top.str(report, "database_url") else {
        return (!top.has("database_url")).then(|| DEFAULT_DATABASE_URL.to_owned());
    };
    let text = url.get_ref().trim();
    let known = ["sqlite:", "postgres://", "postgresql://"];
    if known.iter().any(|scheme| text.starts_with(scheme)) {
        Some(text.to_owned())
    } else {
        report.error(
            url.span().start,
            format!(
                "`database_url` must start with sqlite:, postgres:// or postgresql://, found \"{text}\""
            ),
        );
        None
    }
}

fn read_public_url(report: &mut Report<'_>, top: &Fields<'_, '_>) -> Option<String> {
    let Some(url) = top.str(report, "public_url") else {
        return (!top.has("public_url")).then(|| DEFAULT_PUBLIC_URL.to_owned());
    };
    let text = url.get_ref().trim().trim_end_matches('/');
    let host = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    match host {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
            Some(text.to_owned())
        }
        _ => {
            report.error(
                url.span().start,
                format!(
                    "`public_url` must be an http:// or https:// address such as \
                     \"https://tend.example.com\", found \"{text}\""
                ),
            );
            None
        }
    }
}

fn read_business(report: &mut Report<'_>, top: &Fields<'_, '_>) -> Option<Business> {
    let Some(item) = top.get("business") else {
        report.error(
            0,
            "tend.toml is missing the [business] table (at least `name = \"…\"`)",
        );
        return None;
    };
    let fields = Fields::nested(
        report,
        item,
        "[business]",
        &["name", "timezone", "hours", "holidays"],
    )?;
    let name = fields.required_str(report, "name", "the business name, shown in emails");
    let timezone = if fields.has("timezone") {
        fields
            .parsed(report, "timezone", TimeZoneName::parse)
            .map(|t| t.into_inner())
    } else {
        Some(TimeZoneName::parse("UTC").expect("UTC exists"))
    };
    let hours = if fields.has("hours") {
        fields
            .parsed(report, "hours", WeeklyHours::parse)
            .map(|h| h.into_inner())
    } else {
        Some(WeeklyHours::parse("Mon-Fri 09:00-17:00").expect("valid default"))
    };
    let mut holidays = Vec::new();
    if fields.has("holidays") {
        for date in fields.str_list(report, "holidays").unwrap_or_default() {
            match date.get_ref().trim().parse::<jiff::civil::Date>() {
                Ok(d) => holidays.push(d),
                Err(_) => report.error(
                    date.span().start,
                    format!(
                        "`{}` is not a date; holidays are written as \"YYYY-MM-DD\"",
                        date.get_ref()
                    ),
                ),
            }
        }
    }
    Some(Business {
        name: name?.get_ref().trim().to_owned(),
        timezone: timezone?,
        hours: hours?.with_holidays(holidays),
    })
}

fn read_stages(report: &mut Report<'_>, top: &Fields<'_, '_>) -> Option<Stages> {
    let Some(item) = top.get("stages") else {
        return Some(Stages::default());
    };
    let fields = Fields::nested(report, item, "[stages]", &["order", "on_event"])?;
    let mut stages = Stages::default();
    if fields.has("order") {
        let list = fields.str_list(report, "order")?;
        let mut seen = BTreeSet::new();
        let mut order = Vec::new();
        for name in list {
            let text = name.get_ref().trim();
            if text.is_empty() {
                report.error(name.span().start, "a stage name must not be empty");
            } else if !seen.insert(text) {
                report.error(name.span().start, format!("stage `{text}` is listed twice"));
            } else {
                order.push(StageName::new(text));
            }
        }
        if order.is_empty() {
            report.error(
                fields.get("order").map_or(fields.at(), |i| i.span().start),
                "`order` needs at least one stage",
            );
            return None;
        }
        stages.order = order;
    }
    if let Some(item) = fields.get("on_event") {
        let DeValue::Table(table) = item.get_ref() else {
            report.error(
                item.span().start,
                "[stages.on_event] must be a table of \"Event Name\" = \"stage\"",
            );
            return Some(stages);
        };
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        for (event, value) in entries {
            let Some(stage) = crate::check::expect_str(report, value, event.get_ref()) else {
                continue;
            };
            match stages.order.iter().find(|s| s.as_str() == *stage.get_ref()) {
                Some(known) => {
                    stages
                        .on_event
                        .insert(event.get_ref().to_string(), known.clone());
                }
                None => report.error(
                    stage.span().start,
                    unknown_stage_message(stage.get_ref(), &stages.order),
                ),
            }
        }
    }
    Some(stages)
}

/// The message for a stage name that is not in `[stages] order`.
pub(crate) fn unknown_stage_message(name: &str, order: &[StageName]) -> String {
    let names: Vec<&str> = order.iter().map(StageName::as_str).collect();
    let mut message = format!("unknown stage `{name}`");
    if let Some(near) = crate::check::closest(name, &names) {
        message.push_str(&format!("; did you mean `{near}`?"));
    } else {
        message.push_str(&format!(
            "; [stages] order in tend.toml has {}",
            names.join(", ")
        ));
    }
    message
}

fn read_work(report: &mut Report<'_>, top: &Fields<'_, '_>) -> Work {
    let mut work = Work::default();
    let Some(fields) = top
        .get("work")
        .and_then(|item| Fields::nested(report, item, "[work]", &["opened", "closed"]))
    else {
        return work;
    };
    for (key, slot) in [("opened", &mut work.opened), ("closed", &mut work.closed)] {
        if let Some(name) = fields.str(report, key) {
            if name.get_ref().trim().is_empty() {
                report.error(name.span().start, format!("`{key}` must name an event"));
            } else {
                *slot = name.get_ref().trim().to_owned();
            }
        }
    }
    if work.opened == work.closed {
        report.error(
            fields.at(),
            "[work] `opened` and `closed` must be different events",
        );
    }
    work
}

fn read_tasks(report: &mut Report<'_>, top: &Fields<'_, '_>) -> Tasks {
    let mut tasks = Tasks::default();
    let Some(fields) = top
        .get("tasks")
        .and_then(|item| Fields::nested(report, item, "[tasks]", &["outcomes"]))
    else {
        return tasks;
    };
    let Some(item) = fields.get("outcomes") else {
        return tasks;
    };
    let DeValue::Table(table) = item.get_ref() else {
        report.error(
            item.span().start,
            "[tasks.outcomes] must be a table of outcome = \"Event Name\"",
        );
        return tasks;
    };
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (outcome, value) in entries {
        let Some(event) = crate::check::expect_str(report, value, outcome.get_ref()) else {
            continue;
        };
        let name = event.get_ref().trim();
        if name.is_empty() {
            report.error(
                event.span().start,
                format!("outcome `{}` must name an event", outcome.get_ref()),
            );
        } else {
            tasks
                .outcomes
                .insert(outcome.get_ref().trim().to_owned(), name.to_owned());
        }
    }
    tasks
}

fn read_dispatch(report: &mut Report<'_>, top: &Fields<'_, '_>) -> Dispatch {
    let mut dispatch = Dispatch::default();
    let Some(fields) = top.get("dispatch").and_then(|item| {
        Fields::nested(
            report,
            item,
            "[dispatch]",
            &["workers", "retry_after", "retry_max", "lease"],
        )
    }) else {
        return dispatch;
    };
    if let Some(n) = fields.count(report, "workers") {
        if *n.get_ref() == 0 || *n.get_ref() > 256 {
            report.error(n.span().start, "`workers` must be from 1 to 256");
        }
        dispatch.workers = *n.get_ref();
    }
    for (key, slot) in [
        ("retry_after", &mut dispatch.retry_after),
        ("retry_max", &mut dispatch.retry_max),
        ("lease", &mut dispatch.lease),
    ] {
        if let Some(d) = fields.parsed(report, key, Duration::parse) {
            if *d.get_ref() == Duration::ZERO {
                report.error(d.span().start, format!("`{key}` must be longer than zero"));
            }
            *slot = d.into_inner();
        }
    }
    if let Some(lease) = fields.get("lease")
        && dispatch.lease < Duration::from_secs(60)
    {
        // A send may take up to its 30 s timeout; a shorter lease would let a second
        // attempt start while the first is still talking to the server.
        report.error(
            lease.span().start,
            "`lease` must be at least 1m, longer than one send may take",
        );
    }
    if dispatch.retry_max < dispatch.retry_after {
        report.error(
            fields.at(),
            "[dispatch] `retry_max` must be at least `retry_after`",
        );
    }
    dispatch
}
