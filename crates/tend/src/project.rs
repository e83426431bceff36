//! Loading a Tend project from disk: `tend.toml` plus the `processes/` and
//! `templates/` folders beside it, validated by `tend_core::check`.

use std::path::Path;
use tend_core::check::{Diagnostic, Project, ProjectSources, check_project};
use tend_engine::mail_providers::{ProviderKeyError, ProviderKeys};
pub use tend_engine::project_files::project_dir;

/// Reads and checks the project whose config is `config_path`. The outer error is an
/// IO failure (no `tend.toml`, unreadable file); the inner one lists every problem
/// found, with paths relative to the folder holding `tend.toml`.
pub fn load_project(config_path: &Path) -> anyhow::Result<Result<Project, Vec<Diagnostic>>> {
    let sources = read_sources(config_path)?;
    Ok(check_project(&sources).and_then(|project| {
        let problems = check_named_files(&project, &sources.config.path, config_path);
        if problems.is_empty() {
            Ok(project)
        } else {
            Err(problems)
        }
    }))
}

/// Problems with the files and variables `tend.toml` names (the DKIM key, the mail
/// providers' secrets), found by reading them (`check_project` does no IO), each
/// pointing at the key that names them.
fn check_named_files(project: &Project, config_name: &str, config_path: &Path) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    if let Some(dkim) = &project.config.channels.email.dkim
        && let Err(error) =
            tend_engine::delivery::dkim_signer(&project.config, &project_dir(config_path))
    {
        problems.push(Diagnostic {
            path: config_name.to_owned(),
            line: dkim.key_file.line,
            col: dkim.key_file.col,
            message: format!("`dkim_key_file`: {error}"),
        });
    }
    if let Some(file) = &project.config.channels.email.inbound_ca_file
        && let Err(error) =
            tend_engine::inbound::read_certificates(&project_dir(config_path).join(&file.path))
    {
        problems.push(Diagnostic {
            path: config_name.to_owned(),
            line: file.line,
            col: file.col,
            message: error.to_string(),
        });
    }
    if let Err(errors) = read_provider_keys(project, config_path) {
        problems.extend(errors.into_iter().map(|error| Diagnostic {
            path: config_name.to_owned(),
            line: error.line,
            col: error.col,
            message: error.to_string(),
        }));
    }
    problems
}

/// The mail providers' webhook keys, from the environment and the files beside
/// `tend.toml`.
pub fn read_provider_keys(
    project: &Project,
    config_path: &Path,
) -> Result<ProviderKeys, Vec<ProviderKeyError>> {
    ProviderKeys::read(&project.config, &project_dir(config_path), |name| {
        std::env::var(name).ok()
    })
}

/// Like [`load_project`], but any problem is an error that lists the diagnostics,
/// for commands that need a valid project to run at all.
pub fn load_valid_project(config_path: &Path) -> anyhow::Result<Project> {
    match load_project(config_path)? {
        Ok(project) => Ok(project),
        Err(diagnostics) => {
            let listed: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            anyhow::bail!(
                "the project at {} has {} problem(s); fix them (`tend check` lists them too):\n{}",
                project_dir(config_path).display(),
                diagnostics.len(),
                listed.join("\n")
            )
        }
    }
}

/// Reads `tend.toml`, `processes/*.toml` and `templates/*.md` (see
/// [`tend_engine::project_files::read_sources`]).
pub fn read_sources(config_path: &Path) -> anyhow::Result<ProjectSources> {
    Ok(tend_engine::project_files::read_sources(config_path)?)
}
