//! Several `tend serve` nodes on one database. Every node takes ingest and API traffic
//! and dispatches (claims are leased with `SKIP LOCKED`); the once-only work runs on the
//! node holding a session advisory lock on a connection of its own, outside the pool.
//! Each node tries to take the lock every [`ELECTION_INTERVAL`]; when the leader dies
//! its server session ends, the lock goes with it, and another node takes it at its
//! next try. Each leader starts a new term (a counter in `engine_state`, raised by the
//! lock's holder), and leader-only writes check in their own transaction, under a
//! share lock on that row, that their term is still the current one: a node that lost
//! the lock (its connection cut, itself still running) cannot write over its
//! successor, who raises the term only once the old leader's writes in progress end.
//!
//! The same connection `LISTEN`s on [`WAKE_CHANNEL`]: transactions that append events or
//! stage changes, or admit touches, `NOTIFY` it, delivered at their commit, so the
//! leader reads a new lead at once whichever node took the request, and every
//! dispatcher hears of admitted touches.

use crate::pool::Connect;
use crate::sql::db;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tend_store::{Coordination, StoreError, Wake};
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;

/// The advisory lock the leader holds ("TENDLEAD" in ASCII).
pub(crate) const LEADER_LOCK: i64 = 0x5445_4E44_4C45_4144;

/// The `application_name` of the election's connection.
pub const ELECTION_APPLICATION: &str = "tend-election";

/// The `engine_state` key of the current leader's term.
const TERM_KEY: &str = "leader_term";

/// The channel wake-ups are announced on.
pub(crate) const WAKE_CHANNEL: &str = "tend_wake";

/// How often a node that does not lead tries to take the lock, and a leader checks its
/// lock connection: the longest a dead leader's work waits for a successor.
pub(crate) const ELECTION_INTERVAL: Duration = Duration::from_secs(1);

/// This node's part in the election and the wake-ups it has heard.
pub(crate) struct PgCoordination {
    shared: Arc<Shared>,
}

struct Shared {
    /// This node's term while it leads; 0 when it does not.
    term: AtomicI64,
    signals: Notify,
    dispatch: Notify,
}

impl PgCoordination {
    /// Joins the election over a connection of its own to `config`'s database and
    /// starts listening; the work runs in the background until this value is dropped.
    pub(crate) fn start(mut connect: Connect) -> PgCoordination {
        // Named apart from the pool's connections, for whoever looks at the server.
        connect.config.application_name(ELECTION_APPLICATION);
        let shared = Arc::new(Shared {
            term: AtomicI64::new(0),
            signals: Notify::new(),
            dispatch: Notify::new(),
        });
        tokio::spawn(elect(connect, Arc::downgrade(&shared)));
        PgCoordination { shared }
    }

    /// This node's term, if it leads.
    pub(crate) fn term(&self) -> Option<i64> {
        match self.shared.term.load(Ordering::Acquire) {
            0 => None,
            term => Some(term),
        }
    }
}

#[async_trait::async_trait]
impl Coordination for PgCoordination {
    fn sole_engine(&self) -> bool {
        false
    }

    fn leads(&self) -> bool {
        self.term().is_some()
    }

    async fn woken(&self, wake: Wake) {
        match wake {
            Wake::Signals => self.shared.signals.notified().await,
            Wake::Dispatch => self.shared.dispatch.notified().await,
        }
    }
}

/// The election: connect, listen, try the lock until this node holds it, then keep
/// checking the connection; on any failure give up leadership and start again.
async fn elect(connect: Connect, shared: Weak<Shared>) {
    let target = &connect.target;
    loop {
        match hold_or_wait(&connect, &shared).await {
            Ok(()) => return,
            Err(error) => {
                if let Some(shared) = shared.upgrade()
                    && shared.term.swap(0, Ordering::AcqRel) != 0
                {
                    tracing::warn!(%error, database = %target, "lost the leader's lock: another node takes over");
                } else {
                    tracing::warn!(%error, database = %target, "the election connection failed; trying again");
                }
            }
        }
        if shared.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(ELECTION_INTERVAL).await;
    }
}

/// One connection's life in the election. `Ok` when the node stopped (its coordination
/// was dropped); an error when the connection failed.
async fn hold_or_wait(connect: &Connect, shared: &Weak<Shared>) -> Result<(), StoreError> {
    let (client, mut connection) = connect.open().await?;
    let heard = shared.clone();
    // The connection is driven here, and every notification is passed on.
    let driver = tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(note)) => {
                    let Some(shared) = heard.upgrade() else {
                        return;
                    };
                    match note.payload() {
                        "dispatch" => shared.dispatch.notify_one(),
                        _ => shared.signals.notify_one(),
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%error, "the election connection ended");
                    break;
                }
            }
        }
        // The lock went with the session: stop leading now, not at the next check.
        if let Some(shared) = heard.upgrade()
            && shared.term.swap(0, Ordering::AcqRel) != 0
        {
            tracing::warn!("lost the leader's lock with its connection: another node takes over");
        }
    });
    let _stop_driver = AbortOnDrop(driver.abort_handle());
    client
        .batch_execute(&format!("LISTEN {WAKE_CHANNEL}"))
        .await
        .map_err(db)?;
    loop {
        {
            let Some(shared) = shared.upgrade() else {
                return Ok(());
            };
            if driver.is_finished() {
                return Err(StoreError::Backend("the election connection closed".into()));
            }
            if shared.term.load(Ordering::Acquire) == 0 {
                let won: bool = client
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])
                    .await
                    .map_err(db)?
                    .get(0);
                if won {
                    let term = new_term(&client).await?;
                    shared.term.store(term, Ordering::Release);
                    tracing::info!(
                        term,
                        "this node leads: it reads signals and decides due touches"
                    );
                    // The once-only work starts now, not at the next tick.
                    shared.signals.notify_one();
                }
            } else {
                // A leader whose connection died must find out before it writes.
                client.simple_query("SELECT 1").await.map_err(db)?;
            }
        }
        tokio::time::sleep(ELECTION_INTERVAL).await;
    }
}

/// Raises the leader's term; waits for leader-only writes in progress (which hold the
/// row in share mode) to end first.
async fn new_term(client: &tokio_postgres::Client) -> Result<i64, StoreError> {
    let text: String = client
        .query_one(
            "INSERT INTO engine_state (key, value) VALUES ($1, '1') \
             ON CONFLICT (key) DO UPDATE SET value = (engine_state.value::bigint + 1)::text \
             RETURNING value",
            &[&TERM_KEY],
        )
        .await
        .map_err(db)?
        .get(0);
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("the leader's term `{text}` is not a number")))
}

/// Stops the connection's driver when the election leaves it.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Fails the caller's transaction unless `term` is the current leader's term, and keeps
/// it current until the transaction ends: leader-only writes run only while this node
/// leads.
pub(crate) async fn fence(
    tx: &deadpool_postgres::Transaction<'_>,
    term: Option<i64>,
) -> Result<(), StoreError> {
    let Some(term) = term else {
        return Err(StoreError::Conflict(
            "this node does not lead; the leader does the once-only work".into(),
        ));
    };
    let current: Option<String> = tx
        .query_opt(
            "SELECT value FROM engine_state WHERE key = $1 FOR SHARE",
            &[&TERM_KEY],
        )
        .await
        .map_err(db)?
        .map(|row| row.get(0));
    if current.as_deref() == Some(term.to_string().as_str()) {
        Ok(())
    } else {
        Err(StoreError::Conflict(
            "this node lost the leader's lock; its successor does the once-only work".into(),
        ))
    }
}
