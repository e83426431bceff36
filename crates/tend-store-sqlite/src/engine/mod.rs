//! The engine's statements, one file per section: `state` (the engine's values and
//! process sync), `signals` (reading signals, enrollment and exits), `decisions` (due
//! touches, the pacing snapshot, recording decisions), `dispatch` (leases and their
//! results), `reports`, `tasks` and `history` (a contact's enrollments and touches,
//! merges). Each public function runs inside the caller's transaction or on the
//! caller's pool; the `Store` impl decides which. This file holds the vocabulary the
//! sections share: the string forms stored in columns and the row helpers.

mod decisions;
mod dispatch;
mod history;
mod reports;
mod signals;
mod state;
mod tasks;

pub(crate) use decisions::*;
pub(crate) use dispatch::*;
pub(crate) use history::*;
pub(crate) use reports::*;
pub(crate) use signals::*;
pub(crate) use state::*;
pub(crate) use tasks::*;

use crate::sql::db;
use crate::sql::{self, Binds, ContactRow, contact_columns, get, get_at, millis, timestamp};
use crate::suppress;
use jiff::Timestamp;
use rusqlite::{Connection, Row, ToSql, params};
use std::collections::{HashMap, HashSet};
use tend_core::pacer::{Channel, Intent, TouchId};
use tend_core::{ContactId, StageName};
use tend_store::engine::*;
use tend_store::suppression::AddressKeys;
use tend_store::{Contact, StageEnrollment, StoreError};

pub(super) const CURSOR_KEY: &str = "signal_cursor";
pub(super) const BUDGET_KEY: &str = "budget";
/// Open work as counted from `[work]` events and `PUT /api/capacity`.
pub(crate) const OPEN_WORK_KEY: &str = "open_work";

pub(super) fn parse_channel(text: &str) -> Result<Channel, StoreError> {
    Channel::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown channel `{text}`")))
}

pub(super) fn parse_intent(text: &str) -> Result<Intent, StoreError> {
    Intent::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown intent `{text}`")))
}

pub(super) fn parse_kind(text: &str) -> Result<TouchKind, StoreError> {
    match text {
        "step" => Ok(TouchKind::Step),
        "keep_warm" => Ok(TouchKind::KeepWarm),
        other => Err(StoreError::Corrupt(format!("unknown touch kind `{other}`"))),
    }
}

/// A `COUNT(*) AS n` column.
pub(super) fn count(row: &Row<'_>) -> Result<u64, StoreError> {
    Ok(get::<i64>(row, "n")?.max(0) as u64)
}

pub(super) fn step_index(row: &Row<'_>, column: &str) -> Result<u32, StoreError> {
    step_number(get(row, column)?, column)
}

pub(super) fn step_number(step: i64, column: &str) -> Result<u32, StoreError> {
    u32::try_from(step).map_err(|_| StoreError::Corrupt(format!("`{column}` is {step}")))
}

pub(super) fn opt_timestamp(ms: Option<i64>, what: &str) -> Result<Option<Timestamp>, StoreError> {
    ms.map(|ms| timestamp(ms, what)).transpose()
}
