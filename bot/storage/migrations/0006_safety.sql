-- Reason: safety, moderation and privacy (issue 10): blocked words, members and channels, the safety
-- dial, allowed models and grounding, strikes for moderated results; private jobs and erased prompts.

CREATE TABLE safety_words (
    guild_id INTEGER NOT NULL,
    rule     TEXT    NOT NULL,                     -- normalized (see bot.safety.matching)
    added_by INTEGER NOT NULL,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (guild_id, rule)
) STRICT, WITHOUT ROWID;

CREATE TABLE safety_blocks (
    guild_id   INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    until      INTEGER,                            -- unix ms; NULL: until unblocked
    reason     TEXT,
    blocked_by INTEGER NOT NULL,                   -- 0: the bot (moderated results)
    at         INTEGER NOT NULL,
    PRIMARY KEY (guild_id, user_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE safety_channels (
    guild_id   INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,                   -- once any row exists, only these channels generate
    PRIMARY KEY (guild_id, channel_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE safety_levels (
    guild_id   INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,                   -- 0: the server's level
    level      TEXT    NOT NULL CHECK (level IN ('strict', 'standard', 'relaxed')),
    PRIMARY KEY (guild_id, channel_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE safety_settings (
    guild_id  INTEGER PRIMARY KEY,
    models    TEXT,                                -- JSON list of model keys; NULL: every model
    grounding INTEGER NOT NULL DEFAULT 0 CHECK (grounding IN (0, 1))
) STRICT;

CREATE TABLE safety_strikes (
    guild_id INTEGER NOT NULL,
    user_id  INTEGER NOT NULL,
    job_id   INTEGER NOT NULL UNIQUE,              -- one strike per moderated job
    at       INTEGER NOT NULL
) STRICT;
CREATE INDEX safety_strikes_by_member ON safety_strikes (guild_id, user_id, at);

-- Private: the whole exchange is ephemeral. erased_at: the prompt, parameters and result links were
-- erased (retention sweep or /privacy forget); the ledger keeps amounts, models and times.
ALTER TABLE jobs ADD COLUMN private INTEGER NOT NULL DEFAULT 0 CHECK (private IN (0, 1));
ALTER TABLE jobs ADD COLUMN erased_at INTEGER;
CREATE INDEX jobs_by_age ON jobs (created_at) WHERE erased_at IS NULL;
