-- Reason: Details says whether the posted file is BFL's original (with its signed C2PA provenance) or a
-- re-encoded copy that lost it, and why (issue 21 item 7). Recorded when the result is posted:
-- 'original', or 'reencoded: <why>'; NULL until then (and for results posted before this column).

ALTER TABLE jobs ADD COLUMN result_file TEXT;
