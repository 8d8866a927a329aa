-- Reason: intentionally empty. This number landed as a placeholder, so databases already record it
-- as applied; it stays a no-op, and the changes it was reserved for are in later migrations.
SELECT 1;
