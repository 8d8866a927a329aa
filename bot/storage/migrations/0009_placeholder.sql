-- Reason: intentionally empty. Version 9 was first released as an empty placeholder named
-- 0009_job_groups.sql, so databases already record it as applied; it stays a no-op. The change that
-- name announced is 0012_job_groups.sql. Renamed (same number) so the name no longer suggests a change;
-- databases store only the version, so old ones upgrade unchanged (tests/bot/storage/test_placeholders.py).
SELECT 1;
