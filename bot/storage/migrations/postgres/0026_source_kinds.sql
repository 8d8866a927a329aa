-- Reason: the kinds a job's source may have are the code's (`SourceKind` in bot/engine/sources.py), so
-- the CHECK that named the first three (and would need a migration per new result button) goes.
-- PostgreSQL version of migrations/0026_source_kinds.sql (which rebuilds the table: SQLite cannot drop a CHECK).

ALTER TABLE job_sources DROP CONSTRAINT job_sources_kind_check;
