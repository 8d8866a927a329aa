-- Reason: when BFL keeps failing for a model (issue 13 item 5): the server's fallback model, and the
-- pending one-click fallback offers. An offer is kept here, not in the button's custom id (every
-- client can read a custom id, and the request carries the prompt); it expires after 10 minutes and
-- is used once, by the member who was refused only. And the circuit breakers' events, so every
-- process on the database shares them (below).

ALTER TABLE guild_settings ADD COLUMN fallback_model TEXT;  -- NULL: no fallback is offered

CREATE TABLE fallback_offers (
    id            TEXT    PRIMARY KEY,              -- random hex; the button's custom id holds only this
    guild_id      INTEGER NOT NULL,
    user_id       INTEGER NOT NULL,                 -- the member who was refused: the only one who may use it
    model         TEXT    NOT NULL,                 -- the fallback model
    request       TEXT    NOT NULL,                 -- the request on the fallback model (JSON, bot/engine/fallback.py)
    private       INTEGER NOT NULL DEFAULT 0 CHECK (private IN (0, 1)),
    images        INTEGER NOT NULL DEFAULT 1 CHECK (images BETWEEN 1 AND 4),  -- /imagine count:N: all N on the fallback
    source_kind   TEXT,                             -- an edit, variation or reroll: what it works on (job_sources)
    source_url    TEXT,
    source_job_id INTEGER,
    created_at    INTEGER NOT NULL,                 -- unix milliseconds
    expires_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX fallback_offers_expiry ON fallback_offers (expires_at);

-- The circuit breakers shared by every process (bot/engine/shared_breaker.py): each process records
-- the provider errors it sees, and the successes that can close a breaker; each rebuilds the
-- breakers from the recent events. Events older than ten minutes are pruned.
CREATE TABLE breaker_events (
    id    INTEGER PRIMARY KEY,
    model TEXT    NOT NULL,
    kind  TEXT    NOT NULL CHECK (kind IN ('failure', 'success')),
    at    INTEGER NOT NULL                          -- unix milliseconds (wall clock: shared by processes)
) STRICT;
CREATE INDEX breaker_events_by_time ON breaker_events (at);
