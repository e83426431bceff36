-- The console: people who log in, their sessions, and what they did to contacts.

-- A person of the business; `password_hash` is an argon2id PHC string.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('owner', 'staff')),
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

-- A logged-in browser. Only the SHA-256 of the cookie's value is kept; `csrf` is the
-- token every form of the session must send back.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- What a person did to a contact from the console, shown in the contact's timeline.
CREATE TABLE console_actions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id INTEGER NOT NULL REFERENCES contacts (id),
    by_email   TEXT NOT NULL,
    action     TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT '',
    at         INTEGER NOT NULL
);
CREATE INDEX console_actions_contact ON console_actions (contact_id, at);

-- A paused enrollment keeps its place; its pending touch waits until it is resumed.
ALTER TABLE enrollments ADD COLUMN paused_at INTEGER;
