-- Offers held back by capacity are made due again whenever work closes; this keeps
-- finding them from walking every pending touch.
CREATE INDEX touches_capacity_held ON touches (due_at)
    WHERE state = 'pending' AND reason = 'capacity';
