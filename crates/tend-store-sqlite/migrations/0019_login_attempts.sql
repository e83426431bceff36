-- Console logins not known to have succeeded, once per key they count against (the
-- account, the client's address), for the login rate limit: in the database so every
-- node counts the same attempts and a restart forgets none. A right password deletes
-- its attempt's rows; rows older than the window are pruned as attempts are claimed.
CREATE TABLE login_attempts (
    key TEXT NOT NULL,
    at INTEGER NOT NULL,
    attempt TEXT NOT NULL
);
CREATE INDEX login_attempts_key ON login_attempts (key, at);
CREATE INDEX login_attempts_attempt ON login_attempts (attempt);
CREATE INDEX login_attempts_at ON login_attempts (at);
