-- Reason: edits, variations and the buttons under results (issue 9).
--
-- An edit's input images travel in jobs.params (the BFL payload, base64), so a restart can still submit
-- them; this table only says where they came from: the kind of request, the Discord URL of the source
-- image (the result card's thumbnail and link; Discord's CDN links expire, so nothing depends on it)
-- and the earlier job a Vary/Edit/Reroll works on. A result removed with Delete is remembered here too.

-- Written just before admission (the job id is the interaction id), so no foreign key: a refused
-- admission deletes its row, and a trigger removes it with its job.
CREATE TABLE job_sources (
    job_id        INTEGER PRIMARY KEY,
    kind          TEXT    NOT NULL CHECK (kind IN ('edit', 'vary', 'reroll')),
    source_url    TEXT,                         -- the source image (an attachment or an earlier result)
    source_job_id INTEGER                       -- the job whose result this one works on, if any
) STRICT;

CREATE TABLE job_deletions (
    job_id     INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    deleted_by INTEGER NOT NULL,                -- the requester or a moderator
    deleted_at INTEGER NOT NULL                 -- unix milliseconds
) STRICT;

CREATE TRIGGER job_sources_follow_jobs AFTER DELETE ON jobs BEGIN
    DELETE FROM job_sources WHERE job_id = OLD.id;
END;
