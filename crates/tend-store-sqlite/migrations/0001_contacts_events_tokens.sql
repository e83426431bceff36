-- Contacts, their identities, events, stage history, API tokens and suppressions.
-- Instants are INTEGER milliseconds since the Unix epoch; JSON is stored as TEXT.
-- The PostgreSQL twin of this file uses BIGINT / BIGSERIAL and JSONB with the same names.

-- AUTOINCREMENT so an erased contact's id is never handed to someone else.
CREATE TABLE contacts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT UNIQUE,
    user_id       TEXT UNIQUE,
    name          TEXT,
    timezone      TEXT,
    stage         TEXT NOT NULL,
    attributes    TEXT NOT NULL DEFAULT '{}',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    suppressed_at INTEGER,
    last_touch_at INTEGER
);
CREATE INDEX contacts_stage_id ON contacts (stage, id);

-- Segment anonymousIds seen for a contact; the first contact to claim one keeps it.
CREATE TABLE contact_aliases (
    anonymous_id TEXT PRIMARY KEY,
    contact_id   INTEGER NOT NULL REFERENCES contacts (id),
    created_at   INTEGER NOT NULL
);
CREATE INDEX contact_aliases_contact ON contact_aliases (contact_id);

-- AUTOINCREMENT here and in stage_history: the engine reads both tables in id order
-- behind a cursor, so an id must never be handed out again after an erasure.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id  TEXT NOT NULL UNIQUE,
    contact_id  INTEGER NOT NULL REFERENCES contacts (id),
    kind        TEXT NOT NULL CHECK (kind IN ('identify', 'track')),
    name        TEXT,
    properties  TEXT NOT NULL DEFAULT '{}',
    occurred_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX events_contact_occurred ON events (contact_id, occurred_at);

CREATE TABLE stage_history (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id INTEGER NOT NULL REFERENCES contacts (id),
    from_stage TEXT,
    to_stage   TEXT NOT NULL,
    reason     TEXT NOT NULL,
    -- The event that caused the change, if one did.
    message_id TEXT,
    at         INTEGER NOT NULL
);
CREATE INDEX stage_history_contact_at ON stage_history (contact_id, at);

CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    scope      TEXT NOT NULL CHECK (scope IN ('write', 'admin', 'calendar', 'metrics')),
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

-- Only a hash of the address survives an erasure, enough to recognise it if it returns.
CREATE TABLE suppressions (
    email_hash TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
