-- Reason: reserved for 0006_safety (filled in by the same change that uses it).
SELECT 1;
