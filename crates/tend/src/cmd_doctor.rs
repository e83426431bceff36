//! `tend doctor`: checks what a running business depends on — the configuration, the
//! database, the SMTP relay, where links point, who may read its files — and prints
//! each as ok, warning or error with the fix. Exit 1 when any is an error.

use crate::database::Database;
use crate::project::{load_project, project_dir};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tend_core::config::Config;
use tend_core::config::is_loopback;
use tend_engine::{ChannelDelivery, RelayProbe, TlsMode};

/// How long `<public_url>/healthz` may take to answer.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// A write-ahead log larger than this means checkpoints are not keeping up.
const WAL_WARNING_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Warning,
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Error => "error",
        })
    }
}

/// One line of the report.
struct Finding {
    level: Level,
    check: &'static str,
    message: String,
    fix: Option<String>,
}

#[derive(Default)]
struct Report(Vec<Finding>);

impl Report {
    fn ok(&mut self, check: &'static str, message: impl Into<String>) {
        self.push(Level::Ok, check, message.into(), None);
    }

    fn warn(&mut self, check: &'static str, message: impl Into<String>, fix: impl Into<String>) {
        self.push(Level::Warning, check, message.into(), Some(fix.into()));
    }

    fn error(&mut self, check: &'static str, message: impl Into<String>, fix: impl Into<String>) {
        self.push(Level::Error, check, message.into(), Some(fix.into()));
    }

    fn push(&mut self, level: Level, check: &'static str, message: String, fix: Option<String>) {
        println!("{level:<7}  {check:<11}  {message}");
        if let Some(fix) = &fix {
            println!("{:<7}  {:<11}  fix: {fix}", "", "");
        }
        self.0.push(Finding {
            level,
            check,
            message,
            fix,
        });
    }
}

/// Runs every check on the business of `config_path`; `listen` (`--listen`, else
/// `[http] listen`) is where the server is meant to listen when none is running;
/// `offline` skips what leaves this machine.
pub fn run(config_path: &Path, listen: Option<&str>, offline: bool) -> anyhow::Result<ExitCode> {
    let dir = project_dir(config_path);
    let mut report = Report::default();
    let config = check_config(config_path, &mut report);
    check_permission(&mut report, config_path, false);
    if let Some(config) = &config {
        let runtime = tokio::runtime::Runtime::new()?;
        // The install's id, for telling this installation's /healthz from another's.
        let mut instance = None;
        let database = match Database::of(config_path, &config.database_url) {
            Ok(Database::Sqlite(file)) => {
                match tend_store_sqlite::moved_to(&file) {
                    Ok(Some(moved)) => report.error(
                        "database",
                        format!("{} was {moved}", file.display()),
                        format!(
                            "set database_url to {} (the business is served from there), \
                             or run `tend migrate --reclaim` once nothing serves it any more",
                            moved.target
                        ),
                    ),
                    Ok(None) => {}
                    Err(error) => report.error(
                        "database",
                        error.to_string(),
                        "restore the database from a backup",
                    ),
                }
                instance = check_database(&file, &mut report);
                Some(file)
            }
            Ok(Database::Postgres(url)) => {
                runtime.block_on(check_postgres(&url, &mut report));
                None
            }
            Err(error) => {
                report.error(
                    "database",
                    format!("{error:#}"),
                    "set `database_url` (or TEND_DATABASE_URL) to sqlite://FILE or \
                     postgres://USER@HOST:PORT/DATABASE",
                );
                None
            }
        };
        runtime.block_on(check_smtp(config, &dir, &mut report));
        let running = database.as_deref().and_then(server_address);
        let planned = match listen {
            Some(listen) => Planned::Flag(listen),
            None => Planned::Config(&config.http.listen),
        };
        check_public_url(config, running.as_deref(), planned, &mut report);
        if offline {
            report.ok("healthz", "public_url not fetched (--offline)");
        } else {
            runtime.block_on(check_health(config, instance.as_deref(), &mut report));
        }
        if let Some(database) = &database {
            for suffix in ["", "-wal", "-shm", ".lock"] {
                let mut name = database.as_os_str().to_owned();
                name.push(suffix);
                check_permission(&mut report, Path::new(&name), false);
            }
        }
        check_permission(&mut report, &dir.join("outbox"), true);
    }
    let count = |level| report.0.iter().filter(|f| f.level == level).count();
    let errors = count(Level::Error);
    println!(
        "\n{} ok, {} warnings, {errors} errors",
        count(Level::Ok),
        count(Level::Warning)
    );
    debug_assert!(report.0.iter().all(|f| !f.check.is_empty()
        && !f.message.is_empty()
        && (f.level == Level::Ok || f.fix.is_some())));
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn check_config(config_path: &Path, report: &mut Report) -> Option<Config> {
    match load_project(config_path) {
        Ok(Ok(project)) => {
            report.ok(
                "config",
                format!(
                    "{} is valid: {} processes",
                    config_path.display(),
                    project.processes.len()
                ),
            );
            Some(project.config)
        }
        Ok(Err(diagnostics)) => {
            report.error(
                "config",
                format!(
                    "{} errors in the configuration, processes or templates; the first: {}",
                    diagnostics.len(),
                    diagnostics
                        .first()
                        .map(ToString::to_string)
                        .unwrap_or_default()
                ),
                "run `tend check` and correct every line it prints",
            );
            None
        }
        Err(error) => {
            report.error(
                "config",
                format!("{error:#}"),
                "run `tend doctor` in the business's folder, or pass --config PATH",
            );
            None
        }
    }
}

/// PostgreSQL's counterpart of [`check_database`]: reachable, a schema this binary
/// knows, the install's secrets present. Integrity and backups are the server's own
/// business there (`amcheck`, `pg_dump`, continuous archiving).
async fn check_postgres(url: &str, report: &mut Report) {
    let found = match tend_store_postgres::inspect(url).await {
        Ok(found) => found,
        Err(error) => {
            report.error(
                "database",
                error.to_string(),
                "check that the server runs and accepts this user from this machine, and \
                 that the database exists",
            );
            return;
        }
    };
    if found.schema_version == 0 {
        report.warn(
            "database",
            format!("{} holds no Tend schema yet", found.target),
            "`tend serve` creates it on its first start, or move a SQLite business there \
             with `tend migrate --to`",
        );
    } else if found.schema_version > found.newest_version {
        report.error(
            "database",
            format!(
                "{} is at schema version {}, newer than this binary's {}",
                found.target, found.schema_version, found.newest_version
            ),
            "run the Tend release that wrote it (or a newer one)",
        );
    } else if !found.secrets_present {
        report.error(
            "database",
            format!("{}: the install's secrets are missing", found.target),
            "restore the database from a backup: new secrets would break every \
             unsubscribe link already mailed",
        );
    } else {
        report.ok(
            "database",
            format!(
                "{}: PostgreSQL, schema version {}, {} contacts, secrets present",
                found.target, found.schema_version, found.contacts
            ),
        );
        schema_findings(found.schema_version, found.newest_version, report);
    }
    connection_findings(&found, report);
}

/// How the connection to PostgreSQL is protected: a warning when contacts cross a
/// network in the clear or to a server whose certificate nobody checked.
fn connection_findings(found: &tend_store_postgres::Inspection, report: &mut Report) {
    let fix = "add `?sslmode=verify-full` to the URL (with `&sslrootcert=CA.pem` when \
               the server's certificate is not from a public CA)";
    match &found.tls_version {
        None if found.remote => report.warn(
            "database connection",
            "not encrypted, to a server on the network",
            fix,
        ),
        None => report.ok(
            "database connection",
            "not encrypted (a server on this machine)",
        ),
        Some(version) if found.remote && !found.host_verified => report.warn(
            "database connection",
            format!("{version}, {}", found.certificate),
            fix,
        ),
        Some(version) => report.ok(
            "database connection",
            format!("{version}, {}", found.certificate),
        ),
    }
}

/// Checks the SQLite file; the install's id when it could be read.
fn check_database(database: &Path, report: &mut Report) -> Option<String> {
    if !database.exists() {
        report.warn(
            "database",
            format!("{} does not exist yet", database.display()),
            "`tend serve` or `tend import` creates it; restore a backup with `tend restore` \
             if it was lost",
        );
        return None;
    }
    // Reads only: SQLite lets it run beside a server that writes.
    let mut instance = None;
    match tend_store_sqlite::verify_snapshot(database) {
        Ok(info) => {
            report.ok(
                "database",
                format!(
                    "{}: integrity_check ok, {} contacts, secrets present",
                    database.display(),
                    info.contacts
                ),
            );
            let binary = tend_store_sqlite::binary_schema_version();
            schema_findings(info.schema_version, binary, report);
            instance = info.instance_id;
        }
        Err(tend_store_sqlite::SnapshotError::Newer {
            version, newest, ..
        }) => report.error(
            "schema",
            format!(
                "the database is at schema version {version}, newer than this binary's \
                 {newest}: a newer Tend wrote it, and this one would misread it"
            ),
            "run the Tend release that last served this database (or a newer one); \
             never downgrade over it",
        ),
        Err(error) => report.error(
            "database",
            error.to_string(),
            "stop the server and restore the last good backup with `tend restore FILE`",
        ),
    }
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    let wal_bytes = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    let mb = wal_bytes as f64 / (1024.0 * 1024.0);
    if wal_bytes > WAL_WARNING_BYTES {
        report.warn(
            "database",
            format!("the write-ahead log is {mb:.0} MB: checkpoints are not keeping up"),
            "look for a long-running reader (a backup, a sqlite3 shell) holding the \
             database open; restarting `tend serve` checkpoints it",
        );
    } else {
        report.ok("database", format!("write-ahead log {mb:.1} MB"));
    }
    instance
}

/// The database's schema against this binary's (`binary`): older is migrated by
/// `tend serve` on start (the warning is the moment to take a backup); newer is an
/// error each backend's check reports itself.
fn schema_findings(version: i64, binary: i64, report: &mut Report) {
    if version < binary {
        report.warn(
            "schema",
            format!(
                "the database is at schema version {version}, this binary's is {binary}: \
                 tend serve will migrate it when it starts"
            ),
            "take a backup first (`tend backup FILE`), then start `tend serve`",
        );
    } else {
        report.ok(
            "schema",
            format!("schema version {version}, the same as this binary's"),
        );
    }
}

async fn check_smtp(config: &Config, dir: &Path, report: &mut Report) {
    let delivery =
        match ChannelDelivery::new(config, dir, std::env::var("TEND_SMTP_URL").ok(), "doctor") {
            Ok(delivery) => delivery,
            Err(error) => {
                report.error(
                    "smtp",
                    error.to_string(),
                    "correct [channels.email] smtp_url (or TEND_SMTP_URL)",
                );
                return;
            }
        };
    let Some(sender) = delivery.email_sender() else {
        report.warn(
            "smtp",
            "[channels.email] from is not set: no email is sent",
            "set [channels.email] from = \"Business <hello@example.com>\" in tend.toml",
        );
        return;
    };
    match sender.check_relay().await {
        None => report.warn(
            "smtp",
            "no smtp_url: emails are written to outbox/ and never leave this machine",
            "set [channels.email] smtp_url (or TEND_SMTP_URL) to your relay, e.g. \
             smtp://user:pass@mail.example.com:587?tls=required",
        ),
        Some(Err(error)) => report.error(
            "smtp",
            format!("the relay refused a trial session: {error}"),
            "check the relay's host, port, TLS mode (?tls=required for STARTTLS, smtps:// \
             for implicit TLS) and credentials; emails wait and are retried meanwhile",
        ),
        Some(Ok(probe)) => relay_findings(&probe, report),
    }
}

fn relay_findings(probe: &RelayProbe, report: &mut Report) {
    let mut steps = vec!["connected", "EHLO accepted"];
    match probe.mode {
        TlsMode::Implicit => steps.push("TLS from the first byte"),
        _ if probe.encrypted => steps.push("STARTTLS done"),
        _ => {}
    }
    if probe.authenticated {
        steps.push("AUTH accepted");
    }
    report.ok("smtp", format!("{}: {}", probe.server, steps.join(", ")));
    if probe.encrypted {
        return;
    }
    if probe.offers_starttls {
        report.warn(
            "smtp",
            format!(
                "{} offers STARTTLS but the URL does not ask for it: mail goes in plain text",
                probe.server
            ),
            "add ?tls=required to the SMTP URL",
        );
    } else if !probe.loopback {
        report.warn(
            "smtp",
            format!(
                "{} is on another machine and the session is not encrypted",
                probe.server
            ),
            "use a relay that offers STARTTLS (?tls=required) or implicit TLS (smtps://)",
        );
    }
}

/// Where a running server on `database` says it listens, from its lock file.
fn server_address(database: &Path) -> Option<String> {
    let mut lock = database.as_os_str().to_owned();
    lock.push(".lock");
    let lock = PathBuf::from(lock);
    let text = std::fs::read_to_string(&lock).ok()?;
    let address = text.split("listening on http://").nth(1)?.trim().to_owned();
    // The file outlives the server; only a locked one names a running server.
    let file = std::fs::File::open(&lock).ok()?;
    let held = matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock));
    held.then_some(address)
}

/// Where the server will listen when none is running, and who said so.
#[derive(Clone, Copy)]
enum Planned<'a> {
    /// `--listen`.
    Flag(&'a str),
    /// `[http] listen` (or its default).
    Config(&'a str),
}

fn check_public_url(
    config: &Config,
    running: Option<&str>,
    planned: Planned<'_>,
    report: &mut Report,
) {
    let url = config.public_url.trim_end_matches('/');
    let (listens, whose) = match (running, planned) {
        (Some(running), _) => (running, "the running server listens on"),
        (None, Planned::Flag(listen)) => (listen, "--listen is"),
        (None, Planned::Config(listen)) => (listen, "[http] listen is"),
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        report.error(
            "public_url",
            format!("public_url {url:?} is not an http(s) URL"),
            "set public_url = \"https://tend.example.com\" in tend.toml",
        );
        return;
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = host_of(authority);
    let listen_host = host_of(listens);
    if is_loopback(host) {
        let fix = "set public_url to the https address your contacts reach this server at";
        if is_loopback(listen_host) {
            report.warn(
                "public_url",
                format!(
                    "{url} is this machine: unsubscribe links in emails will not reach it \
                     ({whose} {listens})"
                ),
                fix,
            );
        } else {
            report.error(
                "public_url",
                format!("{url} is this machine, but {whose} {listens}"),
                fix,
            );
        }
        return;
    }
    if scheme != "https" {
        report.warn(
            "public_url",
            format!("{url} is not https: unsubscribe links travel in the clear"),
            "put a TLS-terminating proxy in front of tend serve and use its https address",
        );
    }
    if is_loopback(listen_host) {
        report.ok(
            "public_url",
            format!("{url}; {whose} {listens}, so a reverse proxy must forward {authority} to it"),
        );
    } else if host == listen_host && port_of(authority, scheme) != port_of(listens, "") {
        report.error(
            "public_url",
            format!("{url} names {host} on another port than {whose} {listens}"),
            "make public_url's port the one tend serve listens on, or put a proxy between",
        );
    } else {
        report.ok("public_url", format!("{url}; {whose} {listens}"));
    }
}

/// Fetches `<public_url>/healthz`, as a contact's unsubscribe click would reach it, and
/// compares the installation that answers with this one.
async fn check_health(config: &Config, instance: Option<&str>, report: &mut Report) {
    let url = format!("{}/healthz", config.public_url.trim_end_matches('/'));
    let unreachable_fix = "check that public_url's name resolves to the reverse proxy (or \
                           this server), that the proxy forwards to `tend serve`, and that \
                           a firewall lets it through: unsubscribe links use this address";
    tend_engine::webhook::install_crypto_provider();
    let client = match reqwest::Client::builder()
        .timeout(HEALTH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            report.warn(
                "healthz",
                format!("cannot fetch {url}: {error}"),
                unreachable_fix,
            );
            return;
        }
    };
    let response = match client.get(&url).send().await {
        Ok(response) => response,
        Err(error) => {
            report.warn(
                "healthz",
                format!("{url} did not answer: {}", error_chain(&error)),
                unreachable_fix,
            );
            return;
        }
    };
    let status = response.status();
    let body: Option<serde_json::Value> = response.json().await.ok();
    let answered = body
        .as_ref()
        .and_then(|b| b.get("instance"))
        .and_then(serde_json::Value::as_str);
    let other_server_fix = "point public_url (or the proxy behind it) at this business's \
                            `tend serve`: links in its emails reach whatever answers there";
    match (status.is_success(), answered, instance) {
        (true, Some(answered), Some(ours)) if answered == tend_engine::health_fingerprint(ours) => {
            report.ok("healthz", format!("{url} answers from this installation"));
        }
        (true, Some(_), Some(_)) => report.error(
            "healthz",
            format!(
                "{url} answers from a different Tend installation: unsubscribe links in \
                 this business's emails would reach another one"
            ),
            other_server_fix,
        ),
        (true, Some(_), None) => report.ok(
            "healthz",
            format!("{url} answers from a Tend server (this database's id was not read)"),
        ),
        _ => report.warn(
            "healthz",
            format!("{url} answered {status}, not as Tend's /healthz does"),
            other_server_fix,
        ),
    }
}

/// An error with its causes, e.g. "error sending request: connection refused".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The host of `host:port`, `[v6]:port` or a bare host.
fn host_of(authority: &str) -> &str {
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.split(':').next().unwrap_or(authority)
}

fn port_of(authority: &str, scheme: &str) -> Option<u16> {
    let after_host = authority.rsplit(']').next().unwrap_or(authority);
    match after_host.rsplit_once(':') {
        Some((_, port)) => port.parse().ok(),
        None => match scheme {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        },
    }
}

/// Files owner-only (0600, folders 0700), owned by whoever runs Tend.
fn check_permission(report: &mut Report, path: &Path, folder: bool) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mode = meta.permissions().mode() & 0o777;
        let wanted = if folder { "700" } else { "600" };
        if mode & 0o077 != 0 {
            report.error(
                "permissions",
                format!(
                    "{} is {mode:03o}: others on this machine can read it (it holds contacts \
                     or secrets)",
                    path.display()
                ),
                format!("chmod {wanted} {}", path.display()),
            );
            return;
        }
        // /proc/self belongs to the process's effective user.
        if let Ok(me) = std::fs::metadata("/proc/self").map(|m| m.uid())
            && meta.uid() != me
        {
            report.warn(
                "permissions",
                format!(
                    "{} belongs to user {}, not to the user running tend ({me})",
                    path.display(),
                    meta.uid()
                ),
                format!(
                    "run tend as the files' owner, or chown {me} {}",
                    path.display()
                ),
            );
            return;
        }
        report.ok(
            "permissions",
            format!("{} is owner-only ({mode:03o})", path.display()),
        );
    }
    #[cfg(not(unix))]
    let _ = (meta, folder);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_across_the_network_warns_unless_encrypted_and_verified_for_its_host() {
        let seen = |tls: Option<&str>, host_verified: bool, remote: bool| {
            let found = tend_store_postgres::Inspection {
                target: "postgres://tend@db.example:5432/tend".into(),
                schema_version: 1,
                newest_version: 1,
                contacts: 0,
                secrets_present: true,
                tls_version: tls.map(str::to_owned),
                certificate: "described",
                host_verified,
                remote,
            };
            let mut report = Report(Vec::new());
            connection_findings(&found, &mut report);
            report.0[0].level
        };
        assert_eq!(seen(None, false, true), Level::Warning);
        assert_eq!(seen(Some("TLSv1.3"), false, true), Level::Warning);
        assert_eq!(seen(Some("TLSv1.3"), true, true), Level::Ok);
        assert_eq!(seen(None, false, false), Level::Ok);
        assert_eq!(seen(Some("TLSv1.3"), false, false), Level::Ok);
    }

    #[test]
    fn hosts_and_ports_are_read_from_authorities() {
        assert_eq!(host_of("tend.example.com"), "tend.example.com");
        assert_eq!(host_of("127.0.0.1:7070"), "127.0.0.1");
        assert_eq!(host_of("[::1]:7070"), "::1");
        assert_eq!(port_of("tend.example.com", "https"), Some(443));
        assert_eq!(port_of("10.0.0.5:7070", ""), Some(7070));
        assert_eq!(port_of("[::1]:8080", ""), Some(8080));
        assert!(is_loopback("localhost") && is_loopback("127.0.0.1") && is_loopback("::1"));
        assert!(!is_loopback("tend.example.com") && !is_loopback("0.0.0.0"));
    }
}
