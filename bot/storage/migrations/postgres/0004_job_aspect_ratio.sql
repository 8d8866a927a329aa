-- Reason: remember the aspect ratio a job asked for, so a reroll repeats the request exactly.
-- PostgreSQL version of migrations/0004_job_aspect_ratio.sql.

ALTER TABLE jobs ADD COLUMN aspect_ratio TEXT;
