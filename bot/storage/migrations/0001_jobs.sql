-- Reason: record every /imagine job: who, where, what, BFL task, cost, result, status history.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE jobs (
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
                          'queued', 'submitting', 'generating', 'downloading', 'delivering',
                          'delivered', 'failed', 'cached', 'unknown')),
    estimated_micros  INTEGER NOT NULL CHECK (estimated_micros >= 0),
    cost_micros       INTEGER CHECK (cost_micros >= 0),  -- what BFL reported it charged
    bfl_task_id       TEXT,
    polling_url       TEXT,
    error             TEXT,                         -- short reason code when failed
    result_channel_id INTEGER,
    result_message_id INTEGER,
    created_at        INTEGER NOT NULL,             -- unix milliseconds
    updated_at        INTEGER NOT NULL
) STRICT;

CREATE INDEX jobs_unfinished ON jobs (status)
    WHERE status IN ('queued', 'submitting', 'generating', 'downloading', 'delivering');
CREATE INDEX jobs_by_member ON jobs (guild_id, user_id, created_at);

-- Every status a job passes through, with its time: written by triggers so no code path forgets.
CREATE TABLE job_events (
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    status TEXT    NOT NULL,
    at     INTEGER NOT NULL,
    detail TEXT
) STRICT;
CREATE INDEX job_events_by_job ON job_events (job_id, at);

CREATE TRIGGER jobs_first_event AFTER INSERT ON jobs BEGIN
    INSERT INTO job_events (job_id, status, at, detail) VALUES (NEW.id, NEW.status, NEW.created_at, NULL);
END;

CREATE TRIGGER jobs_status_event AFTER UPDATE OF status ON jobs WHEN NEW.status != OLD.status BEGIN
    INSERT INTO job_events (job_id, status, at, detail) VALUES (NEW.id, NEW.status, NEW.updated_at, NEW.error);
END;
