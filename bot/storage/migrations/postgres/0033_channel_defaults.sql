-- Reason: per-channel defaults (issue 24 item 5, `/budget channel`).
-- PostgreSQL version of migrations/0033_channel_defaults.sql.

CREATE TABLE channel_defaults (
    guild_id     BIGINT NOT NULL,
    channel_id   BIGINT NOT NULL,
    model        TEXT,
    aspect_ratio TEXT,
    count        INTEGER CHECK (count BETWEEN 1 AND 4),
    private      INTEGER CHECK (private IN (0, 1)),
    style_key    TEXT,
    updated_by   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
);
