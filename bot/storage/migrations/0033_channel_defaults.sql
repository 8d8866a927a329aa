-- Reason: per-channel defaults (issue 24 item 5, `/budget channel`): a channel's model, aspect ratio,
-- count, privacy and style, between a member's /prefs and the bot's defaults (explicit > member >
-- channel > bot). One row per channel; NULL means "not set" (the next layer applies). style_key is
-- server_styles.name_key: a style removed later no longer matches and counts as not set.

CREATE TABLE channel_defaults (
    guild_id     INTEGER NOT NULL,
    channel_id   INTEGER NOT NULL,
    model        TEXT,
    aspect_ratio TEXT,
    count        INTEGER CHECK (count BETWEEN 1 AND 4),
    private      INTEGER CHECK (private IN (0, 1)),
    style_key    TEXT,                            -- server_styles.name_key
    updated_by   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,                -- unix milliseconds
    PRIMARY KEY (guild_id, channel_id)
) STRICT;
