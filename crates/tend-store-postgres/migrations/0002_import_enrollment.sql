-- How a stage change enrolls the contact in the processes that enroll on its stage.
-- Every change enrolls when the engine reads it, except those an import records with
-- `tend import contacts --enroll spread:DURATION` or `--enroll none`:
-- `enrolls = false` enrolls nobody; `enroll_not_before` (milliseconds) starts the
-- enrollment at that instant, so a long list's first touches spread over days.
ALTER TABLE stage_history ADD COLUMN enrolls BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE stage_history ADD COLUMN enroll_not_before BIGINT;
