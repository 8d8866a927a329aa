-- Reason: several bot processes share one database (issue 12): each job records which process holds
-- it, and each process keeps a lease row; a process that stops renewing has its jobs taken over.
--
-- jobs.claimed_by is the holder's identity ("host:pid:nonce:token", bot/engine/leases.py), set when
-- a process admits or claims a job. NULL for jobs written before this migration: the next process
-- to start takes them over, as a restart always did.

ALTER TABLE jobs ADD COLUMN claimed_by TEXT;
CREATE INDEX jobs_claimed_by ON jobs (claimed_by);

CREATE TABLE processes (
    id               TEXT    PRIMARY KEY,           -- ProcessIdentity.id
    role             TEXT    NOT NULL CHECK (role IN ('bot', 'worker')),
    host             TEXT    NOT NULL,
    pid              INTEGER NOT NULL,
    started_at       INTEGER NOT NULL,              -- unix milliseconds
    lease_expires_at INTEGER NOT NULL               -- the holder renews it every third of JOB_LEASE_SECONDS
);
