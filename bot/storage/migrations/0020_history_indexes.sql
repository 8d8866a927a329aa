-- Reason: stay fast as history grows (issue 22): every hot query finds its rows through an index, so
-- its cost follows what it asks for (a server's month, a member, the open jobs), not the total history.
--
-- ledger_by_guild (replaces ledger_by_guild_time, which no query used): the CSV export pages through
--   a server's rows in id order (bot/billing/export.py).
-- ledger_by_guild_day: a server's report reads the rows of the day, week or month asked for: a period
--   is a range of day keys (bot/billing/reports.py).
-- ledger_by_member: /privacy show counts a member's ledger rows without reading the whole server's.
-- jobs_unknown: the report's count of a server's submits with an unknown outcome.
-- ledger_open: the reservations neither settled nor released, kept by two triggers as the ledger is
--   written, so start-up recovery reads the open ones instead of every reservation ever made
--   (Ledger.open_job_ids; Ledger.verify_counters checks it against the rows).

DROP INDEX ledger_by_guild_time;
CREATE INDEX ledger_by_guild ON ledger (guild_id, id);
CREATE INDEX ledger_by_guild_day ON ledger (guild_id, day);
CREATE INDEX ledger_by_member ON ledger (guild_id, user_id);
CREATE INDEX jobs_unknown ON jobs (guild_id) WHERE status = 'unknown';

CREATE TABLE ledger_open (
    job_id     INTEGER PRIMARY KEY,
    reserve_id INTEGER NOT NULL                    -- the reserve row (recovery goes through them in order)
) STRICT;

INSERT INTO ledger_open (job_id, reserve_id)
    SELECT r.job_id, r.id FROM ledger r WHERE r.kind = 'reserve' AND NOT EXISTS
        (SELECT 1 FROM ledger o WHERE o.job_id = r.job_id AND o.kind IN ('settle', 'release'));

CREATE TRIGGER ledger_open_reserve AFTER INSERT ON ledger WHEN NEW.kind = 'reserve' BEGIN
    INSERT INTO ledger_open (job_id, reserve_id) VALUES (NEW.job_id, NEW.id);
END;

CREATE TRIGGER ledger_open_outcome AFTER INSERT ON ledger WHEN NEW.kind IN ('settle', 'release') BEGIN
    DELETE FROM ledger_open WHERE job_id = NEW.job_id;
END;
