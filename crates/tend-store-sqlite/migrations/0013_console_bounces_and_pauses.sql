-- Deliveries shows a send as bounced when a bounce report names it: the report is found
-- by the touch it is about (PostgreSQL's 0004).
CREATE INDEX mail_feedback_touch ON mail_feedback (touch_id) WHERE touch_id IS NOT NULL;

-- When a paused enrollment's pending touch was due (the step that follows, if it was
-- made while paused): a resume brings it back then, or at once if that has passed,
-- never earlier than the process's own waits would.
ALTER TABLE enrollments ADD COLUMN paused_due_at INTEGER;
