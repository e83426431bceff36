-- Reports from counters kept on write, not from every contact, every stage change of
-- the period and every customer's touches (PostgreSQL's 0013). Triggers keep them, in the same
-- transaction as the change, whichever statement makes it (ingest, import, a stage set
-- by hand or by the engine, merge, erasure, a transfer's copy).

-- Contacts per stage now.
CREATE TABLE stage_counts (
    stage    TEXT PRIMARY KEY,
    contacts INTEGER NOT NULL
) WITHOUT ROWID;

-- Stage changes per hour (`at / 3600000`) and move; `from_stage` is '' for a contact's
-- first stage (NULL in stage_history, and NULL cannot be part of a key).
CREATE TABLE stage_moves_hourly (
    hour       INTEGER NOT NULL,
    from_stage TEXT NOT NULL,
    to_stage   TEXT NOT NULL,
    moves      INTEGER NOT NULL,
    PRIMARY KEY (hour, from_stage, to_stage)
) WITHOUT ROWID;

INSERT INTO stage_counts (stage, contacts)
    SELECT stage, COUNT(*) FROM contacts GROUP BY stage;

INSERT INTO stage_moves_hourly (hour, from_stage, to_stage, moves)
    SELECT at / 3600000, COALESCE(from_stage, ''), to_stage, COUNT(*)
    FROM stage_history GROUP BY at / 3600000, COALESCE(from_stage, ''), to_stage;

CREATE TRIGGER stage_counts_insert AFTER INSERT ON contacts
BEGIN
    INSERT INTO stage_counts (stage, contacts) VALUES (NEW.stage, 1)
        ON CONFLICT (stage) DO UPDATE SET contacts = contacts + 1;
END;

CREATE TRIGGER stage_counts_update AFTER UPDATE OF stage ON contacts
    WHEN NEW.stage IS NOT OLD.stage
BEGIN
    UPDATE stage_counts SET contacts = contacts - 1 WHERE stage = OLD.stage;
    INSERT INTO stage_counts (stage, contacts) VALUES (NEW.stage, 1)
        ON CONFLICT (stage) DO UPDATE SET contacts = contacts + 1;
END;

CREATE TRIGGER stage_counts_delete AFTER DELETE ON contacts
BEGIN
    UPDATE stage_counts SET contacts = contacts - 1 WHERE stage = OLD.stage;
END;

CREATE TRIGGER stage_moves_insert AFTER INSERT ON stage_history
BEGIN
    INSERT INTO stage_moves_hourly (hour, from_stage, to_stage, moves)
        VALUES (NEW.at / 3600000, COALESCE(NEW.from_stage, ''), NEW.to_stage, 1)
        ON CONFLICT (hour, from_stage, to_stage) DO UPDATE SET moves = moves + 1;
END;

CREATE TRIGGER stage_moves_update AFTER UPDATE OF at, from_stage, to_stage ON stage_history
BEGIN
    UPDATE stage_moves_hourly SET moves = moves - 1
        WHERE hour = OLD.at / 3600000 AND from_stage = COALESCE(OLD.from_stage, '')
        AND to_stage = OLD.to_stage;
    INSERT INTO stage_moves_hourly (hour, from_stage, to_stage, moves)
        VALUES (NEW.at / 3600000, COALESCE(NEW.from_stage, ''), NEW.to_stage, 1)
        ON CONFLICT (hour, from_stage, to_stage) DO UPDATE SET moves = moves + 1;
END;

CREATE TRIGGER stage_moves_delete AFTER DELETE ON stage_history
BEGIN
    UPDATE stage_moves_hourly SET moves = moves - 1
        WHERE hour = OLD.at / 3600000 AND from_stage = COALESCE(OLD.from_stage, '')
        AND to_stage = OLD.to_stage;
END;

-- Touches to conversion: each contact's first entry into each stage, with the touches
-- admitted to it until then, so the report groups one index range instead of probing
-- the touches of every contact who converted. `touches` always equals
-- `COUNT(*) FROM touches WHERE contact_id = … AND admitted_at <= at`: a change to the
-- history recounts the pair, a touch admitted, moved or deleted adds or takes one.
CREATE TABLE stage_firsts (
    contact_id INTEGER NOT NULL,
    stage      TEXT NOT NULL,
    at         INTEGER NOT NULL,
    touches    INTEGER NOT NULL,
    PRIMARY KEY (contact_id, stage)
) WITHOUT ROWID;
CREATE INDEX stage_firsts_touches ON stage_firsts (stage, touches);

INSERT INTO stage_firsts (contact_id, stage, at, touches)
    SELECT f.contact_id, f.stage, f.at,
        (SELECT COUNT(*) FROM touches t WHERE t.contact_id = f.contact_id
         AND t.admitted_at IS NOT NULL AND t.admitted_at <= f.at)
    FROM (SELECT contact_id, to_stage AS stage, MIN(at) AS at FROM stage_history
          GROUP BY contact_id, to_stage) f;

CREATE TRIGGER stage_firsts_history_insert AFTER INSERT ON stage_history
BEGIN
    INSERT INTO stage_firsts (contact_id, stage, at, touches)
        VALUES (NEW.contact_id, NEW.to_stage, NEW.at,
            (SELECT COUNT(*) FROM touches t WHERE t.contact_id = NEW.contact_id
             AND t.admitted_at IS NOT NULL AND t.admitted_at <= NEW.at))
        ON CONFLICT (contact_id, stage) DO UPDATE SET at = excluded.at,
            touches = excluded.touches
        WHERE excluded.at < stage_firsts.at;
END;

CREATE TRIGGER stage_firsts_history_delete AFTER DELETE ON stage_history
BEGIN
    DELETE FROM stage_firsts WHERE contact_id = OLD.contact_id AND stage = OLD.to_stage;
    INSERT INTO stage_firsts (contact_id, stage, at, touches)
        SELECT OLD.contact_id, OLD.to_stage, f.at,
            (SELECT COUNT(*) FROM touches t WHERE t.contact_id = OLD.contact_id
             AND t.admitted_at IS NOT NULL AND t.admitted_at <= f.at)
        FROM (SELECT MIN(at) AS at FROM stage_history
              WHERE contact_id = OLD.contact_id AND to_stage = OLD.to_stage) f
        WHERE f.at IS NOT NULL;
END;

-- A merge moves the history to the surviving contact.
CREATE TRIGGER stage_firsts_history_update AFTER UPDATE OF contact_id, to_stage, at
    ON stage_history
BEGIN
    DELETE FROM stage_firsts WHERE contact_id = OLD.contact_id AND stage = OLD.to_stage;
    INSERT INTO stage_firsts (contact_id, stage, at, touches)
        SELECT OLD.contact_id, OLD.to_stage, f.at,
            (SELECT COUNT(*) FROM touches t WHERE t.contact_id = OLD.contact_id
             AND t.admitted_at IS NOT NULL AND t.admitted_at <= f.at)
        FROM (SELECT MIN(at) AS at FROM stage_history
              WHERE contact_id = OLD.contact_id AND to_stage = OLD.to_stage) f
        WHERE f.at IS NOT NULL;
    DELETE FROM stage_firsts WHERE contact_id = NEW.contact_id AND stage = NEW.to_stage;
    INSERT INTO stage_firsts (contact_id, stage, at, touches)
        SELECT NEW.contact_id, NEW.to_stage, f.at,
            (SELECT COUNT(*) FROM touches t WHERE t.contact_id = NEW.contact_id
             AND t.admitted_at IS NOT NULL AND t.admitted_at <= f.at)
        FROM (SELECT MIN(at) AS at FROM stage_history
              WHERE contact_id = NEW.contact_id AND to_stage = NEW.to_stage) f
        WHERE f.at IS NOT NULL;
END;

CREATE TRIGGER stage_firsts_touch_insert AFTER INSERT ON touches
    WHEN NEW.admitted_at IS NOT NULL
BEGIN
    UPDATE stage_firsts SET touches = touches + 1
        WHERE contact_id = NEW.contact_id AND at >= NEW.admitted_at;
END;

CREATE TRIGGER stage_firsts_touch_update AFTER UPDATE OF contact_id, admitted_at ON touches
    WHEN OLD.contact_id IS NOT NEW.contact_id OR OLD.admitted_at IS NOT NEW.admitted_at
BEGIN
    UPDATE stage_firsts SET touches = touches - 1
        WHERE OLD.admitted_at IS NOT NULL AND contact_id = OLD.contact_id
        AND at >= OLD.admitted_at;
    UPDATE stage_firsts SET touches = touches + 1
        WHERE NEW.admitted_at IS NOT NULL AND contact_id = NEW.contact_id
        AND at >= NEW.admitted_at;
END;

CREATE TRIGGER stage_firsts_touch_delete AFTER DELETE ON touches
    WHEN OLD.admitted_at IS NOT NULL
BEGIN
    UPDATE stage_firsts SET touches = touches - 1
        WHERE contact_id = OLD.contact_id AND at >= OLD.admitted_at;
END;

-- Today's pace counts the enrollments paused by hand per process from an index of
-- them alone, not by looking up every active enrollment's row.
CREATE INDEX enrollments_paused ON enrollments (process_id)
    WHERE state = 'active' AND paused_at IS NOT NULL;
