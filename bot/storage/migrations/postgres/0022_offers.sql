-- Reason: see ../0022_offers.sql (pending offers behind a button, durable, with a kind).

CREATE TABLE offers (
    id         TEXT    PRIMARY KEY,
    kind       TEXT    NOT NULL,
    guild_id   BIGINT  NOT NULL,
    user_id    BIGINT  NOT NULL,
    payload    TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL
);
CREATE INDEX offers_expiry ON offers (expires_at);
