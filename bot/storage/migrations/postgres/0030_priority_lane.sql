-- Reason: the priority lane (issue 24 item 3): a per-server priority role, and the flag admission records
-- on each job. PostgreSQL version of migrations/0030_priority_lane.sql.

ALTER TABLE guild_settings ADD COLUMN priority_role_id BIGINT;
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
