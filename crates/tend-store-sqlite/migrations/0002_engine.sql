-- The engine's state: processes as last loaded, enrollments, touches (the pacer's queue,
-- the dispatch outbox and the agenda in one table), response statistics of offers, and
-- small named values (cursors, budget usage, open work, the signing key).

-- A process file as the engine last loaded it. `steps` is a JSON array of step keys
-- (`email:welcome`, `task:Call …`), so an edited file can be matched against it and
-- enrolled contacts keep their place.
CREATE TABLE processes (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    key       TEXT NOT NULL UNIQUE,
    steps     TEXT NOT NULL,
    loaded_at INTEGER NOT NULL
);

-- One contact inside one process. `step` is the index of the step the contact is at:
-- its touch is pending, queued, or an open task.
CREATE TABLE enrollments (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id    INTEGER NOT NULL REFERENCES contacts (id),
    process_id    INTEGER NOT NULL REFERENCES processes (id),
    state         TEXT NOT NULL CHECK (state IN ('active', 'completed', 'exited')),
    step          INTEGER NOT NULL,
    enrolled_at   INTEGER NOT NULL,
    touches       INTEGER NOT NULL DEFAULT 0,
    last_touch_at INTEGER,
    ended_at      INTEGER,
    end_reason    TEXT
);
CREATE UNIQUE INDEX enrollments_active ON enrollments (contact_id, process_id)
    WHERE state = 'active';
CREATE INDEX enrollments_contact ON enrollments (contact_id, process_id);
CREATE INDEX enrollments_process_step ON enrollments (process_id, step) WHERE state = 'active';

-- One planned or made touch. AUTOINCREMENT because an email's Message-ID and a webhook's
-- id are derived from the touch id: a receiver must never see one id for two touches.
--   pending   waits for the pacer at due_at
--   queued    admitted; a dispatcher may claim it at next_attempt_at (a claim sets
--             `leased` and pushes next_attempt_at to the lease's end, so an abandoned
--             claim is taken again)
--   sent      delivered (email, webhook)
--   open      a task on the agenda, due at due_at
--   done      a task completed (outcome, note)
--   skipped   the pacer skipped it, or a person skipped the task
--   failed    a permanent failure (last_error)
--   cancelled the enrollment ended before it was made
CREATE TABLE touches (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    enrollment_id   INTEGER NOT NULL REFERENCES enrollments (id),
    contact_id      INTEGER NOT NULL REFERENCES contacts (id),
    process_id      INTEGER NOT NULL REFERENCES processes (id),
    step            INTEGER NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('step', 'keep_warm')),
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'webhook', 'task')),
    intent          TEXT NOT NULL CHECK (intent IN ('offer', 'nurture')),
    state           TEXT NOT NULL CHECK (state IN
        ('pending', 'queued', 'sent', 'open', 'done', 'skipped', 'failed', 'cancelled')),
    due_at          INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    -- The pacer's last decision on it.
    decision        TEXT,
    reason          TEXT,
    until_at        INTEGER,
    decided_at      INTEGER,
    deferrals       INTEGER NOT NULL DEFAULT 0,
    -- When the pacer let it go: it counts against the contact's frequency limits from here.
    admitted_at     INTEGER,
    probability     REAL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    -- 1 while a dispatcher holds it; a restart gives such touches back at once.
    leased          INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    sent_at         INTEGER,
    -- Tasks.
    title           TEXT,
    minutes         INTEGER,
    completed_at    INTEGER,
    outcome         TEXT,
    note            TEXT,
    -- An offer whose contact opened work or advanced a stage soon after it.
    responded_at    INTEGER
);
CREATE INDEX touches_due ON touches (due_at) WHERE state = 'pending';
CREATE INDEX touches_dispatch ON touches (next_attempt_at) WHERE state = 'queued';
CREATE INDEX touches_tasks ON touches (state, due_at) WHERE channel = 'task';
CREATE INDEX touches_completed ON touches (completed_at) WHERE completed_at IS NOT NULL;
CREATE INDEX touches_contact_admitted ON touches (contact_id, admitted_at);
CREATE INDEX touches_enrollment ON touches (enrollment_id);
CREATE INDEX touches_admitted ON touches (admitted_at) WHERE admitted_at IS NOT NULL;
CREATE INDEX touches_offers_in_flight ON touches (admitted_at)
    WHERE intent = 'offer' AND responded_at IS NULL AND admitted_at IS NOT NULL;

-- Offers made and answered per process step, for the response-rate posterior.
CREATE TABLE offer_stats (
    process_id INTEGER NOT NULL REFERENCES processes (id),
    step       INTEGER NOT NULL,
    sent       INTEGER NOT NULL DEFAULT 0,
    responded  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (process_id, step)
);

CREATE TABLE engine_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Work items opened (+1) and closed (-1) as the engine read them from `[work]` events,
-- for the pace report's work-against-capacity figures.
CREATE TABLE work_log (
    id    INTEGER PRIMARY KEY,
    at    INTEGER NOT NULL,
    delta REAL NOT NULL
);
CREATE INDEX work_log_at ON work_log (at);
