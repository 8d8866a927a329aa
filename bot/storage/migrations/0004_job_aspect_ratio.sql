-- Reason: remember the aspect ratio a job asked for, so a reroll repeats the request exactly
-- (width/height alone cannot tell 16:9 from a nearby ratio after rounding to multiples of 32).

ALTER TABLE jobs ADD COLUMN aspect_ratio TEXT;
