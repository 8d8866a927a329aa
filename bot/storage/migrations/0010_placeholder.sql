-- Reason: intentionally empty. Version 10 was first released as an empty placeholder named
-- 0010_prefs_styles.sql, so databases already record it as applied; it stays a no-op. The change that
-- name announced is 0013_prefs_styles.sql. Renamed (same number) so the name no longer suggests a change;
-- databases store only the version, so old ones upgrade unchanged (tests/bot/storage/test_placeholders.py).
SELECT 1;
