//! `tend check [DIR]`: validate the project and print every problem as
//! `path:line:col: message`.

use crate::project::load_project;
use std::path::Path;
use std::process::ExitCode;

/// Prints diagnostics to stderr and exits 1 if there are any; otherwise prints a
/// one-line summary.
pub fn run(dir: &Path) -> anyhow::Result<ExitCode> {
    match load_project(&dir.join("tend.toml"))? {
        Ok(project) => {
            println!(
                "ok: {} processes, {} steps, {} templates",
                project.processes.len(),
                project.step_count(),
                project.templates.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(diagnostics) => {
            for diagnostic in &diagnostics {
                eprintln!("{diagnostic}");
            }
            eprintln!(
                "{} problem{} found",
                diagnostics.len(),
                if diagnostics.len() == 1 { "" } else { "s" }
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
