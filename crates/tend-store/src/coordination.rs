//! How the engines sharing one database divide their work: which node does the
//! once-only work (reading signals into enrollments, deciding due touches, rechecking
//! held offers), and how nodes wake each other when there is work. Every node
//! dispatches: claims are leased, so any number of dispatchers can share the queue.
//!
//! A SQLite file has one engine (an OS lock keeps a second `tend serve` out), so it is
//! [`SoleEngine`]: always the leader, woken only from inside its own process.

use async_trait::async_trait;

/// What an announcement says there is to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// New stage changes or events to read, or this node just became the leader.
    Signals,
    /// Touches were admitted: dispatchers may have something to claim.
    Dispatch,
}

/// The engines' agreement on one database: leadership and wake-ups.
#[async_trait]
pub trait Coordination: Send + Sync + 'static {
    /// Whether no other engine can run on this database: then any lease still held
    /// when the engine starts is its own, from a run that stopped, and is given back.
    fn sole_engine(&self) -> bool;

    /// Whether this node does the once-only work now. Cheap; asked before every pass.
    /// A node that loses leadership (its lock's connection died) says `false` at once,
    /// and the store refuses the leader's writes from it.
    fn leads(&self) -> bool;

    /// Waits for the next announcement of `wake` from any node (or, for
    /// [`Wake::Signals`], for this node becoming the leader). May return without one;
    /// callers look for work and wait again. Never returns for a sole engine, whose
    /// own process wakes it directly.
    async fn woken(&self, wake: Wake);
}

/// The coordination of an engine alone on its database.
#[derive(Debug, Clone, Copy, Default)]
pub struct SoleEngine;

#[async_trait]
impl Coordination for SoleEngine {
    fn sole_engine(&self) -> bool {
        true
    }

    fn leads(&self) -> bool {
        true
    }

    async fn woken(&self, _wake: Wake) {
        std::future::pending::<()>().await;
    }
}
