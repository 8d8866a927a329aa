-- Reason: stay fast as history grows (issue 22): every hot query finds its rows through an index, so
-- its cost follows what it asks for (a server's month, a member, the open jobs), not the total history.
-- The same indexes and table as the SQLite migration of this number (see there, one line each).

DROP INDEX ledger_by_guild_time;
CREATE INDEX ledger_by_guild ON ledger (guild_id, id);
CREATE INDEX ledger_by_guild_day ON ledger (guild_id, day);
CREATE INDEX ledger_by_member ON ledger (guild_id, user_id);
CREATE INDEX jobs_unknown ON jobs (guild_id) WHERE status = 'unknown';

CREATE TABLE ledger_open (
    job_id     BIGINT PRIMARY KEY,
    reserve_id BIGINT NOT NULL                     -- the reserve row (recovery goes through them in order)
);

INSERT INTO ledger_open (job_id, reserve_id)
    SELECT r.job_id, r.id FROM ledger r WHERE r.kind = 'reserve' AND NOT EXISTS
        (SELECT 1 FROM ledger o WHERE o.job_id = r.job_id AND o.kind IN ('settle', 'release'));

CREATE FUNCTION ledger_tracks_open() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind = 'reserve' THEN
        INSERT INTO ledger_open (job_id, reserve_id) VALUES (NEW.job_id, NEW.id);
    ELSE
        DELETE FROM ledger_open WHERE job_id = NEW.job_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_tracks_open AFTER INSERT ON ledger FOR EACH ROW
    WHEN (NEW.kind IN ('reserve', 'settle', 'release')) EXECUTE FUNCTION ledger_tracks_open();
