-- Contacts are found by the start of any word of their address or name (`smi` finds
-- Ann Smith, `rossi` finds ann.rossi@…), as on SQLite (its 0012): a GIN index over
-- the words, the address cut into words at its punctuation, instead of a
-- LIKE '%…%' that reads every contact.
CREATE INDEX contacts_search ON contacts USING gin (
    to_tsvector('simple', translate(coalesce(email, ''), '@.+_-', '     ') || ' ' || coalesce(name, ''))
);
