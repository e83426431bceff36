-- Uploaded contact lists between the console's preview and their confirmation: kept in
-- the database so the confirmation may reach any node (SQLite's 0017). Expired drafts
-- are deleted on every use; an imported draft keeps its counts, not its bytes.
CREATE TABLE import_drafts (
    id TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    file_name TEXT NOT NULL,
    bytes BYTEA NOT NULL,
    uploaded_at BIGINT NOT NULL,
    importing_since BIGINT,
    inserted BIGINT NOT NULL DEFAULT 0,
    updated BIGINT NOT NULL DEFAULT 0,
    unchanged BIGINT NOT NULL DEFAULT 0,
    rejected BIGINT NOT NULL DEFAULT 0,
    enroll TEXT,
    imported_at BIGINT
);
CREATE INDEX import_drafts_uploaded ON import_drafts (uploaded_at);
