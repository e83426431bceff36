-- The pacer sums the expected work of unanswered offers on every decision batch; with
-- the probability in the index that sum reads the index alone, not one table row per
-- offer in flight.
DROP INDEX touches_offers_in_flight;
CREATE INDEX touches_offers_in_flight ON touches (admitted_at, probability)
    WHERE intent = 'offer' AND responded_at IS NULL AND admitted_at IS NOT NULL;
