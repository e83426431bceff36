//! Connections: the pool, how a URL becomes one (never logging its password), and the
//! transaction every `Store` call runs in.

use crate::sql::db;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::time::Duration;
use tend_store::StoreError;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Config, IsolationLevel};

/// Connections kept open: enough for HTTP requests, the engine and the dispatcher to
/// run alongside; the server's `max_connections` (100 by default) bounds what several
/// nodes may add up to.
const MAX_CONNECTIONS: usize = 16;

/// How long opening a connection or waiting for a free one may take before the call
/// fails with an error naming the server.
const WAIT: Duration = Duration::from_secs(10);

/// What a transaction may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reads one consistent snapshot (`REPEATABLE READ READ ONLY`).
    Read,
    /// Reads and writes (`READ COMMITTED`, with row locks where a read decides a write).
    Write,
}

/// Where a URL points, without its password: for error messages and logs.
pub(crate) fn describe(config: &Config) -> String {
    use tokio_postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("(default user)");
    let db = config.get_dbname().unwrap_or("(default database)");
    format!("postgres://{user}@{host}:{port}/{db}")
}

/// How a store connects: the settings, the TLS connector, and where (for messages).
#[derive(Clone)]
pub(crate) struct Connect {
    /// The driver's settings, from the URL.
    pub config: Config,
    /// TLS as the URL's `sslmode` and `sslrootcert` ask.
    pub tls: crate::tls::Connector,
    /// How that TLS checks the server's certificate.
    pub check: crate::tls::Check,
    /// Where, without the password.
    pub target: String,
}

impl Connect {
    /// Whether the server is beyond this machine: not a socket, a loopback address or
    /// `localhost`.
    pub(crate) fn is_remote(&self) -> bool {
        use tokio_postgres::config::Host;
        self.config.get_hosts().iter().any(|host| match host {
            Host::Tcp(name) => {
                name != "localhost"
                    && !name
                        .trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            #[cfg(unix)]
            Host::Unix(_) => false,
        })
    }

    /// Opens one connection outside the pool (the election's), driven by the caller.
    pub(crate) async fn open(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<
                tokio_postgres::Socket,
                <crate::tls::Connector as tokio_postgres::tls::MakeTlsConnect<
                    tokio_postgres::Socket,
                >>::Stream,
            >,
        ),
        StoreError,
    > {
        self.config
            .connect(self.tls.clone())
            .await
            .map_err(|e| connect_error(&self.target, &e))
    }
}

/// A pool for the URL's server, and how it connects. Connects lazily; the caller's
/// first `get` proves it.
pub(crate) fn build(url: &str) -> Result<(Pool, Connect), StoreError> {
    let request = crate::tls::parse(url)?;
    let tls = crate::tls::connector(&request)?;
    let mut config: Config = request.driver_url.parse().map_err(|e| {
        // The driver's message names the bad part, never the password.
        StoreError::InvalidUrl(format!("postgres://…: {e}"))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(WAIT);
    }
    config.application_name("tend");
    let target = describe(&config);
    let manager = Manager::from_config(
        config.clone(),
        tls.clone(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(MAX_CONNECTIONS)
        .wait_timeout(Some(WAIT))
        .create_timeout(Some(WAIT))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Backend(format!("building the connection pool: {e}").into()))?;
    Ok((
        pool,
        Connect {
            config,
            tls,
            check: request.check,
            target,
        },
    ))
}

/// A pool error (no connection could be made or none was free) naming the server.
pub(crate) fn pool_error(target: &str, error: deadpool_postgres::PoolError) -> StoreError {
    connect_error(target, &error)
}

/// A failure to connect naming the server and every cause down the chain: the driver
/// says only "error performing TLS handshake", the cause says which certificate check
/// failed.
fn connect_error(target: &str, error: &(dyn std::error::Error + 'static)) -> StoreError {
    let mut text = format!("PostgreSQL at {target}: {error}");
    let mut said = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        // Wrappers often repeat their cause's words; each is said once.
        let words = next.to_string();
        if !said.ends_with(&words) {
            text.push_str(&format!(": {words}"));
        }
        said = words;
        cause = next.source();
    }
    StoreError::Backend(text.into())
}

/// Starts a transaction of the given kind.
pub(crate) async fn begin(
    client: &mut deadpool_postgres::Object,
    access: Access,
) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    match access {
        Access::Read => client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(db),
        Access::Write => client.transaction().await.map_err(db),
    }
}

/// Whether a failed transaction may simply be run again: the server chose it as a
/// deadlock's victim or could not serialize it. Nothing of it was written.
pub(crate) fn is_transient(error: &StoreError) -> bool {
    let StoreError::Backend(source) = error else {
        return false;
    };
    source
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(tokio_postgres::Error::code)
        .is_some_and(|code| {
            *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
        })
}

/// How many times a transaction the server aborted as a deadlock's victim is run again.
pub(crate) const RETRIES: u32 = 3;

/// Runs `$body` in one transaction on a pooled connection and commits it when the body
/// returns; an error rolls everything back. A transaction the server aborts to break
/// a deadlock is run again from the start. The body names the transaction `$tx` and
/// uses `.await?` freely.
macro_rules! in_tx {
    ($store:expr, $access:expr, |$tx:ident| $body:expr) => {{
        let mut attempt = 0u32;
        loop {
            let result: Result<_, tend_store::StoreError> = async {
                let mut client = $store
                    .pool
                    .get()
                    .await
                    .map_err(|e| $crate::pool::pool_error(&$store.target, e))?;
                let $tx = $crate::pool::begin(&mut client, $access).await?;
                let value = $body;
                $tx.commit().await.map_err($crate::sql::db)?;
                Ok(value)
            }
            .await;
            match result {
                Err(e) if attempt < $crate::pool::RETRIES && $crate::pool::is_transient(&e) => {
                    attempt += 1;
                }
                other => break other,
            }
        }
    }};
}
pub(crate) use in_tx;
