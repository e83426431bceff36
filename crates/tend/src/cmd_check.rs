//! `tend check [--config PATH | DIR]`: validate the project and print every problem as
//! `path:line:col: message`, and every warning as `path:line:col: warning: message`.

use crate::project::load_project;
use std::path::Path;
use std::process::ExitCode;

/// Prints errors to stderr and exits 1 if there are any; otherwise prints the warnings
/// (which do not fail the check) to stderr and a one-line summary.
pub fn run(config_path: &Path) -> anyhow::Result<ExitCode> {
    match load_project(config_path)? {
        Ok(project) => {
            for warning in &project.warnings {
                eprintln!("{warning}");
            }
            let warnings = match project.warnings.len() {
                0 => String::new(),
                1 => " (1 warning)".to_owned(),
                n => format!(" ({n} warnings)"),
            };
            println!(
                "ok: {} processes, {} steps, {} templates{warnings}",
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
