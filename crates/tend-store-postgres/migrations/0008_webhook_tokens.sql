-- The single-use tokens of signed provider webhooks (Mailgun's), by their SHA-256, each
-- until its signature's timestamp is too old to be accepted anyway: kept in the database
-- so a replay is refused by every node and after a restart, and pruned as they expire
-- (SQLite's 0016).
CREATE TABLE webhook_tokens (
    token_hash TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX webhook_tokens_expiry ON webhook_tokens (expires_at);
