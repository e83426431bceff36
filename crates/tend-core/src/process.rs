//! Process definitions (`processes/*.toml`): who enrolls, who exits, `max_gap`, an
//! optional keep-warm template, and the steps (DESIGN.md §2, §5).

use crate::check::{Fields, Item, Report, closest, describe};
use crate::config::unknown_stage_message;
use crate::domain::StageName;
use crate::duration::Duration;
pub use crate::pacer::{Channel, Intent};
use serde::Serialize;
use std::collections::BTreeSet;
use toml::de::{DeTable, DeValue};

/// One process file, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Process {
    /// The file stem (`new-inquiry` for `processes/new-inquiry.toml`): stable across
    /// renames of `name`, so enrollments refer to it.
    pub id: String,
    /// Display name; defaults to the id.
    pub name: String,
    /// Who joins.
    pub enroll: Enroll,
    /// Who leaves early.
    pub exit: Exit,
    /// No enrolled contact waits longer than this for a touch.
    pub max_gap: Duration,
    /// Template sent instead of an offer that capacity holds back.
    pub keep_warm: Option<String>,
    /// Whether a contact who finished or exited may enroll again.
    pub reenroll: bool,
    /// The process (file stem) a contact moves to after the last step, so the
    /// relationship goes on after the sequence; it may be this process itself.
    pub then: Option<String>,
    /// The touches, in order; at least one.
    pub steps: Vec<Step>,
}

/// The trigger that enrolls a contact; serialized as in the file, `{"stage": "lead"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Enroll {
    /// On entering this stage.
    Stage(StageName),
    /// When this event is tracked.
    Event(String),
}

/// Events and stages that end an enrollment early.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Exit {
    /// Event names.
    pub events: Vec<String>,
    /// Stages; entering one exits.
    pub stages: Vec<StageName>,
}

/// One touch. Serialized flat: `{"wait": "2d", "channel": "task", "title": …,
/// "minutes": 15, "intent": "offer"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Step {
    /// After enrollment for the first step, after the previous step otherwise.
    pub wait: Duration,
    /// How the touch is made.
    #[serde(flatten)]
    pub channel: StepChannel,
    /// Whether the touch generates work.
    pub intent: Intent,
}

/// How a step touches the contact: its channel and what that channel needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "channel", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum StepChannel {
    /// Send `templates/<template>.md`.
    Email {
        /// Template name (file stem).
        template: String,
    },
    /// Put a task on the team's agenda.
    Task {
        /// A MiniJinja template rendered per contact.
        title: String,
        /// Estimated staff minutes.
        minutes: u32,
    },
    /// POST the contact and touch to a URL.
    Webhook {
        /// `http://` or `https://`.
        url: String,
    },
}

impl StepChannel {
    /// The channel alone, as the pacer and storage know it.
    pub fn kind(&self) -> Channel {
        match self {
            StepChannel::Email { .. } => Channel::Email,
            StepChannel::Task { .. } => Channel::Task,
            StepChannel::Webhook { .. } => Channel::Webhook,
        }
    }

    /// `email`, `task` or `webhook`, as in `[costs]` and the file.
    pub fn name(&self) -> &'static str {
        self.kind().as_str()
    }

    /// Whether this sends an email.
    pub fn is_email(&self) -> bool {
        matches!(self, StepChannel::Email { .. })
    }
}

impl Process {
    /// Whether entering `stage` enrolls a contact.
    pub fn enrolls_on_stage(&self, stage: &str) -> bool {
        matches!(&self.enroll, Enroll::Stage(s) if s.as_str() == stage)
    }

    /// Whether the event `name` enrolls a contact.
    pub fn enrolls_on_event(&self, name: &str) -> bool {
        matches!(&self.enroll, Enroll::Event(e) if e == name)
    }

    /// Whether the event `name` ends an enrollment.
    pub fn exits_on_event(&self, name: &str) -> bool {
        self.exit.events.iter().any(|e| e == name)
    }

    /// Whether entering `stage` ends an enrollment.
    pub fn exits_on_stage(&self, stage: &str) -> bool {
        self.exit.stages.iter().any(|s| s.as_str() == stage)
    }

    /// The step at `index`, if the process has that many.
    pub fn step(&self, index: usize) -> Option<&Step> {
        self.steps.get(index)
    }
}

/// What a process may refer to: configured stages (unknown when `tend.toml` itself is
/// broken, in which case stage names are not checked) and template names.
pub(crate) struct Known<'a> {
    pub(crate) stages: Option<&'a [StageName]>,
    pub(crate) templates: &'a BTreeSet<String>,
    /// The file stems of every process file, for `then`.
    pub(crate) processes: &'a BTreeSet<String>,
}

const PROCESS_KEYS: &[&str] = &[
    "name",
    "enroll",
    "exit",
    "max_gap",
    "keep_warm",
    "reenroll",
    "then",
    "steps",
];

const STEP_KEYS: &[&str] = &["wait", "email", "task", "webhook", "minutes", "intent"];

const CHANNEL_KEYS: [&str; 3] = ["email", "task", "webhook"];

/// Walks one parsed process file, reporting every problem; `None` if any.
pub(crate) fn read(
    report: &mut Report<'_>,
    doc: &DeTable<'_>,
    id: &str,
    known: &Known<'_>,
) -> Option<Process> {
    let errors_before = report.error_count();
    let top = Fields::new(report, doc, 0, "the process", PROCESS_KEYS);

    let name = if top.has("name") {
        top.required_str(report, "name", "")
            .map(|n| n.get_ref().trim().to_owned())
    } else {
        Some(id.to_owned())
    };
    let enroll = read_enroll(report, &top, known);
    let exit = read_exit(report, &top, known);
    let max_gap = if top.has("max_gap") {
        let gap = top.parsed(report, "max_gap", Duration::parse);
        if let Some(g) = &gap
            && *g.get_ref() == Duration::ZERO
        {
            report.error(g.span().start, "`max_gap` must be longer than zero");
        }
        gap.map(|g| g.into_inner())
    } else {
        top.missing(
            report,
            "max_gap",
            "the longest any enrolled contact may wait for a touch, e.g. `max_gap = \"10d\"`",
        );
        None
    };
    let keep_warm = top.str(report, "keep_warm").and_then(|name| {
        check_template_name(report, name.get_ref(), name.span().start, known)
            .then(|| name.get_ref().trim().to_owned())
    });
    let reenroll = top.bool(report, "reenroll").is_some_and(|b| *b.get_ref());
    let then = top.str(report, "then").and_then(|name| {
        check_process_name(report, name.get_ref(), name.span().start, known)
            .then(|| name.get_ref().trim().to_owned())
    });
    let steps = read_steps(report, &top, max_gap, known);

    if report.error_count() != errors_before {
        return None;
    }
    Some(Process {
        id: id.to_owned(),
        name: name?,
        enroll: enroll?,
        exit,
        max_gap: max_gap?,
        keep_warm,
        reenroll,
        then,
        steps: steps?,
    })
}

fn read_enroll(report: &mut Report<'_>, top: &Fields<'_, '_>, known: &Known<'_>) -> Option<Enroll> {
    let Some(item) = top.get("enroll") else {
        top.missing(
            report,
            "enroll",
            "who joins: `enroll = { stage = \"lead\" }` or `enroll = { event = \"Inquiry Received\" }`",
        );
        return None;
    };
    let fields = Fields::nested(report, item, "`enroll`", &["stage", "event"])?;
    match (fields.has("stage"), fields.has("event")) {
        (true, true) => {
            let second = ["stage", "event"]
                .into_iter()
                .filter_map(|k| fields.key_span(k))
                .map(|s| s.start)
                .max()
                .unwrap_or(fields.at());
            report.error(
                second,
                "`enroll` takes either `stage` or `event`, not both; use two processes",
            );
            None
        }
        (false, false) => {
            report.error(
                fields.at(),
                "`enroll` needs `stage = \"…\"` or `event = \"…\"`",
            );
            None
        }
        (true, false) => {
            let stage = fields.required_str(report, "stage", "")?;
            check_stage(report, stage.get_ref(), stage.span().start, known).map(Enroll::Stage)
        }
        (false, true) => {
            let event = fields.required_str(report, "event", "")?;
            Some(Enroll::Event(event.get_ref().trim().to_owned()))
        }
    }
}

fn read_exit(report: &mut Report<'_>, top: &Fields<'_, '_>, known: &Known<'_>) -> Exit {
    let mut exit = Exit::default();
    let Some(fields) = top
        .get("exit")
        .and_then(|item| Fields::nested(report, item, "`exit`", &["events", "stages"]))
    else {
        return exit;
    };
    for event in fields.str_list(report, "events").unwrap_or_default() {
        if event.get_ref().trim().is_empty() {
            report.error(event.span().start, "an event name must not be empty");
        } else {
            exit.events.push(event.get_ref().trim().to_owned());
        }
    }
    for stage in fields.str_list(report, "stages").unwrap_or_default() {
        if let Some(s) = check_stage(report, stage.get_ref(), stage.span().start, known) {
            exit.stages.push(s);
        }
    }
    exit
}

/// The stage if it is configured (or if stages are unknown); reports it otherwise.
fn check_stage(
    report: &mut Report<'_>,
    name: &str,
    at: usize,
    known: &Known<'_>,
) -> Option<StageName> {
    let name = name.trim();
    match known.stages {
        Some(order) if !order.iter().any(|s| s.as_str() == name) => {
            report.error(at, unknown_stage_message(name, order));
            None
        }
        _ => Some(StageName::new(name)),
    }
}

/// Whether `templates/<name>.md` exists; reports it otherwise.
fn check_template_name(report: &mut Report<'_>, name: &str, at: usize, known: &Known<'_>) -> bool {
    let name = name.trim();
    if known.templates.contains(name) {
        return true;
    }
    let mut message = if name.is_empty() {
        "the template name is empty".to_owned()
    } else {
        format!("no template `{name}`: templates/{name}.md does not exist")
    };
    let names: Vec<&str> = known.templates.iter().map(String::as_str).collect();
    if let Some(near) = closest(name, &names) {
        message.push_str(&format!("; did you mean `{near}`?"));
    }
    report.error(at, message);
    false
}

/// Whether `processes/<name>.toml` exists; reports it otherwise.
fn check_process_name(report: &mut Report<'_>, name: &str, at: usize, known: &Known<'_>) -> bool {
    let name = name.trim();
    if known.processes.contains(name) {
        return true;
    }
    let mut message = if name.is_empty() {
        "the process name in `then` is empty".to_owned()
    } else {
        format!("no process `{name}`: processes/{name}.toml does not exist")
    };
    let names: Vec<&str> = known.processes.iter().map(String::as_str).collect();
    if let Some(near) = closest(name, &names) {
        message.push_str(&format!("; did you mean `{near}`?"));
    }
    report.error(at, message);
    false
}

fn read_steps(
    report: &mut Report<'_>,
    top: &Fields<'_, '_>,
    max_gap: Option<Duration>,
    known: &Known<'_>,
) -> Option<Vec<Step>> {
    let Some(item) = top.get("steps") else {
        top.missing(
            report,
            "steps",
            "add at least one `[[steps]]` with `wait`, a channel and `intent`",
        );
        return None;
    };
    let DeValue::Array(array) = item.get_ref() else {
        report.error(
            item.span().start,
            format!(
                "`steps` must be a list of tables (`[[steps]]`), found {}",
                describe(item.get_ref())
            ),
        );
        return None;
    };
    if array.is_empty() {
        report.error(item.span().start, "a process needs at least one step");
        return None;
    }
    let mut steps = Vec::with_capacity(array.len());
    let mut ok = true;
    for (index, element) in array.iter().enumerate() {
        match read_step(report, element, index + 1, max_gap, known) {
            Some(step) => steps.push(step),
            None => ok = false,
        }
    }
    ok.then_some(steps)
}

fn read_step(
    report: &mut Report<'_>,
    item: &Item<'_>,
    number: usize,
    max_gap: Option<Duration>,
    known: &Known<'_>,
) -> Option<Step> {
    let errors_before = report.error_count();
    let place = format!("step {number}");
    let fields = Fields::nested(report, item, place.clone(), STEP_KEYS)?;

    let wait = if fields.has("wait") {
        let wait = fields.parsed(report, "wait", Duration::parse);
        if let (Some(w), Some(gap)) = (&wait, max_gap)
            && *w.get_ref() > gap
        {
            report.error(
                w.span().start,
                format!(
                    "`wait` of {} is longer than the process's max_gap of {gap}: \
                     no contact may wait longer than max_gap for a touch",
                    w.get_ref()
                ),
            );
        }
        wait.map(|w| w.into_inner())
    } else {
        fields.missing(
            report,
            "wait",
            "how long after the previous step, e.g. `wait = \"2d\"`",
        );
        None
    };

    let intent = match fields.str(report, "intent") {
        Some(text) => match Intent::parse(text.get_ref().trim()) {
            Some(intent) => Some(intent),
            None => {
                let other = text.get_ref().trim();
                report.error(
                    text.span().start,
                    format!(
                        "`intent` must be \"offer\" (asks for work) or \"nurture\" (keeps warm), found \"{other}\""
                    ),
                );
                None
            }
        },
        None => {
            if !fields.has("intent") {
                fields.missing(
                    report,
                    "intent",
                    "`intent = \"offer\"` if it asks for work, `\"nurture\"` if it keeps warm",
                );
            }
            None
        }
    };

    let channel = read_channel(report, &fields, known);
    if report.error_count() != errors_before {
        return None;
    }
    Some(Step {
        wait: wait?,
        channel: channel?,
        intent: intent?,
    })
}

fn read_channel(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    known: &Known<'_>,
) -> Option<StepChannel> {
    let mut present: Vec<(&str, usize)> = CHANNEL_KEYS
        .into_iter()
        .filter_map(|k| fields.key_span(k).map(|s| (k, s.start)))
        .collect();
    present.sort_by_key(|(_, at)| *at);

    let minutes_at = fields.key_span("minutes").map(|s| s.start);
    if let Some(at) = minutes_at
        && !present.iter().any(|(k, _)| *k == "task")
    {
        report.error(
            at,
            "`minutes` only applies to `task` steps (the staff time a task takes)",
        );
    }

    match present.as_slice() {
        [] => {
            report.error(
                fields.at(),
                format!(
                    "{} has no channel; set one of `email = \"template\"`, `task = \"title\"` or `webhook = \"https://…\"`",
                    fields.place()
                ),
            );
            None
        }
        [(first, _), rest @ ..] if !rest.is_empty() => {
            for (other, at) in rest {
                report.error(
                    *at,
                    format!(
                        "{} has both `{first}` and `{other}`; a step is one touch on one channel, so split it into two steps",
                        fields.place()
                    ),
                );
            }
            None
        }
        [("email", _)] => {
            let name = fields.required_str(report, "email", "")?;
            check_template_name(report, name.get_ref(), name.span().start, known).then(|| {
                StepChannel::Email {
                    template: name.get_ref().trim().to_owned(),
                }
            })
        }
        [("webhook", _)] => {
            let url = fields.required_str(report, "webhook", "")?;
            let text = url.get_ref().trim();
            if text.starts_with("https://") || text.starts_with("http://") {
                Some(StepChannel::Webhook {
                    url: text.to_owned(),
                })
            } else {
                report.error(
                    url.span().start,
                    format!("`webhook` must be an http:// or https:// URL, found \"{text}\""),
                );
                None
            }
        }
        _ => {
            let title = fields.required_str(report, "task", "");
            if let Some(t) = &title {
                crate::template::check_title(report, t.get_ref(), t.span());
            }
            let minutes = if fields.has("minutes") {
                let m = fields.count(report, "minutes");
                if let Some(m) = &m
                    && *m.get_ref() == 0
                {
                    report.error(m.span().start, "`minutes` must be at least 1");
                }
                m
            } else {
                fields.missing(
                    report,
                    "minutes",
                    "a task needs the staff minutes it takes, e.g. `minutes = 15`",
                );
                None
            };
            Some(StepChannel::Task {
                title: title?.get_ref().trim().to_owned(),
                minutes: *minutes?.get_ref(),
            })
        }
    }
}
