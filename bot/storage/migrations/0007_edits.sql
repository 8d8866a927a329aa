-- Reason: reserved for 0007_edits (filled in by the same change that uses it).
SELECT 1;
