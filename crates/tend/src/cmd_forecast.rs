//! `tend forecast`: the live business run forward on a virtual clock, from a copy of
//! its database; nothing is sent and the live database is only read.

use crate::project::{load_valid_project, project_dir};
use anyhow::{Context, bail};
use jiff::Timestamp;
use std::path::Path;
use std::process::ExitCode;
use tend_sim::forecast::{ForecastOptions, forecast_file, render};

/// Prints the forecast of the next `weeks` weeks, as text or as JSON.
pub fn run(config_path: &Path, weeks: u32, history: u32, json: bool) -> anyhow::Result<ExitCode> {
    let project = load_valid_project(config_path)?;
    let url = &project.config.database_url;
    let Some(path) = url.strip_prefix("sqlite://") else {
        bail!("`{url}` is not a SQLite database: the forecast copies sqlite:// databases only");
    };
    let database = project_dir(config_path).join(path);
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
