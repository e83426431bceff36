//! Process files brought in line with the database at start.

use super::EngineError;
use crate::book::{self, BoundProcess, ProcessBook};
use jiff::Timestamp;
use tend_core::check::Project;
use tend_store::{ProcessSync, Store, StoreError};

/// How many times a process is synced again after another node changed it meanwhile.
const SYNC_ATTEMPTS: u32 = 3;

/// What syncing the process files with the database found, for the log at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Processes seen for the first time, with the contacts enrolled from their stage.
    pub added: Vec<(String, u64)>,
    /// `process: step key` for every step removed from a file since the last start.
    pub removed_steps: Vec<String>,
    /// Contacts moved to another step because of an edit.
    pub moved: u64,
    /// Contacts whose process ended because its remaining steps were removed.
    pub completed: u64,
    /// Processes in the database with no file any more; their contacts wait, untouched.
    pub missing: Vec<String>,
}

/// Brings the store's processes in line with the files: new processes are added (and
/// their stage's members enrolled), edited ones have their contacts moved.
pub(super) async fn sync_processes(
    store: &dyn Store,
    project: &Project,
    now: Timestamp,
) -> Result<(ProcessBook, SyncReport), EngineError> {
    let mut stored = store.stored_processes().await?;
    let mut report = SyncReport::default();
    let mut bound = Vec::new();
    for process in &project.processes {
        let keys = book::step_keys(process);
        let mut attempt = 0;
        let (previous, outcome, removed) = loop {
            let previous = stored.iter().find(|s| s.key == process.id).cloned();
            let (moves, removed) = match &previous {
                Some(p) => book::step_moves(&p.steps, &keys, process),
                None => (Vec::new(), Vec::new()),
            };
            let backfill = match (&process.enroll, &previous) {
                (tend_core::Enroll::Stage(stage), None) => Some(tend_store::Backfill {
                    stage,
                    first: book::step_spec(0, &process.steps[0]),
                    due_at: book::after(now, &process.steps[0]),
                }),
                _ => None,
            };
            let synced = store
                .sync_process(&ProcessSync {
                    key: &process.id,
                    steps: &keys,
                    previous: previous.as_ref().map(|p| p.steps.as_slice()),
                    moves: &moves,
                    backfill,
                    at: now,
                })
                .await;
            match synced {
                Ok(outcome) => break (previous, outcome, removed),
                // Another node starting at the same moment synced it first (several
                // nodes on PostgreSQL): start again from what that node stored, which
                // is then this node's "previous", so nothing is enrolled twice.
                Err(StoreError::Conflict(_)) if attempt < SYNC_ATTEMPTS => {
                    attempt += 1;
                    stored = store.stored_processes().await?;
                }
                Err(error) => return Err(error.into()),
            }
        };
        if previous.is_none() {
            report.added.push((process.id.clone(), outcome.enrolled));
        }
        report.moved += outcome.moved;
        report.completed += outcome.completed;
        report
            .removed_steps
            .extend(removed.into_iter().map(|k| format!("{}: {k}", process.id)));
        bound.push(BoundProcess {
            id: outcome.process_id,
            process: process.clone(),
        });
    }
    report.missing = stored
        .iter()
        .filter(|s| project.process(&s.key).is_none())
        .map(|s| s.key.clone())
        .collect();
    Ok((ProcessBook::new(bound), report))
}
