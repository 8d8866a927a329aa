-- Reason: gifts (issue 24 item 2). A member moves part of their own remaining budget for the current
-- period to another member: two 'grant' rows in the ledger (minus on the giver, plus on the receiver,
-- one transaction, bot/billing/gifts.py) and one row here, which the per-day gift cap is counted from.
-- guild_settings.gift_cap_micros: the most one member may give per UTC day in this server; 0 (the
-- default) turns gifts off (`/budget gifts cap:`).

ALTER TABLE guild_settings ADD COLUMN gift_cap_micros INTEGER NOT NULL DEFAULT 0;

CREATE TABLE gifts (
    id          INTEGER PRIMARY KEY,
    guild_id    INTEGER NOT NULL,
    giver_id    INTEGER NOT NULL,
    receiver_id INTEGER NOT NULL,
    micros      INTEGER NOT NULL CHECK (micros > 0),
    day         TEXT    NOT NULL,                   -- 'd:2026-11-23': the day the cap counts it in
    note        TEXT,
    at          INTEGER NOT NULL                    -- unix milliseconds
) STRICT;
CREATE INDEX gifts_by_giver_day ON gifts (guild_id, giver_id, day);
