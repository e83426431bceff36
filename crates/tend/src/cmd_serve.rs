//! `tend serve`: the HTTP API and ingest over the configured store, until Ctrl-C or SIGTERM.

use crate::project::load_valid_project;
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;
use tend_web::{AppState, IngestRules};

/// Starts the server and blocks until a shutdown signal.
pub fn run(config_path: &Path, listen: &str) -> anyhow::Result<ExitCode> {
    crate::init_tracing();
    let project = load_valid_project(config_path)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let store = crate::open_store(config_path, &project.config).await?;
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
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let address = listener.local_addr().context("reading the bound address")?;
        tracing::info!(%address, processes = project.processes.len(), "tend is serving");
        // On stdout too, so scripts and tests that asked for port 0 learn the port.
        println!("listening on http://{address}");
        tend_web::serve(
            listener,
            AppState::new(store, rules, processes),
            shutdown_signal(),
        )
        .await
        .context("serving HTTP")?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
