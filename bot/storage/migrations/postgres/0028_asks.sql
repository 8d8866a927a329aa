-- Reason: see ../0027_asks.sql (Ask for more: requests waiting for a moderator; the administrator
-- threshold; audit rows flagged as self-benefiting).

CREATE TABLE budget_asks (
    id         TEXT    PRIMARY KEY,
    guild_id   BIGINT  NOT NULL,
    user_id    BIGINT  NOT NULL,
    channel_id BIGINT  NOT NULL,
    micros     BIGINT  NOT NULL CHECK (micros > 0),
    reason     TEXT,
    state      TEXT    NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'approved', 'denied', 'expired')),
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL,
    decided_by BIGINT,
    decided_at BIGINT
);
CREATE UNIQUE INDEX budget_asks_one_open ON budget_asks (guild_id, user_id) WHERE state = 'open';

ALTER TABLE guild_settings ADD COLUMN ask_admin_above_micros BIGINT;
ALTER TABLE audit_log ADD COLUMN self_benefiting INTEGER NOT NULL DEFAULT 0;
