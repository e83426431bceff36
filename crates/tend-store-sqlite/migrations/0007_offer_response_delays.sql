-- How long responses to each offer step take, so an unanswered offer's expected work
-- fades with the delays actually seen (issue 11). Responses recorded before this
-- migration have no delay: `delays` counts only those that do.
ALTER TABLE offer_stats ADD COLUMN delays INTEGER NOT NULL DEFAULT 0;
ALTER TABLE offer_stats ADD COLUMN delay_days_sum REAL NOT NULL DEFAULT 0;
-- The expected work of offers in flight is summed per step and day of age on every
-- decision batch; with the step in the index that still reads the index alone.
DROP INDEX touches_offers_in_flight;
CREATE INDEX touches_offers_in_flight ON touches (admitted_at, probability, process_id, step)
    WHERE intent = 'offer' AND responded_at IS NULL AND admitted_at IS NOT NULL;
