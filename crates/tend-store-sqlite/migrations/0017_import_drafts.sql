-- Uploaded contact lists between the console's preview and their confirmation: kept in
-- the database (not one server's memory) so a restart does not lose them. Expired
-- drafts are deleted on every use; an imported draft keeps its counts, not its bytes.
CREATE TABLE import_drafts (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    file_name TEXT NOT NULL,
    bytes BLOB NOT NULL,
    uploaded_at INTEGER NOT NULL,
    importing_since INTEGER,
    inserted INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    rejected INTEGER NOT NULL DEFAULT 0,
    enroll TEXT,
    imported_at INTEGER
);
CREATE INDEX import_drafts_uploaded ON import_drafts (uploaded_at);
