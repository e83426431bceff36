-- The random token of a dispatch claim: finishing the send must present it, so a
-- dispatcher whose lease ran out cannot record over the claim that took the touch.
ALTER TABLE touches ADD COLUMN lease_token INTEGER;
