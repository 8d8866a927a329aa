-- Reason: edits, variations and the buttons under results (issue 9).
-- PostgreSQL version of migrations/0007_edits.sql.

CREATE TABLE job_sources (
    job_id        BIGINT PRIMARY KEY,
    kind          TEXT   NOT NULL CHECK (kind IN ('edit', 'vary', 'reroll')),
    source_url    TEXT,
    source_job_id BIGINT
);

CREATE TABLE job_deletions (
    job_id     BIGINT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    deleted_by BIGINT NOT NULL,
    deleted_at BIGINT NOT NULL
);

CREATE FUNCTION job_sources_follow_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_sources WHERE job_id = OLD.id;
    RETURN NULL;
END $$;
CREATE TRIGGER job_sources_follow_jobs AFTER DELETE ON jobs FOR EACH ROW EXECUTE FUNCTION job_sources_follow_jobs();
