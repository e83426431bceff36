//! The `tend` command line: one binary for init, check, serve, simulate, import,
//! tokens, backup, restore and the move to PostgreSQL.

mod args;
mod cmd_agenda;
mod cmd_backup;
mod cmd_check;
mod cmd_doctor;
mod cmd_forecast;
mod cmd_import;
mod cmd_init;
mod cmd_migrate;
mod cmd_report;
mod cmd_serve;
mod cmd_simulate;
mod cmd_token;
mod cmd_user;
mod database;
mod project;
mod server_lock;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Tend runs a business's marketing as a continuous background process.
#[derive(Parser)]
#[command(name = "tend", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a starter business (tend.toml, processes/, templates/) into DIR.
    Init {
        /// Folder to write into; created if missing.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Validate tend.toml, every process and every template; print each problem as
    /// path:line:col (exit 1 on an error; warnings alone exit 0).
    Check {
        /// Folder holding tend.toml (the same as --config DIR/tend.toml).
        #[arg(value_parser = args::project_folder, conflicts_with = "config")]
        dir: Option<PathBuf>,
        /// Path to tend.toml; ./tend.toml when neither this nor DIR is given.
        #[arg(long, value_parser = args::config_file)]
        config: Option<PathBuf>,
    },
    /// Run the API, the ingest endpoints and the engine.
    Serve {
        /// Path to tend.toml.
        #[arg(long, default_value = "tend.toml", value_parser = args::config_file)]
        config: PathBuf,
        /// Address to listen on (host:port); `[http] listen` in tend.toml, else
        /// 127.0.0.1:7070, when not given.
        #[arg(long, value_parser = args::listen_address)]
        listen: Option<String>,
        /// `text` for people, `json` (one object a line) for log shippers.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
    },
    /// Print the tasks for people on one day (today by default).
    Agenda {
        /// The day: today, tomorrow or YYYY-MM-DD, in the business's time zone.
        #[arg(long, value_parser = args::day)]
        date: Option<args::Day>,
        /// Path to tend.toml.
        #[arg(long, default_value = "tend.toml", value_parser = args::config_file)]
        config: PathBuf,
    },
    /// Print a report on the business: funnel, conversion, pace or neglect.
    Report {
        /// Which report.
        #[arg(value_enum)]
        report: cmd_report::Report,
        /// How many days back the funnel and pace reports go.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=366))]
        days: u32,
        /// Path to tend.toml.
        #[arg(long, default_value = "tend.toml", value_parser = args::config_file)]
        config: PathBuf,
    },
    /// Simulate your marketing three ways (Tend's pacer, campaign bursts, unthrottled)
    /// on the real engine, on one seed or many; writes summary.json and report.html.
    Simulate {
        /// The scenario file (`tend init` writes a starter scenario.toml).
        #[arg(value_parser = args::input_file)]
        scenario: PathBuf,
        /// Folder for summary.json and report.html; created if missing.
        #[arg(long, default_value = "simulation")]
        out: PathBuf,
        /// Random seed, overriding the scenario's; the same seed gives the same result.
        #[arg(long, conflicts_with = "seeds")]
        seed: Option<u64>,
        /// Several seeds, `A..B` (both included): every figure is reported as its mean
        /// and its range over them.
        #[arg(long, value_parser = cmd_simulate::parse_seeds)]
        seeds: Option<std::ops::RangeInclusive<u64>>,
    },
    /// Run the live business forward on a copy of its database (nothing is sent):
    /// touches per day against each budget, work against capacity, leads that will
    /// pass max_gap and when, and the budget and capacity that would keep every promise.
    Forecast {
        /// Weeks ahead.
        #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=52))]
        weeks: u32,
        /// Weeks of history new contacts are expected from (their rate continues).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=52))]
        history: u32,
        /// Print JSON (as `GET /api/forecast` answers) instead of text.
        #[arg(long)]
        json: bool,
        /// Path to tend.toml.
        #[arg(long, default_value = "tend.toml", value_parser = args::config_file)]
        config: PathBuf,
    },
    /// Write a consistent snapshot of the live database to FILE (owner-only); safe
    /// while `tend serve` runs.
    Backup {
        /// Where to write the snapshot.
        file: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
        /// Path to tend.toml.
        #[arg(long, default_value = "tend.toml", value_parser = args::config_file)]
        config: PathBuf,
    },
    /// Replace the database with a snapshot from `tend backup`, after checking it; only
    /// while no server runs. The old database is kept as `….before-restore`.
    Restore {
        /// The snapshot.
        #[arg(value_parser = args::input_file)]
        file: PathBuf,
        /// Path to tend.toml.
        #[arg(long, default_value = "tend.toml", value_parser = args::config_file)]
        config: PathBuf,
    },
    /// Check the configuration, the database, the SMTP relay, public_url and file
    /// permissions; print each as ok, warning or error with the fix; exit 1 on an error.
    Doctor {
        /// Path to tend.toml.
        #[arg(long, default_value = "tend.toml", value_parser = args::config_file)]
        config: PathBuf,
        /// Where `tend serve` listens, when it is not running (a running one says);
        /// `[http] listen` in tend.toml, else 127.0.0.1:7070, when not given.
        #[arg(long, value_parser = args::listen_address)]
        listen: Option<String>,
        /// Reach nothing outside this machine: `<public_url>/healthz` is not fetched.
        #[arg(long)]
        offline: bool,
    },
    /// Move the business from its SQLite file into an empty PostgreSQL database, in one
    /// transaction, checking every table's row count; prints what to change in
    /// tend.toml. Refuses while `tend serve` runs on the file. The file is marked as
    /// moved, and every command refuses it from then on.
    Migrate {
        /// The PostgreSQL database to move into: postgres://USER[:PASSWORD]@HOST[:PORT]/DB.
        /// It must exist and hold no Tend data.
        #[arg(long, value_parser = args::postgres_url, required_unless_present = "reclaim")]
        to: Option<String>,
        /// Take the "moved" mark off the SQLite file, to serve it again (only once
        /// nothing serves the database it moved to).
        #[arg(long, conflicts_with = "to")]
        reclaim: bool,
        /// Path to tend.toml.
        #[arg(long, default_value = "tend.toml", value_parser = args::config_file)]
        config: PathBuf,
    },
    /// Import records from a file.
    Import {
        #[command(subcommand)]
        what: ImportKind,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Manage the people who log in to the console.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Add a person who logs in to the console at /, or set the role and password of
    /// one already added. The password is asked for at the terminal, or read as the
    /// first line of standard input when that is not a terminal.
    Add {
        /// The address they log in with.
        #[arg(value_parser = args::email)]
        email: String,
        /// `owner` (everything) or `staff` (Today and Contacts).
        #[arg(long, value_parser = ["owner", "staff"])]
        role: String,
        /// Path to tend.toml.
        #[arg(long, default_value = "tend.toml", value_parser = args::config_file)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum ImportKind {
    /// Upsert contacts by email from a CSV file (columns email, name, stage, timezone, …).
    Contacts {
        /// The CSV file.
        #[arg(value_parser = args::input_file)]
        file: PathBuf,
        /// How the contacts it puts into a stage enroll in that stage's processes:
        /// `now`; `spread:DURATION` (e.g. `spread:14d`), each starting at an instant
        /// spread evenly over that period in file order; or `none`, enrolled only by a
        /// later stage change or enrolling event.
        #[arg(long, default_value = "now", value_name = "now|none|spread:DURATION")]
        enroll: tend_store::EnrollChoice,
        /// Path to tend.toml.
        #[arg(long, default_value = "tend.toml", value_parser = args::config_file)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create a token and print it once on stdout.
    Create {
        /// A name to recognise the token by.
        #[arg(long, value_parser = args::name)]
        name: String,
        /// `write` (Segment ingest only), `admin` (everything), `calendar` (the
        /// agenda feed, /agenda.ics?token=…, only) or `metrics` (/metrics only).
        #[arg(long, default_value = "write", value_parser = ["write", "admin", "calendar", "metrics"])]
        scope: String,
        /// Path to tend.toml.
        #[arg(long, default_value = "tend.toml", value_parser = args::config_file)]
        config: PathBuf,
    },
    /// List tokens: name, scope, when created, when last used.
    List {
        /// Path to tend.toml.
        #[arg(long, default_value = "tend.toml", value_parser = args::config_file)]
        config: PathBuf,
    },
    /// Revoke a token by name; a running server refuses it at once.
    Revoke {
        /// The token's name.
        #[arg(value_parser = args::name)]
        name: String,
        /// Path to tend.toml.
        #[arg(long, default_value = "tend.toml", value_parser = args::config_file)]
        config: PathBuf,
    },
}

/// How log lines are written.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per line, with the fields of the span it happened in.
    Json,
}

/// Logs to stderr at `level` unless `RUST_LOG` says otherwise.
fn init_tracing_at(level: &str) {
    init_tracing_as(level, LogFormat::Text);
}

/// Logs to stderr at `level` unless `RUST_LOG` says otherwise, in `format`.
fn init_tracing_as(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// Opens the business's database (see [`database::Database`]).
async fn open_store(
    config_path: &std::path::Path,
    config: &tend_core::config::Config,
) -> anyhow::Result<std::sync::Arc<dyn tend_store::Store>> {
    database::Database::of(config_path, &config.database_url)?
        .open()
        .await
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version, asked for or shown for a bare `tend`, print as clap lays them out.
        Err(err)
            if !err.use_stderr()
                || err.kind()
                    == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            err.exit()
        }
        Err(err) => {
            eprint!("{}", usage_error(&err.render().to_string()));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Init { dir } => cmd_init::run(&dir),
        Command::Check { dir, config } => {
            let config = config.or(dir).unwrap_or_else(|| PathBuf::from("tend.toml"));
            cmd_check::run(&config)
        }
        Command::Serve {
            config,
            listen,
            log_format,
        } => cmd_serve::run(&config, listen.as_deref(), log_format),
        Command::Agenda { date, config } => cmd_agenda::run(&config, date),
        Command::Report {
            report,
            days,
            config,
        } => cmd_report::run(&config, report, days),
        Command::Simulate {
            scenario,
            out,
            seed,
            seeds,
        } => cmd_simulate::run(&scenario, &out, seed, seeds),
        Command::Forecast {
            weeks,
            history,
            json,
            config,
        } => cmd_forecast::run(&config, weeks, history, json),
        Command::Backup {
            file,
            force,
            config,
        } => cmd_backup::backup(&config, &file, force),
        Command::Restore { file, config } => cmd_backup::restore(&config, &file),
        Command::Migrate {
            to: Some(to),
            config,
            ..
        } => cmd_migrate::run(&config, &to),
        Command::Migrate { config, .. } => cmd_migrate::reclaim(&config),
        Command::Doctor {
            config,
            listen,
            offline,
        } => cmd_doctor::run(&config, listen.as_deref(), offline),
        Command::Import {
            what:
                ImportKind::Contacts {
                    file,
                    enroll,
                    config,
                },
        } => cmd_import::run(&config, &file, enroll),
        Command::Token {
            action:
                TokenAction::Create {
                    name,
                    scope,
                    config,
                },
        } => cmd_token::create(&config, &name, &scope),
        Command::Token {
            action: TokenAction::List { config },
        } => cmd_token::list(&config),
        Command::Token {
            action: TokenAction::Revoke { name, config },
        } => cmd_token::revoke(&config, &name),
        Command::User {
            action:
                UserAction::Add {
                    email,
                    role,
                    config,
                },
        } => cmd_user::add(&config, &email, &role),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

/// clap's report of a usage error with its first paragraph on one line (clap puts a
/// missing argument's name, or the values allowed, on lines of their own), so every
/// error of `tend` is one `error:` line; the usage and hint after it stay as they are.
fn usage_error(rendered: &str) -> String {
    let (head, rest) = rendered.split_once("\n\n").unwrap_or((rendered, ""));
    let head: Vec<&str> = head
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut text = head.join(" ");
    text.push('\n');
    if !rest.is_empty() {
        text.push('\n');
        text.push_str(rest);
    }
    text
}

/// An error and its causes on one line, each said once: a context that already quotes
/// its cause (as `path: No such file…` does) is not followed by the cause again.
fn error_chain(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(text.as_str()) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::{error_chain, usage_error};

    #[test]
    fn a_usage_error_is_one_line_then_the_usage() {
        let rendered = "error: the following required arguments were not provided:\n  <FILE>\n\n\
                        Usage: tend backup <FILE>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_error(rendered),
            "error: the following required arguments were not provided: <FILE>\n\n\
             Usage: tend backup <FILE>\n\nFor more information, try '--help'.\n"
        );
    }

    #[test]
    fn a_cause_already_quoted_by_its_context_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let err = anyhow::Error::new(io).context("missing.toml: No such file");
        assert_eq!(error_chain(&err), "missing.toml: No such file");
        let err = anyhow::anyhow!("disk full").context("writing summary.json");
        assert_eq!(error_chain(&err), "writing summary.json: disk full");
    }
}
