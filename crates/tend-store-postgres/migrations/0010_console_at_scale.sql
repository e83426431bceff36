-- The console at 100,000 contacts and 1,000,000 events: each page reads an index range
-- bounded by what it shows, not every row (SQLite's 0018).

-- Today's next 7 days reads when each pending touch falls due and what it spends from
-- the index alone (an index-only scan); the engine's scan by due time uses it as before.
DROP INDEX touches_due;
CREATE INDEX touches_due ON touches (due_at) INCLUDE (until_at, channel, process_id, step)
    WHERE state = 'pending';

-- The pace's touches held back, by reason, counted in the index.
CREATE INDEX touches_held ON touches (reason) WHERE state = 'pending' AND reason IS NOT NULL;

-- Deliveries, newest first, one state at a time: the newest end of a state's range, so
-- a filter that matches little reads little.
CREATE INDEX touches_sent ON touches (state, id)
    WHERE channel IN ('email', 'webhook') AND state IN ('sent', 'failed', 'queued');

-- The funnel's moves in a period: a range of this index instead of the whole history.
CREATE INDEX stage_history_at ON stage_history (at) INCLUDE (from_stage, to_stage);

-- Today's neglect list reads the enrollments closest to their `max_gap` deadline from
-- an index instead of every active enrollment. The deadline runs from the later of the
-- enrollment and the contact's last touch; that start is kept on the enrollment, by
-- triggers, since an index cannot reach into contacts.
ALTER TABLE enrollments ADD COLUMN quiet_since BIGINT;

UPDATE enrollments e SET quiet_since = GREATEST(e.enrolled_at,
    (SELECT c.last_touch_at FROM contacts c WHERE c.id = e.contact_id));

CREATE INDEX enrollments_neglect ON enrollments (process_id, quiet_since, id)
    WHERE state = 'active';

CREATE FUNCTION tend_enrollment_quiet_since() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- GREATEST skips a NULL: a contact never touched counts from the enrollment.
    NEW.quiet_since := GREATEST(NEW.enrolled_at,
        (SELECT c.last_touch_at FROM contacts c WHERE c.id = NEW.contact_id));
    RETURN NEW;
END;
$$;

-- On insert, and when a merge moves an enrollment to the surviving contact.
CREATE TRIGGER enrollments_quiet_since BEFORE INSERT OR UPDATE OF contact_id, enrolled_at
    ON enrollments FOR EACH ROW EXECUTE FUNCTION tend_enrollment_quiet_since();

CREATE FUNCTION tend_contact_quiet_since() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE enrollments SET quiet_since = GREATEST(enrolled_at, NEW.last_touch_at)
    WHERE contact_id = NEW.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER contacts_last_touch_quiet_since AFTER UPDATE OF last_touch_at ON contacts
    FOR EACH ROW WHEN (NEW.last_touch_at IS DISTINCT FROM OLD.last_touch_at)
    EXECUTE FUNCTION tend_contact_quiet_since();
