-- The engine's hottest statements, made cheaper without changing what they do
-- (`tests/engine_plans.rs` checks the plans). The two reads of every decision batch
-- come from their indexes alone.

-- The sum of offers in flight read each offer's table row after all: SQLite counts an
-- index as covering only if it holds every column the statement names, and the
-- statement must repeat the index's condition (`intent = 'offer' AND responded_at IS
-- NULL`) to use it at all. With both columns in the index (the same value in every
-- entry, a few bytes each) the sum reads the index alone. Offers leave the index when
-- answered, so nothing else changes it.
DROP INDEX touches_offers_in_flight;
CREATE INDEX touches_offers_in_flight
    ON touches (admitted_at, probability, process_id, step, responded_at, intent)
    WHERE intent = 'offer' AND responded_at IS NULL AND admitted_at IS NOT NULL;

-- Each paced contact's touches of the last week, with their channel (the frequency
-- limits count some channels only): the channel in the index spares a table row per
-- touch. Only a process file moving a pending step changes a touch's channel.
DROP INDEX touches_contact_admitted;
CREATE INDEX touches_contact_admitted ON touches (contact_id, admitted_at, channel);

-- Every insert and change of state tests a touch against this index's condition, and
-- SQLite tests a list of three or more values through a temporary table it builds and
-- drops for each statement run. The same condition as comparisons; the console's
-- queries, which name one state each, still read it.
DROP INDEX touches_sent;
CREATE INDEX touches_sent ON touches (state, id)
    WHERE channel IN ('email', 'webhook')
    AND (state = 'sent' OR state = 'failed' OR state = 'queued');
