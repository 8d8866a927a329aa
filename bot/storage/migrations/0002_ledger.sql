-- Reason: the money ledger (integer micro-dollars) and the counters that make limit checks O(1).
--
-- Every movement is a row. A job has at most one 'reserve' and at most one outcome ('settle' or
-- 'release'), enforced by unique indexes, so a repeated step is a no-op, never a second charge.
-- `usage` and `member_activity` are caches of sums over `ledger`, maintained by triggers in the
-- same statement as the ledger insert; `Ledger.verify_counters()` rebuilds and compares them.

CREATE TABLE ledger (
    id            INTEGER PRIMARY KEY,
    kind          TEXT    NOT NULL CHECK (kind IN ('reserve', 'settle', 'release', 'grant', 'adjustment')),
    job_id        INTEGER,                          -- NULL for grants and adjustments
    guild_id      INTEGER NOT NULL,
    user_id       INTEGER NOT NULL,                 -- 0 for server-level adjustments
    model         TEXT,
    server_micros INTEGER NOT NULL,                 -- change to the server's and the bot-wide spend
    member_micros INTEGER NOT NULL,                 -- change to the member's spend (a refunded failure: 0 net)
    member_images INTEGER NOT NULL,                 -- change to the member's image count
    day           TEXT    NOT NULL,                 -- the periods this row counts in: those of the
    week          TEXT    NOT NULL,                 -- job's reservation, so a late settle never lands
    month         TEXT    NOT NULL,                 -- in the next period
    actor_id      INTEGER,                          -- the moderator, for grants and adjustments
    note          TEXT,
    at            INTEGER NOT NULL                  -- unix milliseconds
) STRICT;

CREATE UNIQUE INDEX ledger_one_reserve_per_job ON ledger (job_id) WHERE kind = 'reserve';
CREATE UNIQUE INDEX ledger_one_outcome_per_job ON ledger (job_id) WHERE kind IN ('settle', 'release');
CREATE INDEX ledger_by_guild_time ON ledger (guild_id, at);

CREATE TABLE usage (
    scope          TEXT    NOT NULL,                -- 'm:<guild>:<user>' | 's:<guild>' | 'bot'
    period         TEXT    NOT NULL,                -- 'd:2026-11-23' | 'w:2026-11-23' (Monday) | 'm:2026-11'
    micros         INTEGER NOT NULL DEFAULT 0,
    images         INTEGER NOT NULL DEFAULT 0,
    granted_micros INTEGER NOT NULL DEFAULT 0,      -- one-off extra allowance for the period (members)
    PRIMARY KEY (scope, period)
) STRICT, WITHOUT ROWID;

CREATE TABLE member_activity (
    guild_id         INTEGER NOT NULL,
    user_id          INTEGER NOT NULL,
    pending_jobs     INTEGER NOT NULL DEFAULT 0,    -- reserved, not yet settled or released
    last_reserved_at INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (guild_id, user_id)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER ledger_counts_spend AFTER INSERT ON ledger WHEN NEW.kind != 'grant' BEGIN
    INSERT INTO usage (scope, period, micros, images) VALUES
        ('m:' || NEW.guild_id || ':' || NEW.user_id, NEW.day,   NEW.member_micros, NEW.member_images),
        ('m:' || NEW.guild_id || ':' || NEW.user_id, NEW.week,  NEW.member_micros, NEW.member_images),
        ('m:' || NEW.guild_id || ':' || NEW.user_id, NEW.month, NEW.member_micros, NEW.member_images),
        ('s:' || NEW.guild_id, NEW.day,   NEW.server_micros, NEW.member_images),
        ('s:' || NEW.guild_id, NEW.week,  NEW.server_micros, NEW.member_images),
        ('s:' || NEW.guild_id, NEW.month, NEW.server_micros, NEW.member_images),
        ('bot', NEW.day,   NEW.server_micros, NEW.member_images),
        ('bot', NEW.week,  NEW.server_micros, NEW.member_images),
        ('bot', NEW.month, NEW.server_micros, NEW.member_images)
    ON CONFLICT (scope, period) DO UPDATE SET
        micros = micros + excluded.micros,
        images = images + excluded.images;
END;

CREATE TRIGGER ledger_counts_grants AFTER INSERT ON ledger WHEN NEW.kind = 'grant' BEGIN
    INSERT INTO usage (scope, period, granted_micros) VALUES
        ('m:' || NEW.guild_id || ':' || NEW.user_id, NEW.day,   NEW.member_micros),
        ('m:' || NEW.guild_id || ':' || NEW.user_id, NEW.week,  NEW.member_micros),
        ('m:' || NEW.guild_id || ':' || NEW.user_id, NEW.month, NEW.member_micros)
    ON CONFLICT (scope, period) DO UPDATE SET granted_micros = granted_micros + excluded.granted_micros;
END;

CREATE TRIGGER ledger_opens_job AFTER INSERT ON ledger WHEN NEW.kind = 'reserve' BEGIN
    INSERT INTO member_activity (guild_id, user_id, pending_jobs, last_reserved_at)
        VALUES (NEW.guild_id, NEW.user_id, 1, NEW.at)
    ON CONFLICT (guild_id, user_id) DO UPDATE SET
        pending_jobs = pending_jobs + 1,
        last_reserved_at = excluded.last_reserved_at;
END;

CREATE TRIGGER ledger_closes_job AFTER INSERT ON ledger WHEN NEW.kind IN ('settle', 'release') BEGIN
    UPDATE member_activity SET pending_jobs = pending_jobs - 1
        WHERE guild_id = NEW.guild_id AND user_id = NEW.user_id;
END;
