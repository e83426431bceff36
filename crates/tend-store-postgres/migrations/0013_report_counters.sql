-- Reports from counters kept on write, not from every contact, every stage change of
-- the period and every customer's touches (SQLite's 0020). Triggers keep them in the same
-- transaction as the change, whichever statement makes it (ingest, import, a stage set
-- by hand or by the engine, merge, erasure, a transfer's copy).
--
-- A counter row updated by every transaction that creates a contact would make
-- concurrent ingest wait on it, and updating one row thousands of times in one
-- transaction costs more each time (every version stays until the commit). So each
-- change is appended to a change table (appends never wait on each other), and once per
-- transaction, just before it commits, a deferred trigger folds its changes into the
-- counters: one row per stage (and per hour and move) and per shard, the shard chosen
-- by the connection, so concurrent commits rarely touch the same row, and then only
-- for the moment between the fold and the commit.

-- Contacts per stage now, summed over the shards.
CREATE TABLE stage_counts (
    stage    TEXT NOT NULL,
    shard    INTEGER NOT NULL,
    contacts BIGINT NOT NULL,
    PRIMARY KEY (stage, shard)
);

-- Stage changes per hour (`at / 3600000`) and move, summed over the shards;
-- `from_stage` is '' for a contact's first stage (NULL cannot be part of a key).
CREATE TABLE stage_moves_hourly (
    hour       BIGINT NOT NULL,
    from_stage TEXT NOT NULL,
    to_stage   TEXT NOT NULL,
    shard      INTEGER NOT NULL,
    moves      BIGINT NOT NULL,
    PRIMARY KEY (hour, from_stage, to_stage, shard)
);

-- Changes not folded yet: only ever the running transactions' own.
CREATE TABLE stage_count_changes (
    stage TEXT NOT NULL,
    delta INTEGER NOT NULL
);
CREATE TABLE stage_move_changes (
    hour       BIGINT NOT NULL,
    from_stage TEXT NOT NULL,
    to_stage   TEXT NOT NULL,
    delta      INTEGER NOT NULL
);

-- One row per transaction with changes, whose insertion sets off the fold at commit.
CREATE TABLE funnel_fold_marker (
    xact xid8 NOT NULL
);

INSERT INTO stage_counts (stage, shard, contacts)
    SELECT stage, 0, COUNT(*) FROM contacts GROUP BY stage;

INSERT INTO stage_moves_hourly (hour, from_stage, to_stage, shard, moves)
    SELECT at / 3600000, COALESCE(from_stage, ''), to_stage, 0, COUNT(*)
    FROM stage_history GROUP BY at / 3600000, COALESCE(from_stage, ''), to_stage;

-- Asks, once per transaction, for its changes to be folded at its commit.
CREATE FUNCTION tend_funnel_fold_at_commit() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('tend.funnel_fold', true) IS DISTINCT FROM pg_current_xact_id()::text THEN
        PERFORM set_config('tend.funnel_fold', pg_current_xact_id()::text, true);
        INSERT INTO funnel_fold_marker (xact) VALUES (pg_current_xact_id());
    END IF;
END $$;

-- Folds the changes into the counters, stage counts first and each in key order, so
-- two commits folding into the same shard take their row locks in the same order.
CREATE FUNCTION tend_funnel_fold() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    my_shard INTEGER := pg_backend_pid() % 16;
BEGIN
    DELETE FROM funnel_fold_marker WHERE xact = NEW.xact;
    WITH folded AS (DELETE FROM stage_count_changes RETURNING stage, delta)
    INSERT INTO stage_counts AS c (stage, shard, contacts)
        SELECT stage, my_shard, SUM(delta) FROM folded GROUP BY stage ORDER BY stage
        ON CONFLICT (stage, shard) DO UPDATE SET contacts = c.contacts + EXCLUDED.contacts;
    WITH folded AS (DELETE FROM stage_move_changes RETURNING hour, from_stage, to_stage, delta)
    INSERT INTO stage_moves_hourly AS m (hour, from_stage, to_stage, shard, moves)
        SELECT hour, from_stage, to_stage, my_shard, SUM(delta) FROM folded
        GROUP BY hour, from_stage, to_stage ORDER BY hour, from_stage, to_stage
        ON CONFLICT (hour, from_stage, to_stage, shard)
        DO UPDATE SET moves = m.moves + EXCLUDED.moves;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER funnel_fold AFTER INSERT ON funnel_fold_marker
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tend_funnel_fold();

CREATE FUNCTION tend_stage_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO stage_count_changes (stage, delta) VALUES (OLD.stage, -1);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO stage_count_changes (stage, delta) VALUES (NEW.stage, 1);
    END IF;
    PERFORM tend_funnel_fold_at_commit();
    RETURN NULL;
END $$;

CREATE TRIGGER contacts_stage_counts AFTER INSERT OR DELETE ON contacts
    FOR EACH ROW EXECUTE FUNCTION tend_stage_count_change();
CREATE TRIGGER contacts_stage_counts_update AFTER UPDATE OF stage ON contacts
    FOR EACH ROW WHEN (OLD.stage IS DISTINCT FROM NEW.stage)
    EXECUTE FUNCTION tend_stage_count_change();

CREATE FUNCTION tend_stage_move_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO stage_move_changes (hour, from_stage, to_stage, delta)
            VALUES (OLD.at / 3600000, COALESCE(OLD.from_stage, ''), OLD.to_stage, -1);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO stage_move_changes (hour, from_stage, to_stage, delta)
            VALUES (NEW.at / 3600000, COALESCE(NEW.from_stage, ''), NEW.to_stage, 1);
    END IF;
    PERFORM tend_funnel_fold_at_commit();
    RETURN NULL;
END $$;

CREATE TRIGGER stage_history_moves AFTER INSERT OR DELETE ON stage_history
    FOR EACH ROW EXECUTE FUNCTION tend_stage_move_change();
CREATE TRIGGER stage_history_moves_update AFTER UPDATE OF at, from_stage, to_stage
    ON stage_history FOR EACH ROW
    WHEN (OLD.at IS DISTINCT FROM NEW.at OR OLD.from_stage IS DISTINCT FROM NEW.from_stage
          OR OLD.to_stage IS DISTINCT FROM NEW.to_stage)
    EXECUTE FUNCTION tend_stage_move_change();

-- Touches to conversion: each contact's first entry into each stage, with the touches
-- admitted to it until then, so the report groups one index range instead of probing
-- the touches of every contact who converted. `touches` always equals
-- `COUNT(*) FROM touches WHERE contact_id = … AND admitted_at <= at`: a change to the
-- history recounts the pair, a touch admitted, moved or deleted adds or takes one.
-- One row per contact, so concurrent writers of different contacts never meet here.
CREATE TABLE stage_firsts (
    contact_id BIGINT NOT NULL,
    stage      TEXT NOT NULL,
    at         BIGINT NOT NULL,
    touches    BIGINT NOT NULL,
    PRIMARY KEY (contact_id, stage)
);
CREATE INDEX stage_firsts_touches ON stage_firsts (stage, touches);

INSERT INTO stage_firsts (contact_id, stage, at, touches)
    SELECT f.contact_id, f.stage, f.at,
        (SELECT COUNT(*) FROM touches t WHERE t.contact_id = f.contact_id
         AND t.admitted_at IS NOT NULL AND t.admitted_at <= f.at)
    FROM (SELECT contact_id, to_stage AS stage, MIN(at) AS at FROM stage_history
          GROUP BY contact_id, to_stage) f;

-- Sets the pair's row from the history and the touches as they are now.
CREATE FUNCTION tend_stage_first_recount(contact BIGINT, entered TEXT) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM stage_firsts WHERE contact_id = contact AND stage = entered;
    INSERT INTO stage_firsts (contact_id, stage, at, touches)
        SELECT contact, entered, f.at,
            (SELECT COUNT(*) FROM touches t WHERE t.contact_id = contact
             AND t.admitted_at IS NOT NULL AND t.admitted_at <= f.at)
        FROM (SELECT MIN(h.at) AS at FROM stage_history h
              WHERE h.contact_id = contact AND h.to_stage = entered) f
        WHERE f.at IS NOT NULL;
END $$;

CREATE FUNCTION tend_stage_firsts_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO stage_firsts AS s (contact_id, stage, at, touches)
            VALUES (NEW.contact_id, NEW.to_stage, NEW.at,
                (SELECT COUNT(*) FROM touches t WHERE t.contact_id = NEW.contact_id
                 AND t.admitted_at IS NOT NULL AND t.admitted_at <= NEW.at))
            ON CONFLICT (contact_id, stage) DO UPDATE SET at = EXCLUDED.at,
                touches = EXCLUDED.touches
            WHERE EXCLUDED.at < s.at;
        RETURN NULL;
    END IF;
    PERFORM tend_stage_first_recount(OLD.contact_id, OLD.to_stage);
    IF TG_OP = 'UPDATE' THEN
        PERFORM tend_stage_first_recount(NEW.contact_id, NEW.to_stage);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER stage_history_firsts AFTER INSERT OR DELETE ON stage_history
    FOR EACH ROW EXECUTE FUNCTION tend_stage_firsts_history();
-- A merge moves the history to the surviving contact.
CREATE TRIGGER stage_history_firsts_update AFTER UPDATE OF contact_id, to_stage, at
    ON stage_history FOR EACH ROW
    WHEN (OLD.contact_id IS DISTINCT FROM NEW.contact_id
          OR OLD.to_stage IS DISTINCT FROM NEW.to_stage OR OLD.at IS DISTINCT FROM NEW.at)
    EXECUTE FUNCTION tend_stage_firsts_history();

CREATE FUNCTION tend_stage_firsts_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.admitted_at IS NOT NULL THEN
        UPDATE stage_firsts SET touches = touches - 1
            WHERE contact_id = OLD.contact_id AND at >= OLD.admitted_at;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.admitted_at IS NOT NULL THEN
        UPDATE stage_firsts SET touches = touches + 1
            WHERE contact_id = NEW.contact_id AND at >= NEW.admitted_at;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER touches_stage_firsts AFTER INSERT OR DELETE ON touches
    FOR EACH ROW EXECUTE FUNCTION tend_stage_firsts_touch();
CREATE TRIGGER touches_stage_firsts_update AFTER UPDATE OF contact_id, admitted_at ON touches
    FOR EACH ROW
    WHEN (OLD.contact_id IS DISTINCT FROM NEW.contact_id
          OR OLD.admitted_at IS DISTINCT FROM NEW.admitted_at)
    EXECUTE FUNCTION tend_stage_firsts_touch();

-- Today's pace counts the enrollments paused by hand per process from an index of
-- them alone, not by looking up every active enrollment's row.
CREATE INDEX enrollments_paused ON enrollments (process_id)
    WHERE state = 'active' AND paused_at IS NOT NULL;
