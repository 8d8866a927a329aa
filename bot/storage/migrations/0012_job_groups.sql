-- Reason: /imagine count:<1-4> and draft:true (issue 13): N jobs for one prompt, linked as one group
-- that is reserved all-or-nothing, settled per image, and posted ONCE as one gallery message.
--
-- job_groups.id is the interaction id of the /imagine that asked for the group. Its member jobs take
-- ids from job_numbers (small integers, never a Discord snowflake, so never another request's id).
-- poster is the process that claimed the posting (one conditional update decides who posts);
-- posted_at is set once the gallery (or the "all failed" note) is in Discord.

CREATE TABLE job_groups (
    id                INTEGER PRIMARY KEY,            -- the interaction id
    guild_id          INTEGER NOT NULL,
    channel_id        INTEGER NOT NULL,
    user_id           INTEGER NOT NULL,
    size              INTEGER NOT NULL CHECK (size BETWEEN 1 AND 4),
    draft             INTEGER NOT NULL DEFAULT 0 CHECK (draft IN (0, 1)),
    final_model       TEXT,                           -- draft: the model a Final renders on
    final_options     TEXT,                           -- draft: JSON of the options given for the final
    application_id    INTEGER,
    interaction_token TEXT,                           -- cleared once posted
    private           INTEGER NOT NULL DEFAULT 0 CHECK (private IN (0, 1)),
    poster            TEXT,                           -- ProcessIdentity.id of the process posting it
    posted_at         INTEGER,                        -- unix milliseconds
    result_channel_id INTEGER,
    result_message_id INTEGER,
    created_at        INTEGER NOT NULL
) STRICT;
CREATE INDEX job_groups_unposted ON job_groups (created_at) WHERE posted_at IS NULL;

CREATE TABLE job_numbers (
    id INTEGER PRIMARY KEY AUTOINCREMENT
);

ALTER TABLE jobs ADD COLUMN group_id INTEGER;
ALTER TABLE jobs ADD COLUMN group_index INTEGER;
CREATE INDEX jobs_by_group ON jobs (group_id) WHERE group_id IS NOT NULL;
