-- Reason: intentionally empty. Version 8 was first released as an empty placeholder named
-- 0008_multiprocess.sql, so databases already record it as applied; it stays a no-op. The change that
-- name announced is 0011_multiprocess.sql. Renamed (same number) so the name no longer suggests a change;
-- databases store only the version, so old ones upgrade unchanged (tests/bot/storage/test_placeholders.py).
SELECT 1;
