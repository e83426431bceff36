-- The random token of a dispatch claim: finishing the send must present it, so a node
-- whose lease ran out cannot record over the claim that took the touch (SQLite's 0012).
ALTER TABLE touches ADD COLUMN lease_token BIGINT;
