-- The event or stage change that started each enrollment, so the payloads of its
-- webhooks can say what happened. No foreign keys: an erasure deletes the person's
-- events and history, and the enrollment then has no trigger to show.
ALTER TABLE enrollments ADD COLUMN trigger_event_id INTEGER;
ALTER TABLE enrollments ADD COLUMN trigger_stage_change_id INTEGER;
