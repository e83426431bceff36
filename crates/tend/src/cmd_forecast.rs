//! `tend forecast`: the live business run forward on a virtual clock, from a copy of
//! its database; nothing is sent and the live database is only read.

use crate::database::Database;
use crate::project::load_valid_project;
use anyhow::{Context, bail};
use jiff::Timestamp;
use std::path::Path;
use std::process::ExitCode;
use tend_sim::forecast::{ForecastOptions, forecast_file, render};

/// Prints the forecast of the next `weeks` weeks, as text or as JSON.
pub fn run(config_path: &Path, weeks: u32, history: u32, json: bool) -> anyhow::Result<ExitCode> {
    let project = load_valid_project(config_path)?;
    let database = Database::of(config_path, &project.config.database_url)?
        .sqlite_only(
            "`tend forecast`",
            "the forecast runs on a copy of a SQLite file, and there is no PostgreSQL \
             forecast yet",
        )?
        .to_path_buf();
    if !database.exists() {
        bail!(
            "there is no database at {} yet: `tend serve` or `tend import` creates it",
            database.display()
        );
    }
    let options = ForecastOptions {
        weeks,
        history_weeks: history,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let forecast = runtime
        .block_on(forecast_file(
            &database,
            &project,
            Timestamp::now(),
            options,
        ))
        .with_context(|| format!("forecasting from {}", database.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&forecast)?);
    } else {
        let tz = project.config.business.timezone.time_zone();
        print!("{}", render(&forecast, &tz));
    }
    Ok(ExitCode::SUCCESS)
}
