-- Reason: PostgreSQL version of migrations/0011_multiprocess.sql (job holders and process leases for
-- several bot processes on one database); BIGINT for pids and times.

ALTER TABLE jobs ADD COLUMN claimed_by TEXT;
CREATE INDEX jobs_claimed_by ON jobs (claimed_by);

CREATE TABLE processes (
    id               TEXT    PRIMARY KEY,
    role             TEXT    NOT NULL CHECK (role IN ('bot', 'worker')),
    host             TEXT    NOT NULL,
    pid              BIGINT  NOT NULL,
    started_at       BIGINT  NOT NULL,
    lease_expires_at BIGINT  NOT NULL
);
