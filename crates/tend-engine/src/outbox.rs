//! The outbox: without an SMTP server, each email is a `{touch id}.eml` file in a folder
//! beside `tend.toml`, readable by the owner only, deleted when its person is erased.

use std::io::Write as _;
use std::path::Path;

/// Writes `{dir}/{touch_id}.eml` whole or not at all: a temporary file in the same
/// folder is renamed over the target, so a repeated send replaces the earlier copy.
/// The folder and the files are the owner's only: they hold people's addresses.
pub(crate) fn write_outbox(dir: &Path, touch_id: i64, bytes: &[u8]) -> std::io::Result<()> {
    owner_only_dir(dir)?;
    let target = dir.join(format!("{touch_id}.eml"));
    // Unique per attempt, so two concurrent sends of one touch never share a temp file.
    let temp = dir.join(format!(
        ".{touch_id}.eml.{}.{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    let result = (|| {
        let mut file = owner_only_file(&temp)?;
        file.write_all(bytes)?;
        // The rename only counts once the data is on disk, or a crash could leave an
        // empty file under the final name.
        file.sync_all()?;
        std::fs::rename(&temp, &target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Creates `dir` (mode 0700) if needed and narrows an existing one to its owner.
fn owner_only_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// A new file readable and writable by its owner only (mode 0600).
fn owner_only_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Deletes `{dir}/{id}.eml` for each id, and any temporary copy a crashed write left.
pub(crate) fn erase_outbox(dir: &Path, touch_ids: &[i64]) -> std::io::Result<()> {
    if touch_ids.is_empty() {
        return Ok(());
    }
    let gone = |result: std::io::Result<()>| match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    };
    for id in touch_ids {
        gone(std::fs::remove_file(dir.join(format!("{id}.eml"))))?;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let ids: std::collections::HashSet<String> = touch_ids.iter().map(i64::to_string).collect();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let temp_of = name
            .strip_prefix('.')
            .and_then(|rest| rest.split_once(".eml."))
            .map(|(id, _)| id);
        if temp_of.is_some_and(|id| ids.contains(id)) {
            gone(std::fs::remove_file(entry.path()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(unix)]
    fn outbox_folder_and_files_are_the_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("outbox");
        write_outbox(&outbox, 7, b"mail").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&outbox), 0o700);
        assert_eq!(mode(&outbox.join("7.eml")), 0o600);
        // A folder an earlier release made readable by everyone is narrowed.
        std::fs::set_permissions(&outbox, std::fs::Permissions::from_mode(0o755)).unwrap();
        write_outbox(&outbox, 8, b"mail").unwrap();
        assert_eq!(mode(&outbox), 0o700);
    }

    #[test]
    fn erasing_removes_the_touches_files_and_leaves_the_others() {
        let dir = tempfile::tempdir().unwrap();
        for id in [7, 8, 70] {
            write_outbox(dir.path(), id, b"mail").unwrap();
        }
        std::fs::write(dir.path().join(".7.eml.1.00ff.tmp"), b"half").unwrap();
        erase_outbox(dir.path(), &[7, 9]).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["70.eml", "8.eml"]);
    }

    #[test]
    fn outbox_write_replaces_the_previous_copy() {
        let dir = tempfile::tempdir().unwrap();
        write_outbox(dir.path(), 7, b"first").unwrap();
        write_outbox(dir.path(), 7, b"second").unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("7.eml")]);
        assert_eq!(std::fs::read(dir.path().join("7.eml")).unwrap(), b"second");
    }
}
