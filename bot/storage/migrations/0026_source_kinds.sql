-- Reason: every button that carries on from a result records what it works on (issue 23: "a new entry
-- point is a mapping from the stored request and one component"; issue 26's More detail, Zoom out, Pan…).
-- The kinds are the code's (`SourceKind` in bot/engine/sources.py), so the column's CHECK, which named
-- the first three and would need a migration per new button, goes. SQLite cannot drop a CHECK: the
-- table is rebuilt, rows kept, and the trigger that follows jobs (it names the table) made again.

DROP TRIGGER job_sources_follow_jobs;

CREATE TABLE job_sources_new (
    job_id        INTEGER PRIMARY KEY,
    kind          TEXT    NOT NULL,             -- edit, vary, reroll, detail… (SourceKind)
    source_url    TEXT,                         -- the source image (an attachment or an earlier result)
    source_job_id INTEGER                       -- the job whose result this one works on, if any
) STRICT;

INSERT INTO job_sources_new (job_id, kind, source_url, source_job_id)
    SELECT job_id, kind, source_url, source_job_id FROM job_sources;
DROP TABLE job_sources;
ALTER TABLE job_sources_new RENAME TO job_sources;

CREATE TRIGGER job_sources_follow_jobs AFTER DELETE ON jobs BEGIN
    DELETE FROM job_sources WHERE job_id = OLD.id;
END;
