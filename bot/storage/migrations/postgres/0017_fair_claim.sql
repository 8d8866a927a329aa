-- Reason: the fair claim (bot/engine/claim.py). Issue 20 item 7: within a server, the member whose
-- last claim is oldest goes first, so each member's last turn is kept beside each server's, by the
-- same trigger and with the same turn number. Issue 22 item 1: the claim and the queue snapshot read
-- only the queue and the running jobs, through two partial indexes (the same as on SQLite); `turn`
-- is indexed so the trigger's MAX(turn) is one index probe.

CREATE TABLE member_turns (
    guild_id BIGINT NOT NULL,
    user_id  BIGINT NOT NULL,
    turn     BIGINT NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

CREATE INDEX guild_turns_by_turn ON guild_turns (turn);

CREATE OR REPLACE FUNCTION jobs_claim_turn() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    next_turn BIGINT;
BEGIN
    SELECT COALESCE(MAX(turn), 0) + 1 INTO next_turn FROM guild_turns;
    INSERT INTO guild_turns (guild_id, turn) VALUES (NEW.guild_id, next_turn)
    ON CONFLICT (guild_id) DO UPDATE SET turn = excluded.turn;
    INSERT INTO member_turns (guild_id, user_id, turn) VALUES (NEW.guild_id, NEW.user_id, next_turn)
    ON CONFLICT (guild_id, user_id) DO UPDATE SET turn = excluded.turn;
    RETURN NULL;
END $$;

CREATE INDEX jobs_queued ON jobs (created_at, id) WHERE status = 'queued';
CREATE INDEX jobs_running ON jobs (guild_id, user_id, model) WHERE status IN ('generating', 'submitting');
