-- Suppression belongs to the address. Records are keyed by HMAC-SHA256 of the normalised
-- address under the install's secret (`engine_state.unsubscribe_key`), not by a bare
-- hash that anyone could test a guessed address against.

-- Bare SHA-256 records written by earlier releases. The migration re-keys those whose
-- address is still on a contact; the others (erased people) cannot be re-keyed without
-- the address, so they stay here and are still checked.
ALTER TABLE suppressions RENAME TO legacy_suppressions;

CREATE TABLE suppressions (
    address_key TEXT PRIMARY KEY,
    -- `unsubscribed`, `bounced`, `erased` or `suppressed` (a contact suppressed before
    -- addresses were).
    reason      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- The key of the address an email touch was claimed for: an unsubscribe link names an
-- address, and this finds the records it was mailed to, merges included.
ALTER TABLE touches ADD COLUMN address_key TEXT;
CREATE INDEX touches_address_key ON touches (address_key) WHERE address_key IS NOT NULL;

-- The install's secrets are made with the schema, so that a missing one later is an
-- error to report, never a reason to make a new one (which would break every
-- unsubscribe link already mailed).
INSERT INTO engine_state (key, value)
    SELECT 'unsubscribe_key', lower(hex(randomblob(32)))
    WHERE NOT EXISTS (SELECT 1 FROM engine_state WHERE key = 'unsubscribe_key');
INSERT INTO engine_state (key, value)
    SELECT 'instance_id', lower(hex(randomblob(6)))
    WHERE NOT EXISTS (SELECT 1 FROM engine_state WHERE key = 'instance_id');
