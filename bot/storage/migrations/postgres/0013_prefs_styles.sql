-- Reason: member defaults (/prefs) and server styles (/style), issue 13 items 3 and 4.
-- PostgreSQL version of migrations/0013_prefs_styles.sql.

CREATE TABLE member_prefs (
    guild_id     BIGINT NOT NULL,
    user_id      BIGINT NOT NULL,
    model        TEXT,
    aspect_ratio TEXT,
    count        INTEGER CHECK (count BETWEEN 1 AND 4),
    private      INTEGER CHECK (private IN (0, 1)),
    style_key    TEXT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

CREATE TABLE server_styles (
    guild_id  BIGINT NOT NULL,
    name_key  TEXT   NOT NULL,
    name      TEXT   NOT NULL,
    template  TEXT   NOT NULL,
    added_by  BIGINT NOT NULL,
    added_at  BIGINT NOT NULL,
    PRIMARY KEY (guild_id, name_key)
);

ALTER TABLE jobs ADD COLUMN style TEXT;
