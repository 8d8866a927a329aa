-- Reason: member defaults (/prefs) and server styles (/style), issue 13 items 3 and 4.
--
-- member_prefs: one row per member per server; NULL means "not set" (the bot's default applies).
-- server_styles: a server's prompt templates; names are unique per server whatever their case
-- (name_key is the name case-folded), the template holds "{prompt}" exactly once.
-- jobs.style: the name of the style applied to the job's prompt, shown on the result card and kept
-- by Reroll; never sent to BFL (jobs.prompt already holds the templated prompt).

CREATE TABLE member_prefs (
    guild_id     INTEGER NOT NULL,
    user_id      INTEGER NOT NULL,
    model        TEXT,
    aspect_ratio TEXT,
    count        INTEGER CHECK (count BETWEEN 1 AND 4),
    private      INTEGER CHECK (private IN (0, 1)),
    style_key    TEXT,                            -- server_styles.name_key
    updated_at   INTEGER NOT NULL,                -- unix milliseconds
    PRIMARY KEY (guild_id, user_id)
) STRICT;

CREATE TABLE server_styles (
    guild_id  INTEGER NOT NULL,
    name_key  TEXT    NOT NULL,                   -- the name case-folded
    name      TEXT    NOT NULL,                   -- as the moderator wrote it
    template  TEXT    NOT NULL,
    added_by  INTEGER NOT NULL,
    added_at  INTEGER NOT NULL,                   -- unix milliseconds
    PRIMARY KEY (guild_id, name_key)
) STRICT;

ALTER TABLE jobs ADD COLUMN style TEXT;
