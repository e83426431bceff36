-- Tokens are managed by name (`tend token revoke NAME`), so a name names one token;
-- earlier releases allowed duplicates, which keep working under a suffixed name.
UPDATE api_tokens SET name = name || '-' || id
WHERE id NOT IN (SELECT MIN(id) FROM api_tokens GROUP BY name);
CREATE UNIQUE INDEX api_tokens_name ON api_tokens (name);

-- When the token was last presented, to the minute; NULL if never.
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;
