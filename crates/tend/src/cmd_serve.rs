//! `tend serve`: the HTTP API, ingest and the engine over the configured store, until
//! Ctrl-C or SIGTERM; then in-flight requests and sends finish before it exits.

use crate::database::Database;
use crate::project::{load_valid_project, project_dir};
use crate::server_lock::ServerLock;
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use tend_engine::{ChannelDelivery, Engine, EngineSettings, SystemClock};
use tend_web::{AppState, HttpLimits, IngestRules};
use tokio_util::sync::CancellationToken;

/// Starts the server and the engine and blocks until a shutdown signal; `listen`
/// (`--listen`) overrides `[http] listen`.
pub fn run(
    config_path: &Path,
    listen: Option<&str>,
    log_format: crate::LogFormat,
) -> anyhow::Result<ExitCode> {
    crate::init_tracing_as("info", log_format);
    let project = Arc::new(load_valid_project(config_path)?);
    let listen = listen.unwrap_or(&project.config.http.listen).to_owned();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let database = Database::of(config_path, &project.config.database_url)?;
    // Before the store opens: a second engine on a SQLite file would give back the
    // first one's leases.
    let mut lock = match database.sqlite_file() {
        Some(file) => Some(ServerLock::acquire(file)?),
        None => None,
    };
    runtime.block_on(async {
        let store = database.open().await?;
        tracing::info!(database = %database.shown(), "database open");
        let instance = tend_engine::instance_id(store.as_ref())
            .await
            .context("reading the installation id")?;
        let delivery = Arc::new(
            ChannelDelivery::new(
                &project.config,
                &project_dir(config_path),
                std::env::var("TEND_SMTP_URL").ok(),
                &instance,
            )
            .context("setting up the email and webhook channels")?,
        );
        let (engine, report) = Engine::start(
            Arc::clone(&store),
            Arc::clone(&project),
            Arc::new(SystemClock),
            delivery.clone(),
            EngineSettings::from_config(&project.config),
        )
        .await
        .context("starting the engine")?;
        log_sync(&report);
        tracing::info!(email = %delivery.describe_email(), "channels ready");
        let engine = Arc::new(engine);

        let rules = IngestRules {
            new_contact_stage: project.config.first_stage().clone(),
            on_event: project
                .config
                .stages
                .on_event
                .iter()
                .map(|(event, stage)| (event.clone(), stage.clone()))
                .collect(),
        };
        let processes =
            serde_json::to_value(&project.processes).context("serializing processes")?;
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let address = listener.local_addr().context("reading the bound address")?;
        if let Some(lock) = &mut lock {
            lock.announce(address)?;
        }
        let signalled = shutdown_signal()?;
        tracing::info!(%address, processes = project.processes.len(), "tend is serving");
        // What `tend check` warns about, said again for where this server really is: a
        // --listen that moved it away from public_url leaves every unsubscribe link dead.
        let asked = tend_core::config::ListenAddress::parse(&listen).ok();
        let bound = match asked {
            Some(asked) if asked.port != 0 => listen.clone(),
            _ => address.to_string(),
        };
        for warning in tend_core::config::public_url_warnings(&project.config.public_url, &bound) {
            tracing::warn!("{warning}");
        }
        // On stdout too, so scripts and tests that asked for port 0 learn the port.
        println!("listening on http://{address}");

        let shutdown = CancellationToken::new();
        let running = tokio::spawn(Arc::clone(&engine).run(shutdown.clone()));
        let inbound = tend_engine::inbound::InboundConfig::from_config(
            &project.config,
            &project_dir(config_path),
            &instance,
        )
        .context("setting up the inbound mailbox")?
        .map(|config| {
            let reader = tend_engine::inbound::InboundReader::new(config);
            tokio::spawn(reader.run(Arc::clone(&engine), shutdown.clone()))
        });
        // `load_valid_project` read these already; a file or variable that changed since
        // is reported the same way.
        let provider_keys = crate::project::read_provider_keys(&project, config_path)
            .map_err(|errors| {
                let listed: Vec<String> = errors
                    .iter()
                    .map(|e| format!("{}:{}:{}: {e}", config_path.display(), e.line, e.col))
                    .collect();
                anyhow::anyhow!("{}", listed.join("\n"))
            })
            .context("reading the mail providers' webhook keys")?;
        let mut state = AppState::new(store, rules, processes)
            .with_engine(engine)
            .with_mail_providers(provider_keys)
            .with_limits(HttpLimits::from_config(&project.config))
            .with_config_path(config_path.to_path_buf());
        // The forecast runs on a copy of a SQLite file; on PostgreSQL /api/forecast
        // says it is not available.
        if let Some(file) = database.sqlite_file() {
            state = state.with_forecast(file.to_path_buf());
        }
        let stop = shutdown.clone();
        let served = tend_web::serve(listener, state, async move {
            signalled.await;
            stop.cancel();
        })
        .await;
        shutdown.cancel();
        running.await.context("waiting for the engine to stop")?;
        if let Some(inbound) = inbound {
            inbound
                .await
                .context("waiting for the inbound mailbox reader")?;
        }
        delivery.shutdown().await;
        served.context("serving HTTP")?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

fn log_sync(report: &tend_engine::SyncReport) {
    for (process, enrolled) in &report.added {
        tracing::info!(%process, enrolled, "new process: enrolled the contacts already in its stage");
    }
    for step in &report.removed_steps {
        tracing::warn!(%step, "a step was removed from its process; its contacts moved to the next step");
    }
    if report.moved > 0 || report.completed > 0 {
        tracing::info!(
            moved = report.moved,
            completed = report.completed,
            "process files changed: contacts kept their place"
        );
    }
    for process in &report.missing {
        tracing::warn!(%process, "process file missing: its enrolled contacts wait until it returns");
    }
}

/// Installs the SIGTERM and SIGINT handlers at once, before the address is announced,
/// so a signal sent the moment a script learns the port still stops the server
/// gracefully; the future resolves when one arrives.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
        tracing::info!("shutting down: finishing in-flight requests and sends");
    })
}

/// Ctrl-C, where there are no Unix signals.
#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing in-flight requests and sends");
    })
}
