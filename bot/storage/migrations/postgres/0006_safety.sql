-- Reason: safety, moderation and privacy (issue 10): blocked words, members and channels, the safety
-- dial, allowed models and grounding, strikes for moderated results; private jobs and erased prompts.
-- PostgreSQL version of migrations/0006_safety.sql.

CREATE TABLE safety_words (
    guild_id BIGINT NOT NULL,
    rule     TEXT   NOT NULL,
    added_by BIGINT NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (guild_id, rule)
);

CREATE TABLE safety_blocks (
    guild_id   BIGINT NOT NULL,
    user_id    BIGINT NOT NULL,
    until      BIGINT,
    reason     TEXT,
    blocked_by BIGINT NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

CREATE TABLE safety_channels (
    guild_id   BIGINT NOT NULL,
    channel_id BIGINT NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
);

CREATE TABLE safety_levels (
    guild_id   BIGINT NOT NULL,
    channel_id BIGINT NOT NULL,
    level      TEXT   NOT NULL CHECK (level IN ('strict', 'standard', 'relaxed')),
    PRIMARY KEY (guild_id, channel_id)
);

CREATE TABLE safety_settings (
    guild_id  BIGINT  PRIMARY KEY,
    models    TEXT,
    grounding INTEGER NOT NULL DEFAULT 0 CHECK (grounding IN (0, 1))
);

CREATE TABLE safety_strikes (
    guild_id BIGINT NOT NULL,
    user_id  BIGINT NOT NULL,
    job_id   BIGINT NOT NULL UNIQUE,
    at       BIGINT NOT NULL
);
CREATE INDEX safety_strikes_by_member ON safety_strikes (guild_id, user_id, at);

ALTER TABLE jobs ADD COLUMN private INTEGER NOT NULL DEFAULT 0 CHECK (private IN (0, 1));
ALTER TABLE jobs ADD COLUMN erased_at BIGINT;
CREATE INDEX jobs_by_age ON jobs (created_at) WHERE erased_at IS NULL;
