-- Reason: a pending offer behind a button (issue 23 item 2): a price confirmation ("confirm": Generate /
-- Cancel) is kept here instead of in the process's memory, so it survives a restart like every other
-- button and works on any process. The table is general (``kind``) for whatever later features need;
-- the fallback offers kept their own table (0014) until 0024 moved them here. The button's custom id
-- holds only ``id`` (every client can read a custom id, and the payload carries the prompt). Used once,
-- by its member only.

CREATE TABLE offers (
    id         TEXT    PRIMARY KEY,                 -- random hex; the button's custom id holds only this
    kind       TEXT    NOT NULL,                    -- 'confirm' (cogs/_confirm.py), …
    guild_id   INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,                    -- the member it was offered to: the only one who may take it
    payload    TEXT    NOT NULL,                    -- JSON: what the kind needs to run it (bot/offers.py)
    created_at INTEGER NOT NULL,                    -- unix milliseconds
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX offers_expiry ON offers (expires_at);
