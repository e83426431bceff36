-- Console logins not known to have succeeded, once per key they count against (the
-- account, the client's address), for the login rate limit: in the database so every
-- node counts the same attempts and a restart forgets none (SQLite's 0019).
CREATE TABLE login_attempts (
    key TEXT NOT NULL,
    at BIGINT NOT NULL,
    attempt TEXT NOT NULL
);
CREATE INDEX login_attempts_key ON login_attempts (key, at);
CREATE INDEX login_attempts_attempt ON login_attempts (attempt);
CREATE INDEX login_attempts_at ON login_attempts (at);
