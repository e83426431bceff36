//! Reading a project from disk: `tend.toml` plus the `processes/` and `templates/`
//! folders beside it, as the sources `tend_core::check` validates. Shared by the CLI
//! and the console, which shows a process file and its diagnostics as they are now.

use std::fs;
use std::path::{Path, PathBuf};
use tend_core::check::{ProjectSources, SourceFile};

/// A project file or folder that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProjectFilesError {
    /// There is no `tend.toml` where one was expected.
    #[error("no config file at {}; create a starter project with `tend init {}`", config.display(), dir.display())]
    NoConfig {
        /// The config file asked for.
        config: PathBuf,
        /// The folder that should hold it.
        dir: PathBuf,
    },
    /// A file or folder exists but could not be read.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// `reading` or `listing`.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Reads `tend.toml`, `processes/*.toml` and `templates/*.md`, each folder sorted by
/// file name; missing folders simply hold nothing. Paths in the sources are relative
/// to the folder holding `tend.toml`, as diagnostics show them.
pub fn read_sources(config_path: &Path) -> Result<ProjectSources, ProjectFilesError> {
    let dir = project_dir(config_path);
    if !config_path.is_file() {
        return Err(ProjectFilesError::NoConfig {
            config: config_path.to_path_buf(),
            dir,
        });
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

fn read_folder(
    dir: &Path,
    folder: &str,
    extension: &str,
) -> Result<Vec<SourceFile>, ProjectFilesError> {
    let path = dir.join(folder);
    if !path.is_dir() {
        return Ok(Vec::new());
    }
    let listing = |source| ProjectFilesError::Io {
        action: "listing",
        path: path.clone(),
        source,
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(&path).map_err(listing)? {
        let entry = entry.map_err(listing)?;
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

fn read_text(path: &Path) -> Result<String, ProjectFilesError> {
    fs::read_to_string(path).map_err(|source| ProjectFilesError::Io {
        action: "reading",
        path: path.to_path_buf(),
        source,
    })
}
