//! One engine per database: `tend serve` holds an OS lock on `{database}.lock` for its
//! whole life. A second server on the same file finds the lock taken, names the one
//! running from what the file says, and refuses to start; the operating system drops
//! the lock when the process ends, however it ends, so a killed server never blocks a
//! restart. CLI writers (`tend import`, `tend token`) take no lock: SQLite serialises
//! their writes with the server's.

use anyhow::{Context, bail};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The lock a running server holds; released when dropped or when the process exits.
pub struct ServerLock {
    file: File,
    path: PathBuf,
}

impl ServerLock {
    /// Takes the lock for the SQLite database at `database`, or says which server holds
    /// it.
    pub fn acquire(database: &Path) -> anyhow::Result<ServerLock> {
        ServerLock::acquire_for(database, "starting")
    }

    /// Takes the lock for `doing` something no server may run beside (a restore), or
    /// says which server holds it.
    pub fn acquire_for(database: &Path, doing: &str) -> anyhow::Result<ServerLock> {
        let mut name = database.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&path)
            .with_context(|| format!("opening the server lock {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    "a process that is still starting".to_owned()
                } else {
                    holder.to_owned()
                };
                bail!(
                    "another `tend serve` is already running on {}: {holder}. One engine runs \
                     per database (two would send duplicates); stop that one first \
                     (the lock is {})",
                    database.display(),
                    path.display()
                );
            }
            Err(TryLockError::Error(error)) => {
                return Err(error)
                    .with_context(|| format!("locking the server lock {}", path.display()));
            }
        }
        let mut lock = ServerLock { file, path };
        lock.say(&format!("pid {}, {doing}", std::process::id()))?;
        Ok(lock)
    }

    /// Writes where this server listens into the lock file, for a second server's error.
    pub fn announce(&mut self, address: SocketAddr) -> anyhow::Result<()> {
        self.say(&format!(
            "pid {}, listening on http://{address}",
            std::process::id()
        ))
    }

    fn say(&mut self, text: &str) -> anyhow::Result<()> {
        let write = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(format!("{text}\n").as_bytes())?;
            file.flush()
        };
        write(&mut self.file)
            .with_context(|| format!("writing the server lock {}", self.path.display()))
    }
}
