-- Reason: issue 24 items 1 and 7. A member refused by their budget asks the moderators for more
-- ("Ask for more"): the request waits here, one open per member, for a day, until a moderator approves
-- it (a grant through the ledger, in the transaction that closes the request: of two moderators
-- clicking at once, one wins) or denies it (bot/billing/asks.py). Amounts above a server's
-- `ask_admin_above_micros` (NULL: the default, $5) need an administrator. Audit rows say when a change
-- benefits the moderator who made it (`self_benefiting`: an administrator granting themselves).

CREATE TABLE budget_asks (
    id         TEXT    PRIMARY KEY,                 -- random hex; the Approve / Deny buttons' custom ids hold only this
    guild_id   INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,                    -- who asks (never the one who decides)
    channel_id INTEGER NOT NULL,                    -- where they asked: told there if their DMs are closed
    micros     INTEGER NOT NULL CHECK (micros > 0),
    reason     TEXT,
    state      TEXT    NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'approved', 'denied', 'expired')),
    created_at INTEGER NOT NULL,                    -- unix milliseconds
    expires_at INTEGER NOT NULL,
    decided_by INTEGER,
    decided_at INTEGER
) STRICT;
CREATE UNIQUE INDEX budget_asks_one_open ON budget_asks (guild_id, user_id) WHERE state = 'open';

ALTER TABLE guild_settings ADD COLUMN ask_admin_above_micros INTEGER;
ALTER TABLE audit_log ADD COLUMN self_benefiting INTEGER NOT NULL DEFAULT 0;
