-- Reports about sent mail that arrive later: bounce reports, complaints and unsubscribe
-- requests from the bounce mailbox, and the same from email providers' webhooks. One row
-- per report, so a report read twice (a mailbox polled again, a webhook retried) counts
-- once, soft bounces can be counted per address, and complaints shown on /api/pace.
CREATE TABLE mail_feedback (
    id          INTEGER PRIMARY KEY,
    -- Where the report came from and its own id there (`imap:<Message-ID>`,
    -- `postmark:<ID>`...): the same report is recorded once.
    source      TEXT NOT NULL UNIQUE,
    -- `hard_bounce`, `soft_bounce`, `complaint` or `unsubscribe`.
    kind        TEXT NOT NULL,
    -- The touch the report is about, when it names one.
    touch_id    INTEGER,
    -- The key of the address it is about (see 0006).
    address_key TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);
CREATE INDEX mail_feedback_address ON mail_feedback (address_key, kind);
CREATE INDEX mail_feedback_kind ON mail_feedback (kind, created_at);
