//! Loading a Tend project from disk: `tend.toml` plus the `processes/` and
//! `templates/` folders beside it, validated by `tend_core::check`.

use anyhow::Context;
use std::fs;
use std::path::{Path, PathBuf};
use tend_core::check::{Diagnostic, Project, ProjectSources, SourceFile, check_project};

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

/// Problems with the files `tend.toml` names (the DKIM key), found by reading them
/// (`check_project` does no IO), each pointing at the key that names the file.
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
    problems
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

/// Reads `tend.toml`, `processes/*.toml` and `templates/*.md`, each folder sorted by
/// file name; missing folders simply hold nothing.
pub fn read_sources(config_path: &Path) -> anyhow::Result<ProjectSources> {
    let dir = project_dir(config_path);
    if !config_path.is_file() {
        anyhow::bail!(
            "no config file at {}; create a starter project with `tend init {}`",
            config_path.display(),
            dir.display()
        );
    }
    let config_name = config_path
        .file_name()
        .map_or_else(|| "tend.toml".into(), |n| n.to_string_lossy().into_owned());
    let config = SourceFile::new(config_name, read_text(config_path)?);
    let processes = read_folder(&dir, "processes", "toml")?;
    let templates = read_folder(&dir, "templates", "md")?;
    Ok(ProjectSources {
        config,
        processes,
        templates,
    })
}

/// The folder holding `tend.toml`; `.` for a bare file name.
pub fn project_dir(config_path: &Path) -> PathBuf {
    match config_path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn read_folder(dir: &Path, folder: &str, extension: &str) -> anyhow::Result<Vec<SourceFile>> {
    let path = dir.join(folder);
    if !path.is_dir() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for entry in fs::read_dir(&path).with_context(|| format!("listing {}", path.display()))? {
        let entry = entry.with_context(|| format!("listing {}", path.display()))?;
        let file = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // Editors leave hidden swap and backup files around; they are not part of the project.
        if name.starts_with('.')
            || !file.is_file()
            || file.extension().and_then(|e| e.to_str()) != Some(extension)
        {
            continue;
        }
        names.push(name);
    }
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let text = read_text(&path.join(&name))?;
            Ok(SourceFile::new(format!("{folder}/{name}"), text))
        })
        .collect()
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}
