-- Tend's schema on PostgreSQL, equal to the SQLite schema after its migration 0009.
-- Column types, chosen once: ids are BIGINT GENERATED ALWAYS AS IDENTITY (never reused,
-- so an erased contact's id, an event the engine read behind its cursor, and a touch
-- whose id is in a Message-ID are never handed out again); instants are BIGINT Unix
-- milliseconds, as the Store trait speaks them; JSON is JSONB; reals are DOUBLE
-- PRECISION; flags are BOOLEAN.

CREATE TABLE contacts (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         TEXT UNIQUE,
    user_id       TEXT UNIQUE,
    name          TEXT,
    timezone      TEXT,
    stage         TEXT NOT NULL,
    attributes    JSONB NOT NULL DEFAULT '{}',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    suppressed_at BIGINT,
    last_touch_at BIGINT
);
CREATE INDEX contacts_stage_id ON contacts (stage, id);

-- Segment anonymousIds seen for a contact; the first contact to claim one keeps it.
CREATE TABLE contact_aliases (
    anonymous_id TEXT PRIMARY KEY,
    contact_id   BIGINT NOT NULL REFERENCES contacts (id),
    created_at   BIGINT NOT NULL
);
CREATE INDEX contact_aliases_contact ON contact_aliases (contact_id);

CREATE TABLE events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id  TEXT NOT NULL UNIQUE,
    contact_id  BIGINT NOT NULL REFERENCES contacts (id),
    kind        TEXT NOT NULL CHECK (kind IN ('identify', 'track')),
    name        TEXT,
    properties  JSONB NOT NULL DEFAULT '{}',
    occurred_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX events_contact_occurred ON events (contact_id, occurred_at);

CREATE TABLE stage_history (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id BIGINT NOT NULL REFERENCES contacts (id),
    from_stage TEXT,
    to_stage   TEXT NOT NULL,
    reason     TEXT NOT NULL,
    -- The event that caused the change, if one did.
    message_id TEXT,
    at         BIGINT NOT NULL
);
CREATE INDEX stage_history_contact_at ON stage_history (contact_id, at);

CREATE TABLE api_tokens (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    scope        TEXT NOT NULL CHECK (scope IN ('write', 'admin', 'calendar', 'metrics')),
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    -- When the token was last presented, to the minute; NULL if never.
    last_used_at BIGINT
);

-- Bare SHA-256 records of addresses from SQLite releases before keyed suppression; a
-- database moved from such a file keeps them, and they are still checked.
CREATE TABLE legacy_suppressions (
    email_hash TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Suppression belongs to the address: HMAC-SHA256 of the normalised address under the
-- install's secret (`engine_state.unsubscribe_key`).
CREATE TABLE suppressions (
    address_key TEXT PRIMARY KEY,
    reason      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- A process file as the engine last loaded it; `steps` is a JSON array of step keys.
CREATE TABLE processes (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key       TEXT NOT NULL UNIQUE,
    steps     JSONB NOT NULL,
    loaded_at BIGINT NOT NULL
);

-- One contact inside one process; `step` is the index of the step the contact is at.
CREATE TABLE enrollments (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id    BIGINT NOT NULL REFERENCES contacts (id),
    process_id    BIGINT NOT NULL REFERENCES processes (id),
    state         TEXT NOT NULL CHECK (state IN ('active', 'completed', 'exited')),
    step          BIGINT NOT NULL,
    enrolled_at   BIGINT NOT NULL,
    touches       BIGINT NOT NULL DEFAULT 0,
    last_touch_at BIGINT,
    ended_at      BIGINT,
    end_reason    TEXT,
    -- A paused enrollment keeps its place; its pending touch waits until resumed.
    paused_at     BIGINT
);
CREATE UNIQUE INDEX enrollments_active ON enrollments (contact_id, process_id)
    WHERE state = 'active';
CREATE INDEX enrollments_contact ON enrollments (contact_id, process_id);
CREATE INDEX enrollments_process_step ON enrollments (process_id, step) WHERE state = 'active';

-- One planned or made touch (see the SQLite schema's 0002 for the states).
CREATE TABLE touches (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    enrollment_id   BIGINT NOT NULL REFERENCES enrollments (id),
    contact_id      BIGINT NOT NULL REFERENCES contacts (id),
    process_id      BIGINT NOT NULL REFERENCES processes (id),
    step            BIGINT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('step', 'keep_warm')),
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'webhook', 'task')),
    intent          TEXT NOT NULL CHECK (intent IN ('offer', 'nurture')),
    state           TEXT NOT NULL CHECK (state IN
        ('pending', 'queued', 'sent', 'open', 'done', 'skipped', 'failed', 'cancelled')),
    due_at          BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    decision        TEXT,
    reason          TEXT,
    until_at        BIGINT,
    decided_at      BIGINT,
    deferrals       BIGINT NOT NULL DEFAULT 0,
    admitted_at     BIGINT,
    probability     DOUBLE PRECISION,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    leased          BOOLEAN NOT NULL DEFAULT FALSE,
    last_error      TEXT,
    sent_at         BIGINT,
    title           TEXT,
    minutes         BIGINT,
    completed_at    BIGINT,
    outcome         TEXT,
    note            TEXT,
    responded_at    BIGINT,
    -- The key of the address an email touch was claimed for.
    address_key     TEXT
);
CREATE INDEX touches_due ON touches (due_at) WHERE state = 'pending';
CREATE INDEX touches_dispatch ON touches (next_attempt_at) WHERE state = 'queued';
CREATE INDEX touches_tasks ON touches (state, due_at) WHERE channel = 'task';
CREATE INDEX touches_completed ON touches (completed_at) WHERE completed_at IS NOT NULL;
CREATE INDEX touches_contact_admitted ON touches (contact_id, admitted_at);
CREATE INDEX touches_enrollment ON touches (enrollment_id);
CREATE INDEX touches_admitted ON touches (admitted_at) WHERE admitted_at IS NOT NULL;
CREATE INDEX touches_capacity_held ON touches (due_at)
    WHERE state = 'pending' AND reason = 'capacity';
CREATE INDEX touches_offers_in_flight ON touches (admitted_at, probability, process_id, step)
    WHERE intent = 'offer' AND responded_at IS NULL AND admitted_at IS NOT NULL;
CREATE INDEX touches_address_key ON touches (address_key) WHERE address_key IS NOT NULL;

-- Offers made and answered per process step, for the response-rate posterior.
CREATE TABLE offer_stats (
    process_id     BIGINT NOT NULL REFERENCES processes (id),
    step           BIGINT NOT NULL,
    sent           BIGINT NOT NULL DEFAULT 0,
    responded      BIGINT NOT NULL DEFAULT 0,
    delays         BIGINT NOT NULL DEFAULT 0,
    delay_days_sum DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (process_id, step)
);

-- Small named values: the signal cursor, budget usage, open work, the install's secrets.
CREATE TABLE engine_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Work items opened (+1) and closed (-1) as the engine read them from `[work]` events.
CREATE TABLE work_log (
    id    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at    BIGINT NOT NULL,
    delta DOUBLE PRECISION NOT NULL
);
CREATE INDEX work_log_at ON work_log (at);

-- The console: people who log in, their sessions, and what they did to contacts.
CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('owner', 'staff')),
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id),
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE console_actions (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id BIGINT NOT NULL REFERENCES contacts (id),
    by_email   TEXT NOT NULL,
    action     TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT '',
    at         BIGINT NOT NULL
);
CREATE INDEX console_actions_contact ON console_actions (contact_id, at);

-- Reports about sent mail that arrive later (bounces, complaints, unsubscribe requests).
CREATE TABLE mail_feedback (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    touch_id    BIGINT,
    address_key TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);
CREATE INDEX mail_feedback_address ON mail_feedback (address_key, kind);
CREATE INDEX mail_feedback_kind ON mail_feedback (kind, created_at);
