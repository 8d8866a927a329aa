-- Reason: jobs become durable state machines and the jobs table becomes the queue (issue 8).
--
-- New state 'cancelled'; 'cached' now means "served from the cache, being delivered" (its 0 µ$
-- reservation is still open) instead of a finished job, so old 'cached' rows become 'delivered'.
-- New columns carry what a job needs to run without the interaction that created it: the
-- interaction's application id and token (to edit its message after a restart, cleared once the job
-- ends), whether it was acknowledged, the upload limit, BFL timings, the result URL and the stage BFL
-- reports. SQLite cannot change a CHECK constraint in place, so jobs and job_events are rebuilt.

CREATE TABLE jobs_v5 (
    id                INTEGER PRIMARY KEY,          -- the Discord interaction id: one job per request
    guild_id          INTEGER NOT NULL,
    channel_id        INTEGER NOT NULL,
    user_id           INTEGER NOT NULL,
    model             TEXT    NOT NULL,
    prompt            TEXT    NOT NULL,
    params            TEXT    NOT NULL,             -- JSON body sent to BFL (no secrets in it)
    seed              INTEGER NOT NULL,
    width             INTEGER NOT NULL,
    height            INTEGER NOT NULL,
    cache_key         TEXT    NOT NULL,
    status            TEXT    NOT NULL CHECK (status IN (
                          'queued', 'submitting', 'generating', 'downloading', 'delivering', 'cached',
                          'delivered', 'cancelled', 'failed', 'unknown')),
    estimated_micros  INTEGER NOT NULL CHECK (estimated_micros >= 0),
    cost_micros       INTEGER CHECK (cost_micros >= 0),  -- what BFL reported it charged
    bfl_task_id       TEXT,
    polling_url       TEXT,
    error             TEXT,                         -- short reason code when failed
    result_channel_id INTEGER,
    result_message_id INTEGER,
    created_at        INTEGER NOT NULL,             -- unix milliseconds
    updated_at        INTEGER NOT NULL,
    aspect_ratio      TEXT,
    acked             INTEGER NOT NULL DEFAULT 1 CHECK (acked IN (0, 1)),  -- the interaction was answered
    application_id    INTEGER,
    interaction_token TEXT,                         -- valid 15 minutes; erased when the job ends
    upload_limit      INTEGER NOT NULL DEFAULT 10485760,
    submitted_at      INTEGER,                      -- BFL accepted the task (unix ms)
    ready_at          INTEGER,                      -- a poll saw a terminal status (unix ms)
    sample_url        TEXT,                         -- the signed result URL (expires: its se= parameter)
    bfl_stage         TEXT,                         -- the last status BFL reported (Pending, Reasoning, …)
    expanded_prompt   TEXT                          -- FLUX 3: the prompt as the model expanded it
) STRICT;

INSERT INTO jobs_v5 (id, guild_id, channel_id, user_id, model, prompt, params, seed, width, height, cache_key,
                     status, estimated_micros, cost_micros, bfl_task_id, polling_url, error, result_channel_id,
                     result_message_id, created_at, updated_at, aspect_ratio)
SELECT id, guild_id, channel_id, user_id, model, prompt, params, seed, width, height, cache_key,
       CASE status WHEN 'cached' THEN 'delivered' ELSE status END, estimated_micros, cost_micros, bfl_task_id,
       polling_url, error, result_channel_id, result_message_id, created_at, updated_at, aspect_ratio
FROM jobs;

CREATE TABLE job_events_v5 (
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    status TEXT    NOT NULL,
    at     INTEGER NOT NULL,
    detail TEXT
) STRICT;
INSERT INTO job_events_v5 SELECT job_id, status, at, detail FROM job_events;

-- The child table goes first, so dropping the parent cascades into nothing.
DROP TABLE job_events;
DROP TABLE jobs;
ALTER TABLE jobs_v5 RENAME TO jobs;
ALTER TABLE job_events_v5 RENAME TO job_events;

CREATE INDEX jobs_open ON jobs (status)
    WHERE status IN ('queued', 'submitting', 'generating', 'downloading', 'delivering', 'cached');
CREATE INDEX jobs_by_member ON jobs (guild_id, user_id, created_at);
CREATE INDEX job_events_by_job ON job_events (job_id, at);

CREATE TRIGGER jobs_first_event AFTER INSERT ON jobs BEGIN
    INSERT INTO job_events (job_id, status, at, detail) VALUES (NEW.id, NEW.status, NEW.created_at, NULL);
END;

CREATE TRIGGER jobs_status_event AFTER UPDATE OF status ON jobs WHEN NEW.status != OLD.status BEGIN
    INSERT INTO job_events (job_id, status, at, detail) VALUES (NEW.id, NEW.status, NEW.updated_at, NEW.error);
END;

-- Fair scheduling: each server's turn number; the server served longest ago goes first.
CREATE TABLE guild_turns (
    guild_id INTEGER PRIMARY KEY,
    turn     INTEGER NOT NULL
) STRICT;

CREATE TRIGGER jobs_claim_turn AFTER UPDATE OF status ON jobs
    WHEN NEW.status = 'submitting' AND OLD.status = 'queued' BEGIN
    INSERT INTO guild_turns (guild_id, turn)
        VALUES (NEW.guild_id, (SELECT COALESCE(MAX(turn), 0) + 1 FROM guild_turns))
    ON CONFLICT (guild_id) DO UPDATE SET turn = excluded.turn;
END;

-- Observed BFL latencies (submit accepted → terminal status), per model, for adaptive polling.
CREATE TABLE model_latency (
    id      INTEGER PRIMARY KEY,
    model   TEXT    NOT NULL,
    seconds REAL    NOT NULL CHECK (seconds >= 0),
    at      INTEGER NOT NULL
) STRICT;
CREATE INDEX model_latency_by_model ON model_latency (model, id);
