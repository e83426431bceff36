-- The single-use tokens of signed provider webhooks (Mailgun's), by their SHA-256, each
-- until its signature's timestamp is too old to be accepted anyway: kept in the database
-- so a replay is refused after a restart and by every node, and pruned as they expire.
CREATE TABLE webhook_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX webhook_tokens_expiry ON webhook_tokens (expires_at);
