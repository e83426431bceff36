//! `tend agenda [--date today|tomorrow|YYYY-MM-DD]`: the day's tasks for people, as the team works
//! through them: overdue first, then by due time.

use crate::args::Day;
use crate::project::load_valid_project;
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;

/// Prints the agenda of `day` (today in the business's time zone by default).
pub fn run(config_path: &Path, day: Option<Day>) -> anyhow::Result<ExitCode> {
    let project = load_valid_project(config_path)?;
    let tz = project.config.business.timezone.time_zone();
    let today = jiff::Timestamp::now().to_zoned_datetime(tz.clone()).date();
    let date = day
        .unwrap_or(Day::Today)
        .resolve(today)
        .context("the date is out of range")?;
    let start = date
        .to_zoned_datetime(tz.clone())
        .context("the date is out of range")?
        .timestamp();
    let end = date
        .tomorrow()
        .and_then(|d| d.to_zoned_datetime(tz.clone()))
        .context("the date is out of range")?
        .timestamp();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let tasks = runtime.block_on(async {
        let store = crate::open_store(config_path, &project.config).await?;
        store.tasks(start, end).await.context("reading the agenda")
    })?;

    let open: Vec<_> = tasks.iter().filter(|t| t.state == "open").collect();
    let finished: Vec<_> = tasks.iter().filter(|t| t.state != "open").collect();
    let minutes: u32 = open.iter().map(|t| t.minutes).sum();
    println!(
        "Agenda for {} ({}): {} open ({} min), {} finished",
        date.strftime("%a %Y-%m-%d"),
        project.config.business.timezone.as_str(),
        open.len(),
        minutes,
        finished.len()
    );
    for task in open.iter().chain(finished.iter()) {
        let when = task.due_at.to_zoned_datetime(tz.clone());
        let status = match task.state.as_str() {
            "open" if task.due_at < start => format!("overdue since {}", when.strftime("%a %d %b")),
            "open" => "open".to_owned(),
            "done" => format!("done: {}", task.outcome.as_deref().unwrap_or("")),
            other => other.to_owned(),
        };
        let who = task
            .contact_email
            .as_deref()
            .or(task.contact_name.as_deref())
            .unwrap_or("(erased)");
        println!(
            "  #{:<6} {}  {:>3} min  {:<24}  {}  [{}]",
            task.id.0,
            when.strftime("%H:%M"),
            task.minutes,
            who,
            task.title,
            status
        );
    }
    if tasks.is_empty() {
        println!("  nothing to do");
    }
    Ok(ExitCode::SUCCESS)
}
