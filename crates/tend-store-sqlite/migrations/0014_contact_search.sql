-- Contacts are found by the start of any word of their address or name (`smi` finds
-- Ann Smith, `rossi` finds ann.rossi@…), through a full-text index kept in step with
-- `contacts` by triggers, instead of a LIKE '%…%' that reads every contact. An
-- erasure merges the index (`optimize`), so no page of it keeps the erased name; the
-- index stays in the file format older SQLite tools (Debian's sqlite3) can read.
CREATE VIRTUAL TABLE contacts_search USING fts5(
    email, name,
    content = 'contacts', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO contacts_search (contacts_search) VALUES ('rebuild');

CREATE TRIGGER contacts_search_insert AFTER INSERT ON contacts BEGIN
    INSERT INTO contacts_search (rowid, email, name) VALUES (new.id, new.email, new.name);
END;

CREATE TRIGGER contacts_search_delete AFTER DELETE ON contacts BEGIN
    INSERT INTO contacts_search (contacts_search, rowid, email, name)
    VALUES ('delete', old.id, old.email, old.name);
END;

-- Ingest rewrites whole rows; only a changed address or name touches the index.
CREATE TRIGGER contacts_search_update AFTER UPDATE OF email, name ON contacts
WHEN old.email IS NOT new.email OR old.name IS NOT new.name BEGIN
    INSERT INTO contacts_search (contacts_search, rowid, email, name)
    VALUES ('delete', old.id, old.email, old.name);
    INSERT INTO contacts_search (rowid, email, name) VALUES (new.id, new.email, new.name);
END;
