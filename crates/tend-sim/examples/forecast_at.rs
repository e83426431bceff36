//! Forecasts a business from a fixed instant, so two builds can be compared on the same
//! database and clock: `cargo run --release -p tend-sim --example forecast_at --
//! PATH/tend.toml 2027-01-04T10:00:00Z [WEEKS]` prints the forecast's JSON. The database
//! is the SQLite file `database_url` names, beside `tend.toml`.

use jiff::Timestamp;
use std::path::PathBuf;
use tend_core::check::check_project;
use tend_engine::project_files::{project_dir, read_sources};
use tend_sim::forecast::{ForecastOptions, forecast_file};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: forecast_at PATH/tend.toml NOW [WEEKS]";
    let config = PathBuf::from(args.next().ok_or(usage)?);
    let now: Timestamp = args.next().ok_or(usage)?.parse()?;
    let weeks = args.next().map_or(Ok(12), |w| w.parse())?;
    let project = check_project(&read_sources(&config)?)
        .map_err(|problems| format!("the project has problems: {problems:?}"))?;
    let url = &project.config.database_url;
    let file = url
        .strip_prefix("sqlite://")
        .ok_or("only a sqlite:// database")?;
    let database = project_dir(&config).join(file);
    let options = ForecastOptions {
        weeks,
        ..ForecastOptions::default()
    };
    let forecast = forecast_file(&database, &project, now, options).await?;
    println!("{}", serde_json::to_string_pretty(&forecast)?);
    Ok(())
}
