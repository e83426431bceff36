use super::*;
use crate::process::{Enroll, Intent, StepChannel};
use crate::{DailyWindow, Duration, WeeklyHours};
use proptest::prelude::*;

const CONFIG: &str = r#"[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Fri 09:00-18:00"
[channels.email]
from = "Studio Rossi <hello@example.com>"
"#;

const PROCESS: &str = r#"name = "New inquiry"
enroll = { stage = "lead" }
exit = { events = ["Order Completed"], stages = ["customer"] }
max_gap = "10d"
keep_warm = "keep-warm"

[[steps]]
wait = "0d"
email = "welcome"
intent = "nurture"

[[steps]]
wait = "2d"
task = "Call {{ contact.name }} to introduce yourself"
minutes = 15
intent = "offer"

[[steps]]
wait = "3d"
webhook = "https://crm.example.com/hooks/tend"
intent = "nurture"
"#;

fn templates() -> Vec<SourceFile> {
    vec![
        SourceFile::new(
            "templates/welcome.md",
            "Subject: Welcome, {{ contact.first_name }}\n\nHello from {{ business.name }}.\n{{ unsubscribe_url }}\n",
        ),
        SourceFile::new(
            "templates/keep-warm.md",
            "Subject: A tip\n\nHere is something useful.\n",
        ),
    ]
}

fn sources(config: &str, processes: &[(&str, &str)]) -> ProjectSources {
    ProjectSources {
        config: SourceFile::new("tend.toml", config),
        processes: processes
            .iter()
            .map(|(path, text)| SourceFile::new(*path, *text))
            .collect(),
        templates: templates(),
    }
}

/// The diagnostics of a project, as `tend check` prints them.
fn errors(config: &str, processes: &[(&str, &str)]) -> Vec<String> {
    match check_project(&sources(config, processes)) {
        Ok(_) => vec![],
        Err(diags) => diags.iter().map(ToString::to_string).collect(),
    }
}

fn config_errors(config: &str) -> Vec<String> {
    errors(config, &[])
}

fn process_errors(process: &str) -> Vec<String> {
    errors(CONFIG, &[("processes/p.toml", process)])
}

#[test]
fn design_example_config_parses_into_typed_values() {
    let text = r#"database_url = "sqlite://tend.db"
[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Fri 09:00-18:00"
[capacity]
per_week = 8
target_utilization = 0.85
horizon = "2w"
[budget]
emails = { per_day = 200, per_week = 800 }
webhooks = { per_day = 1000 }
staff_minutes = { per_day = 90 }
money = { per_month = 300.0 }
[costs]
email = 0.001
[limits]
per_contact_per_week = 3
min_gap = "1d"
quiet_hours = "21:00-08:00"
[stages]
order = ["prospect", "lead", "customer", "loyal", "lapsed"]
[stages.on_event]
"Inquiry Received" = "lead"
"Order Completed" = "customer"
[work]
opened = "Job Opened"
closed = "Job Completed"
[channels.email]
from = "Studio Rossi <hello@example.com>"
smtp_url = "smtp://127.0.0.1:2525"
[channels.webhook]
secret = "whsec_abc"
"#;
    let c = Config::parse("tend.toml", text).unwrap();
    assert_eq!(c.database_url, "sqlite://tend.db");
    assert_eq!(c.business.name, "Studio Rossi");
    assert_eq!(c.business.timezone.as_str(), "Europe/Rome");
    assert_eq!(
        c.business.hours,
        WeeklyHours::parse("Mon-Fri 09:00-18:00").unwrap()
    );
    assert_eq!(c.capacity.per_week, 8.0);
    assert_eq!(c.capacity.target_utilization, 0.85);
    assert_eq!(c.capacity.horizon, Duration::parse("2w").unwrap());
    assert_eq!(c.budget["emails"].per_day, Some(200.0));
    assert_eq!(c.budget["emails"].per_week, Some(800.0));
    assert_eq!(c.budget["emails"].per_month, None);
    assert_eq!(c.budget("money").unwrap().per_month, Some(300.0));
    assert_eq!(c.budget("staff_minutes").unwrap().per_day, Some(90.0));
    assert_eq!(c.cost("email"), 0.001);
    assert_eq!(c.cost("task"), 0.0);
    assert_eq!(c.limits.per_contact_per_week, 3);
    assert_eq!(c.limits.min_gap, Duration::parse("1d").unwrap());
    assert_eq!(
        c.limits.quiet_hours,
        Some(DailyWindow::parse("21:00-08:00").unwrap())
    );
    assert_eq!(c.first_stage().as_str(), "prospect");
    assert_eq!(c.stage("loyal").unwrap().as_str(), "loyal");
    assert!(c.stage("vip").is_none());
    assert_eq!(c.stage_index("customer"), Some(2));
    assert_eq!(
        c.stage_for_event("Order Completed").unwrap().as_str(),
        "customer"
    );
    assert!(c.stage_for_event("Replied").is_none());
    assert_eq!(c.work.opened, "Job Opened");
    let from = c.channels.email.from.as_ref().unwrap();
    assert_eq!(from.to_string(), "Studio Rossi <hello@example.com>");
    assert_eq!(
        c.channels.email.smtp_url.as_ref().unwrap().expose(),
        "smtp://127.0.0.1:2525"
    );
    assert_eq!(
        c.channels.webhook.secret.as_ref().unwrap().expose(),
        "whsec_abc"
    );
    // Secrets must never reach logs through Debug.
    assert!(!format!("{c:?}").contains("whsec_abc"));
    assert!(!format!("{c:?}").contains("2525"));
}

#[test]
fn absent_keys_take_documented_defaults() {
    let c = Config::parse("tend.toml", "[business]\nname = \"X\"\n").unwrap();
    assert_eq!(c.database_url, "sqlite://tend.db");
    assert_eq!(c.business.timezone.as_str(), "UTC");
    assert_eq!(
        c.business.hours,
        WeeklyHours::parse("Mon-Fri 09:00-17:00").unwrap()
    );
    assert_eq!(c.capacity.per_week, 10.0);
    assert_eq!(c.capacity.target_utilization, 0.85);
    assert_eq!(c.capacity.horizon, Duration::parse("2w").unwrap());
    assert!(c.budget.is_empty());
    assert!(c.costs.is_empty());
    assert_eq!(c.limits.per_contact_per_week, 3);
    assert_eq!(c.limits.min_gap, Duration::parse("1d").unwrap());
    assert_eq!(
        c.limits.quiet_hours,
        Some(DailyWindow::parse("21:00-08:00").unwrap())
    );
    let order: Vec<&str> = c.stages.order.iter().map(|s| s.as_str()).collect();
    assert_eq!(order, ["prospect", "lead", "customer", "loyal", "lapsed"]);
    assert!(c.stages.on_event.is_empty());
    assert_eq!(c.work.closed, "Job Completed");
    assert!(c.channels.email.from.is_none());
    assert!(c.channels.email.smtp_url.is_none());
    assert!(c.channels.webhook.secret.is_none());
}

#[test]
fn unknown_config_keys_are_reported_at_the_key() {
    assert_eq!(
        config_errors(
            "databse_url = \"x\"\n[business]\nname = \"X\"\nnmae = \"Y\"\n[limits]\n  per_week = 3\n"
        ),
        [
            "tend.toml:1:1: unknown key `databse_url` in tend.toml; did you mean `database_url`?",
            "tend.toml:4:1: unknown key `nmae` in [business]; did you mean `name`?",
            "tend.toml:6:3: unknown key `per_week` in [limits]; expected one of `per_contact_per_week`, `min_gap`, `quiet_hours`, `channels`",
        ]
    );
    assert_eq!(
        config_errors(
            "[business]\nname = \"X\"\n[budget]\nemails = { per_day = 1, per_year = 5 }\nsms = { per_day = 1 }\n"
        ),
        [
            "tend.toml:4:25: unknown key `per_year` in budget `emails`; expected one of `per_day`, `per_week`, `per_month`, `reserve`",
            "tend.toml:5:1: unknown key `sms` in [budget]; expected one of `emails`, `webhooks`, `staff_minutes`, `money`",
        ]
    );
}

#[test]
fn bad_durations_hours_windows_and_zones_point_at_the_value() {
    let text = "[business]\nname = \"X\"\ntimezone = \"Mars/Olympus\"\nhours = \"Mon-Fry 09:00-18:00\"\n[capacity]\nhorizon = \"3x\"\n[limits]\nmin_gap = \"1.5d\"\nquiet_hours = \"late\"\n";
    assert_eq!(
        config_errors(text),
        [
            "tend.toml:3:12: `timezone`: `Mars/Olympus` is not a known IANA time zone (e.g. `Europe/Rome`)",
            "tend.toml:4:9: `hours`: `Fry` is not a day; use Mon, Tue, Wed, Thu, Fri, Sat or Sun",
            "tend.toml:6:11: `horizon`: duration `3x` has an unknown unit; use s, m, h, d or w (e.g. `90m`, `2d`)",
            "tend.toml:8:11: `min_gap`: duration `1.5d` has an unknown unit; use s, m, h, d or w (e.g. `90m`, `2d`)",
            "tend.toml:9:15: `quiet_hours`: `late`: expected `HH:MM-HH:MM`, e.g. `21:00-08:00`",
        ]
    );
}

#[test]
fn max_wait_bounds_new_work_and_must_be_a_positive_duration() {
    let c = Config::parse(
        "tend.toml",
        "[business]\nname = \"X\"\n[capacity]\nmax_wait = \"10d\"\n",
    )
    .unwrap();
    assert_eq!(c.capacity.max_wait, Some(Duration::parse("10d").unwrap()));
    let absent = Config::parse("tend.toml", "[business]\nname = \"X\"\n").unwrap();
    assert_eq!(absent.capacity.max_wait, None);
    assert_eq!(
        config_errors("[business]\nname = \"X\"\n[capacity]\nmax_wait = \"0d\"\n"),
        ["tend.toml:4:12: `max_wait` must be longer than zero (leave it out for no bound)"]
    );
    assert_eq!(
        config_errors("[business]\nname = \"X\"\n[capacity]\nmax_wait = \"soon\"\n"),
        [
            "tend.toml:4:12: `max_wait`: duration `soon` has no number; expected an integer and a unit such as `2d`"
        ]
    );
}

#[test]
fn wrong_types_and_ranges_are_reported() {
    let text = "database_url = \"mysql://x\"\n[business]\nname = 5\n[capacity]\nper_week = \"eight\"\ntarget_utilization = 1.5\n[limits]\nper_contact_per_week = 0\n[costs]\nemail = -1\n[channels.email]\nfrom = \"not an address\"\nsmtp_url = \"http://x\"\n";
    assert_eq!(
        config_errors(text),
        [
            "tend.toml:1:16: `database_url` must start with sqlite:, postgres:// or postgresql://, found \"mysql://x\"",
            "tend.toml:3:8: `name` must be a string, found the integer 5",
            "tend.toml:5:12: `per_week` must be a number, found the string \"eight\"",
            "tend.toml:6:22: `target_utilization` must be above 0 and at most 1 (e.g. 0.85), found 1.5",
            "tend.toml:8:24: `per_contact_per_week` must be at least 1, or no contact could ever be touched",
            "tend.toml:10:9: `email` must not be negative",
            "tend.toml:12:8: `from`: `not an address` is not an email address: it has no `@`",
            "tend.toml:13:12: `smtp_url` must start with smtp:// or smtps:// (e.g. `smtp://127.0.0.1:2525`)",
        ]
    );
}

#[test]
fn missing_business_and_unknown_event_stage() {
    assert_eq!(
        config_errors(
            "[stages]\norder = [\"lead\", \"customer\", \"lead\"]\n[stages.on_event]\n\"Order Completed\" = \"custmer\"\n"
        ),
        [
            "tend.toml:1:1: tend.toml is missing the [business] table (at least `name = \"…\"`)",
            "tend.toml:2:30: stage `lead` is listed twice",
            "tend.toml:4:21: unknown stage `custmer`; did you mean `customer`?",
        ]
    );
}

#[test]
fn toml_syntax_errors_have_positions() {
    let errs = config_errors("[business]\nname = \"X\"\nhours = Mon\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("tend.toml:3:9: TOML syntax:"),
        "{errs:?}"
    );
    let errs = process_errors("name = \"p\"\nname = \"q\"\n");
    assert_eq!(
        errs,
        ["processes/p.toml:2:1: TOML syntax: duplicate key"],
        "{errs:?}"
    );
}

#[test]
fn a_valid_project_becomes_typed() {
    let project = check_project(&sources(CONFIG, &[("processes/new-inquiry.toml", PROCESS)]))
        .expect("valid project");
    assert_eq!(project.processes.len(), 1);
    assert_eq!(project.step_count(), 3);
    assert_eq!(project.templates.len(), 2);
    let p = project.process("new-inquiry").unwrap();
    assert_eq!(p.id, "new-inquiry");
    assert_eq!(p.name, "New inquiry");
    assert_eq!(p.enroll, Enroll::Stage(crate::StageName::new("lead")));
    assert!(p.enrolls_on_stage("lead"));
    assert!(p.exits_on_event("Order Completed"));
    assert!(p.exits_on_stage("customer"));
    assert_eq!(p.max_gap, Duration::parse("10d").unwrap());
    assert_eq!(p.keep_warm.as_deref(), Some("keep-warm"));
    assert!(!p.reenroll);
    assert_eq!(
        p.steps[1].channel,
        StepChannel::Task {
            title: "Call {{ contact.name }} to introduce yourself".into(),
            minutes: 15
        }
    );
    assert_eq!(p.steps[1].intent, Intent::Offer);
    assert_eq!(p.steps[1].wait, Duration::parse("2d").unwrap());
    assert_eq!(
        project.template("welcome").unwrap().subject,
        "Welcome, {{ contact.first_name }}"
    );
}

#[test]
fn processes_serialize_like_the_file() {
    let project =
        check_project(&sources(CONFIG, &[("processes/new-inquiry.toml", PROCESS)])).unwrap();
    let json = serde_json::to_value(&project.processes[0]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "id": "new-inquiry",
            "name": "New inquiry",
            "enroll": { "stage": "lead" },
            "exit": { "events": ["Order Completed"], "stages": ["customer"] },
            "max_gap": "10d",
            "keep_warm": "keep-warm",
            "reenroll": false,
            "then": null,
            "steps": [
                { "wait": "0s", "channel": "email", "template": "welcome", "intent": "nurture" },
                { "wait": "2d", "channel": "task", "title": "Call {{ contact.name }} to introduce yourself", "minutes": 15, "intent": "offer" },
                { "wait": "3d", "channel": "webhook", "url": "https://crm.example.com/hooks/tend", "intent": "nurture" },
            ]
        })
    );
}

#[test]
fn enroll_on_event_and_defaults() {
    let p = "enroll = { event = \"Inquiry Received\" }\nmax_gap = \"1w\"\nreenroll = true\n[[steps]]\nwait = \"1h\"\nwebhook = \"http://localhost/x\"\nintent = \"nurture\"\n";
    let project = check_project(&sources(CONFIG, &[("processes/hook.toml", p)])).unwrap();
    let p = &project.processes[0];
    assert_eq!(p.name, "hook");
    assert!(p.enrolls_on_event("Inquiry Received"));
    assert!(p.reenroll);
    assert!(p.keep_warm.is_none());
    assert!(p.exit.events.is_empty());
}

#[test]
fn unknown_process_and_step_keys() {
    let p = "name = \"p\"\nenrol = { stage = \"lead\" }\nenroll = { stage = \"lead\", when = 1 }\nmax_gap = \"10d\"\n[[steps]]\nwait = \"0d\"\nemail = \"welcome\"\nintent = \"nurture\"\ncolor = \"red\"\n";
    assert_eq!(
        process_errors(p),
        [
            "processes/p.toml:2:1: unknown key `enrol` in the process; did you mean `enroll`?",
            "processes/p.toml:3:28: unknown key `when` in `enroll`; expected one of `stage`, `event`",
            "processes/p.toml:9:1: unknown key `color` in step 1; expected one of `wait`, `email`, `task`, `webhook`, `minutes`, `intent`",
        ]
    );
}

#[test]
fn missing_templates_are_reported_at_the_name() {
    let p = PROCESS
        .replace("keep_warm = \"keep-warm\"", "keep_warm = \"keep-cold\"")
        .replace("email = \"welcome\"", "email = \"welcom\"");
    assert_eq!(
        process_errors(&p),
        [
            "processes/p.toml:5:13: no template `keep-cold`: templates/keep-cold.md does not exist",
            "processes/p.toml:9:9: no template `welcom`: templates/welcom.md does not exist; did you mean `welcome`?",
        ]
    );
}

#[test]
fn then_names_a_process_file_and_may_name_its_own() {
    let first = PROCESS.replace(
        "keep_warm = \"keep-warm\"",
        "keep_warm = \"keep-warm\"\nthen = \"evergreen\"",
    );
    let evergreen = PROCESS
        .replace("New inquiry", "Evergreen")
        .replace("keep_warm = \"keep-warm\"", "then = \"evergreen\"");
    let project = check_project(&sources(
        CONFIG,
        &[
            ("processes/new-inquiry.toml", &first),
            ("processes/evergreen.toml", &evergreen),
        ],
    ))
    .unwrap();
    let then: Vec<Option<&str>> = project
        .processes
        .iter()
        .map(|p| p.then.as_deref())
        .collect();
    assert_eq!(then, [Some("evergreen"), Some("evergreen")]);
}

#[test]
fn then_naming_no_process_is_reported_at_the_name() {
    let p = PROCESS.replace(
        "keep_warm = \"keep-warm\"",
        "keep_warm = \"keep-warm\"\nthen = \"evergren\"",
    );
    let other = PROCESS.replace("New inquiry", "Evergreen");
    assert_eq!(
        errors(
            CONFIG,
            &[
                ("processes/p.toml", &p),
                ("processes/evergreen.toml", &other)
            ]
        ),
        [
            "processes/p.toml:6:8: no process `evergren`: processes/evergren.toml does not exist; did you mean `evergreen`?"
        ]
    );
}

#[test]
fn unknown_stages_in_enroll_and_exit() {
    let p = PROCESS
        .replace("{ stage = \"lead\" }", "{ stage = \"leads\" }")
        .replace(
            "stages = [\"customer\"]",
            "stages = [\"customer\", \"vip\"]",
        );
    assert_eq!(
        process_errors(&p),
        [
            "processes/p.toml:2:20: unknown stage `leads`; did you mean `lead`?",
            "processes/p.toml:3:62: unknown stage `vip`; [stages] order in tend.toml has prospect, lead, customer, loyal, lapsed",
        ]
    );
}

#[test]
fn steps_without_intent_channel_or_minutes() {
    let p = "enroll = { stage = \"lead\" }\nmax_gap = \"10d\"\n\n[[steps]]\nwait = \"0d\"\nemail = \"welcome\"\n\n[[steps]]\nwait = \"1d\"\nintent = \"offer\"\n\n[[steps]]\nwait = \"1d\"\nemail = \"welcome\"\ntask = \"Call\"\nminutes = 5\nintent = \"offer\"\n\n[[steps]]\nwait = \"1d\"\ntask = \"Call\"\nintent = \"sell\"\n\n[[steps]]\nwait = \"3x\"\nemail = \"welcome\"\nminutes = 5\nintent = \"nurture\"\n";
    assert_eq!(
        process_errors(p),
        [
            "processes/p.toml:4:1: step 1 is missing `intent` (`intent = \"offer\"` if it asks for work, `\"nurture\"` if it keeps warm)",
            "processes/p.toml:8:1: step 2 has no channel; set one of `email = \"template\"`, `task = \"title\"` or `webhook = \"https://…\"`",
            "processes/p.toml:15:1: step 3 has both `email` and `task`; a step is one touch on one channel, so split it into two steps",
            "processes/p.toml:19:1: step 4 is missing `minutes` (a task needs the staff minutes it takes, e.g. `minutes = 15`)",
            "processes/p.toml:22:10: `intent` must be \"offer\" (asks for work) or \"nurture\" (keeps warm), found \"sell\"",
            "processes/p.toml:25:8: `wait`: duration `3x` has an unknown unit; use s, m, h, d or w (e.g. `90m`, `2d`)",
            "processes/p.toml:27:1: `minutes` only applies to `task` steps (the staff time a task takes)",
        ]
    );
}

#[test]
fn process_level_requirements() {
    assert_eq!(
        process_errors("name = \"p\"\n"),
        [
            "processes/p.toml:1:1: the process is missing `enroll` (who joins: `enroll = { stage = \"lead\" }` or `enroll = { event = \"Inquiry Received\" }`)",
            "processes/p.toml:1:1: the process is missing `max_gap` (the longest any enrolled contact may wait for a touch, e.g. `max_gap = \"10d\"`)",
            "processes/p.toml:1:1: the process is missing `steps` (add at least one `[[steps]]` with `wait`, a channel and `intent`)",
        ]
    );
    assert_eq!(
        process_errors(
            "enroll = { stage = \"lead\", event = \"X\" }\nmax_gap = \"0d\"\nsteps = []\nreenroll = \"yes\"\n"
        ),
        [
            "processes/p.toml:1:28: `enroll` takes either `stage` or `event`, not both; use two processes",
            "processes/p.toml:2:11: `max_gap` must be longer than zero",
            "processes/p.toml:3:9: a process needs at least one step",
            "processes/p.toml:4:12: `reenroll` must be true or false, found the string \"yes\"",
        ]
    );
}

#[test]
fn waits_longer_than_max_gap_break_the_promise() {
    let p = PROCESS.replace("wait = \"3d\"", "wait = \"11d\"");
    assert_eq!(
        process_errors(&p),
        [
            "processes/p.toml:19:8: `wait` of 11d is longer than the process's max_gap of 10d: no contact may wait longer than max_gap for a touch"
        ]
    );
}

#[test]
fn task_titles_are_templates_with_exact_positions() {
    let p = PROCESS.replace(
        "task = \"Call {{ contact.name }} to introduce yourself\"",
        "task = \"Call {{ contact.nme }} {{ oops\"",
    );
    let errs = process_errors(&p);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(
        errs,
        [
            "processes/p.toml:14:35: template syntax: unexpected end of input, expected end of variable block"
        ]
    );
    let p = PROCESS.replace(
        "task = \"Call {{ contact.name }} to introduce yourself\"",
        "task = \"Call {{ contact.nme }}\"",
    );
    assert_eq!(
        process_errors(&p),
        ["processes/p.toml:14:17: unknown variable `contact.nme`; did you mean `contact.name`?"]
    );
    // With an escape in the string, positions can only point at the value.
    let p = PROCESS.replace(
        "task = \"Call {{ contact.name }} to introduce yourself\"",
        "task = \"Call\\t{{ contact.nme }}\"",
    );
    assert_eq!(
        process_errors(&p),
        ["processes/p.toml:14:8: unknown variable `contact.nme`; did you mean `contact.name`?"]
    );
}

#[test]
fn every_error_in_every_file_is_reported() {
    let bad_config =
        "[business]\nname = \"X\"\ntimezone = \"Nowhere\"\n[limits]\nmin_gap = \"3x\"\n";
    let bad_process = PROCESS
        .replace("email = \"welcome\"", "email = \"missing\"")
        .replace("minutes = 15\n", "");
    let project = ProjectSources {
        config: SourceFile::new("tend.toml", bad_config),
        processes: vec![
            SourceFile::new("processes/a.toml", bad_process.clone()),
            SourceFile::new("processes/b.toml", "oops = 1\n"),
        ],
        templates: vec![
            SourceFile::new("templates/welcome.md", "Hi\n\nbody"),
            SourceFile::new("templates/keep-warm.md", "Subject: x\n\n{{ contact.nope }}"),
        ],
    };
    let errs: Vec<String> = check_project(&project)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    let expect_prefixes = [
        "processes/a.toml:9:9:",
        "processes/a.toml:12:1:",
        "processes/b.toml:1:1:",
        "processes/b.toml:1:1:",
        "processes/b.toml:1:1:",
        "processes/b.toml:1:1:",
        "templates/keep-warm.md:3:4:",
        "templates/welcome.md:1:1:",
        "tend.toml:3:12:",
        "tend.toml:5:11:",
    ];
    assert_eq!(errs.len(), expect_prefixes.len(), "{errs:#?}");
    for (err, prefix) in errs.iter().zip(expect_prefixes) {
        assert!(err.starts_with(prefix), "{err} should start with {prefix}");
    }
}

#[test]
fn stage_checks_are_skipped_when_the_config_is_broken() {
    // A broken tend.toml still yields its stage order, so processes are checked
    // against it; a config without a readable order skips the stage checks.
    let errs = errors(
        "[business]\nname = 1\n[stages]\norder = [\"a\"]\n",
        &[("processes/p.toml", PROCESS)],
    );
    assert!(
        errs.iter().any(|e| e.contains("unknown stage `lead`")),
        "{errs:?}"
    );
    let errs = errors("[stages]\norder = 5\n", &[("processes/p.toml", PROCESS)]);
    assert!(
        !errs.iter().any(|e| e.contains("unknown stage")),
        "{errs:?}"
    );
}

#[test]
fn email_processes_need_a_from_address() {
    let errs = errors(
        "[business]\nname = \"X\"\n",
        &[("processes/p.toml", PROCESS)],
    );
    assert_eq!(
        errs,
        [
            "tend.toml:1:1: processes send email but [channels.email] has no `from` address (e.g. `from = \"Studio Rossi <hello@example.com>\"`)"
        ]
    );
}

#[test]
fn duplicate_process_names_are_reported() {
    let errs = errors(
        CONFIG,
        &[("processes/a.toml", PROCESS), ("processes/b.toml", PROCESS)],
    );
    assert_eq!(
        errs,
        [
            "processes/b.toml:1:1: process name `New inquiry` is already used by processes/a.toml; names must be unique"
        ]
    );
}

#[test]
fn line_col_counts_characters() {
    assert_eq!(line_col("ab\ncé d", 7), (2, 4));
    assert_eq!(line_col("abc", 0), (1, 1));
    assert_eq!(line_col("abc", 99), (1, 4));
}

#[test]
fn mailboxes_parse_and_display() {
    use crate::config::Mailbox;
    let m = Mailbox::parse("Studio Rossi <Hello@Example.com>").unwrap();
    assert_eq!(m.name.as_deref(), Some("Studio Rossi"));
    assert_eq!(m.to_string(), "Studio Rossi <hello@example.com>");
    assert_eq!(Mailbox::parse("a@b.co").unwrap().to_string(), "a@b.co");
    assert_eq!(
        Mailbox::parse("Rossi, Studio <a@b.co>")
            .unwrap()
            .to_string(),
        "\"Rossi, Studio\" <a@b.co>"
    );
    assert!(Mailbox::parse("Studio <a@b.co").is_err());
}

/// A step for property tests: which channel, and the lines it renders to.
#[derive(Debug, Clone)]
enum GenChannel {
    Email(bool),
    Task(u32),
    Webhook,
}

#[derive(Debug, Clone)]
struct GenStep {
    wait: (u64, char),
    channel: GenChannel,
    offer: bool,
}

fn gen_step() -> impl Strategy<Value = GenStep> {
    let channel = prop_oneof![
        any::<bool>().prop_map(GenChannel::Email),
        (1u32..240).prop_map(GenChannel::Task),
        Just(GenChannel::Webhook),
    ];
    (
        (0u64..10, prop::sample::select(vec!['m', 'h', 'd'])),
        channel,
        any::<bool>(),
    )
        .prop_map(|(wait, channel, offer)| GenStep {
            wait,
            channel,
            offer,
        })
}

fn channel_lines(channel: &GenChannel) -> Vec<String> {
    match channel {
        GenChannel::Email(welcome) => vec![format!(
            "email = \"{}\"",
            if *welcome { "welcome" } else { "keep-warm" }
        )],
        GenChannel::Task(minutes) => vec![
            "task = \"Call {{ contact.first_name }}\"".into(),
            format!("minutes = {minutes}"),
        ],
        GenChannel::Webhook => vec!["webhook = \"https://example.com/hook\"".into()],
    }
}

/// Renders a process; `corrupt` = (step index, add a second channel?) breaks one step
/// and returns the line where the error must be reported.
fn render_process(steps: &[GenStep], corrupt: Option<(usize, bool)>) -> (String, usize) {
    let mut lines: Vec<String> = vec![
        "enroll = { stage = \"lead\" }".into(),
        "max_gap = \"10d\"".into(),
    ];
    let mut expected_line = 0;
    for (index, step) in steps.iter().enumerate() {
        lines.push(String::new());
        lines.push("[[steps]]".into());
        let header_line = lines.len();
        lines.push(format!("wait = \"{}{}\"", step.wait.0, step.wait.1));
        match corrupt {
            Some((i, false)) if i == index => expected_line = header_line,
            Some((i, true)) if i == index => {
                lines.extend(channel_lines(&step.channel));
                let extra = match step.channel {
                    GenChannel::Webhook => "email = \"welcome\"",
                    _ => "webhook = \"https://example.com/other\"",
                };
                lines.push(extra.into());
                expected_line = lines.len();
            }
            _ => lines.extend(channel_lines(&step.channel)),
        }
        lines.push(format!(
            "intent = \"{}\"",
            if step.offer { "offer" } else { "nurture" }
        ));
    }
    (lines.join("\n") + "\n", expected_line)
}

proptest! {
    #[test]
    fn valid_step_lists_pass(steps in prop::collection::vec(gen_step(), 1..30)) {
        let (text, _) = render_process(&steps, None);
        let project = check_project(&sources(CONFIG, &[("processes/p.toml", &text)]));
        let project = match project {
            Ok(p) => p,
            Err(e) => return Err(TestCaseError::fail(format!("{e:?}\n{text}"))),
        };
        let parsed = &project.processes[0].steps;
        prop_assert_eq!(parsed.len(), steps.len());
        for (got, want) in parsed.iter().zip(&steps) {
            prop_assert_eq!(got.intent == Intent::Offer, want.offer);
            let unit = match want.wait.1 { 'm' => 60, 'h' => 3600, _ => 86_400 };
            prop_assert_eq!(got.wait.as_secs(), want.wait.0 * unit);
            match (&got.channel, &want.channel) {
                (StepChannel::Email { template }, GenChannel::Email(welcome)) => {
                    prop_assert_eq!(template == "welcome", *welcome);
                }
                (StepChannel::Task { minutes, .. }, GenChannel::Task(m)) => prop_assert_eq!(minutes, m),
                (StepChannel::Webhook { .. }, GenChannel::Webhook) => {}
                (got, want) => return Err(TestCaseError::fail(format!("{got:?} vs {want:?}"))),
            }
        }
    }

    #[test]
    fn a_step_with_zero_or_two_channels_is_reported_on_its_line(
        steps in prop::collection::vec(gen_step(), 1..20),
        pick in any::<prop::sample::Index>(),
        two in any::<bool>(),
    ) {
        let index = pick.index(steps.len());
        let (text, line) = render_process(&steps, Some((index, two)));
        let diags = check_project(&sources(CONFIG, &[("processes/p.toml", &text)])).unwrap_err();
        prop_assert_eq!(diags.len(), 1, "{:?}\n{}", diags, text);
        let d = &diags[0];
        prop_assert_eq!(d.line, line, "{}\n{}", d, text);
        prop_assert_eq!(d.col, 1);
        let step_name = format!("step {}", index + 1);
        prop_assert!(d.message.starts_with(&step_name), "{}", d);
        let what = if two { "has both" } else { "has no channel" };
        prop_assert!(d.message.contains(what), "{}", d);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = check_project(&sources(&text, &[("processes/p.toml", &text)]));
        let _ = Template::parse("t.md", &text);
    }
}

#[test]
fn quiet_hours_can_be_switched_off_and_dispatch_is_tunable() {
    let c = Config::parse(
        "tend.toml",
        "[business]\nname = \"X\"\n[limits]\nquiet_hours = \"none\"\n[dispatch]\nworkers = 2\nretry_after = \"1s\"\nretry_max = \"5m\"\n",
    )
    .unwrap();
    assert_eq!(c.limits.quiet_hours, None);
    assert_eq!(c.dispatch.workers, 2);
    assert_eq!(c.dispatch.retry_after, Duration::parse("1s").unwrap());
    assert_eq!(c.dispatch.retry_max, Duration::parse("5m").unwrap());
    assert_eq!(c.dispatch.lease, Duration::parse("2m").unwrap());
    assert!(c.pacer_policy().unwrap().quiet_hours.is_none());
}

#[test]
fn bad_dispatch_and_public_url_values_are_placed() {
    let text = "public_url = \"tend.example.com\"\n[business]\nname = \"X\"\n[dispatch]\nworkers = 0\nretry_after = \"2h\"\nretry_max = \"1h\"\n";
    let errors: Vec<String> = Config::parse("tend.toml", text)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            "tend.toml:1:14: `public_url` must be an http:// or https:// address such as \"https://tend.example.com\", found \"tend.example.com\"",
            "tend.toml:5:11: `workers` must be from 1 to 256",
            "tend.toml:4:1: [dispatch] `retry_max` must be at least `retry_after`",
        ]
    );
}

#[test]
fn holidays_close_the_business_and_bad_dates_are_placed() {
    let c = Config::parse(
        "tend.toml",
        "[business]\nname = \"X\"\nholidays = [\"2026-12-25\", \"2027-01-01\"]\n",
    )
    .unwrap();
    assert_eq!(c.business.hours.holidays().len(), 2);
    let errors: Vec<String> = Config::parse(
        "tend.toml",
        "[business]\nname = \"X\"\nholidays = [\"2026-12-25\", \"25/12/2026\"]\n",
    )
    .unwrap_err()
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        errors,
        ["tend.toml:3:27: `25/12/2026` is not a date; holidays are written as \"YYYY-MM-DD\""]
    );
}
