-- Reason: the fair claim (bot/engine/claim.py). Issue 20 item 7: within a server, the member whose
-- last claim is oldest goes first, so each member's last turn is kept beside each server's, by the
-- same trigger and with the same turn number. Issue 22 item 1: the claim and the queue snapshot read
-- only the queue and the running jobs, through two partial indexes whose conditions the queries
-- repeat term for term (SQLite uses a partial index only then); `turn` is indexed so the trigger's
-- MAX(turn) is one index probe.

CREATE TABLE member_turns (
    guild_id INTEGER NOT NULL,
    user_id  INTEGER NOT NULL,
    turn     INTEGER NOT NULL,
    PRIMARY KEY (guild_id, user_id)
) STRICT;

CREATE INDEX guild_turns_by_turn ON guild_turns (turn);

DROP TRIGGER jobs_claim_turn;
CREATE TRIGGER jobs_claim_turn AFTER UPDATE OF status ON jobs
    WHEN NEW.status = 'submitting' AND OLD.status = 'queued' BEGIN
    INSERT INTO guild_turns (guild_id, turn)
        VALUES (NEW.guild_id, (SELECT COALESCE(MAX(turn), 0) + 1 FROM guild_turns))
    ON CONFLICT (guild_id) DO UPDATE SET turn = excluded.turn;
    INSERT INTO member_turns (guild_id, user_id, turn)
        VALUES (NEW.guild_id, NEW.user_id, (SELECT turn FROM guild_turns WHERE guild_id = NEW.guild_id))
    ON CONFLICT (guild_id, user_id) DO UPDATE SET turn = excluded.turn;
END;

CREATE INDEX jobs_queued ON jobs (created_at, id) WHERE status = 'queued';
CREATE INDEX jobs_running ON jobs (guild_id, user_id, model) WHERE status IN ('generating', 'submitting');
